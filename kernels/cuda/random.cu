/* CUDA random fill: the GPU twin of advi_cpu_random_fill (host/cpu/random_cpu.c). Each thread
 * evaluates whole Philox blocks with the draw functions of kernels/common/rng.h (those that
 * adv_rng_draw_f32/f64 wrap) and stores the lanes that fall inside [first, first + n), so
 * every value is bitwise the one the CPU draws for the same key and index, while each block
 * is computed once rather than once per lane. Grid-stride loop; asynchronous on the stream. */
#include "../../host/cuda/cuda_internal.h"
#include "common/rng.h"

#include <cuda_runtime.h>
#include <stdint.h>

namespace {

template <typename T> struct Draw;
/* float32: lane (i mod 4) of block (i div 4), as adv_rng_draw_f32. */
template <> struct Draw<float> {
    static constexpr int lanes = 4;
    __device__ static void block(int normal, uint64_t seed, uint32_t stream, uint64_t blk,
                                 uint32_t counter, float v[4]) {
        if (normal)
            adv_rng_normal4_f32(seed, stream, blk, counter, v);
        else
            adv_rng_uniform4_f32(seed, stream, blk, counter, v);
    }
};
/* float64: lane (i mod 2) of block (i div 2), as adv_rng_draw_f64. */
template <> struct Draw<double> {
    static constexpr int lanes = 2;
    __device__ static void block(int normal, uint64_t seed, uint32_t stream, uint64_t blk,
                                 uint32_t counter, double v[2]) {
        if (normal)
            adv_rng_normal2_f64(seed, stream, blk, counter, v);
        else
            adv_rng_uniform2_f64(seed, stream, blk, counter, v);
    }
};

template <typename T>
__global__ void fill_kernel(T *out, int normal, uint64_t seed, uint32_t stream_id, uint64_t first,
                            uint32_t counter, int64_t n) {
    constexpr int L = Draw<T>::lanes;
    const uint64_t last = first + (uint64_t)(n - 1); // no overflow: checked by adv_random_fill
    const uint64_t blk0 = first / L, nblk = last / L - blk0 + 1;
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < nblk; t += stride) {
        const uint64_t blk = blk0 + t;
        T v[L];
        Draw<T>::block(normal, seed, stream_id, blk, counter, v);
#pragma unroll
        for (int l = 0; l < L; ++l) {
            const uint64_t index = blk * L + (uint64_t)l;
            if (index >= first && index <= last) out[index - first] = v[l];
        }
    }
}

template <typename T>
cudaError_t launch_fill(int normal, uint64_t seed, uint32_t stream_id, uint64_t first,
                        uint32_t counter, int64_t n, void *out, cudaStream_t stream) {
    const int L = Draw<T>::lanes;
    const uint64_t nblk = (first + (uint64_t)(n - 1)) / L - first / L + 1;
    uint64_t blocks = (nblk + 255) / 256;
    if (blocks > 65536) blocks = 65536; // grid-stride beyond that
    fill_kernel<T><<<(unsigned)blocks, 256, 0, stream>>>((T *)out, normal, seed, stream_id, first, counter, n);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t advk_random_fill(int precision, int normal, uint64_t seed,
                                        uint32_t stream_id, uint64_t first_index,
                                        uint32_t counter, int64_t n, void *out,
                                        cudaStream_t stream) {
    if (n < 1) return cudaSuccess;
    if (precision == 1)
        return launch_fill<double>(normal, seed, stream_id, first_index, counter, n, out, stream);
    return launch_fill<float>(normal, seed, stream_id, first_index, counter, n, out, stream);
}
