/* The CUDA interaction kernels (kernels/cuda/interaction.cu) run on the CPU through
 * cuda_emu.h, against the naive double reference with the tolerances of
 * tests/conformance/interaction.c.
 *  - Direct path and split-key merge: awkward sizes, both kernels and precisions, batches
 *    whose arrays are and are not 16-byte aligned (vector and element key staging), -Inf
 *    log-weights and empty rows, causal DOT, large lambda, split keys (bitwise equal to the
 *    unsplit rows), and the per-row mode of the empirical field.
 *  - GEMM path (d >= 64): the sequence of host/cuda/interaction_cuda.c's execute_gemm
 *    (centring, norms, score GEMM, tile update, value GEMM, finalize) with a naive GEMM in
 *    place of cuBLAS: data far from the origin (centring), close pairs at large lambda
 *    (refinement by direct differences), causal DOT, values = keys, and the per-row mode
 *    (d > 64 at per-particle times) far from the origin and with close pairs.
 * It checks the kernels' indexing, staging, score units, merges and warp reductions on a
 * machine without a GPU; not their speed, not cuBLAS, and not the GPU's own exp2 (the host
 * branch of interaction_math.h runs). */
#include "cuda_emu.h"
#include "emu_check.h"

#include "interaction_emu_src.cpp"

extern "C" {
#include "reference.h"
}

#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <random>
#include <vector>

/* The per-row mode's reference, one row at a time: beta_j - l_i |x_i - a_i y_j|^2 =
 * beta_j - l_i a_i^2 |x_i / a_i - y_j|^2, i.e. lambda = l_i a_i^2 and gamma = 1 / a_i. lse,
 * out and the value scale from (x, y); the score scale from (xs, ys), the same data or its
 * centred copy. */
static void per_row_reference(int64_t B, int64_t N, int64_t M, int64_t d, int64_t e,
                              const std::vector<double> &x, const std::vector<double> &y,
                              const std::vector<double> &beta, const std::vector<double> &w,
                              const std::vector<double> &row_a, const std::vector<double> &row_lambda,
                              const std::vector<double> &xs, const std::vector<double> &ys,
                              std::vector<double> &rl, std::vector<double> &ro,
                              std::vector<double> &S, std::vector<double> &W) {
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < N; ++i) {
            const int64_t r = b * N + i;
            const double a = row_a[r];
            ref_problem p = {ADV_KERNEL_SQDIST, 1, 1, M, d, e, row_lambda[r] * a * a, 1.0 / a, 0, 0,
                             x.data() + r * d, y.data() + b * M * d, beta.data() + b * M,
                             e ? w.data() + b * M * e : nullptr};
            ref_interaction(&p, &rl[r], e ? &ro[r * e] : nullptr);
            ref_value_scale(&p, &W[r]);
            p.x = xs.data() + r * d, p.y = ys.data() + b * M * d;
            ref_score_scale(&p, &S[r]);
        }
}

struct Case {
    int kernel; // 0 SQDIST, 1 DOT (adv_kernel values)
    int64_t B, N, M, d, e;
    double lambda, gamma;
    int causal, neg_inf_keys, empty_batch, offset; // offset: elements before each array
};

template <typename T>
static void run_case(const Case &c, std::mt19937_64 &rng, bool per_row) {
    const int prec = sizeof(T) == 8 ? 1 : 0;
    const double u = sizeof(T) == 8 ? 0x1p-53 : 0x1p-24;
    const int64_t B = c.B, N = c.N, M = c.M, d = c.d, e = c.e, off = c.offset;
    std::uniform_real_distribution<double> U(-1.0, 1.0);
    std::vector<double> x(B * N * d), y(B * M * d), beta(B * M), w(B * M * e);
    for (auto &v : x) v = U(rng);
    for (auto &v : y) v = U(rng);
    for (auto &v : w) v = U(rng);
    for (int64_t k = 0; k < B * M; ++k) {
        beta[k] = 2.0 * U(rng);
        if (c.neg_inf_keys && k % 7 == 3) beta[k] = -INFINITY;
        if (c.empty_batch && k / M == B - 1) beta[k] = -INFINITY;
    }
    // Round the inputs to T so the reference sees what the kernel sees.
    auto round = [](std::vector<double> &v) { for (auto &a : v) a = (double)(T)a; };
    round(x), round(y), round(beta), round(w);
    std::vector<double> row_a, row_lambda;
    if (per_row) { // scores beta_j - lambda_i |x_i - a_i y_j|^2
        for (int64_t k = 0; k < B * N; ++k) {
            row_a.push_back(0.5 + 0.5 * std::fabs(U(rng)));
            row_lambda.push_back(std::exp(3.0 * U(rng)));
        }
    }
    // Device copies (host memory here) with `off` leading elements, so a batch entry's
    // arrays start 16-byte aligned or not.
    auto dev = [&](const std::vector<double> &v) {
        std::vector<T> t(v.size() + off + 4);
        for (size_t k = 0; k < v.size(); ++k) t[k + off] = (T)v[k];
        return t;
    };
    std::vector<T> dx = dev(x), dy = dev(y), db = dev(beta), dw = dev(w);
    std::vector<T> lse(B * N, (T)NAN), out(B * N * (e ? e : 1), (T)NAN);
    std::vector<T> lse2(B * N, (T)NAN), out2(B * N * (e ? e : 1), (T)NAN);
    advk_interaction_args a = {prec, c.kernel, c.causal, B, N, M, d, e,
                               per_row ? 1.0 : c.lambda, c.gamma,
                               dx.data() + off, dy.data() + off, db.data() + off,
                               e ? dw.data() + off : nullptr, lse.data(), e ? out.data() : nullptr,
                               per_row ? row_a.data() : nullptr, per_row ? row_lambda.data() : nullptr};
    const int64_t kpg = advk_interaction_group_keys(M);
    EXPECT(advk_interaction_direct(&a, 1, kpg, nullptr, nullptr) == cudaSuccess, "launch");
    // Split keys: one block per key group, merged by merge_kernel.
    const int splits = (int)((M + kpg - 1) / kpg);
    if (splits > 1) {
        std::vector<T> partial((size_t)splits * B * N * (2 + e));
        advk_interaction_args a2 = a;
        a2.lse = lse2.data();
        a2.out = e ? out2.data() : nullptr;
        EXPECT(advk_interaction_direct(&a2, splits, kpg, partial.data(), nullptr) == cudaSuccess,
               "split launch");
        EXPECT(advk_interaction_merge(&a2, splits, partial.data(), nullptr) == cudaSuccess, "merge");
        EXPECT(std::memcmp(lse.data(), lse2.data(), lse.size() * sizeof(T)) == 0 &&
                   (!e || std::memcmp(out.data(), out2.data(), out.size() * sizeof(T)) == 0),
               "split rows differ from unsplit rows (M %lld, %d splits)", (long long)M, splits);
    }
    // Reference (the per-row mode: one row at a time, per_row_reference).
    std::vector<double> rl(B * N), ro(B * N * (e ? e : 1)), S(B * N), W(B * N);
    if (!per_row) {
        ref_problem p = {(adv_kernel)c.kernel, B, N, M, d, e, c.lambda, c.gamma, c.causal, 0,
                         x.data(), y.data(), beta.data(), e ? w.data() : nullptr};
        ref_interaction(&p, rl.data(), e ? ro.data() : nullptr);
        ref_score_scale(&p, S.data());
        ref_value_scale(&p, W.data());
    } else {
        per_row_reference(B, N, M, d, e, x, y, beta, w, row_a, row_lambda, x, y, rl, ro, S, W);
    }
    for (int64_t r = 0; r < B * N; ++r) {
        const double ds = u * (2.0 * (double)d * S[r] + 64.0), sum_err = u * ((double)M + 64.0);
        const double tl = ds + sum_err, to = W[r] * (2.0 * ds + 2.0 * sum_err);
        if (std::isinf(rl[r]))
            EXPECT(std::isinf((double)lse[r]) && lse[r] < 0, "row %lld: lse %g, expected -Inf",
                   (long long)r, (double)lse[r]);
        else
            EXPECT(std::fabs((double)lse[r] - rl[r]) <= tl, "%s row %lld: lse %.9g, expected %.9g (tol %.3g)",
                   sizeof(T) == 8 ? "f64" : "f32", (long long)r, (double)lse[r], rl[r], tl);
        for (int64_t k = 0; k < e; ++k)
            EXPECT(std::fabs((double)out[r * e + k] - ro[r * e + k]) <= to,
                   "%s row %lld col %lld: out %.9g, expected %.9g (tol %.3g)",
                   sizeof(T) == 8 ? "f64" : "f32", (long long)r, (long long)k,
                   (double)out[r * e + k], ro[r * e + k], to);
    }
}

/* cuBLAS's column-major C = alpha op(A) op(B) + beta C for a batch (strides sa, sb, sc). */
template <typename T>
static void gemm(bool ta, int m, int n, int k, const T *A, int lda, long long sa, const T *Bm, int ldb,
                 long long sb, double beta, T *C, int ldc, long long sc, int batch) {
    for (int b = 0; b < batch; ++b)
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                double acc = 0;
                for (int l = 0; l < k; ++l)
                    acc += (double)(ta ? A[b * sa + i * lda + l] : A[b * sa + l * lda + i]) *
                           (double)Bm[b * sb + j * ldb + l];
                T &c = C[b * sc + j * ldc + i];
                c = (T)(acc + beta * (double)c);
            }
}

struct GemmCase {
    int kernel;
    int64_t B, N, M, d, e;
    double lambda, gamma, shift; // shift: added to every coordinate (data far from the origin)
    int causal, values_are_keys, close_pairs;
    int per_row; // scores beta_j - l_i |x_i - a_i y_j|^2 (l_i around lambda, gamma unused)
};

template <typename T> static void run_gemm(const GemmCase &c, std::mt19937_64 &rng) {
    const int prec = sizeof(T) == 8 ? 1 : 0;
    const double u = sizeof(T) == 8 ? 0x1p-53 : 0x1p-24;
    const int64_t B = c.B, N = c.N, M = c.M, D = c.d, E = c.values_are_keys ? c.d : c.e;
    const int sq = c.kernel == 0;
    std::uniform_real_distribution<double> U(-1.0, 1.0);
    std::vector<double> x(B * N * D), y(B * M * D), beta(B * M), w(B * M * (E ? E : 1));
    // Per-row mode: the row's key scale a_i and lambda l_i (rounded to T, as the kernel uses
    // them), and gamma_i = 1 / a_i for the reference.
    std::vector<double> row_a(B * N, 1.0), row_lambda(B * N, c.lambda), row_gamma(B * N, c.gamma);
    if (c.per_row)
        for (int64_t r = 0; r < B * N; ++r) {
            row_a[r] = (double)(T)(0.5 + 0.5 * std::fabs(U(rng)));
            row_lambda[r] = (double)(T)(c.lambda * std::exp(U(rng)));
            row_gamma[r] = 1.0 / row_a[r];
        }
    for (auto &v : y) v = (double)(T)(c.shift + U(rng));
    // Close pairs: keys in clusters of 4 within 1e-3 of each other, so that a query's nearest
    // keys all carry weight and a score error shows in out, not only in lse.
    if (c.close_pairs)
        for (int64_t j = 0; j < B * M; ++j)
            if (j % M % 4)
                for (int64_t k = 0; k < D; ++k)
                    y[j * D + k] = (double)(T)(y[(j - j % M % 4) * D + k] + 1e-3 * U(rng));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < N; ++i)
            for (int64_t k = 0; k < D; ++k) {
                // close pairs: each query within 1e-3 of a key (scaled by 1/gamma)
                const double g = row_gamma[b * N + i];
                const double base = c.close_pairs ? y[(b * M + (i % M)) * D + k] / g : c.shift / g;
                x[(b * N + i) * D + k] = (double)(T)(base + (c.close_pairs ? 1e-3 : 1.0) * U(rng));
            }
    for (auto &v : beta) v = (double)(T)U(rng);
    if (c.values_are_keys) w = y;
    else for (auto &v : w) v = (double)(T)U(rng);
    std::vector<T> tx(x.begin(), x.end()), ty(y.begin(), y.end()), tb(beta.begin(), beta.end()),
        tw(w.begin(), w.end());
    std::vector<T> lse(B * N, (T)NAN), out(B * N * (E ? E : 1), (T)NAN);
    advk_interaction_args a = {prec, c.kernel, c.causal, B, N, M, D, E, c.per_row ? 1.0 : c.lambda,
                               c.gamma, tx.data(), ty.data(), tb.data(), E ? tw.data() : nullptr,
                               c.per_row ? nullptr : lse.data(), E ? out.data() : nullptr,
                               c.per_row ? row_a.data() : nullptr, c.per_row ? row_lambda.data() : nullptr};
    const int64_t tq = 40, tk = 96; // awkward tile sizes
    std::vector<T> center(B * D), xc(B * N * D), yc(B * M * D), xn(B * N), yn(B * M), scores(B * tq * tk),
        ms(B * tq), ss(B * tq);
    const T *xs = sq ? xc.data() : tx.data(), *ys = sq ? yc.data() : ty.data();
    if (sq) {
        EXPECT(advk_center_sqdist(prec, tx.data(), N, ty.data(), M, B, D, c.gamma, a.row_a, center.data(),
                                  xc.data(), yc.data(), nullptr) == cudaSuccess, "centring");
        // The centre is the midpoint of each entry's key bounding box over all M keys (the
        // kernel reduces them over several warps), exactly as computed here.
        for (int64_t b = 0; b < B; ++b)
            for (int64_t k = 0; k < D; ++k) {
                T lo = (T)INFINITY, hi = -(T)INFINITY;
                for (int64_t j = 0; j < M; ++j) {
                    lo = std::min(lo, ty[(b * M + j) * D + k]);
                    hi = std::max(hi, ty[(b * M + j) * D + k]);
                }
                const T want = (T)(0.5 * ((double)lo + (double)hi));
                EXPECT(center[b * D + k] == want, "GEMM %s entry %lld coordinate %lld: centre %.9g, expected %.9g",
                       prec ? "f64" : "f32", (long long)b, (long long)k, (double)center[b * D + k], (double)want);
            }
        advk_sq_norms(prec, xs, B * N, D, 1.0, xn.data(), nullptr);
        advk_sq_norms(prec, ys, B * M, D, 1.0, yn.data(), nullptr);
    }
    for (int64_t q0 = 0; q0 < N; q0 += tq) {
        const int64_t qc = std::min(tq, N - q0), kend = c.causal ? std::min(M, q0 + qc) : M;
        advk_tile t = {0, B, q0, qc, 0, 0, tq, tk, 1, scores.data(), xn.data(), yn.data(), ms.data(), ss.data()};
        for (int64_t k0 = 0; k0 < kend; k0 += tk) {
            t.k0 = k0, t.kc = std::min(tk, kend - k0), t.first = k0 == 0;
            gemm<T>(true, (int)t.kc, (int)qc, (int)D, ys + k0 * D, (int)D, M * D, xs + q0 * D, (int)D, N * D,
                    0.0, scores.data(), (int)tk, tq * tk, (int)B);
            EXPECT(advk_interaction_tile_update(&a, &t, nullptr) == cudaSuccess, "tile update");
            if (E > 0)
                gemm<T>(false, (int)E, (int)qc, (int)t.kc, tw.data() + k0 * E, (int)E, M * E, scores.data(),
                        (int)tk, tq * tk, 1.0, out.data() + q0 * E, (int)E, N * E, (int)B);
        }
        EXPECT(advk_interaction_tile_finalize(&a, &t, nullptr) == cudaSuccess, "tile finalize");
    }
    std::vector<double> rl(B * N), ro(B * N * (E ? E : 1)), S(B * N), W(B * N);
    // Centred data: the score scale of the same problem moved back to the origin.
    std::vector<double> xr(x), yr(y);
    if (sq)
        for (int64_t b = 0; b < B; ++b)
            for (int64_t k = 0; k < D; ++k) {
                const double cb = (double)center[b * D + k];
                for (int64_t i = 0; i < N; ++i) xr[(b * N + i) * D + k] -= cb / row_gamma[b * N + i];
                for (int64_t j = 0; j < M; ++j) yr[(b * M + j) * D + k] -= cb;
            }
    if (!c.per_row) {
        ref_problem p = {(adv_kernel)c.kernel, B, N, M, D, E, c.lambda, c.gamma, c.causal, 0,
                         x.data(), y.data(), beta.data(), E ? w.data() : nullptr};
        ref_interaction(&p, rl.data(), E ? ro.data() : nullptr);
        ref_value_scale(&p, W.data());
        p.x = xr.data(), p.y = yr.data();
        ref_score_scale(&p, S.data());
    } else {
        per_row_reference(B, N, M, D, E, x, y, beta, w, row_a, row_lambda, xr, yr, rl, ro, S, W);
    }
    // Close pairs: the tolerance of the scores that matter, measured from the row's nearest key
    // (as the conformance suite's close-pairs test): S = lambda min_j |x - y_j|^2 + 100. The
    // expansion alone is off by ~u lambda |y - c|^2 there; the refinement must fix it.
    if (c.close_pairs)
        for (int64_t b = 0; b < B; ++b)
            for (int64_t i = 0; i < N; ++i) {
                double nearest = INFINITY;
                for (int64_t j = 0; j < M; ++j) {
                    double d2 = 0;
                    for (int64_t k = 0; k < D; ++k) {
                        const double t = row_gamma[b * N + i] * x[(b * N + i) * D + k] - y[(b * M + j) * D + k];
                        d2 += t * t;
                    }
                    nearest = std::min(nearest, d2);
                }
                const double a = row_a[b * N + i];
                S[b * N + i] = (c.per_row ? row_lambda[b * N + i] * a * a : c.lambda) * nearest + 100.0;
            }
    for (int64_t r = 0; r < B * N; ++r) {
        const double ds = u * (2.0 * (double)D * S[r] + 64.0), sum_err = u * ((double)M + 64.0);
        const double tl = ds + sum_err, to = W[r] * (2.0 * ds + 2.0 * sum_err);
        if (!c.per_row) // (the per-row mode writes no lse)
            EXPECT(std::fabs((double)lse[r] - rl[r]) <= tl, "GEMM %s row %lld: lse %.9g, expected %.9g (tol %.3g)",
               prec ? "f64" : "f32", (long long)r, (double)lse[r], rl[r], tl);
        for (int64_t k = 0; k < E; ++k)
            EXPECT(std::fabs((double)out[r * E + k] - ro[r * E + k]) <= to,
                   "GEMM %s row %lld col %lld: out %.9g, expected %.9g (tol %.3g)", prec ? "f64" : "f32",
                   (long long)r, (long long)k, (double)out[r * E + k], ro[r * E + k], to);
    }
}

int main() {
    std::mt19937_64 rng(7);
    const Case cases[] = {
        // kernel B N M d e lambda gamma causal -inf empty offset
        {0, 2, 301, 1100, 2, 2, 1.0, 1.0, 0, 0, 0, 0},   // d = 2 throughput shape, aligned
        {0, 2, 37, 1100, 2, 2, 3.0, 0.75, 0, 1, 1, 1},   // unaligned, -Inf keys, empty batch
        {0, 1, 5, 2100, 3, 3, 1.0, 1.0, 0, 0, 0, 0},     // d = 3 (padded rows), 3 groups
        {0, 2, 19, 333, 1, 0, 0.5, 1.0, 0, 1, 0, 2},     // lse only
        {0, 1, 17, 129, 4, 16, 2.0, 1.0, 0, 0, 0, 0},    // e = 16
        {0, 1, 9, 70, 5, 7, 1.0, 1.0, 0, 0, 0, 0},       // d = 5 (bucket 8), e = 7
        {0, 1, 11, 64, 2, 2, 1e6, 1.0, 0, 0, 0, 0},      // large lambda
        {1, 2, 40, 40, 3, 3, 0.3, 1.0, 1, 0, 0, 0},      // DOT, causal
        {1, 1, 13, 1030, 16, 4, 0.1, 1.0, 0, 1, 0, 3},   // DOT, d = 16, 2 groups
    };
    for (const Case &c : cases) {
        run_case<float>(c, rng, false);
        run_case<double>(c, rng, false);
        if (c.kernel == 0 && c.gamma == 1.0) {
            run_case<float>(c, rng, true);
            run_case<double>(c, rng, true);
        }
    }
    const GemmCase gemm_cases[] = {
        // kernel B N M d e lambda gamma shift causal values=keys close per-row
        {0, 2, 53, 201, 64, 3, 1.0, 1.0, 0.0, 0, 0, 0, 0},
        {0, 1, 45, 150, 80, 0, 0.5, 0.75, 40.0, 0, 1, 0, 0}, // far from the origin (centring)
        {0, 1, 41, 97, 64, 0, 1e6, 1.0, 0.0, 0, 1, 1, 0},    // close pairs at large lambda
        {1, 2, 70, 70, 64, 5, 0.05, 1.0, 0.0, 1, 0, 0, 0},   // DOT, causal
        {0, 2, 47, 130, 72, 0, 0.5, 1.0, 30.0, 0, 1, 0, 1},  // per-row, far from the origin
        {0, 1, 43, 97, 65, 6, 1e5, 1.0, 0.0, 0, 0, 1, 1},    // per-row, close pairs, large lambda
    };
    for (const GemmCase &c : gemm_cases) {
        run_gemm<float>(c, rng);
        run_gemm<double>(c, rng);
    }
    return emu_report("interaction_emu");
}
