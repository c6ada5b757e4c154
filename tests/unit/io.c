/* Unit tests of the CLI's file formats (host/io): .npy round trips and the exact bytes NumPy
 * writes, every class of corrupt .npy file with its status, CSV parsing, PNG write/read back,
 * PGM parsing, atomic outputs, the Jacobi eigen-solver and PCA against explicit references,
 * and the scatter/tile rasterisers at known pixels. */
#define _GNU_SOURCE
#include "io.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char msg[512];

/* ---- helpers ---- */

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/advect-io-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
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

static const char *tmp_path(const char *name) {
    static char p[4][4608]; // a directory and a name of up to NAME_MAX (longest_names)
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Builds a .npy buffer by hand: version major.0, the given dictionary text padded to 64 bytes
 * with '\n' at the end, then `data_bytes` bytes 0, 1, 2, ... */
static size_t build_npy(unsigned char *buf, int major, const char *dict, size_t data_bytes) {
    size_t pre = major == 1 ? 10 : 12, n = strlen(dict);
    size_t pad = 64 - (pre + n + 1) % 64, hlen = n + pad + 1;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = hlen & 0xff;
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        for (int k = 0; k < 4; ++k) buf[8 + k] = (unsigned char)(hlen >> (8 * k));
    }
    memcpy(buf + pre, dict, n);
    memset(buf + pre + n, ' ', pad);
    buf[pre + n + pad] = '\n';
    for (size_t i = 0; i < data_bytes; ++i) buf[pre + hlen + i] = (unsigned char)i;
    return pre + hlen + data_bytes;
}

static unsigned char big[1 << 16];

static adv_status parse(const void *b, size_t n, advio_array *a) {
    msg[0] = 0;
    return advio_npy_parse(b, n, a, msg, sizeof msg);
}

TestSuite(npy, .init = make_tmpdir, .fini = remove_tmpdir);

/* ---- .npy ---- */

Test(npy, header_bytes_match_numpy) {
    // np.save of np.zeros((3, 2)) starts with exactly these 128 bytes (NumPy >= 1.9 pads the
    // header with spaces to a multiple of 64, then '\n').
    const char dict[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
    unsigned char expected[128];
    memcpy(expected, "\x93NUMPY\x01\x00\x76\x00", 10);
    memcpy(expected + 10, dict, sizeof dict - 1);
    memset(expected + 10 + sizeof dict - 1, ' ', 128 - 10 - (sizeof dict - 1) - 1);
    expected[127] = '\n';
    double data[6] = {0};
    int64_t shape[2] = {3, 2};
    const char *p = tmp_path("z.npy");
    cr_assert_eq(advio_npy_write(p, ADV_FLOAT64, 2, shape, data, msg, sizeof msg), ADV_OK, "%s", msg);
    char *buf;
    size_t size;
    cr_assert_eq(advio_read_file(p, &buf, &size, msg, sizeof msg), ADV_OK);
    cr_assert_eq(size, 128 + 48);
    cr_expect_eq(memcmp(buf, expected, 128), 0, "header differs from NumPy's");
    free(buf);
    // 1-D shapes are written as Python 1-tuples.
    int64_t s1[1] = {5};
    float f[5] = {0};
    cr_assert_eq(advio_npy_write(p, ADV_FLOAT32, 1, s1, f, msg, sizeof msg), ADV_OK);
    cr_assert_eq(advio_read_file(p, &buf, &size, msg, sizeof msg), ADV_OK);
    cr_expect(strstr(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }") == buf + 10);
    cr_expect_eq(size % 64, 20 % 64, "data must start at a 64-byte boundary");
    free(buf);
}

Test(npy, round_trip_every_rank_and_dtype) {
    for (int prec = 0; prec < 2; ++prec)
        for (int ndim = 1; ndim <= 4; ++ndim) {
            int64_t shape[4] = {3, 4, 2, 5};
            size_t count = 1;
            for (int k = 0; k < ndim; ++k) count *= (size_t)shape[k];
            size_t item = prec ? 8 : 4;
            unsigned char *data = malloc(count * item);
            for (size_t i = 0; i < count; ++i) {
                double v = sin(1.0 + (double)i) * 1e3 / (double)(i + 1);
                if (prec)
                    memcpy(data + i * 8, &v, 8);
                else {
                    float fv = (float)v;
                    memcpy(data + i * 4, &fv, 4);
                }
            }
            const char *p = tmp_path("r.npy");
            adv_precision dt = prec ? ADV_FLOAT64 : ADV_FLOAT32;
            cr_assert_eq(advio_npy_write(p, dt, ndim, shape, data, msg, sizeof msg), ADV_OK, "%s", msg);
            advio_array a;
            cr_assert_eq(advio_npy_read(p, &a, msg, sizeof msg), ADV_OK, "%s", msg);
            cr_expect_eq(a.dtype, dt);
            cr_expect_eq(a.ndim, ndim);
            for (int k = 0; k < ndim; ++k) cr_expect_eq(a.shape[k], shape[k]);
            cr_expect_eq(a.count, count);
            cr_expect_eq(memcmp(a.data, data, count * item), 0, "data differ (ndim %d, %s)", ndim,
                         prec ? "f64" : "f32");
            advio_array_free(&a);
            free(data);
        }
}

Test(npy, versions_2_and_3_and_spacing) {
    for (int major = 2; major <= 3; ++major) {
        size_t n = build_npy(big, major, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
        advio_array a;
        cr_assert_eq(parse(big, n, &a), ADV_OK, "version %d: %s", major, msg);
        cr_expect_eq(a.ndim, 2);
        cr_expect_eq(a.shape[1], 3);
        cr_expect_eq(memcmp(a.data, big + n - 24, 24), 0);
        advio_array_free(&a);
    }
    // Other key orders, double quotes, no trailing comma, extra whitespace are valid literals.
    size_t n = build_npy(big, 1, " { \"shape\" : ( 4 , ) ,'fortran_order':False,'descr':'<f8' } ", 32);
    advio_array a;
    cr_assert_eq(parse(big, n, &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.ndim, 1);
    cr_expect_eq(a.shape[0], 4);
    advio_array_free(&a);
    // Empty arrays are valid files.
    n = build_npy(big, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }", 0);
    cr_assert_eq(parse(big, n, &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.count, 0);
    cr_expect_not_null(a.data);
    advio_array_free(&a);
}

Test(npy, fortran_order_is_transposed) {
    // (2, 3) array [[1,2,3],[4,5,6]] stored column-major: 1 4 2 5 3 6.
    size_t n = build_npy(big, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 0);
    const double col[6] = {1, 4, 2, 5, 3, 6};
    memcpy(big + n, col, sizeof col);
    advio_array a;
    cr_assert_eq(parse(big, n + sizeof col, &a), ADV_OK, "%s", msg);
    for (int i = 0; i < 6; ++i) cr_expect_eq(((double *)a.data)[i], i + 1.0);
    advio_array_free(&a);
    // 3-D (2, 3, 4): Fortran offset i + 2 j + 6 k holds the value 100 i + 10 j + k.
    n = build_npy(big, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }", 0);
    float f[24];
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k) f[i + 2 * j + 6 * k] = (float)(100 * i + 10 * j + k);
    memcpy(big + n, f, sizeof f);
    cr_assert_eq(parse(big, n + sizeof f, &a), ADV_OK, "%s", msg);
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k)
                cr_expect_eq(((float *)a.data)[(i * 3 + j) * 4 + k], (float)(100 * i + 10 * j + k));
    advio_array_free(&a);
}

/* Every corrupt-file class gives ADV_ERR_FORMAT and a message naming the problem. */
Test(npy, corrupt_files) {
    static const struct {
        const char *dict;
        long data; /* bytes of data appended (-1: 8 * 6 = the right amount for (2, 3) f8) */
        const char *needle;
    } cases[] = {
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", 24, "dtype '<i4'"},
        {"{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", -1, "dtype '>f8'"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", 6, "not supported"},
        {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", 16, "structured"},
        {"{'descr': '<f8', 'fortran_order': Maybe, 'shape': (2, 3), }", -1, "True or False"},
        {"{'descr': '<f8', 'fortran_order': Falsey, 'shape': (2, 3), }", -1, "True or False"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (6), }", 48, "not a tuple"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8, "0-dimensional"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", 8, "non-negative"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2.5,), }", 8, "malformed"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': [2, 3], }", -1, "not a tuple"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 8, "more than 8"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 8, "overflows"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8, "too large"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 47, "truncated .npy data"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 49, "trailing garbage"},
        {"{'descr': '<f8', 'fortran_order': False, }", 8, "missing key 'shape'"},
        {"{'fortran_order': False, 'shape': (2, 3), }", -1, "missing key 'descr'"},
        {"{'descr': '<f8', 'shape': (2, 3), }", -1, "missing key 'fortran_order'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'extra': 1, }", -1, "unexpected key 'extra'"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", -1, "repeated"},
        {"{'descr': '<f8' 'fortran_order': False, 'shape': (2, 3), }", -1, "expected ','"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } x", -1, "after the dictionary"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), ", -1, "quoted key"},
        {"['descr', '<f8']", -1, "not a dictionary"},
        {"{'descr: '<f8', 'fortran_order': False, 'shape': (2, 3), }", -1, "':'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), '\xc3\xa9': 1}", -1, "non-ASCII"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        size_t n = build_npy(big, 1, cases[c].dict, cases[c].data < 0 ? 48 : (size_t)cases[c].data);
        advio_array a;
        adv_status s = parse(big, n, &a);
        cr_expect_eq(s, ADV_ERR_FORMAT, "case %zu (%s): status %d", c, cases[c].dict, s);
        cr_expect(strstr(msg, cases[c].needle) != NULL, "case %zu: message '%s' lacks '%s'", c, msg,
                  cases[c].needle);
        cr_expect_null(a.data);
    }
}

Test(npy, corrupt_preambles_and_files) {
    advio_array a;
    size_t n = build_npy(big, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
    // Bad magic, short files, unknown versions.
    unsigned char tmp[256];
    memcpy(tmp, big, n);
    tmp[1] = 'X';
    cr_expect_eq(parse(tmp, n, &a), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "magic"));
    cr_expect_eq(parse(big, 0, &a), ADV_ERR_FORMAT);
    cr_expect_eq(parse(big, 5, &a), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "truncated"), "%s", msg);
    cr_expect_eq(parse(big, 9, &a), ADV_ERR_FORMAT);
    cr_expect_eq(parse(big, 40, &a), ADV_ERR_FORMAT); // header cut
    cr_expect(strstr(msg, "header of"), "%s", msg);
    const int versions[][2] = {{0, 0}, {1, 1}, {4, 0}, {255, 0}};
    for (int v = 0; v < 4; ++v) {
        memcpy(tmp, big, n);
        tmp[6] = (unsigned char)versions[v][0];
        tmp[7] = (unsigned char)versions[v][1];
        cr_expect_eq(parse(tmp, n, &a), ADV_ERR_FORMAT);
        cr_expect(strstr(msg, "version"), "%s", msg);
    }
    // Header longer than the limit (version 2.0 allows 4 GiB lengths).
    unsigned char v2[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xa0, 0x86, 0x01, 0x00}; // 100000
    cr_expect_eq(parse(v2, sizeof v2, &a), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "header too long"), "%s", msg);
    // Through files: the same checks, plus missing files and directories (ADV_ERR_IO).
    write_bytes(tmp_path("t.npy"), big, n - 3);
    cr_expect_eq(advio_npy_read(tmp_path("t.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "truncated") && strstr(msg, "t.npy"), "%s", msg);
    write_bytes(tmp_path("g.npy"), big, n);
    FILE *f = fopen(tmp_path("g.npy"), "ab");
    fputs("junk", f);
    fclose(f);
    cr_expect_eq(advio_npy_read(tmp_path("g.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "trailing garbage"), "%s", msg);
    write_bytes(tmp_path("h.npy"), v2, sizeof v2);
    cr_expect_eq(advio_npy_read(tmp_path("h.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "header too long"), "%s", msg);
    write_bytes(tmp_path("e.npy"), "", 0);
    cr_expect_eq(advio_npy_read(tmp_path("e.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect_eq(advio_npy_read(tmp_path("missing.npy"), &a, msg, sizeof msg), ADV_ERR_IO);
    cr_expect(strstr(msg, "missing.npy"), "%s", msg);
    cr_expect_eq(advio_npy_read(tmpdir, &a, msg, sizeof msg), ADV_ERR_IO);
    cr_expect(strstr(msg, "regular file"), "%s", msg);
}

Test(npy, writer_rejects_bad_arguments) {
    int64_t shape[2] = {2, -1};
    double d[4] = {0};
    cr_expect_eq(advio_npy_write(tmp_path("w.npy"), ADV_FLOAT64, 2, shape, d, msg, sizeof msg),
                 ADV_ERR_INVALID_SIZE);
    cr_expect_eq(advio_npy_write(tmp_path("w.npy"), ADV_FLOAT64, 0, shape, d, msg, sizeof msg),
                 ADV_ERR_INVALID_SIZE);
    // A failed write leaves nothing behind (not even the temporary file).
    cr_expect_eq(count_entries(tmpdir), 0);
    cr_expect_eq(advio_npy_write(tmp_path("nodir/w.npy"), ADV_FLOAT64, 1, shape, d, msg, sizeof msg),
                 ADV_ERR_IO);
}

/* The preamble's length checks at their boundaries: 9 bytes of a version 1.0 file and 11 of a
 * 2.0 one hold no complete preamble (one more length byte would be read past the end), and
 * the message gives the byte count, also through a file. */
Test(npy, preamble_length_boundaries) {
    advio_array a;
    size_t n = build_npy(big, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
    cr_assert_eq(n, 128 + 16);
    memset(&a, 0xa5, sizeof a);
    cr_expect_eq(parse(big, 9, &a), ADV_ERR_FORMAT);
    cr_expect_str_eq(msg, "truncated .npy file (9 bytes, no complete header)");
    cr_expect_null(a.data);
    // Version 2.0 stores the length in 4 bytes; zeros follow in the buffer, so reading the
    // 12th byte would go on to a 16-byte header of NULs.
    unsigned char v2[64] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0x10, 0, 0};
    memset(&a, 0xa5, sizeof a);
    cr_expect_eq(parse(v2, 11, &a), ADV_ERR_FORMAT);
    cr_expect_str_eq(msg, "truncated .npy file (11 bytes, no complete header)");
    cr_expect_null(a.data);
    write_bytes(tmp_path("nine.npy"), big, 9);
    char want[600];
    snprintf(want, sizeof want, "'%s': truncated .npy file (9 bytes, no complete header)",
             tmp_path("nine.npy"));
    msg[0] = 0;
    memset(&a, 0xa5, sizeof a);
    cr_expect_eq(advio_npy_read(tmp_path("nine.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect_str_eq(msg, want);
    cr_expect_null(a.data);
}

/* ADVIO_NPY_MAX_HEADER is the longest header accepted: a valid version 2.0 file whose header
 * is exactly 65536 bytes parses, and the same file with one more space is refused with both
 * numbers in the message. */
Test(npy, header_length_limit) {
    const char dict[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    const double v[2] = {1.5, -2};
    unsigned char *b = malloc(12 + ADVIO_NPY_MAX_HEADER + 1 + sizeof v);
    cr_assert_not_null(b);
    for (size_t hlen = ADVIO_NPY_MAX_HEADER; hlen <= ADVIO_NPY_MAX_HEADER + 1; ++hlen) {
        memcpy(b, "\x93NUMPY\x02\x00", 8);
        for (int k = 0; k < 4; ++k) b[8 + k] = (unsigned char)(hlen >> (8 * k));
        memcpy(b + 12, dict, sizeof dict - 1);
        memset(b + 12 + sizeof dict - 1, ' ', hlen - sizeof dict);
        b[12 + hlen - 1] = '\n';
        memcpy(b + 12 + hlen, v, sizeof v);
        advio_array a;
        memset(&a, 0xa5, sizeof a);
        adv_status s = parse(b, 12 + hlen + sizeof v, &a);
        if (hlen == ADVIO_NPY_MAX_HEADER) {
            cr_assert_eq(s, ADV_OK, "header of %zu bytes: %s", hlen, msg);
            cr_expect_eq(a.ndim, 1);
            cr_expect_eq(a.shape[0], 2);
            cr_expect_eq(memcmp(a.data, v, sizeof v), 0);
            advio_array_free(&a);
        } else {
            cr_expect_eq(s, ADV_ERR_FORMAT, "header of %zu bytes: status %d", hlen, s);
            cr_expect_str_eq(msg, ".npy header too long (65537 bytes, at most 65536 accepted)");
            cr_expect_null(a.data);
        }
    }
    free(b);
}

/* Keys are read into a 32-byte buffer: 31 characters is the longest key read (then refused
 * by name as unknown), 32 is no key at all. A backslash (a Python escape) is refused rather
 * than copied: 'sh\ape' is not a key. Any byte >= 0x80 in the header is refused up front
 * (0x80 included; 0x7f is ASCII and fails later, as text after the dictionary). */
Test(npy, header_keys_and_bytes) {
    static const char tail[] = "'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    char dict[256], key[40], want[128];
    advio_array a;
    for (int len = 31; len <= 32; ++len) {
        memset(key, 'k', (size_t)len);
        key[len] = 0;
        snprintf(dict, sizeof dict, "{'%s': 1, %s", key, tail);
        size_t n = build_npy(big, 1, dict, 16);
        memset(&a, 0xa5, sizeof a);
        cr_expect_eq(parse(big, n, &a), ADV_ERR_FORMAT, "key of %d characters", len);
        if (len == 31)
            snprintf(want, sizeof want, ".npy header: unexpected key '%s'", key);
        else
            snprintf(want, sizeof want, ".npy header: expected a quoted key");
        cr_expect_str_eq(msg, want, "key of %d characters: '%s'", len, msg);
        cr_expect_null(a.data);
    }
    static const struct {
        const char *dict;
        const char *want;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'sh\\ape': (2,), }",
         ".npy header: expected a quoted key"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\x80",
         ".npy header contains a non-ASCII or NUL byte"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\x7f",
         ".npy header: unexpected text after the dictionary"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        size_t n = build_npy(big, 1, cases[c].dict, 16);
        memset(&a, 0xa5, sizeof a);
        cr_expect_eq(parse(big, n, &a), ADV_ERR_FORMAT, "case %zu", c);
        cr_expect_str_eq(msg, cases[c].want, "case %zu: '%s'", c, msg);
        cr_expect_null(a.data);
    }
}

/* Dimensions up to INT64_MAX are read, and one more is "too large" (not wrapped round into an
 * overflowing byte size); a shape whose byte size overflows is refused unless another
 * dimension is 0, which makes the array empty (and valid) whatever the rest. */
Test(npy, shape_extremes) {
    static const struct {
        const char *shape;
        adv_status status;
        const char *want; /* the message, or NULL for ADV_OK */
    } cases[] = {
        {"(4611686018427387904, 0)", ADV_OK, NULL},
        {"(0, 9223372036854775807)", ADV_OK, NULL},
        {"(9223372036854775807,)", ADV_ERR_FORMAT, ".npy shape is too large (its byte size overflows)"},
        {"(9223372036854775808,)", ADV_ERR_FORMAT, ".npy header: a dimension in 'shape' is too large"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        char dict[160];
        snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }",
                 cases[c].shape);
        size_t n = build_npy(big, 1, dict, 0);
        advio_array a;
        memset(&a, 0xa5, sizeof a);
        adv_status s = parse(big, n, &a);
        cr_expect_eq(s, cases[c].status, "shape %s: status %d (%s)", cases[c].shape, s, msg);
        if (cases[c].want) {
            cr_expect_str_eq(msg, cases[c].want, "shape %s: '%s'", cases[c].shape, msg);
            cr_expect_null(a.data);
        } else if (s == ADV_OK) {
            cr_expect_eq(a.ndim, 2);
            cr_expect_eq(a.count, 0);
            cr_expect_eq(a.shape[0] + a.shape[1], c == 0 ? (int64_t)1 << 62 : INT64_MAX);
            cr_expect_not_null(a.data);
            advio_array_free(&a);
        }
    }
}

/* A file cut inside its header is a format error giving the header's length and the bytes
 * present after the preamble (not a read error from trying to read the missing part). */
Test(npy, file_cut_inside_the_header) {
    size_t n = build_npy(big, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
    cr_assert_eq(n, 10 + 118 + 16);
    const size_t cuts[2] = {40, 10};
    for (int k = 0; k < 2; ++k) {
        const char *p = tmp_path("cut.npy");
        write_bytes(p, big, cuts[k]);
        char want[600];
        snprintf(want, sizeof want, "'%s': truncated .npy file (header of 118 bytes, only %zu present)",
                 p, cuts[k] - 10);
        advio_array a;
        memset(&a, 0xa5, sizeof a);
        msg[0] = 0;
        cr_expect_eq(advio_npy_read(p, &a, msg, sizeof msg), ADV_ERR_FORMAT, "%zu bytes: %s", cuts[k], msg);
        cr_expect_str_eq(msg, want);
        cr_expect_null(a.data);
    }
}

/* The writer pads as NumPy's _wrap_header does: 1 to 64 spaces, then '\n', up to a multiple
 * of 64 bytes. A dictionary of 117 characters ends on a boundary with its newline
 * (10 + 117 + 1 = 128), so a whole line of 64 spaces is added, never none: the file is 192
 * bytes and its header length field 182. */
Test(npy, writer_pads_a_whole_line_on_a_boundary) {
    const int64_t shape[8] = {0, 999999, 999999, 999999, 999999, 999999, 999999, 99999999999};
    const char *p = tmp_path("pad.npy");
    cr_assert_eq(advio_npy_write(p, ADV_FLOAT64, 8, shape, NULL, msg, sizeof msg), ADV_OK, "%s", msg);
    char *buf;
    size_t size;
    cr_assert_eq(advio_read_file(p, &buf, &size, msg, sizeof msg), ADV_OK);
    cr_expect_eq(size, 192);
    cr_expect_eq((unsigned char)buf[8] | (unsigned char)buf[9] << 8, 182);
    const char dict[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 999999, 999999, "
                        "999999, 999999, 999999, 999999, 99999999999), }";
    cr_assert_eq(sizeof dict - 1, 117);
    if (size == 192) {
        cr_expect_eq(memcmp(buf + 10, dict, 117), 0);
        int spaces = 0;
        for (size_t i = 127; i < 191; ++i) spaces += buf[i] == ' ';
        cr_expect_eq(spaces, 64);
        cr_expect_eq(buf[191], '\n');
    }
    free(buf);
    char *mem = NULL;
    size_t mem_size = 0, header_bytes = 0;
    FILE *f = open_memstream(&mem, &mem_size);
    cr_assert_not_null(f);
    cr_expect_eq(advio_npy_write_header(f, ADV_FLOAT64, 8, shape, &header_bytes, msg, sizeof msg), ADV_OK);
    fclose(f);
    cr_expect_eq(header_bytes, 192);
    cr_expect_eq(mem_size, 192);
    free(mem);
    advio_array a;
    cr_assert_eq(advio_npy_read(p, &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(a.ndim, 8);
    cr_expect_eq(a.shape[7], 99999999999);
    cr_expect_eq(a.count, 0);
    advio_array_free(&a);
}

/* NULL data with elements to write is refused (it went to fwrite), and the atomic writer then
 * leaves no file, not even its temporary; with no elements, NULL data are fine. */
Test(npy, writer_refuses_null_data) {
    const int64_t shape[1] = {3}, empty[2] = {0, 3};
    char *mem = NULL;
    size_t mem_size = 0;
    FILE *f = open_memstream(&mem, &mem_size);
    cr_assert_not_null(f);
    msg[0] = 0;
    cr_expect_eq(advio_npy_write_stream(f, ADV_FLOAT64, 1, shape, NULL, msg, sizeof msg),
                 ADV_ERR_NULL_POINTER);
    cr_expect_str_eq(msg, "data is NULL");
    fclose(f);
    free(mem);
    msg[0] = 0;
    cr_expect_eq(advio_npy_write(tmp_path("null.npy"), ADV_FLOAT32, 1, shape, NULL, msg, sizeof msg),
                 ADV_ERR_NULL_POINTER);
    cr_expect_str_eq(msg, "data is NULL");
    cr_expect_eq(count_entries(tmpdir), 0, "a file was left behind");
    cr_expect_eq(advio_npy_write(tmp_path("empty.npy"), ADV_FLOAT64, 2, empty, NULL, msg, sizeof msg),
                 ADV_OK, "%s", msg);
    cr_expect_eq(count_entries(tmpdir), 1);
}

/* ---- points and CSV ---- */

static adv_status csv(const char *text, advio_array *a) {
    msg[0] = 0;
    return advio_csv_parse(text, strlen(text), a, msg, sizeof msg);
}

Test(csv, valid_files) {
    advio_array a;
    cr_assert_eq(csv("x,y\n1,2\n3.5, -4e-1\n", &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.ndim, 2);
    cr_expect_eq(a.shape[0], 2);
    cr_expect_eq(a.shape[1], 2);
    const double want[4] = {1, 2, 3.5, -0.4};
    for (int i = 0; i < 4; ++i) cr_expect_eq(((double *)a.data)[i], want[i]);
    advio_array_free(&a);
    // BOM, CRLF, no header, no final newline, trailing blank lines, spaces and tabs.
    cr_assert_eq(csv("\xEF\xBB\xBF" "1,2,3\r\n4,5,6\r\n\r\n  \n", &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 2);
    cr_expect_eq(a.shape[1], 3);
    cr_expect_eq(((double *)a.data)[5], 6);
    advio_array_free(&a);
    cr_assert_eq(csv("7\n\t8 ", &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 2);
    cr_expect_eq(a.shape[1], 1);
    cr_expect_eq(((double *)a.data)[1], 8);
    advio_array_free(&a);
    // A field of any length: 0.000...01 with 300 zeros (once cut at 127 characters).
    char text[400] = "1,0.";
    memset(text + 4, '0', 300);
    strcpy(text + 304, "1\n2,3\n");
    cr_assert_eq(csv(text, &a), ADV_OK, "%s", msg);
    cr_expect_eq(((double *)a.data)[1], strtod("1e-301", NULL));
    advio_array_free(&a);
}

Test(csv, invalid_files) {
    static const struct {
        const char *text;
        adv_status status;
        const char *needle;
    } cases[] = {
        {"1,2\n3\n", ADV_ERR_FORMAT, "ragged"},
        {"1,2\n3,4,5\n", ADV_ERR_FORMAT, "ragged"},
        {"1,2\n3,abc\n", ADV_ERR_FORMAT, "'abc' is not a number"},
        {"1,abc\n3,4\n", ADV_ERR_FORMAT, "'abc' is not a number"},
        {"1,2\n3,\n", ADV_ERR_FORMAT, "'' is not a number"},
        {"1,2\n3,4x\n", ADV_ERR_FORMAT, "not a number"},
        {"1,2\n3,0x1p3\n", ADV_ERR_FORMAT, "'0x1p3' is not a number"},
        {"1,2\n-0X.8,4\n", ADV_ERR_FORMAT, "'-0X.8' is not a number"},
        {"1,2\nnan,4\n", ADV_ERR_NONFINITE, "non-finite"},
        {"1,2\n3,-inf\n", ADV_ERR_NONFINITE, "non-finite"},
        {"1,2\n3,1e999\n", ADV_ERR_NONFINITE, "non-finite"},
        {"1,2\n\n3,4\n", ADV_ERR_FORMAT, "blank"},
        {"", ADV_ERR_FORMAT, "no data rows"},
        {"\n\n", ADV_ERR_FORMAT, "no data rows"},
        {"a,b\n", ADV_ERR_FORMAT, "no data rows"},
        {"a,b,c\n1,2\n", ADV_ERR_FORMAT, "ragged"},
        {"1,2\n3,0.00000000000000000000000000000000000000000000000000000000000000000000000000"
         "0000000000000000000000000000000000000000000000000000000000000000000001x\n",
         ADV_ERR_FORMAT, "not a number"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        advio_array a;
        adv_status s = csv(cases[c].text, &a);
        cr_expect_eq(s, cases[c].status, "case %zu: status %d (%s)", c, s, msg);
        cr_expect(strstr(msg, cases[c].needle) != NULL, "case %zu: message '%s' lacks '%s'", c, msg,
                  cases[c].needle);
        cr_expect_null(a.data);
    }
}

/* Exact messages and byte-level rules: a file that is only a byte-order mark has no rows (the
 * mark is not a header line); a NUL inside a line is refused (strtod would stop at it and
 * accept "3"); a first line of non-finite numbers is data, refused, not a header; text after
 * a number ("4y", "4 5") is not a number; the ragged-row message counts lines from 1. */
Test(csv, exact_messages) {
    static const struct {
        const char *text;
        size_t len;
        adv_status status;
        const char *want;
    } cases[] = {
        {"\xEF\xBB\xBF", 3, ADV_ERR_FORMAT, "CSV file has no data rows"},
        {"1,2\n3\0,4\n", 9, ADV_ERR_FORMAT, "CSV line 2 contains a NUL byte"},
        {"nan,inf\n1,2\n", 12, ADV_ERR_NONFINITE, "CSV line 1, column 1: non-finite value 'nan'"},
        {"1,2\n3,4y\n", 9, ADV_ERR_FORMAT, "CSV line 2, column 2: '4y' is not a number"},
        {"1,2\n3,4 5\n", 10, ADV_ERR_FORMAT, "CSV line 2, column 2: '4 5' is not a number"},
        {"1,2\n3\n", 6, ADV_ERR_FORMAT, "CSV line 2 has 1 field, expected 2 (ragged rows)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        advio_array a;
        memset(&a, 0xa5, sizeof a);
        msg[0] = 0;
        adv_status s = advio_csv_parse(cases[c].text, cases[c].len, &a, msg, sizeof msg);
        cr_expect_eq(s, cases[c].status, "case %zu: status %d (%s)", c, s, msg);
        cr_expect_str_eq(msg, cases[c].want, "case %zu: '%s'", c, msg);
        cr_expect_null(a.data);
    }
    // A literal that overflows to infinity (1 and 400 zeros) is quoted by its first 40
    // characters.
    char text[512] = "1,2\n3,1", want[128];
    memset(text + 7, '0', 400);
    strcpy(text + 407, "\n");
    snprintf(want, sizeof want, "CSV line 2, column 2: non-finite value '1%.39s'", text + 7);
    advio_array a;
    memset(&a, 0xa5, sizeof a);
    cr_expect_eq(csv(text, &a), ADV_ERR_NONFINITE, "%s", msg);
    cr_expect_str_eq(msg, want);
    cr_expect_null(a.data);
}

/* Tabs after a field are trimmed like spaces: "1\t,2\t" is a data row (strtod alone stops at
 * the tab, which would make the line a header of non-numbers). */
Test(csv, tabs_around_fields) {
    advio_array a;
    cr_assert_eq(csv("1\t,2\t\n3,4\n", &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 2);
    cr_expect_eq(a.shape[1], 2);
    for (int i = 0; i < 4; ++i) cr_expect_eq(((double *)a.data)[i], i + 1.0);
    advio_array_free(&a);
}

TestSuite(points, .init = make_tmpdir, .fini = remove_tmpdir);

Test(points, loader_checks_shape_and_values) {
    advio_array a;
    int64_t s2[2] = {3, 2}, s1[1] = {6}, s0[2] = {0, 2};
    float f[6] = {1, 2, 3, 4, 5, 6.25f};
    cr_assert_eq(advio_npy_write(tmp_path("p.npy"), ADV_FLOAT32, 2, s2, f, msg, sizeof msg), ADV_OK);
    cr_assert_eq(advio_read_points(tmp_path("p.npy"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(a.dtype, ADV_FLOAT64);
    cr_expect_eq(((double *)a.data)[5], 6.25);
    advio_array_free(&a);
    cr_assert_eq(advio_npy_write(tmp_path("one.npy"), ADV_FLOAT32, 1, s1, f, msg, sizeof msg), ADV_OK);
    cr_expect_eq(advio_read_points(tmp_path("one.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "2-D"), "%s", msg);
    cr_assert_eq(advio_npy_write(tmp_path("empty.npy"), ADV_FLOAT32, 2, s0, f, msg, sizeof msg), ADV_OK);
    cr_expect_eq(advio_read_points(tmp_path("empty.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "empty"), "%s", msg);
    f[3] = NAN;
    cr_assert_eq(advio_npy_write(tmp_path("nan.npy"), ADV_FLOAT32, 2, s2, f, msg, sizeof msg), ADV_OK);
    cr_expect_eq(advio_read_points(tmp_path("nan.npy"), &a, msg, sizeof msg), ADV_ERR_NONFINITE);
    cr_expect(strstr(msg, "row 1, column 1"), "%s", msg);
    write_bytes(tmp_path("p.csv"), "a,b\n1,2\n", 8);
    cr_assert_eq(advio_read_points(tmp_path("p.csv"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 1);
    advio_array_free(&a);
    write_bytes(tmp_path("p.txt"), "1,2\n", 4);
    cr_expect_eq(advio_read_points(tmp_path("p.txt"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "unknown file type"), "%s", msg);
}

/* The loader's other rules: extensions match in any case (.CSV, .NPY); no columns is as empty
 * as no rows; the first non-finite value is located by row and column of its flat index
 * (index 1 of a (3, 2) array is row 0, column 1, which tells them apart); more than 2^24
 * columns are refused with the count (a 64 MiB file, removed at once). */
Test(points, extensions_emptiness_positions_and_width) {
    advio_array a;
    char want[600];
    write_bytes(tmp_path("p.CSV"), "1,2\n3,4\n", 8);
    cr_assert_eq(advio_read_points(tmp_path("p.CSV"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 2);
    advio_array_free(&a);
    int64_t s2[2] = {3, 2}, s30[2] = {3, 0}, wide[2] = {1, (1 << 24) + 1};
    float f[6] = {1, 2, 3, 4, 5, 6};
    cr_assert_eq(advio_npy_write(tmp_path("p.NPY"), ADV_FLOAT32, 2, s2, f, msg, sizeof msg), ADV_OK);
    cr_assert_eq(advio_read_points(tmp_path("p.NPY"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(((double *)a.data)[5], 6);
    advio_array_free(&a);
    cr_assert_eq(advio_npy_write(tmp_path("e.npy"), ADV_FLOAT32, 2, s30, f, msg, sizeof msg), ADV_OK);
    memset(&a, 0xa5, sizeof a);
    cr_expect_eq(advio_read_points(tmp_path("e.npy"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    snprintf(want, sizeof want, "'%s': the array is empty (shape (3, 0))", tmp_path("e.npy"));
    cr_expect_str_eq(msg, want);
    cr_expect_null(a.data);
    f[1] = NAN;
    cr_assert_eq(advio_npy_write(tmp_path("n.npy"), ADV_FLOAT32, 2, s2, f, msg, sizeof msg), ADV_OK);
    memset(&a, 0xa5, sizeof a);
    cr_expect_eq(advio_read_points(tmp_path("n.npy"), &a, msg, sizeof msg), ADV_ERR_NONFINITE);
    snprintf(want, sizeof want, "'%s': non-finite value (NaN or infinity) at row 0, column 1",
             tmp_path("n.npy"));
    cr_expect_str_eq(msg, want);
    cr_expect_null(a.data);
    float *zeros = calloc((size_t)wide[1], sizeof *zeros);
    cr_assert_not_null(zeros);
    const char *p = tmp_path("wide.npy");
    cr_assert_eq(advio_npy_write(p, ADV_FLOAT32, 2, wide, zeros, msg, sizeof msg), ADV_OK, "%s", msg);
    free(zeros);
    memset(&a, 0xa5, sizeof a);
    adv_status s = advio_read_points(p, &a, msg, sizeof msg);
    unlink(p);
    cr_expect_eq(s, ADV_ERR_FORMAT, "status %d", s);
    snprintf(want, sizeof want, "'%s': 16777217 columns is too many", p);
    cr_expect_str_eq(msg, want);
    cr_expect_null(a.data);
    if (s == ADV_OK) advio_array_free(&a);
}

/* ---- images ---- */

TestSuite(image, .init = make_tmpdir, .fini = remove_tmpdir);

Test(image, png_gray_round_trip) {
    advio_image img;
    cr_assert_eq(advio_image_alloc(&img, 37, 11, 1, 0, msg, sizeof msg), ADV_OK);
    for (int i = 0; i < 37 * 11; ++i) img.pixels[i] = (uint8_t)(i * 7);
    cr_assert_eq(advio_png_write(tmp_path("g.png"), &img, msg, sizeof msg), ADV_OK, "%s", msg);
    advio_array a;
    cr_assert_eq(advio_gray_read(tmp_path("g.png"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 11);
    cr_expect_eq(a.shape[1], 37);
    for (int i = 0; i < 37 * 11; ++i)
        cr_expect_eq(((double *)a.data)[i], (uint8_t)(i * 7) / 255.0, "pixel %d", i);
    advio_array_free(&a);
    advio_image_free(&img);
}

Test(image, png_rgb_read_as_luminance) {
    advio_image img;
    cr_assert_eq(advio_image_alloc(&img, 4, 2, 3, 0, msg, sizeof msg), ADV_OK);
    // Pixel 0: gray 200 (exact); pixel 1: pure red; pixel 2: pure green; pixel 3: pure blue.
    const uint8_t px[4][3] = {{200, 200, 200}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    for (int p = 0; p < 4; ++p) memcpy(img.pixels + 3 * p, px[p], 3);
    cr_assert_eq(advio_png_write(tmp_path("c.png"), &img, msg, sizeof msg), ADV_OK, "%s", msg);
    advio_array a;
    cr_assert_eq(advio_gray_read(tmp_path("c.png"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    const double *v = a.data;
    // libpng's default weights are Rec. 709 (0.2126, 0.7152, 0.0722), in 8-bit fixed point.
    cr_expect_eq(v[0], 200 / 255.0);
    cr_expect(fabs(v[1] - 0.2126) < 2.0 / 255, "red -> %g", v[1]);
    cr_expect(fabs(v[2] - 0.7152) < 2.0 / 255, "green -> %g", v[2]);
    cr_expect(fabs(v[3] - 0.0722) < 2.0 / 255, "blue -> %g", v[3]);
    advio_array_free(&a);
    advio_image_free(&img);
}

Test(image, bad_png_files) {
    advio_image img;
    cr_assert_eq(advio_image_alloc(&img, 64, 64, 1, 9, msg, sizeof msg), ADV_OK);
    cr_assert_eq(advio_png_write(tmp_path("ok.png"), &img, msg, sizeof msg), ADV_OK);
    advio_image_free(&img);
    char *buf;
    size_t size;
    cr_assert_eq(advio_read_file(tmp_path("ok.png"), &buf, &size, msg, sizeof msg), ADV_OK);
    advio_array a;
    write_bytes(tmp_path("cut.png"), buf, size / 2);
    cr_expect_eq(advio_gray_read(tmp_path("cut.png"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "invalid PNG"), "%s", msg);
    buf[size / 2] ^= 0x55; // corrupt a byte inside the compressed data or a CRC
    write_bytes(tmp_path("flip.png"), buf, size);
    cr_expect_eq(advio_gray_read(tmp_path("flip.png"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    free(buf);
    write_bytes(tmp_path("x.png"), "GIF89a....", 10);
    cr_expect_eq(advio_gray_read(tmp_path("x.png"), &a, msg, sizeof msg), ADV_ERR_FORMAT);
    cr_expect(strstr(msg, "not a PNG or PGM"), "%s", msg);
    cr_expect_eq(advio_gray_read(tmp_path("none.png"), &a, msg, sizeof msg), ADV_ERR_IO);
    cr_assert_eq(advio_image_alloc(&img, 2, 2, 3, 9, msg, sizeof msg), ADV_OK);
    cr_expect_eq(advio_png_write(tmp_path("no/dir.png"), &img, msg, sizeof msg), ADV_ERR_IO);
    advio_image_free(&img);
}

/* Writes a grayscale PNG of any bit depth with libpng directly (advio_png_write writes 8-bit
 * images only): h rows of rowbytes bytes, packed as PNG stores them (16-bit samples big-endian,
 * 1-bit pixels from the most significant bit). */
static void write_gray_png(const char *path, int w, int h, int depth, const unsigned char *rows,
                           size_t rowbytes) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    cr_assert_not_null(info);
    if (setjmp(png_jmpbuf(png))) cr_assert_fail("libpng could not write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; ++y) png_write_row(png, (png_const_bytep)(rows + (size_t)y * rowbytes));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    cr_assert_eq(fclose(f), 0);
}

/* Other gray depths than 8: 16-bit samples are big-endian in the file (0x0100 is 256, not 1;
 * 0xFF00 is 65280, not 255), and 1-bit pixels are expanded to 8 bits (bits 10110000 are
 * 1 0 1 1 0 0 0 0), each scaled by its depth's maximum. */
Test(image, png_16_and_1_bit_gray) {
    const unsigned char px16[4] = {0x01, 0x00, 0xFF, 0x00};
    write_gray_png(tmp_path("g16.png"), 2, 1, 16, px16, sizeof px16);
    advio_array a;
    memset(&a, 0xa5, sizeof a);
    cr_assert_eq(advio_gray_read(tmp_path("g16.png"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 1);
    cr_expect_eq(a.shape[1], 2);
    cr_expect_eq(((double *)a.data)[0], 256 / 65535.0);
    cr_expect_eq(((double *)a.data)[1], 65280 / 65535.0);
    advio_array_free(&a);
    const unsigned char px1[1] = {0xB0};
    write_gray_png(tmp_path("g1.png"), 8, 1, 1, px1, sizeof px1);
    memset(&a, 0xa5, sizeof a);
    cr_assert_eq(advio_gray_read(tmp_path("g1.png"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[1], 8);
    const double want[8] = {1, 0, 1, 1, 0, 0, 0, 0};
    for (int i = 0; i < 8; ++i) cr_expect_eq(((double *)a.data)[i], want[i], "pixel %d", i);
    advio_array_free(&a);
}

static adv_status pgm(const void *b, size_t n, advio_array *a) {
    msg[0] = 0;
    return advio_pgm_parse(b, n, a, msg, sizeof msg);
}

Test(image, pgm_files) {
    advio_array a;
    const unsigned char p5[] = "P5\n# a comment\n3 2\n255\n\x00\x10\x20\x30\x40\xff";
    cr_assert_eq(pgm(p5, sizeof p5 - 1, &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 2);
    cr_expect_eq(a.shape[1], 3);
    cr_expect_eq(((double *)a.data)[1], 16 / 255.0);
    cr_expect_eq(((double *)a.data)[5], 1.0);
    advio_array_free(&a);
    const unsigned char p16[] = "P5 2 1 1000 \x03\xe8\x01\xf4"; // 1000, 500
    cr_assert_eq(pgm(p16, sizeof p16 - 1, &a), ADV_OK, "%s", msg);
    cr_expect_eq(((double *)a.data)[0], 1.0);
    cr_expect_eq(((double *)a.data)[1], 0.5);
    advio_array_free(&a);
    const char p2[] = "P2\n2 2 # size\n10\n0 5\n10 2\n";
    cr_assert_eq(pgm(p2, sizeof p2 - 1, &a), ADV_OK, "%s", msg);
    cr_expect_eq(((double *)a.data)[3], 0.2);
    advio_array_free(&a);
    static const struct {
        const char *text;
        size_t len;
        const char *needle;
    } bad[] = {
        {"P5\n3 2\n255\n\x00\x10\x20\x30\x40", 16, "truncated data"},
        {"P5\n3 2\n255\n\x00\x10\x20\x30\x40\x50\x60", 18, "trailing garbage"},
        {"P5\n3 2\n0\n\x00", 10, "maxval out of range"},
        {"P5\n3 2\n70000\n\x00", 14, "maxval out of range"},
        {"P5\n0 2\n255\n", 11, "width out of range"},
        {"P5\n3\n", 5, "height"},
        {"P5\nx 2\n255\n", 11, "width"},
        {"P5\n2 1\n100\n\x00\x80", 13, "exceeds maxval"},
        {"P2\n2 1\n10\n3 11\n", 15, "exceeds maxval"},
        {"P2\n2 1\n10\n3\n", 12, "truncated"},
        {"P2\n2 1\n10\n3 4 5\n", 16, "trailing garbage"},
        {"P2\n2 1\n10\n3 4x\n", 15, "malformed"},
        {"P6\n2 1\n10\n", 10, "not a PGM"},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; ++c) {
        cr_expect_eq(pgm(bad[c].text, bad[c].len, &a), ADV_ERR_FORMAT, "case %zu", c);
        cr_expect(strstr(msg, bad[c].needle) != NULL, "case %zu: message '%s' lacks '%s'", c, msg,
                  bad[c].needle);
    }
    // Through a file, picked by its magic number.
    write_bytes(tmp_path("a.pgm"), p5, sizeof p5 - 1);
    cr_assert_eq(advio_gray_read(tmp_path("a.pgm"), &a, msg, sizeof msg), ADV_OK, "%s", msg);
    advio_array_free(&a);
}

/* Exact PGM messages at their boundaries: the magic must be followed by whitespace ("P52"
 * is not "P5" and a width of 2); the pixel count is limited before allocating; a value is
 * refused from maxval + 1 on (maxval itself is 1.0); a comment ends at '\r' too (classic Mac
 * line ends), not only at '\n'. */
Test(image, pgm_exact_messages) {
    static const struct {
        const char *text;
        size_t len;
        const char *want;
    } bad[] = {
        {"P52 1\n255\n\x00\x01", 12, "PGM: malformed magic number"},
        {"P5\n65536 65536\n255\n", 19, "PGM: image too large (65536x65536)"},
        {"P5\n2 1\n100\n\x00\x65", 13, "PGM: pixel 1 (101) exceeds maxval 100"},
    };
    advio_array a;
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; ++c) {
        memset(&a, 0xa5, sizeof a);
        cr_expect_eq(pgm(bad[c].text, bad[c].len, &a), ADV_ERR_FORMAT, "case %zu (%s)", c, msg);
        cr_expect_str_eq(msg, bad[c].want, "case %zu: '%s'", c, msg);
        cr_expect_null(a.data);
    }
    cr_assert_eq(pgm("P5\n2 1\n100\n\x00\x64", 13, &a), ADV_OK, "%s", msg);
    cr_expect_eq(((double *)a.data)[1], 1.0);
    advio_array_free(&a);
    const char cr[] = "P2\n# c\r2 1\n10\n3 4\n";
    cr_assert_eq(pgm(cr, sizeof cr - 1, &a), ADV_OK, "%s", msg);
    cr_expect_eq(a.shape[0], 1);
    cr_expect_eq(a.shape[1], 2);
    cr_expect_eq(((double *)a.data)[0], 0.3);
    cr_expect_eq(((double *)a.data)[1], 0.4);
    advio_array_free(&a);
}

/* ---- atomic outputs ---- */

TestSuite(atomic, .init = make_tmpdir, .fini = remove_tmpdir);

Test(atomic, commit_and_abort) {
    advio_atomic f;
    const char *p = tmp_path("out.bin");
    cr_assert_eq(advio_atomic_open(&f, p, msg, sizeof msg), ADV_OK, "%s", msg);
    fputs("hello", f.f);
    struct stat st;
    cr_expect_neq(stat(p, &st), 0, "nothing may appear at the final path before commit");
    cr_expect_eq(count_entries(tmpdir), 1);
    advio_atomic_abort(&f);
    cr_expect_eq(count_entries(tmpdir), 0, "abort must remove the temporary file");
    cr_assert_eq(advio_atomic_open(&f, p, msg, sizeof msg), ADV_OK);
    fputs("hello", f.f);
    cr_assert_eq(advio_atomic_commit(&f, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_assert_eq(stat(p, &st), 0);
    cr_expect_eq(st.st_size, 5);
    mode_t mask = umask(0);
    umask(mask);
    cr_expect_eq(st.st_mode & 0777, 0666 & ~mask);
    cr_expect_eq(count_entries(tmpdir), 1);
    cr_expect_eq(advio_atomic_open(&f, tmpdir, msg, sizeof msg), ADV_ERR_IO);
    cr_expect(strstr(msg, "directory"), "%s", msg);
}

/* A directory at the output path is named as such, without the generic tail ("not a regular
 * file (the output would replace it)") of FIFOs and devices; advio_check_output agrees. */
Test(atomic, directory_message) {
    char want[600];
    snprintf(want, sizeof want, "cannot write '%s': it is a directory", tmpdir);
    advio_atomic f;
    msg[0] = 0;
    cr_expect_eq(advio_atomic_open(&f, tmpdir, msg, sizeof msg), ADV_ERR_IO);
    cr_expect_str_eq(msg, want);
    msg[0] = 0;
    cr_expect_eq(advio_check_output(tmpdir, msg, sizeof msg), ADV_ERR_IO);
    cr_expect_str_eq(msg, want);
    cr_expect_eq(count_entries(tmpdir), 0);
}

/* An existing target must be a regular file: renaming over a FIFO or a device (/dev/null)
 * would replace the node itself with a plain file. */
Test(atomic, non_regular_targets_are_refused) {
    const char *fifo = tmp_path("pipe.png");
    cr_assert_eq(mkfifo(fifo, 0666), 0);
    advio_atomic f;
    cr_expect_eq(advio_atomic_open(&f, fifo, msg, sizeof msg), ADV_ERR_IO);
    cr_expect(strstr(msg, "a FIFO, not a regular file"), "%s", msg);
    struct stat st;
    cr_assert_eq(stat(fifo, &st), 0);
    cr_expect(S_ISFIFO(st.st_mode), "the FIFO is left as it was");
    cr_expect_eq(count_entries(tmpdir), 1, "no temporary file is left");
    cr_expect_eq(advio_check_output(fifo, msg, sizeof msg), ADV_ERR_IO);
    cr_expect_eq(advio_check_output(tmpdir, msg, sizeof msg), ADV_ERR_IO);
    cr_expect_eq(advio_check_output(tmp_path("new.npy"), msg, sizeof msg), ADV_OK);
    write_bytes(tmp_path("old.npy"), "x", 1);
    cr_expect_eq(advio_check_output(tmp_path("old.npy"), msg, sizeof msg), ADV_OK);
    if (stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)) { // stat only: nothing is written
        cr_expect_eq(advio_check_output("/dev/null", msg, sizeof msg), ADV_ERR_IO);
        cr_expect(strstr(msg, "character device"), "%s", msg);
    }
}

/* A symbolic link is written through, as open() would: the file it names is replaced (or
 * created, for a dangling link) and the link stays a link. Before, the rename replaced the
 * link itself and left its target as it was. */
Test(atomic, symbolic_links_are_written_through) {
    const char *target = tmp_path("real.npy");
    write_bytes(target, "old", 3);
    cr_assert_eq(symlink("real.npy", tmp_path("link.npy")), 0); // relative to the link's dir
    cr_assert_eq(symlink("later.npy", tmp_path("dangling.npy")), 0);
    const char *links[2] = {"link.npy", "dangling.npy"}, *files[2] = {"real.npy", "later.npy"};
    for (int k = 0; k < 2; ++k) {
        advio_atomic f;
        cr_assert_eq(advio_atomic_open(&f, tmp_path(links[k]), msg, sizeof msg), ADV_OK, "%s", msg);
        fputs("hello", f.f);
        cr_assert_eq(advio_atomic_commit(&f, msg, sizeof msg), ADV_OK, "%s", msg);
        struct stat st;
        cr_assert_eq(lstat(tmp_path(links[k]), &st), 0);
        cr_expect(S_ISLNK(st.st_mode), "%s is no longer a link", links[k]);
        cr_assert_eq(stat(tmp_path(files[k]), &st), 0, "%s was not written", files[k]);
        cr_expect_eq(st.st_size, 5, "%s", files[k]);
    }
    cr_expect_eq(count_entries(tmpdir), 4, "no temporary file is left");
    cr_assert_eq(symlink("loop.npy", tmp_path("loop.npy")), 0);
    advio_atomic f;
    cr_expect_eq(advio_atomic_open(&f, tmp_path("loop.npy"), msg, sizeof msg), ADV_ERR_IO);
}

/* A replaced file keeps its permissions (a private 0600 file became 0644 when the writer
 * gave every result 0666 less the umask); a NULL or empty path is refused before anything is
 * created (it crashed, or wrote a temporary in the working directory). */
Test(atomic, replaced_files_keep_their_mode_and_empty_paths) {
    const char *p = tmp_path("private.npy");
    write_bytes(p, "secret", 6);
    cr_assert_eq(chmod(p, 0600), 0);
    advio_atomic f;
    cr_assert_eq(advio_atomic_open(&f, p, msg, sizeof msg), ADV_OK, "%s", msg);
    fputs("new", f.f);
    cr_assert_eq(advio_atomic_commit(&f, msg, sizeof msg), ADV_OK, "%s", msg);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600, "mode %o", (unsigned)(st.st_mode & 07777));
    cr_expect_eq(st.st_size, 3);
    cr_expect_eq(advio_atomic_open(&f, "", msg, sizeof msg), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(advio_atomic_open(&f, NULL, msg, sizeof msg), ADV_ERR_INVALID_VALUE);
    cr_expect_eq(count_entries(tmpdir), 1);
}

/* The kernel's protected-symlinks rule, kept although links are resolved by hand: in a sticky
 * world-writable directory (like /tmp) a link owned by someone else (neither us nor the
 * directory's owner) is not followed, so a link planted at a predictable path cannot make the
 * writer replace a file of ours. Owning a link by another user needs root: skipped otherwise. */
Test(atomic, untrusted_links_in_sticky_directories) {
    if (geteuid() != 0) cr_skip_test("needs root to give a link another owner");
    char sticky[300];
    snprintf(sticky, sizeof sticky, "%s/sticky", tmpdir);
    cr_assert_eq(mkdir(sticky, 0777), 0);
    cr_assert_eq(chmod(sticky, 01777), 0);
    char victim[320], link[320];
    snprintf(victim, sizeof victim, "%s/victim", tmpdir);
    snprintf(link, sizeof link, "%s/planted.npy", sticky);
    write_bytes(victim, "precious", 8);
    cr_assert_eq(symlink(victim, link), 0);
    cr_assert_eq(lchown(link, 12345, 12345), 0);
    advio_atomic f;
    cr_expect_eq(advio_atomic_open(&f, link, msg, sizeof msg), ADV_ERR_IO);
    cr_expect(strstr(msg, "protected-symlinks") != NULL, "%s", msg);
    struct stat st;
    cr_expect(stat(victim, &st) == 0 && st.st_size == 8, "the victim was replaced");
    // Owned by us (root here), the same link is followed.
    cr_assert_eq(lchown(link, 0, 0), 0);
    cr_assert_eq(advio_atomic_open(&f, link, msg, sizeof msg), ADV_OK, "%s", msg);
    advio_atomic_abort(&f);
    unlink(link);
    unlink(victim);
    rmdir(sticky);
}

/* The temporary name does not grow with the target's: the longest name the file system
 * accepts can be written (names of NAME_MAX - 11 bytes and more once failed). */
Test(atomic, longest_names) {
    const long max = pathconf(tmpdir, _PC_NAME_MAX);
    cr_assert(max >= 16 && max < 4096, "NAME_MAX %ld", max);
    char name[4096];
    memset(name, 'a', (size_t)max);
    name[max] = 0;
    advio_atomic f;
    cr_assert_eq(advio_atomic_open(&f, tmp_path(name), msg, sizeof msg), ADV_OK, "%s", msg);
    fputs("hello", f.f);
    cr_assert_eq(advio_atomic_commit(&f, msg, sizeof msg), ADV_OK, "%s", msg);
    struct stat st;
    cr_expect_eq(stat(tmp_path(name), &st), 0);
    cr_expect_eq(count_entries(tmpdir), 1);
    cr_assert_eq(advio_atomic_open(&f, tmp_path(name), msg, sizeof msg), ADV_OK, "%s", msg);
    advio_atomic_abort(&f);
    cr_expect_eq(count_entries(tmpdir), 1, "abort removes the temporary file");
}

/* ---- eigen-solver and PCA ---- */

/* Q = rotation built from Householder reflections of fixed vectors; A = Q diag(l) Q^T. */
static void make_spd(int d, const double *l, double *A, double *Q) {
    for (int i = 0; i < d * d; ++i) Q[i] = (i / d == i % d);
    for (int r = 0; r < 3; ++r) {
        double v[16], n = 0;
        for (int i = 0; i < d; ++i) {
            v[i] = sin(1.3 * (i + 1) * (r + 1) + r);
            n += v[i] * v[i];
        }
        for (int i = 0; i < d; ++i) v[i] /= sqrt(n);
        for (int c = 0; c < d; ++c) { // Q <- (I - 2 v v^T) Q
            double dot = 0;
            for (int i = 0; i < d; ++i) dot += v[i] * Q[i * d + c];
            for (int i = 0; i < d; ++i) Q[i * d + c] -= 2 * v[i] * dot;
        }
    }
    for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) {
            double s = 0;
            for (int k = 0; k < d; ++k) s += Q[i * d + k] * l[k] * Q[j * d + k];
            A[i * d + j] = s;
        }
}

Test(eigen, jacobi_recovers_known_decomposition) {
    enum { d = 6 };
    const double l[d] = {0.5, 9, 3, 1e-3, 4.25, 7};
    double A[d * d], Q[d * d], vals[d], vecs[d * d];
    make_spd(d, l, A, Q);
    cr_assert_eq(advio_sym_eigen(d, A, vals, vecs, msg, sizeof msg), ADV_OK);
    const double sorted[d] = {9, 7, 4.25, 3, 0.5, 1e-3};
    for (int k = 0; k < d; ++k) {
        // Backward-stable: eigenvalue errors are a few ulps of the largest eigenvalue.
        cr_expect(fabs(vals[k] - sorted[k]) < 1e-13 * 9, "eigenvalue %d: %.17g vs %g", k, vals[k], sorted[k]);
        int col = 0;
        while (l[col] != sorted[k]) ++col;
        double dot = 0, big = 0;
        for (int i = 0; i < d; ++i) {
            dot += vecs[k * d + i] * Q[i * d + col];
            if (fabs(vecs[k * d + i]) > fabs(big)) big = vecs[k * d + i];
        }
        // Eigenvalues are well separated (gap >= 0.5), so vectors are accurate to ~1e-14.
        cr_expect(fabs(fabs(dot) - 1) < 1e-12, "eigenvector %d: |dot| = %.17g", k, dot);
        cr_expect(big > 0, "sign convention: largest component positive");
    }
}

Test(eigen, pca_both_paths) {
    // Points concentrated on two orthogonal directions u (spread 3) and w (spread 1) plus
    // small isotropic noise, in d = 5 (Jacobi path) and d = 200 (subspace iteration path).
    const int dims[2] = {5, 200};
    for (int t = 0; t < 2; ++t) {
        int d = dims[t];
        int64_t n = 400;
        double *x = malloc(sizeof(double) * (size_t)n * d), *u = malloc(sizeof(double) * d),
               *w = malloc(sizeof(double) * d), *mean = malloc(sizeof(double) * d),
               *axes = malloc(sizeof(double) * 2 * d);
        double nu = 0, nw = 0, uw = 0;
        for (int i = 0; i < d; ++i) {
            u[i] = cos(0.37 * i + 0.1);
            w[i] = sin(1.91 * i + 0.4);
            nu += u[i] * u[i];
        }
        for (int i = 0; i < d; ++i) u[i] /= sqrt(nu);
        for (int i = 0; i < d; ++i) uw += u[i] * w[i];
        for (int i = 0; i < d; ++i) w[i] -= uw * u[i];
        for (int i = 0; i < d; ++i) nw += w[i] * w[i];
        for (int i = 0; i < d; ++i) w[i] /= sqrt(nw);
        for (int64_t k = 0; k < n; ++k) {
            double a = 3 * sin(0.913 * (double)k), b = cos(2.17 * (double)k + 0.3);
            for (int i = 0; i < d; ++i)
                x[k * d + i] = 2.0 + a * u[i] + b * w[i] + 0.01 * sin(7.3 * (double)(k * d + i));
        }
        cr_assert_eq(advio_pca2(x, n, d, mean, axes, msg, sizeof msg), ADV_OK, "%s", msg);
        double du = 0, dw = 0;
        for (int i = 0; i < d; ++i) du += axes[i] * u[i], dw += axes[d + i] * w[i];
        // Noise of 0.01 tilts the axes by ~1e-2 / (variance gap) at most.
        cr_expect(fabs(fabs(du) - 1) < 1e-3, "d=%d: first axis . u = %g", d, du);
        cr_expect(fabs(fabs(dw) - 1) < 1e-3, "d=%d: second axis . w = %g", d, dw);
        for (int i = 0; i < d; ++i) cr_expect(fabs(mean[i] - 2.0 - 0) < 0.2, "mean");
        free(x), free(u), free(w), free(mean), free(axes);
    }
}

/* ---- rasterisers ---- */

static const uint8_t *pixel(const advio_image *img, int x, int y) {
    return img->pixels + ((size_t)y * img->width + x) * img->channels;
}

static int is_white(const uint8_t *p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }

Test(plot, scatter_places_points) {
    // Data on the unit square's corners; the view is [-0.05, 1.05]^2 in a 200x200 picture
    // with 10 pixels of padding: scale 180 / 1.1, centre (0.5, 0.5) at pixel (100, 100).
    const double data[8] = {0, 0, 1, 0, 0, 1, 1, 1};
    const double samples[2] = {0.5, 0.5};
    advio_image img;
    cr_assert_eq(advio_render_scatter(data, 4, samples, 1, 2, 200, 200, &img, msg, sizeof msg), ADV_OK);
    cr_expect_eq(img.channels, 3);
    double scale = 180 / 1.1;
    int x1 = (int)lround(100 + 0.5 * scale), y1 = (int)lround(100 - 0.5 * scale);
    const uint8_t *p = pixel(&img, x1, y1);
    cr_expect(p[2] > p[0] + 30, "data point (1,1) should be blue: %d %d %d", p[0], p[1], p[2]);
    p = pixel(&img, 100, 100);
    cr_expect(p[0] > p[2] + 50, "sample (0.5,0.5) should be red: %d %d %d", p[0], p[1], p[2]);
    p = pixel(&img, 60, 150);
    cr_expect(is_white(p), "background white");
    advio_image_free(&img);
    // d = 3: points along the third axis only; PCA puts them on the horizontal axis.
    double d3[9] = {0, 0, -1, 0, 0, 0, 0, 0, 1};
    cr_assert_eq(advio_render_scatter(d3, 3, NULL, 0, 3, 100, 100, &img, msg, sizeof msg), ADV_OK, "%s", msg);
    p = pixel(&img, 50, 50);
    cr_expect(p[2] > p[0] + 30, "middle point drawn at the centre");
    advio_image_free(&img);
    // d = 1: histograms; some pixels must be coloured.
    double d1[4] = {0, 1, 1, 2};
    cr_assert_eq(advio_render_scatter(d1, 4, d1, 4, 1, 80, 60, &img, msg, sizeof msg), ADV_OK);
    int coloured = 0;
    for (int i = 0; i < 80 * 60; ++i) coloured += img.pixels[3 * i] != img.pixels[3 * i + 2];
    cr_expect(coloured > 100, "%d coloured pixels", coloured);
    advio_image_free(&img);
}

Test(plot, tiles_layout_and_values) {
    // Two 2x3 tiles, values from lo to hi, scale 2, 2 columns: width 2*(3*2+2)+2 = 18,
    // height 1*(2*2+2)+2 = 8.
    const double t[12] = {0, 0.5, 1, 2, -1, 0.25, 1, 1, 1, 0, 0, 0};
    advio_image img;
    cr_assert_eq(advio_render_tiles(t, 2, 2, 3, 2, 0, 1, 2, &img, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(img.width, 18);
    cr_expect_eq(img.height, 8);
    cr_expect_eq(img.channels, 1);
    cr_expect_eq(*pixel(&img, 0, 0), 128, "border");
    cr_expect_eq(*pixel(&img, 2, 2), 0);
    cr_expect_eq(*pixel(&img, 3, 3), 0);
    cr_expect_eq(*pixel(&img, 4, 2), 128); // 0.5 -> 127.5 rounds to 128
    cr_expect_eq(*pixel(&img, 6, 2), 255);
    cr_expect_eq(*pixel(&img, 2, 4), 255, "2 clamps to 1");
    cr_expect_eq(*pixel(&img, 4, 4), 0, "-1 clamps to 0");
    cr_expect_eq(*pixel(&img, 7, 5), 64);
    cr_expect_eq(*pixel(&img, 10, 2), 255, "second tile");
    cr_expect_eq(*pixel(&img, 14, 5), 0);
    advio_image_free(&img);
    cr_expect_eq(advio_render_tiles(t, 2, 2, 3, 2, 1, 1, 2, &img, msg, sizeof msg), ADV_ERR_INVALID_VALUE);
}

/* The view is the data's bounding box whatever the order of the points: the corners listed
 * from (1, 1) must give the same picture as from (0, 0) (the box was kept at the first point
 * when only later maxima were tracked). */
Test(plot, scatter_view_from_any_point_order) {
    const double data[8] = {1, 1, 0, 0, 1, 0, 0, 1};
    advio_image img;
    cr_assert_eq(advio_render_scatter(data, 4, NULL, 0, 2, 200, 200, &img, msg, sizeof msg), ADV_OK, "%s", msg);
    double scale = 180 / 1.1;
    const int lo = (int)lround(100 - 0.5 * scale), hi = (int)lround(100 + 0.5 * scale);
    const int corners[4][2] = {{lo, hi}, {hi, hi}, {lo, lo}, {hi, lo}}; // (0,0) (1,0) (0,1) (1,1)
    for (int k = 0; k < 4; ++k) {
        const uint8_t *p = pixel(&img, corners[k][0], corners[k][1]);
        cr_expect(p[2] > p[0] + 30, "corner %d at (%d, %d) should be blue: %d %d %d", k,
                  corners[k][0], corners[k][1], p[0], p[1], p[2]);
    }
    const uint8_t *p = pixel(&img, 60, 150);
    cr_expect(is_white(p), "background white");
    advio_image_free(&img);
}

/* d = 1: the histogram's first bin is drawn. Data {0, 1, 1, 2} in 80x60: 20 bins over
 * [-0.1, 2.1], so 0 falls in bin 0 (pixels x 0..3); its bar is half the peak's, 20 of the 40
 * pixels of span above the axis at y = 50: rows 30..49 coloured, row 29 white. */
Test(plot, histogram_first_bin) {
    double d1[4] = {0, 1, 1, 2};
    advio_image img;
    cr_assert_eq(advio_render_scatter(d1, 4, d1, 4, 1, 80, 60, &img, msg, sizeof msg), ADV_OK);
    for (int x = 0; x < 4; ++x) {
        const uint8_t *p = pixel(&img, x, 45), *top = pixel(&img, x, 30), *above = pixel(&img, x, 29);
        cr_expect(!is_white(p), "(%d, 45) is white", x);
        cr_expect(!is_white(top), "(%d, 30) is white", x);
        cr_expect(is_white(above), "(%d, 29) is not white", x);
    }
    advio_image_free(&img);
}

/* More columns than tiles: the grid is as wide as the tiles (2 of them with cols = 8 is the
 * same 18x8 picture as cols = 2), not padded with empty columns. */
Test(plot, tiles_columns_capped_at_count) {
    const double t[12] = {0, 0.5, 1, 2, -1, 0.25, 1, 1, 1, 0, 0, 0};
    advio_image img;
    cr_assert_eq(advio_render_tiles(t, 2, 2, 3, 8, 0, 1, 2, &img, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(img.width, 18);
    cr_expect_eq(img.height, 8);
    cr_expect_eq(*pixel(&img, 10, 2), 255, "second tile");
    advio_image_free(&img);
}

/* advio_tiles_fit: the grid that stays within ADVIO_IMAGE_MAX_SIDE and _PIXELS. */
Test(plot, tiles_fit_the_picture_limits) {
    int cols = 8;
    cr_expect_eq(advio_tiles_fit(50, 2, 2, 24, &cols), 50, "small tiles: all of them");
    cr_expect_eq(cols, 8);
    cols = 8;
    cr_expect_eq(advio_tiles_fit(3, 2, 2, 24, &cols), 3);
    cr_expect_eq(cols, 3, "no more columns than tiles");
    // 10000 pixels wide: 6 a row (6 * 10002 + 2 <= 65536), the 8 tiles on two rows.
    cols = 8;
    cr_expect_eq(advio_tiles_fit(8, 1, 10000, 1, &cols), 8);
    cr_expect_eq(cols, 6);
    // 2048 x 2048: 8 a row, but only 7 rows within 2^28 pixels.
    cols = 8;
    cr_expect_eq(advio_tiles_fit(64, 2048, 2048, 1, &cols), 56);
    cr_expect_eq(cols, 8);
    cols = 8;
    cr_expect_eq(advio_tiles_fit(4, 1, 65533, 1, &cols), 0, "not even one tile");
    // What fits is drawn.
    enum { W = 10000 };
    double *t = calloc(8 * W, sizeof *t);
    cr_assert_not_null(t);
    cols = 8;
    int64_t n = advio_tiles_fit(8, 1, W, 1, &cols);
    advio_image img;
    cr_assert_eq(advio_render_tiles(t, n, 1, W, cols, 0, 1, 1, &img, msg, sizeof msg), ADV_OK, "%s", msg);
    cr_expect_eq(img.width, 6 * (W + 2) + 2);
    cr_expect_eq(img.height, 2 * 3 + 2);
    advio_image_free(&img);
    free(t);
}

/* Cross-check with NumPy itself when python3 and numpy are installed (skipped otherwise):
 * files written by np.save (C and Fortran order, both dtypes, 1-D to 4-D, format 2.0) read
 * back here, and files written here loaded by np.load, with the values compared exactly. */
Test(npy, numpy_interoperability) {
    if (system("python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        remove_tmpdir(); // a skip ends the test without the suite's .fini
        cr_skip_test("python3 with numpy is not installed");
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"\n"
             "import numpy as np, sys\n"
             "d = sys.argv[1]\n"
             "a = (np.arange(24, dtype=np.float64) * 0.37 - 3).reshape(2, 3, 4)\n"
             "np.save(d + '/c3.npy', a)\n"
             "np.save(d + '/f3.npy', np.asfortranarray(a.astype(np.float32)))\n"
             "np.save(d + '/c1.npy', a.ravel()[:5].astype(np.float32))\n"
             "np.save(d + '/c4.npy', a.reshape(1, 2, 3, 4))\n"
             "np.lib.format.write_array(open(d + '/v2.npy', 'wb'), a[0], version=(2, 0))\n"
             "\" '%s'",
             tmpdir);
    cr_assert_eq(system(cmd), 0, "numpy failed to write the files");
    const char *names[] = {"c3.npy", "f3.npy", "c1.npy", "c4.npy", "v2.npy"};
    const int ndims[] = {3, 3, 1, 4, 2};
    for (int f = 0; f < 5; ++f) {
        advio_array a;
        cr_assert_eq(advio_npy_read(tmp_path(names[f]), &a, msg, sizeof msg), ADV_OK, "%s: %s", names[f], msg);
        cr_expect_eq(a.ndim, ndims[f], "%s", names[f]);
        for (size_t i = 0; i < a.count; ++i) {
            double want = (double)i * 0.37 - 3;
            double got = a.dtype == ADV_FLOAT64 ? ((double *)a.data)[i] : ((float *)a.data)[i];
            if (a.dtype == ADV_FLOAT32) want = (float)want;
            cr_expect_eq(got, want, "%s element %zu: %.17g vs %.17g", names[f], i, got, want);
        }
        advio_array_free(&a);
    }
    // The other direction: np.load of our files, values compared in Python.
    double v[12];
    float w[12];
    for (int i = 0; i < 12; ++i) v[i] = w[i] = (float)(i * 1.25 - 7);
    int64_t s2[2] = {3, 4}, s1[1] = {12};
    cr_assert_eq(advio_npy_write(tmp_path("m2.npy"), ADV_FLOAT64, 2, s2, v, msg, sizeof msg), ADV_OK);
    cr_assert_eq(advio_npy_write(tmp_path("m1.npy"), ADV_FLOAT32, 1, s1, w, msg, sizeof msg), ADV_OK);
    snprintf(cmd, sizeof cmd,
             "python3 -c \"\n"
             "import numpy as np, sys\n"
             "d = sys.argv[1]\n"
             "ref = np.arange(12) * 1.25 - 7\n"
             "a = np.load(d + '/m2.npy'); b = np.load(d + '/m1.npy')\n"
             "ok = a.dtype == np.float64 and a.shape == (3, 4) and (a.ravel() == ref).all()\n"
             "ok = ok and b.dtype == np.float32 and b.shape == (12,) and (b == ref.astype(np.float32)).all()\n"
             "sys.exit(0 if ok else 1)\n"
             "\" '%s'",
             tmpdir);
    cr_expect_eq(system(cmd), 0, "np.load disagrees with the files written here");
}
