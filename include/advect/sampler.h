/* advect samplers (spec math.md §3): Lagrangian advection of a batch of particles through an
 * adv_field from t0 to t1 (source -> target). Fixed-step Euler, Heun, midpoint and RK4 on
 * uniform, cosine or Karras grids; adaptive Dormand-Prince 5(4) with a step size per particle;
 * exponential DDIM / DPM-Solver++(2M) steps in denoiser form; Euler-Maruyama for the SDE
 * family with the same marginals. Particles are processed in chunks of bounded memory;
 * snapshots every k steps; checkpoints that resume to the identical result. Random numbers are
 * keyed by (seed, particle, step, stage, dimension) only: bitwise identical for any thread
 * count and chunk size. So are the results on the CPU, and on CUDA for d < 64; on CUDA with
 * d >= 64 (dot products from cuBLAS, whose algorithm may depend on the chunk's size) they
 * agree to rounding (docs/sampling.md). Plain C; no CUDA types. */
#ifndef ADVECT_SAMPLER_H
#define ADVECT_SAMPLER_H

#include "advect/core.h"
#include "advect/field.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum adv_method {
    ADV_METHOD_EULER = 0,    /* order 1 */
    ADV_METHOD_HEUN = 1,     /* order 2 (explicit trapezoid) */
    ADV_METHOD_MIDPOINT = 2, /* order 2 */
    ADV_METHOD_RK4 = 3,      /* order 4 */
    ADV_METHOD_DOPRI5 = 4,   /* adaptive Dormand-Prince 5(4), per-particle step size */
    ADV_METHOD_DDIM = 5,     /* exponential step with frozen denoiser (DPM-Solver-1) */
    ADV_METHOD_DPM2M = 6,    /* DPM-Solver++(2M), multistep, data prediction */
    ADV_METHOD_SDE = 7       /* Euler-Maruyama on dX = [v + g^2/2 score] dt + g dW */
} adv_method;

typedef enum adv_time_grid {
    ADV_GRID_UNIFORM = 0, /* t_k = t0 + (t1 - t0) k / K */
    ADV_GRID_COSINE = 1,  /* t_k = t0 + (t1 - t0) (1 - cos(pi k / K)) / 2: dense at both ends */
    ADV_GRID_KARRAS = 2   /* EDM spacing (rho) of the noise level r_t = sigma b_t / a_t (EDM's
                             sigma, in the data's units):
                             r_k = (r0^(1/rho) + k/K (r1^(1/rho) - r0^(1/rho)))^rho, mapped
                             back to t by bisection; when r(t0) is infinite (a_{t0} = 0) the
                             first interval runs from t0 to r = 80 (EDM's sigma_max) */
} adv_time_grid;

/* Optional diffusion coefficient g_t^2 (>= 0, finite for t in [t0, t1)). Called on the host,
 * once per step. */
typedef double (*adv_diffusion_fn)(void *user, double t);

/* Snapshot callback: chunk rows [first, first + count) of snapshot number `snapshot` (state
 * after step `step`, at time t; snapshot 0 is the initial state). z is in the particles'
 * memory space (see particles_on_host) and valid until the callback returns. Return 0 to
 * continue; anything else stops the run with ADV_ERR_INVALID_VALUE.
 * From inside, the callback may save a checkpoint of this sampler
 * (adv_sampler_checkpoint_save): it holds the state after this snapshot, and a run resumed
 * from it is bitwise the uninterrupted one and calls back only the snapshots after this one
 * (any snapshot, a chunk's last and the run's last included). It may also read the progress
 * and the time grid, and use the field and other objects of the context. It may not call
 * adv_sampler_begin, _advance, _run, _checkpoint_load or _destroy on this sampler: they fail
 * with ADV_ERR_INVALID_VALUE ("already running") and the run goes on. The same holds for the
 * diffusion callback and the field's own callbacks, which run inside a step: there a
 * checkpoint save fails with ADV_ERR_INVALID_VALUE too. */
typedef int (*adv_snapshot_fn)(void *user, int64_t snapshot, int64_t step, double t,
                               int64_t first, int64_t count, const void *z);

typedef struct adv_sampler_opts {
    size_t struct_size;       /* sizeof(adv_sampler_opts); set by adv_sampler_default_opts */
    adv_method method;        /* default ADV_METHOD_HEUN */
    int64_t steps;            /* K >= 1 steps of the time grid; default 100. DOPRI5 chooses its
                                 own steps and uses the grid only for snapshot times */
    adv_time_grid grid;       /* default ADV_GRID_UNIFORM */
    double t0;                /* start, default 0; SDE needs t0 > 0 */
    double t1;                /* end, default 1; 0 <= t0 < t1 <= 1 */
    double rho;               /* Karras exponent, default 7 */
    /* DOPRI5 */
    double atol;              /* absolute tolerance, default 1e-6 */
    double rtol;              /* relative tolerance, default 1e-6 */
    double h_init;            /* first step; 0 = automatic (Hairer's initial step rule) */
    double h_min;             /* smallest step; a particle that would need less stops
                                 (counted in stats.failed); default 1e-10 */
    double h_max;             /* largest step; 0 = t1 - t0 */
    int64_t max_steps;        /* step attempts per particle; default 100000 */
    double safety;            /* default 0.9 */
    double pi_alpha;          /* PI control h_new = h safety err^-alpha err_prev^beta;
                                 default 0.7/5 */
    double pi_beta;           /* default 0.4/5 */
    /* SDE */
    double eta;               /* >= 0, default 1: g^2 = eta * 2 sigma^2 b (b a'/a - b') */
    adv_diffusion_fn diffusion; /* optional: replaces the default g^2 (eta still scales it) */
    void *diffusion_user;
    /* noise and initial state */
    uint64_t seed;            /* default 0 */
    int init_from_source;     /* 1: the run first overwrites z with exact samples of alpha_{t0}
                                 (adv_field_sample with this seed); default 0: z is the start */
    /* memory */
    int64_t chunk_size;       /* particles per chunk; 0 = automatic (65536); the workspace is
                                 O(chunk_size * d), independent of N */
    int particles_on_host;    /* CUDA only: z (and trajectory) are host memory, staged to the
                                 device chunk by chunk, so N may exceed device memory.
                                 Ignored on the CPU. Default 0 */
    int check_finite;         /* default 1: reject NaN/Inf in the initial particles, and fail
                                 with ADV_ERR_NONFINITE (naming the particles) when a chunk's
                                 particles are NaN/Inf before its last step or at its end, or
                                 too large for the precision's distances, or (init_from_source)
                                 10x beyond the reach of the field's marginals (an unstable
                                 run); they are then left as computed */
    /* snapshots */
    int64_t save_every;       /* k >= 1: snapshot after every k-th step (and the initial state);
                                 0 = none (default) */
    void *trajectory;         /* optional: S x N x d buffer, S = 1 + floor(K / k), snapshot s =
                                 state at grid time t_{s k}; particles' memory space; must not
                                 overlap z (ADV_ERR_INVALID_VALUE from begin/checkpoint_load) */
    adv_snapshot_fn snapshot; /* optional callback, called per chunk and snapshot */
    void *snapshot_user;
} adv_sampler_opts;

ADV_API adv_status adv_sampler_default_opts(adv_sampler_opts *opts);

/* Outcome of a run (separate from the call status). Counts accumulate over all chunks. */
typedef struct adv_sampler_stats {
    size_t struct_size;       /* set by the caller to sizeof(adv_sampler_stats) */
    int64_t particles;        /* particles finished so far */
    int64_t chunks;           /* chunks finished so far */
    int64_t steps;            /* fixed-step: K; DOPRI5: the largest number of accepted steps of
                                 any particle */
    int64_t accepted;         /* particle steps accepted (summed over particles) */
    int64_t rejected;         /* particle steps rejected (DOPRI5) */
    int64_t evaluations;      /* batched field evaluations */
    int64_t particle_evaluations; /* field evaluations summed over particles */
    int64_t failed;           /* DOPRI5 particles stopped by max_steps or h_min, left at the
                                 time they reached */
    int64_t snapshots;        /* snapshots written per particle (one whose callback stopped
                                 the run included: its trajectory slot was written) */
    double t_reached;         /* smallest final time of any finished particle */
    int completed;            /* 1 when the run is finished (all chunks) */
} adv_sampler_stats;

typedef struct adv_sampler adv_sampler;

/* Creates a sampler for `field` (the sampler uses the field's context and keeps a pointer to
 * the field, which must outlive it). Checks the options against the field: DDIM / DPM2M need
 * a denoiser, SDE needs velocity and score (or a denoiser) and t0 > 0.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_VALUE (options: bad method/grid, t0/t1, steps,
 * tolerances, eta...), ADV_ERR_UNSUPPORTED (method needs an output the field lacks). */
ADV_API adv_status adv_sampler_create(adv_field *field, const adv_sampler_opts *opts,
                                      adv_sampler **sampler);
/* ADV_ERR_INVALID_VALUE (nothing freed) from inside the sampler's own run (its callbacks). */
ADV_API adv_status adv_sampler_destroy(adv_sampler *sampler);

/* The time grid t_0..t_K (K + 1 host doubles). */
ADV_API adv_status adv_sampler_time_grid(const adv_sampler *sampler, double *times);

/* Advects n particles z (n x d, in/out, the field's precision, context memory or host with
 * particles_on_host) from t0 to t1. Equivalent to adv_sampler_begin followed by
 * adv_sampler_advance until done. stats may be NULL. Synchronous on both backends.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_SIZE (n < 1), ADV_ERR_NONFINITE (z), field
 * errors. Particles that fail numerically (DOPRI5) are reported in stats, not as an error. */
ADV_API adv_status adv_sampler_run(adv_sampler *sampler, int64_t n, void *z,
                                   adv_sampler_stats *stats);

/* Incremental runs (for checkpoints and progress bars). The sampler holds one run state. */
/* Starts a run on z (the array must stay valid until the run is done). */
ADV_API adv_status adv_sampler_begin(adv_sampler *sampler, int64_t n, void *z);
/* Advances the current run by at most max_steps chunk-steps (a step of one chunk: a grid step
 * for fixed-step methods, one accept/reject round of the active particles for DOPRI5).
 * *done (may be NULL) is set to 1 when the run is finished. stats (may be NULL) receives the
 * statistics so far. Splitting a run into any sequence of advances gives bitwise the same
 * result as one run. */
ADV_API adv_status adv_sampler_advance(adv_sampler *sampler, int64_t max_steps, int *done,
                                       adv_sampler_stats *stats);
/* Progress of the current run in [0, 1] (finished particle-steps / total, DOPRI5: time). */
ADV_API adv_status adv_sampler_progress(const adv_sampler *sampler, double *fraction);

/* Checkpoints. The file holds a header (magic "ADVCKPT\0", format version, sizes), the
 * sampler's configuration fingerprint, the run position (chunk, step), the controller state
 * of the current chunk (per-particle times, step sizes, errors, FSAL stage; DPM2M's previous
 * denoiser), the statistics, all n x d particles, and a 64-bit FNV-1a checksum of everything
 * before it. It is written to a hidden temporary file beside path and renamed (an existing
 * path that is not a regular file is ADV_ERR_IO; a symbolic link at path is written through,
 * unless it is an untrusted link in a sticky directory such as /tmp: ADV_ERR_IO; a replaced
 * file keeps its permissions). RNG counters are functions of
 * (seed, particle, step, stage, dimension), so no generator state is needed.
 * save: ADV_ERR_INVALID_VALUE when no run is in progress or when called from inside a step
 * (a field or diffusion callback; the snapshot callback is fine), ADV_ERR_IO on write errors.
 * load: restores the run into `z` (n x d, as for begin) so that adv_sampler_advance continues
 * exactly; ADV_ERR_IO (cannot read), ADV_ERR_FORMAT (bad magic/version/size/checksum, a
 * truncated or corrupt file, a run position or controller state the sampler cannot be in),
 * ADV_ERR_INVALID_VALUE (checkpoint of a different sampler configuration or field),
 * ADV_ERR_DIMENSION_MISMATCH (n differs). Nothing is written to z unless the whole file
 * checks out. */
ADV_API adv_status adv_sampler_checkpoint_save(adv_sampler *sampler, const char *path);
ADV_API adv_status adv_sampler_checkpoint_load(adv_sampler *sampler, const char *path,
                                               int64_t n, void *z);

/* One-shot: create, run, destroy. */
ADV_API adv_status adv_sample(adv_field *field, const adv_sampler_opts *opts, int64_t n,
                              void *z, adv_sampler_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
