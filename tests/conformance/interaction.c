/* Conformance of the interaction sum (spec math.md §1) on the backend under test, against the
 * naive double reference (tests/common/reference.c). Awkward sizes (1, primes, not multiples
 * of any tile), both kernels and precisions, batches, -Inf log-weights and empty rows, the
 * causal mask, huge and zero lambda, partial outputs, plan reuse. Every output is poisoned
 * with NaN before the call, so an element the backend forgets to write fails the check.
 *
 * Tolerances. Let u be the unit roundoff (2^-24 float32, 2^-53 float64), S_i the row's
 * score-term bound from ref_score_scale() and W_i the row's largest |value|.
 *  - A score computed in floating point, by direct differences or by the GEMM form, is off by
 *    at most about d u S_i; we allow ds_i = u (2 d S_i + 64), the 64 u covering a few-ulp
 *    vectorised exp.
 *  - lse_i = m + log(sum) moves by at most the largest score error (the log-sum-exp is
 *    1-Lipschitz in the max norm) plus the relative rounding of a sum of M terms <= 1, at most
 *    M u: tol_lse = ds_i + u (M + 64). With |s| ~ 1e2..1e3 in float32 this is an absolute
 *    ~1e-5..1e-4, i.e. float32 digits lost in exp(s - m) are allowed, not more.
 *  - out_i is a convex combination; a relative error r in each weight moves it by at most
 *    2 r W_i: tol_out = W_i (2 ds_i + 2 u (M + 64)).
 * Plain TF32 products (u ~ 2^-11) or a missing rescale exceed these bounds by orders of
 * magnitude, so the check can fail; in float64 they amount to ~1e-13 relative. */
#include "conformance.h"
#include "reference.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum beta_mode {
    BETA_NONE,        /* beta pointer NULL */
    BETA_RANDOM,      /* beta in [-3, 1], about one key in eight -Inf */
    BETA_EMPTY_BATCH  /* as BETA_RANDOM, and every key of batch 1 is -Inf: empty rows */
};

typedef struct conf_case {
    int64_t n, m, d, e;
    int values_are_keys;
    int64_t batch;
    enum beta_mode beta;
    double lambda, gamma;
    int causal;
} conf_case;

/* Host data (double, already rounded to the precision under test) and its context copies. */
typedef struct conf_data {
    ref_problem prob;
    double *x, *y, *beta, *w;
    void *dx, *dy, *dbeta, *dw;
} conf_data;

static size_t value_dim(const conf_case *c) { return (size_t)(c->values_are_keys ? c->d : c->e); }

static void data_make(adv_context *ctx, adv_precision p, adv_kernel kernel, const conf_case *c,
                      uint64_t seed, conf_data *data) {
    memset(data, 0, sizeof *data);
    const size_t B = (size_t)c->batch, N = (size_t)c->n, M = (size_t)c->m, d = (size_t)c->d;
    const size_t e = (size_t)c->e;
    data->x = tu_calloc(B * N * d, sizeof(double));
    data->y = tu_calloc(B * M * d, sizeof(double));
    tu_fill_uniform(data->x, B * N * d, -1.0, 1.0, seed * 4 + 1);
    tu_fill_uniform(data->y, B * M * d, -1.0, 1.0, seed * 4 + 2);
    tu_round_to_precision(data->x, B * N * d, p);
    tu_round_to_precision(data->y, B * M * d, p);
    if (!c->values_are_keys && e > 0) {
        data->w = tu_calloc(B * M * e, sizeof(double));
        tu_fill_uniform(data->w, B * M * e, -2.0, 2.0, seed * 4 + 3);
        tu_round_to_precision(data->w, B * M * e, p);
    }
    if (c->beta != BETA_NONE) {
        tu_rng r;
        tu_rng_seed(&r, seed * 4 + 4);
        data->beta = tu_calloc(B * M, sizeof(double));
        for (size_t k = 0; k < B * M; ++k) {
            double u = tu_rng_uniform(&r, 0.0, 1.0);
            data->beta[k] = u < 0.125 ? -INFINITY : -3.0 + 4.0 * tu_rng_uniform(&r, 0.0, 1.0);
        }
        if (c->beta == BETA_EMPTY_BATCH && B > 1)
            for (size_t j = 0; j < M; ++j) data->beta[M + j] = -INFINITY;
        tu_round_to_precision(data->beta, B * M, p);
    }
    data->prob = (ref_problem){.kernel = kernel,
                               .batch = c->batch,
                               .n = c->n,
                               .m = c->m,
                               .d = c->d,
                               .e = (int64_t)value_dim(c),
                               .lambda = c->lambda,
                               .gamma = c->gamma,
                               .causal = c->causal,
                               .values_are_keys = c->values_are_keys,
                               .x = data->x,
                               .y = data->y,
                               .beta = data->beta,
                               .w = data->w};
    data->dx = conf_upload(ctx, p, data->x, B * N * d);
    data->dy = conf_upload(ctx, p, data->y, B * M * d);
    if (data->beta) data->dbeta = conf_upload(ctx, p, data->beta, B * M);
    if (data->w) data->dw = conf_upload(ctx, p, data->w, B * M * e);
}

static void data_free(adv_context *ctx, conf_data *data) {
    conf_free(ctx, data->dx);
    conf_free(ctx, data->dy);
    conf_free(ctx, data->dbeta);
    conf_free(ctx, data->dw);
    free(data->x);
    free(data->y);
    free(data->beta);
    free(data->w);
}

static adv_interaction_desc make_desc(adv_precision p, adv_kernel kernel, const conf_case *c) {
    adv_interaction_desc desc;
    cr_assert_eq(adv_interaction_default_desc(&desc), ADV_OK);
    desc.precision = p;
    desc.kernel = kernel;
    desc.batch = c->batch;
    desc.n_queries = c->n;
    desc.n_keys = c->m;
    desc.dim = c->d;
    desc.value_dim = (int64_t)value_dim(c);
    desc.lambda = c->lambda;
    desc.gamma = c->gamma;
    desc.causal = c->causal;
    desc.values_are_keys = c->values_are_keys;
    return desc;
}

static void describe(char *buf, size_t size, adv_precision p, adv_kernel kernel,
                     const conf_case *c, const char *what) {
    snprintf(buf, size,
             "[%s %s %s B=%lld N=%lld M=%lld d=%lld e=%lld%s%s beta=%s lambda=%g gamma=%g]",
             what, kernel == ADV_KERNEL_DOT ? "DOT" : "SQDIST", tu_precision_name(p),
             (long long)c->batch, (long long)c->n, (long long)c->m, (long long)c->d,
             (long long)value_dim(c), c->values_are_keys ? " values_are_keys" : "",
             c->causal ? " causal" : "",
             c->beta == BETA_NONE ? "NULL" : c->beta == BETA_RANDOM ? "random" : "empty-batch",
             c->lambda, c->gamma);
}

/* Compares lse (B x N) and out (B x N x e), either may be NULL, with the reference. The score
 * scale S of the tolerance comes from scale_prob: prob itself, or the same problem moved
 * back to the origin when prob's data are translated (the sum is translation invariant). */
static void check_against_reference(adv_precision p, const ref_problem *prob,
                                    const ref_problem *scale_prob, const double *lse,
                                    const double *out, const char *label) {
    const size_t rows = (size_t)prob->batch * (size_t)prob->n, e = (size_t)prob->e;
    double *ref_lse = tu_calloc(rows, sizeof(double));
    double *ref_out = tu_calloc(rows * (e ? e : 1), sizeof(double));
    double *S = tu_calloc(rows, sizeof(double));
    double *W = tu_calloc(rows, sizeof(double));
    ref_interaction(prob, ref_lse, ref_out);
    ref_score_scale(scale_prob, S);
    ref_value_scale(prob, W);
    const double u = tu_unit_roundoff(p);
    const double sum_err = u * ((double)prob->m + 64.0);

    size_t bad_lse = 0, bad_out = 0, first_lse = 0, first_out = 0;
    for (size_t r = 0; r < rows; ++r) {
        const double ds = u * (2.0 * (double)prob->d * S[r] + 64.0);
        const double tol_lse = ds + sum_err;
        const double tol_out = W[r] * (2.0 * ds + 2.0 * sum_err);
        const int empty = ref_lse[r] == -INFINITY;
        if (lse) {
            /* Empty rows must be exactly -Inf; other rows finite and within tolerance. */
            int ok = empty ? lse[r] == -INFINITY : tu_close(lse[r], ref_lse[r], tol_lse, 0.0);
            if (!ok && bad_lse++ == 0) first_lse = r;
        }
        if (out) {
            for (size_t k = 0; k < e; ++k) {
                double g = out[r * e + k], ref = ref_out[r * e + k];
                int ok = empty ? g == 0.0 : tu_close(g, ref, tol_out, 0.0);
                if (!ok && bad_out++ == 0) first_out = r * e + k;
            }
        }
    }
    if (lse) {
        size_t r = first_lse;
        cr_expect(bad_lse == 0,
                  "%s lse: %zu of %zu rows wrong; first row %zu: got %.17g, reference %.17g "
                  "(tolerance %.3g)",
                  label, bad_lse, rows, r, lse[r], ref_lse[r],
                  u * (2.0 * (double)prob->d * S[r] + 64.0) + sum_err);
    }
    if (out) {
        size_t k = first_out, r = e ? k / e : 0;
        cr_expect(bad_out == 0,
                  "%s out: %zu of %zu entries wrong; first row %zu component %zu: got %.17g, "
                  "reference %.17g (tolerance %.3g)",
                  label, bad_out, rows * e, r, e ? k % e : 0, out[k], ref_out[k],
                  W[r] * (2.0 * u * (2.0 * (double)prob->d * S[r] + 64.0) + 2.0 * sum_err));
    }
    free(ref_lse);
    free(ref_out);
    free(S);
    free(W);
}

/* Runs one execution with poisoned outputs (want_lse / want_out choose which are passed),
 * through `plan` when given, else through the one-shot adv_interaction_sum, and checks the
 * results against the reference. */
static void run_checked(adv_context *ctx, adv_interaction_plan *plan,
                        const adv_interaction_desc *desc, const conf_data *data,
                        const ref_problem *scale_prob, int want_lse, int want_out,
                        const void *w_override, const char *label) {
    const adv_precision p = desc->precision;
    const size_t rows = (size_t)desc->batch * (size_t)desc->n_queries;
    const size_t e = (size_t)desc->value_dim;
    if (e == 0) want_out = 0;
    void *dlse = want_lse ? conf_alloc_poisoned(ctx, p, rows) : NULL;
    void *dout = want_out ? conf_alloc_poisoned(ctx, p, rows * e) : NULL;
    const void *w = w_override ? w_override : data->dw;
    adv_status st =
        plan ? adv_interaction_execute(plan, data->dx, data->dy, data->dbeta, w, dlse, dout)
             : adv_interaction_sum(ctx, desc, data->dx, data->dy, data->dbeta, w, dlse, dout);
    cr_assert_eq(st, ADV_OK, "%s: %s: %s", label, adv_status_name(st), adv_context_last_error(ctx));
    cr_assert_eq(adv_context_synchronize(ctx), ADV_OK, "%s: synchronize: %s", label,
                 adv_context_last_error(ctx));
    double *lse = want_lse ? tu_calloc(rows, sizeof(double)) : NULL;
    double *out = want_out ? tu_calloc(rows * e, sizeof(double)) : NULL;
    if (lse) conf_download(ctx, p, dlse, lse, rows);
    if (out) conf_download(ctx, p, dout, out, rows * e);
    if (lse) cr_expect_eq(tu_count_nan(lse, rows), 0, "%s: NaN left in lse", label);
    if (out) cr_expect_eq(tu_count_nan(out, rows * e), 0, "%s: NaN left in out", label);
    check_against_reference(p, &data->prob, scale_prob ? scale_prob : &data->prob, lse, out, label);
    free(lse);
    free(out);
    conf_free(ctx, dlse);
    conf_free(ctx, dout);
}

/* One case end to end: data, one-shot call, comparison. */
static void run_case(adv_context *ctx, adv_precision p, adv_kernel kernel, const conf_case *c,
                     uint64_t seed, int want_lse, int want_out, const char *what) {
    char label[256];
    describe(label, sizeof label, p, kernel, c, what);
    conf_data data;
    data_make(ctx, p, kernel, c, seed, &data);
    adv_interaction_desc desc = make_desc(p, kernel, c);
    run_checked(ctx, NULL, &desc, &data, NULL, want_lse, want_out, NULL, label);
    data_free(ctx, &data);
}

/* The main table: every N, M in {1, 7, 127, 257, 1031}, d in {1, 2, 3, 5, 16, 64, 67}, e in
 * {0, 1, 2, 3, 17} and values_are_keys, batch 1 and 3, beta NULL / random with -Inf / an
 * all -Inf batch, and lambda from 0.02 to 1000 so that |scores| reach ~1e3. Combinations are
 * chosen so each run stays around 1e7 pair-dimensions. */
static const conf_case main_cases[] = {
    /* n     m     d   e  vak B  beta              lambda  gamma */
    {1, 1, 1, 0, 0, 1, BETA_NONE, 1.0, 1.0, 0},
    {1, 1, 3, 1, 0, 3, BETA_RANDOM, 0.7, 1.3, 0},
    {1, 1031, 2, 2, 0, 1, BETA_RANDOM, 2.0, 0.8, 0},
    {1031, 1, 5, 3, 0, 1, BETA_NONE, 0.5, 1.0, 0},
    {7, 127, 16, 17, 0, 3, BETA_EMPTY_BATCH, 0.3, 1.1, 0},
    {127, 7, 64, 1, 0, 1, BETA_RANDOM, 0.05, 0.9, 0},
    {257, 257, 67, 3, 0, 1, BETA_NONE, 0.1, 1.0, 0},
    {1031, 257, 3, 0, 0, 1, BETA_RANDOM, 5.0, 0.6, 0},
    {257, 1031, 2, 0, 1, 1, BETA_NONE, 10.0, 1.0, 0},
    {127, 1031, 64, 0, 1, 1, BETA_RANDOM, 0.2, 1.0, 0},
    {1031, 1031, 3, 0, 1, 1, BETA_RANDOM, 25.0, 0.9, 0},
    {7, 7, 67, 17, 0, 3, BETA_RANDOM, 0.02, 1.2, 0},
    {1031, 127, 16, 2, 0, 3, BETA_EMPTY_BATCH, 1.0, 1.0, 0},
    {257, 7, 1, 1, 0, 3, BETA_RANDOM, 3.0, 0.5, 0},
    {7, 1031, 5, 0, 1, 3, BETA_EMPTY_BATCH, 1.0, 1.4, 0},
    {1031, 1031, 2, 17, 0, 1, BETA_NONE, 50.0, 1.0, 0},
    {127, 257, 67, 0, 0, 3, BETA_NONE, 0.5, 1.0, 0},
    {257, 127, 1, 17, 0, 1, BETA_RANDOM, 100.0, 0.7, 0},
    {1, 257, 64, 17, 0, 3, BETA_RANDOM, 0.1, 1.0, 0},
    {1031, 7, 67, 2, 0, 1, BETA_RANDOM, 0.05, 1.0, 0},
    {127, 127, 1, 0, 1, 1, BETA_NONE, 1000.0, 1.0, 0},
    {1, 7, 2, 3, 0, 1, BETA_RANDOM, 1.0, 1.0, 0},
    /* value widths on both sides of the CPU engine's lane/row split (4 | 5+), a row width
     * that is not a whole number of vectors, and M past one key segment (4096 keys for
     * d <= 16) */
    {7, 257, 4, 4, 0, 3, BETA_RANDOM, 1.0, 1.0, 0},
    {257, 4099, 8, 40, 0, 1, BETA_RANDOM, 2.0, 1.0, 0},
    {127, 2053, 16, 0, 1, 1, BETA_EMPTY_BATCH, 0.5, 1.0, 0},
};
#define N_MAIN_CASES (sizeof main_cases / sizeof main_cases[0])

static void run_main_table(adv_precision p, adv_kernel kernel) {
    adv_context *ctx = conf_context();
    for (size_t k = 0; k < N_MAIN_CASES; ++k)
        run_case(ctx, p, kernel, &main_cases[k], 1000 + k, 1, 1, "table");
    conf_context_destroy(ctx);
}

Test(interaction, sqdist_f32) { run_main_table(ADV_FLOAT32, ADV_KERNEL_SQDIST); }
Test(interaction, sqdist_f64) { run_main_table(ADV_FLOAT64, ADV_KERNEL_SQDIST); }
Test(interaction, dot_f32) { run_main_table(ADV_FLOAT32, ADV_KERNEL_DOT); }
Test(interaction, dot_f64) { run_main_table(ADV_FLOAT64, ADV_KERNEL_DOT); }

/* Causal DOT: N == M (the attention case) and N != M both ways. */
static const conf_case causal_cases[] = {
    {1, 1, 1, 1, 0, 1, BETA_NONE, 1.0, 1.0, 1},
    {127, 127, 16, 3, 0, 3, BETA_RANDOM, 0.5, 1.0, 1},
    {1031, 1031, 2, 0, 1, 1, BETA_NONE, 4.0, 1.0, 1},
    {257, 127, 5, 2, 0, 3, BETA_EMPTY_BATCH, 1.0, 1.0, 1},
    {7, 1031, 67, 17, 0, 1, BETA_RANDOM, 0.1, 1.0, 1},
    {257, 257, 64, 0, 1, 1, BETA_NONE, 0.25, 1.0, 1},
    {1031, 1031, 16, 0, 1, 1, BETA_RANDOM, 1.0, 1.0, 1},
};

static void run_causal(adv_precision p) {
    adv_context *ctx = conf_context();
    for (size_t k = 0; k < sizeof causal_cases / sizeof causal_cases[0]; ++k)
        run_case(ctx, p, ADV_KERNEL_DOT, &causal_cases[k], 2000 + k, 1, 1, "causal");
    conf_context_destroy(ctx);
}

Test(interaction, causal_dot_f32) { run_causal(ADV_FLOAT32); }
Test(interaction, causal_dot_f64) { run_causal(ADV_FLOAT64); }

/* Only one of the two outputs requested: the other pointer is NULL. */
static void run_partial(adv_precision p) {
    adv_context *ctx = conf_context();
    const conf_case cases[] = {
        {127, 257, 3, 2, 0, 3, BETA_EMPTY_BATCH, 1.5, 0.8, 0},
        {1031, 7, 16, 0, 1, 1, BETA_RANDOM, 0.5, 1.0, 0},
        {7, 1031, 67, 5, 0, 1, BETA_NONE, 0.1, 1.0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        for (int kernel = 0; kernel < 2; ++kernel) {
            run_case(ctx, p, (adv_kernel)kernel, &cases[k], 3000 + k, 1, 0, "lse-only");
            run_case(ctx, p, (adv_kernel)kernel, &cases[k], 3100 + k, 0, 1, "out-only");
        }
    }
    conf_context_destroy(ctx);
}

Test(interaction, lse_only_and_out_only_f32) { run_partial(ADV_FLOAT32); }
Test(interaction, lse_only_and_out_only_f64) { run_partial(ADV_FLOAT64); }

/* A plan executed several times with different data pointers (and the first data again). */
static void run_plan_reuse(adv_precision p) {
    adv_context *ctx = conf_context();
    for (int kernel = 0; kernel < 2; ++kernel) {
        const conf_case c = {257, 1031, 5, 3, 0, 3, BETA_EMPTY_BATCH, 0.8, 1.25, 0};
        char label[256];
        describe(label, sizeof label, p, (adv_kernel)kernel, &c, "plan reuse");
        adv_interaction_desc desc = make_desc(p, (adv_kernel)kernel, &c);
        adv_interaction_plan *plan = NULL;
        adv_status st = adv_interaction_plan_create(ctx, &desc, &plan);
        cr_assert_eq(st, ADV_OK, "%s: plan_create: %s", label, adv_context_last_error(ctx));
        conf_data a, b;
        data_make(ctx, p, (adv_kernel)kernel, &c, 4000, &a);
        data_make(ctx, p, (adv_kernel)kernel, &c, 4001, &b);
        run_checked(ctx, plan, &desc, &a, NULL, 1, 1, NULL, label);
        run_checked(ctx, plan, &desc, &b, NULL, 1, 1, NULL, label);
        run_checked(ctx, plan, &desc, &a, NULL, 1, 0, NULL, label);
        run_checked(ctx, plan, &desc, &b, NULL, 0, 1, NULL, label);
        data_free(ctx, &a);
        data_free(ctx, &b);
        cr_expect_eq(adv_interaction_plan_destroy(plan), ADV_OK);
    }
    conf_context_destroy(ctx);
}

Test(interaction, plan_reuse_f32) { run_plan_reuse(ADV_FLOAT32); }
Test(interaction, plan_reuse_f64) { run_plan_reuse(ADV_FLOAT64); }

/* values_are_keys ignores the values pointer: a NaN-filled w must change nothing. */
static void run_vak_ignores_w(adv_precision p) {
    adv_context *ctx = conf_context();
    const conf_case c = {257, 127, 3, 0, 1, 3, BETA_RANDOM, 2.0, 0.9, 0};
    for (int kernel = 0; kernel < 2; ++kernel) {
        char label[256];
        describe(label, sizeof label, p, (adv_kernel)kernel, &c, "NaN w ignored");
        conf_data data;
        data_make(ctx, p, (adv_kernel)kernel, &c, 5000, &data);
        void *nan_w = conf_alloc_poisoned(ctx, p, (size_t)(c.batch * c.m * c.d));
        adv_interaction_desc desc = make_desc(p, (adv_kernel)kernel, &c);
        run_checked(ctx, NULL, &desc, &data, NULL, 1, 1, nan_w, label);
        conf_free(ctx, nan_w);
        data_free(ctx, &data);
    }
    conf_context_destroy(ctx);
}

Test(interaction, values_are_keys_ignores_w_f32) { run_vak_ignores_w(ADV_FLOAT32); }
Test(interaction, values_are_keys_ignores_w_f64) { run_vak_ignores_w(ADV_FLOAT64); }

/* lambda = 0: every key of a row has score beta_j. With beta NULL the closed form is
 * lse_i = log(K_i), out_i = mean of the K_i visible values (K_i = M, or min(i + 1, M) under
 * the causal mask), checked directly; with random beta against the reference. */
static void run_lambda_zero(adv_precision p) {
    adv_context *ctx = conf_context();
    const double u = tu_unit_roundoff(p);
    const conf_case cases[] = {
        {127, 1031, 3, 2, 0, 3, BETA_NONE, 0.0, 0.7, 0},
        {257, 257, 16, 3, 0, 1, BETA_NONE, 0.0, 1.0, 1},
        {7, 257, 5, 2, 0, 3, BETA_EMPTY_BATCH, 0.0, 1.0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        const conf_case *c = &cases[k];
        const adv_kernel kernel = c->causal ? ADV_KERNEL_DOT : ADV_KERNEL_SQDIST;
        char label[256];
        describe(label, sizeof label, p, kernel, c, "lambda=0");
        conf_data data;
        data_make(ctx, p, kernel, c, 6000 + k, &data);
        adv_interaction_desc desc = make_desc(p, kernel, c);
        run_checked(ctx, NULL, &desc, &data, NULL, 1, 1, NULL, label);
        if (c->beta != BETA_NONE) {
            data_free(ctx, &data);
            continue;
        }
        /* Closed form, independent of the reference. */
        const size_t B = (size_t)c->batch, N = (size_t)c->n, M = (size_t)c->m;
        const size_t e = (size_t)c->e;
        void *dlse = conf_alloc_poisoned(ctx, p, B * N);
        void *dout = conf_alloc_poisoned(ctx, p, B * N * e);
        adv_status st = adv_interaction_sum(ctx, &desc, data.dx, data.dy, NULL, data.dw, dlse, dout);
        cr_assert_eq(st, ADV_OK, "%s: %s", label, adv_context_last_error(ctx));
        double *lse = tu_calloc(B * N, sizeof(double)), *out = tu_calloc(B * N * e, sizeof(double));
        conf_download(ctx, p, dlse, lse, B * N);
        conf_download(ctx, p, dout, out, B * N * e);
        size_t bad = 0;
        for (size_t b = 0; b < B; ++b) {
            for (size_t i = 0; i < N; ++i) {
                const size_t K = c->causal ? (i + 1 < M ? i + 1 : M) : M;
                /* Rounding of a sum of K ones (exact in float up to 2^24) and of the log. */
                if (!tu_close(lse[b * N + i], log((double)K), u * (K + 64.0), 0.0)) ++bad;
                for (size_t q = 0; q < e; ++q) {
                    double mean = 0.0;
                    for (size_t j = 0; j < K; ++j) mean += data.w[(b * M + j) * e + q];
                    mean /= (double)K;
                    /* 2 u (K + 64) W as for out in the table, with W = max|w| = 2. */
                    if (!tu_close(out[(b * N + i) * e + q], mean, 2.0 * u * (K + 64.0) * 2.0, 0.0))
                        ++bad;
                }
            }
        }
        cr_expect_eq(bad, 0, "%s: %zu entries differ from log(K) / the mean of the values", label,
                     bad);
        free(lse);
        free(out);
        conf_free(ctx, dlse);
        conf_free(ctx, dout);
        data_free(ctx, &data);
    }
    conf_context_destroy(ctx);
}

Test(interaction, lambda_zero_f32) { run_lambda_zero(ADV_FLOAT32); }
Test(interaction, lambda_zero_f64) { run_lambda_zero(ADV_FLOAT64); }

/* One interaction sum on the backend under test from host data (doubles, already rounded
 * to the precision): uploads x, y, beta, w, runs into NaN-poisoned outputs, downloads lse and
 * out into host doubles and frees the device copies. Shapes come from desc. */
static void sum_from_host(adv_context *ctx, const adv_interaction_desc *desc, const double *x,
                          const double *y, const double *beta, const double *w, double *lse,
                          double *out) {
    const adv_precision p = desc->precision;
    const size_t B = (size_t)desc->batch, N = (size_t)desc->n_queries, M = (size_t)desc->n_keys;
    const size_t d = (size_t)desc->dim, e = (size_t)desc->value_dim;
    void *dx = conf_upload(ctx, p, x, B * N * d), *dy = conf_upload(ctx, p, y, B * M * d);
    void *dbeta = beta ? conf_upload(ctx, p, beta, B * M) : NULL;
    void *dw = w ? conf_upload(ctx, p, w, B * M * e) : NULL;
    void *dlse = conf_alloc_poisoned(ctx, p, B * N), *dout = conf_alloc_poisoned(ctx, p, B * N * e);
    cr_assert_eq(adv_interaction_sum(ctx, desc, dx, dy, dbeta, dw, dlse, dout), ADV_OK, "%s %s",
                 tu_precision_name(p), adv_context_last_error(ctx));
    conf_download(ctx, p, dlse, lse, B * N);
    conf_download(ctx, p, dout, out, B * N * e);
    void *bufs[] = {dx, dy, dbeta, dw, dlse, dout};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; ++k)
        if (bufs[k]) conf_free(ctx, bufs[k]);
}

/* lambda = 1e12 with gamma != 1 (the near-argmax regime of sampling as t -> 1). Keys sit on a
 * lattice of spacing 0.5 and each query is within 0.05 per coordinate of gamma^-1 times its
 * own key, so the nearest key k wins by lambda (0.39^2 - 0.09^2) > 1e11 in score: every other
 * weight is exp(-1e11) = 0 in any precision. Hence, exactly, out_i = w_k and
 * lse_i = beta_k - lambda |gamma x_i - y_k|^2; the result must be finite (no Inf/NaN from
 * scores of order -1e10). lse is compared with the score tolerance d u S (S ~ 2 lambda), out
 * with 4 u |w| (an exact one-hot up to the final division). Batch 2 also carries a -Inf key
 * and batch 3 is entirely -Inf (lse = -Inf, out = 0 even at this lambda). */
static void run_huge_lambda(adv_precision p, int64_t d) {
    adv_context *ctx = conf_context();
    const double u = tu_unit_roundoff(p), lambda = 1e12, gamma = 0.75;
    const int64_t B = 3, G = 5, M = G * G * G, N = 97, e = 2;
    tu_rng r;
    tu_rng_seed(&r, 7000 + (uint64_t)p);
    double *y = tu_calloc((size_t)(B * M * d), sizeof(double));
    double *x = tu_calloc((size_t)(B * N * d), sizeof(double));
    double *w = tu_calloc((size_t)(B * M * e), sizeof(double));
    double *beta = tu_calloc((size_t)(B * M), sizeof(double));
    int64_t *nearest = tu_calloc((size_t)(B * N), sizeof(int64_t));
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < M; ++j) {
            const int64_t c3[3] = {j % G, (j / G) % G, j / (G * G)};
            for (int64_t k = 0; k < d; ++k) // beyond 3 dimensions: all keys near -1 + 0.1 k
                y[(b * M + j) * d + k] = -1.0 + (k < 3 ? 0.5 * (double)c3[k] : 0.1 * (double)k) +
                                         tu_rng_uniform(&r, -0.01, 0.01);
            for (int64_t k = 0; k < e; ++k) w[(b * M + j) * e + k] = tu_rng_uniform(&r, -2.0, 2.0);
            beta[b * M + j] = b == 2 ? -INFINITY : tu_rng_uniform(&r, -1.0, 0.0);
        }
        if (b == 1) beta[b * M + 3] = -INFINITY;
    }
    tu_round_to_precision(y, (size_t)(B * M * d), p);
    tu_round_to_precision(w, (size_t)(B * M * e), p);
    tu_round_to_precision(beta, (size_t)(B * M), p);
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < N; ++i) {
            int64_t k = tu_rng_int(&r, 0, M - 1);
            if (b == 1 && k == 3) k = 4; /* keep the chosen key visible */
            nearest[b * N + i] = k;
            for (int64_t q = 0; q < d; ++q)
                x[(b * N + i) * d + q] =
                    (y[(b * M + k) * d + q] + tu_rng_uniform(&r, -0.05, 0.05)) / gamma;
        }
    }
    tu_round_to_precision(x, (size_t)(B * N * d), p);

    const ref_problem prob = {.kernel = ADV_KERNEL_SQDIST, .batch = B, .n = N, .m = M, .d = d,
                              .e = e, .lambda = lambda, .gamma = gamma, .x = x, .y = y,
                              .beta = beta, .w = w};
    double *ref_lse = tu_calloc((size_t)(B * N), sizeof(double));
    double *S = tu_calloc((size_t)(B * N), sizeof(double));
    ref_interaction(&prob, ref_lse, NULL);
    ref_score_scale(&prob, S);

    const conf_case c = {N, M, d, e, 0, B, BETA_RANDOM, lambda, gamma, 0};
    const adv_interaction_desc desc = make_desc(p, ADV_KERNEL_SQDIST, &c);
    double *lse = tu_calloc((size_t)(B * N), sizeof(double));
    double *out = tu_calloc((size_t)(B * N * e), sizeof(double));
    sum_from_host(ctx, &desc, x, y, beta, w, lse, out);

    size_t bad_empty = 0, bad_lse = 0, bad_out = 0;
    char first_bad[512] = "";
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < N; ++i) {
            const int64_t row = b * N + i, k = nearest[row];
            if (b == 2) {
                if (!(lse[row] == -INFINITY && out[row * e] == 0.0 && out[row * e + 1] == 0.0) &&
                    bad_empty++ == 0)
                    snprintf(first_bad, sizeof first_bad, "empty row %lld: lse %g out (%g, %g)",
                             (long long)i, lse[row], out[row * e], out[row * e + 1]);
                continue;
            }
            double dist2 = 0.0;
            for (int64_t q = 0; q < d; ++q) {
                double diff = gamma * x[row * d + q] - y[(b * M + k) * d + q];
                dist2 += diff * diff;
            }
            const double expect = beta[b * M + k] - lambda * dist2;
            /* The construction really makes k the argmax: the reference agrees. */
            cr_assert(fabs(ref_lse[row] - expect) <= 1e-6 * fabs(expect),
                      "test data: the nearest key is not dominant");
            const double tol = u * (2.0 * (double)d * S[row] + 64.0);
            if (!(isfinite(lse[row]) && fabs(lse[row] - expect) <= tol) && bad_lse++ == 0 &&
                !first_bad[0])
                snprintf(first_bad, sizeof first_bad,
                         "batch %lld row %lld: lse %.17g, expected %.17g (tolerance %.3g)",
                         (long long)b, (long long)i, lse[row], expect, tol);
            for (int64_t q = 0; q < e; ++q) {
                const double wk = w[(b * M + k) * e + q], g = out[row * e + q];
                if (!(isfinite(g) && fabs(g - wk) <= 4.0 * u * fabs(wk)) && bad_out++ == 0 &&
                    !first_bad[0])
                    snprintf(first_bad, sizeof first_bad,
                             "batch %lld row %lld: out[%lld] = %.17g, expected the nearest "
                             "key's value %.17g",
                             (long long)b, (long long)i, (long long)q, g, wk);
            }
        }
    }
    cr_expect(bad_empty + bad_lse + bad_out == 0,
              "huge lambda %s d=%lld: %zu empty rows, %zu lse and %zu out entries wrong; first: %s",
              tu_precision_name(p), (long long)d, bad_empty, bad_lse, bad_out, first_bad);
    free(x), free(y), free(w), free(beta), free(nearest), free(ref_lse), free(S), free(lse), free(out);
    conf_context_destroy(ctx);
}

/* d = 16 as well: at this λ an engine must keep direct differences there too (the expansion
 * |x|^2 - 2<x,y> + |y|^2 would lose every digit of the nearest key's distance). */
Test(interaction, huge_lambda_f32) {
    run_huge_lambda(ADV_FLOAT32, 3);
    run_huge_lambda(ADV_FLOAT32, 16);
}
Test(interaction, huge_lambda_f64) {
    run_huge_lambda(ADV_FLOAT64, 3);
    run_huge_lambda(ADV_FLOAT64, 16);
}

/* Data far from the origin: queries and keys 1000 (float32) or 1e6 (float64) away from it in
 * every coordinate, spread over [-1, 1] around that point. The sum is translation invariant
 * (gamma = 1), so the tolerance is that of the same problem moved back to the origin. An
 * engine that forms |x|^2 - 2<x,y> + |y|^2 from the raw coordinates (the CPU expansion at
 * d >= 16, the CUDA GEMM path at d >= 64) is off by ~d u λ |x|^2 (several nats in float32)
 * and fails; direct differences or a centred expansion pass. λ = 0.25 (moderate: λ R^2 ~ 4)
 * and 40 (large); M crosses key segments. */
static void run_translated(adv_precision p) {
    adv_context *ctx = conf_context();
    const double offset = p == ADV_FLOAT32 ? 1000.0 : 1e6;
    const int64_t dims[] = {16, 17, 33, 64, 80};
    const double lambdas[] = {0.25, 40.0};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; ++di)
        for (size_t li = 0; li < sizeof lambdas / sizeof lambdas[0]; ++li) {
            const conf_case c = {131, 4099, dims[di], 3, dims[di] == 17, 2, BETA_RANDOM,
                                 lambdas[li], 1.0, 0};
            char label[256];
            describe(label, sizeof label, p, ADV_KERNEL_SQDIST, &c, "translated");
            conf_data data;
            data_make(ctx, p, ADV_KERNEL_SQDIST, &c, 900 + di * 2 + li, &data);
            const size_t nx = (size_t)(c.batch * c.n * c.d), ny = (size_t)(c.batch * c.m * c.d);
            double *x0 = tu_calloc(nx, sizeof(double)), *y0 = tu_calloc(ny, sizeof(double));
            for (size_t k = 0; k < nx; ++k) data.x[k] += offset;
            for (size_t k = 0; k < ny; ++k) data.y[k] += offset;
            tu_round_to_precision(data.x, nx, p);
            tu_round_to_precision(data.y, ny, p);
            for (size_t k = 0; k < nx; ++k) x0[k] = data.x[k] - offset; // exact in double
            for (size_t k = 0; k < ny; ++k) y0[k] = data.y[k] - offset;
            ref_problem at_origin = data.prob;
            at_origin.x = x0, at_origin.y = y0;
            conf_free(ctx, data.dx);
            conf_free(ctx, data.dy);
            data.dx = conf_upload(ctx, p, data.x, nx);
            data.dy = conf_upload(ctx, p, data.y, ny);
            adv_interaction_desc desc = make_desc(p, ADV_KERNEL_SQDIST, &c);
            run_checked(ctx, NULL, &desc, &data, &at_origin, 1, 1, NULL, label);
            free(x0), free(y0);
            data_free(ctx, &data);
        }
    conf_context_destroy(ctx);
}

/* A batch split into chunks: on CUDA's GEMM path (d >= 64) the batch goes in chunks of as
 * many entries as fit one score tile of 4096 x 1024; with N = 2100 queries and M = 1024 keys
 * that is one entry per chunk, so batch entry 1 is a chunk of its own, read at its own offset
 * (N != M makes a query offset computed from M wrong). */
Test(interaction, batch_in_chunks_on_the_gemm_path) {
    adv_context *ctx = conf_context();
    const conf_case c = {2100, 1024, 64, 3, 0, 2, BETA_RANDOM, 0.5, 1.0, 0};
    run_case(ctx, ADV_FLOAT32, ADV_KERNEL_SQDIST, &c, 7001, 1, 1, "batch chunks");
    run_case(ctx, ADV_FLOAT64, ADV_KERNEL_SQDIST, &c, 7002, 1, 1, "batch chunks");
    run_case(ctx, ADV_FLOAT32, ADV_KERNEL_DOT, &c, 7003, 1, 1, "batch chunks");
    conf_context_destroy(ctx);
}

Test(interaction, translated_data_f32) { run_translated(ADV_FLOAT32); }
Test(interaction, translated_data_f64) { run_translated(ADV_FLOAT64); }

/* Near ties at large λ in d = 16, 33, 64 and 80: keys come in twins 1e-3 apart, each query sits 1e-3
 * from a twin pair, and λ = 2e5 makes the two weights differ by O(1): the result depends on
 * distances of ~1e-5 between points of norm ~3. Direct differences compute them to a
 * relative d u, so the tolerance here is that of the scores that matter, measured from the
 * row's nearest key: ds = u (2 d S + 64) with S = λ min_j |x - y_j|^2 + 100 (terms more than
 * e^-100 below the top do not count). The expansion |x|^2 - 2<x,y> + |y|^2, with an absolute
 * error ~d u λ |y|^2 (~1.5 nats in float32), fails unless the close pairs are recomputed. */
static void run_close_pairs(adv_precision p) {
    adv_context *ctx = conf_context();
    const double u = tu_unit_roundoff(p), lambda = 2e5, h = 1e-3;
    const int64_t dims[] = {16, 33, 64, 80}; // on CUDA, 64 and 80 take the GEMM path
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; ++di) {
        const int64_t d = dims[di], K = 61, M = 2 * K, N = 97, e = 2;
        tu_rng r;
        tu_rng_seed(&r, 8100 + (uint64_t)d + (uint64_t)p);
        double *y = tu_calloc((size_t)(M * d), sizeof(double));
        double *x = tu_calloc((size_t)(N * d), sizeof(double));
        double *w = tu_calloc((size_t)(M * e), sizeof(double));
        for (int64_t k = 0; k < K; ++k)
            for (int64_t c = 0; c < d; ++c) {
                y[k * d + c] = tu_rng_uniform(&r, -1.0, 1.0);
                y[(K + k) * d + c] = y[k * d + c] + tu_rng_uniform(&r, -h, h);
            }
        for (int64_t i = 0; i < N; ++i) {
            const int64_t k = tu_rng_int(&r, 0, K - 1);
            for (int64_t c = 0; c < d; ++c) x[i * d + c] = y[k * d + c] + tu_rng_uniform(&r, -h, h);
        }
        tu_fill_uniform(w, (size_t)(M * e), -2.0, 2.0, 8200 + (uint64_t)d);
        tu_round_to_precision(y, (size_t)(M * d), p);
        tu_round_to_precision(x, (size_t)(N * d), p);
        tu_round_to_precision(w, (size_t)(M * e), p);
        const ref_problem prob = {.kernel = ADV_KERNEL_SQDIST, .batch = 1, .n = N, .m = M, .d = d,
                                  .e = e, .lambda = lambda, .gamma = 1.0, .x = x, .y = y, .w = w};
        double *ref_lse = tu_calloc((size_t)N, sizeof(double));
        double *ref_out = tu_calloc((size_t)(N * e), sizeof(double));
        ref_interaction(&prob, ref_lse, ref_out);
        const conf_case c = {N, M, d, e, 0, 1, BETA_NONE, lambda, 1.0, 0};
        const adv_interaction_desc desc = make_desc(p, ADV_KERNEL_SQDIST, &c);
        double *lse = tu_calloc((size_t)N, sizeof(double));
        double *out = tu_calloc((size_t)(N * e), sizeof(double));
        sum_from_host(ctx, &desc, x, y, NULL, w, lse, out);
        size_t bad = 0;
        char first_bad[256] = "";
        for (int64_t i = 0; i < N; ++i) {
            double nearest = INFINITY;
            for (int64_t j = 0; j < M; ++j) {
                double d2 = 0.0;
                for (int64_t c = 0; c < d; ++c) {
                    const double t = x[i * d + c] - y[j * d + c];
                    d2 += t * t;
                }
                nearest = d2 < nearest ? d2 : nearest;
            }
            const double ds = u * (2.0 * (double)d * (lambda * nearest + 100.0) + 64.0);
            const double sum_err = u * ((double)M + 64.0);
            int ok = tu_close(lse[i], ref_lse[i], ds + sum_err, 0.0);
            for (int64_t c = 0; c < e; ++c)
                ok = ok && tu_close(out[i * e + c], ref_out[i * e + c], 2.0 * 2.0 * (ds + sum_err), 0.0);
            if (!ok && bad++ == 0)
                snprintf(first_bad, sizeof first_bad,
                         "row %lld: lse %.9g (expected %.9g), out[0] %.9g (expected %.9g), "
                         "score tolerance %.3g", (long long)i, lse[i], ref_lse[i], out[i * e],
                         ref_out[i * e], ds);
        }
        cr_expect(bad == 0, "close pairs %s d=%lld lambda=%g: %zu rows wrong; first: %s",
                  tu_precision_name(p), (long long)d, lambda, bad, first_bad);
        free(x), free(y), free(w), free(ref_lse), free(ref_out), free(lse), free(out);
    }
    conf_context_destroy(ctx);
}

Test(interaction, close_pairs_at_large_lambda_f32) { run_close_pairs(ADV_FLOAT32); }
Test(interaction, close_pairs_at_large_lambda_f64) { run_close_pairs(ADV_FLOAT64); }

/* A row's result does not depend on the other rows of the call: the same 5 queries alone
 * (few queries: keys split over threads / key-split blocks on a GPU) and as the first and
 * last rows of a call with 70003 queries (no split) give identical bits. This is what lets a
 * sampler chunk its particles freely. M spans several key segments/groups of both backends. */
static void run_rows_independent(adv_precision p) {
    adv_context *ctx = conf_context();
    const int64_t small = 5, big = 70003, M = 9001, d = 2, e = 2;
    double *xs = tu_calloc((size_t)(small * d), sizeof(double));
    double *xb = tu_calloc((size_t)(big * d), sizeof(double));
    double *y = tu_calloc((size_t)(M * d), sizeof(double));
    double *w = tu_calloc((size_t)(M * e), sizeof(double));
    double *beta = tu_calloc((size_t)M, sizeof(double));
    tu_fill_uniform(xs, (size_t)(small * d), -1, 1, 51);
    tu_fill_uniform(xb, (size_t)(big * d), -1, 1, 52);
    tu_fill_uniform(y, (size_t)(M * d), -1, 1, 53);
    tu_fill_uniform(w, (size_t)(M * e), -2, 2, 54);
    tu_fill_uniform(beta, (size_t)M, -1, 0, 55);
    for (int64_t i = 0; i < small * d; ++i) {
        xb[i] = xs[i];
        xb[(big - small) * d + i] = xs[i];
    }
    const conf_case c = {small, M, d, e, 0, 1, BETA_RANDOM, 3.0, 1.0, 0};
    adv_interaction_desc desc = make_desc(p, ADV_KERNEL_SQDIST, &c);
    double lse_small[5], out_small[10];
    double *lse_big = tu_calloc((size_t)big, sizeof(double));
    double *out_big = tu_calloc((size_t)(big * e), sizeof(double));
    desc.n_queries = small;
    sum_from_host(ctx, &desc, xs, y, beta, w, lse_small, out_small);
    desc.n_queries = big;
    sum_from_host(ctx, &desc, xb, y, beta, w, lse_big, out_big);
    for (int64_t i = 0; i < small; ++i)
        for (int at_end = 0; at_end < 2; ++at_end) {
            const int64_t row = at_end ? big - small + i : i;
            cr_expect(lse_big[row] == lse_small[i], "%s row %lld: lse %a alone, %a in row %lld of %lld",
                      tu_precision_name(p), (long long)i, lse_small[i], lse_big[row],
                      (long long)row, (long long)big);
            for (int64_t c = 0; c < e; ++c)
                cr_expect(out_big[row * e + c] == out_small[i * e + c],
                          "%s row %lld: out[%lld] %a alone, %a in row %lld of %lld",
                          tu_precision_name(p), (long long)i, (long long)c, out_small[i * e + c],
                          out_big[row * e + c], (long long)row, (long long)big);
        }
    free(xs), free(xb), free(y), free(w), free(beta), free(lse_big), free(out_big);
    conf_context_destroy(ctx);
}

Test(interaction, rows_independent_of_the_call_f32) { run_rows_independent(ADV_FLOAT32); }
Test(interaction, rows_independent_of_the_call_f64) { run_rows_independent(ADV_FLOAT64); }

/* Terms far below the row maximum still count until exp underflows: scores beta_j (all
 * points at the origin) of 0 for a zero-valued key and -80 / -86 (exp still a normal number
 * in float) for keys with values 1e30 in other key blocks, before or after the maximum, the
 * rest -Inf. Then out = sum_j e^beta_j w_j / sum_j e^beta_j is ~1.8e-5, carried only by the
 * far terms: an engine that drops blocks or terms it believes negligible gets 0. Tolerance:
 * a few ulp of each exp and of the final division. */
static void run_far_terms(adv_precision p) {
    adv_context *ctx = conf_context();
    const int64_t B = 2, N = 3, M = 1500, d = 1, e = 1;
    const int64_t far_early = 5, far_mid = 600, far_late = 1100, top = 1300;
    double *zeros = tu_calloc((size_t)(B * M), sizeof(double)); /* x and y: all at 0 */
    double *beta = tu_calloc((size_t)(B * M), sizeof(double));
    double *w = tu_calloc((size_t)(B * M), sizeof(double));
    for (int64_t j = 0; j < B * M; ++j) beta[j] = -INFINITY;
    /* batch 0: maximum first, far terms after it; batch 1: far terms before the maximum */
    beta[0] = 0.0, beta[far_mid] = -86.0, beta[far_late] = -80.0;
    w[far_mid] = 1e30, w[far_late] = 1e30;
    beta[M + far_early] = -86.0, beta[M + far_mid] = -80.0, beta[M + top] = 0.0;
    w[M + far_early] = 1e30, w[M + far_mid] = 1e30;
    double want[2], want_lse[2];
    for (int64_t b = 0; b < B; ++b) {
        double num = 0.0, den = 0.0;
        for (int64_t j = 0; j < M; ++j) {
            num += exp(beta[b * M + j]) * w[b * M + j];
            den += exp(beta[b * M + j]);
        }
        want[b] = num / den;
        want_lse[b] = log(den);
    }
    const conf_case c = {N, M, d, e, 0, B, BETA_RANDOM, 1.0, 1.0, 0};
    const adv_interaction_desc desc = make_desc(p, ADV_KERNEL_SQDIST, &c);
    double lse[6], out[6];
    sum_from_host(ctx, &desc, zeros, zeros, beta, w, lse, out);
    const double tol = 16.0 * tu_unit_roundoff(p);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < N; ++i) {
            const double g = out[b * N + i];
            cr_expect(fabs(g - want[b]) <= tol * want[b],
                      "far terms %s batch %lld row %lld: out %.9g, expected %.9g",
                      tu_precision_name(p), (long long)b, (long long)i, g, want[b]);
            cr_expect(fabs(lse[b * N + i] - want_lse[b]) <= tol, "far terms: lse %.9g, expected %.9g",
                      lse[b * N + i], want_lse[b]);
        }
    free(zeros), free(beta), free(w);
    conf_context_destroy(ctx);
}

Test(interaction, far_terms_count_f32) { run_far_terms(ADV_FLOAT32); }
Test(interaction, far_terms_count_f64) { run_far_terms(ADV_FLOAT64); }

/* Invalid data on the backend under test (the finiteness check runs where the data live):
 * NaN or Inf in the last element of x, y, w, NaN or +Inf in beta give ADV_ERR_NONFINITE and
 * leave the poisoned outputs untouched, bit for bit; beta = -Inf is accepted. */
static void run_nonfinite(adv_precision p) {
    adv_context *ctx = conf_context();
    const conf_case c = {33, 65, 3, 2, 0, 2, BETA_RANDOM, 1.0, 1.0, 0};
    const size_t B = 2, N = 33, M = 65, d = 3, e = 2, s = tu_real_size(p);
    conf_data data;
    data_make(ctx, p, ADV_KERNEL_SQDIST, &c, 8000, &data);
    adv_interaction_desc desc = make_desc(p, ADV_KERNEL_SQDIST, &c);
    void *dlse = conf_alloc_poisoned(ctx, p, B * N), *dout = conf_alloc_poisoned(ctx, p, B * N * e);
    unsigned char *lse = tu_calloc(B * N, s), *out = tu_calloc(B * N * e, s);
    const struct {
        const char *name;
        double *host;
        void *dev;
        size_t count;
        double value;
    } cases[] = {
        {"x", data.x, data.dx, B * N * d, NAN},          {"x", data.x, data.dx, B * N * d, -INFINITY},
        {"y", data.y, data.dy, B * M * d, INFINITY},     {"w", data.w, data.dw, B * M * e, NAN},
        {"beta", data.beta, data.dbeta, B * M, NAN},     {"beta", data.beta, data.dbeta, B * M, INFINITY},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        /* Upload a copy of the array with its last element replaced. */
        double *bad = tu_calloc(cases[k].count, sizeof(double));
        memcpy(bad, cases[k].host, cases[k].count * sizeof(double));
        bad[cases[k].count - 1] = cases[k].value;
        void *dbad = conf_upload(ctx, p, bad, cases[k].count);
        const void *arg[4] = {data.dx, data.dy, data.dbeta, data.dw};
        const int slot = cases[k].dev == data.dx ? 0 : cases[k].dev == data.dy ? 1
                       : cases[k].dev == data.dbeta ? 2 : 3;
        arg[slot] = dbad;
        adv_status st = adv_interaction_sum(ctx, &desc, arg[0], arg[1], arg[2], arg[3], dlse, dout);
        cr_expect_eq(st, ADV_ERR_NONFINITE, "%s: %g in %s: %s (%s)", tu_precision_name(p),
                     cases[k].value, cases[k].name, adv_status_name(st), adv_context_last_error(ctx));
        cr_expect(strstr(adv_context_last_error(ctx), cases[k].name) != NULL,
                  "last error \"%s\" does not name %s", adv_context_last_error(ctx), cases[k].name);
        cr_assert_eq(adv_memcpy(ctx, lse, dlse, B * N * s, ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
        cr_assert_eq(adv_memcpy(ctx, out, dout, B * N * e * s, ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
        size_t touched = 0;
        for (size_t i = 0; i < B * N * s; ++i) touched += lse[i] != 0xFF;
        for (size_t i = 0; i < B * N * e * s; ++i) touched += out[i] != 0xFF;
        cr_expect_eq(touched, 0, "%s: %g in %s: %zu output bytes written", tu_precision_name(p),
                     cases[k].value, cases[k].name, touched);
        conf_free(ctx, dbad);
        free(bad);
    }
    free(lse);
    free(out);
    conf_free(ctx, dlse);
    conf_free(ctx, dout);
    data_free(ctx, &data);
    conf_context_destroy(ctx);
}

/* Finite inputs so large that scores or sums could overflow the precision (docs/api.md,
 * "Range"): ADV_ERR_INVALID_VALUE naming the overflow, outputs untouched. Without the check
 * SQDIST rows whose every distance overflows read as "no admissible key" (lse = -Inf, out = 0)
 * and DOT scores overflow to +Inf. Just inside the bound the sum runs and is finite. */
static void run_out_of_range(adv_precision p) {
    adv_context *ctx = conf_context();
    const conf_case c = {33, 65, 3, 2, 0, 2, BETA_RANDOM, 1.0, 1.0, 0};
    const size_t B = 2, N = 33, M = 65, d = 3, e = 2, s = tu_real_size(p);
    const int f64 = p == ADV_FLOAT64;
    const double big = f64 ? 1e154 : 1e19, huge = f64 ? 1e308 : 1e38, fine = f64 ? 1e150 : 1e17;
    conf_data data;
    data_make(ctx, p, ADV_KERNEL_SQDIST, &c, 8001, &data);
    void *dlse = conf_alloc_poisoned(ctx, p, B * N), *dout = conf_alloc_poisoned(ctx, p, B * N * e);
    unsigned char *lse = tu_calloc(B * N, s), *out = tu_calloc(B * N * e, s);
    const struct {
        adv_kernel kernel;
        int slot; /* 0 x, 1 y, 2 beta, 3 w */
        double value;
        int rejected;
        const char *what;
        double lambda; /* 0: the case's 1.0. Below 1 the bound keeps max(1, lambda): the
                          distances and dot products themselves must not overflow */
    } cases[] = {{ADV_KERNEL_SQDIST, 0, big, 1, "SQDIST, a huge query", 0},
                 {ADV_KERNEL_SQDIST, 1, -big, 1, "SQDIST, a huge key", 0},
                 {ADV_KERNEL_DOT, 0, huge, 1, "DOT, a huge query", 0},
                 {ADV_KERNEL_SQDIST, 0, big, 1, "SQDIST, a huge query, lambda 1e-6", 1e-6},
                 {ADV_KERNEL_DOT, 0, huge, 1, "DOT, a huge query, lambda 1e-6", 1e-6},
                 {ADV_KERNEL_SQDIST, 2, huge, 1, "a huge beta", 0},
                 {ADV_KERNEL_SQDIST, 3, huge / 8, 1, "values whose sum overflows", 0},
                 {ADV_KERNEL_SQDIST, 0, fine, 0, "SQDIST, large but in range", 0}}; // last: it writes
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        double *host[4] = {data.x, data.y, data.beta, data.w};
        const size_t count[4] = {B * N * d, B * M * d, B * M, B * M * e};
        const int slot = cases[k].slot;
        double *bad = tu_calloc(count[slot], sizeof(double));
        memcpy(bad, host[slot], count[slot] * sizeof(double));
        bad[count[slot] - 1] = cases[k].value;
        void *dbad = conf_upload(ctx, p, bad, count[slot]);
        const void *arg[4] = {data.dx, data.dy, data.dbeta, data.dw};
        arg[slot] = dbad;
        adv_interaction_desc desc = make_desc(p, cases[k].kernel, &c);
        if (cases[k].lambda > 0) desc.lambda = cases[k].lambda;
        adv_status st = adv_interaction_sum(ctx, &desc, arg[0], arg[1], arg[2], arg[3], dlse, dout);
        char message[512];
        snprintf(message, sizeof message, "%s", adv_context_last_error(ctx));
        cr_assert_eq(adv_memcpy(ctx, lse, dlse, B * N * s, ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
        cr_assert_eq(adv_memcpy(ctx, out, dout, B * N * e * s, ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
        if (cases[k].rejected) {
            cr_expect_eq(st, ADV_ERR_INVALID_VALUE, "%s: %s: %s (%s)", tu_precision_name(p),
                         cases[k].what, adv_status_name(st), message);
            cr_expect(strstr(message, "overflow") || strstr(message, "magnitude"), "message: %s",
                      message);
            size_t touched = 0;
            for (size_t i = 0; i < B * N * s; ++i) touched += lse[i] != 0xFF;
            for (size_t i = 0; i < B * N * e * s; ++i) touched += out[i] != 0xFF;
            cr_expect_eq(touched, 0, "%s: %s: %zu output bytes written", tu_precision_name(p),
                         cases[k].what, touched);
        } else {
            cr_expect_eq(st, ADV_OK, "%s: %s: %s", tu_precision_name(p), cases[k].what, message);
            for (size_t i = 0; i < B * N; ++i) {
                const double v = f64 ? ((double *)lse)[i] : ((float *)lse)[i];
                cr_expect(v > -INFINITY && v < INFINITY, "%s: %s: lse[%zu] = %g",
                          tu_precision_name(p), cases[k].what, i, v);
            }
        }
        conf_free(ctx, dbad);
        free(bad);
    }
    free(lse);
    free(out);
    conf_free(ctx, dlse);
    conf_free(ctx, dout);
    data_free(ctx, &data);
    conf_context_destroy(ctx);
}

Test(interaction, out_of_range_inputs_rejected_f32) { run_out_of_range(ADV_FLOAT32); }
Test(interaction, out_of_range_inputs_rejected_f64) { run_out_of_range(ADV_FLOAT64); }

Test(interaction, nonfinite_inputs_rejected_f32) { run_nonfinite(ADV_FLOAT32); }
Test(interaction, nonfinite_inputs_rejected_f64) { run_nonfinite(ADV_FLOAT64); }

/* A failed allocation must not poison the next, unrelated call: on CUDA the failed cudaMalloc
 * left its error in the runtime's per-thread last-error slot, and the next launch check
 * (cudaGetLastError) reported it as its own failure. */
Test(interaction, allocation_failure_does_not_fail_the_next_call) {
    adv_context *ctx = conf_context();
    void *huge = NULL;
    // CUDA only: on the CPU the allocation is plain malloc (and a sanitizer build would abort
    // on a 2^62-byte request instead of returning NULL).
    if (adv_context_backend(ctx) == ADV_BACKEND_CUDA) {
        cr_expect_eq(adv_malloc(ctx, (size_t)1 << 62, &huge), ADV_ERR_OUT_OF_MEMORY);
        cr_expect_null(huge);
    }
    const double x[4] = {0, 1, 2, 3}, y[6] = {1, 0, 1, 2, 0, 1};
    void *dx = conf_upload(ctx, ADV_FLOAT64, x, 4), *dy = conf_upload(ctx, ADV_FLOAT64, y, 6);
    void *dl = conf_alloc_poisoned(ctx, ADV_FLOAT64, 2);
    adv_interaction_desc d;
    adv_interaction_default_desc(&d);
    d.precision = ADV_FLOAT64;
    d.n_queries = 2, d.n_keys = 3, d.dim = 2;
    cr_expect_eq(adv_interaction_sum(ctx, &d, dx, dy, NULL, NULL, dl, NULL), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    double lse[2];
    conf_download(ctx, ADV_FLOAT64, dl, lse, 2);
    cr_expect(isfinite(lse[0]) && isfinite(lse[1]));
    conf_free(ctx, dx), conf_free(ctx, dy), conf_free(ctx, dl);
    conf_context_destroy(ctx);
}

/* No in-place use: an output that overlaps an input or the other output (exactly, or shifted
 * by one element) is ADV_ERR_INVALID_VALUE with nothing written. Both backends once wrote out
 * while other rows still read the inputs (the CPU's threads, the GPU's blocks and its GEMM
 * path's accumulation in out), giving wrong answers that differed between backends. */
static void run_overlap_refused(adv_precision p) {
    adv_context *ctx = conf_context();
    const int64_t B = 2, N = 5, M = 7, d = 3, e = 4;
    // One buffer: x | y | w | beta | spare (the spare room lets an output start anywhere).
    const size_t nx = B * N * d, ny = B * M * d, nw = B * M * e, nb = B * M, spare = B * N * e;
    const size_t total = nx + ny + nw + nb + spare;
    double *host = tu_calloc(total, sizeof(double)), *back = tu_calloc(total, sizeof(double));
    tu_fill_uniform(host, total, -1.0, 1.0, 4242);
    tu_round_to_precision(host, total, p);
    void *buf = conf_upload(ctx, p, host, total);
    char *base = buf;
    const size_t es = tu_real_size(p);
    char *x = base, *y = x + nx * es, *w = y + ny * es, *beta = w + nw * es, *free_area = beta + nb * es;
    for (int kernel = 0; kernel < 2; ++kernel)
        for (int vak = 0; vak < 2; ++vak) {
            const int64_t E = vak ? d : e;
            adv_interaction_desc desc;
            adv_interaction_default_desc(&desc);
            desc.precision = p;
            desc.kernel = (adv_kernel)kernel;
            desc.batch = B, desc.n_queries = N, desc.n_keys = M, desc.dim = d, desc.value_dim = E;
            desc.lambda = 1.5, desc.gamma = 0.75, desc.values_are_keys = vak;
            const struct {
                const char *what;
                void *lse, *out;
            } cases[] = {{"out == x", NULL, x},
                         {"out one element into x", NULL, x + es},
                         {"out == y", NULL, y},
                         {"out == w", NULL, w},
                         {"lse == beta", beta, NULL},
                         {"lse == x", x, NULL},
                         {"lse inside out", free_area + es, free_area},
                         {"out == lse", free_area, free_area}};
            for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
                if (vak && cases[k].out == w) continue; // w is not read: values are keys
                adv_status st = adv_interaction_sum(ctx, &desc, x, y, beta, vak ? NULL : w,
                                                    cases[k].lse, cases[k].out);
                cr_expect_eq(st, ADV_ERR_INVALID_VALUE, "%s (kernel %d, vak %d, %s): %s",
                             cases[k].what, kernel, vak, tu_precision_name(p), adv_status_name(st));
                conf_download(ctx, p, buf, back, total);
                cr_expect(memcmp(back, host, total * sizeof(double)) == 0,
                          "%s (kernel %d, vak %d): the buffer was written", cases[k].what, kernel, vak);
            }
            // The same call with separate outputs is fine.
            void *lse_ok = conf_alloc_poisoned(ctx, p, (size_t)(B * N));
            void *out_ok = conf_alloc_poisoned(ctx, p, (size_t)(B * N * E));
            cr_expect_eq(adv_interaction_sum(ctx, &desc, x, y, beta, vak ? NULL : w, lse_ok, out_ok),
                         ADV_OK, "%s", adv_context_last_error(ctx));
            conf_free(ctx, lse_ok), conf_free(ctx, out_ok);
        }
    conf_free(ctx, buf);
    free(host), free(back);
    conf_context_destroy(ctx);
}

Test(interaction, outputs_overlapping_inputs_are_refused_f32) { run_overlap_refused(ADV_FLOAT32); }
Test(interaction, outputs_overlapping_inputs_are_refused_f64) { run_overlap_refused(ADV_FLOAT64); }
