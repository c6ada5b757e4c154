/* Per-element math of the samplers (spec math.md §3), shared by the CPU backend
 * (host/cpu/sampler_cpu.c) and the CUDA kernels (kernels/cuda/sampler.cu): the Butcher
 * tableaux, one particle row of a linear combination of stage buffers, the scaled RMS norm of
 * the step-size controller, and the SDE noise keyed by (seed, particle, step, stage,
 * dimension). Rows are combined in double and rounded once, so every backend and every
 * chunking computes the same bits for a particle. */
#ifndef ADVECT_KERNELS_COMMON_SAMPLER_MATH_H
#define ADVECT_KERNELS_COMMON_SAMPLER_MATH_H

#include "field_math.h"

#define ADVS_MAX_TERMS 8

/* Row i: out = cb * base + s * sum_j c[j] * buf[j] (base may be NULL). out may alias base or
 * a buffer: each element is read before it is written. */
ADV_HD void advs_lincomb_row(int prec, int64_t d, int64_t i, void *out, double cb,
                             const void *base, double s, int nb, const double *c,
                             const void *const *bufs) {
    for (int64_t k = 0; k < d; ++k) {
        double acc = 0.0;
        for (int j = 0; j < nb; ++j) acc += c[j] * advf_ld(bufs[j], prec, i * d + k);
        double v = s * acc;
        if (base) v += cb * advf_ld(base, prec, i * d + k);
        advf_st(out, prec, i * d + k, v);
    }
}

/* Scaled RMS norm of row i of x: sqrt(mean_k (x_k / (atol + rtol max(|y_k|, |y2_k|)))^2);
 * y2 may be NULL. NaN in x gives NaN (the controller rejects it). */
ADV_HD double advs_rms_row(int prec, int64_t d, int64_t i, const void *x, const void *y,
                           const void *y2, double atol, double rtol) {
    double acc = 0.0;
    for (int64_t k = 0; k < d; ++k) {
        double sc = fabs(advf_ld(y, prec, i * d + k));
        if (y2) {
            double s2 = fabs(advf_ld(y2, prec, i * d + k));
            sc = s2 > sc ? s2 : sc;
        }
        double e = advf_ld(x, prec, i * d + k) / (atol + rtol * sc);
        acc += e * e;
    }
    return sqrt(acc / (double)d);
}

/* Row i (global particle index `particle`): z += scale * xi, xi the standard normals of
 * (seed, particle, step, stage, dimension). */
ADV_HD void advs_noise_row(int prec, int64_t d, int64_t i, void *z, double scale, uint64_t seed,
                           uint32_t stage, uint32_t step, uint64_t particle) {
    const uint64_t nb = (uint64_t)((d + 1) / 2);
    for (int64_t k = 0; k < d; k += 2) {
        double v[2];
        adv_rng_normal2_f64(seed, ADVF_STREAM_SDE | stage, particle * nb + (uint64_t)(k / 2), step,
                            v);
        advf_st(z, prec, i * d + k, advf_ld(z, prec, i * d + k) + scale * v[0]);
        if (k + 1 < d)
            advf_st(z, prec, i * d + k + 1, advf_ld(z, prec, i * d + k + 1) + scale * v[1]);
    }
}

#ifndef __CUDACC__
/* Explicit Runge-Kutta tableaux (host only: the coefficients reach the kernels as arguments).
 * e = b - b_hat is the embedded error weights of Dormand-Prince 5(4) (FSAL: stage 7 is
 * evaluated at the new point, c7 = 1, a7 = b). */
typedef struct advs_tableau {
    int stages;
    double c[7];
    double a[7][7];
    double b[7];
    double e[7];
} advs_tableau;

static const advs_tableau advs_euler = {1, {0}, {{0}}, {1}, {0}};
static const advs_tableau advs_heun = {2, {0, 1}, {{0}, {1}}, {0.5, 0.5}, {0}};
static const advs_tableau advs_midpoint = {2, {0, 0.5}, {{0}, {0.5}}, {0, 1}, {0}};
static const advs_tableau advs_rk4 = {
    4, {0, 0.5, 0.5, 1}, {{0}, {0.5}, {0, 0.5}, {0, 0, 1}}, {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}, {0}};
static const advs_tableau advs_dopri5 = {
    7,
    {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1},
    {{0},
     {1.0 / 5},
     {3.0 / 40, 9.0 / 40},
     {44.0 / 45, -56.0 / 15, 32.0 / 9},
     {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
     {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
     {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0},
    {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40}};
#endif

#endif
