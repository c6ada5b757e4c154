/* CUDA kernels of the Poisson plan; the GPU twin of host/cpu/poisson_cpu.c. cuFFT has no
 * real-to-real transforms, so DCT-II/DST-II and their inverses are built from real FFTs of
 * the same length n (Makhoul 1980):
 *   DCT-II:  v_m = x_{2m} (m < ⌈n/2⌉), v_{n-1-m} = x_{2m+1};  V = FFT(v);
 *            X_k = 2 Re(e^{-iπk/(2n)} V_k)                    (= FFTW REDFT10)
 *   DCT-III: V_k = e^{iπk/(2n)} (X_k - i X_{n-k}), X_n = 0;  v = unnormalised IFFT(V);
 *            x_{2m} = v_m, x_{2m+1} = v_{n-1-m}                (= FFTW REDFT01)
 *   DST-II(x)_k  = DCT-II((-1)^j x_j)_{n-1-k}                  (= FFTW RODFT10)
 *   DST-III(X)_j = (-1)^j DCT-III(X_{n-1-k})_j                 (= FFTW RODFT01)
 *   DHT: H_k = Re V_k - Im V_k with V = FFT(x)                 (= FFTW_DHT)
 * The twiddles are the pair maps of kernels/common/poisson_math.h (shared with the CPU, which
 * applies them to two real lines packed as one complex line; here Z_{n-k} = conj(Z_k)).
 * These identities were checked numerically against FFTW's conventions for n = 1..8. Only
 * the half-spectrum k <= n/2 of a real FFT is stored; V_{n-k} = conj(V_k) gives the rest.
 * The gathers and scatters of a strided axis (not the last) transpose 32 × 32 tiles through
 * shared memory, so that both sides are coalesced; the last axis' take one thread per element.
 * Kernels use grid-stride loops with 64-bit indices; the twiddle factors (cos, sin of
 * πk/(2n), double) come from a per-axis table the plan computes once with the CPU's
 * advi_poisson_twiddle, instead of a double-precision sincospi per element. */
#include "../../host/cuda/poisson_kernels.h"

#include "common/poisson_math.h"

#include <cuda_runtime.h>
#include <stdint.h>

namespace {

template <typename T> struct complex_of;
template <> struct complex_of<float> { typedef float2 type; };
template <> struct complex_of<double> { typedef double2 type; };

const int BLOCK = 256;

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

// Offset of element (o, j, i) in the outer × n × inner view.
__device__ __forceinline__ int64_t at(int64_t o, int64_t j, int64_t i, int64_t n, int64_t inner) {
    return (o * n + j) * inner + i;
}

template <typename T>
__global__ void check_kernel(const T *f, int64_t cells, int64_t batch, int check_finite,
                             int want_sums, double *sums, unsigned long long *max_bits,
                             unsigned int *bad) {
    __shared__ double s_sum[BLOCK], s_abs[BLOCK];
    // The b loop is uniform over the block, so every thread reaches every barrier.
    for (int64_t b = blockIdx.y; b < batch; b += gridDim.y) {
        const T *fb = f + b * cells;
        double s = 0.0, sa = 0.0, m = 0.0;
        int nonfinite = 0;
        for (int64_t i = global_id(); i < cells; i += global_stride()) {
            const T v = fb[i];
            if (check_finite) {
                nonfinite |= !isfinite(v);
                m = fmax(m, fabs((double)v)); // ignores NaN, which fails the check anyway
            }
            s += (double)v;
            sa += fabs((double)v);
        }
        // The overflow bound's max|f|, as in check.cu: per warp, then one atomicMax on the
        // bits (the order of doubles >= 0 is that of their bits as unsigned integers).
        for (int lane_mask = 16; lane_mask > 0; lane_mask >>= 1)
            m = fmax(m, __shfl_xor_sync(0xffffffffu, m, lane_mask));
        if ((threadIdx.x & 31) == 0 && m > 0.0)
            atomicMax(max_bits, (unsigned long long)__double_as_longlong(m));
        if (__syncthreads_or(nonfinite) && threadIdx.x == 0) atomicOr(bad, 1u);
        if (want_sums) {
            s_sum[threadIdx.x] = s;
            s_abs[threadIdx.x] = sa;
            __syncthreads();
            for (int half = BLOCK / 2; half > 0; half /= 2) {
                if ((int)threadIdx.x < half) {
                    s_sum[threadIdx.x] += s_sum[threadIdx.x + half];
                    s_abs[threadIdx.x] += s_abs[threadIdx.x + half];
                }
                __syncthreads();
            }
            if (threadIdx.x == 0) {
                atomicAdd(&sums[2 * b], s_sum[0]);
                atomicAdd(&sums[2 * b + 1], s_abs[0]);
            }
            __syncthreads(); // s_sum is reused by the next b
        }
    }
}

// ---- per element: Makhoul's reordering and the twiddles, shared by both kernel layouts ----

// The line element j stored at position m of the reordered line (the identity when periodic).
__device__ __forceinline__ int64_t makhoul_source(int bc, int64_t m, int64_t n) {
    if (bc == ADVI_POISSON_PERIODIC) return m;
    return m < (n + 1) / 2 ? 2 * m : 2 * (n - 1 - m) + 1;
}
// Its inverse: the position in the reordered line of line element j.
__device__ __forceinline__ int64_t makhoul_position(int64_t j, int64_t n) {
    return (j & 1) ? n - 1 - (j - 1) / 2 : j / 2;
}
// DST-II(x) is DCT-II((-1)^j x) reversed: odd elements change sign on the way in and out.
template <typename T> __device__ __forceinline__ T dst_sign(int bc, int64_t j, T v) {
    return bc == ADVI_POISSON_DIRICHLET && (j & 1) ? -v : v;
}

// Element m of the reordered line (o, ·, i) of x.
template <typename T>
__device__ __forceinline__ T gathered(int bc, const T *x, int64_t o, int64_t m, int64_t i,
                                      int64_t n, int64_t inner) {
    const int64_t j = makhoul_source(bc, m, n);
    return dst_sign(bc, j, x[at(o, j, i, n, inner)]);
}

// Where coefficient k of a line is stored along the axis (DST-II: reversed).
__device__ __forceinline__ int64_t coef_slot(int bc, int64_t k, int64_t n) {
    return bc == ADVI_POISSON_DIRICHLET ? n - 1 - k : k;
}

// The real coefficient k of a line from its stored half-spectrum `row` (V_k for k <= n/2,
// V_{n-k} = conj(V_k) beyond).
template <typename C>
__device__ __forceinline__ double forward_coef(int bc, const C *row, int64_t k, int64_t n,
                                               const double *tw) {
    double re, im;
    if (k <= n / 2) {
        re = (double)row[k].x;
        im = (double)row[k].y;
    } else {
        re = (double)row[n - k].x;
        im = -(double)row[n - k].y;
    }
    // The pair map of kernels/common/poisson_math.h with Z_{n-k} = conj(Z_k) (a real line):
    // W_k is then the real coefficient X_k.
    double s = 0.0, c = 1.0, wr = re, wi = im, nr = re, ni = -im;
    if (bc != ADVI_POISSON_PERIODIC) c = tw[2 * k], s = tw[2 * k + 1];
    advi_poisson_pair_forward(bc, c, s, &wr, &wi, &nr, &ni);
    return wr;
}

// Entry k <= n/2 of the half-spectrum whose C2R gives the reordered line (o, ·, i) of the
// backward transform: e^{iπk/(2n)} (A - iB) with A = X_k, B = X_{n-k} (X_n = 0) read from
// their slots in x.
template <typename T>
__device__ __forceinline__ void inverse_entry(int bc, const T *x, int64_t o, int64_t k,
                                              int64_t i, int64_t n, int64_t inner,
                                              const double *tw, double *zr, double *zi) {
    const double A = (double)x[at(o, coef_slot(bc, k, n), i, n, inner)];
    const double B = k > 0 ? (double)x[at(o, coef_slot(bc, n - k, n), i, n, inner)] : 0.0;
    // The inverse pair map of kernels/common/poisson_math.h with W_k = A, W_{n-k} = B.
    double yr = B, yi = 0.0;
    *zr = A, *zi = 0.0;
    advi_poisson_pair_inverse(ADVI_POISSON_NEUMANN, tw[2 * k], tw[2 * k + 1], zr, zi, &yr, &yi);
}

// Line element j from the backward transform's reordered row.
template <typename T>
__device__ __forceinline__ T scattered(int bc, const T *row, int64_t j, int64_t n) {
    return dst_sign(bc, j, row[makhoul_position(j, n)]);
}

// ---- contiguous lines (inner == 1): one thread per element, lanes along the line; the
// last argument (inner) is 1 and unused, for the signature the tiled kernels share ----

template <typename T>
__global__ void fwd_gather_kernel(int bc, const T *x, T *rbuf, int64_t rows, int64_t n, int64_t) {
    for (int64_t t = global_id(); t < rows * n; t += global_stride())
        rbuf[t] = gathered(bc, x, t / n, t % n, 0, n, 1);
}

template <typename T>
__global__ void fwd_scatter_kernel(int bc, const typename complex_of<T>::type *cbuf, T *x,
                                   int64_t rows, int64_t n, int64_t, const double *tw) {
    const int64_t h = n / 2 + 1;
    for (int64_t t = global_id(); t < rows * n; t += global_stride()) {
        const int64_t row = t / n, k = t % n;
        x[row * n + coef_slot(bc, k, n)] = (T)forward_coef(bc, cbuf + row * h, k, n, tw);
    }
}

template <typename T>
__global__ void inv_gather_kernel(int bc, const T *x, typename complex_of<T>::type *cbuf,
                                  int64_t rows, int64_t n, int64_t, const double *tw) {
    const int64_t h = n / 2 + 1;
    for (int64_t t = global_id(); t < rows * h; t += global_stride()) {
        double zr, zi;
        inverse_entry(bc, x, t / h, t % h, 0, n, 1, tw, &zr, &zi);
        cbuf[t].x = (T)zr;
        cbuf[t].y = (T)zi;
    }
}

template <typename T>
__global__ void inv_scatter_kernel(int bc, const T *rbuf, T *x, int64_t rows, int64_t n, int64_t) {
    for (int64_t t = global_id(); t < rows * n; t += global_stride())
        x[t] = scattered(bc, rbuf + t / n * n, t % n, n);
}

// ---- strided lines (inner > 1): tiles transposed through shared memory ----
// A tile is TILE positions along the axis × TILE lines (consecutive i) of one o. The strided
// side (x) is read or written with the lanes along i, where x is contiguous; the row side
// (rbuf, cbuf) with the lanes along the axis, where the rows are contiguous. One lane per
// element would make one of the two sides a stride-inner access (a 32-byte sector per
// element): the tiles keep both coalesced. Blocks are TILE × TILE_ROWS threads and loop over
// tiles; the tile index is uniform over a block, so every thread reaches every barrier.

const int TILE = 32, TILE_ROWS = 8;

// Moves every element of the (outer × len × inner) view through tiles: v = load(o, a, i), then
// store(o, a, i, v); tile[a - a0][i - i0] holds it in between. LOAD_ALONG_I: the loads have
// the lanes along i and the stores along the axis (x read, rows written); else the reverse.
template <bool LOAD_ALONG_I, typename V, typename Load, typename Store>
__device__ __forceinline__ void move_tiles(int64_t outer, int64_t len, int64_t inner,
                                           V (&tile)[TILE][TILE + 1], Load load, Store store) {
    const int64_t along = (len + TILE - 1) / TILE, across = (inner + TILE - 1) / TILE;
    const int lx = threadIdx.x;
    for (int64_t b = blockIdx.x; b < outer * along * across; b += gridDim.x) {
        const int64_t o = b / (along * across), a0 = b / across % along * TILE,
                      i0 = b % across * TILE;
        for (int r = threadIdx.y; r < TILE; r += TILE_ROWS) {
            const int al = LOAD_ALONG_I ? r : lx, il = LOAD_ALONG_I ? lx : r;
            if (a0 + al < len && i0 + il < inner) tile[al][il] = load(o, a0 + al, i0 + il);
        }
        __syncthreads();
        for (int r = threadIdx.y; r < TILE; r += TILE_ROWS) {
            const int al = LOAD_ALONG_I ? lx : r, il = LOAD_ALONG_I ? r : lx;
            if (a0 + al < len && i0 + il < inner) store(o, a0 + al, i0 + il, tile[al][il]);
        }
        __syncthreads(); // the tile is reused
    }
}

template <typename T>
__global__ void fwd_gather_tiled(int bc, const T *x, T *rbuf, int64_t outer, int64_t n,
                                 int64_t inner) {
    __shared__ T tile[TILE][TILE + 1];
    move_tiles<true>(
        outer, n, inner, tile,
        [&](int64_t o, int64_t m, int64_t i) { return gathered(bc, x, o, m, i, n, inner); },
        [&](int64_t o, int64_t m, int64_t i, T v) { rbuf[(o * inner + i) * n + m] = v; });
}

template <typename T>
__global__ void fwd_scatter_tiled(int bc, const typename complex_of<T>::type *cbuf, T *x,
                                  int64_t outer, int64_t n, int64_t inner, const double *tw) {
    __shared__ T tile[TILE][TILE + 1];
    const int64_t h = n / 2 + 1;
    move_tiles<false>(
        outer, n, inner, tile,
        [&](int64_t o, int64_t k, int64_t i) {
            return (T)forward_coef(bc, cbuf + (o * inner + i) * h, k, n, tw);
        },
        [&](int64_t o, int64_t k, int64_t i, T v) { x[at(o, coef_slot(bc, k, n), i, n, inner)] = v; });
}

template <typename T>
__global__ void inv_gather_tiled(int bc, const T *x, typename complex_of<T>::type *cbuf,
                                 int64_t outer, int64_t n, int64_t inner, const double *tw) {
    typedef typename complex_of<T>::type C;
    __shared__ C tile[TILE][TILE + 1];
    const int64_t h = n / 2 + 1;
    move_tiles<true>(
        outer, h, inner, tile,
        [&](int64_t o, int64_t k, int64_t i) {
            double zr, zi;
            inverse_entry(bc, x, o, k, i, n, inner, tw, &zr, &zi);
            C v;
            v.x = (T)zr;
            v.y = (T)zi;
            return v;
        },
        [&](int64_t o, int64_t k, int64_t i, C v) { cbuf[(o * inner + i) * h + k] = v; });
}

template <typename T>
__global__ void inv_scatter_tiled(int bc, const T *rbuf, T *x, int64_t outer, int64_t n,
                                  int64_t inner) {
    __shared__ T tile[TILE][TILE + 1];
    move_tiles<false>(
        outer, n, inner, tile,
        [&](int64_t o, int64_t j, int64_t i) {
            return scattered(bc, rbuf + (o * inner + i) * n, j, n);
        },
        [&](int64_t o, int64_t j, int64_t i, T v) { x[at(o, j, i, n, inner)] = v; });
}

// ---- the diagonal scaling ----

// The factor of mode q (flat index within one right-hand side's cells).
__device__ __forceinline__ double mode_scale(const advk_poisson_grid &g, int64_t q) {
    double lambda = g.shift;
    for (int a = g.ndim - 1; a >= 0; --a) {
        lambda += advi_poisson_axis_eigenvalue(g.bc[a], q % g.shape[a], g.shape[a], g.spacing[a]);
        q /= g.shape[a];
    }
    return advi_poisson_scale(lambda, g.inv_norm);
}

template <typename T>
__global__ void scale_kernel(T *x, int64_t batch, advk_poisson_grid g) {
    int64_t cells = 1;
    for (int a = 0; a < g.ndim; ++a) cells *= g.shape[a];
    const int64_t total = cells * batch;
    for (int64_t t = global_id(); t < total; t += global_stride())
        x[t] = (T)((double)x[t] * mode_scale(g, t % cells));
}

// The last transformed axis (contiguous lines, Neumann or Dirichlet) between its two FFTs,
// in place on its half-spectrum rows: the forward twiddles (fwd_scatter), the scaling of
// every mode (scale_kernel) and the backward twiddles (inv_gather) in one pass, instead of
// writing the coefficients to the grid and reading them back twice. Entry k of a row gives
// coefficients k and n - k (V_{n-k} = conj V_k), which are all that entry k of the backward
// half-spectrum needs: each thread reads and writes its own entry only.
template <typename T>
__global__ void spectral_kernel(int bc, typename complex_of<T>::type *cbuf, int64_t rows,
                                int64_t n, const double *tw, advk_poisson_grid g) {
    const int64_t h = n / 2 + 1;
    int64_t cells = 1;
    for (int a = 0; a < g.ndim; ++a) cells *= g.shape[a];
    for (int64_t t = global_id(); t < rows * h; t += global_stride()) {
        const int64_t row = t / h, k = t % h;
        const typename complex_of<T>::type *v = cbuf + row * h;
        // Coefficient j of the row, scaled: the mode at its slot along the axis.
        auto scaled = [&](int64_t j) {
            const int64_t cell = (row * n + coef_slot(bc, j, n)) % cells;
            return forward_coef(bc, v, j, n, tw) * mode_scale(g, cell);
        };
        double zr = scaled(k), zi = 0.0, yr = k > 0 ? scaled(n - k) : 0.0, yi = 0.0;
        advi_poisson_pair_inverse(ADVI_POISSON_NEUMANN, tw[2 * k], tw[2 * k + 1], &zr, &zi, &yr, &yi);
        cbuf[t].x = (T)zr;
        cbuf[t].y = (T)zi;
    }
}

template <typename T>
cudaError_t launch_check(const void *f, int64_t cells, int64_t batch, int check_finite,
                         int want_sums, double *sums, unsigned long long *max_bits,
                         unsigned int *bad, cudaStream_t stream) {
    int64_t bx = (cells + BLOCK - 1) / BLOCK;
    if (bx > 1024) bx = 1024;
    dim3 grid((unsigned)bx, (unsigned)(batch < 65535 ? batch : 65535));
    check_kernel<T><<<grid, BLOCK, 0, stream>>>((const T *)f, cells, batch, check_finite,
                                                want_sums, sums, max_bits, bad);
    return cudaGetLastError();
}

// One axis' kernel over the (outer × len × inner) view, len = n or n/2 + 1: the per-element
// kernel when the lines are contiguous (inner == 1), else the tiled one over its tiles.
template <typename... P, typename... A>
cudaError_t launch_axis(void (*row_kernel)(P...), void (*tiled_kernel)(P...), int64_t outer,
                        int64_t len, int64_t inner, cudaStream_t stream, A... args) {
    if (inner == 1) {
        row_kernel<<<grid_for(outer * len), BLOCK, 0, stream>>>(args...);
    } else {
        int64_t tiles = outer * ((len + TILE - 1) / TILE) * ((inner + TILE - 1) / TILE);
        if (tiles > 65535 * 8) tiles = 65535 * 8; // the kernels loop over the rest
        tiled_kernel<<<(unsigned)tiles, dim3(TILE, TILE_ROWS), 0, stream>>>(args...);
    }
    return cudaGetLastError();
}

template <typename T>
cudaError_t fwd_gather(int bc, const void *x, void *rbuf, int64_t outer, int64_t n,
                       int64_t inner, cudaStream_t stream) {
    return launch_axis(fwd_gather_kernel<T>, fwd_gather_tiled<T>, outer, n, inner, stream, bc,
                       (const T *)x, (T *)rbuf, outer, n, inner);
}

template <typename T>
cudaError_t fwd_scatter(int bc, const void *cbuf, void *x, int64_t outer, int64_t n,
                        int64_t inner, const double *tw, cudaStream_t stream) {
    typedef typename complex_of<T>::type C;
    return launch_axis(fwd_scatter_kernel<T>, fwd_scatter_tiled<T>, outer, n, inner, stream, bc,
                       (const C *)cbuf, (T *)x, outer, n, inner, tw);
}

template <typename T>
cudaError_t inv_gather(int bc, const void *x, void *cbuf, int64_t outer, int64_t n,
                       int64_t inner, const double *tw, cudaStream_t stream) {
    typedef typename complex_of<T>::type C;
    return launch_axis(inv_gather_kernel<T>, inv_gather_tiled<T>, outer, n / 2 + 1, inner, stream,
                       bc, (const T *)x, (C *)cbuf, outer, n, inner, tw);
}

template <typename T>
cudaError_t inv_scatter(int bc, const void *rbuf, void *x, int64_t outer, int64_t n,
                        int64_t inner, cudaStream_t stream) {
    return launch_axis(inv_scatter_kernel<T>, inv_scatter_tiled<T>, outer, n, inner, stream, bc,
                       (const T *)rbuf, (T *)x, outer, n, inner);
}

} // namespace

extern "C" cudaError_t advk_poisson_check(int precision, const void *f, int64_t cells,
                                          int64_t batch, int check_finite, int want_sums,
                                          double *sums, unsigned long long *max_bits,
                                          unsigned int *bad, cudaStream_t stream) {
    if (precision == 1)
        return launch_check<double>(f, cells, batch, check_finite, want_sums, sums, max_bits,
                                    bad, stream);
    return launch_check<float>(f, cells, batch, check_finite, want_sums, sums, max_bits, bad,
                               stream);
}

extern "C" cudaError_t advk_poisson_fwd_gather(int precision, int bc, const void *x, void *rbuf,
                                               int64_t outer, int64_t n, int64_t inner,
                                               cudaStream_t stream) {
    return precision == 1 ? fwd_gather<double>(bc, x, rbuf, outer, n, inner, stream)
                          : fwd_gather<float>(bc, x, rbuf, outer, n, inner, stream);
}

extern "C" cudaError_t advk_poisson_fwd_scatter(int precision, int bc, const void *cbuf, void *x,
                                                int64_t outer, int64_t n, int64_t inner,
                                                const double *tw, cudaStream_t stream) {
    return precision == 1 ? fwd_scatter<double>(bc, cbuf, x, outer, n, inner, tw, stream)
                          : fwd_scatter<float>(bc, cbuf, x, outer, n, inner, tw, stream);
}

extern "C" cudaError_t advk_poisson_inv_gather(int precision, int bc, const void *x, void *cbuf,
                                               int64_t outer, int64_t n, int64_t inner,
                                               const double *tw, cudaStream_t stream) {
    return precision == 1 ? inv_gather<double>(bc, x, cbuf, outer, n, inner, tw, stream)
                          : inv_gather<float>(bc, x, cbuf, outer, n, inner, tw, stream);
}

extern "C" cudaError_t advk_poisson_inv_scatter(int precision, int bc, const void *rbuf, void *x,
                                                int64_t outer, int64_t n, int64_t inner,
                                                cudaStream_t stream) {
    return precision == 1 ? inv_scatter<double>(bc, rbuf, x, outer, n, inner, stream)
                          : inv_scatter<float>(bc, rbuf, x, outer, n, inner, stream);
}

extern "C" cudaError_t advk_poisson_spectral(int precision, int bc, void *cbuf, int64_t rows,
                                            int64_t n, const double *tw, advk_poisson_grid grid,
                                            cudaStream_t stream) {
    const unsigned blocks = grid_for(rows * (n / 2 + 1));
    if (precision == 1)
        spectral_kernel<double><<<blocks, BLOCK, 0, stream>>>(bc, (double2 *)cbuf, rows, n, tw, grid);
    else
        spectral_kernel<float><<<blocks, BLOCK, 0, stream>>>(bc, (float2 *)cbuf, rows, n, tw, grid);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_poisson_scale(int precision, void *x, int64_t batch,
                                          advk_poisson_grid grid, cudaStream_t stream) {
    int64_t cells = 1;
    for (int a = 0; a < grid.ndim; ++a) cells *= grid.shape[a];
    const unsigned blocks = grid_for(cells * batch);
    if (precision == 1)
        scale_kernel<double><<<blocks, BLOCK, 0, stream>>>((double *)x, batch, grid);
    else
        scale_kernel<float><<<blocks, BLOCK, 0, stream>>>((float *)x, batch, grid);
    return cudaGetLastError();
}
