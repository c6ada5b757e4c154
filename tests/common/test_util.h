/* Helpers shared by the Criterion suites: a seeded test-data generator (independent of the
 * library's own generator, so a bug there cannot hide in the test data), NaN poisoning,
 * precision conversion, tolerance helpers and unit roundoffs. test_util.c also installs the
 * report hooks that print skip reasons and the per-executable
 * "advect-tests: <exe>: N passed, M failed, K skipped" line. */
#ifndef ADVECT_TESTS_TEST_UTIL_H
#define ADVECT_TESTS_TEST_UTIL_H

#include <advect/advect.h>

#include <stddef.h>
#include <stdint.h>

/* Unit roundoff u = 2^-p of each precision (half the machine epsilon): the relative error
 * of one correctly rounded operation. Tolerances in the suites are multiples of it. */
#define TU_U32 5.9604644775390625e-08 /* 2^-24 */
#define TU_U64 1.1102230246251565e-16 /* 2^-53 */
static inline double tu_unit_roundoff(adv_precision p) { return p == ADV_FLOAT64 ? TU_U64 : TU_U32; }
static inline size_t tu_real_size(adv_precision p) { return p == ADV_FLOAT64 ? 8 : 4; }
static inline const char *tu_precision_name(adv_precision p) {
    return p == ADV_FLOAT64 ? "f64" : "f32";
}

/* splitmix64: small, well-mixed, fully deterministic test-data generator. */
typedef struct tu_rng {
    uint64_t state;
} tu_rng;
void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
double tu_rng_uniform(tu_rng *r, double lo, double hi); /* [lo, hi) */
int64_t tu_rng_int(tu_rng *r, int64_t lo, int64_t hi);  /* [lo, hi] */

/* Fills a with n uniforms in [lo, hi) from the seeded generator. */
void tu_fill_uniform(double *a, size_t n, double lo, double hi, uint64_t seed);

/* Rounds every element to the given precision in place, so that a double reference computed
 * from a[] sees exactly the values the library receives. */
void tu_round_to_precision(double *a, size_t n, adv_precision p);

/* Returns a malloc'ed copy of the n doubles in precision p (float or double elements). */
void *tu_to_precision(const double *a, size_t n, adv_precision p);
/* Converts n elements of precision p to double. */
void tu_from_precision(double *dst, const void *src, size_t n, adv_precision p);

/* Overwrites bytes with 0xFF: a quiet NaN in both float32 and float64, so any output element
 * the library fails to write is detected. */
void tu_poison(void *p, size_t bytes);

/* Calloc that fails the current test on exhaustion (never returns NULL). */
void *tu_calloc(size_t count, size_t size);

/* |got - ref| <= atol + rtol |ref|, with matching infinities and no NaN. */
int tu_close(double got, double ref, double atol, double rtol);
/* Relative error |got - ref| / max(|ref|, floor). */
double tu_rel_err(double got, double ref, double floor);
/* Largest |a[i]| over finite entries (0 when none). */
double tu_max_abs_finite(const double *a, size_t n);

/* Number of NaN entries. */
size_t tu_count_nan(const double *a, size_t n);

/* The number printed as `"key": value` in a JSON text (NaN when the key is absent). */
double tu_json_number(const char *text, const char *key);

/* Allocator hooks (adv_context_opts alloc/free, alloc_user = a tu_peak_hook) that track the
 * live and peak bytes a context allocates, the number of allocations and frees, and how many
 * calls named a memory space other than the host's. */
typedef struct tu_peak_hook {
    size_t live, peak;
    int allocs, frees, bad_space;
} tu_peak_hook;
void *tu_peak_alloc(void *user, size_t bytes, adv_memory_space space);
void tu_peak_free(void *user, void *ptr, adv_memory_space space);

/* Stores over the last 8 bytes of a checkpoint file's image the FNV-1a 64 checksum of the
 * bytes before them, as the library's checkpoints end: the step of a forger, for tests that a
 * valid checksum alone does not make a file acceptable. */
void tu_reseal_fnv1a(unsigned char *buf, size_t n);

#endif
