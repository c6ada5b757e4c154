/* C-linkage launchers of the Poisson kernels (kernels/cuda/poisson.cu), shared by that file
 * and host/cuda/poisson_cuda.c. Every launcher takes the stream and returns
 * cudaGetLastError() after its launch. Arrays are device pointers of the given precision
 * (0 float32, 1 float64); complex buffers are interleaved (re, im) pairs, the layout of
 * cufftComplex / cufftDoubleComplex.
 *
 * One-axis transforms view the data as outer × n × inner (row-major; the axis in the middle)
 * and work on rows = outer · inner lines of n elements, which the gather kernels copy into
 * contiguous rows for a batched 1-D cuFFT (so the same kernels also transpose):
 *   forward (DHT periodic, DCT-II Neumann, DST-II Dirichlet; FFTW's REDFT10/RODFT10 scaling):
 *     advk_poisson_fwd_gather   x    -> rbuf (rows × n real, Makhoul reordering)
 *     cuFFT R2C                 rbuf -> cbuf (rows × (n/2+1) complex)
 *     advk_poisson_fwd_scatter  cbuf -> x    (twiddle, take the real part)
 *   backward for Neumann/Dirichlet (DCT-III / DST-III, FFTW's REDFT01/RODFT01 scaling):
 *     advk_poisson_inv_gather   x    -> cbuf (twiddle into a Hermitian half-spectrum)
 *     cuFFT C2R                 cbuf -> rbuf
 *     advk_poisson_inv_scatter  rbuf -> x    (undo the reordering)
 *   backward for periodic: the forward DHT again (the DHT is its own inverse up to n). */
#ifndef ADVECT_HOST_CUDA_POISSON_KERNELS_H
#define ADVECT_HOST_CUDA_POISSON_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Input checks over batch right-hand sides of `cells` elements: when want_sums, adds Σf to
 * sums[2b] and Σ|f| to sums[2b+1] (double, zeroed by the caller); when check_finite, ORs 1
 * into *bad if any element is NaN or infinite and raises *max_bits to the bits of the
 * largest |finite element| as a double (both zeroed by the caller). */
cudaError_t advk_poisson_check(int precision, const void *f, int64_t cells, int64_t batch,
                               int check_finite, int want_sums, double *sums,
                               unsigned long long *max_bits, unsigned int *bad,
                               cudaStream_t stream);

cudaError_t advk_poisson_fwd_gather(int precision, int bc, const void *x, void *rbuf,
                                    int64_t outer, int64_t n, int64_t inner, cudaStream_t stream);
/* tw: the axis' twiddles (cos, sin) of πk/(2n), k = 0..n-1 (advi_poisson_twiddle), in device
 * memory; unused (may be NULL) for a periodic axis. */
cudaError_t advk_poisson_fwd_scatter(int precision, int bc, const void *cbuf, void *x,
                                     int64_t outer, int64_t n, int64_t inner, const double *tw,
                                     cudaStream_t stream);
cudaError_t advk_poisson_inv_gather(int precision, int bc, const void *x, void *cbuf,
                                    int64_t outer, int64_t n, int64_t inner, const double *tw,
                                    cudaStream_t stream);
cudaError_t advk_poisson_inv_scatter(int precision, int bc, const void *rbuf, void *x,
                                     int64_t outer, int64_t n, int64_t inner, cudaStream_t stream);

/* The grid of one right-hand side, for the diagonal scaling. */
typedef struct advk_poisson_grid {
    int ndim;
    int64_t shape[4];
    double spacing[4];
    int bc[4];
    double shift;
    double inv_norm; /* 1 / Π of the transform-pair norms of the axes actually transformed */
} advk_poisson_grid;

/* x[b][k] *= advi_poisson_scale(λ_k, inv_norm) for every right-hand side b and mode k
 * (kernels/common/poisson_math.h). */
cudaError_t advk_poisson_scale(int precision, void *x, int64_t batch, advk_poisson_grid grid,
                               cudaStream_t stream);
/* The last transformed axis when it is Neumann or Dirichlet (contiguous lines: inner = 1):
 * between its R2C and its C2R, the forward twiddles, the scaling of every mode and the
 * backward twiddles in place on cbuf (rows x (n/2 + 1) complex), i.e. advk_poisson_fwd_scatter,
 * advk_poisson_scale and advk_poisson_inv_gather without the round trips through x. */
cudaError_t advk_poisson_spectral(int precision, int bc, void *cbuf, int64_t rows, int64_t n,
                                  const double *tw, advk_poisson_grid grid, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
