/* CUDA kernels of the fields. Mirrors host/cpu/field_cpu.c: one thread per particle calls the
 * same kernels/common/field_math.h function (direct empirical posterior, Gaussian / Bures /
 * mixture fields, exact samples), with per-thread scratch rows of `tmp` in global memory
 * (d doubles per particle for the empirical loop, 3d for sampling, 6d for the Gaussian family). Grid-stride loops; asynchronous on the given stream. */
#include "../../host/cuda/sampling_cuda.h"
#include "common/field_math.h"

#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 128;

unsigned int blocks_for(int64_t n) {
    int64_t b = (n + kThreads - 1) / kThreads;
    if (b < 1) b = 1;
    if (b > 65535) b = 65535;
    return (unsigned int)b;
}

__global__ void scale_kernel(int prec, size_t count, void *out, double a, const void *in) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < count;
         k += (size_t)gridDim.x * blockDim.x)
        advf_st(out, prec, (int64_t)k, a * advf_ld(in, prec, (int64_t)k));
}

__global__ void empirical_kernel(int prec, int64_t n, int64_t d, const void *z, int64_t nd,
                                 const void *y, const void *logw, double a, double q,
                                 const double *avec, const double *qvec, void *den, double *tmp) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        if (!qvec || qvec[i] > q) // per-particle: the rows above q only
            advf_empirical_point(prec, d, z, i, nd, y, logw, avec ? avec[i] : a,
                                 qvec ? qvec[i] : q, tmp + i * d, den);
}

__global__ void time_coefs_kernel(int64_t n, const double *times, int kind, double p0,
                                  double p1, double sigma, double lambda_direct, double *out) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        double ab[4], c[7];
        advf_schedule(kind, p0, p1, times[i], ab); // read before out[i] (times may be column 0)
        advf_time_coefs(ab, sigma, lambda_direct, c);
        for (int k = 0; k < 7; ++k) out[k * n + i] = c[k];
    }
}

__global__ void gauss_kernel(int prec, int kind, const double *par, int64_t d, int64_t k0,
                             int64_t k1, int any_regular, int64_t n, const void *z, double t,
                             const double *tvec, void *vel, void *score, void *den, double *tmp) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        double ti = tvec ? tvec[i] : t;
        double *w = tmp + i * 6 * d;
        if (kind == 1)
            advf_gauss_fm_point(par, d, ti, prec, z, i, vel, score, den, w);
        else if (kind == 2)
            advf_gauss_ot_point(par, d, ti, prec, z, i, vel, score, den, w);
        else
            advf_gmm_point(par, d, k0, k1, any_regular, ti, prec, z, i, vel, score, den, w);
    }
}

__global__ void sample_kernel(int prec, int kind, const double *par, int64_t d, int64_t k0,
                              int64_t k1, int64_t n, double t, uint64_t seed, int64_t first,
                              const void *y, const double *cdf, int64_t nd, double a, double bs,
                              void *z, double *tmp) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        double *w = tmp + i * 3 * d;
        uint64_t part = (uint64_t)(first + i);
        advf_normals(seed, ADVF_STREAM_SOURCE, 0, part, d, w);
        if (kind == 0) {
            int64_t j = advf_pick(cdf, nd, advf_uniform(seed, ADVF_STREAM_SOURCE, 1, part));
            for (int64_t k = 0; k < d; ++k)
                advf_st(z, prec, i * d + k, a * advf_ld(y, prec, j * d + k) + bs * w[k]);
        } else if (kind == 1) {
            advf_gauss_fm_sample(par, d, t, w, prec, z, i);
        } else if (kind == 2) {
            advf_gauss_ot_sample(par, d, t, w, w + d, prec, z, i);
        } else {
            double u = advf_uniform(seed, ADVF_STREAM_SOURCE, 1, part);
            advf_gmm_sample(par, d, k0, k1, t, u, w, prec, z, i);
        }
    }
}

} // namespace

extern "C" cudaError_t advk_field_scale(int prec, size_t count, void *out, double a, const void *in,
                                        cudaStream_t stream) {
    scale_kernel<<<blocks_for((int64_t)count), kThreads, 0, stream>>>(prec, count, out, a, in);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_empirical_direct(int prec, int64_t n, int64_t d, const void *z,
                                             int64_t nd, const void *y, const void *logw, double a,
                                             double q, const double *avec, const double *qvec,
                                             void *den, double *tmp, cudaStream_t stream) {
    empirical_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, n, d, z, nd, y, logw, a, q, avec,
                                                             qvec, den, tmp);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_time_coefs(int64_t n, const double *times, int kind, double p0,
                                       double p1, double sigma, double lambda_direct, double *out,
                                       cudaStream_t stream) {
    time_coefs_kernel<<<blocks_for(n), kThreads, 0, stream>>>(n, times, kind, p0, p1, sigma,
                                                              lambda_direct, out);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_gauss_field(int prec, int kind, const double *par, int64_t d,
                                        int64_t k0, int64_t k1, int any_regular, int64_t n,
                                        const void *z, double t, const double *tvec, void *vel,
                                        void *score, void *den, double *tmp, cudaStream_t stream) {
    gauss_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, kind, par, d, k0, k1, any_regular, n,
                                                         z, t, tvec, vel, score, den, tmp);
    return cudaGetLastError();
}

extern "C" cudaError_t advk_field_sample(int prec, int kind, const double *par, int64_t d,
                                         int64_t k0, int64_t k1, int64_t n, double t,
                                         uint64_t seed, int64_t first, const void *y,
                                         const double *cdf, int64_t nd, double a, double bs,
                                         void *z, double *tmp, cudaStream_t stream) {
    sample_kernel<<<blocks_for(n), kThreads, 0, stream>>>(prec, kind, par, d, k0, k1, n, t, seed,
                                                          first, y, cdf, nd, a, bs, z, tmp);
    return cudaGetLastError();
}
