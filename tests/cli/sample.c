/* End-to-end tests of `advect sample`: runs the built executable (ADV_TEST_ADVECT_BIN) in a
 * fresh temporary directory and checks exit codes (0 ok, 2 bad usage/input with exactly one
 * line on stderr), that failed runs leave no file at all, the outputs' formats and shapes
 * (read back with host/io), the --json keys (parsed by Python's json module when python3 is
 * present), trajectories, checkpoint/resume, determinism, the progress bar on a
 * pseudo-terminal (and its absence with --quiet or off a terminal), and — independently of the summary
 * the tool prints — that the samples of the exact empirical field sit on the data points
 * (math.md §2: the field memorises its data as t -> 1). */
#define _GNU_SOURCE
#include "io.h"
#include "test_util.h"

#include <advect/advect.h>
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ADV_TEST_ADVECT_BIN
#error "ADV_TEST_ADVECT_BIN must name the advect executable"
#endif

/* base/ holds in/ (inputs written by the tests), w/ (the tool's working directory, where
 * outputs go) and the captured stdout/stderr, so "no output file" means "w/ stays empty". */
static char base[256], work[300], in_dir[300];
static char out_text[1 << 16], err_text[1 << 16];
static char msg[512];

static void setup(void) {
    snprintf(base, sizeof base, "%s/advect-cli-sample-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(base));
    snprintf(work, sizeof work, "%s/w", base);
    snprintf(in_dir, sizeof in_dir, "%s/in", base);
    cr_assert_eq(mkdir(work, 0777), 0);
    cr_assert_eq(mkdir(in_dir, 0777), 0);
}

static void teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    cr_expect_eq(system(cmd), 0);
}

static void slurp(const char *path, char *buf, size_t size) {
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Runs `advect sample <args>` in work/; returns the exit code. */
static int run(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' sample %s >'%s/stdout' 2>'%s/stderr' </dev/null", work,
             ADV_TEST_ADVECT_BIN, args, base, base);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    char p[512];
    snprintf(p, sizeof p, "%s/stdout", base);
    slurp(p, out_text, sizeof out_text);
    snprintf(p, sizeof p, "%s/stderr", base);
    slurp(p, err_text, sizeof err_text);
    return WEXITSTATUS(st);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static const char *wpath(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", work, name);
    return p[k];
}

static const char *ipath(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", in_dir, name);
    return p[k];
}

static void read_npy(const char *path, advio_array *a) {
    cr_assert_eq(advio_npy_read(path, a, msg, sizeof msg), ADV_OK, "%s", msg);
}

/* Mean distance of the rows of s to their nearest row of data, and the fraction within tol. */
static void nearest(const advio_array *s, const double *data, int64_t nd, double tol, double *mean,
                    double *frac) {
    int64_t n = s->shape[0], d = s->shape[1];
    double sum = 0;
    int64_t on = 0;
    for (int64_t k = 0; k < n; ++k) {
        double best = INFINITY;
        for (int64_t i = 0; i < nd; ++i) {
            double acc = 0;
            for (int64_t j = 0; j < d; ++j) {
                double v = s->dtype == ADV_FLOAT64 ? ((double *)s->data)[k * d + j] : ((float *)s->data)[k * d + j];
                double diff = v - data[i * d + j];
                acc += diff * diff;
            }
            if (acc < best) best = acc;
        }
        sum += sqrt(best);
        on += sqrt(best) <= tol;
    }
    *mean = sum / (double)n;
    *frac = (double)on / (double)n;
}

/* A small 2-D dataset: 50 points on a circle of radius 2, as .npy (f64). */
static void write_circle(const char *name, int64_t n) {
    double *x = malloc(sizeof(double) * 2 * (size_t)n);
    for (int64_t i = 0; i < n; ++i) {
        x[2 * i] = 2 * cos(2 * 3.141592653589793 * (double)i / (double)n);
        x[2 * i + 1] = 2 * sin(2 * 3.141592653589793 * (double)i / (double)n);
    }
    int64_t shape[2] = {n, 2};
    cr_assert_eq(advio_npy_write(ipath(name), ADV_FLOAT64, 2, shape, x, msg, sizeof msg), ADV_OK);
    free(x);
}

static void write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static int have_python_json(void) {
    return system("python3 -c 'import json' >/dev/null 2>&1") == 0;
}

/* Checks that stdout is one JSON object with every documented key. */
static void check_json_keys(void) {
    static const char *const keys[] = {"n", "d", "method", "steps", "device", "precision", "time_s",
                                       "particles_per_s", "mean_nn_distance", "fraction_on_data",
                                       "evaluations", "out"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; ++k) {
        char needle[64];
        snprintf(needle, sizeof needle, "\"%s\": ", keys[k]);
        cr_expect(strstr(out_text, needle) != NULL, "JSON lacks key %s: %s", keys[k], out_text);
    }
    cr_expect(out_text[0] == '{' && strstr(out_text, "}\n") == out_text + strlen(out_text) - 2,
              "one JSON object on one line: %s", out_text);
    if (have_python_json()) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); "
                 "ks=[\"n\",\"d\",\"method\",\"steps\",\"device\",\"precision\",\"time_s\",\"particles_per_s\","
                 "\"mean_nn_distance\",\"fraction_on_data\",\"evaluations\",\"out\"]; "
                 "sys.exit(0 if all(k in o for k in ks) and isinstance(o[\"n\"], int) and "
                 "isinstance(o[\"time_s\"], float) else 1)' '%s/stdout'",
                 base);
        cr_expect_eq(system(cmd), 0, "python3 json.load rejects or lacks keys: %s", out_text);
    }
}

/* A one-line message "advect sample: ..." naming `needle`. */
static void check_error(const char *needle) {
    size_t len = strlen(err_text);
    cr_expect(len > 0 && err_text[len - 1] == '\n' && strchr(err_text, '\n') == err_text + len - 1,
              "exactly one line on stderr: '%s'", err_text);
    cr_expect(strncmp(err_text, "advect sample: ", 15) == 0, "prefix: '%s'", err_text);
    cr_expect(strstr(err_text, needle) != NULL, "stderr '%s' lacks '%s'", err_text, needle);
}

TestSuite(cli_sample, .init = setup, .fini = teardown, .timeout = 120);

/* The bare command: the embedded default. It must take a few seconds on a CPU (about 1.5 s
 * of CPU time in a release build); sanitizer builds run the same work some 20x slower, so the
 * wall-clock bound is only checked without them. */
Test(cli_sample, default_run, .timeout = 400) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(run(""), 0, "stderr: %s", err_text);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
#if !ADV_TEST_SANITIZED
    cr_expect(secs < 30, "the default run took %.1f s", secs);
#else
    (void)secs;
#endif
    advio_array s;
    read_npy(wpath("advect-out/samples.npy"), &s);
    cr_expect_eq(s.dtype, ADV_FLOAT32);
    cr_expect_eq(s.ndim, 2);
    cr_expect_eq(s.shape[0], 20000);
    cr_expect_eq(s.shape[1], 2);
    cr_expect(advio_array_all_finite(&s, NULL));
    advio_array png;
    cr_assert_eq(advio_gray_read(wpath("advect-out/samples.png"), &png, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(png.shape[0], 800);
    cr_expect_eq(png.shape[1], 800);
    advio_array_free(&png);
    cr_expect(strstr(out_text, "particles/s") && strstr(out_text, "on a data point") &&
                  strstr(out_text, "checkerboard"),
              "summary: %s", out_text);
    cr_expect_eq(err_text[0], 0, "nothing on stderr when it is not a terminal: %s", err_text);
    // The checkerboard occupies [-4, 4]^2 in squares of side 2: every sample of the exact
    // field must land in a dark square (x and y bins of different parity... as generated).
    int64_t inside = 0;
    for (int64_t k = 0; k < 20000; ++k) {
        double x = ((float *)s.data)[2 * k] / 2, y = ((float *)s.data)[2 * k + 1] / 2;
        int in = x >= -2 && x <= 2 && y >= -2 && y <= 2 &&
                 ((int)floor(x) + (int)floor(y) + 4) % 2 == 0;
        inside += in;
    }
    cr_expect(inside > 19800, "%lld of 20000 samples inside the checkerboard's squares", (long long)inside);
    advio_array_free(&s);
    cr_expect_eq(count_entries(wpath("advect-out")), 2, "exactly the two outputs, no temporaries");
}

/* Every method, on a small problem, with --json; the samples must sit on the data points. */
Test(cli_sample, every_method) {
    write_circle("c.npy", 50);
    static const char *const methods[] = {"euler", "heun", "midpoint", "rk4", "dopri5", "ddim", "dpm2m", "sde"};
    advio_array data;
    read_npy(ipath("c.npy"), &data);
    for (size_t m = 0; m < 8; ++m) {
        char args[1024];
        snprintf(args, sizeof args, "--data '%s' --n 400 --steps 40 --method %s --json --out o_%s.npy",
                 ipath("c.npy"), methods[m], methods[m]);
        cr_assert_eq(run(args), 0, "%s: %s", methods[m], err_text);
        check_json_keys();
        char needle[64];
        snprintf(needle, sizeof needle, "\"method\": \"%s\"", methods[m]);
        cr_expect(strstr(out_text, needle), "%s", out_text);
        cr_expect(strstr(out_text, "\"n\": 400, \"d\": 2"), "%s", out_text);
        char name[64];
        snprintf(name, sizeof name, "o_%s.npy", methods[m]);
        advio_array s;
        read_npy(wpath(name), &s);
        cr_expect_eq(s.shape[0], 400);
        double mean, frac;
        // Points are 0.25 apart on the circle; the exact field drives samples onto them. With
        // 40 steps, the posterior is one-hot well before t = 1 and the last (exponential) step
        // lands on the point: the distance is f32 rounding, far below the 1e-3 tolerance.
        nearest(&s, data.data, 50, 1e-3, &mean, &frac);
        cr_expect(frac > 0.95, "%s: only %.1f%% of samples on a data point (mean distance %g)",
                  methods[m], 100 * frac, mean);
        advio_array_free(&s);
        snprintf(name, sizeof name, "o_%s.png", methods[m]);
        cr_expect_eq(access(wpath(name), F_OK), 0, "default plot path next to --out");
    }
    advio_array_free(&data);
}

Test(cli_sample, bad_inputs_leave_nothing) {
    write_circle("ok.npy", 20);
    // Corrupt and invalid files.
    char *buf;
    size_t size;
    cr_assert_eq(advio_read_file(ipath("ok.npy"), &buf, &size, msg, sizeof msg), ADV_OK);
    write_file(ipath("cut.npy"), buf, size - 5);
    free(buf);
    double nan_data[4] = {0, 1, NAN, 2};
    int64_t s22[2] = {2, 2}, s4[1] = {4};
    cr_assert_eq(advio_npy_write(ipath("nan.npy"), ADV_FLOAT64, 2, s22, nan_data, msg, sizeof msg), ADV_OK);
    double one_d[4] = {0, 1, 2, 3};
    cr_assert_eq(advio_npy_write(ipath("vec.npy"), ADV_FLOAT64, 1, s4, one_d, msg, sizeof msg), ADV_OK);
    double huge[4] = {0, 1, 1e300, 2}; // finite in float64, beyond float32 (the default)
    cr_assert_eq(advio_npy_write(ipath("huge.npy"), ADV_FLOAT64, 2, s22, huge, msg, sizeof msg), ADV_OK);
    write_file(ipath("nan.csv"), "x,y\n1,2\nnan,3\n", 14);
    write_file(ipath("ragged.csv"), "1,2\n3\n", 6);
    int gpus = 0;
    adv_cuda_device_count(&gpus, NULL, 0);
    static const struct {
        const char *args; /* %s = input directory */
        const char *needle;
    } cases[] = {
        {"--data %s/missing.npy", "missing.npy"},
        {"--data %s/cut.npy", "truncated"},
        {"--data %s/nan.npy", "non-finite"},
        {"--data %s/nan.csv", "non-finite"},
        {"--data %s/ragged.csv", "ragged"},
        {"--data %s/vec.npy", "2-D"},
        {"--data %s/ok.npy --bogus", "unknown option '--bogus'"},
        {"--data %s/ok.npy extra", "unexpected argument 'extra'"},
        {"--data %s/ok.npy --n 0", "--n"},
        {"--data %s/ok.npy --n -5", "--n"},
        {"--data %s/ok.npy --n 1e3", "--n"},
        {"--data %s/ok.npy --n 99999999999999999999", "--n"},
        {"--data %s/ok.npy --steps 1.5", "--steps"},
        {"--data %s/ok.npy --sigma abc", "--sigma"},
        {"--data %s/ok.npy --sigma nan", "--sigma"},
        {"--data %s/ok.npy --sigma 0", "--sigma"},
        {"--data %s/ok.npy --sigma=1x", "--sigma"},
        {"--data %s/ok.npy --t-start 2", "--t-start"},
        {"--data %s/ok.npy --t-start 0.5 --t-end 0.5", "smaller"},
        {"--data %s/ok.npy --method rk5", "--method"},
        {"--data %s/ok.npy --method euler --eta 0.5", "--eta"},
        {"--data %s/ok.npy --atol 1e-3", "dopri5"},
        {"--data %s/ok.npy --method sde --t-start 0", "t-start"},
        {"--data %s/ok.npy --toy moons", "either --data or --toy"},
        {"--toy squares", "--toy"},
        {"--data %s/ok.npy --image-shape 3x3", "--image-shape"},
        {"--data %s/ok.npy --save-every 2", "--trajectory"},
        {"--data %s/ok.npy --plot same.png --checkpoint same.png", "same file"},
        {"--data %s/ok.npy --n", "needs a value"},
        {"--data %s/ok.npy --json=yes", "takes no value"},
        {"--data %s/ok.npy --device gpu", "--device"},
        {"--data %s/ok.npy --precision f16", "--precision"},
        {"--data %s/ok.npy --resume %s/ok.npy", "--resume"},
        {"--data %s/ok.npy --seed -1", "--seed"},
        {"--data %s/ok.npy --seed 18446744073709551616",
         "--seed: expected an integer in [0, 18446744073709551615], got '18446744073709551616'"},
        {"--data %s/ok.npy --image-shape 65537x1", "--image-shape: expected HxW with positive integers"},
        {"--data %s/ok.npy --trajectory t.npy --resume %s/x.ckpt", "--trajectory cannot be combined with --resume"},
        {"--data %s/ok.npy --steps 0", "--steps"},
        // Sizes beyond the machine: bad input, not an internal out-of-memory failure.
        {"--data %s/ok.npy --n 99999999999999999", "--n 99999999999999999: "},
        {"--data %s/huge.npy", "exceeds the float32 range; use --precision f64"},
        // .npy outputs must be named so.
        {"--data %s/ok.npy --out x.png", "--out x.png"},
        {"--data %s/ok.npy --trajectory t.png", "--trajectory t.png"},
        {"--data %s/ok.npy --plot p.jpg", "--plot p.jpg"},
        {"--data %s/ok.npy --trajectory t.npy --steps 10 --save-every 3", "--save-every must divide --steps"},
        // One file under two names, before it exists; the default plot path; the checkpoint
        // against the input data and --resume against the outputs.
        {"--data %s/ok.npy --out r/x.npy --trajectory ./r/x.npy", "--out and --trajectory name the same file"},
        {"--data %s/ok.npy --out q/a.npy --checkpoint q/a.png", "--plot and --checkpoint name the same file"},
        {"--data %s/ok.npy --checkpoint %s/./ok.npy", "--data and --checkpoint name the same file"},
        {"--data %s/ok.npy --out s.npy --resume ./s.npy", "--resume and --out name the same file"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        char args[1024];
        snprintf(args, sizeof args, cases[c].args, in_dir, in_dir);
        int code = run(args);
        cr_expect_eq(code, 2, "'%s': exit %d, stderr '%s'", args, code, err_text);
        check_error(cases[c].needle);
        cr_expect_eq(count_entries(work), 0, "'%s' left files behind", args);
        cr_expect_eq(out_text[0], 0, "'%s' printed on stdout", args);
    }
    if (gpus == 0) {
        char args[512];
        snprintf(args, sizeof args, "--data %s/ok.npy --device cuda", in_dir);
        cr_expect_eq(run(args), 2, "--device cuda without a GPU: %s", err_text);
        check_error("cuda");
        cr_expect_eq(count_entries(work), 0);
    }
    // An output that cannot be written (a directory is in the way): exit 2, nothing left.
    cr_assert_eq(mkdir(wpath("blocked.npy"), 0777), 0);
    char args[512];
    snprintf(args, sizeof args, "--data %s/ok.npy --n 10 --steps 5 --out blocked.npy", in_dir);
    cr_expect_eq(run(args), 2, "%s", err_text);
    check_error("blocked.npy");
    cr_expect_eq(count_entries(work), 1, "only the directory that was already there");
    cr_expect_eq(access(wpath("blocked.png"), F_OK), -1, "no partial outputs");
}

Test(cli_sample, outputs_trajectory_and_determinism) {
    write_circle("c.npy", 30);
    char args[1024];
    snprintf(args, sizeof args,
             "--data %s/c.npy --n 100 --steps 20 --method rk4 --precision f64 --out a/s.npy --plot p/pic.png "
             "--trajectory t/traj.npy --save-every 5 --quiet --seed 7",
             in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect_eq(out_text[0], 0, "--quiet prints nothing: %s", out_text);
    advio_array s, t;
    read_npy(wpath("a/s.npy"), &s);
    cr_expect_eq(s.dtype, ADV_FLOAT64);
    read_npy(wpath("t/traj.npy"), &t);
    cr_assert_eq(t.ndim, 3);
    cr_expect_eq(t.shape[0], 5, "1 + 20/5 snapshots");
    cr_expect_eq(t.shape[1], 100);
    cr_expect_eq(t.shape[2], 2);
    // The last snapshot is the final state, bit for bit; the first is the Gaussian source.
    cr_expect_eq(memcmp((double *)t.data + 4 * 200, s.data, 200 * sizeof(double)), 0);
    double m2 = 0;
    for (int i = 0; i < 200; ++i) m2 += ((double *)t.data)[i] * ((double *)t.data)[i];
    m2 /= 200; // E|x_j|^2 = sigma^2 = 1; with 200 values the standard error is ~0.1
    cr_expect(m2 > 0.6 && m2 < 1.5, "snapshot 0 should be N(0, I) noise: mean square %g", m2);
    cr_expect_eq(access(wpath("p/pic.png"), F_OK), 0);
    // Same seed, same bits; another seed, other samples.
    snprintf(args, sizeof args, "--data %s/c.npy --n 100 --steps 20 --method rk4 --precision f64 --out b.npy --seed 7",
             in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    advio_array s2;
    read_npy(wpath("b.npy"), &s2);
    cr_expect_eq(memcmp(s.data, s2.data, 200 * sizeof(double)), 0, "same seed, different samples");
    advio_array_free(&s2);
    snprintf(args, sizeof args, "--data %s/c.npy --n 100 --steps 20 --method rk4 --precision f64 --out c.npy --seed 8",
             in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    read_npy(wpath("c.npy"), &s2);
    cr_expect_neq(memcmp(s.data, s2.data, 200 * sizeof(double)), 0, "the seed must matter");
    advio_array_free(&s2);
    advio_array_free(&s);
    advio_array_free(&t);
    // The default --save-every divides --steps (25: every step), so the trajectory ends with
    // the final state; steps/10 = 2 would stop at step 24.
    snprintf(args, sizeof args, "--data %s/c.npy --n 20 --steps 25 --method euler --precision f64 --out e.npy "
             "--trajectory e_traj.npy --quiet", in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    read_npy(wpath("e.npy"), &s);
    read_npy(wpath("e_traj.npy"), &t);
    cr_assert_eq(t.shape[0], 26, "1 + 25/1 snapshots, got %lld", (long long)t.shape[0]);
    cr_expect_eq(memcmp((double *)t.data + 25 * 40, s.data, 40 * sizeof(double)), 0,
                 "the last snapshot is the final state");
    advio_array_free(&s);
    advio_array_free(&t);
}

Test(cli_sample, checkpoint_then_resume_is_identical) {
    write_circle("c.npy", 40);
    char args[1024];
    const char *common = "--n 300 --steps 30 --method sde --seed 3 --quiet";
    snprintf(args, sizeof args, "--data %s/c.npy %s --out full.npy --checkpoint run.ckpt", in_dir, common);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_eq(access(wpath("run.ckpt"), F_OK), 0, "a checkpoint was written during the run");
    snprintf(args, sizeof args, "--data %s/c.npy %s --out resumed.npy --resume run.ckpt", in_dir, common);
    cr_assert_eq(run(args), 0, "%s", err_text);
    advio_array a, b;
    read_npy(wpath("full.npy"), &a);
    read_npy(wpath("resumed.npy"), &b);
    cr_expect_eq(memcmp(a.data, b.data, a.count * 4), 0, "resuming must reproduce the run bit for bit");
    advio_array_free(&a);
    advio_array_free(&b);
    // --resume may be the --checkpoint that the continued run keeps updating.
    snprintf(args, sizeof args, "--data %s/c.npy %s --out again.npy --resume run.ckpt --checkpoint ./run.ckpt",
             in_dir, common);
    cr_assert_eq(run(args), 0, "%s", err_text);
    // A checkpoint in a directory that does not exist yet: made like the outputs' directories.
    snprintf(args, sizeof args, "--data %s/c.npy %s --out n.npy --checkpoint new/dir/run.ckpt",
             in_dir, common);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect_eq(access(wpath("new/dir/run.ckpt"), F_OK), 0);
    // A checkpoint of other options is refused (exit 2), leaving no output.
    snprintf(args, sizeof args, "--data %s/c.npy --n 300 --steps 31 --method sde --seed 3 --out x.npy --resume run.ckpt",
             in_dir);
    cr_expect_eq(run(args), 2, "%s", err_text);
    check_error("--resume");
    cr_expect_eq(access(wpath("x.npy"), F_OK), -1);
    // So is one of another particle count: bad input (2), naming both counts.
    snprintf(args, sizeof args, "--data %s/c.npy --n 200 --steps 30 --method sde --seed 3 --out x.npy --resume run.ckpt",
             in_dir);
    cr_expect_eq(run(args), 2, "%s", err_text);
    check_error("holds 300 particles, not 200");
    cr_expect_eq(access(wpath("x.npy"), F_OK), -1);
}

/* A number printed as `"key": value` in the JSON summary on stdout. */
static double json_number(const char *key) { return tu_json_number(out_text, key); }

/* The documented defaults (--help), values at the ends of each option's range, and what the
 * summaries report: DOPRI5's own step count, the data-distance tolerance (1e-3 of the data's
 * radius, sqrt of the total variance: 2 for a circle of radius 2) and the subset note (the
 * distances are estimated on 20000 samples at most). */
Test(cli_sample, defaults_range_ends_and_summaries, .timeout = 300) {
    write_circle("c.npy", 50);
    char args[1024];
    snprintf(args, sizeof args, "--data %s/c.npy --n 10 --json", in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    const char *defaults[] = {"\"method\": \"dpm2m\"", "\"steps\": 20,", "\"grid\": \"karras\"",
                              "\"schedule\": \"linear\"", "\"sigma\": 1,", "\"t_start\": 0,", "\"t_end\": 1,",
                              "\"seed\": 0,", "\"precision\": \"f32\"", "\"device\": \"cpu\""};
    for (size_t k = 0; k < sizeof defaults / sizeof defaults[0]; ++k)
        cr_expect(strstr(out_text, defaults[k]) != NULL, "default %s missing: %s", defaults[k], out_text);
    const double tol = json_number("on_data_tolerance");
    cr_expect(fabs(tol - 0.002) <= 1e-12, "on_data_tolerance %.17g, expected 1e-3 x radius 2", tol);
    // Range ends are accepted: one particle, one step, t_end 1, eta 0 (the ODE).
    const char *ends[] = {"--n 1 --steps 1 --method euler", "--n 5 --steps 2 --t-end 1 --method heun",
                          "--n 5 --steps 5 --method sde --eta 0 --t-start 0.1"};
    for (size_t k = 0; k < sizeof ends / sizeof ends[0]; ++k) {
        snprintf(args, sizeof args, "--data %s/c.npy %s --quiet", in_dir, ends[k]);
        cr_expect_eq(run(args), 0, "'%s': %s", ends[k], err_text);
    }
    // DOPRI5 reports the steps it took (the grid of --steps 1 only places snapshots).
    snprintf(args, sizeof args, "--data %s/c.npy --n 20 --steps 1 --method dopri5 --json", in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(json_number("steps") > 1, "dopri5 steps %g", json_number("steps"));
    // The subset note: from 20001 samples on, not at 20000.
    const int ns[2] = {20000, 20001};
    for (int k = 0; k < 2; ++k) {
        snprintf(args, sizeof args, "--data %s/c.npy --n %d --steps 1 --method euler --out s.npy", in_dir, ns[k]);
        cr_assert_eq(run(args), 0, "%s", err_text);
        cr_expect_eq(strstr(out_text, "[estimated on a subset]") != NULL, k == 1, "n = %d: %s", ns[k], out_text);
    }
}

Test(cli_sample, csv_high_dimension_and_images) {
    // d = 4 data from CSV: PCA scatter by default, a grid of 2x2 images with --image-shape.
    FILE *f = fopen(ipath("d4.csv"), "w");
    fprintf(f, "a,b,c,d\n");
    for (int i = 0; i < 30; ++i) fprintf(f, "%g,%g,%g,%g\n", sin(i), cos(i), sin(2.0 * i), (i % 3) * 0.5);
    fclose(f);
    char args[1024];
    snprintf(args, sizeof args, "--data %s/d4.csv --n 50 --steps 10 --method ddim --json", in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(strstr(out_text, "\"d\": 4"), "%s", out_text);
    advio_array png;
    cr_assert_eq(advio_gray_read(wpath("advect-out/samples.png"), &png, msg, sizeof msg), ADV_OK);
    cr_expect_eq(png.shape[1], 800);
    advio_array_free(&png);
    snprintf(args, sizeof args, "--data %s/d4.csv --n 50 --steps 10 --method ddim --image-shape 2x2 --plot tiles.png",
             in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_eq(advio_gray_read(wpath("tiles.png"), &png, msg, sizeof msg), ADV_OK, "%s", msg);
    // 50 tiles of 2x2 pixels scaled by 24 (to 48 px), 8 per row, 2-pixel borders:
    // width 8 * (48 + 2) + 2, height 7 * (48 + 2) + 2.
    cr_expect_eq(png.shape[1], 402);
    cr_expect_eq(png.shape[0], 352);
    advio_array_free(&png);
    // Toy datasets run too.
    cr_assert_eq(run("--toy moons --n 200 --steps 10 --method dpm2m --quiet"), 0, "%s", err_text);
    cr_assert_eq(run("--toy 8gaussians --n 200 --steps 10 --schedule cosine --quiet"), 0, "%s", err_text);
    cr_assert_eq(run("--toy spirals --n 200 --steps 10 --schedule vp --quiet"), 0, "%s", err_text);
    cr_assert_eq(run("--toy circles --n 200 --steps 10 --schedule ve --sigma 2 --quiet"), 0, "%s", err_text);
}

/* Outputs onto existing files that are not regular (a FIFO here; /dev/null is a character
 * device) are refused before the run: renaming the staged file over them would replace the
 * node itself with a plain file. */
Test(cli_sample, outputs_must_be_regular_files) {
    write_circle("c.npy", 20);
    static const char *const fifos[] = {"f.png", "f.npy", "f.ckpt"};
    for (int k = 0; k < 3; ++k) cr_assert_eq(mkfifo(wpath(fifos[k]), 0666), 0);
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"--plot f.png", "--plot: cannot write 'f.png': it is a FIFO, not a regular file"},
        {"--out f.npy", "--out: cannot write 'f.npy': it is a FIFO"},
        {"--out o.npy --trajectory f.npy", "--trajectory: cannot write 'f.npy': it is a FIFO"},
        {"--out o.npy --checkpoint f.ckpt", "--checkpoint: cannot write 'f.ckpt': it is a FIFO"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        char args[1024];
        snprintf(args, sizeof args, "--data %s/c.npy --n 10 --steps 20 --quiet %s", in_dir, cases[c].args);
        cr_expect_eq(run(args), 2, "'%s': %s", args, err_text);
        check_error(cases[c].needle);
        cr_expect_eq(count_entries(work), 3, "'%s': only the FIFOs, nothing written", args);
        for (int k = 0; k < 3; ++k) {
            struct stat st;
            cr_expect(stat(wpath(fifos[k]), &st) == 0 && S_ISFIFO(st.st_mode), "'%s' replaced %s", args,
                      fifos[k]);
        }
    }
}

/* Outputs that are symbolic links are written through: every output, the checkpoint (which
 * the library writes) included, replaces the file its link names and leaves the link. */
Test(cli_sample, symbolic_links_are_written_through) {
    static const char *const links[] = {"o.npy", "p.png", "t.npy", "k.ckpt"};
    char target[64];
    for (int k = 0; k < 4; ++k) {
        snprintf(target, sizeof target, "real-%s", links[k]);
        cr_assert_eq(symlink(target, wpath(links[k])), 0); // dangling until written
    }
    cr_assert_eq(run("--toy moons --n 10 --steps 20 --quiet --out o.npy --plot p.png "
                     "--trajectory t.npy --save-every 10 --checkpoint k.ckpt"),
                 0, "%s", err_text);
    for (int k = 0; k < 4; ++k) {
        struct stat st;
        snprintf(target, sizeof target, "real-%s", links[k]);
        cr_expect(lstat(wpath(links[k]), &st) == 0 && S_ISLNK(st.st_mode), "%s is no longer a link",
                  links[k]);
        cr_expect(lstat(wpath(target), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0,
                  "%s was not written", target);
    }
    cr_expect_eq(count_entries(work), 8, "the links, their files, nothing else");
}

/* Seeds are unsigned 64-bit integers, in the JSON summary too (2^64 - 1 was printed as -1). */
Test(cli_sample, json_seed_is_unsigned) {
    cr_assert_eq(run("--toy moons --n 10 --steps 2 --seed 18446744073709551615 --json"), 0, "%s", err_text);
    cr_expect(strstr(out_text, "\"seed\": 18446744073709551615,"), "%s", out_text);
    cr_assert_eq(run("--toy moons --n 10 --steps 2 --seed 9223372036854775808 --json"), 0, "%s", err_text);
    cr_expect(strstr(out_text, "\"seed\": 9223372036854775808,"), "%s", out_text);
}

/* --image-shape pictures of unusual data: constant values beyond 2^53 (where lo + 1 == lo
 * left an empty value range), and images too wide for 8 a row (fewer a row, instead of a
 * failure after the run); an image wider than a PNG may be is refused before the run. */
Test(cli_sample, image_grids_of_extreme_data) {
    double c[40];
    for (int i = 0; i < 40; ++i) c[i] = 1e16;
    int64_t shape[2] = {10, 4};
    cr_assert_eq(advio_npy_write(ipath("const.npy"), ADV_FLOAT64, 2, shape, c, msg, sizeof msg), ADV_OK);
    char args[1024];
    snprintf(args, sizeof args, "--data %s/const.npy --n 20 --steps 4 --image-shape 2x2 --out a.npy --quiet",
             in_dir);
    cr_assert_eq(run(args), 0, "%s", err_text);
    advio_array png;
    cr_assert_eq(advio_gray_read(wpath("a.png"), &png, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(png.shape[1], 8 * (48 + 2) + 2);
    cr_expect_eq(png.shape[0], 3 * (48 + 2) + 2);
    advio_array_free(&png);

    enum { W = 10000 };
    double *x = malloc(sizeof(double) * 5 * W);
    cr_assert_not_null(x);
    for (int i = 0; i < 5 * W; ++i) x[i] = 0.5 + 0.5 * sin(0.7 * i);
    int64_t wide[2] = {5, W};
    cr_assert_eq(advio_npy_write(ipath("wide.npy"), ADV_FLOAT64, 2, wide, x, msg, sizeof msg), ADV_OK);
    free(x);
    snprintf(args, sizeof args, "--data %s/wide.npy --n 8 --steps 4 --image-shape 1x%d --out b.npy --quiet",
             in_dir, W);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_eq(advio_gray_read(wpath("b.png"), &png, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(png.shape[1], 6 * (W + 2) + 2, "6 tiles a row");
    cr_expect_eq(png.shape[0], 2 * (1 + 2) + 2, "the 8 tiles on 2 rows");
    advio_array_free(&png);

    enum { TOO_WIDE = 65536 };
    float *y = calloc(2 * TOO_WIDE, sizeof *y);
    cr_assert_not_null(y);
    y[TOO_WIDE] = 1;
    int64_t huge[2] = {2, TOO_WIDE};
    cr_assert_eq(advio_npy_write(ipath("huge.npy"), ADV_FLOAT32, 2, huge, y, msg, sizeof msg), ADV_OK);
    free(y);
    snprintf(args, sizeof args, "--data %s/huge.npy --n 2 --image-shape 1x%d --out c.npy", in_dir, TOO_WIDE);
    cr_expect_eq(run(args), 2, "%s", err_text);
    check_error("--image-shape 1x65536: an image cannot be drawn");
    cr_expect_eq(count_entries(work), 4, "nothing written by the refused run");
}

/* A termination signal during the run (SIGHUP: the terminal was closed) removes the staged
 * outputs — here the trajectory, open from the start — and the exit status is 128 + the
 * signal's number, as for a process killed by it. */
Test(cli_sample, signals_remove_staged_outputs, .timeout = 300) {
    static const int sigs[] = {SIGHUP, SIGQUIT, SIGINT, SIGTERM};
    for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; ++k) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            // Default dispositions and no blocked signals, whatever the test runner set.
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(sigs[k], SIG_DFL);
            int null = open("/dev/null", O_RDWR);
            if (null < 0 || chdir(work) != 0) _exit(127);
            dup2(null, 0), dup2(null, 1), dup2(null, 2);
            execl(ADV_TEST_ADVECT_BIN, "advect", "sample", "--n", "5000", "--steps", "400", "--method",
                  "rk4", "--out", "a.npy", "--trajectory", "t.npy", "--quiet", (char *)NULL);
            _exit(127);
        }
        // The trajectory's temporary file appears when the run starts; the run takes seconds.
        for (int i = 0; i < 3000 && count_entries(work) == 0; ++i) usleep(10000);
        cr_expect_eq(count_entries(work), 1, "the staged trajectory");
        usleep(200000);
        kill(pid, sigs[k]);
        int st = 0;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 128 + sigs[k], "signal %d: exit status %d, %s %d",
                  sigs[k], WIFEXITED(st) ? WEXITSTATUS(st) : -1, "killed by",
                  WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        cr_expect_eq(count_entries(work), 0, "signal %d left files behind", sigs[k]);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'/* '%s'/.[!.]*", work, work);
        cr_assert_eq(system(cmd), 0);
    }
    // A signal the caller ignores stays ignored (nohup): the run goes on and finishes.
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGHUP, SIG_IGN);
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || chdir(work) != 0) _exit(127);
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        execl(ADV_TEST_ADVECT_BIN, "advect", "sample", "--n", "2000", "--steps", "200", "--method", "rk4",
              "--out", "a.npy", "--trajectory", "t.npy", "--quiet", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000 && count_entries(work) == 0; ++i) usleep(10000);
    usleep(100000);
    kill(pid, SIGHUP);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ignored SIGHUP: exit status %d",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_expect_eq(access(wpath("a.npy"), F_OK), 0, "the run finished and wrote its samples");
}

Test(cli_sample, help) {
    cr_expect_eq(run("--help"), 0);
    cr_expect(strstr(out_text, "--image-shape") && strstr(out_text, "--checkpoint"), "%s", out_text);
}

/* Runs `advect sample <args>` in work/ with stderr on a pseudo-terminal (stdin /dev/null,
 * stdout to base/stdout) and returns its exit code; what the terminal received is in
 * err_text. The master side is read while the tool runs, so it never blocks on a full
 * terminal buffer; EIO there means every slave descriptor is closed (the tool exited). */
static int run_on_pty(const char *args) {
    int master = -1, slave = -1;
    cr_assert_eq(openpty(&master, &slave, NULL, NULL, NULL), 0, "openpty failed");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && exec '%s' sample %s >'%s/stdout' </dev/null", work,
             ADV_TEST_ADVECT_BIN, args, base);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        if (dup2(slave, 2) < 0) _exit(127);
        close(master), close(slave);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(slave);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(master, err_text + len, sizeof err_text - 1 - len);
        if (r > 0 && (len += (size_t)r) < sizeof err_text - 1) continue;
        if (r < 0 && errno == EINTR) continue;
        break; // EOF, EIO (the slave side closed) or a full buffer
    }
    err_text[len] = 0;
    close(master);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "the tool did not exit normally");
    char p[512];
    snprintf(p, sizeof p, "%s/stdout", base);
    slurp(p, out_text, sizeof out_text);
    return WEXITSTATUS(st);
}

/* The progress bar (host/cli/cli_util.c) is drawn only when stderr is a terminal and --quiet
 * is not given: on a pseudo-terminal the run shows "sampling [...]" redrawn with '\r', the
 * last frame full at 100% (the final update is always drawn), then the line is erased
 * ("\r\033[K") so that nothing is left on the terminal; with --quiet the terminal receives
 * nothing at all; with stderr a file (not a terminal), nothing progress-like appears either
 * (no bar, no carriage return). Each run must still succeed and write its samples. */
Test(cli_sample, progress_bar_only_on_a_terminal) {
    const char *args = "--toy moons --n 300 --steps 10 --seed 1 --device cpu --out s.npy";
    cr_assert_eq(run_on_pty(args), 0, "terminal: %s", err_text);
    cr_expect(strstr(err_text, "\rsampling [") != NULL, "no progress bar on the terminal: '%s'", err_text);
    cr_expect(strstr(err_text, "[##############################] 100%") != NULL,
              "no full bar at 100%%: '%s'", err_text);
    const size_t n = strlen(err_text);
    cr_expect(n >= 4 && strcmp(err_text + n - 4, "\r\033[K") == 0, "the bar's line is not erased at the end: '%s'",
              err_text);
    cr_expect(strstr(out_text, "particles/s"), "summary on stdout: %s", out_text);
    cr_expect(access(wpath("s.npy"), F_OK) == 0);
    remove(wpath("s.npy"));

    char quiet[512];
    snprintf(quiet, sizeof quiet, "%s --quiet", args);
    cr_assert_eq(run_on_pty(quiet), 0, "--quiet on a terminal: %s", err_text);
    cr_expect_eq(err_text[0], 0, "--quiet wrote to the terminal: '%s'", err_text);
    cr_expect(access(wpath("s.npy"), F_OK) == 0);
    remove(wpath("s.npy"));

    cr_assert_eq(run(args), 0, "stderr to a file: %s", err_text);
    cr_expect(strstr(err_text, "sampling [") == NULL && strchr(err_text, '\r') == NULL &&
                  strchr(err_text, '%') == NULL,
              "progress output with stderr not a terminal: '%s'", err_text);
    cr_expect(access(wpath("s.npy"), F_OK) == 0);
}

/* The schedules' ends (math.md §2): VP's a_0 = exp(-B/2), B = beta_min + (beta_max -
 * beta_min)/2 = 10.05 with the defaults 0.1 and 20, is small but not 0, and VE's b_1 is
 * sigma_min = 0.01, not 0: both are said in the summary and given in --json (a_start, b_end).
 * And the one method x schedule pair that the default Karras grid makes unstable (Heun with
 * VP, 20 steps: docs/sampling.md) fails with a message naming the remedies, each of which
 * then runs. */
Test(cli_sample, schedule_ends_and_karras_instability) {
    const char *base_args = "--toy moons --n 300 --seed 3 --device cpu --out s.npy";
    char args[512];
    snprintf(args, sizeof args, "%s --schedule vp --json", base_args);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(fabs(json_number("a_start") - exp(-0.5 * 10.05)) < 1e-12, "vp a_start: %s", out_text);
    cr_expect_eq(json_number("b_end"), 0.0, "vp b_end: %s", out_text);
    snprintf(args, sizeof args, "%s --schedule ve --json", base_args);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(fabs(json_number("b_end") - 0.01) < 1e-15, "ve b_end: %s", out_text);
    cr_expect_eq(json_number("a_start"), 1.0, "ve a_start: %s", out_text);
    snprintf(args, sizeof args, "%s --schedule linear --json", base_args);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(json_number("a_start") == 0.0 && json_number("b_end") == 0.0, "linear: %s", out_text);
    // The text summary says it for VP and VE, and not for the linear schedule.
    snprintf(args, sizeof args, "%s --schedule vp", base_args);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(strstr(out_text, "schedule vp: a = 0.00657 at t = 0, not 0"), "%s", out_text);
    snprintf(args, sizeof args, "%s --schedule ve", base_args);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(strstr(out_text, "schedule ve: b = 0.01 at t = 1, not 0"), "%s", out_text);
    snprintf(args, sizeof args, "%s --schedule linear", base_args);
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_expect(strstr(out_text, "not 0") == NULL, "%s", out_text);
    remove(wpath("s.npy")), remove(wpath("s.png"));

    snprintf(args, sizeof args, "%s --schedule vp --method heun", base_args);
    cr_assert_eq(run(args), 2);
    check_error("use more steps, a uniform or cosine time grid, or an exponential method");
    cr_expect(access(wpath("s.npy"), F_OK) != 0, "output written on failure");
    static const char *const remedies[] = {"--method heun --steps 60", "--method heun --grid uniform",
                                           "--method heun --grid cosine", "--method ddim"};
    for (size_t k = 0; k < 4; ++k) {
        snprintf(args, sizeof args, "%s --schedule vp %s", base_args, remedies[k]);
        cr_expect_eq(run(args), 0, "%s: %s", remedies[k], err_text);
    }
}
