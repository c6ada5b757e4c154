/* Public Benamou-Brenier entry points (include/advect/bbot.h): option and input checks, the
 * Douglas-Rachford loop of Papadakis-Peyré-Oudet written once against the backend's grid
 * operations (host/bbot_internal.h), the residuals and the stopping rule, outputs, the
 * velocity field and checkpoints. docs/bbot.md has the discretisation and the defaults.
 *
 * One iteration, with z the Douglas-Rachford iterate (U: staggered, V: centred):
 *   x1 = prox_G1(z):  x1.U = projection of z.U on the continuity constraint (div z.U into q,
 *                     Neumann Poisson solve -Δq = div, x1.U = z.U + ∇q on interior faces),
 *                     x1.V = prox of γJ at z.V (pointwise)
 *   x2 = projection of 2 x1 - z on {V = I(U)} (per line), and z += μ (x2 - x1)
 * The returned solution is prox_G1 of the final z: its density conserves mass exactly. */
#include "bbot_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CKPT_MAGIC "ADVBBOT"
#define CKPT_VERSION 1u

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const advi_bbot_ops *ops_of(const adv_context *ctx) {
    return ctx->backend == ADV_BACKEND_CUDA ? advi_cuda_bbot_ops() : advi_cpu_bbot_ops();
}

/* ---- context memory ---- */

static adv_status ctx_alloc(adv_context *ctx, size_t bytes, void **ptr) {
    *ptr = NULL;
    if (bytes == 0) bytes = 1;
    if (ctx->backend == ADV_BACKEND_CUDA) return advi_cuda_malloc(ctx, bytes, ptr);
    *ptr = advi_host_alloc(ctx, bytes);
    if (!*ptr) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "bbot: %zu host bytes", bytes);
    return ADV_OK;
}

static void ctx_free(adv_context *ctx, void *ptr) {
    if (!ptr) return;
    if (ctx->backend == ADV_BACKEND_CUDA) (void)advi_cuda_free(ctx, ptr);
    else advi_host_free(ctx, ptr);
}

static adv_status ctx_copy(adv_context *ctx, void *dst, const void *src, size_t bytes,
                           adv_copy_kind kind) {
    if (bytes == 0) return ADV_OK;
    if (ctx->backend == ADV_BACKEND_CUDA) return advi_cuda_memcpy(ctx, dst, src, bytes, kind);
    memmove(dst, src, bytes);
    return ADV_OK;
}

/* ---- options ---- */

adv_status adv_bbot_default_opts(adv_bbot_opts *opts) {
    if (!opts) return ADV_ERR_NULL_POINTER;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->precision = ADV_FLOAT64;
    opts->ndim = 2;
    for (int a = 0; a < ADV_BBOT_MAX_DIM; ++a) opts->shape[a] = 64;
    opts->time_steps = 32;
    opts->gamma = 1.0;
    opts->relaxation = 1.98;
    opts->max_iterations = 1000;
    opts->tolerance = 1e-3;
    opts->cost_tolerance = 1e-5;
    opts->normalize = 1;
    opts->mass_tolerance = 1e-6;
    opts->velocity_threshold = 1e-3;
    opts->warm_start = 0;
    opts->effort = ADV_FFT_ESTIMATE;
    return ADV_OK;
}

static adv_status check_opts(adv_context *ctx, const adv_bbot_opts *o) {
    if (o->struct_size != sizeof *o)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "opts->struct_size is %zu, expected %zu (use adv_bbot_default_opts)",
                         o->struct_size, sizeof *o);
    if (o->precision != ADV_FLOAT32 && o->precision != ADV_FLOAT64)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->precision %d is not a precision",
                         (int)o->precision);
    if (o->ndim < 1 || o->ndim > ADV_BBOT_MAX_DIM)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "opts->ndim is %d, must be 1..%d", o->ndim,
                         ADV_BBOT_MAX_DIM);
    for (int a = 0; a < o->ndim; ++a)
        if (o->shape[a] < 1)
            return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "opts->shape[%d] is %lld, must be >= 1",
                             a, (long long)o->shape[a]);
    if (o->time_steps < 1)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "opts->time_steps is %lld, must be >= 1",
                         (long long)o->time_steps);
    if (o->max_iterations < 1)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "opts->max_iterations is %lld, must be >= 1",
                         (long long)o->max_iterations);
    const struct {
        const char *name;
        double v;
    } reals[] = {{"gamma", o->gamma},
                 {"relaxation", o->relaxation},
                 {"tolerance", o->tolerance},
                 {"cost_tolerance", o->cost_tolerance},
                 {"mass_tolerance", o->mass_tolerance},
                 {"velocity_threshold", o->velocity_threshold}};
    for (size_t k = 0; k < sizeof reals / sizeof reals[0]; ++k) {
        if (!isfinite(reals[k].v))
            return advi_fail(ctx, ADV_ERR_NONFINITE, "opts->%s is not finite", reals[k].name);
        if (reals[k].v < 0.0)
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->%s is %g, must be >= 0",
                             reals[k].name, reals[k].v);
    }
    if (!(o->gamma > 0.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->gamma is %g, must be > 0", o->gamma);
    if (!(o->relaxation > 0.0 && o->relaxation < 2.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->relaxation is %g, must be in (0, 2)",
                         o->relaxation);
    if (o->effort != ADV_FFT_ESTIMATE && o->effort != ADV_FFT_MEASURE)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->effort %d is not an FFT effort",
                         (int)o->effort);
    if (o->normalize != 0 && o->normalize != 1)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->normalize is %d, must be 0 or 1",
                         o->normalize);
    return ADV_OK;
}

/* Fills the grid geometry; 0 when an element count overflows. */
static int make_grid(const adv_bbot_opts *o, advk_bbot_grid *g) {
    size_t M = 1, cells, tmp;
    for (int a = 0; a < o->ndim; ++a)
        if (!advi_mul_size(&M, M, (size_t)o->shape[a])) return 0;
    if (!advi_mul_size(&cells, M, (size_t)o->time_steps)) return 0;
    // A state holds fewer than 16 cells' worth of values, so the geometry's counts fit; every
    // count fits in bytes if 16 states do.
    if (!advi_mul_size(&tmp, cells, 16) || tmp > (size_t)INT64_MAX) return 0;
    advk_bbot_grid_init(g, o->ndim, o->shape, o->time_steps);
    if (!advi_mul_size(&tmp, (size_t)g->state, 8 * 16) || tmp > (size_t)INT64_MAX) return 0;
    return 1;
}

/* ---- plan ---- */

static void release(adv_bbot_plan *p) {
    adv_context *ctx = p->ctx;
    // adv_bbot_velocity_eval (and a solve stopped by an error) may leave kernels queued on
    // CUDA: they must finish before their buffers go back (allocator hooks free at once).
    if (ctx->backend == ADV_BACKEND_CUDA) (void)advi_cuda_synchronize(ctx);
    if (p->ops && p->backend) p->ops->fini(p);
    void *bufs[] = {p->bufs.z, p->bufs.x1, p->bufs.x2u, p->bufs.q, p->bufs.vel};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; ++k) ctx_free(ctx, bufs[k]);
    if (p->poisson) adv_poisson_plan_destroy(p->poisson);
    free(p->history);
    free(p);
}

adv_status adv_bbot_plan_create(adv_context *ctx, const adv_bbot_opts *opts,
                                adv_bbot_plan **plan) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (!plan) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "plan is NULL");
    *plan = NULL;
    if (!opts) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "opts is NULL");
    adv_status st = check_opts(ctx, opts);
    if (st != ADV_OK) return st;
    advk_bbot_grid g;
    if (!make_grid(opts, &g))
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "grid size overflows the address space");
    const advi_bbot_ops *ops = ops_of(ctx);
    if (!ops) return advi_fail(ctx, ADV_ERR_BACKEND_UNAVAILABLE, "no Benamou-Brenier backend");

    adv_bbot_plan *p = calloc(1, sizeof *p);
    if (!p) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Benamou-Brenier plan");
    p->ctx = ctx;
    p->opts = *opts;
    p->grid = g;
    p->last_cost = NAN;
    const size_t el = advi_real_size(opts->precision);
    const size_t state_bytes = (size_t)g.state * el;
    if ((st = ctx_alloc(ctx, state_bytes, &p->bufs.z)) != ADV_OK ||
        (st = ctx_alloc(ctx, state_bytes, &p->bufs.x1)) != ADV_OK ||
        (st = ctx_alloc(ctx, (size_t)g.offV[0] * el, &p->bufs.x2u)) != ADV_OK ||
        (st = ctx_alloc(ctx, (size_t)g.cells * sizeof(double), &p->bufs.q)) != ADV_OK ||
        (st = ctx_alloc(ctx, (size_t)g.cells * (size_t)g.d * el, &p->bufs.vel)) != ADV_OK) {
        release(p);
        return st;
    }
    // The continuity projection: -Δ on the (d+1)-dimensional space-time grid of cells, with
    // Neumann conditions on every face; the rounding-level mean of div U is projected away.
    // Always in double: the solve leaves a residual of about u κ ‖div U‖ (κ ~ 4N²/π² the
    // condition number of -Δ_h, u the unit roundoff), and div z stays O(ρ) all along, so in
    // float32 the projected iterate kept a divergence of ~1e-2 relative at N = 256 and the
    // residual could not reach the default tolerance; the iterates themselves stay in the
    // plan's precision.
    adv_poisson_desc pd;
    adv_poisson_default_desc(&pd);
    pd.precision = ADV_FLOAT64;
    pd.ndim = g.d + 1;
    pd.shape[0] = g.P;
    pd.spacing[0] = 1.0 / (double)g.P;
    pd.bc[0] = ADV_BC_NEUMANN;
    for (int a = 0; a < g.d; ++a) {
        pd.shape[a + 1] = g.n[a];
        pd.spacing[a + 1] = 1.0 / (double)g.n[a];
        pd.bc[a + 1] = ADV_BC_NEUMANN;
    }
    pd.shift = 0.0;
    pd.mean_policy = ADV_POISSON_PROJECT_MEAN;
    pd.check_finite = 0;
    pd.effort = opts->effort;
    if ((st = adv_poisson_plan_create(ctx, &pd, &p->poisson)) != ADV_OK) {
        p->poisson = NULL;
        release(p);
        return st;
    }
    p->ops = ops;
    if ((st = ops->init(p)) != ADV_OK) {
        release(p);
        return st;
    }
    *plan = p;
    return ADV_OK;
}

/* ADV_ERR_INVALID_VALUE when called from the progress callback of a running solve on this
 * plan (a nested solve, resume, checkpoint load or destroy would change or free the state
 * the running loop continues with; checkpoint_save and get_history are fine). */
static adv_status busy(adv_bbot_plan *p, const char *what) {
    if (!p->running) return ADV_OK;
    return advi_fail(p->ctx, ADV_ERR_INVALID_VALUE,
                     "%s called from the progress callback of a running solve on this plan", what);
}

adv_status adv_bbot_plan_destroy(adv_bbot_plan *plan) {
    if (!plan) return ADV_OK;
    const adv_status st = busy(plan, "adv_bbot_plan_destroy");
    if (st != ADV_OK) return st;
    release(plan);
    return ADV_OK;
}

/* ---- solve ---- */

/* Checks one density and returns its sum and the sum of squares of ρ / mean(ρ): the second
 * pass scales before squaring, so densities in any units (1e-170, 1e160) give the same. */
static adv_status input_stats(adv_bbot_plan *p, const void *rho, const char *name, double *sum,
                              double *sum2) {
    adv_context *ctx = p->ctx;
    double s[ADVI_BBOT_NSUMS];
    adv_status st = p->ops->sums_reset(p);
    if (st == ADV_OK) st = p->ops->input_stats(p, rho, 1.0);
    if (st == ADV_OK) st = p->ops->sums_fetch(p, s);
    if (st != ADV_OK) return st;
    if (s[ADVI_BBOT_SUM_BAD] > 0.0)
        return advi_fail(ctx, ADV_ERR_NONFINITE, "%s contains %.0f NaN or infinite values", name,
                         s[ADVI_BBOT_SUM_BAD]);
    if (s[ADVI_BBOT_SUM_NEG] > 0.0)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "%s has %.0f negative values (densities must be >= 0)", name,
                         s[ADVI_BBOT_SUM_NEG]);
    if (!isfinite(s[ADVI_BBOT_SUM_MASS]))
        return advi_fail(ctx, ADV_ERR_NONFINITE, "the mass of %s overflows", name);
    if (!(s[ADVI_BBOT_SUM_MASS] > 0.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "%s is zero everywhere (no mass)", name);
    *sum = s[ADVI_BBOT_SUM_MASS];
    const double unit = (double)p->grid.M / *sum; // 1 / mean
    if ((st = p->ops->sums_reset(p)) == ADV_OK && (st = p->ops->input_stats(p, rho, unit)) == ADV_OK)
        st = p->ops->sums_fetch(p, s);
    if (st != ADV_OK) return st;
    *sum2 = s[ADVI_BBOT_SUM_MASS2];
    if (!isfinite(*sum2))
        return advi_fail(ctx, ADV_ERR_NONFINITE, "the squares of %s / its mean overflow", name);
    return ADV_OK;
}

/* Checks both densities, sets the problem's scales and initialises z (warm: only its ends). */
static adv_status load_problem(adv_bbot_plan *p, const void *rho0, const void *rho1) {
    adv_context *ctx = p->ctx;
    const double M = (double)p->grid.M;
    double sum0, sum1, sq0, sq1;
    adv_status st = input_stats(p, rho0, "rho0", &sum0, &sq0);
    if (st == ADV_OK) st = input_stats(p, rho1, "rho1", &sum1, &sq1);
    if (st != ADV_OK) return st;
    // Masses ∫ρ = Σρ h^d = mean density (the box has unit volume).
    const double m0 = sum0 / M, m1 = sum1 / M;
    if (!p->opts.normalize) {
        const double rel = fabs(m0 - m1) / fmax(m0, m1);
        if (rel > p->opts.mass_tolerance)
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "the masses of rho0 (%.17g) and rho1 (%.17g) differ by %.3g relative "
                             "(> mass_tolerance %.3g; set normalize = 1 to rescale them)",
                             m0, m1, rel, p->opts.mass_tolerance);
    }
    // Internally both densities have mean 1 (unit mass), so γ and the threshold are in these
    // units; a mismatch within mass_tolerance is absorbed by rescaling rho1 onto rho0's mass.
    const double s0 = 1.0 / m0, s1 = 1.0 / m1;
    const int warm = p->opts.warm_start && p->have_problem;
    st = p->ops->init_state(p, rho0, rho1, s0, s1, warm);
    if (st != ADV_OK) {
        p->have_problem = 0;
        p->have_solution = 0;
        return st;
    }
    p->mass = p->opts.normalize ? 1.0 : m0;
    p->input_scale = s0;
    p->rho_norm = fmax(sqrt(sq0 / M), sqrt(sq1 / M)); // sq: Σ (ρ / mean)²
    if (!warm) {
        p->total_iterations = 0;
        p->last_cost = NAN;
    }
    p->have_problem = 1;
    p->have_solution = 0;
    return ADV_OK;
}

/* x1 = prox_G1(z); adds the prox cost to its slot. With grad the gradient update of x1.U is
 * included, else left to the caller (ops->grad_lines). */
static adv_status prox_g1(adv_bbot_plan *p, int grad) {
    adv_status st = p->ops->divergence(p, p->bufs.z, p->bufs.q);
    if (st == ADV_OK) st = adv_poisson_execute(p->poisson, p->bufs.q, p->bufs.q);
    if (st == ADV_OK && grad) st = p->ops->grad_update(p);
    if (st == ADV_OK) st = p->ops->prox(p, p->opts.gamma);
    return st;
}

/* One Douglas-Rachford step: x1 = prox_G1(z), then the line projection and z's update. */
static adv_status dr_step(adv_bbot_plan *p) {
    const int fused = p->ops->grad_lines != NULL;
    adv_status st = prox_g1(p, !fused);
    if (st != ADV_OK) return st;
    return fused ? p->ops->grad_lines(p, p->opts.relaxation)
                 : p->ops->lines(p, p->opts.relaxation);
}

static adv_status history_push(adv_bbot_plan *p, const adv_bbot_iterate *row) {
    if (p->history_len == p->history_cap) {
        int64_t ncap = p->history_cap ? 2 * p->history_cap : 256;
        adv_bbot_iterate *h = realloc(p->history, (size_t)ncap * sizeof *h);
        if (!h) return advi_fail(p->ctx, ADV_ERR_OUT_OF_MEMORY, "residual history");
        p->history = h;
        p->history_cap = ncap;
    }
    p->history[p->history_len++] = *row;
    return ADV_OK;
}

static adv_status run(adv_bbot_plan *p, void *rho, void *momentum, void *velocity,
                      adv_bbot_result *result) {
    adv_context *ctx = p->ctx;
    const advk_bbot_grid *g = &p->grid;
    const double t0 = now_s();
    const double cell = 1.0 / ((double)g->P * (double)g->M); // k h^d: a space-time cell's volume
    double s[ADVI_BBOT_NSUMS];
    adv_bbot_iterate row = {0};
    int64_t it = 0;
    int converged = 0, interrupted = 0;
    adv_status st = ADV_OK;
    p->history_len = 0;
    p->have_solution = 0;

    for (it = 1; it <= p->opts.max_iterations; ++it) {
        if ((st = p->ops->sums_reset(p)) != ADV_OK) return st;
        if ((st = dr_step(p)) != ADV_OK) return st;
        if ((st = p->ops->divergence(p, p->bufs.x2u, NULL)) != ADV_OK) return st;
        if ((st = p->ops->sums_fetch(p, s)) != ADV_OK) return st;

        row.iteration = ++p->total_iterations;
        row.cost = s[ADVI_BBOT_SUM_COST] * cell;
        row.divergence_residual = sqrt(s[ADVI_BBOT_SUM_DIV2] * cell) / p->rho_norm;
        row.constraint_residual =
            sqrt(s[ADVI_BBOT_SUM_D2]) / fmax(sqrt(s[ADVI_BBOT_SUM_X1SQ]), 1e-300);
        row.cost_change = isnan(p->last_cost) ? INFINITY
                                              : fabs(row.cost - p->last_cost) / fmax(row.cost, 1e-300);
        p->last_cost = row.cost;
        if (!isfinite(row.cost) || !isfinite(row.divergence_residual))
            return advi_fail(ctx, ADV_ERR_NOT_CONVERGED,
                             "the iteration diverged at iteration %lld (cost %g, residual %g)",
                             (long long)row.iteration, row.cost, row.divergence_residual);
        if ((st = history_push(p, &row)) != ADV_OK) return st;
        converged = (p->opts.tolerance > 0.0 || p->opts.cost_tolerance > 0.0) &&
                    row.divergence_residual <= p->opts.tolerance &&
                    row.cost_change <= p->opts.cost_tolerance;
        if (p->opts.progress && p->opts.progress(p->opts.progress_user, p->opts.max_iterations, &row)) {
            interrupted = !converged;
            break;
        }
        if (converged) break;
    }
    const int64_t done = it > p->opts.max_iterations ? p->opts.max_iterations : it;

    // The solution: prox_G1 of the final iterate (exactly mass conserving).
    double *face_mass = malloc((size_t)(g->P + 1) * sizeof *face_mass);
    if (!face_mass) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "face masses");
    if ((st = p->ops->sums_reset(p)) == ADV_OK && (st = prox_g1(p, 1)) == ADV_OK &&
        (st = p->ops->finalise(p, p->mass, p->opts.velocity_threshold, rho, momentum, velocity,
                               face_mass)) == ADV_OK)
        st = p->ops->sums_fetch(p, s);
    if (st != ADV_OK) {
        free(face_mass);
        return st;
    }
    double merr = 0.0;
    for (int64_t j = 0; j <= g->P; ++j)
        merr = fmax(merr, fabs(face_mass[j] - face_mass[0]) / fmax(fabs(face_mass[0]), 1e-300));
    free(face_mass);
    p->have_solution = 1;

    if (result) {
        const size_t size = result->struct_size;
        adv_bbot_result r;
        memset(&r, 0, sizeof r);
        r.struct_size = size;
        r.cost = s[ADVI_BBOT_SUM_COST] * cell * p->mass;
        r.path_cost = s[ADVI_BBOT_SUM_PATH] * cell * p->mass;
        r.iterations = done;
        r.total_iterations = p->total_iterations;
        r.converged = converged;
        r.interrupted = interrupted;
        r.divergence_residual = row.divergence_residual;
        r.constraint_residual = row.constraint_residual;
        r.cost_change = row.cost_change;
        r.mass_error = merr;
        r.mass = p->mass;
        r.time_s = now_s() - t0;
        memcpy(result, &r, size < sizeof r ? size : sizeof r);
    }
    return ADV_OK;
}

static adv_status check_result(adv_context *ctx, const adv_bbot_result *r) {
    if (r && (r->struct_size == 0 || r->struct_size > sizeof *r))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "result->struct_size is %zu, expected sizeof(adv_bbot_result) = %zu",
                         r->struct_size, sizeof *r);
    return ADV_OK;
}

/* The outputs of solve/resume must not share memory: each is written in a separate pass
 * (momentum == velocity returned the velocity in both). */
static adv_status check_outputs_apart(adv_bbot_plan *p, const void *rho, const void *momentum,
                                      const void *velocity) {
    const advk_bbot_grid *g = &p->grid;
    const size_t es = advi_real_size(p->opts.precision);
    const size_t face_bytes = (size_t)(g->P + 1) * (size_t)g->M * es;
    const size_t cell_bytes = (size_t)g->cells * (size_t)g->d * es;
    if (advi_spans_overlap(rho, face_bytes, momentum, cell_bytes))
        return advi_fail(p->ctx, ADV_ERR_INVALID_VALUE, "rho and momentum overlap");
    if (advi_spans_overlap(rho, face_bytes, velocity, cell_bytes))
        return advi_fail(p->ctx, ADV_ERR_INVALID_VALUE, "rho and velocity overlap");
    if (advi_spans_overlap(momentum, cell_bytes, velocity, cell_bytes))
        return advi_fail(p->ctx, ADV_ERR_INVALID_VALUE, "momentum and velocity overlap");
    return ADV_OK;
}

/* Iterates with the running flag set, so that calls from the progress callback that would
 * change the state the loop is using are refused (see busy). */
static adv_status run_guarded(adv_bbot_plan *p, void *rho, void *momentum, void *velocity,
                              adv_bbot_result *result) {
    p->running = 1;
    const adv_status st = run(p, rho, momentum, velocity, result);
    p->running = 0;
    return st;
}

adv_status adv_bbot_solve(adv_bbot_plan *plan, const void *rho0, const void *rho1, void *rho,
                          void *momentum, void *velocity, adv_bbot_result *result) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = plan->ctx;
    advi_clear_error(ctx);
    if (!rho0) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "rho0 is NULL");
    if (!rho1) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "rho1 is NULL");
    adv_status st = busy(plan, "adv_bbot_solve");
    if (st == ADV_OK) st = check_result(ctx, result);
    if (st == ADV_OK) st = check_outputs_apart(plan, rho, momentum, velocity);
    if (st != ADV_OK) return st;
    if ((st = load_problem(plan, rho0, rho1)) != ADV_OK) return st;
    return run_guarded(plan, rho, momentum, velocity, result);
}

adv_status adv_bbot_resume(adv_bbot_plan *plan, void *rho, void *momentum, void *velocity,
                           adv_bbot_result *result) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = plan->ctx;
    advi_clear_error(ctx);
    adv_status st = busy(plan, "adv_bbot_resume");
    if (st == ADV_OK) st = check_result(ctx, result);
    if (st == ADV_OK) st = check_outputs_apart(plan, rho, momentum, velocity);
    if (st != ADV_OK) return st;
    if (!plan->have_problem)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "the plan holds no problem to resume (solve or load a checkpoint first)");
    return run_guarded(plan, rho, momentum, velocity, result);
}

adv_status adv_bbot_compute(adv_context *ctx, const adv_bbot_opts *opts, int ndim0,
                            const int64_t *shape0, const void *rho0, int ndim1,
                            const int64_t *shape1, const void *rho1, void *rho, void *momentum,
                            void *velocity, adv_bbot_result *result) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (!shape0 || !shape1)
        return advi_fail(ctx, ADV_ERR_NULL_POINTER, "%s is NULL", shape0 ? "shape1" : "shape0");
    const int nd[2] = {ndim0, ndim1};
    const int64_t *sh[2] = {shape0, shape1};
    for (int k = 0; k < 2; ++k) {
        if (nd[k] < 1 || nd[k] > ADV_BBOT_MAX_DIM)
            return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "rho%d has %d dimensions, must be 1..%d",
                             k, nd[k], ADV_BBOT_MAX_DIM);
        for (int a = 0; a < nd[k]; ++a)
            if (sh[k][a] < 1)
                return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "rho%d has extent %lld along axis %d",
                                 k, (long long)sh[k][a], a);
    }
    int same = ndim0 == ndim1;
    for (int a = 0; same && a < ndim0; ++a) same = shape0[a] == shape1[a];
    if (!same)
        return advi_fail(ctx, ADV_ERR_DIMENSION_MISMATCH, "rho0 and rho1 have different shapes");
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    if (opts && opts->struct_size != sizeof o) { // checked before the struct is read further
        o.struct_size = opts->struct_size;
        return check_opts(ctx, &o);
    }
    if (opts) o = *opts;
    o.ndim = ndim0;
    for (int a = 0; a < ADV_BBOT_MAX_DIM; ++a) o.shape[a] = a < ndim0 ? shape0[a] : 1;
    adv_bbot_plan *plan = NULL;
    adv_status st = adv_bbot_plan_create(ctx, &o, &plan);
    if (st != ADV_OK) return st;
    st = adv_bbot_solve(plan, rho0, rho1, rho, momentum, velocity, result);
    adv_bbot_plan_destroy(plan);
    return st;
}

/* ---- solution access ---- */

static adv_status need_solution(adv_bbot_plan *plan) {
    if (!plan->have_solution)
        return advi_fail(plan->ctx, ADV_ERR_INVALID_VALUE, "the plan holds no solution yet");
    return ADV_OK;
}

adv_status adv_bbot_get_density(adv_bbot_plan *plan, void *rho) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    advi_clear_error(plan->ctx);
    if (!rho) return advi_fail(plan->ctx, ADV_ERR_NULL_POINTER, "rho is NULL");
    adv_status st = need_solution(plan);
    if (st != ADV_OK) return st;
    double *face_mass = malloc((size_t)(plan->grid.P + 1) * sizeof *face_mass);
    if (!face_mass) return advi_fail(plan->ctx, ADV_ERR_OUT_OF_MEMORY, "face masses");
    st = plan->ops->finalise(plan, plan->mass, plan->opts.velocity_threshold, rho, NULL, NULL,
                             face_mass);
    free(face_mass);
    return st;
}

adv_status adv_bbot_get_velocity(adv_bbot_plan *plan, void *velocity) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    advi_clear_error(plan->ctx);
    if (!velocity) return advi_fail(plan->ctx, ADV_ERR_NULL_POINTER, "velocity is NULL");
    adv_status st = need_solution(plan);
    if (st != ADV_OK) return st;
    const size_t bytes = (size_t)plan->grid.cells * (size_t)plan->grid.d *
                         advi_real_size(plan->opts.precision);
    return ctx_copy(plan->ctx, velocity, plan->bufs.vel, bytes, ADV_COPY_CONTEXT_TO_CONTEXT);
}

adv_status adv_bbot_get_staggered(adv_bbot_plan *plan, void *rho, void *momentum) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    advi_clear_error(plan->ctx);
    adv_status st = need_solution(plan);
    if (st != ADV_OK) return st;
    const advk_bbot_grid *g = &plan->grid;
    if (rho) st = plan->ops->scaled_copy(plan, rho, g->offU[0], g->faces[0], plan->mass);
    if (st == ADV_OK && momentum)
        st = plan->ops->scaled_copy(plan, momentum, g->offU[1], g->offV[0] - g->offU[1],
                                    plan->mass);
    return st;
}

adv_status adv_bbot_get_history(const adv_bbot_plan *plan, int64_t capacity,
                                adv_bbot_iterate *entries, int64_t *count) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    if (capacity < 0) return advi_fail(plan->ctx, ADV_ERR_INVALID_SIZE, "capacity is negative");
    if (capacity > 0 && !entries)
        return advi_fail(plan->ctx, ADV_ERR_NULL_POINTER, "entries is NULL");
    const int64_t k = capacity < plan->history_len ? capacity : plan->history_len;
    if (k > 0) memcpy(entries, plan->history, (size_t)k * sizeof *entries);
    if (count) *count = plan->history_len;
    return ADV_OK;
}

adv_status adv_bbot_velocity_eval(adv_bbot_plan *plan, double t, int64_t n, const void *x,
                                  void *v) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = plan->ctx;
    advi_clear_error(ctx);
    if (!x || !v) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "%s is NULL", x ? "v" : "x");
    if (n < 1) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n is %lld, must be >= 1", (long long)n);
    if (!(t >= 0.0 && t <= 1.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "t is %.17g, must be in [0, 1]", t);
    // In place (v == x) works: each point's velocity is written after its own position is
    // read; a shifted overlap would read positions already overwritten.
    size_t bytes;
    if (!advi_mul_size(&bytes, (size_t)n, (size_t)plan->grid.d) ||
        !advi_mul_size(&bytes, bytes, advi_real_size(plan->opts.precision)))
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n x d overflows");
    if (v != x && advi_ranges_overlap(v, x, bytes))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "v overlaps x without being equal to it");
    adv_status st = need_solution(plan);
    if (st != ADV_OK) return st;
    return plan->ops->velocity_eval(plan, t, NULL, n, x, v);
}

/* The user-field callback of adv_bbot_velocity_field: the plan's interpolation, at the common
 * time or at the request's per-particle times (context memory, the plan's precision). */
static int grid_field_velocity(void *user, const adv_field_request *r) {
    adv_bbot_plan *plan = user;
    if (!r->velocity) return 1;
    return plan->ops->velocity_eval(plan, r->t, r->times, r->n, r->z, r->velocity) == ADV_OK ? 0 : 2;
}

adv_status adv_bbot_velocity_field(adv_bbot_plan *plan, adv_field **field) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    advi_clear_error(plan->ctx);
    if (!field) return advi_fail(plan->ctx, ADV_ERR_NULL_POINTER, "field is NULL");
    adv_status st = need_solution(plan);
    if (st != ADV_OK) return st;
    adv_user_field_opts o;
    adv_user_field_default_opts(&o);
    o.fn = grid_field_velocity;
    o.user = plan;
    o.outputs = ADV_FIELD_VELOCITY;
    return adv_field_create_user(plan->ctx, plan->opts.precision, plan->grid.d, &o, field);
}

/* ---- checkpoints ---- */

typedef struct ckpt_header {
    char magic[8];
    uint32_t version, precision, ndim, reserved;
    int64_t P, n[3], state;
    double mass, input_scale, rho_norm, last_cost;
    int64_t total_iterations;
} ckpt_header;

adv_status adv_bbot_checkpoint_save(adv_bbot_plan *plan, const char *path) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = plan->ctx;
    advi_clear_error(ctx);
    if (!path) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "path is NULL");
    if (!plan->have_problem)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "the plan holds no problem to checkpoint");
    const advk_bbot_grid *g = &plan->grid;
    ckpt_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    h.version = CKPT_VERSION;
    h.precision = (uint32_t)plan->opts.precision;
    h.ndim = (uint32_t)g->d;
    h.P = g->P;
    for (int a = 0; a < 3; ++a) h.n[a] = g->n[a];
    h.state = g->state;
    h.mass = plan->mass;
    h.input_scale = plan->input_scale;
    h.rho_norm = plan->rho_norm;
    h.last_cost = plan->last_cost;
    h.total_iterations = plan->total_iterations;
    const size_t bytes = (size_t)g->state * advi_real_size(plan->opts.precision);
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "checkpoint buffer");
    adv_status st = ctx_copy(ctx, host, plan->bufs.z, bytes, ADV_COPY_CONTEXT_TO_HOST);
    if (st != ADV_OK) {
        free(host);
        return st;
    }
    uint64_t sum = advi_fnv1a(advi_fnv1a(ADVI_FNV_OFFSET, &h, sizeof h), host, bytes);

    advi_file file;
    if ((st = advi_file_begin(ctx, path, &file)) == ADV_OK) {
        int ok = fwrite(&h, sizeof h, 1, file.fp) == 1;
        if (ok && bytes) ok = fwrite(host, 1, bytes, file.fp) == bytes;
        if (ok) ok = fwrite(&sum, sizeof sum, 1, file.fp) == 1;
        const int err = errno;
        st = advi_file_commit(ctx, &file, path, ok);
        if (!ok)
            st = advi_fail(ctx, ADV_ERR_IO, "cannot write checkpoint %s: %s", path, strerror(err));
    }
    free(host);
    return st;
}

adv_status adv_bbot_checkpoint_load(adv_bbot_plan *plan, const char *path) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = plan->ctx;
    advi_clear_error(ctx);
    if (!path) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "path is NULL");
    adv_status busy_st = busy(plan, "adv_bbot_checkpoint_load");
    if (busy_st != ADV_OK) return busy_st;
    FILE *f = fopen(path, "rb");
    if (!f) return advi_fail(ctx, ADV_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
    ckpt_header h;
    adv_status st = ADV_OK;
    void *host = NULL;
    if (fread(&h, sizeof h, 1, f) != 1) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s is truncated (no header)", path);
        goto done;
    }
    if (memcmp(h.magic, CKPT_MAGIC, 8) != 0) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "%s is not a Benamou-Brenier checkpoint", path);
        goto done;
    }
    if (h.version != CKPT_VERSION) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s has format version %u, expected %u",
                       path, h.version, CKPT_VERSION);
        goto done;
    }
    // The file is checked as a whole (size, then checksum) before its header is compared
    // with the plan: a corrupt byte anywhere is ADV_ERR_FORMAT, not a mismatch.
    const long header_end = ftell(f);
    if (h.precision > 1 || h.state < 0 || fseek(f, 0, SEEK_END) != 0) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s has an invalid header", path);
        goto done;
    }
    const long file_end = ftell(f);
    const size_t elem = h.precision == 1 ? 8 : 4;
    const uint64_t payload = (uint64_t)(file_end - header_end);
    if (file_end < header_end || payload < 8 || (uint64_t)h.state > (payload - 8) / elem ||
        (uint64_t)h.state * elem + 8 != payload || fseek(f, header_end, SEEK_SET) != 0) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s is truncated or has trailing bytes",
                       path);
        goto done;
    }
    const size_t bytes = (size_t)h.state * elem;
    host = malloc(bytes ? bytes : 1);
    if (!host) {
        st = advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "checkpoint buffer");
        goto done;
    }
    uint64_t sum = 0;
    if (fread(host, 1, bytes, f) != bytes || fread(&sum, sizeof sum, 1, f) != 1) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s is truncated", path);
        goto done;
    }
    if (advi_fnv1a(advi_fnv1a(ADVI_FNV_OFFSET, &h, sizeof h), host, bytes) != sum) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s fails its checksum (corrupt)", path);
        goto done;
    }
    const advk_bbot_grid *g = &plan->grid;
    int same = h.precision == (uint32_t)plan->opts.precision && h.ndim == (uint32_t)g->d &&
               h.P == g->P && h.state == g->state;
    for (int a = 0; a < 3; ++a) same = same && h.n[a] == g->n[a];
    if (!same) {
        st = advi_fail(ctx, ADV_ERR_DIMENSION_MISMATCH,
                       "checkpoint %s is of another grid or precision than this plan", path);
        goto done;
    }
    if (!(h.mass > 0.0 && h.mass < HUGE_VAL) || !(h.input_scale > 0.0 && h.input_scale < HUGE_VAL) ||
        !(h.rho_norm > 0.0 && h.rho_norm < HUGE_VAL) || h.total_iterations < 0) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s has invalid scalars", path);
        goto done;
    }
    // A valid checksum does not make the iterate one a solve produced (the file may be
    // forged): NaN or Inf in it would run through every later iteration.
    if (!advi_cpu_all_finite(ctx, plan->opts.precision, host, (size_t)g->state, 0, NULL)) {
        st = advi_fail(ctx, ADV_ERR_FORMAT, "checkpoint %s: the iterate holds NaN or Inf", path);
        goto done;
    }
    if ((st = ctx_copy(ctx, plan->bufs.z, host, bytes, ADV_COPY_HOST_TO_CONTEXT)) != ADV_OK) {
        plan->have_problem = 0;
        plan->have_solution = 0;
        goto done;
    }
    plan->mass = h.mass;
    plan->input_scale = h.input_scale;
    plan->rho_norm = h.rho_norm;
    plan->last_cost = h.last_cost;
    plan->total_iterations = h.total_iterations;
    plan->have_problem = 1;
    plan->have_solution = 0;
    plan->history_len = 0;
done:
    free(host);
    fclose(f);
    return st;
}
