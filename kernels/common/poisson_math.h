/* Per-element math of the Poisson plan (spec math.md §4), shared by the CPU backend
 * (host/cpu/poisson_cpu.c) and the CUDA kernels (kernels/cuda/poisson.cu): the eigenvalue of
 * the 1-D operator -Δ_h along one axis for each boundary condition, the normalisation of each
 * unnormalised forward/backward transform pair, and the diagonal scaling factor.
 * Boundary codes are those of adv_boundary: 0 periodic, 1 Neumann, 2 Dirichlet. */
#ifndef ADVECT_KERNELS_COMMON_POISSON_MATH_H
#define ADVECT_KERNELS_COMMON_POISSON_MATH_H

#include "adv_hd.h"

#define ADVI_POISSON_PERIODIC 0
#define ADVI_POISSON_NEUMANN 1
#define ADVI_POISSON_DIRICHLET 2

/* Eigenvalue (2 - 2cos θ_k)/h² of mode k (0 <= k < n) along an axis of n cells, with
 * θ_k = 2πk/n (periodic), πk/n (Neumann), π(k+1)/n (Dirichlet). Written as 4 sin²(θ/2)/h²:
 * 2 - 2cos θ cancels catastrophically for small θ (relative error ~ eps/θ², 1e-11 at
 * n = 1024), the sine form is accurate to a few ulps for every mode. */
ADV_HD double advi_poisson_axis_eigenvalue(int bc, int64_t k, int64_t n, double h) {
    const double pi = 3.141592653589793238462643383279502884;
    double half_theta;
    if (bc == ADVI_POISSON_PERIODIC) half_theta = pi * (double)k / (double)n;
    else if (bc == ADVI_POISSON_NEUMANN) half_theta = 0.5 * pi * (double)k / (double)n;
    else half_theta = 0.5 * pi * (double)(k + 1) / (double)n;
    double s = sin(half_theta);
    return 4.0 * s * s / (h * h);
}

/* Product of one forward and one backward unnormalised transform along an axis of n cells:
 * the DHT applied twice gives n·I; the FFTW pairs REDFT10/REDFT01 (DCT-II/DCT-III) and
 * RODFT10/RODFT01 (DST-II/DST-III) give 2n·I. */
ADV_HD double advi_poisson_axis_norm(int bc, int64_t n) {
    return bc == ADVI_POISSON_PERIODIC ? (double)n : 2.0 * (double)n;
}

/* Factor applied to one transformed coefficient: 1/(λ · norm), where λ = c + Σ_a λ_a is the
 * eigenvalue of c - Δ_h for that mode. λ is exactly 0 only for the zero mode of a singular
 * problem (c = 0, all axes periodic/Neumann, every k_a = 0: sin(0) = 0 exactly); that mode is
 * set to 0, which returns the zero-mean solution (and removes the mean of f). */
ADV_HD double advi_poisson_scale(double lambda, double inv_norm) {
    return lambda > 0.0 ? inv_norm / lambda : 0.0;
}

#endif
