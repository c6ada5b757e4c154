/* Stand-ins for the CUDA backend when it is not compiled in (ADVECT_CUDA=OFF, or AUTO
 * without nvcc): every entry point reports ADV_ERR_BACKEND_UNAVAILABLE. */
#include "internal.h"

#include <stdio.h>

#define NOT_BUILT "the CUDA backend was not compiled into this build of advect"

int advi_cuda_compiled(void) { return 0; }
int advi_cuda_runtime_version(void) { return 0; }

adv_status advi_cuda_probe(int device_id, char *reason, size_t reason_size) {
    (void)device_id;
    if (reason && reason_size) snprintf(reason, reason_size, "%s", NOT_BUILT);
    return ADV_ERR_BACKEND_UNAVAILABLE;
}
adv_status advi_cuda_device_count(int *count, char *reason, size_t reason_size) {
    *count = 0;
    if (reason && reason_size) snprintf(reason, reason_size, "%s", NOT_BUILT);
    return ADV_OK;
}
adv_status advi_cuda_device_info(int id, adv_device_info *info) {
    (void)id;
    (void)info;
    return ADV_ERR_BACKEND_UNAVAILABLE;
}
adv_status advi_cuda_malloc(adv_context *ctx, size_t bytes, void **ptr) {
    (void)bytes;
    (void)ptr;
    return advi_fail(ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_free(adv_context *ctx, void *ptr) {
    (void)ptr;
    return advi_fail(ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_memcpy(adv_context *ctx, void *dst, const void *src, size_t bytes,
                            adv_copy_kind kind) {
    (void)dst, (void)src, (void)bytes, (void)kind;
    return advi_fail(ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_synchronize(adv_context *ctx) {
    return advi_fail(ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_interaction_plan_init(adv_interaction_plan *plan) {
    return advi_fail(plan->ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_interaction_execute(adv_interaction_plan *plan, int64_t n, const void *x,
                                         const void *y, const void *beta, const void *w,
                                         void *lse, void *out) {
    (void)n, (void)x, (void)y, (void)beta, (void)w, (void)lse, (void)out;
    return advi_fail(plan->ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
void advi_cuda_interaction_plan_fini(adv_interaction_plan *plan) { (void)plan; }
adv_status advi_cuda_random_fill(adv_context *ctx, adv_precision precision, int normal,
                                 uint64_t seed, uint32_t stream, uint64_t first_index,
                                 uint32_t counter, int64_t n, void *out) {
    (void)precision, (void)normal, (void)seed, (void)stream, (void)first_index, (void)counter,
        (void)n, (void)out;
    return advi_fail(ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_all_finite(adv_context *ctx, adv_precision precision, const void *data,
                                size_t count, int allow_neg_inf, int *ok, double *max_abs) {
    (void)precision, (void)data, (void)count, (void)allow_neg_inf, (void)max_abs;
    *ok = 0;
    return advi_fail(ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_poisson_plan_init(adv_poisson_plan *plan) {
    return advi_fail(plan->ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
adv_status advi_cuda_poisson_execute(adv_poisson_plan *plan, const void *f, void *u) {
    (void)f, (void)u;
    return advi_fail(plan->ctx, ADV_ERR_BACKEND_UNAVAILABLE, NOT_BUILT);
}
void advi_cuda_poisson_plan_fini(adv_poisson_plan *plan) { (void)plan; }

/* Sampling module (host/sampling_internal.h): no CUDA operation table. */
#include "sampling_internal.h"
const advi_sampling_ops *advi_cuda_sampling_ops(void) { return NULL; }

/* Benamou-Brenier module (host/bbot_internal.h): no CUDA operation table. */
#include "bbot_internal.h"
const advi_bbot_ops *advi_cuda_bbot_ops(void) { return NULL; }
