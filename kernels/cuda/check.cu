/* CUDA finiteness check: the GPU twin of advi_cpu_all_finite (host/cpu/random_cpu.c). A
 * grid-stride scan; each block combines its threads' verdicts with __syncthreads_or and one
 * thread ORs the result into a flag in device memory (atomicOr), which the host reads back.
 * It also finds the largest |value| over the finite values (range checks): per warp by
 * shuffles, then one atomicMax per warp on the value's bits (for doubles >= 0 their order as
 * unsigned 64-bit integers is their order as numbers). */
#include "../../host/cuda/cuda_internal.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

namespace {

template <typename T>
__global__ void all_finite_kernel(const T *data, size_t count, int allow_neg_inf,
                                  advk_scan_result *result) {
    int bad = 0;
    double vmax = 0.0;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        const T v = data[i];
        const int finite = isfinite(v);
        bad |= !(finite || (allow_neg_inf && v == -(T)INFINITY));
        if (finite) vmax = fmax(vmax, fabs((double)v));
    }
    for (int lane_mask = 16; lane_mask > 0; lane_mask >>= 1)
        vmax = fmax(vmax, __shfl_xor_sync(0xffffffffu, vmax, lane_mask));
    if ((threadIdx.x & 31) == 0 && vmax > 0.0)
        atomicMax(&result->max_abs_bits, (unsigned long long)__double_as_longlong(vmax));
    // Every thread reaches this barrier: the loop above has no early exit.
    if (__syncthreads_or(bad) && threadIdx.x == 0) atomicOr(&result->bad, 1u);
}

template <typename T>
cudaError_t launch_check(const void *data, size_t count, int allow_neg_inf,
                         advk_scan_result *result, cudaStream_t stream) {
    size_t blocks = (count + 255) / 256;
    if (blocks > 4096) blocks = 4096; // enough to fill any current GPU; grid-stride beyond
    if (blocks < 1) blocks = 1;
    all_finite_kernel<T><<<(unsigned)blocks, 256, 0, stream>>>((const T *)data, count, allow_neg_inf, result);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t advk_all_finite(int precision, const void *data, size_t count,
                                       int allow_neg_inf, advk_scan_result *result,
                                       cudaStream_t stream) {
    if (count == 0) return cudaSuccess;
    if (precision == 1) return launch_check<double>(data, count, allow_neg_inf, result, stream);
    return launch_check<float>(data, count, allow_neg_inf, result, stream);
}

extern "C" cudaError_t advk_kernel_image_check(void) {
    // Fails with cudaErrorNoKernelImageForDevice (or InvalidDeviceFunction) when the fat
    // binary has no code the current device can run.
    cudaFuncAttributes attr;
    return cudaFuncGetAttributes(&attr, all_finite_kernel<float>);
}
