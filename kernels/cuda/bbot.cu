/* CUDA kernels of the Benamou-Brenier solver; the GPU twin of host/cpu/bbot_cpu_impl.h. Every
 * per-element formula comes from kernels/common/bbot_math.h (the CPU uses the same ones): one
 * thread per cell for the prox, the divergence and the centred outputs, one per face for the
 * gradient correction, a block per tile of lines for the projection on the averaging
 * constraint (one thread per line beyond 3006 cells), one per particle for the velocity
 * field. Grid-stride loops with 64-bit indices; reductions are in double: a block reduction,
 * then one atomicAdd per block into the accumulator slot. */
#include "../../host/cuda/bbot_kernels.h"

#include <cuda_runtime.h>
#include <stdint.h>

namespace {

const int BLOCK = 256;
const int LINES_BLOCK = 64; // threads per block of the untiled line projection
const int TILE_BLOCK = 128; // threads per block of the tiled line projection
const int TILE_LINES_MAX = 16;
// Bytes of shared memory a block gets without an opt-in (48 KiB, static and dynamic together),
// less 1 KiB for the kernel's static reductions.
const size_t TILE_SHARED = 47 * 1024;
// Shared memory of a tile of tl lines of L cells: (L + 1) x (tl + 1) doubles and 2 tl offsets.
size_t tile_bytes(int64_t L, int tl) {
    return ((size_t)(L + 1) * (size_t)(tl + 1) + 2 * (size_t)tl) * sizeof(double);
}
// Lines per tile: the most (a power of two up to TILE_LINES_MAX) whose tile fits; 0 when not
// even one line fits (L > 3006).
int tile_lines(int64_t L) {
    for (int tl = TILE_LINES_MAX; tl >= 1; tl /= 2)
        if (tile_bytes(L, tl) <= TILE_SHARED) return tl;
    return 0;
}

unsigned grid_for(int64_t work) {
    int64_t blocks = (work + BLOCK - 1) / BLOCK;
    if (blocks > 65535 * 8) blocks = 65535 * 8; // grid-stride beyond
    if (blocks < 1) blocks = 1;
    return (unsigned)blocks;
}

__device__ __forceinline__ int64_t global_id() {
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t global_stride() { return (int64_t)gridDim.x * blockDim.x; }

// Sum of v over the block (at most BLOCK threads, a multiple of 32), valid in thread 0 (every
// thread of the block must call it).
__device__ double block_sum(double v) {
    __shared__ double warp_sums[BLOCK / 32];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < (int)(blockDim.x / 32); ++w) total += warp_sums[w];
    __syncthreads(); // warp_sums may be reused by a following call
    return total;
}

__device__ __forceinline__ void block_add(double *slot, double v) {
    const double t = block_sum(v);
    if (threadIdx.x == 0 && t != 0.0) atomicAdd(slot, t);
}

// Per-precision shared functions of bbot_math.h.
__device__ __forceinline__ void centred_at(const advk_bbot_grid *g, const float *s, int64_t c,
                                           double *out) {
    advk_bbot_centred_f32(g, s, c, out);
}
__device__ __forceinline__ void centred_at(const advk_bbot_grid *g, const double *s, int64_t c,
                                           double *out) {
    advk_bbot_centred_f64(g, s, c, out);
}
/* The projection on {V = I(U)} and the relaxed update of one line (faces i S, i = 0..L; cells
 * i S, i = 0..L-1), with the arithmetic of advk_bbot_lines (nb = 1) and its sums in the same
 * order. A thread walks a whole line, so each sweep is a chain of L dependent steps: the
 * inputs of LINE_CHUNK steps are loaded first, so their memory latencies overlap (in
 * advk_bbot_lines' order a load may not be hoisted above the previous step's store, as the
 * compiler cannot tell the addresses apart), and the recurrences carry the previous value in
 * a register. */
constexpr int LINE_CHUNK = 4;

template <typename T>
__device__ void project_line(int64_t L, int64_t S, const double *__restrict__ cp,
                             const double *__restrict__ inv, double mu, T *__restrict__ x2u,
                             T *__restrict__ zu, const T *__restrict__ x1u, T *__restrict__ zv,
                             const T *__restrict__ x1v, double *d2, double *x1sq) {
    const double b0 = (double)x1u[0], bL = (double)x1u[L * S];
    x2u[0] = x1u[0];
    x2u[L * S] = x1u[L * S];
    // Forward sweep over faces 1..L-1: y_i = (rhs_i - y_{i-1}/4) inv_i.
    double prev = 0.0, rl = advk_bbot_reflect((double)x1v[0], (double)zv[0]);
    for (int64_t i0 = 1; i0 < L; i0 += LINE_CHUNK) {
        T xf[LINE_CHUNK], zf[LINE_CHUNK], xc[LINE_CHUNK], zc[LINE_CHUNK];
        double f[LINE_CHUNK];
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k) {
            const int64_t i = i0 + k;
            if (i < L) {
                xf[k] = x1u[i * S], zf[k] = zu[i * S], xc[k] = x1v[i * S], zc[k] = zv[i * S];
                f[k] = inv[i];
            }
        }
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k) {
            const int64_t i = i0 + k;
            if (i >= L) break;
            const double wp = i > 1 ? 0.25 : 0.0, wl = i == 1 ? 0.25 : 0.0, wr = i == L - 1 ? 0.25 : 0.0;
            const double rc = advk_bbot_reflect((double)xc[k], (double)zc[k]);
            const double rhs = advk_bbot_line_rhs((double)xf[k], (double)zf[k], rl, rc, wl, b0, wr, bL);
            const T y = (T)advk_bbot_sweep_forward(rhs, wp, prev, f[k]);
            x2u[i * S] = y;
            prev = (double)y;
            rl = rc;
        }
    }
    // Backward sweep over faces L-2..1: x_i = y_i - cp_i x_{i+1}; prev holds x_{L-1} = y_{L-1}.
    for (int64_t i0 = L - 2; i0 >= 1; i0 -= LINE_CHUNK) {
        T y[LINE_CHUNK];
        double f[LINE_CHUNK];
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k)
            if (i0 - k >= 1) y[k] = x2u[(i0 - k) * S], f[k] = cp[i0 - k];
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k) {
            const int64_t i = i0 - k;
            if (i < 1) break;
            const T x = (T)advk_bbot_sweep_backward((double)y[k], f[k], prev);
            x2u[i * S] = x;
            prev = (double)x;
        }
    }
    // Faces, then cells (x2.V = I(x2.U)): z += mu (x2 - x1), sums of |x2 - x1|^2 and |x1|^2.
    double acc_d = 0.0, acc_x = 0.0;
    for (int64_t i0 = 0; i0 <= L; i0 += LINE_CHUNK) {
        T a[LINE_CHUNK], b[LINE_CHUNK], c[LINE_CHUNK];
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k)
            if (i0 + k <= L) a[k] = x1u[(i0 + k) * S], b[k] = x2u[(i0 + k) * S], c[k] = zu[(i0 + k) * S];
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k) {
            if (i0 + k > L) break;
            const double x1 = (double)a[k], dd = (double)b[k] - x1;
            zu[(i0 + k) * S] = (T)advk_bbot_relax((double)c[k], mu, dd);
            acc_d += dd * dd;
            acc_x += x1 * x1;
        }
    }
    for (int64_t i0 = 0; i0 < L; i0 += LINE_CHUNK) {
        T lo[LINE_CHUNK], hi[LINE_CHUNK], a[LINE_CHUNK], c[LINE_CHUNK];
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k)
            if (i0 + k < L) {
                const int64_t i = i0 + k;
                lo[k] = x2u[i * S], hi[k] = x2u[(i + 1) * S], a[k] = x1v[i * S], c[k] = zv[i * S];
            }
#pragma unroll
        for (int k = 0; k < LINE_CHUNK; ++k) {
            if (i0 + k >= L) break;
            const double v2 = 0.5 * ((double)lo[k] + (double)hi[k]);
            const double v1 = (double)a[k], dv = v2 - v1;
            zv[(i0 + k) * S] = (T)advk_bbot_relax((double)c[k], mu, dv);
            acc_d += dv * dv;
            acc_x += v1 * v1;
        }
    }
    *d2 += acc_d;
    *x1sq += acc_x;
}
// Per-precision steps of the tiled line projection (bbot_math.h).
__device__ __forceinline__ void tile_load(const advk_bbot_tile *tp, int e, const int64_t *fb,
                                          const int64_t *cb, float *x1u, const float *zu,
                                          const float *x1v, const float *zv, const double *q,
                                          double inv_sp, double *A) {
    advk_bbot_tile_load_f32(tp, e, fb, cb, x1u, zu, x1v, zv, q, inv_sp, A);
}
__device__ __forceinline__ void tile_load(const advk_bbot_tile *tp, int e, const int64_t *fb,
                                          const int64_t *cb, double *x1u, const double *zu,
                                          const double *x1v, const double *zv, const double *q,
                                          double inv_sp, double *A) {
    advk_bbot_tile_load_f64(tp, e, fb, cb, x1u, zu, x1v, zv, q, inv_sp, A);
}
template <typename T>
__device__ __forceinline__ void tile_solve(const advk_bbot_tile *tp, int t, const double *cp,
                                           const double *inv, double *A) {
    if (sizeof(T) == sizeof(double)) advk_bbot_tile_solve_f64(tp, t, cp, inv, A);
    else advk_bbot_tile_solve_f32(tp, t, cp, inv, A);
}
__device__ __forceinline__ void tile_face(const advk_bbot_tile *tp, int e, const int64_t *fb,
                                          double mu, const double *A, float *x2u, float *zu,
                                          const float *x1u, double *d2, double *x1sq) {
    advk_bbot_tile_face_f32(tp, e, fb, mu, A, x2u, zu, x1u, d2, x1sq);
}
__device__ __forceinline__ void tile_face(const advk_bbot_tile *tp, int e, const int64_t *fb,
                                          double mu, const double *A, double *x2u, double *zu,
                                          const double *x1u, double *d2, double *x1sq) {
    advk_bbot_tile_face_f64(tp, e, fb, mu, A, x2u, zu, x1u, d2, x1sq);
}
__device__ __forceinline__ void tile_cell(const advk_bbot_tile *tp, int e, const int64_t *cb,
                                          double mu, const double *A, float *zv, const float *x1v,
                                          double *d2, double *x1sq) {
    advk_bbot_tile_cell_f32(tp, e, cb, mu, A, zv, x1v, d2, x1sq);
}
__device__ __forceinline__ void tile_cell(const advk_bbot_tile *tp, int e, const int64_t *cb,
                                          double mu, const double *A, double *zv,
                                          const double *x1v, double *d2, double *x1sq) {
    advk_bbot_tile_cell_f64(tp, e, cb, mu, A, zv, x1v, d2, x1sq);
}
__device__ __forceinline__ void velocity_at(const advk_bbot_grid *g, const float *vel, double t,
                                            const float *x, float *out) {
    advk_bbot_velocity_at_f32(g, vel, t, x, out);
}
__device__ __forceinline__ void velocity_at(const advk_bbot_grid *g, const double *vel, double t,
                                            const double *x, double *out) {
    advk_bbot_velocity_at_f64(g, vel, t, x, out);
}

// The reducing kernels run every thread to the block reduction (no early return).
template <typename T>
__global__ void input_stats_kernel(const T *rho, int64_t M, double scale, double *sums) {
    double sum = 0.0, sum2 = 0.0, bad = 0.0, neg = 0.0;
    for (int64_t i = global_id(); i < M; i += global_stride()) {
        const double v = (double)rho[i];
        if (!isfinite(v)) bad += 1.0;
        else if (v < 0.0) neg += 1.0;
        else {
            sum += v;
            sum2 += (scale * v) * (scale * v);
        }
    }
    block_add(sums + ADVK_BBOT_SLOT_MASS, sum);
    block_add(sums + ADVK_BBOT_SLOT_MASS2, sum2);
    block_add(sums + ADVK_BBOT_SLOT_BAD, bad);
    block_add(sums + ADVK_BBOT_SLOT_NEG, neg);
}

template <typename T>
__global__ void init_ends_kernel(advk_bbot_grid g, T *z, const T *rho0, const T *rho1, double s0,
                                 double s1) {
    T *f = z + g.offU[0];
    for (int64_t s = global_id(); s < g.M; s += global_stride()) {
        f[s] = (T)(s0 * (double)rho0[s]);
        f[g.P * g.M + s] = (T)(s1 * (double)rho1[s]);
    }
}

template <typename T> __global__ void init_interior_kernel(advk_bbot_grid g, T *z) {
    T *f = z + g.offU[0];
    const int64_t M = g.M, P = g.P;
    for (int64_t i = M + global_id(); i < P * M; i += global_stride()) {
        const double t = (double)(i / M) / (double)P;
        const int64_t s = i % M;
        f[i] = (T)((1.0 - t) * (double)f[s] + t * (double)f[P * M + s]);
    }
}

template <typename T> __global__ void centre_kernel(advk_bbot_grid g, T *z) {
    for (int64_t cell = global_id(); cell < g.cells; cell += global_stride()) {
        double cv[ADVK_BBOT_MAX_COMP] = {0.0, 0.0, 0.0, 0.0};
        centred_at(&g, z, cell, cv);
        for (int c = 0; c <= g.d; ++c) z[g.offV[c] + cell] = (T)cv[c];
    }
}

// The divergence and the gradient decompose flat indices with divisions; 64-bit integer
// division is emulated on the GPU (tens of instructions), so when every index of the state
// fits, these two kernels run with 32-bit unsigned indices (I = uint32_t). The arithmetic on
// the values is that of the stencils described in kernels/common/bbot_math.h.
template <typename T, typename I>
__device__ __forceinline__ double div_cell(const advk_bbot_grid &g, const T *state, I cell) {
    double r = 0.0;
    for (int c = 0; c <= g.d; ++c) {
        const I S = (I)g.S[c], LS = (I)(g.L[c] * g.S[c]);
        const I lo = cell + cell / LS * S; // advk_bbot_low_face
        const T *u = state + g.offU[c];
        r += ((double)u[lo + S] - (double)u[lo]) * g.inv_sp[c];
    }
    return r;
}

template <typename T, typename I>
__global__ void divergence_kernel(advk_bbot_grid g, const T *state, double *q, double *sums) {
    double acc = 0.0;
    const I cells = (I)g.cells, stride = (I)global_stride();
    for (I cell = (I)global_id(); cell < cells; cell += stride) {
        const double r = div_cell<T, I>(g, state, cell);
        if (q) q[cell] = r;
        else acc += r * r;
    }
    if (!q) block_add(sums + ADVK_BBOT_SLOT_DIV2, acc);
}

template <typename T, typename I>
__global__ void grad_kernel(advk_bbot_grid g, const T *z, const double *q, T *x1) {
    const I faces = (I)g.offV[0], stride = (I)global_stride(); // all staggered values
    for (I i = (I)global_id(); i < faces; i += stride) {
        int c = 0;
        while (c < g.d && i >= (I)g.offU[c + 1]) ++c;
        const I S = (I)g.S[c], L = (I)g.L[c], f = i - (I)g.offU[c];
        const I s = f % S, r = f / S, k = r % (L + 1), o = r / (L + 1);
        double gr = 0.0; // boundary faces keep their fixed values
        if (k != 0 && k != L) {
            const I right = (o * L + k) * S + s;
            gr = (q[right] - q[right - S]) * g.inv_sp[c];
        }
        x1[i] = (T)((double)z[i] + gr);
    }
}

// 32-bit indices when every flat index (plus a grid stride) stays below 2^32.
bool small_indices(const advk_bbot_grid &g) { return g.state < ((int64_t)1 << 32) - ((int64_t)1 << 28); }

template <typename T>
__global__ void prox_kernel(advk_bbot_grid g, double gamma, const T *z, T *x1, double *sums) {
    double acc = 0.0;
    for (int64_t cell = global_id(); cell < g.cells; cell += global_stride()) {
        double mt[3] = {0.0, 0.0, 0.0}, ms[3], fs;
        for (int a = 0; a < g.d; ++a) mt[a] = (double)z[g.offV[a + 1] + cell];
        acc += advk_bbot_prox_point(gamma, g.d, (double)z[g.offV[0] + cell], mt, &fs, ms);
        x1[g.offV[0] + cell] = (T)fs;
        for (int a = 0; a < g.d; ++a) x1[g.offV[a + 1] + cell] = (T)ms[a];
    }
    block_add(sums + ADVK_BBOT_SLOT_COST, acc);
}

template <typename T>
__global__ void lines_kernel(advk_bbot_grid g, int c, const double *cp, const double *inv,
                             double mu, T *x2u, T *z, const T *x1, double *sums) {
    const int64_t L = g.L[c], S = g.S[c], nlines = g.cells / L;
    double d2 = 0.0, x1sq = 0.0;
    // Line (o, s): consecutive threads take consecutive s, so their accesses coalesce.
    for (int64_t line = global_id(); line < nlines; line += global_stride()) {
        const int64_t o = line / S, s = line % S;
        const int64_t fb = g.offU[c] + o * (L + 1) * S + s, cb = g.offV[c] + o * L * S + s;
        project_line(L, S, cp, inv, mu, x2u + fb, z + fb, x1 + fb, z + cb, x1 + cb, &d2, &x1sq);
    }
    block_add(sums + ADVK_BBOT_SLOT_D2, d2);
    block_add(sums + ADVK_BBOT_SLOT_X1SQ, x1sq);
}

/* The same projection by tiles of `tl` lines (advk_bbot_tile_* of bbot_math.h): the block
 * loads the lines' right-hand sides into shared memory in memory order, `tl` threads run the
 * sweeps there, and the block writes the updates back in memory order. A global-memory
 * sweep pays a load latency per step (8k-16k lines at 128^2 x 64 leave most of the GPU
 * idle); here only the shared-memory sweeps are sequential. With q (not NULL) the load step
 * also forms x1.U = z.U + ∇q of these lines (the gradient update, fused). Shared memory: the
 * tile, then the lines' face and cell offsets. */
template <typename T>
__global__ void lines_tile_kernel(advk_bbot_grid g, int c, int tl, const double *cp,
                                  const double *inv, double mu, T *x2u, T *z, T *x1,
                                  const double *q, double *sums) {
    extern __shared__ double tile_mem[];
    advk_bbot_tile tp;
    tp.L = g.L[c], tp.S = g.S[c], tp.nlines = g.cells / tp.L, tp.first = 0, tp.tl = tl;
    tp.ld = tl + 1;
    const int nf = tl * (int)(tp.L + 1), nc = tl * (int)tp.L;
    double *A = tile_mem;
    int64_t *fb = (int64_t *)(A + (tp.L + 1) * tp.ld), *cb = fb + tl;
    T *x2uc = x2u + g.offU[c], *zu = z + g.offU[c], *zv = z + g.offV[c], *x1u = x1 + g.offU[c];
    const T *x1v = x1 + g.offV[c];
    const double inv_sp = g.inv_sp[c];
    double d2 = 0.0, x1sq = 0.0;
    for (int64_t first = (int64_t)blockIdx.x * tl; first < tp.nlines;
         first += (int64_t)gridDim.x * tl) {
        tp.first = first;
        if ((int)threadIdx.x < tl) advk_bbot_tile_bases(&tp, (int)threadIdx.x, fb, cb);
        __syncthreads();
        for (int e = (int)threadIdx.x; e < nf; e += (int)blockDim.x)
            tile_load(&tp, e, fb, cb, x1u, zu, x1v, zv, q, inv_sp, A);
        __syncthreads();
        if ((int)threadIdx.x < tl) tile_solve<T>(&tp, (int)threadIdx.x, cp, inv, A);
        __syncthreads();
        for (int e = (int)threadIdx.x; e < nf; e += (int)blockDim.x)
            tile_face(&tp, e, fb, mu, A, x2uc, zu, x1u, &d2, &x1sq);
        for (int e = (int)threadIdx.x; e < nc; e += (int)blockDim.x)
            tile_cell(&tp, e, cb, mu, A, zv, x1v, &d2, &x1sq);
        __syncthreads(); // the next tile overwrites A and the offsets
    }
    block_add(sums + ADVK_BBOT_SLOT_D2, d2);
    block_add(sums + ADVK_BBOT_SLOT_X1SQ, x1sq);
}

template <typename T>
__global__ void finalise_kernel(advk_bbot_grid g, const T *x1, double scale, double threshold,
                                T *vel, T *mom, double *sums) {
    const int d = g.d;
    double path = 0.0;
    for (int64_t cell = global_id(); cell < g.cells; cell += global_stride()) {
        double cv[ADVK_BBOT_MAX_COMP] = {0.0, 0.0, 0.0, 0.0};
        centred_at(&g, x1, cell, cv);
        const bool dense = cv[0] > threshold;
        for (int a = 0; a < d; ++a) {
            vel[cell * d + a] = (T)(dense ? cv[a + 1] / cv[0] : 0.0);
            if (mom) mom[cell * d + a] = (T)(scale * cv[a + 1]);
            if (dense) path += cv[a + 1] * cv[a + 1] / cv[0];
        }
    }
    block_add(sums + ADVK_BBOT_SLOT_PATH, path);
}

// face_mass[j] += Σ_s f[j M + s]: faces j from blockIdx.y in strides of gridDim.y (which
// stops at 65535, below the P + 1 faces of a long run), grid-stride over s along x. The face
// loop is the same for every thread of a block, so block_add's barriers stay uniform.
template <typename T>
__global__ void face_mass_kernel(advk_bbot_grid g, const T *x1, double *face_mass) {
    for (int64_t j = blockIdx.y; j <= g.P; j += gridDim.y) {
        const T *f = x1 + g.offU[0] + j * g.M;
        double acc = 0.0;
        for (int64_t s = global_id(); s < g.M; s += global_stride()) acc += (double)f[s];
        block_add(face_mass + j, acc);
    }
}

template <typename T>
__global__ void scaled_copy_kernel(T *dst, const T *src, int64_t count, double scale) {
    for (int64_t i = global_id(); i < count; i += global_stride())
        dst[i] = (T)(scale * (double)src[i]);
}

template <typename T>
__global__ void velocity_kernel(advk_bbot_grid g, const T *vel, double t, const T *times,
                                int64_t n, const T *x, T *v) {
    for (int64_t i = global_id(); i < n; i += global_stride())
        velocity_at(&g, vel, times ? advk_bbot_clamp_time((double)times[i]) : t, x + i * g.d,
                    v + i * g.d);
}

template <typename T>
cudaError_t init_state(advk_bbot_grid g, void *z, const void *r0, const void *r1, double s0,
                       double s1, int warm, cudaStream_t stream) {
    T *zt = (T *)z;
    init_ends_kernel<T><<<grid_for(g.M), BLOCK, 0, stream>>>(g, zt, (const T *)r0, (const T *)r1,
                                                            s0, s1);
    if (warm) return cudaGetLastError();
    init_interior_kernel<T><<<grid_for(g.cells), BLOCK, 0, stream>>>(g, zt);
    // m = 0: the momentum components are contiguous after f (all-zero bits are 0.0).
    cudaError_t err = cudaMemsetAsync(zt + g.offU[1], 0,
                                      (size_t)(g.offV[0] - g.offU[1]) * sizeof(T), stream);
    if (err != cudaSuccess) return err;
    centre_kernel<T><<<grid_for(g.cells), BLOCK, 0, stream>>>(g, zt);
    return cudaGetLastError();
}

template <typename T>
cudaError_t finalise(advk_bbot_grid g, const void *x1, double scale, double threshold, void *vel,
                     void *mom, double *face_mass, double *sums, cudaStream_t stream) {
    finalise_kernel<T><<<grid_for(g.cells), BLOCK, 0, stream>>>(g, (const T *)x1, scale,
                                                               threshold, (T *)vel, (T *)mom, sums);
    unsigned bx = grid_for(g.M);
    if (bx > 1024) bx = 1024;
    dim3 grid(bx, (unsigned)(g.P + 1 < 65535 ? g.P + 1 : 65535));
    face_mass_kernel<T><<<grid, BLOCK, 0, stream>>>(g, (const T *)x1, face_mass);
    return cudaGetLastError();
}

} // namespace

extern "C" {

cudaError_t advk_bbot_input_stats(int precision, const void *rho, int64_t M, double scale,
                                  double *sums, cudaStream_t stream) {
    if (precision == 1)
        input_stats_kernel<double><<<grid_for(M), BLOCK, 0, stream>>>((const double *)rho, M, scale, sums);
    else
        input_stats_kernel<float><<<grid_for(M), BLOCK, 0, stream>>>((const float *)rho, M, scale, sums);
    return cudaGetLastError();
}

cudaError_t advk_bbot_init_state(int precision, advk_bbot_grid g, void *z, const void *rho0,
                                 const void *rho1, double s0, double s1, int warm,
                                 cudaStream_t stream) {
    return precision == 1 ? init_state<double>(g, z, rho0, rho1, s0, s1, warm, stream)
                          : init_state<float>(g, z, rho0, rho1, s0, s1, warm, stream);
}

cudaError_t advk_bbot_divergence(int precision, advk_bbot_grid g, const void *state, double *q,
                                 double *sums, cudaStream_t stream) {
    const unsigned blocks = grid_for(g.cells);
    const bool s32 = small_indices(g);
    if (precision == 1) {
        if (s32) divergence_kernel<double, uint32_t><<<blocks, BLOCK, 0, stream>>>(g, (const double *)state, q, sums);
        else divergence_kernel<double, int64_t><<<blocks, BLOCK, 0, stream>>>(g, (const double *)state, q, sums);
    } else {
        if (s32) divergence_kernel<float, uint32_t><<<blocks, BLOCK, 0, stream>>>(g, (const float *)state, q, sums);
        else divergence_kernel<float, int64_t><<<blocks, BLOCK, 0, stream>>>(g, (const float *)state, q, sums);
    }
    return cudaGetLastError();
}

cudaError_t advk_bbot_grad_update(int precision, advk_bbot_grid g, const void *z, const double *q,
                                  void *x1, cudaStream_t stream) {
    const unsigned blocks = grid_for(g.offV[0]);
    const bool s32 = small_indices(g);
    if (precision == 1) {
        if (s32) grad_kernel<double, uint32_t><<<blocks, BLOCK, 0, stream>>>(g, (const double *)z, q, (double *)x1);
        else grad_kernel<double, int64_t><<<blocks, BLOCK, 0, stream>>>(g, (const double *)z, q, (double *)x1);
    } else {
        if (s32) grad_kernel<float, uint32_t><<<blocks, BLOCK, 0, stream>>>(g, (const float *)z, q, (float *)x1);
        else grad_kernel<float, int64_t><<<blocks, BLOCK, 0, stream>>>(g, (const float *)z, q, (float *)x1);
    }
    return cudaGetLastError();
}

cudaError_t advk_bbot_prox(int precision, advk_bbot_grid g, double gamma, const void *z,
                           void *x1, double *sums, cudaStream_t stream) {
    if (precision == 1)
        prox_kernel<double><<<grid_for(g.cells), BLOCK, 0, stream>>>(g, gamma, (const double *)z,
                                                                    (double *)x1, sums);
    else
        prox_kernel<float><<<grid_for(g.cells), BLOCK, 0, stream>>>(g, gamma, (const float *)z,
                                                                   (float *)x1, sums);
    return cudaGetLastError();
}

extern "C" int advk_bbot_lines_fuse_grad(advk_bbot_grid g) {
    for (int c = 0; c <= g.d; ++c)
        if (tile_lines(g.L[c]) == 0) return 0;
    return 1;
}

cudaError_t advk_bbot_lines(int precision, advk_bbot_grid g, int c, const double *cp,
                            const double *inv, double mu, void *x2u, void *z, void *x1,
                            const double *q, double *sums, cudaStream_t stream) {
    const int64_t nlines = g.cells / g.L[c];
    const int tl = tile_lines(g.L[c]);
    if (q && tl == 0) return cudaErrorInvalidValue; // see advk_bbot_lines_fuse_grad
    if (tl > 0) {
        int64_t tiles = (nlines + tl - 1) / tl;
        if (tiles > 65535 * 8) tiles = 65535 * 8; // tile-stride beyond
        const size_t bytes = tile_bytes(g.L[c], tl);
        if (precision == 1)
            lines_tile_kernel<double><<<(unsigned)tiles, TILE_BLOCK, bytes, stream>>>(
                g, c, tl, cp, inv, mu, (double *)x2u, (double *)z, (double *)x1, q, sums);
        else
            lines_tile_kernel<float><<<(unsigned)tiles, TILE_BLOCK, bytes, stream>>>(
                g, c, tl, cp, inv, mu, (float *)x2u, (float *)z, (float *)x1, q, sums);
        return cudaGetLastError();
    }
    // Lines too long for a tile of one line: one thread per line on global memory. They are
    // few, so small blocks spread them over every SM, whose memory pipelines then share the
    // outstanding loads.
    const unsigned blocks = (unsigned)((nlines + LINES_BLOCK - 1) / LINES_BLOCK < 65535 * 8
                                           ? (nlines + LINES_BLOCK - 1) / LINES_BLOCK
                                           : 65535 * 8);
    if (precision == 1)
        lines_kernel<double><<<blocks, LINES_BLOCK, 0, stream>>>(
            g, c, cp, inv, mu, (double *)x2u, (double *)z, (const double *)x1, sums);
    else
        lines_kernel<float><<<blocks, LINES_BLOCK, 0, stream>>>(
            g, c, cp, inv, mu, (float *)x2u, (float *)z, (const float *)x1, sums);
    return cudaGetLastError();
}

cudaError_t advk_bbot_finalise(int precision, advk_bbot_grid g, const void *x1, double scale,
                               double threshold, void *vel, void *mom, double *face_mass,
                               double *sums, cudaStream_t stream) {
    return precision == 1
               ? finalise<double>(g, x1, scale, threshold, vel, mom, face_mass, sums, stream)
               : finalise<float>(g, x1, scale, threshold, vel, mom, face_mass, sums, stream);
}

cudaError_t advk_bbot_scaled_copy(int precision, void *dst, const void *src, int64_t count,
                                  double scale, cudaStream_t stream) {
    if (precision == 1)
        scaled_copy_kernel<double><<<grid_for(count), BLOCK, 0, stream>>>(
            (double *)dst, (const double *)src, count, scale);
    else
        scaled_copy_kernel<float><<<grid_for(count), BLOCK, 0, stream>>>(
            (float *)dst, (const float *)src, count, scale);
    return cudaGetLastError();
}

cudaError_t advk_bbot_velocity_eval(int precision, advk_bbot_grid g, const void *vel, double t,
                                    const void *times, int64_t n, const void *x, void *v,
                                    cudaStream_t stream) {
    if (precision == 1)
        velocity_kernel<double><<<grid_for(n), BLOCK, 0, stream>>>(
            g, (const double *)vel, t, (const double *)times, n, (const double *)x, (double *)v);
    else
        velocity_kernel<float><<<grid_for(n), BLOCK, 0, stream>>>(
            g, (const float *)vel, t, (const float *)times, n, (const float *)x, (float *)v);
    return cudaGetLastError();
}

} // extern "C"
