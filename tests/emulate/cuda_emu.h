/* Runs CUDA kernels on the CPU, for tests on machines without a GPU: one OS thread per CUDA
 * thread, a barrier for __syncthreads, function-static storage for __shared__ arrays (the
 * blocks of a launch run one after another, so they never share it). Kernels come from a copy
 * of a .cu file whose launches emulate_cu.py rewrote into advk_emu::launch; "device" memory is
 * host memory. Not emulated: warp shuffles and atomics (they abort), dynamic shared memory,
 * timing, occupancy, and any hardware arithmetic that differs from the host's (the float32
 * exp2 of interaction_math.h takes its host branch, exp2f). */
#ifndef ADVECT_TESTS_CUDA_EMU_H
#define ADVECT_TESTS_CUDA_EMU_H

#include <cuda_runtime.h>

#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)

namespace advk_emu {
inline thread_local uint3 thread_id, block_id;
inline dim3 block_dim, grid_dim;
inline std::barrier<> *block_barrier;

struct config {
    dim3 grid, block;
    size_t shared;
    config(dim3 g, dim3 b, size_t s = 0, cudaStream_t = nullptr) : grid(g), block(b), shared(s) {}
};

/* Runs kernel(args) over the grid: every block with one thread per CUDA thread. */
template <typename... P, typename... A>
void launch(const config &c, void (*kernel)(P...), A... args) {
    if (c.shared != 0) {
        std::fprintf(stderr, "cuda_emu: dynamic shared memory is not emulated\n");
        std::abort();
    }
    grid_dim = c.grid;
    block_dim = c.block;
    const unsigned nt = c.block.x * c.block.y * c.block.z;
    for (unsigned z = 0; z < c.grid.z; ++z)
        for (unsigned y = 0; y < c.grid.y; ++y)
            for (unsigned x = 0; x < c.grid.x; ++x) {
                std::barrier<> bar((std::ptrdiff_t)nt);
                block_barrier = &bar;
                std::vector<std::thread> threads;
                threads.reserve(nt);
                for (unsigned t = 0; t < nt; ++t)
                    threads.emplace_back([=] {
                        thread_id = make_uint3(t % c.block.x, t / c.block.x % c.block.y,
                                               t / (c.block.x * c.block.y));
                        block_id = make_uint3(x, y, z);
                        kernel(args...);
                    });
                for (auto &th : threads) th.join();
            }
}
} // namespace advk_emu

#define threadIdx (::advk_emu::thread_id)
#define blockIdx (::advk_emu::block_id)
#define blockDim (::advk_emu::block_dim)
#define gridDim (::advk_emu::grid_dim)

inline void __syncthreads() { ::advk_emu::block_barrier->arrive_and_wait(); }
template <typename T> T __shfl_xor_sync(unsigned, T, int) {
    std::fprintf(stderr, "cuda_emu: warp shuffles are not emulated\n");
    std::abort();
}

#endif
