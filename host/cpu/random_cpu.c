/* CPU backend: random fills and finiteness checks. Draws come from kernels/common/rng.h, the
 * function the CUDA kernels call, so values do not depend on threads or backend. */
#include "internal.h"
#include "common/rng.h"

#include <math.h>

adv_status advi_cpu_random_fill(adv_context *ctx, adv_precision precision, int normal,
                                uint64_t seed, uint32_t stream, uint64_t first_index,
                                uint32_t counter, int64_t n, void *out) {
    const int threads = advi_cpu_threads(ctx);
    if (precision == ADV_FLOAT32) {
        float *o = out;
#pragma omp parallel for schedule(static) num_threads(threads) if (n > 16384)
        for (int64_t i = 0; i < n; ++i)
            o[i] = adv_rng_draw_f32(normal, seed, stream, first_index + (uint64_t)i, counter);
    } else {
        double *o = out;
#pragma omp parallel for schedule(static) num_threads(threads) if (n > 16384)
        for (int64_t i = 0; i < n; ++i)
            o[i] = adv_rng_draw_f64(normal, seed, stream, first_index + (uint64_t)i, counter);
    }
    return ADV_OK;
}

int advi_cpu_all_finite(adv_context *ctx, adv_precision precision, const void *data,
                        size_t count, int allow_neg_inf, double *max_abs) {
    const int threads = advi_cpu_threads(ctx);
    int bad = 0;
    double vmax = 0.0;
    if (precision == ADV_FLOAT32) {
        const float *p = data;
#pragma omp parallel for reduction(| : bad) reduction(max : vmax) schedule(static) \
    num_threads(threads) if (count > 65536)
        for (size_t i = 0; i < count; ++i) {
            const int finite = isfinite(p[i]);
            bad |= !(finite || (allow_neg_inf && p[i] == -INFINITY));
            if (finite && fabsf(p[i]) > vmax) vmax = fabsf(p[i]);
        }
    } else {
        const double *p = data;
#pragma omp parallel for reduction(| : bad) reduction(max : vmax) schedule(static) \
    num_threads(threads) if (count > 65536)
        for (size_t i = 0; i < count; ++i) {
            const int finite = isfinite(p[i]);
            bad |= !(finite || (allow_neg_inf && p[i] == -INFINITY));
            if (finite && fabs(p[i]) > vmax) vmax = fabs(p[i]);
        }
    }
    if (max_abs) *max_abs = vmax;
    return !bad;
}
