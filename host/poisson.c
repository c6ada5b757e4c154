/* Public Poisson-plan entry points: checks of the description and of the pointers, and
 * dispatch to the CPU backend (host/cpu/poisson_cpu.c, FFTW) or the CUDA backend
 * (host/cuda/poisson_cuda.c, cuFFT). The checks that need the data (finite values, zero mean
 * in the singular case) run in the backends, before anything is written to u; so does the
 * overflow rule (safe_max_f), which is shared here. */
#include "internal.h"

#include "common/poisson_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

adv_status adv_poisson_default_desc(adv_poisson_desc *desc) {
    if (!desc) return ADV_ERR_NULL_POINTER;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->precision = ADV_FLOAT32;
    desc->ndim = 2;
    for (int a = 0; a < ADV_POISSON_MAX_DIM; ++a) {
        desc->shape[a] = 1;
        desc->spacing[a] = 1.0;
        desc->bc[a] = ADV_BC_PERIODIC;
    }
    desc->shift = 0.0;
    desc->batch = 1;
    desc->mean_policy = ADV_POISSON_REQUIRE_ZERO_MEAN;
    desc->mean_tolerance = 0.0;
    desc->check_finite = 1;
    desc->effort = ADV_FFT_MEASURE;
    return ADV_OK;
}

static adv_status check_desc(adv_context *ctx, const adv_poisson_desc *d, size_t *cells) {
    if (d->struct_size != sizeof *d)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "desc->struct_size is %zu, expected %zu (use adv_poisson_default_desc)",
                         d->struct_size, sizeof *d);
    if (d->precision != ADV_FLOAT32 && d->precision != ADV_FLOAT64)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->precision %d is not a precision",
                         (int)d->precision);
    if (d->ndim < 1 || d->ndim > ADV_POISSON_MAX_DIM)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "desc->ndim is %d, must be 1..%d", d->ndim,
                         ADV_POISSON_MAX_DIM);
    if (d->batch < 1)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "desc->batch is %lld, must be >= 1",
                         (long long)d->batch);
    size_t n = 1;
    for (int a = 0; a < d->ndim; ++a) {
        if (d->shape[a] < 1)
            return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "desc->shape[%d] is %lld, must be >= 1",
                             a, (long long)d->shape[a]);
        if (!advi_mul_size(&n, n, (size_t)d->shape[a]))
            return advi_fail(ctx, ADV_ERR_INVALID_SIZE, "grid size overflows size_t");
        if (!isfinite(d->spacing[a]))
            return advi_fail(ctx, ADV_ERR_NONFINITE, "desc->spacing[%d] is not finite", a);
        if (!(d->spacing[a] > 0.0))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "desc->spacing[%d] is %g, must be > 0", a, d->spacing[a]);
        // The stencil's coefficients 1/h² (4/h² per axis at most in the eigenvalues) must be
        // normal numbers of the precision: h = 1e-200 made them Inf (u NaN), h = 1e200 zero.
        const double inv = 1.0 / (d->spacing[a] * d->spacing[a]);
        const double big = advi_real_max(d->precision) / (16.0 * ADV_POISSON_MAX_DIM);
        const double tiny = d->precision == ADV_FLOAT64 ? DBL_MIN : FLT_MIN;
        if (!(inv <= big && inv >= tiny))
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                             "desc->spacing[%d] is %g: 1/h^2 = %g is outside the %s range "
                             "[%g, %g] of the stencil", a, d->spacing[a], inv,
                             advi_precision_name(d->precision), tiny, big);
        if (d->bc[a] != ADV_BC_PERIODIC && d->bc[a] != ADV_BC_NEUMANN &&
            d->bc[a] != ADV_BC_DIRICHLET)
            return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->bc[%d] is %d, not a boundary",
                             a, (int)d->bc[a]);
    }
    // The batch of arrays must be addressable in bytes, and index arithmetic uses int64.
    size_t bytes = 0;
    if (!advi_mul_size(&bytes, n, (size_t)d->batch) || !advi_mul_size(&bytes, bytes, 8) ||
        bytes > (size_t)INT64_MAX)
        return advi_fail(ctx, ADV_ERR_INVALID_SIZE,
                         "batch x grid size overflows the address space");
    if (!isfinite(d->shift)) return advi_fail(ctx, ADV_ERR_NONFINITE, "desc->shift is not finite");
    if (!(d->shift >= 0.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->shift is %g, must be >= 0",
                         d->shift);
    if (!(d->shift <= advi_real_max(d->precision) / 16.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->shift is %g, beyond the %s range",
                         d->shift, advi_precision_name(d->precision));
    if (d->mean_policy != ADV_POISSON_REQUIRE_ZERO_MEAN &&
        d->mean_policy != ADV_POISSON_PROJECT_MEAN)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->mean_policy %d is not a policy",
                         (int)d->mean_policy);
    if (!isfinite(d->mean_tolerance))
        return advi_fail(ctx, ADV_ERR_NONFINITE, "desc->mean_tolerance is not finite");
    if (!(d->mean_tolerance >= 0.0))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                         "desc->mean_tolerance is %g, must be >= 0", d->mean_tolerance);
    if (d->effort != ADV_FFT_ESTIMATE && d->effort != ADV_FFT_MEASURE)
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "desc->effort %d is not an FFT effort",
                         (int)d->effort);
    *cells = n;
    return ADV_OK;
}

/* Smallest eigenvalue of c - Δ_h over the modes that the solve divides by (the zero mode of a
 * singular plan excluded), +Inf if there is none (a singular grid of one cell). */
static double smallest_eigenvalue(const adv_poisson_desc *d, int singular) {
    if (!singular) {
        double l = d->shift; // every axis at its lowest mode (0 unless Dirichlet)
        for (int a = 0; a < d->ndim; ++a)
            l += advi_poisson_axis_eigenvalue((int)d->bc[a], 0, d->shape[a], d->spacing[a]);
        return l;
    }
    double l = INFINITY; // one axis at its first nonzero mode, the others at 0
    for (int a = 0; a < d->ndim; ++a)
        if (d->shape[a] >= 2)
            l = fmin(l, advi_poisson_axis_eigenvalue((int)d->bc[a], 1, d->shape[a], d->spacing[a]));
    return l;
}

/* The largest max|f| for which no intermediate value of a solve can overflow. Along an axis
 * of n points bounded by a, every transform (DFT of two packed real lines, the Makhoul
 * twiddles, the DHT) is bounded by 2na; all axes forward: 2^D cells max|f|. The scaling
 * divides by λ·norm >= λ_min·cells, and the inverse transforms multiply by at most 2^D cells
 * again: 4^D cells max|f| max(1, 1/λ_min) bounds everything, which must stay below a quarter
 * of the precision's largest value. Loose (true solutions are about Σ|f|/λ_min), so that
 * inputs past it are not rejected but have their solution scanned. */
static double safe_max_f(const adv_poisson_desc *d, size_t cells, double lambda_min) {
    double growth = (double)cells * fmax(1.0, 1.0 / lambda_min);
    for (int a = 0; a < d->ndim; ++a) growth *= 4.0;
    return advi_real_max(d->precision) / 4.0 / growth;
}

adv_status advi_poisson_overflow(adv_poisson_plan *plan, double max_abs_f) {
    const adv_poisson_desc *d = &plan->desc;
    return advi_fail(plan->ctx, ADV_ERR_NONFINITE,
                     "the solution overflows the %s range (max |f| = %g; above %g the solve "
                     "can overflow on this grid); scale f down%s (u is zeroed)",
                     advi_precision_name(d->precision), max_abs_f, plan->safe_max_f,
                     d->precision == ADV_FLOAT32 ? " or use float64" : "");
}

adv_status adv_poisson_plan_create(adv_context *ctx, const adv_poisson_desc *desc,
                                   adv_poisson_plan **plan) {
    if (!ctx) return ADV_ERR_NULL_POINTER;
    advi_clear_error(ctx);
    if (!plan) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "plan is NULL");
    *plan = NULL;
    if (!desc) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "desc is NULL");
    size_t cells = 0;
    adv_status st = check_desc(ctx, desc, &cells);
    if (st != ADV_OK) return st;

    adv_poisson_plan *p = calloc(1, sizeof *p);
    if (!p) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson plan");
    p->ctx = ctx;
    p->desc = *desc;
    // Entries past ndim are normalised so that backends may loop over all four axes.
    for (int a = desc->ndim; a < ADV_POISSON_MAX_DIM; ++a) {
        p->desc.shape[a] = 1;
        p->desc.spacing[a] = 1.0;
        p->desc.bc[a] = ADV_BC_PERIODIC;
    }
    p->cells = cells;
    int any_dirichlet = 0;
    for (int a = 0; a < desc->ndim; ++a) any_dirichlet |= desc->bc[a] == ADV_BC_DIRICHLET;
    p->singular = desc->shift == 0.0 && !any_dirichlet;
    p->safe_max_f = safe_max_f(desc, cells, smallest_eigenvalue(desc, p->singular));
    p->mean_tolerance = desc->mean_tolerance > 0.0 ? desc->mean_tolerance
                        : desc->precision == ADV_FLOAT64 ? 1e-10
                                                         : 1e-5;
    st = ctx->backend == ADV_BACKEND_CUDA ? advi_cuda_poisson_plan_init(p)
                                          : advi_cpu_poisson_plan_init(p);
    if (st != ADV_OK) {
        free(p);
        return st;
    }
    *plan = p;
    return ADV_OK;
}

adv_status adv_poisson_plan_destroy(adv_poisson_plan *plan) {
    if (!plan) return ADV_OK;
    if (plan->ctx->backend == ADV_BACKEND_CUDA) advi_cuda_poisson_plan_fini(plan);
    else advi_cpu_poisson_plan_fini(plan);
    free(plan);
    return ADV_OK;
}

adv_status adv_poisson_execute(adv_poisson_plan *plan, const void *f, void *u) {
    if (!plan) return ADV_ERR_NULL_POINTER;
    adv_context *ctx = plan->ctx;
    advi_clear_error(ctx);
    if (!f) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "f (right-hand side) is NULL");
    if (!u) return advi_fail(ctx, ADV_ERR_NULL_POINTER, "u (solution) is NULL");
    // In place (u == f) is supported; a shifted overlap would read rows already written.
    const size_t bytes = plan->cells * (size_t)plan->desc.batch * advi_real_size(plan->desc.precision);
    if (u != f && advi_ranges_overlap(u, f, bytes))
        return advi_fail(ctx, ADV_ERR_INVALID_VALUE, "u overlaps f without being equal to it");
    if (ctx->backend == ADV_BACKEND_CUDA) return advi_cuda_poisson_execute(plan, f, u);
    return advi_cpu_poisson_execute(plan, f, u);
}

adv_status adv_poisson_solve(adv_context *ctx, const adv_poisson_desc *desc, const void *f,
                             void *u) {
    adv_poisson_plan *plan = NULL;
    adv_status st = adv_poisson_plan_create(ctx, desc, &plan);
    if (st != ADV_OK) return st;
    st = adv_poisson_execute(plan, f, u);
    // The plan's workspaces go with it: on CUDA the solve must be over first, and a failure
    // of its queued work is this call's (not the next one's).
    if (st == ADV_OK && ctx->backend == ADV_BACKEND_CUDA) st = advi_cuda_synchronize(ctx);
    adv_poisson_plan_destroy(plan);
    return st;
}
