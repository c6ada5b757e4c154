/* Helpers shared by the advect subcommands: option parsing (`--name value` and
 * `--name=value`, strict numbers), one-line error reporting with the CLI's exit codes, a
 * progress bar on stderr (terminals only), JSON summaries on stdout, and staged outputs
 * (every output goes to a temporary file; all are renamed into place only when the whole
 * command succeeded, so a failed run leaves no file behind).
 *
 * Exit codes: CLI_OK 0, CLI_INTERNAL 1 (a failure of the library or the system),
 * CLI_USAGE 2 (bad usage or bad input; one line on stderr says why), 128 + N when stopped by
 * signal N (see cli_signals_catch). */
#ifndef ADVECT_CLI_UTIL_H
#define ADVECT_CLI_UTIL_H

#include "io.h"

#include <stdint.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_INTERNAL = 1, CLI_USAGE = 2 };

/* Prints "advect <cmd>: <message>" on stderr and returns code. */
int cli_fail(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Maps an adv_status from the library or host/io to an exit code: input-like errors
 * (format, I/O on inputs, invalid values, non-finite inputs, unavailable backend) give
 * CLI_USAGE; the rest CLI_INTERNAL. */
int cli_status_code(adv_status s);

/* ---- option parsing ----
 * Typical loop:
 *     cli_args a; cli_args_init(&a, "sample", argc, argv);
 *     while (cli_next(&a)) {
 *         const char *v;
 *         if (cli_flag(&a, "--json")) json = 1;
 *         else if (cli_option(&a, "--n", &v)) cli_parse_i64(&a, "--n", v, 1, INT64_MAX, &n);
 *         else cli_unknown(&a);
 *     }
 *     if (a.bad) return CLI_USAGE;
 * Every helper prints its own one-line reason and sets a.bad; cli_next stops at the first
 * error. */
typedef struct cli_args {
    const char *cmd; /* subcommand name for messages, e.g. "sample" */
    int argc;
    char **argv;
    int i;       /* index of the argument being examined */
    int next;    /* index of the next argument (after a value, if one was consumed) */
    int bad;     /* an error was reported */
} cli_args;

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv);
/* Advances to the next argument; 0 when none is left or after an error. */
int cli_next(cli_args *a);
/* 1 if the current argument is the flag `name` (which takes no value). */
int cli_flag(cli_args *a, const char *name);
/* 1 if the current argument is option `name`, given as `name value` or `name=value`; *value
 * is then the value (NULL, with an error reported, if it is missing). */
int cli_option(cli_args *a, const char *name, const char **value);
/* Reports the current argument as unknown (or as an unexpected positional argument). */
void cli_unknown(cli_args *a);

/* Strict conversions: the whole string must be the number, no spaces, no trailing text.
 * Integers: optional '-' and decimal digits, overflow detected, within [lo, hi].
 * Reals: strtod syntax, finite (no NaN/inf), within [lo, hi] (lo excluded when lo_open).
 * Return 0 on success; -1 after reporting the error (value NULL: already reported). */
int cli_parse_i64(cli_args *a, const char *name, const char *value, int64_t lo, int64_t hi,
                  int64_t *out);
int cli_parse_u64(cli_args *a, const char *name, const char *value, uint64_t *out);
int cli_parse_double(cli_args *a, const char *name, const char *value, double lo, double hi,
                     int lo_open, double *out);
/* value must be one of the NULL-terminated choices; *out gets its index. */
int cli_parse_choice(cli_args *a, const char *name, const char *value,
                     const char *const *choices, int *out);
/* "HxW" with positive integers (each at most 65536). */
int cli_parse_hxw(cli_args *a, const char *name, const char *value, int *h, int *w);

/* Plain string-to-number helpers without reporting (0 ok, -1 invalid, -2 out of range). */
int cli_str_to_i64(const char *s, int64_t *out);
int cli_str_to_double(const char *s, double *out);

/* ---- time and progress ---- */

/* Monotonic wall-clock seconds. */
double cli_now(void);

typedef struct cli_progress {
    int enabled;
    const char *label;
    double start, last;
    int drawn;
} cli_progress;

/* Enabled only when stderr is a terminal and not quiet. */
void cli_progress_init(cli_progress *p, const char *label, int quiet);
/* fraction in [0, 1]; redraws at most ~10 times a second. */
void cli_progress_update(cli_progress *p, double fraction);
/* Erases the bar. */
void cli_progress_done(cli_progress *p);

/* ---- termination signals ----
 * Between cli_signals_catch and cli_signals_restore, SIGINT, SIGTERM, SIGHUP and SIGQUIT only
 * record their number (signals ignored at the start, as under nohup, stay ignored): the
 * command stops at its next check, removes its staged outputs (a signal's default action
 * would leave the temporary files behind) and exits with 128 + the number, as a shell
 * reports a process killed by that signal. */
void cli_signals_catch(void);
/* The first signal caught, or 0. */
int cli_signal_caught(void);
void cli_signals_restore(void);

/* Index of the first of n finite doubles beyond the float32 range (it would round to
 * infinity), or n when every one fits. */
size_t cli_first_beyond_float32(const double *x, size_t n);

/* ---- JSON summaries ---- */

typedef struct cli_json {
    FILE *f;
    int count;
} cli_json;

void cli_json_begin(cli_json *j, FILE *f);
void cli_json_string(cli_json *j, const char *key, const char *value); /* NULL -> null */
void cli_json_number(cli_json *j, const char *key, double value);      /* non-finite -> null */
void cli_json_int(cli_json *j, const char *key, int64_t value);
void cli_json_uint(cli_json *j, const char *key, uint64_t value);
void cli_json_bool(cli_json *j, const char *key, int value);
void cli_json_end(cli_json *j); /* "}\n" */
/* Writes s as a JSON string literal (quotes and escapes). */
void cli_json_write_string(FILE *f, const char *s);

/* ---- staged outputs ---- */

#define CLI_MAX_OUTPUTS 16

typedef struct cli_outputs {
    int count;
    advio_atomic files[CLI_MAX_OUTPUTS];
    int n_dirs;
    char *made_dirs[CLI_MAX_OUTPUTS * 4]; /* directories created for the outputs */
} cli_outputs;

void cli_outputs_init(cli_outputs *o);
/* Creates path's missing parent directories and a temporary file next to path; returns the
 * stream to write, or NULL with msg set. */
FILE *cli_output_open(cli_outputs *o, const char *path, char *msg, size_t msg_size);
/* Renames every staged file into place. On failure the not-yet-renamed ones are removed. */
adv_status cli_outputs_commit(cli_outputs *o, char *msg, size_t msg_size);
/* Removes every staged temporary file and the directories created for them (if empty). */
void cli_outputs_abort(cli_outputs *o);
/* mkdir -p of path's parent directory, for a file written by someone else (the library's
 * checkpoints); a failed run removes the directories it made if they are still empty. */
adv_status cli_outputs_make_parents(cli_outputs *o, const char *path, char *msg, size_t msg_size);

/* Writers into staged outputs (the .npy and PNG formats of host/io). */
adv_status cli_write_npy(cli_outputs *o, const char *path, adv_precision dtype, int ndim,
                         const int64_t *shape, const void *data, char *msg, size_t msg_size);
adv_status cli_write_png(cli_outputs *o, const char *path, const advio_image *img, char *msg,
                         size_t msg_size);

/* ---- paths ---- */

/* 1 when path ends in suffix (ASCII case-insensitive, e.g. ".npy"). */
int cli_has_suffix(const char *path, const char *suffix);

/* 1 if both paths name the same file, now or once the outputs are written: the same string,
 * the same existing inode (hard links), or the same canonical form. The canonical form of a
 * path is realpath() of its longest existing prefix followed by the rest of its components
 * normalised lexically ("." dropped, ".." removing the previous one); for a file that does
 * not exist yet in an existing directory that is realpath(directory) + "/" + name, so
 * "r/x.npy", "./r/x.npy" and "/abs/r/x.npy" all compare equal. */
int cli_same_path(const char *a, const char *b);

/* One file named on the command line, for cli_check_paths. */
typedef struct cli_path {
    const char *option;    /* e.g. "--out" */
    const char *path;      /* NULL: not given (skipped) */
    int input;             /* 1: read by the command; 0: written */
    const char *may_equal; /* an option whose file this one may be (e.g. --resume may be the
                              --checkpoint it continues), or NULL */
} cli_path;

/* Every output must differ from every other output and from every input (two inputs may
 * coincide): writing one file over another loses data, and an output over an input
 * replaces what is being read. Returns CLI_OK, or CLI_USAGE after the one line
 * "advect <cmd>: A and B name the same file 'path'" (A before B in the array's order).
 * Then every existing output must be a regular file (advio_check_output: a device, FIFO,
 * socket or directory would be replaced), else CLI_USAGE after "advect <cmd>: A: reason". */
int cli_check_paths(const char *cmd, const cli_path *paths, int count);

/* Bytes of physical memory (0 when unknown). */
uint64_t cli_physical_memory(void);

#endif
