/* Strict CSV reader for 2-D float64 matrices (the CLI's alternative to .npy for point sets):
 * one row per line, comma-separated numbers, an optional header line, no ragged rows, no
 * empty or non-numeric fields, no NaN or infinities, no hexadecimal floats. Numbers are parsed
 * by strtod in the C locale (the CLI never calls setlocale). */
#include "io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct line {
    const char *p;
    size_t n;
} line;

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Trims spaces and tabs. */
static line trim(const char *p, size_t n) {
    while (n && is_blank(*p)) ++p, --n;
    while (n && is_blank(p[n - 1])) --n;
    line l = {p, n};
    return l;
}

/* Parses one field as a finite number; 0 ok, -1 not a number, -2 not finite. strtod needs a
 * terminated string and the buffer need not be one: the field is copied into scratch, which
 * holds the longest line (so a field of any length parses). */
static int parse_field(line f, char *scratch, double *v) {
    if (f.n == 0) return -1;
    memcpy(scratch, f.p, f.n);
    scratch[f.n] = 0;
    char *end;
    double x = strtod(scratch, &end);
    if (end == scratch || *end != 0) return -1;
    if (!isfinite(x)) return -2;
    // strtod also reads C99 hexadecimal floats ("0x1p3"), which no CSV writer produces: a
    // field that only parses that way is more likely a mistake than data.
    if (strpbrk(scratch, "xX")) return -1;
    *v = x;
    return 0;
}

static size_t count_fields(line l) {
    size_t k = 1;
    for (size_t i = 0; i < l.n; ++i) k += l.p[i] == ',';
    return k;
}

adv_status advio_csv_parse(const char *buf, size_t size, advio_array *out, char *msg,
                           size_t msg_size) {
    if (!out) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "out is NULL");
    memset(out, 0, sizeof *out);
    if (!buf && size) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "buffer is NULL");
    const char *p = buf, *end = buf + size;
    if (size >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3;
    // Pass 1: split lines, count data rows, find the column count.
    size_t cap = 1024, nlines = 0, longest = 0;
    line *lines = malloc(cap * sizeof *lines);
    if (!lines) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - p);
        if (n && p[n - 1] == '\r') --n;
        if (memchr(p, 0, n)) {
            free(lines);
            return advio_fail(msg, msg_size, ADV_ERR_FORMAT, "CSV line %zu contains a NUL byte", nlines + 1);
        }
        if (nlines == cap) {
            cap *= 2;
            line *grown = realloc(lines, cap * sizeof *lines);
            if (!grown) {
                free(lines);
                return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
            }
            lines = grown;
        }
        lines[nlines].p = p;
        lines[nlines].n = n;
        ++nlines;
        if (n > longest) longest = n;
        p = nl ? nl + 1 : end;
    }
    // Trailing blank lines are ignored; any other blank line is an error.
    while (nlines && trim(lines[nlines - 1].p, lines[nlines - 1].n).n == 0) --nlines;
    adv_status s = ADV_OK;
    size_t first = 0, cols = 0;
    double *data = NULL;
    char *scratch = malloc(longest + 1);
    if (!scratch) {
        s = advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if (nlines == 0) {
        s = advio_fail(msg, msg_size, ADV_ERR_FORMAT, "CSV file has no data rows");
        goto done;
    }
    cols = count_fields(lines[0]);
    // The first line is a header when none of its fields is a number (a line mixing numbers
    // and text is a bad data row, reported below, rather than a header).
    {
        line l = lines[0];
        const char *q = l.p, *e = l.p + l.n;
        first = 1;
        while (q <= e) {
            const char *c = memchr(q, ',', (size_t)(e - q));
            const char *fe = c ? c : e;
            double v;
            if (parse_field(trim(q, (size_t)(fe - q)), scratch, &v) != -1) first = 0;
            q = fe + 1;
        }
    }
    size_t rows = nlines - first;
    if (rows == 0) {
        s = advio_fail(msg, msg_size, ADV_ERR_FORMAT, "CSV file has a header but no data rows");
        goto done;
    }
    if (cols > SIZE_MAX / sizeof(double) / rows) {
        s = advio_fail(msg, msg_size, ADV_ERR_FORMAT, "CSV file is too large");
        goto done;
    }
    data = malloc(rows * cols * sizeof *data);
    if (!data) {
        s = advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (size_t r = 0; r < nlines; ++r) {
        line l = lines[r];
        size_t k = count_fields(l);
        if (trim(l.p, l.n).n == 0) {
            s = advio_fail(msg, msg_size, ADV_ERR_FORMAT, "CSV line %zu is blank", r + 1);
            goto done;
        }
        if (k != cols) {
            s = advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                           "CSV line %zu has %zu field%s, expected %zu (ragged rows)", r + 1, k,
                           k == 1 ? "" : "s", cols);
            goto done;
        }
        if (r < first) continue;
        const char *q = l.p, *e = l.p + l.n;
        for (size_t c = 0; c < cols; ++c) {
            const char *comma = memchr(q, ',', (size_t)(e - q));
            const char *fe = comma ? comma : e;
            line f = trim(q, (size_t)(fe - q));
            double v;
            int rc = parse_field(f, scratch, &v);
            if (rc == -2) {
                s = advio_fail(msg, msg_size, ADV_ERR_NONFINITE,
                               "CSV line %zu, column %zu: non-finite value '%.*s'", r + 1, c + 1,
                               (int)(f.n > 40 ? 40 : f.n), f.p);
                goto done;
            }
            if (rc == -1) {
                s = advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                               "CSV line %zu, column %zu: '%.*s' is not a number", r + 1, c + 1,
                               (int)(f.n > 40 ? 40 : f.n), f.p);
                goto done;
            }
            data[(r - first) * cols + c] = v;
            q = fe + 1;
        }
    }
    out->dtype = ADV_FLOAT64;
    out->ndim = 2;
    out->shape[0] = (int64_t)rows;
    out->shape[1] = (int64_t)cols;
    out->count = rows * cols;
    out->data = data;
    data = NULL;
done:
    free(scratch);
    free(data);
    free(lines);
    return s;
}

adv_status advio_csv_read(const char *path, advio_array *out, char *msg, size_t msg_size) {
    if (!out) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "out is NULL");
    memset(out, 0, sizeof *out);
    char *buf;
    size_t size;
    adv_status s = advio_read_file(path, &buf, &size, msg, msg_size);
    if (s != ADV_OK) return s;
    char why[400];
    s = advio_csv_parse(buf, size, out, why, sizeof why);
    free(buf);
    if (s != ADV_OK) return advio_fail(msg, msg_size, s, "'%s': %s", path, why);
    return ADV_OK;
}
