/* CUDA kernels of the samplers' elementwise operations. Mirrors host/cpu/sampler_cpu.c: one
 * thread per particle row calls the same kernels/common/sampler_math.h function, so a row's
 * result is the CPU's formula (and the SDE noise the CPU's draws, up to the last bit of the
 * device math library). Grid-stride loops; asynchronous on the given stream. */
#include "../../host/cuda/sampling_cuda.h"
#include "common/sampler_math.h"

#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 256;

unsigned int blocks_for(int64_t n) {
    int64_t b = (n + kThreads - 1) / kThreads;
    if (b < 1) b = 1;
    if (b > 65535) b = 65535; // grid-stride loops cover the rest
    return (unsigned int)b;
}

__global__ void lincomb_kernel(int prec, int64_t n, int64_t d, void *out, double cb,
                               const void *base, double h, const double *hvec,
                               advk_lincomb_terms terms) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        advs_lincomb_row(prec, d, i, out, cb, base, hvec ? hvec[i] : h, terms.nb, terms.c,
                         terms.bufs);
}

__global__ void lincomb_pp_kernel(int prec, int64_t n, int64_t d, void *out, const double *alpha,
                                  const void *base, const double *beta, const void *buf) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const void *bufs[1] = {buf};
        double c = beta[i];
        advs_lincomb_row(prec, d, i, out, alpha[i], base, 1.0, 1, &c, bufs);
    }
}

__global__ void noise_kernel(int prec, int64_t n, int64_t d, void *z, double scale, uint64_t seed,
                             uint32_t stage, uint32_t step, int64_t first) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        advs_noise_row(prec, d, i, z, scale, seed, stage, step, (uint64_t)(first + i));
}

__global__ void rms_kernel(int prec, int64_t n, int64_t d, const void *x, const void *y,
                           const void *y2, double atol, double rtol, double *out) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = advs_rms_row(prec, d, i, x, y, y2, atol, rtol);
}

__global__ void copy_rows_kernel(int prec, int64_t n, int64_t d, void *dst, const int64_t *dst_idx,
                                 const void *src, const int64_t *src_idx,
                                 const unsigned char *mask) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n;
         r += (int64_t)gridDim.x * blockDim.x) {
        if (mask && !mask[r]) continue;
        const int64_t to = dst_idx ? dst_idx[r] : r, from = src_idx ? src_idx[r] : r;
        for (int64_t k = 0; k < d; ++k) advf_st(dst, prec, to * d + k, advf_ld(src, prec, from * d + k));
    }
}

} // namespace

extern "C" cudaError_t advk_lincomb(int prec, int64_t n, int64_t d, void *out, double cb,
                                    const void *base, double h, const double *hvec,
                                    advk_lincomb_terms terms, cudaStream_t stream) {
    lincomb_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, n, d, out, cb, base, h, hvec, terms);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_lincomb_pp(int prec, int64_t n, int64_t d, void *out,
                                       const double *alpha, const void *base, const double *beta,
                                       const void *buf, cudaStream_t stream) {
    lincomb_pp_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, n, d, out, alpha, base, beta, buf);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_add_noise(int prec, int64_t n, int64_t d, void *z, double scale,
                                      uint64_t seed, uint32_t stage, uint32_t step, int64_t first,
                                      cudaStream_t stream) {
    noise_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, n, d, z, scale, seed, stage, step, first);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_rms_norm(int prec, int64_t n, int64_t d, const void *x, const void *y,
                                     const void *y2, double atol, double rtol, double *out,
                                     cudaStream_t stream) {
    rms_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, n, d, x, y, y2, atol, rtol, out);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_copy_rows(int prec, int64_t n, int64_t d, void *dst,
                                      const int64_t *dst_idx, const void *src,
                                      const int64_t *src_idx, const unsigned char *mask,
                                      cudaStream_t stream) {
    copy_rows_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, n, d, dst, dst_idx, src, src_idx,
                                                             mask);
    return cudaGetLastError();
}
