/* CUDA backend of the interaction sum: the plan chooses a path and allocates bounded device
 * workspaces (and, for large d, a cuBLAS handle bound to the context's stream); execution
 * queues kernels and GEMMs on that stream and returns without waiting. The GPU twin of
 * host/cpu/interaction_cpu.c; kernels in kernels/cuda/interaction.cu; the design and its
 * numbers are in docs/cuda-interaction.md. Nothing of size N x M is ever allocated. */
#include "cuda_internal.h"

#include <limits.h>
#include <stdlib.h>

/* Tunables (overridable at compile time, e.g. to exercise several tiles in small tests). */
/* Direct kernel for d < 64; from 64 on the dot products come from cuBLAS (float32-exact
 * GEMMs), where they beat the per-thread loop. */
#ifndef GEMM_MIN_DIM
#define GEMM_MIN_DIM 64
#endif
#if GEMM_MIN_DIM > ADVK_DIRECT_MAX_DIM + 1
#error "the direct kernel cannot take every dim below GEMM_MIN_DIM"
#endif
/* Split-key variant: one block per key group (advk_interaction_group_keys), used when the
 * direct kernel would launch fewer than 2 blocks per SM and the partial states fit in
 * SPLIT_WORKSPACE bytes. Either way a row gets the same bits. */
#define SPLIT_WORKSPACE ((size_t)256 << 20)
/* GEMM path tiles: TQ queries x TK keys of scores per batch entry, and as many batch entries
 * per step as fit in GEMM_TILE_ELEMS scores (16 MiB in float32). */
#ifndef GEMM_TQ
#define GEMM_TQ 4096
#endif
#ifndef GEMM_TK
#define GEMM_TK 1024
#endif
#ifndef GEMM_TILE_ELEMS
#define GEMM_TILE_ELEMS ((int64_t)1 << 22)
#endif

enum { PATH_DIRECT = 0, PATH_GEMM = 1 };

typedef struct cuda_plan {
    int path;
    /* direct path */
    int splits;             /* 1, or the number of key groups */
    int64_t keys_per_group; /* the fixed unit of the reduction order */
    void *partial;          /* splits x B x N x (2 + e) reals when splits > 1 */
    /* wave balance (splits == 1, see plan_wave_tail): resident blocks in one wave (0: off),
     * queries per block, key groups, and the tail's split-key workspace */
    int64_t wave, queries_per_block, groups;
    void *tail_partial; /* groups x (wave - 1) x queries_per_block x (2 + e) reals */
    /* GEMM path */
    cublasHandle_t blas;
    int64_t tq, tk, bchunk;
    void *scores;         /* bchunk x tq x tk */
    void *mstate, *sstate; /* bchunk x tq each */
    void *xnorm, *ynorm;  /* SQDIST: bchunk x N and bchunk x M */
    void *center, *xc, *yc; /* SQDIST: bchunk x d; centred queries and keys (advk_center_sqdist) */
} cuda_plan;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

static adv_status alloc_reals(adv_context *ctx, void **ptr, int64_t count, size_t elem,
                              const char *what) {
    size_t bytes = 0;
    if (count < 0 || !advi_mul_size(&bytes, (size_t)count, elem))
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "CUDA %s workspace size overflows", what);
    return advi_cuda_malloc(ctx, bytes, ptr);
}

static void release(adv_context *ctx, cuda_plan *cp) {
    void *bufs[] = {cp->partial, cp->scores, cp->mstate, cp->sstate, cp->xnorm,
                    cp->ynorm,   cp->center, cp->xc,     cp->yc,     cp->tail_partial};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; ++k)
        if (bufs[k]) (void)advi_cuda_free(ctx, bufs[k]);
    if (cp->blas) (void)cublasDestroy(cp->blas);
    free(cp);
}

/* Number of key splits for the direct path: 1, or one block per key group when the query
 * tiles alone give fewer than 2 blocks per SM and the partial states fit the workspace. */
static int choose_splits(const adv_interaction_desc *d, int sms, int64_t keys_per_group) {
    int qb = 0, ec = 0;
    advk_interaction_direct_shape((int)d->precision, d->dim, d->value_dim, &qb, &ec);
    const int64_t vchunks = ec > 0 ? ceil_div64(d->value_dim, ec) : 1;
    const int64_t blocks = d->batch * ceil_div64(d->n_queries, qb) * vchunks;
    const int64_t groups = ceil_div64(d->n_keys, keys_per_group);
    if (sms < 1 || blocks >= 2 * (int64_t)sms || groups < 2) return 1;
    size_t per_split = 0;
    if (!advi_mul_size(&per_split, (size_t)d->batch, (size_t)d->n_queries) ||
        !advi_mul_size(&per_split, per_split, (size_t)(2 + d->value_dim)) ||
        !advi_mul_size(&per_split, per_split, advi_real_size(d->precision)) ||
        (size_t)groups > SPLIT_WORKSPACE / per_split)
        return 1;
    return (int)groups;
}

/* Wave balance of the direct kernel with one split. Its blocks are equal in work, so when the
 * query tiles fill w waves of the GPU's resident blocks with a partial last one, that wave
 * runs at reduced occupancy for a whole block time: at N = M = 1e6, d = 2 (3907 tiles of 256
 * queries on 132 SMs x 4 blocks, w = 7.4) 1-2 blocks per SM instead of 4, which costs up to
 * (ceil w - w) / ceil w = 7.5 % of the run (less as far as one block alone keeps an SM busy).
 * The tiles past the last full wave (the tail) then run as the split-key variant, one block
 * per key group, which spreads them over every SM; split rows have the same bits as unsplit
 * ones, so results do not change. For one batch entry, no causal mask and one value chunk;
 * off when the tail's partial states would not fit SPLIT_WORKSPACE or there is only one key
 * group. */
static adv_status plan_wave_tail(adv_context *ctx, const adv_interaction_desc *d, int sms,
                                 cuda_plan *cp) {
    int qb = 0, ec = 0, per_sm = 0;
    advk_interaction_direct_shape((int)d->precision, d->dim, d->value_dim, &qb, &ec);
    cp->groups = ceil_div64(d->n_keys, cp->keys_per_group);
    if (d->batch != 1 || d->causal || (ec > 0 && d->value_dim > ec) || cp->groups < 2) return ADV_OK;
    advk_interaction_args a = {(int)d->precision, (int)d->kernel, 0, 1, d->n_queries, d->n_keys,
                               d->dim, d->value_dim, d->lambda, d->gamma,
                               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    ADVI_CUDA_CHECK(ctx, advk_interaction_direct_blocks_per_sm(&a, &per_sm));
    const int64_t wave = (int64_t)per_sm * sms;
    if (wave < 1 || ceil_div64(d->n_queries, qb) <= wave) return ADV_OK; // one wave or less
    const int64_t rows = min64((wave - 1) * qb, d->n_queries);
    size_t bytes = 0;
    if (!advi_mul_size(&bytes, (size_t)cp->groups, (size_t)rows) ||
        !advi_mul_size(&bytes, bytes, (size_t)(2 + d->value_dim)) ||
        !advi_mul_size(&bytes, bytes, advi_real_size(d->precision)) || bytes > SPLIT_WORKSPACE)
        return ADV_OK;
    adv_status st = alloc_reals(ctx, &cp->tail_partial, (int64_t)cp->groups * rows * (2 + d->value_dim),
                                advi_real_size(d->precision), "tail split-key state");
    if (st != ADV_OK) return st;
    cp->wave = wave;
    cp->queries_per_block = qb;
    return ADV_OK;
}

static adv_status plan_init_on_device(adv_interaction_plan *plan, cuda_plan *cp) {
    adv_context *ctx = plan->ctx;
    const adv_interaction_desc *d = &plan->desc;
    const size_t elem = advi_real_size(d->precision);
    const int64_t B = d->batch, N = d->n_queries, M = d->n_keys, E = d->value_dim;

    if (d->dim < GEMM_MIN_DIM) {
        cp->path = PATH_DIRECT;
        int sms = 0;
        ADVI_CUDA_CHECK(ctx, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount,
                                                    ctx->device_id));
        cp->keys_per_group = advk_interaction_group_keys(M);
        cp->splits = choose_splits(d, sms, cp->keys_per_group);
        if (cp->splits > 1) {
            const int64_t count = (int64_t)cp->splits * B * N * (2 + E);
            adv_status st = alloc_reals(ctx, &cp->partial, count, elem, "split-key state");
            if (st != ADV_OK) return st;
        } else {
            adv_status st = plan_wave_tail(ctx, d, sms, cp);
            if (st != ADV_OK) return st;
        }
        advi_log(ctx, ADV_LOG_DEBUG,
                 "CUDA interaction plan: direct kernel, key groups of %lld keys, %d split%s, "
                 "wave balance %s (%lld resident blocks of %lld queries)",
                 (long long)cp->keys_per_group, cp->splits, cp->splits == 1 ? "" : "s",
                 cp->wave > 0 ? "on" : "off", (long long)cp->wave,
                 (long long)cp->queries_per_block);
        return ADV_OK;
    }

    cp->path = PATH_GEMM;
    if (d->dim > INT_MAX || E > INT_MAX)
        return advi_fail(ctx, ADV_ERR_UNSUPPORTED,
                         "dim (%lld) and value_dim (%lld) must fit in an int for cuBLAS",
                         (long long)d->dim, (long long)E);
    cp->tq = min64(N, GEMM_TQ);
    cp->tk = min64(M, GEMM_TK);
    cp->bchunk = min64(B, GEMM_TILE_ELEMS / (cp->tq * cp->tk));
    // The key-centring kernel launches a block per (batch entry, coordinate): at most
    // INT_MAX of them (a huge batch of tiny problems at large d would exceed it).
    if (d->kernel == ADV_KERNEL_SQDIST) cp->bchunk = min64(cp->bchunk, INT_MAX / d->dim);
    if (cp->bchunk < 1) cp->bchunk = 1;
    adv_status st = alloc_reals(ctx, &cp->scores, cp->bchunk * cp->tq * cp->tk, elem, "score tile");
    if (st == ADV_OK) st = alloc_reals(ctx, &cp->mstate, cp->bchunk * cp->tq, elem, "row maximum");
    if (st == ADV_OK) st = alloc_reals(ctx, &cp->sstate, cp->bchunk * cp->tq, elem, "row sum");
    if (st == ADV_OK && d->kernel == ADV_KERNEL_SQDIST) {
        const int64_t D = d->dim;
        st = alloc_reals(ctx, &cp->xnorm, cp->bchunk * N, elem, "query norm");
        if (st == ADV_OK) st = alloc_reals(ctx, &cp->ynorm, cp->bchunk * M, elem, "key norm");
        if (st == ADV_OK) st = alloc_reals(ctx, &cp->center, cp->bchunk * D, elem, "key centre");
        if (st == ADV_OK) st = alloc_reals(ctx, &cp->xc, cp->bchunk * N * D, elem, "centred queries");
        if (st == ADV_OK) st = alloc_reals(ctx, &cp->yc, cp->bchunk * M * D, elem, "centred keys");
    }
    if (st != ADV_OK) return st;
    ADVI_CUBLAS_CHECK(ctx, cublasCreate(&cp->blas));
    ADVI_CUBLAS_CHECK(ctx, cublasSetStream(cp->blas, advi_cuda_stream(ctx)));
    // Plain float32/float64 arithmetic (no TF32 or other reduced-precision tensor-core
    // modes): SQDIST scores come from |gamma x|^2 + |y|^2 - 2<gamma x, y>, whose cancellation
    // reduced precision would turn into large score errors when lambda is large.
    ADVI_CUBLAS_CHECK(ctx, cublasSetMathMode(cp->blas, CUBLAS_PEDANTIC_MATH));
    advi_log(ctx, ADV_LOG_DEBUG,
             "CUDA interaction plan: GEMM path, tiles of %lld queries x %lld keys, %lld batch entries per step",
             (long long)cp->tq, (long long)cp->tk, (long long)cp->bchunk);
    return ADV_OK;
}

adv_status advi_cuda_interaction_plan_init(adv_interaction_plan *plan) {
    adv_context *ctx = plan->ctx;
    plan->backend_state = NULL;
    cuda_plan *cp = calloc(1, sizeof *cp);
    if (!cp) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "CUDA interaction plan");
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) {
        free(cp);
        return st;
    }
    st = plan_init_on_device(plan, cp);
    if (st != ADV_OK)
        release(ctx, cp);
    else
        plan->backend_state = cp;
    advi_device_leave(&g);
    return st;
}

void advi_cuda_interaction_plan_fini(adv_interaction_plan *plan) {
    cuda_plan *cp = plan->backend_state;
    if (!cp) return;
    adv_context *ctx = plan->ctx;
    advi_device_guard g;
    const int entered = advi_device_enter(ctx, ctx->device_id, &g) == ADV_OK;
    // Executions may still be running on the stream: the workspaces must outlive them
    // (allocator hooks free immediately; cudaFree would not wait for this stream alone).
    (void)cudaStreamSynchronize(advi_cuda_stream(ctx));
    release(ctx, cp);
    plan->backend_state = NULL;
    if (entered) advi_device_leave(&g);
}

/* C = alpha op(A) op(B) + beta C for `count` matrices at fixed strides (column-major). */
static cublasStatus_t gemm_strided(cublasHandle_t h, int f64, cublasOperation_t ta,
                                   cublasOperation_t tb, int m, int n, int k, double alpha,
                                   const void *A, int lda, long long sa, const void *B, int ldb,
                                   long long sb, double beta, void *C, int ldc, long long sc,
                                   int count) {
    if (f64)
        return cublasDgemmStridedBatched(h, ta, tb, m, n, k, &alpha, A, lda, sa, B, ldb, sb,
                                         &beta, C, ldc, sc, count);
    const float af = (float)alpha, bf = (float)beta;
    return cublasSgemmStridedBatched(h, ta, tb, m, n, k, &af, A, lda, sa, B, ldb, sb, &bf, C, ldc,
                                     sc, count);
}

/* Large-d path. For each chunk of batch entries, query tile and key tile:
 *   scores(j, i) = <x_i, y_j> (DOT), or <gamma x_i - c, y_j - c> (SQDIST, centred copies)
 *                                              GEMM: (kc x d) (d x qc), column-major view
 *   update: scores -> exp(s_ij - m_i), (m, s) updated, out rows rescaled
 *   out_i += sum_j scores(j, i) w_j            GEMM: (e x kc) (kc x qc), accumulating in out
 * and after the last key tile lse and out are finalised in place. */
static adv_status execute_gemm(adv_context *ctx, const cuda_plan *cp,
                               const advk_interaction_args *a) {
    cudaStream_t stream = advi_cuda_stream(ctx);
    const int f64 = a->precision == ADV_FLOAT64;
    const size_t elem = f64 ? 8 : 4;
    const int64_t B = a->batch, N = a->n, M = a->m, D = a->d, E = a->e;
    const int sq = a->kernel == ADV_KERNEL_SQDIST;
    const char *x = a->x, *y = a->y, *w = a->w;
    char *out = a->out;
    cudaError_t err;
    cublasStatus_t bst;

    for (int64_t b0 = 0; b0 < B; b0 += cp->bchunk) {
        const int64_t bc = min64(cp->bchunk, B - b0);
        // The chunk's queries and keys as the GEMMs read them: SQDIST uses the centred copies
        // gamma x - c and y - c (chunk-relative, row stride N*D / M*D as the inputs).
        const char *xs = sq ? (const char *)cp->xc : x + (size_t)(b0 * N * D) * elem;
        const char *ys = sq ? (const char *)cp->yc : y + (size_t)(b0 * M * D) * elem;
        if (sq) {
            err = advk_center_sqdist(a->precision, x + (size_t)(b0 * N * D) * elem, N,
                                     y + (size_t)(b0 * M * D) * elem, M, bc, D, a->gamma,
                                     a->row_a ? a->row_a + b0 * N : NULL, cp->center, cp->xc,
                                     cp->yc, stream);
            if (err != cudaSuccess) return advi_cuda_error(ctx, err, "centring kernel launch");
            err = advk_sq_norms(a->precision, xs, bc * N, D, 1.0, cp->xnorm, stream);
            if (err != cudaSuccess) return advi_cuda_error(ctx, err, "query norm kernel launch");
            err = advk_sq_norms(a->precision, ys, bc * M, D, 1.0, cp->ynorm, stream);
            if (err != cudaSuccess) return advi_cuda_error(ctx, err, "key norm kernel launch");
        }
        for (int64_t q0 = 0; q0 < N; q0 += cp->tq) {
            const int64_t qc = min64(cp->tq, N - q0);
            // Causal: keys past the tile's last query are masked for all of its queries.
            const int64_t kend = a->causal ? min64(M, q0 + qc) : M;
            advk_tile t = {b0, bc, q0, qc, 0, 0, cp->tq, cp->tk, 1, cp->scores,
                           cp->xnorm, cp->ynorm, cp->mstate, cp->sstate};
            for (int64_t k0 = 0; k0 < kend; k0 += cp->tk) {
                t.k0 = k0;
                t.kc = min64(cp->tk, kend - k0);
                t.first = k0 == 0;
                bst = gemm_strided(cp->blas, f64, CUBLAS_OP_T, CUBLAS_OP_N, (int)t.kc, (int)qc,
                                   (int)D, 1.0, ys + (size_t)(k0 * D) * elem,
                                   (int)D, (long long)(M * D), xs + (size_t)(q0 * D) * elem,
                                   (int)D, (long long)(N * D), 0.0, cp->scores, (int)cp->tk,
                                   (long long)(cp->tq * cp->tk), (int)bc);
                if (bst != CUBLAS_STATUS_SUCCESS)
                    return advi_cublas_error(ctx, bst, f64 ? "cublasDgemmStridedBatched (scores)"
                                                           : "cublasSgemmStridedBatched (scores)");
                err = advk_interaction_tile_update(a, &t, stream);
                if (err != cudaSuccess) return advi_cuda_error(ctx, err, "tile update kernel launch");
                if (E > 0) {
                    bst = gemm_strided(cp->blas, f64, CUBLAS_OP_N, CUBLAS_OP_N, (int)E, (int)qc,
                                       (int)t.kc, 1.0, w + (size_t)((b0 * M + k0) * E) * elem, (int)E,
                                       (long long)(M * E), cp->scores, (int)cp->tk,
                                       (long long)(cp->tq * cp->tk), 1.0,
                                       out + (size_t)((b0 * N + q0) * E) * elem, (int)E,
                                       (long long)(N * E), (int)bc);
                    if (bst != CUBLAS_STATUS_SUCCESS)
                        return advi_cublas_error(ctx, bst,
                                                 f64 ? "cublasDgemmStridedBatched (values)"
                                                     : "cublasSgemmStridedBatched (values)");
                }
            }
            err = advk_interaction_tile_finalize(a, &t, stream);
            if (err != cudaSuccess) return advi_cuda_error(ctx, err, "tile finalize kernel launch");
        }
    }
    return ADV_OK;
}

/* One execution on the plan's path, for n queries (the plan's own count, or fewer: every
 * workspace has room for them), in the per-row mode too (row_a, see
 * advi_cuda_interaction_rows). */
static adv_status execute_on_device(adv_interaction_plan *plan, int64_t n, const void *x,
                                    const void *y, const void *beta, const void *w, void *lse,
                                    void *out, const double *row_a, const double *row_lambda) {
    adv_context *ctx = plan->ctx;
    const cuda_plan *cp = plan->backend_state;
    const adv_interaction_desc *d = &plan->desc;
    advk_interaction_args a = {(int)d->precision, (int)d->kernel, d->causal,
                               d->batch, n, d->n_keys, d->dim,
                               out ? d->value_dim : 0, row_a ? 1.0 : d->lambda, d->gamma,
                               x, y, beta, out ? w : NULL, lse, out, row_a, row_lambda};
    if (cp->path == PATH_GEMM) return execute_gemm(ctx, cp, &a);
    const int64_t kpg = cp->keys_per_group;
    cudaStream_t stream = advi_cuda_stream(ctx);
    // Wave balance (plan_wave_tail): the tiles past the last full wave, when that wave would
    // be at most 90 % full, go to the split-key variant.
    const int64_t tiles = cp->wave > 0 ? ceil_div64(n, cp->queries_per_block) : 0;
    const int64_t tail_tiles = tiles > cp->wave ? tiles % cp->wave : 0;
    if (tail_tiles > 0 && tail_tiles * 10 <= cp->wave * 9) {
        const int64_t head = (tiles - tail_tiles) * cp->queries_per_block;
        const size_t es = advi_real_size(d->precision);
        advk_interaction_args t = a; // the tail rows [head, n)
        t.n = n - head;
        t.x = (const char *)x + (size_t)(head * d->dim) * es;
        if (lse) t.lse = (char *)lse + (size_t)head * es;
        if (out) t.out = (char *)out + (size_t)(head * d->value_dim) * es;
        if (row_a) t.row_a = row_a + head, t.row_lambda = row_lambda + head;
        a.n = head;
        cudaError_t err = advk_interaction_direct(&a, 1, kpg, NULL, stream);
        if (err == cudaSuccess)
            err = advk_interaction_direct(&t, (int)cp->groups, kpg, cp->tail_partial, stream);
        if (err != cudaSuccess) return advi_cuda_error(ctx, err, "interaction kernel launch");
        err = advk_interaction_merge(&t, (int)cp->groups, cp->tail_partial, stream);
        if (err != cudaSuccess) return advi_cuda_error(ctx, err, "split-key merge kernel launch");
        return ADV_OK;
    }
    const int splits = cp->splits;
    cudaError_t err = advk_interaction_direct(&a, splits, kpg, cp->partial, stream);
    if (err != cudaSuccess) return advi_cuda_error(ctx, err, "interaction kernel launch");
    if (splits > 1) {
        err = advk_interaction_merge(&a, splits, cp->partial, stream);
        if (err != cudaSuccess) return advi_cuda_error(ctx, err, "split-key merge kernel launch");
    }
    return ADV_OK;
}

/* Enters the context's device and runs one execution: the public one, or the per-row mode
 * when row_a is set. */
static adv_status execute(adv_interaction_plan *plan, int64_t n, const void *x, const void *y,
                          const void *beta, const void *w, void *lse, void *out,
                          const double *row_a, const double *row_lambda) {
    adv_context *ctx = plan->ctx;
    if (!plan->backend_state)
        return advi_fail(ctx, ADV_ERR_INTERNAL, "CUDA interaction plan has no backend state");
    advi_device_guard g;
    adv_status st = advi_device_enter(ctx, ctx->device_id, &g);
    if (st != ADV_OK) return st;
    st = execute_on_device(plan, n, x, y, beta, w, lse, out, row_a, row_lambda);
    advi_device_leave(&g);
    return st;
}

adv_status advi_cuda_interaction_execute(adv_interaction_plan *plan, int64_t n, const void *x,
                                         const void *y, const void *beta, const void *w,
                                         void *lse, void *out) {
    return execute(plan, n, x, y, beta, w, lse, out, NULL, NULL);
}

adv_status advi_cuda_interaction_rows(adv_interaction_plan *plan, int64_t n, const void *x,
                                      const void *y, const void *beta, const double *row_a,
                                      const double *row_lambda, void *out) {
    const adv_interaction_desc *d = &plan->desc;
    if (d->kernel != ADV_KERNEL_SQDIST || d->causal || d->value_dim != d->dim || !row_a || !row_lambda || !out || n < 1 || n > d->n_queries)
        return advi_fail(plan->ctx, ADV_ERR_INTERNAL, "per-row interaction mode: unsupported problem");
    return execute(plan, n, x, y, beta, y, NULL, out, row_a, row_lambda);
}
