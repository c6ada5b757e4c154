/* ADV_HD marks per-element functions shared by the CPU backend (plain C) and the CUDA
 * kernels: __host__ __device__ under nvcc, nothing in C. Every file in kernels/common/ is
 * included by both backends so they compute the same formulas. */
#ifndef ADVECT_KERNELS_COMMON_ADV_HD_H
#define ADVECT_KERNELS_COMMON_ADV_HD_H

#if defined(__CUDACC__)
#define ADV_HD __host__ __device__ __forceinline__
#else
#define ADV_HD static inline
#endif

#include <math.h>
#include <stdint.h>

/* a * b + c with a rounding fixed by the source: an explicit FMA on the GPU, where the
 * compiler would otherwise choose per call site whether to contract, and plain arithmetic in
 * C (the CPU's baseline target has no FMA instruction; each formula is compiled once there). */
#if defined(__CUDACC__)
#define ADV_FMA_F32(a, b, c) fmaf(a, b, c)
#define ADV_FMA_F64(a, b, c) fma(a, b, c)
#else
#define ADV_FMA_F32(a, b, c) ((a) * (b) + (c))
#define ADV_FMA_F64(a, b, c) ((a) * (b) + (c))
#endif

#endif
