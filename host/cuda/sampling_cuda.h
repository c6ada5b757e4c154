/* C-linkage launchers of the sampling module's CUDA kernels (kernels/cuda/field.cu and
 * kernels/cuda/sampler.cu), shared by those files and the host code (host/cuda/field_cuda.c,
 * host/cuda/sampler_cuda.c). Every launcher is asynchronous on `stream` and returns
 * cudaGetLastError() after its launch. All pointers are device pointers; `prec` is 0 for
 * float32 and 1 for float64. Each kernel runs one thread per particle row and calls the
 * per-row function of kernels/common/ that the CPU backend calls. */
#ifndef ADVECT_HOST_CUDA_SAMPLING_CUDA_H
#define ADVECT_HOST_CUDA_SAMPLING_CUDA_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ADVK_LINCOMB_MAX 8

/* Terms of a linear combination, passed by value to the kernel. */
typedef struct advk_lincomb_terms {
    int nb;
    double c[ADVK_LINCOMB_MAX];
    const void *bufs[ADVK_LINCOMB_MAX];
} advk_lincomb_terms;

/* ---- kernels/cuda/sampler.cu ---- */
cudaError_t advk_lincomb(int prec, int64_t n, int64_t d, void *out, double cb, const void *base,
                         double h, const double *hvec, advk_lincomb_terms terms,
                         cudaStream_t stream);
cudaError_t advk_lincomb_pp(int prec, int64_t n, int64_t d, void *out, const double *alpha,
                            const void *base, const double *beta, const void *buf,
                            cudaStream_t stream);
cudaError_t advk_add_noise(int prec, int64_t n, int64_t d, void *z, double scale, uint64_t seed,
                           uint32_t stage, uint32_t step, int64_t first, cudaStream_t stream);
cudaError_t advk_rms_norm(int prec, int64_t n, int64_t d, const void *x, const void *y,
                          const void *y2, double atol, double rtol, double *out,
                          cudaStream_t stream);
cudaError_t advk_copy_rows(int prec, int64_t n, int64_t d, void *dst, const int64_t *dst_idx,
                           const void *src, const int64_t *src_idx, const unsigned char *mask,
                           cudaStream_t stream);

/* ---- kernels/cuda/field.cu ---- */
cudaError_t advk_field_scale(int prec, size_t count, void *out, double a, const void *in,
                             cudaStream_t stream);
/* Per-particle-time coefficients (advf_time_coefs at advf_schedule(kind, p0, p1, times[i])):
 * column k of out (7 x n doubles); times may be out's column 0. */
cudaError_t advk_time_coefs(int64_t n, const double *times, int kind, double p0, double p1,
                            double sigma, double lambda_direct, double *out, cudaStream_t stream);
/* Direct per-particle empirical posterior: every row at (a, q), or with avec/qvec the rows
 * whose qvec[i] is above q. */
cudaError_t advk_empirical_direct(int prec, int64_t n, int64_t d, const void *z, int64_t nd,
                                  const void *y, const void *logw, double a, double q,
                                  const double *avec, const double *qvec, void *den,
                                  double *tmp, cudaStream_t stream);
/* kind: 1 Gaussian (independent), 2 Gaussian OT, 3 mixture (adv_field_kind values). */
cudaError_t advk_gauss_field(int prec, int kind, const double *par, int64_t d, int64_t k0,
                             int64_t k1, int any_regular, int64_t n, const void *z, double t,
                             const double *tvec, void *vel, void *score, void *den, double *tmp,
                             cudaStream_t stream);
/* kind: 0 empirical, 1..3 as above. */
cudaError_t advk_field_sample(int prec, int kind, const double *par, int64_t d, int64_t k0,
                              int64_t k1, int64_t n, double t, uint64_t seed, int64_t first,
                              const void *y, const double *cdf, int64_t nd, double a, double bs,
                              void *z, double *tmp, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
