/* The CUDA Poisson kernels (kernels/cuda/poisson.cu: Makhoul gathers and scatters with the
 * per-axis twiddle tables, the diagonal scaling) run on the CPU through cuda_emu.h, with a
 * naive DFT standing in for cuFFT's batched R2C/C2R, in the order of host/cuda/
 * poisson_cuda.c's solve (every axis forward, the scaling, every axis backward, in place; the
 * last axis, when not periodic, with the scaling between its two FFTs);
 * the result must match the CPU backend's solve of the same system (public API) to 1e-11
 * relative in float64 and 2e-5 in float32 (both exact up to the rounding of two different
 * FFT algorithms on these small grids). Every boundary condition, mixed per axis, 1-D to 3-D,
 * odd and even sizes, c = 0 and c > 0, a batch of 2; axes longer than one 32-line tile and
 * strides over more than one (the tiled kernels of strided axes). */
#include "cuda_emu.h"
#include "emu_check.h"

#include "poisson_emu_src.cpp"

#include <advect/advect.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>



/* cuFFT's unnormalised batched R2C / C2R of rows of n (half spectrum h = n/2 + 1), in double. */
template <typename T> static void dft_r2c(const T *x, T *c, int64_t rows, int64_t n) {
    const int64_t h = n / 2 + 1;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < h; ++k) {
            std::complex<double> s = 0;
            for (int64_t j = 0; j < n; ++j)
                s += (double)x[r * n + j] * std::polar(1.0, -2.0 * M_PI * (double)(j * k % n) / (double)n);
            c[2 * (r * h + k)] = (T)s.real(), c[2 * (r * h + k) + 1] = (T)s.imag();
        }
}
template <typename T> static void dft_c2r(const T *c, T *x, int64_t rows, int64_t n) {
    const int64_t h = n / 2 + 1;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t k = 0; k < n; ++k) {
                const int64_t kk = k < h ? k : n - k; // X_{n-k} = conj(X_k)
                std::complex<double> X((double)c[2 * (r * h + kk)], (double)c[2 * (r * h + kk) + 1]);
                if (k >= h) X = std::conj(X);
                if (k == 0 || 2 * k == n) X = X.real(); // imaginary parts ignored, as cuFFT
                s += (X * std::polar(1.0, 2.0 * M_PI * (double)(j * k % n) / (double)n)).real();
            }
            x[r * n + j] = (T)s;
        }
}

template <typename T>
static void run(int ndim, const int64_t *shape, const adv_boundary *bc, double shift, std::mt19937_64 &rng) {
    const int prec = sizeof(T) == 8 ? ADV_FLOAT64 : ADV_FLOAT32;
    const int64_t batch = 2;
    int64_t cells = 1;
    for (int a = 0; a < ndim; ++a) cells *= shape[a];
    const int64_t total = cells * batch;
    double h[4] = {0.3, 0.7, 1.1, 0.5};
    std::uniform_real_distribution<double> U(-1.0, 1.0);
    std::vector<double> f(total);
    for (auto &v : f) v = (double)(T)U(rng);
    // The CPU backend's solve (zero-mean projection where the problem is singular).
    adv_context_opts co;
    adv_context_default_opts(&co);
    co.backend = ADV_BACKEND_CPU;
    co.cpu_threads = 1;
    adv_context *ctx = nullptr;
    adv_context_create(&co, &ctx);
    adv_poisson_desc d;
    adv_poisson_default_desc(&d);
    d.precision = (adv_precision)prec, d.ndim = ndim, d.shift = shift, d.batch = batch;
    d.mean_policy = ADV_POISSON_PROJECT_MEAN, d.effort = ADV_FFT_ESTIMATE;
    for (int a = 0; a < ndim; ++a) d.shape[a] = shape[a], d.spacing[a] = h[a], d.bc[a] = bc[a];
    adv_poisson_plan *plan = nullptr;
    EXPECT(adv_poisson_plan_create(ctx, &d, &plan) == ADV_OK, "plan: %s", adv_context_last_error(ctx));
    std::vector<T> fin(f.begin(), f.end()), ref(total);
    EXPECT(adv_poisson_execute(plan, fin.data(), ref.data()) == ADV_OK, "solve: %s", adv_context_last_error(ctx));
    adv_poisson_plan_destroy(plan);
    adv_context_destroy(ctx);
    // The CUDA kernels, in host/cuda/poisson_cuda.c's order, in place on `work`.
    advk_poisson_grid g;
    std::memset(&g, 0, sizeof g);
    g.ndim = ndim, g.shift = shift;
    double norm = 1.0;
    for (int a = 0; a < ndim; ++a) {
        g.shape[a] = shape[a], g.spacing[a] = h[a], g.bc[a] = (int)bc[a];
        if (shape[a] > 1) norm *= advi_poisson_axis_norm((int)bc[a], shape[a]);
    }
    g.inv_norm = 1.0 / norm;
    // The singular case: the CPU projected the mean away; do the same to the input here.
    bool singular = shift == 0.0;
    for (int a = 0; a < ndim; ++a) singular = singular && bc[a] != ADV_BC_DIRICHLET;
    std::vector<T> work(total), rbuf(total), cbuf(2 * total + 8);
    for (int64_t b = 0; b < batch; ++b) {
        double mean = 0;
        for (int64_t k = 0; k < cells; ++k) mean += f[b * cells + k];
        mean /= (double)cells;
        for (int64_t k = 0; k < cells; ++k) work[b * cells + k] = (T)(f[b * cells + k] - (singular ? mean : 0.0));
    }
    std::vector<std::vector<double>> tw(ndim);
    int64_t outer[4], inner[4], o = batch;
    for (int a = 0; a < ndim; ++a) {
        outer[a] = o;
        o *= shape[a];
        inner[a] = total / o;
        tw[a].resize(2 * shape[a]);
        for (int64_t k = 0; k < shape[a]; ++k) advi_poisson_twiddle(k, shape[a], &tw[a][2 * k], &tw[a][2 * k + 1]);
    }
    auto forward = [&](int a) {
        const int64_t n = shape[a], rows = outer[a] * inner[a];
        advk_poisson_fwd_gather(prec, (int)bc[a], work.data(), rbuf.data(), outer[a], n, inner[a], nullptr);
        dft_r2c(rbuf.data(), cbuf.data(), rows, n);
        advk_poisson_fwd_scatter(prec, (int)bc[a], cbuf.data(), work.data(), outer[a], n, inner[a],
                                 tw[a].data(), nullptr);
    };
    // The last transformed axis, when not periodic, encloses the scaling (host/cuda/
    // poisson_cuda.c's last_axis): gather, R2C, advk_poisson_spectral, C2R, scatter.
    int last = -1;
    for (int a = 0; a < ndim; ++a)
        if (shape[a] > 1) last = a;
    const bool fused = last >= 0 && bc[last] != ADV_BC_PERIODIC;
    for (int a = 0; a < ndim; ++a) {
        if (shape[a] == 1) continue;
        if (!(fused && a == last)) {
            forward(a);
            continue;
        }
        const int64_t n = shape[a], rows = outer[a] * inner[a];
        advk_poisson_fwd_gather(prec, (int)bc[a], work.data(), rbuf.data(), outer[a], n, inner[a], nullptr);
        dft_r2c(rbuf.data(), cbuf.data(), rows, n);
        advk_poisson_spectral(prec, (int)bc[a], cbuf.data(), rows, n, tw[a].data(), g, nullptr);
        dft_c2r(cbuf.data(), rbuf.data(), rows, n);
        advk_poisson_inv_scatter(prec, (int)bc[a], rbuf.data(), work.data(), outer[a], n, inner[a], nullptr);
    }
    if (!fused) advk_poisson_scale(prec, work.data(), batch, g, nullptr);
    for (int a = ndim - 1; a >= 0; --a) {
        if (shape[a] == 1 || (fused && a == last)) continue;
        if (bc[a] == ADV_BC_PERIODIC) {
            forward(a);
            continue;
        }
        const int64_t n = shape[a], rows = outer[a] * inner[a];
        advk_poisson_inv_gather(prec, (int)bc[a], work.data(), cbuf.data(), outer[a], n, inner[a],
                                tw[a].data(), nullptr);
        dft_c2r(cbuf.data(), rbuf.data(), rows, n);
        advk_poisson_inv_scatter(prec, (int)bc[a], rbuf.data(), work.data(), outer[a], n, inner[a], nullptr);
    }
    double err = 0, scale = 0;
    for (int64_t k = 0; k < total; ++k) {
        err = std::fmax(err, std::fabs((double)work[k] - (double)ref[k]));
        scale = std::fmax(scale, std::fabs((double)ref[k]));
    }
    const double tol = sizeof(T) == 8 ? 1e-11 : 2e-5;
    EXPECT(err <= tol * scale, "%s %dd shape %lld bc %d..: |CUDA kernels - CPU| %.3g of %.3g",
           prec ? "f64" : "f32", ndim, (long long)shape[0], (int)bc[0], err, scale);
}

int main() {
    std::mt19937_64 rng(5);
    const adv_boundary P = ADV_BC_PERIODIC, N = ADV_BC_NEUMANN, D = ADV_BC_DIRICHLET;
    const struct {
        int ndim;
        int64_t shape[3];
        adv_boundary bc[3];
        double shift;
    } cases[] = {
        {1, {16, 1, 1}, {N, P, P}, 0.0}, {1, {15, 1, 1}, {D, P, P}, 0.0}, {1, {9, 1, 1}, {P, P, P}, 0.5},
        {2, {8, 7, 1}, {N, D, P}, 0.0},  {2, {6, 10, 1}, {P, N, P}, 0.0}, {2, {5, 1, 1}, {D, N, P}, 1.0},
        {3, {6, 5, 4}, {N, N, N}, 0.0},  {3, {4, 7, 6}, {D, P, N}, 0.2},
        // Strided axes over more than one 32 × 32 tile, with partial tiles at both ends.
        {2, {70, 35, 1}, {N, D, P}, 0.0}, {2, {66, 33, 1}, {D, P, P}, 0.3},
        {3, {33, 40, 3}, {P, N, D}, 0.0}, {3, {3, 65, 34}, {N, D, N}, 0.0},
    };
    for (const auto &c : cases) {
        run<double>(c.ndim, c.shape, c.bc, c.shift, rng);
        run<float>(c.ndim, c.shape, c.bc, c.shift, rng);
    }
    return emu_report("poisson_emu");
}
