/* Conformance of the Benamou-Brenier solver on the backend under test (compiled once per
 * backend; the CUDA instance skips visibly without a usable device), written against the
 * public API with inputs and outputs in the context's memory space. Reference: the CPU
 * backend run on the same problem in the same process (for the CPU instance this checks
 * reproducibility), plus the backend-independent invariants: the continuity equation of the
 * staggered output to rounding, the fixed boundary values, and the exact input checks.
 *
 * Tolerances. A fixed number of iterations (30) of a non-expansive Douglas-Rachford map: two
 * backends that round differently (reduction order, fused multiply-adds, atomics) drift
 * apart by at most the accumulated rounding, a few hundred ulps of the values after 30
 * iterations: 1e-9 relative in float64, 2e-3 in float32 (measured on the CPU against a
 * float64 run: ~1e-4). Outputs are poisoned with NaN first, so an unwritten element fails. */
#include "conformance.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bb_case {
    int d;
    int64_t n[3];
    int64_t P;
} bb_case;

/* On CUDA the line projection runs by tiles of up to 16 lines in shared memory, fewer for long
 * lines, and one thread per line on global memory beyond 3006 cells: the 1-D cases of 700
 * (tiles of 4 lines in space) and 3100 and 3103 cells (untiled in space; the backward sweep
 * goes in steps of 4, and 3103 = 3 mod 4 ends it on another face) cover the other two. */
static const bb_case CASES[] = {{1, {37, 1, 1}, 8},   {2, {12, 10, 1}, 6}, {3, {6, 5, 4}, 4},
                                {1, {700, 1, 1}, 6},  {1, {3100, 1, 1}, 4}, {1, {3103, 1, 1}, 4}};

static int64_t cells(const bb_case *c) {
    int64_t M = 1;
    for (int a = 0; a < c->d; ++a) M *= c->n[a];
    return M;
}

static void densities(const bb_case *c, double *r0, double *r1) {
    const int64_t M = cells(c);
    for (int64_t k = 0; k < M; ++k) {
        double x[3] = {0.5, 0.5, 0.5};
        int64_t rem = k;
        for (int a = c->d - 1; a >= 0; --a) {
            x[a] = (double)(rem % c->n[a]) / (double)c->n[a];
            rem /= c->n[a];
        }
        double e0 = 0, e1 = 0;
        for (int a = 0; a < c->d; ++a) {
            e0 += (x[a] - 0.3) * (x[a] - 0.3);
            e1 += (x[a] - 0.6 - 0.05 * a) * (x[a] - 0.6 - 0.05 * a);
        }
        r0[k] = exp(-e0 / 0.03) + 1e-3;
        r1[k] = exp(-e1 / 0.02);
    }
}

static adv_bbot_plan *plan_for(adv_context *ctx, const bb_case *c, adv_precision p, int64_t iterations) {
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    o.precision = p;
    o.ndim = c->d;
    for (int a = 0; a < c->d; ++a) o.shape[a] = c->n[a];
    o.time_steps = c->P;
    o.max_iterations = iterations;
    o.tolerance = 0.0;
    o.cost_tolerance = 0.0;
    adv_bbot_plan *plan = NULL;
    adv_status st = adv_bbot_plan_create(ctx, &o, &plan);
    cr_assert_eq(st, ADV_OK, "plan_create: %s", adv_context_last_error(ctx));
    return plan;
}

typedef struct bb_out {
    double cost;
    double *rho, *vel, *mom, *pts_v;
    adv_bbot_iterate hist[30];
} bb_out;

/* adv_bbot_velocity_field on this backend: at a common time and at per-particle times (every
 * fourth particle at each of 0, 0.37, 0.8125 and 1, exact in both precisions) it returns, bit
 * for bit, what adv_bbot_velocity_eval gives at that time (the same interpolation). */
static void grid_field_matches(adv_context *ctx, adv_bbot_plan *plan, adv_precision p,
                               const void *dx, int64_t npts, int64_t d) {
    static const double at[4] = {0.0, 0.37, 0.8125, 1.0};
    const size_t nv = (size_t)(npts * d);
    adv_field *field = NULL;
    cr_assert_eq(adv_bbot_velocity_field(plan, &field), ADV_OK, "%s", adv_context_last_error(ctx));
    double *times = tu_calloc((size_t)npts, sizeof(double));
    for (int64_t i = 0; i < npts; ++i) times[i] = at[i % 4];
    if (p == ADV_FLOAT32)
        for (int64_t i = 0; i < npts; ++i) times[i] = (double)(float)times[i];
    void *dt = conf_upload(ctx, p, times, (size_t)npts);
    void *dref = conf_alloc_poisoned(ctx, p, nv), *dgot = conf_alloc_poisoned(ctx, p, nv);
    double *ref = tu_calloc(nv, sizeof(double)), *got = tu_calloc(nv, sizeof(double));
    double *want = tu_calloc(nv, sizeof(double));
    for (int k = 0; k < 4; ++k) {
        const double tk = p == ADV_FLOAT32 ? (double)(float)at[k] : at[k];
        cr_assert_eq(adv_bbot_velocity_eval(plan, tk, npts, dx, dref), ADV_OK);
        conf_download(ctx, p, dref, ref, nv);
        for (int64_t i = k; i < npts; i += 4)
            for (int64_t a = 0; a < d; ++a) want[i * d + a] = ref[i * d + a];
        if (k == 1) { // the common-time evaluation
            cr_assert_eq(adv_field_eval(field, tk, npts, dx, dgot, NULL, NULL), ADV_OK, "%s",
                         adv_context_last_error(ctx));
            conf_download(ctx, p, dgot, got, nv);
            cr_expect_arr_eq(got, ref, nv * sizeof(double), "grid field at t = %g", tk);
        }
    }
    cr_assert_eq(adv_field_eval_times(field, dt, npts, dx, dgot, NULL, NULL), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    conf_download(ctx, p, dgot, got, nv);
    cr_expect_arr_eq(got, want, nv * sizeof(double), "grid field at per-particle times");
    cr_expect_eq(adv_field_eval(field, 0.5, npts, dx, NULL, dgot, NULL), ADV_ERR_UNSUPPORTED,
                 "the grid field has no score");
    cr_assert_eq(adv_field_destroy(field), ADV_OK);
    free(times), free(ref), free(got), free(want);
    conf_free(ctx, dt), conf_free(ctx, dref), conf_free(ctx, dgot);
}

/* Runs the case on ctx; outputs downloaded to host doubles. */
static void run_case(adv_context *ctx, const bb_case *c, adv_precision p, const double *r0,
                     const double *r1, const double *pts, int64_t npts, bb_out *out) {
    const int64_t M = cells(c), P = c->P, d = c->d;
    void *d0 = conf_upload(ctx, p, r0, (size_t)M), *d1 = conf_upload(ctx, p, r1, (size_t)M);
    void *drho = conf_alloc_poisoned(ctx, p, (size_t)((P + 1) * M));
    void *dvel = conf_alloc_poisoned(ctx, p, (size_t)(P * M * d));
    void *dmom = conf_alloc_poisoned(ctx, p, (size_t)(P * M * d));
    void *dx = conf_upload(ctx, p, pts, (size_t)(npts * d));
    void *dv = conf_alloc_poisoned(ctx, p, (size_t)(npts * d));
    adv_bbot_plan *plan = plan_for(ctx, c, p, 30);
    adv_bbot_result res = {.struct_size = sizeof res};
    adv_status st = adv_bbot_solve(plan, d0, d1, drho, dmom, dvel, &res);
    cr_assert_eq(st, ADV_OK, "solve: %s", adv_context_last_error(ctx));
    cr_assert_eq(adv_bbot_velocity_eval(plan, 0.37, npts, dx, dv), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    grid_field_matches(ctx, plan, p, dx, npts, d);
    cr_assert_eq(adv_context_synchronize(ctx), ADV_OK);
    out->cost = res.cost;
    out->rho = tu_calloc((size_t)((P + 1) * M), sizeof(double));
    out->vel = tu_calloc((size_t)(P * M * d), sizeof(double));
    out->mom = tu_calloc((size_t)(P * M * d), sizeof(double));
    out->pts_v = tu_calloc((size_t)(npts * d), sizeof(double));
    conf_download(ctx, p, drho, out->rho, (size_t)((P + 1) * M));
    conf_download(ctx, p, dvel, out->vel, (size_t)(P * M * d));
    conf_download(ctx, p, dmom, out->mom, (size_t)(P * M * d));
    conf_download(ctx, p, dv, out->pts_v, (size_t)(npts * d));
    int64_t count = 0;
    cr_assert_eq(adv_bbot_get_history(plan, 30, out->hist, &count), ADV_OK);
    cr_assert_eq(count, 30);

    // Continuity of the staggered output on this backend.
    int64_t nm = 0;
    for (int a = 0; a < d; ++a) nm += P * M / c->n[a] * (c->n[a] + 1);
    void *df = conf_alloc_poisoned(ctx, p, (size_t)((P + 1) * M));
    void *dm = conf_alloc_poisoned(ctx, p, (size_t)nm);
    cr_assert_eq(adv_bbot_get_staggered(plan, df, dm), ADV_OK);
    double *f = tu_calloc((size_t)((P + 1) * M), sizeof(double)), *m = tu_calloc((size_t)nm, sizeof(double));
    conf_download(ctx, p, df, f, (size_t)((P + 1) * M));
    conf_download(ctx, p, dm, m, (size_t)nm);
    double fmaxv = 0.0, div_max = 0.0;
    for (int64_t k = 0; k < (P + 1) * M; ++k) fmaxv = fmax(fmaxv, fabs(f[k]));
    for (int64_t cell = 0; cell < P * M; ++cell) {
        double dv = (f[cell + M] - f[cell]) * (double)P;
        int64_t moff = 0;
        for (int a = 0; a < d; ++a) {
            int64_t inner = 1;
            for (int b = a + 1; b < d; ++b) inner *= c->n[b];
            const int64_t L = c->n[a], lo = cell + cell / (L * inner) * inner;
            dv += (m[moff + lo + inner] - m[moff + lo]) * (double)L;
            moff += P * M / L * (L + 1);
        }
        div_max = fmax(div_max, fabs(dv));
    }
    // Rounding of the stencil (1e4 u max|f| / k) plus the FFT solve's residual u κ max|f|,
    // κ ~ 4 N²/π² the condition number of -Δ_h (measured 0.7-0.9 N² u max|f| at N = 700 and
    // 3100 in 1-D, so 10 N² leaves a margin of 10).
    double nmax = (double)P;
    for (int a = 0; a < d; ++a) nmax = fmax(nmax, (double)c->n[a]);
    const double tol = tu_unit_roundoff(p) * fmaxv * (1e4 * (double)P + 10.0 * nmax * nmax);
    cr_expect(div_max <= tol, "%d-D %s: |div| %g > %g", c->d, tu_precision_name(p), div_max, tol);
    free(f), free(m);
    conf_free(ctx, df), conf_free(ctx, dm);
    adv_bbot_plan_destroy(plan);
    conf_free(ctx, d0), conf_free(ctx, d1), conf_free(ctx, drho), conf_free(ctx, dvel);
    conf_free(ctx, dmom), conf_free(ctx, dx), conf_free(ctx, dv);
}

static void free_out(bb_out *o) { free(o->rho), free(o->vel), free(o->mom), free(o->pts_v); }

static double max_rel(const double *a, const double *b, int64_t n) {
    double scale = 0.0, err = 0.0;
    for (int64_t k = 0; k < n; ++k) {
        cr_assert(isfinite(a[k]), "element %lld not written (NaN)", (long long)k);
        scale = fmax(scale, fabs(b[k]));
        err = fmax(err, fabs(a[k] - b[k]));
    }
    return err / fmax(scale, 1e-300);
}

Test(bbot_conformance, matches_cpu_reference) {
    adv_context *ctx = conf_context();
    adv_context_opts co;
    adv_context_default_opts(&co);
    co.backend = ADV_BACKEND_CPU;
    co.cpu_threads = 1;
    adv_context *cpu = NULL;
    cr_assert_eq(adv_context_create(&co, &cpu), ADV_OK);
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ++ci)
        for (int pi = 0; pi < 2; ++pi) {
            const bb_case *c = &CASES[ci];
            const adv_precision p = pi ? ADV_FLOAT64 : ADV_FLOAT32;
            const int64_t M = cells(c), d = c->d, P = c->P, npts = 57;
            double *r0 = tu_calloc((size_t)M, sizeof(double)), *r1 = tu_calloc((size_t)M, sizeof(double));
            densities(c, r0, r1);
            tu_round_to_precision(r0, (size_t)M, p);
            tu_round_to_precision(r1, (size_t)M, p);
            double *pts = tu_calloc((size_t)(npts * d), sizeof(double));
            tu_fill_uniform(pts, (size_t)(npts * d), -0.05, 1.05, 77 + ci); // a few outside
            tu_round_to_precision(pts, (size_t)(npts * d), p);
            bb_out got, ref;
            run_case(ctx, c, p, r0, r1, pts, npts, &got);
            run_case(cpu, c, p, r0, r1, pts, npts, &ref);
            const double tol = p == ADV_FLOAT64 ? 1e-9 : 2e-3;
            const char *pn = tu_precision_name(p);
            cr_expect(fabs(got.cost - ref.cost) <= tol * ref.cost, "%d-D %s: cost %.12g vs %.12g",
                      c->d, pn, got.cost, ref.cost);
            for (int k = 1; k < 30; ++k)
                cr_expect(fabs(got.hist[k].cost - ref.hist[k].cost) <= tol * ref.hist[k].cost &&
                              fabs(got.hist[k].divergence_residual - ref.hist[k].divergence_residual) <=
                                  tol * ref.hist[k].divergence_residual + 1e-12,
                          "%d-D %s: history row %d differs", c->d, pn, k + 1);
            double e;
            cr_expect((e = max_rel(got.rho, ref.rho, (P + 1) * M)) <= tol, "%d-D %s: rho %g", c->d, pn, e);
            cr_expect((e = max_rel(got.mom, ref.mom, P * M * d)) <= tol, "%d-D %s: momentum %g", c->d, pn, e);
            // The velocity divides by the density: compare where the density is not tiny.
            cr_expect((e = max_rel(got.vel, ref.vel, P * M * d)) <= 10 * tol, "%d-D %s: velocity %g",
                      c->d, pn, e);
            cr_expect((e = max_rel(got.pts_v, ref.pts_v, npts * d)) <= 10 * tol,
                      "%d-D %s: velocity field at points %g", c->d, pn, e);
            free_out(&got), free_out(&ref);
            free(r0), free(r1), free(pts);
        }
    adv_context_destroy(cpu);
    conf_context_destroy(ctx);
}

/* A long time axis: more time faces (65601) than a CUDA grid's y dimension takes (65535),
 * which the per-face mass sums of the final step once launched one block row each for (the
 * GPU refused the launch, so the whole solve failed after its last iteration). One
 * iteration in float64: the solution's face masses must all equal the initial one (the final
 * projection conserves mass to the rounding of its solve, measured 3e-12 on the CPU; a face
 * left out of the sums would read 1), and the last face is rho1 (density on [0, 1]). */
Test(bbot_conformance, more_time_faces_than_a_grid_row) {
    adv_context *ctx = conf_context();
    const int64_t n = 2, P = 65600;
    adv_bbot_plan *plan = plan_for(ctx, &(bb_case){1, {n, 1, 1}, P}, ADV_FLOAT64, 1);
    const double r0[2] = {0.75, 0.25}, r1[2] = {0.25, 0.75};
    void *d0 = conf_upload(ctx, ADV_FLOAT64, r0, 2), *d1 = conf_upload(ctx, ADV_FLOAT64, r1, 2);
    void *drho = conf_alloc_poisoned(ctx, ADV_FLOAT64, (size_t)((P + 1) * n));
    adv_bbot_result res = {.struct_size = sizeof res};
    cr_assert_eq(adv_bbot_solve(plan, d0, d1, drho, NULL, NULL, &res), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    cr_expect(res.mass_error <= 1e-9, "mass error %g", res.mass_error);
    double *rho = tu_calloc((size_t)((P + 1) * n), sizeof(double));
    conf_download(ctx, ADV_FLOAT64, drho, rho, (size_t)((P + 1) * n));
    cr_expect(rho[P * n] == 0.5 && rho[P * n + 1] == 1.5, "last face %g %g", rho[P * n],
              rho[P * n + 1]);
    free(rho);
    conf_free(ctx, d0), conf_free(ctx, d1), conf_free(ctx, drho);
    adv_bbot_plan_destroy(plan);
    conf_context_destroy(ctx);
}

Test(bbot_conformance, invalid_densities_in_context_memory) {
    adv_context *ctx = conf_context();
    const bb_case *c = &CASES[1];
    const int64_t M = cells(c);
    for (int pi = 0; pi < 2; ++pi) {
        const adv_precision p = pi ? ADV_FLOAT64 : ADV_FLOAT32;
        adv_bbot_plan *plan = plan_for(ctx, c, p, 30);
        double *r0 = tu_calloc((size_t)M, sizeof(double)), *r1 = tu_calloc((size_t)M, sizeof(double));
        densities(c, r0, r1);
        const struct {
            const char *what;
            int index;
            double value;
            adv_status want;
        } cases[] = {{"NaN", 5, NAN, ADV_ERR_NONFINITE},
                     {"Inf", M - 1, INFINITY, ADV_ERR_NONFINITE},
                     {"negative", 0, -0.5, ADV_ERR_INVALID_VALUE},
                     {"all zero", -1, 0.0, ADV_ERR_INVALID_VALUE}};
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
            double *bad = tu_calloc((size_t)M, sizeof(double));
            if (cases[k].index >= 0) {
                memcpy(bad, r1, (size_t)M * sizeof(double));
                bad[cases[k].index] = cases[k].value;
            }
            void *d0 = conf_upload(ctx, p, r0, (size_t)M), *d1 = conf_upload(ctx, p, bad, (size_t)M);
            void *drho = conf_alloc_poisoned(ctx, p, (size_t)((c->P + 1) * M));
            adv_status st = adv_bbot_solve(plan, d0, d1, drho, NULL, NULL, NULL);
            cr_expect_eq(st, cases[k].want, "%s %s: got %s (%s)", cases[k].what,
                         tu_precision_name(p), adv_status_name(st), adv_context_last_error(ctx));
            double *h = tu_calloc((size_t)((c->P + 1) * M), sizeof(double));
            conf_download(ctx, p, drho, h, (size_t)((c->P + 1) * M));
            cr_expect(isnan(h[0]) && isnan(h[(c->P + 1) * M - 1]), "%s: output written", cases[k].what);
            free(h), free(bad);
            conf_free(ctx, d0), conf_free(ctx, d1), conf_free(ctx, drho);
        }
        free(r0), free(r1);
        adv_bbot_plan_destroy(plan);
    }
    conf_context_destroy(ctx);
}

static double unit_mass_norm(int N, double *r) { // rescales r to mean 1; returns sqrt(mean r²)
    double m = 0, q = 0;
    for (int i = 0; i < N; ++i) m += r[i] / N;
    for (int i = 0; i < N; ++i) r[i] /= m, q += r[i] * r[i] / N;
    return sqrt(q);
}

/* One Douglas-Rachford iteration of the 1-D float64 problem (r0, r1) on n cells and P time
 * steps from the cold start: returns the divergence residual; rho (may be NULL) gets the
 * density on the P + 1 time faces. */
static double solve_once(adv_context *ctx, int64_t n, int64_t P, const double *r0, const double *r1,
                         double *rho) {
    adv_bbot_plan *plan = plan_for(ctx, &(bb_case){1, {n, 1, 1}, P}, ADV_FLOAT64, 1);
    void *d0 = conf_upload(ctx, ADV_FLOAT64, r0, (size_t)n), *d1 = conf_upload(ctx, ADV_FLOAT64, r1, (size_t)n);
    void *drho = rho ? conf_alloc_poisoned(ctx, ADV_FLOAT64, (size_t)((P + 1) * n)) : NULL;
    adv_bbot_result res = {.struct_size = sizeof res};
    cr_assert_eq(adv_bbot_solve(plan, d0, d1, drho, NULL, NULL, &res), ADV_OK, "%s", adv_context_last_error(ctx));
    if (rho) conf_download(ctx, ADV_FLOAT64, drho, rho, (size_t)((P + 1) * n));
    conf_free(ctx, d0), conf_free(ctx, d1);
    if (drho) conf_free(ctx, drho);
    adv_bbot_plan_destroy(plan);
    return res.divergence_residual;
}

/* The cold start is ρ linear in time between the end densities, m = 0 (bbot.h). The first
 * Douglas-Rachford iteration leaves ρ there: with m = 0 the prox of J keeps the point, and
 * the divergence of the start, ρ1 - ρ0 in every time cell, does not depend on t, so its
 * space-time projection corrects m only (the potential is constant in t). The output density
 * after one iteration is therefore (1-t) ρ0 + t ρ1 on every face, to rounding, and far from
 * t ρ0 + (1-t) ρ1 (the ends swapped), for two disjoint bumps in 1-D. */
Test(bbot_conformance, cold_start_is_the_linear_interpolation) {
    adv_context *ctx = conf_context();
    enum { N = 48, P = 8 };
    double r0[N], r1[N], rho[(P + 1) * N];
    for (int i = 0; i < N; ++i) {
        const double x = (i + 0.5) / N;
        r0[i] = exp(-(x - 0.25) * (x - 0.25) / 0.005);
        r1[i] = exp(-(x - 0.7) * (x - 0.7) / 0.005);
    }
    unit_mass_norm(N, r0), unit_mass_norm(N, r1); // unit mass, as the solver sees them
    solve_once(ctx, N, P, r0, r1, rho);
    for (int j = 0; j <= P; ++j) {
        const double t = (double)j / P;
        double lin = 0, rev = 0, norm = 0;
        for (int i = 0; i < N; ++i) {
            const double g = rho[j * N + i];
            lin += pow(g - ((1 - t) * r0[i] + t * r1[i]), 2);
            rev += pow(g - (t * r0[i] + (1 - t) * r1[i]), 2);
            norm += g * g;
        }
        // Rounding of the FFT projection: ~1e-15 of the norm measured; 1e-12 allowed.
        cr_expect(sqrt(lin) <= 1e-12 * sqrt(norm), "face %d: distance %g to the linear start (norm %g)", j,
                  sqrt(lin), sqrt(norm));
        if (j > 0 && 2 * j != P && j < P)
            cr_expect(sqrt(rev) > 0.1 * sqrt(norm), "face %d: the swapped start is as near (%g)", j, sqrt(rev));
    }
    conf_context_destroy(ctx);
}

/* The divergence residual is relative to max(‖ρ0‖, ‖ρ1‖) (L2, unit-mass densities; bbot.h).
 * Checked through the first iteration, which is linear in the data: from the cold start
 * (m = 0) the prox of J is the identity, and every other step is linear. A component S
 * present in both ends (constant in time, no momentum) is a fixed point of all of them, so
 * the problem ((f + S)/2, (g + S)/2) has exactly half the divergence of (f, g) after one
 * iteration, and the ratio of the two residuals is 1/2 max(‖f‖, ‖g‖) / max(‖(f+S)/2‖,
 * ‖(g+S)/2‖). f is narrow and g wide (their norms differ by > 1.5x), S a tall spike; each
 * pair is also run with its ends swapped. */
Test(bbot_conformance, residual_is_relative_to_the_larger_end_norm) {
    adv_context *ctx = conf_context();
    enum { N = 40 };
    double f[N], g[N], S[N], b0[N], b1[N];
    for (int i = 0; i < N; ++i) {
        const double x = (i + 0.5) / N;
        f[i] = 0.02 + exp(-(x - 0.3) * (x - 0.3) / 0.002);
        g[i] = 0.05 + exp(-(x - 0.6) * (x - 0.6) / 0.03);
        S[i] = 0.01 + (i == 33 ? 30.0 : 0.0);
    }
    const double nf = unit_mass_norm(N, f), ng = unit_mass_norm(N, g);
    unit_mass_norm(N, S);
    for (int i = 0; i < N; ++i) b0[i] = (f[i] + S[i]) / 2, b1[i] = (g[i] + S[i]) / 2;
    const double n0 = unit_mass_norm(N, b0), n1 = unit_mass_norm(N, b1);
    cr_assert(fmax(nf, ng) > 1.5 * fmin(nf, ng), "norms %g, %g", nf, ng);
    for (int swap = 0; swap < 2; ++swap) { // the larger norm at either end
        const double ra = swap ? solve_once(ctx, N, 6, g, f, NULL) : solve_once(ctx, N, 6, f, g, NULL);
        const double rb = swap ? solve_once(ctx, N, 6, b1, b0, NULL) : solve_once(ctx, N, 6, b0, b1, NULL);
        const double want = 0.5 * fmax(nf, ng) / fmax(n0, n1);
        cr_expect(ra > 0 && fabs(rb / ra - want) <= 1e-9 * want, "swap %d: residual ratio %.15g, expected %.15g",
                  swap, rb / ra, want);
    }
    conf_context_destroy(ctx);
}
