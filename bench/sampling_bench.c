/* Sampling benchmark (public API only): advects N particles from the Gaussian source to an
 * empirical target of n data points (linear schedule, sigma = 1, uniform weights) with each
 * sampler method on a uniform grid of K steps, and reports particle-steps/s, data-point
 * interactions/s and the share of the run spent inside the interaction sum.
 *
 * Every case is validated before it is timed: (1) one field evaluation over all N particles
 * at t = 1/2 against a direct double-precision evaluation of the closed-form field on a few
 * rows; (2) the full run on a few rows against a double-precision host integration of the
 * same method on the same grid from the same start (SDE: its eta = 0 drift path, plus every
 * final particle inside the data's bounding box, where the noise-free exponential last step
 * must put it). After timing, the last run's rows must equal the warm-up run's. A case that
 * fails is not timed and the program exits 1.
 *
 * interaction_share, fixed-step methods: the interaction sum alone (adv_interaction_execute
 * with the field's own shapes: queries = the particles chunk by chunk, keys = a_t y, values = y,
 * beta = log w) is timed at each time t_k = k/K of the uniform K-step grid (λ and the key scale
 * of that step: the engine's cost depends on λ R^2, see docs/api.md), the faster of two runs
 * each after a warm-up, and averaged; share = that mean x (field evaluations per particle) /
 * (the sampler's fastest repetition). It is an estimate (methods with stages evaluate between
 * grid times, and noise bursts hit the two timings at different moments), so it can exceed 1
 * slightly.
 * DOPRI5 evaluates the field at per-particle times, on a shrinking set of active particles, so
 * one lone call at a common time does not stand for its evaluations. Its share is measured over
 * one whole extra run instead: the same sampler on a user field whose callback evaluates the
 * empirical field's denoiser (adv_field_eval_times: the engine's per-row mode) and adds up the
 * wall time spent in there (synchronised on both sides); share = that time / the run's time.
 * The extra run is not one of the timed repetitions.
 *
 * Exit status: 0 all cases validated; 1 some case failed validation; 2 usage or library
 * error; 3 the requested backend is unavailable. */
#define _POSIX_C_SOURCE 200809L
#include <advect/advect.h>
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ADVECT_BENCH_COMMIT
#define ADVECT_BENCH_COMMIT "unknown"
#endif

#define MAX_LIST 16
#define CHECK_ROWS 16
#define SEED 20240611ULL
#define DEFAULT_CHUNK 65536

typedef struct method_name {
    const char *name;
    adv_method method;
} method_name;

static const method_name METHODS[] = {
    {"euler", ADV_METHOD_EULER}, {"heun", ADV_METHOD_HEUN},     {"midpoint", ADV_METHOD_MIDPOINT},
    {"rk4", ADV_METHOD_RK4},     {"dopri5", ADV_METHOD_DOPRI5}, {"ddim", ADV_METHOD_DDIM},
    {"dpm2m", ADV_METHOD_DPM2M}, {"sde", ADV_METHOD_SDE}};
#define N_METHODS ((int)(sizeof METHODS / sizeof METHODS[0]))

typedef struct options {
    adv_backend backend;
    adv_precision precision;
    int64_t data_sizes[MAX_LIST];
    int n_data_sizes;
    int64_t particles[MAX_LIST];
    int n_particles;
    int64_t dims[MAX_LIST];
    int n_dims;
    int methods[N_METHODS];
    int n_methods;
    int64_t steps;
    int reps; /* 0 = default for the backend */
    int threads;
    int64_t chunk;
    double sde_t0;
    int header;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: sampling_bench [options]\n"
            "  --device cpu|cuda|auto    backend (default cpu)\n"
            "  --precision f32|f64       (default f32)\n"
            "  --data-sizes LIST         data points n (default 1e4,1e5)\n"
            "  --particles LIST          particles N (default 1e4)\n"
            "  --dims LIST               d values (default 2,64)\n"
            "  --methods LIST            euler,heun,midpoint,rk4,dopri5,ddim,dpm2m,sde\n"
            "                            (default: all eight)\n"
            "  --steps K                 uniform grid steps (default 20)\n"
            "  --reps R                  timed repetitions (default 5 on CPU, 10 on CUDA)\n"
            "  --threads T               CPU threads (default: OpenMP's)\n"
            "  --chunk C                 sampler chunk size (default 65536)\n"
            "  --sde-t0 T                start time of the SDE (default 0.05; ODEs start at 0)\n"
            "  --no-header               do not print the CSV header\n");
}

static int parse_methods(const char *s, int *out) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int m = 0; m < N_METHODS; ++m)
            if (!strcmp(tok, METHODS[m].name)) found = m;
        if (found < 0 || n == N_METHODS) {
            free(copy);
            return -1;
        }
        out[n++] = found;
    }
    free(copy);
    return n;
}

static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->backend = ADV_BACKEND_CPU;
    o->precision = ADV_FLOAT32;
    o->data_sizes[0] = 10000, o->data_sizes[1] = 100000, o->n_data_sizes = 2;
    o->particles[0] = 10000, o->n_particles = 1;
    o->dims[0] = 2, o->dims[1] = 64, o->n_dims = 2;
    o->n_methods = parse_methods("euler,heun,midpoint,rk4,dopri5,ddim,dpm2m,sde", o->methods);
    o->steps = 20;
    o->chunk = DEFAULT_CHUNK;
    o->sde_t0 = 0.05;
    o->header = 1;
    for (int a = 1; a < argc; ++a) {
        const char *arg = argv[a];
        const char *val = a + 1 < argc ? argv[a + 1] : NULL;
        int64_t one[MAX_LIST];
#define NEED_VALUE()                                                      \
    do {                                                                  \
        if (!val) {                                                       \
            fprintf(stderr, "sampling_bench: %s needs a value\n", arg);   \
            return -1;                                                    \
        }                                                                 \
        ++a;                                                              \
    } while (0)
        if (!strcmp(arg, "--device")) {
            NEED_VALUE();
            if (!strcmp(val, "cpu")) o->backend = ADV_BACKEND_CPU;
            else if (!strcmp(val, "cuda")) o->backend = ADV_BACKEND_CUDA;
            else if (!strcmp(val, "auto")) o->backend = ADV_BACKEND_AUTO;
            else goto bad;
        } else if (!strcmp(arg, "--precision")) {
            NEED_VALUE();
            if (!strcmp(val, "f32")) o->precision = ADV_FLOAT32;
            else if (!strcmp(val, "f64")) o->precision = ADV_FLOAT64;
            else goto bad;
        } else if (!strcmp(arg, "--data-sizes")) {
            NEED_VALUE();
            if ((o->n_data_sizes = parse_list(val, o->data_sizes, MAX_LIST)) <= 0) goto bad;
        } else if (!strcmp(arg, "--particles")) {
            NEED_VALUE();
            if ((o->n_particles = parse_list(val, o->particles, MAX_LIST)) <= 0) goto bad;
        } else if (!strcmp(arg, "--dims")) {
            NEED_VALUE();
            if ((o->n_dims = parse_list(val, o->dims, MAX_LIST)) <= 0) goto bad;
        } else if (!strcmp(arg, "--methods")) {
            NEED_VALUE();
            if ((o->n_methods = parse_methods(val, o->methods)) <= 0) goto bad;
        } else if (!strcmp(arg, "--steps")) {
            NEED_VALUE();
            if (parse_list(val, one, 1) != 1) goto bad;
            o->steps = one[0];
        } else if (!strcmp(arg, "--reps")) {
            NEED_VALUE();
            o->reps = atoi(val);
            if (o->reps < 1) goto bad;
        } else if (!strcmp(arg, "--threads")) {
            NEED_VALUE();
            o->threads = atoi(val);
            if (o->threads < 1) goto bad;
        } else if (!strcmp(arg, "--chunk")) {
            NEED_VALUE();
            if (parse_list(val, one, 1) != 1) goto bad;
            o->chunk = one[0];
        } else if (!strcmp(arg, "--sde-t0")) {
            NEED_VALUE();
            char *end = NULL;
            o->sde_t0 = strtod(val, &end);
            if (end == val || *end || !(o->sde_t0 > 0.0 && o->sde_t0 < 1.0)) goto bad;
        } else if (!strcmp(arg, "--no-header")) {
            o->header = 0;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "sampling_bench: unknown option %s\n", arg);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "sampling_bench: bad value '%s' for %s\n", val, arg);
        return -1;
#undef NEED_VALUE
    }
    return 0;
}


/* ---- host reference: the closed-form field and the samplers in double ----------------- */

typedef struct reference {
    const void *y; /* n x d data, benchmark precision (the rounded values the library sees) */
    adv_precision p;
    int64_t n, d;
    double *s;     /* n scratch scores */
} reference;

/* Linear schedule, sigma = 1, uniform weights: D_t(z) = sum_i softmax_i(-|z - t y_i|^2 /
 * (2 (1-t)^2)) y_i, with the t = 1 limit (nearest point) never needed (t < 1 here). */
static void ref_denoiser(const reference *r, double t, const double *z, double *D) {
    const double b = 1.0 - t, lam = 1.0 / (2.0 * b * b);
    double smax = -INFINITY;
    for (int64_t i = 0; i < r->n; ++i) {
        double acc = 0.0;
        for (int64_t k = 0; k < r->d; ++k) {
            double diff = z[k] - t * get(r->y, r->p, (size_t)(i * r->d + k));
            acc += diff * diff;
        }
        r->s[i] = -lam * acc;
        if (r->s[i] > smax) smax = r->s[i];
    }
    double sum = 0.0;
    for (int64_t k = 0; k < r->d; ++k) D[k] = 0.0;
    for (int64_t i = 0; i < r->n; ++i) {
        double w = exp(r->s[i] - smax);
        sum += w;
        for (int64_t k = 0; k < r->d; ++k) D[k] += w * get(r->y, r->p, (size_t)(i * r->d + k));
    }
    for (int64_t k = 0; k < r->d; ++k) D[k] /= sum;
}

/* v = a' D + b' (z - a D)/b = (D - z)/(1 - t) for the linear schedule. */
static void ref_velocity(const reference *r, double t, const double *z, double *v) {
    ref_denoiser(r, t, z, v);
    for (int64_t k = 0; k < r->d; ++k) v[k] = (v[k] - z[k]) / (1.0 - t);
}

/* One particle through the method on grid[0..K], as host/sampler.c does it: RK steps, and a
 * last step to t = 1 (b = 0) in exponential form (z <- D); DDIM/DPM2M exponential steps
 * throughout; SDE with eta = 0: Euler steps on v, then the exponential last step. */
static void ref_integrate(const reference *r, adv_method m, const double *grid, int64_t K,
                          double *z, double *work) {
    const int64_t d = r->d;
    double *k1 = work, *k2 = work + d, *k3 = work + 2 * d, *k4 = work + 3 * d, *y = work + 4 * d,
           *Dprev = work + 5 * d;
    double h_prev = 0.0;
    int has_prev = 0;
    for (int64_t k = 0; k < d; ++k) Dprev[k] = 0.0; // read (times c = 0) before the first D
    for (int64_t s = 0; s < K; ++s) {
        const double t = grid[s], u = grid[s + 1], h = u - t;
        const int exp_step = m == ADV_METHOD_DDIM || m == ADV_METHOD_DPM2M || s == K - 1;
        if (exp_step) {
            ref_denoiser(r, t, z, k1);
            double ratio = (1.0 - u) / (1.0 - t), cd = u - t * ratio;
            double lt = t > 0.0 ? log(t / (1.0 - t)) : -HUGE_VAL;
            double lu = u < 1.0 ? log(u / (1.0 - u)) : HUGE_VAL;
            double hl = lu - lt, c = 0.0;
            if (m == ADV_METHOD_DPM2M && has_prev && isfinite(hl) && isfinite(h_prev) && h_prev > 0.0)
                c = hl / (2.0 * h_prev);
            for (int64_t k = 0; k < d; ++k)
                z[k] = ratio * z[k] + cd * ((1.0 + c) * k1[k] - c * Dprev[k]);
            if (m == ADV_METHOD_DPM2M) {
                memcpy(Dprev, k1, (size_t)d * sizeof(double));
                has_prev = 1;
                h_prev = hl;
            }
            continue;
        }
        switch (m) {
        case ADV_METHOD_HEUN:
            ref_velocity(r, t, z, k1);
            for (int64_t k = 0; k < d; ++k) y[k] = z[k] + h * k1[k];
            ref_velocity(r, u, y, k2);
            for (int64_t k = 0; k < d; ++k) z[k] += h * 0.5 * (k1[k] + k2[k]);
            break;
        case ADV_METHOD_MIDPOINT:
            ref_velocity(r, t, z, k1);
            for (int64_t k = 0; k < d; ++k) y[k] = z[k] + 0.5 * h * k1[k];
            ref_velocity(r, t + 0.5 * h, y, k2);
            for (int64_t k = 0; k < d; ++k) z[k] += h * k2[k];
            break;
        case ADV_METHOD_RK4:
            ref_velocity(r, t, z, k1);
            for (int64_t k = 0; k < d; ++k) y[k] = z[k] + 0.5 * h * k1[k];
            ref_velocity(r, t + 0.5 * h, y, k2);
            for (int64_t k = 0; k < d; ++k) y[k] = z[k] + 0.5 * h * k2[k];
            ref_velocity(r, t + 0.5 * h, y, k3);
            for (int64_t k = 0; k < d; ++k) y[k] = z[k] + h * k3[k];
            ref_velocity(r, u, y, k4);
            for (int64_t k = 0; k < d; ++k)
                z[k] += h * (k1[k] / 6.0 + k2[k] / 3.0 + k3[k] / 3.0 + k4[k] / 6.0);
            break;
        default: /* EULER, and SDE with eta = 0 */
            ref_velocity(r, t, z, k1);
            for (int64_t k = 0; k < d; ++k) z[k] += h * k1[k];
            break;
        }
    }
}

/* ---- one case ----------------------------------------------------------------------------- */


typedef struct case_buffers {
    void *yh, *zh, *z0h, *ch, *wh, *lwh;          /* host */
    void *yd, *zd, *outd, *cd, *keysd, *lwd, *td;  /* context memory */
    double *zref, *work, *s, *times, *grid;
    int64_t *rows;
} case_buffers;

static void print_row(const options *o, adv_backend be, const char *method, int64_t n, int64_t N,
                      int64_t d, double med, double tmin, double tmax, double psteps,
                      double inter, double share, double err) {
    printf("%s,%s,%s,%lld,%lld,%lld,%lld,%.6e,%.6e,%.6e,%.4e,%.4e,%.4f,%.3e,%s\n",
           device_name(be), o->precision == ADV_FLOAT64 ? "f64" : "f32", method, (long long)n,
           (long long)N, (long long)d, (long long)o->steps, med, tmin, tmax, psteps, inter, share,
           err, ADVECT_BENCH_COMMIT);
    fflush(stdout);
}

/* Times the interaction sum alone with the shapes of one field evaluation over all N
 * particles in chunks, at every time of the uniform grid (see the file comment). Returns the
 * mean seconds per evaluation, or -1 on error. */
static double time_interaction(adv_context *ctx, const options *o, int64_t n, int64_t N, int64_t d,
                               case_buffers *b, adv_status *st) {
    const adv_precision p = o->precision;
    const size_t es = p == ADV_FLOAT64 ? 8 : 4;
    const int64_t chunk = o->chunk < N ? o->chunk : N, tail = N % chunk;
    adv_interaction_plan *plans[2] = {NULL, NULL};
    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = p;
    desc.kernel = ADV_KERNEL_SQDIST;
    desc.n_keys = n;
    desc.dim = d;
    desc.value_dim = d;
    desc.check_finite = 0;
    double result = -1.0, total = 0.0;
    for (int k = -1; k < o->steps; ++k) { /* k = -1: warm-up at t = 1/2 */
        // keysd holds (1/2) y. At t, the field's keys are t y with λ = 1/(2 (1 - t)^2); the
        // same scores come from the keys (1/2) y with λ (2t)^2 / (2 (1 - t)^2).
        const double t = k < 0 ? 0.5 : (double)k / (double)o->steps;
        desc.lambda = 4.0 * t * t / (2.0 * (1.0 - t) * (1.0 - t));
        for (int i = 0; i < (tail ? 2 : 1); ++i) {
            adv_interaction_plan_destroy(plans[i]);
            plans[i] = NULL;
            desc.n_queries = i ? tail : chunk;
            if ((*st = adv_interaction_plan_create(ctx, &desc, &plans[i]))) goto done;
        }
        double fastest = INFINITY;
        for (int run = 0; run < 2; ++run) {
            double a = now_s();
            for (int64_t first = 0; first < N; first += chunk) {
                int last = first + chunk > N;
                const char *zq = (const char *)b->zd + (size_t)(first * d) * es;
                char *oq = (char *)b->outd + (size_t)(first * d) * es;
                if ((*st = adv_interaction_execute(plans[last], zq, b->keysd, b->lwd, b->yd, NULL,
                                                   oq)))
                    goto done;
            }
            if ((*st = adv_context_synchronize(ctx))) goto done;
            fastest = fmin(fastest, now_s() - a);
        }
        if (k >= 0) total += fastest;
    }
    result = total / (double)o->steps;
done:
    adv_interaction_plan_destroy(plans[0]);
    adv_interaction_plan_destroy(plans[1]);
    return result;
}

/* Counts the values of z (count, precision p) that are not finite, and, separately, the
 * finite ones outside the data box [lo - tol, hi + tol]: the validation of every run. */
static int64_t count_outside_box(const void *z, adv_precision p, size_t count, double lo,
                                 double hi, double tol, int64_t *non_finite) {
    int64_t outside = 0, nf = 0;
    for (size_t i = 0; i < count; ++i) {
        const double v = get(z, p, i);
        if (!isfinite(v)) ++nf;
        else if (v < lo - tol || v > hi + tol) ++outside;
    }
    *non_finite = nf;
    return outside;
}

/* DOPRI5's interaction share: a user field that returns the empirical field's denoiser and
 * counts the wall time spent computing it (see the file comment). */
typedef struct timed_field {
    adv_field *inner;
    adv_context *ctx;
    double seconds;
    int64_t calls;
    adv_status st;
} timed_field;

static int timed_denoiser(void *user, const adv_field_request *rq) {
    timed_field *w = user;
    // Synchronise first so that the sampler's queued work is not counted (CUDA; a no-op on
    // the CPU), and after, so that the evaluation is.
    if ((w->st = adv_context_synchronize(w->ctx)) != ADV_OK) return 1;
    const double a = now_s();
    w->st = rq->times ? adv_field_eval_times(w->inner, rq->times, rq->n, rq->z, NULL, NULL,
                                             rq->denoiser)
                      : adv_field_eval(w->inner, rq->t, rq->n, rq->z, NULL, NULL, rq->denoiser);
    if (w->st == ADV_OK) w->st = adv_context_synchronize(w->ctx);
    w->seconds += now_s() - a;
    ++w->calls;
    return w->st != ADV_OK;
}

/* One DOPRI5 run from the start state z0h through the timed wrapper of `field`: the share of
 * the run inside the field's denoiser, or NAN with *st set (library error) or with *st =
 * ADV_OK and a message when the run's particles fail the finiteness / data-box check. */
static double dopri5_share(adv_context *ctx, adv_field *field, const adv_sampler_opts *so,
                           int64_t N, int64_t d, const void *z0h, void *zd, void *zh,
                           adv_precision p, double lo, double hi, double tol, const double *ref,
                           const int64_t *rows, int n_rows, adv_status *st) {
    const size_t es = p == ADV_FLOAT64 ? 8 : 4, bz = (size_t)(N * d) * es;
    timed_field w = {field, ctx, 0.0, 0, ADV_OK};
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = timed_denoiser;
    uo.user = &w;
    uo.outputs = ADV_FIELD_DENOISER; // velocity from D through the (linear) schedule, sigma 1
    adv_field *wrap = NULL;
    adv_sampler *s = NULL;
    double share = NAN, total = 0.0;
    if ((*st = adv_field_create_user(ctx, p, d, &uo, &wrap)) ||
        (*st = adv_sampler_create(wrap, so, &s)) ||
        (*st = adv_memcpy(ctx, zd, z0h, bz, ADV_COPY_HOST_TO_CONTEXT)) ||
        (*st = adv_context_synchronize(ctx)))
        goto done;
    total = now_s();
    *st = adv_sampler_run(s, N, zd, NULL);
    total = now_s() - total;
    if (*st == ADV_OK && w.st != ADV_OK) *st = w.st;
    if (*st || (*st = adv_memcpy(ctx, zh, zd, bz, ADV_COPY_CONTEXT_TO_HOST))) goto done;
    int64_t non_finite = 0;
    const int64_t bad = count_outside_box(zh, p, (size_t)(N * d), lo, hi, tol, &non_finite) +
                        non_finite;
    // The wrapped run takes the field's times rounded to its precision, so its adaptive steps
    // may differ slightly from the timed runs': the difference is reported, not checked.
    double diff = 0.0;
    for (int c = 0; c < n_rows; ++c)
        for (int64_t k = 0; k < d; ++k)
            diff = fmax(diff, fabs(get(zh, p, (size_t)(rows[c] * d + k)) - ref[c * d + k]));
    fprintf(stderr, "# dopri5 share run: %.4g s in %lld denoiser calls of %.4g s; rows differ "
            "from the timed runs' by %.3g; %lld values non-finite or outside the data box\n",
            w.seconds, (long long)w.calls, total, diff, (long long)bad);
    if (bad) {
        fprintf(stderr, "VALIDATION FAILED: the dopri5 share run's particles\n");
        goto done;
    }
    share = w.seconds / total;
done:
    adv_sampler_destroy(s);
    adv_field_destroy(wrap);
    return share;
}

/* Returns 0 validated and timed, 1 validation failed, 2 library error. */
static int run_case(adv_context *ctx, const options *o, int mi, int64_t n, int64_t N, int64_t d) {
    const adv_precision p = o->precision;
    const adv_method method = METHODS[mi].method;
    const char *mname = METHODS[mi].name;
    const size_t es = p == ADV_FLOAT64 ? 8 : 4;
    const size_t by = (size_t)(n * d) * es, bz = (size_t)(N * d) * es;
    const adv_backend be = adv_context_backend(ctx);
    const int reps = o->reps ? o->reps : (be == ADV_BACKEND_CUDA ? 10 : 5);
    const int n_rows = N < CHECK_ROWS ? (int)N : CHECK_ROWS;
    const double tol = p == ADV_FLOAT64 ? 1e-8 : 1e-3;   /* one field evaluation */
    const double ttol = p == ADV_FLOAT64 ? 1e-7 : 1e-3;  /* whole trajectories (see README) */
    int rc = 2;
    adv_status st = ADV_OK;
    adv_field *field = NULL;
    adv_sampler *sampler = NULL, *check = NULL;
    case_buffers b;
    memset(&b, 0, sizeof b);
    b.yh = malloc(by), b.zh = malloc(bz), b.z0h = malloc(bz), b.wh = malloc(by);
    b.lwh = malloc((size_t)n * es), b.ch = malloc((size_t)(CHECK_ROWS * d) * es);
    b.zref = malloc(sizeof(double) * (size_t)(CHECK_ROWS * d));
    b.work = malloc(sizeof(double) * (size_t)(6 * d));
    b.s = malloc(sizeof(double) * (size_t)n);
    b.times = malloc(sizeof(double) * (size_t)reps);
    b.grid = malloc(sizeof(double) * (size_t)(o->steps + 1));
    b.rows = malloc(sizeof(int64_t) * CHECK_ROWS);
    if (!b.yh || !b.zh || !b.z0h || !b.wh || !b.lwh || !b.ch || !b.zref || !b.work || !b.s ||
        !b.times || !b.grid || !b.rows) {
        fprintf(stderr, "sampling_bench: host allocation failed (n=%lld N=%lld d=%lld)\n",
                (long long)n, (long long)N, (long long)d);
        goto done;
    }
    for (int c = 0; c < n_rows; ++c)
        b.rows[c] = n_rows > 1 ? (int64_t)((double)c * (double)(N - 1) / (double)(n_rows - 1)) : 0;

    /* Data uniform on [0,1)^d from a fixed seed, rounded once to the working precision. */
    uint64_t state = SEED ^ ((uint64_t)n << 20) ^ (uint64_t)d;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)(n * d); ++i) {
        set(b.yh, p, i, uniform01(&state));
        double v = get(b.yh, p, i);
        lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        set(b.wh, p, i, 0.5 * v); /* keys a_t y at t = 1/2, for the interaction timing */
    }
    for (int64_t i = 0; i < n; ++i) set(b.lwh, p, (size_t)i, -log((double)n));
    const double yscale = fmax(fabs(lo), fabs(hi));

    if ((st = adv_malloc(ctx, by, &b.yd)) || (st = adv_malloc(ctx, bz, &b.zd)) ||
        (st = adv_malloc(ctx, bz, &b.outd)) || (st = adv_malloc(ctx, by, &b.keysd)) ||
        (st = adv_malloc(ctx, (size_t)n * es, &b.lwd)) || (st = adv_malloc(ctx, (size_t)N * es, &b.td)) ||
        (st = adv_malloc(ctx, (size_t)(CHECK_ROWS * d) * es, &b.cd)) ||
        (st = adv_memcpy(ctx, b.yd, b.yh, by, ADV_COPY_HOST_TO_CONTEXT)) ||
        (st = adv_memcpy(ctx, b.keysd, b.wh, by, ADV_COPY_HOST_TO_CONTEXT)) ||
        (st = adv_memcpy(ctx, b.lwd, b.lwh, (size_t)n * es, ADV_COPY_HOST_TO_CONTEXT)))
        goto lib_error;
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
    eo.copy_data = 0; /* the field borrows yd */
    if ((st = adv_field_create_empirical(ctx, p, b.yd, NULL, n, d, &eo, &field))) goto lib_error;

    adv_sampler_opts so;
    adv_sampler_default_opts(&so);
    so.method = method;
    so.steps = o->steps;
    so.grid = ADV_GRID_UNIFORM;
    so.t0 = method == ADV_METHOD_SDE ? o->sde_t0 : 0.0;
    so.t1 = 1.0;
    so.seed = 7;
    so.chunk_size = o->chunk;
    so.check_finite = 0; /* the peers check nothing either */
    if ((st = adv_sampler_create(field, &so, &sampler)) ||
        (st = adv_sampler_time_grid(sampler, b.grid)))
        goto lib_error;

    /* Start: exact samples of alpha_{t0} (N(0, I) at t0 = 0), kept on the host to reset every
     * repetition outside the timed region. */
    if ((st = adv_field_sample(field, so.t0, 11, 0, N, b.zd)) ||
        (st = adv_memcpy(ctx, b.z0h, b.zd, bz, ADV_COPY_CONTEXT_TO_HOST)))
        goto lib_error;

    /* (1) one field evaluation over all N particles at t = 1/2 against the closed form. */
    double err_field = 0.0;
    {
        if ((st = adv_field_eval(field, 0.5, N, b.zd, NULL, NULL, b.outd)) ||
            (st = adv_memcpy(ctx, b.zh, b.outd, bz, ADV_COPY_CONTEXT_TO_HOST)))
            goto lib_error;
        reference ref = {b.yh, p, n, d, b.s};
        for (int c = 0; c < n_rows; ++c) {
            double *zr = b.zref, *D = b.work;
            for (int64_t k = 0; k < d; ++k) zr[k] = get(b.z0h, p, (size_t)(b.rows[c] * d + k));
            ref_denoiser(&ref, 0.5, zr, D);
            for (int64_t k = 0; k < d; ++k) {
                double e = fabs(get(b.zh, p, (size_t)(b.rows[c] * d + k)) - D[k]) / yscale;
                if (!(e <= err_field)) err_field = e; /* NaN propagates */
            }
        }
    }

    /* (1b) the same at per-particle times (the engine's per-row mode, which DOPRI5 uses),
     * t_i in [0.05, 0.8]; the times are read back as the library received them. */
    {
        for (int64_t i = 0; i < N; ++i) set(b.zh, p, (size_t)i, 0.05 + 0.75 * (double)(i % 17) / 16.0);
        if ((st = adv_memcpy(ctx, b.td, b.zh, (size_t)N * es, ADV_COPY_HOST_TO_CONTEXT)) ||
            (st = adv_field_eval_times(field, b.td, N, b.zd, NULL, NULL, b.outd)))
            goto lib_error;
        for (int c = 0; c < n_rows; ++c) b.zref[c] = get(b.zh, p, (size_t)b.rows[c]); /* t of row c */
        if ((st = adv_memcpy(ctx, b.zh, b.outd, bz, ADV_COPY_CONTEXT_TO_HOST))) goto lib_error;
        reference ref = {b.yh, p, n, d, b.s};
        for (int c = 0; c < n_rows; ++c) {
            const double t = b.zref[c];
            double *zr = b.work + d, *D = b.work; /* work holds 6 d */
            for (int64_t k = 0; k < d; ++k) zr[k] = get(b.z0h, p, (size_t)(b.rows[c] * d + k));
            ref_denoiser(&ref, t, zr, D);
            for (int64_t k = 0; k < d; ++k) {
                double e = fabs(get(b.zh, p, (size_t)(b.rows[c] * d + k)) - D[k]) / yscale;
                if (!(e <= err_field)) err_field = e;
            }
        }
    }

    /* (2) the warm-up run, then the trajectory check on the check rows. */
    adv_sampler_stats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    double t_first = now_s();
    if ((st = adv_sampler_run(sampler, N, b.zd, &stats))) goto lib_error;
    t_first = now_s() - t_first;
    if ((st = adv_memcpy(ctx, b.zh, b.zd, bz, ADV_COPY_CONTEXT_TO_HOST))) goto lib_error;
    int64_t non_finite = 0;
    const int64_t outside = count_outside_box(b.zh, p, (size_t)(N * d), lo, hi, ttol * yscale,
                                              &non_finite);
    /* Rows the reference integrates: few when n d is large (each row costs evaluations x n x d). */
    int n_ref = n_rows;
    while (n_ref > 2 && (double)n_ref * (double)n * (double)d * 4.0 * (double)o->steps > 4e9) n_ref /= 2;
    double err_traj = 0.0;
    if (method != ADV_METHOD_DOPRI5) {
        const void *got = b.zh;
        if (method == ADV_METHOD_SDE) {
            /* Its eta = 0 path (no noise) from the same start, run on the check rows only:
             * a particle's result does not depend on the batch it is in. */
            adv_sampler_opts co = so;
            co.eta = 0.0;
            for (int c = 0; c < n_ref; ++c)
                memcpy((char *)b.ch + (size_t)(c * d) * es,
                       (const char *)b.z0h + (size_t)(b.rows[c] * d) * es, (size_t)d * es);
            if ((st = adv_memcpy(ctx, b.cd, b.ch, (size_t)(n_ref * d) * es, ADV_COPY_HOST_TO_CONTEXT)) ||
                (st = adv_sampler_create(field, &co, &check)) ||
                (st = adv_sampler_run(check, n_ref, b.cd, NULL)) ||
                (st = adv_memcpy(ctx, b.ch, b.cd, (size_t)(n_ref * d) * es, ADV_COPY_CONTEXT_TO_HOST)))
                goto lib_error;
            got = b.ch;
        }
        reference ref = {b.yh, p, n, d, b.s};
        for (int c = 0; c < n_ref; ++c) {
            const int64_t row = method == ADV_METHOD_SDE ? c : b.rows[c];
            double *zr = b.zref;
            for (int64_t k = 0; k < d; ++k) zr[k] = get(b.z0h, p, (size_t)(b.rows[c] * d + k));
            ref_integrate(&ref, method, b.grid, o->steps, zr, b.work);
            for (int64_t k = 0; k < d; ++k) {
                double e = fabs(get(got, p, (size_t)(row * d + k)) - zr[k]) / yscale;
                if (!(e <= err_traj)) err_traj = e;
            }
        }
    }
    /* Keep the warm-up's check rows to compare with the last timed run. */
    for (int c = 0; c < n_rows; ++c)
        for (int64_t k = 0; k < d; ++k)
            b.zref[c * d + k] = get(b.zh, p, (size_t)(b.rows[c] * d + k));
    const double err = fmax(err_field, err_traj);
    fprintf(stderr,
            "# %s %s %s n=%lld N=%lld d=%lld K=%lld: first run %.3g s, %lld evaluations/particle; "
            "field err %.3g (tol %g), trajectory err %.3g on %d rows (tol %g)%s, "
            "%lld non-finite, %lld outside the data box\n",
            device_name(be), p == ADV_FLOAT64 ? "f64" : "f32", mname, (long long)n, (long long)N,
            (long long)d, (long long)o->steps, t_first,
            (long long)(stats.particle_evaluations / N), err_field, tol, err_traj,
            method == ADV_METHOD_DOPRI5 ? 0 : n_ref, ttol,
            method == ADV_METHOD_SDE ? " [eta = 0 path]" : "", (long long)non_finite,
            (long long)outside);
    if (non_finite || outside || !(err_field <= tol) || !(err_traj <= ttol)) {
        fprintf(stderr, "VALIDATION FAILED: %s %s n=%lld N=%lld d=%lld; not timed\n",
                device_name(be), mname, (long long)n, (long long)N, (long long)d);
        print_row(o, be, mname, n, N, d, NAN, NAN, NAN, NAN, NAN, NAN, err);
        rc = 1;
        goto done;
    }

    /* Timed runs: the start state is restored before each, outside the clock. */
    for (int r = 0; r < reps; ++r) {
        if ((st = adv_memcpy(ctx, b.zd, b.z0h, bz, ADV_COPY_HOST_TO_CONTEXT))) goto lib_error;
        memset(&stats, 0, sizeof stats);
        stats.struct_size = sizeof stats;
        double a = now_s();
        if ((st = adv_sampler_run(sampler, N, b.zd, &stats))) goto lib_error;
        b.times[r] = now_s() - a; /* adv_sampler_run is synchronous on both backends */
    }
    double tmin = b.times[0], tmax = b.times[0];
    for (int r = 1; r < reps; ++r) tmin = fmin(tmin, b.times[r]), tmax = fmax(tmax, b.times[r]);
    const double med = median_of(b.times, reps);

    /* The last run must reproduce the warm-up's rows (same start, same seed). */
    if ((st = adv_memcpy(ctx, b.zh, b.zd, bz, ADV_COPY_CONTEXT_TO_HOST))) goto lib_error;
    double drift = 0.0;
    for (int c = 0; c < n_rows; ++c)
        for (int64_t k = 0; k < d; ++k) {
            double e = fabs(get(b.zh, p, (size_t)(b.rows[c] * d + k)) - b.zref[c * d + k]) / yscale;
            if (!(e <= drift)) drift = e;
        }
    rc = 0;
    if (!(drift <= tol)) {
        fprintf(stderr, "VALIDATION FAILED after the timed runs: %s n=%lld N=%lld d=%lld (%.3g)\n",
                mname, (long long)n, (long long)N, (long long)d, drift);
        rc = 1;
    }

    /* The interaction sum alone, same shapes; DOPRI5 evaluates at per-particle times on the
     * active particles: its share is measured over one wrapped run (see the file comment). */
    const double evals = (double)stats.particle_evaluations / (double)N;
    double share = NAN;
    if (method == ADV_METHOD_DOPRI5) {
        share = dopri5_share(ctx, field, &so, N, d, b.z0h, b.zd, b.zh, p, lo, hi, ttol * yscale,
                             b.zref, b.rows, n_rows, &st);
        if (st != ADV_OK) goto lib_error;
        if (!(share == share)) rc = 1; // its particles failed the data-box check
    } else {
        double t_int = time_interaction(ctx, o, n, N, d, &b, &st);
        if (t_int < 0.0) goto lib_error;
        share = t_int * evals / tmin; // per-time minima against the fastest run: noise hurts least
        fprintf(stderr, "# interaction sum alone (N=%lld x n=%lld, d=%lld): %.4g s x %.0f "
                "evaluations = %.4g s of %.4g s\n", (long long)N, (long long)n, (long long)d,
                t_int, evals, t_int * evals, tmin);
    }
    print_row(o, be, mname, n, N, d, med, tmin, tmax, (double)stats.accepted / med,
              (double)stats.particle_evaluations * (double)n / med, share, err);
    goto done;

lib_error:
    fprintf(stderr, "sampling_bench: %s (%s): %s\n", adv_status_name(st), adv_status_string(st),
            adv_context_last_error(ctx));
    rc = 2;
done:
    adv_sampler_destroy(check);
    adv_sampler_destroy(sampler);
    adv_field_destroy(field);
    void *dev[] = {b.yd, b.zd, b.outd, b.cd, b.keysd, b.lwd, b.td};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i)
        if (dev[i]) adv_free(ctx, dev[i]);
    free(b.yh), free(b.zh), free(b.z0h), free(b.ch), free(b.wh), free(b.lwh);
    free(b.zref), free(b.work), free(b.s), free(b.times), free(b.grid), free(b.rows);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    int exit_code = 0;
    adv_context *ctx = bench_open_context("sampling_bench", o.backend, o.threads, &exit_code);
    if (!ctx) return exit_code;
    const char *omp = getenv("OMP_NUM_THREADS");
    fprintf(stderr, "# advect %s, backend %s, cpu threads %s, K = %lld uniform, commit %s\n",
            adv_version(), device_name(adv_context_backend(ctx)),
            o.threads ? "set by --threads" : (omp ? omp : "OpenMP default"), (long long)o.steps,
            ADVECT_BENCH_COMMIT);
    if (o.header)
        printf("device,precision,method,n_data,n_particles,d,steps,median_s,min_s,max_s,"
               "particle_steps_per_s,interactions_per_s,interaction_share,max_rel_err,commit\n");
    fflush(stdout);
    int worst = 0;
    for (int in = 0; in < o.n_data_sizes; ++in)
        for (int iN = 0; iN < o.n_particles; ++iN)
            for (int id = 0; id < o.n_dims; ++id)
                for (int im = 0; im < o.n_methods; ++im) {
                    int rc = run_case(ctx, &o, o.methods[im], o.data_sizes[in], o.particles[iN],
                                      o.dims[id]);
                    if (rc > worst) worst = rc;
                }
    adv_context_destroy(ctx);
    return worst;
}
