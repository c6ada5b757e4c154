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

/* ---- Real transforms from complex DFTs (Makhoul 1980) ----
 * DCT-II (Neumann), DST-II (Dirichlet) and the DHT (periodic) of a real line x of n points
 * come from its complex DFT V:
 *   Neumann:   reorder v_m = x_{2m} (m < ⌈n/2⌉), v_{n-1-m} = x_{2m+1}; V = DFT(v);
 *              X_k = 2 Re(w^k V_k), w = e^{-iπ/(2n)}                 (= FFTW REDFT10)
 *   Dirichlet: the same of (-1)^j x_j gives the DST-II in reverse order, X_k = DST(x)_{n-1-k}
 *   periodic:  no reordering; X_k = Re V_k - Im V_k                  (= FFTW_DHT)
 * and the inverses (DCT-III: V_k = w^{-k} (X_k - i X_{n-k}), X_n = 0, then the unnormalised
 * inverse DFT and the inverse reordering; the DHT is its own inverse) multiply by
 * advi_poisson_axis_norm. Since V_{n-k} = conj(V_k) for a real line, the two coefficients k
 * and n-k come from V_k alone. Written complex-linearly in the pair (Z_k, Z_{n-k}) they hold
 * for complex lines too, which gives two real lines for one complex DFT: with
 * Z = DFT(x + i y), the pair maps below return W_k = X_k + i Y_k and W_{n-k} = X_{n-k} +
 * i Y_{n-k}, X and Y the transforms of x and y, in place of (Z_k, Z_{n-k}); the inverse map
 * undoes it up to the factor of the pair (2 for Neumann/Dirichlet, 1 periodic). For a single
 * real line pass Z_{n-k} = conj(Z_k): then W_k is real and W_k = X_k.
 * c, s are cos and sin of πk/(2n) (advi_poisson_twiddle). Valid for 0 < k < n, k != n - k;
 * the self-paired modes k = 0 and k = n/2 take the real factor advi_poisson_self_factor. */

/* cos and sin of πk/(2n) (θ <= π/4 for k <= n/2, where both are accurate to an ulp). */
ADV_HD void advi_poisson_twiddle(int64_t k, int64_t n, double *c, double *s) {
    const double pi = 3.141592653589793238462643383279502884;
    const double theta = 0.5 * pi * (double)k / (double)n;
    *c = cos(theta);
    *s = sin(theta);
}

/* Forward pair map (see above): (ar, ai) = Z_k -> W_k, (br, bi) = Z_{n-k} -> W_{n-k}.
 * Neumann/Dirichlet: W_k = w^k Z_k + w^{-k} Z_{n-k}, W_{n-k} = i (w^k Z_k - w^{-k} Z_{n-k});
 * periodic: W_k = ((1+i) Z_k + (1-i) Z_{n-k})/2, W_{n-k} = ((1-i) Z_k + (1+i) Z_{n-k})/2. */
ADV_HD void advi_poisson_pair_forward(int bc, double c, double s, double *ar, double *ai,
                                      double *br, double *bi) {
    const double xr = *ar, xi = *ai, yr = *br, yi = *bi;
    if (bc == ADVI_POISSON_PERIODIC) {
        *ar = 0.5 * ((xr - xi) + (yr + yi));
        *ai = 0.5 * ((xr + xi) + (yi - yr));
        *br = 0.5 * ((xr + xi) + (yr - yi));
        *bi = 0.5 * ((xi - xr) + (yr + yi));
    } else {
        const double pr = c * xr + s * xi, pi = c * xi - s * xr; // w^k Z_k
        const double qr = c * yr - s * yi, qi = c * yi + s * yr; // w^{-k} Z_{n-k}
        *ar = pr + qr;
        *ai = pi + qi;
        *br = qi - pi;
        *bi = pr - qr;
    }
}

/* Inverse pair map: (ar, ai) = W_k -> Z_k, (br, bi) = W_{n-k} -> Z_{n-k}.
 * Neumann/Dirichlet: Z_k = w^{-k} (W_k - i W_{n-k}), Z_{n-k} = w^k (W_k + i W_{n-k});
 * periodic: Z_k = ((1-i) W_k + (1+i) W_{n-k})/2, Z_{n-k} = ((1+i) W_k + (1-i) W_{n-k})/2. */
ADV_HD void advi_poisson_pair_inverse(int bc, double c, double s, double *ar, double *ai,
                                      double *br, double *bi) {
    const double xr = *ar, xi = *ai, yr = *br, yi = *bi;
    if (bc == ADVI_POISSON_PERIODIC) {
        *ar = 0.5 * ((yr - yi) + (xr + xi));
        *ai = 0.5 * ((yr + yi) + (xi - xr));
        *br = 0.5 * ((yr + yi) + (xr - xi));
        *bi = 0.5 * ((yi - yr) + (xr + xi));
    } else {
        const double ur = xr + yi, ui = xi - yr; // W_k - i W_{n-k}
        const double vr = xr - yi, vi = xi + yr; // W_k + i W_{n-k}
        *ar = c * ur - s * ui;
        *ai = c * ui + s * ur;
        *br = c * vr + s * vi;
        *bi = c * vi - s * vr;
    }
}

/* Real factor of a self-paired mode (k = 0, or k = n/2 with n even) in the forward or the
 * inverse map: Neumann/Dirichlet X_0 = 2 V_0, X_{n/2} = √2 V_{n/2} forward, V_0 = X_0 and
 * V_{n/2} = √2 X_{n/2} inverse; periodic 1 (V_0 and V_{n/2} are real). */
ADV_HD double advi_poisson_self_factor(int bc, int64_t k, int inverse) {
    if (bc == ADVI_POISSON_PERIODIC) return 1.0;
    if (k == 0) return inverse ? 1.0 : 2.0;
    return 1.414213562373095048801688724209698079;
}

/* Factor applied to one transformed coefficient: 1/(λ · norm), where λ = c + Σ_a λ_a is the
 * eigenvalue of c - Δ_h for that mode. λ is exactly 0 only for the zero mode of a singular
 * problem (c = 0, all axes periodic/Neumann, every k_a = 0: sin(0) = 0 exactly); that mode is
 * set to 0, which returns the zero-mean solution (and removes the mean of f). */
ADV_HD double advi_poisson_scale(double lambda, double inv_norm) {
    // Selects over a safe denominator (no division by 0 to guard), so CPU loops vectorise.
    const double safe = lambda > 0.0 ? lambda : 1.0;
    return lambda > 0.0 ? inv_norm / safe : 0.0;
}

#endif
