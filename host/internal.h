/* Private declarations shared by the host code: the context structure, error reporting,
 * allocation in each memory space, and the entry points each backend provides. Public
 * entry points (host/<module>.c) check arguments and dispatch to host/cpu/ or host/cuda/. */
#ifndef ADVECT_HOST_INTERNAL_H
#define ADVECT_HOST_INTERNAL_H

#include "advect/advect.h"
#include "atomic_file.h"
#include <float.h>
#include <stdio.h>
#include <math.h>
#include <stdarg.h>

struct adv_context {
    adv_backend backend; /* CPU or CUDA, never AUTO */
    int device_id;
    void *stream;
    int cpu_threads;
    adv_log_fn log;
    void *log_user;
    adv_log_level log_level;
    adv_alloc_fn alloc;
    adv_free_fn free;
    void *alloc_user;
    char last_error[1024];
    int in_log; /* a message is being delivered: no nested delivery from the callback's calls */
};

/* Records a detailed message for status on ctx (if non-NULL), passes it to the log callback
 * and returns status, so callers write `return advi_fail(ctx, ADV_ERR_..., "...", ...)`. */
adv_status advi_fail(adv_context *ctx, adv_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void advi_clear_error(adv_context *ctx);
void advi_log(adv_context *ctx, adv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Host workspace through the context's allocator hooks (64-byte aligned by default). */
void *advi_host_alloc(adv_context *ctx, size_t bytes);
void advi_host_free(adv_context *ctx, void *ptr);

/* Checks a * b * ... fits in size_t bytes; returns 0 on overflow. */
int advi_mul_size(size_t *result, size_t a, size_t b);

/* OpenMP thread count for CPU work on this context. */
int advi_cpu_threads(const adv_context *ctx);

/* Marks a hot CPU function to be compiled for AVX-512 and AVX2 as well, the version chosen at
 * load time (the build itself targets baseline x86-64); not under the address or thread
 * sanitizers, which do not support the clones' resolvers (a ThreadSanitizer build crashed at
 * load). Functions it calls inline are compiled for each target too. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define ADVI_CPU_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ADVI_CPU_CLONES
#endif

/* Element size of a precision. */
static inline size_t advi_real_size(adv_precision p) { return p == ADV_FLOAT64 ? 8 : 4; }

/* Largest finite value of a precision, and its name for messages. */
static inline double advi_real_max(adv_precision p) { return p == ADV_FLOAT64 ? DBL_MAX : FLT_MAX; }
static inline const char *advi_precision_name(adv_precision p) {
    return p == ADV_FLOAT64 ? "float64" : "float32";
}

/* The range checks keep scores, squared distances and sums below a quarter of the largest
 * finite value (margin for rounding and the GPU's base-2 score units). Coordinates up to this
 * magnitude have squared norms in d dimensions below that bound. */
static inline double advi_distance_limit(adv_precision p, int64_t d) {
    return sqrt(advi_real_max(p) / 4.0 / (double)d);
}

/* Whether [a, a + bytes) and [b, b + bytes) share a byte (compared as addresses). */
static inline int advi_ranges_overlap(const void *a, const void *b, size_t bytes) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y ? y - x < bytes : x - y < bytes;
}
/* The same for spans of different lengths; NULL or empty spans overlap nothing. */
static inline int advi_spans_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    if (!a || !b || !a_bytes || !b_bytes) return 0;
    return x < y ? y - x < a_bytes : x - y < b_bytes;
}

/* 64-bit FNV-1a of `bytes` bytes, continuing from h (start from ADVI_FNV_OFFSET): the
 * checksums and configuration fingerprints of checkpoints. */
#define ADVI_FNV_OFFSET 14695981039346656037ull
static inline uint64_t advi_fnv1a(uint64_t h, const void *data, size_t bytes) {
    const unsigned char *b = (const unsigned char *)data;
    for (size_t i = 0; i < bytes; ++i) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- interaction sums (host/interaction.c) ---- */
struct adv_interaction_plan {
    adv_context *ctx;
    adv_interaction_desc desc;
    void *backend_state; /* owned by the backend */
};

/* Finiteness check in the context's memory space: ADV_OK with *ok set, or a backend error.
 * max_abs (may be NULL) receives the largest |element| over the finite ones (0 if none), for
 * range checks. */
adv_status advi_all_finite(adv_context *ctx, adv_precision precision, const void *data,
                           size_t count, int allow_neg_inf, int *ok, double *max_abs);

/* ---- Files the library writes (host/files.c over atomic_file.c) ---- */
typedef advi_atomic_file advi_file; /* fp: the temporary file, open for writing */
/* Opens a hidden temporary file beside path, symbolic links followed (ADV_ERR_IO, reported,
 * when the target exists and is not a regular file or the directory is not writable;
 * ADV_ERR_OUT_OF_MEMORY). */
adv_status advi_file_begin(adv_context *ctx, const char *path, advi_file *file);
/* Closes the file; when ok, flushes it to disk and renames it over the target (ADV_ERR_IO,
 * reported, on failure); otherwise removes it and returns ADV_ERR_IO for the caller to
 * report. */
adv_status advi_file_commit(adv_context *ctx, advi_file *file, const char *path, int ok);

/* ---- Poisson plans (host/poisson.c) ---- */
struct adv_poisson_plan {
    adv_context *ctx;
    adv_poisson_desc desc;
    size_t cells;         /* Π shape: elements of one right-hand side */
    int singular;         /* c == 0 and no Dirichlet axis: the zero mode is undefined */
    double mean_tolerance; /* resolved (desc->mean_tolerance or the precision's default) */
    double safe_max_f;    /* max|f| up to which no value of the solve can overflow */
    void *backend_state;  /* owned by the backend */
};

/* The overflow rule of adv_poisson_execute, for the backends: with check_finite, a solve
 * whose max|f| exceeds plan->safe_max_f has its solution scanned; this reports a non-finite
 * one (ADV_ERR_NONFINITE, naming the bound) after the backend has zeroed u. */
adv_status advi_poisson_overflow(adv_poisson_plan *plan, double max_abs_f);

/* adv_interaction_execute for the plan's first n <= n_queries queries (arrays laid out for
 * n), without its argument checks and finiteness scan: for callers inside the library that
 * keep one plan for varying row counts (the sampling fields). values_are_keys is honoured. */
adv_status advi_interaction_execute_n(adv_interaction_plan *plan, int64_t n, const void *x,
                                      const void *y, const void *beta, const void *w, void *lse,
                                      void *out);

/* ---- CPU backend (host/cpu/) ---- */
adv_status advi_cpu_poisson_plan_init(adv_poisson_plan *plan);
adv_status advi_cpu_poisson_execute(adv_poisson_plan *plan, const void *f, void *u);
void advi_cpu_poisson_plan_fini(adv_poisson_plan *plan);
adv_status advi_cpu_interaction(adv_context *ctx, const adv_interaction_desc *desc,
                                const void *x, const void *y, const void *beta, const void *w,
                                void *lse, void *out);
adv_status advi_cpu_random_fill(adv_context *ctx, adv_precision precision, int normal,
                                uint64_t seed, uint32_t stream, uint64_t first_index,
                                uint32_t counter, int64_t n, void *out);
/* 1 when every element is finite (allow_neg_inf: -Inf also passes, NaN/+Inf do not); on the
 * context's CPU threads. max_abs (may be NULL): as advi_all_finite. */
int advi_cpu_all_finite(adv_context *ctx, adv_precision precision, const void *data,
                        size_t count, int allow_neg_inf, double *max_abs);

/* ---- CUDA backend (host/cuda/); when not compiled in, host/cuda_stub.c provides these and
 * each returns ADV_ERR_BACKEND_UNAVAILABLE. ---- */
int advi_cuda_compiled(void);
int advi_cuda_runtime_version(void);
/* Probes for a usable device: ADV_OK, or ADV_ERR_BACKEND_UNAVAILABLE with the reason. */
adv_status advi_cuda_probe(int device_id, char *reason, size_t reason_size);
adv_status advi_cuda_device_count(int *count, char *reason, size_t reason_size);
adv_status advi_cuda_device_info(int id, adv_device_info *info);
adv_status advi_cuda_malloc(adv_context *ctx, size_t bytes, void **ptr);
adv_status advi_cuda_free(adv_context *ctx, void *ptr);
adv_status advi_cuda_memcpy(adv_context *ctx, void *dst, const void *src, size_t bytes,
                            adv_copy_kind kind);
adv_status advi_cuda_synchronize(adv_context *ctx);
adv_status advi_cuda_interaction_plan_init(adv_interaction_plan *plan);
/* Executes the plan for its first n <= n_queries queries (per batch entry; arrays laid out
 * for n). */
adv_status advi_cuda_interaction_execute(adv_interaction_plan *plan, int64_t n, const void *x,
                                         const void *y, const void *beta, const void *w,
                                         void *lse, void *out);
void advi_cuda_interaction_plan_fini(adv_interaction_plan *plan);
/* Sets *ok to 1 when every element of the device array is finite (see advi_cpu_all_finite);
 * synchronises the context's stream. */
adv_status advi_cuda_all_finite(adv_context *ctx, adv_precision precision, const void *data,
                                size_t count, int allow_neg_inf, int *ok, double *max_abs);
adv_status advi_cuda_poisson_plan_init(adv_poisson_plan *plan);
adv_status advi_cuda_poisson_execute(adv_poisson_plan *plan, const void *f, void *u);
void advi_cuda_poisson_plan_fini(adv_poisson_plan *plan);
adv_status advi_cuda_random_fill(adv_context *ctx, adv_precision precision, int normal,
                                 uint64_t seed, uint32_t stream, uint64_t first_index,
                                 uint32_t counter, int64_t n, void *out);

#endif
