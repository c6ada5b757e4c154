/* Runs CUDA kernels on the CPU, for tests on machines without a GPU: one OS thread per CUDA
 * thread, a barrier for __syncthreads, function-static storage for __shared__ arrays (the
 * blocks of a launch run one after another, so they never share it). Kernels come from a copy
 * of a .cu file whose launches emulate_cu.py rewrote into advk_emu::launch; "device" memory is
 * host memory; emulate_cu.py also turns `extern __shared__ T name[];` into a pointer to the
 * launch's dynamic shared memory. atomicAdd and atomicOr are atomic read-modify-writes of
 * host memory; __syncthreads_or is three barriers around a block-wide flag.
 * Warp shuffles (__shfl_down_sync, __shfl_xor_sync, full mask) exchange through per-thread
 * slots between two barriers of the warp, so the 32 lanes of a warp must call them together,
 * as warp-uniform code does. Not emulated: timing, occupancy, and any hardware arithmetic
 * that differs from the host's (the float32 exp2 of interaction_math.h takes its host
 * branch, exp2f). */
#ifndef ADVECT_TESTS_CUDA_EMU_H
#define ADVECT_TESTS_CUDA_EMU_H

#include <cuda_runtime.h>

#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)

namespace advk_emu {
inline thread_local uint3 thread_id, block_id;
inline dim3 block_dim, grid_dim;
inline std::barrier<> *block_barrier;
inline void *dynamic_shared; // the running block's dynamic shared memory
inline std::vector<double> shuffle_slots; // one per thread of the running block
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers; // one per warp of a block

struct config {
    dim3 grid, block;
    size_t shared;
    config(dim3 g, dim3 b, size_t s = 0, cudaStream_t = nullptr) : grid(g), block(b), shared(s) {}
};

/* Runs kernel(args) over the grid: one OS thread per CUDA thread of a block, which run the
 * blocks one after another (a barrier between blocks, as they share the static storage). */
template <typename... P, typename... A>
void launch(const config &c, void (*kernel)(P...), A... args) {
    std::vector<double> shared_mem((c.shared + sizeof(double) - 1) / sizeof(double) + 1);
    dynamic_shared = shared_mem.data();
    grid_dim = c.grid;
    block_dim = c.block;
    const unsigned nt = c.block.x * c.block.y * c.block.z;
    shuffle_slots.assign(nt, 0.0);
    warp_barriers.clear();
    for (unsigned w = 0; w < (nt + 31) / 32; ++w)
        warp_barriers.push_back(std::make_unique<std::barrier<>>(
            (std::ptrdiff_t)(nt - 32 * w < 32 ? nt - 32 * w : 32)));
    std::barrier<> bar((std::ptrdiff_t)nt);
    block_barrier = &bar;
    std::vector<std::thread> threads;
    threads.reserve(nt);
    for (unsigned t = 0; t < nt; ++t)
        threads.emplace_back([=, &bar] {
            thread_id = make_uint3(t % c.block.x, t / c.block.x % c.block.y,
                                   t / (c.block.x * c.block.y));
            for (unsigned z = 0; z < c.grid.z; ++z)
                for (unsigned y = 0; y < c.grid.y; ++y)
                    for (unsigned x = 0; x < c.grid.x; ++x) {
                        block_id = make_uint3(x, y, z);
                        kernel(args...);
                        bar.arrive_and_wait(); // the block is done with the shared storage
                    }
        });
    for (auto &th : threads) th.join();
}
} // namespace advk_emu

#define threadIdx (::advk_emu::thread_id)
#define blockIdx (::advk_emu::block_id)
#define blockDim (::advk_emu::block_dim)
#define gridDim (::advk_emu::grid_dim)

/* Launches are synchronous here, and a launch cannot fail. (Defined here: each emulation test
 * program is one translation unit that includes this header.) */
extern "C" cudaError_t cudaGetLastError(void) { return cudaSuccess; }

inline void __syncthreads() { ::advk_emu::block_barrier->arrive_and_wait(); }
template <typename T> T atomicAdd(T *address, T value) {
    return std::atomic_ref<T>(*address).fetch_add(value);
}
template <typename T> T atomicOr(T *address, T value) {
    return std::atomic_ref<T>(*address).fetch_or(value);
}
namespace advk_emu {
inline std::atomic<int> block_or{0};
}
/* Barrier that returns nonzero to every thread when any thread's predicate is nonzero. */
inline int __syncthreads_or(int predicate) {
    __syncthreads(); // the previous call's readers are done
    if (predicate) ::advk_emu::block_or.store(1);
    __syncthreads();
    const int any = ::advk_emu::block_or.load();
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) ::advk_emu::block_or.store(0);
    return any;
}
namespace advk_emu {
/* The value of lane `source(lane)` of the calling thread's warp. */
template <typename T, typename F> T warp_exchange(T value, F source) {
    static_assert(sizeof(T) <= sizeof(double), "one slot per thread");
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned base = t / 32 * 32, lane = t % 32;
    std::barrier<> &bar = *warp_barriers[t / 32];
    std::memcpy(&shuffle_slots[t], &value, sizeof(T));
    bar.arrive_and_wait();
    T result = value;
    const unsigned src = source(lane);
    if (src < 32 && base + src < shuffle_slots.size())
        std::memcpy(&result, &shuffle_slots[base + src], sizeof(T));
    bar.arrive_and_wait();
    return result;
}
} // namespace advk_emu
template <typename T> T __shfl_down_sync(unsigned, T value, int offset) {
    return ::advk_emu::warp_exchange(value, [=](unsigned lane) { return lane + (unsigned)offset; });
}
template <typename T> T __shfl_xor_sync(unsigned, T value, int mask) {
    return ::advk_emu::warp_exchange(value, [=](unsigned lane) { return lane ^ (unsigned)mask; });
}

#endif
