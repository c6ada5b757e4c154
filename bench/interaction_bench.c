/* Interaction-sum benchmark (public API only). For each case it generates random data with a
 * fixed seed, runs once as warm-up, validates lse and out against a naive double-precision
 * reference on a spread-out subset of query rows (full key range), then times R repetitions
 * and prints one CSV row per case. A case that fails validation is not timed and makes the
 * program exit non-zero, so a broken kernel can never produce a silent timing.
 *
 * Exit status: 0 all cases validated; 1 some case failed validation; 2 usage or library
 * error; 3 the requested backend is unavailable. */
#define _POSIX_C_SOURCE 200809L
#include <advect/advect.h>
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ADVECT_BENCH_COMMIT
#define ADVECT_BENCH_COMMIT "unknown"
#endif

#define MAX_LIST 16
#define CHECK_ROWS 64
#define SEED 20240611ULL

typedef struct options {
    adv_backend backend;
    int precisions[2], n_precisions;
    adv_kernel kernel;
    int64_t sizes[MAX_LIST];
    int n_sizes;
    int64_t dims[MAX_LIST];
    int n_dims;
    int reps; /* 0 = default for the backend */
    int n_large;
    int threads;
    double lambda;
    int check_finite;
    int header;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: interaction_bench [options]\n"
            "  --device cpu|cuda|auto    backend (default cpu)\n"
            "  --precision f32|f64|both  (default f32)\n"
            "  --kernel sqdist|dot       (default sqdist: s = -lambda |x - y|^2)\n"
            "  --sizes LIST              N = M values, comma separated (default 4096,16384,65536)\n"
            "  --dims LIST               d values (default 2,3,16,64); e = d, values are keys\n"
            "  --reps R                  timed repetitions (default 5 on CPU, 10 on CUDA)\n"
            "  --quick                   sizes 2048, reps 3 (a fast smoke run)\n"
            "  --n-large                 also run N = M = 1e6 at d = 2 and 3 (meant for a GPU)\n"
            "  --threads T               CPU threads (default: OpenMP's, i.e. OMP_NUM_THREADS)\n"
            "  --lambda L                score scale (default 1; data is uniform on [0,1)^d)\n"
            "  --check-finite            keep the library's input finiteness check on\n"
            "  --no-header               do not print the CSV header\n");
}

static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->backend = ADV_BACKEND_CPU;
    o->precisions[0] = ADV_FLOAT32;
    o->n_precisions = 1;
    o->kernel = ADV_KERNEL_SQDIST;
    const int64_t sizes[] = {4096, 16384, 65536}, dims[] = {2, 3, 16, 64};
    o->n_sizes = 3;
    memcpy(o->sizes, sizes, sizeof sizes);
    o->n_dims = 4;
    memcpy(o->dims, dims, sizeof dims);
    o->lambda = 1.0;
    o->header = 1;
    int quick = 0, sizes_given = 0;
    for (int a = 1; a < argc; ++a) {
        const char *arg = argv[a];
        const char *val = a + 1 < argc ? argv[a + 1] : NULL;
#define NEED_VALUE()                                                         \
    do {                                                                     \
        if (!val) {                                                          \
            fprintf(stderr, "interaction_bench: %s needs a value\n", arg);   \
            return -1;                                                       \
        }                                                                    \
        ++a;                                                                 \
    } while (0)
        if (!strcmp(arg, "--device")) {
            NEED_VALUE();
            if (!strcmp(val, "cpu")) o->backend = ADV_BACKEND_CPU;
            else if (!strcmp(val, "cuda")) o->backend = ADV_BACKEND_CUDA;
            else if (!strcmp(val, "auto")) o->backend = ADV_BACKEND_AUTO;
            else goto bad;
        } else if (!strcmp(arg, "--precision")) {
            NEED_VALUE();
            if (!strcmp(val, "f32")) o->precisions[0] = ADV_FLOAT32, o->n_precisions = 1;
            else if (!strcmp(val, "f64")) o->precisions[0] = ADV_FLOAT64, o->n_precisions = 1;
            else if (!strcmp(val, "both")) {
                o->precisions[0] = ADV_FLOAT32;
                o->precisions[1] = ADV_FLOAT64;
                o->n_precisions = 2;
            } else goto bad;
        } else if (!strcmp(arg, "--kernel")) {
            NEED_VALUE();
            if (!strcmp(val, "sqdist")) o->kernel = ADV_KERNEL_SQDIST;
            else if (!strcmp(val, "dot")) o->kernel = ADV_KERNEL_DOT;
            else goto bad;
        } else if (!strcmp(arg, "--sizes")) {
            NEED_VALUE();
            if ((o->n_sizes = parse_list(val, o->sizes, MAX_LIST)) <= 0) goto bad;
            sizes_given = 1;
        } else if (!strcmp(arg, "--dims")) {
            NEED_VALUE();
            if ((o->n_dims = parse_list(val, o->dims, MAX_LIST)) <= 0) goto bad;
        } else if (!strcmp(arg, "--reps")) {
            NEED_VALUE();
            o->reps = atoi(val);
            if (o->reps < 1) goto bad;
        } else if (!strcmp(arg, "--threads")) {
            NEED_VALUE();
            o->threads = atoi(val);
            if (o->threads < 1) goto bad;
        } else if (!strcmp(arg, "--lambda")) {
            NEED_VALUE();
            char *end = NULL;
            o->lambda = strtod(val, &end);
            if (end == val || *end || !isfinite(o->lambda)) goto bad;
        } else if (!strcmp(arg, "--quick")) {
            quick = 1;
        } else if (!strcmp(arg, "--n-large")) {
            o->n_large = 1;
        } else if (!strcmp(arg, "--check-finite")) {
            o->check_finite = 1;
        } else if (!strcmp(arg, "--no-header")) {
            o->header = 0;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "interaction_bench: unknown option %s\n", arg);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "interaction_bench: bad value '%s' for %s\n", val, arg);
        return -1;
#undef NEED_VALUE
    }
    if (quick) {
        if (!sizes_given) o->sizes[0] = 2048, o->n_sizes = 1;
        if (!o->reps) o->reps = 3;
    }
    return 0;
}

/* Naive double-precision reference for one query row, over the full key range. s is an
 * M-long scratch vector (O(M), not N x M). */
static void reference_row(const options *o, adv_precision p, const void *x, const void *y,
                          int64_t i, int64_t M, int64_t d, double *s, double *lse, double *out) {
    double smax = -INFINITY;
    for (int64_t j = 0; j < M; ++j) {
        double acc = 0.0;
        for (int64_t k = 0; k < d; ++k) {
            double xi = get(x, p, (size_t)(i * d + k)), yj = get(y, p, (size_t)(j * d + k));
            acc += o->kernel == ADV_KERNEL_SQDIST ? (xi - yj) * (xi - yj) : xi * yj;
        }
        s[j] = o->kernel == ADV_KERNEL_SQDIST ? -o->lambda * acc : o->lambda * acc;
        if (s[j] > smax) smax = s[j];
    }
    double sum = 0.0;
    for (int64_t k = 0; k < d; ++k) out[k] = 0.0;
    for (int64_t j = 0; j < M; ++j) {
        double wgt = exp(s[j] - smax);
        sum += wgt;
        for (int64_t k = 0; k < d; ++k) out[k] += wgt * get(y, p, (size_t)(j * d + k));
    }
    for (int64_t k = 0; k < d; ++k) out[k] /= sum;
    *lse = smax + log(sum);
}

typedef struct errors {
    double out_rel, lse_abs;
    int64_t non_finite; /* output elements that are NaN/Inf (poisoned, i.e. never written) */
} errors;

/* Compares the outputs on the checked rows with the reference; also scans every output
 * element for NaN (the outputs are poisoned with NaN before the first run). The out error is
 * relative to the value scale max_j |w_j|: out_i is a convex combination of the w_j, so that
 * is the magnitude its rounding error is proportional to. */
static errors compare(adv_precision p, int64_t N, int64_t e, const void *lse_h, const void *out_h,
                      const int64_t *rows, int n_rows, const double *ref_lse,
                      const double *ref_out, double wscale) {
    errors r = {0.0, 0.0, 0};
    for (int64_t i = 0; i < N; ++i) {
        if (!isfinite(get(lse_h, p, (size_t)i))) ++r.non_finite;
        for (int64_t k = 0; k < e; ++k)
            if (!isfinite(get(out_h, p, (size_t)(i * e + k)))) ++r.non_finite;
    }
    for (int c = 0; c < n_rows; ++c) {
        double dl = fabs(get(lse_h, p, (size_t)rows[c]) - ref_lse[c]);
        if (!(dl <= r.lse_abs)) r.lse_abs = dl; /* NaN propagates */
        for (int64_t k = 0; k < e; ++k) {
            double d = fabs(get(out_h, p, (size_t)(rows[c] * e + k)) - ref_out[c * e + k]) / wscale;
            if (!(d <= r.out_rel)) r.out_rel = d;
        }
    }
    return r;
}


/* Runs one case; returns 0 validated and timed, 1 validation failed, 2 library error. */
static int run_case(adv_context *ctx, const options *o, adv_precision p, int64_t N, int64_t d) {
    const int64_t M = N, e = d;
    const size_t es = p == ADV_FLOAT64 ? 8 : 4;
    const size_t bx = (size_t)(N * d) * es, by = (size_t)(M * d) * es;
    const size_t bl = (size_t)N * es, bo = (size_t)(N * e) * es;
    const adv_backend backend = adv_context_backend(ctx);
    const int reps = o->reps ? o->reps : (backend == ADV_BACKEND_CUDA ? 10 : 5);
    int rc = 2;
    adv_status st = ADV_OK;
    adv_interaction_plan *plan = NULL;
    void *xh = malloc(bx), *yh = malloc(by), *lh = malloc(bl), *oh = malloc(bo);
    void *xd = NULL, *yd = NULL, *ld = NULL, *od = NULL;
    double *times = malloc(sizeof(double) * (size_t)reps);
    double *scratch = malloc(sizeof(double) * (size_t)M);
    int n_rows = N < CHECK_ROWS ? (int)N : CHECK_ROWS;
    int64_t rows[CHECK_ROWS];
    double *ref_lse = malloc(sizeof(double) * CHECK_ROWS);
    double *ref_out = malloc(sizeof(double) * CHECK_ROWS * (size_t)e);
    if (!xh || !yh || !lh || !oh || !times || !scratch || !ref_lse || !ref_out) {
        fprintf(stderr, "interaction_bench: host allocation failed (N=%lld d=%lld)\n",
                (long long)N, (long long)d);
        goto done;
    }

    /* Inputs: uniform on [0,1)^d, rounded to the working precision once; the reference reads
     * the rounded values so only the kernel's arithmetic is measured. */
    uint64_t state = SEED ^ ((uint64_t)N << 20) ^ (uint64_t)d;
    for (size_t i = 0; i < (size_t)(N * d); ++i) set(xh, p, i, uniform01(&state));
    double wscale = 0.0;
    for (size_t j = 0; j < (size_t)(M * d); ++j) {
        set(yh, p, j, uniform01(&state));
        double a = fabs(get(yh, p, j));
        if (a > wscale) wscale = a;
    }
    if (wscale == 0.0) wscale = 1.0;
    for (size_t i = 0; i < (size_t)N; ++i) set(lh, p, i, NAN);
    for (size_t i = 0; i < (size_t)(N * e); ++i) set(oh, p, i, NAN);

    /* Buffers in the context's memory space (device memory for CUDA). */
    if ((st = adv_malloc(ctx, bx, &xd)) || (st = adv_malloc(ctx, by, &yd)) ||
        (st = adv_malloc(ctx, bl, &ld)) || (st = adv_malloc(ctx, bo, &od)) ||
        (st = adv_memcpy(ctx, xd, xh, bx, ADV_COPY_HOST_TO_CONTEXT)) ||
        (st = adv_memcpy(ctx, yd, yh, by, ADV_COPY_HOST_TO_CONTEXT)) ||
        (st = adv_memcpy(ctx, ld, lh, bl, ADV_COPY_HOST_TO_CONTEXT)) ||
        (st = adv_memcpy(ctx, od, oh, bo, ADV_COPY_HOST_TO_CONTEXT)))
        goto lib_error;

    adv_interaction_desc desc;
    adv_interaction_default_desc(&desc);
    desc.precision = p;
    desc.kernel = o->kernel;
    desc.n_queries = N;
    desc.n_keys = M;
    desc.dim = d;
    desc.value_dim = e;
    desc.lambda = o->lambda;
    desc.gamma = 1.0;
    desc.values_are_keys = 1;
    /* Off by default: the peers check nothing either, and on CUDA the check synchronises. */
    desc.check_finite = o->check_finite;

    double t0 = now_s();
    if ((st = adv_interaction_plan_create(ctx, &desc, &plan))) goto lib_error;
    double t_plan = now_s() - t0;
    if ((st = adv_interaction_execute(plan, xd, yd, NULL, NULL, ld, od)) ||
        (st = adv_context_synchronize(ctx)))
        goto lib_error;
    double t_first = now_s() - t0;

    /* Reference on CHECK_ROWS rows spread over [0, N-1], each over all M keys. */
    for (int c = 0; c < n_rows; ++c) {
        rows[c] = n_rows > 1 ? (int64_t)((double)c * (double)(N - 1) / (double)(n_rows - 1)) : 0;
        reference_row(o, p, xh, yh, rows[c], M, d, scratch, &ref_lse[c], &ref_out[(size_t)c * e]);
    }
    if ((st = adv_memcpy(ctx, lh, ld, bl, ADV_COPY_CONTEXT_TO_HOST)) ||
        (st = adv_memcpy(ctx, oh, od, bo, ADV_COPY_CONTEXT_TO_HOST)))
        goto lib_error;
    const double tol = p == ADV_FLOAT64 ? 1e-9 : 1e-3;
    errors err = compare(p, N, e, lh, oh, rows, n_rows, ref_lse, ref_out, wscale);
    const char *prec = p == ADV_FLOAT64 ? "f64" : "f32";
    const char *kern = o->kernel == ADV_KERNEL_SQDIST ? "sqdist" : "dot";
    fprintf(stderr,
            "# %s %s %s N=M=%lld d=%lld: plan %.3g s, first call %.3g s; check on %d rows: "
            "out rel err %.3g, lse abs err %.3g, non-finite outputs %lld\n",
            device_name(backend), prec, kern, (long long)N, (long long)d, t_plan, t_first, n_rows,
            err.out_rel, err.lse_abs, (long long)err.non_finite);
    if (err.non_finite || !(err.out_rel <= tol) || !(err.lse_abs <= tol)) {
        fprintf(stderr, "VALIDATION FAILED: %s %s %s N=M=%lld d=%lld (tolerance %g); not timed\n",
                device_name(backend), prec, kern, (long long)N, (long long)d, tol);
        printf("%s,%s,%s,%lld,%lld,%lld,%lld,nan,nan,nan,nan,%.3e,%.3e,%s\n", device_name(backend),
               prec, kern, (long long)N, (long long)M, (long long)d, (long long)e, err.out_rel,
               err.lse_abs, ADVECT_BENCH_COMMIT);
        rc = 1;
        goto done;
    }

    for (int r = 0; r < reps; ++r) {
        double a = now_s();
        if ((st = adv_interaction_execute(plan, xd, yd, NULL, NULL, ld, od))) goto lib_error;
        /* CUDA execution is asynchronous: wait for the stream before reading the clock. */
        if ((st = adv_context_synchronize(ctx))) goto lib_error;
        times[r] = now_s() - a;
    }

    /* Validate again after the timed runs: a race or a stale buffer shows up here. */
    if ((st = adv_memcpy(ctx, lh, ld, bl, ADV_COPY_CONTEXT_TO_HOST)) ||
        (st = adv_memcpy(ctx, oh, od, bo, ADV_COPY_CONTEXT_TO_HOST)))
        goto lib_error;
    errors again = compare(p, N, e, lh, oh, rows, n_rows, ref_lse, ref_out, wscale);
    if (again.out_rel > err.out_rel) err.out_rel = again.out_rel;
    if (again.lse_abs > err.lse_abs) err.lse_abs = again.lse_abs;
    rc = 0;
    if (again.non_finite || !(err.out_rel <= tol) || !(err.lse_abs <= tol)) {
        fprintf(stderr, "VALIDATION FAILED after the timed runs: %s %s %s N=M=%lld d=%lld\n",
                device_name(backend), prec, kern, (long long)N, (long long)d);
        rc = 1;
    }

    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    double median = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    double pairs = (double)N * (double)M;
    printf("%s,%s,%s,%lld,%lld,%lld,%lld,%.6e,%.6e,%.6e,%.4e,%.3e,%.3e,%s\n", device_name(backend),
           prec, kern, (long long)N, (long long)M, (long long)d, (long long)e, median, times[0],
           times[reps - 1], pairs / median, err.out_rel, err.lse_abs, ADVECT_BENCH_COMMIT);
    fflush(stdout);
    goto done;

lib_error:
    fprintf(stderr, "interaction_bench: %s (%s): %s\n", adv_status_name(st), adv_status_string(st),
            adv_context_last_error(ctx));
    rc = 2;
done:
    adv_interaction_plan_destroy(plan);
    if (xd) adv_free(ctx, xd);
    if (yd) adv_free(ctx, yd);
    if (ld) adv_free(ctx, ld);
    if (od) adv_free(ctx, od);
    free(xh), free(yh), free(lh), free(oh);
    free(times), free(scratch), free(ref_lse), free(ref_out);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    int exit_code = 0;
    adv_context *ctx = bench_open_context("interaction_bench", o.backend, o.threads, &exit_code);
    if (!ctx) return exit_code;
    adv_build_info info;
    adv_build_info_get(&info);
    const char *omp = getenv("OMP_NUM_THREADS");
    fprintf(stderr, "# advect %s (%s), backend %s, cpu threads %s, lambda %g, commit %s\n",
            adv_version(), info.compiler ? info.compiler : "?",
            device_name(adv_context_backend(ctx)),
            o.threads ? "set by --threads" : (omp ? omp : "OpenMP default"), o.lambda,
            ADVECT_BENCH_COMMIT);
    if (o.threads) fprintf(stderr, "# --threads %d\n", o.threads);
    if (adv_context_backend(ctx) == ADV_BACKEND_CUDA) {
        adv_device_info dev;
        if (adv_cuda_device_info(0, &dev) == ADV_OK)
            fprintf(stderr, "# device %d: %s, sm_%d%d, %d SMs, %.1f GiB\n", dev.id, dev.name,
                    dev.compute_major, dev.compute_minor, dev.multiprocessors,
                    (double)dev.total_memory / 1073741824.0);
    }
    if (o.header)
        printf("device,precision,kernel,N,M,d,e,median_s,min_s,max_s,pairs_per_s,max_rel_err,"
               "lse_abs_err,commit\n");
    fflush(stdout);

    int worst = 0;
    for (int ip = 0; ip < o.n_precisions; ++ip) {
        adv_precision p = (adv_precision)o.precisions[ip];
        for (int is = 0; is < o.n_sizes; ++is)
            for (int id = 0; id < o.n_dims; ++id) {
                int rc = run_case(ctx, &o, p, o.sizes[is], o.dims[id]);
                if (rc > worst) worst = rc;
            }
        if (o.n_large) {
            if (adv_context_backend(ctx) == ADV_BACKEND_CPU)
                fprintf(stderr, "# note: --n-large on the CPU does 1e12 pairs per call\n");
            const int64_t large_dims[] = {2, 3};
            for (int id = 0; id < 2; ++id) {
                int rc = run_case(ctx, &o, p, 1000000, large_dims[id]);
                if (rc > worst) worst = rc;
            }
        }
    }
    adv_context_destroy(ctx);
    return worst;
}
