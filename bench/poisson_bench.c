/* Poisson-plan benchmark (public API only): for each grid and boundary condition it builds a
 * manufactured problem — random u (zero mean where the problem is singular), f = (c - Δ_h) u
 * by the plain stencil in double, spacing 1/N per axis, c = 0 — creates a plan, runs once as
 * warm-up, measures the largest error max|u_solved - u| / max|u|, then times R executions and
 * prints one CSV row per case. A case whose error exceeds a sanity bound (1e-2 in float32,
 * 1e-8 in float64: a wrong transform gives O(1)) is not timed (its time columns are nan, the
 * row ends with VALIDATION_FAILED) and makes the exit status 1, so a broken solver never
 * produces a timing. The scipy.fft peer
 * (bench/peers/poisson_scipy.py) solves the same systems and prints the same columns.
 *
 * Exit status: 0 all cases validated; 1 some case failed validation; 2 usage or library
 * error; 3 the requested backend is unavailable. */
#define _POSIX_C_SOURCE 200809L
#include <advect/advect.h>
#include "bench_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ADVECT_BENCH_COMMIT
#define ADVECT_BENCH_COMMIT "unknown"
#endif

#define MAX_CASES 16
#define SEED 20240611ULL

typedef struct grid {
    int ndim;
    int64_t shape[4];
} grid;

typedef struct options {
    adv_backend backend;
    int precisions[2], n_precisions;
    grid grids[MAX_CASES];
    int n_grids;
    int bcs[3], n_bcs;
    int reps;
    int threads;
    adv_fft_effort effort;
    int header;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: poisson_bench [options]\n"
            "  --device cpu|cuda|auto    backend (default cpu)\n"
            "  --precision f32|f64|both  (default both)\n"
            "  --grids LIST              grids, comma separated, axes joined by 'x'\n"
            "                            (default 256x256,1024x1024,64x64x64,128x128x128)\n"
            "  --bc LIST                 periodic,neumann,dirichlet (default all three)\n"
            "  --reps R                  timed repetitions (default 10)\n"
            "  --quick                   grids 64x64,16x16x16, reps 3 (a fast smoke run)\n"
            "  --threads T               CPU threads (default 0: OpenMP's; the CSV column\n"
            "                            'threads' is 0 then, and 0 for CUDA)\n"
            "  --estimate                plan with FFTW_ESTIMATE instead of FFTW_MEASURE\n"
            "  --no-header               do not print the CSV header\n");
}

static int parse_grids(const char *s, options *o) {
    o->n_grids = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->n_grids == MAX_CASES) goto bad;
        grid *g = &o->grids[o->n_grids++];
        g->ndim = 0;
        char *save2 = NULL;
        for (char *ax = strtok_r(tok, "x", &save2); ax; ax = strtok_r(NULL, "x", &save2)) {
            char *end = NULL;
            long long v = strtoll(ax, &end, 10);
            if (*end || v < 1 || v > (1 << 24) || g->ndim == 4) goto bad;
            g->shape[g->ndim++] = v;
        }
        if (g->ndim == 0) goto bad;
    }
    free(copy);
    return o->n_grids > 0 ? 0 : -1;
bad:
    free(copy);
    return -1;
}

static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->backend = ADV_BACKEND_CPU;
    o->precisions[0] = ADV_FLOAT32, o->precisions[1] = ADV_FLOAT64, o->n_precisions = 2;
    parse_grids("256x256,1024x1024,64x64x64,128x128x128", o);
    o->bcs[0] = ADV_BC_PERIODIC, o->bcs[1] = ADV_BC_NEUMANN, o->bcs[2] = ADV_BC_DIRICHLET;
    o->n_bcs = 3;
    o->reps = 10;
    o->effort = ADV_FFT_MEASURE;
    o->header = 1;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--device") && v) {
            ++i;
            if (!strcmp(v, "cpu")) o->backend = ADV_BACKEND_CPU;
            else if (!strcmp(v, "cuda")) o->backend = ADV_BACKEND_CUDA;
            else if (!strcmp(v, "auto")) o->backend = ADV_BACKEND_AUTO;
            else return -1;
        } else if (!strcmp(a, "--precision") && v) {
            ++i;
            if (!strcmp(v, "f32")) o->precisions[0] = ADV_FLOAT32, o->n_precisions = 1;
            else if (!strcmp(v, "f64")) o->precisions[0] = ADV_FLOAT64, o->n_precisions = 1;
            else if (strcmp(v, "both")) return -1;
        } else if (!strcmp(a, "--grids") && v) {
            ++i;
            if (parse_grids(v, o)) return -1;
        } else if (!strcmp(a, "--bc") && v) {
            ++i;
            o->n_bcs = 0;
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int b = !strcmp(t, "periodic") ? 0 : !strcmp(t, "neumann") ? 1
                        : !strcmp(t, "dirichlet") ? 2 : -1;
                if (b < 0 || o->n_bcs == 3) {
                    free(copy);
                    return -1;
                }
                o->bcs[o->n_bcs++] = b;
            }
            free(copy);
            if (!o->n_bcs) return -1;
        } else if (!strcmp(a, "--reps") && v) {
            ++i;
            o->reps = atoi(v);
            if (o->reps < 1) return -1;
        } else if (!strcmp(a, "--threads") && v) {
            ++i;
            o->threads = atoi(v);
            if (o->threads < 1) return -1;
        } else if (!strcmp(a, "--quick")) {
            parse_grids("64x64,16x16x16", o);
            o->reps = 3;
        } else if (!strcmp(a, "--estimate")) o->effort = ADV_FFT_ESTIMATE;
        else if (!strcmp(a, "--no-header")) o->header = 0;
        else return -1;
    }
    return 0;
}

/* out = (c - Δ_h) u by the stencil with the ghost values of the boundary condition. */
static void apply_stencil(const grid *g, const double *h, int bc, double c, const double *u,
                          double *out) {
    size_t stride[4], n = 1;
    for (int a = g->ndim - 1; a >= 0; --a) {
        stride[a] = n;
        n *= (size_t)g->shape[a];
    }
    for (size_t idx = 0; idx < n; ++idx) {
        const double center = u[idx];
        double acc = c * center;
        for (int a = 0; a < g->ndim; ++a) {
            const int64_t na = g->shape[a], ia = (int64_t)((idx / stride[a]) % (size_t)na);
            const size_t wrap = (size_t)(na - 1) * stride[a];
            const double ghost = bc == ADV_BC_NEUMANN ? center : -center;
            const double l = ia > 0 ? u[idx - stride[a]]
                             : bc == ADV_BC_PERIODIC ? u[idx + wrap] : ghost;
            const double r = ia < na - 1 ? u[idx + stride[a]]
                             : bc == ADV_BC_PERIODIC ? u[idx - wrap] : ghost;
            acc -= (l - 2.0 * center + r) / (h[a] * h[a]);
        }
        out[idx] = acc;
    }
}

static const char *bc_names[3] = {"periodic", "neumann", "dirichlet"};

/* Runs one case; returns 0 ok, 1 validation failure, 2 library error. */
static int run_case(adv_context *ctx, const options *o, adv_precision prec, const grid *g,
                    int bc) {
    size_t n = 1;
    double h[4];
    for (int a = 0; a < g->ndim; ++a) {
        n *= (size_t)g->shape[a];
        h[a] = 1.0 / (double)g->shape[a];
    }
    const size_t es = prec == ADV_FLOAT64 ? 8 : 4;
    const int on_gpu = adv_context_backend(ctx) == ADV_BACKEND_CUDA;
    double *u = malloc(n * sizeof *u), *f = malloc(n * sizeof *f);
    void *host = malloc(n * es);
    void *df = NULL, *du = NULL;
    adv_poisson_plan *plan = NULL;
    double *times = calloc((size_t)o->reps, sizeof *times);
    int rc = 2;
    if (!u || !f || !host || !times) {
        fprintf(stderr, "poisson_bench: out of memory\n");
        goto done;
    }
    uint64_t s = SEED + n + (uint64_t)bc;
    double mean = 0.0, umax = 0.0;
    for (size_t i = 0; i < n; ++i) mean += (u[i] = 2.0 * uniform01(&s) - 1.0);
    mean /= (double)n;
    for (size_t i = 0; i < n; ++i) {
        if (bc != ADV_BC_DIRICHLET) u[i] -= mean; // c = 0: singular unless Dirichlet
        if (fabs(u[i]) > umax) umax = fabs(u[i]);
    }
    apply_stencil(g, h, bc, 0.0, u, f);
    for (size_t i = 0; i < n; ++i) {
        if (prec == ADV_FLOAT64) ((double *)host)[i] = f[i];
        else ((float *)host)[i] = (float)f[i];
    }

    adv_poisson_desc d;
    adv_poisson_default_desc(&d);
    d.precision = prec;
    d.ndim = g->ndim;
    for (int a = 0; a < g->ndim; ++a) {
        d.shape[a] = g->shape[a];
        d.spacing[a] = h[a];
        d.bc[a] = (adv_boundary)bc;
    }
    d.effort = o->effort;
    d.check_finite = 0; // time the solve itself
    d.mean_policy = ADV_POISSON_PROJECT_MEAN;
    adv_status st;
    if ((st = adv_poisson_plan_create(ctx, &d, &plan)) != ADV_OK) goto lib_error;
    if (on_gpu) {
        if ((st = adv_malloc(ctx, n * es, &df)) != ADV_OK) goto lib_error;
        if ((st = adv_malloc(ctx, n * es, &du)) != ADV_OK) goto lib_error;
        if ((st = adv_memcpy(ctx, df, host, n * es, ADV_COPY_HOST_TO_CONTEXT)) != ADV_OK)
            goto lib_error;
    } else {
        df = host;
        du = malloc(n * es);
        if (!du) goto done;
    }
    // Warm-up and validation.
    if ((st = adv_poisson_execute(plan, df, du)) != ADV_OK) goto lib_error;
    if ((st = adv_context_synchronize(ctx)) != ADV_OK) goto lib_error;
    const void *result = du;
    void *back = NULL;
    if (on_gpu) {
        back = malloc(n * es);
        if (!back) goto done;
        if ((st = adv_memcpy(ctx, back, du, n * es, ADV_COPY_CONTEXT_TO_HOST)) != ADV_OK) {
            free(back);
            goto lib_error;
        }
        result = back;
    }
    double err = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const double v = prec == ADV_FLOAT64 ? ((const double *)result)[i]
                                             : (double)((const float *)result)[i];
        const double e = fabs(v - u[i]);
        if (!(e <= err)) err = e; // NaN propagates
    }
    err /= umax;
    free(back);
    const double bound = prec == ADV_FLOAT64 ? 1e-8 : 1e-2;
    const int ok = err <= bound;
    for (int r = 0; r < o->reps; ++r) {
        if (!ok) {
            times[r] = NAN; // not timed
            continue;
        }
        const double t0 = now_s();
        if ((st = adv_poisson_execute(plan, df, du)) != ADV_OK) goto lib_error;
        if ((st = adv_context_synchronize(ctx)) != ADV_OK) goto lib_error;
        times[r] = now_s() - t0;
    }
    if (ok) qsort(times, (size_t)o->reps, sizeof *times, cmp_double);
    const double median = o->reps % 2 ? times[o->reps / 2]
                                      : 0.5 * (times[o->reps / 2 - 1] + times[o->reps / 2]);
    char shape[64] = "";
    for (int a = 0; a < g->ndim; ++a) {
        size_t l = strlen(shape);
        snprintf(shape + l, sizeof shape - l, "%s%lld", a ? "x" : "", (long long)g->shape[a]);
    }
    printf("%s,%s,%s,%s,%.6e,%.6e,%.6e,%.4e,%.3e,%d,%s%s\n", on_gpu ? "cuda" : "cpu",
           prec == ADV_FLOAT64 ? "f64" : "f32", shape, bc_names[bc], median, times[0],
           times[o->reps - 1], (double)n / median, err, on_gpu ? 0 : o->threads,
           ADVECT_BENCH_COMMIT, ok ? "" : ",VALIDATION_FAILED");
    fflush(stdout);
    if (!ok)
        fprintf(stderr, "poisson_bench: %s %s: error %g > %g\n", shape, bc_names[bc], err, bound);
    rc = ok ? 0 : 1;
    goto done;
lib_error:
    fprintf(stderr, "poisson_bench: %s: %s\n", adv_status_name(st), adv_context_last_error(ctx));
    rc = 2;
done:
    adv_poisson_plan_destroy(plan);
    if (on_gpu) {
        if (df) adv_free(ctx, df);
        if (du) adv_free(ctx, du);
    } else {
        free(du);
    }
    free(u), free(f), free(host), free(times);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    int exit_code = 0;
    adv_context *ctx = bench_open_context("poisson_bench", o.backend, o.threads, &exit_code);
    if (!ctx) return exit_code;
    if (o.header)
        printf("device,precision,shape,bc,median_s,min_s,max_s,cells_per_s,max_rel_err,threads,"
               "commit\n");
    int worst = 0;
    for (int p = 0; p < o.n_precisions; ++p)
        for (int g = 0; g < o.n_grids; ++g)
            for (int b = 0; b < o.n_bcs; ++b) {
                int rc = run_case(ctx, &o, (adv_precision)o.precisions[p], &o.grids[g], o.bcs[b]);
                if (rc == 2) {
                    adv_context_destroy(ctx);
                    return 2;
                }
                if (rc > worst) worst = rc;
            }
    adv_context_destroy(ctx);
    return worst;
}
