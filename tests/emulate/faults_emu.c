/* Kernel launch failures on the emulated CUDA backend (advect_emu): the runtime shim's
 * advk_emu_fail_launch(n) makes the n-th launch fail as a launch the device refuses (nothing
 * runs; cudaGetLastError reports cudaErrorLaunchFailure). For each operation below, run once
 * to count its launches, then once per launch with that launch failing: every call must
 * return ADV_ERR_CUDA naming the error (never ADV_OK with an output that a kernel never
 * wrote, never a crash), and the same call afterwards, without failures, must give the
 * bits of the first run (no state left broken). Covers the interaction engine's direct and
 * GEMM paths, the Poisson solver, the Benamou-Brenier solver and two samplers. */
#include "sampling_util.h"

#include <advect/advect.h>
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void advk_emu_fail_launch(long n);
long advk_emu_launch_count(void);

/* The last error of the operation's failing call (the frees after it clear the context's). */
static char failure[1024];
static adv_status keep(adv_context *ctx, adv_status st) {
    if (st != ADV_OK) snprintf(failure, sizeof failure, "%s", adv_context_last_error(ctx));
    return st;
}

typedef struct op {
    const char *name;
    adv_status (*run)(adv_context *ctx, double *out); /* writes its result to out (host) */
    size_t out_count;
} op;

static adv_status interaction(adv_context *ctx, double *out, int64_t d, adv_precision p) {
    const int64_t N = 37, M = 130, e = 3;
    double x[37 * 64], y[130 * 64], w[130 * 3];
    tu_fill_uniform(x, (size_t)(N * d), -1, 1, 1);
    tu_fill_uniform(y, (size_t)(M * d), -1, 1, 2);
    tu_fill_uniform(w, (size_t)(M * e), -1, 1, 3);
    void *dx = su_put(ctx, p, x, (size_t)(N * d)), *dy = su_put(ctx, p, y, (size_t)(M * d));
    void *dw = su_put(ctx, p, w, (size_t)(M * e));
    void *dl = su_put(ctx, p, x, (size_t)N), *dout = su_put(ctx, p, x, (size_t)(N * e)); // overwritten
    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = p;
    desc.n_queries = N, desc.n_keys = M, desc.dim = d, desc.value_dim = e;
    desc.lambda = 0.7;
    adv_status st = keep(ctx, adv_interaction_sum(ctx, &desc, dx, dy, NULL, dw, dl, dout));
    if (st == ADV_OK) su_get(ctx, p, dl, out, (size_t)N);
    if (st == ADV_OK) su_get(ctx, p, dout, out + N, (size_t)(N * e));
    adv_free(ctx, dx), adv_free(ctx, dy), adv_free(ctx, dw), adv_free(ctx, dl), adv_free(ctx, dout);
    return st;
}
static adv_status interaction_direct(adv_context *ctx, double *out) { return interaction(ctx, out, 2, ADV_FLOAT32); }
static adv_status interaction_gemm(adv_context *ctx, double *out) { return interaction(ctx, out, 64, ADV_FLOAT64); }

static adv_status poisson(adv_context *ctx, double *out) {
    double f[72];
    tu_fill_uniform(f, 72, -1, 1, 4);
    void *df = su_put(ctx, ADV_FLOAT64, f, 72), *du = su_put(ctx, ADV_FLOAT64, f, 72);
    adv_poisson_desc d;
    adv_poisson_default_desc(&d);
    d.precision = ADV_FLOAT64;
    d.ndim = 2;
    d.shape[0] = 8, d.shape[1] = 9;
    d.spacing[0] = d.spacing[1] = 0.1;
    d.bc[0] = ADV_BC_NEUMANN, d.bc[1] = ADV_BC_DIRICHLET;
    d.shift = 0.5;
    d.effort = ADV_FFT_ESTIMATE;
    adv_status st = keep(ctx, adv_poisson_solve(ctx, &d, df, du));
    if (st == ADV_OK) su_get(ctx, ADV_FLOAT64, du, out, 72);
    adv_free(ctx, df), adv_free(ctx, du);
    return st;
}

static adv_status bbot(adv_context *ctx, double *out) {
    double r0[20], r1[20];
    for (int i = 0; i < 20; ++i) r0[i] = 1.0 + (i < 10), r1[i] = 1.0 + (i >= 10);
    void *d0 = su_put(ctx, ADV_FLOAT64, r0, 20), *d1 = su_put(ctx, ADV_FLOAT64, r1, 20), *dr = NULL;
    cr_assert_eq(adv_malloc(ctx, 5 * 20 * 8, &dr), ADV_OK);
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    o.precision = ADV_FLOAT64;
    o.time_steps = 4;
    o.max_iterations = 3;
    const int64_t shape[1] = {20};
    adv_bbot_result res = {.struct_size = sizeof res};
    adv_status st = keep(ctx, adv_bbot_compute(ctx, &o, 1, shape, d0, 1, shape, d1, dr, NULL, NULL, &res));
    if (st == ADV_OK) su_get(ctx, ADV_FLOAT64, dr, out, 100);
    if (st == ADV_OK) out[100] = res.cost;
    adv_free(ctx, d0), adv_free(ctx, d1), adv_free(ctx, dr);
    return st;
}

static adv_status sample(adv_context *ctx, double *out, adv_method method) {
    double y[60], z[80];
    tu_fill_uniform(y, 60, -2, 2, 5);
    tu_fill_uniform(z, 80, -1, 1, 6);
    void *dy = su_put(ctx, ADV_FLOAT32, y, 60), *dz = su_put(ctx, ADV_FLOAT32, z, 80);
    adv_field *f = NULL;
    adv_status st = keep(ctx, adv_field_create_empirical(ctx, ADV_FLOAT32, dy, NULL, 30, 2, NULL, &f));
    if (st == ADV_OK) {
        adv_sampler_opts o;
        adv_sampler_default_opts(&o);
        o.method = method;
        o.steps = 4;
        o.t0 = 0.1;
        o.seed = 9;
        st = keep(ctx, adv_sample(f, &o, 40, dz, NULL));
    }
    if (st == ADV_OK) su_get(ctx, ADV_FLOAT32, dz, out, 80);
    adv_field_destroy(f);
    adv_free(ctx, dy), adv_free(ctx, dz);
    return st;
}
static adv_status sample_heun(adv_context *ctx, double *out) { return sample(ctx, out, ADV_METHOD_HEUN); }
static adv_status sample_sde(adv_context *ctx, double *out) { return sample(ctx, out, ADV_METHOD_SDE); }

static void check_op(const op *o) {
    adv_context_opts co;
    adv_context_default_opts(&co);
    co.backend = ADV_BACKEND_CUDA;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&co, &ctx), ADV_OK);
    double *base = tu_calloc(o->out_count, sizeof(double)), *again = tu_calloc(o->out_count, sizeof(double));
    advk_emu_fail_launch(0);
    cr_assert_eq(o->run(ctx, base), ADV_OK, "%s: %s", o->name, adv_context_last_error(ctx));
    const long n = advk_emu_launch_count();
    cr_assert(n >= 1, "%s launched no kernel", o->name);
    for (long k = 1; k <= n; ++k) {
        advk_emu_fail_launch(k);
        failure[0] = '\0';
        const adv_status st = o->run(ctx, again);
        cr_expect_eq(st, ADV_ERR_CUDA, "%s, launch %ld of %ld failing: %s (%s)", o->name, k, n,
                     adv_status_name(st), failure);
        cr_expect(strstr(failure, "cudaErrorLaunchFailure") != NULL, "%s, launch %ld of %ld: '%s'", o->name, k, n,
                  failure);
        advk_emu_fail_launch(0);
        memset(again, 0, o->out_count * sizeof(double));
        cr_assert_eq(o->run(ctx, again), ADV_OK, "%s after launch %ld failed: %s", o->name, k,
                     adv_context_last_error(ctx));
        cr_expect_eq(memcmp(base, again, o->out_count * sizeof(double)), 0,
                     "%s after launch %ld failed: another result", o->name, k);
    }
    free(base), free(again);
    adv_context_destroy(ctx);
}

Test(faults_emu, interaction_direct) { check_op(&(op){"interaction, d = 2", interaction_direct, 37 * 4}); }
Test(faults_emu, interaction_gemm) { check_op(&(op){"interaction, d = 64", interaction_gemm, 37 * 4}); }
Test(faults_emu, poisson) { check_op(&(op){"poisson", poisson, 72}); }
Test(faults_emu, bbot) { check_op(&(op){"bbot", bbot, 101}); }
Test(faults_emu, sampler_heun) { check_op(&(op){"heun", sample_heun, 80}); }
Test(faults_emu, sampler_sde) { check_op(&(op){"sde", sample_sde, 80}); }
