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

#endif
