/* Public sampler entry points (include/advect/sampler.h) and the integrators, written once
 * against the field evaluation (host/field.c) and the backends' elementwise operations
 * (advi_sampling_ops). Particles are processed chunk by chunk: each chunk runs the whole
 * time interval before the next starts, so the workspace is O(chunk * d) whatever N is.
 *
 * Determinism: a particle's arithmetic never involves another particle (rows are combined
 * in double and rounded once, the field is evaluated row by row, the SDE noise is keyed by
 * (seed, particle, step, stage, dimension)), so results do not depend on the chunk size, the
 * thread count, or how a run is split into advances or checkpoints.
 *
 * DOPRI5 keeps its per-particle controller (time, step, previous error, counters) on the host
 * in double; the stages are evaluated with per-particle times. */
#include "sampling_internal.h"
#include "../kernels/common/sampler_math.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CHUNK 65536
#define NBUF_MAX 12
#define FAC_MIN 0.2
#define FAC_MAX 10.0
/* A run whose particles start as samples of the source and get this many times beyond the
 * reach of the field's marginals (advi_field_reach: 10 standard deviations) is unstable.
 * Stable runs stay within the reach (an SDE at eta = 1 in 5 steps peaks near 4x on the
 * checkerboard); unstable ones grow geometrically, and their last step would map every
 * particle onto some data point anyway, hiding it. */
#define UNSTABLE_REACH 10.0

enum { P_ACTIVE = 0, P_DONE = 1, P_FAILED = 2 };

struct adv_sampler {
    adv_context *ctx;
    adv_field *field;
    adv_sampler_opts o;
    adv_field_info info;
    int64_t d, K;
    size_t elem, row;
    double *grid;             /* K + 1 times */
    const advs_tableau *tab;  /* fixed-step RK methods and DOPRI5 */
    int exp_end;              /* the last grid step is an exponential step (singular end) */
    int64_t k_ode;            /* DOPRI5: grid index where the adaptive part ends */
    double t_adapt_end;       /* DOPRI5: where the adaptive part ends (and an exponential last
                                 step starts): t_{k_ode}, or later with a tail segment */
    double unstable_at;       /* |z| beyond which a run from the source is unstable (+Inf:
                                 not checked): UNSTABLE_REACH x the field's reach */
    int staged;               /* CUDA with particles on the host */
    /* run state */
    int running, finished;
    int busy;                 /* adv_sampler_advance is running (its callbacks may call in) */
    int in_snapshot;          /* the snapshot callback is running: the state is consistent */
    int64_t n, cs, nchunks;
    void *z;
    int64_t chunk;
    int chunk_started;
    int64_t step;             /* fixed-step: grid steps done in this chunk; DOPRI5: rounds */
    int64_t seg;              /* DOPRI5: grid index of the current segment's end; k_ode + 1:
                                 the tail segment (ends at t_adapt_end) */
    int has_prev;             /* DPM2M: Dprev holds the previous denoiser */
    double h_prev;            /* DPM2M: previous log-SNR step */
    adv_sampler_stats stats;
    /* workspace */
    advi_buffer work;         /* NBUF_MAX (or fewer) chunk x d buffers */
    void *buf[NBUF_MAX];
    advi_buffer zbuf;         /* staged chunk (CUDA, particles on the host) */
    advi_buffer dvec;         /* context: hvec[cs], err[cs] doubles, idx[cs] int64, mask[cs] bytes */
    void *zc;                 /* the chunk being integrated */
    void *host_rows;          /* host staging of one chunk (snapshots, checkpoints) */
    /* DOPRI5 host controller of the current chunk */
    double *dt, *dh, *derrp, *derr, *dhv, *dtt;
    int64_t *dnacc, *dnrej, *didx;
    unsigned char *dstatus, *dmask, *dland;
};

/* ---- options ------------------------------------------------------------------------- */

adv_status adv_sampler_default_opts(adv_sampler_opts *o) {
    if (!o) return ADV_ERR_NULL_POINTER;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->method = ADV_METHOD_HEUN;
    o->steps = 100;
    o->grid = ADV_GRID_UNIFORM;
    o->t0 = 0.0;
    o->t1 = 1.0;
    o->rho = 7.0;
    o->atol = 1e-6;
    o->rtol = 1e-6;
    o->h_min = 1e-10;
    o->max_steps = 100000;
    o->safety = 0.9;
    o->pi_alpha = 0.7 / 5.0;
    o->pi_beta = 0.4 / 5.0;
    o->eta = 1.0;
    o->check_finite = 1;
    return ADV_OK;
}

static int is_fixed_rk(adv_method m) {
    return m == ADV_METHOD_EULER || m == ADV_METHOD_HEUN || m == ADV_METHOD_MIDPOINT ||
           m == ADV_METHOD_RK4;
}

static double sched_ratio(const adv_schedule *s, double t) { // r = b / a
    double ab[4];
    advi_schedule_eval(s, t, ab);
    return ab[0] > 0.0 ? ab[1] / ab[0] : HUGE_VAL;
}

/* t in [lo, hi] with r(t) = target for a decreasing r (bisection). */
static double ratio_inverse(const adv_schedule *s, double lo, double hi, double target) {
    for (int it = 0; it < 200 && hi - lo > 0.0; ++it) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        if (sched_ratio(s, mid) > target)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* DOPRI5 towards a singular end: the exponential last step lands on the denoiser D_t(z), the
 * end point of the exact flow only once the posterior has collapsed on one data point. So the
 * adaptive part runs on to where the noise left, sigma b/a, is below the tolerance (or to the
 * last interior grid time if that is later): the accuracy is set by atol/rtol, not by the
 * number of grid (snapshot) times. It stops short of t1 by at least 1e-4 in float32 and 1e-8
 * in float64, because per-particle times reach the field in its precision and 1 - t must stay
 * resolved there. */
static double dopri5_tail_end(const adv_sampler *s) {
    const double gap = s->info.precision == ADV_FLOAT32 ? 1e-4 : 1e-8;
    const double target = fmax(s->o.atol, s->o.rtol) / s->info.sigma; // b/a
    const double t = ratio_inverse(&s->info.schedule, s->grid[0], s->o.t1, target);
    return fmin(t, s->o.t1 - gap);
}

/* Smallest time step of a Karras grid near t1: its points crowd towards a singular end
 * (r -> 0) faster than double resolves times near 1 (from ~350 steps on they would coincide);
 * they are kept this far apart instead (~90 ulp of 1; at the default 100 steps the last
 * interior point is ~1e-12 from t1, unaffected). */
#define GRID_MIN_GAP 1e-14

/* The K + 1 times of the grid. Karras spaces the noise level sigma r_t (EDM's sigma, in the
 * data's units), so a source scale sigma != 1 moves the grid as it moves the noise. */
static void make_grid(const adv_sampler_opts *o, const adv_schedule *s, double sigma, int64_t K,
                      double *g) {
    const double t0 = o->t0, t1 = o->t1;
    g[0] = t0;
    if (o->grid == ADV_GRID_COSINE) {
        for (int64_t k = 1; k < K; ++k)
            g[k] = t0 + (t1 - t0) * 0.5 * (1.0 - cos(M_PI * (double)k / (double)K));
    } else if (o->grid == ADV_GRID_KARRAS) {
        double r0 = sigma * sched_ratio(s, t0), r1 = sigma * sched_ratio(s, t1);
        int64_t start = 0, kk = K;
        if (!(r0 < HUGE_VAL)) { // a_{t0} = 0: the first interval runs to sigma r = 80
            double rr = sigma * sched_ratio(s, t0 + 1e-6 * (t1 - t0));
            r0 = rr < 80.0 ? rr : 80.0;
            start = 1;
            kk = K - 1;
        }
        double i0 = pow(r0, 1.0 / o->rho), i1 = pow(r1, 1.0 / o->rho);
        for (int64_t k = 0; k < kk; ++k) {
            double r = pow(i0 + (double)k / (double)kk * (i1 - i0), o->rho);
            if (start + k > 0) g[start + k] = ratio_inverse(s, t0, t1, r / sigma);
        }
        // Going down from t1, no point closer than `gap` to the next (this keeps the order: a
        // point moved down lies `gap` below the next, one not moved below it). On intervals
        // shorter than 2K GRID_MIN_GAP the gap shrinks so that the caps stay above t0.
        const double gap = fmin(GRID_MIN_GAP, (t1 - t0) / (2.0 * (double)K));
        for (int64_t k = K - 1; k >= 1; --k) {
            const double cap = t1 - (double)(K - k) * gap;
            if (g[k] > cap) g[k] = cap;
        }
    } else {
        for (int64_t k = 1; k < K; ++k) g[k] = t0 + (t1 - t0) * (double)k / (double)K;
    }
    g[K] = t1;
}

static adv_status check_opts(adv_context *ctx, const adv_sampler_opts *o, const adv_field *f) {
#define BAD(...) return advi_fail(ctx, ADV_ERR_INVALID_VALUE, __VA_ARGS__)
    if (o->method < ADV_METHOD_EULER || o->method > ADV_METHOD_SDE) BAD("method %d is not known", (int)o->method);
    if (o->grid < ADV_GRID_UNIFORM || o->grid > ADV_GRID_KARRAS) BAD("grid %d is not known", (int)o->grid);
    if (o->steps < 1 || o->steps > 100000000) BAD("steps = %lld must be in [1, 1e8]", (long long)o->steps);
    if (!(o->t0 >= 0.0) || !(o->t1 <= 1.0) || !(o->t0 < o->t1))
        BAD("times need 0 <= t0 < t1 <= 1 (t0 = %g, t1 = %g)", o->t0, o->t1);
    if (!(o->rho > 0.0) || !isfinite(o->rho)) BAD("rho = %g must be > 0", o->rho);
    if (o->method == ADV_METHOD_DOPRI5) {
        if (!(o->atol >= 0.0) || !(o->rtol >= 0.0) || !(o->atol + o->rtol > 0.0) ||
            !isfinite(o->atol + o->rtol))
            BAD("atol = %g, rtol = %g: need >= 0, finite, not both 0", o->atol, o->rtol);
        const double eps = f->precision == ADV_FLOAT32 ? FLT_EPSILON : DBL_EPSILON;
        if (fmax(o->atol, o->rtol) < 8.0 * eps)
            BAD("atol = %g, rtol = %g: the larger must be >= %g (8 ulp of %s); tighter "
                "tolerances cannot be met in this precision", o->atol, o->rtol, 8.0 * eps,
                advi_precision_name(f->precision));
        if (!(o->h_init >= 0.0) || !(o->h_min >= 0.0) || !(o->h_max >= 0.0) ||
            !isfinite(o->h_init + o->h_min + o->h_max))
            BAD("h_init, h_min, h_max must be finite and >= 0");
        if (o->h_max > 0.0 && o->h_min > o->h_max) BAD("h_min = %g > h_max = %g", o->h_min, o->h_max);
        if (o->max_steps < 1) BAD("max_steps = %lld must be >= 1", (long long)o->max_steps);
        if (!(o->safety > 0.0 && o->safety <= 1.0)) BAD("safety = %g must be in (0, 1]", o->safety);
        if (!(o->pi_alpha >= 0.0 && o->pi_alpha <= 1.0) || !(o->pi_beta >= 0.0 && o->pi_beta <= 1.0))
            BAD("pi_alpha, pi_beta must be in [0, 1]");
    }
    if (!(o->eta >= 0.0) || !isfinite(o->eta)) BAD("eta = %g must be finite and >= 0", o->eta);
    if (o->method == ADV_METHOD_SDE && !(o->t0 > 0.0))
        BAD("the SDE sampler needs t0 > 0 (its diffusion coefficient is singular at t = 0)");
    if (o->chunk_size < 0) BAD("chunk_size = %lld must be >= 0", (long long)o->chunk_size);
    if (o->save_every < 0) BAD("save_every = %lld must be >= 0", (long long)o->save_every);
    if ((o->trajectory || o->snapshot) && o->save_every == 0)
        BAD("a trajectory buffer or snapshot callback needs save_every >= 1");
    if (o->particles_on_host != 0 && o->particles_on_host != 1) BAD("particles_on_host must be 0 or 1");
    if (o->init_from_source && f->kind == ADV_FIELD_USER)
        return advi_fail(ctx, ADV_ERR_UNSUPPORTED, "init_from_source: user fields cannot be sampled");
    int out = f->outputs;
    if ((o->method == ADV_METHOD_DDIM || o->method == ADV_METHOD_DPM2M) && !(out & ADV_FIELD_DENOISER))
        return advi_fail(ctx, ADV_ERR_UNSUPPORTED, "DDIM / DPM2M need a field with a denoiser");
    if (o->method == ADV_METHOD_SDE &&
        !((out & ADV_FIELD_VELOCITY) && (out & ADV_FIELD_SCORE)))
        return advi_fail(ctx, ADV_ERR_UNSUPPORTED, "the SDE sampler needs velocity and score");
    if ((is_fixed_rk(o->method) || o->method == ADV_METHOD_DOPRI5) && !(out & ADV_FIELD_VELOCITY))
        return advi_fail(ctx, ADV_ERR_UNSUPPORTED, "ODE samplers need a velocity");
#undef BAD
    return ADV_OK;
}

/* g_t^2 of the SDE at t: eta * (user g^2, or 2 sigma^2 b (b a'/a - b')). */
static double sde_g2(const adv_sampler *s, double t) {
    if (s->o.diffusion) return s->o.eta * s->o.diffusion(s->o.diffusion_user, t);
    double ab[4];
    advi_schedule_eval(&s->info.schedule, t, ab);
    if (!(ab[0] > 0.0)) return HUGE_VAL;
    double g2 = 2.0 * s->info.sigma * s->info.sigma * ab[1] * (ab[1] * ab[2] / ab[0] - ab[3]);
    return s->o.eta * (g2 > 0.0 ? g2 : 0.0); // rounding can give -0 at t = 1
}

adv_status adv_sampler_create(adv_field *field, const adv_sampler_opts *opts, adv_sampler **out) {
    if (!field) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = field->ctx;
    advi_clear_error(ctx);
    if (!out) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "sampler (output handle) is NULL");
    *out = NULL;
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    if (opts) {
        size_t sz = opts->struct_size;
        if (sz < sizeof(size_t) || sz > sizeof o)
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "opts->struct_size = %zu is invalid (use adv_sampler_default_opts)", sz);
        memcpy(&o, opts, sz);
        o.struct_size = sizeof o;
    }
    adv_status st = check_opts(ctx, &o, field);
    if (st != ADV_OK) return st;
    adv_sampler *s = calloc(1, sizeof *s);
    if (!s) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "sampler");
    s->ctx = ctx;
    s->field = field;
    s->o = o;
    s->info.struct_size = sizeof s->info;
    adv_field_get_info(field, &s->info);
    s->d = field->d;
    s->K = o.steps;
    s->elem = advi_real_size(field->precision);
    s->row = (size_t)s->d * s->elem;
    s->staged = ctx->backend == ADV_BACKEND_CUDA && o.particles_on_host;
    switch (o.method) {
    case ADV_METHOD_EULER: s->tab = &advs_euler; break;
    case ADV_METHOD_HEUN: s->tab = &advs_heun; break;
    case ADV_METHOD_MIDPOINT: s->tab = &advs_midpoint; break;
    case ADV_METHOD_RK4: s->tab = &advs_rk4; break;
    case ADV_METHOD_DOPRI5: s->tab = &advs_dopri5; break;
    default: s->tab = NULL; break;
    }
    s->grid = malloc((size_t)(s->K + 1) * sizeof *s->grid);
    if (!s->grid) {
        free(s);
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "time grid (%lld steps)", (long long)o.steps);
    }
    make_grid(&o, &s->info.schedule, s->info.sigma, s->K, s->grid);
    for (int64_t k = 0; k < s->K; ++k)
        if (!(s->grid[k + 1] > s->grid[k])) {
            st = advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                           "the time grid is degenerate at step %lld (%.17g, %.17g): fewer steps "
                           "or another grid", (long long)k, s->grid[k], s->grid[k + 1]);
            break;
        }
    s->unstable_at = INFINITY;
    if (o.init_from_source && o.check_finite) {
        // The largest reach over the grid (subsampled: at most 1025 times, both ends included).
        const int64_t stride = s->K > 1024 ? s->K / 1024 : 1;
        double reach = fmax(advi_field_reach(field, o.t0), advi_field_reach(field, o.t1));
        for (int64_t k = 0; k <= s->K; k += stride)
            reach = fmax(reach, advi_field_reach(field, s->grid[k]));
        s->unstable_at = UNSTABLE_REACH * reach;
    }
    double ab[4];
    advi_schedule_eval(&s->info.schedule, o.t1, ab);
    s->exp_end = s->info.singular_end && !(ab[1] > 0.0) && o.method != ADV_METHOD_DDIM &&
                 o.method != ADV_METHOD_DPM2M;
    s->k_ode = s->exp_end ? s->K - 1 : s->K;
    s->t_adapt_end = s->grid[s->k_ode];
    if (o.method == ADV_METHOD_DOPRI5 && s->exp_end)
        s->t_adapt_end = fmax(s->t_adapt_end, dopri5_tail_end(s));
    if (st == ADV_OK && o.method == ADV_METHOD_SDE) {
        for (int64_t k = 0; k + 1 < s->K; ++k) {
            double g2 = sde_g2(s, s->grid[k]);
            if (!isfinite(g2) || g2 < 0.0) {
                st = advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                               "the SDE diffusion g^2 = %g at t = %g is not finite and >= 0", g2,
                               s->grid[k]);
                break;
            }
        }
    }
    if (st != ADV_OK) {
        free(s->grid);
        free(s);
        return st;
    }
    *out = s;
    return ADV_OK;
}

static void free_controller(adv_sampler *s) {
    free(s->dt), free(s->dh), free(s->derrp), free(s->derr), free(s->dhv), free(s->dtt);
    free(s->dnacc), free(s->dnrej), free(s->didx), free(s->dstatus), free(s->dmask), free(s->dland);
    s->dt = s->dh = s->derrp = s->derr = s->dhv = s->dtt = NULL;
    s->dnacc = s->dnrej = s->didx = NULL;
    s->dstatus = s->dmask = s->dland = NULL;
}

/* The sampler's callbacks (snapshot, diffusion, its field's function and schedule) run inside
 * adv_sampler_advance: a begin, advance, load or destroy from there would replace or free the
 * run state and workspace in use. */
static adv_status not_running(adv_sampler *s, const char *call) {
    if (!s->busy) return ADV_OK;
    return advi_fail(s->ctx, ADV_ERR_INVALID_VALUE,
                     "%s: the sampler is already running (re-entrant call from one of its "
                     "callbacks)", call);
}

adv_status adv_sampler_destroy(adv_sampler *s) {
    if (!s) return ADV_OK;
    const adv_status busy_st = not_running(s, "adv_sampler_destroy");
    if (busy_st != ADV_OK) return busy_st;
    advi_buffer_release(s->ctx, &s->work);
    advi_buffer_release(s->ctx, &s->zbuf);
    advi_buffer_release(s->ctx, &s->dvec);
    free(s->host_rows);
    free_controller(s);
    free(s->grid);
    free(s);
    return ADV_OK;
}

adv_status adv_sampler_time_grid(const adv_sampler *s, double *times) {
    if (!s || !times) return ADV_ERR_NULL_POINTER;
    memcpy(times, s->grid, (size_t)(s->K + 1) * sizeof *times);
    return ADV_OK;
}

/* ---- workspace and chunks ------------------------------------------------------------ */

static int nbuf_of(const adv_sampler *s) {
    switch (s->o.method) {
    case ADV_METHOD_DOPRI5: return 12; // k1..k7, stage input, new point, error; compacted z, k1
    case ADV_METHOD_DDIM:
    case ADV_METHOD_DPM2M:
    case ADV_METHOD_SDE: return 2;
    default: return s->tab->stages + 1 > 2 ? s->tab->stages + 1 : 2;
    }
}

static adv_status alloc_run(adv_sampler *s) {
    adv_context *ctx = s->ctx;
    const size_t cs = (size_t)s->cs;
    int nb = nbuf_of(s);
    adv_status st = advi_buffer_reserve(ctx, &s->work, (size_t)nb * cs * s->row);
    if (st != ADV_OK) return st;
    for (int j = 0; j < nb; ++j) s->buf[j] = (char *)s->work.ptr + (size_t)j * cs * s->row;
    if (s->staged && (st = advi_buffer_reserve(ctx, &s->zbuf, cs * s->row)) != ADV_OK) return st;
    if ((st = advi_buffer_reserve(ctx, &s->dvec, cs * (2 * sizeof(double) + sizeof(int64_t) + 1))) != ADV_OK)
        return st;
    free(s->host_rows);
    s->host_rows = malloc(cs * s->row);
    if (!s->host_rows) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "host staging");
    free_controller(s);
    if (s->o.method == ADV_METHOD_DOPRI5) {
        s->dt = malloc(cs * sizeof(double));
        s->dh = malloc(cs * sizeof(double));
        s->derrp = malloc(cs * sizeof(double));
        s->derr = malloc(cs * sizeof(double));
        s->dhv = malloc(cs * sizeof(double));
        s->dtt = malloc(cs * sizeof(double));
        s->dnacc = malloc(cs * sizeof(int64_t));
        s->dnrej = malloc(cs * sizeof(int64_t));
        s->didx = malloc(cs * sizeof(int64_t));
        s->dstatus = malloc(cs);
        s->dmask = malloc(cs);
        s->dland = malloc(cs);
        if (!s->dt || !s->dh || !s->derrp || !s->derr || !s->dhv || !s->dtt || !s->dnacc ||
            !s->dnrej || !s->didx || !s->dstatus || !s->dmask || !s->dland)
            return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "controller state");
    }
    return ADV_OK;
}

static double *dev_hvec(adv_sampler *s) { return (double *)s->dvec.ptr; }
static double *dev_err(adv_sampler *s) { return (double *)s->dvec.ptr + s->cs; }
static int64_t *dev_idx(adv_sampler *s) { return (int64_t *)((double *)s->dvec.ptr + 2 * s->cs); }
static unsigned char *dev_mask(adv_sampler *s) {
    return (unsigned char *)(dev_idx(s) + s->cs);
}

static void chunk_rows(const adv_sampler *s, int64_t *first, int64_t *cnt) {
    *first = s->chunk * s->cs;
    *cnt = s->n - *first < s->cs ? s->n - *first : s->cs;
}

/* Points zc at the chunk's rows (loading them when staged). */
static adv_status chunk_attach(adv_sampler *s, int load) {
    int64_t first, cnt;
    chunk_rows(s, &first, &cnt);
    if (!s->staged) {
        s->zc = (char *)s->z + (size_t)first * s->row;
        return ADV_OK;
    }
    s->zc = s->zbuf.ptr;
    if (!load) return ADV_OK;
    return advi_upload(s->ctx, s->zc, (char *)s->z + (size_t)first * s->row, (size_t)cnt * s->row);
}

static adv_status snapshot(adv_sampler *s, int64_t index, int64_t step, double t) {
    int64_t first, cnt;
    chunk_rows(s, &first, &cnt);
    adv_status st = ADV_OK;
    const size_t bytes = (size_t)cnt * s->row;
    if (s->o.trajectory) {
        char *dst = (char *)s->o.trajectory + ((size_t)index * (size_t)s->n + (size_t)first) * s->row;
        st = s->staged ? advi_download(s->ctx, dst, s->zc, bytes) : advi_ctx_copy(s->ctx, dst, s->zc, bytes);
        if (st != ADV_OK) return st;
    }
    // Counted before the callback, so that a checkpoint saved from it includes this snapshot.
    if (index + 1 > s->stats.snapshots) s->stats.snapshots = index + 1;
    if (s->o.snapshot) {
        const void *rows = s->zc;
        if (s->staged) {
            if ((st = advi_download(s->ctx, s->host_rows, s->zc, bytes)) != ADV_OK) return st;
            rows = s->host_rows;
        }
        s->in_snapshot = 1;
        int rc = s->o.snapshot(s->o.snapshot_user, index, step, t, first, cnt, rows);
        s->in_snapshot = 0;
        if (rc != 0)
            return advi_fail(s->ctx, ADV_ERR_INVALID_VALUE, "the snapshot callback returned %d", rc);
    }
    return ADV_OK;
}

static adv_status eval_count(adv_sampler *s, double t, const double *times, int64_t cnt,
                             const void *z, void *vel, void *score, void *den) {
    s->stats.evaluations += 1;
    s->stats.particle_evaluations += cnt;
    return advi_field_eval(s->field, t, times, cnt, z, vel, score, den);
}

/* ---- DOPRI5 -------------------------------------------------------------------------- */

/* Whether the adaptive part runs on past the last grid time it covers (dopri5_tail_end). */
static int has_tail(const adv_sampler *s) { return s->t_adapt_end > s->grid[s->k_ode]; }

/* The end of DOPRI5 segment `seg` (grid times, then the tail). */
static double dp_segment_end(const adv_sampler *s, int64_t seg) {
    return seg <= s->k_ode ? s->grid[seg] : s->t_adapt_end;
}

static adv_status dp_init(adv_sampler *s, int64_t cnt) {
    adv_context *ctx = s->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    const adv_precision p = s->field->precision;
    const double t0 = s->grid[0], span = s->t_adapt_end - t0;
    const double hmax = s->o.h_max > 0.0 ? s->o.h_max : s->o.t1 - s->o.t0;
    void *k1 = s->buf[0], *y = s->buf[7], *f1 = s->buf[1];
    adv_status st;
    for (int64_t i = 0; i < cnt; ++i) {
        s->dt[i] = t0;
        s->derrp[i] = 1e-4;
        s->dnacc[i] = s->dnrej[i] = 0;
        s->dstatus[i] = P_ACTIVE;
    }
    if ((st = eval_count(s, t0, NULL, cnt, s->zc, k1, NULL, NULL)) != ADV_OK) return st;
    if (s->o.h_init > 0.0) {
        for (int64_t i = 0; i < cnt; ++i) s->dh[i] = fmin(s->o.h_init, hmax);
        return ADV_OK;
    }
    // Hairer, Norsett & Wanner's starting step (Solving ODEs I, II.4), per particle.
    double *d0 = s->derr, *d1 = s->dhv, *h0 = s->dtt;
    if ((st = ops->rms_norm(ctx, p, cnt, s->d, s->zc, s->zc, NULL, s->o.atol, s->o.rtol, dev_err(s))) != ADV_OK ||
        (st = advi_download(ctx, d0, dev_err(s), (size_t)cnt * sizeof(double))) != ADV_OK ||
        (st = ops->rms_norm(ctx, p, cnt, s->d, k1, s->zc, NULL, s->o.atol, s->o.rtol, dev_err(s))) != ADV_OK ||
        (st = advi_download(ctx, d1, dev_err(s), (size_t)cnt * sizeof(double))) != ADV_OK)
        return st;
    for (int64_t i = 0; i < cnt; ++i) {
        double h = (d0[i] < 1e-5 || d1[i] < 1e-5 || !isfinite(d1[i])) ? 1e-6 : 0.01 * d0[i] / d1[i];
        h0[i] = fmin(fmin(h, hmax), span);
        s->dh[i] = h0[i];           // staging of h0 for the upload
        s->dt[i] = t0 + h0[i];      // times of the probe evaluation (reset below)
    }
    if ((st = advi_upload(ctx, dev_hvec(s), h0, (size_t)cnt * sizeof(double))) != ADV_OK) return st;
    const void *b1[1] = {k1};
    const double one = 1.0;
    if ((st = ops->lincomb(ctx, p, cnt, s->d, y, 1.0, s->zc, 0.0, dev_hvec(s), 1, &one, b1)) != ADV_OK)
        return st;
    if ((st = eval_count(s, 0.0, s->dt, cnt, y, f1, NULL, NULL)) != ADV_OK) return st;
    const void *b2[2] = {f1, k1};
    const double c2[2] = {1.0, -1.0};
    if ((st = ops->lincomb(ctx, p, cnt, s->d, y, 0.0, NULL, 1.0, NULL, 2, c2, b2)) != ADV_OK ||
        (st = ops->rms_norm(ctx, p, cnt, s->d, y, s->zc, NULL, s->o.atol, s->o.rtol, dev_err(s))) != ADV_OK ||
        (st = advi_download(ctx, s->derr, dev_err(s), (size_t)cnt * sizeof(double))) != ADV_OK)
        return st;
    for (int64_t i = 0; i < cnt; ++i) {
        double d2 = s->derr[i] / h0[i], m = fmax(d1[i], d2);
        double h1 = (m <= 1e-15 || !isfinite(m)) ? fmax(1e-6, h0[i] * 1e-3) : pow(0.01 / m, 0.2);
        double h = fmin(100.0 * h0[i], h1);
        s->dh[i] = fmin(fmax(h, s->o.h_min), hmax);
        s->dt[i] = t0;
    }
    return ADV_OK;
}

/* One accept/reject round of the chunk's active particles towards the segment end T. Sets
 * *segment_done when no particle is active. When some particles are not active (done with
 * the segment, or failed), the active ones are gathered to the front of the stage buffers:
 * a round costs its active particles only, and each row's arithmetic is unchanged (rows are
 * independent), so the bits do not depend on which particles share a round. */
static adv_status dp_round(adv_sampler *s, int64_t cnt, double T, int *segment_done) {
    adv_context *ctx = s->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    const adv_precision p = s->field->precision;
    const advs_tableau *tb = &advs_dopri5;
    const double hmax = s->o.h_max > 0.0 ? s->o.h_max : s->o.t1 - s->o.t0;
    const double t_end = s->t_adapt_end;
    void **k = s->buf, *y = s->buf[7], *ynew = s->buf[8], *err = s->buf[9];
    adv_status st;
    // Active rows didx[0..na); dhv is indexed like them.
    int64_t na = 0;
    for (int64_t i = 0; i < cnt; ++i) {
        const int act = s->dstatus[i] == P_ACTIVE && s->dt[i] < T;
        s->dland[i] = act && s->dh[i] >= T - s->dt[i];
        if (!act) continue;
        s->didx[na] = i;
        s->dhv[na] = s->dland[i] ? T - s->dt[i] : s->dh[i];
        ++na;
    }
    *segment_done = na == 0;
    if (na == 0) return ADV_OK;
    const int64_t *idx = NULL; // context-memory row indices when compacted
    void *base = s->zc, *k1 = k[0];
    if (na < cnt) {
        idx = dev_idx(s);
        base = s->buf[10];
        k1 = s->buf[11];
        if ((st = advi_upload(ctx, dev_idx(s), s->didx, (size_t)na * sizeof(int64_t))) != ADV_OK ||
            (st = ops->copy_rows(ctx, p, na, s->d, base, NULL, s->zc, idx, NULL)) != ADV_OK ||
            (st = ops->copy_rows(ctx, p, na, s->d, k1, NULL, k[0], idx, NULL)) != ADV_OK)
            return st;
    }
    if ((st = advi_upload(ctx, dev_hvec(s), s->dhv, (size_t)na * sizeof(double))) != ADV_OK) return st;
    const void *kk[7] = {k1, k[1], k[2], k[3], k[4], k[5], k[6]};
    for (int j = 1; j < 7; ++j) {
        void *in = j == 6 ? ynew : y; // stage 7 is evaluated at the 5th-order solution (FSAL)
        if ((st = ops->lincomb(ctx, p, na, s->d, in, 1.0, base, 0.0, dev_hvec(s), j, tb->a[j], kk)) != ADV_OK)
            return st;
        for (int64_t r = 0; r < na; ++r) {
            const int64_t i = s->didx[r];
            s->dtt[r] = j == 6 && s->dland[i] ? T : s->dt[i] + tb->c[j] * s->dhv[r];
        }
        if ((st = eval_count(s, 0.0, s->dtt, na, in, k[j], NULL, NULL)) != ADV_OK) return st;
    }
    if ((st = ops->lincomb(ctx, p, na, s->d, err, 0.0, NULL, 0.0, dev_hvec(s), 7, tb->e, kk)) != ADV_OK ||
        (st = ops->rms_norm(ctx, p, na, s->d, err, base, ynew, s->o.atol, s->o.rtol, dev_err(s))) != ADV_OK ||
        (st = advi_download(ctx, s->derr, dev_err(s), (size_t)na * sizeof(double))) != ADV_OK)
        return st;
    for (int64_t r = 0; r < na; ++r) {
        const int64_t i = s->didx[r];
        double e = s->derr[r], hv = s->dhv[r], hn;
        s->dmask[r] = 0;
        if (e <= 1.0) { // accept (a NaN error fails this test and is rejected)
            s->dmask[r] = 1;
            s->dt[i] = s->dland[i] ? T : s->dt[i] + hv;
            s->dnacc[i]++;
            s->stats.accepted++;
            double fac = e > 0.0 ? s->o.safety * pow(e, -s->o.pi_alpha) * pow(s->derrp[i], s->o.pi_beta)
                                 : FAC_MAX;
            hn = hv * fmin(FAC_MAX, fmax(FAC_MIN, fac));
            // A step shortened to land on a snapshot or segment time says little about the
            // step size: the proposal it replaced stands (a tiny landing step must not shrink
            // the next one below h_min).
            if (s->dland[i]) hn = fmax(hn, s->dh[i]);
            s->derrp[i] = fmax(e, 1e-4);
        } else {
            s->dnrej[i]++;
            s->stats.rejected++;
            double fac = e < HUGE_VAL ? s->o.safety * pow(e, -s->o.pi_alpha) : FAC_MIN;
            hn = hv * fmin(1.0, fmax(FAC_MIN, fac));
        }
        s->dh[i] = fmin(hn, hmax);
        if (s->dt[i] >= t_end)
            s->dstatus[i] = P_DONE;
        else if (s->dh[i] < s->o.h_min || s->dnacc[i] + s->dnrej[i] >= s->o.max_steps)
            s->dstatus[i] = P_FAILED;
    }
    // Accepted rows: the new point and its derivative (FSAL) go back to their particles.
    if ((st = advi_upload(ctx, dev_mask(s), s->dmask, (size_t)na)) != ADV_OK ||
        (st = ops->copy_rows(ctx, p, na, s->d, s->zc, idx, ynew, NULL, dev_mask(s))) != ADV_OK ||
        (st = ops->copy_rows(ctx, p, na, s->d, k[0], idx, k[6], NULL, dev_mask(s))) != ADV_OK)
        return st;
    return ADV_OK;
}

/* ---- steps --------------------------------------------------------------------------- */

/* Exponential (data-prediction) step from t to u: z <- (b_u/b_t) z + (a_u - a_t b_u/b_t) D',
 * D' = D (DDIM) or (1 + c) D - c Dprev (DPM-Solver++(2M), c = h/(2 h_prev) in log-SNR).
 * `rows_mask` (host, or NULL): only those rows move (DOPRI5's final step skips failures). */
static adv_status exp_step(adv_sampler *s, int64_t cnt, double t, double u, int multistep,
                           const unsigned char *rows_mask) {
    adv_context *ctx = s->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    const adv_precision p = s->field->precision;
    void *D = s->buf[0], *Dprev = s->buf[1];
    adv_status st = eval_count(s, t, NULL, cnt, s->zc, NULL, NULL, D);
    if (st != ADV_OK) return st;
    double at[4], au[4];
    advi_schedule_eval(&s->info.schedule, t, at);
    advi_schedule_eval(&s->info.schedule, u, au);
    double ratio = au[1] / at[1]; // b_t > 0 for t < 1
    double cd = au[0] - at[0] * ratio;
    double lt = at[0] > 0.0 ? log(at[0] / at[1]) : -HUGE_VAL;
    double lu = au[1] > 0.0 ? log(au[0] / au[1]) : HUGE_VAL;
    double hl = lu - lt, c = 0.0;
    if (multistep && s->has_prev && isfinite(hl) && isfinite(s->h_prev) && s->h_prev > 0.0)
        c = hl / (2.0 * s->h_prev);
    const void *bufs[2] = {D, Dprev};
    const double coef[2] = {cd * (1.0 + c), -cd * c};
    void *dst = rows_mask ? s->buf[2] : s->zc;
    if ((st = ops->lincomb(ctx, p, cnt, s->d, dst, ratio, s->zc, 1.0, NULL, c != 0.0 ? 2 : 1, coef,
                           bufs)) != ADV_OK)
        return st;
    if (rows_mask) {
        if ((st = advi_upload(ctx, dev_mask(s), rows_mask, (size_t)cnt)) != ADV_OK ||
            (st = ops->copy_rows(ctx, p, cnt, s->d, s->zc, NULL, dst, NULL, dev_mask(s))) != ADV_OK)
            return st;
    }
    if (multistep) {
        s->buf[0] = Dprev; // swap: this step's denoiser becomes the previous one
        s->buf[1] = D;
        s->has_prev = 1;
        s->h_prev = hl;
    }
    return ADV_OK;
}

static adv_status rk_step(adv_sampler *s, int64_t cnt, double t, double h) {
    adv_context *ctx = s->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    const adv_precision p = s->field->precision;
    const advs_tableau *tb = s->tab;
    void **k = s->buf, *y = s->buf[tb->stages];
    adv_status st;
    for (int j = 0; j < tb->stages; ++j) {
        const void *in = s->zc;
        if (j > 0) {
            if ((st = ops->lincomb(ctx, p, cnt, s->d, y, 1.0, s->zc, h, NULL, j, tb->a[j],
                                   (const void *const *)k)) != ADV_OK)
                return st;
            in = y;
        }
        if ((st = eval_count(s, t + tb->c[j] * h, NULL, cnt, in, k[j], NULL, NULL)) != ADV_OK) return st;
    }
    return ops->lincomb(ctx, p, cnt, s->d, s->zc, 1.0, s->zc, h, NULL, tb->stages, tb->b,
                        (const void *const *)k);
}

static adv_status sde_step(adv_sampler *s, int64_t cnt, int64_t first, int64_t k, double t, double h) {
    adv_context *ctx = s->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    const adv_precision p = s->field->precision;
    void *v = s->buf[0], *sc = s->buf[1];
    double g2 = sde_g2(s, t);
    adv_status st = eval_count(s, t, NULL, cnt, s->zc, v, sc, NULL);
    if (st != ADV_OK) return st;
    const void *bufs[2] = {v, sc};
    const double c[2] = {h, 0.5 * g2 * h};
    if ((st = ops->lincomb(ctx, p, cnt, s->d, s->zc, 1.0, s->zc, 1.0, NULL, 2, c, bufs)) != ADV_OK)
        return st;
    if (g2 > 0.0)
        st = ops->add_noise(ctx, p, cnt, s->d, s->zc, sqrt(g2 * h), s->o.seed, 0, (uint32_t)k, first);
    return st;
}

/* The noise-free last step of the SDE: exponential when the field has a denoiser. */
static adv_status ode_last_step(adv_sampler *s, int64_t cnt, double t, double u) {
    if (s->info.outputs & ADV_FIELD_DENOISER) return exp_step(s, cnt, t, u, 0, NULL);
    adv_context *ctx = s->ctx;
    void *v = s->buf[0];
    adv_status st = eval_count(s, t, NULL, cnt, s->zc, v, NULL, NULL);
    if (st != ADV_OK) return st;
    const void *bufs[1] = {v};
    const double one = 1.0;
    return advi_sampling_ops_of(ctx)->lincomb(ctx, s->field->precision, cnt, s->d, s->zc, 1.0, s->zc,
                                              u - t, NULL, 1, &one, bufs);
}

/* ---- chunk lifecycle ----------------------------------------------------------------- */

static adv_status chunk_start(adv_sampler *s) {
    int64_t first, cnt;
    chunk_rows(s, &first, &cnt);
    adv_status st = chunk_attach(s, !s->o.init_from_source);
    if (st != ADV_OK) return st;
    if (s->o.init_from_source &&
        (st = advi_field_sample(s->field, s->o.t0, s->o.seed, first, cnt, s->zc)) != ADV_OK)
        return st;
    s->step = 0;
    s->has_prev = 0;
    s->h_prev = 0.0;
    s->chunk_started = 1;
    if (s->o.method == ADV_METHOD_DOPRI5) {
        s->seg = s->o.save_every > 0 && s->o.save_every < s->k_ode ? s->o.save_every : s->k_ode;
        const int tail = has_tail(s);
        if (s->k_ode == 0 && tail) s->seg = 1; // only the tail segment
        if ((s->k_ode > 0 || tail) && (st = dp_init(s, cnt)) != ADV_OK) return st;
        if (s->k_ode == 0 && !tail)
            for (int64_t i = 0; i < cnt; ++i) { // nothing adaptive: only the exponential step
                s->dt[i] = s->grid[0];
                s->dstatus[i] = P_DONE;
                s->dnacc[i] = s->dnrej[i] = 0;
            }
    }
    // Snapshot 0 once the chunk's state is complete (DOPRI5's controller included): a
    // checkpoint saved from its callback resumes from there.
    if (s->o.save_every > 0 && (st = snapshot(s, 0, 0, s->grid[0])) != ADV_OK) return st;
    return ADV_OK;
}

static const char *const METHOD_NAMES[] = {"Euler", "Heun", "midpoint", "RK4", "DOPRI5",
                                           "DDIM", "DPM-Solver++(2M)", "Euler-Maruyama"};

/* An unstable run (an SDE step too large for its eta, an overflow, ...) must not hand back
 * NaN, or the garbage that follows particles so large that their squared distances to the
 * data overflow (every softmax weight underflows: D = 0), as samples. So the chunk's
 * particles are scanned (check_finite) before the last step and at the end: finite, and
 * |z| <= sqrt(R / d) with R = (largest finite value) / 4, and, for a run from the source,
 * within UNSTABLE_REACH times the field's reach. One scan each, next to the chunk's K steps
 * of field evaluations. */
static adv_status check_chunk(adv_sampler *s, int64_t first, int64_t cnt, const char *when) {
    if (!s->o.check_finite) return ADV_OK;
    int ok = 1;
    double zmax = 0.0;
    adv_status st = advi_all_finite(s->ctx, s->field->precision, s->zc,
                                    (size_t)cnt * (size_t)s->d, 0, &ok, &zmax);
    if (st != ADV_OK) return st;
    const double limit = advi_distance_limit(s->field->precision, s->d);
    if (ok && zmax <= limit && zmax <= s->unstable_at) return ADV_OK;
    char what[128];
    if (ok && zmax <= limit)
        snprintf(what, sizeof what, "reached |z| = %g, %g times beyond where the field's "
                 "marginals reach (%g)", zmax, UNSTABLE_REACH, s->unstable_at / UNSTABLE_REACH);
    else if (ok)
        snprintf(what, sizeof what, "reached |z| = %g, beyond what %s distances hold (%g)", zmax,
                 advi_precision_name(s->field->precision), limit);
    else
        snprintf(what, sizeof what, "became NaN or Inf");
    // A user callback may itself return NaN or huge values, which the particles cannot tell
    // from an unstable run.
    const char *cause = s->field->kind != ADV_FIELD_USER ? "it is unstable for this field"
                        : ok ? "the user field's callback returned huge values, or the run is "
                               "unstable for this field"
                             : "the user field's callback returned non-finite values, or the run "
                               "is unstable for this field";
    // Multi-stage velocity steps on a Karras grid are the usual culprit: its last intervals
    // span noise levels 2^rho apart, and a stage evaluated at the near end of such a step
    // sees the singular b'/b there. With VP (b ~ sqrt(1 - t): the interval's 1 - t shrinks
    // by q = 2^(2 rho)) a Heun step multiplies z - D by about -q/8; Euler and the
    // exponential steps do not amplify.
    const int multistage = is_fixed_rk(s->o.method) && s->o.method != ADV_METHOD_EULER;
    const char *fix = s->o.method == ADV_METHOD_SDE ? "use more steps or a smaller eta"
                      : multistage && s->o.grid == ADV_GRID_KARRAS
                          ? "use more steps, a uniform or cosine time grid, or an exponential "
                            "method (DDIM, DPM-Solver++(2M))"
                          : "use more steps";
    return advi_fail(s->ctx, ADV_ERR_NONFINITE,
                     "particles %lld..%lld %s %s the %s run on [%g, %g] (%lld steps%s): %s; %s",
                     (long long)first, (long long)(first + cnt - 1), what, when,
                     METHOD_NAMES[s->o.method], s->o.t0, s->o.t1, (long long)s->K,
                     s->o.grid == ADV_GRID_KARRAS ? ", Karras grid" : "", cause, fix);
}

static adv_status chunk_finish(adv_sampler *s) {
    int64_t first, cnt;
    chunk_rows(s, &first, &cnt);
    adv_status st = ADV_OK;
    if ((st = check_chunk(s, first, cnt, "during")) != ADV_OK) return st;
    if (s->staged)
        st = advi_download(s->ctx, (char *)s->z + (size_t)first * s->row, s->zc, (size_t)cnt * s->row);
    if (st != ADV_OK) return st;
    double tmin = s->o.t1;
    if (s->o.method == ADV_METHOD_DOPRI5) {
        for (int64_t i = 0; i < cnt; ++i) {
            if (s->dnacc[i] + (s->exp_end ? 1 : 0) > s->stats.steps)
                s->stats.steps = s->dnacc[i] + (s->exp_end ? 1 : 0);
            if (s->dstatus[i] == P_FAILED) {
                s->stats.failed++;
                tmin = fmin(tmin, s->dt[i]);
            }
        }
        if (s->exp_end) // the exponential last step
            for (int64_t i = 0; i < cnt; ++i) s->stats.accepted += s->dstatus[i] != P_FAILED;
    } else {
        s->stats.steps = s->K;
        s->stats.accepted += cnt * s->K;
    }
    if (s->stats.particles == 0 || tmin < s->stats.t_reached) s->stats.t_reached = tmin;
    s->stats.particles += cnt;
    s->stats.chunks += 1;
    s->chunk += 1;
    s->chunk_started = 0;
    if (s->chunk == s->nchunks) {
        s->finished = 1;
        s->stats.completed = 1;
    }
    return ADV_OK;
}

/* Whether the current chunk has taken all its steps and only chunk_finish is left: the state
 * of the last snapshot (which comes before the finish), restored from a checkpoint saved in
 * its callback. Fixed-step: K steps; DOPRI5: landed after the exponential step, or past the
 * last segment when there is neither a tail nor an exponential step. */
static int chunk_integrated(const adv_sampler *s) {
    if (s->o.method != ADV_METHOD_DOPRI5) return s->step == s->K;
    return s->seg == s->k_ode + 2 || (s->seg == s->k_ode + 1 && !has_tail(s) && !s->exp_end);
}

/* One step of the current chunk (see adv_sampler_advance). */
static adv_status chunk_step(adv_sampler *s) {
    int64_t first, cnt;
    chunk_rows(s, &first, &cnt);
    adv_status st;
    const int64_t ke = s->o.save_every;
    if (s->o.method == ADV_METHOD_DOPRI5) {
        // Segments 1..k_ode end at grid times; segment k_ode + 1 is the tail (has_tail).
        const int in_grid = s->seg >= 1 && s->seg <= s->k_ode;
        const int in_tail = has_tail(s) && s->seg == s->k_ode + 1;
        int done = 1;
        if (in_grid || in_tail) {
            if ((st = dp_round(s, cnt, dp_segment_end(s, s->seg), &done)) != ADV_OK) return st;
            s->step++;
        }
        if (!done) return ADV_OK;
        if (in_grid) { // segment end reached by every particle
            // The next segment is set before the snapshot, so that a checkpoint saved from its
            // callback resumes after it.
            const int64_t seg = s->seg;
            s->seg = seg < s->k_ode ? (seg + ke < s->k_ode ? seg + ke : s->k_ode) : s->k_ode + 1;
            if (ke > 0 && seg % ke == 0 && (st = snapshot(s, seg / ke, seg, s->grid[seg])) != ADV_OK)
                return st;
            if (s->seg <= s->k_ode || has_tail(s)) return ADV_OK; // the next segment, or the tail
        }
        if (s->exp_end) {
            if ((st = check_chunk(s, first, cnt, "before the last step of")) != ADV_OK) return st;
            for (int64_t i = 0; i < cnt; ++i) s->dmask[i] = s->dstatus[i] != P_FAILED;
            if ((st = exp_step(s, cnt, s->t_adapt_end, s->grid[s->K], 0, s->dmask)) != ADV_OK) return st;
            for (int64_t i = 0; i < cnt; ++i)
                if (s->dstatus[i] != P_FAILED) s->dt[i] = s->grid[s->K];
            s->seg = s->k_ode + 2; // landed: only chunk_finish is left (chunk_integrated)
            if (ke > 0 && s->K % ke == 0 && (st = snapshot(s, s->K / ke, s->K, s->grid[s->K])) != ADV_OK)
                return st;
        }
        return chunk_finish(s);
    }
    const int64_t k = s->step;
    const double t = s->grid[k], u = s->grid[k + 1];
    const int last = k == s->K - 1;
    if (last && k > 0 && (st = check_chunk(s, first, cnt, "before the last step of")) != ADV_OK)
        return st;
    if (s->o.method == ADV_METHOD_DDIM || s->o.method == ADV_METHOD_DPM2M)
        st = exp_step(s, cnt, t, u, s->o.method == ADV_METHOD_DPM2M, NULL);
    else if (s->o.method == ADV_METHOD_SDE)
        st = last ? ode_last_step(s, cnt, t, u) : sde_step(s, cnt, first, k, t, u - t);
    else if (last && s->exp_end)
        st = exp_step(s, cnt, t, u, 0, NULL);
    else
        st = rk_step(s, cnt, t, u - t);
    if (st != ADV_OK) return st;
    s->step = k + 1;
    if (ke > 0 && s->step % ke == 0 && (st = snapshot(s, s->step / ke, s->step, u)) != ADV_OK) return st;
    if (s->step == s->K) return chunk_finish(s);
    return ADV_OK;
}

/* ---- runs ---------------------------------------------------------------------------- */

static adv_status check_particles(adv_sampler *s, int64_t n, void *z) {
    adv_context *ctx = s->ctx;
    if (!z) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "z (particles) is NULL");
    if (n < 1) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n is %lld, must be >= 1", (long long)n);
    size_t bytes;
    if (!advi_mul_size(&bytes, (size_t)n, s->row) || n > INT64_MAX / 8)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n x d overflows");
    if (s->o.trajectory) {
        // Snapshots are written into the trajectory while z (or its chunk) is still advanced:
        // shared memory would feed snapshots back into the particles.
        size_t traj_bytes;
        const size_t slots = 1 + (size_t)(s->K / s->o.save_every);
        if (!advi_mul_size(&traj_bytes, bytes, slots))
            return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "the trajectory's size overflows");
        if (advi_spans_overlap(s->o.trajectory, traj_bytes, z, bytes))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "z overlaps the trajectory buffer");
    }
    return ADV_OK;
}

static adv_status setup_run(adv_sampler *s, int64_t n, void *z) {
    s->running = 0;
    s->finished = 0;
    s->n = n;
    s->z = z;
    s->cs = s->o.chunk_size > 0 ? s->o.chunk_size : DEFAULT_CHUNK;
    if (s->cs > n) s->cs = n;
    s->nchunks = (n + s->cs - 1) / s->cs;
    s->chunk = 0;
    s->chunk_started = 0;
    s->step = 0;
    s->seg = 0;
    s->has_prev = 0;
    s->h_prev = 0.0;
    memset(&s->stats, 0, sizeof s->stats);
    s->stats.struct_size = sizeof s->stats;
    s->stats.t_reached = s->o.t1;
    adv_status st = alloc_run(s);
    if (st != ADV_OK) return st;
    s->running = 1;
    return ADV_OK;
}

adv_status adv_sampler_begin(adv_sampler *s, int64_t n, void *z) {
    if (!s) return ADV_ERR_NULL_POINTER;
    advi_clear_error(s->ctx);
    adv_status st = not_running(s, "adv_sampler_begin");
    if (st != ADV_OK) return st;
    st = check_particles(s, n, z);
    if (st != ADV_OK) return st;
    if (s->o.check_finite && !s->o.init_from_source) {
        int ok = 1;
        size_t count = (size_t)n * (size_t)s->d;
        if (s->staged)
            ok = advi_cpu_all_finite(s->ctx, s->field->precision, z, count, 0, NULL);
        else if ((st = advi_all_finite(s->ctx, s->field->precision, z, count, 0, &ok, NULL)) != ADV_OK)
            return st;
        if (!ok) return advi_fail(s->ctx, ADV_ERR_NONFINITE, "z (initial particles) contains NaN or Inf");
    }
    return setup_run(s, n, z);
}

static void copy_stats(const adv_sampler *s, adv_sampler_stats *out) {
    if (!out) return;
    adv_sampler_stats tmp = s->stats;
    tmp.struct_size = sizeof tmp;
    size_t sz = out->struct_size >= sizeof(size_t) && out->struct_size <= sizeof tmp ? out->struct_size
                                                                                     : sizeof tmp;
    memcpy(out, &tmp, sz);
    out->struct_size = sz;
}

adv_status adv_sampler_advance(adv_sampler *s, int64_t max_steps, int *done,
                               adv_sampler_stats *stats) {
    if (!s) return ADV_ERR_NULL_POINTER;
    advi_clear_error(s->ctx);
    adv_status st = not_running(s, "adv_sampler_advance"); // the outer run is left as it is
    if (st != ADV_OK) return st;
    if (done) *done = 0;
    if (!s->running) return advi_fail(s->ctx, ADV_ERR_INVALID_VALUE, "no run in progress (call adv_sampler_begin)");
    if (max_steps < 0) return advi_fail(s->ctx, ADV_ERR_INVALID_VALUE, "max_steps = %lld < 0", (long long)max_steps);
    int64_t budget = max_steps;
    s->busy = 1;
    while (!s->finished && budget > 0) {
        if (!s->chunk_started && (st = chunk_start(s)) != ADV_OK) break;
        // A chunk restored at its end has only its finish left, which is not a step.
        if (chunk_integrated(s)) {
            if ((st = chunk_finish(s)) != ADV_OK) break;
            continue;
        }
        if ((st = chunk_step(s)) != ADV_OK) break;
        budget--;
    }
    s->busy = 0;
    if (st != ADV_OK) s->running = 0; // a failed step leaves the chunk in an unknown state
    if (done) *done = s->finished;
    copy_stats(s, stats);
    return st;
}

adv_status adv_sampler_run(adv_sampler *s, int64_t n, void *z, adv_sampler_stats *stats) {
    adv_status st = adv_sampler_begin(s, n, z);
    if (st != ADV_OK) return st;
    return adv_sampler_advance(s, INT64_MAX, NULL, stats);
}

adv_status adv_sampler_progress(const adv_sampler *s, double *fraction) {
    if (!s || !fraction) return ADV_ERR_NULL_POINTER;
    if (!s->running || s->nchunks == 0) {
        *fraction = s->finished ? 1.0 : 0.0;
        return ADV_OK;
    }
    double inner = 0.0;
    if (s->chunk_started) {
        if (s->o.method == ADV_METHOD_DOPRI5) {
            int64_t first, cnt;
            chunk_rows(s, &first, &cnt);
            double tmin = s->o.t1;
            for (int64_t i = 0; i < cnt; ++i)
                if (s->dstatus[i] == P_ACTIVE) tmin = fmin(tmin, s->dt[i]);
            inner = (tmin - s->o.t0) / (s->o.t1 - s->o.t0);
        } else {
            inner = (double)s->step / (double)s->K;
        }
    }
    *fraction = s->finished ? 1.0 : ((double)s->chunk + inner) / (double)s->nchunks;
    return ADV_OK;
}

adv_status adv_sample(adv_field *field, const adv_sampler_opts *opts, int64_t n, void *z,
                      adv_sampler_stats *stats) {
    adv_sampler *s = NULL;
    adv_status st = adv_sampler_create(field, opts, &s);
    if (st != ADV_OK) return st;
    st = adv_sampler_run(s, n, z, stats);
    adv_sampler_destroy(s);
    return st;
}

/* ---- checkpoints ----------------------------------------------------------------------
 * Layout (native little-endian; a byte-order word rejects others):
 *   "ADVCKPT\0" u32 version u32 0x01020304 u64 fingerprint
 *   i64 n, d, chunk_size, K; i32 precision, method
 *   i64 chunk, step, seg; i32 chunk_started, has_prev; f64 h_prev
 *   stats: i64 particles chunks steps accepted rejected evaluations particle_evaluations
 *          failed snapshots; f64 t_reached; i32 completed
 *   i64 rows (of the current chunk); i32 has_controller, has_prev_denoiser
 *   [controller: f64 t[rows] h[rows] errp[rows]; i64 nacc[rows] nrej[rows]; u8 status[rows];
 *    k1 rows x d]   [previous denoiser rows x d]
 *   particles n x d
 *   u64 FNV-1a 64 of every byte before it */

/* 2: the fingerprint covers the field's data (and the FNV offset). 3: the same layout, but
 * saved from the snapshot callback a position may be a chunk's end (step K; DOPRI5 segment
 * k_ode + 2), which a version-2 reader would step past: it refuses version 3, this reader
 * takes both. */
#define CKPT_VERSION 3u
#define CKPT_VERSION_OLDEST 2u
static const char CKPT_MAGIC[8] = {'A', 'D', 'V', 'C', 'K', 'P', 'T', '\0'};

typedef struct ckpt_io {
    FILE *fp;
    uint64_t hash;
    int err;
    int errnum; /* errno of the first failed write */
} ckpt_io;

static void put(ckpt_io *io, const void *p, size_t n) {
    if (io->err || n == 0) return;
    if (fwrite(p, 1, n, io->fp) != n) io->err = 1, io->errnum = errno;
    io->hash = advi_fnv1a(io->hash, p, n);
}
static void put_i64(ckpt_io *io, int64_t v) { put(io, &v, 8); }
static void put_i32(ckpt_io *io, int32_t v) { put(io, &v, 4); }
static void put_f64(ckpt_io *io, double v) { put(io, &v, 8); }

static void get(ckpt_io *io, void *p, size_t n) {
    if (io->err || n == 0) return;
    if (fread(p, 1, n, io->fp) != n) {
        io->err = 1;
        memset(p, 0, n);
    }
}
static int64_t get_i64(ckpt_io *io) { int64_t v = 0; get(io, &v, 8); return v; }
static int32_t get_i32(ckpt_io *io) { int32_t v = 0; get(io, &v, 4); return v; }
static double get_f64(ckpt_io *io) { double v = 0; get(io, &v, 8); return v; }

/* Hash of everything a run's result depends on besides the particles: the options, the grid
 * and the field's numbers (its data and weights or parameters: advi_field_hash). */
static adv_status fingerprint(adv_sampler *s, uint64_t *out) {
    uint64_t h = ADVI_FNV_OFFSET;
    const adv_sampler_opts *o = &s->o;
    int64_t iv[] = {o->method, o->steps, o->grid, o->max_steps, o->diffusion != NULL, (int64_t)o->seed,
                    o->init_from_source, s->cs, o->save_every, s->info.kind, s->info.precision,
                    s->info.dim, s->info.n_data, s->info.schedule.kind};
    double dv[] = {o->t0, o->t1, o->rho, o->atol, o->rtol, o->h_init, o->h_min, o->h_max, o->safety,
                   o->pi_alpha, o->pi_beta, o->eta, s->info.sigma, s->info.schedule.beta_min,
                   s->info.schedule.beta_max, s->info.schedule.sigma_min, s->info.schedule.sigma_max};
    h = advi_fnv1a(h, iv, sizeof iv);
    h = advi_fnv1a(h, dv, sizeof dv);
    h = advi_fnv1a(h, s->grid, (size_t)(s->K + 1) * sizeof(double));
    adv_status st = advi_field_hash(s->field, &h);
    *out = h;
    return st;
}

/* Host copy of particle rows [r0, r0 + rows) as they stand now (the current chunk's rows come
 * from the working copy). */
static adv_status rows_to_host(adv_sampler *s, int64_t r0, int64_t rows, void *dst) {
    int64_t first = 0, cnt = 0;
    if (s->chunk_started) chunk_rows(s, &first, &cnt);
    const int host_z = s->staged || s->ctx->backend != ADV_BACKEND_CUDA;
    if (s->chunk_started && r0 >= first && r0 + rows <= first + cnt)
        return advi_download(s->ctx, dst, (char *)s->zc + (size_t)(r0 - first) * s->row, (size_t)rows * s->row);
    const void *src = (char *)s->z + (size_t)r0 * s->row;
    if (host_z) {
        memcpy(dst, src, (size_t)rows * s->row);
        return ADV_OK;
    }
    return advi_download(s->ctx, dst, src, (size_t)rows * s->row);
}

adv_status adv_sampler_checkpoint_save(adv_sampler *s, const char *path) {
    if (!s) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = s->ctx;
    advi_clear_error(ctx);
    if (!path) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "path is NULL");
    if (!s->running) return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "no run in progress to checkpoint");
    // Inside a step (a field or diffusion callback) the state is half updated; at a snapshot
    // it is the state after that snapshot's step.
    if (s->busy && !s->in_snapshot)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "a checkpoint can be saved between advances "
                         "or from the snapshot callback, not from inside a step");
    // Staged, the snapshot callback was handed its rows in host_rows and may still read them.
    const int own_stage = s->in_snapshot && s->staged;
    void *own = own_stage ? malloc((size_t)s->cs * s->row) : NULL;
    void *stage = own_stage ? own : s->host_rows;
    if (!stage) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "checkpoint staging");
    advi_file file;
    adv_status st = advi_file_begin(ctx, path, &file);
    if (st != ADV_OK) {
        free(own);
        return st;
    }
    ckpt_io io = {file.fp, ADVI_FNV_OFFSET, 0, 0};
    int64_t first = 0, cnt = 0;
    if (s->chunk_started) chunk_rows(s, &first, &cnt);
    const int has_ctl = s->chunk_started && s->o.method == ADV_METHOD_DOPRI5;
    const int has_prev = s->chunk_started && s->o.method == ADV_METHOD_DPM2M && s->has_prev;
    put(&io, CKPT_MAGIC, 8);
    uint32_t ver = CKPT_VERSION, bom = 0x01020304u;
    put(&io, &ver, 4);
    put(&io, &bom, 4);
    uint64_t fp = 0;
    if ((st = fingerprint(s, &fp)) != ADV_OK) {
        advi_file_commit(ctx, &file, path, 0);
        free(own);
        return st;
    }
    put(&io, &fp, 8);
    put_i64(&io, s->n), put_i64(&io, s->d), put_i64(&io, s->cs), put_i64(&io, s->K);
    put_i32(&io, s->info.precision), put_i32(&io, s->o.method);
    put_i64(&io, s->chunk), put_i64(&io, s->step), put_i64(&io, s->seg);
    put_i32(&io, s->chunk_started), put_i32(&io, s->has_prev), put_f64(&io, s->h_prev);
    const adv_sampler_stats *t = &s->stats;
    int64_t sv[] = {t->particles, t->chunks, t->steps, t->accepted, t->rejected, t->evaluations,
                    t->particle_evaluations, t->failed, t->snapshots};
    for (size_t k = 0; k < sizeof sv / sizeof sv[0]; ++k) put_i64(&io, sv[k]);
    put_f64(&io, t->t_reached), put_i32(&io, t->completed);
    put_i64(&io, cnt), put_i32(&io, has_ctl), put_i32(&io, has_prev);
    if (has_ctl) {
        put(&io, s->dt, (size_t)cnt * 8), put(&io, s->dh, (size_t)cnt * 8), put(&io, s->derrp, (size_t)cnt * 8);
        put(&io, s->dnacc, (size_t)cnt * 8), put(&io, s->dnrej, (size_t)cnt * 8), put(&io, s->dstatus, (size_t)cnt);
        st = advi_download(ctx, stage, s->buf[0], (size_t)cnt * s->row);
        put(&io, stage, (size_t)cnt * s->row);
    }
    if (st == ADV_OK && has_prev) {
        st = advi_download(ctx, stage, s->buf[1], (size_t)cnt * s->row);
        put(&io, stage, (size_t)cnt * s->row);
    }
    // Particles in pieces aligned with the chunks (the host staging holds one chunk).
    for (int64_t r = 0; st == ADV_OK && r < s->n; r += s->cs) {
        int64_t rows = s->n - r < s->cs ? s->n - r : s->cs;
        if ((st = rows_to_host(s, r, rows, stage)) == ADV_OK) put(&io, stage, (size_t)rows * s->row);
    }
    free(own);
    uint64_t h = io.hash;
    if (st == ADV_OK) put(&io, &h, 8);
    if (st == ADV_OK && io.err)
        st = advi_fail(ctx, ADV_ERR_IO, "writing %s failed: %s", path, strerror(io.errnum));
    if (st != ADV_OK) {
        advi_file_commit(ctx, &file, path, 0); // removes the temporary; st stays reported
        return st;
    }
    return advi_file_commit(ctx, &file, path, 1);
}

/* Whether a started DOPRI5 chunk can be in segment `seg` (chunk_start, chunk_step): 0 with
 * nothing adaptive, a multiple of save_every below k_ode, k_ode, k_ode + 1 (the tail or the
 * exponential step), k_ode + 2 (landed after the exponential step). Another value would
 * round forever or take the exponential step from the wrong time. */
static int dp_segment_valid(const adv_sampler *s, int64_t seg) {
    const int64_t ke = s->o.save_every;
    if (seg == 0) return s->k_ode == 0 && !has_tail(s);
    if (seg < s->k_ode) return seg > 0 && ke > 0 && seg % ke == 0;
    return seg <= s->k_ode + 1 || (seg == s->k_ode + 2 && s->exp_end);
}

adv_status adv_sampler_checkpoint_load(adv_sampler *s, const char *path, int64_t n, void *z) {
    if (!s) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = s->ctx;
    advi_clear_error(ctx);
    if (!path) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "path is NULL");
    adv_status st = not_running(s, "adv_sampler_checkpoint_load");
    if (st != ADV_OK) return st;
    st = check_particles(s, n, z);
    if (st != ADV_OK) return st;
    FILE *fp = fopen(path, "rb");
    if (!fp) return advi_fail(ctx, ADV_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    // Pass 1: the checksum of the whole file, streamed.
    uint64_t h = ADVI_FNV_OFFSET, stored = 0;
    unsigned char buf[1 << 16], tail[8];
    size_t have_tail = 0, total = 0, got;
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0) {
        total += got;
        // The stream is tail[0..have_tail) + buf[0..got); all but its last 8 bytes are hashed
        // (those are the stored checksum, or more data still to come).
        size_t len = have_tail + got, keep = len < 8 ? len : 8, hashed = len - keep;
        size_t from_tail = hashed < have_tail ? hashed : have_tail;
        h = advi_fnv1a(h, tail, from_tail);
        h = advi_fnv1a(h, buf, hashed - from_tail);
        unsigned char nt[8];
        for (size_t k = 0; k < keep; ++k) {
            size_t pos = hashed + k; // position in the combined stream
            nt[k] = pos < have_tail ? tail[pos] : buf[pos - have_tail];
        }
        memcpy(tail, nt, keep);
        have_tail = keep;
    }
    int read_err = ferror(fp);
    if (read_err) {
        fclose(fp);
        return advi_fail(ctx, ADV_ERR_IO, "reading %s failed", path);
    }
    const size_t header = 8 + 4 + 4 + 8 + 4 * 8 + 2 * 4 + 3 * 8 + 2 * 4 + 8 + 9 * 8 + 8 + 4 + 8 + 2 * 4;
    if (total < header + 8 || have_tail != 8) {
        fclose(fp);
        return advi_fail(ctx, ADV_ERR_FORMAT, "%s is too short (%zu bytes) to be a checkpoint", path, total);
    }
    memcpy(&stored, tail, 8);
    if (stored != h) {
        fclose(fp);
        return advi_fail(ctx, ADV_ERR_FORMAT, "%s: checksum mismatch (corrupt or truncated file)", path);
    }
    // Pass 2: parse.
    rewind(fp);
    ckpt_io io = {fp, 0, 0, 0};
    char magic[8];
    uint32_t ver = 0, bom = 0;
    uint64_t fpr = 0;
    get(&io, magic, 8);
    get(&io, &ver, 4);
    get(&io, &bom, 4);
    get(&io, &fpr, 8);
    int64_t cn = get_i64(&io), cd = get_i64(&io), ccs = get_i64(&io), cK = get_i64(&io);
    int32_t cprec = get_i32(&io), cmeth = get_i32(&io);
    if (io.err || memcmp(magic, CKPT_MAGIC, 8) != 0 || ver < CKPT_VERSION_OLDEST ||
        ver > CKPT_VERSION || bom != 0x01020304u) {
        fclose(fp);
        return advi_fail(ctx, ADV_ERR_FORMAT, "%s is not an advect checkpoint of format version %u "
                         "to %u", path, CKPT_VERSION_OLDEST, CKPT_VERSION);
    }
    if (cn != n) {
        fclose(fp);
        return advi_fail(ctx, ADV_ERR_DIMENSION_MISMATCH, "%s holds %lld particles, not %lld", path,
                         (long long)cn, (long long)n);
    }
    // The configuration: the fingerprint needs the run's chunk size, set as begin would.
    int64_t cs = s->o.chunk_size > 0 ? s->o.chunk_size : DEFAULT_CHUNK;
    if (cs > n) cs = n;
    int64_t saved_cs = s->cs;
    s->cs = cs;
    uint64_t mine = 0;
    st = fingerprint(s, &mine);
    s->cs = saved_cs;
    if (st != ADV_OK) {
        fclose(fp);
        return st;
    }
    if (cd != s->d || ccs != cs || cK != s->K || cprec != (int32_t)s->info.precision ||
        cmeth != (int32_t)s->o.method || fpr != mine) {
        fclose(fp);
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "%s was written by a sampler with another configuration or field", path);
    }
    int64_t chunk = get_i64(&io), step = get_i64(&io), seg = get_i64(&io);
    int32_t started = get_i32(&io), hp = get_i32(&io);
    double hprev = get_f64(&io);
    adv_sampler_stats t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    t.particles = get_i64(&io), t.chunks = get_i64(&io), t.steps = get_i64(&io);
    t.accepted = get_i64(&io), t.rejected = get_i64(&io), t.evaluations = get_i64(&io);
    t.particle_evaluations = get_i64(&io), t.failed = get_i64(&io), t.snapshots = get_i64(&io);
    t.t_reached = get_f64(&io);
    t.completed = get_i32(&io);
    int64_t rows = get_i64(&io);
    int32_t has_ctl = get_i32(&io), has_prev = get_i32(&io);
    int64_t nchunks = (n + cs - 1) / cs;
    int64_t exp_rows = 0;
    if (chunk >= 0 && chunk < nchunks) exp_rows = n - chunk * cs < cs ? n - chunk * cs : cs;
    size_t row = s->row;
    size_t expect = header + (has_ctl ? (size_t)rows * (5 * 8 + 1) + (size_t)rows * row : 0) +
                    (has_prev ? (size_t)rows * row : 0) + (size_t)n * row + 8;
    int bad = io.err || chunk < 0 || chunk > nchunks || (started != 0 && started != 1) ||
              (started && chunk == nchunks) || (started ? rows != exp_rows : rows != 0) ||
              has_ctl != (started && s->o.method == ADV_METHOD_DOPRI5) ||
              (has_prev && !(started && s->o.method == ADV_METHOD_DPM2M)) || step < 0 ||
              seg < 0 || seg > s->k_ode + 2 ||
              (s->o.method == ADV_METHOD_DOPRI5 ? started && !dp_segment_valid(s, seg) : seg != 0) ||
              step > (s->o.method == ADV_METHOD_DOPRI5 ? INT64_MAX : s->K) || total != expect;
    if (bad) {
        fclose(fp);
        return advi_fail(ctx, ADV_ERR_FORMAT, "%s: inconsistent checkpoint contents", path);
    }
    // Everything checks out: set up the run and restore.
    st = setup_run(s, n, z);
    if (st != ADV_OK) {
        fclose(fp);
        return st;
    }
    s->chunk = chunk;
    s->step = step;
    s->seg = seg;
    s->chunk_started = started;
    s->has_prev = hp;
    s->h_prev = hprev;
    s->stats = t;
    s->finished = chunk == nchunks;
    if (has_ctl) {
        get(&io, s->dt, (size_t)rows * 8), get(&io, s->dh, (size_t)rows * 8), get(&io, s->derrp, (size_t)rows * 8);
        get(&io, s->dnacc, (size_t)rows * 8), get(&io, s->dnrej, (size_t)rows * 8), get(&io, s->dstatus, (size_t)rows);
        get(&io, s->host_rows, (size_t)rows * row);
        if (!io.err) st = advi_upload(ctx, s->buf[0], s->host_rows, (size_t)rows * row);
    }
    if (st == ADV_OK && has_prev) {
        get(&io, s->host_rows, (size_t)rows * row);
        if (!io.err) st = advi_upload(ctx, s->buf[1], s->host_rows, (size_t)rows * row);
    }
    // A valid checksum does not make a file one this sampler wrote (it may be forged): the
    // scalars and the controller state must be ones it can continue from. z is untouched.
    // (h_prev is +Inf after a step from a_t = 0 or onto b = 0, the default ends.)
    int forged = (hp != 0 && hp != 1) || isnan(hprev) || hprev == -HUGE_VAL ||
                 (started && s->o.method == ADV_METHOD_DPM2M && hp != has_prev);
    for (int64_t r = 0; has_ctl && !io.err && r < rows; ++r)
        forged |= s->dstatus[r] > P_FAILED || !(s->dt[r] >= s->o.t0 && s->dt[r] <= s->o.t1) ||
                  !(s->dh[r] >= 0.0 && s->dh[r] < HUGE_VAL) ||
                  !(s->derrp[r] > 0.0 && s->derrp[r] < HUGE_VAL) || s->dnacc[r] < 0 ||
                  s->dnrej[r] < 0;
    if (st == ADV_OK && !io.err && forged) {
        fclose(fp);
        s->running = 0;
        return advi_fail(ctx, ADV_ERR_FORMAT, "%s: inconsistent controller state", path);
    }
    const int host_z = s->staged || ctx->backend != ADV_BACKEND_CUDA;
    for (int64_t r = 0; st == ADV_OK && !io.err && r < n; r += cs) {
        int64_t rr = n - r < cs ? n - r : cs;
        char *dst = (char *)z + (size_t)r * row;
        if (host_z) {
            get(&io, dst, (size_t)rr * row);
        } else {
            get(&io, s->host_rows, (size_t)rr * row);
            if (!io.err) st = advi_upload(ctx, dst, s->host_rows, (size_t)rr * row);
        }
    }
    fclose(fp);
    if (st == ADV_OK && io.err) st = advi_fail(ctx, ADV_ERR_IO, "reading %s failed", path);
    if (st == ADV_OK && started) st = chunk_attach(s, 1);
    if (st != ADV_OK) s->running = 0;
    return st;
}
