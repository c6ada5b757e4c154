/* The CUDA line projection of the Benamou-Brenier solver (kernels/cuda/bbot.cu: the tiled
 * kernel, its fused gradient update, and the per-thread kernel for lines beyond 3006 cells)
 * run on the CPU through cuda_emu.h, against the CPU's advk_bbot_lines on the solver's own
 * grid geometry: every value bit for bit (the same operations in the same order), the sums
 * to 1e-12 (another order of addition). Grids: 1-D 37 x 8 (tiles of 16), 2-D 12 x 10 x 6,
 * 3-D 6 x 5 x 4 x 4, 1-D 700 x 6 (tiles of 4 lines in space) and 1-D 3100 x 4 (untiled in
 * space: no fusion), f32 and f64. */
#include "cuda_emu.h"
#include "emu_check.h"

#include "bbot_emu_src.cpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

// Called by kernels/cuda/bbot.cu's other launchers, not by the ones tested here.
extern "C" cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) {
    std::memset(p, v, n);
    return cudaSuccess;
}


static advk_bbot_grid make_grid(int d, const int64_t *n, int64_t P) {
    advk_bbot_grid g;
    advk_bbot_grid_init(&g, d, n, P);
    return g;
}

template <typename T> static void lines_ref(int64_t L, int64_t S, int64_t nb, const double *cp, const double *inv,
                                            double mu, T *x2u, T *zu, const T *x1u, T *zv, const T *x1v,
                                            double *d2, double *x1sq);
template <> void lines_ref<float>(int64_t L, int64_t S, int64_t nb, const double *cp, const double *inv, double mu,
                                  float *x2u, float *zu, const float *x1u, float *zv, const float *x1v, double *d2,
                                  double *x1sq) {
    advk_bbot_lines_f32(L, S, nb, 1, 1, cp, inv, mu, x2u, zu, x1u, zv, x1v, d2, x1sq);
}
template <> void lines_ref<double>(int64_t L, int64_t S, int64_t nb, const double *cp, const double *inv, double mu,
                                   double *x2u, double *zu, const double *x1u, double *zv, const double *x1v,
                                   double *d2, double *x1sq) {
    advk_bbot_lines_f64(L, S, nb, 1, 1, cp, inv, mu, x2u, zu, x1u, zv, x1v, d2, x1sq);
}

template <typename T>
static void run(int d, const int64_t *n, int64_t P, bool fuse, std::mt19937_64 &rng) {
    const advk_bbot_grid g = make_grid(d, n, P);
    const int prec = sizeof(T) == 8 ? 1 : 0;
    std::uniform_real_distribution<double> U(-1.0, 2.0);
    std::vector<T> z(g.state), x1(g.state);
    std::vector<double> q(g.cells);
    for (auto &v : z) v = (T)U(rng);
    for (auto &v : x1) v = (T)U(rng);
    for (auto &v : q) v = U(rng);
    if (fuse) // the kernel must form x1.U itself
        for (int64_t k = 0; k < g.offV[0]; ++k) x1[k] = (T)NAN;
    // Reference: x1.U by the gradient update (when fused), then advk_bbot_lines per component.
    std::vector<T> zr = z, x1r = x1, x2r(g.state, (T)NAN), x2(g.state, (T)NAN);
    if (fuse)
        for (int c = 0; c <= d; ++c) {
            const int64_t L = g.L[c], S = g.S[c];
            for (int64_t o = 0; o < g.cells / (L * S); ++o)
                for (int64_t i = 0; i <= L; ++i)
                    for (int64_t s = 0; s < S; ++s) {
                        const int64_t f = g.offU[c] + (o * (L + 1) + i) * S + s, cell = (o * L + i) * S + s;
                        const double gr = (i == 0 || i == L) ? 0.0 : (q[cell] - q[cell - S]) * g.inv_sp[c];
                        x1r[f] = (T)((double)zr[f] + gr);
                    }
        }
    const double mu = 1.7;
    std::vector<std::vector<double>> cp(d + 1), inv(d + 1);
    double d2r = 0, x1r_sq = 0;
    for (int c = 0; c <= d; ++c) {
        const int64_t L = g.L[c], S = g.S[c];
        cp[c].resize(L + 1), inv[c].resize(L + 1);
        advk_bbot_thomas_factors(L, cp[c].data(), inv[c].data());
        for (int64_t o = 0; o < g.cells / (L * S); ++o) {
            const int64_t fo = g.offU[c] + o * (L + 1) * S, co = g.offV[c] + o * L * S;
            lines_ref<T>(L, S, S, cp[c].data(), inv[c].data(), mu, x2r.data() + fo, zr.data() + fo,
                         x1r.data() + fo, zr.data() + co, x1r.data() + co, &d2r, &x1r_sq);
        }
    }
    // The kernels.
    double sums[8] = {0};
    for (int c = 0; c <= d; ++c)
        EXPECT(advk_bbot_lines(prec, g, c, cp[c].data(), inv[c].data(), mu, x2.data(), z.data(), x1.data(),
                               fuse ? q.data() : nullptr, sums, nullptr) == cudaSuccess,
               "launch, component %d", c);
    const size_t nu = (size_t)g.offV[0];
    EXPECT(std::memcmp(x2.data(), x2r.data(), nu * sizeof(T)) == 0, "%dd %s: x2.U differs", d,
           prec ? "f64" : "f32");
    EXPECT(std::memcmp(z.data(), zr.data(), z.size() * sizeof(T)) == 0, "%dd %s: z differs", d,
           prec ? "f64" : "f32");
    if (fuse)
        EXPECT(std::memcmp(x1.data(), x1r.data(), nu * sizeof(T)) == 0, "%dd %s: fused x1.U differs", d,
               prec ? "f64" : "f32");
    EXPECT(std::fabs(sums[ADVK_BBOT_SLOT_D2] - d2r) <= 1e-12 * d2r &&
               std::fabs(sums[ADVK_BBOT_SLOT_X1SQ] - x1r_sq) <= 1e-12 * x1r_sq,
           "%dd %s: sums %.17g %.17g vs %.17g %.17g", d, prec ? "f64" : "f32", sums[ADVK_BBOT_SLOT_D2],
           sums[ADVK_BBOT_SLOT_X1SQ], d2r, x1r_sq);
}

int main() {
    std::mt19937_64 rng(3);
    const struct {
        int d;
        int64_t n[3], P;
    } grids[] = {{1, {37, 1, 1}, 8}, {2, {12, 10, 1}, 6}, {3, {6, 5, 4}, 4}, {1, {700, 1, 1}, 6},
                 {1, {3100, 1, 1}, 4}};
    for (const auto &gr : grids) {
        const bool fusable = advk_bbot_lines_fuse_grad(make_grid(gr.d, gr.n, gr.P)) != 0;
        EXPECT(fusable == (gr.n[0] <= 3006), "fusable %d for N %lld", (int)fusable, (long long)gr.n[0]);
        for (int fuse = 0; fuse <= (fusable ? 1 : 0); ++fuse) {
            run<float>(gr.d, gr.n, gr.P, fuse, rng);
            run<double>(gr.d, gr.n, gr.P, fuse, rng);
        }
    }
    return emu_report("bbot_emu");
}
