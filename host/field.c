/* Public field entry points (include/advect/field.h): schedules, argument checks, the set-up
 * of each field kind (validation, normalised log-weights, the factorisations behind the
 * Gaussian fields, computed once on the host in double), and evaluation, which dispatches to
 * the interaction-sum engine and to the backend's elementwise operations
 * (advi_sampling_ops: host/cpu/sampler_cpu.c, host/cuda/sampler_cuda.c).
 *
 * Empirical evaluation at a common time is one interaction sum with
 *   queries z, keys a_t y, values y, beta = log w, lambda = 1/(2 b_t^2 sigma^2), gamma = 1,
 * so that s_ij = log w_j - |z_i - a_t y_j|^2 / (2 b_t^2 sigma^2) (math.md's table writes
 * gamma = a_t, which would score |a_t z - y|^2; see docs/sampling.md). */
#include "sampling_internal.h"
#include "../kernels/common/field_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers ------------------------------------------------------------------------- */

/* Context-memory allocation that, unlike adv_malloc/adv_free, leaves the context's last
 * error alone (they run on cleanup paths after an error was recorded). */
adv_status advi_ctx_alloc(adv_context *ctx, size_t bytes, void **ptr) {
    *ptr = NULL;
    if (bytes == 0) bytes = 1;
    if (ctx->backend == ADV_BACKEND_CUDA) return advi_cuda_malloc(ctx, bytes, ptr);
    *ptr = advi_host_alloc(ctx, bytes);
    if (!*ptr) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "%zu host bytes", bytes);
    return ADV_OK;
}

void advi_ctx_free(adv_context *ctx, void *ptr) {
    if (!ptr) return;
    if (ctx->backend == ADV_BACKEND_CUDA)
        (void)advi_cuda_free(ctx, ptr);
    else
        advi_host_free(ctx, ptr);
}

adv_status advi_ctx_copy(adv_context *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes == 0 || dst == src) return ADV_OK;
    if (ctx->backend != ADV_BACKEND_CUDA) {
        memmove(dst, src, bytes);
        return ADV_OK;
    }
    return advi_cuda_memcpy(ctx, dst, src, bytes, ADV_COPY_CONTEXT_TO_CONTEXT);
}

adv_status advi_buffer_reserve(adv_context *ctx, advi_buffer *b, size_t bytes) {
    if (b->bytes >= bytes && b->ptr) return ADV_OK;
    if (b->ptr) advi_ctx_free(ctx, b->ptr);
    b->ptr = NULL;
    b->bytes = 0;
    void *p = NULL;
    adv_status st = advi_ctx_alloc(ctx, bytes, &p);
    if (st != ADV_OK) return st;
    b->ptr = p;
    b->bytes = bytes;
    return ADV_OK;
}

void advi_buffer_release(adv_context *ctx, advi_buffer *b) {
    if (b->ptr) advi_ctx_free(ctx, b->ptr);
    b->ptr = NULL;
    b->bytes = 0;
}

adv_status advi_upload(adv_context *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return ADV_OK;
    if (ctx->backend != ADV_BACKEND_CUDA) {
        memmove(dst, src, bytes);
        return ADV_OK;
    }
    return advi_cuda_memcpy(ctx, dst, src, bytes, ADV_COPY_HOST_TO_CONTEXT);
}

adv_status advi_download(adv_context *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return ADV_OK;
    if (ctx->backend != ADV_BACKEND_CUDA) {
        memmove(dst, src, bytes);
        return ADV_OK;
    }
    return advi_cuda_memcpy(ctx, dst, src, bytes, ADV_COPY_CONTEXT_TO_HOST);
}

/* Copies an options struct given by the caller over the defaults: any struct_size from the
 * first member up to the current size is accepted (older callers pass a prefix). */
static int copy_opts(void *dst, size_t dst_size, const void *src) {
    size_t sz;
    memcpy(&sz, src, sizeof sz);
    if (sz < sizeof(size_t) || sz > dst_size) return 0;
    memcpy(dst, src, sz);
    memcpy(dst, &dst_size, sizeof dst_size);
    return 1;
}

/* ---- schedules ----------------------------------------------------------------------- */

adv_status adv_schedule_default(adv_schedule *s, adv_schedule_kind kind) {
    if (!s) return ADV_ERR_NULL_POINTER;
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
    s->kind = kind;
    s->beta_min = 0.1;
    s->beta_max = 20.0;
    s->sigma_min = 0.01;
    s->sigma_max = 80.0;
    if (kind < ADV_SCHEDULE_LINEAR || kind > ADV_SCHEDULE_USER) return ADV_ERR_INVALID_VALUE;
    return ADV_OK;
}

int advi_schedule_builtin(const adv_schedule *s, int *kind, double *p0, double *p1) {
    *p0 = *p1 = 0.0;
    switch (s->kind) {
    case ADV_SCHEDULE_USER: return 0;
    case ADV_SCHEDULE_VP: *kind = ADVF_VP, *p0 = s->beta_min, *p1 = s->beta_max; return 1;
    case ADV_SCHEDULE_VE: *kind = ADVF_VE, *p0 = s->sigma_min, *p1 = s->sigma_max; return 1;
    case ADV_SCHEDULE_COSINE: *kind = ADVF_COSINE; return 1;
    default: *kind = ADVF_LINEAR; return 1;
    }
}

void advi_schedule_eval(const adv_schedule *s, double t, double ab[4]) {
    int kind;
    double p0, p1;
    if (advi_schedule_builtin(s, &kind, &p0, &p1)) {
        advf_schedule(kind, p0, p1, t, ab);
        return;
    }
    ab[0] = ab[1] = ab[2] = ab[3] = NAN;
    s->fn(s->user, t, ab);
}

adv_status advi_schedule_check(adv_context *ctx, const adv_schedule *s) {
    if (s->struct_size != sizeof *s)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "schedule.struct_size is %zu, expected %zu (use adv_schedule_default)",
                         s->struct_size, sizeof *s);
    switch (s->kind) {
    case ADV_SCHEDULE_LINEAR:
    case ADV_SCHEDULE_COSINE: return ADV_OK;
    case ADV_SCHEDULE_VP:
        if (!(s->beta_min >= 0.0) || !(s->beta_max >= s->beta_min) || !(s->beta_max > 0.0) ||
            !isfinite(s->beta_max) || s->beta_max > 1e4)
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "VP schedule needs 0 <= beta_min <= beta_max, 0 < beta_max <= 1e4 "
                             "(got %g, %g)", s->beta_min, s->beta_max);
        return ADV_OK;
    case ADV_SCHEDULE_VE:
        if (!(s->sigma_min > 0.0) || !(s->sigma_max > s->sigma_min) || !isfinite(s->sigma_max))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "VE schedule needs 0 < sigma_min < sigma_max finite (got %g, %g)",
                             s->sigma_min, s->sigma_max);
        return ADV_OK;
    case ADV_SCHEDULE_USER: {
        if (!s->fn)
            return advi_fail(ctx, ADV_ERR_NULL_POINTER, "user schedule without a callback (fn)");
        const double ts[3] = {0.0, 0.5, 1.0};
        for (int k = 0; k < 3; ++k) {
            double ab[4];
            advi_schedule_eval(s, ts[k], ab);
            for (int j = 0; j < 4; ++j)
                if (!isfinite(ab[j]))
                    return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                                     "user schedule returned a non-finite value at t = %g", ts[k]);
            if (ab[0] < 0.0 || ab[1] < 0.0 || (k < 2 && !(ab[1] > 0.0)))
                return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                                 "user schedule needs a >= 0, b >= 0 and b > 0 for t < 1 "
                                 "(t = %g: a = %g, b = %g)", ts[k], ab[0], ab[1]);
        }
        return ADV_OK;
    }
    }
    return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "schedule kind %d is not known", (int)s->kind);
}

adv_status adv_schedule_eval(const adv_schedule *s, double t, double *a, double *b, double *da,
                             double *db) {
    if (!s) return ADV_ERR_NULL_POINTER;
    if (s->struct_size != sizeof *s || s->kind < ADV_SCHEDULE_LINEAR || s->kind > ADV_SCHEDULE_USER)
        return ADV_ERR_INVALID_VALUE;
    if (s->kind == ADV_SCHEDULE_USER && !s->fn) return ADV_ERR_NULL_POINTER;
    if (!(t >= 0.0 && t <= 1.0)) return ADV_ERR_INVALID_VALUE;
    double ab[4];
    advi_schedule_eval(s, t, ab);
    if (a) *a = ab[0];
    if (b) *b = ab[1];
    if (da) *da = ab[2];
    if (db) *db = ab[3];
    return ADV_OK;
}

/* ---- creation ------------------------------------------------------------------------ */

adv_status adv_empirical_default_opts(adv_empirical_opts *opts) {
    if (!opts) return ADV_ERR_NULL_POINTER;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->sigma = 1.0;
    adv_schedule_default(&opts->schedule, ADV_SCHEDULE_LINEAR);
    opts->copy_data = 1;
    opts->check_finite = 1;
    return ADV_OK;
}

adv_status adv_user_field_default_opts(adv_user_field_opts *opts) {
    if (!opts) return ADV_ERR_NULL_POINTER;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->outputs = ADV_FIELD_VELOCITY;
    adv_schedule_default(&opts->schedule, ADV_SCHEDULE_LINEAR);
    opts->sigma = 1.0;
    return ADV_OK;
}

static adv_status check_common(adv_context *ctx, adv_precision precision, int64_t d,
                               adv_field **field) {
    if (!field) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "field (output handle) is NULL");
    *field = NULL;
    if (precision != ADV_FLOAT32 && precision != ADV_FLOAT64)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "precision %d is not a precision", precision);
    if (d < 1 || d > (1 << 20))
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "d is %lld, must be in [1, 2^20]", (long long)d);
    return ADV_OK;
}

static adv_field *field_new(adv_context *ctx, adv_field_kind kind, adv_precision p, int64_t d) {
    adv_field *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->ctx = ctx;
    f->kind = kind;
    f->precision = p;
    f->d = d;
    f->sigma = 1.0;
    f->keys_a = NAN;
    f->reach0 = f->reach1 = INFINITY;
    adv_schedule_default(&f->sched, ADV_SCHEDULE_LINEAR);
    return f;
}

double advi_field_reach(const adv_field *f, double t) {
    if (!(f->reach0 < INFINITY) || !(f->reach1 < INFINITY)) return INFINITY;
    double ab[4];
    advi_schedule_eval(&f->sched, t, ab);
    return fabs(ab[0]) * f->reach1 + fabs(ab[1]) * f->reach0;
}

/* Per-coordinate reach of k Gaussians (means mu, covariances S, d x d each) with positive
 * weight: max |mu_j| + ADVI_REACH_SIGMAS sqrt(S_jj) over components and coordinates. */
static double gaussians_reach(int64_t d, int64_t k, const double *w, const double *mu,
                              const double *S) {
    double r = 0.0;
    for (int64_t c = 0; c < k; ++c) {
        if (w && !(w[c] > 0.0)) continue;
        for (int64_t j = 0; j < d; ++j)
            r = fmax(r, fabs(mu[c * d + j]) +
                            ADVI_REACH_SIGMAS * sqrt(fmax(S[(c * d + j) * d + j], 0.0)));
    }
    return r;
}

/* An evaluation uses the field's scratch (den, coef, coef_host, tmp, keys, the plan) from
 * start to end, and calls out to user code (a user field's function, a user schedule): an
 * evaluation of the same field started from there would reallocate that scratch under the one
 * in progress. It is refused; other fields and objects of the context may be used. */
static adv_status field_enter(adv_field *f) {
    if (f->busy)
        return advi_fail(f->ctx, ADV_ERR_INVALID_VALUE,
                         "field is already being evaluated (re-entrant call from its callback)");
    f->busy = 1;
    return ADV_OK;
}

static void field_leave(adv_field *f) { f->busy = 0; }

adv_status adv_field_destroy(adv_field *f) {
    if (!f) return ADV_OK;
    adv_context *ctx = f->ctx;
    if (f->busy) // from its own callback: the evaluation still uses it
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "field is being evaluated: adv_field_destroy from its callback");
    // CUDA evaluations are asynchronous: nothing may be freed (allocator hooks free at once)
    // while kernels that read the data, weights or scratch are queued.
    if (ctx->backend == ADV_BACKEND_CUDA) (void)advi_cuda_synchronize(ctx);
    if (f->owns_data && f->data) advi_ctx_free(ctx, f->data);
    if (f->logw) advi_ctx_free(ctx, f->logw);
    if (f->cdf) advi_ctx_free(ctx, f->cdf);
    if (f->par) advi_ctx_free(ctx, f->par);
    if (f->plan) adv_interaction_plan_destroy(f->plan);
    free(f->par_host);
    free(f->coef_host);
    advi_buffer_release(ctx, &f->keys);
    advi_buffer_release(ctx, &f->den);
    advi_buffer_release(ctx, &f->tmp);
    advi_buffer_release(ctx, &f->coef);
    free(f);
    return ADV_OK;
}

adv_status adv_field_create_empirical(adv_context *ctx, adv_precision precision, const void *data,
                                      const void *weights, int64_t n, int64_t d,
                                      const adv_empirical_opts *opts, adv_field **field) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    adv_status st = check_common(ctx, precision, d, field);
    if (st != ADV_OK) return st;
    if (!data) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "data is NULL");
    if (n < 1) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n is %lld, must be >= 1", (long long)n);
    size_t elem = advi_real_size(precision), bytes;
    if (!advi_mul_size(&bytes, (size_t)n, (size_t)d) || !advi_mul_size(&bytes, bytes, elem) ||
        n > INT32_MAX * (int64_t)64)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n x d overflows the address space");
    adv_empirical_opts o;
    adv_empirical_default_opts(&o);
    if (opts && !copy_opts(&o, sizeof o, opts))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->struct_size is invalid (use "
                                                     "adv_empirical_default_opts)");
    if (!(o.sigma > 0.0) || !isfinite(o.sigma))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->sigma is %g, must be > 0 and finite",
                         o.sigma);
    if ((st = advi_schedule_check(ctx, &o.schedule)) != ADV_OK) return st;

    double ymax = INFINITY; // the data's largest |coordinate|, when checked
    if (o.check_finite) {
        int ok = 0;
        ymax = 0.0;
        if ((st = advi_all_finite(ctx, precision, data, (size_t)(n * d), 0, &ok, &ymax)) != ADV_OK) return st;
        if (!ok) return advi_fail(ctx, ADV_ERR_NONFINITE, "data contains NaN or Inf");
        // Squared distances between points of the data's scale must be representable: beyond,
        // every softmax weight of a particle underflows and its denoiser reads 0.
        const double limit = advi_distance_limit(precision, d) / 4.0;
        if (!(ymax <= limit))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "data of magnitude %g: squared distances at this scale overflow %s "
                             "(|y| must stay below %g); rescale the data%s", ymax,
                             advi_precision_name(precision), limit,
                             precision == ADV_FLOAT32 ? " or use float64" : "");
    }
    // Weights: validated and normalised on the host in double.
    double *w = malloc((size_t)n * sizeof *w), *cdf = malloc((size_t)n * sizeof *cdf);
    void *lw_host = malloc((size_t)n * elem);
    if (!w || !cdf || !lw_host) {
        free(w), free(cdf), free(lw_host);
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "weights staging (%lld)", (long long)n);
    }
    double total = 0.0;
    if (weights) {
        void *wh = malloc((size_t)n * elem);
        st = wh ? advi_download(ctx, wh, weights, (size_t)n * elem)
                : advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "staging of %lld weights", (long long)n);
        for (int64_t i = 0; st == ADV_OK && i < n; ++i) w[i] = advf_ld(wh, precision == ADV_FLOAT64, i);
        free(wh);
        for (int64_t i = 0; st == ADV_OK && i < n; ++i) {
            if (!isfinite(w[i])) {
                st = advi_fail(ctx, ADV_ERR_NONFINITE, "weights[%lld] is not finite", (long long)i);
            } else if (w[i] < 0.0) {
                st = advi_fail(ctx, ADV_ERR_INVALID_VALUE, "weights[%lld] = %g is negative",
                               (long long)i, w[i]);
            }
            total += w[i];
        }
        if (st == ADV_OK && !(total > 0.0) )
            st = advi_fail(ctx, ADV_ERR_INVALID_VALUE, "weights are all zero");
        if (st == ADV_OK && !isfinite(total))
            st = advi_fail(ctx, ADV_ERR_NONFINITE, "the weights' sum overflows");
    } else {
        for (int64_t i = 0; i < n; ++i) w[i] = 1.0;
        total = (double)n;
    }
    adv_field *f = NULL;
    if (st == ADV_OK) {
        double c = 0.0;
        int64_t last = 0;
        for (int64_t i = 0; i < n; ++i) {
            c += w[i] / total;
            cdf[i] = c;
            if (w[i] > 0.0) last = i;
            // log w - log total, not log(w / total): a tiny positive weight next to a huge
            // one keeps its finite log-weight (w / total would underflow to a zero weight).
            advf_st(lw_host, precision == ADV_FLOAT64, i,
                    w[i] > 0.0 ? log(w[i]) - log(total) : -INFINITY);
        }
        for (int64_t i = last; i < n; ++i) cdf[i] = 1.0; // exact top; trailing zero weights
        f = field_new(ctx, ADV_FIELD_EMPIRICAL, precision, d);
        if (!f) st = advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "field");
    }
    if (st == ADV_OK) {
        f->n = n;
        f->sigma = o.sigma;
        f->sched = o.schedule;
        f->reach0 = ADVI_REACH_SIGMAS * o.sigma; // z_t = a_t y + b_t sigma eps
        f->reach1 = ymax;
        f->outputs = ADV_FIELD_VELOCITY | ADV_FIELD_SCORE | ADV_FIELD_DENOISER;
        void *p = NULL;
        st = advi_ctx_alloc(ctx, (size_t)n * elem, &p);
        f->logw = p;
        if (st == ADV_OK) st = advi_upload(ctx, f->logw, lw_host, (size_t)n * elem);
        p = NULL;
        if (st == ADV_OK) st = advi_ctx_alloc(ctx, (size_t)n * sizeof(double), &p);
        f->cdf = p;
        if (st == ADV_OK) st = advi_upload(ctx, f->cdf, cdf, (size_t)n * sizeof(double));
        if (st == ADV_OK && o.copy_data) {
            p = NULL;
            st = advi_ctx_alloc(ctx, bytes, &p);
            f->data = p;
            f->owns_data = 1;
            if (st == ADV_OK)
                st = advi_ctx_copy(ctx, f->data, data, bytes);
        } else if (st == ADV_OK) {
            f->data = (void *)data;
        }
        double ab[4];
        advi_schedule_eval(&f->sched, 1.0, ab);
        f->singular_end = !(ab[1] > 0.0);
    }
    free(w), free(cdf), free(lw_host);
    if (st != ADV_OK) {
        adv_field_destroy(f);
        return st;
    }
    *field = f;
    return ADV_OK;
}

/* Uploads the host parameter block. */
static adv_status upload_params(adv_field *f) {
    void *p = NULL;
    adv_status st = advi_ctx_alloc(f->ctx, f->par_len * sizeof(double), &p);
    if (st != ADV_OK) return st;
    f->par = p;
    return advi_upload(f->ctx, f->par, f->par_host, f->par_len * sizeof(double));
}

/* P = L Q, Pinv = Q^T L^-1 and lam for S = L L^T and G: the joint factorisation of the
 * Gaussian fields. G may be semi-definite: eigenvalues below 1e-12 max(1, max lam) become 0
 * (a Dirac or rank-deficient target); clearly negative ones make it invalid (-1); -2: out of
 * memory. */
static int joint_factor(int64_t d, const double *L, const double *G, double *P, double *Pinv,
                        double *lam, double *work) {
    double *Li = work, *T = work + d * d, *C = work + 2 * d * d, *Q = work + 3 * d * d;
    advi_lower_inverse(d, L, Li);
    advi_matmul(d, Li, G, T);
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) {
            double s = 0.0;
            for (int64_t k = 0; k < d; ++k) s += T[i * d + k] * Li[j * d + k];
            C[i * d + j] = s;
        }
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < i; ++j) C[i * d + j] = C[j * d + i] = 0.5 * (C[i * d + j] + C[j * d + i]);
    const int rc = advi_jacobi_eigen(d, C, lam, Q);
    if (rc != 0) return rc == -2 ? -2 : -1;
    double mx = 1.0;
    for (int64_t k = 0; k < d; ++k) mx = fmax(mx, fabs(lam[k]));
    for (int64_t k = 0; k < d; ++k) {
        if (lam[k] < -1e-9 * mx) return -1;
        if (lam[k] < 1e-12 * mx) lam[k] = 0.0;
    }
    advi_matmul(d, L, Q, P);
    for (int64_t i = 0; i < d; ++i) // Pinv = Q^T Li
        for (int64_t j = 0; j < d; ++j) {
            double s = 0.0;
            for (int64_t k = 0; k < d; ++k) s += Q[k * d + i] * Li[k * d + j];
            Pinv[i * d + j] = s;
        }
    return 0;
}

static adv_status check_host_vec(adv_context *ctx, const char *name, const double *v, int64_t n) {
    if (!v) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "%s is NULL", name);
    for (int64_t k = 0; k < n; ++k)
        if (!isfinite(v[k]))
            return advi_fail(ctx, ADV_ERR_NONFINITE, "%s[%lld] is not finite", name, (long long)k);
    return ADV_OK;
}

adv_status adv_field_create_gaussian(adv_context *ctx, adv_precision precision, int64_t d,
                                     const double *m0, const double *S0, const double *m1,
                                     const double *S1, adv_coupling coupling, adv_field **field) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    adv_status st = check_common(ctx, precision, d, field);
    if (st != ADV_OK) return st;
    if (d > 4096) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "d = %lld > 4096", (long long)d);
    if ((st = check_host_vec(ctx, "m0", m0, d)) != ADV_OK ||
        (st = check_host_vec(ctx, "S0", S0, d * d)) != ADV_OK ||
        (st = check_host_vec(ctx, "m1", m1, d)) != ADV_OK ||
        (st = check_host_vec(ctx, "S1", S1, d * d)) != ADV_OK)
        return st;
    if (coupling != ADV_COUPLING_INDEPENDENT && coupling != ADV_COUPLING_OT)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "coupling %d is not known", (int)coupling);
    if (!advi_is_symmetric(d, S0) || !advi_is_symmetric(d, S1))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "S0 or S1 is not symmetric");
    size_t dd = (size_t)(d * d);
    double *work = malloc(8 * dd * sizeof *work);
    adv_field *f = field_new(ctx, coupling == ADV_COUPLING_OT ? ADV_FIELD_GAUSSIAN_OT : ADV_FIELD_GAUSSIAN,
                             precision, d);
    if (f) {
        f->par_len = coupling == ADV_COUPLING_OT ? ADVF_OT_SIZE((size_t)d) : ADVF_FM_SIZE((size_t)d);
        f->par_host = calloc(f->par_len, sizeof(double));
    }
    if (!work || !f || !f->par_host) {
        free(work);
        adv_field_destroy(f);
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Gaussian field");
    }
    double *L = work + 4 * dd, *L1 = work + 5 * dd;
    if (advi_cholesky(d, S0, L) != 0 || advi_cholesky(d, S1, L1) != 0) {
        st = advi_fail(ctx, ADV_ERR_INVALID_VALUE, "S0 or S1 is not positive definite");
    } else {
        double *par = f->par_host;
        memcpy(par, m0, (size_t)d * sizeof *par);
        memcpy(par + d, m1, (size_t)d * sizeof *par);
        f->reach0 = gaussians_reach(d, 1, NULL, m0, S0); // z_t = (1 - t) x0 + t x1
        f->reach1 = gaussians_reach(d, 1, NULL, m1, S1);
        if (coupling == ADV_COUPLING_INDEPENDENT) {
            double *P = par + 2 * d, *Pinv = P + dd, *lam = Pinv + dd;
            const int rc = joint_factor(d, L, S1, P, Pinv, lam, work);
            if (rc != 0)
                st = rc == -2 ? advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "factorisation of S0, S1")
                              : advi_fail(ctx, ADV_ERR_INVALID_VALUE, "factorisation of S0, S1 failed");
        } else {
            double *U = par + 2 * d, *g = U + dd, *S0inv = g + d, *L0 = S0inv + dd;
            double *A = work + 6 * dd, *c = work + 7 * dd;
            st = adv_gaussian_map(ADV_COUPLING_OT, d, m0, S0, m1, S1, A, c);
            if (st == ADV_OK) {
                const int rc = advi_jacobi_eigen(d, A, g, U);
                if (rc != 0) st = rc == -2 ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_INVALID_VALUE;
            }
            if (st != ADV_OK) {
                st = advi_fail(ctx, st, "Bures map of S0, S1 failed");
            } else {
                double *Li = work;
                advi_lower_inverse(d, L, Li);
                for (int64_t i = 0; i < d; ++i) // S0^-1 = Li^T Li
                    for (int64_t j = 0; j < d; ++j) {
                        double s = 0.0;
                        for (int64_t k = 0; k < d; ++k) s += Li[k * d + i] * Li[k * d + j];
                        S0inv[i * d + j] = s;
                    }
                memcpy(L0, L, dd * sizeof *L0);
            }
        }
    }
    free(work);
    if (st == ADV_OK) {
        f->outputs = ADV_FIELD_VELOCITY | ADV_FIELD_SCORE | ADV_FIELD_DENOISER;
        st = upload_params(f);
    }
    if (st != ADV_OK) {
        adv_field_destroy(f);
        return st;
    }
    *field = f;
    return ADV_OK;
}

adv_status adv_field_create_gmm(adv_context *ctx, adv_precision precision, int64_t d, int64_t k0,
                                const double *p, const double *mu, const double *S, int64_t k1,
                                const double *q, const double *nu, const double *G,
                                adv_field **field) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    adv_status st = check_common(ctx, precision, d, field);
    if (st != ADV_OK) return st;
    if (d > 4096) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "d = %lld > 4096", (long long)d);
    if (k0 < 1 || k1 < 1 || k0 > 4096 || k1 > 4096 || k0 * k1 * d * d > ((int64_t)1 << 31))
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "k0 = %lld, k1 = %lld: need 1..4096 components "
                         "and k0 k1 d^2 <= 2^31", (long long)k0, (long long)k1);
    if ((st = check_host_vec(ctx, "p", p, k0)) != ADV_OK ||
        (st = check_host_vec(ctx, "mu", mu, k0 * d)) != ADV_OK ||
        (st = check_host_vec(ctx, "S", S, k0 * d * d)) != ADV_OK ||
        (st = check_host_vec(ctx, "q", q, k1)) != ADV_OK ||
        (st = check_host_vec(ctx, "nu", nu, k1 * d)) != ADV_OK ||
        (st = check_host_vec(ctx, "G", G, k1 * d * d)) != ADV_OK)
        return st;
    double sp = 0.0, sq = 0.0;
    for (int64_t k = 0; k < k0; ++k) {
        if (p[k] < 0.0) return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "p[%lld] < 0", (long long)k);
        sp += p[k];
    }
    for (int64_t l = 0; l < k1; ++l) {
        if (q[l] < 0.0) return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "q[%lld] < 0", (long long)l);
        sq += q[l];
    }
    if (!(sp > 0.0) || !(sq > 0.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "mixture weights p or q are all zero");
    if (!isfinite(sp) || !isfinite(sq))
        return advi_fail(ctx, ADV_ERR_NONFINITE, "the sum of the mixture weights p or q overflows");
    size_t dd = (size_t)(d * d);
    for (int64_t k = 0; k < k0; ++k)
        if (!advi_is_symmetric(d, S + k * dd))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "S[%lld] is not symmetric", (long long)k);
    for (int64_t l = 0; l < k1; ++l)
        if (!advi_is_symmetric(d, G + l * dd))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "G[%lld] is not symmetric", (long long)l);
    adv_field *f = field_new(ctx, ADV_FIELD_GMM, precision, d);
    double *work = malloc(5 * dd * sizeof *work);
    if (f) {
        f->par_len = ADVF_GMM_SIZE((size_t)d, (size_t)k0, (size_t)k1);
        f->par_host = calloc(f->par_len, sizeof(double));
    }
    if (!work || !f || !f->par_host) {
        free(work);
        adv_field_destroy(f);
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "mixture field");
    }
    double *par = f->par_host, *L = work + 4 * dd;
    memcpy(par, mu, (size_t)(k0 * d) * sizeof *par);
    memcpy(par + k0 * d, nu, (size_t)(k1 * d) * sizeof *par);
    double *pairs = par + (k0 + k1) * d;
    int any_regular = 0, any_degenerate = 0;
    for (int64_t k = 0; k < k0 && st == ADV_OK; ++k) {
        if (advi_cholesky(d, S + k * dd, L) != 0) {
            st = advi_fail(ctx, ADV_ERR_INVALID_VALUE, "S[%lld] is not positive definite", (long long)k);
            break;
        }
        double logdet = 0.0;
        for (int64_t j = 0; j < d; ++j) logdet += log(L[j * d + j]);
        for (int64_t l = 0; l < k1; ++l) {
            double *pr = pairs + (k * k1 + l) * ADVF_GMM_PAIR(d), *lam = pr + 3, *P = lam + d;
            double *Pinv = P + dd;
            const int rc = joint_factor(d, L, G + l * dd, P, Pinv, lam, work);
            if (rc != 0) {
                st = rc == -2 ? advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "factorisation of G[%lld]",
                                          (long long)l)
                              : advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                                          "G[%lld] is not positive semi-definite", (long long)l);
                break;
            }
            // The pair's weight in logs: (p_k/sp)(q_l/sq) underflows for tiny weights that
            // still dominate the posterior far from the other pairs.
            const int positive = p[k] > 0.0 && q[l] > 0.0;
            int degenerate = 0;
            for (int64_t j = 0; j < d; ++j) degenerate |= lam[j] == 0.0;
            pr[0] = positive ? log(p[k]) - log(sp) + log(q[l]) - log(sq) - logdet -
                                   0.5 * (double)d * log(2.0 * M_PI)
                             : -INFINITY;
            pr[1] = (p[k] / sp) * (q[l] / sq); // for sampling only (may underflow to 0)
            pr[2] = degenerate;
            if (positive) {
                any_regular |= !degenerate;
                any_degenerate |= degenerate;
            }
        }
    }
    free(work);
    if (st == ADV_OK) {
        f->k0 = k0;
        f->k1 = k1;
        f->n = k1;
        f->any_regular = any_regular;
        f->reach0 = gaussians_reach(d, k0, p, mu, S);
        f->reach1 = gaussians_reach(d, k1, q, nu, G);
        f->singular_end = any_degenerate;
        f->outputs = ADV_FIELD_VELOCITY | ADV_FIELD_SCORE | ADV_FIELD_DENOISER;
        st = upload_params(f);
    }
    if (st != ADV_OK) {
        adv_field_destroy(f);
        return st;
    }
    *field = f;
    return ADV_OK;
}

adv_status adv_field_create_user(adv_context *ctx, adv_precision precision, int64_t d,
                                 const adv_user_field_opts *opts, adv_field **field) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    adv_status st = check_common(ctx, precision, d, field);
    if (st != ADV_OK) return st;
    if (!opts) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "opts is NULL (the callback is required)");
    adv_user_field_opts o;
    adv_user_field_default_opts(&o);
    if (!copy_opts(&o, sizeof o, opts))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->struct_size is invalid");
    if (!o.fn) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "opts->fn is NULL");
    const int all = ADV_FIELD_VELOCITY | ADV_FIELD_SCORE | ADV_FIELD_DENOISER;
    if ((o.outputs & ~all) || !(o.outputs & (ADV_FIELD_VELOCITY | ADV_FIELD_DENOISER)))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "opts->outputs = %d: must include ADV_FIELD_VELOCITY or ADV_FIELD_DENOISER",
                         o.outputs);
    if (!(o.sigma > 0.0) || !isfinite(o.sigma))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "opts->sigma = %g must be > 0", o.sigma);
    if ((st = advi_schedule_check(ctx, &o.schedule)) != ADV_OK) return st;
    adv_field *f = field_new(ctx, ADV_FIELD_USER, precision, d);
    if (!f) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "field");
    f->fn = o.fn;
    f->user = o.user;
    f->user_outputs = o.outputs;
    f->sched = o.schedule;
    f->sigma = o.sigma;
    f->outputs = o.outputs | ((o.outputs & ADV_FIELD_DENOISER) ? all : 0);
    double ab[4];
    advi_schedule_eval(&f->sched, 1.0, ab);
    f->singular_end = (o.outputs & ADV_FIELD_DENOISER) && !(o.outputs & ADV_FIELD_VELOCITY) &&
                      !(ab[1] > 0.0);
    *field = f;
    return ADV_OK;
}

/* Folds `bytes` bytes of context memory into *h. */
static adv_status hash_context_bytes(adv_context *ctx, const void *p, size_t bytes, uint64_t *h) {
    if (ctx->backend != ADV_BACKEND_CUDA) {
        *h = advi_fnv1a(*h, p, bytes);
        return ADV_OK;
    }
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "field hash staging (%zu bytes)", bytes);
    adv_status st = advi_download(ctx, host, p, bytes);
    if (st == ADV_OK) *h = advi_fnv1a(*h, host, bytes);
    free(host);
    return st;
}

adv_status advi_field_hash(adv_field *f, uint64_t *h) {
    const size_t elem = advi_real_size(f->precision);
    if (f->kind == ADV_FIELD_EMPIRICAL) {
        adv_status st = hash_context_bytes(f->ctx, f->data, (size_t)(f->n * f->d) * elem, h);
        return st == ADV_OK ? hash_context_bytes(f->ctx, f->logw, (size_t)f->n * elem, h) : st;
    }
    if (f->par_host) *h = advi_fnv1a(*h, f->par_host, f->par_len * sizeof(double));
    return ADV_OK;
}

adv_status adv_field_get_info(const adv_field *f, adv_field_info *info) {
    if (!f || !info) return ADV_ERR_NULL_POINTER;
    if (info->struct_size != sizeof *info) return ADV_ERR_INVALID_VALUE;
    info->kind = f->kind;
    info->precision = f->precision;
    info->dim = f->d;
    info->n_data = f->n;
    info->outputs = f->outputs;
    info->schedule = f->sched;
    info->sigma = f->sigma;
    info->singular_end = f->singular_end;
    return ADV_OK;
}

/* ---- evaluation ---------------------------------------------------------------------- */

/* Host staging of up to 7 columns of n doubles; returns the host array. Always sized for 7
 * columns so that it is never reallocated between the uploads of one evaluation. */
static double *coef_host(adv_field *f, int64_t n, int cols) {
    (void)cols;
    size_t need = (size_t)n * 7;
    if (f->coef_host_n < need) {
        free(f->coef_host);
        f->coef_host = malloc(need * sizeof(double));
        f->coef_host_n = f->coef_host ? need : 0;
    }
    return f->coef_host;
}

/* Moves the host coefficients to context memory; *dev receives their address there. */
static adv_status coef_upload(adv_field *f, int64_t n, int cols, double **dev) {
    size_t bytes = (size_t)n * (size_t)cols * sizeof(double);
    if (f->ctx->backend != ADV_BACKEND_CUDA) {
        *dev = f->coef_host;
        return ADV_OK;
    }
    // Reserved for 7 columns: a kernel of this evaluation may still read the buffer when the
    // next columns are uploaded (the copy is ordered after it on the stream; a reallocation
    // would not be).
    adv_status st = advi_buffer_reserve(f->ctx, &f->coef, (size_t)n * 7 * sizeof(double));
    if (st != ADV_OK) return st;
    *dev = f->coef.ptr;
    return advi_upload(f->ctx, f->coef.ptr, f->coef_host, bytes);
}

/* CUDA scratch of `per` doubles per particle (the kernels' row stride): d for the direct
 * empirical loop, 3d for sampling, 6d for the Gaussian family. NULL on the CPU. */
static adv_status tmp_scratch(adv_field *f, int64_t n, int64_t per, double **tmp) {
    *tmp = NULL;
    if (f->ctx->backend != ADV_BACKEND_CUDA) return ADV_OK;
    adv_status st = advi_buffer_reserve(f->ctx, &f->tmp, (size_t)n * (size_t)per * sizeof(double));
    *tmp = f->tmp.ptr;
    return st;
}

/* The field's interaction plan (SQDIST, particles against the data) for at least n rows:
 * re-created only when n exceeds what it was made for. */
static adv_status field_plan(adv_field *f, int64_t n) {
    if (f->plan && f->plan_n >= n) return ADV_OK;
    if (f->plan) adv_interaction_plan_destroy(f->plan);
    f->plan = NULL;
    adv_interaction_desc desc;
    advi_empirical_desc(&desc, f->precision, n, f->n, f->d);
    adv_status st = adv_interaction_plan_create(f->ctx, &desc, &f->plan);
    if (st == ADV_OK) f->plan_n = n;
    return st;
}

/* Per-particle-time coefficients (advf_time_coefs) in context memory, column k at
 * (*dev)[k n]. A built-in schedule computes them where the field lives, so only the times
 * travel to a device (one column, not seven); a user callback runs on the host. */
static adv_status time_coefs(adv_field *f, const double *times, int64_t n, double **dev) {
    const advi_sampling_ops *ops = advi_sampling_ops_of(f->ctx);
    double *h = coef_host(f, n, 7);
    if (!h) return advi_fail(f->ctx, ADV_ERR_OUT_OF_MEMORY, "coefficient staging");
    int kind;
    double p0, p1;
    if (advi_schedule_builtin(&f->sched, &kind, &p0, &p1)) {
        const double *tv = times;
        *dev = h;
        if (f->ctx->backend == ADV_BACKEND_CUDA) {
            // The times go to column 0: each element is read before its own column-0 entry
            // is written, by the same thread.
            memcpy(h, times, (size_t)n * sizeof *h);
            adv_status st = coef_upload(f, n, 1, dev);
            if (st != ADV_OK) return st;
            tv = *dev;
        }
        return ops->time_coefs(f->ctx, n, tv, kind, p0, p1, f->sigma, *dev);
    }
    for (int64_t i = 0; i < n; ++i) {
        double ab[4], c[7];
        advi_schedule_eval(&f->sched, times[i], ab);
        advf_time_coefs(ab, f->sigma, ADVI_LAMBDA_DIRECT, c);
        for (int k = 0; k < 7; ++k) h[k * n + i] = c[k];
    }
    return coef_upload(f, n, 7, dev);
}

/* Empirical denoiser at per-particle times (coefs from time_coefs): the engine's per-row
 * mode, then the direct loop for the rows whose λ is past ADVI_LAMBDA_DIRECT (landing on
 * t = 1 exactly; a pass that finds none costs little). */
static adv_status empirical_rows(adv_field *f, const double *coefs, int64_t n, const void *z,
                                 void *den) {
    const advi_sampling_ops *ops = advi_sampling_ops_of(f->ctx);
    double *tmp = NULL;
    adv_status st = tmp_scratch(f, n, f->d, &tmp);
    if (st == ADV_OK) st = field_plan(f, n);
    if (st == ADV_OK) st = ops->empirical_rows(f->plan, n, z, f->data, f->logw, coefs, coefs + n, den, tmp);
    if (st == ADV_OK)
        st = ops->empirical_direct(f->ctx, f->precision, n, f->d, z, f->n, f->data, f->logw, 0.0,
                                   ADVI_LAMBDA_DIRECT, coefs, coefs + 2 * n, den, tmp);
    return st;
}

/* Empirical denoiser at a common time through the interaction engine. */
static adv_status empirical_engine(adv_field *f, double a, double lambda, int64_t n, const void *z,
                                   void *den) {
    adv_context *ctx = f->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    const size_t elem = advi_real_size(f->precision), row = (size_t)f->d * elem;
    adv_status st;
    const void *keys = f->data;
    if (a != 1.0) {
        if (!(f->keys_a == a)) {
            if ((st = advi_buffer_reserve(ctx, &f->keys, (size_t)f->n * row)) != ADV_OK) return st;
            f->keys_a = NAN;
            if ((st = ops->scale(ctx, f->precision, (size_t)(f->n * f->d), f->keys.ptr, a, f->data)) != ADV_OK)
                return st;
            f->keys_a = a;
        }
        keys = f->keys.ptr;
    }
    // The interaction engine reduces each row in an order fixed by the keys alone, so a
    // particle's result is the same bits for any chunk size and thread count (CPU).
    if ((st = field_plan(f, n)) != ADV_OK) return st;
    // lambda and gamma are read at execution; the plan's other resources do not depend on them.
    f->plan->desc.lambda = lambda;
    f->plan->desc.gamma = 1.0;
    return advi_interaction_execute_n(f->plan, n, z, keys, f->logw, f->data, NULL, den);
}

/* The user callback for the outputs in `want` (pointers may be NULL). */
static adv_status user_call(adv_field *f, double t, const double *times, int64_t n, const void *z,
                            void *vel, void *score, void *den) {
    adv_field_request rq;
    memset(&rq, 0, sizeof rq);
    rq.precision = f->precision;
    rq.n = n;
    rq.dim = f->d;
    rq.t = t;
    rq.z = z;
    rq.velocity = vel;
    rq.score = score;
    rq.denoiser = den;
    rq.stream = f->ctx->backend == ADV_BACKEND_CUDA ? f->ctx->stream : NULL;
    adv_status st;
    if (times) {
        const size_t elem = advi_real_size(f->precision);
        double *h = coef_host(f, n, 6);
        if (!h) return advi_fail(f->ctx, ADV_ERR_OUT_OF_MEMORY, "times staging");
        // Times in the field's precision, packed at the front of the staging area.
        for (int64_t i = 0; i < n; ++i) advf_st(h, f->precision == ADV_FLOAT64, i, times[i]);
        double *dev = NULL;
        if ((st = coef_upload(f, (int64_t)((n * (int64_t)elem + 7) / 8), 1, &dev)) != ADV_OK) return st;
        rq.times = dev;
        rq.t = times[0];
    }
    int rc = f->fn(f->user, &rq);
    if (rc != 0)
        return advi_fail(f->ctx, ADV_ERR_INVALID_VALUE, "the user field callback returned %d", rc);
    return ADV_OK;
}

static adv_status field_eval(adv_field *f, double t, const double *times, int64_t n, const void *z,
                             void *vel, void *score, void *den) {
    adv_context *ctx = f->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    const adv_precision p = f->precision;
    const size_t rowb = (size_t)f->d * advi_real_size(p);
    adv_status st;

    if (f->kind == ADV_FIELD_GAUSSIAN || f->kind == ADV_FIELD_GAUSSIAN_OT || f->kind == ADV_FIELD_GMM) {
        double *tmp = NULL, *tv = NULL;
        if ((st = tmp_scratch(f, n, 6 * f->d, &tmp)) != ADV_OK) return st;
        if (times) {
            double *h = coef_host(f, n, 1);
            if (!h) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "times staging");
            memcpy(h, times, (size_t)n * sizeof *h);
            if ((st = coef_upload(f, n, 1, &tv)) != ADV_OK) return st;
        }
        return ops->gauss(ctx, p, (int)f->kind, f->par, f->d, f->k0, f->k1, f->any_regular, n, z, t,
                          tv, vel, score, den, tmp);
    }

    if (f->kind == ADV_FIELD_USER) {
        int prov = f->user_outputs;
        void *uv = (prov & ADV_FIELD_VELOCITY) ? vel : NULL;
        void *us = (prov & ADV_FIELD_SCORE) ? score : NULL;
        int need_den = (vel && !uv) || (score && !us);
        if (!need_den) return user_call(f, t, times, n, z, uv, us, den);
    }

    // Denoiser form: D first, then velocity and score through the schedule.
    void *D = den;
    if (!D) {
        if ((st = advi_buffer_reserve(ctx, &f->den, (size_t)n * rowb)) != ADV_OK) return st;
        D = f->den.ptr;
    }
    int want_v = vel != NULL, want_s = score != NULL;
    double *coefs = NULL; // per-particle-time coefficients (time_coefs), once computed
    if (f->kind == ADV_FIELD_USER) {
        int prov = f->user_outputs;
        void *uv = (prov & ADV_FIELD_VELOCITY) ? vel : NULL;
        void *us = (prov & ADV_FIELD_SCORE) ? score : NULL;
        if ((st = user_call(f, t, times, n, z, uv, us, D)) != ADV_OK) return st;
        want_v = vel && !uv;
        want_s = score && !us;
    } else if (!times) {
        double ab[4];
        advi_schedule_eval(&f->sched, t, ab);
        double b = ab[1], a = ab[0];
        double lambda = b > 0.0 ? 1.0 / (2.0 * b * b * f->sigma * f->sigma) : HUGE_VAL;
        if (lambda <= ADVI_LAMBDA_DIRECT) {
            st = empirical_engine(f, a, lambda, n, z, D);
        } else {
            double *tmp = NULL;
            if ((st = tmp_scratch(f, n, f->d, &tmp)) != ADV_OK) return st;
            st = ops->empirical_direct(ctx, p, n, f->d, z, f->n, f->data, f->logw, a, lambda, NULL,
                                       NULL, D, tmp);
        }
        if (st != ADV_OK) return st;
    } else if ((st = time_coefs(f, times, n, &coefs)) != ADV_OK ||
               (st = empirical_rows(f, coefs, n, z, D)) != ADV_OK) {
        return st;
    }
    if (!want_v && !want_s) return ADV_OK;
    if (!times) {
        double ab[4], ca, cz, sa, sz;
        advi_schedule_eval(&f->sched, t, ab);
        advf_denoiser_coefs(ab, f->sigma, &ca, &cz, &sa, &sz);
        const void *bufs[1] = {D};
        if (want_v && (st = ops->lincomb(ctx, p, n, f->d, vel, cz, z, 1.0, NULL, 1, &ca, bufs)) != ADV_OK)
            return st;
        if (want_s && (st = ops->lincomb(ctx, p, n, f->d, score, sz, z, 1.0, NULL, 1, &sa, bufs)) != ADV_OK)
            return st;
        return ADV_OK;
    }
    // (A user field's call above used the coefficient buffer for its times: computed after it.)
    if (!coefs && (st = time_coefs(f, times, n, &coefs)) != ADV_OK) return st;
    const double *ca = coefs + 3 * n, *cz = coefs + 4 * n, *sa = coefs + 5 * n, *sz = coefs + 6 * n;
    if (want_v && (st = ops->lincomb_pp(ctx, p, n, f->d, vel, cz, z, ca, D)) != ADV_OK) return st;
    if (want_s && (st = ops->lincomb_pp(ctx, p, n, f->d, score, sz, z, sa, D)) != ADV_OK) return st;
    return ADV_OK;
}

adv_status advi_field_eval(adv_field *f, double t, const double *times, int64_t n, const void *z,
                           void *vel, void *score, void *den) {
    adv_status st = field_enter(f);
    if (st != ADV_OK) return st;
    st = field_eval(f, t, times, n, z, vel, score, den);
    field_leave(f);
    return st;
}

static adv_status check_eval(adv_field *f, int64_t n, const void *z, void *vel, void *score,
                             void *den) {
    adv_context *ctx = f->ctx;
    if (!z) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "z is NULL");
    if (!vel && !score && !den)
        return advi_fail(ctx, ADV_ERR_NULL_POINTER, "no output requested (velocity, score and "
                                                    "denoiser are all NULL)");
    if (n < 1) return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n is %lld, must be >= 1", (long long)n);
    size_t bytes;
    if (!advi_mul_size(&bytes, (size_t)n, (size_t)f->d) || !advi_mul_size(&bytes, bytes, 8))
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "n x d overflows");
    if ((vel && !(f->outputs & ADV_FIELD_VELOCITY)) || (score && !(f->outputs & ADV_FIELD_SCORE)) ||
        (den && !(f->outputs & ADV_FIELD_DENOISER)))
        return advi_fail(ctx, ADV_ERR_UNSUPPORTED, "this field cannot evaluate a requested output "
                                                   "(it provides flags %d)", f->outputs);
    // Overlap of the n x d arrays as address ranges, not only equal pointers (an output that
    // starts inside z would be read after being written).
    static const char *const names[3] = {"velocity", "score", "denoiser"};
    const size_t span = (size_t)n * (size_t)f->d * advi_real_size(f->precision);
    const void *outs[3] = {vel, score, den};
    for (int i = 0; i < 3; ++i) {
        if (outs[i] && advi_ranges_overlap(outs[i], z, span))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "%s overlaps z", names[i]);
        for (int j = i + 1; j < 3; ++j)
            if (outs[i] && outs[j] && advi_ranges_overlap(outs[i], outs[j], span))
                return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "%s and %s overlap", names[i],
                                 names[j]);
    }
    return ADV_OK;
}

adv_status adv_field_eval(adv_field *f, double t, int64_t n, const void *z, void *velocity,
                          void *score, void *denoiser) {
    if (!f) return ADV_ERR_NULL_POINTER;
    advi_clear_error(f->ctx);
    adv_status st = check_eval(f, n, z, velocity, score, denoiser);
    if (st != ADV_OK) return st;
    if (!(t >= 0.0 && t <= 1.0))
        return advi_fail(f->ctx, ADV_ERR_INVALID_VALUE, "t = %g is outside [0, 1]", t);
    return advi_field_eval(f, t, NULL, n, z, velocity, score, denoiser);
}

adv_status adv_field_eval_times(adv_field *f, const void *times, int64_t n, const void *z,
                                void *velocity, void *score, void *denoiser) {
    if (!f) return ADV_ERR_NULL_POINTER;
    advi_clear_error(f->ctx);
    if (!times) return advi_fail(f->ctx, ADV_ERR_NULL_POINTER, "times is NULL");
    adv_status st = check_eval(f, n, z, velocity, score, denoiser);
    if (st != ADV_OK) return st;
    const size_t elem = advi_real_size(f->precision);
    void *raw = malloc((size_t)n * elem);
    double *th = malloc((size_t)n * sizeof *th);
    if (!raw || !th) {
        free(raw), free(th);
        return advi_fail(f->ctx, ADV_ERR_OUT_OF_MEMORY, "times staging");
    }
    st = advi_download(f->ctx, raw, times, (size_t)n * elem);
    for (int64_t i = 0; st == ADV_OK && i < n; ++i) {
        th[i] = advf_ld(raw, f->precision == ADV_FLOAT64, i);
        if (!(th[i] >= 0.0 && th[i] <= 1.0))
            st = advi_fail(f->ctx, ADV_ERR_INVALID_VALUE, "times[%lld] = %g is outside [0, 1]",
                           (long long)i, th[i]);
    }
    if (st == ADV_OK) st = advi_field_eval(f, 0.0, th, n, z, velocity, score, denoiser);
    free(raw), free(th);
    return st;
}

adv_status advi_field_sample(adv_field *f, double t, uint64_t seed, int64_t first, int64_t n,
                             void *z) {
    adv_context *ctx = f->ctx;
    const advi_sampling_ops *ops = advi_sampling_ops_of(ctx);
    adv_status st = field_enter(f); // a user schedule's callback runs in here
    if (st != ADV_OK) return st;
    double *tmp = NULL;
    if ((st = tmp_scratch(f, n, 3 * f->d, &tmp)) == ADV_OK) {
        if (f->kind == ADV_FIELD_EMPIRICAL) {
            double ab[4];
            advi_schedule_eval(&f->sched, t, ab);
            st = ops->sample(ctx, f->precision, (int)f->kind, NULL, f->d, 0, 0, n, t, seed, first,
                             f->data, f->cdf, f->n, ab[0], ab[1] * f->sigma, z, tmp);
        } else {
            st = ops->sample(ctx, f->precision, (int)f->kind, f->par, f->d, f->k0, f->k1, n, t,
                             seed, first, NULL, NULL, 0, 0.0, 0.0, z, tmp);
        }
    }
    field_leave(f);
    return st;
}

adv_status adv_field_sample(adv_field *f, double t, uint64_t seed, int64_t first_particle,
                            int64_t n, void *z) {
    if (!f) return ADV_ERR_NULL_POINTER;
    advi_clear_error(f->ctx);
    if (!z) return advi_fail(f->ctx, ADV_ERR_NULL_POINTER, "z is NULL");
    if (n < 1) return advi_fail(f->ctx, ADV_ERR_INVALID_SIZE, "n is %lld, must be >= 1", (long long)n);
    // Particle i draws its normals from Philox blocks i ceil(d/2) + j/2: beyond 2^64 blocks
    // they would wrap and repeat another particle's draws.
    const uint64_t blocks = (uint64_t)(f->d + 1) / 2;
    if (first_particle < 0 || first_particle > INT64_MAX - n ||
        (uint64_t)(first_particle + n) > UINT64_MAX / blocks)
        return advi_fail(f->ctx, ADV_ERR_INVALID_VALUE, "first_particle = %lld is invalid (the "
                         "particle indices times ceil(d/2) must fit in 64 bits)",
                         (long long)first_particle);
    size_t bytes;
    if (!advi_mul_size(&bytes, (size_t)n, (size_t)f->d) || !advi_mul_size(&bytes, bytes, 8))
        return advi_fail(f->ctx, ADV_ERR_INVALID_SIZE, "n x d overflows");
    if (!(t >= 0.0 && t <= 1.0))
        return advi_fail(f->ctx, ADV_ERR_INVALID_VALUE, "t = %g is outside [0, 1]", t);
    if (f->kind == ADV_FIELD_USER)
        return advi_fail(f->ctx, ADV_ERR_UNSUPPORTED, "user fields cannot be sampled");
    return advi_field_sample(f, t, seed, first_particle, n, z);
}
