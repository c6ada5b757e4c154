/* Fuzz target of the .npy parser (host/io/npy.c), libFuzzer style: any input must give
 * ADV_OK or a clean error, never a crash, a leak or undefined behaviour; an accepted array
 * must be self-consistent and survive a write/re-read round trip bit for bit. The same input
 * also goes through the CSV and PGM parsers, which share the "untrusted bytes" contract, and,
 * when it starts with the PNG signature, through the PNG reader (libpng, from a temporary
 * file: the reader takes a path).
 *
 * Built two ways (tests/io.cmake): with clang as a libFuzzer binary (npy_fuzz; run e.g.
 * `npy_fuzz tests/fuzz/corpus/npy`), and with any compiler as a replayer
 * (ADVECT_FUZZ_REPLAY: npy_fuzz_replay DIR) that runs every file of a corpus directory
 * through the target and checks the outcome its name announces: ok_* must parse, bad_* must
 * be rejected. ctest runs the replayer over the committed seed corpus. */
#define _GNU_SOURCE
#include "io.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "npy_fuzz: invariant violated: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char msg[256];
    advio_array a;
    adv_status s = advio_npy_parse(data, size, &a, msg, sizeof msg);
    if (s == ADV_OK) {
        check(a.ndim >= 1 && a.ndim <= ADVIO_MAX_DIMS, "ndim in range");
        check(a.data != NULL, "data allocated");
        size_t count = 1;
        for (int k = 0; k < a.ndim; ++k) {
            check(a.shape[k] >= 0, "non-negative shape");
            count *= (size_t)a.shape[k];
        }
        check(count == a.count, "count is the product of the shape");
        // Round trip through the writer.
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        check(f != NULL, "open_memstream");
        check(advio_npy_write_stream(f, a.dtype, a.ndim, a.shape, a.data, msg, sizeof msg) == ADV_OK,
              "writer accepts what the reader returned");
        fclose(f);
        advio_array b;
        check(advio_npy_parse(buf, len, &b, msg, sizeof msg) == ADV_OK, "re-read of written file");
        check(b.dtype == a.dtype && b.ndim == a.ndim && b.count == a.count, "same header");
        for (int k = 0; k < a.ndim; ++k) check(b.shape[k] == a.shape[k], "same shape");
        size_t item = a.dtype == ADV_FLOAT64 ? 8 : 4;
        check(memcmp(a.data, b.data, a.count * item) == 0, "same bytes");
        advio_array_free(&b);
        free(buf);
        advio_array_free(&a);
    } else {
        check(s == ADV_ERR_FORMAT || s == ADV_ERR_OUT_OF_MEMORY, "rejections are format errors");
        check(a.data == NULL, "nothing allocated on error");
        check(memchr(msg, 0, sizeof msg) && msg[0] != 0, "a reason is given");
    }
    // The other parsers of untrusted bytes.
    if (advio_csv_parse((const char *)data, size, &a, msg, sizeof msg) == ADV_OK) {
        check(a.ndim == 2 && a.count == (size_t)(a.shape[0] * a.shape[1]), "csv shape");
        check(advio_array_all_finite(&a, NULL), "csv values finite");
        advio_array_free(&a);
    }
    if (advio_pgm_parse(data, size, &a, msg, sizeof msg) == ADV_OK) {
        for (size_t i = 0; i < a.count; ++i) {
            double v = ((double *)a.data)[i];
            check(v >= 0 && v <= 1, "pgm values in [0, 1]");
        }
        advio_array_free(&a);
    }
    static const uint8_t png_signature[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
    if (size >= 8 && memcmp(data, png_signature, 8) == 0) {
        char path[] = "/tmp/advect-fuzz-XXXXXX";
        const int fd = mkstemp(path);
        check(fd >= 0, "mkstemp");
        FILE *f = fdopen(fd, "wb");
        check(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "temporary PNG written");
        adv_status ps = advio_png_read_gray(path, &a, msg, sizeof msg);
        unlink(path);
        if (ps == ADV_OK) {
            check(a.ndim == 2 && a.count == (size_t)(a.shape[0] * a.shape[1]), "png shape");
            for (size_t i = 0; i < a.count; ++i) {
                double v = ((double *)a.data)[i];
                check(v >= 0 && v <= 1, "png values in [0, 1]");
            }
            advio_array_free(&a);
        } else {
            check(ps == ADV_ERR_FORMAT || ps == ADV_ERR_OUT_OF_MEMORY, "png rejections are format errors");
            check(a.data == NULL, "nothing allocated on a png error");
        }
    }
    return 0;
}

#ifdef ADVECT_FUZZ_REPLAY
#include <dirent.h>

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "npy_fuzz_replay: cannot open '%s'\n", argv[1]);
        return 1;
    }
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    int failures = 0, ok = 0, bad = 0;
    for (int i = 0; i < n; ++i) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        char *buf;
        size_t size;
        char msg[256];
        if (advio_read_file(path, &buf, &size, msg, sizeof msg) != ADV_OK) {
            fprintf(stderr, "FAIL %s: %s\n", names[i], msg);
            ++failures;
            continue;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)buf, size);
        advio_array a;
        adv_status s = advio_npy_parse(buf, size, &a, msg, sizeof msg);
        int want_ok = !strncmp(names[i], "ok_", 3), want_bad = !strncmp(names[i], "bad_", 4);
        if ((want_ok && s != ADV_OK) || (want_bad && s == ADV_OK) || (!want_ok && !want_bad)) {
            fprintf(stderr, "FAIL %s: status %d (%s)\n", names[i], s, s == ADV_OK ? "accepted" : msg);
            ++failures;
        } else {
            printf("ok   %-40s %s\n", names[i], s == ADV_OK ? "accepted" : msg);
            ok += want_ok, bad += want_bad;
        }
        advio_array_free(&a);
        free(buf);
        free(names[i]);
    }
    printf("npy_fuzz_replay: %d files (%d valid, %d invalid), %d failures\n", n, ok, bad, failures);
    if (n == 0) return 1;
    return failures ? 1 : 0;
}
#endif
