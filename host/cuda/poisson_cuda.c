/* CUDA backend of the Poisson plan; mirrors host/cpu/poisson_cpu.c. cuFFT has no
 * real-to-real transforms, so every axis is transformed on its own: a gather kernel copies
 * the axis' lines into contiguous rows (with the reordering of Makhoul's DCT algorithm), one
 * batched 1-D real cuFFT per axis runs over all rows, and a scatter kernel applies the
 * twiddles and writes back (kernels/cuda/poisson.cu, host/cuda/poisson_kernels.h). The
 * diagonal scaling is one kernel using kernels/common/poisson_math.h, like the CPU.
 * Axes of length 1 are skipped (their transform pair is the identity up to its norm, which is
 * then left out of the normalisation).
 * Per plan: per axis one R2C and one C2R plan (D2Z/Z2D in float64) sharing one work area; a
 * copy of the data (work), a real row buffer (rbuf) and a complex half-spectrum buffer (cbuf).
 * Execution is asynchronous on the context's stream, except the input checks (finiteness,
 * zero mean), which read a few numbers back and synchronise. */
#include "cuda_internal.h"
#include "poisson_kernels.h"

#include "common/poisson_math.h"

#include <cufft.h>
#include <math.h>
#include <stdlib.h>

typedef struct cuda_axis {
    int active; /* n > 1 */
    int bc;
    int64_t n, outer, inner;
    double *tw; /* device: (cos, sin) of πk/(2n), k = 0..n-1; non-periodic axes only */
    cufftHandle r2c, c2r;
    int have_r2c, have_c2r;
} cuda_axis;

typedef struct cuda_poisson {
    cuda_axis axis[ADV_POISSON_MAX_DIM];
    void *work;        /* batch × cells reals */
    void *rbuf;        /* batch × cells reals */
    void *cbuf;        /* max over axes of rows × (n/2 + 1) complex */
    void *fft_area;    /* cuFFT work area shared by all plans (they run one at a time) */
    void *check;       /* 2·batch doubles (Σf, Σ|f|), max|f| (bits), one unsigned flag */
    double *host_sums; /* the same, read back */
    advk_poisson_grid grid;
} cuda_poisson;

static const char *cufft_result_name(cufftResult r) {
    switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cufftResult";
    }
}

static adv_status cufft_error(adv_context *ctx, cufftResult r, const char *what) {
    adv_status st = r == CUFFT_ALLOC_FAILED ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_CUFFT;
    return advi_fail(ctx, st, "%s failed: %s (%d)", what, cufft_result_name(r), (int)r);
}

/* Evaluate a cuFFT call; on error record it and return from the enclosing function. */
#define CUFFT_CHECK(ctx, call)                                                  \
    do {                                                                        \
        cufftResult advi_r_ = (call);                                           \
        if (advi_r_ != CUFFT_SUCCESS) return cufft_error((ctx), advi_r_, #call); \
    } while (0)

static void release(adv_context *ctx, cuda_poisson *s) {
    for (int a = 0; a < ADV_POISSON_MAX_DIM; ++a) {
        if (s->axis[a].have_r2c) (void)cufftDestroy(s->axis[a].r2c);
        if (s->axis[a].have_c2r) (void)cufftDestroy(s->axis[a].c2r);
        if (s->axis[a].tw) (void)advi_cuda_free(ctx, s->axis[a].tw);
    }
    void *bufs[] = {s->work, s->rbuf, s->cbuf, s->fft_area, s->check};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; ++k)
        if (bufs[k]) (void)advi_cuda_free(ctx, bufs[k]);
    free(s->host_sums);
    free(s);
}

/* Creates the cuFFT plans of one axis without their own work areas; *ws gets the larger of
 * the two work sizes. */
static adv_status make_axis_plans(adv_context *ctx, cuda_axis *ax, int f64, size_t *ws) {
    long long n = (long long)ax->n, h = n / 2 + 1;
    long long rows = (long long)(ax->outer * ax->inner);
    size_t ws_r2c = 0, ws_c2r = 0;
    cudaStream_t stream = advi_cuda_stream(ctx);
    CUFFT_CHECK(ctx, cufftCreate(&ax->r2c));
    ax->have_r2c = 1;
    CUFFT_CHECK(ctx, cufftSetAutoAllocation(ax->r2c, 0));
    CUFFT_CHECK(ctx, cufftMakePlanMany64(ax->r2c, 1, &n, NULL, 1, n, NULL, 1, h,
                                         f64 ? CUFFT_D2Z : CUFFT_R2C, rows, &ws_r2c));
    CUFFT_CHECK(ctx, cufftSetStream(ax->r2c, stream));
    CUFFT_CHECK(ctx, cufftCreate(&ax->c2r));
    ax->have_c2r = 1;
    CUFFT_CHECK(ctx, cufftSetAutoAllocation(ax->c2r, 0));
    CUFFT_CHECK(ctx, cufftMakePlanMany64(ax->c2r, 1, &n, NULL, 1, h, NULL, 1, n,
                                         f64 ? CUFFT_Z2D : CUFFT_C2R, rows, &ws_c2r));
    CUFFT_CHECK(ctx, cufftSetStream(ax->c2r, stream));
    *ws = ws_r2c > ws_c2r ? ws_r2c : ws_c2r;
    return ADV_OK;
}

/* The axis' twiddle table, computed on the host with the CPU's function and uploaded. */
static adv_status upload_twiddles(adv_context *ctx, cuda_axis *ax) {
    const size_t bytes = 2 * (size_t)ax->n * sizeof(double);
    double *host = malloc(bytes);
    if (!host) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson twiddle table");
    for (int64_t k = 0; k < ax->n; ++k)
        advi_poisson_twiddle(k, ax->n, &host[2 * k], &host[2 * k + 1]);
    adv_status st = advi_cuda_malloc(ctx, bytes, (void **)&ax->tw);
    if (st == ADV_OK) st = advi_cuda_memcpy(ctx, ax->tw, host, bytes, ADV_COPY_HOST_TO_CONTEXT);
    free(host);
    return st;
}

static adv_status plan_init_on_device(adv_poisson_plan *plan, cuda_poisson *s) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    const int f64 = d->precision == ADV_FLOAT64;
    const size_t es = advi_real_size(d->precision);
    const int64_t total = (int64_t)plan->cells * d->batch;

    s->grid.ndim = d->ndim;
    s->grid.shift = d->shift;
    double norm = 1.0;
    size_t cbuf_elems = 1, ws_max = 0;
    int64_t outer = d->batch;
    for (int a = 0; a < ADV_POISSON_MAX_DIM; ++a) {
        s->grid.shape[a] = d->shape[a];
        s->grid.spacing[a] = d->spacing[a];
        s->grid.bc[a] = (int)d->bc[a];
        if (a >= d->ndim) continue;
        cuda_axis *ax = &s->axis[a];
        ax->n = d->shape[a];
        ax->bc = (int)d->bc[a];
        ax->outer = outer;
        ax->inner = total / (outer * ax->n);
        outer *= ax->n;
        ax->active = ax->n > 1;
        if (!ax->active) continue;
        norm *= advi_poisson_axis_norm(ax->bc, ax->n);
        const size_t rows_h = (size_t)(ax->outer * ax->inner) * (size_t)(ax->n / 2 + 1);
        if (rows_h > cbuf_elems) cbuf_elems = rows_h;
        size_t ws = 0;
        adv_status st = make_axis_plans(ctx, ax, f64, &ws);
        if (st == ADV_OK && ax->bc != ADVI_POISSON_PERIODIC) st = upload_twiddles(ctx, ax);
        if (st != ADV_OK) return st;
        if (ws > ws_max) ws_max = ws;
    }
    s->grid.inv_norm = 1.0 / norm;

    adv_status st;
    if ((st = advi_cuda_malloc(ctx, (size_t)total * es, &s->work)) != ADV_OK) return st;
    if ((st = advi_cuda_malloc(ctx, (size_t)total * es, &s->rbuf)) != ADV_OK) return st;
    if ((st = advi_cuda_malloc(ctx, cbuf_elems * 2 * es, &s->cbuf)) != ADV_OK) return st;
    const size_t check_bytes = (2 * (size_t)d->batch + 2) * sizeof(double);
    if ((st = advi_cuda_malloc(ctx, check_bytes, &s->check)) != ADV_OK) return st;
    s->host_sums = malloc(check_bytes);
    if (!s->host_sums) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson check buffer");
    if (ws_max > 0) {
        if ((st = advi_cuda_malloc(ctx, ws_max, &s->fft_area)) != ADV_OK) return st;
        for (int a = 0; a < d->ndim; ++a) {
            if (!s->axis[a].active) continue;
            CUFFT_CHECK(ctx, cufftSetWorkArea(s->axis[a].r2c, s->fft_area));
            CUFFT_CHECK(ctx, cufftSetWorkArea(s->axis[a].c2r, s->fft_area));
        }
    }
    return ADV_OK;
}

adv_status advi_cuda_poisson_plan_init(adv_poisson_plan *plan) {
    adv_context *ctx = plan->ctx;
    cuda_poisson *s = calloc(1, sizeof *s);
    if (!s) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson CUDA state");
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) {
        free(s);
        return st;
    }
    st = plan_init_on_device(plan, s);
    if (st != ADV_OK) release(ctx, s);
    else plan->backend_state = s;
    advi_device_leave(&g);
    return st;
}

void advi_cuda_poisson_plan_fini(adv_poisson_plan *plan) {
    cuda_poisson *s = plan->backend_state;
    if (!s) return;
    advi_device_guard g;
    int entered = advi_device_enter(plan->ctx, plan->ctx->device_id, &g) == ADV_OK;
    // Solves may still be queued on the stream (cuFFT and the copy into u): the workspaces
    // must outlive them (allocator hooks free immediately).
    (void)cudaStreamSynchronize(advi_cuda_stream(plan->ctx));
    release(plan->ctx, s);
    if (entered) advi_device_leave(&g);
    plan->backend_state = NULL;
}

/* Reads Σf, Σ|f|, max|f| and the NaN flag back and applies the rules of adv_poisson_execute. */
static adv_status check_input(adv_poisson_plan *plan, cuda_poisson *s, const void *f,
                              int want_mean, double *max_f) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    cudaStream_t stream = advi_cuda_stream(ctx);
    const size_t nsums = 2 * (size_t)d->batch;
    const size_t bytes = (nsums + 2) * sizeof(double);
    double *sums = s->check;
    unsigned long long *max_bits = (unsigned long long *)(sums + nsums);
    unsigned int *bad = (unsigned int *)(sums + nsums + 1);
    ADVI_CUDA_CHECK(ctx, cudaMemsetAsync(s->check, 0, bytes, stream));
    ADVI_CUDA_CHECK(ctx, advk_poisson_check((int)d->precision, f, (int64_t)plan->cells, d->batch,
                                            d->check_finite, want_mean, sums, max_bits, bad,
                                            stream));
    ADVI_CUDA_CHECK(ctx, cudaMemcpyAsync(s->host_sums, s->check, bytes, cudaMemcpyDeviceToHost,
                                         stream));
    ADVI_CUDA_CHECK(ctx, cudaStreamSynchronize(stream));
    const unsigned int flag = *(const unsigned int *)(s->host_sums + nsums + 1);
    if (flag) return advi_fail(ctx, ADV_ERR_NONFINITE, "f (right-hand side) contains NaN or Inf");
    *max_f = s->host_sums[nsums]; // the bits of a double, copied as such
    if (want_mean)
        for (int64_t b = 0; b < d->batch; ++b) {
            const double sum = s->host_sums[2 * b], abs_sum = s->host_sums[2 * b + 1];
            if (fabs(sum) > plan->mean_tolerance * abs_sum)
                return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                                 "f (right-hand side %lld) has mean %g but c = 0 with no Dirichlet "
                                 "axis needs zero mean (|sum f| > %g sum |f|); remove the mean or "
                                 "use ADV_POISSON_PROJECT_MEAN",
                                 (long long)b, sum / (double)plan->cells, plan->mean_tolerance);
        }
    return ADV_OK;
}

/* Half of an axis' transform pair: the Makhoul gather and the R2C into cbuf. */
static adv_status to_spectrum(adv_context *ctx, cuda_poisson *s, const cuda_axis *ax, int prec,
                              const void *data, cudaStream_t stream) {
    ADVI_CUDA_CHECK(ctx, advk_poisson_fwd_gather(prec, ax->bc, data, s->rbuf, ax->outer, ax->n,
                                                 ax->inner, stream));
    if (prec == ADV_FLOAT64)
        CUFFT_CHECK(ctx, cufftExecD2Z(ax->r2c, (cufftDoubleReal *)s->rbuf,
                                      (cufftDoubleComplex *)s->cbuf));
    else
        CUFFT_CHECK(ctx, cufftExecR2C(ax->r2c, (cufftReal *)s->rbuf, (cufftComplex *)s->cbuf));
    return ADV_OK;
}

/* The other half: the C2R of cbuf and the scatter that undoes the reordering into data. */
static adv_status from_spectrum(adv_context *ctx, cuda_poisson *s, const cuda_axis *ax, int prec,
                                void *data, cudaStream_t stream) {
    if (prec == ADV_FLOAT64)
        CUFFT_CHECK(ctx, cufftExecZ2D(ax->c2r, (cufftDoubleComplex *)s->cbuf,
                                      (cufftDoubleReal *)s->rbuf));
    else
        CUFFT_CHECK(ctx, cufftExecC2R(ax->c2r, (cufftComplex *)s->cbuf, (cufftReal *)s->rbuf));
    ADVI_CUDA_CHECK(ctx, advk_poisson_inv_scatter(prec, ax->bc, s->rbuf, data, ax->outer, ax->n,
                                                  ax->inner, stream));
    return ADV_OK;
}

/* One axis forward (gather, real FFT, twiddles and scatter), in place on data. */
static adv_status forward_axis(adv_context *ctx, cuda_poisson *s, const cuda_axis *ax, int prec,
                               void *data, cudaStream_t stream) {
    adv_status st = to_spectrum(ctx, s, ax, prec, data, stream);
    if (st != ADV_OK) return st;
    ADVI_CUDA_CHECK(ctx, advk_poisson_fwd_scatter(prec, ax->bc, s->cbuf, data, ax->outer,
                                                  ax->n, ax->inner, ax->tw, stream));
    return ADV_OK;
}

/* The last transformed axis, non-periodic: both transforms with the scaling between them on
 * the half-spectrum (advk_poisson_spectral), in place on data. */
static adv_status last_axis(adv_context *ctx, cuda_poisson *s, const cuda_axis *ax, int prec,
                            void *data, cudaStream_t stream) {
    adv_status st = to_spectrum(ctx, s, ax, prec, data, stream);
    if (st != ADV_OK) return st;
    ADVI_CUDA_CHECK(ctx, advk_poisson_spectral(prec, ax->bc, s->cbuf, ax->outer * ax->inner, ax->n,
                                               ax->tw, s->grid, stream));
    return from_spectrum(ctx, s, ax, prec, data, stream);
}

static adv_status backward_axis(adv_context *ctx, cuda_poisson *s, const cuda_axis *ax, int prec,
                                void *data, cudaStream_t stream) {
    // The DHT is its own inverse (up to n, in the normalisation).
    if (ax->bc == ADVI_POISSON_PERIODIC) return forward_axis(ctx, s, ax, prec, data, stream);
    ADVI_CUDA_CHECK(ctx, advk_poisson_inv_gather(prec, ax->bc, data, s->cbuf, ax->outer, ax->n,
                                                 ax->inner, ax->tw, stream));
    return from_spectrum(ctx, s, ax, prec, data, stream);
}

static adv_status execute_on_device(adv_poisson_plan *plan, const void *f, void *u) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    cuda_poisson *s = plan->backend_state;
    cudaStream_t stream = advi_cuda_stream(ctx);
    const int prec = (int)d->precision;
    const size_t bytes = plan->cells * (size_t)d->batch * advi_real_size(d->precision);
    const int want_mean = plan->singular && d->mean_policy == ADV_POISSON_REQUIRE_ZERO_MEAN;
    adv_status st;

    double max_f = 0.0;
    if (d->check_finite || want_mean) {
        if ((st = check_input(plan, s, f, want_mean, &max_f)) != ADV_OK) return st;
    }
    // Distinct f and u: work on a copy, so that u is only written at the end. u == f (the
    // Benamou-Brenier iteration's use): f is the caller's to lose, and the input was checked
    // above, so the transforms run in place and skip both copies.
    void *data = u == f ? u : s->work;
    if (data != u)
        ADVI_CUDA_CHECK(ctx, cudaMemcpyAsync(data, f, bytes, cudaMemcpyDeviceToDevice, stream));
    // The last transformed axis has contiguous lines (every later axis has length 1); when it
    // is not periodic, its forward and backward transforms enclose the scaling in one pass
    // (last_axis). Otherwise: every axis forward, the scaling, every axis backward.
    int last = -1;
    for (int a = 0; a < d->ndim; ++a)
        if (s->axis[a].active) last = a;
    const int fused = last >= 0 && s->axis[last].bc != ADVI_POISSON_PERIODIC;
    for (int a = 0; a < d->ndim; ++a) {
        if (!s->axis[a].active) continue;
        st = fused && a == last ? last_axis(ctx, s, &s->axis[a], prec, data, stream)
                                : forward_axis(ctx, s, &s->axis[a], prec, data, stream);
        if (st != ADV_OK) return st;
    }
    if (!fused) ADVI_CUDA_CHECK(ctx, advk_poisson_scale(prec, data, d->batch, s->grid, stream));
    for (int a = d->ndim - 1; a >= 0; --a)
        if (s->axis[a].active && !(fused && a == last) &&
            (st = backward_axis(ctx, s, &s->axis[a], prec, data, stream)) != ADV_OK)
            return st;
    if (data != u)
        ADVI_CUDA_CHECK(ctx, cudaMemcpyAsync(u, data, bytes, cudaMemcpyDeviceToDevice, stream));
    if (!d->check_finite || !(max_f > plan->safe_max_f)) return ADV_OK;
    // Past the overflow bound (adv_poisson_execute): scan the solution (this synchronises).
    int ok = 0;
    if ((st = advi_cuda_all_finite(ctx, d->precision, u, plan->cells * (size_t)d->batch, 0, &ok,
                                   NULL)) != ADV_OK || ok)
        return st;
    ADVI_CUDA_CHECK(ctx, cudaMemsetAsync(u, 0, bytes, stream));
    ADVI_CUDA_CHECK(ctx, cudaStreamSynchronize(stream));
    return advi_poisson_overflow(plan, max_f);
}

adv_status advi_cuda_poisson_execute(adv_poisson_plan *plan, const void *f, void *u) {
    adv_context *ctx = plan->ctx;
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) return st;
    st = execute_on_device(plan, f, u);
    advi_device_leave(&g);
    return st;
}
