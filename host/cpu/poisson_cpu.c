/* CPU backend of the Poisson plan (spec math.md §4) through FFTW. One multi-dimensional
 * plan pair per adv_poisson_plan, batched over the right-hand sides:
 *  - every axis periodic: real-to-complex / complex-to-real DFTs (FFTW's SIMD codelets; the
 *    eigenvalues are real, so the scaling multiplies the half-spectrum);
 *  - otherwise one real-to-real plan with the transform matching each axis: the discrete
 *    Hartley transform (FFTW_DHT) for periodic axes (the periodic operator is a symmetric
 *    circulant, which the DHT diagonalises as the DFT does, and it keeps every axis real so
 *    all kinds go into one plan), DCT-II/DCT-III (REDFT10/REDFT01) for Neumann and
 *    DST-II/DST-III (RODFT10/RODFT01) for Dirichlet. FFTW's DHT is about 3x slower than its
 *    r2c transform, hence the separate all-periodic path.
 * Execution: copy f into the plan's workspace (checking finiteness and the mean on the way,
 * so u is untouched on error), forward transform, diagonal scaling by 1/(λ·norm)
 * (kernels/common/poisson_math.h), backward transform, copy to u.
 * FFTW's planner is not thread-safe and fftw_plan_with_nthreads is global: planning and plan
 * destruction hold one process-wide lock. */
#include "internal.h"

#include "common/poisson_math.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Elements (batch × cells) from which the plan uses the context's threads. */
#define ADVI_POISSON_PARALLEL_MIN 32768

typedef struct cpu_poisson {
    void *work;               /* batch * cells elements of the plan's precision */
    void *cwork;              /* all-periodic path: batch * rows * (n_last/2 + 1) complex */
    int complex_path;         /* every axis periodic: r2c/c2r plans instead of r2r */
    void *forward, *backward; /* fftw_plan or fftwf_plan */
    double *eig[ADV_POISSON_MAX_DIM]; /* eigenvalues of -Δ_h along each axis */
    double inv_norm;          /* 1 / Π_a norm_a of the transform pairs */
    double *sum, *abs_sum;    /* per right-hand side: Σf and Σ|f| */
    int threads;
} cpu_poisson;

static pthread_once_t fftw_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fftw_planner_lock = PTHREAD_MUTEX_INITIALIZER;
static int fftw_threads_ready;

static void fftw_global_init(void) {
    fftw_threads_ready = fftw_init_threads() != 0 && fftwf_init_threads() != 0;
    // Protects the planner against other FFTW users in the same process as well.
    fftw_make_planner_thread_safe();
    fftwf_make_planner_thread_safe();
}

static void destroy_fftw_plan(adv_precision p, void *plan) {
    if (!plan) return;
    pthread_mutex_lock(&fftw_planner_lock);
    if (p == ADV_FLOAT64) fftw_destroy_plan((fftw_plan)plan);
    else fftwf_destroy_plan((fftwf_plan)plan);
    pthread_mutex_unlock(&fftw_planner_lock);
}

void advi_cpu_poisson_plan_fini(adv_poisson_plan *plan) {
    cpu_poisson *s = plan->backend_state;
    if (!s) return;
    adv_precision p = plan->desc.precision;
    destroy_fftw_plan(p, s->forward);
    destroy_fftw_plan(p, s->backward);
    for (int a = 0; a < ADV_POISSON_MAX_DIM; ++a) free(s->eig[a]);
    free(s->sum);
    free(s->abs_sum);
    advi_host_free(plan->ctx, s->work);
    advi_host_free(plan->ctx, s->cwork);
    free(s);
    plan->backend_state = NULL;
}

static fftw_r2r_kind kind_of(adv_boundary bc, int forward) {
    switch (bc) {
    case ADV_BC_NEUMANN: return forward ? FFTW_REDFT10 : FFTW_REDFT01;
    case ADV_BC_DIRICHLET: return forward ? FFTW_RODFT10 : FFTW_RODFT01;
    default: return FFTW_DHT; // its own inverse up to the factor n
    }
}

/* Creates the forward and backward batched plans: in place on s->work (r2r), or
 * s->work -> s->cwork -> s->work (all periodic). */
static adv_status make_fftw_plans(adv_poisson_plan *plan, cpu_poisson *s) {
    const adv_poisson_desc *d = &plan->desc;
    const int last = d->ndim - 1;
    const ptrdiff_t half = (ptrdiff_t)d->shape[last] / 2 + 1;
    fftw_iodim64 dims[ADV_POISSON_MAX_DIM], cdims[ADV_POISSON_MAX_DIM];
    fftw_r2r_kind fwd[ADV_POISSON_MAX_DIM], bwd[ADV_POISSON_MAX_DIM];
    ptrdiff_t stride = 1, cstride = 1; // real and half-spectrum strides, row-major
    for (int a = last; a >= 0; --a) {
        dims[a].n = cdims[a].n = (ptrdiff_t)d->shape[a];
        dims[a].is = dims[a].os = stride;
        cdims[a].is = stride;  // r2c: real input
        cdims[a].os = cstride; //      complex output
        stride *= (ptrdiff_t)d->shape[a];
        cstride *= a == last ? half : (ptrdiff_t)d->shape[a];
        fwd[a] = kind_of(d->bc[a], 1);
        bwd[a] = kind_of(d->bc[a], 0);
    }
    fftw_iodim64 bdims[ADV_POISSON_MAX_DIM]; // c2r: strides swapped
    for (int a = 0; a <= last; ++a) {
        bdims[a].n = cdims[a].n;
        bdims[a].is = cdims[a].os;
        bdims[a].os = cdims[a].is;
    }
    const ptrdiff_t B = (ptrdiff_t)d->batch;
    fftw_iodim64 howmany = {B, stride, stride};
    fftw_iodim64 howmany_r2c = {B, stride, cstride}, howmany_c2r = {B, cstride, stride};
    unsigned flags = d->effort == ADV_FFT_MEASURE ? FFTW_MEASURE : FFTW_ESTIMATE;
    const int n = d->ndim;

    pthread_mutex_lock(&fftw_planner_lock);
    if (d->precision == ADV_FLOAT64) {
        fftw_plan_with_nthreads(s->threads);
        if (s->complex_path) {
            s->forward = fftw_plan_guru64_dft_r2c(n, cdims, 1, &howmany_r2c, s->work, s->cwork,
                                                   flags);
            s->backward = fftw_plan_guru64_dft_c2r(n, bdims, 1, &howmany_c2r, s->cwork, s->work,
                                                    flags);
        } else {
            s->forward = fftw_plan_guru64_r2r(n, dims, 1, &howmany, s->work, s->work, fwd, flags);
            s->backward = fftw_plan_guru64_r2r(n, dims, 1, &howmany, s->work, s->work, bwd, flags);
        }
    } else {
        fftwf_plan_with_nthreads(s->threads);
        if (s->complex_path) {
            s->forward = fftwf_plan_guru64_dft_r2c(n, cdims, 1, &howmany_r2c, s->work, s->cwork,
                                                   flags);
            s->backward = fftwf_plan_guru64_dft_c2r(n, bdims, 1, &howmany_c2r, s->cwork, s->work,
                                                    flags);
        } else {
            s->forward = fftwf_plan_guru64_r2r(n, dims, 1, &howmany, s->work, s->work, fwd, flags);
            s->backward = fftwf_plan_guru64_r2r(n, dims, 1, &howmany, s->work, s->work, bwd, flags);
        }
    }
    pthread_mutex_unlock(&fftw_planner_lock);
    if (!s->forward || !s->backward)
        return advi_fail(plan->ctx, ADV_ERR_FFTW, "fftw%s_plan_guru64_%s returned NULL (%s plan)",
                         d->precision == ADV_FLOAT64 ? "" : "f",
                         s->complex_path ? "dft_r2c/c2r" : "r2r",
                         s->forward ? "backward" : "forward");
    return ADV_OK;
}

adv_status advi_cpu_poisson_plan_init(adv_poisson_plan *plan) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    pthread_once(&fftw_once, fftw_global_init);
    if (!fftw_threads_ready)
        return advi_fail(ctx, ADV_ERR_FFTW, "fftw_init_threads failed");

    cpu_poisson *s = calloc(1, sizeof *s);
    if (!s) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson CPU state");
    plan->backend_state = s;
    // Small grids run on one thread: waking a team costs more than the whole solve.
    s->threads = plan->cells * (size_t)d->batch >= ADVI_POISSON_PARALLEL_MIN
                     ? advi_cpu_threads(ctx)
                     : 1;
    s->complex_path = 1;
    for (int a = 0; a < d->ndim; ++a) s->complex_path &= d->bc[a] == ADV_BC_PERIODIC;
    const size_t es = advi_real_size(d->precision);
    size_t bytes = plan->cells * (size_t)d->batch * es;
    s->work = advi_host_alloc(ctx, bytes);
    int ok = s->work != NULL;
    if (s->complex_path) {
        const int64_t nl = d->shape[d->ndim - 1];
        size_t cbytes = plan->cells / (size_t)nl * (size_t)(nl / 2 + 1) * (size_t)d->batch * 2 * es;
        s->cwork = advi_host_alloc(ctx, cbytes);
        ok = ok && s->cwork;
        if (cbytes > bytes) bytes = cbytes;
    }
    s->sum = calloc((size_t)d->batch, sizeof *s->sum);
    s->abs_sum = calloc((size_t)d->batch, sizeof *s->abs_sum);
    ok = ok && s->sum && s->abs_sum;
    double norm = 1.0;
    for (int a = 0; a < d->ndim && ok; ++a) {
        const int64_t n = d->shape[a];
        s->eig[a] = malloc((size_t)n * sizeof(double));
        ok = s->eig[a] != NULL;
        for (int64_t k = 0; ok && k < n; ++k)
            s->eig[a][k] = advi_poisson_axis_eigenvalue((int)d->bc[a], k, n, d->spacing[a]);
        norm *= advi_poisson_axis_norm((int)d->bc[a], n);
    }
    if (!ok) {
        advi_cpu_poisson_plan_fini(plan);
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson workspace of %zu bytes", bytes);
    }
    s->inv_norm = 1.0 / norm;
    adv_status st = make_fftw_plans(plan, s);
    if (st != ADV_OK) advi_cpu_poisson_plan_fini(plan);
    return st;
}

/* load_f32/f64 and scale_f32/f64, written once in poisson_cpu_impl.h. */
#define REAL float
#define SFX f32
#include "cpu/poisson_cpu_impl.h"
#undef REAL
#undef SFX
#define REAL double
#define SFX f64
#include "cpu/poisson_cpu_impl.h"
#undef REAL
#undef SFX

adv_status advi_cpu_poisson_execute(adv_poisson_plan *plan, const void *f, void *u) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    cpu_poisson *s = plan->backend_state;
    const int f64 = d->precision == ADV_FLOAT64;
    const size_t n = plan->cells, es = advi_real_size(d->precision);
    const int want_mean = plan->singular && d->mean_policy == ADV_POISSON_REQUIRE_ZERO_MEAN;

    for (int64_t b = 0; b < d->batch; ++b) {
        const size_t off = (size_t)b * n;
        int bad = f64 ? load_f64((const double *)f + off, (double *)s->work + off, n,
                                 d->check_finite, want_mean, &s->sum[b], &s->abs_sum[b],
                                 s->threads)
                      : load_f32((const float *)f + off, (float *)s->work + off, n,
                                 d->check_finite, want_mean, &s->sum[b], &s->abs_sum[b],
                                 s->threads);
        if (bad)
            return advi_fail(ctx, ADV_ERR_NONFINITE, "f (right-hand side %lld) contains NaN or Inf",
                             (long long)b);
    }
    if (want_mean)
        for (int64_t b = 0; b < d->batch; ++b)
            if (fabs(s->sum[b]) > plan->mean_tolerance * s->abs_sum[b])
                return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                                 "f (right-hand side %lld) has mean %g but c = 0 with no Dirichlet "
                                 "axis needs zero mean (|sum f| > %g sum |f|); remove the mean or "
                                 "use ADV_POISSON_PROJECT_MEAN",
                                 (long long)b, s->sum[b] / (double)n, plan->mean_tolerance);

    // The r2r path scales real coefficients (one per element); the all-periodic path scales
    // complex ones (two reals each) over the half-spectrum of the last axis.
    const int64_t nl = d->shape[d->ndim - 1];
    const int64_t row_len = s->complex_path ? nl / 2 + 1 : nl, per = s->complex_path ? 2 : 1;
    if (f64) {
        fftw_execute((fftw_plan)s->forward);
        scale_f64(s->complex_path ? s->cwork : s->work, plan, s, row_len, per);
        fftw_execute((fftw_plan)s->backward);
    } else {
        fftwf_execute((fftwf_plan)s->forward);
        scale_f32(s->complex_path ? s->cwork : s->work, plan, s, row_len, per);
        fftwf_execute((fftwf_plan)s->backward);
    }
    memcpy(u, s->work, n * (size_t)d->batch * es);
    return ADV_OK;
}
