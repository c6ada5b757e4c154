/* Unit tests of the Poisson plan on the CPU backend (spec math.md §4, oracle O11):
 *  - the naive stencil of tests/common/poisson_ref.h maps each discrete eigenfunction
 *    (cos(πk(i+½)/N) Neumann, sin(π(k+1)(i+½)/N) Dirichlet, cos/sin(2πki/N) periodic, and
 *    products of them in several dimensions) to its closed-form eigenvalue, and the solver
 *    inverts it: solve(λ v) = v;
 *  - manufactured solutions: random u, f = (c - Δ_h) u by the stencil, solve(f) = u to the
 *    tolerance of poisson_ref.h, for every boundary condition, mixed per axis, dims 1-4,
 *    odd/even/unit sizes, c > 0 and c = 0, both precisions, both FFTW planning efforts;
 *  - zero-mean handling, batches, in-place solves, plan reuse, threads;
 *  - invalid arguments: exact status codes, and u untouched;
 *  - the pair maps of kernels/common/poisson_math.h (the twiddles both backends use) against
 *    the naive DCT-II / DST-II / DHT sums, for one real line (the CUDA form) and for two real
 *    lines packed as one complex line (the CPU form), forward and inverse.
 * The conformance suite (tests/conformance/poisson.c) repeats the manufactured solutions on
 * every backend. */
#include "poisson_ref.h"
#include "test_util.h"

#include "common/poisson_math.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static adv_context *cpu_context(int threads) {
    adv_context_opts opts;
    adv_context_default_opts(&opts);
    opts.backend = ADV_BACKEND_CPU;
    opts.cpu_threads = threads;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&opts, &ctx), ADV_OK);
    return ctx;
}

static adv_poisson_desc make_desc(adv_precision p, int ndim, const int64_t *shape,
                                  const double *h, const adv_boundary *bc, double c) {
    adv_poisson_desc d;
    cr_assert_eq(adv_poisson_default_desc(&d), ADV_OK);
    d.precision = p;
    d.ndim = ndim;
    for (int a = 0; a < ndim; ++a) {
        d.shape[a] = shape[a];
        d.spacing[a] = h[a];
        d.bc[a] = bc[a];
    }
    d.shift = c;
    d.effort = ADV_FFT_ESTIMATE;
    return d;
}

/* Solves on the CPU from double data: f (batch x cells) -> u (double). Returns the status;
 * on error u is left as it was. */
static adv_status solve_host(adv_context *ctx, const adv_poisson_desc *d, const double *f,
                             double *u) {
    const size_t n = pref_cells(d->ndim, d->shape) * (size_t)d->batch;
    void *fp = tu_to_precision(f, n, d->precision);
    void *up = tu_calloc(n, tu_real_size(d->precision));
    tu_poison(up, n * tu_real_size(d->precision));
    adv_status st = adv_poisson_solve(ctx, d, fp, up);
    if (st == ADV_OK) tu_from_precision(u, up, n, d->precision);
    free(fp);
    free(up);
    return st;
}

static const adv_boundary ALL_BC[3] = {ADV_BC_PERIODIC, ADV_BC_NEUMANN, ADV_BC_DIRICHLET};
static const char *bc_name(adv_boundary b) {
    return b == ADV_BC_PERIODIC ? "periodic" : b == ADV_BC_NEUMANN ? "neumann" : "dirichlet";
}

/* ---- the shared twiddles ---- */

/* Naive forward transform of a real line, in the order of the pair maps: DCT-II (Neumann),
 * DST-II reversed (Dirichlet: coefficient k is DST mode n-1-k), DHT (periodic); FFTW's
 * unnormalised conventions. */
static double naive_transform(adv_boundary bc, const double *x, int64_t n, int64_t k) {
    const double pi = 3.141592653589793238462643383279502884;
    double acc = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        if (bc == ADV_BC_NEUMANN) acc += 2.0 * x[j] * cos(pi * (double)k * (j + 0.5) / (double)n);
        else if (bc == ADV_BC_DIRICHLET)
            acc += 2.0 * x[j] * sin(pi * (double)(n - k) * (j + 0.5) / (double)n);
        else {
            const double t = 2.0 * pi * (double)(j * k % n) / (double)n;
            acc += x[j] * (cos(t) + sin(t));
        }
    }
    return acc;
}

/* DFT (forward, unnormalised) of the pair map's input: x reordered (Neumann/Dirichlet) with
 * the signs (-1)^j (Dirichlet), plus i times the same of y. */
static void prepared_dft(adv_boundary bc, const double *x, const double *y, int64_t n,
                         double *zr, double *zi) {
    const double pi = 3.141592653589793238462643383279502884;
    double vr[16], vi[16];
    for (int64_t m = 0; m < n; ++m) {
        const int64_t j = bc == ADV_BC_PERIODIC ? m : m < (n + 1) / 2 ? 2 * m : 2 * (n - 1 - m) + 1;
        const double sg = bc == ADV_BC_DIRICHLET && (j & 1) ? -1.0 : 1.0;
        vr[m] = sg * x[j];
        vi[m] = sg * y[j];
    }
    for (int64_t k = 0; k < n; ++k) {
        zr[k] = zi[k] = 0.0;
        for (int64_t m = 0; m < n; ++m) {
            const double t = -2.0 * pi * (double)(m * k % n) / (double)n;
            zr[k] += vr[m] * cos(t) - vi[m] * sin(t);
            zi[k] += vr[m] * sin(t) + vi[m] * cos(t);
        }
    }
}

Test(poisson_twiddles, pair_maps_match_the_naive_transforms) {
    tu_rng r;
    tu_rng_seed(&r, 77);
    for (int b = 0; b < 3; ++b)
        for (int64_t n = 1; n <= 16; ++n) {
            const adv_boundary bc = ALL_BC[b];
            double x[16], y[16], zr[16], zi[16], zero[16] = {0};
            for (int64_t j = 0; j < n; ++j)
                x[j] = tu_rng_uniform(&r, -1, 1), y[j] = tu_rng_uniform(&r, -1, 1);
            for (int packed = 0; packed < 2; ++packed) {
                const double *yy = packed ? y : zero;
                prepared_dft(bc, x, yy, n, zr, zi);
                double wr[16], wi[16]; // forward: W_k = X_k + i Y_k
                for (int64_t k = 0; k <= n / 2; ++k) {
                    double c, s;
                    advi_poisson_twiddle(k, n, &c, &s);
                    const int64_t k2 = (n - k) % n;
                    if (k == k2) {
                        const double f = advi_poisson_self_factor((int)bc, k, 0);
                        wr[k] = f * zr[k], wi[k] = f * zi[k];
                        continue;
                    }
                    // Packed: the CPU form (Z_{n-k} of the packed line); single: the CUDA
                    // form (Z_{n-k} = conj(Z_k) of a real line).
                    double ar = zr[k], ai = zi[k];
                    double br = packed ? zr[k2] : zr[k], bi = packed ? zi[k2] : -zi[k];
                    advi_poisson_pair_forward((int)bc, c, s, &ar, &ai, &br, &bi);
                    wr[k] = ar, wi[k] = ai;
                    if (packed) wr[k2] = br, wi[k2] = bi;
                    else wr[k2] = naive_transform(bc, x, n, k2), wi[k2] = 0.0;
                }
                for (int64_t k = 0; k < n; ++k) {
                    const double X = naive_transform(bc, x, n, k);
                    const double Y = naive_transform(bc, yy, n, k);
                    cr_assert(fabs(wr[k] - X) <= 1e-12 && fabs(wi[k] - Y) <= 1e-12,
                              "%s n=%lld k=%lld packed=%d: (%.15g, %.15g) vs (%.15g, %.15g)",
                              bc_name(bc), (long long)n, (long long)k, packed, wr[k], wi[k], X, Y);
                }
                // Inverse: back to the DFT, times the pair's factor (2 Neumann/Dirichlet).
                const double pair = bc == ADV_BC_PERIODIC ? 1.0 : 2.0;
                for (int64_t k = 0; k <= n / 2; ++k) {
                    double c, s;
                    advi_poisson_twiddle(k, n, &c, &s);
                    const int64_t k2 = (n - k) % n;
                    double ar = wr[k], ai = wi[k], br = wr[k2], bi = wi[k2];
                    if (k == k2) {
                        const double f = advi_poisson_self_factor((int)bc, k, 1);
                        ar *= f, ai *= f;
                    } else {
                        advi_poisson_pair_inverse((int)bc, c, s, &ar, &ai, &br, &bi);
                    }
                    cr_assert(fabs(ar - pair * zr[k]) <= 1e-12 && fabs(ai - pair * zi[k]) <= 1e-12,
                              "%s n=%lld inverse k=%lld packed=%d", bc_name(bc), (long long)n,
                              (long long)k, packed);
                    if (k != k2)
                        cr_assert(fabs(br - pair * zr[k2]) <= 1e-12 &&
                                      fabs(bi - pair * zi[k2]) <= 1e-12,
                                  "%s n=%lld inverse k=%lld packed=%d", bc_name(bc),
                                  (long long)n, (long long)k2, packed);
                }
            }
        }
}

/* ---- eigenfunctions ---- */

Test(poisson_eigen, stencil_and_solver_1d) {
    adv_context *ctx = cpu_context(1);
    const int64_t sizes[] = {1, 2, 3, 7, 8};
    const double shifts[] = {0.0, 0.37};
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        for (int b = 0; b < 3; ++b)
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; ++si)
                for (int ci = 0; ci < 2; ++ci) {
                    const int64_t n = sizes[si];
                    const double h = 0.6, c = shifts[ci];
                    const adv_boundary bc = ALL_BC[b];
                    const double tol = pref_tolerance(1, &n, &h, &bc, c, tu_unit_roundoff(prec));
                    double v[8], av[8], f[8], u[8];
                    for (int64_t k = 0; k < n; ++k)
                        for (int which = 0; which < (bc == ADV_BC_PERIODIC ? 2 : 1); ++which) {
                            for (int64_t i = 0; i < n; ++i)
                                v[i] = pref_eigenfunction(bc, k, n, which, i);
                            double vn = 0.0;
                            for (int64_t i = 0; i < n; ++i) vn += v[i] * v[i];
                            if (vn < 1e-20) continue; // sin(0·i): not a mode
                            const double lam = c + pref_eigenvalue(bc, k, n, h);
                            // The reference stencil has this eigenpair.
                            pref_apply(1, &n, &h, &bc, c, v, av);
                            for (int64_t i = 0; i < n; ++i)
                                cr_assert(fabs(av[i] - lam * v[i]) <= 1e-13 * (1.0 + lam),
                                          "stencil %s n=%lld k=%lld i=%lld: %g vs %g",
                                          bc_name(bc), (long long)n, (long long)k,
                                          (long long)i, av[i], lam * v[i]);
                            // The solver inverts it; the zero mode of a singular problem maps
                            // to 0 (f = 0 there since λ = 0).
                            for (int64_t i = 0; i < n; ++i) f[i] = lam * v[i];
                            adv_poisson_desc d = make_desc(prec, 1, &n, &h, &bc, c);
                            cr_assert_eq(solve_host(ctx, &d, f, u), ADV_OK, "%s",
                                         adv_context_last_error(ctx));
                            const int zero_mode = lam == 0.0;
                            for (int64_t i = 0; i < n; ++i) {
                                const double want = zero_mode ? 0.0 : v[i];
                                cr_assert(fabs(u[i] - want) <= tol * sqrt(vn),
                                          "%s %s n=%lld k=%lld c=%g i=%lld: %.17g vs %.17g "
                                          "(tol %g)",
                                          tu_precision_name(prec), bc_name(bc), (long long)n,
                                          (long long)k, c, (long long)i, u[i], want, tol);
                            }
                        }
                }
    }
    adv_context_destroy(ctx);
}

/* Products of 1-D eigenfunctions on a 3-D grid with one boundary condition per axis. */
Test(poisson_eigen, products_3d_mixed) {
    adv_context *ctx = cpu_context(1);
    const int64_t shape[3] = {4, 5, 6};
    const double h[3] = {0.5, 1.0, 0.8};
    const adv_boundary bc[3] = {ADV_BC_DIRICHLET, ADV_BC_PERIODIC, ADV_BC_NEUMANN};
    const size_t n = pref_cells(3, shape);
    double *v = tu_calloc(n, sizeof *v), *av = tu_calloc(n, sizeof *av);
    double *f = tu_calloc(n, sizeof *f), *u = tu_calloc(n, sizeof *u);
    const int64_t modes[][3] = {{0, 0, 0}, {3, 2, 5}, {1, 4, 0}, {2, 1, 3}};
    const double tol = pref_tolerance(3, shape, h, bc, 0.0, TU_U64);
    for (size_t m = 0; m < sizeof modes / sizeof *modes; ++m) {
        double lam = 0.0;
        for (int a = 0; a < 3; ++a) lam += pref_eigenvalue(bc[a], modes[m][a], shape[a], h[a]);
        for (int64_t i0 = 0; i0 < shape[0]; ++i0)
            for (int64_t i1 = 0; i1 < shape[1]; ++i1)
                for (int64_t i2 = 0; i2 < shape[2]; ++i2)
                    v[(i0 * shape[1] + i1) * shape[2] + i2] =
                        pref_eigenfunction(bc[0], modes[m][0], shape[0], 0, i0) *
                        pref_eigenfunction(bc[1], modes[m][1], shape[1], 0, i1) *
                        pref_eigenfunction(bc[2], modes[m][2], shape[2], 0, i2);
        pref_apply(3, shape, h, bc, 0.0, v, av);
        for (size_t i = 0; i < n; ++i) {
            cr_assert(fabs(av[i] - lam * v[i]) <= 1e-12 * (1.0 + lam), "stencil mode %zu", m);
            f[i] = lam * v[i];
        }
        adv_poisson_desc d = make_desc(ADV_FLOAT64, 3, shape, h, bc, 0.0);
        cr_assert_eq(solve_host(ctx, &d, f, u), ADV_OK, "%s", adv_context_last_error(ctx));
        const double err = pref_rel_err(u, v, n);
        cr_assert(err <= tol, "mode %zu: relative error %g > %g", m, err, tol);
    }
    free(v), free(av), free(f), free(u);
    adv_context_destroy(ctx);
}

/* ---- manufactured solutions ---- */

typedef struct mcase {
    int ndim;
    int64_t shape[4];
} mcase;

static const mcase CASES[] = {{1, {1}},       {1, {2}},          {1, {7}},
                              {1, {8}},       {2, {5, 6}},       {2, {1, 4}},
                              {3, {3, 4, 5}}, {4, {2, 3, 4, 5}}, {2, {16, 9}}};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* Boundary pattern: 0..2 = every axis the same; 3, 4 = mixed, rotating through the three. */
static void pattern_bc(int pattern, int ndim, adv_boundary *bc) {
    for (int a = 0; a < ndim; ++a)
        bc[a] = pattern < 3 ? ALL_BC[pattern] : ALL_BC[(a + pattern) % 3];
}

/* Random u (zero mean when singular), f = A u by the stencil (rounded to the precision),
 * solve, and compare with u. Returns err / tol. */
static double manufactured(adv_context *ctx, adv_precision prec, const mcase *mc,
                           const adv_boundary *bc, const double *h, double c,
                           adv_fft_effort effort, uint64_t seed) {
    const size_t n = pref_cells(mc->ndim, mc->shape);
    double *u = tu_calloc(n, sizeof *u), *f = tu_calloc(n, sizeof *f), *got = tu_calloc(n, 8);
    tu_fill_uniform(u, n, -1.0, 1.0, seed);
    if (pref_singular(mc->ndim, bc, c)) pref_remove_mean(u, n);
    pref_apply(mc->ndim, mc->shape, h, bc, c, u, f);
    tu_round_to_precision(f, n, prec);
    adv_poisson_desc d = make_desc(prec, mc->ndim, mc->shape, h, bc, c);
    d.effort = effort;
    adv_status st = solve_host(ctx, &d, f, got);
    cr_assert_eq(st, ADV_OK, "%s", adv_context_last_error(ctx));
    const double tol = pref_tolerance(mc->ndim, mc->shape, h, bc, c, tu_unit_roundoff(prec));
    const double err = pref_rel_err(got, u, n);
    cr_assert(err <= tol, "%s ndim=%d shape[0]=%lld bc0=%s c=%g: relative error %g > tol %g",
              tu_precision_name(prec), mc->ndim, (long long)mc->shape[0], bc_name(bc[0]), c, err,
              tol);
    free(u), free(f), free(got);
    return err / tol;
}

Test(poisson_manufactured, every_bc_dim_size_precision) {
    adv_context *ctx = cpu_context(1);
    const double h[4] = {0.5, 1.3, 0.8, 2.0};
    const double shifts[] = {0.0, 0.37, 25.0};
    uint64_t seed = 100;
    double worst[2] = {0, 0};
    for (int p = 0; p < 2; ++p)
        for (size_t ci = 0; ci < N_CASES; ++ci)
            for (int pat = 0; pat < 5; ++pat)
                for (int s = 0; s < 3; ++s) {
                    adv_boundary bc[4];
                    pattern_bc(pat, CASES[ci].ndim, bc);
                    double r = manufactured(ctx, p ? ADV_FLOAT64 : ADV_FLOAT32, &CASES[ci], bc,
                                            h, shifts[s], ADV_FFT_ESTIMATE, seed++);
                    if (r > worst[p]) worst[p] = r;
                }
    cr_log_info("worst error/tolerance: f32 %.3g, f64 %.3g", worst[0], worst[1]);
    adv_context_destroy(ctx);
}

/* Two threads on a grid above the OpenMP thresholds (FFTW_ESTIMATE: measuring plans this size
 * takes seconds), and FFTW_MEASURE (the default) on a small grid. */
Test(poisson_manufactured, measure_and_threads) {
    adv_context *ctx = cpu_context(2);
    const double h[3] = {1.0 / 64, 1.0 / 32, 1.0 / 32};
    const mcase big = {3, {64, 32, 32}}; // 65536 cells: above the OpenMP thresholds
    const mcase small = {2, {12, 10}};
    for (int p = 0; p < 2; ++p)
        for (int pat = 0; pat < 5; ++pat) {
            adv_boundary bc[3];
            pattern_bc(pat, 3, bc);
            manufactured(ctx, p ? ADV_FLOAT64 : ADV_FLOAT32, &big, bc, h, 0.0, ADV_FFT_ESTIMATE,
                         7 + (uint64_t)pat);
            manufactured(ctx, p ? ADV_FLOAT64 : ADV_FLOAT32, &small, bc, h, 1.0,
                         ADV_FFT_MEASURE, 17 + (uint64_t)pat);
        }
    adv_context_destroy(ctx);
}

/* The layouts of the CPU's real-transform path (host/cpu/poisson_cpu.c): an odd last axis
 * (a padding column), an odd number of rows (a padding row, and row pairs that straddle two
 * right-hand sides), axes of length 1 and 2 anywhere (a Dirichlet one of length 1 is a
 * shift), a single cell, grids of several blocks with a narrower last block along the rows
 * and along the other axes, 1-4 dimensions, every boundary pattern, batches of 1 and 3, one
 * and two threads, both precisions. Each right-hand side of a batch is a different problem. */
Test(poisson_manufactured, real_transform_layouts) {
    const mcase cases[] = {{2, {6, 7}},     {3, {3, 5, 7}},      {3, {4, 1, 6}},
                           {2, {1, 1}},     {1, {5}},            {2, {2, 2}},
                           {3, {2, 3, 2}},  {2, {40, 256}},      {3, {6, 10, 256}},
                           {4, {2, 1, 3, 2}}, {2, {3, 300}},     {3, {5, 2, 9}}};
    const double h[4] = {0.7, 1.1, 0.9, 1.6};
    uint64_t seed = 500;
    for (int threads = 1; threads <= 2; ++threads) {
        adv_context *ctx = cpu_context(threads);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci)
            for (int pat = 0; pat < 5; ++pat)
                for (int p = 0; p < 2; ++p) {
                    const mcase *mc = &cases[ci];
                    const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
                    const int64_t batch = (pat + (int)ci) % 2 ? 3 : 1;
                    const double c = pat == 2 ? 0.0 : 0.3; // pattern 2: Dirichlet everywhere
                    adv_boundary bc[4];
                    pattern_bc(pat, mc->ndim, bc);
                    const size_t n = pref_cells(mc->ndim, mc->shape), total = n * (size_t)batch;
                    double *u = tu_calloc(total, 8), *f = tu_calloc(total, 8);
                    double *got = tu_calloc(total, 8);
                    tu_fill_uniform(u, total, -1.0, 1.0, seed++);
                    for (int64_t b = 0; b < batch; ++b) {
                        if (pref_singular(mc->ndim, bc, c)) pref_remove_mean(u + (size_t)b * n, n);
                        pref_apply(mc->ndim, mc->shape, h, bc, c, u + (size_t)b * n,
                                   f + (size_t)b * n);
                    }
                    tu_round_to_precision(f, total, prec);
                    adv_poisson_desc d = make_desc(prec, mc->ndim, mc->shape, h, bc, c);
                    d.batch = batch;
                    cr_assert_eq(solve_host(ctx, &d, f, got), ADV_OK, "%s",
                                 adv_context_last_error(ctx));
                    const double tol =
                        pref_tolerance(mc->ndim, mc->shape, h, bc, c, tu_unit_roundoff(prec));
                    for (int64_t b = 0; b < batch; ++b) {
                        const double err =
                            pref_rel_err(got + (size_t)b * n, u + (size_t)b * n, n);
                        cr_assert(err <= tol,
                                  "case %zu pattern %d %s batch %lld rhs %lld threads %d: "
                                  "relative error %g > %g",
                                  ci, pat, tu_precision_name(prec), (long long)batch,
                                  (long long)b, threads, err, tol);
                    }
                    free(u), free(f), free(got);
                }
        adv_context_destroy(ctx);
    }
}

/* ---- zero mean, batches, in place, reuse ---- */

Test(poisson_mean, require_rejects_nonzero_mean_and_leaves_u) {
    adv_context *ctx = cpu_context(1);
    const int64_t shape[2] = {5, 6};
    const double h[2] = {1.0, 0.5};
    for (int pat = 0; pat < 2; ++pat) { // all periodic, all Neumann
        adv_boundary bc[2];
        pattern_bc(pat, 2, bc);
        for (int p = 0; p < 2; ++p) {
            const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
            adv_poisson_desc d = make_desc(prec, 2, shape, h, bc, 0.0);
            double f[30], u[30];
            tu_fill_uniform(f, 30, -1.0, 1.0, 3);
            pref_remove_mean(f, 30);
            for (int i = 0; i < 30; ++i) f[i] += 0.25;
            for (int i = 0; i < 30; ++i) u[i] = 7.0;
            cr_assert_eq(solve_host(ctx, &d, f, u), ADV_ERR_INVALID_VALUE);
            cr_assert(strstr(adv_context_last_error(ctx), "mean") != NULL, "%s",
                      adv_context_last_error(ctx));
            // Directly on the library's buffers: u must be untouched, bit for bit.
            void *fp = tu_to_precision(f, 30, prec);
            unsigned char up[30 * 8], before[30 * 8];
            memset(up, 0x5a, sizeof up);
            memcpy(before, up, sizeof up);
            cr_assert_eq(adv_poisson_solve(ctx, &d, fp, up), ADV_ERR_INVALID_VALUE);
            cr_assert(memcmp(up, before, sizeof up) == 0, "u was written on error");
            free(fp);
            // The tolerance is relative: |Σf| <= tol Σ|f| passes, above fails.
            for (int i = 0; i < 30; ++i) f[i] -= 0.25;
            double sa = 0.0;
            for (int i = 0; i < 30; ++i) sa += fabs(f[i]);
            d.mean_tolerance = 1e-3;
            for (int i = 0; i < 30; ++i) f[i] += 2e-3 * sa / 30.0 / 1.01; // Σ|f| grows a bit
            cr_assert_eq(solve_host(ctx, &d, f, u), ADV_ERR_INVALID_VALUE);
            for (int i = 0; i < 30; ++i) f[i] -= 1.5e-3 * sa / 30.0;
            cr_assert_eq(solve_host(ctx, &d, f, u), ADV_OK, "%s", adv_context_last_error(ctx));
        }
    }
    adv_context_destroy(ctx);
}

Test(poisson_mean, project_returns_zero_mean_solution) {
    adv_context *ctx = cpu_context(1);
    const int64_t shape[3] = {3, 4, 5};
    const double h[3] = {1.0, 0.7, 1.2};
    for (int pat = 0; pat < 2; ++pat) {
        adv_boundary bc[3];
        pattern_bc(pat, 3, bc);
        const size_t n = 60;
        double u0[60], f[60], got[60];
        tu_fill_uniform(u0, n, -1.0, 1.0, 11);
        pref_remove_mean(u0, n);
        pref_apply(3, shape, h, bc, 0.0, u0, f);
        for (size_t i = 0; i < n; ++i) f[i] += 3.5; // A·const = 0: the mean is all that differs
        adv_poisson_desc d = make_desc(ADV_FLOAT64, 3, shape, h, bc, 0.0);
        d.mean_policy = ADV_POISSON_PROJECT_MEAN;
        cr_assert_eq(solve_host(ctx, &d, f, got), ADV_OK, "%s", adv_context_last_error(ctx));
        const double tol = pref_tolerance(3, shape, h, bc, 0.0, TU_U64) * 10.0; // |f| ~ 3.5|Au|
        double err = pref_rel_err(got, u0, n);
        cr_assert(err <= tol, "%s: error %g > %g", bc_name(bc[0]), err, tol);
        double mean = 0.0;
        for (size_t i = 0; i < n; ++i) mean += got[i];
        cr_assert(fabs(mean / (double)n) < 1e-14, "mean of the solution %g", mean / (double)n);
    }
    adv_context_destroy(ctx);
}

/* A nonzero mean is fine when the problem is not singular (c > 0, or a Dirichlet axis). */
Test(poisson_mean, nonsingular_accepts_any_mean) {
    adv_context *ctx = cpu_context(1);
    const int64_t shape[2] = {6, 5};
    const double h[2] = {1.0, 1.0};
    const adv_boundary nn[2] = {ADV_BC_NEUMANN, ADV_BC_NEUMANN};
    const adv_boundary nd[2] = {ADV_BC_NEUMANN, ADV_BC_DIRICHLET};
    double f[30], u[30];
    for (int i = 0; i < 30; ++i) f[i] = 1.0;
    adv_poisson_desc d = make_desc(ADV_FLOAT64, 2, shape, h, nn, 0.5);
    cr_assert_eq(solve_host(ctx, &d, f, u), ADV_OK);
    for (int i = 0; i < 30; ++i) cr_assert(fabs(u[i] - 2.0) < 1e-13, "u = f/c for constant f");
    d = make_desc(ADV_FLOAT64, 2, shape, h, nd, 0.0);
    cr_assert_eq(solve_host(ctx, &d, f, u), ADV_OK);
    double au[30];
    pref_apply(2, shape, h, nd, 0.0, u, au);
    for (int i = 0; i < 30; ++i) cr_assert(fabs(au[i] - 1.0) < 1e-12, "A u = f");
    adv_context_destroy(ctx);
}

/* Batches of right-hand sides, in place (u == f) and out of place with one plan; both the
 * real-to-real path (a Dirichlet axis) and the all-periodic complex path, odd and even last
 * axes. */
Test(poisson_batch, batch_in_place_and_reuse) {
    adv_context *ctx = cpu_context(2);
    const struct {
        int64_t shape[2];
        adv_boundary bc[2];
    } configs[] = {{{7, 8}, {ADV_BC_DIRICHLET, ADV_BC_PERIODIC}},
                   {{8, 7}, {ADV_BC_PERIODIC, ADV_BC_PERIODIC}},
                   {{7, 8}, {ADV_BC_PERIODIC, ADV_BC_PERIODIC}}};
    const double h[2] = {0.3, 0.4};
    const size_t n = 56, B = 3;
    for (size_t cfg = 0; cfg < sizeof configs / sizeof configs[0]; ++cfg)
        for (int p = 0; p < 2; ++p) {
            const int64_t *shape = configs[cfg].shape;
            const adv_boundary *bc = configs[cfg].bc;
            const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
            double u[3 * 56], f[3 * 56], got[3 * 56];
            tu_fill_uniform(u, B * n, -1.0, 1.0, 21 + cfg);
            for (size_t b = 0; b < B; ++b) pref_apply(2, shape, h, bc, 0.2, u + b * n, f + b * n);
            tu_round_to_precision(f, B * n, prec);
            adv_poisson_desc d = make_desc(prec, 2, shape, h, bc, 0.2);
            d.batch = (int64_t)B;
            adv_poisson_plan *plan = NULL;
            cr_assert_eq(adv_poisson_plan_create(ctx, &d, &plan), ADV_OK);
            const double tol = pref_tolerance(2, shape, h, bc, 0.2, tu_unit_roundoff(prec));
            for (int rep = 0; rep < 2; ++rep) {
                // rep 0: separate arrays; rep 1: in place (u == f) with the same plan.
                void *fp = tu_to_precision(f, B * n, prec);
                void *up = rep ? fp : tu_calloc(B * n, tu_real_size(prec));
                cr_assert_eq(adv_poisson_execute(plan, fp, up), ADV_OK);
                tu_from_precision(got, up, B * n, prec);
                for (size_t b = 0; b < B; ++b) {
                    double err = pref_rel_err(got + b * n, u + b * n, n);
                    cr_assert(err <= tol, "config %zu %s rep %d rhs %zu: error %g > %g", cfg,
                              tu_precision_name(prec), rep, b, err, tol);
                }
                if (up != fp) free(up);
                free(fp);
            }
            cr_assert_eq(adv_poisson_plan_destroy(plan), ADV_OK);
        }
    adv_context_destroy(ctx);
}

/* The mean check is per right-hand side: one bad one in a batch fails the whole call. */
Test(poisson_batch, mean_checked_per_rhs) {
    adv_context *ctx = cpu_context(1);
    const int64_t shape[1] = {8};
    const double h[1] = {1.0};
    const adv_boundary bc[1] = {ADV_BC_PERIODIC};
    double f[16], u[16];
    tu_fill_uniform(f, 16, -1.0, 1.0, 5);
    pref_remove_mean(f, 8);
    pref_remove_mean(f + 8, 8);
    f[12] += 1.0; // second right-hand side: mean 1/8
    adv_poisson_desc d = make_desc(ADV_FLOAT64, 1, shape, h, bc, 0.0);
    d.batch = 2;
    for (int i = 0; i < 16; ++i) u[i] = 7.0;
    cr_assert_eq(solve_host(ctx, &d, f, u), ADV_ERR_INVALID_VALUE);
    cr_assert(strstr(adv_context_last_error(ctx), "right-hand side 1") != NULL, "%s",
              adv_context_last_error(ctx));
    for (int i = 0; i < 16; ++i) cr_assert_eq(u[i], 7.0);
    adv_context_destroy(ctx);
}

/* ---- invalid arguments ---- */

static adv_poisson_desc valid_desc(void) {
    const int64_t shape[2] = {4, 5};
    const double h[2] = {1.0, 1.0};
    const adv_boundary bc[2] = {ADV_BC_NEUMANN, ADV_BC_NEUMANN};
    return make_desc(ADV_FLOAT64, 2, shape, h, bc, 1.0);
}

static void expect_create_fails(adv_context *ctx, const adv_poisson_desc *d, adv_status want,
                                const char *what) {
    adv_poisson_plan *plan = (adv_poisson_plan *)&plan; // poisoned: must become NULL
    adv_status st = adv_poisson_plan_create(ctx, d, &plan);
    cr_assert_eq(st, want, "%s: got %s, want %s", what, adv_status_name(st),
                 adv_status_name(want));
    cr_assert_null(plan, "%s: plan not NULL on error", what);
    cr_assert(adv_context_last_error(ctx)[0] != '\0', "%s: no error message", what);
}

Test(poisson_invalid, descriptions) {
    adv_context *ctx = cpu_context(1);
    adv_poisson_desc d;
    cr_assert_eq(adv_poisson_default_desc(NULL), ADV_ERR_NULL_POINTER);
    adv_poisson_plan *plan = NULL;
    d = valid_desc();
    cr_assert_eq(adv_poisson_plan_create(NULL, &d, &plan), ADV_ERR_NULL_POINTER);
    cr_assert_eq(adv_poisson_plan_create(ctx, NULL, &plan), ADV_ERR_NULL_POINTER);
    cr_assert_eq(adv_poisson_plan_create(ctx, &d, NULL), ADV_ERR_NULL_POINTER);

    const struct {
        const char *what;
        adv_status want;
    } cases[] = {
        {"struct_size", ADV_ERR_INVALID_VALUE},     {"precision", ADV_ERR_INVALID_VALUE},
        {"ndim 0", ADV_ERR_INVALID_SIZE},           {"ndim 5", ADV_ERR_INVALID_SIZE},
        {"ndim -1", ADV_ERR_INVALID_SIZE},          {"shape 0", ADV_ERR_INVALID_SIZE},
        {"shape -3", ADV_ERR_INVALID_SIZE},         {"shape overflow", ADV_ERR_INVALID_SIZE},
        {"batch 0", ADV_ERR_INVALID_SIZE},          {"batch -1", ADV_ERR_INVALID_SIZE},
        {"spacing 0", ADV_ERR_INVALID_VALUE},       {"spacing -1", ADV_ERR_INVALID_VALUE},
        {"spacing NaN", ADV_ERR_NONFINITE},         {"spacing Inf", ADV_ERR_NONFINITE},
        {"bc", ADV_ERR_INVALID_VALUE},              {"shift -1", ADV_ERR_INVALID_VALUE},
        {"shift -tiny", ADV_ERR_INVALID_VALUE},     {"shift NaN", ADV_ERR_NONFINITE},
        {"shift Inf", ADV_ERR_NONFINITE},           {"mean_policy", ADV_ERR_INVALID_VALUE},
        {"mean_tolerance -1", ADV_ERR_INVALID_VALUE}, {"mean_tolerance NaN", ADV_ERR_NONFINITE},
        {"effort", ADV_ERR_INVALID_VALUE},
        {"spacing 1e-200 (1/h^2 overflows)", ADV_ERR_INVALID_VALUE},
        {"spacing 1e200 (1/h^2 underflows)", ADV_ERR_INVALID_VALUE},
        {"float32, spacing 1e-20 (1/h^2 beyond float32)", ADV_ERR_INVALID_VALUE},
        {"shift 1e300 in float32", ADV_ERR_INVALID_VALUE},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        d = valid_desc();
        switch (k) {
        case 0: d.struct_size = 8; break;
        case 1: d.precision = (adv_precision)3; break;
        case 2: d.ndim = 0; break;
        case 3: d.ndim = 5; break;
        case 4: d.ndim = -1; break;
        case 5: d.shape[1] = 0; break;
        case 6: d.shape[0] = -3; break;
        case 7:
            d.ndim = 4;
            d.shape[0] = d.shape[1] = d.shape[2] = d.shape[3] = (int64_t)1 << 20;
            break;
        case 8: d.batch = 0; break;
        case 9: d.batch = -1; break;
        case 10: d.spacing[1] = 0.0; break;
        case 11: d.spacing[0] = -1.0; break;
        case 12: d.spacing[1] = NAN; break;
        case 13: d.spacing[0] = INFINITY; break;
        case 14: d.bc[1] = (adv_boundary)7; break;
        case 15: d.shift = -1.0; break;
        case 16: d.shift = -1e-300; break;
        case 17: d.shift = NAN; break;
        case 18: d.shift = INFINITY; break;
        case 19: d.mean_policy = (adv_poisson_mean)2; break;
        case 20: d.mean_tolerance = -1.0; break;
        case 21: d.mean_tolerance = NAN; break;
        case 22: d.effort = (adv_fft_effort)9; break;
        case 23: d.spacing[0] = 1e-200; break;
        case 24: d.spacing[1] = 1e200; break;
        case 25: d.precision = ADV_FLOAT32, d.spacing[0] = 1e-20; break;
        case 26: d.precision = ADV_FLOAT32, d.shift = 1e300; break;
        }
        expect_create_fails(ctx, &d, cases[k].want, cases[k].what);
    }
    // Entries past ndim are ignored, whatever they hold.
    d = valid_desc();
    d.shape[3] = 0;
    d.spacing[2] = NAN;
    d.bc[3] = (adv_boundary)9;
    cr_assert_eq(adv_poisson_plan_create(ctx, &d, &plan), ADV_OK);
    cr_assert_eq(adv_poisson_plan_destroy(plan), ADV_OK);
    cr_assert_eq(adv_poisson_plan_destroy(NULL), ADV_OK);
    adv_context_destroy(ctx);
}

Test(poisson_invalid, execute_pointers_and_data) {
    adv_context *ctx = cpu_context(1);
    adv_poisson_desc d = valid_desc();
    adv_poisson_plan *plan = NULL;
    cr_assert_eq(adv_poisson_plan_create(ctx, &d, &plan), ADV_OK);
    double f[20], u[20];
    for (int i = 0; i < 20; ++i) f[i] = (double)i, u[i] = 7.0;
    cr_assert_eq(adv_poisson_execute(NULL, f, u), ADV_ERR_NULL_POINTER);
    cr_assert_eq(adv_poisson_execute(plan, NULL, u), ADV_ERR_NULL_POINTER);
    cr_assert_eq(adv_poisson_execute(plan, f, NULL), ADV_ERR_NULL_POINTER);
    cr_assert_eq(adv_poisson_solve(NULL, &d, f, u), ADV_ERR_NULL_POINTER);
    cr_assert_eq(adv_poisson_solve(ctx, NULL, f, u), ADV_ERR_NULL_POINTER);
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; ++k) {
        f[13] = bad[k];
        cr_assert_eq(adv_poisson_execute(plan, f, u), ADV_ERR_NONFINITE, "value %g", bad[k]);
        for (int i = 0; i < 20; ++i) cr_assert_eq(u[i], 7.0, "u written on error");
    }
    // float32 too, through a float32 plan.
    adv_poisson_desc d32 = d;
    d32.precision = ADV_FLOAT32;
    float f32[20], u32[20];
    for (int i = 0; i < 20; ++i) f32[i] = (float)i, u32[i] = 7.0f;
    f32[0] = NAN;
    cr_assert_eq(adv_poisson_solve(ctx, &d32, f32, u32), ADV_ERR_NONFINITE);
    for (int i = 0; i < 20; ++i) cr_assert_eq(u32[i], 7.0f, "u written on error");
    // check_finite = 0 skips the check (NaN propagates).
    d.check_finite = 0;
    f[13] = NAN;
    cr_assert_eq(adv_poisson_solve(ctx, &d, f, u), ADV_OK);
    cr_assert_eq(adv_poisson_plan_destroy(plan), ADV_OK);
    adv_context_destroy(ctx);
}

/* FFTW's wisdom is process-wide: a MEASURE plan (the default effort) made in one context used
 * to leave its timings there, and a later ESTIMATE plan of the same problem in another
 * context then took that algorithm, with other rounding (the bits of adv_bbot_compute, whose
 * plans are ESTIMATE, changed). Each planning now starts from no wisdom and restores the
 * process's afterwards: the ESTIMATE solve gives the same bits before and after. */
Test(poisson_plans, estimate_results_do_not_depend_on_earlier_measure_plans, .timeout = 120) {
    adv_context *a = cpu_context(1), *b = cpu_context(1);
    const int64_t shape[3] = {20, 48, 48};
    const double h[3] = {1.0 / 20, 1.0 / 48, 1.0 / 48};
    const adv_boundary bc[3] = {ADV_BC_PERIODIC, ADV_BC_PERIODIC, ADV_BC_PERIODIC};
    adv_poisson_desc d = make_desc(ADV_FLOAT64, 3, shape, h, bc, 0.0);
    d.mean_policy = ADV_POISSON_PROJECT_MEAN;
    const size_t n = 20 * 48 * 48;
    double *f = tu_calloc(n, sizeof(double)), *u1 = tu_calloc(n, sizeof(double));
    double *u2 = tu_calloc(n, sizeof(double)), *um = tu_calloc(n, sizeof(double));
    tu_fill_uniform(f, n, -0.5, 0.5, 77);
    d.effort = ADV_FFT_ESTIMATE;
    cr_assert_eq(adv_poisson_solve(a, &d, f, u1), ADV_OK);
    d.effort = ADV_FFT_MEASURE;
    cr_assert_eq(adv_poisson_solve(b, &d, f, um), ADV_OK);
    d.effort = ADV_FFT_ESTIMATE;
    cr_assert_eq(adv_poisson_solve(a, &d, f, u2), ADV_OK);
    cr_expect(memcmp(u1, u2, n * sizeof(double)) == 0,
              "an ESTIMATE solve changed after a MEASURE plan in another context");
    free(f), free(u1), free(u2), free(um);
    adv_context_destroy(a);
    adv_context_destroy(b);
}
