/* Test-side references of the sampling suites (fields and samplers): naive double-precision
 * formulas of spec math.md §2 written independently of the library (direct softmax, dense
 * inverses by Gauss-Jordan, matrix square roots by the Denman-Beavers iteration instead of the
 * library's Jacobi eigensolver), sample moments, and a CPU context helper. Header-only
 * (static functions) so each suite takes what it needs. */
#ifndef ADVECT_TESTS_SAMPLING_UTIL_H
#define ADVECT_TESTS_SAMPLING_UTIL_H

#include "test_util.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A CPU context with a fixed thread count (tests never oversubscribe the machine). */
static inline adv_context *su_cpu_context(int threads) {
    adv_context_opts o;
    adv_context_default_opts(&o);
    o.backend = ADV_BACKEND_CPU;
    o.cpu_threads = threads;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&o, &ctx), ADV_OK);
    return ctx;
}

static inline void su_matmul(int d, const double *A, const double *B, double *C) {
    for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) {
            double s = 0.0;
            for (int k = 0; k < d; ++k) s += A[i * d + k] * B[k * d + j];
            C[i * d + j] = s;
        }
}

/* Inverse by Gauss-Jordan with partial pivoting (d <= 16). */
static inline void su_inverse(int d, const double *A, double *X) {
    double M[16 * 32];
    cr_assert(d <= 16);
    for (int i = 0; i < d; ++i)
        for (int j = 0; j < 2 * d; ++j) M[i * 2 * d + j] = j < d ? A[i * d + j] : (j - d == i);
    for (int c = 0; c < d; ++c) {
        int p = c;
        for (int r = c + 1; r < d; ++r)
            if (fabs(M[r * 2 * d + c]) > fabs(M[p * 2 * d + c])) p = r;
        for (int j = 0; j < 2 * d; ++j) {
            double t = M[c * 2 * d + j];
            M[c * 2 * d + j] = M[p * 2 * d + j];
            M[p * 2 * d + j] = t;
        }
        double piv = M[c * 2 * d + c];
        for (int j = 0; j < 2 * d; ++j) M[c * 2 * d + j] /= piv;
        for (int r = 0; r < d; ++r) {
            if (r == c) continue;
            double f = M[r * 2 * d + c];
            for (int j = 0; j < 2 * d; ++j) M[r * 2 * d + j] -= f * M[c * 2 * d + j];
        }
    }
    for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) X[i * d + j] = M[i * 2 * d + d + j];
}

/* Principal square root of a symmetric positive definite matrix by the Denman-Beavers
 * iteration Y <- (Y + Z^-1)/2, Z <- (Z + Y^-1)/2 (Y -> A^1/2). */
static inline void su_sqrtm(int d, const double *A, double *R) {
    double Y[256], Z[256], Yi[256], Zi[256];
    cr_assert(d <= 16);
    memcpy(Y, A, sizeof(double) * d * d);
    for (int i = 0; i < d * d; ++i) Z[i] = (i % (d + 1)) == 0;
    for (int it = 0; it < 60; ++it) {
        su_inverse(d, Y, Yi);
        su_inverse(d, Z, Zi);
        for (int i = 0; i < d * d; ++i) {
            Y[i] = 0.5 * (Y[i] + Zi[i]);
            Z[i] = 0.5 * (Z[i] + Yi[i]);
        }
    }
    memcpy(R, Y, sizeof(double) * d * d);
}

/* A random symmetric positive definite matrix B B^T + shift I. */
static inline void su_random_spd(int d, double shift, uint64_t seed, double *S) {
    double B[256];
    tu_fill_uniform(B, (size_t)(d * d), -1.0, 1.0, seed);
    for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) {
            double s = i == j ? shift : 0.0;
            for (int k = 0; k < d; ++k) s += B[i * d + k] * B[j * d + k];
            S[i * d + j] = s;
        }
}

/* Sample mean and covariance (1/N normalisation) of N rows of d doubles. */
static inline void su_moments(const double *z, int64_t N, int d, double *mean, double *cov) {
    for (int k = 0; k < d; ++k) {
        double s = 0.0;
        for (int64_t i = 0; i < N; ++i) s += z[i * d + k];
        mean[k] = s / (double)N;
    }
    for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) {
            double s = 0.0;
            for (int64_t i = 0; i < N; ++i) s += (z[i * d + a] - mean[a]) * (z[i * d + b] - mean[b]);
            cov[a * d + b] = s / (double)N;
        }
}

/* Empirical denoiser, naive: two-pass softmax over all data points in double. w: weights
 * (NULL: uniform). At b = 0 the nearest data point. */
static inline void su_ref_empirical(const double *y, const double *w, int64_t n, int d,
                                    double sigma, double a, double b, const double *z,
                                    double *D) {
    double *s = malloc((size_t)n * sizeof *s), m = -INFINITY;
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) total += w ? w[j] : 1.0;
    int64_t nearest = 0;
    double best = INFINITY;
    for (int64_t j = 0; j < n; ++j) {
        double d2 = 0.0;
        for (int k = 0; k < d; ++k) d2 += (z[k] - a * y[j * d + k]) * (z[k] - a * y[j * d + k]);
        double wj = w ? w[j] : 1.0;
        if (wj > 0.0 && d2 < best) {
            best = d2;
            nearest = j;
        }
        s[j] = wj > 0.0 ? log(wj / total) - (b > 0.0 ? d2 / (2.0 * b * b * sigma * sigma) : 0.0)
                        : -INFINITY;
        if (s[j] > m) m = s[j];
    }
    for (int k = 0; k < d; ++k) D[k] = 0.0;
    if (!(b > 0.0)) {
        for (int k = 0; k < d; ++k) D[k] = y[nearest * d + k];
        free(s);
        return;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        double e = exp(s[j] - m);
        sum += e;
        for (int k = 0; k < d; ++k) D[k] += e * y[j * d + k];
    }
    for (int k = 0; k < d; ++k) D[k] /= sum;
    free(s);
}

/* Gaussian flow-matching field by the formulas of math.md §2 with a dense inverse:
 *   v = (m1 - m0) + (t S1 - (1-t) S0) Sigma_t^-1 (z - m_t), score = -Sigma_t^-1 (z - m_t),
 *   D = m1 + t S1 Sigma_t^-1 (z - m_t). */
static inline void su_ref_gauss_fm(int d, const double *m0, const double *S0, const double *m1,
                                   const double *S1, double t, const double *z, double *v,
                                   double *score, double *D) {
    double St[256], Si[256], r[16], u[16];
    for (int i = 0; i < d * d; ++i) St[i] = (1 - t) * (1 - t) * S0[i] + t * t * S1[i];
    su_inverse(d, St, Si);
    for (int k = 0; k < d; ++k) r[k] = z[k] - ((1 - t) * m0[k] + t * m1[k]);
    for (int k = 0; k < d; ++k) {
        double s = 0.0;
        for (int j = 0; j < d; ++j) s += Si[k * d + j] * r[j];
        u[k] = s;
    }
    for (int k = 0; k < d; ++k) {
        double sv = 0.0, sd = 0.0;
        for (int j = 0; j < d; ++j) {
            sv += (t * S1[k * d + j] - (1 - t) * S0[k * d + j]) * u[j];
            sd += t * S1[k * d + j] * u[j];
        }
        if (v) v[k] = (m1[k] - m0[k]) + sv;
        if (score) score[k] = -u[k];
        if (D) D[k] = m1[k] + sd;
    }
}

/* Bures map matrix A = S0^-1/2 (S0^1/2 S1 S0^1/2)^1/2 S0^-1/2 by Denman-Beavers. */
static inline void su_ref_ot_matrix(int d, const double *S0, const double *S1, double *A) {
    double R[256], Ri[256], T[256], M[256], Q[256];
    su_sqrtm(d, S0, R);
    su_inverse(d, R, Ri);
    su_matmul(d, R, S1, T);
    su_matmul(d, T, R, M);
    su_sqrtm(d, M, Q);
    su_matmul(d, Ri, Q, T);
    su_matmul(d, T, Ri, A);
}

/* Gaussian OT geodesic field. X1 = m1 + A (X0 - m0) with M_t = (1-t) I + t A, so the particle
 * determines x0 = M_t^-1 (z - m_t) and v = (m1 - m0) + (A - I) x0, D = m1 + A x0; the score is
 * -Sigma_t^-1 (z - m_t) with Sigma_t = M_t S0 M_t (A, M_t symmetric): -M_t^-1 S0^-1 x0.
 * score and D may be NULL. */
static inline void su_ref_gauss_ot(int d, const double *m0, const double *S0, const double *m1,
                                   const double *S1, double t, const double *z, double *v,
                                   double *score, double *D) {
    double A[256], M[256], Mi[256], S0i[256], r[16], x0[16], y[16];
    su_ref_ot_matrix(d, S0, S1, A);
    for (int i = 0; i < d * d; ++i) M[i] = t * A[i] + ((i % (d + 1)) == 0 ? 1 - t : 0.0);
    su_inverse(d, M, Mi);
    su_inverse(d, S0, S0i);
    for (int k = 0; k < d; ++k) r[k] = z[k] - ((1 - t) * m0[k] + t * m1[k]);
    for (int j = 0; j < d; ++j) {
        x0[j] = 0.0;
        for (int l = 0; l < d; ++l) x0[j] += Mi[j * d + l] * r[l];
    }
    for (int k = 0; k < d; ++k) {
        double s = 0.0, a = 0.0;
        for (int j = 0; j < d; ++j) {
            s += (A[k * d + j] - (k == j)) * x0[j];
            a += A[k * d + j] * x0[j];
        }
        v[k] = (m1[k] - m0[k]) + s;
        if (D) D[k] = m1[k] + a;
    }
    if (!score) return;
    for (int j = 0; j < d; ++j) {
        y[j] = 0.0;
        for (int l = 0; l < d; ++l) y[j] += S0i[j * d + l] * x0[l];
    }
    for (int k = 0; k < d; ++k) {
        double s = 0.0;
        for (int j = 0; j < d; ++j) s += Mi[k * d + j] * y[j];
        score[k] = -s;
    }
}

/* Copies n x d doubles to/from the context in precision p (CPU contexts: host memory). */
static inline void *su_put(adv_context *ctx, adv_precision p, const double *host, size_t count) {
    void *dev = NULL;
    cr_assert_eq(adv_malloc(ctx, count * tu_real_size(p) + 8, &dev), ADV_OK);
    void *tmp = tu_to_precision(host, count, p);
    cr_assert_eq(adv_memcpy(ctx, dev, tmp, count * tu_real_size(p), ADV_COPY_HOST_TO_CONTEXT), ADV_OK);
    free(tmp);
    return dev;
}

static inline void su_get(adv_context *ctx, adv_precision p, const void *dev, double *host,
                          size_t count) {
    void *tmp = malloc(count * tu_real_size(p) + 8);
    cr_assert_eq(adv_memcpy(ctx, tmp, dev, count * tu_real_size(p), ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
    tu_from_precision(host, tmp, count, p);
    free(tmp);
}

#endif
