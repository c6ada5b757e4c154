/* Naive reference of the Poisson operator for the Poisson suites (tests/unit/poisson.c,
 * tests/conformance/poisson.c): the stencil (c - Δ_h) u of spec math.md §4 applied directly
 * with its ghost values, the closed-form eigenvalues written with cos (independently of the
 * library's sine form), and the condition number that sets the tolerances.
 *
 * Tolerance of a solve. The FFT solver computes u = T⁻¹ Λ⁻¹ T f. Rounding in the transforms
 * perturbs each coefficient by about u_p log2(n) ‖f‖ (u_p: unit roundoff of the precision),
 * and division by λ_k amplifies the perturbation of mode k by 1/λ_k; with ‖f‖ ≤ λ_max ‖u‖ the
 * relative 2-norm error is bounded by about κ u_p (log2(n) + c0), κ = λ_max / λ_min (λ_min the
 * smallest eigenvalue that is not the removed zero mode). Rounding f to float32 adds κ u_p.
 * The suites allow pref_tolerance() = 8 κ u_p (log2(n) + 4): in float64 this is 1e-14..1e-12
 * for the sizes used; a wrong ghost value, eigenvalue or normalisation gives O(1) errors. */
#ifndef ADVECT_TESTS_POISSON_REF_H
#define ADVECT_TESTS_POISSON_REF_H

#include <advect/advect.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>

static inline size_t pref_cells(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int a = 0; a < ndim; ++a) n *= (size_t)shape[a];
    return n;
}

/* out = (c - Δ_h) u on one grid (double), by the stencil with the ghost rules. */
static inline void pref_apply(int ndim, const int64_t *shape, const double *h,
                              const adv_boundary *bc, double c, const double *u, double *out) {
    size_t stride[ADV_POISSON_MAX_DIM];
    size_t s = 1;
    for (int a = ndim - 1; a >= 0; --a) {
        stride[a] = s;
        s *= (size_t)shape[a];
    }
    const size_t n = s;
    for (size_t idx = 0; idx < n; ++idx) {
        const double center = u[idx];
        double acc = c * center;
        for (int a = 0; a < ndim; ++a) {
            const int64_t na = shape[a];
            const int64_t ia = (int64_t)((idx / stride[a]) % (size_t)na);
            double left, right;
            if (ia > 0) left = u[idx - stride[a]];
            else if (bc[a] == ADV_BC_PERIODIC) left = u[idx + (size_t)(na - 1) * stride[a]];
            else if (bc[a] == ADV_BC_NEUMANN) left = center;
            else left = -center;
            if (ia < na - 1) right = u[idx + stride[a]];
            else if (bc[a] == ADV_BC_PERIODIC) right = u[idx - (size_t)(na - 1) * stride[a]];
            else if (bc[a] == ADV_BC_NEUMANN) right = center;
            else right = -center;
            acc -= (left - 2.0 * center + right) / (h[a] * h[a]);
        }
        out[idx] = acc;
    }
}

/* Eigenvalue (2 - 2cos θ_k)/h² of the 1-D operator -Δ_h, θ_k of math.md §4. */
static inline double pref_eigenvalue(adv_boundary bc, int64_t k, int64_t n, double h) {
    const double pi = 3.14159265358979323846;
    double theta = bc == ADV_BC_PERIODIC ? 2.0 * pi * (double)k / (double)n
                   : bc == ADV_BC_NEUMANN ? pi * (double)k / (double)n
                                          : pi * (double)(k + 1) / (double)n;
    return (2.0 - 2.0 * cos(theta)) / (h * h);
}

/* Value at cell i of the 1-D eigenfunction of mode k (which = 0; for periodic axes which = 1
 * selects the sine, the imaginary part of e^{2πi k i/N}). */
static inline double pref_eigenfunction(adv_boundary bc, int64_t k, int64_t n, int which,
                                        int64_t i) {
    const double pi = 3.14159265358979323846;
    if (bc == ADV_BC_PERIODIC) {
        const double t = 2.0 * pi * (double)k * (double)i / (double)n;
        return which ? sin(t) : cos(t);
    }
    if (bc == ADV_BC_NEUMANN) return cos(pi * (double)k * ((double)i + 0.5) / (double)n);
    return sin(pi * (double)(k + 1) * ((double)i + 0.5) / (double)n);
}

/* 1 when c = 0 and no axis is Dirichlet (the constant is in the kernel). */
static inline int pref_singular(int ndim, const adv_boundary *bc, double c) {
    if (c != 0.0) return 0;
    for (int a = 0; a < ndim; ++a)
        if (bc[a] == ADV_BC_DIRICHLET) return 0;
    return 1;
}

/* κ = λ_max / λ_min over the modes that the solver inverts (brute force over all modes). */
static inline double pref_condition(int ndim, const int64_t *shape, const double *h,
                                    const adv_boundary *bc, double c) {
    const size_t n = pref_cells(ndim, shape);
    const int singular = pref_singular(ndim, bc, c);
    double lmin = INFINITY, lmax = 0.0;
    for (size_t idx = 0; idx < n; ++idx) {
        size_t q = idx;
        double lam = c;
        for (int a = ndim - 1; a >= 0; --a) {
            lam += pref_eigenvalue(bc[a], (int64_t)(q % (size_t)shape[a]), shape[a], h[a]);
            q /= (size_t)shape[a];
        }
        if (singular && idx == 0) continue; // the zero mode
        if (lam < lmin) lmin = lam;
        if (lam > lmax) lmax = lam;
    }
    return n == 1 && singular ? 1.0 : lmax / lmin;
}

static inline double pref_tolerance(int ndim, const int64_t *shape, const double *h,
                                    const adv_boundary *bc, double c, double unit_roundoff) {
    const double kappa = pref_condition(ndim, shape, h, bc, c);
    return 8.0 * kappa * unit_roundoff * (log2((double)pref_cells(ndim, shape)) + 4.0);
}

/* Subtracts the mean from x[0..n). */
static inline void pref_remove_mean(double *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += x[i];
    s /= (double)n;
    for (size_t i = 0; i < n; ++i) x[i] -= s;
}

/* ‖a - b‖₂ / ‖b‖₂ (‖a‖₂ when b = 0); NaN in a gives NaN. */
static inline double pref_rel_err(const double *a, const double *b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; ++i) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

#endif
