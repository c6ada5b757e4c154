/* Unit tests of the random numbers (CPU backend): Philox4x32-10 known answers, the mapping
 * from (seed, stream, index, counter) to Philox inputs, the open interval of the uniforms,
 * moments of the normals, and independence of the values from thread count and from how the
 * index range is split into calls. */
#include "test_util.h"

#include "common/rng.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Known-answer vectors of Philox4x32 with 10 rounds, from Random123's tests/kat_vectors
 * (D. E. Shaw Research, github.com/DEShawResearch/random123), the three "philox4x32 10"
 * lines: counter (4 words), key (2 words), expected output (4 words). */
static const struct {
    uint32_t ctr[4], key[2], out[4];
} kat[] = {
    {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
     {0x00000000u, 0x00000000u},
     {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
     {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
     {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};
#define N_KAT (sizeof kat / sizeof kat[0])

static adv_context *cpu_context(int threads) {
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    opts.cpu_threads = threads;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&opts, &ctx), ADV_OK);
    return ctx;
}

Test(random, philox_known_answers) {
    for (size_t t = 0; t < N_KAT; ++t) {
        uint32_t out[4];
        adv_philox4x32_10(kat[t].ctr, kat[t].key, out);
        for (int k = 0; k < 4; ++k)
            cr_expect_eq(out[k], kat[t].out[k], "KAT %zu word %d: got %08x, expected %08x", t, k,
                         out[k], kat[t].out[k]);
    }
}

/* The shared draw function maps (seed, stream, block, counter) to the Philox counter
 * (block_lo, block_hi, counter, stream) and key (seed_lo, seed_hi). Expressing each KAT in
 * those terms checks that layout. Then, for blocks the index range can reach, the public fill
 * must return the KAT-checked raw generator's words, converted by the shared conversions:
 * float32 index 4b + k uses word k of block b, float64 index 2b + k words 2k and 2k + 1. */
Test(random, known_answers_through_fill) {
    for (size_t t = 0; t < N_KAT; ++t) {
        const uint64_t block = (uint64_t)kat[t].ctr[0] | ((uint64_t)kat[t].ctr[1] << 32);
        const uint32_t counter = kat[t].ctr[2], stream = kat[t].ctr[3];
        const uint64_t seed = (uint64_t)kat[t].key[0] | ((uint64_t)kat[t].key[1] << 32);
        philox4x32_ctr_t r = adv_rng_block(seed, stream, block, counter);
        for (int k = 0; k < 4; ++k)
            cr_expect_eq(r.v[k], kat[t].out[k], "adv_rng_block KAT %zu word %d", t, k);
    }
    adv_context *ctx = cpu_context(0);
    const uint64_t seeds[] = {0, 0x299f31d0a4093822ull, 0xFFFFFFFFFFFFFFFFull};
    const uint64_t blocks[] = {0, 0x03707344243f6a88ull, (1ull << 61) - 1};
    const uint32_t streams[] = {0, 0x13198a2eu, 0xFFFFFFFFu}, counters[] = {0, 0x85a308d3u, 7};
    for (size_t t = 0; t < 3; ++t) {
        const uint32_t ctr[4] = {(uint32_t)blocks[t], (uint32_t)(blocks[t] >> 32), counters[t],
                                 streams[t]};
        const uint32_t key[2] = {(uint32_t)seeds[t], (uint32_t)(seeds[t] >> 32)};
        uint32_t words[4];
        adv_philox4x32_10(ctr, key, words);
        float u32[4];
        double u64[2];
        cr_assert_eq(adv_random_fill(ctx, ADV_FLOAT32, ADV_UNIFORM, seeds[t], streams[t],
                                     blocks[t] * 4, counters[t], 4, u32),
                     ADV_OK, "%s", adv_context_last_error(ctx));
        cr_assert_eq(adv_random_fill(ctx, ADV_FLOAT64, ADV_UNIFORM, seeds[t], streams[t],
                                     blocks[t] * 2, counters[t], 2, u64),
                     ADV_OK, "%s", adv_context_last_error(ctx));
        for (int k = 0; k < 4; ++k)
            cr_expect(u32[k] == adv_rng_u32_to_unit_f32(words[k]),
                      "case %zu: float32 draw %d is %.9g, expected word %08x -> %.9g", t, k,
                      u32[k], words[k], adv_rng_u32_to_unit_f32(words[k]));
        for (int k = 0; k < 2; ++k)
            cr_expect(u64[k] == adv_rng_u64_to_unit_f64(words[2 * k], words[2 * k + 1]),
                      "case %zu: float64 draw %d is %.17g", t, k, u64[k]);
    }
    adv_context_destroy(ctx);
}

/* The conversions must give values strictly inside (0, 1) for every input word, including
 * the extremes, where a value like (k + 1/2) 2^-24 with a 24-bit k needs 25 significant
 * bits and rounds to 1. All 2^24 patterns of the high 24 bits (the low bits set) are checked
 * for float32, and the map must be non-decreasing in the input. */
Test(random, uniform_conversion_open_interval) {
    float prev = 0.0f;
    size_t bad = 0, first = 0;
    for (uint64_t k = 0; k < (1u << 24); ++k) {
        float u = adv_rng_u32_to_unit_f32((uint32_t)(k << 8) | 0xFFu);
        if (!(u > 0.0f && u >= prev && u < 1.0f) && bad++ == 0) first = (size_t)k;
        prev = u;
    }
    cr_expect_eq(bad, 0,
                 "float32 uniform: %zu of 2^24 inputs leave (0, 1) or decrease; first: word "
                 "%08x -> %.9g",
                 bad, (unsigned)((first << 8) | 0xFFu),
                 adv_rng_u32_to_unit_f32((uint32_t)(first << 8) | 0xFFu));
    const uint32_t words[][2] = {{0, 0},
                                 {0xFFFFFFFFu, 0xFFFFFFFFu},
                                 {0xFFFFFFFFu, 0xFFFFF7FFu},
                                 {0x80000000u, 0},
                                 {0x7FFFFFFFu, 0xFFFFFFFFu},
                                 {0, 0xFFFFFFFFu}};
    for (size_t t = 0; t < sizeof words / sizeof words[0]; ++t) {
        double u = adv_rng_u64_to_unit_f64(words[t][0], words[t][1]);
        cr_expect(u > 0.0 && u < 1.0, "float64 uniform of words %08x %08x is %.17g, not in (0, 1)",
                  words[t][0], words[t][1], u);
    }
}

/* 2^20 uniforms: all in (0, 1), and mean / variance within 5 standard errors of 1/2 and
 * 1/12 (sd of the mean sqrt(1/12/n) = 2.8e-4; of the variance sqrt(1/180/n) = 7.3e-5). */
static void check_uniform(adv_precision p) {
    adv_context *ctx = cpu_context(0);
    const int64_t n = 1 << 20;
    double *v = tu_calloc((size_t)n, sizeof(double));
    void *buf = tu_calloc((size_t)n, tu_real_size(p));
    cr_assert_eq(adv_random_fill(ctx, p, ADV_UNIFORM, 12345, 2, 0, 0, n, buf), ADV_OK);
    tu_from_precision(v, buf, (size_t)n, p);
    double mean = 0.0, var = 0.0, lo = 1.0, hi = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        mean += v[i];
        lo = fmin(lo, v[i]);
        hi = fmax(hi, v[i]);
    }
    mean /= (double)n;
    for (int64_t i = 0; i < n; ++i) var += (v[i] - 0.5) * (v[i] - 0.5);
    var /= (double)n;
    cr_expect(lo > 0.0 && hi < 1.0, "%s uniforms reach %.17g .. %.17g", tu_precision_name(p), lo, hi);
    cr_expect(lo < 1e-5 && hi > 1.0 - 1e-5, "%s uniforms only span %.17g .. %.17g",
              tu_precision_name(p), lo, hi);
    cr_expect(fabs(mean - 0.5) < 5.0 * sqrt(1.0 / 12.0 / n), "%s uniform mean %.6f",
              tu_precision_name(p), mean);
    cr_expect(fabs(var - 1.0 / 12.0) < 5.0 * sqrt(1.0 / 180.0 / n), "%s uniform variance %.6f",
              tu_precision_name(p), var);
    free(v);
    free(buf);
    adv_context_destroy(ctx);
}

Test(random, uniform_range_and_moments_f32) { check_uniform(ADV_FLOAT32); }
Test(random, uniform_range_and_moments_f64) { check_uniform(ADV_FLOAT64); }

/* 2^20 standard normals. Sample moments against E Z = 0, E Z^2 = 1, E Z^3 = 0, E Z^4 = 3,
 * each within 5 standard errors sqrt(Var(Z^k) / n), Var(Z^k) = E Z^2k - (E Z^k)^2:
 * 1, 2, 15 and 96, i.e. 4.9e-3, 6.9e-3, 1.9e-2 and 4.8e-2. Five sigma keeps a correct
 * generator from failing on its fixed seed while a wrong transform (e.g. missing the factor
 * 2 in sqrt(-2 log u), giving variance 1/2) fails by far. */
static void check_normal(adv_precision p) {
    adv_context *ctx = cpu_context(0);
    const int64_t n = 1 << 20;
    double *v = tu_calloc((size_t)n, sizeof(double));
    void *buf = tu_calloc((size_t)n, tu_real_size(p));
    cr_assert_eq(adv_random_fill(ctx, p, ADV_NORMAL, 777, 5, 11, 2, n, buf), ADV_OK);
    tu_from_precision(v, buf, (size_t)n, p);
    double m[5] = {0};
    for (int64_t i = 0; i < n; ++i) {
        cr_assert(isfinite(v[i]), "%s normal %lld is not finite", tu_precision_name(p), (long long)i);
        double z = 1.0;
        for (int k = 1; k <= 4; ++k) m[k] += (z *= v[i]);
    }
    const double expect[5] = {0, 0.0, 1.0, 0.0, 3.0}, var[5] = {0, 1.0, 2.0, 15.0, 96.0};
    for (int k = 1; k <= 4; ++k) {
        m[k] /= (double)n;
        cr_expect(fabs(m[k] - expect[k]) < 5.0 * sqrt(var[k] / n),
                  "%s normal moment %d: %.5f, expected %.1f (+- %.4f)", tu_precision_name(p), k,
                  m[k], expect[k], 5.0 * sqrt(var[k] / n));
    }
    free(v);
    free(buf);
    adv_context_destroy(ctx);
}

Test(random, normal_moments_f32) { check_normal(ADV_FLOAT32); }
Test(random, normal_moments_f64) { check_normal(ADV_FLOAT64); }

/* Bitwise independence from the CPU thread count: 1, 2 and 3 threads (3 does not divide n). */
Test(random, independent_of_thread_count) {
    const int64_t n = 100003;
    for (int p = 0; p < 2; ++p) {
        for (int dist = 0; dist < 2; ++dist) {
            const size_t bytes = (size_t)n * tu_real_size((adv_precision)p);
            void *ref = NULL;
            for (int threads = 1; threads <= 3; ++threads) {
                adv_context *ctx = cpu_context(threads);
                void *buf = tu_calloc(1, bytes);
                cr_assert_eq(adv_random_fill(ctx, (adv_precision)p, (adv_distribution)dist, 99, 4,
                                             5, 1, n, buf),
                             ADV_OK);
                if (!ref)
                    ref = buf;
                else {
                    cr_expect(memcmp(ref, buf, bytes) == 0,
                              "%s %s: %d threads differ from 1 thread",
                              tu_precision_name((adv_precision)p), dist ? "normal" : "uniform",
                              threads);
                    free(buf);
                }
                adv_context_destroy(ctx);
            }
            free(ref);
        }
    }
}

/* Bitwise independence from chunking: [base, base + n) in one call equals the same range
 * filled by uneven pieces (1, 2, 5, 3, 1000, 7, rest) with first_index offsets, starting at
 * an odd base so that pieces begin and end in the middle of Philox blocks. */
Test(random, independent_of_chunking) {
    const int64_t n = 20011, pieces[] = {1, 2, 5, 3, 1000, 7};
    const uint64_t base = 13;
    adv_context *ctx = cpu_context(0);
    for (int p = 0; p < 2; ++p) {
        for (int dist = 0; dist < 2; ++dist) {
            const size_t size = tu_real_size((adv_precision)p);
            char *whole = tu_calloc((size_t)n, size), *split = tu_calloc((size_t)n, size);
            tu_poison(split, (size_t)n * size);
            cr_assert_eq(adv_random_fill(ctx, (adv_precision)p, (adv_distribution)dist, 31337, 9,
                                         base, 4, n, whole),
                         ADV_OK);
            int64_t at = 0;
            for (size_t k = 0; at < n; ++k) {
                int64_t len = k < sizeof pieces / sizeof pieces[0] ? pieces[k] : n - at;
                cr_assert_eq(adv_random_fill(ctx, (adv_precision)p, (adv_distribution)dist,
                                             31337, 9, base + (uint64_t)at, 4, len,
                                             split + (size_t)at * size),
                             ADV_OK);
                at += len;
            }
            cr_expect(memcmp(whole, split, (size_t)n * size) == 0,
                      "%s %s: chunked fill differs from a single fill",
                      tu_precision_name((adv_precision)p), dist ? "normal" : "uniform");
            free(whole);
            free(split);
        }
    }
    adv_context_destroy(ctx);
}

/* Each key component changes the stream of values (no component is ignored). */
Test(random, keys_select_distinct_streams) {
    adv_context *ctx = cpu_context(0);
    enum { n = 64 };
    const uint64_t seeds[] = {1, 2, 1, 1, 1, (1ull << 32) + 1};
    const uint32_t streams[] = {0, 0, 1, 0, 0, 0};
    const uint32_t counters[] = {0, 0, 0, 1, 0, 0};
    const uint64_t firsts[] = {0, 0, 0, 0, 1ull << 40, 0};
    float v[6][n];
    for (int k = 0; k < 6; ++k)
        cr_assert_eq(adv_random_fill(ctx, ADV_FLOAT32, ADV_UNIFORM, seeds[k], streams[k], firsts[k],
                                     counters[k], n, v[k]),
                     ADV_OK);
    for (int k = 1; k < 6; ++k)
        cr_expect(memcmp(v[0], v[k], sizeof v[0]) != 0, "key variant %d repeats the base stream", k);
    adv_context_destroy(ctx);
}
