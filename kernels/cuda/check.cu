/* CUDA finiteness check: the GPU twin of advi_cpu_all_finite (host/cpu/random_cpu.c). A
 * grid-stride scan; each block combines its threads' verdicts with __syncthreads_or and one
 * thread ORs the result into a flag in device memory (atomicOr), which the host reads back. */
#include "../../host/cuda/cuda_internal.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

namespace {

template <typename T>
__global__ void all_finite_kernel(const T *data, size_t count, int allow_neg_inf,
                                  unsigned int *flag) {
    int bad = 0;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        const T v = data[i];
        bad |= !(isfinite(v) || (allow_neg_inf && v == -(T)INFINITY));
    }
    // Every thread reaches this barrier: the loop above has no early exit.
    if (__syncthreads_or(bad) && threadIdx.x == 0) atomicOr(flag, 1u);
}

template <typename T>
cudaError_t launch_check(const void *data, size_t count, int allow_neg_inf, unsigned int *flag,
                         cudaStream_t stream) {
    size_t blocks = (count + 255) / 256;
    if (blocks > 4096) blocks = 4096; // enough to fill any current GPU; grid-stride beyond
    if (blocks < 1) blocks = 1;
    all_finite_kernel<T><<<(unsigned)blocks, 256, 0, stream>>>((const T *)data, count, allow_neg_inf, flag);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t advk_all_finite(int precision, const void *data, size_t count,
                                       int allow_neg_inf, unsigned int *flag,
                                       cudaStream_t stream) {
    if (count == 0) return cudaSuccess;
    if (precision == 1) return launch_check<double>(data, count, allow_neg_inf, flag, stream);
    return launch_check<float>(data, count, allow_neg_inf, flag, stream);
}

extern "C" cudaError_t advk_kernel_image_check(void) {
    // Fails with cudaErrorNoKernelImageForDevice (or InvalidDeviceFunction) when the fat
    // binary has no code the current device can run.
    cudaFuncAttributes attr;
    return cudaFuncGetAttributes(&attr, all_finite_kernel<float>);
}
