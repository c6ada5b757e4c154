/* Oracles of the Benamou-Brenier solver (spec math.md §4, §8 O9), CPU backend, against
 * answers computed independently in the test:
 *  - a translated narrow Gaussian bump: W2² = |shift|² (the bump stays away from the walls);
 *  - 1-D: W2² = ∫0^1 |F0⁻¹(u) - F1⁻¹(u)|² du of the piecewise-constant densities, evaluated
 *    exactly (both quantile functions are piecewise linear; two-point Gauss-Legendre on the
 *    merged breakpoints is exact for their squared difference);
 *  - Gaussian -> Gaussian in 2-D: the Bures formula, with the 2 x 2 matrix square root in
 *    closed form (tr sqrt(S0^½ S1 S0^½) = sqrt(tr(S0 S1) + 2 sqrt(det S0 det S1)));
 *  - mass conserved at every time face; the cost approaching the optimum as iterations grow;
 *  - particles drawn from ρ0 and advected by the library's RK4 sampler through the grid
 *    velocity field (wrapped as a user field) have histograms matching ρ(t).
 * Every printed "measured" line gives the number the tolerance is checked against.
 *
 * Tolerances (the discrete problem's optimum differs from the continuous W2² by the
 * discretisation error, and the iterate from the discrete optimum by the stopping error):
 *  - bump: 2% (the figure) at 32² x 16 with the default tolerances (measured: 0.49%:
 *    ~0.06% discretisation error, the rest from stopping at divergence residual 1e-3); the
 *    64² x 32 run asked by the issue is the "slow" suite (oracles_bbot_slow), also 2%
 *    (measured 0.57%).
 *  - 1-D: 1% (the figure; measured 0.04% at N = 256, P = 32, in both precisions).
 *  - Bures: 3%: the grid densities are the Gaussians sampled at cell centres and truncated to
 *    the box (tails below 1e-6), which moves W2² by O(h²) ~ 0.5% at 48²; measured 0.44%.
 *  - mass: the continuity projection conserves Σ_i f(t_j, i) exactly up to rounding: 1e-12.
 *  - particles: total variation between the particle histogram and ρ(t) on 8 x 8 bins. The
 *    sampling noise of N = 20000 particles over ~20 occupied bins is about
 *    0.5 Σ sqrt(p_b/N) ~ 0.015; the velocity is interpolated from a 32² x 16 grid, so the
 *    transported bump is slightly displaced relative to the discrete ρ(t) (measured 0.023 at
 *    t = 1/2 and 0.039 at t = 1). We allow 0.08, and the particle mean within 0.01 (a third of a cell) of
 *    the mean of ρ(t). A velocity with a wrong sign or a wrong time scale gives TV near 1. */
#include "test_util.h"

#include <advect/advect.h>
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static adv_context *cpu_context(void) {
    adv_context_opts o;
    adv_context_default_opts(&o);
    o.backend = ADV_BACKEND_CPU;
    o.cpu_threads = 1; // the suites run in parallel on small machines: never oversubscribe
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&o, &ctx), ADV_OK);
    return ctx;
}

/* Gaussian (mean c, covariance S, 2-D) sampled at the cell centres of an n x n grid. */
static void gaussian_grid(int n, const double c[2], const double S[4], double *rho) {
    const double det = S[0] * S[3] - S[1] * S[2];
    const double i00 = S[3] / det, i01 = -S[1] / det, i11 = S[0] / det;
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
            const double x = (i + 0.5) / n - c[0], y = (j + 0.5) / n - c[1];
            rho[i * n + j] = exp(-0.5 * (i00 * x * x + 2 * i01 * x * y + i11 * y * y));
        }
}

static adv_bbot_plan *solve2d(adv_context *ctx, int n, int P, const double *r0, const double *r1,
                              int64_t max_iter, double tol, double cost_tol,
                              adv_bbot_result *res) {
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    o.ndim = 2;
    o.shape[0] = o.shape[1] = n;
    o.time_steps = P;
    o.max_iterations = max_iter;
    o.tolerance = tol;
    o.cost_tolerance = cost_tol;
    adv_bbot_plan *plan = NULL;
    cr_assert_eq(adv_bbot_plan_create(ctx, &o, &plan), ADV_OK, "%s", adv_context_last_error(ctx));
    res->struct_size = sizeof *res;
    cr_assert_eq(adv_bbot_solve(plan, r0, r1, NULL, NULL, NULL, res), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    return plan;
}

/* ---- particles through the grid field -------------------------------------------------- */

/* Draws n particles from the piecewise-constant density rho (n0 x n1 cells). */
static void sample_grid(int n0, int n1, const double *rho, int64_t n, uint64_t seed, double *x) {
    const int M = n0 * n1;
    double *cdf = tu_calloc((size_t)M, sizeof(double));
    double s = 0.0;
    for (int k = 0; k < M; ++k) cdf[k] = (s += rho[k]);
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int64_t p = 0; p < n; ++p) {
        const double u = tu_rng_uniform(&r, 0.0, s);
        int lo = 0, hi = M - 1;
        while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (cdf[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        x[2 * p] = (lo / n1 + tu_rng_uniform(&r, 0.0, 1.0)) / n0;
        x[2 * p + 1] = (lo % n1 + tu_rng_uniform(&r, 0.0, 1.0)) / n1;
    }
    free(cdf);
}

/* Total variation between the particles' histogram and the density rho (n x n cells) on
 * B x B bins; also the difference of the means (max over the two axes). */
static void compare_histogram(int n, const double *rho, int64_t np, const double *x, int B,
                              double *tv, double *dmean) {
    double *hp = tu_calloc((size_t)(B * B), sizeof(double)), *hr = tu_calloc((size_t)(B * B), sizeof(double));
    double mp[2] = {0, 0}, mr[2] = {0, 0}, sr = 0.0;
    for (int64_t p = 0; p < np; ++p) {
        int b0 = (int)(x[2 * p] * B), b1 = (int)(x[2 * p + 1] * B);
        b0 = b0 < 0 ? 0 : (b0 >= B ? B - 1 : b0);
        b1 = b1 < 0 ? 0 : (b1 >= B ? B - 1 : b1);
        hp[b0 * B + b1] += 1.0 / (double)np;
        mp[0] += x[2 * p] / (double)np, mp[1] += x[2 * p + 1] / (double)np;
    }
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
            const double w = rho[i * n + j];
            hr[(i * B / n) * B + j * B / n] += w;
            mr[0] += w * (i + 0.5) / n, mr[1] += w * (j + 0.5) / n;
            sr += w;
        }
    *tv = 0.0;
    for (int k = 0; k < B * B; ++k) *tv += 0.5 * fabs(hp[k] - hr[k] / sr);
    *dmean = fmax(fabs(mp[0] - mr[0] / sr), fabs(mp[1] - mr[1] / sr));
    free(hp), free(hr);
}

/* ---- translated bump (O9), mass, convergence, particles ---------------------------------- */

Test(bbot_oracles, translated_bump_cost_mass_convergence_and_particles, .timeout = 300) {
    adv_context *ctx = cpu_context();
    const int n = 32, P = 16;
    const double sig = 0.06, S[4] = {sig * sig, 0, 0, sig * sig};
    const double c0[2] = {0.35, 0.4}, c1[2] = {0.6, 0.55};
    const double exact = (c1[0] - c0[0]) * (c1[0] - c0[0]) + (c1[1] - c0[1]) * (c1[1] - c0[1]);
    double r0[32 * 32], r1[32 * 32];
    gaussian_grid(n, c0, S, r0);
    gaussian_grid(n, c1, S, r1);
    adv_bbot_result res;
    adv_bbot_plan *plan = solve2d(ctx, n, P, r0, r1, 3000, 1e-3, 1e-5, &res);
    const double rel = fabs(res.cost - exact) / exact;
    fprintf(stderr, "measured bump 32x32x16: cost %.6f exact %.6f rel err %.4f after %lld iterations "
            "(%.2f s), divergence residual %.2e\n", res.cost, exact, rel,
            (long long)res.iterations, res.time_s, res.divergence_residual);
    cr_expect(res.converged, "not converged in %lld iterations", (long long)res.iterations);
    cr_expect(rel <= 0.02, "cost %.6f vs |shift|^2 %.6f: relative error %.4f > 2%%", res.cost,
              exact, rel);

    // Mass at every time face.
    double rho[17 * 32 * 32];
    cr_assert_eq(adv_bbot_get_density(plan, rho), ADV_OK);
    double worst = 0.0;
    for (int j = 0; j <= P; ++j) {
        double m = 0.0;
        for (int k = 0; k < n * n; ++k) m += rho[j * n * n + k];
        worst = fmax(worst, fabs(m / (n * n) - 1.0));
    }
    fprintf(stderr, "measured mass error over the %d time faces: %.2e (result %.2e)\n", P + 1, worst,
            res.mass_error);
    cr_expect(worst <= 1e-12 && res.mass_error <= 1e-12, "mass error %g / %g", worst,
              res.mass_error);

    // The cost approaches the optimum: errors at 20, 80, 320 iterations shrink, and the
    // history's last cost is the returned one up to the last step.
    adv_bbot_iterate *h = tu_calloc((size_t)res.iterations, sizeof *h);
    int64_t count = 0;
    cr_assert_eq(adv_bbot_get_history(plan, res.iterations, h, &count), ADV_OK);
    cr_assert(count == res.iterations && count > 320);
    const double e20 = fabs(h[19].cost - res.cost), e80 = fabs(h[79].cost - res.cost);
    const double e320 = fabs(h[319].cost - res.cost);
    fprintf(stderr, "measured |cost - final|: %.3e (20) %.3e (80) %.3e (320)\n", e20, e80, e320);
    cr_expect(e20 > e80 && e80 > e320, "the cost does not approach the optimum");
    cr_expect(h[319].divergence_residual < h[19].divergence_residual);

    // Particles from ρ0 through the grid field with the library's RK4 sampler.
    const int64_t np = 20000;
    double *x = tu_calloc((size_t)(2 * np), sizeof(double));
    double *traj = tu_calloc((size_t)(3 * 2 * np), sizeof(double));
    sample_grid(n, n, r0, np, 99, x);
    double *x0 = tu_calloc((size_t)(2 * np), sizeof(double));
    memcpy(x0, x, (size_t)(2 * np) * sizeof(double));
    adv_field *field = NULL;
    cr_assert_eq(adv_bbot_velocity_field(plan, &field), ADV_OK, "%s", adv_context_last_error(ctx));
    adv_sampler_opts so;
    adv_sampler_default_opts(&so);
    so.method = ADV_METHOD_RK4;
    so.steps = 64;
    so.save_every = 32; // snapshots at t = 0, 1/2, 1
    so.trajectory = traj;
    adv_sampler_stats st = {.struct_size = sizeof st};
    cr_assert_eq(adv_sample(field, &so, np, x, &st), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect_eq(st.snapshots, 3);
    for (int s = 1; s <= 2; ++s) {
        const int j = s * P / 2;
        double tv, dm;
        compare_histogram(n, rho + (size_t)j * n * n, np, traj + (size_t)s * 2 * np, 8, &tv, &dm);
        fprintf(stderr, "measured particles vs rho(t = %.1f): TV %.4f on 8x8 bins, mean offset %.4f\n",
                0.5 * s, tv, dm);
        cr_expect(tv <= 0.08, "t = %.1f: total variation %.4f > 0.08", 0.5 * s, tv);
        cr_expect(dm <= 0.01, "t = %.1f: mean offset %.4f > 0.01", 0.5 * s, dm);
    }

    // The same particles by adaptive DOPRI5 (per-particle steps: the field is evaluated at
    // per-particle times) end where RK4's do. The field is only piecewise multilinear, so both
    // carry errors of the kinks they step over (64 RK4 steps of 1/64 over cells of 1/32 and
    // 1/16 in time). Measured: mean 5e-6, max 8e-5; bounds at 20x and 12x that.
    so.method = ADV_METHOD_DOPRI5;
    so.trajectory = NULL;
    so.save_every = 0;
    so.atol = so.rtol = 1e-7;
    cr_assert_eq(adv_sample(field, &so, np, x0, &st), ADV_OK, "%s", adv_context_last_error(ctx));
    double worst_gap = 0.0, mean_gap = 0.0;
    for (int64_t k = 0; k < 2 * np; ++k) {
        const double g = fabs(x0[k] - x[k]);
        worst_gap = fmax(worst_gap, g);
        mean_gap += g / (double)(2 * np);
    }
    fprintf(stderr, "measured DOPRI5 vs RK4 end points: mean %.2e, max %.2e (%lld accepted, "
            "%lld rejected steps)\n", mean_gap, worst_gap, (long long)st.accepted,
            (long long)st.rejected);
    cr_expect(st.accepted > 0 && st.failed == 0, "%lld accepted, %lld failed", (long long)st.accepted,
              (long long)st.failed);
    cr_expect(mean_gap <= 1e-4 && worst_gap <= 1e-3, "DOPRI5 vs RK4: mean %g, max %g", mean_gap,
              worst_gap);
    adv_field_destroy(field);
    free(x), free(x0), free(traj), free(h);
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}

/* ---- 1-D quantile formula (O9) ------------------------------------------------------------ */

/* Quantile function of the piecewise-constant density r (n cells of [0,1]) at u. */
static double quantile(int n, const double *cdf, double u) {
    int lo = 0, hi = n; // cdf[0] = 0 <= u <= cdf[n] = 1
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (cdf[mid] <= u) lo = mid;
        else hi = mid;
    }
    const double w = cdf[hi] - cdf[lo];
    const double frac = w > 0 ? (u - cdf[lo]) / w : 0.0;
    return (lo + frac) / n;
}

static double quantile_w2(int n, const double *r0, const double *r1) {
    double *c0 = tu_calloc((size_t)n + 1, sizeof(double)), *c1 = tu_calloc((size_t)n + 1, sizeof(double));
    double s0 = 0, s1 = 0;
    for (int i = 0; i < n; ++i) s0 += r0[i], s1 += r1[i];
    for (int i = 0; i < n; ++i) c0[i + 1] = c0[i] + r0[i] / s0, c1[i + 1] = c1[i] + r1[i] / s1;
    c0[n] = c1[n] = 1.0;
    // Merged breakpoints: on each piece both quantiles are linear, Simpson is exact.
    double *bp = tu_calloc((size_t)(2 * n + 2), sizeof(double));
    int nb = 0, i = 0, j = 0;
    while (i <= n || j <= n) {
        double v = (j > n || (i <= n && c0[i] <= c1[j])) ? c0[i++] : c1[j++];
        if (nb == 0 || v > bp[nb - 1]) bp[nb++] = v;
    }
    // Two-point Gauss-Legendre on each piece: exact for the quadratic |F0⁻¹ - F1⁻¹|², and its
    // nodes are interior (the quantiles jump at breakpoints where a CDF is flat).
    double w2 = 0.0;
    const double gq = 0.5 / sqrt(3.0);
    for (int k = 0; k + 1 < nb; ++k) {
        const double a = bp[k], b = bp[k + 1], m = 0.5 * (a + b), hw = b - a;
        const double u1 = m - gq * hw, u2 = m + gq * hw;
        const double d1 = quantile(n, c0, u1) - quantile(n, c1, u1);
        const double d2 = quantile(n, c0, u2) - quantile(n, c1, u2);
        w2 += 0.5 * hw * (d1 * d1 + d2 * d2);
    }
    free(c0), free(c1), free(bp);
    return w2;
}

Test(bbot_oracles, one_dimensional_quantile_formula, .timeout = 300) {
    adv_context *ctx = cpu_context();
    const int n = 256;
    const int P = 32;
    double r0[256], r1[256];
    for (int i = 0; i < n; ++i) {
        const double x = (i + 0.5) / n;
        r0[i] = exp(-(x - 0.3) * (x - 0.3) / (2 * 0.05 * 0.05));
        r1[i] = exp(-(x - 0.6) * (x - 0.6) / (2 * 0.04 * 0.04)) +
                0.5 * exp(-(x - 0.8) * (x - 0.8) / (2 * 0.03 * 0.03));
    }
    const double ref = quantile_w2(n, r0, r1);
    // Both precisions: float32 runs the same iteration with float storage (the prox and the
    // reductions in double); its residual floor is a little higher but far below 1%.
    for (int pi = 0; pi < 2; ++pi) {
        const adv_precision p = pi ? ADV_FLOAT64 : ADV_FLOAT32;
        adv_bbot_opts o;
        adv_bbot_default_opts(&o);
        o.precision = p;
        o.time_steps = P;
        o.max_iterations = 3000;
        adv_bbot_result res = {.struct_size = sizeof res};
        const int64_t shape[1] = {n};
        void *h0 = tu_to_precision(r0, n, p), *h1 = tu_to_precision(r1, n, p);
        cr_assert_eq(adv_bbot_compute(ctx, &o, 1, shape, h0, 1, shape, h1, NULL, NULL, NULL, &res),
                     ADV_OK, "%s", adv_context_last_error(ctx));
        free(h0), free(h1);
        const double rel = fabs(res.cost - ref) / ref;
        fprintf(stderr, "measured 1-D N=%d P=%d %s: cost %.6f quantile formula %.6f rel err %.5f after "
                "%lld iterations\n", n, P, tu_precision_name(p), res.cost, ref, rel,
                (long long)res.iterations);
        cr_expect(res.converged, "%s: not converged", tu_precision_name(p));
        cr_expect(rel <= 0.01, "%s: cost %.6f vs quantile formula %.6f: relative error %.4f > 1%%",
                  tu_precision_name(p), res.cost, ref, rel);
    }
    // Self-check of the reference: a pure translation inside the box gives the shift squared.
    double t0[256], t1[256];
    for (int i = 0; i < n; ++i) t0[i] = (i >= 40 && i < 80), t1[i] = (i >= 100 && i < 140);
    const double tr = quantile_w2(n, t0, t1), sh = 60.0 / n;
    cr_assert(fabs(tr - sh * sh) <= 1e-12, "quantile reference %.15g vs %.15g", tr, sh * sh);
    adv_context_destroy(ctx);
}

/* ---- Gaussian -> Gaussian in 2-D (Bures) -------------------------------------------------- */

Test(bbot_oracles, gaussian_to_gaussian_bures, .timeout = 300) {
    adv_context *ctx = cpu_context();
    const int n = 48, P = 24;
    const double m0[2] = {0.42, 0.45}, m1[2] = {0.58, 0.55};
    const double S0[4] = {0.07 * 0.07, 0.0012, 0.0012, 0.055 * 0.055};
    const double S1[4] = {0.05 * 0.05, -0.001, -0.001, 0.075 * 0.075};
    const double d0 = m0[0] - m1[0], d1 = m0[1] - m1[1];
    const double trS0S1 = S0[0] * S1[0] + S0[1] * S1[2] + S0[2] * S1[1] + S0[3] * S1[3];
    const double det0 = S0[0] * S0[3] - S0[1] * S0[2], det1 = S1[0] * S1[3] - S1[1] * S1[2];
    const double bures = d0 * d0 + d1 * d1 + S0[0] + S0[3] + S1[0] + S1[3] -
                         2.0 * sqrt(trS0S1 + 2.0 * sqrt(det0 * det1));
    double lib = 0.0;
    cr_assert_eq(adv_gaussian_w2sq(2, m0, S0, m1, S1, &lib), ADV_OK);
    cr_assert(fabs(lib - bures) <= 1e-12, "closed forms disagree: %.15g vs %.15g", lib, bures);
    double *r0 = tu_calloc(48 * 48, sizeof(double)), *r1 = tu_calloc(48 * 48, sizeof(double));
    gaussian_grid(n, m0, S0, r0);
    gaussian_grid(n, m1, S1, r1);
    adv_bbot_result res;
    adv_bbot_plan *plan = solve2d(ctx, n, P, r0, r1, 3000, 1e-3, 1e-5, &res);
    const double rel = fabs(res.cost - bures) / bures;
    fprintf(stderr, "measured Gaussian->Gaussian 48x48x24: cost %.6f Bures %.6f rel err %.4f after %lld "
            "iterations\n", res.cost, bures, rel, (long long)res.iterations);
    cr_expect(res.converged);
    cr_expect(rel <= 0.03, "cost %.6f vs Bures %.6f: relative error %.4f > 3%%", res.cost, bures, rel);
    free(r0), free(r1);
    adv_bbot_plan_destroy(plan);
    adv_context_destroy(ctx);
}
