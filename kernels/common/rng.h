/* Counter-based random draws shared by CPU and CUDA: Random123's Philox4x32-10 keyed by
 * (seed, stream, index, counter) only. A draw with index i is lane (i mod L) of the Philox
 * block (i div L), L = 4 for float32 and 2 for float64, so every value is a pure function of
 * its key and index: no dependence on threads, chunking or backend. Uniforms are exact
 * integer-to-float conversions (bitwise identical everywhere); normals use Box-Muller, whose
 * log and cos come from the C library on the CPU and from CUDA's on the GPU: the same to a
 * last-bit difference (tests/conformance/random.c holds them to 1 ulp in float32, 128 ulps of
 * slack in float64). */
#ifndef ADVECT_KERNELS_COMMON_RNG_H
#define ADVECT_KERNELS_COMMON_RNG_H

#include "adv_hd.h"
#include <Random123/philox.h>

/* The Philox block for (seed, stream, block index, counter). */
ADV_HD philox4x32_ctr_t adv_rng_block(uint64_t seed, uint32_t stream, uint64_t block,
                                      uint32_t counter) {
    philox4x32_ctr_t ctr = {{(uint32_t)block, (uint32_t)(block >> 32), counter, stream}};
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    return philox4x32(ctr, key);
}

/* Uniform in (0, 1) from 23 bits: (k + 0.5) 2^-23 is exact in float and lies in
 * [2^-24, 1 - 2^-24], never 0 or 1 (with 24 bits the top value would round to 1). */
ADV_HD float adv_rng_u32_to_unit_f32(uint32_t x) {
    return ((float)(x >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

/* Uniform in (0, 1) from 52 bits of two words: (k + 0.5) 2^-52, exact in double. */
ADV_HD double adv_rng_u64_to_unit_f64(uint32_t hi, uint32_t lo) {
    uint64_t k = ((uint64_t)(hi >> 12) << 32) | (uint64_t)lo;
    return ((double)k + 0.5) * (1.0 / 4503599627370496.0);
}

/* Four float32 uniforms from one block. */
ADV_HD void adv_rng_uniform4_f32(uint64_t seed, uint32_t stream, uint64_t block,
                                 uint32_t counter, float u[4]) {
    philox4x32_ctr_t r = adv_rng_block(seed, stream, block, counter);
    for (int k = 0; k < 4; ++k) u[k] = adv_rng_u32_to_unit_f32(r.v[k]);
}

/* Two float64 uniforms from one block. */
ADV_HD void adv_rng_uniform2_f64(uint64_t seed, uint32_t stream, uint64_t block,
                                 uint32_t counter, double u[2]) {
    philox4x32_ctr_t r = adv_rng_block(seed, stream, block, counter);
    u[0] = adv_rng_u64_to_unit_f64(r.v[0], r.v[1]);
    u[1] = adv_rng_u64_to_unit_f64(r.v[2], r.v[3]);
}

/* Four float32 standard normals: Box-Muller on the pairs (u0, u1) and (u2, u3). The
 * transform is evaluated in double so the CPU and GPU libraries round the same way in
 * practice (results agree to the last float bit except in rare ties). */
ADV_HD void adv_rng_normal4_f32(uint64_t seed, uint32_t stream, uint64_t block,
                                uint32_t counter, float z[4]) {
    float u[4];
    adv_rng_uniform4_f32(seed, stream, block, counter, u);
    for (int k = 0; k < 4; k += 2) {
        double r = sqrt(-2.0 * log((double)u[k]));
        double a = 6.283185307179586 * (double)u[k + 1];
        z[k] = (float)(r * cos(a));
        z[k + 1] = (float)(r * sin(a));
    }
}

/* Two float64 standard normals: Box-Muller on one pair of 53-bit uniforms. */
ADV_HD void adv_rng_normal2_f64(uint64_t seed, uint32_t stream, uint64_t block,
                                uint32_t counter, double z[2]) {
    double u[2];
    adv_rng_uniform2_f64(seed, stream, block, counter, u);
    double r = sqrt(-2.0 * log(u[0]));
    double a = 6.283185307179586 * u[1];
    z[0] = r * cos(a);
    z[1] = r * sin(a);
}

/* Single draws by global index (lane of the block), as used by adv_random_fill. */
ADV_HD float adv_rng_draw_f32(int normal, uint64_t seed, uint32_t stream, uint64_t index,
                              uint32_t counter) {
    float v[4];
    if (normal)
        adv_rng_normal4_f32(seed, stream, index >> 2, counter, v);
    else
        adv_rng_uniform4_f32(seed, stream, index >> 2, counter, v);
    return v[index & 3];
}

ADV_HD double adv_rng_draw_f64(int normal, uint64_t seed, uint32_t stream, uint64_t index,
                               uint32_t counter) {
    double v[2];
    if (normal)
        adv_rng_normal2_f64(seed, stream, index >> 1, counter, v);
    else
        adv_rng_uniform2_f64(seed, stream, index >> 1, counter, v);
    return v[index & 1];
}

#endif
