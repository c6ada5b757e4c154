/* Small dense linear algebra in double on the host, for the Gaussian fields and the
 * closed-form helpers of include/advect/field.h: a cyclic Jacobi symmetric eigensolver,
 * Cholesky, triangular inverse, and the Gaussian time-1 maps, W2^2 (Bures, no factor 1/2) and
 * kinetic energies. Matrices are d x d row-major; d is small (the fields' cost is O(d^2) per
 * particle, these O(d^3) set-ups run once per field). */
#include "sampling_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int advi_is_symmetric(int64_t d, const double *S) {
    double scale = 0.0;
    for (int64_t k = 0; k < d * d; ++k) {
        if (!isfinite(S[k])) return 0;
        scale = fmax(scale, fabs(S[k]));
    }
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < i; ++j)
            if (fabs(S[i * d + j] - S[j * d + i]) > 1e-12 * scale) return 0;
    return 1;
}

int advi_jacobi_eigen(int64_t d, const double *S, double *w, double *V) {
    double *A = malloc((size_t)(d * d) * sizeof *A);
    if (!A) return -2;
    for (int64_t k = 0; k < d * d; ++k) {
        if (!isfinite(S[k])) {
            free(A);
            return -1;
        }
        A[k] = S[k];
    }
    // Work on the symmetric part so a tiny asymmetry cannot stall the sweeps.
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < i; ++j) A[i * d + j] = A[j * d + i] = 0.5 * (A[i * d + j] + A[j * d + i]);
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) V[i * d + j] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; ++sweep) {
        double off = 0.0, diag = 0.0;
        for (int64_t i = 0; i < d; ++i) {
            diag += A[i * d + i] * A[i * d + i];
            for (int64_t j = i + 1; j < d; ++j) off += A[i * d + j] * A[i * d + j];
        }
        if (off <= 1e-32 * diag || off == 0.0) break;
        for (int64_t p = 0; p < d; ++p)
            for (int64_t q = p + 1; q < d; ++q) {
                double apq = A[p * d + q];
                if (apq == 0.0) continue;
                double app = A[p * d + p], aqq = A[q * d + q];
                // Rotation that zeroes A[p][q] (Golub & Van Loan 8.4.2), stable form.
                double theta = (aqq - app) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int64_t k = 0; k < d; ++k) {
                    double akp = A[k * d + p], akq = A[k * d + q];
                    A[k * d + p] = c * akp - s * akq;
                    A[k * d + q] = s * akp + c * akq;
                }
                for (int64_t k = 0; k < d; ++k) {
                    double apk = A[p * d + k], aqk = A[q * d + k];
                    A[p * d + k] = c * apk - s * aqk;
                    A[q * d + k] = s * apk + c * aqk;
                }
                A[p * d + q] = A[q * d + p] = 0.0;
                for (int64_t k = 0; k < d; ++k) {
                    double vkp = V[k * d + p], vkq = V[k * d + q];
                    V[k * d + p] = c * vkp - s * vkq;
                    V[k * d + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int64_t i = 0; i < d; ++i) w[i] = A[i * d + i];
    free(A);
    // Sort ascending (selection sort; d is small), moving eigenvector columns along.
    for (int64_t i = 0; i < d; ++i) {
        int64_t m = i;
        for (int64_t j = i + 1; j < d; ++j)
            if (w[j] < w[m]) m = j;
        if (m == i) continue;
        double tw = w[i];
        w[i] = w[m];
        w[m] = tw;
        for (int64_t k = 0; k < d; ++k) {
            double tv = V[k * d + i];
            V[k * d + i] = V[k * d + m];
            V[k * d + m] = tv;
        }
    }
    return 0;
}

int advi_cholesky(int64_t d, const double *S, double *L) {
    memset(L, 0, (size_t)(d * d) * sizeof *L);
    for (int64_t j = 0; j < d; ++j) {
        double s = S[j * d + j];
        for (int64_t k = 0; k < j; ++k) s -= L[j * d + k] * L[j * d + k];
        if (!(s > 0.0) || !isfinite(s)) return -1;
        double ljj = sqrt(s);
        L[j * d + j] = ljj;
        for (int64_t i = j + 1; i < d; ++i) {
            double v = S[i * d + j];
            for (int64_t k = 0; k < j; ++k) v -= L[i * d + k] * L[j * d + k];
            L[i * d + j] = v / ljj;
        }
    }
    return 0;
}

void advi_lower_inverse(int64_t d, const double *L, double *Linv) {
    memset(Linv, 0, (size_t)(d * d) * sizeof *Linv);
    for (int64_t j = 0; j < d; ++j) {
        Linv[j * d + j] = 1.0 / L[j * d + j];
        for (int64_t i = j + 1; i < d; ++i) {
            double s = 0.0;
            for (int64_t k = j; k < i; ++k) s += L[i * d + k] * Linv[k * d + j];
            Linv[i * d + j] = -s / L[i * d + i];
        }
    }
}

void advi_matmul(int64_t d, const double *A, const double *B, double *C) {
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) {
            double s = 0.0;
            for (int64_t k = 0; k < d; ++k) s += A[i * d + k] * B[k * d + j];
            C[i * d + j] = s;
        }
}

/* out = V diag(f(w)) V^T for the symmetric S = V diag(w) V^T. power: 0.5 or -0.5; negative
 * eigenvalues (rounding of a semi-definite matrix) are clipped to 0 for the square root. */
static int sym_power(int64_t d, const double *S, double power, double *out) {
    double *w = malloc((size_t)d * sizeof *w), *V = malloc((size_t)(d * d) * sizeof *V);
    int rc = (w && V) ? advi_jacobi_eigen(d, S, w, V) : -2;
    if (rc == 0) {
        for (int64_t k = 0; k < d; ++k) {
            double x = w[k] > 0.0 ? w[k] : 0.0;
            if (power < 0 && !(x > 0.0)) {
                rc = -1;
                break;
            }
            w[k] = power > 0 ? sqrt(x) : 1.0 / sqrt(x);
        }
    }
    if (rc == 0)
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j < d; ++j) {
                double s = 0.0;
                for (int64_t k = 0; k < d; ++k) s += V[i * d + k] * w[k] * V[j * d + k];
                out[i * d + j] = s;
            }
    free(w);
    free(V);
    return rc;
}

static void symmetrize(int64_t d, double *A) {
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < i; ++j) A[i * d + j] = A[j * d + i] = 0.5 * (A[i * d + j] + A[j * d + i]);
}

/* Whether the symmetric S is positive semi-definite up to rounding: no eigenvalue below
 * -1e-10 (d max|eigenvalue|) (the clipping in sym_power absorbs those). -1: out of memory. */
static int is_psd(int64_t d, const double *S) {
    double *w = malloc((size_t)d * sizeof *w), *V = malloc((size_t)(d * d) * sizeof *V);
    const int rc = w && V ? advi_jacobi_eigen(d, S, w, V) : -2;
    int ok = rc == -2 ? -1 : 0;
    if (rc == 0) {
        double lo = 0.0, hi = 0.0;
        for (int64_t k = 0; k < d; ++k) lo = fmin(lo, w[k]), hi = fmax(hi, fabs(w[k]));
        ok = lo >= -1e-10 * (double)d * hi;
    }
    free(w);
    free(V);
    return ok;
}

/* Checks shared by the public helpers. spd: 1 requires positive definite (Cholesky), 0
 * positive semi-definite (eigenvalues, up to rounding). */
static adv_status check_gauss(int64_t d, const double *m0, const double *S0, const double *m1,
                              const double *S1, int spd) {
    if (!m0 || !S0 || !m1 || !S1) return ADV_ERR_NULL_POINTER;
    if (d < 1 || d > 4096) return ADV_ERR_INVALID_SIZE;
    for (int64_t k = 0; k < d; ++k)
        if (!isfinite(m0[k]) || !isfinite(m1[k])) return ADV_ERR_NONFINITE;
    for (int64_t k = 0; k < d * d; ++k)
        if (!isfinite(S0[k]) || !isfinite(S1[k])) return ADV_ERR_NONFINITE;
    if (!advi_is_symmetric(d, S0) || !advi_is_symmetric(d, S1)) return ADV_ERR_INVALID_VALUE;
    if (spd) {
        double *L = malloc((size_t)(d * d) * sizeof *L);
        if (!L) return ADV_ERR_OUT_OF_MEMORY;
        int bad = advi_cholesky(d, S0, L) != 0 || advi_cholesky(d, S1, L) != 0;
        free(L);
        if (bad) return ADV_ERR_INVALID_VALUE;
    } else {
        const int a = is_psd(d, S0), b = a == 1 ? is_psd(d, S1) : a;
        if (a < 0 || b < 0) return ADV_ERR_OUT_OF_MEMORY;
        if (!a || !b) return ADV_ERR_INVALID_VALUE;
    }
    return ADV_OK;
}

adv_status adv_symmetric_eigen(int64_t d, const double *S, double *evals, double *V) {
    if (!S || !evals || !V) return ADV_ERR_NULL_POINTER;
    if (d < 1 || d > 4096) return ADV_ERR_INVALID_SIZE;
    for (int64_t k = 0; k < d * d; ++k)
        if (!isfinite(S[k])) return ADV_ERR_NONFINITE;
    if (!advi_is_symmetric(d, S)) return ADV_ERR_INVALID_VALUE;
    int rc = advi_jacobi_eigen(d, S, evals, V);
    return rc == 0 ? ADV_OK : rc == -2 ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_NONFINITE;
}

adv_status adv_gaussian_map(adv_coupling coupling, int64_t d, const double *m0, const double *S0,
                            const double *m1, const double *S1, double *A, double *c) {
    adv_status st = check_gauss(d, m0, S0, m1, S1, 1);
    if (st != ADV_OK) return st;
    if (!A || !c) return ADV_ERR_NULL_POINTER;
    if (coupling != ADV_COUPLING_OT && coupling != ADV_COUPLING_INDEPENDENT)
        return ADV_ERR_INVALID_VALUE;
    size_t dd = (size_t)(d * d);
    double *buf = malloc(5 * dd * sizeof *buf);
    if (!buf) return ADV_ERR_OUT_OF_MEMORY;
    double *R = buf, *Ri = buf + dd, *M = buf + 2 * dd, *T = buf + 3 * dd, *Q = buf + 4 * dd;
    int rc = sym_power(d, S0, 0.5, R) | sym_power(d, S0, -0.5, Ri);
    if (rc == 0) {
        if (coupling == ADV_COUPLING_OT) {
            advi_matmul(d, R, S1, T); // S0^1/2 S1 S0^1/2
            advi_matmul(d, T, R, M);
            symmetrize(d, M);
            rc = sym_power(d, M, 0.5, Q);
            advi_matmul(d, Ri, Q, T);
            advi_matmul(d, T, Ri, A);
            symmetrize(d, A);
        } else {
            advi_matmul(d, Ri, S1, T); // C = S0^-1/2 S1 S0^-1/2
            advi_matmul(d, T, Ri, M);
            symmetrize(d, M);
            rc = sym_power(d, M, 0.5, Q);
            advi_matmul(d, R, Q, T);
            advi_matmul(d, T, Ri, A);
        }
    }
    if (rc == 0)
        for (int64_t i = 0; i < d; ++i) {
            double s = m1[i];
            for (int64_t k = 0; k < d; ++k) s -= A[i * d + k] * m0[k];
            c[i] = s;
        }
    free(buf);
    return rc == 0 ? ADV_OK : rc == -2 ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_INVALID_VALUE;
}

adv_status adv_gaussian_w2sq(int64_t d, const double *m0, const double *S0, const double *m1,
                             const double *S1, double *w2sq) {
    adv_status st = check_gauss(d, m0, S0, m1, S1, 0);
    if (st != ADV_OK) return st;
    if (!w2sq) return ADV_ERR_NULL_POINTER;
    size_t dd = (size_t)(d * d);
    double *buf = malloc(4 * dd * sizeof *buf);
    if (!buf) return ADV_ERR_OUT_OF_MEMORY;
    double *R = buf, *T = buf + dd, *M = buf + 2 * dd, *Q = buf + 3 * dd;
    int rc = sym_power(d, S0, 0.5, R);
    double w = 0.0;
    if (rc == 0) {
        advi_matmul(d, R, S1, T);
        advi_matmul(d, T, R, M);
        symmetrize(d, M);
        rc = sym_power(d, M, 0.5, Q);
    }
    if (rc == 0) {
        for (int64_t k = 0; k < d; ++k) {
            double dm = m0[k] - m1[k];
            w += dm * dm + S0[k * d + k] + S1[k * d + k] - 2.0 * Q[k * d + k];
        }
        *w2sq = w > 0.0 ? w : 0.0; // rounding can leave -1e-16 for equal Gaussians
    }
    free(buf);
    return rc == 0 ? ADV_OK : rc == -2 ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_INVALID_VALUE;
}

adv_status adv_gaussian_kinetic_energy(adv_coupling coupling, int64_t d, const double *m0,
                                       const double *S0, const double *m1, const double *S1,
                                       int nodes, double *energy) {
    adv_status st = check_gauss(d, m0, S0, m1, S1, 1);
    if (st != ADV_OK) return st;
    if (!energy) return ADV_ERR_NULL_POINTER;
    if (nodes < 1 || nodes > 1000000) return ADV_ERR_INVALID_SIZE;
    if (coupling != ADV_COUPLING_OT && coupling != ADV_COUPLING_INDEPENDENT)
        return ADV_ERR_INVALID_VALUE;
    double dm2 = 0.0;
    for (int64_t k = 0; k < d; ++k) dm2 += (m1[k] - m0[k]) * (m1[k] - m0[k]);
    size_t dd = (size_t)(d * d);
    double *buf = malloc((4 * dd + 2 * (size_t)d) * sizeof *buf);
    if (!buf) return ADV_ERR_OUT_OF_MEMORY;
    double *A = buf, *T = buf + dd, *L = buf + 2 * dd, *Li = buf + 3 * dd;
    double *c = buf + 4 * dd, *lam = c + d;
    int rc = 0;
    if (coupling == ADV_COUPLING_OT) {
        // v_t(X_t) = (m1 - m0) + (A - I)(X0 - m0) for every t: E|v|^2 is constant.
        st = adv_gaussian_map(ADV_COUPLING_OT, d, m0, S0, m1, S1, A, c);
        if (st == ADV_OK) {
            for (int64_t k = 0; k < d; ++k) A[k * d + k] -= 1.0;
            advi_matmul(d, A, S0, T);
            double tr = 0.0;
            for (int64_t i = 0; i < d; ++i)
                for (int64_t k = 0; k < d; ++k) tr += T[i * d + k] * A[i * d + k]; // tr(T A^T)
            *energy = dm2 + tr;
        }
        free(buf);
        return st;
    }
    // Independent coupling: S0 = L L^T, C = L^-1 S1 L^-T = Q diag(lam) Q^T, P = L Q;
    // E|v_t|^2 = |dm|^2 + sum_k kappa_k^2 den_k |P e_k|^2, kappa = (t lam - (1-t))/den.
    rc = advi_cholesky(d, S0, L);
    if (rc == 0) {
        advi_lower_inverse(d, L, Li);
        advi_matmul(d, Li, S1, T);
        for (int64_t i = 0; i < d; ++i) // A = T Li^T
            for (int64_t j = 0; j < d; ++j) {
                double s = 0.0;
                for (int64_t k = 0; k < d; ++k) s += T[i * d + k] * Li[j * d + k];
                A[i * d + j] = s;
            }
        symmetrize(d, A);
        rc = advi_jacobi_eigen(d, A, lam, T); // T = Q
    }
    if (rc == 0) {
        advi_matmul(d, L, T, A); // A = P
        for (int64_t k = 0; k < d; ++k) {
            double s = 0.0;
            for (int64_t i = 0; i < d; ++i) s += A[i * d + k] * A[i * d + k];
            c[k] = s;
        }
        static const double x4[4] = {-0.8611363115940526, -0.3399810435848563,
                                     0.3399810435848563, 0.8611363115940526};
        static const double w4[4] = {0.3478548451374538, 0.6521451548625461,
                                     0.6521451548625461, 0.3478548451374538};
        double e = 0.0;
        for (int q = 0; q < nodes; ++q)
            for (int g = 0; g < 4; ++g) {
                double t = (q + 0.5 * (1.0 + x4[g])) / nodes, s = 1.0 - t, f = 0.0;
                for (int64_t k = 0; k < d; ++k) {
                    double dn = s * s + t * t * lam[k], kap = (t * lam[k] - s) / dn;
                    f += kap * kap * dn * c[k];
                }
                e += 0.5 * w4[g] * f / nodes;
            }
        *energy = dm2 + e;
    }
    free(buf);
    return rc == 0 ? ADV_OK : rc == -2 ? ADV_ERR_OUT_OF_MEMORY : ADV_ERR_INVALID_VALUE;
}
