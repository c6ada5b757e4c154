/* Public random-number entry points: argument checks and dispatch. The draw itself is
 * kernels/common/rng.h, the same function on both backends. */
#include "internal.h"
#include "../kernels/common/rng.h"

adv_status adv_random_fill(adv_context *ctx, adv_precision precision, adv_distribution dist,
                           uint64_t seed, uint32_t stream, uint64_t first_index, uint32_t counter,
                           int64_t n, void *out) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (!out) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "out is NULL");
    if (n < 1) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n is %lld, must be >= 1", (long long)n);
    if ((uint64_t)n > SIZE_MAX / 8) // no array of n values fits the address space
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n is %lld, too large", (long long)n);
    if (precision != ADV_FLOAT32 && precision != ADV_FLOAT64)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "precision %d is not a precision", precision);
    if (dist != ADV_UNIFORM && dist != ADV_NORMAL)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "distribution %d is not known", dist);
    if (first_index > UINT64_MAX - (uint64_t)n)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "first_index + n overflows 64 bits");
    if (ctx->backend == ADV_BACKEND_CUDA)
        return advi_cuda_random_fill(ctx, precision, dist == ADV_NORMAL, seed, stream, first_index,
                                     counter, n, out);
    return advi_cpu_random_fill(ctx, precision, dist == ADV_NORMAL, seed, stream, first_index,
                                counter, n, out);
}

void adv_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    philox4x32_ctr_t c = {{counter[0], counter[1], counter[2], counter[3]}};
    philox4x32_key_t k = {{key[0], key[1]}};
    philox4x32_ctr_t r = philox4x32(c, k);
    for (int i = 0; i < 4; ++i) out[i] = r.v[i];
}
