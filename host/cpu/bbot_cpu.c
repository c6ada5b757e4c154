/* CPU backend of the Benamou-Brenier solver: the grid operations of host/bbot_internal.h as
 * OpenMP loops (bbot_cpu_impl.h, included for float and double), dispatched on the plan's
 * precision; the hot work items are compiled per instruction set (ADVI_CPU_CLONES). The
 * Thomas factors of the per-line projection are computed once per plan, with per-thread
 * scratch for the contiguous axis' right-hand sides; the gradient update is also offered
 * fused into the line projection (grad_lines), which the iteration uses; the accumulators
 * are plain doubles. */
#include "bbot_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Adjacent lines handled together by one work item of the line projection (their elements
 * are contiguous, so the inner loops vectorise). */
#define ADV_BBOT_LINE_BLOCK 64
/* Lines along the contiguous axis interleaved by one work item (their recurrences overlap). */
#define ADV_BBOT_LINE_GROUP 8
/* Cells per block of the prox (its common-regime roots are computed block-wise in vectors). */
#define ADV_BBOT_PROX_BLOCK 64
/* Below this many elements a loop runs on one thread (thread start-up would dominate). */
#define ADV_BBOT_PARALLEL_MIN 16384

typedef struct cpu_bbot {
    double sums[ADVI_BBOT_NSUMS];
    double *cp[ADVK_BBOT_MAX_COMP], *inv[ADVK_BBOT_MAX_COMP];
    double *rhs;            /* per thread: right-hand sides of a group of contiguous lines */
    int64_t rhs_per_thread; /* ADV_BBOT_LINE_GROUP (L + 1) for the longest contiguous line */
    int rhs_threads;        /* threads rhs has room for */
} cpu_bbot;

static int threads_for(const adv_bbot_plan *p, int64_t work) {
    return work < ADV_BBOT_PARALLEL_MIN ? 1 : advi_cpu_threads(p->ctx);
}
#define THREADS(p, work) threads_for((p), (work))

#define REAL float
#define SFX f32
#include "cpu/bbot_cpu_impl.h"
#undef REAL
#undef SFX

#define REAL double
#define SFX f64
#include "cpu/bbot_cpu_impl.h"
#undef REAL
#undef SFX

static cpu_bbot *state_of(adv_bbot_plan *p) { return p->backend; }
static int is_f64(const adv_bbot_plan *p) { return p->opts.precision == ADV_FLOAT64; }

static void cpu_fini(adv_bbot_plan *p) {
    cpu_bbot *s = state_of(p);
    if (!s) return;
    for (int c = 0; c < ADVK_BBOT_MAX_COMP; ++c) {
        free(s->cp[c]);
        free(s->inv[c]);
    }
    free(s->rhs);
    free(s);
    p->backend = NULL;
}

static adv_status cpu_init(adv_bbot_plan *p) {
    cpu_bbot *s = calloc(1, sizeof *s);
    if (!s) return advi_fail(p->ctx, ADV_ERR_OUT_OF_MEMORY, "Benamou-Brenier CPU state");
    p->backend = s;
    for (int c = 0; c <= p->grid.d; ++c) {
        const int64_t L = p->grid.L[c];
        s->cp[c] = malloc((size_t)(L + 1) * sizeof(double));
        s->inv[c] = malloc((size_t)(L + 1) * sizeof(double));
        if (!s->cp[c] || !s->inv[c]) {
            cpu_fini(p);
            return advi_fail(p->ctx, ADV_ERR_OUT_OF_MEMORY, "Thomas factors");
        }
        advk_bbot_thomas_factors(L, s->cp[c], s->inv[c]);
        if (p->grid.S[c] == 1 && ADV_BBOT_LINE_GROUP * (L + 1) > s->rhs_per_thread)
            s->rhs_per_thread = ADV_BBOT_LINE_GROUP * (L + 1);
    }
    s->rhs_threads = advi_cpu_threads(p->ctx);
    s->rhs = malloc((size_t)s->rhs_threads * (size_t)s->rhs_per_thread * sizeof(double));
    if (!s->rhs) {
        cpu_fini(p);
        return advi_fail(p->ctx, ADV_ERR_OUT_OF_MEMORY, "line projection scratch");
    }
    return ADV_OK;
}

static adv_status cpu_sums_reset(adv_bbot_plan *p) {
    memset(state_of(p)->sums, 0, sizeof state_of(p)->sums);
    return ADV_OK;
}

static adv_status cpu_sums_fetch(adv_bbot_plan *p, double *out) {
    memcpy(out, state_of(p)->sums, sizeof state_of(p)->sums);
    return ADV_OK;
}

static adv_status cpu_input_stats(adv_bbot_plan *p, const void *rho, double scale) {
    if (is_f64(p)) input_stats_f64(p, rho, scale, state_of(p)->sums);
    else input_stats_f32(p, rho, scale, state_of(p)->sums);
    return ADV_OK;
}

static adv_status cpu_init_state(adv_bbot_plan *p, const void *rho0, const void *rho1, double s0,
                                 double s1, int warm) {
    if (is_f64(p)) init_state_f64(p, rho0, rho1, s0, s1, warm);
    else init_state_f32(p, rho0, rho1, s0, s1, warm);
    return ADV_OK;
}

static adv_status cpu_divergence(adv_bbot_plan *p, const void *state, void *q) {
    if (is_f64(p)) divergence_f64(p, state, q, state_of(p)->sums);
    else divergence_f32(p, state, q, state_of(p)->sums);
    return ADV_OK;
}

static adv_status cpu_grad_update(adv_bbot_plan *p) {
    if (is_f64(p)) grad_update_f64(p);
    else grad_update_f32(p);
    return ADV_OK;
}

static adv_status cpu_prox(adv_bbot_plan *p, double gamma) {
    if (is_f64(p)) prox_f64(p, gamma, state_of(p)->sums);
    else prox_f32(p, gamma, state_of(p)->sums);
    return ADV_OK;
}

static adv_status lines_with(adv_bbot_plan *p, double mu, const double *q) {
    cpu_bbot *s = state_of(p);
    if (is_f64(p))
        lines_f64(p, mu, s->cp, s->inv, s->rhs, s->rhs_per_thread, s->rhs_threads, q, s->sums);
    else
        lines_f32(p, mu, s->cp, s->inv, s->rhs, s->rhs_per_thread, s->rhs_threads, q, s->sums);
    return ADV_OK;
}

static adv_status cpu_lines(adv_bbot_plan *p, double mu) { return lines_with(p, mu, NULL); }

static adv_status cpu_grad_lines(adv_bbot_plan *p, double mu) {
    return lines_with(p, mu, p->bufs.q);
}

static adv_status cpu_finalise(adv_bbot_plan *p, double scale, double threshold, void *rho,
                               void *momentum, void *velocity, double *face_mass) {
    if (is_f64(p)) finalise_f64(p, scale, threshold, rho, momentum, velocity, face_mass, state_of(p)->sums);
    else finalise_f32(p, scale, threshold, rho, momentum, velocity, face_mass, state_of(p)->sums);
    return ADV_OK;
}

static adv_status cpu_scaled_copy(adv_bbot_plan *p, void *dst, int64_t offset, int64_t count,
                                  double scale) {
    if (is_f64(p)) scaled_copy_f64(p, dst, offset, count, scale);
    else scaled_copy_f32(p, dst, offset, count, scale);
    return ADV_OK;
}

static adv_status cpu_velocity_eval(adv_bbot_plan *p, double t, const void *times, int64_t n,
                                    const void *x, void *v) {
    if (is_f64(p)) velocity_eval_f64(p, t, times, n, x, v);
    else velocity_eval_f32(p, t, times, n, x, v);
    return ADV_OK;
}

static const advi_bbot_ops cpu_ops = {
    .init = cpu_init,
    .fini = cpu_fini,
    .sums_reset = cpu_sums_reset,
    .sums_fetch = cpu_sums_fetch,
    .input_stats = cpu_input_stats,
    .init_state = cpu_init_state,
    .divergence = cpu_divergence,
    .grad_update = cpu_grad_update,
    .prox = cpu_prox,
    .lines = cpu_lines,
    .grad_lines = cpu_grad_lines,
    .finalise = cpu_finalise,
    .scaled_copy = cpu_scaled_copy,
    .velocity_eval = cpu_velocity_eval,
};

const advi_bbot_ops *advi_cpu_bbot_ops(void) { return &cpu_ops; }
