/* Public interaction-sum entry points: argument checking (sizes, pointers, finiteness) and
 * dispatch to the CPU backend (host/cpu/interaction_cpu.c) or the CUDA backend
 * (host/cuda/interaction_cuda.c). Nothing is written to outputs unless every check passes. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

adv_status adv_interaction_default_desc(adv_interaction_desc *desc) {
    if (!desc) return ADV_ERR_NULL_POINTER;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->precision = ADV_FLOAT32;
    desc->kernel = ADV_KERNEL_SQDIST;
    desc->batch = 1;
    desc->lambda = 1.0;
    desc->gamma = 1.0;
    desc->check_finite = 1;
    return ADV_OK;
}

static adv_status check_desc(adv_context *ctx, const adv_interaction_desc *d) {
    if (d->struct_size != sizeof *d)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "desc->struct_size is %zu, expected %zu (use adv_interaction_default_desc)",
                         d->struct_size, sizeof *d);
    if (d->precision != ADV_FLOAT32 && d->precision != ADV_FLOAT64)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->precision %d is not a precision",
                         d->precision);
    if (d->kernel != ADV_KERNEL_SQDIST && d->kernel != ADV_KERNEL_DOT)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->kernel %d is not a kernel", d->kernel);
    const struct {
        const char *name;
        int64_t value, min;
    } sizes[] = {{"batch", d->batch, 1},    {"n_queries", d->n_queries, 1},
                 {"n_keys", d->n_keys, 1},  {"dim", d->dim, 1},
                 {"value_dim", d->value_dim, 0}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; ++k)
        if (sizes[k].value < sizes[k].min)
            return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "desc->%s is %lld, must be >= %lld",
                             sizes[k].name, (long long)sizes[k].value, (long long)sizes[k].min);
    if (d->values_are_keys && d->value_dim != d->dim)
        return advi_fail(ctx, ADV_ERR_DIMENSION_MISMATCH,
                         "values_are_keys needs value_dim (%lld) == dim (%lld)",
                         (long long)d->value_dim, (long long)d->dim);
    if (!isfinite(d->lambda))
        return advi_fail(ctx, ADV_ERR_NONFINITE, "desc->lambda is not finite");
    if (!isfinite(d->gamma)) return advi_fail(ctx, ADV_ERR_NONFINITE, "desc->gamma is not finite");
    if (d->precision == ADV_FLOAT32 && (fabs(d->lambda) > 3.0e38 || fabs(d->gamma) > 3.0e38))
        return advi_fail(ctx, ADV_ERR_NONFINITE, "lambda or gamma overflows float32");
    if (d->causal && d->kernel != ADV_KERNEL_DOT)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "causal masking applies to the DOT kernel only");
    // Every array must be addressable in bytes: B*max(N,M)*max(d,e,1)*8 must not overflow.
    size_t bytes = 1, rows = (size_t)(d->n_queries > d->n_keys ? d->n_queries : d->n_keys);
    size_t cols = (size_t)(d->dim > d->value_dim ? d->dim : d->value_dim);
    if (!advi_mul_size(&bytes, (size_t)d->batch, rows) || !advi_mul_size(&bytes, bytes, cols) ||
        !advi_mul_size(&bytes, bytes, 8) || bytes > (size_t)INT64_MAX)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "problem size overflows the address space");
    return ADV_OK;
}

adv_status advi_all_finite(adv_context *ctx, adv_precision precision, const void *data,
                           size_t count, int allow_neg_inf, int *ok, double *max_abs) {
    if (ctx->backend == ADV_BACKEND_CUDA)
        return advi_cuda_all_finite(ctx, precision, data, count, allow_neg_inf, ok, max_abs);
    *ok = advi_cpu_all_finite(ctx, precision, data, count, allow_neg_inf, max_abs);
    return ADV_OK;
}

adv_status adv_interaction_plan_create(adv_context *ctx, const adv_interaction_desc *desc,
                                       adv_interaction_plan **plan) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (!plan) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "plan is NULL");
    *plan = NULL;
    if (!desc) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "desc is NULL");
    adv_status st = check_desc(ctx, desc);
    if (st != ADV_OK) return st;
    adv_interaction_plan *p = calloc(1, sizeof *p);
    if (!p) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "interaction plan");
    p->ctx = ctx;
    p->desc = *desc;
    if (ctx->backend == ADV_BACKEND_CUDA) {
        st = advi_cuda_interaction_plan_init(p);
        if (st != ADV_OK) {
            free(p);
            return st;
        }
    }
    *plan = p;
    return ADV_OK;
}

adv_status adv_interaction_plan_destroy(adv_interaction_plan *plan) {
    if (!plan) return ADV_OK;
    if (plan->ctx->backend == ADV_BACKEND_CUDA) advi_cuda_interaction_plan_fini(plan);
    free(plan);
    return ADV_OK;
}

/* The scores and sums the engine forms must stay finite. With R = (largest finite value of
 * the precision) / 4, a margin for the base-2 score units of the float32 GPU kernels and for
 * rounding, the inputs' largest magnitudes must satisfy
 *   SQDIST: max(1, λ) d (|γ| max|x| + max|y|)² <= R   (|γx - y|², the GEMM path's norms, and
 *                                                      λ|γx - y|² all stay below it)
 *   DOT:    max(1, |λ|) d max|x| max|y| <= R
 *   max|β| <= R, and M max|w| <= R (the unnormalised value sums).
 * Beyond that the scores of a row could overflow to -Inf, all of them (the row would read as
 * "no admissible key": lse = -Inf, out = 0, a wrong answer), or to +Inf (NaN): rejected. */
static adv_status check_score_range(adv_context *ctx, const adv_interaction_desc *d, double mx,
                                    double my, double mw, double mb) {
    const double R = advi_real_max(d->precision) / 4.0;
    const char *type = advi_precision_name(d->precision);
    const char *hint = d->precision == ADV_FLOAT32 ? " or use float64" : "";
    const double scale = fmax(1.0, fabs(d->lambda)) * (double)d->dim;
    if (d->kernel == ADV_KERNEL_SQDIST) {
        const double r = fabs(d->gamma) * mx + my, bound = scale * r * r;
        if (!(bound <= R))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "SQDIST scores can overflow %s: max(1, lambda) d (|gamma| max|x| + "
                             "max|y|)^2 = %g exceeds %g; rescale x and y%s", type, bound, R, hint);
    } else {
        const double bound = scale * mx * my;
        if (!(bound <= R))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "DOT scores can overflow %s: max(1, |lambda|) d max|x| max|y| = %g "
                             "exceeds %g; rescale x and y%s", type, bound, R, hint);
    }
    if (!(mb <= R))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "beta has a magnitude of %g, above %g (%s)",
                         mb, R, type);
    if (!(mw * (double)d->n_keys <= R))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "values of magnitude %g over %lld keys can overflow the %s sums (above %g)",
                         mw, (long long)d->n_keys, type, R);
    return ADV_OK;
}

/* The outputs may share no byte with an input or with each other: both backends write out
 * while other rows (other threads, other GPU blocks) still read x, y and w, and the GPU's
 * GEMM path accumulates in out, so any overlap gives a wrong answer, differently per
 * backend. Rejected, before anything is written. */
static adv_status check_outputs_apart(adv_context *ctx, const adv_interaction_desc *d,
                                      const void *x, const void *y, const void *beta,
                                      const void *w, const void *lse, const void *out) {
    const size_t es = advi_real_size(d->precision), B = (size_t)d->batch;
    const size_t N = (size_t)d->n_queries, M = (size_t)d->n_keys;
    const struct {
        const char *name;
        const void *ptr;
        size_t bytes;
    } in[] = {{"x", x, B * N * (size_t)d->dim * es},
              {"y", y, B * M * (size_t)d->dim * es},
              {"beta", beta, B * M * es},
              {"w", w, B * M * (size_t)d->value_dim * es}},
      outs[] = {{"lse", lse, B * N * es}, {"out", out, B * N * (size_t)d->value_dim * es}};
    for (size_t o = 0; o < 2; ++o) {
        for (size_t k = 0; k < 4; ++k)
            if (advi_spans_overlap(outs[o].ptr, outs[o].bytes, in[k].ptr, in[k].bytes))
                return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                                 "%s overlaps the input %s (the outputs must not share memory "
                                 "with the inputs)", outs[o].name, in[k].name);
    }
    if (advi_spans_overlap(lse, outs[0].bytes, out, outs[1].bytes))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "lse and out overlap");
    return ADV_OK;
}

adv_status adv_interaction_execute(adv_interaction_plan *plan, const void *x, const void *y,
                                   const void *beta, const void *w, void *lse, void *out) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = plan->ctx;
    const adv_interaction_desc *d = &plan->desc;
    advi_clear_error(ctx);
    if (!x) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "x (queries) is NULL");
    if (!y) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "y (keys) is NULL");
    if (!lse && !out)
        return advi_fail(ctx, ADV_ERR_NULL_POINTER, "both outputs lse and out are NULL");
    if (out && d->value_dim == 0)
        return advi_fail(ctx, ADV_ERR_DIMENSION_MISMATCH, "out requested but value_dim is 0");
    if (d->values_are_keys) w = y;
    if (out && !w) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "w (values) is NULL");
    if (!out) w = NULL;
    adv_status st = check_outputs_apart(ctx, d, x, y, beta, w, lse, out);
    if (st != ADV_OK) return st;

    if (d->check_finite) {
        const size_t B = (size_t)d->batch, N = (size_t)d->n_queries, M = (size_t)d->n_keys;
        const struct {
            const char *name;
            const void *ptr;
            size_t count;
            int allow_neg_inf;
        } arrays[] = {{"x", x, B * N * (size_t)d->dim, 0},
                      {"y", y, B * M * (size_t)d->dim, 0},
                      {"w", w, B * M * (size_t)d->value_dim, 0},
                      {"beta", beta, B * M, 1}};
        double max_abs[4] = {0, 0, 0, 0};
        for (size_t k = 0; k < 4; ++k) {
            if (!arrays[k].ptr) continue;
            int ok = 0;
            adv_status st = advi_all_finite(ctx, d->precision, arrays[k].ptr, arrays[k].count,
                                            arrays[k].allow_neg_inf, &ok, &max_abs[k]);
            if (st != ADV_OK) return st;
            if (!ok)
                return advi_fail(ctx, ADV_ERR_NONFINITE, "%s contains NaN or %s", arrays[k].name,
                                 arrays[k].allow_neg_inf ? "+Inf" : "Inf");
        }
        st = check_score_range(ctx, d, max_abs[0], max_abs[1], max_abs[2], max_abs[3]);
        if (st != ADV_OK) return st;
    }
    return advi_interaction_execute_n(plan, d->n_queries, x, y, beta, w, lse, out);
}

adv_status advi_interaction_execute_n(adv_interaction_plan *plan, int64_t n, const void *x,
                                      const void *y, const void *beta, const void *w, void *lse,
                                      void *out) {
    adv_interaction_desc d = plan->desc;
    d.n_queries = n;
    if (d.values_are_keys) w = y;
    if (!out) w = NULL;
    if (plan->ctx->backend == ADV_BACKEND_CUDA)
        return advi_cuda_interaction_execute(plan, n, x, y, beta, w, lse, out);
    return advi_cpu_interaction(plan->ctx, &d, x, y, beta, w, lse, out);
}

adv_status adv_interaction_sum(adv_context *ctx, const adv_interaction_desc *desc, const void *x,
                               const void *y, const void *beta, const void *w, void *lse,
                               void *out) {
    adv_interaction_plan *plan = NULL;
    adv_status st = adv_interaction_plan_create(ctx, desc, &plan);
    if (st != ADV_OK) return st;
    st = adv_interaction_execute(plan, x, y, beta, w, lse, out);
    // As adv_poisson_solve: on CUDA a failure of the queued work is reported by this call.
    if (st == ADV_OK && ctx->backend == ADV_BACKEND_CUDA) st = advi_cuda_synchronize(ctx);
    adv_interaction_plan_destroy(plan);
    return st;
}
