/* advect Benamou-Brenier solver (spec math.md §4): dynamic optimal transport between two
 * densities on the unit box [0,1]^d (d = 1, 2, 3) by the proximal splitting of Papadakis,
 * Peyré and Oudet (2014),
 *
 *     W2²(ρ0, ρ1) = min ∫0^1 ∫ |m|²/ρ dx dt   s.t.  ∂t ρ + div m = 0,  ρ(0) = ρ0, ρ(1) = ρ1,
 *
 * discretised on a staggered space-time grid of N_a cells per space axis (h_a = 1/N_a) and P
 * time cells (k = 1/P): ρ on the P+1 time faces, m_a on the faces normal to axis a with no
 * flux through the walls, and a cell-centred copy V of both tied to them by averaging.
 * Douglas-Rachford iterations alternate the pointwise prox of γ|m|²/ρ, the projection on
 * the continuity equation (a space-time Poisson solve with Neumann conditions, through
 * adv_poisson_*) and the per-line least-squares projection on the averaging constraint.
 * docs/bbot.md describes the discretisation, the residuals and the defaults.
 *
 * Conventions: W2² without the factor ½; densities are values per unit volume (a cell of
 * the grid holds mass ρ_i · Π h_a); time runs from ρ0 (t = 0) to ρ1 (t = 1). Arrays are
 * row-major with the last axis contiguous, in the context's memory space (host for the CPU
 * backend, device for CUDA) and in the plan's precision. Plain C; no CUDA types. */
#ifndef ADVECT_BBOT_H
#define ADVECT_BBOT_H

#include "advect/core.h"
#include "advect/field.h"
#include "advect/poisson.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ADV_BBOT_MAX_DIM 3

/* One row of the residual history, also passed to the progress callback. */
typedef struct adv_bbot_iterate {
    int64_t iteration;          /* 1-based, counted over resumed runs */
    double cost;                /* ∫∫|m|²/ρ of the prox output (≈ W2², see adv_bbot_result) */
    double divergence_residual; /* ‖∂t ρ + div m‖ of the interpolation-side iterate, L2 on
                                   the space-time box, relative to max(‖ρ0‖, ‖ρ1‖) (L2) */
    double constraint_residual; /* ‖x2 - x1‖ / ‖x1‖: distance between the two proximal points
                                   of the splitting (0 exactly at a fixed point) */
    double cost_change;         /* |cost - previous cost| / cost (Inf at the first iteration) */
} adv_bbot_iterate;

/* Called after every iteration on the host (from the calling thread). Return 0 to continue;
 * anything else stops the solve early (the current iterate is then finalised and returned,
 * with result.interrupted = 1). The plan may be checkpointed (adv_bbot_checkpoint_save) and
 * its history read from inside the callback, and other plans used; adv_bbot_solve,
 * adv_bbot_resume, adv_bbot_checkpoint_load and adv_bbot_plan_destroy on this plan are
 * refused there with ADV_ERR_INVALID_VALUE (the running loop continues with the state they
 * would change or free). */
typedef int (*adv_bbot_progress_fn)(void *user, int64_t max_iterations,
                                    const adv_bbot_iterate *it);

typedef struct adv_bbot_opts {
    size_t struct_size;      /* sizeof(adv_bbot_opts); set by adv_bbot_default_opts */
    adv_precision precision; /* default ADV_FLOAT64 */
    int ndim;                /* space dimension d, 1..3; default 2 */
    int64_t shape[ADV_BBOT_MAX_DIM]; /* cells per space axis (>= 1; may differ); default 64 */
    int64_t time_steps;      /* P >= 1 time cells; default 32 */
    double gamma;            /* prox step γ > 0, applied to densities rescaled to mean 1
                                (so it does not depend on the inputs' units); default 1 */
    double relaxation;       /* Douglas-Rachford relaxation μ in (0, 2); default 1.98 */
    int64_t max_iterations;  /* >= 1 per solve/resume call; default 1000 */
    double tolerance;        /* stop when divergence_residual <= tolerance ... default 1e-3 */
    double cost_tolerance;   /* ... and cost_change <= cost_tolerance; default 1e-5.
                                Both 0: always run max_iterations */
    int normalize;           /* 1 (default): ρ0 and ρ1 are each rescaled to unit mass and the
                                outputs are those of the probability densities; 0: the masses
                                must agree within mass_tolerance (else ADV_ERR_INVALID_VALUE)
                                and the outputs keep the inputs' mass (cost scales with it) */
    double mass_tolerance;   /* normalize = 0: allowed |M0 - M1| / max(M0, M1); default 1e-6 */
    double velocity_threshold; /* v = m/ρ where ρ > threshold · (mean density), else 0;
                                  default 1e-3 */
    int warm_start;          /* 1: adv_bbot_solve starts from the plan's current iterate (a
                                previous solve or a loaded checkpoint) with the new end
                                densities; default 0: ρ linear in time, m = 0 */
    adv_fft_effort effort;   /* FFT planning effort of the inner Poisson plan (CPU); default
                                ADV_FFT_ESTIMATE (deterministic plans) */
    adv_bbot_progress_fn progress; /* optional */
    void *progress_user;
} adv_bbot_opts;

ADV_API adv_status adv_bbot_default_opts(adv_bbot_opts *opts);

/* Outcome of a solve (separate from the call status). */
typedef struct adv_bbot_result {
    size_t struct_size;         /* set by the caller to sizeof(adv_bbot_result) */
    double cost;                /* ∫∫|m|²/ρ dx dt of the final prox iterate (the splitting's
                                   objective, as in adv_bbot_iterate): ≈ W2²(ρ0, ρ1) on
                                   [0,1]^d, no ½; with normalize = 0 it is mass · W2² of the
                                   normalised densities. It is feasible for the pointwise
                                   constraint, not yet for continuity: see path_cost */
    int64_t iterations;         /* iterations of this call */
    int64_t total_iterations;   /* including resumed/warm runs of the same iterate */
    int converged;              /* both tolerances met */
    int interrupted;            /* the progress callback stopped the run */
    double divergence_residual; /* last iteration's values (see adv_bbot_iterate) */
    double constraint_residual;
    double cost_change;
    double mass_error;          /* max over the P+1 time faces of |mass(t) - mass(0)| / mass(0)
                                   of the returned ρ (rounding level: the continuity
                                   projection conserves mass exactly) */
    double mass;                /* the mass of the returned ρ(t) (1 when normalised) */
    double time_s;              /* wall-clock seconds of the call */
    double path_cost;           /* ∫∫ ρ̄|v|² dx dt of the returned path (ρ̄, m̄ at the cell
                                   centres, v = m̄/ρ̄ where ρ̄ is above the velocity threshold,
                                   the cells the returned velocity covers): the energy that
                                   particles advected through it see. Equal to cost up to the
                                   threshold at convergence; far from it the gap shows the
                                   path is not yet consistent */
} adv_bbot_result;

typedef struct adv_bbot_plan adv_bbot_plan;

/* Validates the options and allocates the iterates (3 copies of the staggered and centred
 * variables: about 3 (2d + 2) P Π N_a reals) and the Poisson plan of the (d+1)-dimensional
 * space-time grid. The plan keeps a pointer to ctx.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_SIZE (ndim, shape, time_steps,
 * max_iterations, overflow), ADV_ERR_INVALID_VALUE (struct_size, precision, gamma <= 0,
 * relaxation not in (0,2), negative tolerances or threshold, effort), ADV_ERR_NONFINITE
 * (NaN/Inf parameters), ADV_ERR_OUT_OF_MEMORY, FFT/CUDA errors. */
ADV_API adv_status adv_bbot_plan_create(adv_context *ctx, const adv_bbot_opts *opts,
                                        adv_bbot_plan **plan);
ADV_API adv_status adv_bbot_plan_destroy(adv_bbot_plan *plan);

/* Solves from ρ0 to ρ1 (each Π N_a values, the plan's shape). Outputs (each may be NULL):
 *   rho       (P+1) × N_1 × … × N_d: ρ on the time faces t_j = j/P (rho[0] = ρ0, rho[P] = ρ1
 *             after normalisation)
 *   momentum  P × N_1 × … × N_d × d: m at the space-time cell centres ((j+½)/P, (i+½)h),
 *             averaged from the staggered faces
 *   velocity  P × N_1 × … × N_d × d: m / ρ̄ at the same centres where the centred density ρ̄
 *             exceeds velocity_threshold · mean, else 0
 * The outputs must not overlap one another (ADV_ERR_INVALID_VALUE); the inputs may lie in
 * an output (they are read first).
 * The plan keeps the solution: adv_bbot_velocity_eval, the getters and checkpoints use it.
 * result may be NULL. Synchronous on both backends.
 * Errors: ADV_ERR_NULL_POINTER (rho0, rho1), ADV_ERR_NONFINITE (NaN/Inf in a density),
 * ADV_ERR_INVALID_VALUE (a negative value, an all-zero density, or masses that differ with
 * normalize = 0), backend errors. On an input error nothing is written to the outputs and
 * the plan's previous solution is kept (a CUDA failure in the final pass may leave them
 * partly written). */
ADV_API adv_status adv_bbot_solve(adv_bbot_plan *plan, const void *rho0, const void *rho1,
                                  void *rho, void *momentum, void *velocity,
                                  adv_bbot_result *result);

/* Continues the plan's current problem (after a solve, or after adv_bbot_checkpoint_load)
 * for up to max_iterations more iterations, with the same outputs as adv_bbot_solve.
 * ADV_ERR_INVALID_VALUE when the plan holds no problem. */
ADV_API adv_status adv_bbot_resume(adv_bbot_plan *plan, void *rho, void *momentum,
                                   void *velocity, adv_bbot_result *result);

/* One-shot convenience: checks that the two arrays have the same shape
 * (ADV_ERR_DIMENSION_MISMATCH otherwise; ADV_ERR_INVALID_SIZE for ndim outside 1..3 or a
 * zero extent), takes the shape from them (opts->ndim and opts->shape are ignored; opts may
 * be NULL for defaults), then plan_create + solve + destroy. */
ADV_API adv_status adv_bbot_compute(adv_context *ctx, const adv_bbot_opts *opts, int ndim0,
                                    const int64_t *shape0, const void *rho0, int ndim1,
                                    const int64_t *shape1, const void *rho1, void *rho,
                                    void *momentum, void *velocity, adv_bbot_result *result);

/* Copies of the current solution (context memory, layouts as in adv_bbot_solve).
 * ADV_ERR_INVALID_VALUE before the first solve, and after adv_bbot_checkpoint_load until
 * adv_bbot_resume has run. */
ADV_API adv_status adv_bbot_get_density(adv_bbot_plan *plan, void *rho);
ADV_API adv_status adv_bbot_get_velocity(adv_bbot_plan *plan, void *velocity);

/* The solution in its staggered form, which satisfies the discrete continuity equation
 * (f(t_{j+1}) - f(t_j))/k + Σ_a (m_a(face i+1) - m_a(face i))/h_a = 0 in every space-time
 * cell to rounding (each may be NULL):
 *   rho       (P+1) × N_1 × … × N_d, as in adv_bbot_solve
 *   momentum  the d face arrays one after the other: m_a is P × N_1 × … × (N_a + 1) × … × N_d
 *             (faces normal to axis a, the wall faces 0 and N_a included; they are 0) */
ADV_API adv_status adv_bbot_get_staggered(adv_bbot_plan *plan, void *rho, void *momentum);

/* Residual history of the last solve/resume call: copies min(capacity, iterations) rows
 * into entries (host memory; may be NULL with capacity 0) and sets *count (may be NULL) to
 * the number of iterations of that call. */
ADV_API adv_status adv_bbot_get_history(const adv_bbot_plan *plan, int64_t capacity,
                                        adv_bbot_iterate *entries, int64_t *count);

/* The grid velocity field of the solution, for advecting particles (Eulerian -> Lagrangian):
 * v(t, x) for n particles x (n × d, context memory, the plan's precision) at time t in
 * [0, 1], written to v (n × d). Multilinear interpolation of the cell-centred velocity grid
 * in (t, x); beyond the outermost centres the values are held constant, except the normal
 * component v_a near the walls x_a = 0 and x_a = 1, which falls linearly to 0 at the wall
 * (no flux), so exact trajectories stay in the box. Positions outside [0,1]^d are clamped
 * onto it. v may equal x (in place) but not overlap it otherwise. CPU: synchronous; CUDA:
 * asynchronous on the context's stream.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_SIZE (n < 1), ADV_ERR_INVALID_VALUE (t
 * outside [0,1] or NaN, no solution yet, v partly overlapping x). */
ADV_API adv_status adv_bbot_velocity_eval(adv_bbot_plan *plan, double t, int64_t n,
                                          const void *x, void *v);

/* The same grid velocity field as an adv_field (field.h) for the samplers of sampler.h, so
 * particles drawn from ρ0 are advected through the solution by any method, the adaptive
 * DOPRI5 with its per-particle times included (adv_field_eval_times). The field has kind
 * ADV_FIELD_USER, output ADV_FIELD_VELOCITY only, dimension d and the plan's precision; it
 * reads the plan's current solution at each evaluation (a later solve changes it), so the
 * plan must outlive the field. Destroy it with adv_field_destroy.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_VALUE (no solution yet), ADV_ERR_OUT_OF_MEMORY. */
ADV_API adv_status adv_bbot_velocity_field(adv_bbot_plan *plan, adv_field **field);

/* Checkpoints of the iterate. The file holds a header (magic "ADVBBOT\0", format version,
 * precision, dimensions), the scalars of the run (mass, scales, last cost, iterations), the
 * full iterate and a 64-bit FNV-1a checksum of everything before it; it is written to
 * a hidden temporary file beside path and renamed (an existing path that is not a regular
 * file is ADV_ERR_IO; symbolic links are written through as for sampler checkpoints).
 * save: ADV_ERR_INVALID_VALUE when the plan holds no problem, ADV_ERR_IO on write errors.
 * load: restores the problem and iterate into the plan so that adv_bbot_resume continues it (γ, μ and the tolerances are the plan's own); ADV_ERR_IO
 * (cannot read), ADV_ERR_FORMAT (bad magic/version/checksum, truncated or corrupt),
 * ADV_ERR_DIMENSION_MISMATCH (precision, dimension or shape of another plan). The plan is
 * unchanged unless the whole file checks out. */
ADV_API adv_status adv_bbot_checkpoint_save(adv_bbot_plan *plan, const char *path);
ADV_API adv_status adv_bbot_checkpoint_load(adv_bbot_plan *plan, const char *path);

#ifdef __cplusplus
}
#endif
#endif
