/* End-to-end tests of `advect poisson`: runs the built executable (ADV_TEST_ADVECT_BIN) in a
 * fresh temporary directory on .npy files written here, and checks the exit codes (0 ok,
 * 2 bad usage/input, with one line on stderr), that failed runs leave no output file, and
 * that the solution written satisfies the stencil of tests/common/poisson_ref.h
 * ((c - Δ_h) u = f to rounding) — independently of the residual the tool prints. */
#include "cli_harness.h"
#include "io.h"
#include "poisson_ref.h"
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
                      const double *data) {
    char path[512], msg[256];
    snprintf(path, sizeof path, "%s/%s", cli_dir, name);
    size_t n = pref_cells(ndim, shape);
    void *buf = tu_to_precision(data, n, p);
    cr_assert_eq(advio_npy_write(path, p, ndim, shape, buf, msg, sizeof msg), ADV_OK, "%s", msg);
    free(buf);
}

static void read_npy(const char *name, advio_array *a) {
    char path[512], msg[256];
    snprintf(path, sizeof path, "%s/%s", cli_dir, name);
    cr_assert_eq(advio_npy_read(path, a, msg, sizeof msg), ADV_OK, "%s", msg);
}

/* A stderr of exactly one line, mentioning `word`. */
static void expect_one_line(const char *word) {
    const char *err = cli_slurp("err.txt");
    const char *nl = strchr(err, '\n');
    cr_assert(nl && nl[1] == '\0', "stderr is not one line: '%s'", err);
    cr_assert(strstr(err, word), "stderr '%s' does not mention '%s'", err, word);
}

Test(cli_poisson, solves_mixed_3d_and_checks_with_stencil) {
    cli_make_dir("poisson");
    const int64_t shape[3] = {6, 7, 5};
    const double h[3] = {0.1, 0.2, 0.3};
    const adv_boundary bc[3] = {ADV_BC_DIRICHLET, ADV_BC_PERIODIC, ADV_BC_NEUMANN};
    const size_t n = 210;
    double f[210], af[210];
    tu_fill_uniform(f, n, -1.0, 1.0, 3);
    write_npy("f.npy", ADV_FLOAT64, 3, shape, f);
    for (int p = 0; p < 2; ++p) {
        char args[512];
        snprintf(args, sizeof args,
                 "--rhs f.npy --bc dirichlet,periodic,neumann --spacing 0.1,0.2,0.3 "
                 "--shift 0.5 --precision %s --device cpu --out sub/u.npy",
                 p ? "f64" : "f32");
        cr_assert_eq(cli_run("poisson", args), 0, "stderr: %s", cli_slurp("err.txt"));
        advio_array u;
        read_npy("sub/u.npy", &u);
        cr_assert_eq(u.dtype, p ? ADV_FLOAT64 : ADV_FLOAT32);
        cr_assert_eq(u.ndim, 3);
        for (int a = 0; a < 3; ++a) cr_assert_eq(u.shape[a], shape[a]);
        cr_assert_eq(advio_array_convert(&u, ADV_FLOAT64, NULL, 0), ADV_OK);
        pref_apply(3, shape, h, bc, 0.5, u.data, af);
        // The input is rounded to float32 in f32 mode, and u is stored rounded: the residual
        // of a float32 solution is about κ u32 (see poisson_ref.h).
        const double tol = p ? 1e-12 : pref_tolerance(3, shape, h, bc, 0.5, TU_U32);
        const double err = pref_rel_err(af, f, n);
        cr_assert(err <= tol, "%s: residual %g > %g", p ? "f64" : "f32", err, tol);
        advio_array_free(&u);
    }
    cli_remove_dir();
}

Test(cli_poisson, json_summary_and_zero_mean_rules) {
    cli_make_dir("poisson");
    const int64_t shape[2] = {8, 9};
    double f[72];
    tu_fill_uniform(f, 72, -1.0, 1.0, 4);
    for (int i = 0; i < 72; ++i) f[i] += 0.3; // nonzero mean
    write_npy("f.npy", ADV_FLOAT32, 2, shape, f);
    // Neumann, c = 0: nonzero mean is bad input, and nothing is written.
    cr_assert_eq(cli_run("poisson", "--rhs f.npy --bc neumann --out u.npy"), 2);
    expect_one_line("mean");
    cr_assert(!cli_exists("u.npy"), "output written on failure");
    // --project-mean where the system is not singular (a Dirichlet axis, or c > 0) would be
    // ignored: refused, nothing written.
    cr_assert_eq(cli_run("poisson", "--rhs f.npy --bc neumann,dirichlet --project-mean --out u.npy"), 2);
    expect_one_line("--project-mean applies only");
    cr_assert(!cli_exists("u.npy"), "output written on failure");
    cr_assert_eq(cli_run("poisson", "--rhs f.npy --shift 0.5 --project-mean --out u.npy"), 2);
    expect_one_line("not singular");
    cr_assert(!cli_exists("u.npy"), "output written on failure");
    // --project-mean: the zero-mean solution of f - mean(f) (in f64 on request: f.npy is
    // float32, which alone would mean an f32 solve).
    cr_assert_eq(cli_run("poisson", "--rhs f.npy --bc neumann --project-mean --precision f64 --out u.npy --json"),
                 0, "%s", cli_slurp("err.txt"));
    const char *out = cli_slurp("out.txt");
    cr_assert(strstr(out, "\"residual\":") && strstr(out, "\"time_s\":") &&
                  strstr(out, "\"device\": \"cpu\"") && strstr(out, "\"precision\": \"f64\""),
              "json: %s", out);
    cr_assert(out[0] == '{' && strchr(out, '}'), "not a JSON object: %s", out);
    // The reported residual is the stencil's, against f minus its mean: rounding only.
    const double res_json = tu_json_number(out, "residual");
    cr_expect(res_json >= 0 && res_json < 1e-12, "reported residual %g", res_json);
    // The text summary prints the same number.
    cr_assert_eq(cli_run("poisson", "--rhs f.npy --bc neumann --project-mean --precision f64 --out u3.npy"), 0);
    char want[64];
    snprintf(want, sizeof want, "relative residual %.3g,", res_json);
    cr_expect(strstr(cli_slurp("out.txt"), want) != NULL, "summary '%s' lacks '%s'", cli_slurp("out.txt"), want);
    advio_array u;
    read_npy("u.npy", &u);
    cr_assert_eq(u.dtype, ADV_FLOAT64, "--precision f64 writes f64");
    const double h[2] = {1.0, 1.0};
    const adv_boundary bc[2] = {ADV_BC_NEUMANN, ADV_BC_NEUMANN};
    double fr[72], au[72], mean = 0.0;
    void *stored = tu_to_precision(f, 72, ADV_FLOAT32); // f as the tool read it
    tu_from_precision(fr, stored, 72, ADV_FLOAT32);
    free(stored);
    for (int i = 0; i < 72; ++i) mean += fr[i];
    for (int i = 0; i < 72; ++i) fr[i] -= mean / 72.0;
    pref_apply(2, shape, h, bc, 0.0, u.data, au);
    cr_assert(pref_rel_err(au, fr, 72) < 1e-12, "residual %g", pref_rel_err(au, fr, 72));
    double um = 0.0;
    for (int i = 0; i < 72; ++i) um += ((double *)u.data)[i];
    cr_assert(fabs(um) < 1e-12, "solution mean %g", um / 72);
    advio_array_free(&u);
    // A Dirichlet axis makes any mean fine.
    cr_assert_eq(cli_run("poisson", "--rhs f.npy --bc neumann,dirichlet --out u2.npy --quiet"), 0);
    cr_assert_eq(cli_slurp("out.txt")[0], '\0', "--quiet printed something");
    cli_remove_dir();
}

/* The precision follows the input's dtype: a float32 right-hand side whose mean was removed
 * before rounding (mean ~1e-8 relative, within float32's zero-mean tolerance, not float64's)
 * is solved in f32 and written as float32; a float64 one in f64. Forcing f64 on it is the
 * mean error, told in the CLI's terms (--project-mean), not the library's constants. */
Test(cli_poisson, precision_follows_the_input_dtype) {
    cli_make_dir("poisson");
    const int64_t shape[2] = {8, 9};
    double f[72], mean = 0.0, sum = 0.0, abs_sum = 0.0;
    tu_fill_uniform(f, 72, -1.0, 1.0, 11);
    for (int i = 0; i < 72; ++i) mean += f[i] / 72;
    for (int i = 0; i < 72; ++i) f[i] -= mean;
    write_npy("f32.npy", ADV_FLOAT32, 2, shape, f);
    write_npy("f64.npy", ADV_FLOAT64, 2, shape, f);
    tu_round_to_precision(f, 72, ADV_FLOAT32);
    for (int i = 0; i < 72; ++i) sum += f[i], abs_sum += fabs(f[i]);
    cr_assert(fabs(sum) > 1e-10 * abs_sum, "the test needs a float32 mean beyond the f64 tolerance");
    cr_assert_eq(cli_run("poisson", "--rhs f32.npy --out u32.npy --json"), 0, "%s", cli_slurp("err.txt"));
    cr_assert(strstr(cli_slurp("out.txt"), "\"precision\": \"f32\""), "%s", cli_slurp("out.txt"));
    advio_array u;
    read_npy("u32.npy", &u);
    cr_assert_eq(u.dtype, ADV_FLOAT32, "a float32 input gives a float32 solution");
    advio_array_free(&u);
    cr_assert_eq(cli_run("poisson", "--rhs f64.npy --out u64.npy --json"), 0, "%s", cli_slurp("err.txt"));
    cr_assert(strstr(cli_slurp("out.txt"), "\"precision\": \"f64\""), "%s", cli_slurp("out.txt"));
    read_npy("u64.npy", &u);
    cr_assert_eq(u.dtype, ADV_FLOAT64);
    advio_array_free(&u);
    cr_assert_eq(cli_run("poisson", "--rhs f32.npy --precision f64 --out u.npy"), 2);
    expect_one_line("--project-mean");
    cr_assert(!strstr(cli_slurp("err.txt"), "ADV_"), "library names in the message: %s", cli_slurp("err.txt"));
    cr_assert(!cli_exists("u.npy"));
    cli_remove_dir();
}

Test(cli_poisson, embedded_example) {
    cli_make_dir("poisson");
    cr_assert_eq(cli_run("poisson", ""), 0, "%s", cli_slurp("err.txt"));
    advio_array u;
    read_npy("advect-out/poisson.npy", &u);
    cr_assert_eq(u.ndim, 2);
    cr_assert_eq(u.shape[0], 128);
    cr_assert_eq(u.shape[1], 128);
    cr_assert(strstr(cli_slurp("out.txt"), "residual"), "summary: %s", cli_slurp("out.txt"));
    advio_array_free(&u);
    // Its residual, by the stencil with Neumann ghosts, is rounding (2.8e-13 measured).
    cr_assert_eq(cli_run("poisson", "--json"), 0, "%s", cli_slurp("err.txt"));
    const double res = tu_json_number(cli_slurp("out.txt"), "residual");
    cr_expect(res >= 0 && res < 1e-10, "embedded example: residual %g", res);
    cli_remove_dir();
}

Test(cli_poisson, bad_usage_and_input) {
    cli_make_dir("poisson");
    const int64_t s3[3] = {3, 4, 5}, s5[5] = {1, 2, 1, 2, 1}, s1[1] = {6};
    double f[60];
    tu_fill_uniform(f, 60, -1.0, 1.0, 5);
    write_npy("f.npy", ADV_FLOAT64, 3, s3, f);
    write_npy("f5.npy", ADV_FLOAT64, 5, s5, f);
    f[2] = NAN;
    write_npy("nan.npy", ADV_FLOAT64, 1, s1, f);
    f[2] = 1e39; // finite, beyond float32: a plain cast made it Inf, reported as "NaN or Inf"
    write_npy("big.npy", ADV_FLOAT64, 1, s1, f);
    const int64_t s0[1] = {0};
    write_npy("empty.npy", ADV_FLOAT64, 1, s0, f);
    char path[512];
    snprintf(path, sizeof path, "%s/plain.txt", cli_dir);
    FILE *pt = fopen(path, "w");
    cr_assert_not_null(pt);
    fclose(pt);
    snprintf(path, sizeof path, "%s/garbage.npy", cli_dir);
    FILE *g = fopen(path, "wb");
    cr_assert_not_null(g);
    fputs("this is not a npy file", g);
    fclose(g);
    const struct {
        const char *args, *word;
    } cases[] = {
        {"--rhs f.npy --shift 1 --bc neumann,dirichlet --out u.npy", "--bc"},
        {"--rhs f.npy --shift 1 --bc neumann,robin,periodic --out u.npy", "--bc"},
        {"--rhs f.npy --shift 1 --bc neumann,neumann,neumann,neumann,neumann,neumann --out u.npy",
         "--bc has more than 4 entries; give 1 or 3 (one per axis)"},
        {"--rhs f.npy --shift 1 --spacing 1,1,1,1,1,1 --out u.npy", "--spacing has more than 4 entries"},
        {"--rhs f.npy --shift 1 --spacing 1,2 --out u.npy", "--spacing has 2 entries; give 1 or 3"},
        {"--rhs f.npy --shift 1 --spacing 0 --out u.npy", "--spacing"},
        {"--rhs f.npy --shift 1 --spacing nan --out u.npy", "--spacing"},
        {"--rhs f.npy --shift -1 --out u.npy", "--shift"},
        {"--rhs f.npy --shift 1 --precision f16 --out u.npy", "--precision"},
        {"--rhs f.npy --shift 1 --device tpu --out u.npy", "--device"},
        {"--rhs f5.npy --shift 1 --out u.npy", "dimensions"},
        {"--rhs nan.npy --shift 1 --out u.npy", "NaN"},
        {"--rhs big.npy --shift 1 --precision f32 --out u.npy",
         "value 1e+39 (element 2) exceeds the float32 range; use --precision f64"},
        {"--rhs missing.npy --shift 1 --out u.npy", "missing.npy"},
        {"--rhs garbage.npy --shift 1 --out u.npy", "garbage.npy"},
        {"--rhs f.npy --shift 1 --frobnicate --out u.npy", "frobnicate"},
        {"--out u.npy --rhs", "--rhs"},
        {"--rhs f.npy --shift 1 --out u.png", "--out u.png"},
        {"--out u.png", "must end in .npy"},
        {"--rhs f.npy --shift 1 --out ./f.npy", "--rhs and --out name the same file"},
        {"--rhs empty.npy --shift 1 --out u.npy", "need a non-empty array of 1 to 4 dimensions"},
        // A regular file where a directory is needed: bad input (2), not an internal failure.
        {"--rhs f.npy --shift 1 --out plain.txt/u.npy", "'plain.txt' is not a directory"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        cr_assert_eq(cli_run("poisson", cases[k].args), 2, "'%s': stderr %s", cases[k].args, cli_slurp("err.txt"));
        expect_one_line(cases[k].word);
        cr_assert(!cli_exists("u.npy") && !cli_exists("u.png") && !cli_exists("advect-out"),
                  "'%s' wrote an output", cases[k].args);
    }
    advio_array back;
    read_npy("f.npy", &back);
    cr_assert(back.ndim == 3 && back.dtype == ADV_FLOAT64 && ((double *)back.data)[7] == f[7],
              "the input f.npy was left intact");
    advio_array_free(&back);
    // --device cuda: 0 with a usable GPU, otherwise 2 (backend unavailable), never 1.
    int count = 0;
    adv_cuda_device_count(&count, NULL, 0);
    cr_assert_eq(cli_run("poisson", "--rhs f.npy --shift 1 --device cuda --out u.npy"), count > 0 ? 0 : 2, "%s",
                 cli_slurp("err.txt"));
    cr_assert_eq(cli_exists("u.npy"), count > 0);
    cli_remove_dir();
}

/* Output names up to the file system's limit (the staged file's name was 12 bytes longer
 * than the target's, so names of NAME_MAX - 11 bytes and more were refused). */
Test(cli_poisson, longest_output_name) {
    cli_make_dir("poisson");
    const int64_t shape[1] = {2};
    const double f[2] = {1.0, -1.0};
    write_npy("f.npy", ADV_FLOAT64, 1, shape, f);
    const long max = pathconf(cli_dir, _PC_NAME_MAX);
    cr_assert(max >= 16 && max < 4096, "NAME_MAX %ld", max);
    char name[4096], args[4200];
    memset(name, 'a', (size_t)max - 4);
    strcpy(name + max - 4, ".npy");
    snprintf(args, sizeof args, "--rhs f.npy --out %s --quiet", name);
    cr_assert_eq(cli_run("poisson", args), 0, "stderr: %s", cli_slurp("err.txt"));
    cr_expect(cli_exists(name));
    cli_remove_dir();
}
