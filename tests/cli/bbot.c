/* End-to-end tests of `advect bbot`: runs the built executable (ADV_TEST_ADVECT_BIN) in a
 * fresh temporary directory on .npy and .pgm inputs written here, and checks the exit codes
 * (0 ok, 2 bad usage/input with one line on stderr), that failed runs leave no output file,
 * the JSON summary's keys, and the outputs read back: ρ over time of shape (P+1, grid...)
 * with ρ(0), ρ(1) the normalised inputs and unit mass on every time face (the continuity
 * projection conserves it to rounding), the PNG strip, and the particle trajectories
 * (shape (P+1, N, d), inside the box, their mean following the density's mean). */
#include "cli_harness.h"
#include "io.h"
#include "test_util.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_npy(const char *name, adv_precision p, int ndim, const int64_t *shape,
                      const double *data, size_t n) {
    char path[512], msg[256];
    snprintf(path, sizeof path, "%s/%s", cli_dir, name);
    void *buf = tu_to_precision(data, n, p);
    cr_assert_eq(advio_npy_write(path, p, ndim, shape, buf, msg, sizeof msg), ADV_OK, "%s", msg);
    free(buf);
}

static void read_npy(const char *name, advio_array *a) {
    char path[512], msg[256];
    snprintf(path, sizeof path, "%s/%s", cli_dir, name);
    cr_assert_eq(advio_npy_read(path, a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_assert_eq(advio_array_convert(a, ADV_FLOAT64, msg, sizeof msg), ADV_OK);
}

static void expect_one_line(const char *word) {
    const char *err = cli_slurp("err.txt");
    const char *nl = strchr(err, '\n');
    cr_expect(nl && nl[1] == '\0', "stderr is not one line: '%s'", err);
    cr_expect(strstr(err, word), "stderr '%s' does not mention '%s'", err, word);
}

static void bump(int n0, int n1, double c0, double c1, double w, double *out) {
    for (int i = 0; i < n0; ++i)
        for (int j = 0; j < n1; ++j) {
            const double x = (i + 0.5) / n0 - c0, y = (j + 0.5) / n1 - c1;
            out[i * n1 + j] = exp(-(x * x + y * y) / w);
        }
}

/* 1-D bumps at 0.3 (a) and 0.7 (b) on n cells, written as a.npy and b.npy (float64). */
static void write_two_bumps(int n, double *a, double *b) {
    for (int i = 0; i < n; ++i) {
        const double x = (i + 0.5) / n;
        a[i] = exp(-(x - 0.3) * (x - 0.3) / 0.01), b[i] = exp(-(x - 0.7) * (x - 0.7) / 0.01);
    }
    const int64_t s1[1] = {n};
    write_npy("a.npy", ADV_FLOAT64, 1, s1, a, (size_t)n);
    write_npy("b.npy", ADV_FLOAT64, 1, s1, b, (size_t)n);
}

/* Checks ρ(t) of shape (P+1, n0, n1): ends are the normalised inputs, unit mass everywhere. */
static void check_density(const advio_array *r, int P, int n0, int n1, const double *r0,
                          const double *r1, double tol) {
    cr_assert_eq(r->ndim, 3);
    cr_assert(r->shape[0] == P + 1 && r->shape[1] == n0 && r->shape[2] == n1);
    const int M = n0 * n1;
    double s0 = 0, s1 = 0;
    for (int k = 0; k < M; ++k) s0 += r0[k], s1 += r1[k];
    const double *d = r->data;
    for (int k = 0; k < M; ++k) {
        cr_expect(fabs(d[k] - r0[k] * M / s0) <= tol * (1 + d[k]), "rho(0) differs at %d", k);
        cr_expect(fabs(d[P * M + k] - r1[k] * M / s1) <= tol * (1 + d[P * M + k]), "rho(1) differs at %d", k);
    }
    for (int j = 0; j <= P; ++j) {
        double m = 0;
        for (int k = 0; k < M; ++k) m += d[j * M + k];
        cr_expect(fabs(m / M - 1.0) <= tol, "time face %d has mass %.12g", j, m / M);
    }
}

Test(cli_bbot, npy_inputs_json_particles_and_frames, .timeout = 300) {
    cli_make_dir("bbot");
    enum { N0 = 16, N1 = 12, P = 8 };
    double r0[N0 * N1], r1[N0 * N1];
    bump(N0, N1, 0.3, 0.35, 0.02, r0);
    bump(N0, N1, 0.65, 0.6, 0.03, r1);
    const int64_t shape[2] = {N0, N1};
    write_npy("a.npy", ADV_FLOAT64, 2, shape, r0, N0 * N1);
    write_npy("b.npy", ADV_FLOAT32, 2, shape, r1, N0 * N1);
    tu_round_to_precision(r1, N0 * N1, ADV_FLOAT32);
    cr_assert_eq(cli_run("bbot", "--rho0 a.npy --rho1 b.npy --time-steps 8 --iters 400 --device cpu --json "
                     "--particles 500 --seed 3 --out res/rho.npy --frames res/strip.png"),
                 0, "stderr: %s", cli_slurp("err.txt"));
    const char *js = cli_slurp("out.txt");
    const char *keys[] = {"\"cost\": ", "\"iterations\": ", "\"divergence_residual\": ",
                          "\"mass_error\": ", "\"time_s\": ", "\"converged\": "};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; ++k)
        cr_expect(strstr(js, keys[k]), "JSON lacks %s: %s", keys[k], js);
    cr_expect(js[0] == '{' && strchr(js, '\n') && strchr(js, '\n')[1] == '\0', "one JSON line");
    const double cost = strtod(strstr(js, "\"cost\": ") + 8, NULL);
    // Two bumps of variances 0.01 and 0.015 per axis, centres 0.35 and 0.25 apart: W2² is
    // about 0.35² + 0.25² + 2(√0.015 - √0.01)² ≈ 0.188 on a coarse grid.
    cr_expect(cost > 0.15 && cost < 0.23, "cost %g", cost);

    advio_array r;
    read_npy("res/rho.npy", &r);
    check_density(&r, P, N0, N1, r0, r1, 1e-11);
    advio_array_free(&r);
    char *png = cli_slurp("res/strip.png");
    cr_expect(memcmp(png, "\x89PNG", 4) == 0, "PNG signature");
    advio_array x;
    read_npy("res/rho_particles.npy", &x);
    cr_assert(x.ndim == 3 && x.shape[0] == P + 1 && x.shape[1] == 500 && x.shape[2] == 2);
    const double *p = x.data;
    double m_first[2] = {0, 0}, m_last[2] = {0, 0};
    for (size_t k = 0; k < x.count; ++k)
        cr_expect(p[k] >= 0.0 && p[k] <= 1.0, "particle coordinate %g outside the box", p[k]);
    for (int i = 0; i < 500; ++i)
        for (int a = 0; a < 2; ++a) {
            m_first[a] += p[i * 2 + a] / 500;
            m_last[a] += p[(P * 500 + i) * 2 + a] / 500;
        }
    // The bumps' means: (0.3, 0.35) to (0.65, 0.6) (up to truncation and sampling noise).
    cr_expect(fabs(m_first[0] - 0.3) < 0.02 && fabs(m_first[1] - 0.35) < 0.02);
    cr_expect(fabs(m_last[0] - 0.65) < 0.03 && fabs(m_last[1] - 0.6) < 0.03, "final mean (%g, %g)",
              m_last[0], m_last[1]);
    advio_array_free(&x);
    cli_remove_dir();
}

Test(cli_bbot, one_dimensional_and_image_inputs) {
    cli_make_dir("bbot");
    double a[40], b[40];
    write_two_bumps(40, a, b);
    cr_assert_eq(cli_run("bbot", "--rho0 a.npy --rho1 b.npy --time-steps 6 --iters 300 --precision f32 --quiet"),
                 0, "stderr: %s", cli_slurp("err.txt"));
    cr_expect(strlen(cli_slurp("out.txt")) == 0, "--quiet prints nothing");
    advio_array r;
    read_npy("advect-out/bbot.npy", &r);
    cr_expect(r.ndim == 2 && r.shape[0] == 7 && r.shape[1] == 40 && r.dtype == ADV_FLOAT64);
    advio_array_free(&r);
    cr_expect(cli_exists("advect-out/bbot.png"));
    cr_expect(!cli_exists("advect-out/bbot_particles.npy"), "no particles unless asked");

    // Grayscale PGM images (ASCII P2, rows first): 5 rows x 7 columns.
    FILE *f;
    char path[512];
    for (int k = 0; k < 2; ++k) {
        snprintf(path, sizeof path, "%s/%s", cli_dir, k ? "b.pgm" : "a.pgm");
        f = fopen(path, "w");
        fprintf(f, "P2\n# test image\n7 5\n255\n");
        for (int i = 0; i < 5; ++i) {
            for (int j = 0; j < 7; ++j) fprintf(f, "%d ", k ? (j >= 4 ? 200 : 10) : (j < 3 ? 200 : 10));
            fprintf(f, "\n");
        }
        fclose(f);
    }
    cr_assert_eq(cli_run("bbot", "--rho0 a.pgm --rho1 b.pgm --time-steps 4 --iters 200 --out img.npy --frames img.png"),
                 0, "stderr: %s", cli_slurp("err.txt"));
    read_npy("img.npy", &r);
    cr_expect(r.ndim == 3 && r.shape[0] == 5 && r.shape[1] == 5 && r.shape[2] == 7);
    advio_array_free(&r);
    // The strip: 5 frames of 7 x 5 cells, each cell drawn as 8 x 8 pixels at most (the scale
    // is capped), so 292 x 44 pixels with the frames' borders and gaps.
    char msg[256];
    snprintf(path, sizeof path, "%s/img.png", cli_dir);
    cr_assert_eq(advio_png_read_gray(path, &r, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect(r.ndim == 2 && r.shape[0] == 44 && r.shape[1] == 292, "frames %lld x %lld",
              (long long)r.shape[1], (long long)r.shape[0]);
    advio_array_free(&r);
    cli_remove_dir();
}

/* The text summary, the stopping rule and the ends of the options' ranges: "not converged"
 * after too few iterations, the particles' file named; with --tol T the run stops with the
 * residual below T and the relative cost change below T/100 (the usage text); --tol 1 and a
 * density with exact zeros (black pixels) are accepted. */
Test(cli_bbot, summary_stopping_rule_and_range_ends) {
    cli_make_dir("bbot");
    cr_assert_eq(cli_run("bbot", "--iters 3 --time-steps 4 --device cpu --particles 10"), 0, "stderr: %s",
                 cli_slurp("err.txt"));
    const char *out = cli_slurp("out.txt");
    cr_expect(strstr(out, "after 3 iterations (not converged)"), "%s", out);
    cr_expect(strstr(out, ", and advect-out/bbot_particles.npy (10 particles"), "%s", out);
    double a[16], b[16];
    write_two_bumps(16, a, b);
    cr_assert_eq(cli_run("bbot", "--rho0 a.npy --rho1 b.npy --time-steps 4 --tol 0.1 --json --device cpu"), 0,
                 "stderr: %s", cli_slurp("err.txt"));
    const char *js = cli_slurp("out.txt");
    cr_assert(strstr(js, "\"converged\": true"), "%s", js);
    const double change = tu_json_number(js, "cost_change"), resid = tu_json_number(js, "divergence_residual");
    cr_expect(change <= 1e-3 && resid <= 0.1, "stopped at cost change %g (> tol/100?), residual %g", change, resid);
    cr_expect_eq(cli_run("bbot", "--rho0 a.npy --rho1 b.npy --time-steps 4 --tol 1 --quiet"), 0, "%s",
                 cli_slurp("err.txt"));
    a[0] = a[1] = b[15] = 0.0; // exact zeros are densities too
    const int64_t s1[1] = {16};
    write_npy("z0.npy", ADV_FLOAT64, 1, s1, a, 16);
    write_npy("z1.npy", ADV_FLOAT64, 1, s1, b, 16);
    cr_expect_eq(cli_run("bbot", "--rho0 z0.npy --rho1 z1.npy --time-steps 4 --iters 50 --quiet"), 0, "%s",
                 cli_slurp("err.txt"));
    cli_remove_dir();
}

Test(cli_bbot, embedded_example) {
    cli_make_dir("bbot");
    cr_assert_eq(cli_run("bbot", "--iters 3 --time-steps 4 --device cpu"), 0, "stderr: %s", cli_slurp("err.txt"));
    const char *out = cli_slurp("out.txt");
    cr_expect(strstr(out, "cost") && strstr(out, "iterations") && strstr(out, "residual"), "%s", out);
    advio_array r;
    read_npy("advect-out/bbot.npy", &r);
    cr_expect(r.ndim == 3 && r.shape[0] == 5 && r.shape[1] == 64 && r.shape[2] == 64);
    advio_array_free(&r);
    cr_expect(cli_exists("advect-out/bbot.png"));
    cli_remove_dir();
}

/* The bare command's defaults (usage: --time-steps 32, the embedded 64 x 64 example): with
 * only a small --iters and --json, ρ has shape (33, 64, 64), the JSON line has every key of
 * the summary, with grid "64x64", time_steps 32 and the iterations asked for (the tolerance
 * cannot be met in 2 iterations: not converged), and the frames are written. */
Test(cli_bbot, bare_command_defaults) {
    cli_make_dir("bbot");
    cr_assert_eq(cli_run("bbot", "--iters 2 --json"), 0, "stderr: %s", cli_slurp("err.txt"));
    const char *js = cli_slurp("out.txt");
    const char *keys[] = {"\"cost\": ", "\"iterations\": 2,", "\"divergence_residual\": ",
                          "\"mass_error\": ", "\"time_s\": ", "\"converged\": false",
                          "\"constraint_residual\": ", "\"cost_change\": ", "\"path_cost\": ",
                          "\"grid\": \"64x64\"", "\"time_steps\": 32,", "\"device\": \"",
                          "\"precision\": \"f64\"", "\"rho0\": \"(embedded example)\"",
                          "\"rho1\": \"(embedded example)\"", "\"out\": \"advect-out/bbot.npy\"",
                          "\"frames\": \"advect-out/bbot.png\"", "\"particles\": null",
                          "\"n_particles\": 0"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; ++k)
        cr_expect(strstr(js, keys[k]), "JSON lacks %s: %s", keys[k], js);
    cr_expect(js[0] == '{' && strchr(js, '\n') && strchr(js, '\n')[1] == '\0', "one JSON line: %s", js);
    cr_expect(strstr(js, "\"device\": \"cpu\"") || strstr(js, "\"device\": \"cuda\""), "%s", js);
    advio_array r;
    read_npy("advect-out/bbot.npy", &r);
    cr_expect(r.ndim == 3 && r.shape[0] == 33 && r.shape[1] == 64 && r.shape[2] == 64,
              "shape (%lld, %lld, %lld), ndim %d", (long long)r.shape[0],
              (long long)(r.ndim > 1 ? r.shape[1] : 0), (long long)(r.ndim > 2 ? r.shape[2] : 0), r.ndim);
    // Each time face has unit mass (mean 1 per cell), as any iterate of the projection.
    for (int j = 0; j < 33 && r.ndim == 3 && r.shape[0] == 33; j += 8) {
        double m = 0;
        for (int k = 0; k < 64 * 64; ++k) m += ((double *)r.data)[j * 64 * 64 + k];
        cr_expect(fabs(m / (64 * 64) - 1.0) <= 1e-11, "time face %d has mass %.15g", j, m / (64 * 64));
    }
    advio_array_free(&r);
    cr_expect(cli_exists("advect-out/bbot.png"));
    cli_remove_dir();
}

/* --iters defaults to 1000: the usage text says so, and a run without --iters whose
 * tolerances cannot stop it (--tol 0 sets both the residual and the cost-change tolerance
 * to 0: "always run max_iterations") reports exactly 1000 iterations. A 16-cell 1-D problem
 * with 4 time steps takes milliseconds per thousand iterations. */
Test(cli_bbot, iters_default_is_1000) {
    cli_make_dir("bbot");
    cr_assert_eq(cli_run("bbot", "--help"), 0);
    cr_expect(strstr(cli_slurp("out.txt"), "--iters 1000"), "usage: %s", cli_slurp("out.txt"));
    double a[16], b[16];
    write_two_bumps(16, a, b);
    cr_assert_eq(cli_run("bbot", "--rho0 a.npy --rho1 b.npy --time-steps 4 --tol 0 --json --device cpu"), 0,
                 "stderr: %s", cli_slurp("err.txt"));
    const char *js = cli_slurp("out.txt");
    cr_expect(strstr(js, "\"iterations\": 1000,") && strstr(js, "\"converged\": false"), "%s", js);
    cli_remove_dir();
}

Test(cli_bbot, bad_inputs_exit_2_and_write_nothing) {
    cli_make_dir("bbot");
    double a[24], neg[24], zero[24] = {0}, nan_[24], b[30];
    for (int k = 0; k < 24; ++k) a[k] = 1.0 + (k % 5), neg[k] = a[k], nan_[k] = a[k];
    for (int k = 0; k < 30; ++k) b[k] = 1.0;
    neg[7] = -0.5;
    nan_[3] = NAN;
    const int64_t s46[2] = {4, 6}, s56[2] = {5, 6}, s24[1] = {24}, s4d[4] = {2, 2, 2, 3};
    write_npy("a.npy", ADV_FLOAT64, 2, s46, a, 24);
    write_npy("neg.npy", ADV_FLOAT64, 2, s46, neg, 24);
    write_npy("zero.npy", ADV_FLOAT64, 2, s46, zero, 24);
    write_npy("nan.npy", ADV_FLOAT64, 2, s46, nan_, 24);
    write_npy("b.npy", ADV_FLOAT64, 2, s56, b, 30);
    write_npy("flat.npy", ADV_FLOAT64, 1, s24, a, 24);
    write_npy("four.npy", ADV_FLOAT64, 4, s4d, a, 24);
    char path[512];
    snprintf(path, sizeof path, "%s/junk.npy", cli_dir);
    FILE *f = fopen(path, "w");
    fputs("not a numpy file", f);
    fclose(f);
    const struct {
        const char *args, *word;
    } cases[] = {
        {"--rho0 a.npy --rho1 b.npy", "shape"},
        {"--rho0 a.npy --rho1 flat.npy", "shape"},
        {"--rho0 neg.npy --rho1 a.npy", "neg.npy: element 7 is negative (-0.5)"},
        {"--rho0 a.npy --rho1 nan.npy", "NaN"},
        {"--rho0 a.npy --rho1 zero.npy", "zero"},
        {"--rho0 four.npy --rho1 four.npy", "dimensions"},
        {"--rho0 junk.npy --rho1 a.npy", "junk.npy"},
        {"--rho0 missing.npy --rho1 a.npy", "missing.npy"},
        {"--rho0 a.txt --rho1 a.npy", "a.txt"},
        {"--rho0 a.npy", "--rho1"},
        {"--rho0 a.npy --rho1 a.npy --time-steps 0", "--time-steps"},
        {"--rho0 a.npy --rho1 a.npy --time-steps 100001", "--time-steps: expected an integer in [1, 100000], got '100001'"},
        {"--rho0 a.npy --rho1 a.npy --iters ten", "--iters"},
        {"--rho0 a.npy --rho1 a.npy --gamma 0", "--gamma"},
        {"--rho0 a.npy --rho1 a.npy --tol -1", "--tol"},
        {"--rho0 a.npy --rho1 a.npy --precision f16", "--precision"},
        {"--rho0 a.npy --rho1 a.npy --device tpu", "--device"},
        {"--rho0 a.npy --rho1 a.npy --particles -4", "--particles"},
        {"--rho0 a.npy --rho1 a.npy --out out.csv", "--out"},
        {"--rho0 a.npy --rho1 a.npy --frames f.jpg", "--frames"},
        {"--rho0 a.npy --rho1 a.npy --bogus", "--bogus"},
        {"--rho0 a.npy --rho1 a.npy --particles-out p.npy", "--particles-out needs --particles"},
        {"--rho0 a.npy --rho1 a.npy --out q.npy --particles 5 --particles-out ./q.npy",
         "--out and --particles-out name the same file"},
        {"--rho0 a.npy --rho1 a.npy --particles 100000000 --time-steps 100000",
         "more than this machine's memory"},
        // Last: without the check this one would replace a.npy.
        {"--rho0 a.npy --rho1 a.npy --out ./a.npy", "--rho0 and --out name the same file"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        const int rc = cli_run("bbot", cases[k].args);
        cr_expect_eq(rc, 2, "'%s': exit %d, stderr %s", cases[k].args, rc, cli_slurp("err.txt"));
        expect_one_line(cases[k].word);
        cr_expect(!cli_exists("advect-out"), "'%s' left an output directory", cases[k].args);
        cr_expect(!cli_exists("q.npy") && !cli_exists("p.npy"), "'%s' wrote an output", cases[k].args);
    }
    advio_array back;
    read_npy("a.npy", &back);
    cr_expect(back.count == 24 && ((double *)back.data)[1] == a[1], "the input a.npy was left intact");
    advio_array_free(&back);
    cli_remove_dir();
}

/* Grids wider than a PNG strip of nine full-size tiles can be: the frames are area-averaged
 * to at most 512 pixels a side, and everything is written. */
Test(cli_bbot, wide_grids_get_downsampled_frames) {
    cli_make_dir("bbot");
    enum { N = 8000 };
    double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    write_two_bumps(N, a, b);
    // 9 time faces of 8000 cells side by side would be 72020 pixels wide.
    cr_assert_eq(cli_run("bbot", "--rho0 a.npy --rho1 b.npy --time-steps 8 --iters 3 --device cpu --quiet"), 0,
                 "stderr: %s", cli_slurp("err.txt"));
    advio_array r;
    read_npy("advect-out/bbot.npy", &r);
    cr_expect(r.ndim == 2 && r.shape[0] == 9 && r.shape[1] == N, "the .npy keeps every cell");
    advio_array_free(&r);
    char path[512], msg[256];
    snprintf(path, sizeof path, "%s/advect-out/bbot.png", cli_dir);
    advio_array png;
    cr_assert_eq(advio_gray_read(path, &png, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(png.shape[1], 9 * (512 + 2) + 2, "nine 512-pixel tiles and borders");
    cr_expect_eq(png.shape[0], 64 + 4);
    advio_array_free(&png);

    // 2-D, 2 x 1024 (rows x columns): columns averaged pairwise. A stationary density (rho0
    // = rho1) with a left half three times lighter than the right half: the first tile's
    // gray levels are 255/3 and 255 on either side of the middle.
    enum { C = 1024 };
    for (int i = 0; i < 2 * C; ++i) a[i] = (i % C) < C / 2 ? 1.0 : 3.0;
    const int64_t s2[2] = {2, C};
    write_npy("c.npy", ADV_FLOAT64, 2, s2, a, 2 * C);
    cr_assert_eq(cli_run("bbot", "--rho0 c.npy --rho1 c.npy --time-steps 8 --iters 3 --device cpu --quiet "
                                 "--out c_out.npy --frames c.png"),
                 0, "stderr: %s", cli_slurp("err.txt"));
    snprintf(path, sizeof path, "%s/c.png", cli_dir);
    cr_assert_eq(advio_gray_read(path, &png, msg, sizeof msg), ADV_OK, "%s", msg);
    // Tiles of 2 x 512 cells, zoomed by 128 / 512 -> 1: 9 * 514 + 2 wide, 2 + 4 high.
    cr_assert_eq(png.shape[1], 9 * 514 + 2);
    cr_assert_eq(png.shape[0], 6);
    const double *g = png.data; // [0, 1]
    const int w = (int)png.shape[1];
    for (int y = 2; y < 4; ++y) {
        cr_expect(fabs(g[y * w + 2 + 10] - 1.0 / 3.0) < 0.01, "left half %g", g[y * w + 2 + 10]);
        cr_expect(fabs(g[y * w + 2 + 255] - 1.0 / 3.0) < 0.01, "left edge %g", g[y * w + 2 + 255]);
        cr_expect(fabs(g[y * w + 2 + 256] - 1.0) < 0.01, "right edge %g", g[y * w + 2 + 256]);
        cr_expect(fabs(g[y * w + 2 + 500] - 1.0) < 0.01, "right half %g", g[y * w + 2 + 500]);
    }
    advio_array_free(&png);
    free(a), free(b);
    cli_remove_dir();
}

/* The densities are rescaled to unit mass, so their scale must not matter, in float32 too:
 * 1e39 (beyond float32: "NaN or infinite values") and 1e-50 (below it: "zero everywhere")
 * give the run of the unscaled densities. */
Test(cli_bbot, density_scale_does_not_matter_in_f32) {
    cli_make_dir("bbot");
    enum { N = 16, M = N * N };
    double r0[M], r1[M], big0[M], big1[M], tiny0[M], tiny1[M];
    bump(N, N, 0.35, 0.35, 0.0128, r0);
    bump(N, N, 0.6, 0.55, 0.02, r1);
    for (int k = 0; k < M; ++k) {
        big0[k] = r0[k] * 1e39, big1[k] = r1[k] * 1e39;
        tiny0[k] = r0[k] * 1e-50, tiny1[k] = r1[k] * 1e-50;
    }
    const int64_t shape[2] = {N, N};
    write_npy("a.npy", ADV_FLOAT64, 2, shape, r0, M);
    write_npy("b.npy", ADV_FLOAT64, 2, shape, r1, M);
    write_npy("big0.npy", ADV_FLOAT64, 2, shape, big0, M);
    write_npy("big1.npy", ADV_FLOAT64, 2, shape, big1, M);
    write_npy("tiny0.npy", ADV_FLOAT64, 2, shape, tiny0, M);
    write_npy("tiny1.npy", ADV_FLOAT64, 2, shape, tiny1, M);
    const char *common = "--precision f32 --time-steps 4 --iters 50 --device cpu --quiet";
    char args[512];
    snprintf(args, sizeof args, "--rho0 a.npy --rho1 b.npy %s --out ref.npy --frames ref.png", common);
    cr_assert_eq(cli_run("bbot", args), 0, "stderr: %s", cli_slurp("err.txt"));
    advio_array ref;
    read_npy("ref.npy", &ref);
    const char *scaled[] = {"big", "tiny"};
    for (int s = 0; s < 2; ++s) {
        snprintf(args, sizeof args, "--rho0 %s0.npy --rho1 %s1.npy %s --out %s.npy --frames %s.png",
                 scaled[s], scaled[s], common, scaled[s], scaled[s]);
        cr_assert_eq(cli_run("bbot", args), 0, "%s: stderr %s", scaled[s], cli_slurp("err.txt"));
        char name[32];
        snprintf(name, sizeof name, "%s.npy", scaled[s]);
        advio_array r;
        read_npy(name, &r);
        cr_assert_eq(r.count, ref.count);
        double worst = 0.0, top = 0.0;
        for (size_t k = 0; k < r.count; ++k) {
            worst = fmax(worst, fabs(((double *)r.data)[k] - ((double *)ref.data)[k]));
            top = fmax(top, fabs(((double *)ref.data)[k]));
        }
        // The inputs differ by float32 rounding only (the scale factors are not powers of two).
        cr_expect(worst <= 1e-4 * top, "%s: differs from the unscaled run by %g (max %g)", scaled[s],
                  worst, top);
        advio_array_free(&r);
    }
    advio_array_free(&ref);
    cli_remove_dir();
}
