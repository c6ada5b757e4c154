/* C-linkage launchers of the Benamou-Brenier kernels (kernels/cuda/bbot.cu), shared by that
 * file and host/cuda/bbot_cuda.c. Every launcher takes the stream and returns
 * cudaGetLastError() after its launches. Arrays are device pointers of the given precision
 * (0 float32, 1 float64) laid out as described in kernels/common/bbot_math.h; `sums` is the
 * device array of ADVI_BBOT_NSUMS double accumulators (host/bbot_internal.h), to which the
 * reducing kernels add with atomics. */
#ifndef ADVECT_HOST_CUDA_BBOT_KERNELS_H
#define ADVECT_HOST_CUDA_BBOT_KERNELS_H

#include "common/bbot_math.h"

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Slots of `sums` (the values of ADVI_BBOT_SUM_* in host/bbot_internal.h). */
#define ADVK_BBOT_SLOT_COST 0
#define ADVK_BBOT_SLOT_DIV2 1
#define ADVK_BBOT_SLOT_D2 2
#define ADVK_BBOT_SLOT_X1SQ 3
#define ADVK_BBOT_SLOT_MASS 4
#define ADVK_BBOT_SLOT_MASS2 5
#define ADVK_BBOT_SLOT_BAD 6
#define ADVK_BBOT_SLOT_NEG 7
#define ADVK_BBOT_SLOT_PATH 8

/* Σρ, Σ(scale ρ)², #NaN/Inf and #negative over M values into their slots. */
cudaError_t advk_bbot_input_stats(int precision, const void *rho, int64_t M, double scale,
                                  double *sums, cudaStream_t stream);
/* The end faces of z's density (s0 ρ0, s1 ρ1); unless warm also the linear interpolation in
 * time, m = 0 and V = I(U). */
cudaError_t advk_bbot_init_state(int precision, advk_bbot_grid g, void *z, const void *rho0,
                                 const void *rho1, double s0, double s1, int warm,
                                 cudaStream_t stream);
/* q = div of state's staggered part (q non-NULL; double in both precisions), or only Σ div²
 * into its slot (q NULL). */
cudaError_t advk_bbot_divergence(int precision, advk_bbot_grid g, const void *state, double *q,
                                 double *sums, cudaStream_t stream);
/* x1.U = z.U + ∇q (interior faces; boundary faces copied; q double). One thread per face. */
cudaError_t advk_bbot_grad_update(int precision, advk_bbot_grid g, const void *z, const double *q,
                                  void *x1, cudaStream_t stream);
/* x1.V = prox of γJ at z.V, one thread per cell; Σ |m*|²/f* into its slot. */
cudaError_t advk_bbot_prox(int precision, advk_bbot_grid g, double gamma, const void *z,
                           void *x1, double *sums, cudaStream_t stream);
/* Per-line projection and relaxed update of component c (by tiles of lines in shared memory,
 * one thread per line beyond 3006 cells); cp and inv are that component's Thomas factors
 * (device, L_c + 1 doubles each). With q (not NULL) x1.U of the component is formed first,
 * z.U + ∇q as in advk_bbot_grad_update (the two fused); only where
 * advk_bbot_lines_fuse_grad(g) says every component runs by tiles. */
cudaError_t advk_bbot_lines(int precision, advk_bbot_grid g, int c, const double *cp,
                            const double *inv, double mu, void *x2u, void *z, void *x1,
                            const double *q, double *sums, cudaStream_t stream);
int advk_bbot_lines_fuse_grad(advk_bbot_grid g);
/* From x1's staggered part: vel (P·M·d) and, when non-NULL, mom = scale m̄; face_mass[j] +=
 * Σ_i f(t_j, i) (P+1 doubles, zeroed by the caller). */
cudaError_t advk_bbot_finalise(int precision, advk_bbot_grid g, const void *x1, double scale,
                               double threshold, void *vel, void *mom, double *face_mass,
                               double *sums, cudaStream_t stream);
/* dst[i] = scale · src[i], i < count. */
cudaError_t advk_bbot_scaled_copy(int precision, void *dst, const void *src, int64_t count,
                                  double scale, cudaStream_t stream);
/* v[i] = velocity field at (t, x[i]) for i < n; with times (n values of the precision), at
 * (times[i] clamped to [0, 1], x[i]). */
cudaError_t advk_bbot_velocity_eval(int precision, advk_bbot_grid g, const void *vel, double t,
                                    const void *times, int64_t n, const void *x, void *v,
                                    cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
