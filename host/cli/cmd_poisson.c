/* `advect poisson`: solves the screened Poisson equation (c - Δ_h) u = f (spec math.md §4)
 * for a right-hand side read from a .npy file, through the library's Poisson plan, and writes
 * u as .npy. With no --rhs it solves an embedded example (a source and a sink on a 128 x 128
 * Neumann grid of the unit square). After the solve it evaluates the residual
 * ‖(c - Δ_h) u - f‖ / ‖f‖ with the plain stencil in double, as an independent check.
 * Exit codes: 0 ok, 2 bad usage or input (one line on stderr), 1 internal failure; the output
 * is staged and renamed into place only on success. */
#include "cli_util.h"
#include "commands.h"

#include "advect/advect.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "poisson"

static void usage(FILE *f) {
    fprintf(f,
            "usage: advect poisson [--rhs PATH.npy] [--bc periodic|neumann|dirichlet[,...]]\n"
            "                      [--spacing h[,...]] [--shift c] [--out PATH.npy]\n"
            "                      [--precision f32|f64] [--device auto|cpu|cuda]\n"
            "                      [--project-mean] [--json] [--quiet]\n"
            "Solves (c - Laplacian_h) u = f on a cell-centred grid (1 to 4 dimensions, the\n"
            "array's shape), one boundary condition and spacing per axis (or one for all).\n"
            "Defaults: --bc neumann, --spacing 1 (the embedded example: 1/128), --shift 0,\n"
            "--device auto,\n"
            "--out advect-out/poisson.npy, --precision: the dtype of the --rhs array (f32 for\n"
            "float32, f64 for float64; f64 for the example). u is written in the solve's\n"
            "precision. With c = 0 and no Dirichlet axis f must have zero mean (to the\n"
            "precision's tolerance), unless --project-mean removes it (refused elsewhere).\n"
            "--out must end in .npy and differ from --rhs. Without --rhs: an embedded\n"
            "128x128 example.\n");
}

/* Splits a comma-separated list into at most max items; returns the count or -1. */
static int split_list(char *s, char **items, int max) {
    int n = 0;
    for (char *tok = s;; ++n) {
        if (n == max) return -1;
        items[n] = tok;
        char *comma = strchr(tok, ',');
        if (!comma) return n + 1;
        *comma = '\0';
        tok = comma + 1;
    }
}

/* The value of a per-axis option (`opt` `arg`): one entry for every axis, or one per axis.
 * Splits a copy in buf into items (ADV_POISSON_MAX_DIM + 1 of them) and returns the count,
 * or -1 after reporting a wrong count. */
static int per_axis_list(const char *opt, const char *arg, char *buf, size_t size, char **items,
                         int ndim) {
    snprintf(buf, size, "%s", arg);
    const int n = split_list(buf, items, ADV_POISSON_MAX_DIM + 1);
    if (n < 0)
        cli_fail(CMD, CLI_USAGE, "%s has more than %d entries; give 1 or %d (one per axis)", opt,
                 ADV_POISSON_MAX_DIM, ndim);
    else if (n != 1 && n != ndim)
        cli_fail(CMD, CLI_USAGE, "%s has %d entries; give 1 or %d (one per axis)", opt, n, ndim);
    return n == 1 || n == ndim ? n : -1;
}

/* Residual ‖(c - Δ_h) u - f‖₂ / ‖f‖₂ of one grid by the stencil (‖A u‖ when f = 0). */
static double residual(const adv_poisson_desc *d, const double *u, const double *f) {
    size_t stride[ADV_POISSON_MAX_DIM], n = 1;
    for (int a = d->ndim - 1; a >= 0; --a) {
        stride[a] = n;
        n *= (size_t)d->shape[a];
    }
    double num = 0.0, den = 0.0;
    for (size_t idx = 0; idx < n; ++idx) {
        const double center = u[idx];
        double au = d->shift * center;
        for (int a = 0; a < d->ndim; ++a) {
            const int64_t na = d->shape[a], ia = (int64_t)((idx / stride[a]) % (size_t)na);
            const size_t wrap = (size_t)(na - 1) * stride[a];
            const double ghost = d->bc[a] == ADV_BC_NEUMANN ? center : -center;
            double l = ia > 0 ? u[idx - stride[a]]
                       : d->bc[a] == ADV_BC_PERIODIC ? u[idx + wrap] : ghost;
            double r = ia < na - 1 ? u[idx + stride[a]]
                       : d->bc[a] == ADV_BC_PERIODIC ? u[idx - wrap] : ghost;
            au -= (l - 2.0 * center + r) / (d->spacing[a] * d->spacing[a]);
        }
        num += (au - f[idx]) * (au - f[idx]);
        den += f[idx] * f[idx];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* The embedded example: a Gaussian source at (0.3, 0.3) and an equal sink at (0.7, 0.6) on
 * the unit square, 128 x 128 cells, Neumann: zero mean by symmetry up to rounding, and the
 * mean is removed exactly here. */
static int make_example(advio_array *rhs, adv_poisson_desc *d) {
    const int64_t n = 128;
    rhs->dtype = ADV_FLOAT64;
    rhs->ndim = 2;
    rhs->shape[0] = rhs->shape[1] = n;
    rhs->count = (size_t)(n * n);
    double *f = malloc(rhs->count * sizeof *f);
    if (!f) return -1;
    double mean = 0.0;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
            const double x = (i + 0.5) / n, y = (j + 0.5) / n, w = 0.005;
            const double a = ((x - 0.3) * (x - 0.3) + (y - 0.3) * (y - 0.3)) / w;
            const double b = ((x - 0.7) * (x - 0.7) + (y - 0.6) * (y - 0.6)) / w;
            f[i * n + j] = exp(-a) - exp(-b);
            mean += f[i * n + j];
        }
    mean /= (double)rhs->count;
    for (size_t k = 0; k < rhs->count; ++k) f[k] -= mean;
    rhs->data = f;
    d->spacing[0] = d->spacing[1] = 1.0 / (double)n;
    return 0;
}

int advect_cmd_poisson(int argc, char **argv) {
    const char *rhs_path = NULL, *out_path = "advect-out/poisson.npy";
    const char *bc_arg = "neumann", *spacing_arg = NULL;
    double shift = 0.0;
    int precision = -1, device = 0, json = 0, quiet = 0, project = 0; // -1: the input's dtype
    static const char *const precisions[] = {"f32", "f64", NULL};
    static const char *const devices[] = {"auto", "cpu", "cuda", NULL};
    static const char *const bcs[] = {"periodic", "neumann", "dirichlet", NULL};

    cli_args a;
    cli_args_init(&a, CMD, argc, argv);
    while (cli_next(&a)) {
        const char *v;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (cli_flag(&a, "--json")) json = 1;
        else if (cli_flag(&a, "--quiet")) quiet = 1;
        else if (cli_flag(&a, "--project-mean")) project = 1;
        else if (cli_option(&a, "--rhs", &v)) rhs_path = v;
        else if (cli_option(&a, "--out", &v)) out_path = v;
        else if (cli_option(&a, "--bc", &v)) bc_arg = v;
        else if (cli_option(&a, "--spacing", &v)) spacing_arg = v;
        else if (cli_option(&a, "--shift", &v))
            cli_parse_double(&a, "--shift", v, 0.0, INFINITY, 0, &shift);
        else if (cli_option(&a, "--precision", &v))
            cli_parse_choice(&a, "--precision", v, precisions, &precision);
        else if (cli_option(&a, "--device", &v))
            cli_parse_choice(&a, "--device", v, devices, &device);
        else cli_unknown(&a);
    }
    if (a.bad) return CLI_USAGE;
    if (!cli_has_suffix(out_path, ".npy"))
        return cli_fail(CMD, CLI_USAGE, "--out %s: the solution is written as .npy; the name must end in .npy",
                        out_path);
    const cli_path paths[] = {{"--rhs", rhs_path, 1, NULL}, {"--out", out_path, 0, NULL}};
    if (cli_check_paths(CMD, paths, 2) != CLI_OK) return CLI_USAGE;

    char msg[512] = "";
    adv_poisson_desc d;
    adv_poisson_default_desc(&d);
    d.shift = shift;
    d.effort = ADV_FFT_ESTIMATE; // one solve: planning time would dominate with MEASURE
    d.mean_policy = project ? ADV_POISSON_PROJECT_MEAN : ADV_POISSON_REQUIRE_ZERO_MEAN;

    advio_array rhs;
    memset(&rhs, 0, sizeof rhs);
    if (rhs_path) {
        adv_status st = advio_npy_read(rhs_path, &rhs, msg, sizeof msg);
        if (st != ADV_OK) return cli_fail(CMD, cli_status_code(st), "--rhs %s: %s", rhs_path, msg);
        if (rhs.ndim > ADV_POISSON_MAX_DIM || rhs.count == 0) {
            advio_array_free(&rhs);
            return cli_fail(CMD, CLI_USAGE, "--rhs %s: need a non-empty array of 1 to %d "
                            "dimensions", rhs_path, ADV_POISSON_MAX_DIM);
        }
        // A float32 file is solved in float32 unless asked otherwise: its values (and a mean
        // removed before rounding to float32, ~1e-8 relative) carry float32 accuracy only,
        // which the float64 zero-mean tolerance would reject.
        if (precision < 0) precision = rhs.dtype == ADV_FLOAT32 ? 0 : 1;
        size_t bad = 0;
        if (!advio_array_all_finite(&rhs, &bad)) {
            advio_array_free(&rhs);
            return cli_fail(CMD, CLI_USAGE, "--rhs %s: element %zu is NaN or infinite", rhs_path,
                            bad);
        }
        st = advio_array_convert(&rhs, ADV_FLOAT64, msg, sizeof msg);
        if (st != ADV_OK) {
            advio_array_free(&rhs);
            return cli_fail(CMD, cli_status_code(st), "%s", msg);
        }
    } else if (make_example(&rhs, &d) != 0) {
        return cli_fail(CMD, CLI_INTERNAL, "out of memory");
    }
    if (precision < 0) precision = 1; // the embedded example is float64
    d.precision = precision ? ADV_FLOAT64 : ADV_FLOAT32;
    int code = CLI_OK;
    if (!precision) { // a plain cast would turn these into infinities, refused as "NaN or Inf"
        const size_t k = cli_first_beyond_float32(rhs.data, rhs.count);
        if (k < rhs.count) {
            code = cli_fail(CMD, CLI_USAGE, "--rhs %s: value %g (element %zu) exceeds the float32 range; "
                            "use --precision f64", rhs_path, ((double *)rhs.data)[k], k);
            goto done;
        }
    }
    d.ndim = rhs.ndim;
    for (int k = 0; k < rhs.ndim; ++k) d.shape[k] = rhs.shape[k];

    // --bc and --spacing: one value for every axis, or one per axis.
    char *items[ADV_POISSON_MAX_DIM + 1];
    char list[256];
    const int nb = per_axis_list("--bc", bc_arg, list, sizeof list, items, d.ndim);
    if (nb < 0) {
        code = CLI_USAGE;
        goto done;
    }
    for (int k = 0; k < d.ndim; ++k) {
        int choice = 0;
        if (cli_parse_choice(&a, "--bc", items[nb == 1 ? 0 : k], bcs, &choice) != 0) {
            code = CLI_USAGE;
            goto done;
        }
        d.bc[k] = (adv_boundary)choice;
    }
    if (spacing_arg) {
        const int ns = per_axis_list("--spacing", spacing_arg, list, sizeof list, items, d.ndim);
        if (ns < 0) {
            code = CLI_USAGE;
            goto done;
        }
        for (int k = 0; k < d.ndim; ++k)
            if (cli_parse_double(&a, "--spacing", items[ns == 1 ? 0 : k], 0.0, INFINITY, 1,
                                 &d.spacing[k]) != 0) {
                code = CLI_USAGE;
                goto done;
            }
    }
    // The system is singular only with c = 0 and no Dirichlet axis; elsewhere the flag would
    // be silently ignored, and its user believes a mean was removed.
    int singular = d.shift == 0.0;
    for (int k = 0; k < d.ndim; ++k) singular &= d.bc[k] != ADV_BC_DIRICHLET;
    if (project && !singular) {
        code = cli_fail(CMD, CLI_USAGE, "--project-mean applies only with --shift 0 and no "
                        "Dirichlet axis (this system is not singular: f is solved as given)");
        goto done;
    }

    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = device == 1   ? ADV_BACKEND_CPU
                   : device == 2 ? ADV_BACKEND_CUDA
                                 : ADV_BACKEND_AUTO;
    adv_context *ctx = NULL;
    adv_status st = adv_context_create(&opts, &ctx);
    if (st != ADV_OK) {
        code = cli_fail(CMD, cli_status_code(st), "--device %s: %s", devices[device],
                        adv_status_string(st));
        goto done;
    }
    const int on_gpu = adv_context_backend(ctx) == ADV_BACKEND_CUDA;
    const size_t n = rhs.count, es = precision ? 8 : 4;
    void *host = malloc(n * es);
    double *u = malloc(n * sizeof *u);
    void *dev = NULL;
    adv_poisson_plan *plan = NULL;
    double t0 = 0, t1 = 0;
    if (!host || !u) {
        code = cli_fail(CMD, CLI_INTERNAL, "out of memory");
        goto cleanup;
    }
    const double *f = rhs.data;
    for (size_t k = 0; k < n; ++k) {
        if (precision) ((double *)host)[k] = f[k];
        else ((float *)host)[k] = (float)f[k];
    }
    if ((st = adv_poisson_plan_create(ctx, &d, &plan)) != ADV_OK) goto lib_error;
    if (on_gpu) {
        if ((st = adv_malloc(ctx, n * es, &dev)) != ADV_OK) goto lib_error;
        if ((st = adv_memcpy(ctx, dev, host, n * es, ADV_COPY_HOST_TO_CONTEXT)) != ADV_OK)
            goto lib_error;
    }
    t0 = cli_now();
    if ((st = adv_poisson_execute(plan, on_gpu ? dev : host, on_gpu ? dev : host)) != ADV_OK)
        goto lib_error;
    if ((st = adv_context_synchronize(ctx)) != ADV_OK) goto lib_error;
    t1 = cli_now();
    if (on_gpu && (st = adv_memcpy(ctx, host, dev, n * es, ADV_COPY_CONTEXT_TO_HOST)) != ADV_OK)
        goto lib_error;
    for (size_t k = 0; k < n; ++k) u[k] = precision ? ((double *)host)[k] : ((float *)host)[k];

    // The residual is against the f actually solved: with --project-mean, f minus its mean.
    double res;
    {
        double *fs = (double *)rhs.data, mean = 0.0;
        if (singular) {
            for (size_t k = 0; k < n; ++k) mean += fs[k];
            mean /= (double)n;
            for (size_t k = 0; k < n; ++k) fs[k] -= mean;
        }
        res = residual(&d, u, fs);
    }

    cli_outputs outs;
    cli_outputs_init(&outs);
    // From the staged file on, a termination signal must not kill the process before it has
    // removed the temporary file.
    cli_signals_catch();
    st = cli_write_npy(&outs, out_path, d.precision, d.ndim, d.shape, host, msg, sizeof msg);
    if (st == ADV_OK && cli_signal_caught()) {
        cli_outputs_abort(&outs);
        cli_fail(CMD, 0, "interrupted; no output written");
        code = 128 + cli_signal_caught();
        goto cleanup;
    }
    if (st == ADV_OK) st = cli_outputs_commit(&outs, msg, sizeof msg);
    if (st != ADV_OK) {
        cli_outputs_abort(&outs);
        code = cli_fail(CMD, cli_status_code(st) == CLI_USAGE ? CLI_USAGE : CLI_INTERNAL,
                        "--out %s: %s", out_path, msg);
        goto cleanup;
    }

    static const char *const bc_names[] = {"periodic", "neumann", "dirichlet"};
    if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_string(&j, "rhs", rhs_path ? rhs_path : "(embedded example)");
        cli_json_string(&j, "out", out_path);
        cli_json_int(&j, "ndim", d.ndim);
        char shape[128] = "", bcl[128] = "";
        for (int k = 0; k < d.ndim; ++k) {
            size_t ls = strlen(shape), lb = strlen(bcl);
            snprintf(shape + ls, sizeof shape - ls, "%s%lld", k ? "x" : "", (long long)d.shape[k]);
            snprintf(bcl + lb, sizeof bcl - lb, "%s%s", k ? "," : "", bc_names[d.bc[k]]);
        }
        cli_json_string(&j, "shape", shape);
        cli_json_string(&j, "bc", bcl);
        cli_json_number(&j, "shift", d.shift);
        cli_json_string(&j, "device", on_gpu ? "cuda" : "cpu");
        cli_json_string(&j, "precision", precision ? "f64" : "f32");
        cli_json_number(&j, "residual", res);
        cli_json_number(&j, "time_s", t1 - t0);
        cli_json_end(&j);
    } else if (!quiet) {
        printf("advect poisson: %s grid", rhs_path ? rhs_path : "embedded example,");
        for (int k = 0; k < d.ndim; ++k)
            printf("%s%lld", k ? "x" : " ", (long long)d.shape[k]);
        printf(", bc");
        for (int k = 0; k < d.ndim; ++k) printf("%s%s", k ? "," : " ", bc_names[d.bc[k]]);
        printf(", c = %g, %s on %s\n", d.shift, precision ? "f64" : "f32", on_gpu ? "cuda" : "cpu");
        printf("  solve %.3f ms, relative residual %.3g, wrote %s\n", (t1 - t0) * 1e3, res,
               out_path);
    }
    goto cleanup;

lib_error:
    if (st == ADV_ERR_INVALID_VALUE && strstr(adv_context_last_error(ctx), "zero mean")) {
        // The library's message names its own constants; say it in the CLI's terms.
        double sum = 0.0, abs_sum = 0.0;
        for (size_t k = 0; k < rhs.count; ++k)
            sum += ((double *)rhs.data)[k], abs_sum += fabs(((double *)rhs.data)[k]);
        code = cli_fail(CMD, CLI_USAGE, "--rhs %s has mean %g (|sum f| / sum |f| = %.2g, too large for %s): "
                        "with --shift 0 and no Dirichlet axis the right-hand side must have zero "
                        "mean; --project-mean removes it", rhs_path ? rhs_path : "(example)",
                        sum / (double)rhs.count, abs_sum > 0 ? fabs(sum) / abs_sum : 0.0,
                        precision ? "f64" : "f32");
    } else {
        code = cli_fail(CMD, cli_status_code(st), "%s", adv_context_last_error(ctx)[0]
                                                            ? adv_context_last_error(ctx)
                                                            : adv_status_string(st));
    }
cleanup:
    adv_poisson_plan_destroy(plan);
    if (dev) adv_free(ctx, dev);
    free(host);
    free(u);
    adv_context_destroy(ctx);
done:
    cli_signals_restore();
    advio_array_free(&rhs);
    return code;
}
