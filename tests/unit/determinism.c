/* The CPU interaction sum is bitwise reproducible: its reduction order depends on the keys
 * only (fixed key segments folded left to right), so the result of a query does not depend
 * on the thread count, on how many other queries are in the call (callers chunk particles),
 * or on whether key segments were spread over threads (few queries) or not (many). */
#include "test_util.h"

#include <criterion/criterion.h>
#include <string.h>

static void run(int threads, adv_precision p, int64_t n, int64_t m, int64_t d, const void *x,
                const void *y, void *lse, void *out) {
    adv_context_opts o;
    adv_context_default_opts(&o);
    o.backend = ADV_BACKEND_CPU;
    o.cpu_threads = threads;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&o, &ctx), ADV_OK);
    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = p;
    desc.n_queries = n;
    desc.n_keys = m;
    desc.dim = d;
    desc.value_dim = d;
    desc.values_are_keys = 1;
    desc.lambda = 7.5;
    desc.gamma = 0.8;
    cr_assert_eq(adv_interaction_sum(ctx, &desc, x, y, NULL, NULL, lse, out), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    adv_context_destroy(ctx);
}

/* M spans several key segments (4096 keys each for d <= 16, else 2048) plus a partial one. N = 37 has few query
 * groups (tiles of 1-2 groups, key segments split over 3 threads); N = 300 with D = 17 takes
 * tiles of up to 16 groups and the row-major value sums (e > 4). */
static void check_precision(adv_precision p, int64_t N, int64_t D) {
    const int64_t M = 5 * 2048 + 611;
    const size_t rs = tu_real_size(p);
    double *xd = tu_calloc((size_t)(N * D), sizeof(double)), *yd = tu_calloc((size_t)(M * D), sizeof(double));
    tu_fill_uniform(xd, (size_t)(N * D), -1, 1, 11);
    tu_fill_uniform(yd, (size_t)(M * D), -1, 1, 12);
    void *x = tu_to_precision(xd, (size_t)(N * D), p), *y = tu_to_precision(yd, (size_t)(M * D), p);
    char *lse_ref = tu_calloc((size_t)N, rs), *out_ref = tu_calloc((size_t)(N * D), rs);
    char *lse = tu_calloc((size_t)N, rs), *out = tu_calloc((size_t)(N * D), rs);
    run(1, p, N, M, D, x, y, lse_ref, out_ref); // one thread, all queries, no key split
    for (int threads = 2; threads <= 3; ++threads) {
        tu_poison(lse, (size_t)N * rs);
        tu_poison(out, (size_t)(N * D) * rs);
        run(threads, p, N, M, D, x, y, lse, out);
        cr_expect(memcmp(lse, lse_ref, (size_t)N * rs) == 0, "lse differs with %d threads", threads);
        cr_expect(memcmp(out, out_ref, (size_t)(N * D) * rs) == 0, "out differs with %d threads", threads);
    }
    // Queries in uneven chunks (1 query per call takes the split-keys path).
    const int64_t chunks[] = {1, 5, 16, 15};
    int64_t i0 = 0;
    for (int c = 0; i0 < N; c = (c + 1) % 4) {
        int64_t n = chunks[c] < N - i0 ? chunks[c] : N - i0;
        run(3, p, n, M, D, (const char *)x + (size_t)(i0 * D) * rs, y, lse + (size_t)i0 * rs,
            out + (size_t)(i0 * D) * rs);
        i0 += n;
    }
    cr_expect(memcmp(lse, lse_ref, (size_t)N * rs) == 0, "lse differs when queries are chunked");
    cr_expect(memcmp(out, out_ref, (size_t)(N * D) * rs) == 0, "out differs when queries are chunked");
    free(xd), free(yd), free(x), free(y), free(lse_ref), free(out_ref), free(lse), free(out);
}

Test(determinism, float32_threads_and_chunks) { check_precision(ADV_FLOAT32, 37, 3); }
Test(determinism, float64_threads_and_chunks) { check_precision(ADV_FLOAT64, 37, 3); }
Test(determinism, float32_tiles_and_wide_values) { check_precision(ADV_FLOAT32, 300, 17); }
Test(determinism, float64_tiles_and_wide_values) { check_precision(ADV_FLOAT64, 300, 17); }
