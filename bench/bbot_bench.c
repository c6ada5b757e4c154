/* Benamou-Brenier benchmark (public API only): per-iteration time and iterations to
 * tolerance of the Douglas-Rachford solver on the grids (32², 64² x 32, 128² x 64,
 * 32³ x 32). The problem on every grid: a Gaussian bump (σ = 0.06 per axis) translated by
 * 0.2 along every axis, whose W2² is known (0.04 d).
 *
 * Validation, before the timing: the to-tolerance run (skipped with --no-converge). On a grid
 * that resolves the bump (N >= 25 per axis), a converged run whose cost is off by more than 5%
 * fails; on a coarser grid (or when the cap is reached first) the cost is reported but not
 * checked. A failed grid is not timed (its per-iteration columns are nan) and the program
 * exits 1.
 *
 * Per-iteration time: a run of --iters (K) iterations with the tolerances off; the time
 * between the first and the last iteration's progress callbacks, divided by the K - 1
 * iterations between them (plan creation, input checks and finalisation excluded). Both
 * wall-clock and process CPU seconds are reported (on a shared machine the CPU time is the
 * steadier number; with T threads it counts every thread). The cost and the divergence
 * residual of iteration K are reported too (iter_cost, iter_divres): the NumPy peer
 * (bench/peers/bbot_numpy.py) runs the same splitting from the same start, so its iteration K
 * must agree with them (bench/run_grids.sh compares them); a non-finite value there fails.
 * One CSV row per grid:
 *   device,precision,grid,P,threads,iters,per_iter_s,cpu_per_iter_s,iter_cost,iter_divres,
 *   iters_to_tol,converged,time_to_tol_s,cost,cost_rel_err,commit
 * Exit status: 0 ok; 1 validation failed; 2 usage or library error; 3 backend unavailable. */
#define _POSIX_C_SOURCE 200809L
#include <advect/advect.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ADVECT_BENCH_COMMIT
#define ADVECT_BENCH_COMMIT "unknown"
#endif

#define MAX_GRIDS 16

typedef struct grid_spec {
    int d;
    int64_t n[3], P;
} grid_spec;

static void usage(FILE *f) {
    fprintf(f,
            "usage: bbot_bench [options]\n"
            "  --device cpu|cuda|auto    backend (default cpu)\n"
            "  --precision f32|f64       (default f64)\n"
            "  --grids LIST              space grids with time steps, e.g. 32x32:32,32x32x32:32\n"
            "                            (default 32x32:32,64x64:32,128x128:64,32x32x32:32)\n"
            "  --iters K                 timed iterations (default 30)\n"
            "  --tol T                   tolerance of the to-tolerance run, which validates\n"
            "                            the grid before it is timed (default 1e-3)\n"
            "  --max-iters K             cap of the to-tolerance run (default 3000)\n"
            "  --no-converge             only the per-iteration timing (no to-tolerance run:\n"
            "                            the cost is not checked against W2^2)\n"
            "  --threads T               CPU threads (default: OpenMP's)\n"
            "  --quick                   grids 32x32:16,16x16x16:8, 10 iterations, cap 1000\n"
            "  --no-header               do not print the CSV header\n");
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_grid(const char *s, grid_spec *g) {
    memset(g, 0, sizeof *g);
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *colon = strchr(buf, ':');
    g->P = 32;
    if (colon) {
        *colon = '\0';
        g->P = atoll(colon + 1);
    }
    char *tok = buf;
    while (tok && *tok) {
        if (g->d == 3) return -1;
        g->n[g->d++] = atoll(tok);
        char *x = strchr(tok, 'x');
        tok = x ? x + 1 : NULL;
    }
    for (int a = 0; a < g->d; ++a)
        if (g->n[a] < 1) return -1;
    return g->d >= 1 && g->P >= 1 ? 0 : -1;
}

typedef struct timing {
    int64_t first, last;
    double w_first, w_last, c_first, c_last;
    double cost, divres; /* of the last iteration */
} timing;

static int on_iter(void *user, int64_t max_iterations, const adv_bbot_iterate *it) {
    timing *t = user;
    (void)max_iterations;
    const double w = wall_now(), c = cpu_now();
    if (t->first == 0) t->first = it->iteration, t->w_first = w, t->c_first = c;
    t->last = it->iteration, t->w_last = w, t->c_last = c;
    t->cost = it->cost, t->divres = it->divergence_residual;
    return 0;
}

int main(int argc, char **argv) {
    adv_backend backend = ADV_BACKEND_CPU;
    adv_precision prec = ADV_FLOAT64;
    grid_spec grids[MAX_GRIDS];
    int ngrids = 0, header = 1, converge = 1, threads = 0, quick = 0;
    int64_t iters = 30, max_iters = 3000;
    double tol = 1e-3;
    const char *grid_list = "32x32:32,64x64:32,128x128:64,32x32x32:32";
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--device") && v) {
            backend = !strcmp(v, "cuda") ? ADV_BACKEND_CUDA : !strcmp(v, "auto") ? ADV_BACKEND_AUTO
                                                                                 : ADV_BACKEND_CPU;
            if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "auto")) return usage(stderr), 2;
            ++i;
        } else if (!strcmp(a, "--precision") && v) {
            if (strcmp(v, "f32") && strcmp(v, "f64")) return usage(stderr), 2;
            prec = !strcmp(v, "f32") ? ADV_FLOAT32 : ADV_FLOAT64;
            ++i;
        } else if (!strcmp(a, "--grids") && v) grid_list = argv[++i];
        else if (!strcmp(a, "--iters") && v) iters = atoll(argv[++i]);
        else if (!strcmp(a, "--max-iters") && v) max_iters = atoll(argv[++i]);
        else if (!strcmp(a, "--tol") && v) tol = atof(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--no-converge")) converge = 0;
        else if (!strcmp(a, "--no-header")) header = 0;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        else return usage(stderr), 2;
    }
    if (quick) {
        grid_list = "32x32:16,16x16x16:8";
        iters = 10;
        max_iters = 1000;
    }
    if (iters < 2 || max_iters < 1) return usage(stderr), 2;
    char list[1024];
    snprintf(list, sizeof list, "%s", grid_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (ngrids == MAX_GRIDS || parse_grid(tok, &grids[ngrids]) != 0) {
            fprintf(stderr, "bbot_bench: bad grid '%s'\n", tok);
            return 2;
        }
        ++ngrids;
    }

    adv_context_opts co;
    adv_context_default_opts(&co);
    co.backend = backend;
    co.cpu_threads = threads;
    adv_context *ctx = NULL;
    adv_status st = adv_context_create(&co, &ctx);
    if (st != ADV_OK) {
        fprintf(stderr, "bbot_bench: no context for this device: %s\n", adv_status_string(st));
        return st == ADV_ERR_BACKEND_UNAVAILABLE ? 3 : 2;
    }
    const int on_gpu = adv_context_backend(ctx) == ADV_BACKEND_CUDA;
    const size_t es = prec == ADV_FLOAT64 ? 8 : 4;
    if (header)
        printf("device,precision,grid,P,threads,iters,per_iter_s,cpu_per_iter_s,iter_cost,"
               "iter_divres,iters_to_tol,converged,time_to_tol_s,cost,cost_rel_err,commit\n");
    int failed = 0;
    for (int gi = 0; gi < ngrids; ++gi) {
        const grid_spec *g = &grids[gi];
        int64_t M = 1;
        for (int a = 0; a < g->d; ++a) M *= g->n[a];
        double *r[2] = {malloc((size_t)M * sizeof(double)), malloc((size_t)M * sizeof(double))};
        void *h[2] = {malloc((size_t)M * es), malloc((size_t)M * es)}, *dv[2] = {NULL, NULL};
        if (!r[0] || !r[1] || !h[0] || !h[1]) {
            fprintf(stderr, "bbot_bench: out of memory\n");
            return 2;
        }
        const double sig = 0.06, c0 = 0.35, shift = 0.2;
        for (int64_t k = 0; k < M; ++k) {
            int64_t rem = k;
            double e0 = 0, e1 = 0;
            for (int a = g->d - 1; a >= 0; --a) {
                const double x = ((double)(rem % g->n[a]) + 0.5) / (double)g->n[a];
                rem /= g->n[a];
                e0 += (x - c0) * (x - c0);
                e1 += (x - c0 - shift) * (x - c0 - shift);
            }
            r[0][k] = exp(-e0 / (2 * sig * sig));
            r[1][k] = exp(-e1 / (2 * sig * sig));
        }
        for (int s = 0; s < 2; ++s)
            for (int64_t k = 0; k < M; ++k) {
                if (es == 8) ((double *)h[s])[k] = r[s][k];
                else ((float *)h[s])[k] = (float)r[s][k];
            }
        const void *in[2] = {h[0], h[1]};
        if (on_gpu) {
            for (int s = 0; s < 2; ++s) {
                if ((st = adv_malloc(ctx, (size_t)M * es, &dv[s])) != ADV_OK ||
                    (st = adv_memcpy(ctx, dv[s], h[s], (size_t)M * es, ADV_COPY_HOST_TO_CONTEXT)) != ADV_OK) {
                    fprintf(stderr, "bbot_bench: %s\n", adv_context_last_error(ctx));
                    return 2;
                }
                in[s] = dv[s];
            }
        }
        adv_bbot_opts o;
        adv_bbot_default_opts(&o);
        o.precision = prec;
        o.ndim = g->d;
        for (int a = 0; a < g->d; ++a) o.shape[a] = g->n[a];
        o.time_steps = g->P;
        o.effort = ADV_FFT_MEASURE; // a long solve amortises FFTW's planning
        adv_bbot_plan *plan = NULL;
        adv_bbot_result res = {.struct_size = sizeof res};
        // Validation: iterations to tolerance.
        int64_t to_tol = -1;
        int conv = 0, ok = 1;
        double ttol = NAN, cost = NAN, rel = NAN;
        if (converge) {
            o.max_iterations = max_iters;
            o.tolerance = tol;
            o.cost_tolerance = tol / 100.0;
            o.progress = NULL;
            if ((st = adv_bbot_plan_create(ctx, &o, &plan)) != ADV_OK ||
                (st = adv_bbot_solve(plan, in[0], in[1], NULL, NULL, NULL, &res)) != ADV_OK) {
                fprintf(stderr, "bbot_bench: %s\n", adv_context_last_error(ctx));
                return 2;
            }
            adv_bbot_plan_destroy(plan);
            plan = NULL;
            to_tol = res.iterations;
            conv = res.converged;
            ttol = res.time_s;
            cost = res.cost;
            const double exact = shift * shift * g->d;
            rel = (cost - exact) / exact;
            // Validated where the grid resolves the bump (h <= σ/1.5, N >= 25 per axis).
            int resolved = 1;
            for (int a = 0; a < g->d; ++a) resolved &= g->n[a] >= 25;
            fprintf(stderr, "# to tolerance %g: %lld iterations, %s, cost %.6g (W2^2 %.6g, %+.2f%%)%s\n",
                    tol, (long long)to_tol, conv ? "converged" : "not converged", cost, exact,
                    100.0 * rel, resolved ? "" : "; grid too coarse to check");
            if (!(isfinite(cost)) || (conv && resolved && !(fabs(rel) <= 0.05))) {
                fprintf(stderr, "bbot_bench: VALIDATION FAILED: cost %.6g vs %.6g; not timed\n",
                        cost, exact);
                ok = 0;
            }
        }
        // Per-iteration timing (tolerances off).
        timing t = {0};
        double per = NAN, cpu = NAN, icost = NAN, idiv = NAN;
        if (ok) {
            o.max_iterations = iters;
            o.tolerance = o.cost_tolerance = 0.0;
            o.progress = on_iter;
            o.progress_user = &t;
            const double tp = wall_now();
            if ((st = adv_bbot_plan_create(ctx, &o, &plan)) != ADV_OK) {
                fprintf(stderr, "bbot_bench: plan: %s\n", adv_context_last_error(ctx));
                return 2;
            }
            fprintf(stderr, "# %dD grid %lld..., P %lld: plan %.3f s\n", g->d, (long long)g->n[0],
                    (long long)g->P, wall_now() - tp);
            if ((st = adv_bbot_solve(plan, in[0], in[1], NULL, NULL, NULL, &res)) != ADV_OK) {
                fprintf(stderr, "bbot_bench: solve: %s\n", adv_context_last_error(ctx));
                return 2;
            }
            adv_bbot_plan_destroy(plan);
            const double n_int = (double)(t.last - t.first);
            per = (t.w_last - t.w_first) / n_int, cpu = (t.c_last - t.c_first) / n_int;
            icost = t.cost, idiv = t.divres;
            if (t.last != iters || !isfinite(icost) || !isfinite(idiv)) {
                fprintf(stderr, "bbot_bench: VALIDATION FAILED: iteration %lld of %lld: cost %g, "
                        "divergence residual %g\n", (long long)t.last, (long long)iters, icost, idiv);
                ok = 0;
                per = cpu = NAN;
            }
        }
        failed |= !ok;
        char gname[64];
        if (g->d == 1) snprintf(gname, sizeof gname, "%lld", (long long)g->n[0]);
        else if (g->d == 2) snprintf(gname, sizeof gname, "%lldx%lld", (long long)g->n[0], (long long)g->n[1]);
        else snprintf(gname, sizeof gname, "%lldx%lldx%lld", (long long)g->n[0], (long long)g->n[1], (long long)g->n[2]);
        printf("%s,%s,%s,%lld,%d,%lld,%.6e,%.6e,%.15e,%.15e,%lld,%d,%.4f,%.6g,%.3e,%s\n",
               on_gpu ? "cuda" : "cpu", prec == ADV_FLOAT64 ? "f64" : "f32", gname,
               (long long)g->P, threads, (long long)iters, per, cpu, icost, idiv,
               (long long)to_tol, conv, ttol, cost, rel, ADVECT_BENCH_COMMIT);
        fflush(stdout);
        for (int s = 0; s < 2; ++s) {
            free(r[s]);
            free(h[s]);
            if (dv[s]) adv_free(ctx, dv[s]);
        }
    }
    adv_context_destroy(ctx);
    return failed;
}
