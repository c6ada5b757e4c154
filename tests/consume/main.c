/* A program built against an installed advect (tests/consume/run.sh builds it with the CMake
 * package and with pkg-config). It checks one interaction sum against its closed form:
 * query 0, keys -1 and +1, lambda 1: both scores are -1, so lse = log 2 - 1 and the mean of
 * the keys (values_are_keys) is 0. */
#include <advect/advect.h>

#include <math.h>
#include <stdio.h>

int main(void) {
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    adv_context *ctx = NULL;
    adv_status st = adv_context_create(&opts, &ctx);
    if (st != ADV_OK) {
        fprintf(stderr, "consume: adv_context_create: %s\n", adv_status_string(st));
        return 1;
    }
    const double x[1] = {0.0}, y[2] = {-1.0, 1.0};
    double lse = NAN, out = NAN;
    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = ADV_FLOAT64;
    desc.n_queries = 1;
    desc.n_keys = 2;
    desc.dim = 1;
    desc.value_dim = 1;
    desc.values_are_keys = 1;
    st = adv_interaction_sum(ctx, &desc, x, y, NULL, NULL, &lse, &out);
    int ok = st == ADV_OK && fabs(lse - (log(2.0) - 1.0)) < 1e-14 && fabs(out) < 1e-15;
    printf("consume: advect %s, lse %.17g (expected %.17g), out %.3g: %s\n", adv_version(), lse,
           log(2.0) - 1.0, out, ok ? "ok" : "WRONG");
    if (st != ADV_OK) fprintf(stderr, "consume: %s\n", adv_context_last_error(ctx));
    adv_context_destroy(ctx);
    return ok ? 0 : 1;
}
