/* advect core API: status codes, the context (backend, device, stream, threads, logging,
 * allocators), memory helpers in the context's memory space, version and build information.
 * Plain C; no CUDA types or headers. Every function returns adv_status unless noted. */
#ifndef ADVECT_CORE_H
#define ADVECT_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define ADV_API
#else
#define ADV_API __attribute__((visibility("default")))
#endif

/* One table defines every status code and its message (X-macro). Values are stable. */
#define ADV_STATUS_TABLE(X)                                                                 \
    X(ADV_OK, 0, "success")                                                                 \
    X(ADV_ERR_NULL_POINTER, 1, "a required pointer argument is NULL")                       \
    X(ADV_ERR_INVALID_SIZE, 2, "a size argument is zero, negative or too large")            \
    X(ADV_ERR_DIMENSION_MISMATCH, 3, "array dimensions do not match")                       \
    X(ADV_ERR_INVALID_VALUE, 4, "an argument has an invalid value")                         \
    X(ADV_ERR_NONFINITE, 5, "an input contains NaN or infinity")                            \
    X(ADV_ERR_BACKEND_UNAVAILABLE, 6, "the requested backend is not available")             \
    X(ADV_ERR_OUT_OF_MEMORY, 7, "memory allocation failed")                                 \
    X(ADV_ERR_CUDA, 8, "a CUDA runtime call failed")                                        \
    X(ADV_ERR_CUBLAS, 9, "a cuBLAS call failed")                                            \
    X(ADV_ERR_CUFFT, 10, "a cuFFT call failed")                                             \
    X(ADV_ERR_FFTW, 11, "an FFTW call failed")                                              \
    X(ADV_ERR_IO, 12, "a file could not be read or written")                                \
    X(ADV_ERR_FORMAT, 13, "a file or buffer has an invalid format")                         \
    X(ADV_ERR_NOT_CONVERGED, 14, "the solver did not converge")                             \
    X(ADV_ERR_UNSUPPORTED, 15, "the operation is not supported for these arguments")        \
    X(ADV_ERR_INTERNAL, 16, "internal error")

typedef enum adv_status {
#define ADV_STATUS_ENUM(name, value, msg) name = value,
    ADV_STATUS_TABLE(ADV_STATUS_ENUM)
#undef ADV_STATUS_ENUM
} adv_status;

/* Static message of a status code ("unknown status" for values outside the table). */
ADV_API const char *adv_status_string(adv_status status);
/* Symbolic name of a status code, e.g. "ADV_ERR_NULL_POINTER". */
ADV_API const char *adv_status_name(adv_status status);

typedef enum adv_backend {
    ADV_BACKEND_AUTO = 0, /* CUDA when a usable device exists, else CPU */
    ADV_BACKEND_CPU = 1,
    ADV_BACKEND_CUDA = 2
} adv_backend;

typedef enum adv_precision { ADV_FLOAT32 = 0, ADV_FLOAT64 = 1 } adv_precision;

typedef enum adv_log_level {
    ADV_LOG_ERROR = 0,
    ADV_LOG_WARN = 1,
    ADV_LOG_INFO = 2,
    ADV_LOG_DEBUG = 3
} adv_log_level;

/* The callback may call the library, on this context too (e.g. adv_context_last_error, which
 * during an error's delivery returns that message): messages raised by such nested calls are
 * not delivered, and after the failing call returns, adv_context_last_error is its message
 * whatever the callback did. It must return (no longjmp) and must not destroy the context. */
typedef void (*adv_log_fn)(void *user, adv_log_level level, const char *message);

typedef enum adv_memory_space { ADV_MEMORY_HOST = 0, ADV_MEMORY_DEVICE = 1 } adv_memory_space;

/* Allocator hooks: used for the allocations the library makes in the context's memory space
 * (device memory on CUDA: every workspace; the CPU backend's data-sized workspaces, i.e. the
 * interaction engine's packed keys, the Poisson transforms' buffers and the iterates of the
 * Benamou-Brenier solver) and for adv_malloc. Plan and handle structs, small per-thread
 * scratch, host-side staging (snapshots, checkpoint I/O, the CUDA backend's host copies) and
 * the DOPRI5 sampler's per-particle controller use malloc. alloc returns NULL on
 * failure (then ADV_ERR_OUT_OF_MEMORY); alignment must be >= 64 bytes for host memory. Leave
 * both NULL to use the defaults. */
typedef void *(*adv_alloc_fn)(void *user, size_t bytes, adv_memory_space space);
typedef void (*adv_free_fn)(void *user, void *ptr, adv_memory_space space);

typedef struct adv_context_opts {
    size_t struct_size;  /* sizeof(adv_context_opts); set by adv_context_default_opts */
    adv_backend backend; /* default ADV_BACKEND_AUTO */
    int device_id;       /* CUDA device ordinal, default 0 */
    void *stream;        /* cudaStream_t to launch on; NULL = the legacy default stream */
    int cpu_threads;     /* OpenMP threads for CPU work; 0 = OpenMP's default */
    adv_log_fn log;      /* optional log callback; the library never prints */
    void *log_user;
    adv_log_level log_level; /* messages above this level are not delivered; default WARN */
    adv_alloc_fn alloc;      /* optional allocator hooks (both or neither) */
    adv_free_fn free;
    void *alloc_user;
} adv_context_opts;

/* A context holds no global state and contexts never interfere (separate contexts may be used
 * from separate threads at once, bit-identical to serial use; CPU Poisson plans made with
 * ADV_FFT_MEASURE are the exception, see poisson.h: their FFT algorithm is chosen by timing). One context is not
 * thread-safe: calls on it, and on the plans, fields and samplers made from it, must not run
 * concurrently (its last-error message is per context). */
typedef struct adv_context adv_context;

ADV_API adv_status adv_context_default_opts(adv_context_opts *opts);
/* Creates a context. With ADV_BACKEND_CUDA and no usable device (not compiled in, no
 * driver, driver too old, no device, bad id) returns ADV_ERR_BACKEND_UNAVAILABLE and sets
 * *ctx to NULL. With AUTO, any failure of the device probe selects the CPU. opts may be
 * NULL for defaults. */
ADV_API adv_status adv_context_create(const adv_context_opts *opts, adv_context **ctx);
ADV_API adv_status adv_context_destroy(adv_context *ctx);
/* The backend actually in use (never AUTO). Returns ADV_BACKEND_CPU for NULL. */
ADV_API adv_backend adv_context_backend(const adv_context *ctx);
/* Detailed message of the last error on this context ("" when none). Valid until the next
 * call on the context. */
ADV_API const char *adv_context_last_error(const adv_context *ctx);
/* Blocks until all work queued on the context's stream is done (no-op on the CPU). */
ADV_API adv_status adv_context_synchronize(adv_context *ctx);

/* Memory in the context's space: host memory for the CPU backend, device memory for CUDA. */
ADV_API adv_status adv_malloc(adv_context *ctx, size_t bytes, void **ptr);
ADV_API adv_status adv_free(adv_context *ctx, void *ptr);

typedef enum adv_copy_kind {
    ADV_COPY_HOST_TO_CONTEXT = 0,
    ADV_COPY_CONTEXT_TO_HOST = 1,
    ADV_COPY_CONTEXT_TO_CONTEXT = 2
} adv_copy_kind;

/* Copies bytes; synchronous with respect to the host (it waits for the context's stream).
 * The ranges must not overlap unless dst == src (then nothing is copied):
 * ADV_ERR_INVALID_VALUE. */
ADV_API adv_status adv_memcpy(adv_context *ctx, void *dst, const void *src, size_t bytes,
                              adv_copy_kind kind);

/* Library version, e.g. "0.1.0". */
ADV_API const char *adv_version(void);
ADV_API void adv_version_numbers(int *major, int *minor, int *patch);

typedef struct adv_build_info {
    int has_cpu;               /* always 1 */
    int has_cuda;              /* CUDA backend compiled in */
    int has_openmp;            /* CPU backend built with OpenMP */
    int cuda_runtime_version;  /* CUDART_VERSION at build time (e.g. 13000), 0 without CUDA */
    const char *cuda_architectures; /* e.g. "80-real,90", "" without CUDA */
    const char *compiler;      /* C compiler id and version */
} adv_build_info;

ADV_API adv_status adv_build_info_get(adv_build_info *info);

typedef struct adv_device_info {
    int id;
    char name[256];
    int compute_major, compute_minor;
    size_t total_memory;
    int multiprocessors;
} adv_device_info;

/* Number of CUDA devices the runtime reports (0 when the backend is not compiled in, there is
 * no driver or no device; then `reason`, if non-NULL, receives why, up to reason_size bytes).
 * A device counted here may still be unusable: see adv_cuda_device_usable. */
ADV_API adv_status adv_cuda_device_count(int *count, char *reason, size_t reason_size);
ADV_API adv_status adv_cuda_device_info(int id, adv_device_info *info);
/* ADV_OK when a context with backend CUDA on device `id` can be created: the device exists, its
 * compute mode allows it and this build has kernels it can run (the probe that AUTO makes).
 * Otherwise ADV_ERR_BACKEND_UNAVAILABLE, and `reason` (if non-NULL) receives why. */
ADV_API adv_status adv_cuda_device_usable(int id, char *reason, size_t reason_size);

#ifdef __cplusplus
}
#endif
#endif
