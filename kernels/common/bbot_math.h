/* Per-element math of the Benamou-Brenier solver (spec math.md §4), shared by the CPU backend
 * (host/cpu/bbot_cpu.c) and the CUDA kernels (kernels/cuda/bbot.cu): the grid geometry of the
 * staggered space-time variables, the pointwise prox of γ|m|²/f (closed-form cubic root with
 * a Newton polish), the divergence and gradient stencils, the per-line least-squares
 * projection on the averaging constraint (Thomas algorithm with precomputed factors; by lines
 * and by tiles of lines, as the CUDA kernel splits it), the centred density/momentum of a
 * cell and the multilinear interpolation of the velocity grid.
 *
 * Components: c = 0 is time (the density f on the P+1 time faces), c = 1..d the momentum m_a
 * (a = c-1) on the faces normal to space axis a. Every component is viewed as lines along its
 * own axis: the cell arrays (P × N_1 × … × N_d, row-major) are (O_c, L_c, S_c) and its face
 * array is (O_c, L_c + 1, S_c), with L_0 = P, S_0 = Π N; L_c = N_a, S_c = Π_{b>a} N_b. */
#ifndef ADVECT_KERNELS_COMMON_BBOT_MATH_H
#define ADVECT_KERNELS_COMMON_BBOT_MATH_H

#include "adv_hd.h"

#include <string.h>

#define ADVK_BBOT_MAX_COMP 4 /* time + 3 space axes */

/* The line projection's arrays never overlap (disjoint parts of the iterates): telling the
 * compilers lets them keep values in registers and issue the independent loads of a step
 * together instead of reloading after every store. */
#if defined(__CUDACC__) || defined(__cplusplus)
#define ADVK_RESTRICT __restrict__
#else
#define ADVK_RESTRICT restrict
#endif

typedef struct advk_bbot_grid {
    int d;                            /* space dimension 1..3 */
    int64_t P;                        /* time cells */
    int64_t M;                        /* space cells Π N_a */
    int64_t cells;                    /* P · M */
    int64_t n[3];                     /* N_a (1 past d) */
    int64_t L[ADVK_BBOT_MAX_COMP];    /* cells along the component's axis */
    int64_t S[ADVK_BBOT_MAX_COMP];    /* stride of that axis in a cell array */
    int64_t faces[ADVK_BBOT_MAX_COMP]; /* face values of the component: cells / L · (L + 1) */
    double inv_sp[ADVK_BBOT_MAX_COMP]; /* 1 / spacing along the axis: 1/k = P, 1/h_a = N_a */
    int64_t offU[ADVK_BBOT_MAX_COMP]; /* element offset of the staggered component in a state */
    int64_t offV[ADVK_BBOT_MAX_COMP]; /* element offset of the centred component */
    int64_t state;                    /* elements of one state (U then V) */
} advk_bbot_grid;

/* The geometry of d space axes of n[a] cells and P time cells (sizes already checked to fit:
 * host/bbot.c's make_grid): line lengths and strides of every component, their face counts
 * and offsets in a state (U components, then V components). */
static inline void advk_bbot_grid_init(advk_bbot_grid *g, int d, const int64_t *n, int64_t P) {
    memset(g, 0, sizeof *g);
    g->d = d;
    g->P = P;
    g->M = 1;
    for (int a = 0; a < 3; ++a) {
        g->n[a] = a < d ? n[a] : 1;
        g->M *= g->n[a];
    }
    g->cells = g->M * P;
    g->L[0] = P;
    g->S[0] = g->M;
    g->inv_sp[0] = (double)P;
    for (int a = 0; a < d; ++a) {
        int64_t inner = 1;
        for (int b = a + 1; b < d; ++b) inner *= g->n[b];
        g->L[a + 1] = g->n[a];
        g->S[a + 1] = inner;
        g->inv_sp[a + 1] = (double)g->n[a];
    }
    int64_t off = 0;
    for (int c = 0; c <= d; ++c) {
        g->faces[c] = g->cells / g->L[c] * (g->L[c] + 1);
        g->offU[c] = off;
        off += g->faces[c];
    }
    for (int c = 0; c <= d; ++c) {
        g->offV[c] = off;
        off += g->cells;
    }
    g->state = off;
}

/* ---- prox of γ|m|²/f -------------------------------------------------------------------- */

/* Largest real root g of g³ - a g² - c = 0 for c >= 0 (g = f + 2γ, a = f̃ + 2γ,
 * c = γ|m̃|²). It lies in [A, A + c^(1/3)], A = max(a, 0): φ(g) = g²(g - a) is increasing
 * and convex there and φ(A + c^(1/3)) >= c (and φ(A + c/A²) >= c). Closed form (Cardano with the product of the two
 * cube roots, a²/9, replacing the cancelling one; trigonometric form when there are three
 * real roots, in a form without cancellation), clamped into the bracket, then one Newton
 * step (the closed form is already accurate to a few ulps; the step removes the rounding
 * of the cube root and keeps the result on the increasing branch). Double precision for both
 * working precisions. */
/* The common regime of the prox (a density well above the momentum's contribution):
 * a > 0 and c <= a³/64. Then A + c/A² (an upper bound) is within a relative 2(c/a³)² <= 5e-4
 * of the root, and three Newton steps on the convex increasing branch decrease monotonically
 * to it (errors ~1e-7, ~1e-14, rounding): plain arithmetic, no cube root, no branch — the
 * CPU evaluates it for whole blocks of cells in vector registers. */
ADV_HD int advk_bbot_root_is_small(double a, double c) {
    return (a > 0.0) & (c <= a * a * a * (1.0 / 64.0)); // no branch: vectorises
}
ADV_HD double advk_bbot_cubic_root_small(double a, double c) {
    double g = a + c / (a * a);
    for (int it = 0; it < 3; ++it) g -= (g * g * (g - a) - c) / (g * (3.0 * g - 2.0 * a));
    return g;
}

/* One Halley step on φ(g) - c = g²(g - a) - c at g (none where its denominator
 * 2φ'² - (φ - c)φ'' is not positive, e.g. g = 0). */
ADV_HD double advk_bbot_halley_step(double a, double c, double g) {
    const double r = g * g * (g - a) - c, d1 = g * (3.0 * g - 2.0 * a), d2 = 6.0 * g - 2.0 * a;
    const double den = 2.0 * d1 * d1 - r * d2;
    const double step = 2.0 * r * d1 / (den > 0.0 ? den : 1.0);
    return den > 0.0 ? g - step : g;
}
/* The same root in every regime by Halley's method alone (plain arithmetic and one sqrt, no
 * branch: the CPU evaluates it for whole blocks in vector registers). Start: the smallest of
 * three upper bounds on g - A, A = max(a, 0): c/A² (a > 0), sqrt(c/b) (b = -a > 0: φ(g) >=
 * b g² - c) and c^(1/3) (φ(A + t) >= t³), the last from a 32-bit estimate of the cube root
 * (the float exponent divided by 3) and one Newton step for the cube root, which lands above
 * it (AM-GM). The smallest bound is within a factor 2.15 of g - A in every regime (a relative
 * error of g below 0.37), and four Halley steps (cubic convergence, one division each) reach
 * the closed form of advk_bbot_cubic_root to a few ulps: checked on 4·10^6 random (a, c),
 * |a| in [1e-8, 1e8] and c in [1e-30, 1e30] (three steps: 1e-13). Valid where
 * advk_bbot_root_halley_ok: c = 0 or in [1e-30, 1e30] (the float estimate's range) and
 * |a| <= 1e100; NaN fails it. */
ADV_HD int advk_bbot_root_halley_ok(double a, double c) {
    // Bitwise & and |: no branches, so that the CPU's block loop vectorises.
    return (fabs(a) <= 1e100) & ((c == 0.0) | ((c >= 1e-30) & (c <= 1e30)));
}
ADV_HD double advk_bbot_cubic_root_halley(double a, double c) {
    const double A = a > 0.0 ? a : 0.0, b = a < 0.0 ? -a : 0.0;
    const float cf = (float)c;
    uint32_t bits;
    memcpy(&bits, &cf, sizeof bits);
    // About cbrt(cf) (within 5%) for a positive normal float; a tiny positive number for 0.
    bits = bits / 3u + 709921077u;
    float yf;
    memcpy(&yf, &bits, sizeof yf);
    const double y = (double)yf;
    const double t2 = (2.0 * y + c / (y * y)) * (1.0 / 3.0); // >= cbrt(c)
    // Plain selects over safe denominators (no division by 0, and they vectorise).
    double t1 = c / (A > 0.0 ? A * A : 1.0), t3 = sqrt(c / (b > 0.0 ? b : 1.0));
    t1 = A > 0.0 ? t1 : INFINITY;
    t3 = b > 0.0 ? t3 : INFINITY;
    double t = t1 < t2 ? t1 : t2;
    t = t3 < t ? t3 : t;
    t = c > 0.0 ? t : 0.0;
    double g = A + t;
    // Four steps, written out: an inner loop would keep the compilers from vectorising.
    g = advk_bbot_halley_step(a, c, g);
    g = advk_bbot_halley_step(a, c, g);
    g = advk_bbot_halley_step(a, c, g);
    g = advk_bbot_halley_step(a, c, g);
    return g > A ? g : A;
}

ADV_HD double advk_bbot_cubic_root(double a, double c) {
    if (advk_bbot_root_is_small(a, c)) return advk_bbot_cubic_root_small(a, c);
    const double A = a > 0.0 ? a : 0.0;
    if (!(c > 0.0)) return A;
    // Upper end of the bracket: A + c/A² also satisfies φ >= c when A > 0 (and avoids a
    // second cube root); the bracket only guards the closed form against rounding.
    const double ub = A > 0.0 ? A + c / (A * A) : cbrt(c);
    const double a3 = a * a * a / 27.0;
    const double disc = c * (a3 + 0.25 * c);
    double g;
    if (disc >= 0.0) {
        const double t = a3 + 0.5 * c + sqrt(disc); // > 0 whenever disc >= 0 and c > 0
        const double u = cbrt(t);
        g = u + a * a / (9.0 * u) + a / 3.0;
    } else {
        // Only for a < 0 (b = -a): three real roots. The trigonometric form of the largest,
        // g = (b/3)(2 cos(θ/3) - 1) with cos θ = ε - 1, ε = 27c/(2b³) in (0, 2), cancels for
        // small c (g ~ sqrt(c/b) << b); with δ = π - θ = 2 asin(sqrt(ε/2)) it is the product
        // g = (4b/3) sin(π/3 - δ/6) sin(δ/6), accurate for every ε.
        const double b = -a;
        const double eps = 13.5 * c / (b * b * b);
        const double delta = 2.0 * asin(sqrt(eps < 2.0 ? 0.5 * eps : 1.0));
        g = (4.0 * b / 3.0) * sin(1.0471975511965976 - delta / 6.0) * sin(delta / 6.0);
    }
    if (!(g >= A)) g = A; // also catches NaN
    if (g > ub) g = ub;
    const double dphi = g * (3.0 * g - 2.0 * a);
    if (dphi > 0.0) {
        double gn = g - (g * g * (g - a) - c) / dphi;
        if (gn < A) gn = A;
        if (gn > ub) gn = ub;
        g = gn;
    }
    return g;
}

/* The prox of γ|m|²/f at (f̃, m̃) (m̃ has d components) given g, the root for a = f̃ + 2γ,
 * c = γ|m̃|²: f* = g - 2γ, m* = f* m̃ / (f* + 2γ); (0, 0) when f* <= 0. Returns |m*|²/f* (0 in
 * the latter case). */
ADV_HD double advk_bbot_prox_finish(double gamma, int d, double g, const double *mt, double *fs,
                                    double *ms) {
    const double f = g - 2.0 * gamma;
    if (!(f > 0.0)) {
        *fs = 0.0;
        for (int a = 0; a < d; ++a) ms[a] = 0.0;
        return 0.0;
    }
    const double s = f / g;
    *fs = f;
    double e = 0.0;
    for (int a = 0; a < d; ++a) {
        ms[a] = s * mt[a];
        e += ms[a] * ms[a];
    }
    return e / f;
}

/* prox of γ|m|²/f at (f̃, m̃): the root of advk_bbot_cubic_root, then advk_bbot_prox_finish. */
ADV_HD double advk_bbot_prox_point(double gamma, int d, double ft, const double *mt, double *fs,
                                   double *ms) {
    double m2 = 0.0;
    for (int a = 0; a < d; ++a) m2 += mt[a] * mt[a];
    const double g = advk_bbot_cubic_root(ft + 2.0 * gamma, gamma * m2);
    return advk_bbot_prox_finish(gamma, d, g, mt, fs, ms);
}

/* ---- stencils --------------------------------------------------------------------------- */

/* Index of the face on the low side of cell `cell` (flat cell index) in component c's face
 * array; the high face is that + S[c]. A cell (o, i, s) = (o L + i) S + s has low face
 * (o (L + 1) + i) S + s = cell + o S. */
ADV_HD int64_t advk_bbot_low_face(const advk_bbot_grid *g, int c, int64_t cell) {
    const int64_t o = cell / (g->L[c] * g->S[c]);
    return cell + o * g->S[c];
}

/* The two stencils of the continuity projection, implemented by both backends with loop
 * structures of their own (rows of the last axis on the CPU, flat indices with 32-bit division
 * on the GPU) and the same arithmetic on the values:
 *   divergence of a cell  Σ_{c = 0..d} (u_c[lo + S_c] - u_c[lo]) · inv_sp[c],
 *                         lo = advk_bbot_low_face(g, c, cell), summed in this order in double;
 *   gradient correction   (q[right] - q[right - S_c]) · inv_sp[c] at an interior face of
 *                         component c (face (o, i, s), 0 < i < L_c, right = (o L_c + i) S_c + s),
 *                         0 on the boundary faces, which keep their fixed values (ρ0, ρ1 on
 *                         the end faces, no flux through the walls). q is double. */

/* Centred values of a cell from the staggered part of `state`: out[0] = ρ̄ (mean of the two
 * time faces), out[1 + a] = m̄_a (mean of the two faces along axis a). */
#define ADVK_BBOT_CENTRED(T, SFX)                                                             \
    ADV_HD void advk_bbot_centred_##SFX(const advk_bbot_grid *g, const T *state, int64_t cell, \
                                        double *out) {                                        \
        for (int c = 0; c <= g->d; ++c) {                                                     \
            const T *u = state + g->offU[c];                                                  \
            const int64_t lo = advk_bbot_low_face(g, c, cell);                                \
            out[c] = 0.5 * ((double)u[lo] + (double)u[lo + g->S[c]]);                         \
        }                                                                                     \
    }
ADVK_BBOT_CENTRED(float, f32)
ADVK_BBOT_CENTRED(double, f64)

/* ---- projection on {V = I(U)} along lines ----------------------------------------------
 * For one line of L cells (faces 0..L, faces 0 and L fixed to b0, bL) and input (u', v'),
 * the least-squares problem min |u - u'|² + |I u - v'|² over the interior faces has normal
 * equations T u = u'_i + (v'_{i-1} + v'_i)/2 - [i = 1] b0/4 - [i = L-1] bL/4 with
 * T = tridiag(1/4, 3/2, 1/4) of size L-1: the same matrix for every line of an axis, so its
 * Thomas factors are computed once. v = I u afterwards. */

/* Thomas factors of tridiag(1/4, 3/2, 1/4) of size L-1, indexed by face i = 1..L-1 (entry 0
 * unused): inv[i] = 1 / pivot_i, cp[i] = (1/4) inv[i]. Diagonally dominant: pivots >= 1.45. */
ADV_HD void advk_bbot_thomas_factors(int64_t L, double *cp, double *inv) {
    double prev = 0.0;
    cp[0] = 0.0;
    inv[0] = 0.0;
    for (int64_t i = 1; i < L; ++i) {
        const double pivot = 1.5 - 0.25 * prev;
        inv[i] = 1.0 / pivot;
        cp[i] = 0.25 * inv[i];
        prev = cp[i];
    }
}

/* Reflected point 2 x1 - z of one value, and the right-hand side of the line system at
 * interior face i from the reflected face value (x1f, zf), the reflected values rl, rc of
 * the cells on either side, and the fixed end faces b0, bL with weights wl = [i = 1]/4,
 * wr = [i = L-1]/4. */
ADV_HD double advk_bbot_reflect(double x1, double z) { return 2.0 * x1 - z; }
/* One step of each Thomas sweep with the factors above: forward y_i = (rhs_i - wp y_{i-1})
 * inv_i (wp = 0 at i = 1), backward x_i = y_i - cp_i x_{i+1}; and the relaxed
 * Douglas-Rachford update z + mu (x2 - x1) of a face or cell. */
ADV_HD double advk_bbot_sweep_forward(double rhs, double wp, double prev, double inv) {
    return (rhs - wp * prev) * inv;
}
ADV_HD double advk_bbot_sweep_backward(double y, double cp, double next) { return y - cp * next; }
ADV_HD double advk_bbot_relax(double z, double mu, double d) { return z + mu * d; }
ADV_HD double advk_bbot_line_rhs(double x1f, double zf, double rl, double rc, double wl,
                                 double b0, double wr, double bL) {
    return 2.0 * x1f - zf + 0.5 * (rl + rc) - wl * b0 - wr * bL;
}

/* The CPU's inner loops with the sums d2 and x1sq vectorise with partial sums (an order of
 * addition of their own); GPU threads add one line each. */
#if defined(__CUDACC__)
#define ADVK_SIMD_SUMS
#else
#define ADVK_SIMD_SUMS _Pragma("omp simd reduction(+ : acc_d, acc_x)")
#endif

/* The projection and the relaxed Douglas-Rachford update of `nb` lines of one component:
 * element i of line j is at offset i·S + j·jf in the face arrays and i·S + j·jc in the cell
 * arrays (adjacent lines: jf = jc = 1; lines along the contiguous axis, S = 1: jf = L + 1,
 * jc = L, so several independent recurrences interleave). Inputs: x1 (the
 * proximal point, pointers x1u to face 0 and x1v to cell 0 of the lines) and z (zu, zv, the
 * same positions). The reflected point r = 2 x1 - z is projected: x2u (face array, output)
 * receives the projected faces; then z += mu (x2 - x1) on faces and cells. Adds |x2 - x1|²
 * and |x1|² of these lines to *d2 and *x1sq. */
#define ADVK_BBOT_LINES(T, SFX)                                                               \
    ADV_HD void advk_bbot_lines_##SFX(int64_t L, int64_t S, int64_t nb, int64_t jf,           \
                                      int64_t jc, const double *ADVK_RESTRICT cp,             \
                                      const double *ADVK_RESTRICT inv, double mu,             \
                                      T *ADVK_RESTRICT x2u, T *ADVK_RESTRICT zu,              \
                                      const T *ADVK_RESTRICT x1u, T *ADVK_RESTRICT zv,        \
                                      const T *ADVK_RESTRICT x1v, double *d2, double *x1sq) { \
        /* the fixed boundary faces first: the sweep reads face 0 with weight 0 at i = 1 */   \
        for (int64_t j = 0; j < nb; ++j) {                                                    \
            x2u[j * jf] = x1u[j * jf];                                                        \
            x2u[L * S + j * jf] = x1u[L * S + j * jf];                                        \
        }                                                                                     \
        /* forward sweep: y_i = (rhs_i - y_{i-1}/4) inv_i, stored in x2u; the boundary terms  \
         * and the missing y_0 enter with scalar weights (no branch in the inner loop) */     \
        for (int64_t i = 1; i < L; ++i) {                                                     \
            const double ci = inv[i], wp = i > 1 ? 0.25 : 0.0;                                \
            const double wl = i == 1 ? 0.25 : 0.0, wr = i == L - 1 ? 0.25 : 0.0;              \
            for (int64_t j = 0; j < nb; ++j) {                                                \
                const int64_t f = i * S + j * jf, fp = f - S;                                 \
                const int64_t cc = i * S + j * jc, cl = cc - S;                               \
                const double rhs = advk_bbot_line_rhs(                                        \
                    (double)x1u[f], (double)zu[f], advk_bbot_reflect((double)x1v[cl], (double)zv[cl]), \
                    advk_bbot_reflect((double)x1v[cc], (double)zv[cc]), wl, (double)x1u[j * jf], \
                    wr, (double)x1u[L * S + j * jf]);                                         \
                x2u[f] = (T)advk_bbot_sweep_forward(rhs, wp, (double)x2u[fp], ci);            \
            }                                                                                 \
        }                                                                                     \
        for (int64_t i = L - 2; i >= 1; --i) {                                                \
            const double ci = cp[i];                                                          \
            for (int64_t j = 0; j < nb; ++j) {                                                \
                const int64_t f = i * S + j * jf;                                             \
                x2u[f] = (T)advk_bbot_sweep_backward((double)x2u[f], ci, (double)x2u[f + S]); \
            }                                                                                 \
        }                                                                                     \
        double acc_d = 0.0, acc_x = 0.0;                                                      \
        for (int64_t i = 0; i <= L; ++i) { /* faces */                                        \
            ADVK_SIMD_SUMS                                                                    \
            for (int64_t j = 0; j < nb; ++j) {                                                \
                const int64_t f = i * S + j * jf;                                             \
                const double x1 = (double)x1u[f], dd = (double)x2u[f] - x1;                   \
                zu[f] = (T)advk_bbot_relax((double)zu[f], mu, dd);                            \
                acc_d += dd * dd;                                                             \
                acc_x += x1 * x1;                                                             \
            }                                                                                 \
        }                                                                                     \
        for (int64_t i = 0; i < L; ++i) { /* cells: x2.V = I(x2.U) */                        \
            ADVK_SIMD_SUMS                                                                    \
            for (int64_t j = 0; j < nb; ++j) {                                                \
                const int64_t f = i * S + j * jf, cc = i * S + j * jc;                        \
                const double v2 = 0.5 * ((double)x2u[f] + (double)x2u[f + S]);                \
                const double v1 = (double)x1v[cc], dv = v2 - v1;                              \
                zv[cc] = (T)advk_bbot_relax((double)zv[cc], mu, dv);                          \
                acc_d += dv * dv;                                                             \
                acc_x += v1 * v1;                                                             \
            }                                                                                 \
        }                                                                                     \
        *d2 += acc_d;                                                                         \
        *x1sq += acc_x;                                                                       \
    }
ADVK_BBOT_LINES(float, f32)
ADVK_BBOT_LINES(double, f64)

/* The same projection and update for nb lines along the contiguous axis (S = 1: faces of line
 * j at j (L + 1), cells at j L), in the order that suits a CPU: the right-hand sides and the
 * updates run along each line over contiguous values (they vectorise), only the two
 * recurrences interleave the lines. rhs: nb (L + 1) doubles of scratch. Every face and cell
 * value is computed with the arithmetic of advk_bbot_lines; only the sums d2 and x1sq add in
 * another order. */
#define ADVK_BBOT_LINES_ROWS(T, SFX)                                                          \
    ADV_HD void advk_bbot_lines_rows_##SFX(int64_t L, int64_t nb,                            \
                                           const double *ADVK_RESTRICT cp,                   \
                                           const double *ADVK_RESTRICT inv, double mu,        \
                                           T *ADVK_RESTRICT x2u, T *ADVK_RESTRICT zu,         \
                                           const T *ADVK_RESTRICT x1u, T *ADVK_RESTRICT zv,   \
                                           const T *ADVK_RESTRICT x1v,                        \
                                           double *ADVK_RESTRICT rhs, double *d2,            \
                                           double *x1sq) {                                    \
        const int64_t F = L + 1;                                                              \
        for (int64_t j = 0; j < nb; ++j) {                                                    \
            const T *fu = x1u + j * F, *fz = zu + j * F, *cu = x1v + j * L, *cz = zv + j * L;  \
            double *r = rhs + j * F;                                                          \
            for (int64_t i = 1; i < L; ++i)                                                   \
                r[i] = 2.0 * (double)fu[i] - (double)fz[i] +                                  \
                       0.5 * ((2.0 * (double)cu[i - 1] - (double)cz[i - 1]) +                 \
                              (2.0 * (double)cu[i] - (double)cz[i]));                         \
            if (L > 1) { /* the fixed faces, subtracted in advk_bbot_lines' order */          \
                r[1] -= 0.25 * (double)fu[0];                                                 \
                r[L - 1] -= 0.25 * (double)fu[L];                                             \
            }                                                                                 \
            x2u[j * F] = fu[0];                                                               \
            x2u[j * F + L] = fu[L];                                                           \
        }                                                                                     \
        for (int64_t i = 1; i < L; ++i) {                                                     \
            const double ci = inv[i], wp = i > 1 ? 0.25 : 0.0;                                \
            for (int64_t j = 0; j < nb; ++j)                                                  \
                x2u[j * F + i] =                                                              \
                    (T)advk_bbot_sweep_forward(rhs[j * F + i], wp, (double)x2u[j * F + i - 1], ci); \
        }                                                                                     \
        for (int64_t i = L - 2; i >= 1; --i) {                                                \
            const double ci = cp[i];                                                          \
            for (int64_t j = 0; j < nb; ++j)                                                  \
                x2u[j * F + i] = (T)advk_bbot_sweep_backward((double)x2u[j * F + i], ci,      \
                                                             (double)x2u[j * F + i + 1]);     \
        }                                                                                     \
        double acc_d = 0.0, acc_x = 0.0;                                                      \
        for (int64_t j = 0; j < nb; ++j) {                                                    \
            const T *fu = x1u + j * F, *cu = x1v + j * L, *u2 = x2u + j * F;                  \
            T *fz = zu + j * F, *cz = zv + j * L;                                             \
            ADVK_SIMD_SUMS                                                                    \
            for (int64_t i = 0; i <= L; ++i) { /* faces */                                   \
                const double x1 = (double)fu[i], dd = (double)u2[i] - x1;                     \
                fz[i] = (T)advk_bbot_relax((double)fz[i], mu, dd);                            \
                acc_d += dd * dd;                                                             \
                acc_x += x1 * x1;                                                             \
            }                                                                                 \
            ADVK_SIMD_SUMS                                                                    \
            for (int64_t i = 0; i < L; ++i) { /* cells: x2.V = I(x2.U) */                    \
                const double v2 = 0.5 * ((double)u2[i] + (double)u2[i + 1]);                  \
                const double v1 = (double)cu[i], dv = v2 - v1;                                \
                cz[i] = (T)advk_bbot_relax((double)cz[i], mu, dv);                            \
                acc_d += dv * dv;                                                             \
                acc_x += v1 * v1;                                                             \
            }                                                                                 \
        }                                                                                     \
        *d2 += acc_d;                                                                         \
        *x1sq += acc_x;                                                                       \
    }
ADVK_BBOT_LINES_ROWS(float, f32)
ADVK_BBOT_LINES_ROWS(double, f64)

/* The same projection by tiles of lines: the CUDA kernel's split of the work, written here so
 * that tests/unit/bbot.c runs it on the CPU, step by step, against advk_bbot_lines. A block
 * takes `tl` consecutive lines l = first .. first + tl - 1 of a component (line l = (o, s),
 * o = l / S, s = l % S: faces at o (L+1) S + i S + s, cells at o L S + i S + s, relative to
 * the component's offsets) and a tile A of (L + 1) x ld doubles (ld = tl + 1, so that threads
 * walking along a line hit different banks). Four steps, separated by barriers:
 *   bases  (one thread per line)  the lines' face and cell offsets, fb[t] and cb[t];
 *   load   (one per face)         A[i][t] = right-hand side, or x1 on the two fixed faces;
 *                                 with q, x1.U = z.U + ∇q is formed (and written) here,
 *                                 with the arithmetic of the gradient update;
 *   solve  (one per line)         both Thomas sweeps on the tile (x2 = A, rounded to T as
 *                                 advk_bbot_lines stores it);
 *   face / cell (one per value)   x2.U, z += mu (x2 - x1), the sums.
 * Only the sweeps are sequential, and they run on the tile instead of global memory; the
 * other steps enumerate the tile in memory order (along the lines when S = 1, where lines
 * are contiguous; across them otherwise, where adjacent lines are adjacent), so consecutive
 * threads touch consecutive addresses. Every value is computed with the arithmetic of
 * advk_bbot_lines; only the sums add in another order. */
#define ADVK_BBOT_TILE_CHUNK 4 /* steps of a sweep whose inputs are read together */
typedef struct advk_bbot_tile {
    int64_t L, S;   /* cells along the lines, stride of their axis */
    int64_t nlines; /* lines of the component */
    int64_t first;  /* first line of the tile */
    int tl, ld;     /* lines per tile, leading dimension of A (tl + 1) */
} advk_bbot_tile;

ADV_HD void advk_bbot_tile_bases(const advk_bbot_tile *tp, int t, int64_t *fb, int64_t *cb) {
    const int64_t line = tp->first + t, o = line / tp->S, s = line % tp->S;
    fb[t] = o * (tp->L + 1) * tp->S + s;
    cb[t] = o * tp->L * tp->S + s;
}

/* Element e (0 <= e < tl n) of a step over n values per line: line t, index i along it. 0 for
 * a line past the component's last. */
ADV_HD int advk_bbot_tile_at(const advk_bbot_tile *tp, int e, int n, int *t, int64_t *i) {
    if (tp->S == 1) {
        *t = e / n;
        *i = e % n;
    } else {
        *t = e % tp->tl;
        *i = e / tp->tl;
    }
    return tp->first + *t < tp->nlines;
}

#define ADVK_BBOT_TILE(T, SFX)                                                                \
    ADV_HD void advk_bbot_tile_load_##SFX(const advk_bbot_tile *tp, int e, const int64_t *fb, \
                                          const int64_t *cb, T *ADVK_RESTRICT x1u,            \
                                          const T *ADVK_RESTRICT zu,                          \
                                          const T *ADVK_RESTRICT x1v,                         \
                                          const T *ADVK_RESTRICT zv, const double *q,         \
                                          double inv_sp, double *A) {                         \
        int t;                                                                                \
        int64_t i;                                                                            \
        const int64_t L = tp->L, S = tp->S;                                                   \
        if (!advk_bbot_tile_at(tp, e, (int)L + 1, &t, &i)) return;                           \
        const int64_t f = fb[t] + i * S, c = cb[t] + i * S;                                   \
        const int fixed = i == 0 || i == L;                                                   \
        /* With q, x1.U = z.U + ∇q first (fixed faces: x1 = z), as the gradient update. */    \
        if (q) x1u[f] = (T)((double)zu[f] + (fixed ? 0.0 : (q[c] - q[c - S]) * inv_sp));      \
        const T *b = q ? zu : x1u; /* the fixed faces of x1 */                                \
        A[i * tp->ld + t] =                                                                   \
            fixed ? (double)x1u[f]                                                            \
                  : advk_bbot_line_rhs(                                                       \
                        (double)x1u[f], (double)zu[f],                                        \
                        advk_bbot_reflect((double)x1v[c - S], (double)zv[c - S]),             \
                        advk_bbot_reflect((double)x1v[c], (double)zv[c]), i == 1 ? 0.25 : 0.0, \
                        (double)b[fb[t]], i == L - 1 ? 0.25 : 0.0, (double)b[fb[t] + L * S]); \
    }                                                                                         \
    ADV_HD void advk_bbot_tile_solve_##SFX(const advk_bbot_tile *tp, int t,                   \
                                           const double *ADVK_RESTRICT cp,                    \
                                           const double *ADVK_RESTRICT inv, double *A) {      \
        if (tp->first + t >= tp->nlines) return;                                              \
        const int64_t L = tp->L, ld = tp->ld;                                                 \
        /* Each sweep reads ADVK_BBOT_TILE_CHUNK steps' inputs before computing them, so the  \
         * reads do not wait for the previous step's store (a compiler cannot tell the        \
         * addresses apart) and the chain per step is the arithmetic alone. */                \
        double prev = 0.0; /* y_0 enters with weight 0 */                                     \
        for (int64_t i0 = 1; i0 < L; i0 += ADVK_BBOT_TILE_CHUNK) {                            \
            double r[ADVK_BBOT_TILE_CHUNK];                                                   \
            for (int k = 0; k < ADVK_BBOT_TILE_CHUNK; ++k)                                    \
                r[k] = i0 + k < L ? A[(i0 + k) * ld + t] : 0.0;                               \
            for (int k = 0; k < ADVK_BBOT_TILE_CHUNK && i0 + k < L; ++k) {                    \
                const int64_t i = i0 + k;                                                     \
                prev = (double)(T)advk_bbot_sweep_forward(r[k], i > 1 ? 0.25 : 0.0, prev, inv[i]); \
                A[i * ld + t] = prev;                                                         \
            }                                                                                 \
        }                                                                                     \
        /* prev holds x_{L-1} = y_{L-1} */                                                    \
        for (int64_t i0 = L - 2; i0 >= 1; i0 -= ADVK_BBOT_TILE_CHUNK) {                       \
            double y[ADVK_BBOT_TILE_CHUNK];                                                   \
            for (int k = 0; k < ADVK_BBOT_TILE_CHUNK; ++k)                                    \
                y[k] = i0 - k >= 1 ? A[(i0 - k) * ld + t] : 0.0;                              \
            for (int k = 0; k < ADVK_BBOT_TILE_CHUNK && i0 - k >= 1; ++k) {                   \
                const int64_t i = i0 - k;                                                     \
                prev = (double)(T)advk_bbot_sweep_backward(y[k], cp[i], prev);                \
                A[i * ld + t] = prev;                                                         \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    ADV_HD void advk_bbot_tile_face_##SFX(const advk_bbot_tile *tp, int e, const int64_t *fb, \
                                          double mu, const double *A, T *ADVK_RESTRICT x2u,   \
                                          T *ADVK_RESTRICT zu, const T *ADVK_RESTRICT x1u,    \
                                          double *d2, double *x1sq) {                         \
        int t;                                                                                \
        int64_t i;                                                                            \
        if (!advk_bbot_tile_at(tp, e, (int)tp->L + 1, &t, &i)) return;                       \
        const int64_t f = fb[t] + i * tp->S;                                                  \
        const double x2 = A[i * tp->ld + t], x1 = (double)x1u[f], dd = x2 - x1;               \
        x2u[f] = (T)x2;                                                                       \
        zu[f] = (T)advk_bbot_relax((double)zu[f], mu, dd);                                    \
        *d2 += dd * dd;                                                                       \
        *x1sq += x1 * x1;                                                                     \
    }                                                                                         \
    ADV_HD void advk_bbot_tile_cell_##SFX(const advk_bbot_tile *tp, int e, const int64_t *cb, \
                                          double mu, const double *A, T *ADVK_RESTRICT zv,    \
                                          const T *ADVK_RESTRICT x1v, double *d2,             \
                                          double *x1sq) {                                     \
        int t;                                                                                \
        int64_t i;                                                                            \
        if (!advk_bbot_tile_at(tp, e, (int)tp->L, &t, &i)) return;                           \
        const int64_t c = cb[t] + i * tp->S;                                                  \
        const double v2 = 0.5 * (A[i * tp->ld + t] + A[(i + 1) * tp->ld + t]);                \
        const double v1 = (double)x1v[c], dv = v2 - v1;                                       \
        zv[c] = (T)advk_bbot_relax((double)zv[c], mu, dv);                                    \
        *d2 += dv * dv;                                                                       \
        *x1sq += v1 * v1;                                                                     \
    }
ADVK_BBOT_TILE(float, f32)
ADVK_BBOT_TILE(double, f64)

/* ---- the grid velocity field -------------------------------------------------------------- */

/* Linear interpolation weights along an axis of n nodes at the centres (i + 1/2)/n, at the
 * position x (clamped into [0, 1]): nodes i[0], i[1] with weights w[0], w[1]. Beyond the
 * outermost centres the value is held (wall = 0) or falls linearly to 0 at the wall
 * (wall = 1: the normal velocity, whose face value on the wall is 0). */
ADV_HD void advk_bbot_axis_weights(double x, int64_t n, int wall, int64_t *i, double *w) {
    if (!(x >= 0.0)) x = 0.0; // also NaN
    if (x > 1.0) x = 1.0;
    const double xi = x * (double)n - 0.5;
    if (xi <= 0.0) {
        i[0] = i[1] = 0;
        w[0] = wall ? 1.0 + 2.0 * xi : 1.0;
        w[1] = 0.0;
    } else if (xi >= (double)(n - 1)) {
        i[0] = i[1] = n - 1;
        w[0] = wall ? 1.0 - 2.0 * (xi - (double)(n - 1)) : 1.0;
        w[1] = 0.0;
    } else {
        const int64_t i0 = (int64_t)xi;
        i[0] = i0;
        i[1] = i0 + 1;
        w[1] = xi - (double)i0;
        w[0] = 1.0 - w[1];
    }
    if (w[0] < 0.0) w[0] = 0.0;
}

/* A per-particle time of the grid velocity field in [0, 1] (NaN -> 0): the field layer checks
 * times on the CPU, the CUDA path clamps them (adv_field_eval_times). */
ADV_HD double advk_bbot_clamp_time(double t) {
    return t > 0.0 ? (t < 1.0 ? t : 1.0) : 0.0;
}

/* v(t, x) (d components into out) from the velocity grid vel (P × N_1 × … × N_d × d, the
 * values at the space-time cell centres): multilinear in (t, x_1..x_d) over the 2^(d+1)
 * surrounding centres. */
#define ADVK_BBOT_VELOCITY_AT(T, SFX)                                                         \
    ADV_HD void advk_bbot_velocity_at_##SFX(const advk_bbot_grid *g, const T *vel, double t,  \
                                            const T *x, T *out) {                             \
        int64_t ti[2], si[3][2], wi[3][2];                                                    \
        double tw[2], sw[3][2], ww[3][2];                                                     \
        advk_bbot_axis_weights(t, g->P, 0, ti, tw);                                           \
        for (int b = 0; b < g->d; ++b) {                                                      \
            advk_bbot_axis_weights((double)x[b], g->n[b], 0, si[b], sw[b]);                   \
            advk_bbot_axis_weights((double)x[b], g->n[b], 1, wi[b], ww[b]);                   \
        }                                                                                     \
        const int corners = 1 << (g->d + 1);                                                  \
        for (int a = 0; a < g->d; ++a) {                                                      \
            double acc = 0.0;                                                                 \
            for (int k = 0; k < corners; ++k) {                                               \
                const int kt = k & 1;                                                         \
                double w = tw[kt];                                                            \
                int64_t idx = ti[kt] * g->M;                                                  \
                for (int b = 0; b < g->d; ++b) {                                              \
                    const int kb = (k >> (b + 1)) & 1;                                        \
                    w *= b == a ? ww[b][kb] : sw[b][kb];                                      \
                    idx += (b == a ? wi[b][kb] : si[b][kb]) * g->S[b + 1];                    \
                }                                                                             \
                if (w != 0.0) acc += w * (double)vel[idx * g->d + a];                         \
            }                                                                                 \
            out[a] = (T)acc;                                                                  \
        }                                                                                     \
    }
ADVK_BBOT_VELOCITY_AT(float, f32)
ADVK_BBOT_VELOCITY_AT(double, f64)

#endif
