/* CUDA backend of the Benamou-Brenier solver; mirrors host/cpu/bbot_cpu.c. Each grid
 * operation of host/bbot_internal.h launches the kernels of kernels/cuda/bbot.cu on the
 * context's stream, inside a guard that switches to the context's device and restores the
 * caller's. The accumulators live in device memory (one array of ADVI_BBOT_NSUMS doubles);
 * sums_fetch copies them back and synchronises the stream: once per iteration. The Thomas
 * factors of every component are computed on the host at plan creation and uploaded. */
#include "cuda_internal.h"
#include "bbot_internal.h"
#include "bbot_kernels.h"

#include <stdlib.h>
#include <string.h>

typedef struct cuda_bbot {
    double *sums;      /* device: ADVI_BBOT_NSUMS accumulators */
    double *factors;   /* device: per component, cp then inv, L_c + 1 doubles each */
    int64_t foff[ADVK_BBOT_MAX_COMP];
    double *face_mass; /* device: P + 1 doubles */
} cuda_bbot;

// The kernels' slot numbers are the host's accumulator indices.
_Static_assert(ADVK_BBOT_SLOT_COST == ADVI_BBOT_SUM_COST && ADVK_BBOT_SLOT_DIV2 == ADVI_BBOT_SUM_DIV2 &&
                   ADVK_BBOT_SLOT_D2 == ADVI_BBOT_SUM_D2 && ADVK_BBOT_SLOT_X1SQ == ADVI_BBOT_SUM_X1SQ &&
                   ADVK_BBOT_SLOT_MASS == ADVI_BBOT_SUM_MASS &&
                   ADVK_BBOT_SLOT_MASS2 == ADVI_BBOT_SUM_MASS2 &&
                   ADVK_BBOT_SLOT_BAD == ADVI_BBOT_SUM_BAD && ADVK_BBOT_SLOT_NEG == ADVI_BBOT_SUM_NEG &&
                   ADVK_BBOT_SLOT_PATH == ADVI_BBOT_SUM_PATH,
               "accumulator slots differ between host/bbot_internal.h and bbot_kernels.h");

static cuda_bbot *state_of(adv_bbot_plan *p) { return p->backend; }
static int prec(const adv_bbot_plan *p) { return p->opts.precision == ADV_FLOAT64 ? 1 : 0; }

/* Runs `call` (a cudaError_t expression) on the context's device. */
#define ON_DEVICE(p, what, call)                                                      \
    do {                                                                              \
        advi_device_guard g_;                                                         \
        adv_status st_ = advi_device_enter((p)->ctx, (p)->ctx->device_id, &g_);       \
        if (st_ != ADV_OK) return st_;                                                \
        cudaError_t err_ = (call);                                                    \
        advi_device_leave(&g_);                                                       \
        if (err_ != cudaSuccess) return advi_cuda_error((p)->ctx, err_, (what));      \
    } while (0)

static void cuda_fini(adv_bbot_plan *p) {
    cuda_bbot *s = state_of(p);
    if (!s) return;
    if (s->sums) (void)advi_cuda_free(p->ctx, s->sums);
    if (s->factors) (void)advi_cuda_free(p->ctx, s->factors);
    if (s->face_mass) (void)advi_cuda_free(p->ctx, s->face_mass);
    free(s);
    p->backend = NULL;
}

static adv_status cuda_init(adv_bbot_plan *p) {
    adv_context *ctx = p->ctx;
    const advk_bbot_grid *g = &p->grid;
    cuda_bbot *s = calloc(1, sizeof *s);
    if (!s) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Benamou-Brenier CUDA state");
    p->backend = s;
    int64_t total = 0;
    for (int c = 0; c <= g->d; ++c) {
        s->foff[c] = total;
        total += 2 * (g->L[c] + 1);
    }
    double *host = malloc((size_t)total * sizeof *host);
    if (!host) {
        cuda_fini(p);
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Thomas factors");
    }
    for (int c = 0; c <= g->d; ++c)
        advk_bbot_thomas_factors(g->L[c], host + s->foff[c], host + s->foff[c] + g->L[c] + 1);
    adv_status st = advi_cuda_malloc(ctx, ADVI_BBOT_NSUMS * sizeof(double), (void **)&s->sums);
    if (st == ADV_OK)
        st = advi_cuda_malloc(ctx, (size_t)total * sizeof(double), (void **)&s->factors);
    if (st == ADV_OK)
        st = advi_cuda_malloc(ctx, (size_t)(g->P + 1) * sizeof(double), (void **)&s->face_mass);
    if (st == ADV_OK)
        st = advi_cuda_memcpy(ctx, s->factors, host, (size_t)total * sizeof(double),
                              ADV_COPY_HOST_TO_CONTEXT);
    free(host);
    if (st != ADV_OK) cuda_fini(p);
    return st;
}

static adv_status cuda_sums_reset(adv_bbot_plan *p) {
    ON_DEVICE(p, "cudaMemsetAsync (accumulators)",
              cudaMemsetAsync(state_of(p)->sums, 0, ADVI_BBOT_NSUMS * sizeof(double),
                              advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

static adv_status cuda_sums_fetch(adv_bbot_plan *p, double *out) {
    return advi_cuda_memcpy(p->ctx, out, state_of(p)->sums, ADVI_BBOT_NSUMS * sizeof(double),
                            ADV_COPY_CONTEXT_TO_HOST);
}

static adv_status cuda_input_stats(adv_bbot_plan *p, const void *rho, double scale) {
    ON_DEVICE(p, "advk_bbot_input_stats",
              advk_bbot_input_stats(prec(p), rho, p->grid.M, scale, state_of(p)->sums,
                                    advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

static adv_status cuda_init_state(adv_bbot_plan *p, const void *rho0, const void *rho1, double s0,
                                  double s1, int warm) {
    ON_DEVICE(p, "advk_bbot_init_state",
              advk_bbot_init_state(prec(p), p->grid, p->bufs.z, rho0, rho1, s0, s1, warm,
                                   advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

static adv_status cuda_divergence(adv_bbot_plan *p, const void *state, void *q) {
    ON_DEVICE(p, "advk_bbot_divergence",
              advk_bbot_divergence(prec(p), p->grid, state, q, state_of(p)->sums,
                                   advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

static adv_status cuda_grad_update(adv_bbot_plan *p) {
    ON_DEVICE(p, "advk_bbot_grad_update",
              advk_bbot_grad_update(prec(p), p->grid, p->bufs.z, p->bufs.q, p->bufs.x1,
                                    advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

static adv_status cuda_prox(adv_bbot_plan *p, double gamma) {
    ON_DEVICE(p, "advk_bbot_prox",
              advk_bbot_prox(prec(p), p->grid, gamma, p->bufs.z, p->bufs.x1, state_of(p)->sums,
                             advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

/* The line projection of every component; with q, each forms its x1.U = z.U + ∇q first. */
static cudaError_t lines_all(adv_bbot_plan *p, double mu, const double *q) {
    cuda_bbot *s = state_of(p);
    for (int c = 0; c <= p->grid.d; ++c) {
        const double *cp = s->factors + s->foff[c], *inv = cp + p->grid.L[c] + 1;
        cudaError_t err = advk_bbot_lines(prec(p), p->grid, c, cp, inv, mu, p->bufs.x2u,
                                          p->bufs.z, p->bufs.x1, q, s->sums,
                                          advi_cuda_stream(p->ctx));
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

static adv_status cuda_lines(adv_bbot_plan *p, double mu) {
    ON_DEVICE(p, "advk_bbot_lines", lines_all(p, mu, NULL));
    return ADV_OK;
}

/* The gradient update fused into the line projection where every component runs by tiles
 * (x1.U then never makes a round trip through memory between the two), else one after the
 * other. */
static adv_status cuda_grad_lines(adv_bbot_plan *p, double mu) {
    if (!advk_bbot_lines_fuse_grad(p->grid)) {
        adv_status st = cuda_grad_update(p);
        return st == ADV_OK ? cuda_lines(p, mu) : st;
    }
    ON_DEVICE(p, "advk_bbot_lines (with the gradient update)", lines_all(p, mu, p->bufs.q));
    return ADV_OK;
}

static cudaError_t finalise_all(adv_bbot_plan *p, double scale, double threshold, void *rho,
                                void *momentum, void *velocity, double *face_mass) {
    cuda_bbot *s = state_of(p);
    const advk_bbot_grid *g = &p->grid;
    cudaStream_t stream = advi_cuda_stream(p->ctx);
    const size_t es = p->opts.precision == ADV_FLOAT64 ? 8 : 4;
    cudaError_t err = cudaMemsetAsync(s->face_mass, 0, (size_t)(g->P + 1) * sizeof(double), stream);
    if (err == cudaSuccess)
        err = advk_bbot_finalise(prec(p), *g, p->bufs.x1, scale, threshold, p->bufs.vel,
                                 momentum, s->face_mass, s->sums, stream);
    if (err == cudaSuccess && velocity)
        err = cudaMemcpyAsync(velocity, p->bufs.vel, (size_t)g->cells * (size_t)g->d * es,
                              cudaMemcpyDeviceToDevice, stream);
    if (err == cudaSuccess && rho)
        err = advk_bbot_scaled_copy(prec(p), rho, (const char *)p->bufs.x1 + (size_t)g->offU[0] * es,
                                    g->faces[0], scale, stream);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(face_mass, s->face_mass, (size_t)(g->P + 1) * sizeof(double),
                              cudaMemcpyDeviceToHost, stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
    if (err == cudaSuccess)
        for (int64_t j = 0; j <= g->P; ++j) face_mass[j] /= (double)g->M;
    return err;
}

static adv_status cuda_finalise(adv_bbot_plan *p, double scale, double threshold, void *rho,
                                void *momentum, void *velocity, double *face_mass) {
    ON_DEVICE(p, "advk_bbot_finalise",
              finalise_all(p, scale, threshold, rho, momentum, velocity, face_mass));
    return ADV_OK;
}

static adv_status cuda_scaled_copy(adv_bbot_plan *p, void *dst, int64_t offset, int64_t count,
                                   double scale) {
    const size_t es = p->opts.precision == ADV_FLOAT64 ? 8 : 4;
    ON_DEVICE(p, "advk_bbot_scaled_copy",
              advk_bbot_scaled_copy(prec(p), dst, (const char *)p->bufs.x1 + (size_t)offset * es,
                                    count, scale, advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

static adv_status cuda_velocity_eval(adv_bbot_plan *p, double t, const void *times, int64_t n,
                                     const void *x, void *v) {
    ON_DEVICE(p, "advk_bbot_velocity_eval",
              advk_bbot_velocity_eval(prec(p), p->grid, p->bufs.vel, t, times, n, x, v,
                                      advi_cuda_stream(p->ctx)));
    return ADV_OK;
}

static const advi_bbot_ops cuda_ops = {
    .init = cuda_init,
    .fini = cuda_fini,
    .sums_reset = cuda_sums_reset,
    .sums_fetch = cuda_sums_fetch,
    .input_stats = cuda_input_stats,
    .init_state = cuda_init_state,
    .divergence = cuda_divergence,
    .grad_update = cuda_grad_update,
    .prox = cuda_prox,
    .lines = cuda_lines,
    .grad_lines = cuda_grad_lines,
    .finalise = cuda_finalise,
    .scaled_copy = cuda_scaled_copy,
    .velocity_eval = cuda_velocity_eval,
};

const advi_bbot_ops *advi_cuda_bbot_ops(void) { return &cuda_ops; }
