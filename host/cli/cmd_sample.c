/* `advect sample`: draw samples from a point cloud (a .npy/.csv file or a built-in 2-D toy
 * dataset) by advecting Gaussian noise along the exact empirical flow / diffusion field
 * (include/advect/field.h, include/advect/sampler.h), then write the samples (.npy), a picture
 * of them over the data (.png) and a summary (text, or JSON with --json).
 *
 * Order of work, so that bad input never leaves a file behind: parse and check options, load
 * and check the data, create the context, field and sampler (the library checks the method
 * against the field), run, and only then write every output through staged temporary files
 * renamed together at the end. */
#define _POSIX_C_SOURCE 200809L
#include "advect/advect.h"
#include "advect/field.h"
#include "advect/sampler.h"
#include "cli_util.h"
#include "commands.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "sample"
#define PI 3.14159265358979323846
#define SQRT2 1.41421356237309504880

static const char *const toy_names[] = {"checkerboard", "moons", "8gaussians", "spirals", "circles", NULL};
static const char *const schedule_names[] = {"linear", "cosine", "vp", "ve", NULL};
static const adv_schedule_kind schedule_kinds[] = {ADV_SCHEDULE_LINEAR, ADV_SCHEDULE_COSINE,
                                                   ADV_SCHEDULE_VP, ADV_SCHEDULE_VE};
static const char *const method_names[] = {"euler", "heun", "midpoint", "rk4", "dopri5",
                                           "ddim", "dpm2m", "sde", NULL};
static const adv_method method_values[] = {ADV_METHOD_EULER, ADV_METHOD_HEUN, ADV_METHOD_MIDPOINT,
                                           ADV_METHOD_RK4, ADV_METHOD_DOPRI5, ADV_METHOD_DDIM,
                                           ADV_METHOD_DPM2M, ADV_METHOD_SDE};
static const char *const grid_names[] = {"karras", "uniform", "cosine", NULL};
static const adv_time_grid grid_values[] = {ADV_GRID_KARRAS, ADV_GRID_UNIFORM, ADV_GRID_COSINE};
static const char *const device_names[] = {"auto", "cpu", "cuda", NULL};
static const char *const precision_names[] = {"f32", "f64", NULL};

enum { TOY_POINTS = 2000, PLOT_SIZE = 800, PLOT_MAX_POINTS = 50000, STATS_MAX_SAMPLES = 20000 };
#define DEFAULT_SDE_T0 0.05 /* the SDE's diffusion ~ 1/t is singular at t = 0 */

static void usage(FILE *f) {
    fprintf(f,
"usage: advect sample [options]\n"
"Draws samples of a point cloud by advecting Gaussian noise along its exact flow field.\n"
"With no options: the built-in 2-D checkerboard, 20000 samples, written to\n"
"advect-out/samples.npy and advect-out/samples.png, with a summary.\n"
"\n"
"data (one of):\n"
"  --data PATH          points: a .npy (float32/float64, shape (n, d)) or .csv file\n"
"  --toy NAME           checkerboard (default), moons, 8gaussians, spirals, circles\n"
"                       (%d points drawn from --seed)\n"
"sampling:\n"
"  --n N                number of samples (default 20000)\n"
"  --schedule S         linear (default), cosine, vp, ve\n"
"  --sigma S            source scale: noise N(0, S^2 I) (default 1)\n"
"  --method M           euler, heun, midpoint, rk4, dopri5, ddim, dpm2m (default), sde\n"
"  --steps K            time steps (default 20; dopri5: snapshot grid only)\n"
"  --grid G             time grid: karras (default; EDM spacing, dense near the data),\n"
"                       uniform, cosine\n"
"  --atol A, --rtol R   dopri5 tolerances (default 1e-6)\n"
"  --eta E              sde noise scale (default 1; 0 = the ODE)\n"
"  --t-start T0         start time (default 0; sde: %g)\n"
"  --t-end T1           end time (default 1)\n"
"  --seed S             seed of the noise and of the toy data (default 0)\n"
"  --device D           auto (default), cpu, cuda\n"
"  --precision P        f32 (default), f64\n"
"outputs:\n"
"  --out PATH.npy       samples, shape (N, d) (default advect-out/samples.npy)\n"
"  --plot PATH.png      samples (red) over data (blue); d > 2: first two principal\n"
"                       components (default: --out with .png)\n"
"  --image-shape HxW    plot samples as a grid of HxW grayscale images (H*W = d)\n"
"  --trajectory PATH.npy  snapshots, shape (S, N, d), S = 1 + steps/save-every\n"
"  --save-every K       snapshot every K steps; K must divide --steps, so that the\n"
"                       last snapshot is the final state (default: the largest\n"
"                       divisor of --steps up to steps/10)\n"
"  --checkpoint PATH    save the run state regularly (and on Ctrl-C)\n"
"  --resume PATH        continue a run from a checkpoint (same options; it may be\n"
"                       the --checkpoint file)\n"
"  --json               print the summary as JSON on stdout\n"
"  --quiet              no progress bar, no text summary\n"
"--out and --trajectory must end in .npy, --plot in .png. No two of --out, --plot,\n"
"--trajectory, --checkpoint may name the same file, nor may any of them be --data or\n"
"--resume; an existing one must be a regular file. --image-shape draws up to 64\n"
"samples, fewer when wide images would make the picture too large.\n"
"exit status: 0 success, 2 bad usage or input, 1 internal failure, 128+N stopped by\n"
"signal N (Ctrl-C: 130)\n",
            TOY_POINTS, DEFAULT_SDE_T0);
}

/* ---- toy datasets: deterministic functions of the seed ---- */

typedef struct toy_rng {
    uint64_t s;
} toy_rng;

static uint64_t toy_next(toy_rng *r) { // splitmix64
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double toy_uniform(toy_rng *r) { return (double)(toy_next(r) >> 11) * 0x1.0p-53; }

static double toy_normal(toy_rng *r) { // Box-Muller
    double u = 1.0 - toy_uniform(r), v = toy_uniform(r);
    return sqrt(-2 * log(u)) * cos(2 * PI * v);
}

/* Fills x (n x 2) with the named dataset (shapes after the usual 2-D flow benchmarks; every
 * set spans roughly [-4, 4]^2, comparable to the unit source noise). */
static void make_toy(int toy, uint64_t seed, int64_t n, double *x) {
    toy_rng r = {seed ^ 0x5EEDDA7Aull};
    for (int64_t i = 0; i < n; ++i) {
        double a, b;
        switch (toy) {
        case 0: { // checkerboard: 8 squares of side 2 in [-4, 4]^2
            double x1 = 4 * toy_uniform(&r) - 2;
            double x2 = toy_uniform(&r) - 2 * (double)(toy_next(&r) & 1);
            x2 += fmod(floor(x1), 2) == 0 ? 0 : 1;
            a = 2 * x1, b = 2 * x2;
            break;
        }
        case 1: { // two interleaved half circles
            double t = PI * toy_uniform(&r);
            int lower = (int)(toy_next(&r) & 1);
            double px = lower ? 1 - cos(t) : cos(t), py = lower ? 0.5 - sin(t) : sin(t);
            a = 2 * (px - 0.5) + 0.1 * toy_normal(&r);
            b = 2 * (py - 0.25) + 0.1 * toy_normal(&r);
            break;
        }
        case 2: { // eight Gaussians on a circle of radius 2 sqrt(2)
            double ang = PI / 4 * (double)(toy_next(&r) % 8);
            a = 2 * SQRT2 * cos(ang) + 0.35 * toy_normal(&r);
            b = 2 * SQRT2 * sin(ang) + 0.35 * toy_normal(&r);
            break;
        }
        case 3: { // two spirals
            double t = sqrt(toy_uniform(&r)) * 3 * PI;
            double s = (toy_next(&r) & 1) ? 1 : -1;
            a = s * (-cos(t) * t) / 2.5 + 0.1 * toy_normal(&r);
            b = s * (sin(t) * t) / 2.5 + 0.1 * toy_normal(&r);
            break;
        }
        default: { // two concentric circles, radii 3 and 1.5
            double t = 2 * PI * toy_uniform(&r);
            double rad = (toy_next(&r) & 1) ? 3 : 1.5;
            a = rad * cos(t) + 0.08 * toy_normal(&r);
            b = rad * sin(t) + 0.08 * toy_normal(&r);
            break;
        }
        }
        x[2 * i] = a;
        x[2 * i + 1] = b;
    }
}

/* ---- options ---- */

typedef struct sample_opts {
    const char *data_path;
    int toy;
    int64_t n;
    int schedule;
    double sigma;
    int method, grid;
    int64_t steps;
    double atol, rtol, eta, t0, t1;
    int atol_set, rtol_set, eta_set, t0_set, steps_set;
    uint64_t seed;
    int device, precision;
    const char *out, *plot, *trajectory, *checkpoint, *resume;
    char *plot_owned; /* the default plot path (derived from --out), freed by the caller */
    int64_t save_every;
    int json, quiet;
    int img_h, img_w;
} sample_opts;

/* --out with .png instead of .npy (--out always ends in .npy, in any case). */
static char *default_plot_path(const char *out) {
    size_t len = strlen(out);
    char *p = malloc(len + 5);
    if (!p) return NULL;
    memcpy(p, out, len + 1);
    if (cli_has_suffix(p, ".npy")) p[len - 4] = 0;
    strcat(p, ".png");
    return p;
}

/* The default --save-every: about ten snapshots, but always a divisor of the steps, so the
 * last snapshot is the final state (the largest divisor up to steps/10; 1 for a prime). */
static int64_t default_save_every(int64_t steps) {
    int64_t k = steps >= 10 ? steps / 10 : 1;
    while (steps % k) --k;
    return k;
}

static int parse_options(int argc, char **argv, sample_opts *o) {
    memset(o, 0, sizeof *o);
    o->toy = -1;
    o->n = 20000;
    o->sigma = 1;
    // Defaults: DPM-Solver++(2M) on 20 Karras steps. One interaction sum per step, and the
    // Karras grid spends its steps near t = 1, where the posterior collapses onto single data
    // points: the bare command (20000 samples, 2000 points) takes about a second of CPU and
    // lands every sample on the data. A uniform grid with the same budget leaves most
    // samples between points (the last step starts while several points share the posterior).
    o->method = 6; // dpm2m
    o->steps = 20;
    o->atol = o->rtol = 1e-6;
    o->eta = 1;
    o->t1 = 1;
    cli_args a;
    cli_args_init(&a, CMD, argc, argv);
    while (cli_next(&a)) {
        const char *v;
        if (cli_option(&a, "--data", &v)) o->data_path = v;
        else if (cli_option(&a, "--toy", &v)) cli_parse_choice(&a, "--toy", v, toy_names, &o->toy);
        else if (cli_option(&a, "--n", &v)) cli_parse_i64(&a, "--n", v, 1, INT64_MAX, &o->n);
        else if (cli_option(&a, "--schedule", &v)) cli_parse_choice(&a, "--schedule", v, schedule_names, &o->schedule);
        else if (cli_option(&a, "--sigma", &v)) cli_parse_double(&a, "--sigma", v, 0, INFINITY, 1, &o->sigma);
        else if (cli_option(&a, "--method", &v)) cli_parse_choice(&a, "--method", v, method_names, &o->method);
        else if (cli_option(&a, "--grid", &v)) cli_parse_choice(&a, "--grid", v, grid_names, &o->grid);
        else if (cli_option(&a, "--steps", &v)) {
            o->steps_set = 1;
            cli_parse_i64(&a, "--steps", v, 1, 100000000, &o->steps);
        } else if (cli_option(&a, "--atol", &v)) {
            o->atol_set = 1;
            cli_parse_double(&a, "--atol", v, 0, INFINITY, 1, &o->atol);
        } else if (cli_option(&a, "--rtol", &v)) {
            o->rtol_set = 1;
            cli_parse_double(&a, "--rtol", v, 0, INFINITY, 1, &o->rtol);
        } else if (cli_option(&a, "--eta", &v)) {
            o->eta_set = 1;
            cli_parse_double(&a, "--eta", v, 0, INFINITY, 0, &o->eta);
        } else if (cli_option(&a, "--t-start", &v)) {
            o->t0_set = 1;
            cli_parse_double(&a, "--t-start", v, 0, 1, 0, &o->t0);
        } else if (cli_option(&a, "--t-end", &v)) cli_parse_double(&a, "--t-end", v, 0, 1, 1, &o->t1);
        else if (cli_option(&a, "--seed", &v)) cli_parse_u64(&a, "--seed", v, &o->seed);
        else if (cli_option(&a, "--device", &v)) cli_parse_choice(&a, "--device", v, device_names, &o->device);
        else if (cli_option(&a, "--precision", &v)) cli_parse_choice(&a, "--precision", v, precision_names, &o->precision);
        else if (cli_option(&a, "--out", &v)) o->out = v;
        else if (cli_option(&a, "--plot", &v)) o->plot = v;
        else if (cli_option(&a, "--trajectory", &v)) o->trajectory = v;
        else if (cli_option(&a, "--save-every", &v)) cli_parse_i64(&a, "--save-every", v, 1, INT64_MAX, &o->save_every);
        else if (cli_option(&a, "--checkpoint", &v)) o->checkpoint = v;
        else if (cli_option(&a, "--resume", &v)) o->resume = v;
        else if (cli_option(&a, "--image-shape", &v)) cli_parse_hxw(&a, "--image-shape", v, &o->img_h, &o->img_w);
        else if (cli_flag(&a, "--json")) o->json = 1;
        else if (cli_flag(&a, "--quiet")) o->quiet = 1;
        else cli_unknown(&a);
    }
    if (a.bad) return CLI_USAGE;
    adv_method m = method_values[o->method];
    // Options that only one method reads are errors elsewhere: silently ignoring them would
    // hide a mistake in the command.
    if (o->data_path && o->toy >= 0) return cli_fail(CMD, CLI_USAGE, "use either --data or --toy, not both");
    if ((o->atol_set || o->rtol_set) && m != ADV_METHOD_DOPRI5)
        return cli_fail(CMD, CLI_USAGE, "--atol/--rtol apply to --method dopri5 only");
    if (o->eta_set && m != ADV_METHOD_SDE) return cli_fail(CMD, CLI_USAGE, "--eta applies to --method sde only");
    if (m == ADV_METHOD_SDE && !o->t0_set) o->t0 = DEFAULT_SDE_T0;
    if (m == ADV_METHOD_SDE && o->t0 <= 0)
        return cli_fail(CMD, CLI_USAGE, "--method sde needs --t-start > 0 (its diffusion is singular at t = 0)");
    if (!(o->t0 < o->t1))
        return cli_fail(CMD, CLI_USAGE, "--t-start (%g) must be smaller than --t-end (%g)", o->t0, o->t1);
    if (o->save_every && !o->trajectory) return cli_fail(CMD, CLI_USAGE, "--save-every needs --trajectory");
    if (o->trajectory && o->resume)
        return cli_fail(CMD, CLI_USAGE, "--trajectory cannot be combined with --resume (the snapshots "
                                        "taken before the checkpoint are not in it)");
    if (o->trajectory && !o->save_every) o->save_every = default_save_every(o->steps);
    // A trajectory whose snapshots do not reach the last step would silently lack the
    // final state (the sampler snapshots every save_every-th step only).
    if (o->trajectory && o->steps % o->save_every != 0)
        return cli_fail(CMD, CLI_USAGE, "--save-every must divide --steps (got %lld and %lld), or the "
                        "trajectory would end before the final state", (long long)o->save_every,
                        (long long)o->steps);
    if (o->toy < 0 && !o->data_path) o->toy = 0;
    if (!o->out) o->out = "advect-out/samples.npy";
    // .npy bytes under another extension would mislead every reader of the file.
    if (!cli_has_suffix(o->out, ".npy"))
        return cli_fail(CMD, CLI_USAGE, "--out %s: the samples are written as .npy; the name must end in .npy",
                        o->out);
    if (o->trajectory && !cli_has_suffix(o->trajectory, ".npy"))
        return cli_fail(CMD, CLI_USAGE, "--trajectory %s: the snapshots are written as .npy; the name must "
                        "end in .npy", o->trajectory);
    if (o->plot && !cli_has_suffix(o->plot, ".png"))
        return cli_fail(CMD, CLI_USAGE, "--plot %s: the picture is written as PNG; the name must end in .png",
                        o->plot);
    if (!o->plot) {
        o->plot = o->plot_owned = default_plot_path(o->out);
        if (!o->plot) return cli_fail(CMD, CLI_INTERNAL, "out of memory");
    }
    // Only now is every path final (the plot's default comes from --out). The checkpoint is
    // written during the run (and on Ctrl-C), so it must not be an input or another output;
    // --resume may be the checkpoint it continues.
    const cli_path paths[] = {
        {"--data", o->data_path, 1, NULL},   {"--resume", o->resume, 1, "--checkpoint"},
        {"--out", o->out, 0, NULL},          {"--plot", o->plot, 0, NULL},
        {"--trajectory", o->trajectory, 0, NULL}, {"--checkpoint", o->checkpoint, 0, NULL},
    };
    return cli_check_paths(CMD, paths, (int)(sizeof paths / sizeof paths[0]));
}

/* ---- the run ---- */

/* Streams trajectory snapshots into a staged .npy file as the sampler produces them, so the
 * (S, N, d) array never has to fit in memory. */
typedef struct traj_writer {
    FILE *f;
    size_t header, item;
    int64_t n, d, count;
    int failed;
} traj_writer;

static int on_snapshot(void *user, int64_t snapshot, int64_t step, double t, int64_t first,
                       int64_t count, const void *z) {
    (void)step, (void)t;
    traj_writer *w = user;
    off_t off = (off_t)(w->header + ((size_t)snapshot * (size_t)w->n + (size_t)first) * (size_t)w->d * w->item);
    size_t elems = (size_t)count * (size_t)w->d;
    if (fseeko(w->f, off, SEEK_SET) != 0 || fwrite(z, w->item, elems, w->f) != elems) {
        w->failed = 1;
        return 1;
    }
    w->count += count;
    return 0;
}

static double elem(const void *z, adv_precision p, size_t i) {
    return p == ADV_FLOAT64 ? ((const double *)z)[i] : ((const float *)z)[i];
}

/* Mean distance to the nearest data point, and the fraction within tol, over m samples
 * spread evenly through the n (an exact-field sampler memorises: samples land on data). */
static void nn_stats(const double *data, int64_t nd, int d, const void *z, adv_precision p,
                     int64_t n, int64_t m, double tol, double *mean_dist, double *frac_on) {
    double sum = 0;
    int64_t on = 0;
#pragma omp parallel for reduction(+ : sum, on) schedule(static)
    for (int64_t k = 0; k < m; ++k) {
        size_t row = (size_t)(k * (n / m) + (k * (n % m)) / m);
        double best = INFINITY;
        for (int64_t i = 0; i < nd; ++i) {
            double s = 0;
            for (int j = 0; j < d && s < best; ++j) {
                double diff = elem(z, p, row * (size_t)d + (size_t)j) - data[(size_t)i * d + j];
                s += diff * diff;
            }
            if (s < best) best = s;
        }
        best = sqrt(best);
        sum += best;
        on += best <= tol;
    }
    *mean_dist = sum / (double)m;
    *frac_on = (double)on / (double)m;
}

/* Root-mean-square distance of the data to their mean (the data's scale). */
static double data_radius(const double *x, int64_t n, int d) {
    double r = 0;
    for (int j = 0; j < d; ++j) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; ++i) mean += x[(size_t)i * d + j];
        mean /= (double)n;
        for (int64_t i = 0; i < n; ++i) {
            double c = x[(size_t)i * d + j] - mean;
            var += c * c;
        }
        r += var / (double)n;
    }
    return sqrt(r);
}

/* The --image-shape picture's layout: up to 64 tiles, 8 per row, small images zoomed to
 * about 48 pixels; fewer tiles when wide images would exceed the PNG limits (0: not even
 * one fits). */
static int64_t tile_layout(const sample_opts *o, int64_t n, int *cols, int *scale) {
    int side = o->img_h > o->img_w ? o->img_h : o->img_w;
    *scale = side >= 48 ? 1 : (48 + side - 1) / side;
    *cols = 8;
    return advio_tiles_fit(n < 64 ? n : 64, o->img_h, o->img_w, *scale, cols);
}

/* The picture: scatter of samples over data, or a grid of sample images. */
static adv_status render_plot(const sample_opts *o, const double *data, int64_t nd, int d,
                              const void *z, adv_precision p, int64_t n, advio_image *img, char *msg,
                              size_t ms) {
    if (o->img_h) {
        int cols, scale;
        int64_t tiles = tile_layout(o, n, &cols, &scale);
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < (size_t)nd * (size_t)d; ++i) lo = fmin(lo, data[i]), hi = fmax(hi, data[i]);
        if (!(hi > lo)) { // constant data: a range of their magnitude (lo + 1 == lo from 2^53)
            double w = fmax(1.0, 0.5 * fabs(lo));
            if (isfinite(lo + w)) hi = lo + w;
            else lo -= w;
        }
        double *t = malloc(sizeof(double) * (size_t)tiles * (size_t)d);
        if (!t) return advio_fail(msg, ms, ADV_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < (size_t)tiles * (size_t)d; ++i) t[i] = elem(z, p, i);
        adv_status s = advio_render_tiles(t, tiles, o->img_h, o->img_w, cols, lo, hi, scale, img, msg, ms);
        free(t);
        return s;
    }
    int64_t ms_ = n < PLOT_MAX_POINTS ? n : PLOT_MAX_POINTS, md = nd < PLOT_MAX_POINTS ? nd : PLOT_MAX_POINTS;
    double *s = malloc(sizeof(double) * (size_t)ms_ * (size_t)d);
    double *dd = malloc(sizeof(double) * (size_t)md * (size_t)d);
    if (!s || !dd) {
        free(s), free(dd);
        return advio_fail(msg, ms, ADV_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int64_t k = 0; k < ms_; ++k) {
        size_t row = (size_t)(k * (n / ms_) + (k * (n % ms_)) / ms_);
        for (int j = 0; j < d; ++j) s[(size_t)k * d + j] = elem(z, p, row * (size_t)d + (size_t)j);
    }
    for (int64_t k = 0; k < md; ++k) {
        size_t row = (size_t)(k * (nd / md) + (k * (nd % md)) / md);
        memcpy(dd + (size_t)k * d, data + row * (size_t)d, sizeof(double) * (size_t)d);
    }
    adv_status st = advio_render_scatter(dd, md, s, ms_, d, PLOT_SIZE, PLOT_SIZE, img, msg, ms);
    free(s), free(dd);
    return st;
}

int advect_cmd_sample(int argc, char **argv) {
    for (int i = 0; i < argc; ++i)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLI_OK;
        }
    sample_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc != CLI_OK) {
        free(o.plot_owned);
        return rc;
    }

    char msg[1024] = "";
    advio_array pts = {0};
    adv_context *ctx = NULL;
    adv_field *field = NULL;
    adv_sampler *sampler = NULL;
    void *z = NULL, *dev_data = NULL, *conv = NULL;
    const char *plot_path = o.plot;
    advio_image img = {0};
    cli_outputs outs;
    cli_outputs_init(&outs);
    const adv_precision prec = o.precision ? ADV_FLOAT64 : ADV_FLOAT32;
    const size_t item = prec == ADV_FLOAT64 ? 8 : 4;
    const adv_method method = method_values[o.method];

    // Data.
    if (o.data_path) {
        adv_status s = advio_read_points(o.data_path, &pts, msg, sizeof msg);
        if (s != ADV_OK) {
            rc = cli_fail(CMD, cli_status_code(s), "%s", msg);
            goto done;
        }
    } else {
        pts.dtype = ADV_FLOAT64;
        pts.ndim = 2;
        pts.shape[0] = TOY_POINTS;
        pts.shape[1] = 2;
        pts.count = 2 * TOY_POINTS;
        pts.data = malloc(sizeof(double) * pts.count);
        if (!pts.data) {
            rc = cli_fail(CMD, CLI_INTERNAL, "out of memory");
            goto done;
        }
        make_toy(o.toy, o.seed, TOY_POINTS, pts.data);
    }
    const int64_t nd = pts.shape[0];
    const int d = (int)pts.shape[1];
    const double *data = pts.data;
    if (o.img_h && (int64_t)o.img_h * o.img_w != d) {
        rc = cli_fail(CMD, CLI_USAGE, "--image-shape %dx%d has %lld pixels but the data have d = %d",
                      o.img_h, o.img_w, (long long)o.img_h * o.img_w, d);
        goto done;
    }
    {
        int cols, scale;
        if (o.img_h && tile_layout(&o, o.n, &cols, &scale) == 0) {
            rc = cli_fail(CMD, CLI_USAGE, "--image-shape %dx%d: an image cannot be drawn more than %d "
                          "pixels wide or tall; without --image-shape the plot is a scatter plot",
                          o.img_h, o.img_w, ADVIO_IMAGE_MAX_SIDE - 4);
            goto done;
        }
    }
    // The samples are one host array of n x d values: a size beyond the address space or
    // the machine's memory is a bad --n, not an internal failure of the allocation.
    if ((uint64_t)o.n > SIZE_MAX / item / (uint64_t)d) {
        rc = cli_fail(CMD, CLI_USAGE, "--n %lld samples of dimension %d do not fit in memory",
                      (long long)o.n, d);
        goto done;
    }
    {
        const uint64_t bytes = (uint64_t)o.n * (uint64_t)d * item, mem = cli_physical_memory();
        if (mem && bytes > mem) {
            rc = cli_fail(CMD, CLI_USAGE, "--n %lld: %lld samples of dimension %d take %.3g GB, more than "
                          "this machine's memory (%.3g GB)", (long long)o.n, (long long)o.n, d,
                          (double)bytes / 1e9, (double)mem / 1e9);
            goto done;
        }
    }

    // Context.
    {
        adv_context_opts co;
        adv_context_default_opts(&co);
        co.backend = o.device == 1 ? ADV_BACKEND_CPU : o.device == 2 ? ADV_BACKEND_CUDA : ADV_BACKEND_AUTO;
        adv_status s = adv_context_create(&co, &ctx);
        if (s != ADV_OK) {
            char reason[256] = "";
            int count = 0;
            adv_cuda_device_count(&count, reason, sizeof reason);
            if (s == ADV_ERR_BACKEND_UNAVAILABLE)
                rc = cli_fail(CMD, CLI_USAGE, "--device cuda: no usable CUDA device (%s)",
                              reason[0] ? reason : adv_status_string(s));
            else
                rc = cli_fail(CMD, CLI_INTERNAL, "cannot create a context: %s", adv_status_string(s));
            goto done;
        }
    }
    const int on_gpu = adv_context_backend(ctx) == ADV_BACKEND_CUDA;

    // Field: the data in the run's precision, in the context's memory.
    {
        const void *host_data = data;
        if (prec == ADV_FLOAT32) {
            conv = malloc(sizeof(float) * pts.count);
            if (!conv) {
                rc = cli_fail(CMD, CLI_INTERNAL, "out of memory");
                goto done;
            }
            const size_t i = cli_first_beyond_float32(data, pts.count);
            if (i < pts.count) {
                rc = cli_fail(CMD, CLI_USAGE, "--data %s: value %g (row %zu, column %zu) exceeds the "
                              "float32 range; use --precision f64", o.data_path, data[i],
                              i / (size_t)d, i % (size_t)d);
                goto done;
            }
            for (size_t k = 0; k < pts.count; ++k) ((float *)conv)[k] = (float)data[k];
            host_data = conv;
        }
        const void *field_data = host_data;
        adv_status s = ADV_OK;
        if (on_gpu) {
            s = adv_malloc(ctx, pts.count * item, &dev_data);
            if (s == ADV_OK) s = adv_memcpy(ctx, dev_data, host_data, pts.count * item, ADV_COPY_HOST_TO_CONTEXT);
            field_data = dev_data;
        }
        adv_empirical_opts eo;
        adv_empirical_default_opts(&eo);
        eo.sigma = o.sigma;
        adv_schedule_default(&eo.schedule, schedule_kinds[o.schedule]);
        if (s == ADV_OK) s = adv_field_create_empirical(ctx, prec, field_data, NULL, nd, d, &eo, &field);
        if (s != ADV_OK) {
            rc = cli_fail(CMD, cli_status_code(s), "cannot create the field: %s",
                          adv_context_last_error(ctx)[0] ? adv_context_last_error(ctx) : adv_status_string(s));
            goto done;
        }
        free(conv); // the field keeps its own copy (copy_data = 1)
        conv = NULL;
        if (dev_data) adv_free(ctx, dev_data);
        dev_data = NULL;
    }

    // Sampler.
    traj_writer tw = {0};
    adv_sampler_opts so;
    adv_sampler_default_opts(&so);
    so.method = method;
    so.steps = o.steps;
    so.grid = grid_values[o.grid];
    so.t0 = o.t0;
    so.t1 = o.t1;
    so.atol = o.atol;
    so.rtol = o.rtol;
    so.eta = o.eta;
    so.seed = o.seed;
    so.init_from_source = 1;
    so.particles_on_host = 1; // CUDA: particles stay in host memory, streamed in chunks
    int64_t snapshots = 0;
    if (o.trajectory) {
        so.save_every = o.save_every;
        so.snapshot = on_snapshot;
        so.snapshot_user = &tw;
        snapshots = 1 + o.steps / o.save_every;
        if ((uint64_t)snapshots > SIZE_MAX / item / (uint64_t)d / (uint64_t)o.n) {
            rc = cli_fail(CMD, CLI_USAGE, "--trajectory: %lld snapshots of %lld x %d values are too large",
                          (long long)snapshots, (long long)o.n, d);
            goto done;
        }
    }
    {
        adv_status s = adv_sampler_create(field, &so, &sampler);
        if (s != ADV_OK) {
            rc = cli_fail(CMD, cli_status_code(s), "%s",
                          adv_context_last_error(ctx)[0] ? adv_context_last_error(ctx) : adv_status_string(s));
            goto done;
        }
    }
    z = malloc((size_t)o.n * (size_t)d * item);
    if (!z) {
        rc = cli_fail(CMD, CLI_INTERNAL, "out of memory: %lld samples of dimension %d", (long long)o.n, d);
        goto done;
    }
    // From the first staged file on, a termination signal must not kill the process before
    // it has removed its temporary files (the run checks cli_signal_caught).
    cli_signals_catch();
    if (o.trajectory) {
        tw.f = cli_output_open(&outs, o.trajectory, msg, sizeof msg);
        int64_t shape[3] = {snapshots, o.n, d};
        if (!tw.f || advio_npy_write_header(tw.f, prec, 3, shape, &tw.header, msg, sizeof msg) != ADV_OK) {
            rc = cli_fail(CMD, CLI_USAGE, "--trajectory: %s", msg);
            goto done;
        }
        tw.item = item;
        tw.n = o.n;
        tw.d = d;
    }

    // The checkpoint's directory, made like the outputs' (the library writes the file itself).
    if (o.checkpoint && cli_outputs_make_parents(&outs, o.checkpoint, msg, sizeof msg) != ADV_OK) {
        rc = cli_fail(CMD, CLI_USAGE, "--checkpoint: %s", msg);
        goto done;
    }

    // Run (or resume), in small advances: progress bar, checkpoints, Ctrl-C.
    cli_progress bar;
    cli_progress_init(&bar, "sampling", o.quiet);
    adv_sampler_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    double t_start = cli_now();
    {
        adv_status s = o.resume ? adv_sampler_checkpoint_load(sampler, o.resume, o.n, z)
                                : adv_sampler_begin(sampler, o.n, z);
        if (s != ADV_OK) {
            const char *why = adv_context_last_error(ctx)[0] ? adv_context_last_error(ctx) : adv_status_string(s);
            if (o.resume)
                rc = cli_fail(CMD, cli_status_code(s), "--resume '%s': %s", o.resume, why);
            else
                rc = cli_fail(CMD, cli_status_code(s), "%s", why);
            goto done;
        }
        int finished = 0;
        double last_saved = 0;
        if (o.resume) adv_sampler_progress(sampler, &last_saved);
        while (!finished) {
            s = adv_sampler_advance(sampler, 1, &finished, &st);
            if (s != ADV_OK) break;
            double frac = 0;
            adv_sampler_progress(sampler, &frac);
            cli_progress_update(&bar, frac);
            if (cli_signal_caught()) break;
            // A checkpoint at every tenth of the run: bounded loss, negligible cost.
            if (o.checkpoint && !finished && frac - last_saved >= 0.1) {
                s = adv_sampler_checkpoint_save(sampler, o.checkpoint);
                if (s != ADV_OK) break;
                last_saved = frac;
            }
        }
        cli_progress_done(&bar);
        if (s != ADV_OK) {
            const char *why = adv_context_last_error(ctx)[0] ? adv_context_last_error(ctx) : adv_status_string(s);
            if (tw.failed)
                rc = cli_fail(CMD, CLI_INTERNAL, "writing the trajectory failed (%s)", why);
            else
                rc = cli_fail(CMD, cli_status_code(s), "sampling failed: %s", why);
            goto done;
        }
        if (cli_signal_caught()) {
            if (o.checkpoint && adv_sampler_checkpoint_save(sampler, o.checkpoint) == ADV_OK)
                cli_fail(CMD, 0, "interrupted; checkpoint saved, continue with --resume %s", o.checkpoint);
            else
                cli_fail(CMD, 0, "interrupted; no output written");
            rc = 128 + cli_signal_caught();
            goto done;
        }
    }
    const double elapsed = cli_now() - t_start;
    if (o.trajectory && tw.count != snapshots * o.n) {
        rc = cli_fail(CMD, CLI_INTERNAL, "the sampler delivered %lld of %lld snapshot rows",
                      (long long)tw.count, (long long)(snapshots * o.n));
        goto done;
    }

    // Statistics: distance of the samples to the data.
    double radius = data_radius(data, nd, d), tol = 1e-3 * (radius > 0 ? radius : 1);
    int64_t m = (int64_t)(1e9 / ((double)nd * d));
    if (m > STATS_MAX_SAMPLES) m = STATS_MAX_SAMPLES;
    if (m < 100) m = 100;
    if (m > o.n) m = o.n;
    double mean_nn, frac_on;
    nn_stats(data, nd, d, z, prec, o.n, m, tol, &mean_nn, &frac_on);
    // The schedule at the run's ends: VP's a is small but not 0 at t = 0 (the start is not
    // pure noise) and VE's b is sigma_min, not 0, at t = 1 (the samples keep that much
    // noise): said in the outputs, since either changes what the run's ends mean.
    double a_start = 0.0, b_start = 1.0, b_end = 0.0;
    {
        adv_field_info info = {.struct_size = sizeof info};
        if (adv_field_get_info(field, &info) == ADV_OK) { // the field's own schedule
            adv_schedule_eval(&info.schedule, o.t0, &a_start, &b_start, NULL, NULL);
            adv_schedule_eval(&info.schedule, o.t1, NULL, &b_end, NULL, NULL);
        }
    }

    // Outputs, staged and renamed together.
    {
        int64_t shape[2] = {o.n, d};
        adv_status s = cli_write_npy(&outs, o.out, prec, 2, shape, z, msg, sizeof msg);
        if (s != ADV_OK) {
            rc = cli_fail(CMD, cli_status_code(s), "--out: %s", msg);
            goto done;
        }
        s = render_plot(&o, data, nd, d, z, prec, o.n, &img, msg, sizeof msg);
        if (s == ADV_OK) s = cli_write_png(&outs, plot_path, &img, msg, sizeof msg);
        if (s != ADV_OK) {
            rc = cli_fail(CMD, cli_status_code(s), "--plot: %s", msg);
            goto done;
        }
        if (cli_signal_caught()) { // after the run: the outputs are dropped all the same
            cli_fail(CMD, 0, "interrupted; no output written");
            rc = 128 + cli_signal_caught();
            goto done;
        }
        s = cli_outputs_commit(&outs, msg, sizeof msg);
        if (s != ADV_OK) {
            rc = cli_fail(CMD, cli_status_code(s), "%s", msg);
            goto done;
        }
    }

    // Summary.
    const char *dataset = o.data_path ? o.data_path : toy_names[o.toy];
    const char *device = on_gpu ? "cuda" : "cpu";
    double pps = elapsed > 0 ? (double)o.n / elapsed : 0;
    if (o.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_int(&j, "n", o.n);
        cli_json_int(&j, "d", d);
        cli_json_string(&j, "method", method_names[o.method]);
        cli_json_int(&j, "steps", st.steps);
        cli_json_string(&j, "device", device);
        cli_json_string(&j, "precision", precision_names[o.precision]);
        cli_json_number(&j, "time_s", elapsed);
        cli_json_number(&j, "particles_per_s", pps);
        cli_json_number(&j, "mean_nn_distance", mean_nn);
        cli_json_number(&j, "fraction_on_data", frac_on);
        cli_json_int(&j, "evaluations", st.evaluations);
        cli_json_string(&j, "out", o.out);
        cli_json_string(&j, "plot", plot_path);
        cli_json_string(&j, "trajectory", o.trajectory);
        cli_json_string(&j, "data", dataset);
        cli_json_int(&j, "n_data", nd);
        cli_json_string(&j, "schedule", schedule_names[o.schedule]);
        cli_json_number(&j, "a_start", a_start);
        cli_json_number(&j, "b_end", b_end);
        cli_json_string(&j, "grid", grid_names[o.grid]);
        cli_json_number(&j, "sigma", o.sigma);
        cli_json_number(&j, "t_start", o.t0);
        cli_json_number(&j, "t_end", o.t1);
        cli_json_uint(&j, "seed", o.seed);
        cli_json_int(&j, "particle_evaluations", st.particle_evaluations);
        cli_json_int(&j, "rejected", st.rejected);
        cli_json_int(&j, "failed", st.failed);
        cli_json_number(&j, "on_data_tolerance", tol);
        cli_json_int(&j, "stats_samples", m);
        cli_json_end(&j);
    } else if (!o.quiet) {
        printf("advect sample: %lld samples of %s (%lld points, d = %d)\n", (long long)o.n, dataset,
               (long long)nd, d);
        printf("  method %s, %lld steps (%s grid), schedule %s, sigma %g, t %g -> %g, %s %s\n",
               method_names[o.method], (long long)st.steps, grid_names[o.grid], schedule_names[o.schedule],
               o.sigma, o.t0, o.t1, device, precision_names[o.precision]);
        if (o.t0 == 0.0 && a_start > 0.0)
            printf("  schedule %s: a = %.3g at t = 0, not 0: the start is the data scaled by a "
                   "plus noise of scale sigma b = %.3g, not pure noise\n",
                   schedule_names[o.schedule], a_start, o.sigma * b_start);
        if (o.t1 == 1.0 && b_end > 0.0)
            printf("  schedule %s: b = %.3g at t = 1, not 0: the samples keep noise of scale "
                   "sigma b = %.3g around the data\n", schedule_names[o.schedule], b_end,
                   o.sigma * b_end);
        printf("  time %.3f s, %.4g particles/s, %lld field evaluations\n", elapsed, pps,
               (long long)st.evaluations);
        if (st.failed) printf("  %lld particles stopped early (dopri5 step limits)\n", (long long)st.failed);
        printf("  mean distance to the nearest data point %.3g; %.1f%% of samples on a data point "
               "(within %.2g)%s\n",
               mean_nn, 100 * frac_on, tol, m < o.n ? " [estimated on a subset]" : "");
        printf("  wrote %s, %s%s%s\n", o.out, plot_path, o.trajectory ? ", " : "",
               o.trajectory ? o.trajectory : "");
    }
    rc = CLI_OK;

done:
    cli_outputs_abort(&outs); // no-op after a successful commit
    cli_signals_restore();    // only now: a signal before the abort would leave the files
    advio_image_free(&img);
    free(o.plot_owned);
    free(z);
    free(conv);
    if (sampler) adv_sampler_destroy(sampler);
    if (field) adv_field_destroy(field);
    if (dev_data) adv_free(ctx, dev_data);
    if (ctx) adv_context_destroy(ctx);
    advio_array_free(&pts);
    return rc;
}
