/* Example: Gaussian kernel density and mean shift with the interaction-sum engine.
 * For points x_i and data y_j, exp(lse_i) = sum_j exp(-|x_i - y_j|^2 / (2 h^2)) and out_i is
 * the mean-shift target (the kernel-weighted mean of the data). Builds against the installed
 * library: see examples/CMakeLists.txt, or cc kernel_density.c $(pkg-config --cflags --libs advect) -lm */
#include <advect/advect.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    enum { N = 5, M = 1000, D = 2 };
    static double x[N * D], y[M * D], lse[N], out[N * D];
    for (int j = 0; j < M; ++j) { // data on a circle of radius 1
        y[j * D] = cos(2 * M_PI * j / M);
        y[j * D + 1] = sin(2 * M_PI * j / M);
    }
    for (int i = 0; i < N; ++i) { // queries on a line through the circle
        x[i * D] = -1.5 + 0.75 * i;
        x[i * D + 1] = 0.1;
    }
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU; // host arrays: use the CPU backend
    adv_context *ctx;
    adv_status st = adv_context_create(&opts, &ctx);
    if (st != ADV_OK) {
        fprintf(stderr, "context: %s\n", adv_status_string(st));
        return 1;
    }
    const double h = 0.2;
    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = ADV_FLOAT64;
    desc.n_queries = N;
    desc.n_keys = M;
    desc.dim = D;
    desc.value_dim = D;
    desc.values_are_keys = 1;
    desc.lambda = 1.0 / (2 * h * h);
    st = adv_interaction_sum(ctx, &desc, x, y, NULL, NULL, lse, out);
    if (st != ADV_OK) {
        fprintf(stderr, "interaction sum: %s\n", adv_context_last_error(ctx));
        adv_context_destroy(ctx);
        return 1;
    }
    printf("   x        y     density     mean-shift target\n");
    for (int i = 0; i < N; ++i) {
        double density = exp(lse[i]) / (M * 2 * M_PI * h * h);
        printf("%6.2f %8.2f %10.4f   (%7.4f, %7.4f)\n", x[i * D], x[i * D + 1], density,
               out[i * D], out[i * D + 1]);
    }
    adv_context_destroy(ctx);
    return 0;
}
