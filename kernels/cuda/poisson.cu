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
                             int want_sums, double *sums, unsigned int *bad) {
    __shared__ double s_sum[BLOCK], s_abs[BLOCK];
    // The b loop is uniform over the block, so every thread reaches every barrier.
    for (int64_t b = blockIdx.y; b < batch; b += gridDim.y) {
        const T *fb = f + b * cells;
        double s = 0.0, sa = 0.0;
        int nonfinite = 0;
        for (int64_t i = global_id(); i < cells; i += global_stride()) {
            const T v = fb[i];
            if (check_finite) nonfinite |= !isfinite(v);
            s += (double)v;
            sa += fabs((double)v);
        }
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

template <typename T>
__global__ void fwd_gather_kernel(int bc, const T *x, T *rbuf, int64_t outer, int64_t n,
                                  int64_t inner) {
    const int64_t total = outer * inner * n;
    for (int64_t t = global_id(); t < total; t += global_stride()) {
        const int64_t row = t / n, m = t % n;
        const int64_t o = row / inner, i = row % inner;
        int64_t j = m;
        if (bc != ADVI_POISSON_PERIODIC) j = m < (n + 1) / 2 ? 2 * m : 2 * (n - 1 - m) + 1;
        T v = x[at(o, j, i, n, inner)];
        if (bc == ADVI_POISSON_DIRICHLET && (j & 1)) v = -v;
        rbuf[t] = v;
    }
}

template <typename T>
__global__ void fwd_scatter_kernel(int bc, const typename complex_of<T>::type *cbuf, T *x,
                                   int64_t outer, int64_t n, int64_t inner, const double *tw) {
    const int64_t total = outer * inner * n, h = n / 2 + 1;
    for (int64_t t = global_id(); t < total; t += global_stride()) {
        const int64_t row = t / n, k = t % n;
        const int64_t o = row / inner, i = row % inner;
        double re, im; // V_k from the stored half-spectrum
        if (k <= n / 2) {
            re = (double)cbuf[row * h + k].x;
            im = (double)cbuf[row * h + k].y;
        } else {
            re = (double)cbuf[row * h + (n - k)].x;
            im = -(double)cbuf[row * h + (n - k)].y;
        }
        // The pair map of kernels/common/poisson_math.h with Z_{n-k} = conj(Z_k) (a real
        // line): W_k is then the real coefficient X_k.
        double s = 0.0, c = 1.0, wr = re, wi = im, nr = re, ni = -im;
        if (bc != ADVI_POISSON_PERIODIC) c = tw[2 * k], s = tw[2 * k + 1];
        advi_poisson_pair_forward(bc, c, s, &wr, &wi, &nr, &ni);
        const int64_t kk = bc == ADVI_POISSON_DIRICHLET ? n - 1 - k : k;
        x[at(o, kk, i, n, inner)] = (T)wr;
    }
}

template <typename T>
__global__ void inv_gather_kernel(int bc, const T *x, typename complex_of<T>::type *cbuf,
                                  int64_t outer, int64_t n, int64_t inner, const double *tw) {
    const int64_t h = n / 2 + 1, total = outer * inner * h;
    for (int64_t t = global_id(); t < total; t += global_stride()) {
        const int64_t row = t / h, k = t % h;
        const int64_t o = row / inner, i = row % inner;
        // Z_k = X_k (Neumann) or X_{n-1-k} (Dirichlet); Z_n = 0.
        const int64_t ka = bc == ADVI_POISSON_DIRICHLET ? n - 1 - k : k;
        const double A = (double)x[at(o, ka, i, n, inner)];
        double B = 0.0;
        if (k > 0) {
            const int64_t kb = bc == ADVI_POISSON_DIRICHLET ? k - 1 : n - k;
            B = (double)x[at(o, kb, i, n, inner)];
        }
        const double c = tw[2 * k], s = tw[2 * k + 1];
        // e^{iπk/(2n)} (A - iB): the inverse pair map of kernels/common/poisson_math.h with
        // the real coefficients W_k = A, W_{n-k} = B.
        double zr = A, zi = 0.0, yr = B, yi = 0.0;
        advi_poisson_pair_inverse(ADVI_POISSON_NEUMANN, c, s, &zr, &zi, &yr, &yi);
        typename complex_of<T>::type v;
        v.x = (T)zr;
        v.y = (T)zi;
        cbuf[t] = v;
    }
}

template <typename T>
__global__ void inv_scatter_kernel(int bc, const T *rbuf, T *x, int64_t outer, int64_t n,
                                   int64_t inner) {
    const int64_t total = outer * inner * n;
    for (int64_t t = global_id(); t < total; t += global_stride()) {
        const int64_t row = t / n, j = t % n;
        const int64_t o = row / inner, i = row % inner;
        const int64_t m = (j & 1) ? n - 1 - (j - 1) / 2 : j / 2;
        T v = rbuf[row * n + m];
        if (bc == ADVI_POISSON_DIRICHLET && (j & 1)) v = -v;
        x[at(o, j, i, n, inner)] = v;
    }
}

template <typename T>
__global__ void scale_kernel(T *x, int64_t batch, advk_poisson_grid g) {
    int64_t cells = 1;
    for (int a = 0; a < g.ndim; ++a) cells *= g.shape[a];
    const int64_t total = cells * batch;
    for (int64_t t = global_id(); t < total; t += global_stride()) {
        int64_t q = t % cells;
        double lambda = g.shift;
        for (int a = g.ndim - 1; a >= 0; --a) {
            lambda += advi_poisson_axis_eigenvalue(g.bc[a], q % g.shape[a], g.shape[a],
                                                   g.spacing[a]);
            q /= g.shape[a];
        }
        x[t] = (T)((double)x[t] * advi_poisson_scale(lambda, g.inv_norm));
    }
}

template <typename T>
cudaError_t launch_check(const void *f, int64_t cells, int64_t batch, int check_finite,
                         int want_sums, double *sums, unsigned int *bad, cudaStream_t stream) {
    int64_t bx = (cells + BLOCK - 1) / BLOCK;
    if (bx > 1024) bx = 1024;
    dim3 grid((unsigned)bx, (unsigned)(batch < 65535 ? batch : 65535));
    check_kernel<T><<<grid, BLOCK, 0, stream>>>((const T *)f, cells, batch, check_finite,
                                                want_sums, sums, bad);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t advk_poisson_check(int precision, const void *f, int64_t cells,
                                          int64_t batch, int check_finite, int want_sums,
                                          double *sums, unsigned int *bad, cudaStream_t stream) {
    if (precision == 1)
        return launch_check<double>(f, cells, batch, check_finite, want_sums, sums, bad, stream);
    return launch_check<float>(f, cells, batch, check_finite, want_sums, sums, bad, stream);
}

extern "C" cudaError_t advk_poisson_fwd_gather(int precision, int bc, const void *x, void *rbuf,
                                               int64_t outer, int64_t n, int64_t inner,
                                               cudaStream_t stream) {
    const unsigned grid = grid_for(outer * inner * n);
    if (precision == 1)
        fwd_gather_kernel<double><<<grid, BLOCK, 0, stream>>>(
            bc, (const double *)x, (double *)rbuf, outer, n, inner);
    else
        fwd_gather_kernel<float><<<grid, BLOCK, 0, stream>>>(
            bc, (const float *)x, (float *)rbuf, outer, n, inner);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_poisson_fwd_scatter(int precision, int bc, const void *cbuf, void *x,
                                                int64_t outer, int64_t n, int64_t inner,
                                                const double *tw, cudaStream_t stream) {
    const unsigned grid = grid_for(outer * inner * n);
    if (precision == 1)
        fwd_scatter_kernel<double><<<grid, BLOCK, 0, stream>>>(
            bc, (const double2 *)cbuf, (double *)x, outer, n, inner, tw);
    else
        fwd_scatter_kernel<float><<<grid, BLOCK, 0, stream>>>(
            bc, (const float2 *)cbuf, (float *)x, outer, n, inner, tw);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_poisson_inv_gather(int precision, int bc, const void *x, void *cbuf,
                                               int64_t outer, int64_t n, int64_t inner,
                                               const double *tw, cudaStream_t stream) {
    const unsigned grid = grid_for(outer * inner * (n / 2 + 1));
    if (precision == 1)
        inv_gather_kernel<double><<<grid, BLOCK, 0, stream>>>(
            bc, (const double *)x, (double2 *)cbuf, outer, n, inner, tw);
    else
        inv_gather_kernel<float><<<grid, BLOCK, 0, stream>>>(
            bc, (const float *)x, (float2 *)cbuf, outer, n, inner, tw);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_poisson_inv_scatter(int precision, int bc, const void *rbuf, void *x,
                                                int64_t outer, int64_t n, int64_t inner,
                                                cudaStream_t stream) {
    const unsigned grid = grid_for(outer * inner * n);
    if (precision == 1)
        inv_scatter_kernel<double><<<grid, BLOCK, 0, stream>>>(
            bc, (const double *)rbuf, (double *)x, outer, n, inner);
    else
        inv_scatter_kernel<float><<<grid, BLOCK, 0, stream>>>(
            bc, (const float *)rbuf, (float *)x, outer, n, inner);
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
