/* Runs CUDA kernels on the CPU, for tests on machines without a GPU. The CUDA threads of a
 * block are fibers (ucontext) on the calling OS thread, run round-robin by a scheduler: a
 * fiber runs until it waits at a barrier or ends. __syncthreads is a barrier of the block's
 * fibers, function-static storage stands for __shared__ arrays (the blocks of a launch run one
 * after another, so they never share it). Kernels come from a copy of a .cu file whose
 * launches emulate_cu.py rewrote into advk_emu::launch; "device" memory is host memory;
 * emulate_cu.py also turns `extern __shared__ T name[];` into a pointer to the launch's
 * dynamic shared memory. __syncthreads_or is three barriers around a block-wide flag; atomics
 * are plain read-modify-writes (one OS thread).
 * Warp shuffles (__shfl_down_sync, __shfl_xor_sync, full mask) exchange through per-thread
 * slots between two barriers of the warp, so the 32 lanes of a warp must call them together,
 * as warp-uniform code does. A round in which no fiber moves is a deadlock (threads of a block
 * waiting at different barriers, which a GPU would hang on or get wrong): it aborts with a
 * message. Not emulated: timing, occupancy, and any hardware arithmetic that differs from the
 * host's (the float32 exp2 of interaction_math.h takes its host branch, exp2f).
 * Under AddressSanitizer the stack switches are announced to it (its fiber interface). */
#ifndef ADVECT_TESTS_CUDA_EMU_H
#define ADVECT_TESTS_CUDA_EMU_H

#include <cuda_runtime.h>

#include <setjmp.h>
#include <ucontext.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define ADVK_EMU_ASAN 1
#else
#define ADVK_EMU_ASAN 0
#endif

#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)

/* Records a failed launch for the next cudaGetLastError (defined below for the single-file
 * emulation tests, in cuda_runtime_shim.cpp for the emulated backend). */
extern "C" void advk_emu_launch_failed(cudaError_t e);
/* Whether this launch is the one a test asked to fail (the emulated backend's
 * advk_emu_fail_launch; never in the single-file emulation tests). */
extern "C" int advk_emu_launch_injected_failure(void);

namespace advk_emu {
inline uint3 thread_id, block_id; // of the running fiber (set by the scheduler)
inline dim3 block_dim, grid_dim;
inline void *dynamic_shared;              // the running block's dynamic shared memory
inline std::vector<double> shuffle_slots; // one per thread of the running block

/* A barrier of `expected` fibers: the last arrival opens it (a new generation). */
struct barrier {
    unsigned expected = 0, arrived = 0, generation = 0;
};
inline barrier block_barrier;
inline std::vector<barrier> warp_barriers; // one per warp of the block

constexpr size_t kStack = 256 * 1024; // bytes per fiber
struct fiber {
    ucontext_t ctx; // where it starts (makecontext)
    jmp_buf at;     // where it waits
    bool started, done;
    void *asan_fake = nullptr;
};
inline std::vector<fiber> fibers;
inline std::unique_ptr<char[]> stacks; // kStack bytes per fiber, committed as touched
inline size_t stacks_for = 0;
inline jmp_buf scheduler;
inline unsigned current;            // the running fiber
inline unsigned long long progress; // barrier arrivals and fiber ends, for deadlock detection
inline const std::function<void()> *body;
inline const void *scheduler_stack_bottom = nullptr;
inline size_t scheduler_stack_size = 0;
inline bool waited;         // some thread of the block waited at a barrier
inline bool direct = false; // threads run as plain calls (see launch)

/* Back to the scheduler from the running fiber (dying: it will not be resumed). The switches
 * are _setjmp/_longjmp (no signal-mask system call, unlike swapcontext); makecontext and
 * setcontext only start a fiber. */
inline void to_scheduler(bool dying) {
    fiber &f = fibers[current];
#if ADVK_EMU_ASAN
    __sanitizer_start_switch_fiber(dying ? nullptr : &f.asan_fake, scheduler_stack_bottom,
                                   scheduler_stack_size);
#endif
    if (dying || _setjmp(f.at) == 0) _longjmp(scheduler, 1);
#if ADVK_EMU_ASAN
    __sanitizer_finish_switch_fiber(fibers[current].asan_fake, nullptr, nullptr);
#endif
}

inline void wait(barrier &b) {
    if (direct) {
        std::fprintf(stderr, "cuda_emu: a barrier in a block whose thread 0 passed none (threads "
                             "of the block do not all reach the same barriers)\n");
        std::abort();
    }
    waited = true;
    const unsigned gen = b.generation;
    ++progress;
    if (++b.arrived == b.expected) {
        b.arrived = 0;
        ++b.generation;
        return;
    }
    while (b.generation == gen) to_scheduler(false);
}

inline void fiber_entry() {
#if ADVK_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &scheduler_stack_bottom, &scheduler_stack_size);
#endif
    (*body)();
    fibers[current].done = true;
    ++progress;
    to_scheduler(true); // does not return
}

struct config {
    dim3 grid, block;
    size_t shared;
    config(dim3 g, dim3 b, size_t s = 0, cudaStream_t = nullptr) : grid(g), block(b), shared(s) {}
};

/* A fresh fiber t at the entry point. */
inline void make_fiber(unsigned t) {
    static ucontext_t blank; // a context to copy and make fibers of (one getcontext call)
    static bool have_blank = false;
    if (!have_blank) have_blank = getcontext(&blank) == 0;
    fiber &f = fibers[t];
    f.started = f.done = false;
    f.ctx = blank;
    f.ctx.uc_stack.ss_sp = stacks.get() + t * kStack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = nullptr; // fiber_entry never returns
    makecontext(&f.ctx, fiber_entry, 0);
}

inline void set_thread(unsigned t) {
    thread_id = make_uint3(t % block_dim.x, t / block_dim.x % block_dim.y,
                           t / (block_dim.x * block_dim.y));
}

/* Runs fiber t until it waits at a barrier or ends. */
inline void resume(unsigned t) {
    current = t;
    set_thread(t);
    void *fake = nullptr;
#if ADVK_EMU_ASAN
    __sanitizer_start_switch_fiber(&fake, stacks.get() + t * kStack, kStack);
#endif
    if (_setjmp(scheduler) == 0) {
        fiber &f = fibers[t];
        if (f.started) _longjmp(f.at, 1);
        f.started = true;
        setcontext(&f.ctx);
    }
#if ADVK_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    (void)fake;
}

/* Runs kernel(args) over the grid, one block after another, each block's threads as fibers.
 * Thread 0 runs first; when it ends without waiting at a barrier, the block has none (CUDA
 * requires every thread of a block to reach each __syncthreads), and the other threads run as
 * plain calls, without fibers (most elementwise kernels). */
/* A configuration a GPU of compute capability 8.0-9.0 refuses (cudaErrorInvalidConfiguration
 * from cudaGetLastError there): an empty grid or block, gridDim.y or z above 65535, gridDim.x
 * above 2^31 - 1, more than 1024 threads per block (z at most 64), or more than the 48 KiB of
 * dynamic shared memory a kernel gets without opting in (the backend never opts in). */
inline bool invalid_configuration(const config &c) {
    const unsigned long long threads = 1ull * c.block.x * c.block.y * c.block.z;
    return c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 2147483647u ||
           c.grid.y > 65535u || c.grid.z > 65535u || threads == 0 || threads > 1024 ||
           c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64 || c.shared > 48 * 1024;
}

template <typename... P, typename... A>
void launch(const config &c, void (*kernel)(P...), A... args) {
    if (invalid_configuration(c)) { // nothing runs, and the next cudaGetLastError reports it
        advk_emu_launch_failed(cudaErrorInvalidConfiguration);
        return;
    }
    if (advk_emu_launch_injected_failure()) { // as a launch the device refuses
        advk_emu_launch_failed(cudaErrorLaunchFailure);
        return;
    }
    std::vector<double> shared_mem((c.shared + sizeof(double) - 1) / sizeof(double) + 1);
    dynamic_shared = shared_mem.data();
    grid_dim = c.grid;
    block_dim = c.block;
    const unsigned nt = c.block.x * c.block.y * c.block.z;
    shuffle_slots.assign(nt, 0.0);
    block_barrier = barrier{nt, 0, 0};
    warp_barriers.assign((nt + 31) / 32, barrier{});
    for (unsigned w = 0; w < warp_barriers.size(); ++w)
        warp_barriers[w].expected = nt - 32 * w < 32 ? nt - 32 * w : 32;
    if (stacks_for < nt) {
        stacks.reset(new char[nt * kStack]);
        stacks_for = nt;
    }
    fibers.resize(nt);
    const std::function<void()> call = [&] { kernel(args...); };
    body = &call;
    for (unsigned z = 0; z < c.grid.z; ++z)
        for (unsigned y = 0; y < c.grid.y; ++y)
            for (unsigned x = 0; x < c.grid.x; ++x) {
                block_id = make_uint3(x, y, z);
                waited = false;
                make_fiber(0);
                resume(0);
                if (fibers[0].done && !waited) {
                    direct = true;
                    for (unsigned t = 1; t < nt; ++t) {
                        set_thread(t);
                        call();
                    }
                    direct = false;
                    continue;
                }
                for (unsigned t = 1; t < nt; ++t) make_fiber(t);
                unsigned left = nt - (fibers[0].done ? 1 : 0);
                while (left > 0) {
                    const unsigned long long before = progress;
                    for (unsigned t = 0; t < nt; ++t) {
                        if (fibers[t].done) continue;
                        resume(t);
                        if (fibers[t].done) --left;
                    }
                    if (left > 0 && progress == before) {
                        std::fprintf(stderr, "cuda_emu: deadlock in block (%u, %u, %u): threads wait at "
                                             "different barriers\n", x, y, z);
                        std::abort();
                    }
                }
            }
}
} // namespace advk_emu

#define threadIdx (::advk_emu::thread_id)
#define blockIdx (::advk_emu::block_id)
#define blockDim (::advk_emu::block_dim)
#define gridDim (::advk_emu::grid_dim)

/* Launches are synchronous here, and a launch cannot fail; 4 resident blocks per SM. (Defined
 * here: each emulation test program is one translation unit that includes this header; the
 * emulated backend, several such units, takes cuda_runtime_shim.cpp's instead.) */
#ifndef ADVECT_EMU_BACKEND
static cudaError_t advk_emu_pending = cudaSuccess;
extern "C" void advk_emu_launch_failed(cudaError_t e) { advk_emu_pending = e; }
extern "C" int advk_emu_launch_injected_failure(void) { return 0; }
extern "C" cudaError_t cudaGetLastError(void) {
    const cudaError_t e = advk_emu_pending;
    advk_emu_pending = cudaSuccess;
    return e;
}
extern "C" cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, const void *, int,
                                                                     size_t) {
    *blocks = 4;
    return cudaSuccess;
}
#endif
/* The C++ forms of cudaFuncGetAttributes and of the occupancy query (cuda_runtime.h has them
 * for nvcc only). */
template <typename T> cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attr, T *entry) {
    return cudaFuncGetAttributes(attr, reinterpret_cast<const void *>(entry));
}
template <typename T>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, T *entry, int block_size,
                                                          size_t shared) {
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        blocks, reinterpret_cast<const void *>(entry), block_size, shared);
}

inline void __syncthreads() { ::advk_emu::wait(::advk_emu::block_barrier); }
template <typename T> T atomicAdd(T *address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}
template <typename T> T atomicOr(T *address, T value) {
    const T old = *address;
    *address = old | value;
    return old;
}
template <typename T> T atomicMax(T *address, T value) {
    const T old = *address;
    if (value > old) *address = value;
    return old;
}
inline long long __double_as_longlong(double x) {
    long long bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits;
}
namespace advk_emu {
inline int block_or = 0;
}
/* Barrier that returns nonzero to every thread when any thread's predicate is nonzero. */
inline int __syncthreads_or(int predicate) {
    __syncthreads(); // the previous call's readers are done
    if (predicate) ::advk_emu::block_or = 1;
    __syncthreads();
    const int any = ::advk_emu::block_or;
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) ::advk_emu::block_or = 0;
    return any;
}
namespace advk_emu {
/* The value of lane `source(lane)` of the calling thread's warp. */
template <typename T, typename F> T warp_exchange(T value, F source) {
    static_assert(sizeof(T) <= sizeof(double), "one slot per thread");
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned base = t / 32 * 32, lane = t % 32;
    barrier &bar = warp_barriers[t / 32];
    std::memcpy(&shuffle_slots[t], &value, sizeof(T));
    wait(bar);
    T result = value;
    const unsigned src = source(lane);
    if (src < 32 && base + src < shuffle_slots.size())
        std::memcpy(&result, &shuffle_slots[base + src], sizeof(T));
    wait(bar);
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
