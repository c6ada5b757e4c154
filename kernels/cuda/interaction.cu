/* CUDA kernels of the interaction sum (spec math.md §1); the GPU twin of
 * host/cpu/interaction_cpu.c. Three paths, chosen by host/cuda/interaction_cuda.c (see
 * docs/cuda-interaction.md):
 *   direct  d <= 64: a block owns a tile of queries (QPT per thread, in registers) and streams
 *           key tiles through shared memory; per tile and query one rescale (tile maximum
 *           first, then exp and accumulate). Value columns are processed EC at a time, extra
 *           column chunks run in parallel along gridDim.y. Keys are reduced in fixed groups
 *           (a size that depends on M only), each from a fresh state, and group states are
 *           merged left to right.
 *   split   the direct kernel over one key group per block writing partial (m, s, acc)
 *           states, then a merge kernel (small N, large M). It merges the same group states
 *           in the same order with the same operations, so a row gets the same bits whether
 *           or not its keys were split, hence for any N (any chunking of the queries).
 *   GEMM    d > 64: <x, y> tiles from cuBLAS in a bounded workspace; a kernel turns a tile
 *           into softmax terms and updates the running states; out += P W by a second GEMM.
 * The per-element formulas are those of kernels/common/interaction_math.h, shared with the
 * CPU. Written once as templates over float/double behind extern "C" launchers. */
#include "../../host/cuda/cuda_internal.h"
#include "common/interaction_math.h"

#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

namespace {

constexpr int kSqdist = 0; // ADV_KERNEL_SQDIST
constexpr int kDot = 1;    // ADV_KERNEL_DOT

/* The shared per-element functions for each precision. float32 takes its softmax terms
 * through exp2 (the hardware exponential); both keep scores and states in natural units, so
 * the merge and finalisation are exactly the CPU's. */
template <typename T> struct Ops;
template <> struct Ops<float> {
    __device__ static float sq_score(float b, float l, float d2) { return adv_sqdist_score_f32(b, l, d2); }
    __device__ static float dot_score(float b, float l, float g) { return adv_dot_score_f32(b, l, g); }
    __device__ static float rescale(float a, float b) { return adv_rescale_f32(a, b); }
    // m must be finite (callers pass 0 for an empty row, whose scores are all -Inf).
    __device__ static float term(float s, float m) { return adv_softmax_term_exp2_f32(s, m); }
    __device__ static float lse(float m, float s) { return adv_lse_finalize_f32(m, s); }
    __device__ static float out(float a, float s) { return adv_out_finalize_f32(a, s); }
    __device__ static void merge(float &m, float &s, float mb, float sb, float &fa, float &fb) {
        adv_merge_state_f32(&m, &s, mb, sb, &fa, &fb);
    }
    __device__ static float merge_acc(float fa, float a, float fb, float b) { return adv_merge_acc_f32(fa, a, fb, b); }
    __device__ static float fma(float a, float b, float c) { return fmaf(a, b, c); }
    __device__ static float max(float a, float b) { return fmaxf(a, b); }
    static constexpr float unit_roundoff = 5.9604645e-8f; // 2^-24
    static constexpr float negligible = 104.0f; // exp(-104): far below float's smallest normal
};
template <> struct Ops<double> {
    __device__ static double sq_score(double b, double l, double d2) { return adv_sqdist_score_f64(b, l, d2); }
    __device__ static double dot_score(double b, double l, double g) { return adv_dot_score_f64(b, l, g); }
    __device__ static double rescale(double a, double b) { return adv_rescale_f64(a, b); }
    __device__ static double term(double s, double m) { return adv_softmax_term_f64(s, m); }
    __device__ static double lse(double m, double s) { return adv_lse_finalize_f64(m, s); }
    __device__ static double out(double a, double s) { return adv_out_finalize_f64(a, s); }
    __device__ static void merge(double &m, double &s, double mb, double sb, double &fa, double &fb) {
        adv_merge_state_f64(&m, &s, mb, sb, &fa, &fb);
    }
    __device__ static double merge_acc(double fa, double a, double fb, double b) { return adv_merge_acc_f64(fa, a, fb, b); }
    __device__ static double fma(double a, double b, double c) { return ::fma(a, b, c); }
    __device__ static double max(double a, double b) { return fmax(a, b); }
    static constexpr double unit_roundoff = 1.1102230246251565e-16; // 2^-53
    static constexpr double negligible = 746.0; // exp(-746) is 0 in double
};

/* Score units of the direct kernel and of the merge of its split-key partial states. float32
 * works in base 2: lambda and the log-weights are multiplied by log2(e) once (per call, per
 * staged key), so every score, the running maximum and the partial states are in units of
 * 1/ln 2, and a softmax term is one subtraction and one exp2 instead of also a multiply per
 * pair (see interaction_math.h); lse converts back per row. float64 keeps natural units (its
 * exp has no hardware form to save a multiply for). */
template <typename T> struct Units;
template <> struct Units<float> {
    static constexpr float scale = ADV_LOG2E_F32;
    __device__ static float rescale(float a, float b) { return adv_rescale_base2_f32(a, b); }
    __device__ static float term(float s, float m) { return adv_softmax_term_base2_f32(s, m); }
    __device__ static void merge(float &m, float &s, float mb, float sb, float &fa, float &fb) {
        adv_merge_state_base2_f32(&m, &s, mb, sb, &fa, &fb);
    }
    __device__ static float lse(float m, float s) { return adv_lse_finalize_base2_f32(m, s); }
};
template <> struct Units<double> {
    static constexpr double scale = 1.0;
    __device__ static double rescale(double a, double b) { return Ops<double>::rescale(a, b); }
    __device__ static double term(double s, double m) { return Ops<double>::term(s, m); }
    __device__ static void merge(double &m, double &s, double mb, double sb, double &fa, double &fb) {
        Ops<double>::merge(m, s, mb, sb, fa, fb);
    }
    __device__ static double lse(double m, double s) { return Ops<double>::lse(m, s); }
};

template <typename T> __device__ __forceinline__ T neg_inf() { return -(T)INFINITY; }

/* Stages N consecutive values (a whole number of 16-byte vectors, src 16-byte aligned) into
 * shared memory, one vector per thread, multiplied by `scale` when SCALE: the key tile of a
 * full tile whose rows need no padding, instead of one bounds-checked element with 64-bit
 * index arithmetic per thread and step. */
template <typename T> struct Vec16;
template <> struct Vec16<float> { typedef float4 type; };
template <> struct Vec16<double> { typedef double2 type; };
template <bool SCALE, typename T, int TB, int N>
__device__ __forceinline__ void stage_vectors(T *dst, const T *src, T scale) {
    using V = typename Vec16<T>::type;
    constexpr int L = 16 / (int)sizeof(T);
    static_assert(N % L == 0, "whole vectors only");
#pragma unroll
    for (int v0 = 0; v0 < N / L; v0 += TB) {
        const int v = v0 + (int)threadIdx.x;
        if (N / L % TB == 0 || v < N / L) {
            V a = reinterpret_cast<const V *>(src)[v];
            if (SCALE) {
                T *c = reinterpret_cast<T *>(&a);
#pragma unroll
                for (int l = 0; l < L; ++l) c[l] *= scale;
            }
            reinterpret_cast<V *>(dst)[v] = a;
        }
    }
}

template <typename T> __device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) v = Ops<T>::max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline unsigned grid_size(int64_t blocks, int64_t cap) {
    return (unsigned)(blocks < 1 ? 1 : (blocks < cap ? blocks : cap));
}

/* ------------------------------------------------------------------------------------------
 * Direct kernel
 * ------------------------------------------------------------------------------------------ */

/* Block shape: TB threads, QPT queries per thread, KT keys per shared-memory tile. The
 * scores of one tile stay in registers (QPT x KT) next to the query rows (QPT x DP) and the
 * accumulators (QPT x EC), so the tile shrinks as the dimension grows, and float64 (twice the
 * registers per value) keeps one query per thread; this holds every instantiation below
 * ~170 registers without spills. */
constexpr int kThreads = 128;
constexpr int64_t kGroupKeyQuantum = 1024; // keys per reduction group: a multiple of this
constexpr int64_t kMaxGroups = 256;
template <typename T> constexpr int queries_per_thread(int dp) {
    return sizeof(T) == 4 && dp <= 16 ? 2 : 1;
}
template <typename T> constexpr int key_tile(int dp) {
    return sizeof(T) == 4 ? (dp <= 4 ? 32 : 16) : (dp <= 16 ? 16 : 8);
}
/* An unmasked copy of the tile loop (full tiles off the causal diagonal) only where the mask
 * is a noticeable share of the work: float32 with d <= 4. Elsewhere one masked copy keeps the
 * build shorter. */
template <typename T> constexpr bool unmasked_copy(int dp) { return sizeof(T) == 4 && dp <= 4; }

/* Padded dimension: d itself up to 4, then 8, 16, 32, 64 (zero coordinates add nothing to
 * a squared distance or a dot product). */
inline int dim_bucket(int64_t d) {
    if (d <= 4) return (int)d;
    if (d <= 8) return 8;
    if (d <= 16) return 16;
    if (d <= 32) return 32;
    return 64;
}

/* Value columns per block (EC). The instantiations are limited to keep the build time
 * reasonable: exact widths 1..4 only for float32 with d <= 4 (the sampling and low-d
 * transport cases where an unused column would cost a large share of the work), else 8 or
 * 16 (float32) and 4 or 16 (float64); e beyond EC runs as further column chunks. */
template <typename T> constexpr bool exact_small_values(int dp) { return sizeof(T) == 4 && dp <= 4; }
template <typename T> inline int value_bucket(int dp, int64_t e) {
    if (e <= 0) return 0;
    if (sizeof(T) == 4 && dp <= 4) return e <= 4 ? (int)e : e <= 8 ? 8 : 16;
    if (sizeof(T) == 4) return e <= 8 ? 8 : 16;
    return e <= 4 ? 4 : 16;
}
template <typename T> constexpr bool has_value_bucket(int dp, int ec) {
    return ec == 0 || ec == 16 || (exact_small_values<T>(dp) && ec <= 4) ||
           (sizeof(T) == 4 && ec == 8) || (sizeof(T) == 8 && ec == 4);
}

template <typename T> struct DirectParams {
    const T *x, *y, *beta, *w;
    T *lse, *out;
    T *pm, *ps, *pacc; // partial states when splits > 1
    int64_t B, N, M, d, e;
    T lambda, gamma;
    const double *row_a, *row_lambda; // per-row mode (SQDIST), or NULL
    int causal;
    int splits;            // 1, or one block per key group (partial states, merged later)
    int64_t keys_per_group; // the fixed unit of the reduction order (whole key tiles)
    int64_t qtiles;  // query tiles per batch entry
    int64_t works;   // B * qtiles * splits
    int64_t vchunks; // value-column chunks (1 when e == 0)
};

/* Folds one staged key tile into the states of the thread's QPT queries, in the kernel's score
 * units (lambda and the staged log-weights already scaled, see Units). MASK: some scores of
 * the tile must become -Inf (keys past the range end, or causal j > i). */
template <bool MASK, typename T, int KERNEL, int DP, int SP, int EC, int QPT, int KT>
__device__ __forceinline__ void fold_tile(const T (&q)[QPT][DP], const int64_t (&qi)[QPT],
                                          T (&m)[QPT], T (&s)[QPT],
                                          T (&acc)[QPT][EC > 0 ? EC : 1], const T *sy,
                                          const T *sb, const T *sv, T lambda,
                                          const T (&neg_a)[QPT], int kv, int64_t t0,
                                          int causal) {
    using O = Ops<T>;
    T sc[QPT][KT];
    T tmax[QPT];
#pragma unroll
    for (int u = 0; u < QPT; ++u) tmax[u] = neg_inf<T>();
    // Pass 1: scores and the tile maximum.
#pragma unroll
    for (int j = 0; j < KT; ++j) {
        const T bj = sb[j];
#pragma unroll
        for (int u = 0; u < QPT; ++u) {
            T r = 0;
#pragma unroll
            for (int k = 0; k < DP; ++k) {
                if (KERNEL == kSqdist) {
                    // Direct differences (no cancellation), x - a y in one FMA: a = 1 (the
                    // same bits as x - y) except in the per-row mode.
                    const T diff = O::fma(neg_a[u], sy[j * SP + k], q[u][k]);
                    r = O::fma(diff, diff, r);
                } else {
                    r = O::fma(q[u][k], sy[j * SP + k], r);
                }
            }
            T v = KERNEL == kSqdist ? O::sq_score(bj, lambda, r) : O::dot_score(bj, lambda, r);
            if (MASK && (j >= kv || (causal && t0 + j > qi[u]))) v = neg_inf<T>();
            sc[u][j] = v;
            tmax[u] = O::max(tmax[u], v);
        }
    }
    // One rescale per query and tile.
    T mref[QPT];
#pragma unroll
    for (int u = 0; u < QPT; ++u) {
        const T mn = O::max(m[u], tmax[u]);
        const T f = Units<T>::rescale(m[u], mn); // 0 while nothing was accumulated
        s[u] *= f;
#pragma unroll
        for (int c = 0; c < EC; ++c) acc[u][c] *= f;
        m[u] = mn;
        // A row with only -Inf scores so far: every term below is exp(-Inf) = 0.
        mref[u] = mn == neg_inf<T>() ? (T)0 : mn;
    }
    // Pass 2: exponentiate (argument <= 0) and accumulate.
#pragma unroll
    for (int j = 0; j < KT; ++j) {
        T v[EC > 0 ? EC : 1];
#pragma unroll
        for (int c = 0; c < EC; ++c) v[c] = sv[j * EC + c];
#pragma unroll
        for (int u = 0; u < QPT; ++u) {
            const T p = Units<T>::term(sc[u][j], mref[u]);
            s[u] += p;
#pragma unroll
            for (int c = 0; c < EC; ++c) acc[u][c] = O::fma(p, v[c], acc[u][c]);
        }
    }
}

template <typename T, int KERNEL, int DP, int SP, int EC, int QPT, int KT, int TB>
__device__ __forceinline__ void direct_body(const DirectParams<T> &p) {
    constexpr int QB = TB * QPT;
    constexpr int ECA = EC > 0 ? EC : 1;
    __shared__ __align__(16) T sy[KT * SP]; // key coordinates, zero-padded to SP
    // (16-byte aligned: the unrolled tile loops read them as vectors)
    __shared__ __align__(16) T sb[KT];       // log-weights; -Inf past the end of the range
    __shared__ __align__(16) T sv[KT * ECA]; // value columns [c0, c0 + EC), zero-padded
    // Row states (m, s, acc) of the block's queries, into which the key groups are merged:
    // in shared memory rather than registers, as they are touched once per group. Slot
    // u * TB + tid belongs to one thread only (no synchronisation); acc is column-major.
    __shared__ T row_m[QB], row_s[QB], row_acc[ECA * QB];
    const int tid = threadIdx.x;

    for (int64_t vc = blockIdx.y; vc < p.vchunks; vc += gridDim.y) {
        const int64_t c0 = vc * EC;
        for (int64_t work = blockIdx.x; work < p.works; work += gridDim.x) {
            const int split = (int)(work % p.splits);
            const int64_t rest = work / p.splits;
            const int64_t qtile = rest % p.qtiles;
            const int64_t b = rest / p.qtiles;
            const int64_t q0 = qtile * QB;
            const int64_t kbeg = (int64_t)split * p.keys_per_group;
            int64_t kend = p.splits == 1 ? p.M
                                         : (kbeg + p.keys_per_group < p.M ? kbeg + p.keys_per_group : p.M);
            if (p.causal) { // keys past the block's last query are masked for all of them
                const int64_t qend = q0 + QB < p.N ? q0 + QB : p.N;
                if (qend < kend) kend = qend;
            }
            const T *xb = p.x + b * p.N * p.d;
            const T *yb = p.y + b * p.M * p.d;
            const T *betab = p.beta ? p.beta + b * p.M : nullptr;
            const T *wb = EC > 0 ? p.w + b * p.M * p.e : nullptr;
            // Full tiles stage by 16-byte vectors when rows need no padding (d = SP, and the
            // value chunk is the whole row) and the batch entry's arrays are 16-byte aligned;
            // tile offsets then are too (t0 is a multiple of KT, and KT sizeof(T) of 16).
            const bool vector_rows =
                p.d == SP && (EC == 0 || (p.e == EC && c0 == 0)) &&
                (((uintptr_t)yb | (uintptr_t)betab | (uintptr_t)wb) & 15) == 0;
            // Per-row mode: lambda_i |x - a_i y|^2 = |r x - r a_i y|^2 with r = sqrt(lambda_i),
            // so a row needs one key scale, -r a_i, and the score's lambda is 1 (p.lambda).
            const bool per_row = KERNEL == kSqdist && p.row_a;
            const T gamma = KERNEL == kSqdist ? p.gamma : (T)1;
            const T lambda = p.lambda * Units<T>::scale; // in the kernel's score units

            T q[QPT][DP];
            int64_t qi[QPT];
            T m[QPT], s[QPT], acc[QPT][ECA];
            T neg_a[QPT]; // the row's key scale, negated (-1 outside the per-row mode)
#pragma unroll
            for (int u = 0; u < QPT; ++u) {
                qi[u] = q0 + u * TB + tid;
                const bool in = qi[u] < p.N;
                T qscale = gamma;
                neg_a[u] = (T)-1;
                if (per_row && in) {
                    const double r = sqrt(p.row_lambda[b * p.N + qi[u]]);
                    qscale = (T)r;
                    neg_a[u] = (T)(-r * p.row_a[b * p.N + qi[u]]);
                }
#pragma unroll
                for (int k = 0; k < DP; ++k)
                    q[u][k] = (in && k < p.d) ? qscale * xb[qi[u] * p.d + k] : (T)0;
                m[u] = neg_inf<T>();
                s[u] = 0;
#pragma unroll
                for (int c = 0; c < ECA; ++c) acc[u][c] = 0;
                const int slot = u * TB + tid;
                row_m[slot] = neg_inf<T>();
                row_s[slot] = 0;
#pragma unroll
                for (int c = 0; c < ECA; ++c) row_acc[c * QB + slot] = 0;
            }
            // (m, s, acc) is the state of the current key group; at each group boundary it
            // is merged into the row state and restarts empty.
            auto merge_group = [&]() {
#pragma unroll
                for (int u = 0; u < QPT; ++u) {
                    const int slot = u * TB + tid;
                    T rm = row_m[slot], rs = row_s[slot], fa, fb;
                    Units<T>::merge(rm, rs, m[u], s[u], fa, fb);
                    row_m[slot] = rm;
                    row_s[slot] = rs;
#pragma unroll
                    for (int c = 0; c < EC; ++c)
                        row_acc[c * QB + slot] = Ops<T>::merge_acc(fa, row_acc[c * QB + slot], fb, acc[u][c]);
                    m[u] = neg_inf<T>();
                    s[u] = 0;
#pragma unroll
                    for (int c = 0; c < ECA; ++c) acc[u][c] = 0;
                }
            };

            const int tiles_per_group = (int)(p.keys_per_group / KT);
            int tiles_left = tiles_per_group; // in the current group
            for (int64_t t0 = kbeg; t0 < kend; t0 += KT) {
                if (tiles_left == 0) { // only when the block reduces several groups
                    merge_group();
                    tiles_left = tiles_per_group;
                }
                --tiles_left;
                const int kv = (int)(kend - t0 < KT ? kend - t0 : KT);
                __syncthreads(); // the previous tile has been read by every thread
                if (vector_rows && kv == KT) {
                    stage_vectors<false, T, TB, KT * SP>(sy, yb + t0 * SP, (T)1);
                    if (betab) stage_vectors<true, T, TB, KT>(sb, betab + t0, Units<T>::scale);
                    else if (tid < KT) sb[tid] = 0;
                    if (EC > 0) stage_vectors<false, T, TB, KT * ECA>(sv, wb + t0 * EC, (T)1);
                } else {
                    for (int idx = tid; idx < KT * SP; idx += TB) {
                        const int j = idx / SP, k = idx - j * SP;
                        sy[idx] = (j < kv && k < p.d) ? yb[(t0 + j) * p.d + k] : (T)0;
                    }
                    for (int j = tid; j < KT; j += TB)
                        sb[j] = j < kv ? (betab ? betab[t0 + j] * Units<T>::scale : (T)0) : neg_inf<T>();
                    if (EC > 0) {
                        for (int idx = tid; idx < KT * EC; idx += TB) {
                            const int j = idx / ECA, c = idx - j * ECA;
                            sv[idx] = (j < kv && c0 + c < p.e) ? wb[(t0 + j) * p.e + c0 + c] : (T)0;
                        }
                    }
                }
                __syncthreads();
                // Masking is needed only for a partial tile or when a key can pass a query.
                const bool mask = kv < KT || (p.causal && t0 + KT - 1 > q0);
                if (!unmasked_copy<T>(DP) || mask)
                    fold_tile<true, T, KERNEL, DP, SP, EC, QPT, KT>(q, qi, m, s, acc, sy, sb, sv,
                                                                   lambda, neg_a, kv, t0, p.causal);
                else if constexpr (unmasked_copy<T>(DP))
                    fold_tile<false, T, KERNEL, DP, SP, EC, QPT, KT>(q, qi, m, s, acc, sy, sb, sv,
                                                                    lambda, neg_a, kv, t0, p.causal);
            }

            if (p.splits == 1) merge_group(); // the last group (an empty one changes nothing)
#pragma unroll
            for (int u = 0; u < QPT; ++u) {
                if (qi[u] >= p.N) continue;
                const int64_t row = b * p.N + qi[u];
                if (p.splits == 1) {
                    const int slot = u * TB + tid;
                    const T rs = row_s[slot];
                    if (p.lse && vc == 0) p.lse[row] = Units<T>::lse(row_m[slot], rs);
#pragma unroll
                    for (int c = 0; c < EC; ++c)
                        if (c0 + c < p.e) p.out[row * p.e + c0 + c] = Ops<T>::out(row_acc[c * QB + slot], rs);
                } else {
                    const int64_t st = (int64_t)split * (p.B * p.N) + row;
                    if (vc == 0) {
                        p.pm[st] = m[u];
                        p.ps[st] = s[u];
                    }
#pragma unroll
                    for (int c = 0; c < EC; ++c)
                        if (c0 + c < p.e) p.pacc[st * p.e + c0 + c] = acc[u][c];
                }
            }
        }
    }
}

/* The kernel, in two register budgets. The float32 kernels with d <= 4 and e <= 4 (sampling
 * and the low-d throughput cases) are held to 128 registers, so 4 blocks of 128 threads fit
 * an SM instead of 3: unconstrained, ptxas gives them 120-147 (130 for d = 2, e = 2, 140 for
 * d = 3, e = 3). At 128 some spill a few bytes, outside the tile loop but for one load per tile
 * (sm_90, ptxas -v and cuobjdump, sixth session). The others keep ptxas' own choice: an explicit
 * minimum of one block made it take more registers (165 -> 212 for d = 2, e = 16). */
template <typename T> constexpr bool four_blocks(int dp, int ec) {
    return sizeof(T) == 4 && dp <= 4 && ec <= 4;
}
template <typename T, int KERNEL, int DP, int SP, int EC, int QPT, int KT, int TB>
__global__ void __launch_bounds__(TB) direct_kernel(const DirectParams<T> p) {
    direct_body<T, KERNEL, DP, SP, EC, QPT, KT, TB>(p);
}
template <typename T, int KERNEL, int DP, int SP, int EC, int QPT, int KT, int TB>
__global__ void __launch_bounds__(TB, 4) direct_kernel_4(const DirectParams<T> p) {
    direct_body<T, KERNEL, DP, SP, EC, QPT, KT, TB>(p);
}

template <typename T, int KERNEL, int DP, int EC>
cudaError_t launch_direct(const advk_interaction_args *a, int splits, int64_t kpg, void *partial,
                          cudaStream_t stream, int *occupancy) {
    constexpr int SP = DP == 3 ? 4 : DP; // 16-byte rows for d = 3
    constexpr int QPT = queries_per_thread<T>(DP);
    constexpr int KT = key_tile<T>(DP);
    constexpr int TB = kThreads;
    DirectParams<T> p;
    p.x = (const T *)a->x;
    p.y = (const T *)a->y;
    p.beta = (const T *)a->beta;
    p.w = (const T *)a->w;
    p.lse = (T *)a->lse;
    p.out = (T *)a->out;
    p.B = a->batch;
    p.N = a->n;
    p.M = a->m;
    p.d = a->d;
    p.e = EC > 0 ? a->e : 0;
    p.lambda = (T)a->lambda;
    p.gamma = (T)a->gamma;
    p.row_a = a->row_a;
    p.row_lambda = a->row_lambda;
    p.causal = a->causal;
    p.splits = splits > 1 ? splits : 1;
    p.keys_per_group = kpg;
    const int64_t rows = p.B * p.N;
    p.pm = p.splits > 1 ? (T *)partial : nullptr;
    p.ps = p.splits > 1 ? p.pm + p.splits * rows : nullptr;
    p.pacc = p.splits > 1 ? p.ps + p.splits * rows : nullptr;
    p.qtiles = ceil_div(p.N, (int64_t)TB * QPT);
    p.works = p.B * p.qtiles * p.splits;
    p.vchunks = EC > 0 ? ceil_div(p.e, EC) : 1;
    const dim3 grid(grid_size(p.works, INT_MAX), grid_size(p.vchunks, 65535));
    if constexpr (four_blocks<T>(DP, EC)) {
        if (occupancy) // (the query of advk_interaction_direct_blocks_per_sm)
            return cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                occupancy, direct_kernel_4<T, KERNEL, DP, SP, EC, QPT, KT, TB>, TB, 0);
        direct_kernel_4<T, KERNEL, DP, SP, EC, QPT, KT, TB><<<grid, TB, 0, stream>>>(p);
    } else {
        if (occupancy)
            return cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                occupancy, direct_kernel<T, KERNEL, DP, SP, EC, QPT, KT, TB>, TB, 0);
        direct_kernel<T, KERNEL, DP, SP, EC, QPT, KT, TB><<<grid, TB, 0, stream>>>(p);
    }
    return cudaGetLastError();
}

template <typename T, int KERNEL, int DP, int EC>
cudaError_t launch_if_built(const advk_interaction_args *a, int splits, int64_t kpg, void *partial,
                            cudaStream_t stream, int *occupancy) {
    if constexpr (has_value_bucket<T>(DP, EC))
        return launch_direct<T, KERNEL, DP, EC>(a, splits, kpg, partial, stream, occupancy);
    else
        return cudaErrorInvalidValue; // value_bucket never selects it
}

template <typename T, int KERNEL, int DP>
cudaError_t dispatch_values(const advk_interaction_args *a, int splits, int64_t kpg,
                            void *partial, cudaStream_t stream, int *occupancy) {
    switch (value_bucket<T>(DP, a->e)) {
    case 0: return launch_if_built<T, KERNEL, DP, 0>(a, splits, kpg, partial, stream, occupancy);
    case 1: return launch_if_built<T, KERNEL, DP, 1>(a, splits, kpg, partial, stream, occupancy);
    case 2: return launch_if_built<T, KERNEL, DP, 2>(a, splits, kpg, partial, stream, occupancy);
    case 3: return launch_if_built<T, KERNEL, DP, 3>(a, splits, kpg, partial, stream, occupancy);
    case 4: return launch_if_built<T, KERNEL, DP, 4>(a, splits, kpg, partial, stream, occupancy);
    case 8: return launch_if_built<T, KERNEL, DP, 8>(a, splits, kpg, partial, stream, occupancy);
    default: return launch_if_built<T, KERNEL, DP, 16>(a, splits, kpg, partial, stream, occupancy);
    }
}

template <typename T, int KERNEL>
cudaError_t dispatch_dim(const advk_interaction_args *a, int splits, int64_t kpg, void *partial,
                         cudaStream_t stream, int *occupancy) {
    switch (dim_bucket(a->d)) {
    case 1: return dispatch_values<T, KERNEL, 1>(a, splits, kpg, partial, stream, occupancy);
    case 2: return dispatch_values<T, KERNEL, 2>(a, splits, kpg, partial, stream, occupancy);
    case 3: return dispatch_values<T, KERNEL, 3>(a, splits, kpg, partial, stream, occupancy);
    case 4: return dispatch_values<T, KERNEL, 4>(a, splits, kpg, partial, stream, occupancy);
    case 8: return dispatch_values<T, KERNEL, 8>(a, splits, kpg, partial, stream, occupancy);
    case 16: return dispatch_values<T, KERNEL, 16>(a, splits, kpg, partial, stream, occupancy);
    case 32: return dispatch_values<T, KERNEL, 32>(a, splits, kpg, partial, stream, occupancy);
    default: return dispatch_values<T, KERNEL, 64>(a, splits, kpg, partial, stream, occupancy);
    }
}

template <typename T>
cudaError_t dispatch_kernel(const advk_interaction_args *a, int splits, int64_t kpg,
                            void *partial, cudaStream_t stream, int *occupancy = nullptr) {
    if (a->kernel == kDot) return dispatch_dim<T, kDot>(a, splits, kpg, partial, stream, occupancy);
    return dispatch_dim<T, kSqdist>(a, splits, kpg, partial, stream, occupancy);
}

/* ------------------------------------------------------------------------------------------
 * Merge of split-key partial states
 * ------------------------------------------------------------------------------------------ */

template <typename T> struct MergeParams {
    const T *pm, *ps, *pacc;
    T *lse, *out;
    int64_t rows, e;
    int splits;
};

/* One thread per (query row, value column); each merges the row's (m, s) over the splits
 * (cheap: `splits` steps) together with its own accumulator column. */
template <typename T> __global__ void merge_kernel(const MergeParams<T> p) {
    const int64_t cols = p.e > 0 ? p.e : 1;
    const int64_t total = p.rows * cols;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride) {
        const int64_t row = t / cols, c = t - row * cols;
        T m = neg_inf<T>(), s = 0, a = 0;
        for (int k = 0; k < p.splits; ++k) {
            const int64_t st = (int64_t)k * p.rows + row;
            T fa, fb;
            Units<T>::merge(m, s, p.pm[st], p.ps[st], fa, fb);
            if (p.e > 0) a = Ops<T>::merge_acc(fa, a, fb, p.pacc[st * p.e + c]);
        }
        if (c == 0 && p.lse) p.lse[row] = Units<T>::lse(m, s);
        if (p.e > 0) p.out[row * p.e + c] = Ops<T>::out(a, s);
    }
}

template <typename T>
cudaError_t launch_merge(const advk_interaction_args *a, int splits, const void *partial,
                         cudaStream_t stream) {
    MergeParams<T> p;
    p.rows = a->batch * a->n;
    p.e = a->e;
    p.splits = splits;
    p.pm = (const T *)partial;
    p.ps = p.pm + (int64_t)splits * p.rows;
    p.pacc = p.ps + (int64_t)splits * p.rows;
    p.lse = (T *)a->lse;
    p.out = (T *)a->out;
    const int64_t total = p.rows * (p.e > 0 ? p.e : 1);
    merge_kernel<T><<<grid_size(ceil_div(total, 256), 1 << 16), 256, 0, stream>>>(p);
    return cudaGetLastError();
}

/* ------------------------------------------------------------------------------------------
 * GEMM path (large d)
 * ------------------------------------------------------------------------------------------ */

/* One warp per row: norms[r] = |scale x_r|^2. */
template <typename T>
__global__ void sq_norms_kernel(const T *x, int64_t rows, int64_t d, T scale, T *norms) {
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = warp; r < rows; r += nwarps) { // warp-uniform loop
        T acc = 0;
        for (int64_t k = lane; k < d; k += 32) {
            const T v = scale * x[r * d + k];
            acc = Ops<T>::fma(v, v, acc);
        }
        acc = warp_sum(acc);
        if (lane == 0) norms[r] = acc;
    }
}

/* One block per (batch entry, coordinate): center[entry][k] = midpoint of the entry's keys'
 * bounding box along k, the centre the CPU engine uses for its expanded SQDIST. */
template <typename T>
__global__ void key_center_kernel(const T *y, int64_t m, int64_t d, T *center) {
    const int64_t entry = blockIdx.x / d, k = blockIdx.x % d;
    const T *ye = y + entry * m * d;
    T lo = (T)INFINITY, hi = -(T)INFINITY;
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
        const T v = ye[j * d + k];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    __shared__ T los[32], his[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    lo = -warp_max(-lo);
    hi = warp_max(hi);
    if (lane == 0) los[wid] = lo, his[wid] = hi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < nw; ++w) {
            lo = los[w] < lo ? los[w] : lo;
            hi = his[w] > hi ? his[w] : hi;
        }
        center[blockIdx.x] = (T)(0.5 * ((double)lo + (double)hi));
    }
}

/* dst = scale * src - center[entry] for `entries` batch entries of per_entry rows of d; with
 * row_a (one per row), dst = src - row_a[row] center[entry] instead (the per-row mode). */
template <typename T>
__global__ void center_rows_kernel(const T *src, int64_t per_entry, int64_t entries, int64_t d,
                                   T scale, const double *row_a, const T *center, T *dst) {
    const int64_t total = entries * per_entry * d;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride) {
        const int64_t entry = t / (per_entry * d), k = t % d;
        const T c = center[entry * d + k];
        dst[t] = row_a ? Ops<T>::fma(-(T)row_a[t / d], c, src[t]) : scale * src[t] - c;
    }
}

template <typename T> struct TileParams {
    const double *row_a, *row_lambda; // per-row mode (SQDIST), or NULL
    const T *beta, *xn, *yn;
    const T *x, *y; // the caller's queries and keys (SQDIST refinement)
    T *scores, *m, *s, *out, *lse;
    int64_t N, M, d, e;
    int64_t b0, bc, q0, qc, k0, kc, tq, tk;
    T lambda, gamma;
    int kernel, causal, first;
};

template <typename T> TileParams<T> tile_params(const advk_interaction_args *a, const advk_tile *t) {
    TileParams<T> p;
    p.row_a = a->row_a;
    p.row_lambda = a->row_lambda;
    p.beta = (const T *)a->beta;
    p.xn = (const T *)t->xnorm;
    p.yn = (const T *)t->ynorm;
    p.x = (const T *)a->x;
    p.y = (const T *)a->y;
    p.d = a->d;
    p.gamma = (T)a->gamma;
    p.scores = (T *)t->scores;
    p.m = (T *)t->m;
    p.s = (T *)t->s;
    p.out = (T *)a->out;
    p.lse = (T *)a->lse;
    p.N = a->n;
    p.M = a->m;
    p.e = a->e;
    p.b0 = t->b0;
    p.bc = t->bc;
    p.q0 = t->q0;
    p.qc = t->qc;
    p.k0 = t->k0;
    p.kc = t->kc;
    p.tq = t->tq;
    p.tk = t->tk;
    p.lambda = (T)a->lambda;
    p.kernel = a->kernel;
    p.causal = a->causal;
    p.first = t->first;
    return p;
}

/* SQDIST on the GEMM path: the expanded distance |x'|^2 + a^2 |y'|^2 - 2a <x', y'> of the
 * centred copies (a = 1, or the row's a in the per-row mode, where x' - a y' = x - a y),
 * clamped at 0 (d2), and a bound on its rounding error in score units (err): the GEMM's dot
 * product is off by at most d u |x'| |y'| <= d u (|x'|^2 + |y'|^2) / 2 (twice that in
 * 2<x', y'>), each norm by d u |.|^2, plus the final additions. As a true bound it makes the
 * window test of tile_update_kernel safe: a pair whose score plus err lies below the
 * approximate maximum minus the largest err minus `negligible` cannot matter. With a = 1 the
 * arithmetic is that of the plain expansion, bit for bit. */
template <typename T>
__device__ __forceinline__ void expanded_score(const TileParams<T> &p, T lambda, T a, T xn, T yn,
                                               T g, T bj, T &v, T &d2, T &err) {
    using O = Ops<T>;
    const T ayn = a * a * yn;
    d2 = O::max((T)0, O::fma((T)-2 * a, g, xn + ayn));
    v = O::sq_score(bj, lambda, d2);
    err = fabs(lambda) * (T)(2 * p.d + 4) * O::unit_roundoff * (xn + ayn);
}

/* |gamma x_i - y_j|^2, or |x_i - a y_j|^2 in the per-row mode, by direct differences (one FMA
 * each) from the caller's arrays: one lane, d coordinates (rare: see tile_update_kernel). */
template <typename T>
__device__ T direct_sq_distance(const TileParams<T> &p, T a, int64_t b, int64_t qg, int64_t kg) {
    const T *xr = p.x + (b * p.N + qg) * p.d, *yr = p.y + (b * p.M + kg) * p.d;
    T acc = 0;
    for (int64_t k = 0; k < p.d; ++k) {
        const T t = p.row_a ? Ops<T>::fma(-a, yr[k], xr[k]) : Ops<T>::fma(p.gamma, xr[k], -yr[k]);
        acc = Ops<T>::fma(t, t, acc);
    }
    return acc;
}

/* One warp per query row of the tile: scores from the GEMM tile (SQDIST via the expansion of
 * the centred copies, see expanded_score), the row maximum, one rescale of (s, acc) and the
 * softmax terms written back for the value GEMM.
 * SQDIST refinement: where the expansion's error bound is both significant (above a few ulp
 * of the score) and much larger than direct differences would make it (the pair is close
 * compared with the norms: |x'|^2 + |y'|^2 > 8 d2), and the pair can matter (its score may lie
 * within `negligible` of the row maximum), the distance is recomputed by direct differences.
 * At small λ nothing qualifies; at large λ (sampling near t = 1) only the few near
 * neighbours do. A first pass finds the approximate maximum and largest error bound. */
template <typename T> __global__ void tile_update_kernel(const TileParams<T> p) {
    using O = Ops<T>;
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    const int64_t rows = p.bc * p.qc;
    for (int64_t r = warp; r < rows; r += nwarps) { // warp-uniform loop
        const int64_t bb = r / p.qc, i = r - bb * p.qc;
        const int64_t b = p.b0 + bb, qg = p.q0 + i;
        T *sc = p.scores + (bb * p.tq + i) * p.tk;
        const int64_t st = bb * p.tq + i;
        const T mold = p.first ? neg_inf<T>() : p.m[st];
        const T sold = p.first ? (T)0 : p.s[st];
        const T xn = p.kernel == kSqdist ? p.xn[bb * p.N + qg] : (T)0;
        // Per-row mode: the row's λ and key scale a (scores β_j - λ |x - a y_j|^2).
        const T lambda = p.row_a ? (T)p.row_lambda[b * p.N + qg] : p.lambda;
        const T a = p.row_a ? (T)p.row_a[b * p.N + qg] : (T)1;
        T window = neg_inf<T>(); // SQDIST: scores below it cannot matter
        if (p.kernel == kSqdist) {
            T amax = neg_inf<T>(), emax = 0;
            for (int64_t j = lane; j < p.kc; j += 32) {
                const int64_t kg = p.k0 + j;
                const T bj = p.beta ? p.beta[b * p.M + kg] : (T)0;
                T v, d2, err;
                expanded_score(p, lambda, a, xn, p.yn[bb * p.M + kg], sc[j], bj, v, d2, err);
                amax = O::max(amax, v);
                emax = O::max(emax, err);
            }
            window = warp_max(amax) - warp_max(emax) - O::negligible;
        }
        T tmax = neg_inf<T>();
        for (int64_t j = lane; j < p.kc; j += 32) {
            const int64_t kg = p.k0 + j;
            const T g = sc[j];
            const T bj = p.beta ? p.beta[b * p.M + kg] : (T)0;
            T v;
            if (p.kernel == kSqdist) {
                const T yn = p.yn[bb * p.M + kg];
                T d2, err;
                expanded_score(p, lambda, a, xn, yn, g, bj, v, d2, err);
                if (err > (T)8 * O::unit_roundoff * (fabs(v) + (T)16) &&
                    xn + a * a * yn > (T)8 * d2 && v + err >= window)
                    v = O::sq_score(bj, lambda, direct_sq_distance(p, a, b, qg, kg));
            } else {
                v = O::dot_score(bj, p.lambda, g);
                if (p.causal && kg > qg) v = neg_inf<T>();
            }
            sc[j] = v; // read back below by this same lane
            tmax = O::max(tmax, v);
        }
        tmax = warp_max(tmax);
        const T mn = O::max(mold, tmax);
        const T f = O::rescale(mold, mn);
        const T mref = mn == neg_inf<T>() ? (T)0 : mn;
        T psum = 0;
        for (int64_t j = lane; j < p.kc; j += 32) {
            const T pj = O::term(sc[j], mref);
            sc[j] = pj;
            psum += pj;
        }
        psum = warp_sum(psum);
        if (lane == 0) {
            p.m[st] = mn;
            p.s[st] = O::fma(sold, f, psum);
        }
        if (p.e > 0) {
            T *o = p.out + (b * p.N + qg) * p.e;
            // The first tile overwrites whatever the caller's out held (NaN poison included).
            for (int64_t c = lane; c < p.e; c += 32) o[c] = p.first ? (T)0 : o[c] * f;
        }
    }
}

template <typename T> __global__ void tile_finalize_kernel(const TileParams<T> p) {
    const int64_t cols = p.e > 0 ? p.e : 1;
    const int64_t total = p.bc * p.qc * cols;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride) {
        const int64_t r = t / cols, c = t - r * cols;
        const int64_t bb = r / p.qc, i = r - bb * p.qc;
        const T m = p.m[bb * p.tq + i], s = p.s[bb * p.tq + i];
        const int64_t row = (p.b0 + bb) * p.N + p.q0 + i;
        if (c == 0 && p.lse) p.lse[row] = Ops<T>::lse(m, s);
        if (p.e > 0) p.out[row * p.e + c] = Ops<T>::out(p.out[row * p.e + c], s);
    }
}

template <typename T>
cudaError_t launch_sq_norms(const void *x, int64_t rows, int64_t d, double scale, void *norms,
                            cudaStream_t stream) {
    const int64_t blocks = ceil_div(rows, 8); // 8 warps per block, one row each
    sq_norms_kernel<T><<<grid_size(blocks, 1 << 16), 256, 0, stream>>>((const T *)x, rows, d, (T)scale, (T *)norms);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launch_center(const void *x, int64_t n, const void *y, int64_t m, int64_t entries,
                          int64_t d, double gamma, const double *row_a, void *center, void *xc,
                          void *yc, cudaStream_t stream) {
    if (entries * d > INT32_MAX) return cudaErrorInvalidValue;
    key_center_kernel<T><<<(unsigned)(entries * d), 256, 0, stream>>>((const T *)y, m, d, (T *)center);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    center_rows_kernel<T><<<grid_size(ceil_div(entries * n * d, 256), 1 << 16), 256, 0, stream>>>(
        (const T *)x, n, entries, d, (T)gamma, row_a, (const T *)center, (T *)xc);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    center_rows_kernel<T><<<grid_size(ceil_div(entries * m * d, 256), 1 << 16), 256, 0, stream>>>(
        (const T *)y, m, entries, d, (T)1, nullptr, (const T *)center, (T *)yc);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launch_tile_update(const advk_interaction_args *a, const advk_tile *t,
                               cudaStream_t stream) {
    const TileParams<T> p = tile_params<T>(a, t);
    const int64_t blocks = ceil_div(p.bc * p.qc, 8);
    tile_update_kernel<T><<<grid_size(blocks, 1 << 16), 256, 0, stream>>>(p);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launch_tile_finalize(const advk_interaction_args *a, const advk_tile *t,
                                 cudaStream_t stream) {
    const TileParams<T> p = tile_params<T>(a, t);
    const int64_t total = p.bc * p.qc * (p.e > 0 ? p.e : 1);
    tile_finalize_kernel<T><<<grid_size(ceil_div(total, 256), 1 << 16), 256, 0, stream>>>(p);
    return cudaGetLastError();
}

} // namespace

/* ---- C launchers ---- */

/* Key groups: at least kGroupKeyQuantum keys (a whole number of key tiles for every
 * instantiation: KT divides 1024), and at most kMaxGroups of them, so the split-key partial
 * states stay bounded and sums over a group stay short (float32 accuracy at M = 1e6). */
extern "C" int64_t advk_interaction_group_keys(int64_t m) {
    const int64_t per_group = ceil_div(m > 0 ? m : 1, kMaxGroups);
    return ceil_div(per_group, kGroupKeyQuantum) * kGroupKeyQuantum;
}

extern "C" void advk_interaction_direct_shape(int precision, int64_t d, int64_t e,
                                              int *queries_per_block, int *value_chunk) {
    const int dp = dim_bucket(d);
    if (precision == 1) {
        *queries_per_block = kThreads * queries_per_thread<double>(dp);
        *value_chunk = value_bucket<double>(dp, e);
    } else {
        *queries_per_block = kThreads * queries_per_thread<float>(dp);
        *value_chunk = value_bucket<float>(dp, e);
    }
}

extern "C" cudaError_t advk_interaction_direct(const advk_interaction_args *a, int splits,
                                               int64_t keys_per_group, void *partial,
                                               cudaStream_t stream) {
    if (a->d < 1 || a->d > ADVK_DIRECT_MAX_DIM || splits < 1) return cudaErrorInvalidValue;
    if ((a->row_a != nullptr) != (a->row_lambda != nullptr) ||
        (a->row_a && (a->kernel != kSqdist || a->lambda != 1.0)))
        return cudaErrorInvalidValue;
    if (keys_per_group < 1 || keys_per_group % kGroupKeyQuantum != 0) return cudaErrorInvalidValue;
    if (a->precision == 1) return dispatch_kernel<double>(a, splits, keys_per_group, partial, stream);
    return dispatch_kernel<float>(a, splits, keys_per_group, partial, stream);
}

extern "C" cudaError_t advk_interaction_direct_blocks_per_sm(const advk_interaction_args *a,
                                                              int *blocks) {
    *blocks = 0;
    if (a->d < 1 || a->d > ADVK_DIRECT_MAX_DIM) return cudaErrorInvalidValue;
    const int64_t kpg = advk_interaction_group_keys(a->m);
    if (a->precision == 1) return dispatch_kernel<double>(a, 1, kpg, nullptr, nullptr, blocks);
    return dispatch_kernel<float>(a, 1, kpg, nullptr, nullptr, blocks);
}

extern "C" cudaError_t advk_interaction_merge(const advk_interaction_args *a, int splits,
                                              const void *partial, cudaStream_t stream) {
    if (a->precision == 1) return launch_merge<double>(a, splits, partial, stream);
    return launch_merge<float>(a, splits, partial, stream);
}

extern "C" cudaError_t advk_sq_norms(int precision, const void *x, int64_t rows, int64_t d,
                                     double scale, void *norms, cudaStream_t stream) {
    if (precision == 1) return launch_sq_norms<double>(x, rows, d, scale, norms, stream);
    return launch_sq_norms<float>(x, rows, d, scale, norms, stream);
}

extern "C" cudaError_t advk_center_sqdist(int precision, const void *x, int64_t n, const void *y,
                                          int64_t m, int64_t entries, int64_t d, double gamma,
                                          const double *row_a, void *center, void *xc, void *yc,
                                          cudaStream_t stream) {
    if (precision == 1)
        return launch_center<double>(x, n, y, m, entries, d, gamma, row_a, center, xc, yc, stream);
    return launch_center<float>(x, n, y, m, entries, d, gamma, row_a, center, xc, yc, stream);
}

extern "C" cudaError_t advk_interaction_tile_update(const advk_interaction_args *a,
                                                    const advk_tile *t, cudaStream_t stream) {
    if (a->precision == 1) return launch_tile_update<double>(a, t, stream);
    return launch_tile_update<float>(a, t, stream);
}

extern "C" cudaError_t advk_interaction_tile_finalize(const advk_interaction_args *a,
                                                      const advk_tile *t, cudaStream_t stream) {
    if (a->precision == 1) return launch_tile_finalize<double>(a, t, stream);
    return launch_tile_finalize<float>(a, t, stream);
}
