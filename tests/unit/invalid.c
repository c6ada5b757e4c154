/* Invalid input to every public entry point (CPU backend): NULL pointers, zero and negative
 * sizes, mismatched dimensions, non-finite parameters and data, malformed structs, an
 * unavailable backend. Each failing call must return the exact status code, leave a last
 * error that names the offending argument, and write nothing: outputs are poisoned before
 * the call and compared bitwise afterwards. Every scenario first checks that the same call
 * with valid arguments succeeds, so a failure is due to the one bad argument. */
#include "test_util.h"

#include <criterion/criterion.h>

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under AddressSanitizer an impossible allocation aborts the process by default; the library
 * must instead see NULL and report ADV_ERR_OUT_OF_MEMORY, which is what memory_helpers checks.
 * The sanitizer runtime reads this hook at start-up (it must be visible to it, hence the
 * attribute, as the project builds with hidden visibility); other builds never call it. */
__attribute__((visibility("default"))) const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* 1 when `arg` occurs in `msg` as a whole word (not inside a longer identifier). */
static int names_arg(const char *msg, const char *arg) {
    const size_t len = strlen(arg);
    for (const char *p = strstr(msg, arg); p; p = strstr(p + 1, arg)) {
        int before = p > msg && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
        int after = isalnum((unsigned char)p[len]) || p[len] == '_';
        if (!before && !after) return 1;
    }
    return 0;
}

#define EXPECT_STATUS(call, expected)                                                       \
    do {                                                                                    \
        adv_status st_ = (call);                                                            \
        cr_expect_eq(st_, (expected), "%s returned %s, expected %s", #call,                 \
                     adv_status_name(st_), adv_status_name(expected));                      \
    } while (0)

/* The call fails with `expected` and ctx's last error names `arg`. */
#define EXPECT_FAIL(ctx, call, expected, arg)                                               \
    do {                                                                                    \
        adv_status st_ = (call);                                                            \
        cr_expect_eq(st_, (expected), "%s returned %s, expected %s (%s)", #call,            \
                     adv_status_name(st_), adv_status_name(expected),                       \
                     adv_context_last_error(ctx));                                          \
        cr_expect(names_arg(adv_context_last_error(ctx), (arg)),                            \
                  "%s: last error \"%s\" does not name %s", #call,                          \
                  adv_context_last_error(ctx), (arg));                                      \
    } while (0)

static adv_context *cpu_context(void) {
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&opts, &ctx), ADV_OK);
    return ctx;
}

/* ---- context, build information and devices ---- */

static char log_text[1024];
static int log_calls;
static void capture_log(void *user, adv_log_level level, const char *message) {
    (void)user;
    (void)level;
    ++log_calls;
    snprintf(log_text, sizeof log_text, "%s", message);
}

static void *dummy_alloc(void *user, size_t bytes, adv_memory_space space) {
    (void)user, (void)bytes, (void)space;
    return NULL;
}

Test(invalid, context_create_and_queries) {
    EXPECT_STATUS(adv_context_default_opts(NULL), ADV_ERR_NULL_POINTER);
    EXPECT_STATUS(adv_context_create(NULL, NULL), ADV_ERR_NULL_POINTER);
    adv_context_opts opts;
    adv_context *sentinel = (adv_context *)&opts; /* any non-NULL value */
    for (int k = 0; k < 7; ++k) {
        adv_context_default_opts(&opts);
        opts.backend = ADV_BACKEND_CPU;
        const char *what = "";
        switch (k) {
        case 0: opts.struct_size = 0; what = "struct_size 0"; break;
        case 1: opts.struct_size = sizeof opts + 8; what = "struct_size too large"; break;
        case 2: opts.backend = (adv_backend)7; what = "backend 7"; break;
        case 3: opts.cpu_threads = -1; what = "cpu_threads -1"; break;
        case 4: opts.device_id = -1; what = "device_id -1"; break;
        case 5: opts.alloc = dummy_alloc; what = "alloc without free"; break;
        case 6: opts.struct_size = 4; what = "struct_size 4"; break;
        }
        adv_context *ctx = sentinel;
        adv_status st = adv_context_create(&opts, &ctx);
        cr_expect_eq(st, ADV_ERR_INVALID_VALUE, "%s: %s", what, adv_status_name(st));
        cr_expect_null(ctx, "%s: ctx not set to NULL", what);
    }
    EXPECT_STATUS(adv_context_destroy(NULL), ADV_OK);
    EXPECT_STATUS(adv_context_synchronize(NULL), ADV_ERR_NULL_POINTER);
    cr_expect_str_eq(adv_context_last_error(NULL), "");
    cr_expect_eq(adv_context_backend(NULL), ADV_BACKEND_CPU);
    EXPECT_STATUS(adv_build_info_get(NULL), ADV_ERR_NULL_POINTER);
    char reason[64];
    EXPECT_STATUS(adv_cuda_device_count(NULL, reason, sizeof reason), ADV_ERR_NULL_POINTER);
    EXPECT_STATUS(adv_cuda_device_info(0, NULL), ADV_ERR_NULL_POINTER);
}

/* A device id that cannot exist: unavailable whether or not CUDA is compiled in. */
Test(invalid, cuda_bad_device_is_unavailable) {
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CUDA;
    opts.device_id = 9999;
    opts.log = capture_log;
    log_calls = 0;
    adv_context *ctx = (adv_context *)&opts;
    EXPECT_STATUS(adv_context_create(&opts, &ctx), ADV_ERR_BACKEND_UNAVAILABLE);
    cr_expect_null(ctx);
    cr_expect(log_calls > 0 && log_text[0] != '\0', "no log message explains the failure");
}

/* Without a usable device, asking for CUDA fails (AUTO would fall back to the CPU). */
Test(invalid, cuda_requested_without_device) {
    int count = -1;
    char reason[256] = "";
    cr_assert_eq(adv_cuda_device_count(&count, reason, sizeof reason), ADV_OK);
    if (count > 0) cr_skip_test("a CUDA device is usable here, so CUDA is available");
    cr_expect(reason[0] != '\0', "adv_cuda_device_count gives no reason for 0 devices");
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CUDA;
    opts.log = capture_log;
    log_calls = 0;
    adv_context *ctx = (adv_context *)&opts;
    EXPECT_STATUS(adv_context_create(&opts, &ctx), ADV_ERR_BACKEND_UNAVAILABLE);
    cr_expect_null(ctx);
    cr_expect(log_calls > 0, "the log callback was not told why");
    adv_device_info info;
    EXPECT_STATUS(adv_cuda_device_info(0, &info), ADV_ERR_BACKEND_UNAVAILABLE);
}

/* ---- memory helpers ---- */

Test(invalid, memory_helpers) {
    adv_context *ctx = cpu_context();
    void *p = &p;
    EXPECT_STATUS(adv_malloc(NULL, 16, &p), ADV_ERR_NULL_POINTER);
    EXPECT_FAIL(ctx, adv_malloc(ctx, 16, NULL), ADV_ERR_NULL_POINTER, "ptr");
    p = &p;
    EXPECT_FAIL(ctx, adv_malloc(ctx, 0, &p), ADV_ERR_INVALID_SIZE, "bytes");
    cr_expect_null(p, "adv_malloc(0) left *ptr set");
    p = &p;
    EXPECT_STATUS(adv_malloc(ctx, SIZE_MAX - 4096, &p), ADV_ERR_OUT_OF_MEMORY);
    cr_expect_null(p);
    EXPECT_STATUS(adv_free(NULL, NULL), ADV_ERR_NULL_POINTER);
    EXPECT_STATUS(adv_free(ctx, NULL), ADV_OK);

    double src[4] = {1, 2, 3, 4}, dst[4], saved[4];
    tu_poison(dst, sizeof dst);
    memcpy(saved, dst, sizeof dst);
    EXPECT_STATUS(adv_memcpy(NULL, dst, src, sizeof src, ADV_COPY_HOST_TO_CONTEXT),
                  ADV_ERR_NULL_POINTER);
    EXPECT_FAIL(ctx, adv_memcpy(ctx, dst, src, sizeof src, (adv_copy_kind)17),
                ADV_ERR_INVALID_VALUE, "kind");
    EXPECT_FAIL(ctx, adv_memcpy(ctx, dst, NULL, sizeof src, ADV_COPY_HOST_TO_CONTEXT),
                ADV_ERR_NULL_POINTER, "src");
    EXPECT_FAIL(ctx, adv_memcpy(ctx, NULL, src, sizeof src, ADV_COPY_CONTEXT_TO_HOST),
                ADV_ERR_NULL_POINTER, "dst");
    cr_expect(memcmp(dst, saved, sizeof dst) == 0, "a failed adv_memcpy wrote to dst");
    /* Zero bytes is a valid no-op. */
    EXPECT_STATUS(adv_memcpy(ctx, dst, src, 0, ADV_COPY_HOST_TO_CONTEXT), ADV_OK);
    cr_expect(memcmp(dst, saved, sizeof dst) == 0, "adv_memcpy of 0 bytes wrote to dst");
    /* Overlapping ranges are refused (undefined for a device-to-device copy on CUDA), except
     * dst == src, a no-op. */
    EXPECT_FAIL(ctx, adv_memcpy(ctx, src + 1, src, 3 * sizeof *src, ADV_COPY_CONTEXT_TO_CONTEXT),
                ADV_ERR_INVALID_VALUE, "overlap");
    EXPECT_FAIL(ctx, adv_memcpy(ctx, src, src + 1, 3 * sizeof *src, ADV_COPY_HOST_TO_CONTEXT),
                ADV_ERR_INVALID_VALUE, "overlap");
    cr_expect(src[0] == 1 && src[1] == 2 && src[2] == 3 && src[3] == 4, "an overlapping copy ran");
    EXPECT_STATUS(adv_memcpy(ctx, src, src, sizeof src, ADV_COPY_CONTEXT_TO_CONTEXT), ADV_OK);
    EXPECT_STATUS(adv_memcpy(ctx, src + 2, src, 2 * sizeof *src, ADV_COPY_CONTEXT_TO_CONTEXT), ADV_OK);
    cr_expect(src[2] == 1 && src[3] == 2, "adjacent ranges");
    adv_context_destroy(ctx);
}

/* ---- interaction sums ---- */

enum { B = 2, N = 5, M = 7, D = 3, E = 2 };

/* Valid inputs of one precision, and poisoned outputs with a saved copy. */
typedef struct fixture {
    adv_context *ctx;
    adv_precision p;
    void *x, *y, *beta, *w;
    void *lse, *out, *lse_saved, *out_saved;
} fixture;

static void fixture_make(fixture *f, adv_precision p) {
    f->ctx = cpu_context();
    f->p = p;
    const size_t s = tu_real_size(p);
    double x[B * N * D], y[B * M * D], beta[B * M], w[B * M * E];
    tu_fill_uniform(x, B * N * D, -1, 1, 1);
    tu_fill_uniform(y, B * M * D, -1, 1, 2);
    tu_fill_uniform(beta, B * M, -2, 0, 3);
    tu_fill_uniform(w, B * M * E, -1, 1, 4);
    f->x = tu_to_precision(x, B * N * D, p);
    f->y = tu_to_precision(y, B * M * D, p);
    f->beta = tu_to_precision(beta, B * M, p);
    f->w = tu_to_precision(w, B * M * E, p);
    f->lse = tu_calloc(B * N, s);
    f->out = tu_calloc(B * N * E, s);
    f->lse_saved = tu_calloc(B * N, s);
    f->out_saved = tu_calloc(B * N * E, s);
}

static void fixture_poison(fixture *f) {
    const size_t s = tu_real_size(f->p);
    tu_poison(f->lse, B * N * s);
    tu_poison(f->out, B * N * E * s);
    /* A recognisable pattern in one element, so "untouched" is not just "still NaN". */
    memset(f->lse, 0x5A, s);
    memcpy(f->lse_saved, f->lse, B * N * s);
    memcpy(f->out_saved, f->out, B * N * E * s);
}

static int fixture_untouched(const fixture *f) {
    const size_t s = tu_real_size(f->p);
    return memcmp(f->lse, f->lse_saved, B * N * s) == 0 &&
           memcmp(f->out, f->out_saved, B * N * E * s) == 0;
}

static void fixture_free(fixture *f) {
    adv_context_destroy(f->ctx);
    free(f->x), free(f->y), free(f->beta), free(f->w);
    free(f->lse), free(f->out), free(f->lse_saved), free(f->out_saved);
}

static adv_interaction_desc valid_desc(adv_precision p) {
    adv_interaction_desc d;
    adv_interaction_default_desc(&d);
    d.precision = p;
    d.batch = B;
    d.n_queries = N;
    d.n_keys = M;
    d.dim = D;
    d.value_dim = E;
    d.lambda = 0.5;
    d.gamma = 1.5;
    return d;
}

/* Sets element `index` of an array of precision p. */
static void set_elem(void *a, adv_precision p, size_t index, double v) {
    if (p == ADV_FLOAT32)
        ((float *)a)[index] = (float)v;
    else
        ((double *)a)[index] = v;
}

/* One bad description field per entry. */
typedef struct bad_desc {
    const char *what, *arg;
    adv_status status;
    void (*edit)(adv_interaction_desc *);
} bad_desc;

#define BAD(name, body) \
    static void edit_##name(adv_interaction_desc *d) { body; }
BAD(size0, d->struct_size = 0)
BAD(size_small, d->struct_size -= 8)
BAD(size_big, d->struct_size += 8)
BAD(precision, d->precision = (adv_precision)2)
BAD(kernel, d->kernel = (adv_kernel)2)
BAD(batch0, d->batch = 0)
BAD(batchneg, d->batch = -3)
BAD(n0, d->n_queries = 0)
BAD(nneg, d->n_queries = -1)
BAD(m0, d->n_keys = 0)
BAD(mneg, d->n_keys = INT64_MIN)
BAD(d0, d->dim = 0)
BAD(dneg, d->dim = -2)
BAD(eneg, d->value_dim = -1)
BAD(vak, (d->values_are_keys = 1, d->value_dim = D + 1))
BAD(vak0, (d->values_are_keys = 1, d->value_dim = 0))
BAD(lnan, d->lambda = NAN)
BAD(linf, d->lambda = INFINITY)
BAD(lninf, d->lambda = -INFINITY)
BAD(gnan, d->gamma = NAN)
BAD(ginf, d->gamma = -INFINITY)
BAD(causal, (d->kernel = ADV_KERNEL_SQDIST, d->causal = 1))
BAD(overflow, (d->n_queries = INT64_MAX / 2, d->dim = INT64_MAX / 4))
#undef BAD

static const bad_desc bad_descs[] = {
    {"struct_size 0", "struct_size", ADV_ERR_INVALID_VALUE, edit_size0},
    {"struct_size - 8", "struct_size", ADV_ERR_INVALID_VALUE, edit_size_small},
    {"struct_size + 8", "struct_size", ADV_ERR_INVALID_VALUE, edit_size_big},
    {"precision 2", "precision", ADV_ERR_INVALID_VALUE, edit_precision},
    {"kernel 2", "kernel", ADV_ERR_INVALID_VALUE, edit_kernel},
    {"batch 0", "batch", ADV_ERR_INVALID_SIZE, edit_batch0},
    {"batch -3", "batch", ADV_ERR_INVALID_SIZE, edit_batchneg},
    {"n_queries 0", "n_queries", ADV_ERR_INVALID_SIZE, edit_n0},
    {"n_queries -1", "n_queries", ADV_ERR_INVALID_SIZE, edit_nneg},
    {"n_keys 0", "n_keys", ADV_ERR_INVALID_SIZE, edit_m0},
    {"n_keys INT64_MIN", "n_keys", ADV_ERR_INVALID_SIZE, edit_mneg},
    {"dim 0", "dim", ADV_ERR_INVALID_SIZE, edit_d0},
    {"dim -2", "dim", ADV_ERR_INVALID_SIZE, edit_dneg},
    {"value_dim -1", "value_dim", ADV_ERR_INVALID_SIZE, edit_eneg},
    {"values_are_keys, value_dim = dim + 1", "value_dim", ADV_ERR_DIMENSION_MISMATCH, edit_vak},
    {"values_are_keys, value_dim = 0", "value_dim", ADV_ERR_DIMENSION_MISMATCH, edit_vak0},
    {"lambda NaN", "lambda", ADV_ERR_NONFINITE, edit_lnan},
    {"lambda +Inf", "lambda", ADV_ERR_NONFINITE, edit_linf},
    {"lambda -Inf", "lambda", ADV_ERR_NONFINITE, edit_lninf},
    {"gamma NaN", "gamma", ADV_ERR_NONFINITE, edit_gnan},
    {"gamma -Inf", "gamma", ADV_ERR_NONFINITE, edit_ginf},
    {"causal with SQDIST", "causal", ADV_ERR_INVALID_VALUE, edit_causal},
    {"sizes overflowing the address space", "size", ADV_ERR_INVALID_SIZE, edit_overflow},
};

static void check_bad_descs(adv_precision p) {
    fixture f;
    fixture_make(&f, p);
    adv_interaction_desc good = valid_desc(p);
    adv_interaction_plan *plan = NULL;
    /* Baseline: the valid description works and writes the outputs. */
    fixture_poison(&f);
    cr_assert_eq(adv_interaction_sum(f.ctx, &good, f.x, f.y, f.beta, f.w, f.lse, f.out), ADV_OK,
                 "%s", adv_context_last_error(f.ctx));
    cr_assert(!fixture_untouched(&f), "the valid call wrote nothing");
    for (size_t k = 0; k < sizeof bad_descs / sizeof bad_descs[0]; ++k) {
        const bad_desc *b = &bad_descs[k];
        adv_interaction_desc d = good;
        b->edit(&d);
        plan = (adv_interaction_plan *)&d; /* must be reset to NULL */
        adv_status st = adv_interaction_plan_create(f.ctx, &d, &plan);
        cr_expect_eq(st, b->status, "%s %s: plan_create returned %s, expected %s (%s)",
                     tu_precision_name(p), b->what, adv_status_name(st),
                     adv_status_name(b->status), adv_context_last_error(f.ctx));
        cr_expect(names_arg(adv_context_last_error(f.ctx), b->arg),
                  "%s %s: last error \"%s\" does not name %s", tu_precision_name(p), b->what,
                  adv_context_last_error(f.ctx), b->arg);
        cr_expect_null(plan, "%s: plan not set to NULL", b->what);
        fixture_poison(&f);
        st = adv_interaction_sum(f.ctx, &d, f.x, f.y, f.beta, f.w, f.lse, f.out);
        cr_expect_eq(st, b->status, "%s %s: adv_interaction_sum returned %s",
                     tu_precision_name(p), b->what, adv_status_name(st));
        cr_expect(fixture_untouched(&f), "%s %s: outputs written", tu_precision_name(p), b->what);
    }
    /* lambda beyond the float32 range is rejected for float32 only. */
    adv_interaction_desc d = good;
    d.lambda = 1e39;
    fixture_poison(&f);
    adv_status st = adv_interaction_sum(f.ctx, &d, f.x, f.y, f.beta, f.w, f.lse, f.out);
    if (p == ADV_FLOAT32) {
        cr_expect_eq(st, ADV_ERR_NONFINITE, "lambda 1e39 in float32: %s", adv_status_name(st));
        cr_expect(names_arg(adv_context_last_error(f.ctx), "lambda"), "%s",
                  adv_context_last_error(f.ctx));
        cr_expect(fixture_untouched(&f), "lambda 1e39: outputs written");
    } else {
        cr_expect_eq(st, ADV_OK, "lambda 1e39 in float64: %s", adv_context_last_error(f.ctx));
    }
    fixture_free(&f);
}

Test(invalid, interaction_desc_f32) { check_bad_descs(ADV_FLOAT32); }
Test(invalid, interaction_desc_f64) { check_bad_descs(ADV_FLOAT64); }

Test(invalid, interaction_plan_entry_points) {
    fixture f;
    fixture_make(&f, ADV_FLOAT64);
    adv_interaction_desc d = valid_desc(ADV_FLOAT64);
    EXPECT_STATUS(adv_interaction_default_desc(NULL), ADV_ERR_NULL_POINTER);
    adv_interaction_plan *plan = (adv_interaction_plan *)&d;
    EXPECT_STATUS(adv_interaction_plan_create(NULL, &d, &plan), ADV_ERR_NULL_POINTER);
    EXPECT_FAIL(f.ctx, adv_interaction_plan_create(f.ctx, &d, NULL), ADV_ERR_NULL_POINTER, "plan");
    plan = (adv_interaction_plan *)&d;
    EXPECT_FAIL(f.ctx, adv_interaction_plan_create(f.ctx, NULL, &plan), ADV_ERR_NULL_POINTER, "desc");
    cr_expect_null(plan);
    EXPECT_STATUS(adv_interaction_plan_destroy(NULL), ADV_OK);
    fixture_poison(&f);
    EXPECT_STATUS(adv_interaction_execute(NULL, f.x, f.y, f.beta, f.w, f.lse, f.out),
                  ADV_ERR_NULL_POINTER);
    EXPECT_STATUS(adv_interaction_sum(NULL, &d, f.x, f.y, f.beta, f.w, f.lse, f.out),
                  ADV_ERR_NULL_POINTER);
    EXPECT_FAIL(f.ctx, adv_interaction_sum(f.ctx, NULL, f.x, f.y, f.beta, f.w, f.lse, f.out),
                ADV_ERR_NULL_POINTER, "desc");
    cr_expect(fixture_untouched(&f), "outputs written");
    fixture_free(&f);
}

/* Bad arrays given to execute (and to the one-shot call). Non-finite values are put in the
 * LAST element of each array, in the last batch, so a check that scans only part of the
 * data (one batch, one row) misses them. */
static void check_bad_arrays(adv_precision p) {
    fixture f;
    fixture_make(&f, p);
    adv_interaction_desc d = valid_desc(p);
    adv_interaction_plan *plan = NULL;
    cr_assert_eq(adv_interaction_plan_create(f.ctx, &d, &plan), ADV_OK);
    const char *pn = tu_precision_name(p);

    fixture_poison(&f);
    cr_assert_eq(adv_interaction_execute(plan, f.x, f.y, f.beta, f.w, f.lse, f.out), ADV_OK, "%s",
                 adv_context_last_error(f.ctx));
    cr_assert(!fixture_untouched(&f), "the valid call wrote nothing");

#define BAD_EXEC(call, status, arg)                                                          \
    do {                                                                                     \
        fixture_poison(&f);                                                                  \
        EXPECT_FAIL(f.ctx, call, status, arg);                                               \
        cr_expect(fixture_untouched(&f), "%s %s: outputs written", pn, #call);               \
    } while (0)

    BAD_EXEC(adv_interaction_execute(plan, NULL, f.y, f.beta, f.w, f.lse, f.out),
             ADV_ERR_NULL_POINTER, "x");
    BAD_EXEC(adv_interaction_execute(plan, f.x, NULL, f.beta, f.w, f.lse, f.out),
             ADV_ERR_NULL_POINTER, "y");
    BAD_EXEC(adv_interaction_execute(plan, f.x, f.y, f.beta, NULL, f.lse, f.out),
             ADV_ERR_NULL_POINTER, "w");
    BAD_EXEC(adv_interaction_execute(plan, f.x, f.y, f.beta, f.w, NULL, NULL),
             ADV_ERR_NULL_POINTER, "lse");
    BAD_EXEC(adv_interaction_sum(f.ctx, &d, NULL, f.y, f.beta, f.w, f.lse, f.out),
             ADV_ERR_NULL_POINTER, "x");

    /* out requested with value_dim 0: lse must stay untouched too. */
    adv_interaction_desc d0 = d;
    d0.value_dim = 0;
    BAD_EXEC(adv_interaction_sum(f.ctx, &d0, f.x, f.y, f.beta, f.w, f.lse, f.out),
             ADV_ERR_DIMENSION_MISMATCH, "value_dim");

    const struct {
        const char *arg;
        void *array;
        size_t count;
        double value;
    } poisons[] = {
        {"x", f.x, B * N * D, NAN},       {"x", f.x, B * N * D, INFINITY},
        {"y", f.y, B * M * D, NAN},       {"y", f.y, B * M * D, -INFINITY},
        {"w", f.w, B * M * E, NAN},       {"w", f.w, B * M * E, INFINITY},
        {"beta", f.beta, B * M, NAN},     {"beta", f.beta, B * M, INFINITY},
    };
    for (size_t k = 0; k < sizeof poisons / sizeof poisons[0]; ++k) {
        const size_t s = tu_real_size(p), last = poisons[k].count - 1;
        unsigned char keep[8];
        char *elem = (char *)poisons[k].array + last * s;
        memcpy(keep, elem, s);
        set_elem(poisons[k].array, p, last, poisons[k].value);
        fixture_poison(&f);
        adv_status st = adv_interaction_execute(plan, f.x, f.y, f.beta, f.w, f.lse, f.out);
        cr_expect_eq(st, ADV_ERR_NONFINITE, "%s: %g in the last element of %s: %s", pn,
                     poisons[k].value, poisons[k].arg, adv_status_name(st));
        cr_expect(names_arg(adv_context_last_error(f.ctx), poisons[k].arg),
                  "%s: last error \"%s\" does not name %s", pn, adv_context_last_error(f.ctx),
                  poisons[k].arg);
        cr_expect(fixture_untouched(&f), "%s: %g in %s: outputs written", pn, poisons[k].value,
                  poisons[k].arg);
        fixture_poison(&f);
        st = adv_interaction_sum(f.ctx, &d, f.x, f.y, f.beta, f.w, f.lse, f.out);
        cr_expect_eq(st, ADV_ERR_NONFINITE, "%s: one-shot with %g in %s: %s", pn,
                     poisons[k].value, poisons[k].arg, adv_status_name(st));
        cr_expect(fixture_untouched(&f), "%s: one-shot with %g in %s: outputs written", pn,
                  poisons[k].value, poisons[k].arg);
        memcpy(elem, keep, s);
    }
#undef BAD_EXEC

    /* beta = -Inf is a legal zero weight, in one entry and in a whole batch. */
    set_elem(f.beta, p, B * M - 1, -INFINITY);
    fixture_poison(&f);
    cr_expect_eq(adv_interaction_execute(plan, f.x, f.y, f.beta, f.w, f.lse, f.out), ADV_OK,
                 "%s: beta = -Inf rejected: %s", pn, adv_context_last_error(f.ctx));
    for (size_t j = 0; j < M; ++j) set_elem(f.beta, p, j, -INFINITY);
    fixture_poison(&f);
    cr_expect_eq(adv_interaction_execute(plan, f.x, f.y, f.beta, f.w, f.lse, f.out), ADV_OK,
                 "%s: an all -Inf batch rejected: %s", pn, adv_context_last_error(f.ctx));
    cr_expect(!fixture_untouched(&f), "outputs not written");
    adv_interaction_plan_destroy(plan);
    fixture_free(&f);
}

Test(invalid, interaction_arrays_f32) { check_bad_arrays(ADV_FLOAT32); }
Test(invalid, interaction_arrays_f64) { check_bad_arrays(ADV_FLOAT64); }

/* ---- random numbers ---- */

Test(invalid, random_fill) {
    adv_context *ctx = cpu_context();
    double buf[16], saved[16];
    tu_poison(buf, sizeof buf);
    memcpy(saved, buf, sizeof buf);
    EXPECT_STATUS(adv_random_fill(NULL, ADV_FLOAT64, ADV_UNIFORM, 1, 0, 0, 0, 16, buf),
                  ADV_ERR_NULL_POINTER);
    EXPECT_FAIL(ctx, adv_random_fill(ctx, ADV_FLOAT64, ADV_UNIFORM, 1, 0, 0, 0, 16, NULL),
                ADV_ERR_NULL_POINTER, "out");
    EXPECT_FAIL(ctx, adv_random_fill(ctx, ADV_FLOAT64, ADV_UNIFORM, 1, 0, 0, 0, 0, buf),
                ADV_ERR_INVALID_SIZE, "n");
    EXPECT_FAIL(ctx, adv_random_fill(ctx, ADV_FLOAT64, ADV_NORMAL, 1, 0, 0, 0, -16, buf),
                ADV_ERR_INVALID_SIZE, "n");
    EXPECT_FAIL(ctx, adv_random_fill(ctx, (adv_precision)2, ADV_UNIFORM, 1, 0, 0, 0, 16, buf),
                ADV_ERR_INVALID_VALUE, "precision");
    EXPECT_FAIL(ctx, adv_random_fill(ctx, ADV_FLOAT64, (adv_distribution)2, 1, 0, 0, 0, 16, buf),
                ADV_ERR_INVALID_VALUE, "distribution");
    EXPECT_FAIL(ctx, adv_random_fill(ctx, ADV_FLOAT64, ADV_UNIFORM, 1, 0, UINT64_MAX - 8, 0, 16, buf),
                ADV_ERR_INVALID_SIZE, "first_index");
    cr_expect(memcmp(buf, saved, sizeof buf) == 0, "a failed adv_random_fill wrote to out");
    /* The last representable index range is valid. */
    EXPECT_STATUS(adv_random_fill(ctx, ADV_FLOAT64, ADV_UNIFORM, 1, 0, UINT64_MAX - 16, 0, 16, buf),
                  ADV_OK);
    adv_context_destroy(ctx);
}
