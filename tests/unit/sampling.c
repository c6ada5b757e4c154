/* Unit tests of the sampling module on the CPU backend: schedules and time grids against
 * their formulas; bitwise reproducibility across thread counts, chunk sizes and advance
 * splits; checkpoints (resume to identical bits, corrupt files rejected with exact codes and
 * nothing written); snapshots; and invalid input to every public entry point, each with its
 * exact status code and untouched outputs. Sizes are deliberately awkward (37 particles in
 * chunks of 5, d = 3, 601 data points). */
#include "sampling_util.h"
#include "common/sampler_math.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- schedules and grids ---------------------------------------------------------------- */

Test(schedule, formulas_and_end_points) {
    adv_schedule s;
    double a, b, da, db;
    // Derivatives against central differences: truncation O(h^2) ~ 1e-12 and rounding
    // ~ 1e-16/h ~ 1e-10 relative, so 1e-7 has margin.
    const adv_schedule_kind kinds[4] = {ADV_SCHEDULE_LINEAR, ADV_SCHEDULE_COSINE, ADV_SCHEDULE_VP, ADV_SCHEDULE_VE};
    for (int q = 0; q < 4; ++q) {
        cr_assert_eq(adv_schedule_default(&s, kinds[q]), ADV_OK);
        for (double t = 0.05; t < 0.96; t += 0.15) {
            double ap, bp, am, bm, h = 1e-6;
            cr_assert_eq(adv_schedule_eval(&s, t, &a, &b, &da, &db), ADV_OK);
            adv_schedule_eval(&s, t + h, &ap, &bp, NULL, NULL);
            adv_schedule_eval(&s, t - h, &am, &bm, NULL, NULL);
            cr_expect(fabs(da - (ap - am) / (2 * h)) <= 1e-7 * (1 + fabs(da)), "kind %d t %g: a' %g", kinds[q], t, da);
            cr_expect(fabs(db - (bp - bm) / (2 * h)) <= 1e-7 * (1 + fabs(db)), "kind %d t %g: b' %g", kinds[q], t, db);
            if (kinds[q] == ADV_SCHEDULE_COSINE) {
                cr_expect(fabs(a - sin(M_PI * t / 2)) < 1e-15 && fabs(b - cos(M_PI * t / 2)) < 1e-15);
            } else if (kinds[q] == ADV_SCHEDULE_VP) {
                double u = 1 - t, B = 0.1 * u + 0.5 * 19.9 * u * u;
                cr_expect(fabs(a - exp(-0.5 * B)) < 1e-15 && fabs(a * a + b * b - 1) < 1e-14);
            } else if (kinds[q] == ADV_SCHEDULE_VE) {
                cr_expect(a == 1.0 && fabs(b - 80.0 * pow(0.01 / 80.0, t)) < 1e-12 * b);
            } else {
                cr_expect(a == t && b == 1 - t && da == 1 && db == -1);
            }
        }
        cr_assert_eq(adv_schedule_eval(&s, 1.0, &a, &b, &da, &db), ADV_OK);
        if (kinds[q] != ADV_SCHEDULE_VE) cr_expect(b == 0.0 && a == 1.0, "kind %d: a_1 = %g, b_1 = %g", kinds[q], a, b);
        else cr_expect(b == 0.01 && a == 1.0);
        cr_assert_eq(adv_schedule_eval(&s, 0.0, &a, &b, NULL, NULL), ADV_OK);
        if (kinds[q] <= ADV_SCHEDULE_COSINE) cr_expect(a == 0.0 && b == 1.0);
        if (kinds[q] == ADV_SCHEDULE_VP) cr_expect(a > 0.0 && a < 0.01, "VP a_0 = %g is small, not 0", a);
        cr_expect_eq(adv_schedule_eval(&s, 1.5, &a, NULL, NULL, NULL), ADV_ERR_INVALID_VALUE);
        cr_expect_eq(adv_schedule_eval(&s, NAN, &a, NULL, NULL, NULL), ADV_ERR_INVALID_VALUE);
    }
    cr_expect_eq(adv_schedule_eval(NULL, 0.5, &a, NULL, NULL, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_schedule_default(&s, (adv_schedule_kind)9), ADV_ERR_INVALID_VALUE);
}

static adv_field *empirical(adv_context *ctx, adv_precision p, adv_schedule_kind kind,
                            const double *y, int64_t n, int d, void **dy) {
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
    adv_schedule_default(&eo.schedule, kind);
    *dy = su_put(ctx, p, y, (size_t)(n * d));
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, p, *dy, NULL, n, d, &eo, &f), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    return f;
}

Test(grid, uniform_cosine_karras) {
    adv_context *ctx = su_cpu_context(1);
    double y[6] = {0, 1, 2, 3, 4, 5};
    void *dy;
    adv_field *f = empirical(ctx, ADV_FLOAT64, ADV_SCHEDULE_LINEAR, y, 3, 2, &dy);
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.steps = 13;
    o.t0 = 0.1;
    o.t1 = 0.9;
    double g[14];
    adv_sampler *s = NULL;
    for (int grid = 0; grid < 3; ++grid) {
        o.grid = (adv_time_grid)grid;
        cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
        cr_assert_eq(adv_sampler_time_grid(s, g), ADV_OK);
        cr_expect(g[0] == 0.1 && g[13] == 0.9, "grid %d end points", grid);
        for (int k = 0; k < 13; ++k) cr_expect(g[k + 1] > g[k], "grid %d not increasing at %d", grid, k);
        for (int k = 1; k < 13; ++k) {
            double want;
            if (grid == 0) {
                want = 0.1 + 0.8 * k / 13.0;
            } else if (grid == 1) {
                want = 0.1 + 0.8 * 0.5 * (1 - cos(M_PI * k / 13.0));
            } else { // r = (1-t)/t follows the rho = 7 interpolation of r^(1/7)
                double r0 = 9.0, r1 = 0.1 / 0.9, r = pow(pow(r0, 1 / 7.0) + k / 13.0 * (pow(r1, 1 / 7.0) - pow(r0, 1 / 7.0)), 7);
                want = 1.0 / (1.0 + r);
            }
            cr_expect(fabs(g[k] - want) < 1e-12, "grid %d point %d: %.15g vs %.15g", grid, k, g[k], want);
        }
        adv_sampler_destroy(s);
    }
    // Karras from t0 = 0 (a_0 = 0, r infinite): t0, then r = 80 ... r(1) = 0.
    o.t0 = 0.0;
    o.t1 = 1.0;
    o.grid = ADV_GRID_KARRAS;
    cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
    adv_sampler_time_grid(s, g);
    cr_expect(g[0] == 0.0 && g[13] == 1.0);
    cr_expect(fabs(g[1] - 1.0 / 81.0) < 1e-12, "first Karras point %.15g", g[1]);
    adv_sampler_destroy(s);
    // Intervals shorter than the grid's minimum gap times the steps (1e-14 each): the points
    // stay inside [t0, t1] and increasing. Before, they were capped below t0 and refused.
    const double short_ends[3][2] = {{0.0, 1e-14}, {0.5, 0.5 + 1e-13}, {0.999, 0.999 + 4e-14}};
    for (int c = 0; c < 3; ++c) {
        o.t0 = short_ends[c][0];
        o.t1 = short_ends[c][1];
        cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK, "[%g, %g]: %s", o.t0, o.t1,
                     adv_context_last_error(ctx));
        cr_assert_eq(adv_sampler_time_grid(s, g), ADV_OK);
        cr_expect(g[0] == o.t0 && g[13] == o.t1);
        for (int k = 0; k < 13; ++k)
            cr_expect(g[k + 1] > g[k], "[%g, %g]: not increasing at %d (%.17g, %.17g)", o.t0,
                      o.t1, k, g[k], g[k + 1]);
        adv_sampler_destroy(s);
    }
    adv_field_destroy(f);
    adv_free(ctx, dy);
    adv_context_destroy(ctx);
}

/* Karras grids crowd towards a singular end faster than double resolves times near 1: from
 * ~350 steps their last points kept coinciding with 1 (the sampler refused the grid). They now
 * stay strictly increasing. With a source scale sigma the spacing is of the noise level
 * sigma r_t, as in EDM. */
Test(grid, karras_many_steps_and_sigma) {
    adv_context *ctx = su_cpu_context(1);
    double y[6] = {0, 1, 2, 3, 4, 5};
    void *dy = su_put(ctx, ADV_FLOAT64, y, 6);
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
    eo.sigma = 2.0;
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, dy, NULL, 3, 2, &eo, &f), ADV_OK);
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.grid = ADV_GRID_KARRAS;
    o.steps = 2000;
    adv_sampler *s = NULL;
    cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK, "%s", adv_context_last_error(ctx));
    double *g = tu_calloc(2001, sizeof(double));
    cr_assert_eq(adv_sampler_time_grid(s, g), ADV_OK);
    for (int k = 0; k < 2000; ++k) cr_expect(g[k + 1] > g[k], "not increasing at %d", k);
    cr_expect(g[2000] == 1.0 && g[0] == 0.0);
    adv_sampler_destroy(s);
    // sigma = 2, t0 = 0.1, t1 = 0.9: 2 (1-t)/t follows the rho interpolation of (2 r)^(1/rho),
    // for the default rho = 7 and for rho = 3.
    o.steps = 13;
    o.t0 = 0.1;
    o.t1 = 0.9;
    const double rhos[2] = {7.0, 3.0};
    for (int c = 0; c < 2; ++c) {
        o.rho = rhos[c];
        cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
        cr_assert_eq(adv_sampler_time_grid(s, g), ADV_OK);
        for (int k = 1; k < 13; ++k) {
            const double r0 = 18.0, r1 = 0.2 / 0.9, e = 1.0 / rhos[c];
            const double r = pow(pow(r0, e) + k / 13.0 * (pow(r1, e) - pow(r0, e)), rhos[c]);
            const double want = 1.0 / (1.0 + r / 2.0);
            cr_expect(fabs(g[k] - want) < 1e-12, "rho %g point %d: %.15g vs %.15g", rhos[c], k, g[k], want);
        }
        adv_sampler_destroy(s);
    }
    free(g);
    adv_field_destroy(f);
    adv_free(ctx, dy);
    adv_context_destroy(ctx);
}

/* ---- reproducibility -------------------------------------------------------------------- */

#define RN 37
#define RD 3
#define RM 601 /* > 2 key blocks of the CPU engine, so it could split keys */

static void repro_data(double *y) {
    tu_fill_uniform(y, RM * RD, -2.0, 2.0, 901);
}

/* One full run on a fresh context; returns the particles (host copy, precision bytes). */
static void *run_once(adv_precision p, adv_method m, int threads, int64_t chunk, uint64_t seed,
                      adv_schedule_kind kind) {
    adv_context *ctx = su_cpu_context(threads);
    double y[RM * RD];
    repro_data(y);
    void *dy;
    adv_field *f = empirical(ctx, p, kind, y, RM, RD, &dy);
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.method = m;
    o.steps = 17;
    o.t0 = m == ADV_METHOD_SDE ? 0.05 : 0.0;
    o.atol = o.rtol = 1e-4;
    o.seed = seed;
    o.init_from_source = 1;
    o.chunk_size = chunk;
    size_t bytes = (size_t)RN * RD * tu_real_size(p);
    void *z = malloc(bytes);
    adv_sampler_stats st = {.struct_size = sizeof st};
    cr_assert_eq(adv_sample(f, &o, RN, z, &st), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect_eq(st.particles, RN);
    cr_expect_eq(st.completed, 1);
    adv_field_destroy(f);
    adv_free(ctx, dy);
    adv_context_destroy(ctx);
    return z;
}

static void repro(adv_method m, adv_precision p) {
    size_t bytes = (size_t)RN * RD * tu_real_size(p);
    void *ref = run_once(p, m, 1, 0, 5, ADV_SCHEDULE_COSINE);
    const int threads[3] = {1, 2, 3};
    const int64_t chunks[4] = {1, 5, 16, RN};
    for (int a = 0; a < 3; ++a)
        for (int c = 0; c < 4; ++c) {
            if (a == 0 && c == 3) continue;
            void *z = run_once(p, m, threads[a], chunks[c], 5, ADV_SCHEDULE_COSINE);
            cr_expect(memcmp(z, ref, bytes) == 0, "method %d %s: threads %d, chunk %lld differ", (int)m,
                      tu_precision_name(p), threads[a], (long long)chunks[c]);
            free(z);
        }
    void *other = run_once(p, m, 1, 0, 6, ADV_SCHEDULE_COSINE);
    if (m == ADV_METHOD_SDE) cr_expect(memcmp(other, ref, bytes) != 0, "another seed gave the same SDE run");
    free(other);
    free(ref);
}

Test(reproducible, sde_f32) { repro(ADV_METHOD_SDE, ADV_FLOAT32); }
Test(reproducible, sde_f64) { repro(ADV_METHOD_SDE, ADV_FLOAT64); }
Test(reproducible, dopri5_f32) { repro(ADV_METHOD_DOPRI5, ADV_FLOAT32); }
Test(reproducible, dpm2m_f64) { repro(ADV_METHOD_DPM2M, ADV_FLOAT64); }
Test(reproducible, rk4_f32) { repro(ADV_METHOD_RK4, ADV_FLOAT32); }

/* ---- checkpoints ------------------------------------------------------------------------ */

/* A DOPRI5 step shortened to land on a snapshot time must not set the next step: grid time
 * 0.25 is 10 h + 0.001 for the fixed-step recipe of docs/sampling.md (h_init = h_min = h_max
 * = h, loose tolerances), and 0.2 is 2 h + 2e-12 with the default h_min. Before, the step
 * after the landing was at most 10x the landing step, below h_min: the particle failed at the
 * first snapshot although every step was accepted. Reference: the exact flow-matching map
 * m1 + sqrt(S1/S0) z0 of the diagonal Gaussians. */
Test(dopri5, landing_on_snapshots_keeps_the_step) {
    adv_context *ctx = su_cpu_context(1);
    const double m0[2] = {0, 0}, S0[4] = {1, 0, 0, 1}, m1[2] = {1, -2}, S1[4] = {0.5, 0, 0, 0.3};
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, m0, S0, m1, S1,
                                           ADV_COUPLING_INDEPENDENT, &f), ADV_OK);
    const double exact[2] = {1 + sqrt(0.5) * 0.3, -2 + sqrt(0.3) * -0.2};
    const double h[2] = {0.0249, 0.1 - 1e-12}, hmin[2] = {0.0249, 1e-10};
    const int64_t steps[2] = {4, 5};
    for (int c = 0; c < 2; ++c)
        for (int save = 0; save < 2; ++save) {
            adv_sampler_opts o;
            adv_sampler_default_opts(&o);
            o.method = ADV_METHOD_DOPRI5;
            o.grid = ADV_GRID_UNIFORM;
            o.steps = steps[c];
            o.save_every = save;
            o.h_init = o.h_max = h[c];
            o.h_min = hmin[c];
            o.atol = o.rtol = 1e10;
            double z[2] = {0.3, -0.2};
            adv_sampler_stats st = {.struct_size = sizeof st};
            cr_assert_eq(adv_sample(f, &o, 1, z, &st), ADV_OK, "%s", adv_context_last_error(ctx));
            cr_expect(st.failed == 0 && st.t_reached == 1.0,
                      "case %d save_every %d: %lld failed, t reached %g", c, save,
                      (long long)st.failed, st.t_reached);
            cr_expect(fabs(z[0] - exact[0]) < 1e-6 && fabs(z[1] - exact[1]) < 1e-6,
                      "case %d save_every %d: z = (%g, %g)", c, save, z[0], z[1]);
        }
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}

/* DOPRI5 to a singular end: the end points are set by atol/rtol, not by the grid. With one
 * grid step (no interior grid time at all) and with 37, every particle lands on a data point
 * (to rounding: the adaptive part runs on until the noise left is below the tolerance, then
 * the exponential step lands on the denoiser) and on the same one. Before, the adaptive part
 * stopped at the last interior grid time: one step meant no integration at all. */
Test(dopri5, end_points_do_not_depend_on_the_grid) {
    adv_context *ctx = su_cpu_context(2);
    double y[RM * RD];
    tu_fill_uniform(y, RM * RD, -2.0, 2.0, 902);
    void *dy = NULL;
    adv_field *f = empirical(ctx, ADV_FLOAT64, ADV_SCHEDULE_LINEAR, y, RM, RD, &dy);
    double ends[2][RN * RD];
    const int64_t steps[2] = {1, 37};
    for (int r = 0; r < 2; ++r) {
        adv_sampler_opts o;
        adv_sampler_default_opts(&o);
        o.method = ADV_METHOD_DOPRI5;
        o.grid = ADV_GRID_UNIFORM;
        o.steps = steps[r];
        o.atol = o.rtol = 1e-6;
        o.init_from_source = 1;
        o.seed = 5;
        adv_sampler_stats st = {.struct_size = sizeof st};
        cr_assert_eq(adv_sample(f, &o, RN, ends[r], &st), ADV_OK, "%s", adv_context_last_error(ctx));
        cr_expect(st.failed == 0 && st.accepted > RN * 10, "%lld steps: %lld accepted, %lld failed",
                  (long long)steps[r], (long long)st.accepted, (long long)st.failed);
        double worst = 0.0;
        for (int i = 0; i < RN; ++i) {
            double best = HUGE_VAL;
            for (int j = 0; j < RM; ++j) {
                double d2 = 0.0;
                for (int c = 0; c < RD; ++c) d2 += pow(ends[r][i * RD + c] - y[j * RD + c], 2);
                best = fmin(best, d2);
            }
            worst = fmax(worst, sqrt(best));
        }
        cr_expect(worst <= 1e-12, "%lld grid steps: a sample is %g from the nearest data point",
                  (long long)steps[r], worst);
    }
    for (int k = 0; k < RN * RD; ++k)
        cr_expect(fabs(ends[0][k] - ends[1][k]) <= 1e-12, "coordinate %d: %.17g vs %.17g", k,
                  ends[0][k], ends[1][k]);
    adv_field_destroy(f);
    adv_free(ctx, dy);
    adv_context_destroy(ctx);
}

typedef struct ck_setup {
    adv_context *ctx;
    adv_field *f;
    void *dy;
    adv_sampler_opts o;
} ck_setup;

static void ck_make(ck_setup *c, adv_method m, uint64_t seed) {
    c->ctx = su_cpu_context(2);
    double y[RM * RD];
    repro_data(y);
    c->f = empirical(c->ctx, ADV_FLOAT64, ADV_SCHEDULE_LINEAR, y, RM, RD, &c->dy);
    adv_sampler_default_opts(&c->o);
    c->o.method = m;
    c->o.steps = 12;
    c->o.t0 = 0.1;
    c->o.atol = c->o.rtol = 1e-4;
    c->o.seed = seed;
    c->o.init_from_source = 1;
    c->o.chunk_size = 10;
}

static void ck_free(ck_setup *c) {
    adv_field_destroy(c->f);
    adv_free(c->ctx, c->dy);
    adv_context_destroy(c->ctx);
}

static char *tmp_path(const char *tag) {
    static char buf[4][256];
    static int k = 0;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "advect-test-%s-%d.ckpt", tag, (int)getpid());
    return p;
}

static void checkpoint_case(adv_method m) {
    ck_setup c;
    ck_make(&c, m, 77);
    const size_t bytes = RN * RD * sizeof(double);
    double plain[RN * RD], a[RN * RD], b[RN * RD];
    adv_sampler *s = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
    adv_sampler_stats sp = {.struct_size = sizeof sp}, sa = {.struct_size = sizeof sa}, sb = {.struct_size = sizeof sb};
    cr_assert_eq(adv_sampler_run(s, RN, plain, &sp), ADV_OK);
    // Interrupted in the middle of the second chunk, saved, continued.
    char *path = tmp_path("resume");
    int done = 0;
    cr_assert_eq(adv_sampler_begin(s, RN, a), ADV_OK);
    int64_t first = m == ADV_METHOD_DOPRI5 ? 9 : 19; // DOPRI5 counts rounds
    cr_assert_eq(adv_sampler_advance(s, first, &done, NULL), ADV_OK);
    cr_assert(!done);
    cr_assert_eq(adv_sampler_checkpoint_save(s, path), ADV_OK, "%s", adv_context_last_error(c.ctx));
    while (!done) cr_assert_eq(adv_sampler_advance(s, 3, &done, &sa), ADV_OK);
    cr_expect(memcmp(a, plain, bytes) == 0, "advance in pieces differs from one run");
    // A fresh sampler resumes from the file.
    adv_sampler *r = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &r), ADV_OK);
    cr_assert_eq(adv_sampler_checkpoint_load(r, path, RN, b), ADV_OK, "%s", adv_context_last_error(c.ctx));
    cr_assert_eq(adv_sampler_advance(r, INT64_MAX, &done, &sb), ADV_OK);
    cr_expect(done);
    cr_expect(memcmp(b, plain, bytes) == 0, "resumed run differs");
    cr_expect_eq(sb.accepted, sp.accepted);
    cr_expect_eq(sb.rejected, sp.rejected);
    cr_expect_eq(sb.evaluations, sp.evaluations);
    cr_expect_eq(sb.particles, RN);
    remove(path);
    adv_sampler_destroy(s);
    adv_sampler_destroy(r);
    ck_free(&c);
}

/* DOPRI5 saved after every round of one chunk (chunk = all particles), its grid segments and
 * the tail towards the singular end included, and resumed in a fresh sampler: identical bits
 * every time. */
Test(checkpoint, dopri5_every_round) {
    ck_setup c;
    ck_make(&c, ADV_METHOD_DOPRI5, 78);
    c.o.chunk_size = 0;
    c.o.steps = 3;
    const size_t bytes = RN * RD * sizeof(double);
    double plain[RN * RD], a[RN * RD], b[RN * RD];
    adv_sampler *s = NULL, *r = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &r), ADV_OK);
    cr_assert_eq(adv_sampler_run(s, RN, plain, NULL), ADV_OK);
    char *path = tmp_path("rounds");
    int done = 0, rounds = 0;
    cr_assert_eq(adv_sampler_begin(s, RN, a), ADV_OK);
    while (!done) {
        cr_assert_eq(adv_sampler_checkpoint_save(s, path), ADV_OK, "%s", adv_context_last_error(c.ctx));
        cr_assert_eq(adv_sampler_checkpoint_load(r, path, RN, b), ADV_OK, "round %d: %s", rounds,
                     adv_context_last_error(c.ctx));
        int rdone = 0;
        cr_assert_eq(adv_sampler_advance(r, INT64_MAX, &rdone, NULL), ADV_OK);
        cr_expect(rdone && memcmp(b, plain, bytes) == 0, "resumed after round %d: differs", rounds);
        cr_assert_eq(adv_sampler_advance(s, 1, &done, NULL), ADV_OK);
        ++rounds;
    }
    cr_expect(rounds > 10, "only %d rounds", rounds);
    cr_expect(memcmp(a, plain, bytes) == 0);
    remove(path);
    adv_sampler_destroy(s);
    adv_sampler_destroy(r);
    ck_free(&c);
}

static long file_size(const char *path);
static unsigned char *file_bytes(const char *path, long n);
static void write_file(const char *path, const unsigned char *buf, long n);

/* A checkpoint with a valid checksum may still be forged: DOPRI5 controller values it could
 * not have written (a status byte of 7, a NaN or out-of-range particle time, a negative step
 * or error) are ADV_ERR_FORMAT, with z untouched; the resealed original loads. */
Test(checkpoint, forged_controller_state) {
    ck_setup c;
    ck_make(&c, ADV_METHOD_DOPRI5, 78);
    c.o.chunk_size = 0;
    adv_sampler *s = NULL, *r = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &r), ADV_OK);
    double z[RN * RD], poison[RN * RD];
    cr_assert_eq(adv_sampler_begin(s, RN, z), ADV_OK);
    cr_assert_eq(adv_sampler_advance(s, 3, NULL, NULL), ADV_OK);
    char *path = tmp_path("forged");
    cr_assert_eq(adv_sampler_checkpoint_save(s, path), ADV_OK);
    const long n = file_size(path);
    unsigned char *orig = file_bytes(path, n), *buf = malloc((size_t)n);
    // Layout (docs/sampling.md): a 204-byte header, then per chunk row dt, dh, derrp, nacc,
    // nrej (8 bytes each) and a status byte, the FSAL stage (d doubles), the particles, the
    // checksum.
    const long header = 204, rows = RN;
    cr_assert_eq(n, header + rows * (41 + RD * 8) + RN * RD * 8 + 8, "layout changed");
    const double nan = NAN, late = 2.0, neg = -1.0;
    struct {
        long at;
        const void *bytes;
        size_t len;
        const char *what;
    } cases[] = {{header + 5 * 8 * rows + 4, "\x07", 1, "a status byte of 7"},
                 {header + 8 * 2, &nan, 8, "a NaN particle time"},
                 {header + 8 * 5, &late, 8, "a particle time past t1"},
                 {header + 8 * rows + 8 * 3, &neg, 8, "a negative step"},
                 {header + 16 * rows + 8 * 6, &neg, 8, "a negative previous error"},
                 {header + 24 * rows + 8 * 1, &neg, 8, "a negative step count"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        memcpy(buf, orig, (size_t)n);
        memcpy(buf + cases[k].at, cases[k].bytes, cases[k].len);
        tu_reseal_fnv1a(buf, (size_t)n);
        write_file(path, buf, n);
        tu_poison(poison, sizeof poison);
        memcpy(z, poison, sizeof z);
        cr_expect_eq(adv_sampler_checkpoint_load(r, path, RN, z), ADV_ERR_FORMAT, "%s",
                     cases[k].what);
        cr_expect(memcmp(z, poison, sizeof z) == 0, "%s: z was written", cases[k].what);
        cr_expect_eq(adv_sampler_advance(r, 1, NULL, NULL), ADV_ERR_INVALID_VALUE,
                     "%s: no run after a failed load", cases[k].what);
    }
    memcpy(buf, orig, (size_t)n);
    tu_reseal_fnv1a(buf, (size_t)n);
    cr_expect(memcmp(buf, orig, (size_t)n) == 0, "reseal reproduces the library's checksum");
    write_file(path, buf, n);
    cr_expect_eq(adv_sampler_checkpoint_load(r, path, RN, z), ADV_OK, "%s",
                 adv_context_last_error(c.ctx));
    remove(path);
    free(orig), free(buf);
    adv_sampler_destroy(s);
    adv_sampler_destroy(r);
    ck_free(&c);
}

/* DPM-Solver++(2M) from t0 = 0 to t1 = 1 (the CLI's default): the previous log-SNR step is
 * +Inf after a step from a_t = 0 and after the step onto b = 0, and checkpoints saved there
 * (after the first step, at a chunk's end, in the next chunk) must resume to identical bits.
 * The forged-file check once rejected them as "inconsistent controller state". */
Test(checkpoint, dpm2m_from_the_singular_ends) {
    ck_setup c;
    ck_make(&c, ADV_METHOD_DPM2M, 79);
    c.o.t0 = 0.0;
    c.o.chunk_size = 10;
    c.o.steps = 12;
    adv_sampler *s = NULL, *r = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &r), ADV_OK);
    double plain[RN * RD], a[RN * RD], b[RN * RD];
    cr_assert_eq(adv_sampler_run(s, RN, plain, NULL), ADV_OK);
    char *path = tmp_path("dpm2m-ends");
    const int64_t at[4] = {1, 2, 12, 13};
    for (int k = 0; k < 4; ++k) {
        cr_assert_eq(adv_sampler_begin(s, RN, a), ADV_OK);
        cr_assert_eq(adv_sampler_advance(s, at[k], NULL, NULL), ADV_OK);
        cr_assert_eq(adv_sampler_checkpoint_save(s, path), ADV_OK);
        cr_assert_eq(adv_sampler_checkpoint_load(r, path, RN, b), ADV_OK, "after %lld steps: %s",
                     (long long)at[k], adv_context_last_error(c.ctx));
        int done = 0;
        cr_assert_eq(adv_sampler_advance(r, INT64_MAX, &done, NULL), ADV_OK);
        cr_expect(done && memcmp(b, plain, sizeof b) == 0, "resumed after %lld steps: differs",
                  (long long)at[k]);
    }
    remove(path);
    adv_sampler_destroy(s);
    adv_sampler_destroy(r);
    ck_free(&c);
}

Test(checkpoint, resume_sde) { checkpoint_case(ADV_METHOD_SDE); }
Test(checkpoint, resume_dopri5) { checkpoint_case(ADV_METHOD_DOPRI5); }
Test(checkpoint, resume_dpm2m) { checkpoint_case(ADV_METHOD_DPM2M); }

static long file_size(const char *path) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return n;
}

/* Replaces the file with n bytes. */
static void write_file(const char *path, const unsigned char *buf, long n) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
}

/* The first n bytes of a file, malloc'ed. */
static unsigned char *file_bytes(const char *path, long n) {
    unsigned char *buf = malloc((size_t)n);
    FILE *fp = fopen(path, "rb");
    cr_assert(buf && fp);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    return buf;
}

static void copy_modified(const char *src, const char *dst, long flip_at, long truncate_to, int append) {
    long n = file_size(src);
    unsigned char *buf = malloc((size_t)n + 1);
    FILE *fp = fopen(src, "rb");
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    if (flip_at >= 0) buf[flip_at] ^= 0x40;
    if (truncate_to >= 0) n = truncate_to;
    if (append) buf[n++] = 0;
    fp = fopen(dst, "wb");
    cr_assert_eq(fwrite(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    free(buf);
}

Test(checkpoint, corrupt_and_mismatched_files) {
    ck_setup c;
    ck_make(&c, ADV_METHOD_SDE, 77);
    adv_sampler *s = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
    double z[RN * RD], poison[RN * RD];
    cr_expect_eq(adv_sampler_checkpoint_save(s, tmp_path("none")), ADV_ERR_INVALID_VALUE, "save without a run");
    cr_assert_eq(adv_sampler_begin(s, RN, z), ADV_OK);
    cr_assert_eq(adv_sampler_advance(s, 5, NULL, NULL), ADV_OK);
    char *good = tmp_path("good"), *bad = tmp_path("bad");
    cr_assert_eq(adv_sampler_checkpoint_save(s, good), ADV_OK);
    // The usual permissions, 0666 less the umask, as fopen gives (mkstemp's 0600 made them
    // unreadable to a group).
    struct stat sb;
    const mode_t mask = umask(0);
    umask(mask);
    cr_expect(stat(good, &sb) == 0 && (sb.st_mode & 0777) == (0666 & ~mask), "mode %o",
              (unsigned)(sb.st_mode & 0777));
    // A target the rename would replace (a FIFO here; /dev/null as root) is refused and left
    // alone; a 250-byte name works (the temporary name does not grow with it; `name.tmp` did).
    char fifo[64], long_name[251];
    snprintf(fifo, sizeof fifo, "advect-test-fifo-%d", (int)getpid());
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_expect_eq(adv_sampler_checkpoint_save(s, fifo), ADV_ERR_IO);
    cr_expect(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO was replaced");
    remove(fifo);
    const int head = snprintf(long_name, sizeof long_name, "advect-test-%d-", (int)getpid());
    memset(long_name + head, 'x', sizeof long_name - 1 - (size_t)head);
    long_name[sizeof long_name - 1] = '\0';
    cr_expect_eq(adv_sampler_checkpoint_save(s, long_name), ADV_OK, "%s",
                 adv_context_last_error(c.ctx));
    cr_expect_eq(file_size(long_name), file_size(good));
    remove(long_name);
    // Through a symbolic link (relative, dangling at first): the file it names is written
    // and the link stays a link, as with the command-line tool's outputs.
    char link[64], named[64];
    snprintf(link, sizeof link, "advect-test-link-%d", (int)getpid());
    snprintf(named, sizeof named, "advect-test-named-%d", (int)getpid());
    cr_assert_eq(symlink(named, link), 0);
    for (int round = 0; round < 2; ++round) { // dangling, then naming the file just written
        cr_expect_eq(adv_sampler_checkpoint_save(s, link), ADV_OK, "%s", adv_context_last_error(c.ctx));
        cr_expect(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode), "round %d: the link was replaced", round);
        cr_expect(stat(named, &sb) == 0 && sb.st_size == file_size(good), "round %d", round);
    }
    remove(link);
    remove(named);
    long n = file_size(good);
    tu_poison(poison, sizeof poison);
    struct {
        long flip, trunc;
        int append;
        const char *what;
    } cases[] = {{n / 2, -1, 0, "a flipped byte in the particles"},
                 {2, -1, 0, "a flipped byte in the magic"},
                 {n - 3, -1, 0, "a flipped byte in the checksum"},
                 {-1, n - 9, 0, "truncated"},
                 {-1, 20, 0, "truncated to the header"},
                 {-1, 3, 0, "3 bytes"},
                 {-1, -1, 1, "one byte appended"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        copy_modified(good, bad, cases[k].flip, cases[k].trunc, cases[k].append);
        memcpy(z, poison, sizeof z);
        cr_expect_eq(adv_sampler_checkpoint_load(s, bad, RN, z), ADV_ERR_FORMAT, "%s", cases[k].what);
        cr_expect(memcmp(z, poison, sizeof z) == 0, "%s: particles were written", cases[k].what);
    }
    memcpy(z, poison, sizeof z);
    cr_expect_eq(adv_sampler_checkpoint_load(s, good, RN - 1, z), ADV_ERR_DIMENSION_MISMATCH);
    cr_expect_eq(adv_sampler_checkpoint_load(s, tmp_path("missing"), RN, z), ADV_ERR_IO);
    cr_expect_eq(adv_sampler_checkpoint_load(s, NULL, RN, z), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_sampler_checkpoint_load(s, good, RN, NULL), ADV_ERR_NULL_POINTER);
    cr_expect(memcmp(z, poison, sizeof z) == 0);
    // Another configuration (seed) cannot resume this file.
    adv_sampler_opts o2 = c.o;
    o2.seed = 78;
    adv_sampler *s2 = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &o2, &s2), ADV_OK);
    cr_expect_eq(adv_sampler_checkpoint_load(s2, good, RN, z), ADV_ERR_INVALID_VALUE);
    cr_expect(memcmp(z, poison, sizeof z) == 0);
    // Nor can a field with other data (one coordinate changed) or other weights.
    double y2[RM * RD], w2[RM];
    repro_data(y2);
    y2[5] += 1e-9;
    void *dy2 = NULL;
    adv_field *f2 = empirical(c.ctx, ADV_FLOAT64, ADV_SCHEDULE_LINEAR, y2, RM, RD, &dy2);
    adv_sampler *s3 = NULL;
    cr_assert_eq(adv_sampler_create(f2, &c.o, &s3), ADV_OK);
    cr_expect_eq(adv_sampler_checkpoint_load(s3, good, RN, z), ADV_ERR_INVALID_VALUE, "other data");
    adv_sampler_destroy(s3);
    adv_field_destroy(f2);
    repro_data(y2);
    for (int i = 0; i < RM; ++i) w2[i] = i == 7 ? 2.0 : 1.0;
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
    cr_assert_eq(adv_field_create_empirical(c.ctx, ADV_FLOAT64, y2, w2, RM, RD, &eo, &f2), ADV_OK);
    cr_assert_eq(adv_sampler_create(f2, &c.o, &s3), ADV_OK);
    cr_expect_eq(adv_sampler_checkpoint_load(s3, good, RN, z), ADV_ERR_INVALID_VALUE, "other weights");
    cr_expect(memcmp(z, poison, sizeof z) == 0);
    adv_sampler_destroy(s3);
    adv_field_destroy(f2);
    adv_free(c.ctx, dy2);
    cr_expect_eq(adv_sampler_checkpoint_save(s, "/nonexistent-dir/x.ckpt"), ADV_ERR_IO);
    remove(good);
    remove(bad);
    adv_sampler_destroy(s);
    adv_sampler_destroy(s2);
    ck_free(&c);
}

/* ---- snapshots -------------------------------------------------------------------------- */

typedef struct snap_sink {
    double *buf;
    int64_t n;
    int calls;
} snap_sink;

static int collect(void *user, int64_t snapshot, int64_t step, double t, int64_t first, int64_t count,
                   const void *z) {
    snap_sink *s = user;
    (void)t, (void)step;
    memcpy(s->buf + ((size_t)snapshot * (size_t)s->n + (size_t)first) * RD, z, (size_t)count * RD * sizeof(double));
    s->calls++;
    return 0;
}

static int refuse(void *user, int64_t snapshot, int64_t step, double t, int64_t first, int64_t count,
                  const void *z) {
    (void)user, (void)snapshot, (void)step, (void)t, (void)first, (void)count, (void)z;
    return 3;
}

Test(snapshots, buffer_and_callback) {
    ck_setup c;
    ck_make(&c, ADV_METHOD_HEUN, 1);
    c.o.steps = 10;
    c.o.save_every = 3; // snapshots after steps 0, 3, 6, 9
    c.o.chunk_size = 8;
    const int S = 4;
    double traj[4 * RN * RD], cb[4 * RN * RD], z[RN * RD], part[RN * RD];
    snap_sink sink = {cb, RN, 0};
    c.o.trajectory = traj;
    c.o.snapshot = collect;
    c.o.snapshot_user = &sink;
    adv_sampler_stats st = {.struct_size = sizeof st};
    cr_assert_eq(adv_sample(c.f, &c.o, RN, z, &st), ADV_OK, "%s", adv_context_last_error(c.ctx));
    cr_expect_eq(st.snapshots, S);
    cr_expect_eq(sink.calls, S * 5); // 5 chunks (8, 8, 8, 8, 5)
    cr_expect(memcmp(traj, cb, sizeof traj) == 0, "callback and buffer disagree");
    // Snapshot k is the state after 3k steps: compare with runs stopped there.
    adv_sampler_opts o = c.o;
    o.trajectory = NULL, o.snapshot = NULL, o.save_every = 0, o.chunk_size = 0;
    cr_assert_eq(adv_field_sample(c.f, c.o.t0, c.o.seed, 0, RN, part), ADV_OK);
    cr_expect(memcmp(part, traj, sizeof part) == 0, "snapshot 0 is not the initial state");
    for (int k = 1; k < S; ++k) {
        adv_sampler *s = NULL;
        cr_assert_eq(adv_sampler_create(c.f, &o, &s), ADV_OK);
        cr_assert_eq(adv_sampler_begin(s, RN, part), ADV_OK);
        cr_assert_eq(adv_sampler_advance(s, 3 * k, NULL, NULL), ADV_OK);
        adv_sampler_destroy(s);
        cr_expect(memcmp(part, traj + (size_t)k * RN * RD, sizeof part) == 0, "snapshot %d", k);
    }
    // The final snapshot (step 9) is not the end (step 10); the end differs from it.
    cr_expect(memcmp(z, traj + 3 * RN * RD, sizeof z) != 0);
    // A refusing callback stops the run with INVALID_VALUE.
    c.o.snapshot = refuse;
    c.o.trajectory = NULL;
    cr_expect_eq(adv_sample(c.f, &c.o, RN, z, NULL), ADV_ERR_INVALID_VALUE);
    ck_free(&c);
}

/* ---- invalid input ---------------------------------------------------------------------- */

static void bad_sched(void *u, double t, double ab[4]) {
    (void)u, (void)t;
    ab[0] = NAN, ab[1] = 1, ab[2] = 0, ab[3] = 0;
}

Test(invalid, create_empirical) {
    adv_context *ctx = su_cpu_context(1);
    double y[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, w[6] = {1, 1, 1, 1, 1, 1};
    adv_field *f = (adv_field *)&f; // non-NULL garbage: must be reset to NULL on error
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
#define EXPECT_CREATE(code, ...)                                                                  \
    do {                                                                                          \
        f = (adv_field *)&f;                                                                      \
        cr_expect_eq(adv_field_create_empirical(__VA_ARGS__), code, "line %d: %s", __LINE__,      \
                     adv_context_last_error(ctx));                                                \
        cr_expect_null(f, "line %d: handle not cleared", __LINE__);                               \
    } while (0)
    cr_expect_eq(adv_field_create_empirical(NULL, ADV_FLOAT64, y, NULL, 6, 2, NULL, &f), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, y, NULL, 6, 2, NULL, NULL), ADV_ERR_NULL_POINTER);
    EXPECT_CREATE(ADV_ERR_NULL_POINTER, ctx, ADV_FLOAT64, NULL, NULL, 6, 2, NULL, &f);
    EXPECT_CREATE(ADV_ERR_INVALID_SIZE, ctx, ADV_FLOAT64, y, NULL, 0, 2, NULL, &f);
    EXPECT_CREATE(ADV_ERR_INVALID_SIZE, ctx, ADV_FLOAT64, y, NULL, -3, 2, NULL, &f);
    EXPECT_CREATE(ADV_ERR_INVALID_SIZE, ctx, ADV_FLOAT64, y, NULL, 6, 0, NULL, &f);
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, (adv_precision)7, y, NULL, 6, 2, NULL, &f);
    y[5] = NAN;
    EXPECT_CREATE(ADV_ERR_NONFINITE, ctx, ADV_FLOAT64, y, NULL, 6, 2, NULL, &f);
    y[5] = INFINITY;
    EXPECT_CREATE(ADV_ERR_NONFINITE, ctx, ADV_FLOAT64, y, NULL, 6, 2, NULL, &f);
    y[5] = 1e300; // finite, but squared distances at this scale overflow (all weights 0, D = 0)
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, NULL, &f);
    const float yf[12] = {0, 1, 2, 3, 4, 1e19f, 6, 7, 8, 9, 10, 11};
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT32, yf, NULL, 6, 2, NULL, &f);
    y[5] = 5;
    w[2] = -1;
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, w, 6, 2, NULL, &f);
    w[2] = NAN;
    EXPECT_CREATE(ADV_ERR_NONFINITE, ctx, ADV_FLOAT64, y, w, 6, 2, NULL, &f);
    for (int k = 0; k < 6; ++k) w[k] = 0;
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, w, 6, 2, NULL, &f);
    eo.sigma = 0;
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
    eo.sigma = NAN;
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
    adv_empirical_default_opts(&eo);
    eo.struct_size = 0;
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
    adv_empirical_default_opts(&eo);
    adv_schedule_default(&eo.schedule, ADV_SCHEDULE_VP);
    eo.schedule.beta_max = 0.01; // < beta_min
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
    adv_schedule_default(&eo.schedule, ADV_SCHEDULE_VE);
    eo.schedule.sigma_min = 100; // > sigma_max
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
    adv_schedule_default(&eo.schedule, ADV_SCHEDULE_USER);
    EXPECT_CREATE(ADV_ERR_NULL_POINTER, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
    eo.schedule.fn = bad_sched;
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
    eo.schedule.kind = (adv_schedule_kind)11;
    EXPECT_CREATE(ADV_ERR_INVALID_VALUE, ctx, ADV_FLOAT64, y, NULL, 6, 2, &eo, &f);
#undef EXPECT_CREATE
    adv_context_destroy(ctx);
}

Test(invalid, create_gaussian_gmm_user) {
    adv_context *ctx = su_cpu_context(1);
    const double m[2] = {0, 0}, I2[4] = {1, 0, 0, 1}, notpd[4] = {1, 2, 2, 1}, asym[4] = {1, 0.5, 0, 1};
    const double nan2[2] = {NAN, 0}, negpsd[4] = {-0.1, 0, 0, 1};
    adv_field *f = NULL;
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, m, notpd, m, I2, ADV_COUPLING_OT, &f), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, m, I2, m, asym, ADV_COUPLING_INDEPENDENT, &f), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, nan2, I2, m, I2, ADV_COUPLING_OT, &f), ADV_ERR_NONFINITE);
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 0, m, I2, m, I2, ADV_COUPLING_OT, &f), ADV_ERR_INVALID_SIZE);
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, m, I2, m, I2, (adv_coupling)5, &f), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, NULL, I2, m, I2, ADV_COUPLING_OT, &f), ADV_ERR_NULL_POINTER);
    cr_expect_null(f);
    const double p[1] = {1}, pn[1] = {-1};
    cr_expect_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, pn, m, I2, 1, p, m, I2, &f), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, m, notpd, 1, p, m, I2, &f), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, m, I2, 1, p, m, negpsd, &f), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 0, p, m, I2, 1, p, m, I2, &f), ADV_ERR_INVALID_SIZE);
    cr_expect_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, m, I2, 1, p, nan2, I2, &f), ADV_ERR_NONFINITE);
    cr_expect_null(f);
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    cr_expect_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, &uo, &f), ADV_ERR_NULL_POINTER); // no fn
    cr_expect_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, NULL, &f), ADV_ERR_NULL_POINTER);
    cr_expect_null(f);
    cr_expect_eq(adv_gaussian_w2sq(2, m, I2, m, I2, NULL), ADV_ERR_NULL_POINTER);
    // W2^2 takes semi-definite covariances, not indefinite ones (diag(1, -3) used to give 0).
    double w2 = -1.0;
    const double indefinite[4] = {1, 0, 0, -3}, singular[4] = {1, 0, 0, 0};
    cr_expect_eq(adv_gaussian_w2sq(2, m, I2, m, indefinite, &w2), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_gaussian_w2sq(2, m, indefinite, m, I2, &w2), ADV_ERR_INVALID_VALUE);
    cr_expect(w2 == -1.0, "written on error");
    cr_expect_eq(adv_gaussian_w2sq(2, m, I2, m, singular, &w2), ADV_OK);
    cr_expect(fabs(w2 - 1.0) < 1e-12, "W2^2(N(0,I), N(0,diag(1,0))) = (1 - 0)^2 = 1, got %g", w2);
    cr_expect_eq(adv_gaussian_map(ADV_COUPLING_OT, 2, m, notpd, m, I2, (double[4]){0}, (double[2]){0}), ADV_ERR_INVALID_VALUE);
    // Rounding-level asymmetry and negativity pass; anything beyond (docs/sampling.md) does
    // not: 1e-14 vs 1e-9 relative asymmetry, eigenvalue -1e-13 vs -1e-7 of max 2 (d = 2).
    const double near_sym[4] = {2, 0.5, 0.5 + 2e-14, 1}, off_sym[4] = {2, 0.5, 0.5 + 2e-9, 1};
    const double near_psd[4] = {2, 0, 0, -1e-13}, off_psd[4] = {2, 0, 0, -1e-7};
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, m, near_sym, m, I2, ADV_COUPLING_OT, &f), ADV_OK);
    adv_field_destroy(f);
    f = NULL;
    cr_expect_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, m, off_sym, m, I2, ADV_COUPLING_OT, &f), ADV_ERR_INVALID_VALUE);
    cr_expect(strstr(adv_context_last_error(ctx), "symmetric") != NULL, "%s", adv_context_last_error(ctx));
    cr_expect_eq(adv_gaussian_w2sq(2, m, I2, m, near_sym, &w2), ADV_OK);
    cr_expect_eq(adv_gaussian_w2sq(2, m, I2, m, off_sym, &w2), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_gaussian_w2sq(2, m, I2, m, near_psd, &w2), ADV_OK);
    // (1 - sqrt 2)^2 + (1 - 0)^2: the tiny negative eigenvalue counts as 0.
    cr_expect(fabs(w2 - (4.0 - 2.0 * sqrt(2.0))) < 1e-12, "W2^2 with a rounding-level negative eigenvalue: %.17g", w2);
    cr_expect_eq(adv_gaussian_w2sq(2, m, I2, m, off_psd, &w2), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, m, I2, 1, p, m, near_psd, &f), ADV_OK);
    adv_field_destroy(f);
    f = NULL;
    cr_expect_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, m, I2, 1, p, m, off_psd, &f), ADV_ERR_INVALID_VALUE);
    cr_expect_null(f);
    cr_expect_eq(adv_symmetric_eigen(0, I2, (double[2]){0}, (double[4]){0}), ADV_ERR_INVALID_SIZE);
    adv_context_destroy(ctx);
}

static int velocity_only(void *u, const adv_field_request *r) {
    (void)u;
    for (int64_t k = 0; k < r->n * r->dim; ++k) ((double *)r->velocity)[k] = -((const double *)r->z)[k];
    return 0;
}
static int failing(void *u, const adv_field_request *r) {
    (void)u, (void)r;
    return 42;
}

Test(invalid, eval_and_sample) {
    adv_context *ctx = su_cpu_context(1);
    double y[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, y, NULL, 5, 2, NULL, &f), ADV_OK);
    double z[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, v[6], s[6], poison[6], times[3] = {0.2, 1.5, 0.1};
    tu_poison(poison, sizeof poison);
#define EXPECT_EVAL(code, ...)                                                                   \
    do {                                                                                         \
        memcpy(v, poison, sizeof v);                                                             \
        memcpy(s, poison, sizeof s);                                                             \
        cr_expect_eq(__VA_ARGS__, code, "line %d: %s", __LINE__, adv_context_last_error(ctx));   \
        cr_expect(memcmp(v, poison, sizeof v) == 0 && memcmp(s, poison, sizeof s) == 0,          \
                  "line %d: output written on error", __LINE__);                                 \
    } while (0)
    EXPECT_EVAL(ADV_ERR_NULL_POINTER, adv_field_eval(NULL, 0.5, 3, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_NULL_POINTER, adv_field_eval(f, 0.5, 3, NULL, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_NULL_POINTER, adv_field_eval(f, 0.5, 3, z, NULL, NULL, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_SIZE, adv_field_eval(f, 0.5, 0, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_SIZE, adv_field_eval(f, 0.5, -1, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval(f, -0.1, 3, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval(f, 1.1, 3, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval(f, NAN, 3, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval(f, 0.5, 3, z, v, v, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval(f, 0.5, 3, v, v, s, NULL));
    double zc[7] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}, zcopy[7]; // outputs overlapping z
    memcpy(zcopy, zc, sizeof zc);
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval(f, 0.5, 3, zc, zc + 1, s, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval(f, 0.5, 3, zc + 1, v, zc, NULL));
    cr_expect(memcmp(zc, zcopy, sizeof zc) == 0);
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_eval_times(f, times, 3, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_NULL_POINTER, adv_field_eval_times(f, NULL, 3, z, v, s, NULL));
    EXPECT_EVAL(ADV_ERR_INVALID_SIZE, adv_field_sample(f, 0.5, 1, 0, 0, v));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_sample(f, 2.0, 1, 0, 3, v));
    EXPECT_EVAL(ADV_ERR_INVALID_VALUE, adv_field_sample(f, 0.5, 1, -1, 3, v));
    {
        // d = 5: particle i's normals come from Philox blocks 3i..3i+2, which wrapped past 2^64
        // (the particles INT64_MAX - 1 and (INT64_MAX - 1) - 2^64/3 drew the same numbers).
        adv_field *f5 = NULL;
        cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, y, NULL, 2, 5, NULL, &f5), ADV_OK);
        double z5[5], p5[5];
        tu_poison(z5, sizeof z5);
        memcpy(p5, z5, sizeof z5);
        cr_expect_eq(adv_field_sample(f5, 0.5, 1, INT64_MAX - 1, 1, z5), ADV_ERR_INVALID_VALUE);
        cr_expect(memcmp(z5, p5, sizeof z5) == 0, "written on error");
        cr_expect_eq(adv_field_sample(f5, 0.5, 1, (int64_t)(UINT64_MAX / 3) - 1, 1, z5), ADV_OK);
        adv_field_destroy(f5);
    }
    // A velocity-only user field: no score, no denoiser, no sampling.
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = velocity_only;
    adv_field *u = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, &uo, &u), ADV_OK);
    EXPECT_EVAL(ADV_ERR_UNSUPPORTED, adv_field_eval(u, 0.5, 3, z, NULL, s, NULL));
    EXPECT_EVAL(ADV_ERR_UNSUPPORTED, adv_field_eval(u, 0.5, 3, z, NULL, NULL, s));
    EXPECT_EVAL(ADV_ERR_UNSUPPORTED, adv_field_sample(u, 0.5, 1, 0, 3, v));
    cr_expect_eq(adv_field_eval(u, 0.5, 3, z, v, NULL, NULL), ADV_OK);
    cr_expect(v[0] == -0.1 && v[5] == -0.6);
    uo.fn = failing;
    adv_field *bad = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, &uo, &bad), ADV_OK);
    cr_expect_eq(adv_field_eval(bad, 0.5, 3, z, v, NULL, NULL), ADV_ERR_INVALID_VALUE);
    cr_expect(strstr(adv_context_last_error(ctx), "42") != NULL, "message: %s", adv_context_last_error(ctx));
    adv_field_info info = {.struct_size = sizeof info};
    cr_expect_eq(adv_field_get_info(u, &info), ADV_OK);
    cr_expect_eq(info.outputs, ADV_FIELD_VELOCITY);
    info.struct_size = 3;
    cr_expect_eq(adv_field_get_info(u, &info), ADV_ERR_INVALID_VALUE);
#undef EXPECT_EVAL
    adv_field_destroy(bad);
    adv_field_destroy(u);
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}

Test(invalid, sampler_options_and_runs) {
    adv_context *ctx = su_cpu_context(1);
    double y[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, y, NULL, 5, 2, NULL, &f), ADV_OK);
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = velocity_only;
    adv_field *u = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, &uo, &u), ADV_OK);
    adv_sampler *s = (adv_sampler *)&s;
    adv_sampler_opts o;
    double traj[60];
#define EXPECT_OPT(code, field, edit)                                                             \
    do {                                                                                          \
        adv_sampler_default_opts(&o);                                                             \
        edit;                                                                                     \
        s = (adv_sampler *)&s;                                                                    \
        cr_expect_eq(adv_sampler_create(field, &o, &s), code, "line %d: %s", __LINE__,            \
                     adv_context_last_error(ctx));                                                \
        cr_expect_null(s, "line %d: handle not cleared", __LINE__);                               \
    } while (0)
    // The SDE needs t0 > 0 (sampler.h) on every schedule, also where g^2 is finite at t = 0
    // (VP: a_0 = 0.00657; VE): the refusal is the documented rule, not a side effect of g^2.
    for (int k = 0; k < 3; ++k) {
        const adv_schedule_kind sk[3] = {ADV_SCHEDULE_LINEAR, ADV_SCHEDULE_VP, ADV_SCHEDULE_VE};
        void *dyk = NULL;
        adv_field *fk = empirical(ctx, ADV_FLOAT64, sk[k], y, 5, 2, &dyk);
        EXPECT_OPT(ADV_ERR_INVALID_VALUE, fk, (o.method = ADV_METHOD_SDE, o.t0 = 0.0));
        cr_expect(strstr(adv_context_last_error(ctx), "t0 > 0") != NULL, "schedule %d: %s", (int)sk[k],
                  adv_context_last_error(ctx));
        adv_field_destroy(fk);
        adv_free(ctx, dyk);
    }
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.steps = 0);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.steps = -4);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.t0 = 0.5, o.t1 = 0.5));
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.t1 = 1.5);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.t0 = -0.5);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.t1 = NAN);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.method = (adv_method)99);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.grid = (adv_time_grid)9);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.method = ADV_METHOD_DOPRI5, o.atol = -1));
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.method = ADV_METHOD_DOPRI5, o.atol = 0, o.rtol = 0));
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.method = ADV_METHOD_DOPRI5, o.h_min = 0.5, o.h_max = 0.1));
    // Tighter than 8 ulp of float64 (1.8e-15): not achievable.
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.method = ADV_METHOD_DOPRI5, o.atol = o.rtol = 1e-15));
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.method = ADV_METHOD_DOPRI5, o.max_steps = 0));
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.method = ADV_METHOD_DOPRI5, o.safety = 1.5));
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, (o.method = ADV_METHOD_SDE, o.t0 = 0.1, o.eta = -1));
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.eta = NAN);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.chunk_size = -1);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.save_every = -1);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.trajectory = traj);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.rho = 0);
    EXPECT_OPT(ADV_ERR_INVALID_VALUE, f, o.struct_size = 0);
    EXPECT_OPT(ADV_ERR_UNSUPPORTED, u, o.method = ADV_METHOD_DDIM);
    EXPECT_OPT(ADV_ERR_UNSUPPORTED, u, o.method = ADV_METHOD_DPM2M);
    EXPECT_OPT(ADV_ERR_UNSUPPORTED, u, (o.method = ADV_METHOD_SDE, o.t0 = 0.1));
    EXPECT_OPT(ADV_ERR_UNSUPPORTED, u, o.init_from_source = 1);
#undef EXPECT_OPT
    cr_expect_eq(adv_sampler_create(NULL, NULL, &s), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_sampler_create(f, NULL, NULL), ADV_ERR_NULL_POINTER);
    // Runs: bad particle arrays leave z untouched.
    adv_sampler_default_opts(&o);
    cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
    double z[6] = {0.1, 0.2, NAN, 0.4, 0.5, 0.6}, copy[6];
    memcpy(copy, z, sizeof z);
    cr_expect_eq(adv_sampler_run(s, 3, z, NULL), ADV_ERR_NONFINITE);
    cr_expect(memcmp(z, copy, sizeof z) == 0);
    cr_expect_eq(adv_sampler_run(s, 0, z, NULL), ADV_ERR_INVALID_SIZE);
    cr_expect_eq(adv_sampler_run(s, 3, NULL, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_sampler_run(NULL, 3, z, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_sampler_advance(s, 1, NULL, NULL), ADV_ERR_INVALID_VALUE); // no run begun
    z[2] = 0.3;
    cr_expect_eq(adv_sampler_begin(s, 3, z), ADV_OK);
    cr_expect_eq(adv_sampler_advance(s, -1, NULL, NULL), ADV_ERR_INVALID_VALUE);
    double frac = -1;
    cr_expect_eq(adv_sampler_progress(s, &frac), ADV_OK);
    cr_expect(frac == 0.0);
    int done = 0;
    cr_expect_eq(adv_sampler_advance(s, 50, &done, NULL), ADV_OK);
    cr_expect_eq(adv_sampler_progress(s, &frac), ADV_OK);
    cr_expect(fabs(frac - 0.5) < 1e-12 && !done, "progress %g", frac);
    adv_sampler_destroy(s);
    // An unstable run (Euler-Maruyama with eta = 100: each step multiplies the distance to the
    // data by ~eta, beyond float32 within 20 steps) fails instead of returning NaN samples.
    const float yf[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    adv_field *f32 = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT32, yf, NULL, 5, 2, NULL, &f32), ADV_OK);
    adv_sampler_default_opts(&o);
    o.method = ADV_METHOD_SDE;
    o.t0 = 0.05;
    o.eta = 100;
    o.steps = 20;
    cr_assert_eq(adv_sampler_create(f32, &o, &s), ADV_OK);
    float zs[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    cr_expect_eq(adv_sampler_run(s, 3, zs, NULL), ADV_ERR_NONFINITE, "%s", adv_context_last_error(ctx));
    cr_expect(strstr(adv_context_last_error(ctx), "eta") != NULL, "%s", adv_context_last_error(ctx));
    adv_sampler_destroy(s);
    // In float64 the same blow-up stays far below overflow (|z| ~ 1.6e13 at eta = 20 before the
    // last step, which then maps every particle onto some data point: plausible-looking
    // garbage). Particles drawn from the source that leave 10x the reach of the marginals
    // (10 standard deviations) fail the run; eta = 1 stays well inside it.
    void *dy64 = NULL;
    adv_field *f64 = empirical(ctx, ADV_FLOAT64, ADV_SCHEDULE_LINEAR, y, 5, 2, &dy64);
    const double etas[2] = {1.0, 20.0};
    for (int k = 0; k < 2; ++k) {
        adv_sampler_default_opts(&o);
        o.method = ADV_METHOD_SDE;
        o.t0 = 0.05;
        o.eta = etas[k];
        o.steps = 20;
        o.init_from_source = 1;
        cr_assert_eq(adv_sampler_create(f64, &o, &s), ADV_OK);
        double zd[200];
        const adv_status want = k ? ADV_ERR_NONFINITE : ADV_OK;
        cr_expect_eq(adv_sampler_run(s, 100, zd, NULL), want, "eta %g: %s", etas[k],
                     adv_context_last_error(ctx));
        // The reach is max over the grid of a_t max|y| + b_t 10 sigma; on the linear schedule
        // from t0 = 0.05 it peaks at t0: 0.05 * 9 + 0.95 * 10 = 9.95 (at t = 1 it is 9).
        if (k)
            cr_expect(strstr(adv_context_last_error(ctx), "marginals reach (9.95)") != NULL, "%s",
                      adv_context_last_error(ctx));
        adv_sampler_destroy(s);
    }
    adv_field_destroy(f64);
    adv_free(ctx, dy64);
    adv_field_destroy(f32);
    adv_field_destroy(u);
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}

/* NULL pointers to the field constructors and queries, the closed-form Gaussian helpers and
 * adv_field_sample: each returns ADV_ERR_NULL_POINTER (naming the argument in the last error
 * where a context is given) and writes nothing: outputs are poisoned before and compared
 * bitwise after, a handle is cleared (or, when the context itself is NULL, left alone). The
 * same calls with every pointer valid succeed first. */
#define EXPECT_NULL_ARG(ctx, call, arg)                                                           \
    do {                                                                                          \
        adv_status st_ = (call);                                                                  \
        cr_expect_eq(st_, ADV_ERR_NULL_POINTER, "%s: got %s", #call, adv_status_name(st_));       \
        if (ctx)                                                                                  \
            cr_expect(strstr(adv_context_last_error(ctx), arg) != NULL,                           \
                      "%s: last error '%s' does not name %s", #call,                              \
                      adv_context_last_error(ctx), arg);                                          \
    } while (0)

Test(invalid, null_pointers_fields_and_gaussian_helpers) {
    adv_context *ctx = su_cpu_context(1);
    const double m0[2] = {0.1, -0.2}, S0[4] = {1.0, 0.3, 0.3, 0.8}, m1[2] = {1.0, 0.5};
    const double S1[4] = {0.6, -0.2, -0.2, 0.9}, p[1] = {1.0}, q[2] = {0.5, 0.5};
    const double nu[4] = {-1, 0, 1, 0}, G[8] = {0.1, 0, 0, 0.1, 0, 0, 0, 0}; // one Dirac
    adv_field *f = NULL;
    // adv_field_create_gmm: every array, the handle, the context.
    cr_assert_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, m0, S0, 2, q, nu, G, &f), ADV_OK,
                 "%s", adv_context_last_error(ctx));
    adv_field_destroy(f);
    const char *names[6] = {"p", "mu", "S", "q", "nu", "G"};
    for (int k = 0; k < 6; ++k) {
        f = (adv_field *)&f;
        adv_status st = adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, k == 0 ? NULL : p, k == 1 ? NULL : m0,
                                             k == 2 ? NULL : S0, 2, k == 3 ? NULL : q,
                                             k == 4 ? NULL : nu, k == 5 ? NULL : G, &f);
        cr_expect_eq(st, ADV_ERR_NULL_POINTER, "gmm, %s NULL: got %s", names[k], adv_status_name(st));
        char want[16];
        snprintf(want, sizeof want, "%s is NULL", names[k]);
        cr_expect(strstr(adv_context_last_error(ctx), want) != NULL, "gmm, %s NULL: last error '%s'",
                  names[k], adv_context_last_error(ctx));
        cr_expect_null(f, "gmm, %s NULL: handle not cleared", names[k]);
    }
    EXPECT_NULL_ARG(ctx, adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, m0, S0, 2, q, nu, G, NULL), "field");
    f = (adv_field *)&f;
    cr_expect_eq(adv_field_create_gmm(NULL, ADV_FLOAT64, 2, 1, p, m0, S0, 2, q, nu, G, &f), ADV_ERR_NULL_POINTER);

    // adv_field_get_info and adv_field_sample on a valid field.
    cr_assert_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, m0, S0, m1, S1, ADV_COUPLING_OT, &f), ADV_OK);
    adv_field_info info, poisoned;
    memset(&poisoned, 0xA5, sizeof poisoned);
    poisoned.struct_size = sizeof poisoned;
    info = poisoned;
    cr_assert_eq(adv_field_get_info(f, &info), ADV_OK);
    cr_expect_eq(info.kind, ADV_FIELD_GAUSSIAN_OT);
    info = poisoned;
    cr_expect_eq(adv_field_get_info(NULL, &info), ADV_ERR_NULL_POINTER);
    cr_expect(memcmp(&info, &poisoned, sizeof info) == 0, "get_info(NULL, &info) wrote info");
    cr_expect_eq(adv_field_get_info(f, NULL), ADV_ERR_NULL_POINTER);
    double z[6], zp[6];
    tu_poison(zp, sizeof zp);
    cr_assert_eq(adv_field_sample(f, 0.5, 7, 0, 3, z), ADV_OK);
    memcpy(z, zp, sizeof z);
    EXPECT_NULL_ARG(ctx, adv_field_sample(f, 0.5, 7, 0, 3, NULL), "z");
    cr_expect_eq(adv_field_sample(NULL, 0.5, 7, 0, 3, z), ADV_ERR_NULL_POINTER);
    cr_expect(memcmp(z, zp, sizeof z) == 0, "sample(NULL, ...) wrote z");

    // Closed-form helpers (no context): each input NULL, then each output NULL; the outputs
    // are poisoned and must stay so.
    double A[4], c[2], evals[2], V[4], energy, P8[8];
    tu_poison(P8, sizeof P8);
    cr_assert_eq(adv_gaussian_map(ADV_COUPLING_OT, 2, m0, S0, m1, S1, A, c), ADV_OK);
    cr_assert_eq(adv_gaussian_kinetic_energy(ADV_COUPLING_INDEPENDENT, 2, m0, S0, m1, S1, 4, &energy), ADV_OK);
    cr_assert_eq(adv_symmetric_eigen(2, S0, evals, V), ADV_OK);
    const double *in[4] = {m0, S0, m1, S1};
    for (int k = 0; k < 6; ++k) { // 0..3: an input NULL; 4: A NULL; 5: c NULL
        const double *a[4] = {in[0], in[1], in[2], in[3]};
        if (k < 4) a[k] = NULL;
        memcpy(A, P8, sizeof A), memcpy(c, P8, sizeof c), memcpy(&energy, P8, sizeof energy);
        adv_status st = adv_gaussian_map(ADV_COUPLING_OT, 2, a[0], a[1], a[2], a[3], k == 4 ? NULL : A,
                                         k == 5 ? NULL : c);
        cr_expect_eq(st, ADV_ERR_NULL_POINTER, "gaussian_map, argument %d NULL: got %s", k, adv_status_name(st));
        cr_expect(memcmp(A, P8, sizeof A) == 0 && memcmp(c, P8, sizeof c) == 0,
                  "gaussian_map, argument %d NULL: output written", k);
        if (k < 5) {
            st = adv_gaussian_kinetic_energy(ADV_COUPLING_INDEPENDENT, 2, a[0], a[1], a[2], a[3], 4,
                                             k == 4 ? NULL : &energy);
            cr_expect_eq(st, ADV_ERR_NULL_POINTER, "kinetic_energy, argument %d NULL: got %s", k,
                         adv_status_name(st));
            cr_expect(memcmp(&energy, P8, sizeof energy) == 0, "kinetic_energy, argument %d NULL: written", k);
        }
    }
    for (int k = 0; k < 3; ++k) { // S, evals, V
        memcpy(evals, P8, sizeof evals), memcpy(V, P8, sizeof V);
        adv_status st = adv_symmetric_eigen(2, k == 0 ? NULL : S0, k == 1 ? NULL : evals, k == 2 ? NULL : V);
        cr_expect_eq(st, ADV_ERR_NULL_POINTER, "symmetric_eigen, argument %d NULL: got %s", k, adv_status_name(st));
        cr_expect(memcmp(evals, P8, sizeof evals) == 0 && memcmp(V, P8, sizeof V) == 0,
                  "symmetric_eigen, argument %d NULL: output written", k);
    }
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}

/* NULL pointers to the incremental sampler API: adv_sampler_begin (sampler, particles),
 * _advance (sampler), _progress (sampler, fraction), _time_grid (sampler, times) and
 * _checkpoint_save (sampler, path) return ADV_ERR_NULL_POINTER and write nothing (z, done,
 * stats, fraction and times poisoned before; no checkpoint file appears); a refused begin
 * starts no run and a refused call during a run leaves it going, to the bits of an
 * undisturbed run. */
Test(invalid, null_pointers_sampler) {
    adv_context *ctx = su_cpu_context(1);
    double y[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, y, NULL, 5, 2, NULL, &f), ADV_OK);
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.steps = 8;
    adv_sampler *s = NULL;
    cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
    const double z0[6] = {0.1, 0.2, -0.3, 0.4, 0.5, -0.6};
    double ref[6], z[6], zp[6], grid[9], gp[9], frac, fp;
    tu_poison(zp, sizeof zp);
    tu_poison(gp, sizeof gp);
    tu_poison(&fp, sizeof fp);
    memcpy(ref, z0, sizeof ref);
    cr_assert_eq(adv_sample(f, &o, 3, ref, NULL), ADV_OK); // the undisturbed run
    char path[128], unused[128];
    snprintf(path, sizeof path, "/tmp/advect-null-%d.ckpt", (int)getpid());
    snprintf(unused, sizeof unused, "/tmp/advect-null-%d-never.ckpt", (int)getpid());
    remove(unused);
    // No run yet: begin with a NULL sampler or NULL particles starts none.
    memcpy(z, zp, sizeof z);
    cr_expect_eq(adv_sampler_begin(NULL, 3, z), ADV_ERR_NULL_POINTER);
    cr_expect(memcmp(z, zp, sizeof z) == 0, "begin(NULL, ...) wrote z");
    EXPECT_NULL_ARG(ctx, adv_sampler_begin(s, 3, NULL), "z");
    cr_expect_eq(adv_sampler_advance(s, 1, NULL, NULL), ADV_ERR_INVALID_VALUE, "a refused begin started a run");
    // The time grid (valid at any time).
    cr_assert_eq(adv_sampler_time_grid(s, grid), ADV_OK);
    memcpy(grid, gp, sizeof grid);
    cr_expect_eq(adv_sampler_time_grid(NULL, grid), ADV_ERR_NULL_POINTER);
    cr_expect(memcmp(grid, gp, sizeof grid) == 0, "time_grid(NULL, ...) wrote times");
    cr_expect_eq(adv_sampler_time_grid(s, NULL), ADV_ERR_NULL_POINTER);
    // During a run.
    memcpy(z, z0, sizeof z);
    cr_assert_eq(adv_sampler_begin(s, 3, z), ADV_OK);
    cr_assert_eq(adv_sampler_advance(s, 3, NULL, NULL), ADV_OK);
    cr_assert_eq(adv_sampler_checkpoint_save(s, path), ADV_OK, "%s", adv_context_last_error(ctx));
    remove(path);
    int done = 12345;
    adv_sampler_stats stats, sp;
    memset(&sp, 0xA5, sizeof sp);
    sp.struct_size = sizeof sp;
    stats = sp;
    cr_expect_eq(adv_sampler_advance(NULL, 1, &done, &stats), ADV_ERR_NULL_POINTER);
    cr_expect(done == 12345 && memcmp(&stats, &sp, sizeof stats) == 0, "advance(NULL, ...) wrote done or stats");
    frac = fp;
    cr_expect_eq(adv_sampler_progress(NULL, &frac), ADV_ERR_NULL_POINTER);
    cr_expect(memcmp(&frac, &fp, sizeof frac) == 0, "progress(NULL, ...) wrote the fraction");
    cr_expect_eq(adv_sampler_progress(s, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(adv_sampler_checkpoint_save(NULL, unused), ADV_ERR_NULL_POINTER);
    EXPECT_NULL_ARG(ctx, adv_sampler_checkpoint_save(s, NULL), "path");
    struct stat sb;
    cr_expect(stat(unused, &sb) != 0, "checkpoint_save(NULL, path) created the file");
    // A begin refused for NULL particles in the middle of a run does not restart it.
    EXPECT_NULL_ARG(ctx, adv_sampler_begin(s, 3, NULL), "z");
    cr_assert_eq(adv_sampler_progress(s, &frac), ADV_OK);
    cr_expect(fabs(frac - 3.0 / 8.0) < 1e-12, "progress %g after 3 of 8 steps", frac);
    cr_assert_eq(adv_sampler_advance(s, INT64_MAX, &done, NULL), ADV_OK);
    cr_expect_eq(done, 1);
    cr_expect(memcmp(z, ref, sizeof z) == 0, "the refused calls changed the run's result");
    adv_sampler_destroy(s);
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}
#undef EXPECT_NULL_ARG

/* Particles processed in chunks need memory set by the chunk, not N: with an allocator hook
 * counting the peak of live context bytes, 20000 particles in chunks of 500 use less than
 * 2000 particles' worth of workspace. */
static tu_peak_hook hook;

Test(chunks, memory_bounded_by_chunk) {
    adv_context_opts co;
    adv_context_default_opts(&co);
    co.backend = ADV_BACKEND_CPU;
    co.cpu_threads = 1;
    co.alloc = tu_peak_alloc;
    co.free = tu_peak_free;
    co.alloc_user = &hook;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&co, &ctx), ADV_OK);
    double y[40];
    tu_fill_uniform(y, 40, -1, 1, 3);
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, y, NULL, 20, 2, NULL, &f), ADV_OK);
    const int64_t N = 20000;
    double *z = malloc((size_t)N * 2 * sizeof *z); // caller memory, not counted
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.method = ADV_METHOD_DOPRI5;
    o.atol = o.rtol = 1e-3;
    o.chunk_size = 500;
    o.init_from_source = 1;
    size_t before = hook.live;
    hook.peak = hook.live;
    adv_sampler_stats st = {.struct_size = sizeof st};
    cr_assert_eq(adv_sample(f, &o, N, z, &st), ADV_OK);
    cr_expect_eq(st.chunks, 40);
    size_t used = hook.peak - before;
    cr_expect(used < 2000 * 2 * sizeof(double) * 12, "workspace peak %zu bytes for chunks of 500", used);
    free(z);
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}

/* ---- re-entrant calls from callbacks ---------------------------------------------------- */

/* A denoiser-only user field whose callback evaluates or destroys the same field
 * (asked for velocity, the field needs its own denoiser buffer, which an inner evaluation of
 * more rows reallocated under the outer one: heap-use-after-free). Each inner call is refused
 * with ADV_ERR_INVALID_VALUE and a message naming the problem, writes nothing, and the outer
 * evaluation (directly, with per-particle times, through a sampler) gives the same bits as
 * without it; the guard is released on every return, errors included. */
typedef struct self_caller {
    adv_field *self;
    adv_context *ctx;
    int mode;        /* 0 none; 1 eval, 2 eval_times, 3 destroy; 5 fail (return 5) */
    int calls, inside;
    adv_status inner;
    char msg[256];
    int written;     /* the refused call wrote its output */
} self_caller;

static int self_calling_denoiser(void *user, const adv_field_request *r) {
    self_caller *c = user;
    c->calls++;
    if (c->mode == 5) return 5;
    if (c->mode >= 1 && c->mode <= 3 && !c->inside) { // once (an accepted call would recurse)
        c->inside = 1;
        const int64_t m = 64 * r->n;
        const size_t count = (size_t)(m * r->dim);
        double *zz = calloc(count, sizeof *zz), *vv = malloc(count * sizeof *vv), *poison = malloc(count * sizeof *poison);
        double *tt = malloc((size_t)m * sizeof *tt);
        for (int64_t i = 0; i < m; ++i) tt[i] = 0.3;
        tu_poison(poison, count * sizeof *poison);
        memcpy(vv, poison, count * sizeof *vv);
        c->inner = c->mode == 1   ? adv_field_eval(c->self, r->t, m, zz, vv, NULL, NULL)
                   : c->mode == 2 ? adv_field_eval_times(c->self, tt, m, zz, vv, NULL, NULL)
                                  : adv_field_destroy(c->self);
        snprintf(c->msg, sizeof c->msg, "%s", adv_context_last_error(c->ctx));
        c->written = memcmp(vv, poison, count * sizeof *vv) != 0;
        free(zz), free(vv), free(poison), free(tt);
        c->inside = 0;
    }
    for (int64_t k = 0; k < r->n * r->dim; ++k)
        ((double *)r->denoiser)[k] = 0.5 * ((const double *)r->z)[k];
    return 0;
}

Test(reentrancy, user_field_evaluated_from_its_own_callback) {
    adv_context *ctx = su_cpu_context(2);
    self_caller c = {.ctx = ctx};
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = self_calling_denoiser;
    uo.user = &c;
    uo.outputs = ADV_FIELD_DENOISER;
    adv_field *u = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 3, &uo, &u), ADV_OK);
    c.self = u;
    double z[33], v[33], ref[33], times[11];
    tu_fill_uniform(z, 33, -2, 2, 91);
    for (int i = 0; i < 11; ++i) times[i] = 0.05 + 0.08 * i;
    for (int per_particle = 0; per_particle < 2; ++per_particle) {
        c.mode = 0;
        cr_assert_eq(per_particle ? adv_field_eval_times(u, times, 11, z, ref, NULL, NULL)
                                  : adv_field_eval(u, 0.4, 11, z, ref, NULL, NULL), ADV_OK);
        for (int mode = 1; mode <= 3; ++mode) {
            c.mode = mode;
            c.inner = ADV_OK;
            c.msg[0] = '\0';
            c.written = 0;
            tu_poison(v, sizeof v);
            adv_status st = per_particle ? adv_field_eval_times(u, times, 11, z, v, NULL, NULL)
                                         : adv_field_eval(u, 0.4, 11, z, v, NULL, NULL);
            cr_expect_eq(st, ADV_OK, "mode %d per-particle %d: %s", mode, per_particle, adv_context_last_error(ctx));
            cr_expect(memcmp(v, ref, sizeof v) == 0, "mode %d per-particle %d: the result changed", mode, per_particle);
            cr_expect_eq(c.inner, ADV_ERR_INVALID_VALUE, "mode %d per-particle %d: inner call gave %s", mode,
                         per_particle, adv_status_name(c.inner));
            cr_expect(strstr(c.msg, mode == 3 ? "field is being evaluated" : "already being evaluated") != NULL,
                      "mode %d: message '%s'", mode, c.msg);
            cr_expect(!c.written, "mode %d per-particle %d: the refused call wrote its output", mode, per_particle);
        }
    }
    // Through a sampler: the same run with and without the refused inner evaluations.
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.method = ADV_METHOD_HEUN;
    o.steps = 4;
    o.t1 = 0.9;
    o.chunk_size = 4;
    double za[33], zb[33];
    memcpy(za, z, sizeof z), memcpy(zb, z, sizeof z);
    c.mode = 0;
    cr_assert_eq(adv_sample(u, &o, 11, za, NULL), ADV_OK);
    c.mode = 1;
    c.inner = ADV_OK;
    cr_expect_eq(adv_sample(u, &o, 11, zb, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect_eq(c.inner, ADV_ERR_INVALID_VALUE);
    cr_expect(memcmp(za, zb, sizeof za) == 0, "the sampler's result changed");
    // A failing callback releases the guard: the next evaluation runs, and still refuses.
    c.mode = 5;
    cr_expect_eq(adv_field_eval(u, 0.4, 11, z, v, NULL, NULL), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(adv_field_eval_times(u, times, 11, z, v, NULL, NULL), ADV_ERR_INVALID_VALUE);
    c.mode = 1;
    c.inner = ADV_OK;
    c.calls = 0;
    cr_expect_eq(adv_field_eval(u, 0.4, 11, z, v, NULL, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect_eq(c.calls, 1);
    cr_expect_eq(c.inner, ADV_ERR_INVALID_VALUE);
    c.mode = 0;
    cr_expect_eq(adv_field_destroy(u), ADV_OK);
    adv_context_destroy(ctx);
}

/* A user field that writes NaN: the sampler's ADV_ERR_NONFINITE says that the callback may be
 * the cause (not only an unstable run). */
static int nan_velocity(void *u, const adv_field_request *r) {
    (void)u;
    for (int64_t k = 0; k < r->n * r->dim; ++k) ((double *)r->velocity)[k] = k == 4 ? NAN : 0.0;
    return 0;
}

Test(reentrancy, nonfinite_user_field_names_the_callback) {
    adv_context *ctx = su_cpu_context(1);
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = nan_velocity;
    adv_field *u = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, &uo, &u), ADV_OK);
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.method = ADV_METHOD_EULER;
    o.steps = 4;
    double z[10] = {0};
    cr_expect_eq(adv_sample(u, &o, 5, z, NULL), ADV_ERR_NONFINITE);
    const char *msg = adv_context_last_error(ctx);
    cr_expect(strstr(msg, "callback returned non-finite values") != NULL && strstr(msg, "unstable") != NULL,
              "message: %s", msg);
    adv_field_destroy(u);
    adv_context_destroy(ctx);
}

/* The snapshot callback (and a field's or the diffusion callback) may not restart, advance,
 * reload or destroy the sampler that calls it: ADV_ERR_INVALID_VALUE, and the run goes on to
 * the bits of an undisturbed run. Before, an advance from the snapshot callback stepped the
 * chunk under the outer step. A checkpoint may be saved from the snapshot callback (the
 * consistent state after that snapshot's step), but not from inside a step. */
typedef struct sampler_caller {
    adv_sampler *s;
    adv_context *ctx;
    int armed;
    adv_status st[6];   /* advance, begin, load, destroy, progress, save */
    char msg[256];
    const char *path;
    double *other;      /* particles for begin */
    adv_field *inner;   /* the field a user wrapper evaluates */
} sampler_caller;

static void call_sampler(sampler_caller *c, int save) {
    int done = 7;
    double frac = -1;
    c->st[0] = adv_sampler_advance(c->s, 2, &done, NULL);
    snprintf(c->msg, sizeof c->msg, "%s", adv_context_last_error(c->ctx));
    c->st[1] = adv_sampler_begin(c->s, 11, c->other);
    c->st[2] = adv_sampler_checkpoint_load(c->s, c->path, 11, c->other);
    c->st[3] = adv_sampler_destroy(c->s);
    c->st[4] = adv_sampler_progress(c->s, &frac);
    if (save) c->st[5] = adv_sampler_checkpoint_save(c->s, c->path);
}

static int snapshot_calls_sampler(void *user, int64_t snapshot, int64_t step, double t,
                                  int64_t first, int64_t count, const void *z) {
    sampler_caller *c = user;
    (void)snapshot, (void)t, (void)count, (void)z;
    if (c->armed && step == 1 && first == 0) {
        c->armed = 0;
        call_sampler(c, 1);
    }
    return 0;
}

static int wrapper_calls_sampler(void *user, const adv_field_request *r) {
    sampler_caller *c = user;
    if (c->armed) {
        c->armed = 0;
        call_sampler(c, 1);
    }
    return adv_field_eval(c->inner, r->t, r->n, r->z, r->velocity, NULL, NULL) == ADV_OK ? 0 : 1;
}

static sampler_caller *g_diffusion_caller;
static double diffusion_calls_sampler(void *user, double t) {
    (void)user, (void)t;
    if (g_diffusion_caller->armed) {
        g_diffusion_caller->armed = 0;
        call_sampler(g_diffusion_caller, 0);
    }
    return 0.5;
}

static void expect_refused(const sampler_caller *c, int save, const char *where) {
    for (int k = 0; k < 4; ++k)
        cr_expect_eq(c->st[k], ADV_ERR_INVALID_VALUE, "%s: call %d gave %s", where, k, adv_status_name(c->st[k]));
    cr_expect(strstr(c->msg, "already running") != NULL, "%s: message '%s'", where, c->msg);
    cr_expect_eq(c->st[4], ADV_OK, "%s: progress", where);
    if (save) cr_expect_eq(c->st[5], save == 1 ? ADV_OK : ADV_ERR_INVALID_VALUE, "%s: save gave %s", where,
                           adv_status_name(c->st[5]));
}

Test(reentrancy, sampler_called_from_its_callbacks) {
    adv_context *ctx = su_cpu_context(1);
    double y[40], z0[33], ref[33], z[33], other[33];
    tu_fill_uniform(y, 40, -2, 2, 93);
    tu_fill_uniform(z0, 33, -2, 2, 94);
    void *dy;
    adv_field *f = empirical(ctx, ADV_FLOAT64, ADV_SCHEDULE_LINEAR, y, 13, 3, &dy);
    char *path = tmp_path("reentrant");
    sampler_caller c = {.ctx = ctx, .path = path, .other = other, .inner = f};
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.method = ADV_METHOD_HEUN;
    o.steps = 5;
    o.chunk_size = 4;
    memcpy(ref, z0, sizeof ref);
    cr_assert_eq(adv_sample(f, &o, 11, ref, NULL), ADV_OK);
    // From the snapshot callback.
    o.save_every = 1;
    o.snapshot = snapshot_calls_sampler;
    o.snapshot_user = &c;
    adv_sampler *s = NULL;
    cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
    c.s = s, c.armed = 1;
    memcpy(z, z0, sizeof z);
    cr_expect_eq(adv_sampler_run(s, 11, z, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect(memcmp(z, ref, sizeof z) == 0, "the outer run changed");
    expect_refused(&c, 1, "snapshot callback");
    cr_expect_eq(adv_sampler_destroy(s), ADV_OK);
    // From a user field's callback: inside a step, where a checkpoint is refused too.
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = wrapper_calls_sampler;
    uo.user = &c;
    adv_field *w = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 3, &uo, &w), ADV_OK);
    o.save_every = 0, o.snapshot = NULL, o.t1 = 0.9;
    double ref2[33];
    memcpy(ref2, z0, sizeof ref2);
    cr_assert_eq(adv_sample(w, &o, 11, ref2, NULL), ADV_OK);
    cr_assert_eq(adv_sampler_create(w, &o, &s), ADV_OK);
    c.s = s, c.armed = 1;
    memcpy(z, z0, sizeof z);
    cr_expect_eq(adv_sampler_run(s, 11, z, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect(memcmp(z, ref2, sizeof z) == 0, "the outer run changed");
    expect_refused(&c, 2, "field callback");
    cr_expect_eq(adv_sampler_destroy(s), ADV_OK);
    // From the SDE's diffusion callback (also called, outside any run, by create).
    o.method = ADV_METHOD_SDE, o.t0 = 0.1, o.t1 = 1.0;
    o.diffusion = diffusion_calls_sampler;
    g_diffusion_caller = &c;
    c.armed = 0;
    memcpy(ref2, z0, sizeof ref2);
    cr_assert_eq(adv_sample(f, &o, 11, ref2, NULL), ADV_OK);
    cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
    c.s = s, c.armed = 1;
    memcpy(z, z0, sizeof z);
    cr_expect_eq(adv_sampler_run(s, 11, z, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
    cr_expect(memcmp(z, ref2, sizeof z) == 0, "the outer run changed");
    expect_refused(&c, 0, "diffusion callback");
    cr_expect_eq(adv_sampler_destroy(s), ADV_OK);
    remove(path);
    adv_field_destroy(w);
    adv_field_destroy(f);
    adv_free(ctx, dy);
    adv_context_destroy(ctx);
}

/* Checkpoint positions a sampler cannot be in are ADV_ERR_FORMAT with z untouched: a DOPRI5
 * chunk in segment 0 with adaptive steps to take, in a segment between snapshot times, or past
 * the landed state; a fixed-step chunk with a segment, or past its K steps. The resealed
 * original loads. */
Test(checkpoint, unreachable_positions) {
    ck_setup c;
    ck_make(&c, ADV_METHOD_DOPRI5, 80);
    c.o.steps = 6;
    c.o.save_every = 3;
    for (int fixed = 0; fixed < 2; ++fixed) {
        if (fixed) c.o.method = ADV_METHOD_HEUN;
        adv_sampler *s = NULL, *r = NULL;
        cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
        cr_assert_eq(adv_sampler_create(c.f, &c.o, &r), ADV_OK);
        double z[RN * RD], poison[RN * RD];
        cr_assert_eq(adv_sampler_begin(s, RN, z), ADV_OK);
        cr_assert_eq(adv_sampler_advance(s, 2, NULL, NULL), ADV_OK);
        char *path = tmp_path("positions");
        cr_assert_eq(adv_sampler_checkpoint_save(s, path), ADV_OK);
        const long n = file_size(path);
        unsigned char *orig = file_bytes(path, n), *buf = malloc((size_t)n);
        // Header: magic, version, byte order, fingerprint (24 bytes), n, d, chunk size, K,
        // precision, method (40), then chunk, step, segment (i64 each) and chunk started.
        const long at_step = 72, at_seg = 80;
        int32_t started;
        memcpy(&started, orig + 88, 4);
        cr_assert_eq(started, 1, "the save is inside a chunk");
        // DOPRI5 (K = 6, save_every = 3, singular end: k_ode = 5, tail): segments 0, 1, 4, 8.
        const int64_t seg_cases[4] = {0, 1, 4, 8}, fixed_cases[2][2] = {{1, 2}, {0, 7}}; // {seg, step}
        const int ncases = fixed ? 2 : 4;
        for (int k = 0; k < ncases; ++k) {
            memcpy(buf, orig, (size_t)n);
            if (fixed) {
                memcpy(buf + at_seg, &fixed_cases[k][0], 8);
                memcpy(buf + at_step, &fixed_cases[k][1], 8);
            } else {
                memcpy(buf + at_seg, &seg_cases[k], 8);
            }
            tu_reseal_fnv1a(buf, (size_t)n);
            write_file(path, buf, n);
            tu_poison(poison, sizeof poison);
            memcpy(z, poison, sizeof z);
            cr_expect_eq(adv_sampler_checkpoint_load(r, path, RN, z), ADV_ERR_FORMAT, "%s case %d: %s",
                         fixed ? "Heun" : "DOPRI5", k, adv_context_last_error(c.ctx));
            cr_expect(memcmp(z, poison, sizeof z) == 0, "case %d: z was written", k);
        }
        write_file(path, orig, n);
        cr_expect_eq(adv_sampler_checkpoint_load(r, path, RN, z), ADV_OK, "%s", adv_context_last_error(c.ctx));
        remove(path);
        free(orig), free(buf);
        adv_sampler_destroy(s);
        adv_sampler_destroy(r);
    }
    ck_free(&c);
}

/* z inside the trajectory buffer (at a snapshot slot, or shifted by a row) or the trajectory
 * inside z: refused by begin with nothing written. Snapshots are written while the particles
 * are still advanced, so shared memory fed them back into the run (wrong by up to 1.7). */
Test(checkpoint, trajectory_overlapping_the_particles) {
    ck_setup c;
    ck_make(&c, ADV_METHOD_HEUN, 5);
    c.o.save_every = 4; // S = 4 snapshots of RN x RD
    const size_t slot = (size_t)RN * RD, slots = 4;
    double *buf = tu_calloc(slots * slot + slot, sizeof(double)), *copy = tu_calloc(slots * slot + slot, sizeof(double));
    tu_poison(buf, (slots * slot + slot) * sizeof(double));
    memcpy(copy, buf, (slots * slot + slot) * sizeof(double));
    const struct {
        const char *what;
        double *traj, *z;
    } cases[] = {{"z at slot 0", buf, buf},
                 {"z at slot 2", buf, buf + 2 * slot},
                 {"z at the last slot", buf, buf + 3 * slot},
                 {"z a row into slot 1", buf, buf + slot + RD},
                 {"trajectory ending inside z", buf + 1, buf}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        c.o.trajectory = cases[k].traj;
        adv_sampler *s = NULL;
        cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
        cr_expect_eq(adv_sampler_begin(s, RN, cases[k].z), ADV_ERR_INVALID_VALUE, "%s", cases[k].what);
        cr_expect(strstr(adv_context_last_error(c.ctx), "overlaps") != NULL, "%s: %s", cases[k].what,
                  adv_context_last_error(c.ctx));
        cr_expect(memcmp(buf, copy, (slots * slot + slot) * sizeof(double)) == 0, "%s: written",
                  cases[k].what);
        adv_sampler_destroy(s);
    }
    // Adjacent (z right after the trajectory) is fine.
    c.o.trajectory = buf;
    adv_sampler *s = NULL;
    cr_assert_eq(adv_sampler_create(c.f, &c.o, &s), ADV_OK);
    cr_expect_eq(adv_sampler_run(s, RN, buf + slots * slot, NULL), ADV_OK, "%s",
                 adv_context_last_error(c.ctx));
    cr_expect(memcmp(buf + 3 * slot, buf + slots * slot, slot * sizeof(double)) == 0,
              "the last snapshot is the result");
    adv_sampler_destroy(s);
    free(buf), free(copy);
    ck_free(&c);
}

/* A field that is zero everywhere (velocity and score): an SDE run through it is the scaled
 * noise alone, X_1 - X_0 = sum_k g_k sqrt(h_k) xi_k. */
static int zero_field(void *user, const adv_field_request *r) {
    (void)user;
    const size_t bytes = (size_t)(r->n * r->dim) * sizeof(double);
    if (r->velocity) memset(r->velocity, 0, bytes);
    if (r->score) memset(r->score, 0, bytes);
    return 0;
}

/* The SDE noise is keyed by (seed, particle, step, stage, dimension) and nothing else may
 * share a key: every coordinate of every particle gets its own independent normals. The
 * marginal tests cannot see a key collision (each coordinate is still N(0, 1)), so this
 * test looks at the joint law of the pure-noise displacements of N = 4000 particles in
 * d = 5 (odd: the last Philox pair is half used) after 12 Euler-Maruyama steps: the
 * correlation of any two coordinates of one particle, and of any coordinate of particle p
 * with any of particle p + 1 and p + 2 (a collision between neighbouring particles' blocks,
 * e.g. an index p + k/2 instead of p ceil(d/2) + k/2, makes one of them 1), must be below
 * 5 / sqrt(N) = 0.08 (five standard errors: 0 under independence), every coordinate's
 * variance within 10% of their mean (its standard error is sqrt(2/N) = 2.2%), and a second
 * seed must give other noise. */
/* Rows of N x D draws that must be independent across coordinates and particles: equal
 * variances (within 10%: standard error sqrt(2/N)), and correlations below 5/sqrt(N) within
 * a row and between rows p and p + 1, p + 2 (see noise_keys_do_not_collide). */
static void expect_independent_rows(const double *z, int64_t N, int D, const char *what) {
    double mean[8] = {0}, var[8] = {0};
    for (int64_t i = 0; i < N; ++i)
        for (int k = 0; k < D; ++k) mean[k] += z[i * D + k] / (double)N;
    for (int64_t i = 0; i < N; ++i)
        for (int k = 0; k < D; ++k) var[k] += pow(z[i * D + k] - mean[k], 2) / (double)(N - 1);
    double vbar = 0.0;
    for (int k = 0; k < D; ++k) vbar += var[k] / D;
    cr_assert(vbar > 0.0, "%s: no noise at all", what);
    for (int k = 0; k < D; ++k)
        cr_expect(fabs(var[k] / vbar - 1.0) < 0.1, "%s: coordinate %d: variance %g, mean variance %g",
                  what, k, var[k], vbar);
    const double bound = 5.0 / sqrt((double)N);
    for (int lag = 0; lag <= 2; ++lag)
        for (int j = 0; j < D; ++j)
            for (int k = 0; k < D; ++k) {
                if (lag == 0 && k <= j) continue;
                double c = 0.0;
                for (int64_t i = 0; i + lag < N; ++i)
                    c += (z[i * D + j] - mean[j]) * (z[(i + lag) * D + k] - mean[k]);
                c /= (double)(N - lag - 1) * sqrt(var[j] * var[k]);
                cr_expect(fabs(c) < bound, "%s: corr(particle p dim %d, particle p+%d dim %d) = %.3f",
                          what, j, lag, k, c);
            }
}

Test(sde, noise_keys_do_not_collide) {
    enum { N = 4000, D = 5 };
    adv_context *ctx = su_cpu_context(2);
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = zero_field;
    uo.outputs = ADV_FIELD_VELOCITY | ADV_FIELD_SCORE;
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, D, &uo, &f), ADV_OK);
    double *z[2];
    for (int s = 0; s < 2; ++s) {
        z[s] = calloc((size_t)N * D, sizeof(double));
        adv_sampler_opts o;
        adv_sampler_default_opts(&o);
        o.method = ADV_METHOD_SDE;
        o.t0 = 0.1;
        o.steps = 12;
        o.seed = 77 + (uint64_t)s;
        cr_assert_eq(adv_sample(f, &o, N, z[s], NULL), ADV_OK, "%s", adv_context_last_error(ctx));
    }
    expect_independent_rows(z[0], N, D, "SDE noise");
    int64_t same = 0;
    for (int64_t i = 0; i < (int64_t)N * D; ++i) same += z[0][i] == z[1][i];
    cr_expect_eq(same, 0, "%lld coordinates equal under two seeds", (long long)same);
    free(z[0]), free(z[1]);
    adv_field_destroy(f);
    // The exact samples of a field (adv_field_sample) draw their normals the same way
    // (advf_normals): the Gaussian field's source N(0, I) at t = 0 is those normals.
    double m[D] = {0}, S[D * D] = {0};
    for (int k = 0; k < D; ++k) S[k * D + k] = 1.0;
    cr_assert_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, D, m, S, m, S, ADV_COUPLING_INDEPENDENT, &f),
                 ADV_OK, "%s", adv_context_last_error(ctx));
    double *x = calloc((size_t)N * D, sizeof(double));
    cr_assert_eq(adv_field_sample(f, 0.0, 5, 0, N, x), ADV_OK, "%s", adv_context_last_error(ctx));
    expect_independent_rows(x, N, D, "adv_field_sample");
    free(x);
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}

/* DOPRI5's error norm (kernels/common/sampler_math.h, both backends): the scaled RMS
 * sqrt(mean_k (x_k / (atol + rtol max(|y_k|, |y2_k|)))^2), against its definition on rows of
 * d = 1, 3 and 7 where |y| and |y2| take turns being the larger, in both precisions, and
 * with y2 absent (scale |y| alone). The controller's step sizes scale with this norm to the
 * power -1/5, so a sum instead of a mean (a factor sqrt(d)) or the smaller scale instead of
 * the larger moves every step without failing the convergence tests. */
Test(dopri5, error_norm_is_the_scaled_rms) {
    const double atol = 1e-6, rtol = 1e-3;
    const int64_t dims[3] = {1, 3, 7};
    for (int p = 0; p < 2; ++p)
        for (int c = 0; c < 3; ++c) {
            const int64_t d = dims[c], rows = 3;
            double x[21], y[21], y2[21];
            for (int64_t k = 0; k < rows * d; ++k) {
                x[k] = 1e-4 * sin(1.3 * (double)k + 0.2);
                y[k] = (k % 2 ? 5.0 : 0.5) * cos(0.7 * (double)k);
                y2[k] = (k % 2 ? 0.5 : 5.0) * cos(0.9 * (double)k + 1.0);
            }
            const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
            void *xs = tu_to_precision(x, (size_t)(rows * d), prec);
            void *ys = tu_to_precision(y, (size_t)(rows * d), prec);
            void *y2s = tu_to_precision(y2, (size_t)(rows * d), prec);
            double xr[21], yr[21], y2r[21]; // the values as the precision holds them
            tu_from_precision(xr, xs, (size_t)(rows * d), prec);
            tu_from_precision(yr, ys, (size_t)(rows * d), prec);
            tu_from_precision(y2r, y2s, (size_t)(rows * d), prec);
            for (int64_t i = 0; i < rows; ++i)
                for (int with_y2 = 0; with_y2 < 2; ++with_y2) {
                    double acc = 0.0;
                    for (int64_t k = 0; k < d; ++k) {
                        double sc = fabs(yr[i * d + k]);
                        if (with_y2) sc = fmax(sc, fabs(y2r[i * d + k]));
                        acc += pow(xr[i * d + k] / (atol + rtol * sc), 2);
                    }
                    const double want = sqrt(acc / (double)d);
                    const double got = advs_rms_row((int)prec, d, i, xs, ys, with_y2 ? y2s : NULL,
                                                    atol, rtol);
                    cr_expect(fabs(got - want) <= 1e-14 * want, "%s d=%lld row %lld y2 %d: %.17g vs %.17g",
                              tu_precision_name(prec), (long long)d, (long long)i, with_y2, got, want);
                }
            free(xs), free(ys), free(y2s);
        }
    double nan_row[2] = {NAN, 1.0}, one[2] = {1.0, 1.0};
    cr_expect(isnan(advs_rms_row((int)ADV_FLOAT64, 2, 0, nan_row, one, NULL, atol, rtol)),
              "NaN in the error must give NaN (the controller rejects it)");
}

/* DOPRI5 accepts a step exactly when its error estimate is <= 1. A user field v = lambda z
 * (d = 1, one particle) records every evaluation; the rounds are rebuilt from the trace
 * (stage 2 at t + h/5, stage 7 at t + h), each round's error recomputed here from its
 * recorded stages with the published Dormand-Prince weights (b5 - b4*) and the scale
 * atol + rtol max(|y|, |y_new|), and the next round's start tells whether it was accepted.
 * Several first steps h_init make some estimates fall in (1, 4]: a looser threshold fails. */
typedef struct dp_trace {
    double lambda;
    int64_t n;
    double t[4096], z[4096];
} dp_trace;

static int dp_trace_field(void *user, const adv_field_request *r) {
    dp_trace *tr = user;
    const double *z = r->z, *times = r->times;
    if (tr->n >= 4096) return 1;
    tr->t[tr->n] = times ? times[0] : r->t;
    tr->z[tr->n] = z[0];
    tr->n++;
    ((double *)r->velocity)[0] = tr->lambda * z[0];
    return 0;
}

Test(dopri5, accepts_exactly_when_the_error_is_at_most_one) {
    adv_context *ctx = su_cpu_context(1);
    static const double E[7] = {35.0 / 384 - 5179.0 / 57600, 0.0, 500.0 / 1113 - 7571.0 / 16695,
                                125.0 / 192 - 393.0 / 640, -2187.0 / 6784 + 92097.0 / 339200,
                                11.0 / 84 - 187.0 / 2100, -1.0 / 40};
    static dp_trace tr;
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = dp_trace_field;
    uo.user = &tr;
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 1, &uo, &f), ADV_OK);
    const double lambdas[2] = {-6.0, 4.0}, atol = 1e-7, rtol = 1e-5;
    int64_t in_band = 0, rounds = 0, rejected = 0;
    for (int l = 0; l < 2; ++l)
        for (int q = 0; q < 12; ++q) {
            tr.lambda = lambdas[l];
            tr.n = 0;
            adv_sampler_opts o;
            adv_sampler_default_opts(&o);
            o.method = ADV_METHOD_DOPRI5;
            o.steps = 1;
            o.atol = atol, o.rtol = rtol;
            o.h_init = 0.5 * pow(0.7, q);
            adv_sampler *s = NULL;
            cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
            double z = 1.0;
            adv_sampler_stats st = {.struct_size = sizeof st};
            cr_assert_eq(adv_sampler_run(s, 1, &z, &st), ADV_OK, "%s", adv_context_last_error(ctx));
            adv_sampler_destroy(s);
            cr_assert_eq(tr.n, 1 + 6 * (st.accepted + st.rejected), "lambda %g h0 %g: %lld evaluations",
                         tr.lambda, o.h_init, (long long)tr.n);
            double t = tr.t[0], y = tr.z[0];
            cr_assert(t == 0.0 && y == 1.0);
            for (int64_t r = 0; r < st.accepted + st.rejected; ++r) {
                const double *ts = tr.t + 1 + 6 * r, *zs = tr.z + 1 + 6 * r;
                const double h = ts[5] - t;
                double k[7] = {tr.lambda * y}, err = 0.0;
                for (int j = 1; j < 7; ++j) k[j] = tr.lambda * zs[j - 1];
                for (int j = 0; j < 7; ++j) err += E[j] * k[j];
                const double ynew = zs[5];
                const double e = fabs(h * err) / (atol + rtol * fmax(fabs(y), fabs(ynew)));
                // Accepted: the next round starts at t + h (or the run ends there).
                int accepted = r + 1 == st.accepted + st.rejected;
                if (!accepted) {
                    const double *tn = tr.t + 1 + 6 * (r + 1);
                    const double start = (5.0 * tn[0] - tn[5]) / 4.0; // from t + h'/5 and t + h'
                    accepted = fabs(start - ts[5]) < fabs(start - t);
                }
                ++rounds;
                rejected += !accepted;
                in_band += e > 1.0 && e <= 4.0;
                // e is recomputed from stages rounded once more than the sampler's: 1e-9 slack.
                if (accepted)
                    cr_expect(e <= 1.0 + 1e-9, "lambda %g h0 %g round %lld: accepted with error %.6g", tr.lambda,
                              o.h_init, (long long)r, e);
                else
                    cr_expect(e > 1.0 - 1e-9, "lambda %g h0 %g round %lld: rejected with error %.6g", tr.lambda,
                              o.h_init, (long long)r, e);
                if (accepted) t = ts[5], y = ynew;
            }
            cr_expect(t == 1.0, "the run ends at 1, not %.17g", t);
            cr_expect(fabs(y - exp(tr.lambda)) <= 1e-4 * exp(tr.lambda), "z(1) = %g vs %g", y, exp(tr.lambda));
        }
    cr_expect(in_band >= 3 && rejected >= 10, "the first steps must reach errors in (1, 4]: %lld in band, "
              "%lld of %lld rounds rejected", (long long)in_band, (long long)rejected, (long long)rounds);
    adv_field_destroy(f);
    adv_context_destroy(ctx);
}

/* DOPRI5 on a field with a singular end runs its adaptive part up to where the remaining
 * noise, sigma b/a, falls to the tolerance, then takes one exponential step from there (the
 * denoiser is evaluated at that time). On the linear schedule b/a = (1-t)/t, so the last
 * evaluation before t = 1 is at 1 - t = r/(1 + r), r = max(atol, rtol)/sigma: for sigma = 4
 * and 1/4, 2.5e-7 and 4e-6 (a scale applied the wrong way round swaps them). */
typedef struct last_time {
    double t_max; /* the largest evaluation time below 1 */
} last_time;

static int constant_denoiser(void *user, const adv_field_request *r) {
    last_time *lt = user;
    const double *times = r->times;
    for (int64_t i = 0; i < r->n; ++i) {
        const double t = times ? times[i] : r->t;
        if (t < 1.0 && t > lt->t_max) lt->t_max = t;
        for (int64_t k = 0; k < r->dim; ++k) ((double *)r->denoiser)[i * r->dim + k] = 0.5;
    }
    return 0;
}

Test(dopri5, adaptive_part_ends_where_the_noise_reaches_the_tolerance) {
    adv_context *ctx = su_cpu_context(1);
    const double sigmas[2] = {4.0, 0.25};
    for (int c = 0; c < 2; ++c) {
        last_time lt = {0.0};
        adv_user_field_opts uo;
        adv_user_field_default_opts(&uo);
        uo.fn = constant_denoiser;
        uo.user = &lt;
        uo.outputs = ADV_FIELD_DENOISER;
        uo.sigma = sigmas[c];
        adv_field *f = NULL;
        cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, &uo, &f), ADV_OK);
        adv_sampler_opts o;
        adv_sampler_default_opts(&o);
        o.method = ADV_METHOD_DOPRI5;
        o.steps = 1;
        o.atol = 1e-6, o.rtol = 1e-7;
        double z[6] = {0.3, -1.0, 2.0, 0.1, -0.4, 1.2};
        cr_assert_eq(adv_sample(f, &o, 3, z, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
        const double r = 1e-6 / sigmas[c], want = r / (1.0 + r);
        cr_expect(fabs((1.0 - lt.t_max) - want) <= 1e-3 * want, "sigma %g: adaptive part ended at 1 - %.6g, expected 1 - %.6g",
                  sigmas[c], 1.0 - lt.t_max, want);
        for (int k = 0; k < 6; ++k) cr_expect(z[k] == 0.5, "sample %d = %.17g, expected the denoiser 0.5", k, z[k]);
        adv_field_destroy(f);
    }
    adv_context_destroy(ctx);
}
