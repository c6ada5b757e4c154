/* Conformance of the Poisson plan (spec math.md §4, oracle O11) on the backend under test:
 * manufactured solutions (random u, f = (c - Δ_h) u by the naive stencil of
 * tests/common/poisson_ref.h, solve, compare with u) for every boundary condition, mixed per
 * axis, dims 1-4, odd/even/unit sizes, c = 0 and c > 0, both precisions, batches and in-place
 * solves; the zero-mean rules; NaN input. Outputs are poisoned with NaN before each call,
 * and on errors they must still hold the poison. Tolerance: pref_tolerance() (see
 * poisson_ref.h: 8 κ u (log2 n + 4), κ the condition number of the inverted modes). */
#include "conformance.h"
#include "poisson_ref.h"

#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const adv_boundary ALL_BC[3] = {ADV_BC_PERIODIC, ADV_BC_NEUMANN, ADV_BC_DIRICHLET};

typedef struct pcase {
    int ndim;
    int64_t shape[4];
} pcase;

static const pcase CASES[] = {{1, {1}},       {1, {7}},          {1, {8}},
                              {2, {5, 6}},    {2, {1, 4}},       {3, {3, 4, 5}},
                              {4, {2, 3, 4, 5}}, {2, {32, 17}},  {3, {16, 8, 9}}};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static adv_poisson_desc make_desc(adv_precision p, const pcase *pc, const double *h,
                                  const adv_boundary *bc, double c, int64_t batch) {
    adv_poisson_desc d;
    cr_assert_eq(adv_poisson_default_desc(&d), ADV_OK);
    d.precision = p;
    d.ndim = pc->ndim;
    for (int a = 0; a < pc->ndim; ++a) {
        d.shape[a] = pc->shape[a];
        d.spacing[a] = h[a];
        d.bc[a] = bc[a];
    }
    d.shift = c;
    d.batch = batch;
    d.effort = ADV_FFT_ESTIMATE;
    return d;
}

/* Random u per right-hand side (zero mean when singular) and f = A u, rounded to p. */
static void make_problem(const pcase *pc, const double *h, const adv_boundary *bc, double c,
                         int64_t batch, adv_precision p, uint64_t seed, double *u, double *f) {
    const size_t n = pref_cells(pc->ndim, pc->shape);
    tu_fill_uniform(u, n * (size_t)batch, -1.0, 1.0, seed);
    for (int64_t b = 0; b < batch; ++b) {
        if (pref_singular(pc->ndim, bc, c)) pref_remove_mean(u + (size_t)b * n, n);
        pref_apply(pc->ndim, pc->shape, h, bc, c, u + (size_t)b * n, f + (size_t)b * n);
    }
    tu_round_to_precision(f, n * (size_t)batch, p);
}

Test(poisson_conformance, manufactured_solutions) {
    adv_context *ctx = conf_context();
    const double h[4] = {0.5, 1.3, 0.8, 2.0};
    const double shifts[2] = {0.0, 0.37};
    uint64_t seed = 1000;
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        for (size_t ci = 0; ci < N_CASES; ++ci)
            for (int pat = 0; pat < 5; ++pat)
                for (int s = 0; s < 2; ++s) {
                    const pcase *pc = &CASES[ci];
                    adv_boundary bc[4];
                    for (int a = 0; a < pc->ndim; ++a)
                        bc[a] = pat < 3 ? ALL_BC[pat] : ALL_BC[(a + pat) % 3];
                    const int64_t batch = (pat == 4) ? 2 : 1;
                    const size_t n = pref_cells(pc->ndim, pc->shape), total = n * (size_t)batch;
                    double *u = tu_calloc(total, 8), *f = tu_calloc(total, 8);
                    double *got = tu_calloc(total, 8);
                    make_problem(pc, h, bc, shifts[s], batch, prec, seed++, u, f);
                    adv_poisson_desc d = make_desc(prec, pc, h, bc, shifts[s], batch);
                    void *df = conf_upload(ctx, prec, f, total);
                    void *du = conf_alloc_poisoned(ctx, prec, total);
                    adv_status st = adv_poisson_solve(ctx, &d, df, du);
                    cr_assert_eq(st, ADV_OK, "%s", adv_context_last_error(ctx));
                    conf_download(ctx, prec, du, got, total);
                    const double tol = pref_tolerance(pc->ndim, pc->shape, h, bc, shifts[s],
                                                      tu_unit_roundoff(prec));
                    for (int64_t b = 0; b < batch; ++b) {
                        double err = pref_rel_err(got + (size_t)b * n, u + (size_t)b * n, n);
                        cr_assert(err <= tol,
                                  "%s ndim=%d shape0=%lld pattern=%d c=%g rhs=%lld: relative "
                                  "error %g > tol %g",
                                  tu_precision_name(prec), pc->ndim, (long long)pc->shape[0], pat,
                                  shifts[s], (long long)b, err, tol);
                    }
                    conf_free(ctx, df);
                    conf_free(ctx, du);
                    free(u), free(f), free(got);
                }
    }
    conf_context_destroy(ctx);
}

/* One plan, executed in place (u == f) and then out of place with new pointers. */
Test(poisson_conformance, in_place_and_plan_reuse) {
    adv_context *ctx = conf_context();
    const pcase pc = {3, {6, 5, 7}};
    const double h[3] = {0.2, 0.3, 0.25};
    const adv_boundary bc[3] = {ADV_BC_NEUMANN, ADV_BC_DIRICHLET, ADV_BC_PERIODIC};
    const size_t n = 210, B = 3;
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        adv_poisson_desc d = make_desc(prec, &pc, h, bc, 0.0, (int64_t)B);
        adv_poisson_plan *plan = NULL;
        cr_assert_eq(adv_poisson_plan_create(ctx, &d, &plan), ADV_OK, "%s",
                     adv_context_last_error(ctx));
        const double tol = pref_tolerance(3, pc.shape, h, bc, 0.0, tu_unit_roundoff(prec));
        for (int rep = 0; rep < 2; ++rep) {
            double u[3 * 210], f[3 * 210], got[3 * 210];
            make_problem(&pc, h, bc, 0.0, (int64_t)B, prec, 77 + (uint64_t)rep, u, f);
            void *df = conf_upload(ctx, prec, f, B * n);
            void *du = rep ? conf_alloc_poisoned(ctx, prec, B * n) : df;
            cr_assert_eq(adv_poisson_execute(plan, df, du), ADV_OK, "%s",
                         adv_context_last_error(ctx));
            conf_download(ctx, prec, du, got, B * n);
            for (size_t b = 0; b < B; ++b) {
                double err = pref_rel_err(got + b * n, u + b * n, n);
                cr_assert(err <= tol, "%s rep %d rhs %zu: %g > %g", tu_precision_name(prec), rep,
                          b, err, tol);
            }
            if (du != df) conf_free(ctx, du);
            conf_free(ctx, df);
        }
        // u overlapping f without being f (shifted by one element, or by a row) once gave a
        // wrong answer with ADV_OK on the CPU: refused now, with f untouched.
        double f[3 * 210 + 8], back[3 * 210 + 8];
        tu_fill_uniform(f, B * n + 8, -1.0, 1.0, 5);
        tu_round_to_precision(f, B * n + 8, prec);
        void *df = conf_upload(ctx, prec, f, B * n + 8);
        const size_t es = tu_real_size(prec);
        cr_expect_eq(adv_poisson_execute(plan, df, (char *)df + es), ADV_ERR_INVALID_VALUE);
        cr_expect_eq(adv_poisson_execute(plan, (char *)df + 7 * es, df), ADV_ERR_INVALID_VALUE);
        conf_download(ctx, prec, df, back, B * n + 8);
        cr_expect(memcmp(back, f, sizeof f) == 0, "f was written");
        conf_free(ctx, df);
        cr_assert_eq(adv_poisson_plan_destroy(plan), ADV_OK);
    }
    conf_context_destroy(ctx);
}

static int count_nan(const double *x, size_t n) { return (int)tu_count_nan(x, n); }

Test(poisson_conformance, zero_mean_rules) {
    adv_context *ctx = conf_context();
    const pcase pc = {2, {5, 6}};
    const double h[2] = {1.0, 0.5};
    const size_t n = 30;
    for (int pat = 0; pat < 2; ++pat) { // all periodic, all Neumann
        const adv_boundary bc[2] = {ALL_BC[pat], ALL_BC[pat]};
        for (int p = 0; p < 2; ++p) {
            const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
            double u0[30], f[30], got[30];
            make_problem(&pc, h, bc, 0.0, 1, ADV_FLOAT64, 5, u0, f);
            for (size_t i = 0; i < n; ++i) f[i] += 0.75;
            void *df = conf_upload(ctx, prec, f, n);
            void *du = conf_alloc_poisoned(ctx, prec, n);
            adv_poisson_desc d = make_desc(prec, &pc, h, bc, 0.0, 1);
            cr_assert_eq(adv_poisson_solve(ctx, &d, df, du), ADV_ERR_INVALID_VALUE);
            conf_download(ctx, prec, du, got, n);
            cr_assert_eq(count_nan(got, n), (int)n, "u was written on error");
            // Projecting the mean gives the zero-mean solution.
            d.mean_policy = ADV_POISSON_PROJECT_MEAN;
            cr_assert_eq(adv_poisson_solve(ctx, &d, df, du), ADV_OK, "%s",
                         adv_context_last_error(ctx));
            conf_download(ctx, prec, du, got, n);
            const double tol =
                10.0 * pref_tolerance(2, pc.shape, h, bc, 0.0, tu_unit_roundoff(prec));
            const double err = pref_rel_err(got, u0, n);
            cr_assert(err <= tol, "%s %d: projected solution error %g > %g",
                      tu_precision_name(prec), pat, err, tol);
            conf_free(ctx, df);
            conf_free(ctx, du);
        }
    }
    conf_context_destroy(ctx);
}

/* The zero-mean rule applies to every right-hand side of a batch, not only the first: a
 * batch of two whose second has mean 0.75 is refused, naming it, and u is untouched. */
Test(poisson_conformance, zero_mean_rule_per_batch_entry) {
    adv_context *ctx = conf_context();
    const pcase pc = {2, {5, 6}};
    const double h[2] = {1.0, 0.5};
    const adv_boundary bc[2] = {ADV_BC_PERIODIC, ADV_BC_PERIODIC};
    const size_t n = 30;
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        double u0[60], f[60], got[60];
        make_problem(&pc, h, bc, 0.0, 2, ADV_FLOAT64, 15, u0, f);
        for (size_t i = n; i < 2 * n; ++i) f[i] += 0.75;
        void *df = conf_upload(ctx, prec, f, 2 * n);
        void *du = conf_alloc_poisoned(ctx, prec, 2 * n);
        adv_poisson_desc d = make_desc(prec, &pc, h, bc, 0.0, 2);
        cr_expect_eq(adv_poisson_solve(ctx, &d, df, du), ADV_ERR_INVALID_VALUE, "%s: the second mean",
                     tu_precision_name(prec));
        cr_expect(strstr(adv_context_last_error(ctx), "right-hand side 1") != NULL, "%s",
                  adv_context_last_error(ctx));
        conf_download(ctx, prec, du, got, 2 * n);
        cr_expect_eq(count_nan(got, 2 * n), (int)(2 * n), "u was written on error");
        conf_free(ctx, df);
        conf_free(ctx, du);
    }
    conf_context_destroy(ctx);
}

/* The overflow bound's max|f| is over every element: a single spike (index 40 of 64, not in
 * the first warp of a GPU block) whose solution overflows is found and reported, u zeroed. */
Test(poisson_conformance, overflow_from_a_single_spike) {
    adv_context *ctx = conf_context();
    const pcase pc = {1, {64}};
    const double h[1] = {1e3};
    const adv_boundary bc[1] = {ADV_BC_PERIODIC};
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        double f[64] = {0}, got[64];
        f[40] = p ? 1e305 : 1e36; // the mean mode alone is f/64/c: far beyond the range
        void *df = conf_upload(ctx, prec, f, 64);
        void *du = conf_alloc_poisoned(ctx, prec, 64);
        adv_poisson_desc d = make_desc(prec, &pc, h, bc, 1e-10, 1);
        cr_expect_eq(adv_poisson_solve(ctx, &d, df, du), ADV_ERR_NONFINITE, "%s: %s", tu_precision_name(prec),
                     adv_context_last_error(ctx));
        cr_expect(strstr(adv_context_last_error(ctx), "overflows") != NULL, "%s", adv_context_last_error(ctx));
        conf_download(ctx, prec, du, got, 64);
        for (int i = 0; i < 64; ++i)
            cr_expect_eq(got[i], 0.0, "%s: u[%d] = %g, not zeroed", tu_precision_name(prec), i, got[i]);
        conf_free(ctx, df);
        conf_free(ctx, du);
    }
    conf_context_destroy(ctx);
}

Test(poisson_conformance, nonfinite_input) {
    adv_context *ctx = conf_context();
    const pcase pc = {2, {4, 5}};
    const double h[2] = {1.0, 1.0};
    const adv_boundary bc[2] = {ADV_BC_DIRICHLET, ADV_BC_NEUMANN};
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        double f[40], got[40];
        tu_fill_uniform(f, 40, -1.0, 1.0, 9);
        f[33] = p ? INFINITY : NAN; // in the second right-hand side
        void *df = conf_upload(ctx, prec, f, 40);
        void *du = conf_alloc_poisoned(ctx, prec, 40);
        adv_poisson_desc d = make_desc(prec, &pc, h, bc, 1.0, 2);
        cr_assert_eq(adv_poisson_solve(ctx, &d, df, du), ADV_ERR_NONFINITE);
        conf_download(ctx, prec, du, got, 40);
        cr_assert_eq(count_nan(got, 40), 40, "u was written on error");
        conf_free(ctx, df);
        conf_free(ctx, du);
    }
    conf_context_destroy(ctx);
}

/* Right-hand sides past the plan's overflow bound (a loose a-priori bound; inputs beyond it
 * have their solution scanned): a representable solution is returned as usual, one that
 * overflows the precision is ADV_ERR_NONFINITE with u zeroed, never Inf with ADV_OK. Both
 * CPU paths: all periodic (complex transforms) and mixed (real transforms). */
Test(poisson_conformance, solution_overflow) {
    adv_context *ctx = conf_context();
    const pcase grids[2] = {{1, {16}}, {2, {5, 6}}};
    const adv_boundary bcs[2][2] = {{ADV_BC_PERIODIC}, {ADV_BC_NEUMANN, ADV_BC_DIRICHLET}};
    const double h[2] = {1e-3, 1e-3};
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        const double real_max = p ? DBL_MAX : FLT_MAX;
        for (int g = 0; g < 2; ++g) {
            const pcase *pc = &grids[g];
            const size_t n = pref_cells(pc->ndim, pc->shape);
            double u[30], f[30], got[30];
            // Representable: a manufactured solution scaled by a power of two (exact).
            const double c = 0.5;
            make_problem(pc, h, bcs[g], c, 1, prec, 31 + (uint64_t)g, u, f);
            // Scaled by a power of two (exact) to max|f| near max/(4^D cells): four times
            // the a-priori bound, while every transform stays below max/2^D.
            double fmax_abs = 0.0, growth = (double)n;
            for (size_t i = 0; i < n; ++i) fmax_abs = fmax(fmax_abs, fabs(f[i]));
            for (int a = 0; a < pc->ndim; ++a) growth *= 4.0;
            const int scale_exp = (int)floor(log2(real_max / growth / fmax_abs));
            for (size_t i = 0; i < n; ++i) {
                u[i] = ldexp(u[i], scale_exp);
                f[i] = ldexp(f[i], scale_exp);
            }
            adv_poisson_desc d = make_desc(prec, pc, h, bcs[g], c, 1);
            void *df = conf_upload(ctx, prec, f, n);
            void *du = conf_alloc_poisoned(ctx, prec, n);
            cr_assert_eq(adv_poisson_solve(ctx, &d, df, du), ADV_OK, "%s grid %d: %s",
                         tu_precision_name(prec), g, adv_context_last_error(ctx));
            conf_download(ctx, prec, du, got, n);
            for (size_t i = 0; i < n; ++i) { // back to unit scale (exact): norms stay finite
                got[i] = ldexp(got[i], -scale_exp);
                u[i] = ldexp(u[i], -scale_exp);
            }
            const double tol = pref_tolerance(pc->ndim, pc->shape, h, bcs[g], c,
                                              tu_unit_roundoff(prec));
            const double err = pref_rel_err(got, u, n);
            cr_assert(err <= tol, "%s grid %d: error %g > %g", tu_precision_name(prec), g, err,
                      tol);
            conf_free(ctx, df);

            // Overflowing: h = 1000 and c = 1e-10 make the smallest eigenvalue at most 3e-7
            // (the Dirichlet axis' 4 sin²(π/12)/h²), so a constant of 1e36 (1e305) gives a
            // solution of at least 3e42 (3e311).
            d.shift = 1e-10;
            for (int a = 0; a < pc->ndim; ++a) d.spacing[a] = 1e3;
            for (size_t i = 0; i < n; ++i) f[i] = p ? 1e305 : 1e36;
            df = conf_upload(ctx, prec, f, n);
            cr_assert_eq(adv_poisson_solve(ctx, &d, df, du), ADV_ERR_NONFINITE, "%s grid %d",
                         tu_precision_name(prec), g);
            cr_assert(strstr(adv_context_last_error(ctx), "overflows") != NULL, "message: %s",
                      adv_context_last_error(ctx));
            if (g == 0) { // the message's bound: max/4/(4^D cells max(1, 1/lambda_min)),
                          // lambda_min = c (periodic: the lowest mode is 0)
                char want[64];
                snprintf(want, sizeof want, "above %g ", real_max / 4.0 / (16.0 * fmax(1.0, 1.0 / d.shift) * 4.0));
                cr_expect(strstr(adv_context_last_error(ctx), want) != NULL, "message '%s' lacks '%s'",
                          adv_context_last_error(ctx), want);
            }
            conf_download(ctx, prec, du, got, n);
            for (size_t i = 0; i < n; ++i)
                cr_assert_eq(got[i], 0.0, "%s grid %d: u[%zu] = %g, not zeroed",
                             tu_precision_name(prec), g, i, got[i]);
            conf_free(ctx, df);
            conf_free(ctx, du);
        }
    }
    conf_context_destroy(ctx);
}
