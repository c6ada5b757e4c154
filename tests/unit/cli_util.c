/* Unit tests of the command-line helpers (host/cli/cli_util.c): strict number parsing,
 * `--name value` / `--name=value` option forms, unknown options, JSON output, staged
 * outputs (commit renames everything; abort leaves no file and no created directory), and
 * the path checks (the same file under different names, even before it exists). */
#define _GNU_SOURCE
#include "cli_util.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Test(cli_numbers, integers) {
    int64_t v;
    cr_expect_eq(cli_str_to_i64("0", &v), 0);
    cr_expect_eq(v, 0);
    cr_expect_eq(cli_str_to_i64("-42", &v), 0);
    cr_expect_eq(v, -42);
    cr_expect_eq(cli_str_to_i64("9223372036854775807", &v), 0);
    cr_expect_eq(v, INT64_MAX);
    cr_expect_eq(cli_str_to_i64("-9223372036854775808", &v), 0);
    cr_expect_eq(v, INT64_MIN);
    cr_expect_eq(cli_str_to_i64("9223372036854775808", &v), -2, "overflow");
    cr_expect_eq(cli_str_to_i64("-9223372036854775809", &v), -2, "overflow");
    cr_expect_eq(cli_str_to_i64("99999999999999999999999", &v), -2, "overflow");
    const char *bad[] = {"", "-", "+1", " 1", "1 ", "1x", "1.0", "1e3", "0x10", "--1", "abc"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k)
        cr_expect_eq(cli_str_to_i64(bad[k], &v), -1, "'%s' must be rejected", bad[k]);
}

Test(cli_numbers, reals) {
    double v;
    cr_expect_eq(cli_str_to_double("1e-3", &v), 0);
    cr_expect_eq(v, 1e-3);
    cr_expect_eq(cli_str_to_double("-0.5", &v), 0);
    cr_expect_eq(v, -0.5);
    cr_expect_eq(cli_str_to_double("3", &v), 0);
    cr_expect_eq(cli_str_to_double("1e999", &v), -2, "overflow to infinity");
    cr_expect_eq(cli_str_to_double("inf", &v), -2);
    const char *bad[] = {"", "nan", "NaN", "-nan", " 1", "1 ", "1.5x", "abc", "1,5", "e3"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k)
        cr_expect_eq(cli_str_to_double(bad[k], &v), -1, "'%s' must be rejected", bad[k]);
}

/* Runs one option loop like the subcommands do; returns a.bad. */
static int parse_args(int argc, char **argv, int64_t *n, double *s, int *json, int *choice) {
    cli_args a;
    cli_args_init(&a, "test", argc, argv);
    static const char *const choices[] = {"euler", "heun", NULL};
    while (cli_next(&a)) {
        const char *v;
        if (cli_flag(&a, "--json")) *json = 1;
        else if (cli_option(&a, "--n", &v)) cli_parse_i64(&a, "--n", v, 1, INT64_MAX, n);
        else if (cli_option(&a, "--sigma", &v)) cli_parse_double(&a, "--sigma", v, 0, INFINITY, 1, s);
        else if (cli_option(&a, "--method", &v)) cli_parse_choice(&a, "--method", v, choices, choice);
        else cli_unknown(&a);
    }
    return a.bad;
}

Test(cli_args, forms_and_errors) {
    int64_t n = 0;
    double s = 0;
    int json = 0, choice = -1;
    char *ok[] = {"--n", "5", "--sigma=0.25", "--json", "--method", "heun"};
    cr_expect_eq(parse_args(6, ok, &n, &s, &json, &choice), 0);
    cr_expect_eq(n, 5);
    cr_expect_eq(s, 0.25);
    cr_expect_eq(json, 1);
    cr_expect_eq(choice, 1);
    char *neg[] = {"--n=-1"};
    cr_expect_eq(parse_args(1, neg, &n, &s, &json, &choice), 1);
    char *zero[] = {"--n", "0"};
    cr_expect_eq(parse_args(2, zero, &n, &s, &json, &choice), 1);
    char *open[] = {"--sigma", "0"};
    cr_expect_eq(parse_args(2, open, &n, &s, &json, &choice), 1, "sigma > 0");
    char *nan[] = {"--sigma", "nan"};
    cr_expect_eq(parse_args(2, nan, &n, &s, &json, &choice), 1);
    char *missing[] = {"--n"};
    cr_expect_eq(parse_args(1, missing, &n, &s, &json, &choice), 1);
    char *empty[] = {"--n="};
    cr_expect_eq(parse_args(1, empty, &n, &s, &json, &choice), 1);
    char *unknown[] = {"--nope"};
    cr_expect_eq(parse_args(1, unknown, &n, &s, &json, &choice), 1);
    char *prefix[] = {"--nn", "3"};
    cr_expect_eq(parse_args(2, prefix, &n, &s, &json, &choice), 1, "--nn is not --n");
    char *positional[] = {"file.npy"};
    cr_expect_eq(parse_args(1, positional, &n, &s, &json, &choice), 1);
    char *flagval[] = {"--json=1"};
    cr_expect_eq(parse_args(1, flagval, &n, &s, &json, &choice), 1);
    char *badchoice[] = {"--method", "rk5"};
    cr_expect_eq(parse_args(2, badchoice, &n, &s, &json, &choice), 1);
}

Test(cli_args, hxw) {
    cli_args a;
    char *argv[] = {"x"};
    cli_args_init(&a, "test", 1, argv);
    int h = 0, w = 0;
    cr_expect_eq(cli_parse_hxw(&a, "--image-shape", "28x14", &h, &w), 0);
    cr_expect(h == 28 && w == 14);
    cr_expect_eq(cli_parse_hxw(&a, "--image-shape", "65536x1", &h, &w), 0); // the largest side
    // Sides above 65536 (a picture of 2^32 pixels per side would overflow the renderer).
    const char *bad[] = {"28", "x28", "28x", "0x3", "3x0", "-1x3", "3x-1", "3x3x3", "3 x3", "axb",
                         "65537x1", "1x65537", "4294967297x1"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k) {
        a.bad = 0;
        cr_expect_eq(cli_parse_hxw(&a, "--image-shape", bad[k], &h, &w), -1, "'%s'", bad[k]);
    }
}

Test(cli_json, object_and_escapes) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_json j;
    cli_json_begin(&j, f);
    cli_json_string(&j, "path", "a\"b\\c\nd\x01\x1f ");
    cli_json_int(&j, "n", -3);
    cli_json_number(&j, "x", 0.1);
    cli_json_number(&j, "bad", NAN);
    cli_json_bool(&j, "ok", 1);
    cli_json_string(&j, "none", NULL);
    cli_json_end(&j);
    fclose(f);
    cr_expect_str_eq(buf, "{\"path\": \"a\\\"b\\\\c\\nd\\u0001\\u001f \", \"n\": -3, \"x\": 0.10000000000000001, "
                          "\"bad\": null, \"ok\": true, \"none\": null}\n");
    free(buf);
}

Test(cli_outputs, commit_and_abort) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/advect-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char p1[512], p2[600], sub[512];
    snprintf(sub, sizeof sub, "%s/new/deeper", dir);
    snprintf(p1, sizeof p1, "%s/a.npy", dir);
    snprintf(p2, sizeof p2, "%s/b.png", sub);
    char msg[256];
    struct stat st;
    // Abort: nothing left, including the directories made for the outputs.
    cli_outputs o;
    cli_outputs_init(&o);
    FILE *f = cli_output_open(&o, p1, msg, sizeof msg);
    cr_assert_not_null(f, "%s", msg);
    fputs("one", f);
    f = cli_output_open(&o, p2, msg, sizeof msg);
    cr_assert_not_null(f, "%s", msg);
    cr_expect_eq(stat(sub, &st), 0, "parent directories created");
    cli_outputs_abort(&o);
    cr_expect_neq(stat(p1, &st), 0);
    cr_expect_neq(stat(p2, &st), 0);
    snprintf(sub, sizeof sub, "%s/new", dir);
    cr_expect_neq(stat(sub, &st), 0, "created directories removed");
    cr_expect_eq(rmdir(dir), 0, "the directory must be empty again");
    // Commit: both files appear at once.
    cr_assert_not_null(mkdtemp(strcpy(dir, "/tmp/advect-cli-XXXXXX")));
    snprintf(p1, sizeof p1, "%s/a.npy", dir);
    snprintf(p2, sizeof p2, "%s/new/b.png", dir);
    cli_outputs_init(&o);
    fputs("one", cli_output_open(&o, p1, msg, sizeof msg));
    fputs("two!", cli_output_open(&o, p2, msg, sizeof msg));
    cr_expect_neq(stat(p1, &st), 0, "nothing visible before commit");
    cr_assert_eq(cli_outputs_commit(&o, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(stat(p1, &st), 0);
    cr_expect_eq(st.st_size, 3);
    cr_expect_eq(stat(p2, &st), 0);
    cr_expect_eq(st.st_size, 4);
    cr_expect(cli_same_path(p1, p1));
    cr_expect(!cli_same_path(p1, p2));
    unlink(p1);
    unlink(p2);
    snprintf(sub, sizeof sub, "%s/new", dir);
    rmdir(sub);
    rmdir(dir);
    // A path under a regular file cannot be opened.
    cli_outputs_init(&o);
    cr_expect_null(cli_output_open(&o, "/dev/null/x.npy", msg, sizeof msg));
    cli_outputs_abort(&o);
    // A commit that fails on its second file undoes the first: a non-empty directory made at
    // the second target after it was opened makes its rename fail.
    cr_assert_not_null(mkdtemp(strcpy(dir, "/tmp/advect-cli-XXXXXX")));
    snprintf(p1, sizeof p1, "%s/a.npy", dir);
    snprintf(p2, sizeof p2, "%s/b.npy", dir);
    cli_outputs_init(&o);
    fputs("one", cli_output_open(&o, p1, msg, sizeof msg));
    fputs("two", cli_output_open(&o, p2, msg, sizeof msg));
    char inside[700];
    cr_assert_eq(mkdir(p2, 0777), 0);
    snprintf(inside, sizeof inside, "%s/keep", p2);
    FILE *k = fopen(inside, "w");
    cr_assert_not_null(k);
    fclose(k);
    cr_expect_neq(cli_outputs_commit(&o, msg, sizeof msg), ADV_OK, "the second rename must fail");
    cr_expect_neq(stat(p1, &st), 0, "the first output was left after a failed commit");
    cr_expect_eq(stat(inside, &st), 0, "what was in the way is untouched");
    unlink(inside);
    rmdir(p2);
    cr_expect_eq(rmdir(dir), 0, "no staged file left behind");
}

/* At most CLI_MAX_OUTPUTS (16) outputs per run: the 17th is refused with a message. */
Test(cli_outputs, at_most_sixteen) {
    char dir[256], path[300], msg[256];
    cr_assert_not_null(mkdtemp(strcpy(dir, "/tmp/advect-cli-XXXXXX")));
    cli_outputs o;
    cli_outputs_init(&o);
    for (int k = 0; k < 16; ++k) {
        snprintf(path, sizeof path, "%s/o%d.npy", dir, k);
        cr_assert_not_null(cli_output_open(&o, path, msg, sizeof msg), "output %d: %s", k, msg);
    }
    snprintf(path, sizeof path, "%s/o16.npy", dir);
    cr_expect_null(cli_output_open(&o, path, msg, sizeof msg));
    cr_expect(strstr(msg, "too many output files") != NULL, "%s", msg);
    cli_outputs_abort(&o);
    cr_expect_eq(rmdir(dir), 0, "nothing left after abort");
}

/* Library statuses map to exit codes: bad input (2) for what the user can fix, internal (1)
 * otherwise. A checkpoint of another run is a dimension mismatch: 2. */
Test(cli_status, exit_codes) {
    const adv_status usage[] = {ADV_ERR_FORMAT, ADV_ERR_IO, ADV_ERR_INVALID_VALUE, ADV_ERR_INVALID_SIZE,
                                ADV_ERR_DIMENSION_MISMATCH, ADV_ERR_NONFINITE, ADV_ERR_BACKEND_UNAVAILABLE,
                                ADV_ERR_UNSUPPORTED};
    for (size_t k = 0; k < sizeof usage / sizeof usage[0]; ++k)
        cr_expect_eq(cli_status_code(usage[k]), CLI_USAGE, "%s", adv_status_name(usage[k]));
    cr_expect_eq(cli_status_code(ADV_OK), CLI_OK);
    const adv_status internal[] = {ADV_ERR_OUT_OF_MEMORY, ADV_ERR_INTERNAL, ADV_ERR_NULL_POINTER, ADV_ERR_CUDA};
    for (size_t k = 0; k < sizeof internal / sizeof internal[0]; ++k)
        cr_expect_eq(cli_status_code(internal[k]), CLI_INTERNAL, "%s", adv_status_name(internal[k]));
}

/* Outputs that do not exist yet are compared by their canonical form: the same file reached
 * through "./", "..", an absolute path, a symbolic link to the directory or a directory not
 * created yet must be recognised, and different files must not be. */
Test(cli_paths, same_path_for_files_not_yet_written) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/advect-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chdir(dir), 0); // Criterion runs each test in its own process
    cr_assert_eq(mkdir("r", 0777), 0);
    cr_assert_eq(symlink("r", "link"), 0);
    char abs[600];
    snprintf(abs, sizeof abs, "%s/r/x.npy", dir);
    const char *same[][2] = {
        {"r/x.npy", "./r/x.npy"},        {"q.npy", "./q.npy"},         {"r/x.npy", abs},
        {"r/x.npy", "r/../r/x.npy"},      {"r/x.npy", "r//x.npy"},      {"link/x.npy", "r/x.npy"},
        {"new/a.npy", "./new/a.npy"},    {"new/a.npy", "new/./a.npy"}, {"new/a.npy", "new/b/../a.npy"},
        {"gone/../q.npy", "q.npy"},
    };
    for (size_t k = 0; k < sizeof same / sizeof same[0]; ++k)
        cr_expect(cli_same_path(same[k][0], same[k][1]), "'%s' and '%s' are one file", same[k][0],
                  same[k][1]);
    const char *differ[][2] = {
        {"r/x.npy", "r/y.npy"}, {"r/x.npy", "x.npy"}, {"new/a.npy", "a.npy"}, {"q.npy", "q.npy.png"},
    };
    for (size_t k = 0; k < sizeof differ / sizeof differ[0]; ++k)
        cr_expect(!cli_same_path(differ[k][0], differ[k][1]), "'%s' and '%s' differ", differ[k][0],
                  differ[k][1]);
    // Existing files: hard links are one file.
    FILE *f = fopen("r/x.npy", "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_eq(link("r/x.npy", "hard.npy"), 0);
    cr_expect(cli_same_path("hard.npy", "./r/x.npy"));
    cr_expect(cli_same_path("link/x.npy", "r/x.npy"));
    // A link to a file not created yet is the file that writing to it creates.
    cr_assert_eq(symlink("r/later.npy", "dangling.npy"), 0);
    cr_expect(cli_same_path("dangling.npy", "r/later.npy"));
    cr_expect(!cli_same_path("dangling.npy", "later.npy"));
    unlink("dangling.npy");
    unlink("hard.npy"), unlink("r/x.npy"), unlink("link"), rmdir("r");
    cr_expect_eq(chdir("/"), 0);
    cr_expect_eq(rmdir(dir), 0, "the test leaves nothing behind");
}

/* cli_check_paths: outputs against outputs and inputs, never two inputs, the allowed pair
 * skipped, and one line naming both options. */
Test(cli_paths, check_paths_names_both_options) {
    const cli_path ok[] = {
        {"--data", "d.npy", 1, NULL},         {"--resume", "./c.ckpt", 1, "--checkpoint"},
        {"--out", "o.npy", 0, NULL},          {"--checkpoint", "c.ckpt", 0, NULL},
        {"--rho1", "./d.npy", 1, NULL},       {"--plot", NULL, 0, NULL},
    };
    cr_expect_eq(cli_check_paths("test", ok, 6), CLI_OK);
    const cli_path bad[] = {{"--data", "d.npy", 1, NULL}, {"--checkpoint", "./d.npy", 0, NULL}};
    // The message goes to stderr: capture it through a temporary file on descriptor 2.
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    fflush(stderr);
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    dup2(fileno(tmp), 2);
    const int rc = cli_check_paths("test", bad, 2);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_expect_eq(rc, CLI_USAGE);
    char line[512] = "";
    rewind(tmp);
    size_t n = fread(line, 1, sizeof line - 1, tmp);
    line[n] = 0;
    fclose(tmp);
    cr_expect_str_eq(line, "advect test: --data and --checkpoint name the same file 'd.npy'\n");
}

Test(cli_paths, suffix) {
    cr_expect(cli_has_suffix("a/b.npy", ".npy"));
    cr_expect(cli_has_suffix("B.NPY", ".npy"));
    cr_expect(!cli_has_suffix("b.png", ".npy"));
    cr_expect(!cli_has_suffix("npy", ".npy"));
    cr_expect(!cli_has_suffix("b.npy.png", ".npy"));
}
