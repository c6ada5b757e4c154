/* CUDA backend of the fields' elementwise work: launches kernels/cuda/field.cu on the
 * context's device and stream (asynchronous; the caller's device is restored). Mirrors
 * host/cpu/field_cpu.c. */
#include "cuda_internal.h"
#include "sampling_cuda.h"
#include "../sampling_internal.h"

adv_status advi_cuda_field_scale(adv_context *ctx, adv_precision p, size_t count, void *out,
                                 double a, const void *in) {
    ADVI_CUDA_LAUNCH(ctx, "advk_field_scale",
           advk_field_scale(p == ADV_FLOAT64, count, out, a, in, advi_cuda_stream(ctx)));
}

adv_status advi_cuda_field_empirical_direct(adv_context *ctx, adv_precision p, int64_t n,
                                            int64_t d, const void *z, int64_t nd, const void *y,
                                            const void *logw, double a, double q,
                                            const double *avec, const double *qvec, void *den,
                                            double *tmp) {
    ADVI_CUDA_LAUNCH(ctx, "advk_empirical_direct",
           advk_empirical_direct(p == ADV_FLOAT64, n, d, z, nd, y, logw, a, q, avec, qvec, den, tmp,
                                 advi_cuda_stream(ctx)));
}

/* Per-particle times: the interaction engine's per-row mode (the direct kernel, or the GEMM
 * path for d >= 64). */
adv_status advi_cuda_field_empirical_rows(adv_interaction_plan *plan, int64_t n, const void *z,
                                          const void *y, const void *logw, const double *avec,
                                          const double *qvec, void *den, double *tmp) {
    (void)tmp;
    return advi_cuda_interaction_rows(plan, n, z, y, logw, avec, qvec, den);
}

adv_status advi_cuda_field_time_coefs(adv_context *ctx, int64_t n, const double *times, int kind,
                                      double p0, double p1, double sigma, double *out) {
    ADVI_CUDA_LAUNCH(ctx, "advk_time_coefs",
           advk_time_coefs(n, times, kind, p0, p1, sigma, ADVI_LAMBDA_DIRECT, out,
                           advi_cuda_stream(ctx)));
}

adv_status advi_cuda_field_gauss(adv_context *ctx, adv_precision p, int kind, const double *par,
                                 int64_t d, int64_t k0, int64_t k1, int any_regular, int64_t n,
                                 const void *z, double t, const double *tvec, void *vel,
                                 void *score, void *den, double *tmp) {
    ADVI_CUDA_LAUNCH(ctx, "advk_gauss_field",
           advk_gauss_field(p == ADV_FLOAT64, kind, par, d, k0, k1, any_regular, n, z, t, tvec, vel,
                            score, den, tmp, advi_cuda_stream(ctx)));
}

adv_status advi_cuda_field_sample(adv_context *ctx, adv_precision p, int kind, const double *par,
                                  int64_t d, int64_t k0, int64_t k1, int64_t n, double t,
                                  uint64_t seed, int64_t first, const void *y, const double *cdf,
                                  int64_t nd, double a, double bs, void *z, double *tmp) {
    ADVI_CUDA_LAUNCH(ctx, "advk_field_sample",
           advk_field_sample(p == ADV_FLOAT64, kind, par, d, k0, k1, n, t, seed, first, y, cdf, nd,
                             a, bs, z, tmp, advi_cuda_stream(ctx)));
}
