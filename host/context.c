/* Context lifecycle, status strings, error reporting, memory helpers, version and build
 * information. Backend choice happens here: AUTO takes CUDA only when the probe succeeds. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef ADVECT_VERSION_STRING
#define ADVECT_VERSION_STRING "0.0.0"
#define ADVECT_VERSION_MAJOR 0
#define ADVECT_VERSION_MINOR 0
#define ADVECT_VERSION_PATCH 0
#endif
#ifndef ADVECT_CUDA_ARCHITECTURES
#define ADVECT_CUDA_ARCHITECTURES ""
#endif

const char *adv_status_string(adv_status status) {
    switch (status) {
#define ADV_STATUS_CASE(name, value, msg) \
    case name:                            \
        return msg;
        ADV_STATUS_TABLE(ADV_STATUS_CASE)
#undef ADV_STATUS_CASE
    }
    return "unknown status";
}

const char *adv_status_name(adv_status status) {
    switch (status) {
#define ADV_STATUS_CASE(name, value, msg) \
    case name:                            \
        return #name;
        ADV_STATUS_TABLE(ADV_STATUS_CASE)
#undef ADV_STATUS_CASE
    }
    return "ADV_UNKNOWN_STATUS";
}

/* The callback may call the library on the same context (e.g. adv_context_last_error, or
 * any other call): messages those calls raise are not delivered (a failing call would
 * otherwise recurse without end), and msg must not be ctx->last_error, which they rewrite. */
static void deliver_log(adv_context *ctx, adv_log_level level, const char *msg) {
    if (!ctx || !ctx->log || level > ctx->log_level || ctx->in_log) return;
    ctx->in_log = 1;
    ctx->log(ctx->log_user, level, msg);
    ctx->in_log = 0;
}

adv_status advi_fail(adv_context *ctx, adv_status status, const char *fmt, ...) {
    if (!ctx) return status;
    char detail[768], msg[sizeof ctx->last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s: %s", adv_status_name(status), detail);
    memcpy(ctx->last_error, msg, sizeof msg); // what the callback reads while it runs
    deliver_log(ctx, ADV_LOG_ERROR, msg);
    memcpy(ctx->last_error, msg, sizeof msg); // and again: its own calls may have reset it
    return status;
}

void advi_clear_error(adv_context *ctx) {
    if (ctx) ctx->last_error[0] = '\0';
}

void advi_log(adv_context *ctx, adv_log_level level, const char *fmt, ...) {
    if (!ctx || !ctx->log || level > ctx->log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    deliver_log(ctx, level, msg);
}

int advi_cpu_threads(const adv_context *ctx) {
    if (ctx && ctx->cpu_threads > 0) return ctx->cpu_threads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int advi_mul_size(size_t *result, size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *result = a * b;
    return 1;
}

void *advi_host_alloc(adv_context *ctx, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (ctx && ctx->alloc) return ctx->alloc(ctx->alloc_user, bytes, ADV_MEMORY_HOST);
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void advi_host_free(adv_context *ctx, void *ptr) {
    if (!ptr) return;
    if (ctx && ctx->free)
        ctx->free(ctx->alloc_user, ptr, ADV_MEMORY_HOST);
    else
        free(ptr);
}

adv_status adv_context_default_opts(adv_context_opts *opts) {
    if (!opts) return ADV_ERR_NULL_POINTER;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->backend = ADV_BACKEND_AUTO;
    opts->log_level = ADV_LOG_WARN;
    return ADV_OK;
}

adv_status adv_context_create(const adv_context_opts *opts, adv_context **ctx) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    *ctx = NULL;
    adv_context_opts o;
    adv_context_default_opts(&o);
    if (opts) {
        if (opts->struct_size < offsetof(adv_context_opts, alloc_user) + sizeof(void *) ||
            opts->struct_size > sizeof o)
            return ADV_ERR_INVALID_VALUE;
        memcpy(&o, opts, opts->struct_size);
    }
    if (o.backend != ADV_BACKEND_AUTO && o.backend != ADV_BACKEND_CPU &&
        o.backend != ADV_BACKEND_CUDA)
        return ADV_ERR_INVALID_VALUE;
    if (o.cpu_threads < 0 || o.device_id < 0) return ADV_ERR_INVALID_VALUE;
    if ((o.alloc == NULL) != (o.free == NULL)) return ADV_ERR_INVALID_VALUE;

    adv_backend chosen = o.backend;
    char reason[256] = "";
    if (o.backend != ADV_BACKEND_CPU) {
        adv_status probe = advi_cuda_probe(o.device_id, reason, sizeof reason);
        if (probe == ADV_OK)
            chosen = ADV_BACKEND_CUDA;
        else if (o.backend == ADV_BACKEND_CUDA) {
            if (o.log) {
                char msg[400];
                snprintf(msg, sizeof msg, "CUDA backend unavailable: %s", reason);
                o.log(o.log_user, ADV_LOG_ERROR, msg);
            }
            return ADV_ERR_BACKEND_UNAVAILABLE;
        } else
            chosen = ADV_BACKEND_CPU;
    }
    adv_context *c = calloc(1, sizeof *c);
    if (!c) return ADV_ERR_OUT_OF_MEMORY;
    c->backend = chosen;
    c->device_id = o.device_id;
    c->stream = o.stream;
    c->cpu_threads = o.cpu_threads;
    c->log = o.log;
    c->log_user = o.log_user;
    c->log_level = o.log_level;
    c->alloc = o.alloc;
    c->free = o.free;
    c->alloc_user = o.alloc_user;
    if (o.backend == ADV_BACKEND_AUTO && chosen == ADV_BACKEND_CPU && advi_cuda_compiled())
        advi_log(c, ADV_LOG_INFO, "AUTO selected the CPU backend: %s", reason);
    *ctx = c;
    return ADV_OK;
}

adv_status adv_context_destroy(adv_context *ctx) {
    free(ctx);
    return ADV_OK;
}

adv_backend adv_context_backend(const adv_context *ctx) {
    return ctx ? ctx->backend : ADV_BACKEND_CPU;
}

const char *adv_context_last_error(const adv_context *ctx) { return ctx ? ctx->last_error : ""; }

adv_status adv_context_synchronize(adv_context *ctx) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    return ctx->backend == ADV_BACKEND_CUDA ? advi_cuda_synchronize(ctx) : ADV_OK;
}

adv_status adv_malloc(adv_context *ctx, size_t bytes, void **ptr) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (!ptr) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "adv_malloc: ptr is NULL");
    *ptr = NULL;
    if (bytes == 0) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "adv_malloc: bytes is 0");
    if (ctx->backend == ADV_BACKEND_CUDA) return advi_cuda_malloc(ctx, bytes, ptr);
    *ptr = advi_host_alloc(ctx, bytes);
    if (!*ptr)
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "adv_malloc: %zu host bytes", bytes);
    return ADV_OK;
}

adv_status adv_free(adv_context *ctx, void *ptr) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (!ptr) return ADV_OK;
    if (ctx->backend == ADV_BACKEND_CUDA) return advi_cuda_free(ctx, ptr);
    advi_host_free(ctx, ptr);
    return ADV_OK;
}

adv_status adv_memcpy(adv_context *ctx, void *dst, const void *src, size_t bytes,
                      adv_copy_kind kind) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (kind != ADV_COPY_HOST_TO_CONTEXT && kind != ADV_COPY_CONTEXT_TO_HOST &&
        kind != ADV_COPY_CONTEXT_TO_CONTEXT)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "adv_memcpy: unknown copy kind %d", kind);
    if (bytes == 0) return ADV_OK;
    if (!dst || !src)
        return advi_fail(ctx, ADV_ERR_NULL_POINTER, "adv_memcpy: %s is NULL", dst ? "src" : "dst");
    // Overlapping ranges: a device-to-device cudaMemcpy is undefined for them, so neither
    // backend takes them (a host and a device range cannot overlap). dst == src: nothing to do.
    if (dst == src) // still a synchronisation point, as documented
        return ctx->backend == ADV_BACKEND_CUDA ? advi_cuda_synchronize(ctx) : ADV_OK;
    if ((ctx->backend == ADV_BACKEND_CPU || kind == ADV_COPY_CONTEXT_TO_CONTEXT) &&
        advi_ranges_overlap(dst, src, bytes))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "adv_memcpy: dst and src overlap");
    if (ctx->backend == ADV_BACKEND_CUDA) return advi_cuda_memcpy(ctx, dst, src, bytes, kind);
    memcpy(dst, src, bytes);
    return ADV_OK;
}

const char *adv_version(void) { return ADVECT_VERSION_STRING; }

void adv_version_numbers(int *major, int *minor, int *patch) {
    if (major) *major = ADVECT_VERSION_MAJOR;
    if (minor) *minor = ADVECT_VERSION_MINOR;
    if (patch) *patch = ADVECT_VERSION_PATCH;
}

adv_status adv_build_info_get(adv_build_info *info) {
    if (!info) return ADV_ERR_NULL_POINTER;
    memset(info, 0, sizeof *info);
    info->has_cpu = 1;
    info->has_cuda = advi_cuda_compiled();
#ifdef _OPENMP
    info->has_openmp = 1;
#endif
    info->cuda_runtime_version = advi_cuda_runtime_version();
    info->cuda_architectures = info->has_cuda ? ADVECT_CUDA_ARCHITECTURES : "";
#if defined(__clang__)
    info->compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
    info->compiler = "gcc " __VERSION__;
#else
    info->compiler = "unknown C compiler";
#endif
    return ADV_OK;
}

adv_status adv_cuda_device_count(int *count, char *reason, size_t reason_size) {
    if (!count) return ADV_ERR_NULL_POINTER;
    return advi_cuda_device_count(count, reason, reason_size);
}

adv_status adv_cuda_device_info(int id, adv_device_info *info) {
    if (!info) return ADV_ERR_NULL_POINTER;
    return advi_cuda_device_info(id, info);
}

adv_status adv_cuda_device_usable(int id, char *reason, size_t reason_size) {
    return advi_cuda_probe(id, reason, reason_size);
}
