/* `advect bbot`: dynamic optimal transport between two densities on the unit box by the
 * library's Benamou-Brenier solver (spec math.md §4). Inputs: --rho0/--rho1 as .npy arrays
 * (1-D, 2-D or 3-D) or grayscale .png/.pgm images, or, without them, an embedded example (one
 * bump to two bumps on a 64 x 64 grid). Outputs: ρ on the P+1 time faces as .npy of shape
 * (P+1, grid...), a strip of frames as PNG, and with --particles N the trajectories of N
 * particles drawn from ρ0 and advected through the grid velocity field (RK4 with the
 * library's sampler), as .npy of shape (P+1, N, d) at the same times.
 * Exit codes: 0 ok, 2 bad usage or input (one line on stderr), 1 internal failure; outputs
 * are staged and renamed into place only when everything succeeded. */
#include "cli_util.h"
#include "commands.h"

#include "advect/advect.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "bbot"
#define MAX_FRAMES 9
/* Largest tile side of the frames strip, in pixels: finer grids are shown area-averaged, so
 * nine tiles side by side always fit in a PNG (and a screen); the .npy keeps every cell. */
#define FRAME_MAX_SIDE 512

static void usage(FILE *f) {
    fprintf(f,
            "usage: advect bbot [--rho0 PATH --rho1 PATH] [--time-steps P] [--iters K]\n"
            "                   [--tol T] [--gamma G] [--device auto|cpu|cuda]\n"
            "                   [--precision f32|f64] [--out PATH.npy] [--frames PATH.png]\n"
            "                   [--particles N] [--particles-out PATH.npy] [--seed S]\n"
            "                   [--json] [--quiet]\n"
            "Dynamic optimal transport (Benamou-Brenier) from rho0 to rho1 on the unit box.\n"
            "Densities: .npy arrays of 1 to 3 dimensions, or grayscale .png/.pgm images (rows\n"
            "first); both the same shape, non-negative, each rescaled to unit mass. Without\n"
            "--rho0/--rho1: an embedded 64x64 example (one bump to two bumps).\n"
            "Defaults: --time-steps 32, --iters 1000, --tol 1e-3 (divergence residual; the\n"
            "relative cost change must also fall below tol/100), --gamma 1, --precision f64,\n"
            "--out advect-out/bbot.npy (shape (P+1, grid...)), --frames advect-out/bbot.png.\n"
            "--particles N also advects N particles drawn from rho0 through the velocity\n"
            "field and saves them (shape (P+1, N, d), default advect-out/bbot_particles.npy);\n"
            "--particles-out needs --particles.\n"
            "The frames show up to 9 time faces; a grid side above %d cells is drawn\n"
            "area-averaged down to %d pixels (the .npy keeps every cell).\n"
            "--out and --particles-out must end in .npy, --frames in .png; no output may\n"
            "name the same file as another output or as --rho0/--rho1.\n"
            "The cost is W2^2 on [0,1]^d without the factor 1/2.\n",
            FRAME_MAX_SIDE, FRAME_MAX_SIDE);
}

/* One bump at (0.5, 0.3) to two bumps at (0.3, 0.7) and (0.7, 0.7), 64 x 64. */
static void make_example(advio_array *r0, advio_array *r1) {
    const int64_t n = 64;
    advio_array *arr[2] = {r0, r1};
    for (int k = 0; k < 2; ++k) {
        arr[k]->dtype = ADV_FLOAT64;
        arr[k]->ndim = 2;
        arr[k]->shape[0] = arr[k]->shape[1] = n;
        arr[k]->count = (size_t)(n * n);
        arr[k]->data = malloc(arr[k]->count * sizeof(double));
    }
    if (!r0->data || !r1->data) return;
    double *a = r0->data, *b = r1->data;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
            const double x = (i + 0.5) / n, y = (j + 0.5) / n;
            a[i * n + j] = exp(-((x - 0.5) * (x - 0.5) + (y - 0.3) * (y - 0.3)) / (2 * 0.08 * 0.08));
            b[i * n + j] = exp(-((x - 0.3) * (x - 0.3) + (y - 0.7) * (y - 0.7)) / (2 * 0.06 * 0.06)) +
                           exp(-((x - 0.7) * (x - 0.7) + (y - 0.7) * (y - 0.7)) / (2 * 0.06 * 0.06));
        }
}

/* Reads a density: .npy (float32/float64, 1-3 dimensions) or a grayscale image. */
static int read_density(const char *opt, const char *path, advio_array *out) {
    char msg[512] = "";
    adv_status st;
    if (cli_has_suffix(path, ".png") || cli_has_suffix(path, ".pgm")) st = advio_gray_read(path, out, msg, sizeof msg);
    else if (cli_has_suffix(path, ".npy")) st = advio_npy_read(path, out, msg, sizeof msg);
    else return cli_fail(CMD, CLI_USAGE, "%s %s: expected a .npy, .png or .pgm file", opt, path);
    if (st != ADV_OK) return cli_fail(CMD, cli_status_code(st), "%s %s: %s", opt, path, msg);
    if (out->ndim < 1 || out->ndim > ADV_BBOT_MAX_DIM || out->count == 0)
        return cli_fail(CMD, CLI_USAGE, "%s %s: need a non-empty array of 1 to %d dimensions (got "
                        "%d)", opt, path, ADV_BBOT_MAX_DIM, out->ndim);
    size_t bad = 0;
    if (!advio_array_all_finite(out, &bad))
        return cli_fail(CMD, CLI_USAGE, "%s %s: element %zu is NaN or infinite", opt, path, bad);
    st = advio_array_convert(out, ADV_FLOAT64, msg, sizeof msg);
    if (st != ADV_OK) return cli_fail(CMD, cli_status_code(st), "%s %s: %s", opt, path, msg);
    const double *v = out->data;
    for (size_t k = 0; k < out->count; ++k)
        if (v[k] < 0.0)
            return cli_fail(CMD, CLI_USAGE, "%s %s: element %zu is negative (%g); densities must "
                            "be >= 0", opt, path, k, v[k]);
    double max = 0.0;
    for (size_t k = 0; k < out->count; ++k) max = fmax(max, v[k]);
    if (!(max > 0.0)) return cli_fail(CMD, CLI_USAGE, "%s %s: the density is zero everywhere", opt, path);
    // The solver rescales each density to unit mass: scaling here changes nothing but lets
    // float32 hold any finite input (1e39 would become Inf, 1e-50 zero everywhere). A power
    // of two brings the maximum into [0.5, 1) exactly; what then rounds to zero in float32 is
    // below 2^-149 of the maximum.
    int e;
    frexp(max, &e);
    double *w = out->data;
    for (size_t k = 0; k < out->count; ++k) w[k] = ldexp(w[k], -e);
    return CLI_OK;
}

/* Progress bar through the solver's callback. */
typedef struct progress_ctx {
    cli_progress bar;
} progress_ctx;

static int on_progress(void *user, int64_t max_iterations, const adv_bbot_iterate *it) {
    progress_ctx *p = user;
    cli_progress_update(&p->bar, (double)it->iteration / (double)max_iterations);
    return 0;
}

/* Area average of a rows x cols field (row-major) onto oh x ow cells (oh <= rows, ow <=
 * cols): output cell (i, j) is the mean of the input cells [i rows/oh, (i+1) rows/oh) x
 * [j cols/ow, (j+1) cols/ow). The mean of a density over a block is the density of the
 * coarser grid, so the picture keeps the mass where it is; a spike narrower than a block is
 * spread over its block (and so shows dimmer), which the .npy does not suffer. */
static void area_average(const double *src, int64_t rows, int64_t cols, int oh, int ow, double *dst) {
    for (int i = 0; i < oh; ++i) {
        const int64_t r0 = i * rows / oh, r1 = (i + 1) * rows / oh;
        for (int j = 0; j < ow; ++j) {
            const int64_t c0 = j * cols / ow, c1 = (j + 1) * cols / ow;
            double sum = 0.0;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) sum += src[r * cols + c];
            dst[(size_t)i * ow + j] = sum / (double)((r1 - r0) * (c1 - c0));
        }
    }
}

/* The frame images: up to MAX_FRAMES time faces, 1-D densities drawn as filled profiles,
 * 2-D as images, 3-D as their projection along the first axis; each tile at most
 * FRAME_MAX_SIDE pixels a side before the integer zoom of small grids (area_average). */
static adv_status render_frames(const double *rho, int64_t P, int ndim, const int64_t *shape,
                                advio_image *img, char *msg, size_t msg_size) {
    const int64_t M = shape[0] * (ndim > 1 ? shape[1] : 1) * (ndim > 2 ? shape[2] : 1);
    // The field drawn per frame: rows x cols values (a 1-D density is one row).
    const int64_t rows = ndim == 1 ? 1 : ndim == 2 ? shape[0] : shape[1];
    const int64_t cols = ndim == 1 ? shape[0] : ndim == 2 ? shape[1] : shape[2];
    const int oh = (int)(rows < FRAME_MAX_SIDE ? rows : FRAME_MAX_SIDE);
    const int ow = (int)(cols < FRAME_MAX_SIDE ? cols : FRAME_MAX_SIDE);
    const int th = ndim == 1 ? 64 : oh, tw = ow;
    const int count = P + 1 < MAX_FRAMES ? (int)(P + 1) : MAX_FRAMES;
    double *vals = malloc((size_t)count * (size_t)oh * (size_t)ow * sizeof *vals);
    double *tiles = ndim == 1 ? calloc((size_t)count * (size_t)th * (size_t)tw, sizeof *tiles) : vals;
    double *plane = ndim == 3 ? malloc((size_t)(rows * cols) * sizeof *plane) : NULL;
    if (!vals || !tiles || (ndim == 3 && !plane)) {
        free(vals), free(plane);
        if (tiles != vals) free(tiles);
        return advio_fail(msg, msg_size, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    }
    double hi = 0.0;
    for (int k = 0; k < count; ++k) {
        const int64_t j = count > 1 ? (int64_t)llround((double)k * (double)P / (count - 1)) : 0;
        const double *f = rho + j * M;
        if (ndim == 3) {
            memset(plane, 0, (size_t)(rows * cols) * sizeof *plane);
            for (int64_t i0 = 0; i0 < shape[0]; ++i0)
                for (int64_t r = 0; r < rows * cols; ++r) plane[r] += f[i0 * rows * cols + r];
            f = plane;
        }
        double *v = vals + (size_t)k * oh * ow;
        area_average(f, rows, cols, oh, ow, v);
        for (size_t r = 0; r < (size_t)oh * ow; ++r) hi = fmax(hi, v[r]);
    }
    if (ndim == 1) { // filled profiles, the same vertical scale for every frame
        for (int k = 0; k < count; ++k) {
            const double *v = vals + (size_t)k * ow;
            double *t = tiles + (size_t)k * th * tw;
            for (int x = 0; x < tw; ++x) {
                const double h = hi > 0 ? v[x] / hi * th : 0.0;
                for (int y = 0; y < th; ++y) t[(size_t)y * tw + x] = (th - y) <= h ? 1.0 : 0.0;
            }
        }
        hi = 1.0;
    }
    const int side = th > tw ? th : tw;
    int scale = side >= 128 ? 1 : 128 / side;
    if (scale > 8) scale = 8;
    adv_status st = advio_render_tiles(tiles, count, th, tw, count, 0.0, hi > 0 ? hi : 1.0, scale,
                                       img, msg, msg_size);
    if (tiles != vals) free(tiles);
    free(vals), free(plane);
    return st;
}

/* Draws n particles from the piecewise-constant density (splitmix64 uniforms). */
static void sample_particles(const double *rho, int ndim, const int64_t *shape, int64_t n,
                             uint64_t seed, double *x) {
    int64_t M = 1;
    for (int a = 0; a < ndim; ++a) M *= shape[a];
    double *cdf = malloc((size_t)M * sizeof *cdf);
    if (!cdf) return;
    double s = 0.0;
    for (int64_t k = 0; k < M; ++k) cdf[k] = (s += rho[k]);
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    for (int64_t p = 0; p < n; ++p) {
        double u[4];
        for (int k = 0; k < 4; ++k) {
            uint64_t z = (state += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            u[k] = (double)(z >> 11) * 0x1.0p-53;
        }
        const double target = u[0] * s;
        int64_t lo = 0, hi = M - 1;
        while (lo < hi) {
            const int64_t mid = (lo + hi) / 2;
            if (cdf[mid] > target) hi = mid;
            else lo = mid + 1;
        }
        int64_t rem = lo;
        for (int a = ndim - 1; a >= 0; --a) {
            x[p * ndim + a] = ((double)(rem % shape[a]) + u[1 + a]) / (double)shape[a];
            rem /= shape[a];
        }
    }
    free(cdf);
}

int advect_cmd_bbot(int argc, char **argv) {
    const char *rho0_path = NULL, *rho1_path = NULL, *out_path = "advect-out/bbot.npy";
    const char *frames_path = "advect-out/bbot.png", *particles_path = NULL;
    int64_t P = 32, iters = 1000, n_particles = 0;
    double tol = 1e-3, gamma = 1.0;
    uint64_t seed = 0;
    int precision = 1, device = 0, json = 0, quiet = 0;
    static const char *const precisions[] = {"f32", "f64", NULL};
    static const char *const devices[] = {"auto", "cpu", "cuda", NULL};

    cli_args a;
    cli_args_init(&a, CMD, argc, argv);
    while (cli_next(&a)) {
        const char *v;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (cli_flag(&a, "--json")) json = 1;
        else if (cli_flag(&a, "--quiet")) quiet = 1;
        else if (cli_option(&a, "--rho0", &v)) rho0_path = v;
        else if (cli_option(&a, "--rho1", &v)) rho1_path = v;
        else if (cli_option(&a, "--out", &v)) out_path = v;
        else if (cli_option(&a, "--frames", &v)) frames_path = v;
        else if (cli_option(&a, "--particles-out", &v)) particles_path = v;
        else if (cli_option(&a, "--time-steps", &v))
            cli_parse_i64(&a, "--time-steps", v, 1, 100000, &P);
        else if (cli_option(&a, "--iters", &v))
            cli_parse_i64(&a, "--iters", v, 1, INT64_C(1000000000), &iters);
        else if (cli_option(&a, "--particles", &v))
            cli_parse_i64(&a, "--particles", v, 1, INT64_C(100000000), &n_particles);
        else if (cli_option(&a, "--tol", &v)) cli_parse_double(&a, "--tol", v, 0.0, 1.0, 0, &tol);
        else if (cli_option(&a, "--gamma", &v))
            cli_parse_double(&a, "--gamma", v, 0.0, 1e12, 1, &gamma);
        else if (cli_option(&a, "--seed", &v)) cli_parse_u64(&a, "--seed", v, &seed);
        else if (cli_option(&a, "--precision", &v))
            cli_parse_choice(&a, "--precision", v, precisions, &precision);
        else if (cli_option(&a, "--device", &v))
            cli_parse_choice(&a, "--device", v, devices, &device);
        else cli_unknown(&a);
    }
    if (a.bad) return CLI_USAGE;
    if ((rho0_path == NULL) != (rho1_path == NULL))
        return cli_fail(CMD, CLI_USAGE, "--rho0 and --rho1 must be given together");
    if (!cli_has_suffix(out_path, ".npy"))
        return cli_fail(CMD, CLI_USAGE, "--out %s: the output must be a .npy file", out_path);
    if (!cli_has_suffix(frames_path, ".png"))
        return cli_fail(CMD, CLI_USAGE, "--frames %s: the frames must be a .png file", frames_path);
    // Without particles nothing would be written there: an ignored option hides a mistake.
    if (particles_path && !n_particles)
        return cli_fail(CMD, CLI_USAGE, "--particles-out needs --particles N (the number of particles "
                        "to advect)");
    char *derived = NULL;
    if (!particles_path) {
        const size_t len = strlen(out_path);
        derived = malloc(len + sizeof "_particles.npy");
        if (!derived) return cli_fail(CMD, CLI_INTERNAL, "out of memory");
        snprintf(derived, len + sizeof "_particles.npy", "%.*s_particles.npy", (int)(len - 4), out_path);
        particles_path = derived;
    } else if (!cli_has_suffix(particles_path, ".npy")) {
        return cli_fail(CMD, CLI_USAGE, "--particles-out %s: must be a .npy file", particles_path);
    }
    {
        const cli_path paths[] = {
            {"--rho0", rho0_path, 1, NULL}, {"--rho1", rho1_path, 1, NULL},
            {"--out", out_path, 0, NULL},   {"--frames", frames_path, 0, NULL},
            {"--particles-out", n_particles ? particles_path : NULL, 0, NULL},
        };
        if (cli_check_paths(CMD, paths, (int)(sizeof paths / sizeof paths[0])) != CLI_OK) {
            free(derived);
            return CLI_USAGE;
        }
    }

    // ---- inputs ----
    int code = CLI_OK;
    advio_array r0, r1;
    memset(&r0, 0, sizeof r0);
    memset(&r1, 0, sizeof r1);
    if (rho0_path) {
        if ((code = read_density("--rho0", rho0_path, &r0)) != CLI_OK) goto done;
        if ((code = read_density("--rho1", rho1_path, &r1)) != CLI_OK) goto done;
        int same = r0.ndim == r1.ndim;
        for (int k = 0; same && k < r0.ndim; ++k) same = r0.shape[k] == r1.shape[k];
        if (!same) {
            char s0[128] = "", s1[128] = "";
            for (int k = 0; k < r0.ndim; ++k)
                snprintf(s0 + strlen(s0), sizeof s0 - strlen(s0), "%s%lld", k ? "x" : "", (long long)r0.shape[k]);
            for (int k = 0; k < r1.ndim; ++k)
                snprintf(s1 + strlen(s1), sizeof s1 - strlen(s1), "%s%lld", k ? "x" : "", (long long)r1.shape[k]);
            code = cli_fail(CMD, CLI_USAGE, "--rho0 is %s but --rho1 is %s: the shapes must match", s0, s1);
            goto done;
        }
    } else {
        make_example(&r0, &r1);
        if (!r0.data || !r1.data) {
            code = cli_fail(CMD, CLI_INTERNAL, "out of memory");
            goto done;
        }
    }
    const int ndim = r0.ndim;
    const int64_t *shape = r0.shape;
    const int64_t M = (int64_t)r0.count;

    // The host keeps ρ on every time face (in the run's precision and in double) and, with
    // particles, their P+1 snapshots: sizes beyond the machine's memory are bad options,
    // not internal failures of an allocation (counted in double: no overflow).
    {
        const double es = precision ? 8.0 : 4.0, mem = (double)cli_physical_memory();
        const double rho_bytes = (double)(P + 1) * (double)M * (es + 8.0);
        const double part_bytes = (double)(P + 1) * (double)n_particles * (double)ndim * es;
        if (mem > 0 && rho_bytes + part_bytes > mem) {
            if (part_bytes > rho_bytes)
                code = cli_fail(CMD, CLI_USAGE, "--particles %lld with --time-steps %lld: the trajectories "
                                "take %.3g GB, more than this machine's memory (%.3g GB)",
                                (long long)n_particles, (long long)P, part_bytes / 1e9, mem / 1e9);
            else
                code = cli_fail(CMD, CLI_USAGE, "--time-steps %lld on %lld cells: the densities take %.3g "
                                "GB, more than this machine's memory (%.3g GB)", (long long)P,
                                (long long)M, rho_bytes / 1e9, mem / 1e9);
            goto done;
        }
    }

    // ---- solve ----
    adv_context_opts copts;
    adv_context_default_opts(&copts);
    copts.backend = device == 1 ? ADV_BACKEND_CPU : device == 2 ? ADV_BACKEND_CUDA : ADV_BACKEND_AUTO;
    adv_context *ctx = NULL;
    adv_status st = adv_context_create(&copts, &ctx);
    if (st != ADV_OK) {
        code = cli_fail(CMD, cli_status_code(st), "--device %s: %s", devices[device], adv_status_string(st));
        goto done;
    }
    const int on_gpu = adv_context_backend(ctx) == ADV_BACKEND_CUDA;
    const adv_precision prec = precision ? ADV_FLOAT64 : ADV_FLOAT32;
    const size_t es = precision ? 8 : 4;
    const size_t nrho = (size_t)((P + 1) * M);
    const size_t npart = (size_t)n_particles * (size_t)ndim;
    void *h0 = malloc((size_t)M * es), *h1 = malloc((size_t)M * es), *hrho = malloc(nrho * es);
    double *rho = malloc(nrho * sizeof *rho);
    void *hpart = n_particles ? malloc((size_t)(P + 1) * npart * es) : NULL;
    double *xpart = n_particles ? malloc(npart * sizeof *xpart) : NULL;
    void *d0 = NULL, *d1 = NULL, *drho = NULL, *dpart = NULL, *dtraj = NULL;
    adv_bbot_plan *plan = NULL;
    adv_field *field = NULL;
    progress_ctx prog;
    adv_bbot_result res = {.struct_size = sizeof res};
    cli_outputs outs;
    cli_outputs_init(&outs);
    char msg[512] = "";
    if (!h0 || !h1 || !hrho || !rho || (n_particles && (!hpart || !xpart))) {
        code = cli_fail(CMD, CLI_INTERNAL, "out of memory");
        goto cleanup;
    }
    for (int64_t k = 0; k < M; ++k) {
        const double v0 = ((double *)r0.data)[k], v1 = ((double *)r1.data)[k];
        if (precision) ((double *)h0)[k] = v0, ((double *)h1)[k] = v1;
        else ((float *)h0)[k] = (float)v0, ((float *)h1)[k] = (float)v1;
    }
    adv_bbot_opts o;
    adv_bbot_default_opts(&o);
    o.precision = prec;
    o.ndim = ndim;
    for (int k = 0; k < ndim; ++k) o.shape[k] = shape[k];
    o.time_steps = P;
    o.max_iterations = iters;
    o.tolerance = tol;
    o.cost_tolerance = tol / 100.0;
    o.gamma = gamma;
    cli_progress_init(&prog.bar, "bbot", quiet || json);
    o.progress = on_progress;
    o.progress_user = &prog;
    if ((st = adv_bbot_plan_create(ctx, &o, &plan)) != ADV_OK) goto lib_error;
    if (on_gpu) {
        if ((st = adv_malloc(ctx, (size_t)M * es, &d0)) != ADV_OK ||
            (st = adv_malloc(ctx, (size_t)M * es, &d1)) != ADV_OK ||
            (st = adv_malloc(ctx, nrho * es, &drho)) != ADV_OK ||
            (st = adv_memcpy(ctx, d0, h0, (size_t)M * es, ADV_COPY_HOST_TO_CONTEXT)) != ADV_OK ||
            (st = adv_memcpy(ctx, d1, h1, (size_t)M * es, ADV_COPY_HOST_TO_CONTEXT)) != ADV_OK)
            goto lib_error;
    }
    st = adv_bbot_solve(plan, on_gpu ? d0 : h0, on_gpu ? d1 : h1, on_gpu ? drho : hrho, NULL, NULL,
                        &res);
    cli_progress_done(&prog.bar);
    if (st != ADV_OK) goto lib_error;
    if (on_gpu && (st = adv_memcpy(ctx, hrho, drho, nrho * es, ADV_COPY_CONTEXT_TO_HOST)) != ADV_OK)
        goto lib_error;
    for (size_t k = 0; k < nrho; ++k) rho[k] = precision ? ((double *)hrho)[k] : ((float *)hrho)[k];

    // ---- particles ----
    double t_particles = 0.0;
    if (n_particles) {
        const double tp0 = cli_now();
        sample_particles(r0.data, ndim, shape, n_particles, seed, xpart);
        void *hx = hpart; // the first snapshot's slot doubles as the upload buffer
        for (size_t k = 0; k < npart; ++k) {
            if (precision) ((double *)hx)[k] = xpart[k];
            else ((float *)hx)[k] = (float)xpart[k];
        }
        if ((st = adv_bbot_velocity_field(plan, &field)) != ADV_OK) goto lib_error;
        adv_sampler_opts so;
        adv_sampler_default_opts(&so);
        so.method = ADV_METHOD_RK4;
        so.steps = 4 * P; // four RK4 steps per time cell of the velocity grid
        so.save_every = 4;
        void *x = hx, *traj = hpart;
        if (on_gpu) {
            if ((st = adv_malloc(ctx, npart * es, &dpart)) != ADV_OK ||
                (st = adv_malloc(ctx, (size_t)(P + 1) * npart * es, &dtraj)) != ADV_OK ||
                (st = adv_memcpy(ctx, dpart, hx, npart * es, ADV_COPY_HOST_TO_CONTEXT)) != ADV_OK)
                goto lib_error;
            x = dpart, traj = dtraj;
        } else {
            // Host: z is advected in place; keep the snapshots in hpart, so start from a copy.
            x = malloc(npart * es);
            if (!x) {
                code = cli_fail(CMD, CLI_INTERNAL, "out of memory");
                goto cleanup;
            }
            memcpy(x, hx, npart * es);
        }
        so.trajectory = traj;
        adv_sampler_stats sst = {.struct_size = sizeof sst};
        st = adv_sample(field, &so, n_particles, x, &sst);
        if (!on_gpu) free(x);
        if (st != ADV_OK) goto lib_error;
        if (on_gpu &&
            (st = adv_memcpy(ctx, hpart, dtraj, (size_t)(P + 1) * npart * es, ADV_COPY_CONTEXT_TO_HOST)) != ADV_OK)
            goto lib_error;
        t_particles = cli_now() - tp0;
    }

    // ---- outputs ----
    // From the first staged file on, a termination signal must not kill the process before
    // it has removed its temporary files (until then there is nothing to remove).
    cli_signals_catch();
    {
        int64_t oshape[4] = {P + 1, 0, 0, 0};
        for (int k = 0; k < ndim; ++k) oshape[k + 1] = shape[k];
        advio_image img = {0};
        st = cli_write_npy(&outs, out_path, prec, ndim + 1, oshape, hrho, msg, sizeof msg);
        if (st == ADV_OK) st = render_frames(rho, P, ndim, shape, &img, msg, sizeof msg);
        if (st == ADV_OK) st = cli_write_png(&outs, frames_path, &img, msg, sizeof msg);
        advio_image_free(&img);
        if (st == ADV_OK && n_particles) {
            const int64_t pshape[3] = {P + 1, n_particles, ndim};
            st = cli_write_npy(&outs, particles_path, prec, 3, pshape, hpart, msg, sizeof msg);
        }
        if (st == ADV_OK && cli_signal_caught()) goto interrupted;
        if (st == ADV_OK) st = cli_outputs_commit(&outs, msg, sizeof msg);
        if (st != ADV_OK) {
            cli_outputs_abort(&outs);
            code = cli_fail(CMD, cli_status_code(st) == CLI_USAGE ? CLI_USAGE : CLI_INTERNAL,
                            "writing the outputs: %s", msg);
            goto cleanup;
        }
    }

    char grid[128] = "";
    for (int k = 0; k < ndim; ++k)
        snprintf(grid + strlen(grid), sizeof grid - strlen(grid), "%s%lld", k ? "x" : "", (long long)shape[k]);
    if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_number(&j, "cost", res.cost);
        cli_json_int(&j, "iterations", res.iterations);
        cli_json_number(&j, "divergence_residual", res.divergence_residual);
        cli_json_number(&j, "mass_error", res.mass_error);
        cli_json_number(&j, "time_s", res.time_s);
        cli_json_bool(&j, "converged", res.converged);
        cli_json_number(&j, "constraint_residual", res.constraint_residual);
        cli_json_number(&j, "cost_change", res.cost_change);
        cli_json_number(&j, "path_cost", res.path_cost);
        cli_json_string(&j, "grid", grid);
        cli_json_int(&j, "time_steps", P);
        cli_json_string(&j, "device", on_gpu ? "cuda" : "cpu");
        cli_json_string(&j, "precision", precision ? "f64" : "f32");
        cli_json_string(&j, "rho0", rho0_path ? rho0_path : "(embedded example)");
        cli_json_string(&j, "rho1", rho1_path ? rho1_path : "(embedded example)");
        cli_json_string(&j, "out", out_path);
        cli_json_string(&j, "frames", frames_path);
        cli_json_string(&j, "particles", n_particles ? particles_path : NULL);
        cli_json_int(&j, "n_particles", n_particles);
        cli_json_end(&j);
    } else if (!quiet) {
        printf("advect bbot: %s, grid %s, %lld time steps, %s on %s\n",
               rho0_path ? "input densities" : "embedded example (one bump to two)", grid,
               (long long)P, precision ? "f64" : "f32", on_gpu ? "cuda" : "cpu");
        printf("  cost (W2^2, no 1/2) %.6g after %lld iterations (%s), divergence residual %.2e, "
               "mass error %.1e, %.3f s\n",
               res.cost, (long long)res.iterations, res.converged ? "converged" : "not converged",
               res.divergence_residual, res.mass_error, res.time_s);
        printf("  energy of the returned path %.6g%s\n", res.path_cost,
               res.converged ? "" : " (differs from the cost until the solve converges)");
        printf("  wrote %s and %s", out_path, frames_path);
        if (n_particles)
            printf(", and %s (%lld particles, %.3f s)", particles_path, (long long)n_particles, t_particles);
        printf("\n");
    }
    goto cleanup;

lib_error:
    code = cli_fail(CMD, cli_status_code(st), "%s", adv_context_last_error(ctx)[0]
                                                        ? adv_context_last_error(ctx)
                                                        : adv_status_string(st));
    goto cleanup;
interrupted:
    cli_fail(CMD, 0, "interrupted; no output written");
    code = 128 + cli_signal_caught();
cleanup:
    cli_outputs_abort(&outs); // no-op after a successful commit
    adv_field_destroy(field);
    adv_bbot_plan_destroy(plan);
    void *dev[] = {d0, d1, drho, dpart, dtraj};
    for (size_t k = 0; k < sizeof dev / sizeof dev[0]; ++k)
        if (dev[k]) adv_free(ctx, dev[k]);
    free(h0), free(h1), free(hrho), free(rho), free(hpart), free(xpart);
    adv_context_destroy(ctx);
done:
    cli_signals_restore();
    free(derived);
    advio_array_free(&r0);
    advio_array_free(&r1);
    return code;
}
