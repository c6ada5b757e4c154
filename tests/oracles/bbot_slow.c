/* The 64 x 64 x 32 check of spec O9 (label "slow": about a minute on one core): a
 * translated narrow Gaussian bump (sigma 0.05, shift (0.25, 0.15), at least 5 sigma from the
 * walls so the truncated tails are below 1e-5) must cost |shift|² within 2%. Measured: see the
 * printed "measured" line (the discretisation error is ~0.1%, the stopping error at the
 * default tolerances a few tenths of a percent). */
#include "test_util.h"

#include <advect/advect.h>
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>

Test(bbot_oracles_slow, translated_bump_64x64x32, .timeout = 1200) {
    adv_context_opts co;
    adv_context_default_opts(&co);
    co.backend = ADV_BACKEND_CPU;
    co.cpu_threads = 1;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&co, &ctx), ADV_OK);
    enum { N = 64, P = 32 };
    static double r0[N * N], r1[N * N];
    const double sig = 0.05, c0[2] = {0.35, 0.4}, c1[2] = {0.6, 0.55};
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
            const double x = (i + 0.5) / N, y = (j + 0.5) / N;
            r0[i * N + j] = exp(-((x - c0[0]) * (x - c0[0]) + (y - c0[1]) * (y - c0[1])) / (2 * sig * sig));
            r1[i * N + j] = exp(-((x - c1[0]) * (x - c1[0]) + (y - c1[1]) * (y - c1[1])) / (2 * sig * sig));
        }
    const double exact = 0.25 * 0.25 + 0.15 * 0.15;
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    o.ndim = 2;
    o.shape[0] = o.shape[1] = N;
    o.time_steps = P;
    o.max_iterations = 3000;
    const int64_t shape[2] = {N, N};
    adv_bbot_result res = {.struct_size = sizeof res};
    cr_assert_eq(adv_bbot_compute(ctx, &o, 2, shape, r0, 2, shape, r1, NULL, NULL, NULL, &res),
                 ADV_OK, "%s", adv_context_last_error(ctx));
    const double rel = fabs(res.cost - exact) / exact;
    fprintf(stderr, "measured bump 64x64x32: cost %.6f exact %.6f rel err %.4f after %lld iterations "
            "(%.1f s, %.2f ms/iteration), divergence residual %.2e, mass error %.1e\n", res.cost, exact,
            rel, (long long)res.iterations, res.time_s, 1e3 * res.time_s / (double)res.iterations,
            res.divergence_residual, res.mass_error);
    cr_expect(res.converged);
    cr_expect(rel <= 0.02, "cost %.6f vs |shift|^2 %.6f: relative error %.4f > 2%%", res.cost, exact, rel);
    cr_expect(res.mass_error <= 1e-12);
    adv_context_destroy(ctx);
}
