/* Conformance of adv_random_fill on the backend under test: its values must be those of the
 * shared draw function (kernels/common/rng.h, adv_rng_draw_f32/f64) evaluated here on the
 * host, so CPU and CUDA give the same random numbers. Uniforms are exact integer-to-float
 * conversions and must agree bitwise. Normals go through log, sqrt, cos and sin of the
 * backend's math library: the transform is evaluated in double, and CUDA's double functions
 * are within 2 ulp of glibc's, so float32 normals may differ by one rounding (1 ulp of the
 * float result) and float64 normals by a few double ulps; we allow 1 float ulp and 64
 * double ulps respectively (relative to max(|z|, 1e-3), as |z| near 0 comes from cos/sin
 * near a zero, where the absolute error is what is bounded). */
#include "conformance.h"

#include "common/rng.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_fill(adv_precision p, adv_distribution dist, uint64_t seed, uint32_t stream,
                       uint64_t first_index, uint32_t counter, int64_t n) {
    adv_context *ctx = conf_context();
    const size_t size = tu_real_size(p), bytes = (size_t)n * size;
    void *dev = conf_alloc_poisoned(ctx, p, (size_t)n);
    adv_status st = adv_random_fill(ctx, p, dist, seed, stream, first_index, counter, n, dev);
    cr_assert_eq(st, ADV_OK, "adv_random_fill: %s", adv_context_last_error(ctx));
    void *got = tu_calloc((size_t)n, size), *want = tu_calloc((size_t)n, size);
    cr_assert_eq(adv_memcpy(ctx, got, dev, bytes, ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
    const int normal = dist == ADV_NORMAL;
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t index = first_index + (uint64_t)i;
        if (p == ADV_FLOAT32)
            ((float *)want)[i] = adv_rng_draw_f32(normal, seed, stream, index, counter);
        else
            ((double *)want)[i] = adv_rng_draw_f64(normal, seed, stream, index, counter);
    }
    const char *what = normal ? "normal" : "uniform";
    if (!normal) {
        cr_expect(memcmp(got, want, bytes) == 0,
                  "%s %s draws differ from the shared host function (seed %llu, first_index "
                  "%llu)", tu_precision_name(p), what, (unsigned long long)seed,
                  (unsigned long long)first_index);
    } else {
        double *g = tu_calloc((size_t)n, sizeof(double)), *w = tu_calloc((size_t)n, sizeof(double));
        tu_from_precision(g, got, (size_t)n, p);
        tu_from_precision(w, want, (size_t)n, p);
        const double tol = p == ADV_FLOAT32 ? 2.0 * TU_U32 : 128.0 * TU_U64;
        size_t bad = 0, first = 0;
        for (int64_t i = 0; i < n; ++i) {
            if (!(isfinite(g[i]) && fabs(g[i] - w[i]) <= tol * fmax(fabs(w[i]), 1e-3))) {
                if (bad++ == 0) first = (size_t)i;
            }
        }
        cr_expect_eq(bad, 0, "%s normal draws: %zu of %lld differ from the shared host function; "
                     "first at %zu: %.17g vs %.17g", tu_precision_name(p), bad, (long long)n,
                     first, g[first], w[first]);
        free(g);
        free(w);
    }
    free(got);
    free(want);
    conf_free(ctx, dev);
    conf_context_destroy(ctx);
}

/* n not a multiple of the 4 (float32) or 2 (float64) draws per Philox block, odd start
 * indices, and a range crossing the 32-bit boundary of the block index (index 2^34 is block
 * 2^32 in float32, index 2^33 in float64), so both words of the counter are exercised. */
Test(random, uniform_f32) {
    check_fill(ADV_FLOAT32, ADV_UNIFORM, 0x0123456789ABCDEFull, 7, 0, 3, 100003);
    check_fill(ADV_FLOAT32, ADV_UNIFORM, 42, 0, (1ull << 34) - 4097, 0, 10001);
}
Test(random, uniform_f64) {
    check_fill(ADV_FLOAT64, ADV_UNIFORM, 0x0123456789ABCDEFull, 7, 3, 3, 100003);
    check_fill(ADV_FLOAT64, ADV_UNIFORM, 42, 1, (1ull << 33) - 2049, 9, 10001);
}
Test(random, normal_f32) {
    check_fill(ADV_FLOAT32, ADV_NORMAL, 0xFEEDFACEull, 3, 1, 0, 100003);
    check_fill(ADV_FLOAT32, ADV_NORMAL, 5, 0xFFFFFFFFu, (1ull << 34) - 4097, 1, 10001);
}
Test(random, normal_f64) {
    check_fill(ADV_FLOAT64, ADV_NORMAL, 0xFEEDFACEull, 3, 5, 0, 100003);
    check_fill(ADV_FLOAT64, ADV_NORMAL, 5, 0xFFFFFFFFu, (1ull << 33) - 2049, 1, 10001);
}
