/* Helpers shared by the benchmark programs: wall clock, reproducible input data, typed access
 * to host arrays of either precision, medians, and comma-separated size lists. */
#ifndef ADVECT_BENCH_UTIL_H
#define ADVECT_BENCH_UTIL_H

#include <advect/advect.h>

#include <stddef.h>
#include <stdint.h>

/* Monotonic wall-clock time in seconds. */
double now_s(void);

/* splitmix64: a tiny fixed-seed generator for benchmark inputs (not the library's RNG; the
 * data only has to be reproducible). uniform01 draws from [0, 1). */
uint64_t splitmix64(uint64_t *state);
double uniform01(uint64_t *state);

/* Element i of a host array in precision p, as double; and the store back. */
double get(const void *a, adv_precision p, size_t i);
void set(void *a, adv_precision p, size_t i, double v);

/* qsort comparator for doubles, and the median of t[0..r) (sorts t). */
int cmp_double(const void *a, const void *b);
double median_of(double *t, int r);

/* Parses "4096,16384,1e6" into out (integers in [1, 1e9], at most max): count, or -1. */
int parse_list(const char *s, int64_t *out, int max);

/* Creates the benchmark's context. On failure prints "<prog>: ..." and returns NULL with
 * *exit_code = 3 when the backend is unavailable (e.g. no usable GPU), 2 otherwise. */
adv_context *bench_open_context(const char *prog, adv_backend backend, int threads, int *exit_code);

/* "cuda" or "cpu". */
const char *device_name(adv_backend b);

#endif
