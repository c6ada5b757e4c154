/* advect Poisson plan (spec math.md §4): solves the screened Poisson equation
 *
 *     (c - Δ_h) u = f,   c >= 0,
 *
 * on a regular cell-centred grid in 1 to 4 dimensions, for a batch of right-hand sides,
 * with per-axis spacing h_a and per-axis boundary condition. The discrete operator is, at
 * every cell i (multi-index, values at cell centres):
 *
 *     ((c - Δ_h) u)_i = c u_i - Σ_a (u_{i-e_a} - 2 u_i + u_{i+e_a}) / h_a²
 *
 * where the neighbours outside the grid along axis a (length N) are ghost values:
 *     ADV_BC_PERIODIC   u_{-1} = u_{N-1},  u_N = u_0        (wrap-around)
 *     ADV_BC_NEUMANN    u_{-1} = u_0,      u_N = u_{N-1}    (zero flux through the faces)
 *     ADV_BC_DIRICHLET  u_{-1} = -u_0,     u_N = -u_{N-1}   (u = 0 on the boundary faces)
 *
 * Sign convention: the operator is c - Δ_h, which is positive semi-definite; with c = 0 it
 * is the NEGATIVE discrete Laplacian, so u = (-Δ_h)^{-1} f. To solve Δ_h p = g pass f = -g.
 *
 * The operator is diagonal in the per-axis transform (DFT/DHT for periodic, DCT-II for
 * Neumann, DST-II for Dirichlet) with eigenvalue c + Σ_a (2 - 2cos θ_{k_a}) / h_a², where
 * θ_k = 2πk/N (periodic), πk/N (Neumann), π(k+1)/N (Dirichlet), k = 0..N-1.
 *
 * Zero mode: when c = 0 and no axis is Dirichlet, the constant is in the kernel. Then f must
 * have zero mean (ADV_POISSON_REQUIRE_ZERO_MEAN, the default: ADV_ERR_INVALID_VALUE
 * otherwise) or its mean is removed (ADV_POISSON_PROJECT_MEAN), and the zero-mean solution
 * is returned. In every other case the solution is unique.
 *
 * Backends: CPU through FFTW (real-to-complex transforms when every axis is periodic, else
 * DHT/DCT-II/DST-II per axis built from complex DFTs; OpenMP threads); CUDA through cuFFT
 * (DCT-II/DST-II and the DHT built from real FFTs with pre/post-processing kernels). */
#ifndef ADVECT_POISSON_H
#define ADVECT_POISSON_H

#include "advect/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ADV_POISSON_MAX_DIM 4

typedef enum adv_boundary {
    ADV_BC_PERIODIC = 0,
    ADV_BC_NEUMANN = 1,
    ADV_BC_DIRICHLET = 2
} adv_boundary;

typedef enum adv_poisson_mean {
    ADV_POISSON_REQUIRE_ZERO_MEAN = 0, /* singular case: |Σf| > tol·Σ|f| is an error */
    ADV_POISSON_PROJECT_MEAN = 1       /* singular case: the mean of f is removed silently */
} adv_poisson_mean;

typedef enum adv_fft_effort {
    ADV_FFT_ESTIMATE = 0, /* cheap planning (FFTW_ESTIMATE); the same algorithm every time,
                             so results are bitwise reproducible across plans and runs */
    ADV_FFT_MEASURE = 1   /* FFTW_MEASURE: slower plan creation, faster execution; the
                             algorithm is chosen by timing, so two plans of the same problem
                             may differ in the last bits (measured up to 7e-16 relative) */
} adv_fft_effort;

typedef struct adv_poisson_desc {
    size_t struct_size;      /* sizeof(adv_poisson_desc); set by adv_poisson_default_desc */
    adv_precision precision; /* default ADV_FLOAT32 */
    int ndim;                /* 1..ADV_POISSON_MAX_DIM; default 2 */
    int64_t shape[ADV_POISSON_MAX_DIM];   /* cells per axis (>= 1), row-major: the last axis
                                             is contiguous; entries past ndim are ignored */
    double spacing[ADV_POISSON_MAX_DIM];  /* h_a > 0, finite; default 1 */
    adv_boundary bc[ADV_POISSON_MAX_DIM]; /* default ADV_BC_PERIODIC */
    double shift;            /* c >= 0, finite; default 0 */
    int64_t batch;           /* number of right-hand sides (>= 1), default 1 */
    adv_poisson_mean mean_policy; /* default ADV_POISSON_REQUIRE_ZERO_MEAN */
    double mean_tolerance;   /* relative tolerance of the zero-mean check, per right-hand
                                side: error when |Σf| > mean_tolerance · Σ|f|. 0 (default)
                                selects 1e-5 for float32 and 1e-10 for float64. */
    int check_finite;        /* default 1: reject NaN/Inf in f and report an overflowing
                                solution (ADV_ERR_NONFINITE, see execute). On CUDA
                                this (and the zero-mean check) costs one reduction and a
                                stream synchronisation. */
    adv_fft_effort effort;   /* default ADV_FFT_MEASURE (CPU only; ignored by CUDA) */
} adv_poisson_desc;

ADV_API adv_status adv_poisson_default_desc(adv_poisson_desc *desc);

typedef struct adv_poisson_plan adv_poisson_plan;

/* Validates the description and creates the FFT plans and the workspace (one array of
 * batch · Π shape elements, plus cuFFT buffers on CUDA). The plan keeps a pointer to ctx.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_SIZE (ndim, shape, batch, overflow),
 * ADV_ERR_INVALID_VALUE (spacing <= 0, shift < 0, tolerance < 0, bc, policy, effort,
 * precision, struct_size), ADV_ERR_NONFINITE (NaN/Inf spacing, shift or tolerance),
 * ADV_ERR_OUT_OF_MEMORY, ADV_ERR_FFTW / ADV_ERR_CUFFT / ADV_ERR_CUDA. */
ADV_API adv_status adv_poisson_plan_create(adv_context *ctx, const adv_poisson_desc *desc,
                                           adv_poisson_plan **plan);

/* Solves for every right-hand side. f and u are in the context's memory space, contiguous,
 * batch × shape[0] × … × shape[ndim-1] in the plan's precision; u may equal f (in place)
 * but not overlap it otherwise.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_NONFINITE (f has NaN/Inf and check_finite; or,
 * with check_finite, the solution overflows the precision), ADV_ERR_INVALID_VALUE (nonzero
 * mean in the singular case with REQUIRE_ZERO_MEAN; u partly overlapping f), backend
 * errors. On any error u is not
 * written, except an overflowing solution: u is then zeroed (never Inf with ADV_OK). The
 * overflow check costs nothing up to max|f| <= max/(4^ndim · cells · max(1, 1/λ_min)) / 4
 * (λ_min the smallest eigenvalue solved for); past that the solution is scanned once. CPU: synchronous. CUDA: asynchronous on the
 * context's stream, except that the finiteness/zero-mean checks synchronise.
 * A plan owns one workspace: do not execute the same plan from two threads at once. */
ADV_API adv_status adv_poisson_execute(adv_poisson_plan *plan, const void *f, void *u);

ADV_API adv_status adv_poisson_plan_destroy(adv_poisson_plan *plan);

/* One-shot convenience: create, execute, destroy. Synchronous on both backends: on CUDA it
 * waits for the solve and reports its failure. */
ADV_API adv_status adv_poisson_solve(adv_context *ctx, const adv_poisson_desc *desc,
                                     const void *f, void *u);

#ifdef __cplusplus
}
#endif
#endif
