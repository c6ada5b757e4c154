/* Shared helpers of the advect subcommands: strict option parsing, error lines and exit
 * codes, progress bar, JSON output, staged (temporary-then-renamed) output files, and the
 * checks that no output overwrites another output or an input. */
#define _XOPEN_SOURCE 700 /* POSIX 2008 with XSI: realpath */
#include "cli_util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const char *cmd, int code, const char *fmt, ...) {
    fprintf(stderr, "advect %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_status_code(adv_status s) {
    switch (s) {
    case ADV_OK: return CLI_OK;
    case ADV_ERR_FORMAT:
    case ADV_ERR_IO:
    case ADV_ERR_INVALID_VALUE:
    case ADV_ERR_INVALID_SIZE:
    case ADV_ERR_DIMENSION_MISMATCH:
    case ADV_ERR_NONFINITE:
    case ADV_ERR_BACKEND_UNAVAILABLE:
    case ADV_ERR_UNSUPPORTED: return CLI_USAGE;
    default: return CLI_INTERNAL;
    }
}

/* ---- option parsing ---- */

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->i = -1;
}

int cli_next(cli_args *a) {
    if (a->bad || a->next >= a->argc) return 0;
    a->i = a->next;
    a->next = a->i + 1;
    return 1;
}

static void bad(cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(cli_args *a, const char *fmt, ...) {
    if (a->bad) return; // one line per failure
    fprintf(stderr, "advect %s: ", a->cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    a->bad = 1;
}

int cli_flag(cli_args *a, const char *name) {
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (!strcmp(arg, name)) return 1;
    if (!strncmp(arg, name, n) && arg[n] == '=') {
        bad(a, "option %s takes no value", name);
        return 1;
    }
    return 0;
}

int cli_option(cli_args *a, const char *name, const char **value) {
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    *value = NULL;
    if (strncmp(arg, name, n) != 0) return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        if (!**value) bad(a, "option %s needs a value", name);
        if (!**value) *value = NULL;
        return 1;
    }
    if (arg[n] != 0) return 0;
    if (a->i + 1 >= a->argc) {
        bad(a, "option %s needs a value", name);
        return 1;
    }
    *value = a->argv[a->i + 1];
    a->next = a->i + 2;
    return 1;
}

void cli_unknown(cli_args *a) {
    const char *arg = a->argv[a->i];
    if (arg[0] == '-')
        bad(a, "unknown option '%s' (see 'advect %s --help')", arg, a->cmd);
    else
        bad(a, "unexpected argument '%s' (see 'advect %s --help')", arg, a->cmd);
}

int cli_str_to_i64(const char *s, int64_t *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '-') neg = 1, ++p;
    if (*p < '0' || *p > '9') return -1;
    uint64_t x = 0;
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int overflow = 0;
    for (; *p >= '0' && *p <= '9'; ++p) {
        unsigned digit = (unsigned)(*p - '0');
        if (x > (limit - digit) / 10) overflow = 1;
        else x = x * 10 + digit;
    }
    if (*p) return -1;
    if (overflow) return -2;
    *out = neg ? (x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x) : (int64_t)x;
    return 0;
}

int cli_str_to_double(const char *s, double *out) {
    if (!*s || *s == ' ' || *s == '\t' || *s == '\n') return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end) return -1;
    if (isnan(x)) return -1;
    if (!isfinite(x)) return -2; // "inf", or overflow to infinity
    *out = x;
    return 0;
}

int cli_parse_i64(cli_args *a, const char *name, const char *value, int64_t lo, int64_t hi,
                  int64_t *out) {
    if (!value) return -1;
    int64_t x;
    int r = cli_str_to_i64(value, &x);
    if (r == 0 && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    if (hi == INT64_MAX)
        bad(a, "%s: expected an integer >= %lld, got '%s'", name, (long long)lo, value);
    else
        bad(a, "%s: expected an integer in [%lld, %lld], got '%s'", name, (long long)lo,
            (long long)hi, value);
    return -1;
}

int cli_parse_u64(cli_args *a, const char *name, const char *value, uint64_t *out) {
    if (!value) return -1;
    const char *p = value;
    uint64_t x = 0;
    int ok = *p >= '0' && *p <= '9';
    for (; ok && *p; ++p) {
        if (*p < '0' || *p > '9') ok = 0;
        else if (x > (UINT64_MAX - (unsigned)(*p - '0')) / 10) ok = 0;
        else x = x * 10 + (unsigned)(*p - '0');
    }
    if (!ok) {
        bad(a, "%s: expected an integer in [0, 18446744073709551615], got '%s'", name, value);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_parse_double(cli_args *a, const char *name, const char *value, double lo, double hi,
                     int lo_open, double *out) {
    if (!value) return -1;
    double x;
    int r = cli_str_to_double(value, &x);
    if (r == 0 && (lo_open ? x > lo : x >= lo) && x <= hi) {
        *out = x;
        return 0;
    }
    if (r != 0)
        bad(a, "%s: expected a finite number, got '%s'", name, value);
    else if (isinf(hi))
        bad(a, "%s: expected a number %s %g, got '%s'", name, lo_open ? ">" : ">=", lo, value);
    else
        bad(a, "%s: expected a number in %s%g, %g], got '%s'", name, lo_open ? "(" : "[", lo, hi,
            value);
    return -1;
}

int cli_parse_choice(cli_args *a, const char *name, const char *value,
                     const char *const *choices, int *out) {
    if (!value) return -1;
    for (int k = 0; choices[k]; ++k)
        if (!strcmp(value, choices[k])) {
            *out = k;
            return 0;
        }
    char list[512] = "";
    size_t n = 0;
    for (int k = 0; choices[k] && n < sizeof list; ++k)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k ? "|" : "", choices[k]);
    bad(a, "%s: expected one of %s, got '%s'", name, list, value);
    return -1;
}

int cli_parse_hxw(cli_args *a, const char *name, const char *value, int *h, int *w) {
    if (!value) return -1;
    const char *x = strchr(value, 'x');
    int64_t hh = 0, ww = 0;
    if (x && x != value && x - value < 32) {
        char first[32];
        memcpy(first, value, (size_t)(x - value));
        first[x - value] = 0;
        if (first[0] != '-' && cli_str_to_i64(first, &hh) == 0 && x[1] != '-' &&
            cli_str_to_i64(x + 1, &ww) == 0 && hh >= 1 && ww >= 1 && hh <= 65536 && ww <= 65536) {
            *h = (int)hh;
            *w = (int)ww;
            return 0;
        }
    }
    bad(a, "%s: expected HxW with positive integers (e.g. 28x28), got '%s'", name, value);
    return -1;
}

/* ---- time and progress ---- */

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, const char *label, int quiet) {
    memset(p, 0, sizeof *p);
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->label = label;
    p->start = cli_now();
    p->last = -1;
}

void cli_progress_update(cli_progress *p, double fraction) {
    if (!p->enabled) return;
    double now = cli_now();
    if (p->drawn && now - p->last < 0.1 && fraction < 1) return;
    p->last = now;
    p->drawn = 1;
    if (!(fraction >= 0)) fraction = 0;
    if (fraction > 1) fraction = 1;
    enum { width = 30 };
    char bar[width + 1];
    int full = (int)(fraction * width);
    for (int k = 0; k < width; ++k) bar[k] = k < full ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s [%s] %3d%% %.1fs", p->label, bar, (int)(fraction * 100), now - p->start);
    fflush(stderr);
}

void cli_progress_done(cli_progress *p) {
    if (!p->enabled || !p->drawn) return;
    fputs("\r\033[K", stderr); // erase the line
    fflush(stderr);
    p->drawn = 0;
}

/* ---- termination signals ---- */

static const int caught_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
enum { N_CAUGHT = sizeof caught_signals / sizeof caught_signals[0] };
static struct sigaction saved_actions[N_CAUGHT];
static int catching = 0;
static volatile sig_atomic_t caught = 0;

static void on_signal(int sig) {
    if (!caught) caught = sig;
}

void cli_signals_catch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int k = 0; k < N_CAUGHT; ++k) {
        sigaction(caught_signals[k], NULL, &saved_actions[k]);
        // An ignored signal stays ignored (nohup ignores SIGHUP so that the run survives).
        if (saved_actions[k].sa_handler != SIG_IGN) sigaction(caught_signals[k], &sa, NULL);
    }
    catching = 1;
}

int cli_signal_caught(void) { return caught; }

void cli_signals_restore(void) {
    if (!catching) return;
    for (int k = 0; k < N_CAUGHT; ++k) sigaction(caught_signals[k], &saved_actions[k], NULL);
    catching = 0;
}

/* ---- float32 ---- */

size_t cli_first_beyond_float32(const double *x, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (isinf((float)x[i]) && isfinite(x[i])) return i;
    return n;
}

/* ---- JSON ---- */

void cli_json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void json_key(cli_json *j, const char *key) {
    fputs(j->count++ ? ", " : "", j->f);
    cli_json_write_string(j->f, key);
    fputs(": ", j->f);
}

void cli_json_begin(cli_json *j, FILE *f) {
    j->f = f;
    j->count = 0;
    fputc('{', f);
}

void cli_json_string(cli_json *j, const char *key, const char *value) {
    json_key(j, key);
    if (value)
        cli_json_write_string(j->f, value);
    else
        fputs("null", j->f);
}

void cli_json_number(cli_json *j, const char *key, double value) {
    json_key(j, key);
    if (isfinite(value))
        fprintf(j->f, "%.17g", value);
    else
        fputs("null", j->f);
}

void cli_json_int(cli_json *j, const char *key, int64_t value) {
    json_key(j, key);
    fprintf(j->f, "%lld", (long long)value);
}

void cli_json_uint(cli_json *j, const char *key, uint64_t value) {
    json_key(j, key);
    fprintf(j->f, "%llu", (unsigned long long)value);
}

void cli_json_bool(cli_json *j, const char *key, int value) {
    json_key(j, key);
    fputs(value ? "true" : "false", j->f);
}

void cli_json_end(cli_json *j) {
    fputs("}\n", j->f);
    fflush(j->f);
}

/* ---- staged outputs ---- */

void cli_outputs_init(cli_outputs *o) { memset(o, 0, sizeof *o); }

/* mkdir -p of path's parent, remembering what was created so that abort can remove it. */
adv_status cli_outputs_make_parents(cli_outputs *o, const char *path, char *msg, size_t msg_size) {
    size_t len = strlen(path);
    char *buf = malloc(len + 1);
    if (!buf) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(buf, path, len + 1);
    for (size_t k = 1; k < len; ++k) {
        if (buf[k] != '/') continue;
        buf[k] = 0;
        struct stat st;
        if (stat(buf, &st) != 0) {
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                adv_status s = advio_fail(msg, msg_size, ADV_ERR_IO, "cannot create directory '%s': %s",
                                          buf, strerror(errno));
                free(buf);
                return s;
            }
            if (o->n_dirs < (int)(sizeof o->made_dirs / sizeof o->made_dirs[0])) {
                char *d = malloc(k + 1);
                if (d) memcpy(d, buf, k + 1);
                if (d) o->made_dirs[o->n_dirs++] = d;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            adv_status s = advio_fail(msg, msg_size, ADV_ERR_IO, "'%s' is not a directory", buf);
            free(buf);
            return s;
        }
        buf[k] = '/';
    }
    free(buf);
    return ADV_OK;
}

FILE *cli_output_open(cli_outputs *o, const char *path, char *msg, size_t msg_size) {
    if (o->count == CLI_MAX_OUTPUTS) {
        advio_fail(msg, msg_size, ADV_ERR_INTERNAL, "too many output files");
        return NULL;
    }
    if (cli_outputs_make_parents(o, path, msg, msg_size) != ADV_OK) return NULL;
    if (advio_atomic_open(&o->files[o->count], path, msg, msg_size) != ADV_OK) return NULL;
    return o->files[o->count++].f;
}

adv_status cli_outputs_commit(cli_outputs *o, char *msg, size_t msg_size) {
    char *final[CLI_MAX_OUTPUTS] = {0};
    adv_status s = ADV_OK;
    for (int k = 0; k < o->count; ++k) {
        final[k] = strdup(o->files[k].file.target);
        if (!final[k]) s = advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    }
    int done = 0;
    while (s == ADV_OK && done < o->count) {
        s = advio_atomic_commit(&o->files[done], msg, msg_size);
        if (s == ADV_OK) ++done;
    }
    if (s != ADV_OK) {
        // Undo the renames already done and drop the rest: a failed run leaves no output.
        for (int k = 0; k < done; ++k) unlink(final[k]);
        for (int k = done; k < o->count; ++k) advio_atomic_abort(&o->files[k]);
    }
    for (int k = 0; k < o->count; ++k) free(final[k]);
    memset(o->files, 0, sizeof o->files);
    o->count = 0;
    if (s != ADV_OK) {
        cli_outputs_abort(o); // removes the directories made for the outputs
        return s;
    }
    for (int k = 0; k < o->n_dirs; ++k) free(o->made_dirs[k]);
    o->n_dirs = 0;
    return ADV_OK;
}

void cli_outputs_abort(cli_outputs *o) {
    for (int k = 0; k < o->count; ++k) advio_atomic_abort(&o->files[k]);
    o->count = 0;
    for (int k = o->n_dirs - 1; k >= 0; --k) {
        rmdir(o->made_dirs[k]); // only succeeds when empty, which is the point
        free(o->made_dirs[k]);
    }
    o->n_dirs = 0;
}

adv_status cli_write_npy(cli_outputs *o, const char *path, adv_precision dtype, int ndim,
                         const int64_t *shape, const void *data, char *msg, size_t msg_size) {
    FILE *f = cli_output_open(o, path, msg, msg_size);
    if (!f) return ADV_ERR_IO;
    return advio_npy_write_stream(f, dtype, ndim, shape, data, msg, msg_size);
}

adv_status cli_write_png(cli_outputs *o, const char *path, const advio_image *img, char *msg,
                         size_t msg_size) {
    FILE *f = cli_output_open(o, path, msg, msg_size);
    if (!f) return ADV_ERR_IO;
    return advio_png_write_stream(f, img, msg, msg_size);
}

/* ---- paths ---- */

int cli_has_suffix(const char *path, const char *suffix) {
    size_t lp = strlen(path), ls = strlen(suffix);
    if (ls > lp) return 0;
    for (size_t k = 0; k < ls; ++k) {
        char c = path[lp - ls + k], x = suffix[k];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (c != x) return 0;
    }
    return 1;
}

/* Appends "/" name to the malloc'ed *s (no doubled slash after the root). */
static int append_component(char **s, const char *name, size_t len) {
    size_t n = strlen(*s);
    int root = n == 1 && (*s)[0] == '/';
    char *t = realloc(*s, n + len + 2);
    if (!t) return -1;
    if (!root) t[n++] = '/';
    memcpy(t + n, name, len);
    t[n + len] = 0;
    *s = t;
    return 0;
}

/* The canonical form described at cli_same_path (malloc'ed; NULL when out of memory or the
 * working directory cannot be resolved). Symbolic links are resolved only where they exist;
 * the missing rest is normalised lexically, which is what the kernel will do once the
 * outputs' parent directories have been created (a directory created there is no link). */
static char *canonical_path(const char *path) {
    char *abs;
    if (path[0] == '/') {
        abs = strdup(path);
    } else {
        char *cwd = realpath(".", NULL);
        if (!cwd) return NULL;
        abs = malloc(strlen(cwd) + strlen(path) + 2);
        if (abs) sprintf(abs, "%s/%s", cwd, path);
        free(cwd);
    }
    if (!abs) return NULL;
    // Components of abs: starts[k] .. starts[k] + lens[k].
    size_t len = strlen(abs), n = 0;
    size_t *starts = malloc(sizeof(size_t) * (len + 1)), *lens = malloc(sizeof(size_t) * (len + 1));
    char *prefix = malloc(len + 2), *res = NULL;
    if (!starts || !lens || !prefix) goto out;
    for (size_t i = 0; i < len;) {
        while (i < len && abs[i] == '/') ++i;
        if (i == len) break;
        starts[n] = i;
        while (i < len && abs[i] != '/') ++i;
        lens[n] = i - starts[n];
        ++n;
    }
    // The longest prefix that resolves ("/" always does).
    size_t k = n;
    for (;; --k) {
        size_t m = 0;
        prefix[m++] = '/';
        for (size_t c = 0; c < k; ++c) {
            if (c) prefix[m++] = '/';
            memcpy(prefix + m, abs + starts[c], lens[c]);
            m += lens[c];
        }
        prefix[m] = 0;
        res = realpath(prefix, NULL);
        if (res || k == 0) break;
    }
    if (!res) goto out;
    for (size_t c = k; c < n; ++c) {
        const char *name = abs + starts[c];
        if (lens[c] == 1 && name[0] == '.') continue;
        if (lens[c] == 2 && name[0] == '.' && name[1] == '.') {
            char *slash = strrchr(res, '/');
            if (slash == res) res[1] = 0; // "/.." is "/"
            else if (slash) *slash = 0;
            continue;
        }
        if (append_component(&res, name, lens[c]) != 0) {
            free(res);
            res = NULL;
            goto out;
        }
    }
out:
    free(abs), free(starts), free(lens), free(prefix);
    return res;
}

int cli_same_path(const char *a, const char *b) {
    if (!a || !b) return 0;
    if (!strcmp(a, b)) return 1;
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
        return 1;
    // Outputs are written through symbolic links (advio_atomic_open): compare what writing
    // reaches, also for a link to a file not created yet.
    char *fa = advi_follow_links(a), *fb = advi_follow_links(b);
    char *ca = fa ? canonical_path(fa) : NULL, *cb = fb ? canonical_path(fb) : NULL;
    int same = ca && cb && !strcmp(ca, cb);
    free(fa), free(fb), free(ca), free(cb);
    return same;
}

int cli_check_paths(const char *cmd, const cli_path *p, int count) {
    for (int i = 0; i < count; ++i)
        for (int j = i + 1; j < count; ++j) {
            if (!p[i].path || !p[j].path || (p[i].input && p[j].input)) continue;
            if ((p[i].may_equal && !strcmp(p[i].may_equal, p[j].option)) ||
                (p[j].may_equal && !strcmp(p[j].may_equal, p[i].option)))
                continue;
            if (cli_same_path(p[i].path, p[j].path))
                return cli_fail(cmd, CLI_USAGE, "%s and %s name the same file '%s'", p[i].option,
                                p[j].option, p[i].path);
        }
    // Checked again when each output is opened, but here a run cannot fail after its work.
    for (int i = 0; i < count; ++i) {
        char msg[1024];
        if (p[i].path && !p[i].input && advio_check_output(p[i].path, msg, sizeof msg) != ADV_OK)
            return cli_fail(cmd, CLI_USAGE, "%s: %s", p[i].option, msg);
    }
    return CLI_OK;
}

uint64_t cli_physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}
