/* Vectorised exp for the CPU interaction engine's explicit-vector loops (GCC/Clang vector
 * extensions: 64-byte vectors, lowered to AVX-512, AVX2 or SSE by each target clone), for
 * arguments x <= 0 only (scores minus their running maximum). Cephes-style range reduction
 * x = n ln2 + r, |r| <= ln2/2 (ln2 split in two for an exact n ln2), a polynomial in r by
 * plain Horner, and 2^n built from exponent bits.
 *  - Rounding to the nearest n uses the shifter trick: t = x log2(e) + 1.5·2^p puts n in the
 *    low mantissa bits, so 2^n comes from t's bits with an integer add and a shift (no
 *    float-to-int conversion, which AVX2 lacks for 64-bit lanes). The file must not be
 *    compiled with -fassociative-math, which would fold (t - shifter) back to x log2(e).
 *  - No clamping: lanes below the underflow threshold (including -Inf, whose intermediate
 *    values are garbage) are forced to exactly 0 by the final mask.
 * Accuracy: ~1.5 ulp in float (degree-5 minimax polynomial), ~1.3 ulp in double (degree-11
 * minimax polynomial). */
#ifndef ADVECT_HOST_CPU_VEXP_H
#define ADVECT_HOST_CPU_VEXP_H

#include <stdint.h>

typedef float adv_vf32 __attribute__((vector_size(64)));
typedef int32_t adv_vi32 __attribute__((vector_size(64)));
typedef double adv_vf64 __attribute__((vector_size(64)));
typedef int64_t adv_vi64 __attribute__((vector_size(64)));
/* Exponent assembly in unsigned lanes: masked-out lanes (x = -Inf, garbage t) wrap around
 * instead of overflowing a signed type. */
typedef uint32_t adv_vu32 __attribute__((vector_size(64)));
typedef uint64_t adv_vu64 __attribute__((vector_size(64)));

/* Below these arguments the result is exactly 0 (the normal range ends at 2^-126 / 2^-1022):
 * callers may skip work whose arguments all fall below them. */
#define ADV_VEXP_ZERO_BELOW_f32 (-87.33654f)
#define ADV_VEXP_ZERO_BELOW_f64 (-708.3964185322641)

static inline __attribute__((always_inline)) adv_vf32 adv_vexpv_f32(adv_vf32 x) {
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    const adv_vi32 keep = x >= ADV_VEXP_ZERO_BELOW_f32; /* all ones where the result is not 0 */
    const adv_vf32 t = x * 1.44269504088896341f + shifter;
    const adv_vf32 n = t - shifter;
    adv_vf32 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    /* relative-error minimax fit on |r| <= ln2/2 with 1 + r fixed: 0.89 ulp of float in
     * exact arithmetic, so degree 5 suffices (one FMA less per element than degree 6) */
    adv_vf32 p = (adv_vf32){0} + 8.312446065247059e-3f;
    p = p * r + 4.188990592956543e-2f;
    p = p * r + 1.6667114198207855e-1f;
    p = p * r + 4.9999234080314636e-1f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* bits(t) = bits(shifter) + n, so the biased exponent n + 127 is bits(t) - bits(shifter) + 127 */
    const adv_vu32 scale_bits = ((adv_vu32)t + (uint32_t)(127 - 0x4b400000)) << 23;
    return (adv_vf32)((adv_vi32)(p * (adv_vf32)scale_bits) & keep);
}

static inline __attribute__((always_inline)) adv_vf64 adv_vexpv_f64(adv_vf64 x) {
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
    const adv_vi64 keep = x >= ADV_VEXP_ZERO_BELOW_f64;
    const adv_vf64 t = x * 1.4426950408889634 + shifter;
    const adv_vf64 n = t - shifter;
    adv_vf64 r = x - n * 6.93145751953125e-1;
    r = r - n * 1.42860682030941723212e-6;
    /* relative-error minimax fit on |r| <= ln2/2 with 1 + r fixed: 0.03 ulp of double in
     * exact arithmetic (degree 11; the Taylor series needed degree 13) */
    adv_vf64 p = (adv_vf64){0} + 2.500009635115723e-08;
    p = p * r + 2.7630236861148136e-07;
    p = p * r + 2.7557586206860384e-06;
    p = p * r + 2.4801493127389595e-05;
    p = p * r + 1.9841269506820695e-04;
    p = p * r + 1.3888888943606793e-03;
    p = p * r + 8.333333333494331e-03;
    p = p * r + 4.166666666653023e-02;
    p = p * r + 1.6666666666666413e-01;
    p = p * r + 5.000000000000011e-01;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const adv_vu64 scale_bits = ((adv_vu64)t + (uint64_t)(1023 - 0x4338000000000000LL)) << 52;
    return (adv_vf64)((adv_vi64)(p * (adv_vf64)scale_bits) & keep);
}

#endif
