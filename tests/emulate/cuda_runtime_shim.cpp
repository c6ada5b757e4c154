/* The CUDA runtime, cuFFT and cuBLAS calls of advect's CUDA backend (host/cuda/*.c), done on
 * the CPU, for the emulated backend (tests/emulate/backend.cmake): the whole backend, host
 * code and kernels (rewritten by emulate_cu.py, run by cuda_emu.h), linked against this file
 * instead of libcudart, libcufft and libcublas, so that the conformance suites' CUDA instances
 * run on a machine without a GPU.
 *  - One device (an sm_90 with 132 multiprocessors, as the H200 the GPU runs use, or
 *    ADVECT_EMU_SMS of them; 4 resident blocks per multiprocessor for every kernel); "device"
 *    memory is host memory; copies and memsets are synchronous, so streams need no waiting.
 *  - cuFFT's batched 1-D R2C/C2R (D2Z/Z2D) through FFTW, whose transforms have the same
 *    signs and (lack of) normalisation; plans record their layout and run per call.
 *  - cuBLAS' strided batched GEMMs by a plain loop with double accumulation.
 * Not emulated: asynchrony, device limits, and any failure the real calls can report (the
 * shim fails only on bad arguments and out of memory), except the device probe's, under
 * test-controlled switches (environment variables, read at each call):
 *  - ADVECT_EMU_DEVICE_COUNT_ERROR=<cudaError_t value>: cudaGetDeviceCount fails with it and
 *    a count of 0, as on a machine whose driver is too old or missing (35,
 *    cudaErrorInsufficientDriver) or that has no device (100, cudaErrorNoDevice);
 *  - ADVECT_EMU_DRIVER_VERSION=<n>: what cudaDriverGetVersion reports (default
 *    CUDART_VERSION; 0 is "no driver installed", which the runtime reports as error 35).
 * and, called by a test, advk_emu_fail_launch(n): the n-th kernel launch from then on fails
 * (nothing runs; the next cudaGetLastError reports cudaErrorLaunchFailure), n = 0 none;
 * advk_emu_launch_count() counts the launches since that call. */
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cufft.h>
#include <fftw3.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace {
thread_local cudaError_t last_error = cudaSuccess;
cudaError_t fail(cudaError_t e) { return last_error = e; }
/* Multiprocessors: 132, or ADVECT_EMU_SMS (a small device makes the multi-wave paths of the
 * launch heuristics reachable with test-sized problems). */
int sms() {
    const char *v = std::getenv("ADVECT_EMU_SMS");
    const int n = v ? std::atoi(v) : 0;
    return n > 0 ? n : 132;
}
/* An integer environment switch (see the file's comment), or `fallback` when unset or empty. */
int env_int(const char *name, int fallback) {
    const char *v = std::getenv(name);
    return v && *v ? std::atoi(v) : fallback;
}
} // namespace

extern "C" {

cudaError_t cudaGetLastError(void) {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }
/* A launch with a configuration a GPU refuses (cuda_emu.h's launch). */
void advk_emu_launch_failed(cudaError_t e) { fail(e); }
static long launches_seen, launch_to_fail;
void advk_emu_fail_launch(long n) { launches_seen = 0, launch_to_fail = n; }
long advk_emu_launch_count(void) { return launches_seen; }
int advk_emu_launch_injected_failure(void) { return ++launches_seen == launch_to_fail; }
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaError (emulated)";
    }
}
const char *cudaGetErrorString(cudaError_t e) {
    // The real runtime's texts for the probe's errors.
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return cudaGetErrorName(e);
    }
}

cudaError_t cudaGetDeviceCount(int *count) {
    const int injected = env_int("ADVECT_EMU_DEVICE_COUNT_ERROR", 0);
    if (injected != 0) {
        *count = 0;
        return fail((cudaError_t)injected);
    }
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *version) {
    *version = env_int("ADVECT_EMU_DRIVER_VERSION", CUDART_VERSION);
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrComputeMode: *value = cudaComputeModeDefault; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMultiProcessorCount: *value = sms(); break;
    default: return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    std::memset(prop, 0, sizeof *prop);
    std::strcpy(prop->name, "advect CPU emulation of an sm_90 device");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = sms();
    prop->totalGlobalMem = (size_t)1 << 34;
    prop->sharedMemPerBlock = 48 * 1024;
    prop->maxThreadsPerBlock = 1024;
    prop->warpSize = 32;
    return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *) {
    std::memset(attr, 0, sizeof *attr);
    attr->ptxVersion = attr->binaryVersion = 90;
    attr->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, const void *, int, size_t) {
    *blocks = 4;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    *ptr = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    return *ptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void *ptr) {
    std::free(ptr);
    return cudaSuccess;
}
cudaError_t cudaMallocAsync(void **ptr, size_t bytes, cudaStream_t) { return cudaMalloc(ptr, bytes); }
cudaError_t cudaFreeAsync(void *ptr, cudaStream_t) { return cudaFree(ptr); }
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind,
                            cudaStream_t) {
    if (bytes && (!dst || !src)) return fail(cudaErrorInvalidValue);
    if (bytes) std::memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t) {
    if (bytes && !ptr) return fail(cudaErrorInvalidValue);
    if (bytes) std::memset(ptr, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

/* ---- cuFFT: batched 1-D real transforms through FFTW ---- */

struct fft_plan {
    cufftType type;
    long long n, istride, idist, ostride, odist, batch;
};
static std::mutex fft_lock; // FFTW's planner is not thread-safe; the plans table neither
static std::map<cufftHandle, fft_plan> fft_plans;
static cufftHandle fft_next = 1;

cufftResult cufftCreate(cufftHandle *handle) {
    std::lock_guard<std::mutex> g(fft_lock);
    *handle = fft_next++;
    fft_plans[*handle] = fft_plan{};
    return CUFFT_SUCCESS;
}
cufftResult cufftDestroy(cufftHandle handle) {
    std::lock_guard<std::mutex> g(fft_lock);
    return fft_plans.erase(handle) ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}
cufftResult cufftSetAutoAllocation(cufftHandle, int) { return CUFFT_SUCCESS; }
cufftResult cufftSetWorkArea(cufftHandle, void *) { return CUFFT_SUCCESS; }
cufftResult cufftSetStream(cufftHandle, cudaStream_t) { return CUFFT_SUCCESS; }
cufftResult cufftMakePlanMany64(cufftHandle handle, int rank, long long *n, long long *inembed,
                                long long istride, long long idist, long long *onembed,
                                long long ostride, long long odist, cufftType type,
                                long long batch, size_t *work_size) {
    if (rank != 1 || n[0] < 1 || batch < 1) return CUFFT_INVALID_VALUE;
    (void)inembed, (void)onembed; // rank 1: the strides and distances say it all
    std::lock_guard<std::mutex> g(fft_lock);
    auto it = fft_plans.find(handle);
    if (it == fft_plans.end()) return CUFFT_INVALID_PLAN;
    it->second = fft_plan{type, n[0], istride, idist, ostride, odist, batch};
    if (work_size) *work_size = 0;
    return CUFFT_SUCCESS;
}

/* Plans and runs one batched transform of the recorded layout on these arrays (FFTW_ESTIMATE
 * leaves the arrays alone while planning). */
extern "C++" {
template <typename Plan, typename In, typename Out, typename Make, typename Run, typename Kill>
static cufftResult fft_run(cufftHandle handle, cufftType want, In *in, Out *out, Make make, Run run,
                           Kill kill) {
    Plan plan;
    {
        std::lock_guard<std::mutex> g(fft_lock);
        auto it = fft_plans.find(handle);
        if (it == fft_plans.end() || it->second.type != want) return CUFFT_INVALID_PLAN;
        const fft_plan &p = it->second;
        int n = (int)p.n;
        plan = make(1, &n, (int)p.batch, in, nullptr, (int)p.istride, (int)p.idist, out, nullptr,
                    (int)p.ostride, (int)p.odist, FFTW_ESTIMATE | FFTW_UNALIGNED);
    }
    if (!plan) return CUFFT_EXEC_FAILED;
    run(plan);
    std::lock_guard<std::mutex> g(fft_lock);
    kill(plan);
    return CUFFT_SUCCESS;
}
} // extern "C++"
cufftResult cufftExecR2C(cufftHandle h, cufftReal *in, cufftComplex *out) {
    return fft_run<fftwf_plan>(h, CUFFT_R2C, in, (fftwf_complex *)out, fftwf_plan_many_dft_r2c,
                               fftwf_execute, fftwf_destroy_plan);
}
cufftResult cufftExecC2R(cufftHandle h, cufftComplex *in, cufftReal *out) {
    return fft_run<fftwf_plan>(h, CUFFT_C2R, (fftwf_complex *)in, out, fftwf_plan_many_dft_c2r,
                               fftwf_execute, fftwf_destroy_plan);
}
cufftResult cufftExecD2Z(cufftHandle h, cufftDoubleReal *in, cufftDoubleComplex *out) {
    return fft_run<fftw_plan>(h, CUFFT_D2Z, in, (fftw_complex *)out, fftw_plan_many_dft_r2c,
                              fftw_execute, fftw_destroy_plan);
}
cufftResult cufftExecZ2D(cufftHandle h, cufftDoubleComplex *in, cufftDoubleReal *out) {
    return fft_run<fftw_plan>(h, CUFFT_Z2D, (fftw_complex *)in, out, fftw_plan_many_dft_c2r,
                              fftw_execute, fftw_destroy_plan);
}

/* ---- cuBLAS: strided batched GEMMs (column-major), double accumulation ---- */

struct cublasContext {
    int unused;
};
cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    *handle = new cublasContext{};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusName(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS (emulated)";
}
const char *cublasGetStatusString(cublasStatus_t s) { return cublasGetStatusName(s); }

extern "C++" {
template <typename T>
static cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const T *alpha, const T *A, int lda, long long sa, const T *B, int ldb,
                           long long sb, const T *beta, T *C, int ldc, long long sc, int count) {
    if (m < 0 || n < 0 || k < 0 || count < 0) return CUBLAS_STATUS_INVALID_VALUE;
    for (int b = 0; b < count; ++b)
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                double acc = 0;
                for (int l = 0; l < k; ++l) {
                    const T a = ta == CUBLAS_OP_N ? A[b * sa + (long long)l * lda + i]
                                                  : A[b * sa + (long long)i * lda + l];
                    const T bv = tb == CUBLAS_OP_N ? B[b * sb + (long long)j * ldb + l]
                                                   : B[b * sb + (long long)l * ldb + j];
                    acc += (double)a * (double)bv;
                }
                T &c = C[b * sc + (long long)j * ldc + i];
                // beta = 0 ignores C (which may hold NaN), as BLAS does.
                c = (T)((double)*alpha * acc + (*beta == (T)0 ? 0.0 : (double)*beta * (double)c));
            }
    return CUBLAS_STATUS_SUCCESS;
}
} // extern "C++"
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb,
                                         int m, int n, int k, const float *alpha, const float *A,
                                         int lda, long long sa, const float *B, int ldb,
                                         long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int count) {
    return gemm(ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}
cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb,
                                         int m, int n, int k, const double *alpha, const double *A,
                                         int lda, long long sa, const double *B, int ldb,
                                         long long sb, const double *beta, double *C, int ldc,
                                         long long sc, int count) {
    return gemm(ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}

} // extern "C"
