/* Private helpers of the CUDA backend (the C files in host/cuda/): error checks that turn
 * CUDA and cuBLAS codes into advect statuses with a detailed message, a guard that switches
 * to the context's device and restores the caller's, and the C-linkage launchers of the
 * kernels in kernels/cuda/ (whose .cu files include this header too, so both sides see one
 * prototype). Every launcher takes the stream and returns cudaGetLastError() after its
 * launches. */
#ifndef ADVECT_HOST_CUDA_INTERNAL_H
#define ADVECT_HOST_CUDA_INTERNAL_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- kernel launchers (kernels/cuda/) ---- */

/* One interaction-sum execution (spec math.md §1). All pointers are device pointers with the
 * layouts of adv_interaction_execute; beta may be NULL (beta = 0). e is the number of value
 * columns to accumulate: 0 when out is NULL (then w and out are unused). */
typedef struct advk_interaction_args {
    int precision; /* adv_precision */
    int kernel;    /* adv_kernel */
    int causal;
    int64_t batch, n, m, d, e;
    double lambda, gamma;
    const void *x, *y, *beta, *w;
    void *lse, *out;
    /* Per-row mode (SQDIST only; both NULL otherwise): B x N doubles, scores
     * beta_j - row_lambda_i |x_i - row_a_i y_j|^2 (lambda = 1 and gamma unused; the direct
     * kernel and the GEMM path's tile update both take it). The empirical field at
     * per-particle times. */
    const double *row_a, *row_lambda;
} advk_interaction_args;

/* Largest dim the direct (tiled) kernel handles; the plan sends d >= 64 to the GEMM path. */
#define ADVK_DIRECT_MAX_DIM 64

/* Block shape of the direct kernel for these sizes: queries per block and value columns per
 * block (0 when e == 0; value columns beyond it go to further blocks along gridDim.y). */
void advk_interaction_direct_shape(int precision, int64_t d, int64_t e, int *queries_per_block,
                                   int *value_chunk);

/* Direct kernel (d <= ADVK_DIRECT_MAX_DIM). Keys are reduced in groups of keys_per_group keys
 * (a whole number of key tiles, see advk_interaction_group_keys) whose states are merged left
 * to right. splits == 1: writes lse and out. splits > 1 (= the number of groups): each group
 * writes its partial state to `partial` (m[S][B*N], s[S][B*N], acc[S][B*N][e], in the
 * precision's type) for advk_interaction_merge, which gives the same bits. */
cudaError_t advk_interaction_direct(const advk_interaction_args *a, int splits,
                                    int64_t keys_per_group, void *partial, cudaStream_t stream);
/* Keys per reduction group for M keys: a function of M only, so that a row's result does not
 * depend on N or on the split decision. */
int64_t advk_interaction_group_keys(int64_t m);
/* Resident blocks per SM of the direct kernel that advk_interaction_direct would launch for
 * these sizes (cudaOccupancyMaxActiveBlocksPerMultiprocessor; nothing is launched). */
cudaError_t advk_interaction_direct_blocks_per_sm(const advk_interaction_args *a, int *blocks);
/* Merges the `splits` partial states written by advk_interaction_direct; writes lse and out. */
cudaError_t advk_interaction_merge(const advk_interaction_args *a, int splits,
                                   const void *partial, cudaStream_t stream);

/* norms[r] = |scale * x_r|^2 for rows r < rows of the row-major rows x d array x. */
cudaError_t advk_sq_norms(int precision, const void *x, int64_t rows, int64_t d, double scale,
                          void *norms, cudaStream_t stream);

/* SQDIST on the GEMM path works on centred copies (the sum is translation invariant, and the
 * expansion |x|^2 - 2<x,y> + |y|^2 loses what the data's distance from the origin costs):
 * for `entries` batch entries, center[entry] = the midpoint of its keys' bounding box (entries
 * x d), xc = gamma x - center (entries x n x d), yc = y - center (entries x m x d). With
 * row_a (per-row mode, entries x n doubles): xc = x - row_a center instead, so that
 * xc - row_a yc = x - row_a y. */
cudaError_t advk_center_sqdist(int precision, const void *x, int64_t n, const void *y, int64_t m,
                               int64_t entries, int64_t d, double gamma, const double *row_a,
                               void *center, void *xc, void *yc, cudaStream_t stream);

/* One (batch chunk, query tile, key tile) step of the GEMM path (large d). */
typedef struct advk_tile {
    int64_t b0, bc;  /* batch entries [b0, b0 + bc) */
    int64_t q0, qc;  /* queries [q0, q0 + qc) */
    int64_t k0, kc;  /* keys [k0, k0 + kc) */
    int64_t tq, tk;  /* workspace layout: scores[(bb * tq + i) * tk + j], states[bb * tq + i] */
    int first;       /* first key tile of this query tile: states start empty, out rows zeroed */
    void *scores;    /* in: <gamma x_i - c, y_j - c> (SQDIST) or <x_i, y_j> (DOT);
                        out: exp(s_ij - m_i) */
    const void *xnorm, *ynorm; /* SQDIST: |gamma x - c|^2 of bc*N rows, |y - c|^2 of bc*M rows */
    void *m, *s;     /* running maximum and sum per query row, bc * tq each */
} advk_tile;

/* Turns the dot-product tile into scores, updates (m, s) and rescales the accumulators in
 * out (rows of the tile; zeroed when first) so that out += P W (a GEMM) can follow. */
cudaError_t advk_interaction_tile_update(const advk_interaction_args *a, const advk_tile *t,
                                         cudaStream_t stream);
/* After the last key tile: lse = m + log s, out = acc / s for the tile's query rows. */
cudaError_t advk_interaction_tile_finalize(const advk_interaction_args *a, const advk_tile *t,
                                           cudaStream_t stream);

/* Random fill (kernels/cuda/random.cu): out[i] = draw(seed, stream_id, first_index + i,
 * counter), i < n, with the draw functions of kernels/common/rng.h. */
cudaError_t advk_random_fill(int precision, int normal, uint64_t seed, uint32_t stream_id,
                             uint64_t first_index, uint32_t counter, int64_t n, void *out,
                             cudaStream_t stream);

/* Result of the finiteness check, in device memory, zeroed by the caller. */
typedef struct advk_scan_result {
    unsigned int bad;                /* 1 when an element is NaN or infinite */
    unsigned int unused;
    unsigned long long max_abs_bits; /* the largest |finite element| as the bits of a double */
} advk_scan_result;

/* Finiteness check (kernels/cuda/check.cu): sets result->bad when an element is NaN or
 * infinite (-Inf allowed when allow_neg_inf) and raises result->max_abs_bits to the largest
 * |finite element|. */
cudaError_t advk_all_finite(int precision, const void *data, size_t count, int allow_neg_inf,
                            advk_scan_result *result, cudaStream_t stream);

/* cudaSuccess when the current device can run this library's kernels (the fat binary holds
 * code for its architecture). */
cudaError_t advk_kernel_image_check(void);

#ifdef __cplusplus
}
#endif

/* ---- host-side helpers (C files only) ---- */
#ifndef __CUDACC__
#include "../internal.h"
#include <cublas_v2.h>

/* Records "<what> failed: <name> (<code>) <message>" on ctx and returns the status:
 * ADV_ERR_OUT_OF_MEMORY for allocation failures, ADV_ERR_CUDA otherwise. It also clears the
 * runtime's per-thread last error: a failed cudaMalloc left there would otherwise be
 * reported again by the next, unrelated launch check (cudaGetLastError). */
static inline adv_status advi_cuda_error(adv_context *ctx, cudaError_t err, const char *what) {
    (void)cudaGetLastError();
    adv_status st = err == cudaErrorMemoryAllocation ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_CUDA;
    return advi_fail(ctx, st, "%s failed: %s (%d) %s", what, cudaGetErrorName(err), (int)err,
                     cudaGetErrorString(err));
}

static inline adv_status advi_cublas_error(adv_context *ctx, cublasStatus_t err,
                                           const char *what) {
    (void)cudaGetLastError();
    return advi_fail(ctx, err == CUBLAS_STATUS_ALLOC_FAILED ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_CUBLAS,
                     "%s failed: %s (%d) %s", what, cublasGetStatusName(err), (int)err,
                     cublasGetStatusString(err));
}

/* Evaluate a CUDA runtime call; on error record it on ctx and return from the enclosing
 * function (which must return adv_status and must not hold resources: functions that do
 * use a `goto` cleanup with ADVI_CUDA_TRY instead). */
#define ADVI_CUDA_CHECK(ctx, call)                                                   \
    do {                                                                             \
        cudaError_t advi_err_ = (call);                                              \
        if (advi_err_ != cudaSuccess) return advi_cuda_error((ctx), advi_err_, #call); \
    } while (0)

#define ADVI_CUBLAS_CHECK(ctx, call)                                                      \
    do {                                                                                  \
        cublasStatus_t advi_err_ = (call);                                                \
        if (advi_err_ != CUBLAS_STATUS_SUCCESS) return advi_cublas_error((ctx), advi_err_, #call); \
    } while (0)

/* Variants that store the status in `st` and jump to `label` (cleanup paths). */
#define ADVI_CUDA_TRY(ctx, st, label, call)                   \
    do {                                                      \
        cudaError_t advi_err_ = (call);                       \
        if (advi_err_ != cudaSuccess) {                       \
            (st) = advi_cuda_error((ctx), advi_err_, #call);  \
            goto label;                                       \
        }                                                     \
    } while (0)

/* The caller's current device, restored by advi_device_leave. Public entry points switch to
 * the context's device on entry and restore on every exit: the pattern is
 *   if ((st = advi_device_enter(ctx, ctx->device_id, &g)) != ADV_OK) return st;
 *   st = work_on_device(...);
 *   advi_device_leave(&g);
 *   return st;
 * so the work function may return early from anywhere. */
typedef struct advi_device_guard {
    int previous;
    int changed;
} advi_device_guard;

static inline adv_status advi_device_enter(adv_context *ctx, int device, advi_device_guard *g) {
    g->previous = 0;
    g->changed = 0;
    ADVI_CUDA_CHECK(ctx, cudaGetDevice(&g->previous));
    if (g->previous != device) {
        ADVI_CUDA_CHECK(ctx, cudaSetDevice(device));
        g->changed = 1;
    }
    return ADV_OK;
}

static inline void advi_device_leave(advi_device_guard *g) {
    // Restoring cannot meaningfully fail once entering succeeded; ignore its status.
    if (g->changed) (void)cudaSetDevice(g->previous);
}

/* The interaction engine's per-row mode on a CUDA plan (host/cuda/interaction_cuda.c), the
 * twin of advi_cpu_interaction_rows: SQDIST scores beta_j - row_lambda_i |x_i - row_a_i y_j|^2,
 * values y (d = value_dim, no causal mask; desc lambda and gamma unused; on the plan's path:
 * the direct kernel, or the GEMM path's per-row tile update for d >= 64), for n <= the plan's n_queries rows (the plan's workspace is sized for its own
 * count), device arrays, asynchronous. No argument checks beyond that: callers pass a
 * validated problem. */
adv_status advi_cuda_interaction_rows(adv_interaction_plan *plan, int64_t n, const void *x,
                                      const void *y, const void *beta, const double *row_a,
                                      const double *row_lambda, void *out);

/* The context's stream as a CUDA stream (NULL: the legacy default stream). */
static inline cudaStream_t advi_cuda_stream(const adv_context *ctx) {
    return (cudaStream_t)ctx->stream;
}

/* Launches one kernel from a host function that returns adv_status: enters the context's
 * device, runs `call` (a launcher returning cudaError_t), restores the caller's device and
 * returns ADV_OK or the CUDA error naming `what`. */
#define ADVI_CUDA_LAUNCH(ctx, what, call)                                          \
    do {                                                                           \
        advi_device_guard g_;                                                      \
        adv_status st_ = advi_device_enter((ctx), (ctx)->device_id, &g_);          \
        if (st_ != ADV_OK) return st_;                                             \
        cudaError_t err_ = (call);                                                 \
        advi_device_leave(&g_);                                                    \
        if (err_ != cudaSuccess) return advi_cuda_error((ctx), err_, what);        \
        return ADV_OK;                                                             \
    } while (0)
#endif

#endif
