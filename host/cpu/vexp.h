/* Vectorisable exp for the CPU backend's hot loops: branch-free Cephes-style range
 * reduction (x = n ln2 + r, |r| <= ln2/2), a polynomial in r, and 2^n built from the
 * exponent bits, so GCC turns a loop of calls into SIMD code (libm's exp is a call per
 * element). Accuracy: ~1-2 ulp in float, ~1-2 ulp in double. Inputs below the underflow
 * threshold (including -Inf) return exactly 0; inputs are clamped above the overflow
 * threshold. */
#ifndef ADVECT_HOST_CPU_VEXP_H
#define ADVECT_HOST_CPU_VEXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float adv_vexp_f32(float x) {
    const float lo = -87.33654f, hi = 88.0f;
    float xc = x < lo ? lo : (x > hi ? hi : x);
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float result = p * scale;
    return x < lo ? 0.0f : result;
}

static inline __attribute__((always_inline)) double adv_vexp_f64(double x) {
    const double lo = -708.3964185322641, hi = 709.0;
    double xc = x < lo ? lo : (x > hi ? hi : x);
    double n = floor(xc * 1.4426950408889634 + 0.5);
    double r = xc - n * 6.93145751953125e-1;
    r = r - n * 1.42860682030941723212e-6;
    // Taylor series to r^13/13!: truncation error < 2e-17 for |r| <= ln2/2.
    double p = 1.6059043836821614e-10;
    p = p * r + 2.08767569878681e-9;
    p = p * r + 2.505210838544172e-8;
    p = p * r + 2.755731922398589e-7;
    p = p * r + 2.7557319223985893e-6;
    p = p * r + 2.48015873015873e-5;
    p = p * r + 1.984126984126984e-4;
    p = p * r + 1.3888888888888889e-3;
    p = p * r + 8.333333333333333e-3;
    p = p * r + 4.1666666666666664e-2;
    p = p * r + 1.6666666666666666e-1;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    // n is in [-1022, 1023] after clamping, so the biased exponent stays in range.
    int64_t bits = ((int64_t)n + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    double result = p * scale;
    return x < lo ? 0.0 : result;
}

#endif
