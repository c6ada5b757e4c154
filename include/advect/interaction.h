/* advect interaction sums (spec math.md §1): for each of B independent problems,
 *   SQDIST: s_ij = beta_j - lambda * |gamma x_i - y_j|^2
 *   DOT:    s_ij = beta_j + lambda * <x_i, y_j>      (optional causal mask j <= i)
 *   lse_i = log sum_j exp(s_ij),   out_i = sum_j softmax_j(s_ij) w_j.
 * Memory is O((N+M)(d+e)): the N x M score matrix is never stored. */
#ifndef ADVECT_INTERACTION_H
#define ADVECT_INTERACTION_H

#include "advect/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum adv_kernel { ADV_KERNEL_SQDIST = 0, ADV_KERNEL_DOT = 1 } adv_kernel;

typedef struct adv_interaction_desc {
    size_t struct_size;      /* sizeof(adv_interaction_desc); set by the default call */
    adv_precision precision; /* default ADV_FLOAT32 */
    adv_kernel kernel;       /* default ADV_KERNEL_SQDIST */
    int64_t batch;           /* B >= 1, default 1 */
    int64_t n_queries;       /* N >= 1 */
    int64_t n_keys;          /* M >= 1 */
    int64_t dim;             /* d >= 1: query/key dimension */
    int64_t value_dim;       /* e >= 0: value dimension (0 = lse only); must equal d when
                                values_are_keys */
    double lambda;           /* finite; default 1 */
    double gamma;            /* finite; SQDIST only; default 1 */
    int causal;              /* DOT only: keep j <= i */
    int values_are_keys;     /* w_j = y_j (the values pointer is ignored) */
    int check_finite;        /* default 1: reject NaN/Inf in x, y, w and NaN/+Inf in beta
                                (beta = -Inf is legal: a zero weight) with ADV_ERR_NONFINITE,
                                and inputs so large that scores or sums could overflow the
                                precision (ADV_ERR_INVALID_VALUE; the bounds are in
                                docs/api.md). On CUDA this costs small reductions and a
                                stream synchronisation. */
} adv_interaction_desc;

ADV_API adv_status adv_interaction_default_desc(adv_interaction_desc *desc);

typedef struct adv_interaction_plan adv_interaction_plan;

/* Validates the description and allocates what execution needs (for CUDA, the cuBLAS
 * handle and workspaces). The plan keeps a pointer to ctx. */
ADV_API adv_status adv_interaction_plan_create(adv_context *ctx, const adv_interaction_desc *desc,
                                               adv_interaction_plan **plan);

/* Computes the sums. All pointers are in the context's memory space, row-major, contiguous:
 *   x      B x N x d     queries
 *   y      B x M x d     keys
 *   beta   B x M         per-key log-weights, or NULL for beta = 0
 *   w      B x M x e     values (NULL allowed when e == 0 or values_are_keys)
 *   lse    B x N         output, or NULL
 *   out    B x N x e     output, or NULL (at least one of lse/out must be given; out
 *                        requires e >= 1)
 * Rows whose scores are all -Inf give lse = -Inf and out = 0. The outputs must not overlap
 * an input or each other: no in-place use (ADV_ERR_INVALID_VALUE; other rows still read the
 * inputs while one is written). On an argument error (NULL, sizes, overlap, non-finite or
 * out-of-range inputs) nothing is written; a CUDA/cuBLAS failure during
 * the computation may leave the outputs partly written. CPU: synchronous. CUDA:
 * asynchronous on the context's stream (after the optional finiteness check, which
 * synchronises). */
ADV_API adv_status adv_interaction_execute(adv_interaction_plan *plan, const void *x,
                                           const void *y, const void *beta, const void *w,
                                           void *lse, void *out);

ADV_API adv_status adv_interaction_plan_destroy(adv_interaction_plan *plan);

/* One-shot convenience: create, execute, destroy. Synchronous on both backends: on CUDA it
 * waits for the work and reports its failure. */
ADV_API adv_status adv_interaction_sum(adv_context *ctx, const adv_interaction_desc *desc,
                                       const void *x, const void *y, const void *beta,
                                       const void *w, void *lse, void *out);

#ifdef __cplusplus
}
#endif
#endif
