/* Shared pieces of the file-format layer: error messages, arrays, whole-file reading, the
 * point-set loader used by the CLI, and atomic output files (temporary file + rename). */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

adv_status advio_fail(char *msg, size_t msg_size, adv_status status, const char *fmt, ...) {
    if (msg && msg_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msg_size, fmt, ap);
        va_end(ap);
    }
    return status;
}

void advio_array_free(advio_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

adv_status advio_array_convert(advio_array *a, adv_precision dtype, char *msg, size_t msg_size) {
    if (!a || !a->data) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "no array");
    if (a->dtype == dtype) return ADV_OK;
    size_t n = a->count;
    if (dtype == ADV_FLOAT64) {
        double *d = malloc((n ? n : 1) * sizeof *d);
        if (!d) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
        const float *s = a->data;
        for (size_t i = 0; i < n; ++i) d[i] = s[i];
        free(a->data);
        a->data = d;
    } else {
        // Narrowing in place: each float is written at or before the double it came from.
        const double *s = a->data;
        float *d = a->data;
        for (size_t i = 0; i < n; ++i) d[i] = (float)s[i];
    }
    a->dtype = dtype;
    return ADV_OK;
}

int advio_array_all_finite(const advio_array *a, size_t *first_bad) {
    for (size_t i = 0; i < a->count; ++i) {
        double v = a->dtype == ADV_FLOAT64 ? ((const double *)a->data)[i]
                                           : ((const float *)a->data)[i];
        if (!isfinite(v)) {
            if (first_bad) *first_bad = i;
            return 0;
        }
    }
    return 1;
}

adv_status advio_read_file(const char *path, char **buf, size_t *size, char *msg,
                           size_t msg_size) {
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return advio_fail(msg, msg_size, ADV_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *b = malloc(n + 1);
    if (!b) {
        fclose(f);
        return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
    }
    size_t got = fread(b, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != n) {
        free(b);
        return advio_fail(msg, msg_size, ADV_ERR_IO, "error reading '%s'", path);
    }
    b[n] = 0;
    *buf = b;
    *size = n;
    return ADV_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    if (a < b) return 0;
    for (size_t i = 0; i < b; ++i) {
        char c = s[a - b + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suffix[i]) return 0;
    }
    return 1;
}

adv_status advio_read_points(const char *path, advio_array *out, char *msg, size_t msg_size) {
    memset(out, 0, sizeof *out);
    adv_status s;
    if (ends_with(path, ".npy"))
        s = advio_npy_read(path, out, msg, msg_size);
    else if (ends_with(path, ".csv"))
        s = advio_csv_read(path, out, msg, msg_size);
    else
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                          "'%s': unknown file type (expected a .npy or .csv file)", path);
    if (s != ADV_OK) return s;
    if (out->ndim != 2) {
        int nd = out->ndim;
        advio_array_free(out);
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                          "'%s': expected a 2-D array of shape (n, d), got %d dimension%s", path,
                          nd, nd == 1 ? "" : "s");
    }
    if (out->shape[0] == 0 || out->shape[1] == 0) {
        long long r = (long long)out->shape[0], c = (long long)out->shape[1];
        advio_array_free(out);
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "'%s': the array is empty (shape (%lld, %lld))",
                          path, r, c);
    }
    if (out->shape[1] > (1 << 24)) {
        long long c = (long long)out->shape[1];
        advio_array_free(out);
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "'%s': %lld columns is too many", path, c);
    }
    size_t bad;
    if (!advio_array_all_finite(out, &bad)) {
        long long r = (long long)(bad / (size_t)out->shape[1]), c = (long long)(bad % (size_t)out->shape[1]);
        advio_array_free(out);
        return advio_fail(msg, msg_size, ADV_ERR_NONFINITE,
                          "'%s': non-finite value (NaN or infinity) at row %lld, column %lld", path,
                          r, c);
    }
    return advio_array_convert(out, ADV_FLOAT64, msg, msg_size);
}

/* ---- atomic output files ---- */

/* What a non-regular file is, for messages. */
static const char *file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

/* The message of a result of the atomic-file writer (atomic_file.h) for path. */
static adv_status atomic_error(const char *path, int err, unsigned mode, char *msg,
                               size_t msg_size) {
    if (err == ADVI_ATOMIC_NOT_REGULAR && S_ISDIR(mode))
        return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot write '%s': it is a directory", path);
    if (err == ADVI_ATOMIC_NOT_REGULAR)
        return advio_fail(msg, msg_size, ADV_ERR_IO,
                          "cannot write '%s': it is %s, not a regular file (the output would "
                          "replace it)", path, file_kind(mode));
    if (err == ADVI_ATOMIC_UNTRUSTED_LINK)
        return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot write '%s': a symbolic link in a "
                          "sticky directory owned by another user is not followed "
                          "(protected-symlinks rule)", path);
    if (err == ENOMEM) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot create a file next to '%s': %s", path,
                      strerror(err));
}

adv_status advio_check_output(const char *path, char *msg, size_t msg_size) {
    if (!path || !*path) return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "empty output path");
    // What the writer will reach (advi_atomic_begin makes the same checks when it opens).
    char *target = advi_follow_links(path);
    if (!target)
        return atomic_error(path, errno == EACCES ? ADVI_ATOMIC_UNTRUSTED_LINK : errno, 0, msg,
                            msg_size);
    struct stat st;
    const int not_regular = stat(target, &st) == 0 && !S_ISREG(st.st_mode);
    free(target);
    if (not_regular) return atomic_error(path, ADVI_ATOMIC_NOT_REGULAR, st.st_mode, msg, msg_size);
    return ADV_OK;
}

adv_status advio_atomic_open(advio_atomic *a, const char *path, char *msg, size_t msg_size) {
    a->f = NULL;
    if (!path || !*path) return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "empty output path");
    unsigned mode = 0;
    const int err = advi_atomic_begin(&a->file, path, &mode);
    a->f = a->file.fp;
    return err ? atomic_error(path, err, mode, msg, msg_size) : ADV_OK;
}

adv_status advio_atomic_commit(advio_atomic *a, char *msg, size_t msg_size) {
    if (!a->f) return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "output file is not open");
    char target[512];
    snprintf(target, sizeof target, "%s", a->file.target);
    const int err = advi_atomic_commit(&a->file, 1);
    a->f = NULL;
    if (err) return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot write '%s': %s", target, strerror(err));
    return ADV_OK;
}

void advio_atomic_abort(advio_atomic *a) {
    if (!a || !a->f) return;
    advi_atomic_commit(&a->file, 0);
    a->f = NULL;
}
