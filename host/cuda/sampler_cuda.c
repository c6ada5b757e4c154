/* CUDA backend of the samplers' elementwise operations (advi_sampling_ops): launches
 * kernels/cuda/sampler.cu on the context's device and stream (asynchronous; the caller's
 * device is restored), and the table that host/field.c and host/sampler.c dispatch through.
 * Mirrors host/cpu/sampler_cpu.c. */
#include "cuda_internal.h"
#include "sampling_cuda.h"
#include "../sampling_internal.h"

adv_status advi_cuda_field_scale(adv_context *ctx, adv_precision p, size_t count, void *out,
                                 double a, const void *in);
adv_status advi_cuda_field_empirical_direct(adv_context *ctx, adv_precision p, int64_t n,
                                            int64_t d, const void *z, int64_t nd, const void *y,
                                            const void *logw, double a, double q,
                                            const double *avec, const double *qvec, void *den,
                                            double *tmp);
adv_status advi_cuda_field_empirical_rows(adv_interaction_plan *plan, int64_t n, const void *z,
                                          const void *y, const void *logw, const double *avec,
                                          const double *qvec, void *den, double *tmp);
adv_status advi_cuda_field_time_coefs(adv_context *ctx, int64_t n, const double *times, int kind,
                                      double p0, double p1, double sigma, double *out);
adv_status advi_cuda_field_gauss(adv_context *ctx, adv_precision p, int kind, const double *par,
                                 int64_t d, int64_t k0, int64_t k1, int any_regular, int64_t n,
                                 const void *z, double t, const double *tvec, void *vel,
                                 void *score, void *den, double *tmp);
adv_status advi_cuda_field_sample(adv_context *ctx, adv_precision p, int kind, const double *par,
                                  int64_t d, int64_t k0, int64_t k1, int64_t n, double t,
                                  uint64_t seed, int64_t first, const void *y, const double *cdf,
                                  int64_t nd, double a, double bs, void *z, double *tmp);

static adv_status cuda_lincomb(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *out,
                               double cb, const void *base, double h, const double *hvec, int nb,
                               const double *c, const void *const *bufs) {
    if (nb < 0 || nb > ADVK_LINCOMB_MAX)
        return advi_fail(ctx, ADV_ERR_INTERNAL, "linear combination of %d terms", nb);
    advk_lincomb_terms terms;
    terms.nb = nb;
    for (int j = 0; j < ADVK_LINCOMB_MAX; ++j) {
        terms.c[j] = j < nb ? c[j] : 0.0;
        terms.bufs[j] = j < nb ? bufs[j] : NULL;
    }
    ADVI_CUDA_LAUNCH(ctx, "advk_lincomb",
           advk_lincomb(p == ADV_FLOAT64, n, d, out, cb, base, h, hvec, terms, advi_cuda_stream(ctx)));
}

static adv_status cuda_lincomb_pp(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                  void *out, const double *alpha, const void *base,
                                  const double *beta, const void *buf) {
    ADVI_CUDA_LAUNCH(ctx, "advk_lincomb_pp",
           advk_lincomb_pp(p == ADV_FLOAT64, n, d, out, alpha, base, beta, buf, advi_cuda_stream(ctx)));
}

static adv_status cuda_add_noise(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *z,
                                 double scale, uint64_t seed, uint32_t stage, uint32_t step,
                                 int64_t first) {
    ADVI_CUDA_LAUNCH(ctx, "advk_add_noise",
           advk_add_noise(p == ADV_FLOAT64, n, d, z, scale, seed, stage, step, first, advi_cuda_stream(ctx)));
}

static adv_status cuda_rms_norm(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                const void *x, const void *y, const void *y2, double atol,
                                double rtol, double *out) {
    ADVI_CUDA_LAUNCH(ctx, "advk_rms_norm",
           advk_rms_norm(p == ADV_FLOAT64, n, d, x, y, y2, atol, rtol, out, advi_cuda_stream(ctx)));
}

static adv_status cuda_copy_rows(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                 void *dst, const int64_t *dst_idx, const void *src,
                                 const int64_t *src_idx, const unsigned char *mask) {
    ADVI_CUDA_LAUNCH(ctx, "advk_copy_rows",
           advk_copy_rows(p == ADV_FLOAT64, n, d, dst, dst_idx, src, src_idx, mask,
                          advi_cuda_stream(ctx)));
}

const advi_sampling_ops *advi_cuda_sampling_ops(void) {
    static const advi_sampling_ops ops = {
        cuda_lincomb,          cuda_lincomb_pp,
        cuda_add_noise,        cuda_rms_norm,
        cuda_copy_rows,        advi_cuda_field_scale,
        advi_cuda_field_empirical_direct, advi_cuda_field_empirical_rows,
        advi_cuda_field_time_coefs, advi_cuda_field_gauss,
        advi_cuda_field_sample};
    return &ops;
}
