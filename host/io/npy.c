/* Strict reader and writer of NumPy .npy files (format versions 1.0, 2.0 and 3.0, see
 * numpy/lib/format.py): dtypes '<f4' and '<f8' only, 1 to ADVIO_MAX_DIMS dimensions, Fortran
 * order transposed into C order on reading. The header dictionary is parsed by a small
 * recursive-descent parser of exactly the Python literals NumPy writes, so a malformed or
 * hostile file gives ADV_ERR_FORMAT with a reason instead of undefined behaviour (this file
 * is the target of tests/fuzz/npy_fuzz.c). */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy code assumes a little-endian host ('<f4'/'<f8' are read by memcpy)"
#endif

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

typedef struct npy_header {
    adv_precision dtype;
    int fortran;
    int ndim;
    int64_t shape[ADVIO_MAX_DIMS];
    size_t count; /* elements */
    size_t bytes; /* data bytes */
} npy_header;

/* Reads the fixed preamble (magic, version, header length). avail bytes of the file are in b
 * (all of them if the file is shorter). On success *header_off is where the dictionary
 * starts and *header_len its length. */
static adv_status npy_preamble(const unsigned char *b, size_t avail, size_t *header_off,
                               size_t *header_len, char *msg, size_t ms) {
    size_t m = avail < 6 ? avail : 6;
    if (memcmp(b, npy_magic, m) != 0)
        return advio_fail(msg, ms, ADV_ERR_FORMAT, "not a .npy file (bad magic string)");
    if (avail < 10)
        return advio_fail(msg, ms, ADV_ERR_FORMAT, "truncated .npy file (%zu bytes, no complete header)",
                          avail);
    int major = b[6], minor = b[7];
    if (minor != 0 || major < 1 || major > 3)
        return advio_fail(msg, ms, ADV_ERR_FORMAT,
                          "unsupported .npy format version %d.%d (expected 1.0, 2.0 or 3.0)", major,
                          minor);
    if (major == 1) {
        *header_off = 10;
        *header_len = (size_t)b[8] | (size_t)b[9] << 8;
    } else {
        if (avail < 12)
            return advio_fail(msg, ms, ADV_ERR_FORMAT, "truncated .npy file (%zu bytes, no complete header)",
                              avail);
        uint32_t len = (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 |
                       (uint32_t)b[11] << 24;
        *header_off = 12;
        *header_len = len;
    }
    if (*header_len > ADVIO_NPY_MAX_HEADER)
        return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header too long (%zu bytes, at most %d accepted)",
                          *header_len, ADVIO_NPY_MAX_HEADER);
    return ADV_OK;
}

/* ---- the header dictionary: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), } ---- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) ++c->p;
}

static int accept(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        ++c->p;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes; copies it into out (at most out_size - 1 chars). */
static int parse_string(cursor *c, char *out, size_t out_size) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || (unsigned char)*c->p < 0x20 || (unsigned char)*c->p >= 0x7f) return 0;
        if (n + 1 >= out_size) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    ++c->p; // closing quote
    out[n] = 0;
    return 1;
}

static int parse_word(cursor *c, const char *word) {
    skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    const char *after = c->p + n;
    if (after < c->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z') ||
                           (*after >= '0' && *after <= '9') || *after == '_'))
        return 0;
    c->p = after;
    return 1;
}

/* Non-negative decimal integer; -1 not a number, -2 too large. */
static int parse_dim(cursor *c, int64_t *v) {
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
    int64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int digit = *c->p++ - '0';
        if (x > (INT64_MAX - digit) / 10) return -2;
        x = x * 10 + digit;
    }
    *v = x;
    return 0;
}

static adv_status parse_shape(cursor *c, npy_header *h, char *msg, size_t ms) {
    if (!accept(c, '('))
        return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: 'shape' is not a tuple");
    int n = 0, trailing_comma = 0;
    while (!accept(c, ')')) {
        if (n > 0 && !trailing_comma)
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: malformed 'shape' tuple");
        int64_t v;
        int r = parse_dim(c, &v);
        if (r == -2)
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: a dimension in 'shape' is too large");
        if (r < 0)
            return advio_fail(msg, ms, ADV_ERR_FORMAT,
                              ".npy header: 'shape' must hold non-negative integers");
        if (n == ADVIO_MAX_DIMS)
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy array has more than %d dimensions",
                              ADVIO_MAX_DIMS);
        h->shape[n++] = v;
        trailing_comma = accept(c, ',');
    }
    // In Python "(5)" is the integer 5, not a tuple: NumPy never writes it.
    if (n == 1 && !trailing_comma)
        return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: 'shape' (n) is not a tuple (expected (n,))");
    if (n == 0)
        return advio_fail(msg, ms, ADV_ERR_FORMAT,
                          ".npy array is 0-dimensional (a scalar); expected 1 to %d dimensions",
                          ADVIO_MAX_DIMS);
    h->ndim = n;
    return ADV_OK;
}

static adv_status parse_header(const char *text, size_t len, npy_header *h, char *msg, size_t ms) {
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < len; ++i)
        if (text[i] == 0 || (unsigned char)text[i] >= 0x80)
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header contains a non-ASCII or NUL byte");
    cursor c = {text, text + len};
    if (!accept(&c, '{'))
        return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header is not a dictionary");
    int have_descr = 0, have_order = 0, have_shape = 0, need_comma = 0;
    while (!accept(&c, '}')) {
        if (need_comma && !accept(&c, ','))
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: expected ',' or '}' in the dictionary");
        if (accept(&c, '}')) break; // trailing comma, as NumPy writes
        char key[32];
        if (!parse_string(&c, key, sizeof key))
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: expected a quoted key");
        if (!accept(&c, ':'))
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: expected ':' after '%s'", key);
        if (!strcmp(key, "descr")) {
            if (have_descr++)
                return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: key 'descr' repeated");
            char descr[32];
            if (!parse_string(&c, descr, sizeof descr))
                return advio_fail(msg, ms, ADV_ERR_FORMAT,
                                  ".npy header: 'descr' is not a simple dtype string (structured arrays are not supported)");
            if (!strcmp(descr, "<f4"))
                h->dtype = ADV_FLOAT32;
            else if (!strcmp(descr, "<f8"))
                h->dtype = ADV_FLOAT64;
            else
                return advio_fail(msg, ms, ADV_ERR_FORMAT,
                                  ".npy dtype '%s' is not supported (expected float32 '<f4' or float64 "
                                  "'<f8'; convert with arr.astype('<f8'))",
                                  descr);
        } else if (!strcmp(key, "fortran_order")) {
            if (have_order++)
                return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: key 'fortran_order' repeated");
            if (parse_word(&c, "True"))
                h->fortran = 1;
            else if (parse_word(&c, "False"))
                h->fortran = 0;
            else
                return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: 'fortran_order' must be True or False");
        } else if (!strcmp(key, "shape")) {
            if (have_shape++)
                return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: key 'shape' repeated");
            adv_status s = parse_shape(&c, h, msg, ms);
            if (s != ADV_OK) return s;
        } else {
            return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: unexpected key '%s'", key);
        }
        need_comma = 1;
    }
    skip_ws(&c);
    if (c.p != c.end)
        return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: unexpected text after the dictionary");
    if (!have_descr || !have_order || !have_shape)
        return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy header: missing key '%s'",
                          !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    size_t item = h->dtype == ADV_FLOAT64 ? 8 : 4;
    size_t count = 1;
    for (int i = 0; i < h->ndim; ++i) {
        uint64_t d = (uint64_t)h->shape[i];
        if (d != 0 && count > SIZE_MAX / item / d) {
            // A zero dimension elsewhere makes the product 0, which is still a valid file.
            int zero = 0;
            for (int j = 0; j < h->ndim; ++j) zero |= h->shape[j] == 0;
            if (!zero)
                return advio_fail(msg, ms, ADV_ERR_FORMAT, ".npy shape is too large (its byte size overflows)");
            count = 0;
            break;
        }
        count *= (size_t)d;
    }
    h->count = count;
    h->bytes = count * item;
    return ADV_OK;
}

/* Copies Fortran-ordered src into C-ordered dst (element size item). */
static void fortran_to_c(const npy_header *h, const void *src, void *dst, size_t item) {
    int n = h->ndim;
    int64_t idx[ADVIO_MAX_DIMS] = {0};
    size_t fstride[ADVIO_MAX_DIMS];
    size_t s = 1;
    for (int k = 0; k < n; ++k) {
        fstride[k] = s;
        s *= (size_t)h->shape[k];
    }
    for (size_t i = 0; i < h->count; ++i) {
        size_t off = 0;
        for (int k = 0; k < n; ++k) off += (size_t)idx[k] * fstride[k];
        memcpy((char *)dst + i * item, (const char *)src + off * item, item);
        for (int k = n - 1; k >= 0; --k) { // C order: last index fastest
            if (++idx[k] < h->shape[k]) break;
            idx[k] = 0;
        }
    }
}

/* Moves the parsed data (C or Fortran order) into out, which takes ownership of raw. */
static adv_status finish(const npy_header *h, void *raw, advio_array *out, char *msg, size_t ms) {
    size_t item = h->dtype == ADV_FLOAT64 ? 8 : 4;
    if (h->fortran && h->ndim > 1 && h->count > 1) {
        void *c_order = malloc(h->bytes);
        if (!c_order) {
            free(raw);
            return advio_fail(msg, ms, ADV_ERR_OUT_OF_MEMORY, "out of memory (%zu bytes)", h->bytes);
        }
        fortran_to_c(h, raw, c_order, item);
        free(raw);
        raw = c_order;
    }
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    for (int k = 0; k < h->ndim; ++k) out->shape[k] = h->shape[k];
    out->count = h->count;
    out->data = raw;
    return ADV_OK;
}

adv_status advio_npy_parse(const void *buf, size_t size, advio_array *out, char *msg,
                           size_t msg_size) {
    if (!out) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "out is NULL");
    memset(out, 0, sizeof *out);
    if (!buf && size) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "buffer is NULL");
    const unsigned char *b = buf;
    size_t off, len;
    adv_status s = npy_preamble(b, size, &off, &len, msg, msg_size);
    if (s != ADV_OK) return s;
    if (len > size - off)
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                          "truncated .npy file (header of %zu bytes, only %zu present)", len, size - off);
    npy_header h;
    s = parse_header((const char *)b + off, len, &h, msg, msg_size);
    if (s != ADV_OK) return s;
    size_t have = size - off - len;
    if (have < h.bytes)
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                          "truncated .npy data (%zu bytes expected, %zu present)", h.bytes, have);
    if (have > h.bytes)
        return advio_fail(msg, msg_size, ADV_ERR_FORMAT,
                          "trailing garbage in .npy file (%zu bytes after the data)", have - h.bytes);
    void *raw = malloc(h.bytes ? h.bytes : 1);
    if (!raw) return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory (%zu bytes)", h.bytes);
    if (h.bytes) memcpy(raw, b + off + len, h.bytes);
    return finish(&h, raw, out, msg, msg_size);
}

adv_status advio_npy_read(const char *path, advio_array *out, char *msg, size_t msg_size) {
    if (!out || !path) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "path or out is NULL");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return advio_fail(msg, msg_size, ADV_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return advio_fail(msg, msg_size, ADV_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    // Read the header only, then the data straight into the array (no second copy).
    unsigned char pre[12];
    size_t got = fread(pre, 1, sizeof pre, f);
    size_t off, len;
    char why[400];
    adv_status s = npy_preamble(pre, got, &off, &len, why, sizeof why);
    char *text = NULL;
    npy_header h;
    void *raw = NULL;
    if (s != ADV_OK) goto fail;
    if (len > size - off) {
        s = advio_fail(why, sizeof why, ADV_ERR_FORMAT,
                       "truncated .npy file (header of %zu bytes, only %zu present)", len, size - off);
        goto fail;
    }
    text = malloc(len + 1);
    if (!text) {
        s = advio_fail(why, sizeof why, ADV_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    if (fseek(f, (long)off, SEEK_SET) != 0 || fread(text, 1, len, f) != len) {
        s = advio_fail(why, sizeof why, ADV_ERR_IO, "read error");
        goto fail;
    }
    s = parse_header(text, len, &h, why, sizeof why);
    if (s != ADV_OK) goto fail;
    size_t have = size - off - len;
    if (have < h.bytes) {
        s = advio_fail(why, sizeof why, ADV_ERR_FORMAT,
                       "truncated .npy data (%zu bytes expected, %zu present)", h.bytes, have);
        goto fail;
    }
    if (have > h.bytes) {
        s = advio_fail(why, sizeof why, ADV_ERR_FORMAT,
                       "trailing garbage in .npy file (%zu bytes after the data)", have - h.bytes);
        goto fail;
    }
    raw = malloc(h.bytes ? h.bytes : 1);
    if (!raw) {
        s = advio_fail(why, sizeof why, ADV_ERR_OUT_OF_MEMORY, "out of memory (%zu bytes)", h.bytes);
        goto fail;
    }
    if (fread(raw, 1, h.bytes, f) != h.bytes) {
        s = advio_fail(why, sizeof why, ADV_ERR_IO, "read error");
        goto fail;
    }
    free(text);
    fclose(f);
    s = finish(&h, raw, out, why, sizeof why);
    if (s != ADV_OK) return advio_fail(msg, msg_size, s, "'%s': %s", path, why);
    return ADV_OK;
fail:
    free(raw);
    free(text);
    fclose(f);
    return advio_fail(msg, msg_size, s, "'%s': %s", path, why);
}

adv_status advio_npy_write_header(FILE *f, adv_precision dtype, int ndim, const int64_t *shape,
                                  size_t *header_bytes, char *msg, size_t msg_size) {
    if (!f || !shape) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "stream or shape is NULL");
    if (dtype != ADV_FLOAT32 && dtype != ADV_FLOAT64)
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_VALUE, "dtype must be float32 or float64");
    if (ndim < 1 || ndim > ADVIO_MAX_DIMS)
        return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "ndim %d is outside 1..%d", ndim,
                          ADVIO_MAX_DIMS);
    size_t item = dtype == ADV_FLOAT64 ? 8 : 4, count = 1;
    int zero = 0;
    for (int k = 0; k < ndim; ++k) zero |= shape[k] == 0;
    for (int k = 0; k < ndim; ++k) {
        if (shape[k] < 0)
            return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "shape[%d] is negative", k);
        if (!zero && (uint64_t)shape[k] > SIZE_MAX / item / count)
            return advio_fail(msg, msg_size, ADV_ERR_INVALID_SIZE, "array byte size overflows");
        count *= (size_t)shape[k];
    }
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == ADV_FLOAT64 ? "<f8" : "<f4");
    for (int k = 0; k < ndim; ++k)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", k ? ", " : "", (long long)shape[k]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    // Pad with spaces so that the data start on a 64-byte boundary; '\n' ends the header.
    // Same rule as NumPy's _wrap_header (1..64 spaces), so the bytes match np.save's.
    size_t total = 10 + (size_t)n + 1;
    size_t pad = 64 - total % 64;
    size_t hlen = (size_t)n + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    int bad = fwrite(pre, 1, 10, f) != 10 || fwrite(dict, 1, (size_t)n, f) != (size_t)n;
    for (size_t i = 0; i < pad && !bad; ++i) bad = fputc(' ', f) == EOF;
    if (!bad) bad = fputc('\n', f) == EOF;
    if (bad) return advio_fail(msg, msg_size, ADV_ERR_IO, "write error: %s", strerror(errno));
    if (header_bytes) *header_bytes = 10 + hlen;
    return ADV_OK;
}

adv_status advio_npy_write_stream(FILE *f, adv_precision dtype, int ndim, const int64_t *shape,
                                  const void *data, char *msg, size_t msg_size) {
    adv_status s = advio_npy_write_header(f, dtype, ndim, shape, NULL, msg, msg_size);
    if (s != ADV_OK) return s;
    size_t item = dtype == ADV_FLOAT64 ? 8 : 4, count = 1;
    for (int k = 0; k < ndim; ++k) count *= (size_t)shape[k];
    if (count && !data) return advio_fail(msg, msg_size, ADV_ERR_NULL_POINTER, "data is NULL");
    if (count && fwrite(data, item, count, f) != count)
        return advio_fail(msg, msg_size, ADV_ERR_IO, "write error: %s", strerror(errno));
    return ADV_OK;
}

adv_status advio_npy_write(const char *path, adv_precision dtype, int ndim,
                           const int64_t *shape, const void *data, char *msg, size_t msg_size) {
    advio_atomic a;
    adv_status s = advio_atomic_open(&a, path, msg, msg_size);
    if (s != ADV_OK) return s;
    s = advio_npy_write_stream(a.f, dtype, ndim, shape, data, msg, msg_size);
    if (s != ADV_OK) {
        advio_atomic_abort(&a);
        return s;
    }
    return advio_atomic_commit(&a, msg, msg_size);
}
