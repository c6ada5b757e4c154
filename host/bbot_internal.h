/* Private declarations of the Benamou-Brenier module: the plan structure and the table of
 * grid operations each backend provides (host/cpu/bbot_cpu.c, host/cuda/bbot_cuda.c). The
 * Douglas-Rachford loop, the residuals, the stopping rule and the checkpoints (host/bbot.c)
 * are written once against this table. Every array is in the context's memory space.
 *
 * Reductions go to the backend's accumulators (ADVI_BBOT_SUM_* slots, double): an operation
 * adds to its slot and sums_fetch returns all slots to the host, so the CUDA backend reads
 * back once per iteration. */
#ifndef ADVECT_HOST_BBOT_INTERNAL_H
#define ADVECT_HOST_BBOT_INTERNAL_H

#include "internal.h"

#include "common/bbot_math.h"

enum {
    ADVI_BBOT_SUM_COST = 0, /* Σ |m*|²/f* of the prox (unweighted) */
    ADVI_BBOT_SUM_DIV2,     /* Σ div² of the projected iterate */
    ADVI_BBOT_SUM_D2,       /* Σ (x2 - x1)² */
    ADVI_BBOT_SUM_X1SQ,     /* Σ x1² */
    ADVI_BBOT_SUM_MASS,     /* input checks: Σ ρ */
    ADVI_BBOT_SUM_MASS2,    /* Σ ρ² */
    ADVI_BBOT_SUM_BAD,      /* number of NaN/Inf values */
    ADVI_BBOT_SUM_NEG,      /* number of negative values */
    ADVI_BBOT_SUM_PATH,     /* finalise: Σ |m̄|²/ρ̄ over the centred cells above the threshold */
    ADVI_BBOT_NSUMS
};

/* The state buffers of a plan. Each state is grid.state elements: the staggered components
 * (f on (P+1) × M, m_a on the faces normal to axis a) followed by the centred ones. */
typedef struct advi_bbot_bufs {
    void *z;   /* Douglas-Rachford iterate */
    void *x1;  /* prox of G1 at z: staggered part projected on the continuity constraint,
                  centred part through the prox of γJ */
    void *x2u; /* staggered part of the projection on the averaging constraint (faces only) */
    void *q;   /* P·M doubles (both precisions): divergence, then the Poisson solution */
    void *vel; /* P·M·d: velocity at the cell centres of the current solution */
} advi_bbot_bufs;

struct adv_bbot_plan;

typedef struct advi_bbot_ops {
    adv_status (*init)(struct adv_bbot_plan *p);  /* backend state (factors, accumulators) */
    void (*fini)(struct adv_bbot_plan *p);
    adv_status (*sums_reset)(struct adv_bbot_plan *p);
    /* Copies the ADVI_BBOT_NSUMS accumulators to out (synchronises on CUDA). */
    adv_status (*sums_fetch)(struct adv_bbot_plan *p, double *out);
    /* Adds Σρ, Σ(scale ρ)², the NaN/Inf count and the negative count of M values to the
     * slots (the scale keeps the squares in range whatever the densities' units). */
    adv_status (*input_stats)(struct adv_bbot_plan *p, const void *rho, double scale);
    /* Writes the end faces of z's density: s0 ρ0 and s1 ρ1. Unless warm: also the linear
     * interpolation in time between them, m = 0, and the centred part V = I(U). */
    adv_status (*init_state)(struct adv_bbot_plan *p, const void *rho0, const void *rho1,
                             double s0, double s1, int warm);
    /* q (doubles) = div of the staggered part of `state`; with q NULL only
     * ADVI_BBOT_SUM_DIV2 += Σ div². */
    adv_status (*divergence)(struct adv_bbot_plan *p, const void *state, void *q);
    /* x1.U = z.U + ∇q on the interior faces (boundary faces copied from z). */
    adv_status (*grad_update)(struct adv_bbot_plan *p);
    /* x1.V = prox of γJ at z.V; ADVI_BBOT_SUM_COST += Σ |m*|²/f*. */
    adv_status (*prox)(struct adv_bbot_plan *p, double gamma);
    /* Per-line projection of 2 x1 - z on {V = I(U)} into x2u and z += mu (x2 - x1);
     * ADVI_BBOT_SUM_D2 and ADVI_BBOT_SUM_X1SQ. */
    adv_status (*lines)(struct adv_bbot_plan *p, double mu);
    /* Optional (NULL: grad_update, then lines): both in one pass, each block of lines writing
     * its x1.U right before projecting it (read back from cache, not memory). */
    adv_status (*grad_lines)(struct adv_bbot_plan *p, double mu);
    /* From x1's staggered part: the velocity grid (bufs.vel, threshold on the centred density),
     * and the outputs when non-NULL: rho = scale f, momentum = scale m̄. face_mass receives
     * the P+1 sums Σ_i f(t_j, i) (host doubles); ADVI_BBOT_SUM_PATH += Σ |m̄|²/f̄ over the
     * cells whose centred density f̄ is above the threshold (where the velocity is m̄/f̄). */
    adv_status (*finalise)(struct adv_bbot_plan *p, double scale, double threshold, void *rho,
                           void *momentum, void *velocity, double *face_mass);
    /* dst[i] = scale · x1[offset + i], i < count. */
    adv_status (*scaled_copy)(struct adv_bbot_plan *p, void *dst, int64_t offset, int64_t count,
                              double scale);
    /* v = velocity field at (t, x) for n particles; with times (n values of the precision,
     * context memory) at (times[i] clamped to [0, 1], x[i]). */
    adv_status (*velocity_eval)(struct adv_bbot_plan *p, double t, const void *times, int64_t n,
                                const void *x, void *v);
} advi_bbot_ops;

const advi_bbot_ops *advi_cpu_bbot_ops(void);
/* NULL when the CUDA backend is not compiled in (host/cuda_stub.c). */
const advi_bbot_ops *advi_cuda_bbot_ops(void);

struct adv_bbot_plan {
    adv_context *ctx;
    const advi_bbot_ops *ops;
    adv_bbot_opts opts;
    advk_bbot_grid grid;
    adv_poisson_plan *poisson;
    advi_bbot_bufs bufs;
    void *backend;             /* owned by the backend */
    /* the current problem */
    int have_problem;          /* z holds an iterate of a problem */
    int have_solution;         /* bufs.vel holds the velocity of a finalised iterate */
    double mass;               /* mass the outputs are scaled back to (1 when normalised) */
    double input_scale;        /* 1 / mean density: internal densities have mean 1 */
    double rho_norm;           /* max(‖ρ0‖, ‖ρ1‖) (L2, internal units) for the residual */
    double last_cost;          /* cost of the last iteration (NaN: none) */
    int64_t total_iterations;
    /* history of the last call */
    adv_bbot_iterate *history;
    int64_t history_len, history_cap;
    int running; /* a solve/resume is iterating: the progress callback may be inside it */
};

#endif
