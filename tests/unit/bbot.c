/* Unit tests of the Benamou-Brenier solver (CPU backend): the shared per-element math
 * (kernels/common/bbot_math.h) against independent references — the prox against a
 * brute-force 2-D minimisation (spec O10), the cubic root against its defining equation, the
 * per-line projection against dense normal equations, the velocity interpolation against a
 * linear field — then the public API: the continuity projection (divergence zero to rounding,
 * boundary values untouched), mass scaling, history and progress callback, warm start,
 * checkpoints and every invalid input with its exact status and nothing written.
 *
 * Tolerances:
 *  - prox vs brute force: the brute force refines a grid around its best point to a cell of
 *    1e-9; the objective is smooth there, so the minimiser agrees to ~1e-7 (we allow 1e-6
 *    relative to the scale of the inputs), and the prox objective must not exceed the brute
 *    force's by more than 1e-12 relative (it is the exact minimiser).
 *  - cubic root: evaluated in double, |φ(g) - c| <= 1e-13 · (g³ + |a| g² + c).
 *  - line projection vs Gaussian elimination of the dense normal equations: both double,
 *    condition number < 3 (diagonally dominant), so 1e-13.
 *  - divergence after the projection: the Poisson solve and the gradient are exact up to
 *    rounding, so |div| <= 1e4 u · max|f|/k (u the unit roundoff: a few hundred operations
 *    of the FFTs and the stencil; this is 2e-12 in float64 and 6e-4 relative in float32).
 *    A sign error or a wrong spacing in the gradient gives O(1). */
#include "test_util.h"

#include "common/bbot_math.h"

#include <advect/advect.h>
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static adv_context *cpu_context(int threads) {
    adv_context_opts o;
    adv_context_default_opts(&o);
    o.backend = ADV_BACKEND_CPU;
    o.cpu_threads = threads;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&o, &ctx), ADV_OK);
    return ctx;
}

/* ---- prox (O10) ------------------------------------------------------------------------ */

static double prox_objective(double gamma, double ft, double mt, double f, double m) {
    double pen;
    if (f > 0.0) pen = gamma * m * m / f;
    else pen = (m == 0.0 && f == 0.0) ? 0.0 : INFINITY;
    return 0.5 * (f - ft) * (f - ft) + 0.5 * (m - mt) * (m - mt) + pen;
}

/* Brute force over (f, m), f >= 0: a 201 x 201 grid on a box, then repeated zooms of the box
 * by 1/4 around the best point until the cell is below 1e-9 of the initial box. The
 * objective is convex, so the zoomed box keeps containing the minimiser. (0, 0) is a
 * candidate of its own (the lower semicontinuous extension there). */
static void prox_brute(double gamma, double ft, double mt, double *fb, double *mb) {
    const double span = fabs(ft) + fabs(mt) + 1.0;
    double f0 = 0.0, f1 = span, m0 = -span, m1 = span;
    double best = prox_objective(gamma, ft, mt, 0.0, 0.0), bf = 0.0, bm = 0.0;
    const int K = 200;
    for (int round = 0; round < 40 && (f1 - f0) > 1e-9 * span; ++round) {
        for (int i = 0; i <= K; ++i) {
            const double f = f0 + (f1 - f0) * i / K;
            if (f <= 0.0) continue;
            for (int j = 0; j <= K; ++j) {
                const double m = m0 + (m1 - m0) * j / K;
                const double v = prox_objective(gamma, ft, mt, f, m);
                if (v < best) best = v, bf = f, bm = m;
            }
        }
        const double wf = (f1 - f0) / 8.0, wm = (m1 - m0) / 8.0;
        f0 = fmax(0.0, bf - wf), f1 = bf + wf, m0 = bm - wm, m1 = bm + wm;
    }
    *fb = bf;
    *mb = bm;
}

Test(bbot_math, prox_matches_brute_force_minimisation) {
    tu_rng r;
    tu_rng_seed(&r, 17);
    int zero_cases = 0;
    for (int k = 0; k < 60; ++k) {
        const double gamma = k < 5 ? 1.0 : exp(tu_rng_uniform(&r, log(1e-2), log(10.0)));
        double ft = tu_rng_uniform(&r, -3.0, 8.0), mt = tu_rng_uniform(&r, -6.0, 6.0);
        if (k == 0) ft = 0.0, mt = 0.0;
        if (k == 1) ft = 2.0, mt = 0.0;   // c = 0: f* = f̃
        if (k == 2) ft = -0.5, mt = 0.0;  // c = 0, f̃ < 0: (0, 0)
        if (k == 3) ft = -5.0, mt = 0.3;  // a < 0, three real roots: (0, 0)
        if (k == 4) ft = -1.0, mt = 4.0;  // a < 0 with a large momentum
        double fs, ms;
        advk_bbot_prox_point(gamma, 1, ft, &mt, &fs, &ms);
        double fb, mb;
        prox_brute(gamma, ft, mt, &fb, &mb);
        const double scale = fabs(ft) + fabs(mt) + 1.0;
        const double ob = prox_objective(gamma, ft, mt, fb, mb);
        const double op = prox_objective(gamma, ft, mt, fs, ms);
        cr_expect(op <= ob + 1e-12 * scale * scale,
                  "case %d (gamma %g, f~ %g, m~ %g): prox objective %.17g > brute force %.17g", k,
                  gamma, ft, mt, op, ob);
        cr_expect(fabs(fs - fb) <= 1e-6 * scale && fabs(ms - mb) <= 1e-6 * scale,
                  "case %d (gamma %g, f~ %g, m~ %g): prox (%.12g, %.12g), brute force (%.12g, "
                  "%.12g)",
                  k, gamma, ft, mt, fs, ms, fb, mb);
        zero_cases += fs == 0.0;
    }
    cr_expect(zero_cases >= 2, "the (0,0) branch was exercised only %d times", zero_cases);
}

Test(bbot_math, prox_in_two_dimensions_scales_the_momentum) {
    // With m̃ in R², the minimiser keeps the direction of m̃: compare with the 1-D prox of |m̃|.
    const double gamma = 0.7, ft = 1.3, mt[2] = {0.9, -1.2};
    double fs, ms[2], fs1, ms1, mn = hypot(mt[0], mt[1]);
    advk_bbot_prox_point(gamma, 2, ft, mt, &fs, ms);
    advk_bbot_prox_point(gamma, 1, ft, &mn, &fs1, &ms1);
    cr_expect(fabs(fs - fs1) <= 1e-14 * fs1);
    cr_expect(fabs(ms[0] - ms1 * mt[0] / mn) <= 1e-14 && fabs(ms[1] - ms1 * mt[1] / mn) <= 1e-14);
    double fb, mb;
    prox_brute(gamma, ft, mn, &fb, &mb);
    cr_expect(fabs(fs - fb) <= 1e-6 && fabs(hypot(ms[0], ms[1]) - mb) <= 1e-6);
}

Test(bbot_math, cubic_root_is_the_largest_root) {
    const double as[] = {-1e3, -30.0, -2.0, -0.1, 0.0, 1e-8, 0.5, 1.0, 7.0, 1e3, 1e6};
    const double cs[] = {0.0, 1e-300, 1e-12, 1e-6, 1e-3, 0.1, 1.0, 10.0, 1e4, 1e9, 1e15};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; ++i)
        for (size_t j = 0; j < sizeof cs / sizeof cs[0]; ++j) {
            const double a = as[i], c = cs[j];
            const double g = advk_bbot_cubic_root(a, c);
            const double A = fmax(a, 0.0);
            cr_assert(isfinite(g) && g >= A, "a %g c %g: g %g below max(a,0)", a, c, g);
            const double res = g * g * (g - a) - c;
            const double mag = g * g * g + fabs(a) * g * g + c;
            cr_expect(fabs(res) <= 1e-13 * mag + 1e-300, "a %g c %g: residual %g (scale %g)", a,
                      c, res, mag);
            // Largest: φ is increasing past g (φ' = g (3g - 2a) >= 0), so no root beyond it.
            cr_expect(g * (3.0 * g - 2.0 * a) >= 0.0, "a %g c %g: g %g not on the last branch", a,
                      c, g);
        }
}

/* The branch-free form the CPU evaluates in vectors (Halley from the smallest upper bound)
 * agrees with the closed form to a few ulps over its whole range of validity, including
 * c = 0, a = 0 and the ends of the range; outside it advk_bbot_root_halley_ok is false. */
Test(bbot_math, halley_root_matches_the_closed_form) {
    tu_rng r;
    tu_rng_seed(&r, 11);
    double worst = 0.0;
    for (int k = 0; k < 200000; ++k) {
        const double u = tu_rng_uniform(&r, 0, 1), v = tu_rng_uniform(&r, 0, 1);
        const double w = tu_rng_uniform(&r, 0, 1);
        double a = (w < 0.45 ? -1.0 : 1.0) * pow(10.0, -8.0 + 16.0 * u);
        if (w > 0.9) a = 0.0;
        double c = pow(10.0, -30.0 + 60.0 * v);
        if (k % 97 == 0) c = 0.0;
        if (k % 89 == 0) c = k % 2 ? 1e-30 : 1e30;
        cr_assert(advk_bbot_root_halley_ok(a, c), "a %g c %g should be in range", a, c);
        const double g1 = advk_bbot_cubic_root(a, c), g2 = advk_bbot_cubic_root_halley(a, c);
        const double err = fabs(g2 - g1) / fmax(g1, 1e-300);
        if (err > worst) worst = err;
        cr_assert(err <= 4e-15, "a %.17g c %.17g: %.17g vs closed form %.17g", a, c, g2, g1);
    }
    cr_log_info("worst relative difference %.3g", worst);
    cr_assert(!advk_bbot_root_halley_ok(1.0, 1e31) && !advk_bbot_root_halley_ok(1.0, 1e-31) &&
              !advk_bbot_root_halley_ok(1e101, 1.0) && !advk_bbot_root_halley_ok(NAN, 1.0) &&
              !advk_bbot_root_halley_ok(1.0, NAN));
}

/* ---- per-line projection ----------------------------------------------------------------- */

/* Dense reference: minimise |u - ru|² + |I u - rv|² over the interior faces of one line with
 * faces 0 and L fixed, by forming the normal equations from the averaging matrix explicitly
 * and solving them by Gaussian elimination. */
static void line_reference(int L, const double *ru, const double *rv, double *u) {
    const int n = L - 1;
    double A[64][64] = {{0}}, b[64] = {0};
    for (int i = 0; i < n; ++i) {
        A[i][i] += 1.0;
        b[i] += ru[i + 1];
    }
    for (int j = 0; j < L; ++j) { // cell j averages faces j and j+1
        double rhs = rv[j];
        int idx[2] = {j - 1, j}; // unknown index of faces j and j+1 (-1 or n: fixed)
        if (j == 0) rhs -= 0.5 * ru[0];
        if (j == L - 1) rhs -= 0.5 * ru[L];
        for (int p = 0; p < 2; ++p) {
            if (idx[p] < 0 || idx[p] >= n) continue;
            b[idx[p]] += 0.5 * rhs;
            for (int q = 0; q < 2; ++q)
                if (idx[q] >= 0 && idx[q] < n) A[idx[p]][idx[q]] += 0.25;
        }
    }
    for (int k = 0; k < n; ++k) // no pivoting needed: diagonally dominant
        for (int i = k + 1; i < n; ++i) {
            const double f = A[i][k] / A[k][k];
            for (int j = k; j < n; ++j) A[i][j] -= f * A[k][j];
            b[i] -= f * b[k];
        }
    for (int i = n - 1; i >= 0; --i) {
        double s = b[i];
        for (int j = i + 1; j < n; ++j) s -= A[i][j] * u[j + 1];
        u[i + 1] = s / A[i][i];
    }
    u[0] = ru[0];
    u[L] = ru[L];
}

Test(bbot_math, line_projection_matches_dense_least_squares) {
    const int lengths[] = {1, 2, 3, 5, 8, 17, 32};
    tu_rng r;
    tu_rng_seed(&r, 5);
    // Two layouts of three lines: adjacent (S = 3, jf = jc = 1) as for the slow axes, and
    // contiguous lines one after the other (S = 1, jf = L + 1, jc = L) as for the last axis,
    // where the CPU's row-wise advk_bbot_lines_rows must reproduce advk_bbot_lines exactly.
    for (int layout = 0; layout < 2; ++layout)
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; ++li) {
            const int L = lengths[li];
            const int64_t S = layout ? 1 : 3, jf = layout ? L + 1 : 1, jc = layout ? L : 1;
            double cp[64], inv[64];
            advk_bbot_thomas_factors(L, cp, inv);
            double x1u[33 * 3], zu[33 * 3], x1v[32 * 3], zv[32 * 3], x2u[33 * 3];
            for (int i = 0; i <= L; ++i)
                for (int j = 0; j < 3; ++j) {
                    const int64_t f = i * S + j * jf;
                    x1u[f] = tu_rng_uniform(&r, -1, 2);
                    zu[f] = (i == 0 || i == L) ? x1u[f] : tu_rng_uniform(&r, -1, 2);
                }
            for (int i = 0; i < L * 3; ++i)
                x1v[i] = tu_rng_uniform(&r, -1, 2), zv[i] = tu_rng_uniform(&r, -1, 2);
            double zu0[33 * 3], zv0[32 * 3];
            memcpy(zu0, zu, sizeof zu);
            memcpy(zv0, zv, sizeof zv);
            const double mu = 1.5;
            double d2 = 0.0, x1sq = 0.0;
            if (layout == 1) { // the CPU's row-wise form must give the same values
                double x2r[33 * 3], zur[33 * 3], zvr[32 * 3], rhs[33 * 3], d2r = 0.0, x1r = 0.0;
                memcpy(zur, zu, sizeof zu);
                memcpy(zvr, zv, sizeof zv);
                advk_bbot_lines_f64(L, S, 3, jf, jc, cp, inv, mu, x2u, zu, x1u, zv, x1v, &d2,
                                    &x1sq);
                advk_bbot_lines_rows_f64(L, 3, cp, inv, mu, x2r, zur, x1u, zvr, x1v, rhs, &d2r,
                                         &x1r);
                cr_expect(memcmp(x2r, x2u, (size_t)(3 * (L + 1)) * sizeof(double)) == 0 &&
                              memcmp(zur, zu, (size_t)(3 * (L + 1)) * sizeof(double)) == 0 &&
                              memcmp(zvr, zv, (size_t)(3 * L) * sizeof(double)) == 0,
                          "L %d: the row-wise projection differs from advk_bbot_lines", L);
                cr_expect(fabs(d2r - d2) <= 1e-13 * (d2 + 1) && fabs(x1r - x1sq) <= 1e-13 * x1sq);
            } else {
                advk_bbot_lines_f64(L, S, 3, jf, jc, cp, inv, mu, x2u, zu, x1u, zv, x1v, &d2,
                                    &x1sq);
            }
            double ed2 = 0.0, ex1 = 0.0;
            for (int j = 0; j < 3; ++j) {
                double ru[33], rv[32], u[33];
                for (int i = 0; i <= L; ++i) ru[i] = 2 * x1u[i * S + j * jf] - zu0[i * S + j * jf];
                for (int i = 0; i < L; ++i) rv[i] = 2 * x1v[i * S + j * jc] - zv0[i * S + j * jc];
                line_reference(L, ru, rv, u);
                for (int i = 0; i <= L; ++i) {
                    const int64_t f = i * S + j * jf;
                    cr_expect(fabs(x2u[f] - u[i]) <= 1e-13, "layout %d L %d line %d face %d: %.17g vs %.17g",
                              layout, L, j, i, x2u[f], u[i]);
                    const double dd = u[i] - x1u[f];
                    cr_expect(fabs(zu[f] - (zu0[f] + mu * dd)) <= 1e-13);
                    ed2 += dd * dd;
                    ex1 += x1u[f] * x1u[f];
                }
                for (int i = 0; i < L; ++i) {
                    const int64_t cc = i * S + j * jc;
                    const double v = 0.5 * (u[i] + u[i + 1]), dv = v - x1v[cc];
                    cr_expect(fabs(zv[cc] - (zv0[cc] + mu * dv)) <= 1e-13);
                    ed2 += dv * dv;
                    ex1 += x1v[cc] * x1v[cc];
                }
            }
            cr_expect(fabs(d2 - ed2) <= 1e-12 * (ed2 + 1) && fabs(x1sq - ex1) <= 1e-12 * ex1);
        }
}

/* The CUDA kernel's tiled form (advk_bbot_tile_*), run here block by block with each step over
 * all its threads before the next (as the barriers order them), must give the values of
 * advk_bbot_lines bit for bit (same operations in the same order; only the sums add in another
 * order: 1e-12 relative). Geometries of the solver's components: lines along a slow axis (S >
 * 1, also S < tl so that a tile spans several o), along the contiguous axis (S = 1), lengths
 * 1, 2 and beyond 16, line counts that leave a partial last tile. Each tile size that the
 * kernel may choose runs, and each both ways: with x1.U given, and with the gradient update
 * fused into the load step (x1.U = z.U + ∇q formed there, against grad_kernel's arithmetic,
 * and written: x1.U starts as NaN). Outputs start as NaN and the tile is refilled with NaN for
 * every block, so an element no step covers fails. A wrong line base, a wrong fixed face or a
 * missing rounding to float fails too (each checked by breaking the code on purpose); the
 * element order of the load and update steps matters only for speed. */
#define TILE_CHECK(T, SFX)                                                                    \
    static void tile_check_##SFX(int64_t L, int64_t S, int64_t nlines, int tl, int grad,      \
                                 tu_rng *r) {                                                 \
        const int64_t nf = nlines * (L + 1), nc = nlines * L;                                 \
        T *x1u = malloc((size_t)nf * sizeof(T)), *zu = malloc((size_t)nf * sizeof(T));        \
        T *x1v = malloc((size_t)nc * sizeof(T)), *zv = malloc((size_t)nc * sizeof(T));        \
        T *x2a = malloc((size_t)nf * sizeof(T)), *x2b = malloc((size_t)nf * sizeof(T));       \
        T *zua = malloc((size_t)nf * sizeof(T)), *zva = malloc((size_t)nc * sizeof(T));       \
        double *cp = malloc((size_t)(L + 1) * sizeof(double));                                \
        double *inv = malloc((size_t)(L + 1) * sizeof(double));                              \
        double *A = malloc((size_t)(L + 1) * (size_t)(tl + 1) * sizeof(double));              \
        double *q = malloc((size_t)nc * sizeof(double));                                      \
        T *x1g = malloc((size_t)nf * sizeof(T));                                              \
        int64_t fb[16], cb[16];                                                               \
        cr_assert(x1u && zu && x1v && zv && x2a && x2b && zua && zva && cp && inv && A && q && x1g); \
        for (int64_t k = 0; k < nf; ++k)                                                      \
            x1u[k] = (T)tu_rng_uniform(r, -1, 2), zu[k] = (T)tu_rng_uniform(r, -1, 2);        \
        for (int64_t k = 0; k < nc; ++k)                                                      \
            x1v[k] = (T)tu_rng_uniform(r, -1, 2), zv[k] = (T)tu_rng_uniform(r, -1, 2),        \
            q[k] = tu_rng_uniform(r, -1, 1);                                                  \
        const double inv_sp = 7.0;                                                            \
        if (grad) { /* the reference's x1.U: the gradient update of z.U, as grad_kernel */    \
            for (int64_t o = 0; o < nlines / S; ++o)                                          \
                for (int64_t i = 0; i <= L; ++i)                                              \
                    for (int64_t s = 0; s < S; ++s) {                                         \
                        const int64_t f = (o * (L + 1) + i) * S + s, c = (o * L + i) * S + s; \
                        const double gr = (i == 0 || i == L) ? 0.0 : (q[c] - q[c - S]) * inv_sp; \
                        x1u[f] = (T)((double)zu[f] + gr);                                     \
                    }                                                                         \
            for (int64_t k = 0; k < nf; ++k) x1g[k] = (T)NAN; /* must be written */           \
        } else {                                                                              \
            memcpy(x1g, x1u, (size_t)nf * sizeof(T));                                         \
        }                                                                                     \
        memcpy(zua, zu, (size_t)nf * sizeof(T));                                              \
        memcpy(zva, zv, (size_t)nc * sizeof(T));                                              \
        for (int64_t k = 0; k < nf; ++k) x2a[k] = x2b[k] = (T)NAN;                            \
        advk_bbot_thomas_factors(L, cp, inv);                                                 \
        const double mu = 1.7;                                                                \
        double d2a = 0, x1a = 0, d2b = 0, x1b = 0;                                            \
        for (int64_t o = 0; o < nlines / S; ++o) /* reference: S adjacent lines per call */   \
            advk_bbot_lines_##SFX(L, S, S, 1, 1, cp, inv, mu, x2a + o * (L + 1) * S,          \
                                  zua + o * (L + 1) * S, x1u + o * (L + 1) * S,               \
                                  zva + o * L * S, x1v + o * L * S, &d2a, &x1a);              \
        advk_bbot_tile tp = {L, S, nlines, 0, tl, tl + 1};                                    \
        for (tp.first = 0; tp.first < nlines; tp.first += tl) {                               \
            for (int k = 0; k < (L + 1) * (tl + 1); ++k) A[k] = NAN;                          \
            for (int t = 0; t < tl; ++t) advk_bbot_tile_bases(&tp, t, fb, cb);                \
            for (int e = 0; e < tl * (L + 1); ++e)                                            \
                advk_bbot_tile_load_##SFX(&tp, e, fb, cb, x1g, zu, x1v, zv, grad ? q : NULL,  \
                                          inv_sp, A);                                         \
            for (int t = 0; t < tl; ++t) advk_bbot_tile_solve_##SFX(&tp, t, cp, inv, A);      \
            for (int e = 0; e < tl * (L + 1); ++e)                                            \
                advk_bbot_tile_face_##SFX(&tp, e, fb, mu, A, x2b, zu, x1g, &d2b, &x1b);       \
            for (int e = 0; e < tl * L; ++e)                                                  \
                advk_bbot_tile_cell_##SFX(&tp, e, cb, mu, A, zv, x1v, &d2b, &x1b);            \
        }                                                                                     \
        cr_expect(memcmp(x2a, x2b, (size_t)nf * sizeof(T)) == 0 &&                            \
                      memcmp(zua, zu, (size_t)nf * sizeof(T)) == 0 &&                         \
                      memcmp(zva, zv, (size_t)nc * sizeof(T)) == 0 &&                         \
                      memcmp(x1u, x1g, (size_t)nf * sizeof(T)) == 0,                          \
                  #SFX " L %lld S %lld lines %lld tl %d grad %d: the tiled projection differs", \
                  (long long)L, (long long)S, (long long)nlines, tl, grad);                   \
        cr_expect(fabs(d2b - d2a) <= 1e-12 * d2a && fabs(x1b - x1a) <= 1e-12 * x1a,           \
                  #SFX " L %lld S %lld tl %d: sums %.17g %.17g vs %.17g %.17g", (long long)L,  \
                  (long long)S, tl, d2b, x1b, d2a, x1a);                                      \
        free(x1u), free(zu), free(x1v), free(zv), free(x2a), free(x2b), free(zua), free(zva); \
        free(cp), free(inv), free(A), free(q), free(x1g);                                     \
    }
TILE_CHECK(double, f64)
TILE_CHECK(float, f32)

Test(bbot_math, tiled_line_projection_matches_advk_bbot_lines) {
    // {L, S, lines}: lines is a multiple of S (whole o-rows), as in the solver's components.
    const int64_t shapes[][3] = {{1, 7, 21},  {2, 1, 5},   {6, 35, 70}, {17, 3, 39},
                                 {37, 1, 19}, {64, 40, 120}, {129, 1, 33}, {5, 16, 48}};
    const int tls[] = {1, 2, 4, 8, 16};
    tu_rng r;
    tu_rng_seed(&r, 11);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; ++k)
        for (size_t j = 0; j < sizeof tls / sizeof tls[0]; ++j) {
            for (int grad = 0; grad < 2; ++grad) {
                tile_check_f64(shapes[k][0], shapes[k][1], shapes[k][2], tls[j], grad, &r);
                tile_check_f32(shapes[k][0], shapes[k][1], shapes[k][2], tls[j], grad, &r);
            }
        }
}

/* ---- velocity interpolation -------------------------------------------------------------- */

Test(bbot_math, velocity_interpolation_is_exact_for_linear_fields) {
    // A 2-D grid (P = 4, N = 5 x 3) holding v_a(t, x) = α_a + β_a t + <κ_a, x> at the centres.
    advk_bbot_grid g;
    memset(&g, 0, sizeof g);
    g.d = 2, g.P = 4, g.n[0] = 5, g.n[1] = 3, g.n[2] = 1, g.M = 15, g.cells = 60;
    g.S[0] = 15, g.S[1] = 3, g.S[2] = 1;
    const double al[2] = {0.3, -0.2}, be[2] = {1.1, 0.4}, ka[2][2] = {{0.5, -0.7}, {0.2, 0.9}};
    double vel[60 * 2];
    for (int j = 0; j < 4; ++j)
        for (int i0 = 0; i0 < 5; ++i0)
            for (int i1 = 0; i1 < 3; ++i1) {
                const double t = (j + 0.5) / 4, x0 = (i0 + 0.5) / 5, x1 = (i1 + 0.5) / 3;
                for (int a = 0; a < 2; ++a)
                    vel[((j * 5 + i0) * 3 + i1) * 2 + a] = al[a] + be[a] * t + ka[a][0] * x0 + ka[a][1] * x1;
            }
    // Inside the hull of the centres: exact.
    tu_rng r;
    tu_rng_seed(&r, 3);
    for (int k = 0; k < 200; ++k) {
        const double t = tu_rng_uniform(&r, 0.125, 0.875);
        const double x[2] = {tu_rng_uniform(&r, 0.1, 0.9), tu_rng_uniform(&r, 1.0 / 6, 5.0 / 6)};
        double v[2];
        advk_bbot_velocity_at_f64(&g, vel, t, x, v);
        for (int a = 0; a < 2; ++a) {
            const double ref = al[a] + be[a] * t + ka[a][0] * x[0] + ka[a][1] * x[1];
            cr_expect(fabs(v[a] - ref) <= 1e-14, "t %g x (%g, %g) comp %d: %.17g vs %.17g", t, x[0],
                      x[1], a, v[a], ref);
        }
    }
    // Walls: the normal component vanishes on the wall, the tangential one is held.
    double v[2], xw[2] = {0.0, 0.5};
    advk_bbot_velocity_at_f64(&g, vel, 0.5, xw, v);
    cr_expect(fabs(v[0]) <= 1e-15, "normal velocity at the wall x0 = 0: %g", v[0]);
    const double tangential = al[1] + be[1] * 0.5 + ka[1][0] * 0.1 + ka[1][1] * 0.5;
    cr_expect(fabs(v[1] - tangential) <= 1e-14, "tangential velocity at the wall: %g vs %g", v[1],
              tangential);
    double xo[2] = {1.7, -3.0}, vo[2], xc[2] = {1.0, 0.0}, vc[2];
    advk_bbot_velocity_at_f64(&g, vel, 1.0, xo, vo);
    advk_bbot_velocity_at_f64(&g, vel, 1.0, xc, vc);
    cr_expect(vo[0] == vc[0] && vo[1] == vc[1] && vc[0] == 0.0 && vc[1] == 0.0,
              "positions outside the box are clamped onto it (corner: both normal)");
}

/* ---- public API: continuity projection ------------------------------------------------- */

typedef struct grid_case {
    int d;
    int64_t n[3];
    int64_t P;
} grid_case;

static int64_t cells_of(const grid_case *c) {
    int64_t M = 1;
    for (int a = 0; a < c->d; ++a) M *= c->n[a];
    return M;
}

static adv_bbot_plan *make_plan(adv_context *ctx, const grid_case *c, adv_precision p,
                                int64_t iters, adv_bbot_opts *out_opts) {
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    o.precision = p;
    o.ndim = c->d;
    for (int a = 0; a < c->d; ++a) o.shape[a] = c->n[a];
    o.time_steps = c->P;
    o.max_iterations = iters;
    o.tolerance = 0.0;
    o.cost_tolerance = 0.0;
    if (out_opts) *out_opts = o;
    adv_bbot_plan *plan = NULL;
    adv_status st = adv_bbot_plan_create(ctx, &o, &plan);
    cr_assert_eq(st, ADV_OK, "plan_create: %s", adv_context_last_error(ctx));
    return plan;
}

Test(bbot_api, projection_gives_zero_divergence_and_keeps_boundaries) {
    const grid_case cases[] = {{1, {9, 1, 1}, 5}, {2, {6, 5, 1}, 4}, {2, {7, 1, 1}, 1},
                               {3, {4, 3, 5}, 3}, {3, {1, 2, 3}, 2}};
    adv_context *ctx = cpu_context(1);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci)
        for (int pi = 0; pi < 2; ++pi) {
            const grid_case *c = &cases[ci];
            const adv_precision p = pi ? ADV_FLOAT64 : ADV_FLOAT32;
            const int64_t M = cells_of(c), P = c->P;
            double *r0 = tu_calloc((size_t)M, sizeof(double)), *r1 = tu_calloc((size_t)M, sizeof(double));
            tu_fill_uniform(r0, (size_t)M, 0.0, 3.0, 11 + ci);
            tu_fill_uniform(r1, (size_t)M, 0.5, 1.0, 23 + ci);
            r0[0] = 0.0; // a zero cell is allowed
            tu_round_to_precision(r0, (size_t)M, p);
            tu_round_to_precision(r1, (size_t)M, p);
            void *h0 = tu_to_precision(r0, (size_t)M, p), *h1 = tu_to_precision(r1, (size_t)M, p);
            adv_bbot_plan *plan = make_plan(ctx, c, p, 3, NULL);
            adv_bbot_result res = {.struct_size = sizeof res};
            cr_assert_eq(adv_bbot_solve(plan, h0, h1, NULL, NULL, NULL, &res), ADV_OK, "%s",
                         adv_context_last_error(ctx));
            // Staggered solution.
            int64_t nm = 0, faces[3];
            for (int a = 0; a < c->d; ++a) {
                faces[a] = P * M / c->n[a] * (c->n[a] + 1);
                nm += faces[a];
            }
            const size_t es = tu_real_size(p);
            void *fraw = tu_calloc((size_t)((P + 1) * M), es), *mraw = tu_calloc((size_t)nm, es);
            cr_assert_eq(adv_bbot_get_staggered(plan, fraw, mraw), ADV_OK);
            double *f = tu_calloc((size_t)((P + 1) * M), sizeof(double));
            double *m = tu_calloc((size_t)nm, sizeof(double));
            tu_from_precision(f, fraw, (size_t)((P + 1) * M), p);
            tu_from_precision(m, mraw, (size_t)nm, p);
            double s0 = 0, s1 = 0, fmaxv = 0;
            for (int64_t i = 0; i < M; ++i) s0 += r0[i], s1 += r1[i];
            for (int64_t i = 0; i < (P + 1) * M; ++i) fmaxv = fmax(fmaxv, fabs(f[i]));
            const double u = tu_unit_roundoff(p);
            // Boundary values: ρ0, ρ1 normalised to mean 1, zero flux through the walls.
            for (int64_t i = 0; i < M; ++i) {
                cr_expect(fabs(f[i] - r0[i] * M / s0) <= 4 * u * (1 + f[i]), "f(0) case %zu %s", ci,
                          tu_precision_name(p));
                cr_expect(fabs(f[P * M + i] - r1[i] * M / s1) <= 4 * u * (1 + f[P * M + i]),
                          "f(1) case %zu %s", ci, tu_precision_name(p));
            }
            int64_t off = 0;
            double div_max = 0.0;
            for (int a = 0; a < c->d; ++a) {
                int64_t inner = 1;
                for (int b = a + 1; b < c->d; ++b) inner *= c->n[b];
                const int64_t L = c->n[a], O = P * M / (L * inner);
                for (int64_t o = 0; o < O; ++o)
                    for (int64_t s = 0; s < inner; ++s) {
                        cr_expect(m[off + (o * (L + 1)) * inner + s] == 0.0, "wall face not 0");
                        cr_expect(m[off + (o * (L + 1) + L) * inner + s] == 0.0, "wall face not 0");
                    }
                off += faces[a];
            }
            for (int64_t j = 0; j < P; ++j)
                for (int64_t i = 0; i < M; ++i) {
                    const int64_t cell = j * M + i;
                    double dv = (f[(j + 1) * M + i] - f[j * M + i]) * P;
                    int64_t moff = 0;
                    for (int a = 0; a < c->d; ++a) {
                        int64_t inner = 1;
                        for (int b = a + 1; b < c->d; ++b) inner *= c->n[b];
                        const int64_t L = c->n[a], o = cell / (L * inner);
                        const int64_t lo = cell + o * inner;
                        dv += (m[moff + lo + inner] - m[moff + lo]) * L;
                        moff += faces[a];
                    }
                    div_max = fmax(div_max, fabs(dv));
                }
            const double tol = 1e4 * u * fmaxv * P;
            cr_expect(div_max <= tol, "case %zu %s: max |div| %g > %g", ci, tu_precision_name(p),
                      div_max, tol);
            cr_expect(res.mass_error <= 1e3 * u, "mass error %g", res.mass_error);
            free(r0), free(r1), free(h0), free(h1), free(fraw), free(mraw), free(f), free(m);
            adv_bbot_plan_destroy(plan);
        }
    adv_context_destroy(ctx);
}

/* ---- public API: options, results, history ----------------------------------------------- */

/* Two bumps on a 12 x 10 grid, in double. */
static void bumps(int64_t n0, int64_t n1, double *r0, double *r1, double mass) {
    double s0 = 0, s1 = 0;
    for (int64_t i = 0; i < n0; ++i)
        for (int64_t j = 0; j < n1; ++j) {
            const double x = (i + 0.5) / n0, y = (j + 0.5) / n1;
            r0[i * n1 + j] = exp(-((x - 0.3) * (x - 0.3) + (y - 0.4) * (y - 0.4)) / 0.02);
            r1[i * n1 + j] = exp(-((x - 0.65) * (x - 0.65) + (y - 0.6) * (y - 0.6)) / 0.03);
            s0 += r0[i * n1 + j], s1 += r1[i * n1 + j];
        }
    for (int64_t k = 0; k < n0 * n1; ++k) r0[k] *= mass * n0 * n1 / s0, r1[k] *= mass * n0 * n1 / s1;
}

Test(bbot_api, unnormalised_masses_scale_the_outputs) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    double r0[120], r1[120], q0[120], q1[120];
    bumps(12, 10, r0, r1, 3.0);
    bumps(12, 10, q0, q1, 1.0);
    adv_bbot_opts o;
    adv_bbot_plan *pa = make_plan(ctx, &c, ADV_FLOAT64, 40, &o);
    o.normalize = 0;
    adv_bbot_plan *pb = NULL;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &pb), ADV_OK);
    double rho_a[7 * 120], rho_b[7 * 120];
    adv_bbot_result ra = {.struct_size = sizeof ra}, rb = {.struct_size = sizeof rb};
    cr_assert_eq(adv_bbot_solve(pa, q0, q1, rho_a, NULL, NULL, &ra), ADV_OK);
    cr_assert_eq(adv_bbot_solve(pb, r0, r1, rho_b, NULL, NULL, &rb), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    cr_expect(fabs(rb.cost - 3.0 * ra.cost) <= 1e-12 * rb.cost, "cost %.17g vs 3 x %.17g", rb.cost,
              ra.cost);
    cr_expect(fabs(ra.mass - 1.0) < 1e-15 && fabs(rb.mass - 3.0) <= 1e-12);
    for (int k = 0; k < 7 * 120; ++k)
        cr_expect(fabs(rho_b[k] - 3.0 * rho_a[k]) <= 1e-12 * (1 + fabs(rho_b[k])));
    // The normalised solve ignores the input masses.
    adv_bbot_result rc = {.struct_size = sizeof rc};
    cr_assert_eq(adv_bbot_solve(pa, r0, r1, NULL, NULL, NULL, &rc), ADV_OK);
    cr_expect(fabs(rc.cost - ra.cost) <= 1e-12 * ra.cost);
    adv_bbot_plan_destroy(pa);
    adv_bbot_plan_destroy(pb);
    adv_context_destroy(ctx);
}

/* The densities' units do not change the run: the same bumps times 1e-170 and times 1e160
 * give the iterations, costs and (rescaled) density of the unit-scale run. (Σρ² in plain
 * double used to underflow to 0 and overflow: "diverged at iteration 1", "mass overflows".) */
Test(bbot_api, input_units_do_not_change_the_run) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    double r0[120], r1[120], s0[120], s1[120];
    bumps(12, 10, r0, r1, 1.0);
    adv_bbot_opts o;
    adv_bbot_plan *plan = make_plan(ctx, &c, ADV_FLOAT64, 300, &o);
    adv_bbot_plan_destroy(plan);
    o.tolerance = 1e-3;
    o.cost_tolerance = 1e-5;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK);
    double rho_ref[7 * 120], rho[7 * 120];
    adv_bbot_result ref = {.struct_size = sizeof ref};
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, rho_ref, NULL, NULL, &ref), ADV_OK);
    const double units[2] = {1e-170, 1e160};
    for (int u = 0; u < 2; ++u) {
        for (int k = 0; k < 120; ++k) s0[k] = r0[k] * units[u], s1[k] = r1[k] * units[u];
        adv_bbot_result r = {.struct_size = sizeof r};
        cr_assert_eq(adv_bbot_solve(plan, s0, s1, rho, NULL, NULL, &r), ADV_OK, "units %g: %s",
                     units[u], adv_context_last_error(ctx));
        cr_expect_eq(r.iterations, ref.iterations, "units %g", units[u]);
        cr_expect(fabs(r.cost - ref.cost) <= 1e-12 * ref.cost, "units %g: cost %.17g vs %.17g",
                  units[u], r.cost, ref.cost);
        for (int k = 0; k < 7 * 120; ++k)
            cr_expect(fabs(rho[k] - rho_ref[k]) <= 1e-12 * (1.0 + fabs(rho_ref[k])));
    }
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}

/* path_cost is the energy of the returned path, recomputed here from the returned ρ (time
 * faces, averaged to the cell centres) and momentum over the cells above the velocity
 * threshold; it meets cost at convergence and differs from it after a few iterations. */
Test(bbot_api, path_cost_is_the_energy_of_the_returned_path) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    double r0[120], r1[120];
    bumps(12, 10, r0, r1, 1.0);
    adv_bbot_opts o;
    adv_bbot_plan *plan = make_plan(ctx, &c, ADV_FLOAT64, 3, &o);
    double rho[7 * 120], mom[6 * 120 * 2];
    const int64_t iters[2] = {3, 3000};
    double gap[2];
    for (int r = 0; r < 2; ++r) {
        adv_bbot_plan_destroy(plan);
        o.max_iterations = iters[r];
        o.tolerance = r ? 1e-5 : 0.0;
        o.cost_tolerance = r ? 1e-8 : 0.0;
        cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK);
        adv_bbot_result res = {.struct_size = sizeof res};
        cr_assert_eq(adv_bbot_solve(plan, r0, r1, rho, mom, NULL, &res), ADV_OK);
        double e = 0.0;
        for (int j = 0; j < 6; ++j)
            for (int s = 0; s < 120; ++s) {
                const double rbar = 0.5 * (rho[j * 120 + s] + rho[(j + 1) * 120 + s]);
                if (!(rbar > o.velocity_threshold)) continue;
                for (int a = 0; a < 2; ++a) e += pow(mom[(j * 120 + s) * 2 + a], 2) / rbar;
            }
        e *= 1.0 / (6.0 * 120.0);
        cr_expect(fabs(res.path_cost - e) <= 1e-12 * e, "%lld iterations: path_cost %.17g, "
                  "recomputed %.17g", (long long)iters[r], res.path_cost, e);
        gap[r] = fabs(res.path_cost - res.cost) / res.cost;
        fprintf(stderr, "measured after %lld iterations: cost %.6g, path_cost %.6g (gap %.2e)\n",
                (long long)res.iterations, res.cost, res.path_cost, gap[r]);
    }
    cr_expect(gap[1] <= 1e-3, "converged: cost and path_cost differ by %g", gap[1]);
    cr_expect(gap[0] > 10.0 * gap[1], "3 iterations: gap %g not above the converged %g", gap[0], gap[1]);
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}

typedef struct progress_log {
    int64_t calls, stop_at, last_iteration;
    double first_change;
} progress_log;

static int progress_cb(void *user, int64_t max_iterations, const adv_bbot_iterate *it) {
    progress_log *l = user;
    if (l->calls == 0) l->first_change = it->cost_change;
    l->calls++;
    l->last_iteration = it->iteration;
    (void)max_iterations;
    return l->stop_at > 0 && it->iteration >= l->stop_at;
}

Test(bbot_api, history_progress_and_interruption) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    double r0[120], r1[120];
    bumps(12, 10, r0, r1, 1.0);
    adv_bbot_opts o;
    adv_bbot_plan *tmp = make_plan(ctx, &c, ADV_FLOAT64, 30, &o);
    adv_bbot_plan_destroy(tmp);
    progress_log log = {0};
    o.progress = progress_cb;
    o.progress_user = &log;
    adv_bbot_plan *plan = NULL;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK);
    adv_bbot_result res = {.struct_size = sizeof res};
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, NULL, NULL, NULL, &res), ADV_OK);
    cr_expect_eq(res.iterations, 30);
    cr_expect_eq(res.total_iterations, 30);
    cr_expect(!res.converged && !res.interrupted);
    cr_expect_eq(log.calls, 30);
    cr_expect(isinf(log.first_change));
    adv_bbot_iterate h[40];
    int64_t count = -1;
    cr_assert_eq(adv_bbot_get_history(plan, 40, h, &count), ADV_OK);
    cr_expect_eq(count, 30);
    for (int k = 0; k < 30; ++k) {
        cr_expect_eq(h[k].iteration, k + 1);
        // Iteration 1 starts from m = 0, whose prox has zero cost; later costs are positive.
        cr_expect(isfinite(h[k].cost) && (k == 0 ? h[k].cost >= 0 : h[k].cost > 0) &&
                  h[k].divergence_residual >= 0, "iteration %d: cost %g", k + 1, h[k].cost);
        if (k > 0)
            cr_expect(fabs(h[k].cost_change - fabs(h[k].cost - h[k - 1].cost) / h[k].cost) <= 1e-15);
    }
    cr_expect(fabs(res.divergence_residual - h[29].divergence_residual) == 0.0);
    // Interruption from the callback.
    log = (progress_log){.stop_at = 7};
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, NULL, NULL, NULL, &res), ADV_OK);
    cr_expect(res.interrupted && !res.converged);
    cr_expect_eq(res.iterations, 7);
    cr_expect_eq(log.calls, 7);
    // Tolerances reached: stops before max_iterations with converged set, at the first
    // iteration where both hold. Each pair makes the other criterion the later one.
    adv_bbot_plan_destroy(plan);
    o.progress = NULL;
    o.max_iterations = 2000;
    const double tols[3][2] = {{1e-2, 1e-3}, {0.3, 1e-7}, {1e-3, 0.5}};
    adv_bbot_iterate *hist = tu_calloc(2000, sizeof *hist);
    for (int c = 0; c < 3; ++c) {
        o.tolerance = tols[c][0];
        o.cost_tolerance = tols[c][1];
        cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK);
        cr_assert_eq(adv_bbot_solve(plan, r0, r1, NULL, NULL, NULL, &res), ADV_OK);
        cr_expect(res.converged && res.iterations < 2000, "tolerances %g, %g: converged %d after %lld",
                  o.tolerance, o.cost_tolerance, res.converged, (long long)res.iterations);
        cr_expect(res.divergence_residual <= o.tolerance && res.cost_change <= o.cost_tolerance,
                  "tolerances %g, %g: stopped at residual %g, cost change %g", o.tolerance,
                  o.cost_tolerance, res.divergence_residual, res.cost_change);
        cr_assert_eq(adv_bbot_get_history(plan, 2000, hist, &count), ADV_OK);
        cr_assert_eq(count, res.iterations);
        int64_t first_div = -1, first_cost = -1;
        for (int64_t k = 0; k < count; ++k) {
            if (first_div < 0 && hist[k].divergence_residual <= o.tolerance) first_div = k;
            if (first_cost < 0 && hist[k].cost_change <= o.cost_tolerance) first_cost = k;
            if (k + 1 < count)
                cr_expect(!(hist[k].divergence_residual <= o.tolerance && hist[k].cost_change <= o.cost_tolerance),
                          "tolerances %g, %g: both met at iteration %lld, the solve went on", o.tolerance,
                          o.cost_tolerance, (long long)k + 1);
        }
        // The pair is chosen so that one criterion is met well before the other.
        cr_expect(first_div >= 0 && first_cost >= 0 && first_div != first_cost,
                  "tolerances %g, %g: first met at %lld (residual) and %lld (cost)", o.tolerance,
                  o.cost_tolerance, (long long)first_div, (long long)first_cost);
        adv_bbot_plan_destroy(plan);
    }
    free(hist);
    adv_context_destroy(ctx);
}

/* Calls on the plan from its own progress callback. A nested solve once reset the history
 * under the running loop, which then wrote past the reallocated block (heap overflow under
 * ASan) and returned another cost; nested solve, resume, checkpoint load and destroy are now
 * refused, and the run is exactly the one without them. */
static char *temp_path(const char *name);

typedef struct nested_calls {
    adv_bbot_plan **plan;
    const double *r0, *r1;
    const char *path;
    int calls;
    adv_status solve, resume, load, destroy, save;
} nested_calls;

static int nested_cb(void *user, int64_t max_iterations, const adv_bbot_iterate *it) {
    nested_calls *n = user;
    (void)max_iterations;
    if (it->iteration != 3) return 0;
    ++n->calls;
    adv_bbot_plan *p = *n->plan;
    n->save = adv_bbot_checkpoint_save(p, n->path);
    n->solve = adv_bbot_solve(p, n->r0, n->r1, NULL, NULL, NULL, NULL);
    n->resume = adv_bbot_resume(p, NULL, NULL, NULL, NULL);
    n->load = adv_bbot_checkpoint_load(p, n->path);
    n->destroy = adv_bbot_plan_destroy(p);
    return 0;
}

Test(bbot_api, calls_from_the_progress_callback) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    double r0[120], r1[120], rho_ref[7 * 120], rho[7 * 120];
    bumps(12, 10, r0, r1, 1.0);
    adv_bbot_opts o;
    adv_bbot_plan *ref = make_plan(ctx, &c, ADV_FLOAT64, 300, &o);
    adv_bbot_result rr = {.struct_size = sizeof rr}, res = {.struct_size = sizeof res};
    cr_assert_eq(adv_bbot_solve(ref, r0, r1, rho_ref, NULL, NULL, &rr), ADV_OK);
    adv_bbot_plan *plan = NULL;
    char *path = temp_path("nested");
    nested_calls n = {&plan, r0, r1, path, 0, 0, 0, 0, 0, 0};
    o.progress = nested_cb;
    o.progress_user = &n;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK);
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, rho, NULL, NULL, &res), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    cr_expect_eq(n.calls, 1);
    cr_expect_eq(n.save, ADV_OK, "checkpoint_save from the callback");
    cr_expect_eq(n.solve, ADV_ERR_INVALID_VALUE);
    cr_expect_eq(n.resume, ADV_ERR_INVALID_VALUE);
    cr_expect_eq(n.load, ADV_ERR_INVALID_VALUE);
    cr_expect_eq(n.destroy, ADV_ERR_INVALID_VALUE);
    cr_expect_eq(res.iterations, 300);
    cr_expect(res.cost == rr.cost, "cost %.17g vs %.17g", res.cost, rr.cost);
    cr_expect(memcmp(rho, rho_ref, sizeof rho) == 0, "the densities differ");
    adv_bbot_iterate h[300];
    int64_t count = 0;
    cr_assert_eq(adv_bbot_get_history(plan, 300, h, &count), ADV_OK);
    cr_expect_eq(count, 300);
    cr_expect_eq(h[299].iteration, 300);
    // After the run the same calls work again.
    cr_expect_eq(adv_bbot_checkpoint_load(plan, path), ADV_OK, "%s", adv_context_last_error(ctx));
    remove(path);
    free(path);
    cr_expect_eq(adv_bbot_plan_destroy(plan), ADV_OK);
    adv_bbot_plan_destroy(ref);
    adv_context_destroy(ctx);
}

/* Outputs that share memory are refused with nothing written (momentum == velocity returned
 * the velocity in both); the inputs may lie inside an output; velocity_eval works in place
 * (v == x) and refuses a shifted overlap, which read positions already overwritten. */
Test(bbot_api, overlapping_outputs) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    const int64_t M = 120, P = 6, d = 2;
    double r0[120], r1[120];
    bumps(12, 10, r0, r1, 1.0);
    adv_bbot_plan *plan = make_plan(ctx, &c, ADV_FLOAT64, 20, NULL);
    const size_t face = (size_t)((P + 1) * M), cell = (size_t)(P * M * d);
    double *buf = tu_calloc(face + 2 * cell, sizeof(double)), *copy = tu_calloc(face + 2 * cell, sizeof(double));
    tu_poison(buf, (face + 2 * cell) * sizeof(double));
    memcpy(copy, buf, (face + 2 * cell) * sizeof(double));
    double *rho = buf, *mom = buf + face, *vel = buf + face + cell;
    cr_expect_eq(adv_bbot_solve(plan, r0, r1, rho, mom, mom, NULL), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_solve(plan, r0, r1, rho, mom + 1, vel, NULL), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_solve(plan, r0, r1, rho, rho + face - 1, vel, NULL), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_solve(plan, r0, r1, vel - 1, NULL, vel, NULL), ADV_ERR_INVALID_VALUE);
    cr_expect(memcmp(buf, copy, (face + 2 * cell) * sizeof(double)) == 0, "an output was written");
    cr_expect_eq(adv_bbot_resume(plan, NULL, mom, mom, NULL), ADV_ERR_INVALID_VALUE);
    // Inputs inside the rho output: read before anything is written.
    double rho_ref[7 * 120];
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, rho_ref, NULL, NULL, NULL), ADV_OK);
    memcpy(rho, r0, sizeof r0);
    memcpy(rho + M, r1, sizeof r1);
    cr_assert_eq(adv_bbot_solve(plan, rho, rho + M, rho, mom, vel, NULL), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    cr_expect(memcmp(rho, rho_ref, sizeof rho_ref) == 0, "inputs inside the output");
    // velocity_eval: in place, and a shifted overlap.
    double x[2 * 9], v[2 * 9], xv[2 * 10];
    tu_fill_uniform(x, 18, 0.0, 1.0, 91);
    cr_assert_eq(adv_bbot_velocity_eval(plan, 0.3, 9, x, v), ADV_OK);
    memcpy(xv, x, sizeof x);
    cr_assert_eq(adv_bbot_velocity_eval(plan, 0.3, 9, xv, xv), ADV_OK);
    cr_expect(memcmp(xv, v, sizeof v) == 0, "in place");
    memcpy(xv, x, sizeof x);
    cr_expect_eq(adv_bbot_velocity_eval(plan, 0.3, 9, xv, xv + 2), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_velocity_eval(plan, 0.3, 9, xv + 2, xv), ADV_ERR_INVALID_VALUE);
    cr_expect(memcmp(xv, x, sizeof x) == 0, "x was written");
    free(buf), free(copy);
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}

Test(bbot_api, warm_start_needs_fewer_iterations) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    double r0[120], r1[120];
    bumps(12, 10, r0, r1, 1.0);
    adv_bbot_opts o;
    adv_bbot_plan *tmp = make_plan(ctx, &c, ADV_FLOAT64, 1, &o);
    adv_bbot_plan_destroy(tmp);
    o.max_iterations = 3000;
    o.tolerance = 1e-3;
    o.cost_tolerance = 1e-5;
    o.warm_start = 1;
    adv_bbot_plan *plan = NULL;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK);
    adv_bbot_result cold = {.struct_size = sizeof cold}, warm = {.struct_size = sizeof warm};
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, NULL, NULL, NULL, &cold), ADV_OK);
    cr_assert(cold.converged);
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, NULL, NULL, NULL, &warm), ADV_OK);
    cr_expect(warm.converged && warm.iterations * 4 < cold.iterations,
              "warm start took %lld iterations, cold %lld", (long long)warm.iterations,
              (long long)cold.iterations);
    cr_expect_eq(warm.total_iterations, cold.iterations + warm.iterations);
    cr_expect(fabs(warm.cost - cold.cost) <= 1e-3 * cold.cost);
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}

/* ---- checkpoints --------------------------------------------------------------------------- */

typedef struct ckpt_cb {
    adv_bbot_plan **plan;
    int64_t at;
    const char *path;
    adv_status st;
} ckpt_cb;

static int save_cb(void *user, int64_t max_iterations, const adv_bbot_iterate *it) {
    ckpt_cb *c = user;
    (void)max_iterations;
    if (it->iteration == c->at) c->st = adv_bbot_checkpoint_save(*c->plan, c->path);
    return 0;
}

/* Files of this process' own directory (so that its temporary files can be counted). */
static char *temp_path(const char *name) {
    char *p = tu_calloc(512, 1);
    snprintf(p, 512, "/tmp/advect_bbot_%ld", (long)getpid());
    cr_assert(mkdir(p, 0700) == 0 || errno == EEXIST, "mkdir %s", p);
    snprintf(p, 512, "/tmp/advect_bbot_%ld/%s", (long)getpid(), name);
    return p;
}

/* Hidden temporary files (.advect-*) left in the directory of path. */
static int temporaries_beside(const char *path) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += strncmp(e->d_name, ".advect-", 8) == 0;
    closedir(d);
    return n;
}

Test(bbot_api, checkpoint_resume_reproduces_the_run) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    double r0[120], r1[120];
    bumps(12, 10, r0, r1, 1.0);
    char *path = temp_path("resume.ckpt");
    adv_bbot_opts o;
    adv_bbot_plan *tmp = make_plan(ctx, &c, ADV_FLOAT64, 1, &o);
    adv_bbot_plan_destroy(tmp);
    adv_bbot_plan *full = NULL;
    ckpt_cb cb = {&full, 25, path, ADV_ERR_INTERNAL};
    o.max_iterations = 60;
    o.progress = save_cb;
    o.progress_user = &cb;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &full), ADV_OK);
    double rho_full[7 * 120], rho_res[7 * 120];
    adv_bbot_result rf = {.struct_size = sizeof rf}, rr = {.struct_size = sizeof rr};
    cr_assert_eq(adv_bbot_solve(full, r0, r1, rho_full, NULL, NULL, &rf), ADV_OK);
    cr_assert_eq(cb.st, ADV_OK, "checkpoint_save: %s", adv_context_last_error(ctx));
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "checkpoint file exists");
    fclose(f);
    cr_expect_eq(temporaries_beside(path), 0, "a temporary file was left");
    // A target the rename would replace (a FIFO; /dev/null as root) is refused, left alone.
    char *fifo = temp_path("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_expect_eq(adv_bbot_checkpoint_save(full, fifo), ADV_ERR_IO);
    struct stat sb;
    cr_expect(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO was replaced");
    cr_expect_eq(temporaries_beside(path), 0, "a temporary file was left");
    remove(fifo);
    free(fifo);

    o.progress = NULL;
    o.max_iterations = 35;
    adv_bbot_plan *res = NULL;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &res), ADV_OK);
    cr_expect_eq(adv_bbot_resume(res, NULL, NULL, NULL, NULL), ADV_ERR_INVALID_VALUE,
                 "resume without a problem");
    cr_assert_eq(adv_bbot_checkpoint_load(res, path), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_assert_eq(adv_bbot_resume(res, rho_res, NULL, NULL, &rr), ADV_OK);
    cr_expect_eq(rr.total_iterations, 60);
    cr_expect_eq(rr.iterations, 35);
    cr_expect(fabs(rr.cost - rf.cost) <= 1e-13 * rf.cost, "resumed cost %.17g vs %.17g", rr.cost,
              rf.cost);
    double err = 0;
    for (int k = 0; k < 7 * 120; ++k) err = fmax(err, fabs(rho_res[k] - rho_full[k]));
    cr_expect(err <= 1e-12, "resumed density differs by %g", err);

    // Corrupt, truncated, foreign and missing files.
    f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = tu_calloc((size_t)size, 1);
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    char *bad = temp_path("bad.ckpt");
    buf[size / 2] ^= 0x10;
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    cr_expect_eq(adv_bbot_checkpoint_load(res, bad), ADV_ERR_FORMAT, "flipped bit");
    buf[size / 2] ^= 0x10;
    // A flipped bit in the header's grid (n[0] at byte 32) is corruption too, not a plan of
    // another grid: the checksum is checked before the header is compared with the plan.
    buf[32] ^= 0x01;
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    cr_expect_eq(adv_bbot_checkpoint_load(res, bad), ADV_ERR_FORMAT, "flipped bit in the grid");
    buf[32] ^= 0x01;
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size - 9, f);
    fclose(f);
    cr_expect_eq(adv_bbot_checkpoint_load(res, bad), ADV_ERR_FORMAT, "truncated");
    f = fopen(bad, "wb");
    fwrite("ADVCKPT", 1, 8, f);
    fwrite(buf + 8, 1, (size_t)size - 8, f);
    fclose(f);
    cr_expect_eq(adv_bbot_checkpoint_load(res, bad), ADV_ERR_FORMAT, "wrong magic");
    // Forged with a valid checksum (FNV-1a 64 resealed over header and iterate): an infinite
    // mass (header byte 64) or a NaN in the iterate (from byte 104 on) is still a format error.
    const double forged[2] = {INFINITY, NAN};
    const long forged_at[2] = {64, 104 + 8 * 5};
    for (int k = 0; k < 2; ++k) {
        unsigned char *fb = tu_calloc((size_t)size, 1);
        memcpy(fb, buf, (size_t)size);
        memcpy(fb + forged_at[k], &forged[k], 8);
        tu_reseal_fnv1a(fb, (size_t)size);
        f = fopen(bad, "wb");
        fwrite(fb, 1, (size_t)size, f);
        fclose(f);
        cr_expect_eq(adv_bbot_checkpoint_load(res, bad), ADV_ERR_FORMAT, "forged %s",
                     k ? "NaN iterate" : "infinite mass");
        free(fb);
    }
    {   // the resealing reproduces the library's checksum
        unsigned char *same = tu_calloc((size_t)size, 1);
        memcpy(same, buf, (size_t)size);
        tu_reseal_fnv1a(same, (size_t)size);
        cr_expect(memcmp(same, buf, (size_t)size) == 0,
                  "FNV-1a reseal differs from the library's checksum");
        free(same);
    }
    remove(bad);
    cr_expect_eq(adv_bbot_checkpoint_load(res, bad), ADV_ERR_IO, "missing file");
    const grid_case other = {2, {10, 12, 1}, 6};
    adv_bbot_plan *op = make_plan(ctx, &other, ADV_FLOAT64, 1, NULL);
    cr_expect_eq(adv_bbot_checkpoint_load(op, path), ADV_ERR_DIMENSION_MISMATCH);
    adv_bbot_plan_destroy(op);
    op = make_plan(ctx, &c, ADV_FLOAT32, 1, NULL);
    cr_expect_eq(adv_bbot_checkpoint_load(op, path), ADV_ERR_DIMENSION_MISMATCH, "precision");
    cr_expect_eq(adv_bbot_checkpoint_save(op, path), ADV_ERR_INVALID_VALUE, "nothing to save");
    adv_bbot_plan_destroy(op);
    // The failed loads left the plan's problem intact.
    cr_assert_eq(adv_bbot_resume(res, NULL, NULL, NULL, &rr), ADV_OK);
    cr_expect_eq(rr.total_iterations, 95);
    remove(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(buf), free(bad), free(path);
    adv_bbot_plan_destroy(full);
    adv_bbot_plan_destroy(res);
    adv_context_destroy(ctx);
}

/* ---- invalid input ------------------------------------------------------------------------- */

Test(bbot_invalid, options) {
    adv_context *ctx = cpu_context(1);
    adv_bbot_opts o;
    adv_bbot_plan *plan = (adv_bbot_plan *)0x1;
    cr_expect_eq(adv_bbot_default_opts(NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_plan_create(NULL, &o, &plan), ADV_ERR_NULL_POINTER);
    adv_bbot_default_opts(&o);
    cr_expect_eq(adv_bbot_plan_create(ctx, NULL, &plan), ADV_ERR_NULL_POINTER);
    cr_expect_null(plan, "*plan cleared on error");
    cr_expect_eq(adv_bbot_plan_create(ctx, &o, NULL), ADV_ERR_NULL_POINTER);
    const struct {
        const char *what;
        adv_status want;
    } cases[] = {
        {"struct_size", ADV_ERR_INVALID_VALUE},   {"precision", ADV_ERR_INVALID_VALUE},
        {"ndim 0", ADV_ERR_INVALID_SIZE},         {"ndim 4", ADV_ERR_INVALID_SIZE},
        {"shape 0", ADV_ERR_INVALID_SIZE},        {"shape -3", ADV_ERR_INVALID_SIZE},
        {"time_steps 0", ADV_ERR_INVALID_SIZE},   {"max_iterations 0", ADV_ERR_INVALID_SIZE},
        {"huge grid", ADV_ERR_INVALID_SIZE},      {"gamma 0", ADV_ERR_INVALID_VALUE},
        {"gamma -1", ADV_ERR_INVALID_VALUE},      {"gamma NaN", ADV_ERR_NONFINITE},
        {"relaxation 2", ADV_ERR_INVALID_VALUE},  {"relaxation 0", ADV_ERR_INVALID_VALUE},
        {"tolerance -1e-3", ADV_ERR_INVALID_VALUE}, {"tolerance Inf", ADV_ERR_NONFINITE},
        {"threshold -1", ADV_ERR_INVALID_VALUE},  {"mass_tolerance NaN", ADV_ERR_NONFINITE},
        {"normalize 2", ADV_ERR_INVALID_VALUE},   {"effort 9", ADV_ERR_INVALID_VALUE},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        adv_bbot_default_opts(&o);
        o.shape[0] = o.shape[1] = 8;
        o.time_steps = 4;
        switch (k) {
        case 0: o.struct_size = 8; break;
        case 1: o.precision = (adv_precision)7; break;
        case 2: o.ndim = 0; break;
        case 3: o.ndim = 4; break;
        case 4: o.shape[1] = 0; break;
        case 5: o.shape[0] = -3; break;
        case 6: o.time_steps = 0; break;
        case 7: o.max_iterations = 0; break;
        case 8: o.ndim = 3, o.shape[0] = o.shape[1] = o.shape[2] = INT64_C(1) << 40; break;
        case 9: o.gamma = 0.0; break;
        case 10: o.gamma = -1.0; break;
        case 11: o.gamma = NAN; break;
        case 12: o.relaxation = 2.0; break;
        case 13: o.relaxation = 0.0; break;
        case 14: o.tolerance = -1e-3; break;
        case 15: o.tolerance = INFINITY; break;
        case 16: o.velocity_threshold = -1.0; break;
        case 17: o.mass_tolerance = NAN; break;
        case 18: o.normalize = 2; break;
        case 19: o.effort = (adv_fft_effort)9; break;
        }
        plan = (adv_bbot_plan *)0x1;
        adv_status st = adv_bbot_plan_create(ctx, &o, &plan);
        cr_expect_eq(st, cases[k].want, "%s: got %s (%s)", cases[k].what, adv_status_name(st),
                     adv_context_last_error(ctx));
        cr_expect_null(plan, "%s: *plan cleared", cases[k].what);
        cr_expect(strlen(adv_context_last_error(ctx)) > 0, "%s: message recorded", cases[k].what);
    }
    adv_context_destroy(ctx);
}

Test(bbot_invalid, densities_and_nothing_written) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {6, 5, 1}, 4};
    adv_bbot_opts o;
    adv_bbot_plan *plan = make_plan(ctx, &c, ADV_FLOAT64, 5, &o);
    double r0[30], r1[30];
    for (int k = 0; k < 30; ++k) r0[k] = 1.0 + 0.1 * (k % 7), r1[k] = 2.0 - 0.05 * (k % 5);
    double rho[5 * 30], mom[4 * 30 * 2], vel[4 * 30 * 2];
    const double sentinel = 12345.0;
    struct {
        const char *what;
        int which, index;
        double value;
        adv_status want;
    } cases[] = {
        {"NaN in rho0", 0, 3, NAN, ADV_ERR_NONFINITE},
        {"+Inf in rho1", 1, 29, INFINITY, ADV_ERR_NONFINITE},
        {"-Inf in rho0", 0, 0, -INFINITY, ADV_ERR_NONFINITE},
        {"negative rho1", 1, 7, -1e-12, ADV_ERR_INVALID_VALUE},
        {"all-zero rho0", 0, -1, 0.0, ADV_ERR_INVALID_VALUE},
        {"all-zero rho1", 1, -1, 0.0, ADV_ERR_INVALID_VALUE},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        double a[30], b[30];
        memcpy(a, r0, sizeof a), memcpy(b, r1, sizeof b);
        double *t = cases[k].which ? b : a;
        if (cases[k].index < 0) memset(t, 0, sizeof a);
        else t[cases[k].index] = cases[k].value;
        for (int i = 0; i < 5 * 30; ++i) rho[i] = sentinel;
        for (int i = 0; i < 4 * 30 * 2; ++i) mom[i] = vel[i] = sentinel;
        adv_bbot_result res = {.struct_size = sizeof res, .cost = sentinel};
        adv_status st = adv_bbot_solve(plan, a, b, rho, mom, vel, &res);
        cr_expect_eq(st, cases[k].want, "%s: got %s (%s)", cases[k].what, adv_status_name(st),
                     adv_context_last_error(ctx));
        int untouched = res.cost == sentinel;
        for (int i = 0; i < 5 * 30; ++i) untouched &= rho[i] == sentinel;
        for (int i = 0; i < 4 * 30 * 2; ++i) untouched &= mom[i] == sentinel && vel[i] == sentinel;
        cr_expect(untouched, "%s: outputs written on error", cases[k].what);
    }
    cr_expect_eq(adv_bbot_solve(plan, NULL, r1, rho, NULL, NULL, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_solve(plan, r0, NULL, rho, NULL, NULL, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_solve(NULL, r0, r1, rho, NULL, NULL, NULL), ADV_ERR_NULL_POINTER);
    adv_bbot_result bad = {.struct_size = 3 * sizeof(adv_bbot_result)};
    cr_expect_eq(adv_bbot_solve(plan, r0, r1, rho, NULL, NULL, &bad), ADV_ERR_INVALID_VALUE);
    // Nothing solved yet: no field, no getters.
    double x[2] = {0.5, 0.5}, v[2];
    cr_expect_eq(adv_bbot_velocity_eval(plan, 0.5, 1, x, v), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_get_density(plan, rho), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_get_velocity(plan, vel), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_get_staggered(plan, rho, NULL), ADV_ERR_INVALID_VALUE);
    // Unequal masses: fine when normalising, an error when not.
    double b2[30];
    for (int k = 0; k < 30; ++k) b2[k] = 1.001 * r0[k];
    cr_expect_eq(adv_bbot_solve(plan, r0, b2, NULL, NULL, NULL, NULL), ADV_OK);
    adv_bbot_plan_destroy(plan);
    o.normalize = 0;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK);
    for (int i = 0; i < 5 * 30; ++i) rho[i] = sentinel;
    cr_expect_eq(adv_bbot_solve(plan, r0, b2, rho, NULL, NULL, NULL), ADV_ERR_INVALID_VALUE);
    cr_expect(rho[0] == sentinel && rho[149] == sentinel);
    for (int k = 0; k < 30; ++k) b2[k] = r0[k] * (1.0 + 1e-9);
    cr_expect_eq(adv_bbot_solve(plan, r0, b2, NULL, NULL, NULL, NULL), ADV_OK,
                 "a mismatch within mass_tolerance is accepted");
    // The field after a solve: bad arguments.
    cr_expect_eq(adv_bbot_velocity_eval(plan, 1.5, 1, x, v), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_velocity_eval(plan, NAN, 1, x, v), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_bbot_velocity_eval(plan, 0.5, 0, x, v), ADV_ERR_INVALID_SIZE);
    cr_expect_eq(adv_bbot_velocity_eval(plan, 0.5, 1, NULL, v), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_velocity_eval(plan, 0.5, 1, x, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_velocity_eval(plan, 0.5, 1, x, v), ADV_OK);
    cr_expect_eq(adv_bbot_get_history(plan, 3, NULL, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_get_history(plan, -1, NULL, NULL), ADV_ERR_INVALID_SIZE);
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}

Test(bbot_invalid, one_shot_shapes) {
    adv_context *ctx = cpu_context(1);
    double r[64];
    for (int k = 0; k < 64; ++k) r[k] = 1.0 + (k % 3);
    const int64_t s44[2] = {4, 4}, s28[2] = {2, 8}, s16[1] = {16}, s40[2] = {4, 0};
    const int64_t s4444[4] = {2, 2, 2, 2};
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    o.time_steps = 4;
    o.max_iterations = 3;
    double rho[5 * 16];
    rho[0] = 7.0;
    cr_expect_eq(adv_bbot_compute(ctx, &o, 2, s44, r, 2, s28, r, rho, NULL, NULL, NULL),
                 ADV_ERR_DIMENSION_MISMATCH, "4x4 vs 2x8");
    cr_expect_eq(adv_bbot_compute(ctx, &o, 2, s44, r, 1, s16, r, rho, NULL, NULL, NULL),
                 ADV_ERR_DIMENSION_MISMATCH, "2-D vs 1-D");
    cr_expect_eq(adv_bbot_compute(ctx, &o, 2, s40, r, 2, s40, r, rho, NULL, NULL, NULL),
                 ADV_ERR_INVALID_SIZE, "empty");
    cr_expect_eq(adv_bbot_compute(ctx, &o, 4, s4444, r, 4, s4444, r, rho, NULL, NULL, NULL),
                 ADV_ERR_INVALID_SIZE, "4-D");
    cr_expect_eq(adv_bbot_compute(ctx, &o, 0, s44, r, 0, s44, r, rho, NULL, NULL, NULL),
                 ADV_ERR_INVALID_SIZE, "0-D");
    cr_expect_eq(adv_bbot_compute(ctx, &o, 2, NULL, r, 2, s44, r, rho, NULL, NULL, NULL),
                 ADV_ERR_NULL_POINTER);
    cr_expect(rho[0] == 7.0, "nothing written");
    adv_bbot_result res = {.struct_size = sizeof res};
    cr_expect_eq(adv_bbot_compute(ctx, &o, 2, s44, r, 2, s44, r + 16, rho, NULL, NULL, &res),
                 ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect_eq(res.iterations, 3);
    adv_context_destroy(ctx);
}

/* NULL pointers to the getters, adv_bbot_resume, adv_bbot_velocity_field and the checkpoints
 * return ADV_ERR_NULL_POINTER, name the argument in the last error (when a plan, hence a
 * context, is given) and write nothing: outputs poisoned before, compared bitwise after; no
 * checkpoint file appears; a refused load or resume leaves the plan's problem as it was (the
 * next resume continues from the same iteration count). Every call first succeeds with valid
 * arguments after a solve, so the NULL is the only thing wrong. */
static void expect_null_named(adv_context *ctx, adv_status st, const char *call, const char *arg) {
    cr_expect_eq(st, ADV_ERR_NULL_POINTER, "%s: got %s", call, adv_status_name(st));
    const char *msg = adv_context_last_error(ctx);
    cr_expect(strstr(msg, arg) && strstr(msg, "NULL"), "%s: last error '%s' does not name %s",
              call, msg, arg);
}

Test(bbot_invalid, null_pointers_write_nothing) {
    adv_context *ctx = cpu_context(1);
    const grid_case c = {2, {12, 10, 1}, 6};
    enum { R = 7 * 120, V = 6 * 120 * 2, S = 6 * 13 * 10 + 6 * 12 * 11 }; // staggered m_0, m_1
    double r0[120], r1[120], rho[R], vel[V], mom[S], poison[S];
    bumps(12, 10, r0, r1, 1.0);
    tu_poison(poison, sizeof poison);
    adv_bbot_plan *plan = make_plan(ctx, &c, ADV_FLOAT64, 5, NULL);
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, NULL, NULL, NULL, NULL), ADV_OK);
    char *path = temp_path("null.ckpt"), *unused = temp_path("never.ckpt");
    remove(unused);
    // Valid first.
    adv_bbot_result res = {.struct_size = sizeof res};
    adv_field *f = NULL;
    cr_assert_eq(adv_bbot_get_density(plan, rho), ADV_OK);
    cr_assert_eq(adv_bbot_get_velocity(plan, vel), ADV_OK);
    cr_assert_eq(adv_bbot_get_staggered(plan, rho, mom), ADV_OK);
    // (adv_bbot_get_staggered takes NULL for either output: documented "each may be NULL".)
    cr_expect_eq(adv_bbot_get_staggered(plan, NULL, NULL), ADV_OK);
    cr_assert_eq(adv_bbot_resume(plan, rho, NULL, vel, &res), ADV_OK);
    cr_assert_eq(res.total_iterations, 10);
    cr_assert_eq(adv_bbot_velocity_field(plan, &f), ADV_OK);
    adv_field_destroy(f);
    cr_assert_eq(adv_bbot_checkpoint_save(plan, path), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_assert_eq(adv_bbot_checkpoint_load(plan, path), ADV_OK, "%s", adv_context_last_error(ctx));
#define POISON_ALL() (memcpy(rho, poison, sizeof rho), memcpy(vel, poison, sizeof vel), memcpy(mom, poison, sizeof mom))
#define UNTOUCHED(what)                                                                          \
    cr_expect(memcmp(rho, poison, sizeof rho) == 0 && memcmp(vel, poison, sizeof vel) == 0 &&    \
                  memcmp(mom, poison, sizeof mom) == 0,                                          \
              "%s wrote an output", what)
    POISON_ALL();
    cr_expect_eq(adv_bbot_get_density(NULL, rho), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_get_velocity(NULL, vel), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_bbot_get_staggered(NULL, rho, mom), ADV_ERR_NULL_POINTER);
    UNTOUCHED("a getter without a plan");
    expect_null_named(ctx, adv_bbot_get_density(plan, NULL), "get_density(plan, NULL)", "rho");
    expect_null_named(ctx, adv_bbot_get_velocity(plan, NULL), "get_velocity(plan, NULL)", "velocity");
    adv_bbot_result sentinel = {.struct_size = sizeof sentinel, .cost = 12345.0, .iterations = -7};
    res = sentinel;
    cr_expect_eq(adv_bbot_resume(NULL, rho, mom, vel, &res), ADV_ERR_NULL_POINTER);
    UNTOUCHED("resume(NULL, ...)");
    cr_expect(memcmp(&res, &sentinel, sizeof res) == 0, "resume(NULL, ...) wrote the result");
    f = (adv_field *)&f; // non-NULL garbage: a call that fails before its checks leaves it
    cr_expect_eq(adv_bbot_velocity_field(NULL, &f), ADV_ERR_NULL_POINTER);
    cr_expect(f == (adv_field *)&f, "velocity_field(NULL, &f) changed the handle");
    expect_null_named(ctx, adv_bbot_velocity_field(plan, NULL), "velocity_field(plan, NULL)", "field");
    cr_expect_eq(adv_bbot_checkpoint_save(NULL, unused), ADV_ERR_NULL_POINTER);
    struct stat sb;
    cr_expect(stat(unused, &sb) != 0, "checkpoint_save(NULL, path) created the file");
    expect_null_named(ctx, adv_bbot_checkpoint_save(plan, NULL), "checkpoint_save(plan, NULL)", "path");
    cr_expect_eq(adv_bbot_checkpoint_load(NULL, path), ADV_ERR_NULL_POINTER);
    expect_null_named(ctx, adv_bbot_checkpoint_load(plan, NULL), "checkpoint_load(plan, NULL)", "path");
    cr_expect_eq(temporaries_beside(path), 0, "a temporary file was left");
    // The plan still holds the loaded problem at 10 iterations: nothing above ran or replaced it.
    cr_assert_eq(adv_bbot_resume(plan, NULL, NULL, NULL, &res), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect_eq(res.total_iterations, 15);
#undef POISON_ALL
#undef UNTOUCHED
    remove(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path), free(unused);
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}
