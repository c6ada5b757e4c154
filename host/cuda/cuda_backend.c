/* CUDA backend, everything but the interaction sums: device probing and information, memory in
 * the context's device, copies, stream synchronisation, the finiteness check and random fills.
 * Plain C against the CUDA runtime API. Every call runs on the context's device (the caller's
 * current device is restored) and on the context's stream; nothing here synchronises the
 * whole device or resets it. */
#include "cuda_internal.h"

#include <stdio.h>
#include <string.h>

int advi_cuda_compiled(void) { return 1; }

int advi_cuda_runtime_version(void) { return CUDART_VERSION; }

static void set_reason(char *reason, size_t size, const char *fmt, const char *a, int code,
                       const char *b) {
    if (reason && size) snprintf(reason, size, fmt, a, code, b);
}

/* Why cudaGetDeviceCount failed: no driver, a driver older than the runtime (35), no device
 * (100), ... The runtime reports a missing driver as "insufficient" too; the driver version
 * it reads is then 0, which tells the two apart. */
static void device_count_failed(cudaError_t err, char *reason, size_t reason_size) {
    int driver = 0;
    if (err == cudaErrorInsufficientDriver && cudaDriverGetVersion(&driver) == cudaSuccess &&
        driver == 0) {
        if (reason && reason_size)
            snprintf(reason, reason_size, "no NVIDIA driver is installed (%s from "
                     "cudaGetDeviceCount)", cudaGetErrorName(err));
    } else {
        set_reason(reason, reason_size, "cudaGetDeviceCount failed: %s (%d): %s",
                   cudaGetErrorName(err), (int)err, cudaGetErrorString(err));
    }
    (void)cudaGetLastError(); // do not leave the error for the caller's next check
}

adv_status advi_cuda_device_count(int *count, char *reason, size_t reason_size) {
    *count = 0;
    if (reason && reason_size) reason[0] = '\0';
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        device_count_failed(err, reason, reason_size);
        return ADV_OK;
    }
    if (n == 0 && reason && reason_size) snprintf(reason, reason_size, "no CUDA device found");
    *count = n;
    return ADV_OK;
}

/* Checks that device `id` can run this library's kernels; the current device is id. */
static adv_status probe_current(int id, char *reason, size_t reason_size) {
    int mode = 0, major = 0, minor = 0;
    cudaError_t err = cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, id);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, id);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, id);
    if (err != cudaSuccess) {
        set_reason(reason, reason_size, "cudaDeviceGetAttribute failed: %s (%d): %s",
                   cudaGetErrorName(err), (int)err, cudaGetErrorString(err));
        return ADV_ERR_BACKEND_UNAVAILABLE;
    }
    if (mode == cudaComputeModeProhibited) {
        if (reason && reason_size)
            snprintf(reason, reason_size, "CUDA device %d is in prohibited compute mode", id);
        return ADV_ERR_BACKEND_UNAVAILABLE;
    }
    err = advk_kernel_image_check();
    if (err != cudaSuccess) {
        if (reason && reason_size)
            snprintf(reason, reason_size,
                     "CUDA device %d (compute capability %d.%d) cannot run this build's kernels: "
                     "%s (%d): %s",
                     id, major, minor, cudaGetErrorName(err), (int)err, cudaGetErrorString(err));
        return ADV_ERR_BACKEND_UNAVAILABLE;
    }
    return ADV_OK;
}

adv_status advi_cuda_probe(int device_id, char *reason, size_t reason_size) {
    if (reason && reason_size) reason[0] = '\0';
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        device_count_failed(err, reason, reason_size);
        return ADV_ERR_BACKEND_UNAVAILABLE;
    }
    if (device_id < 0 || device_id >= n) {
        if (reason && reason_size)
            snprintf(reason, reason_size, "device_id %d is out of range (%d CUDA device%s)",
                     device_id, n, n == 1 ? "" : "s");
        return ADV_ERR_BACKEND_UNAVAILABLE;
    }
    // Switch to the device (this creates its primary context, which can also fail) and
    // restore the caller's current device afterwards.
    int previous = 0;
    const char *call = "cudaGetDevice";
    err = cudaGetDevice(&previous);
    if (err == cudaSuccess && previous != device_id) {
        call = "cudaSetDevice";
        err = cudaSetDevice(device_id);
    }
    if (err != cudaSuccess) {
        if (reason && reason_size)
            snprintf(reason, reason_size, "%s failed: %s (%d): %s", call, cudaGetErrorName(err),
                     (int)err, cudaGetErrorString(err));
        (void)cudaGetLastError();
        return ADV_ERR_BACKEND_UNAVAILABLE;
    }
    adv_status st = probe_current(device_id, reason, reason_size);
    if (previous != device_id) (void)cudaSetDevice(previous);
    (void)cudaGetLastError();
    return st;
}

adv_status advi_cuda_device_info(int id, adv_device_info *info) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return ADV_ERR_BACKEND_UNAVAILABLE;
    }
    if (id < 0 || id >= n) return ADV_ERR_INVALID_VALUE;
    struct cudaDeviceProp prop;
    int major = 0, minor = 0, sms = 0;
    if (cudaGetDeviceProperties(&prop, id) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, id) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, id) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, id) != cudaSuccess) {
        (void)cudaGetLastError();
        return ADV_ERR_CUDA;
    }
    memset(info, 0, sizeof *info);
    info->id = id;
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->compute_major = major;
    info->compute_minor = minor;
    info->total_memory = prop.totalGlobalMem;
    info->multiprocessors = sms;
    return ADV_OK;
}

/* ---- memory ---- */

static adv_status malloc_on_device(adv_context *ctx, size_t bytes, void **ptr) {
    ADVI_CUDA_CHECK(ctx, cudaMalloc(ptr, bytes));
    return ADV_OK;
}

adv_status advi_cuda_malloc(adv_context *ctx, size_t bytes, void **ptr) {
    *ptr = NULL;
    if (bytes == 0) bytes = 1;
    if (ctx->alloc) {
        *ptr = ctx->alloc(ctx->alloc_user, bytes, ADV_MEMORY_DEVICE);
        if (!*ptr)
            return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY,
                             "the allocator hook returned NULL for %zu device bytes", bytes);
        return ADV_OK;
    }
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) return st;
    st = malloc_on_device(ctx, bytes, ptr);
    advi_device_leave(&g);
    if (st != ADV_OK) *ptr = NULL;
    return st;
}

static adv_status free_on_device(adv_context *ctx, void *ptr) {
    ADVI_CUDA_CHECK(ctx, cudaFree(ptr));
    return ADV_OK;
}

adv_status advi_cuda_free(adv_context *ctx, void *ptr) {
    if (!ptr) return ADV_OK;
    if (ctx->free) {
        ctx->free(ctx->alloc_user, ptr, ADV_MEMORY_DEVICE);
        return ADV_OK;
    }
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) {
        // Free it anyway rather than leak it: with unified addressing cudaFree takes a
        // pointer of any device (the caller's device stays current).
        (void)cudaFree(ptr);
        (void)cudaGetLastError();
        return st;
    }
    st = free_on_device(ctx, ptr);
    advi_device_leave(&g);
    return st;
}

static adv_status memcpy_on_device(adv_context *ctx, void *dst, const void *src, size_t bytes,
                                   adv_copy_kind kind) {
    enum cudaMemcpyKind k = kind == ADV_COPY_HOST_TO_CONTEXT   ? cudaMemcpyHostToDevice
                            : kind == ADV_COPY_CONTEXT_TO_HOST ? cudaMemcpyDeviceToHost
                                                               : cudaMemcpyDeviceToDevice;
    cudaStream_t stream = advi_cuda_stream(ctx);
    // Ordered after the work already queued on the context's stream, and complete on return.
    ADVI_CUDA_CHECK(ctx, cudaMemcpyAsync(dst, src, bytes, k, stream));
    ADVI_CUDA_CHECK(ctx, cudaStreamSynchronize(stream));
    return ADV_OK;
}

adv_status advi_cuda_memcpy(adv_context *ctx, void *dst, const void *src, size_t bytes,
                            adv_copy_kind kind) {
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) return st;
    st = memcpy_on_device(ctx, dst, src, bytes, kind);
    advi_device_leave(&g);
    return st;
}

static adv_status synchronize_on_device(adv_context *ctx) {
    ADVI_CUDA_CHECK(ctx, cudaStreamSynchronize(advi_cuda_stream(ctx)));
    return ADV_OK;
}

adv_status advi_cuda_synchronize(adv_context *ctx) {
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) return st;
    st = synchronize_on_device(ctx);
    advi_device_leave(&g);
    return st;
}

/* ---- finiteness check ---- */

/* The 4-byte flag comes from the allocator hook when one is set, else from the stream-ordered
 * allocator (cudaMallocAsync/cudaFreeAsync: no device-wide synchronisation, pooled), or from
 * cudaMalloc on devices without memory pools. */
static adv_status all_finite_on_device(adv_context *ctx, adv_precision precision,
                                       const void *data, size_t count, int allow_neg_inf,
                                       int *ok, double *max_abs) {
    cudaStream_t stream = advi_cuda_stream(ctx);
    advk_scan_result *result = NULL, host = {1, 0, 0};
    adv_status st = ADV_OK;
    int pooled = 0;
    if (ctx->alloc) {
        result = ctx->alloc(ctx->alloc_user, sizeof *result, ADV_MEMORY_DEVICE);
        if (!result)
            return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY,
                             "the allocator hook returned NULL for the finiteness flag");
    } else {
        cudaError_t err = cudaMallocAsync((void **)&result, sizeof *result, stream);
        pooled = err == cudaSuccess;
        if (err == cudaErrorNotSupported) {
            (void)cudaGetLastError();
            err = cudaMalloc((void **)&result, sizeof *result);
        }
        if (err != cudaSuccess) return advi_cuda_error(ctx, err, "device allocation of the finiteness flag");
    }
    ADVI_CUDA_TRY(ctx, st, done, cudaMemsetAsync(result, 0, sizeof *result, stream));
    ADVI_CUDA_TRY(ctx, st, done,
                  advk_all_finite((int)precision, data, count, allow_neg_inf, result, stream));
    ADVI_CUDA_TRY(ctx, st, done,
                  cudaMemcpyAsync(&host, result, sizeof host, cudaMemcpyDeviceToHost, stream));
    ADVI_CUDA_TRY(ctx, st, done, cudaStreamSynchronize(stream));
    *ok = host.bad == 0;
    if (max_abs) memcpy(max_abs, &host.max_abs_bits, sizeof *max_abs);
done:
    if (ctx->free) {
        // The hook frees immediately: make sure no queued work still uses the flag.
        if (st != ADV_OK) (void)cudaStreamSynchronize(stream);
        ctx->free(ctx->alloc_user, result, ADV_MEMORY_DEVICE);
    } else {
        cudaError_t err = pooled ? cudaFreeAsync(result, stream) : cudaFree(result);
        if (err != cudaSuccess && st == ADV_OK) st = advi_cuda_error(ctx, err, "freeing the finiteness flag");
    }
    return st;
}

adv_status advi_cuda_all_finite(adv_context *ctx, adv_precision precision, const void *data,
                                size_t count, int allow_neg_inf, int *ok, double *max_abs) {
    *ok = 0;
    if (max_abs) *max_abs = 0.0;
    if (count == 0) {
        *ok = 1;
        return ADV_OK;
    }
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) return st;
    st = all_finite_on_device(ctx, precision, data, count, allow_neg_inf, ok, max_abs);
    advi_device_leave(&g);
    return st;
}

/* ---- random fill ---- */

static adv_status random_fill_on_device(adv_context *ctx, adv_precision precision, int normal,
                                        uint64_t seed, uint32_t stream_id, uint64_t first_index,
                                        uint32_t counter, int64_t n, void *out) {
    ADVI_CUDA_CHECK(ctx, advk_random_fill((int)precision, normal, seed, stream_id, first_index,
                                          counter, n, out, advi_cuda_stream(ctx)));
    return ADV_OK;
}

adv_status advi_cuda_random_fill(adv_context *ctx, adv_precision precision, int normal,
                                 uint64_t seed, uint32_t stream, uint64_t first_index,
                                 uint32_t counter, int64_t n, void *out) {
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) return st;
    st = random_fill_on_device(ctx, precision, normal, seed, stream, first_index, counter, n, out);
    advi_device_leave(&g);
    return st;
}
