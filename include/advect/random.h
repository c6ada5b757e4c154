/* advect random numbers: Philox4x32-10 (Random123), counter-based. Every draw is a pure
 * function of (seed, stream, index, counter), so results never depend on thread count or
 * chunking. Across backends, uniforms are bitwise identical (exact integer-to-float
 * conversions); normals (Box-Muller) go through each platform's log and cos, so the CPU's and
 * the GPU's may differ in the last bit: within 1 float32 ulp (computed in double, then
 * rounded) or a few float64 ulps. */
#ifndef ADVECT_RANDOM_H
#define ADVECT_RANDOM_H

#include "advect/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum adv_distribution { ADV_UNIFORM = 0, ADV_NORMAL = 1 } adv_distribution;

/* Fills out[i] (i < n, in the context's memory space) with the draw keyed by
 * (seed, stream, first_index + i, counter): uniform on the open interval (0, 1) or standard
 * normal. CPU: synchronous; CUDA: asynchronous on the context's stream. */
ADV_API adv_status adv_random_fill(adv_context *ctx, adv_precision precision,
                                   adv_distribution dist, uint64_t seed, uint32_t stream,
                                   uint64_t first_index, uint32_t counter, int64_t n, void *out);

/* The raw generator, for known-answer checks: out = Philox4x32-10(counter, key). */
ADV_API void adv_philox4x32_10(const uint32_t counter[4], const uint32_t key[2],
                               uint32_t out[4]);

#ifdef __cplusplus
}
#endif
#endif
