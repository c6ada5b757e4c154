/* Helpers shared by the benchmark programs (see bench_util.h). */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double uniform01(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

double get(const void *a, adv_precision p, size_t i) {
    return p == ADV_FLOAT64 ? ((const double *)a)[i] : (double)((const float *)a)[i];
}

void set(void *a, adv_precision p, size_t i, double v) {
    if (p == ADV_FLOAT64)
        ((double *)a)[i] = v;
    else
        ((float *)a)[i] = (float)v;
}

int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median_of(double *t, int r) {
    qsort(t, (size_t)r, sizeof(double), cmp_double);
    return r % 2 ? t[r / 2] : 0.5 * (t[r / 2 - 1] + t[r / 2]);
}

int parse_list(const char *s, int64_t *out, int max) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        errno = 0;
        double v = strtod(tok, &end); /* accepts 1e6 */
        if (errno || end == tok || *end || v < 1 || v > 1e9 || v != floor(v) || n == max) {
            free(copy);
            return -1;
        }
        out[n++] = (int64_t)v;
    }
    free(copy);
    return n;
}

const char *device_name(adv_backend b) { return b == ADV_BACKEND_CUDA ? "cuda" : "cpu"; }

adv_context *bench_open_context(const char *prog, adv_backend backend, int threads, int *exit_code) {
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = backend;
    opts.cpu_threads = threads;
    adv_context *ctx = NULL;
    adv_status st = adv_context_create(&opts, &ctx);
    if (st == ADV_ERR_BACKEND_UNAVAILABLE) {
        char reason[256] = "";
        int count = 0;
        adv_cuda_device_count(&count, reason, sizeof reason);
        fprintf(stderr, "%s: backend unavailable: %s\n", prog, reason[0] ? reason : adv_status_string(st));
        *exit_code = 3;
        return NULL;
    }
    if (st != ADV_OK) {
        fprintf(stderr, "%s: context creation failed: %s\n", prog, adv_status_string(st));
        *exit_code = 2;
        return NULL;
    }
    *exit_code = 0;
    return ctx;
}
