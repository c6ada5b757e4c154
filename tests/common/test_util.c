/* Test helpers (see test_util.h) and the Criterion report hooks. Criterion's closing
 * "Synthesis" line leaves skipped tests out, so a suite whose CUDA tests all skipped would
 * look complete; the hooks below print every skip with its reason and a closing count line
 * that CI sums up. Report hooks run in the runner process, not in the forked test workers. */
#include "test_util.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set per executable by tests/CMakeLists.txt. */
#ifndef ADV_TEST_EXE
#define ADV_TEST_EXE "advect-tests"
#endif

void tu_rng_seed(tu_rng *r, uint64_t seed) { r->state = seed; }

uint64_t tu_rng_next(tu_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double tu_rng_uniform(tu_rng *r, double lo, double hi) {
    double u = (double)(tu_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

int64_t tu_rng_int(tu_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)(tu_rng_next(r) % (uint64_t)(hi - lo + 1));
}

void tu_fill_uniform(double *a, size_t n, double lo, double hi, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (size_t i = 0; i < n; ++i) a[i] = tu_rng_uniform(&r, lo, hi);
}

void tu_round_to_precision(double *a, size_t n, adv_precision p) {
    if (p == ADV_FLOAT32)
        for (size_t i = 0; i < n; ++i) a[i] = (double)(float)a[i];
}

void *tu_to_precision(const double *a, size_t n, adv_precision p) {
    void *buf = tu_calloc(n ? n : 1, tu_real_size(p));
    if (p == ADV_FLOAT32) {
        float *f = buf;
        for (size_t i = 0; i < n; ++i) f[i] = (float)a[i];
    } else {
        memcpy(buf, a, n * sizeof(double));
    }
    return buf;
}

void tu_from_precision(double *dst, const void *src, size_t n, adv_precision p) {
    if (p == ADV_FLOAT32) {
        const float *f = src;
        for (size_t i = 0; i < n; ++i) dst[i] = (double)f[i];
    } else {
        memcpy(dst, src, n * sizeof(double));
    }
}

void tu_poison(void *p, size_t bytes) { memset(p, 0xFF, bytes); }

void *tu_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    cr_assert_not_null(p, "test allocation of %zu x %zu bytes failed", count, size);
    return p;
}

int tu_close(double got, double ref, double atol, double rtol) {
    if (isnan(got) || isnan(ref)) return 0;
    if (isinf(ref) || isinf(got)) return got == ref;
    return fabs(got - ref) <= atol + rtol * fabs(ref);
}

double tu_rel_err(double got, double ref, double floor) {
    double den = fabs(ref) > floor ? fabs(ref) : floor;
    return fabs(got - ref) / den;
}

double tu_max_abs_finite(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; ++i)
        if (isfinite(a[i]) && fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

size_t tu_count_nan(const double *a, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) k += isnan(a[i]) != 0;
    return k;
}

double tu_json_number(const char *text, const char *key) {
    char needle[128];
    snprintf(needle, sizeof needle, "\"%s\": ", key);
    const char *at = strstr(text, needle);
    return at ? strtod(at + strlen(needle), NULL) : NAN;
}

/* Every skip, with its reason, on its own line (Criterion prints nothing for a skip unless
 * run verbosely). */
ReportHook(POST_TEST)(struct criterion_test_stats *stats) {
    if (stats->test_status == CR_STATUS_SKIPPED)
        fprintf(stderr, "advect-tests: %s: SKIPPED %s::%s: %s\n", ADV_TEST_EXE,
                stats->test->category, stats->test->name,
                stats->message ? stats->message : "(no reason given)");
}

/* tests_failed already counts crashed tests. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
    fprintf(stderr, "advect-tests: %s: %zu passed, %zu failed, %zu skipped\n", ADV_TEST_EXE,
            stats->tests_passed, stats->tests_failed, stats->tests_skipped);
    fflush(stderr);
}

void tu_reseal_fnv1a(unsigned char *buf, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i + 8 < n; ++i) h = (h ^ buf[i]) * 1099511628211ull;
    memcpy(buf + n - 8, &h, 8);
}

void *tu_peak_alloc(void *user, size_t bytes, adv_memory_space space) {
    tu_peak_hook *h = user;
    if (space != ADV_MEMORY_HOST) ++h->bad_space;
    size_t *p = NULL;
    if (posix_memalign((void **)&p, 64, bytes + 64) != 0) return NULL;
    p[0] = bytes; // the size, in a 64-byte header that keeps the block aligned
    h->live += bytes;
    if (h->live > h->peak) h->peak = h->live;
    ++h->allocs;
    return (char *)p + 64;
}

void tu_peak_free(void *user, void *ptr, adv_memory_space space) {
    tu_peak_hook *h = user;
    if (space != ADV_MEMORY_HOST) ++h->bad_space;
    if (!ptr) return;
    size_t *p = (size_t *)((char *)ptr - 64);
    h->live -= p[0];
    ++h->frees;
    free(p);
}
