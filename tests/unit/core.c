/* Unit tests of the core API: status strings, version, build information, context creation
 * with each backend option, the last-error message and the log callback, allocator hooks
 * (and through them the interaction sums' O((N + M)(d + e)) memory), and the memory helpers
 * on the CPU backend. */
#include "test_util.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Passed by tests/CMakeLists.txt from the project's configuration. */
#ifndef ADV_TEST_PROJECT_VERSION
#error "ADV_TEST_PROJECT_VERSION must be defined"
#endif
#ifndef ADV_TEST_HAVE_CUDA
#error "ADV_TEST_HAVE_CUDA must be defined"
#endif

Test(core, status_strings) {
    static const struct {
        adv_status status;
        const char *name;
    } table[] = {
#define ROW(name, value, msg) {name, #name},
        ADV_STATUS_TABLE(ROW)
#undef ROW
    };
    const size_t n = sizeof table / sizeof table[0];
    cr_expect_eq(table[0].status, ADV_OK);
    cr_expect_eq((int)ADV_OK, 0);
    for (size_t i = 0; i < n; ++i) {
        const char *msg = adv_status_string(table[i].status);
        cr_assert_not_null(msg);
        cr_expect(msg[0] != '\0', "%s has an empty message", table[i].name);
        cr_expect_str_eq(adv_status_name(table[i].status), table[i].name);
        cr_expect_str_neq(msg, adv_status_string((adv_status)999),
                          "%s has the unknown-status message", table[i].name);
        for (size_t j = 0; j < i; ++j) {
            cr_expect_neq(table[i].status, table[j].status, "%s and %s share a value",
                          table[i].name, table[j].name);
            cr_expect_str_neq(msg, adv_status_string(table[j].status),
                              "%s and %s share a message", table[i].name, table[j].name);
        }
    }
    cr_expect(adv_status_string((adv_status)-1)[0] != '\0');
    cr_expect(adv_status_name((adv_status)999)[0] != '\0');
}

/* docs/errors.md's table is kept by hand: every row must be the library's code, symbol and
 * message, one row per status, in order. */
Test(core, status_table_in_the_docs) {
    FILE *f = fopen(ADV_TEST_ERRORS_DOC, "r");
    cr_assert_not_null(f, "cannot open %s", ADV_TEST_ERRORS_DOC);
    char line[512];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        int code = -1, used = 0;
        char name[64];
        if (sscanf(line, "| %d | `%63[^`]` | %n", &code, name, &used) != 2 || used == 0) continue;
        char *msg = line + used, *end = strstr(msg, " |");
        cr_assert_not_null(end, "row %d: %s", code, line);
        *end = '\0';
        cr_expect_eq(code, rows, "row %d out of order", code);
        cr_expect_str_eq(name, adv_status_name((adv_status)code), "row %d", code);
        cr_expect_str_eq(msg, adv_status_string((adv_status)code), "row %d", code);
        ++rows;
    }
    fclose(f);
    int n = 0;
#define COUNT(name, value, msg) ++n;
    ADV_STATUS_TABLE(COUNT)
#undef COUNT
    cr_expect_eq(rows, n, "docs/errors.md has %d rows, the library %d statuses", rows, n);
}

Test(core, version) {
    int major = -1, minor = -1, patch = -1;
    adv_version_numbers(&major, &minor, &patch);
    cr_expect(major >= 0 && minor >= 0 && patch >= 0);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", major, minor, patch);
    cr_expect_str_eq(adv_version(), buf, "adv_version() \"%s\" vs numbers %s", adv_version(), buf);
    cr_expect_str_eq(adv_version(), ADV_TEST_PROJECT_VERSION,
                     "library version %s, project version " ADV_TEST_PROJECT_VERSION, adv_version());
    adv_version_numbers(NULL, NULL, NULL); /* NULL outputs are allowed */
}

Test(core, build_info) {
    adv_build_info info;
    memset(&info, 0xA5, sizeof info);
    cr_assert_eq(adv_build_info_get(&info), ADV_OK);
    cr_expect_eq(info.has_cpu, 1);
    cr_expect_eq(info.has_openmp, 1, "the CPU backend is built with OpenMP");
    cr_expect_eq(info.has_cuda, ADV_TEST_HAVE_CUDA, "has_cuda %d, build configured %d",
                 info.has_cuda, ADV_TEST_HAVE_CUDA);
    cr_assert_not_null(info.compiler);
    cr_expect(info.compiler[0] != '\0');
    cr_assert_not_null(info.cuda_architectures);
    if (info.has_cuda) {
        cr_expect(info.cuda_runtime_version >= 11000, "CUDA runtime %d", info.cuda_runtime_version);
        cr_expect(info.cuda_architectures[0] != '\0');
        cr_expect(strstr(info.cuda_architectures, "native") == NULL);
    } else {
        cr_expect_eq(info.cuda_runtime_version, 0);
        cr_expect_str_eq(info.cuda_architectures, "");
    }
}

static int device_count(char *reason, size_t size) {
    int count = -1;
    cr_assert_eq(adv_cuda_device_count(&count, reason, size), ADV_OK);
    cr_assert(count >= 0);
    return count;
}

Test(core, device_count_reason) {
    char reason[256] = "";
    int count = device_count(reason, sizeof reason);
    if (count == 0) {
        cr_expect(reason[0] != '\0', "no usable device, but no reason given");
    } else {
        adv_device_info info;
        cr_expect_eq(adv_cuda_device_info(0, &info), ADV_OK);
        cr_expect(info.name[0] != '\0' && info.total_memory > 0 && info.multiprocessors > 0);
    }
    int again = -1;
    cr_expect_eq(adv_cuda_device_count(&again, NULL, 0), ADV_OK, "reason may be NULL");
    cr_expect_eq(again, count);
}

Test(core, default_opts) {
    adv_context_opts opts;
    memset(&opts, 0xA5, sizeof opts);
    cr_assert_eq(adv_context_default_opts(&opts), ADV_OK);
    cr_expect_eq(opts.struct_size, sizeof opts);
    cr_expect_eq(opts.backend, ADV_BACKEND_AUTO);
    cr_expect_eq(opts.device_id, 0);
    cr_expect_null(opts.stream);
    cr_expect_eq(opts.cpu_threads, 0);
    cr_expect_null(opts.log);
    cr_expect_eq(opts.log_level, ADV_LOG_WARN);
    cr_expect_null(opts.alloc);
    cr_expect_null(opts.free);
}

/* Each backend option: CPU always works; CUDA works exactly when a device is usable; AUTO
 * (and NULL options) picks CUDA then, else the CPU. */
Test(core, context_backends) {
    char reason[256] = "";
    const int gpu = device_count(reason, sizeof reason) > 0;
    const adv_backend options[] = {ADV_BACKEND_CPU, ADV_BACKEND_AUTO, ADV_BACKEND_CUDA};
    for (int k = 0; k < 3; ++k) {
        adv_context_opts opts;
        adv_context_default_opts(&opts);
        opts.backend = options[k];
        adv_context *ctx = NULL;
        adv_status st = adv_context_create(&opts, &ctx);
        const int want_cuda = options[k] == ADV_BACKEND_CUDA || (options[k] == ADV_BACKEND_AUTO && gpu);
        if (options[k] == ADV_BACKEND_CUDA && !gpu) {
            cr_expect_eq(st, ADV_ERR_BACKEND_UNAVAILABLE, "CUDA without device: %s",
                         adv_status_name(st));
            cr_expect_null(ctx);
            continue;
        }
        cr_assert_eq(st, ADV_OK, "backend option %d: %s", (int)options[k], adv_status_name(st));
        cr_expect_eq(adv_context_backend(ctx), want_cuda ? ADV_BACKEND_CUDA : ADV_BACKEND_CPU,
                     "backend option %d gave backend %d (usable GPU: %d, %s)", (int)options[k],
                     (int)adv_context_backend(ctx), gpu, reason);
        cr_expect_str_eq(adv_context_last_error(ctx), "");
        cr_expect_eq(adv_context_synchronize(ctx), ADV_OK);
        cr_expect_eq(adv_context_destroy(ctx), ADV_OK);
    }
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(NULL, &ctx), ADV_OK);
    cr_expect_eq(adv_context_backend(ctx), gpu ? ADV_BACKEND_CUDA : ADV_BACKEND_CPU);
    adv_context_destroy(ctx);
}

/* The log callback receives the error message (the same text as the last error), with its
 * user pointer; the last error is cleared by the next successful call. */
typedef struct log_capture {
    int calls;
    adv_log_level level;
    char text[1024];
} log_capture;

static void capture(void *user, adv_log_level level, const char *message) {
    log_capture *c = user;
    ++c->calls;
    c->level = level;
    snprintf(c->text, sizeof c->text, "%s", message);
}

Test(core, log_callback_and_last_error) {
    log_capture cap = {0};
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    opts.log = capture;
    opts.log_user = &cap;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&opts, &ctx), ADV_OK);
    void *p = NULL;
    cr_assert_eq(adv_malloc(ctx, 0, &p), ADV_ERR_INVALID_SIZE);
    cr_expect_eq(cap.calls, 1, "log called %d times", cap.calls);
    cr_expect_eq(cap.level, ADV_LOG_ERROR);
    cr_expect(strstr(cap.text, "bytes") != NULL, "log message \"%s\"", cap.text);
    cr_expect_str_eq(cap.text, adv_context_last_error(ctx));
    cr_assert_eq(adv_malloc(ctx, 64, &p), ADV_OK);
    cr_expect_str_eq(adv_context_last_error(ctx), "", "last error kept after a success");
    cr_expect_eq(cap.calls, 1, "a successful call logged at level WARN");
    adv_free(ctx, p);
    adv_context_destroy(ctx);
}

/* A log callback that calls the library on its own context: a successful call (which clears
 * the last error) and a failing one (whose message must not be delivered: it would recurse).
 * The callback still saw the outer message as the last error, it ran once, and afterwards
 * the last error is the outer call's message. Before, the message became "" (the buffer
 * delivered was the last-error buffer itself) and a failing nested call recursed. */
typedef struct reentrant_log {
    adv_context *ctx;
    int calls;
    char seen[1024], message[1024];
} reentrant_log;

static void call_back_in(void *user, adv_log_level level, const char *message) {
    reentrant_log *r = user;
    if (++r->calls > 5) return; // (a recursion guard for the test itself)
    snprintf(r->seen, sizeof r->seen, "%s", adv_context_last_error(r->ctx));
    void *p = NULL;
    if (adv_malloc(r->ctx, 16, &p) == ADV_OK) adv_free(r->ctx, p);
    (void)adv_malloc(r->ctx, 0, &p); // fails: ADV_ERR_INVALID_SIZE, not delivered
    snprintf(r->message, sizeof r->message, "%s", message);
}

Test(core, log_callback_calling_back_into_the_context) {
    reentrant_log r = {0};
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    opts.log = call_back_in;
    opts.log_user = &r;
    cr_assert_eq(adv_context_create(&opts, &r.ctx), ADV_OK);
    void *p = NULL;
    cr_assert_eq(adv_malloc(r.ctx, 0, NULL), ADV_ERR_NULL_POINTER);
    cr_expect_eq(r.calls, 1, "log called %d times", r.calls);
    cr_expect(strstr(r.message, "ptr is NULL") != NULL, "delivered \"%s\"", r.message);
    cr_expect_str_eq(r.seen, r.message, "last error inside the callback");
    cr_expect_str_eq(adv_context_last_error(r.ctx), r.message, "last error after the call");
    cr_assert_eq(adv_malloc(r.ctx, 8, &p), ADV_OK);
    adv_free(r.ctx, p);
    cr_expect_eq(r.calls, 1);
    adv_context_destroy(r.ctx);
}

/* Allocator hooks: adv_malloc / adv_free go through them (host space), every block the
 * library allocates while planning and executing is returned, and alignment is kept. */
typedef struct hook_counts {
    int allocs, frees;
    size_t bytes;
    int bad_space;
} hook_counts;

static void *hook_alloc(void *user, size_t bytes, adv_memory_space space) {
    hook_counts *c = user;
    ++c->allocs;
    c->bytes += bytes;
    if (space != ADV_MEMORY_HOST) ++c->bad_space;
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
}

static void hook_free(void *user, void *ptr, adv_memory_space space) {
    hook_counts *c = user;
    ++c->frees;
    if (space != ADV_MEMORY_HOST) ++c->bad_space;
    free(ptr);
}

Test(core, allocator_hooks) {
    hook_counts counts = {0};
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    opts.alloc = hook_alloc;
    opts.free = hook_free;
    opts.alloc_user = &counts;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&opts, &ctx), ADV_OK);
    void *p = NULL, *q = NULL;
    cr_assert_eq(adv_malloc(ctx, 1000, &p), ADV_OK);
    cr_assert_eq(adv_malloc(ctx, 24, &q), ADV_OK);
    cr_expect_eq(counts.allocs, 2, "adv_malloc made %d hook calls", counts.allocs);
    cr_expect(counts.bytes >= 1024);
    cr_expect_eq((uintptr_t)p % 64, 0);
    memset(p, 1, 1000);
    cr_expect_eq(adv_free(ctx, p), ADV_OK);
    cr_expect_eq(adv_free(ctx, q), ADV_OK);
    cr_expect_eq(counts.frees, 2, "adv_free made %d hook calls", counts.frees);

    /* A plan and an execution: whatever they allocate goes back through the hooks. */
    enum { N = 300, M = 200, D = 5, E = 3 };
    double *x = tu_calloc(N * D, sizeof(double)), *y = tu_calloc(M * D, sizeof(double));
    double *w = tu_calloc(M * E, sizeof(double)), *lse = tu_calloc(N, sizeof(double));
    double *out = tu_calloc(N * E, sizeof(double));
    tu_fill_uniform(x, N * D, -1, 1, 5);
    tu_fill_uniform(y, M * D, -1, 1, 6);
    tu_fill_uniform(w, M * E, -1, 1, 7);
    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = ADV_FLOAT64;
    desc.n_queries = N;
    desc.n_keys = M;
    desc.dim = D;
    desc.value_dim = E;
    adv_interaction_plan *plan = NULL;
    cr_assert_eq(adv_interaction_plan_create(ctx, &desc, &plan), ADV_OK);
    cr_assert_eq(adv_interaction_execute(plan, x, y, NULL, w, lse, out), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    cr_assert_eq(adv_interaction_plan_destroy(plan), ADV_OK);
    cr_expect_eq(counts.allocs, counts.frees, "%d hook allocations, %d frees", counts.allocs,
                 counts.frees);
    cr_expect_eq(counts.bad_space, 0, "a CPU context used the device memory space");
    adv_context_destroy(ctx);
    free(x), free(y), free(w), free(lse), free(out);
}

/* Interaction sums need memory O((N + M)(d + e)), never the N x M score matrix
 * (interaction.h). core.h documents that the CPU engine's data-sized workspaces (its packed
 * keys and values, one log-weight per key, the per-query running states) go through the
 * allocator hooks; the plan struct and small per-thread scratch use malloc. So a hook that
 * tracks the peak of live bytes sees the whole data-sized workspace. At N = M = 20000, d = 3
 * the workspace holds at most Mpad (d + e + 1) + N (e + 2) reals (Mpad: M rounded up to the
 * engine's 512-key blocks, 20480 here) plus per-thread scratch: with d, e >= 1 both factors
 * are <= 2 (d + e), so the peak must stay below 2 (N + M)(d + e) reals of the precision
 * (1.92 MB in float32 at e = 3; seen: 0.97 MB) and, separately, below N M / 8 bytes (50 MB;
 * the score matrix alone would be N M 4 = 1.6 GB). The peak must also reach the packed
 * keys, M d reals: a hook the engine
 * stopped using would otherwise pass vacuously. Allocations outside the hooks are caught by
 * the process's peak resident set, which must not grow by N M / 8 either (a score matrix,
 * written, would be resident). Run through the plan API (f32, lse and values) and the
 * one-shot call (f64, lse only: e = 0, bound 2 (N + M) d reals). */
static long max_rss_bytes(void) {
    struct rusage ru;
    cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss * 1024L; // kilobytes on Linux
}

static void check_interaction_memory(adv_precision p, int64_t e, int one_shot) {
    enum { N = 20000, M = 20000, D = 3 };
    const size_t es = tu_real_size(p);
    tu_peak_hook hook = {0};
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    opts.cpu_threads = 1;
    opts.alloc = tu_peak_alloc;
    opts.free = tu_peak_free;
    opts.alloc_user = &hook;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&opts, &ctx), ADV_OK);
    double *hx = tu_calloc(N * D, sizeof *hx), *hy = tu_calloc(M * D, sizeof *hy);
    double *hw = tu_calloc(M * (e ? e : 1), sizeof *hw);
    tu_fill_uniform(hx, N * D, -1, 1, 11);
    tu_fill_uniform(hy, M * D, -1, 1, 12);
    tu_fill_uniform(hw, (size_t)(M * (e ? e : 1)), -1, 1, 13);
    // Caller memory (plain malloc, not counted by the hook), all written before the baseline.
    void *x = tu_to_precision(hx, N * D, p), *y = tu_to_precision(hy, M * D, p);
    void *w = tu_to_precision(hw, (size_t)(M * (e ? e : 1)), p);
    void *lse = tu_calloc(N, es), *out = e ? tu_calloc((size_t)(N * e), es) : NULL;
    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = p;
    desc.n_queries = N;
    desc.n_keys = M;
    desc.dim = D;
    desc.value_dim = e;
    const long rss_before = max_rss_bytes();
    if (one_shot) {
        cr_assert_eq(adv_interaction_sum(ctx, &desc, x, y, NULL, e ? w : NULL, lse, out), ADV_OK, "%s",
                     adv_context_last_error(ctx));
    } else {
        adv_interaction_plan *plan = NULL;
        cr_assert_eq(adv_interaction_plan_create(ctx, &desc, &plan), ADV_OK);
        cr_assert_eq(adv_interaction_execute(plan, x, y, NULL, e ? w : NULL, lse, out), ADV_OK, "%s",
                     adv_context_last_error(ctx));
        cr_assert_eq(adv_interaction_plan_destroy(plan), ADV_OK);
    }
    const long rss_growth = max_rss_bytes() - rss_before;
    // The sums were computed: lse of a row is log sum_j exp(-|x - y_j|^2), M terms in
    // [e^-12, 1] (|x - y_j|^2 <= 3 * 2^2 in the box), so in [log M - 12, log M].
    double l0 = 0.0;
    tu_from_precision(&l0, lse, 1, p);
    cr_expect(l0 >= log((double)M) - 12.0 && l0 <= log((double)M), "lse[0] = %g", l0);
    const size_t linear = 2 * (size_t)(N + M) * (size_t)(D + e) * es, quadratic = (size_t)N * M / 8;
    cr_expect(hook.peak >= (size_t)M * D * es, "%s e=%lld: the hook saw a peak of %zu bytes, less "
              "than the packed keys (%zu): the workspace bypassed the hooks",
              tu_precision_name(p), (long long)e, hook.peak, (size_t)M * D * es);
    cr_expect(hook.peak < linear, "%s e=%lld: peak workspace %zu bytes, above 2 (N+M)(d+e) reals = %zu",
              tu_precision_name(p), (long long)e, hook.peak, linear);
    cr_expect(hook.peak < quadratic, "%s e=%lld: peak workspace %zu bytes, above N M / 8 = %zu",
              tu_precision_name(p), (long long)e, hook.peak, quadratic);
    cr_expect(rss_growth < (long)quadratic, "%s e=%lld: peak resident set grew by %ld bytes "
              "(N M / 8 = %zu)", tu_precision_name(p), (long long)e, rss_growth, quadratic);
    cr_expect_eq(hook.live, 0, "%zu bytes still allocated after the call", hook.live);
    cr_expect_eq(hook.allocs, hook.frees);
    cr_expect_eq(hook.bad_space, 0, "a CPU context used the device memory space");
    adv_context_destroy(ctx);
    free(hx), free(hy), free(hw), free(x), free(y), free(w), free(lse), free(out);
}

Test(core, interaction_memory_is_linear_in_n_plus_m_plan_f32) {
    check_interaction_memory(ADV_FLOAT32, 3, 0);
}
Test(core, interaction_memory_is_linear_in_n_plus_m_one_shot_f64) {
    check_interaction_memory(ADV_FLOAT64, 0, 1);
}

/* On the CPU backend the three copy kinds are plain host copies. */
Test(core, memory_helpers_cpu) {
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&opts, &ctx), ADV_OK);
    double host[8] = {1, 2, 3, 4, 5, 6, 7, 8}, back[8] = {0};
    void *dev = NULL, *dev2 = NULL;
    cr_assert_eq(adv_malloc(ctx, sizeof host, &dev), ADV_OK);
    cr_assert_eq(adv_malloc(ctx, sizeof host, &dev2), ADV_OK);
    cr_expect_eq((uintptr_t)dev % 64, 0, "host allocations are 64-byte aligned");
    cr_assert_eq(adv_memcpy(ctx, dev, host, sizeof host, ADV_COPY_HOST_TO_CONTEXT), ADV_OK);
    cr_assert_eq(adv_memcpy(ctx, dev2, dev, sizeof host, ADV_COPY_CONTEXT_TO_CONTEXT), ADV_OK);
    cr_assert_eq(adv_memcpy(ctx, back, dev2, sizeof host, ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
    cr_expect(memcmp(host, back, sizeof host) == 0);
    adv_free(ctx, dev);
    adv_free(ctx, dev2);
    adv_context_destroy(ctx);
}
