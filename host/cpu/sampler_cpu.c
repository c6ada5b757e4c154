/* CPU backend of the samplers' elementwise operations (advi_sampling_ops): linear
 * combinations of stage buffers, SDE noise, the controller's scaled norms and masked copies,
 * one particle row per call of a kernels/common/sampler_math.h function (the CUDA kernels call
 * the same ones). OpenMP over particles; a row's result never depends on the thread count. */
#include "sampling_internal.h"
#include "common/sampler_math.h"

#include <string.h>

static adv_status cpu_lincomb(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *out,
                              double cb, const void *base, double h, const double *hvec, int nb,
                              const double *c, const void *const *bufs) {
    const int prec = p == ADV_FLOAT64;
#pragma omp parallel for schedule(static) num_threads(advi_cpu_threads(ctx)) if (n * d > 16384)
    for (int64_t i = 0; i < n; ++i)
        advs_lincomb_row(prec, d, i, out, cb, base, hvec ? hvec[i] : h, nb, c, bufs);
    return ADV_OK;
}

static adv_status cpu_lincomb_pp(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                 void *out, const double *alpha, const void *base,
                                 const double *beta, const void *buf) {
    const int prec = p == ADV_FLOAT64;
#pragma omp parallel for schedule(static) num_threads(advi_cpu_threads(ctx)) if (n * d > 16384)
    for (int64_t i = 0; i < n; ++i) {
        const void *bufs[1] = {buf};
        advs_lincomb_row(prec, d, i, out, alpha[i], base, 1.0, 1, &beta[i], bufs);
    }
    return ADV_OK;
}

static adv_status cpu_add_noise(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *z,
                                double scale, uint64_t seed, uint32_t stage, uint32_t step,
                                int64_t first) {
    const int prec = p == ADV_FLOAT64;
#pragma omp parallel for schedule(static) num_threads(advi_cpu_threads(ctx)) if (n * d > 16384)
    for (int64_t i = 0; i < n; ++i)
        advs_noise_row(prec, d, i, z, scale, seed, stage, step, (uint64_t)(first + i));
    return ADV_OK;
}

static adv_status cpu_rms_norm(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                               const void *x, const void *y, const void *y2, double atol,
                               double rtol, double *out) {
    const int prec = p == ADV_FLOAT64;
#pragma omp parallel for schedule(static) num_threads(advi_cpu_threads(ctx)) if (n * d > 16384)
    for (int64_t i = 0; i < n; ++i) out[i] = advs_rms_row(prec, d, i, x, y, y2, atol, rtol);
    return ADV_OK;
}

static adv_status cpu_copy_rows(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                void *dst, const int64_t *dst_idx, const void *src,
                                const int64_t *src_idx, const unsigned char *mask) {
    const size_t row = (size_t)d * advi_real_size(p);
#pragma omp parallel for schedule(static) num_threads(advi_cpu_threads(ctx)) if (n * d > 16384)
    for (int64_t r = 0; r < n; ++r) {
        if (mask && !mask[r]) continue;
        const size_t to = (size_t)(dst_idx ? dst_idx[r] : r), from = (size_t)(src_idx ? src_idx[r] : r);
        memcpy((char *)dst + to * row, (const char *)src + from * row, row);
    }
    return ADV_OK;
}

const advi_sampling_ops *advi_cpu_sampling_ops(void) {
    static const advi_sampling_ops ops = {
        cpu_lincomb,          cpu_lincomb_pp,
        cpu_add_noise,        cpu_rms_norm,
        cpu_copy_rows,        advi_cpu_field_scale,
        advi_cpu_field_empirical_direct, advi_cpu_field_empirical_rows,
        advi_cpu_field_time_coefs, advi_cpu_field_gauss,
        advi_cpu_field_sample};
    return &ops;
}
