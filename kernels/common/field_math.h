/* Per-element math of the fields (spec math.md §2), shared by the CPU backend
 * (host/cpu/field_cpu.c) and the CUDA kernels (kernels/cuda/field.cu): built-in schedules,
 * the per-particle empirical posterior (used for per-particle times and at b_t = 0), the
 * Gaussian / Bures / mixture fields evaluated from precomputed factorisations, and exact
 * samples of alpha_t. Everything is computed in double and rounded once to the particles'
 * precision; parameters live in double arrays laid out by host/field.c. */
#ifndef ADVECT_KERNELS_COMMON_FIELD_MATH_H
#define ADVECT_KERNELS_COMMON_FIELD_MATH_H

#include "adv_hd.h"
#include "rng.h"

/* Schedule kinds, as adv_schedule_kind. */
#define ADVF_LINEAR 0
#define ADVF_COSINE 1
#define ADVF_VP 2
#define ADVF_VE 3

/* Random streams (the Philox counter's 4th word) of the sampling module. */
#define ADVF_STREAM_SOURCE 0x534F5552u /* exact samples of alpha_t: normals counter 0, choice 1 */
#define ADVF_STREAM_SDE 0x53444500u    /* SDE noise: | stage; counter = step */

/* Element access in either precision (prec: 0 float32, 1 float64). */
ADV_HD double advf_ld(const void *p, int prec, int64_t k) {
    return prec ? ((const double *)p)[k] : (double)((const float *)p)[k];
}
ADV_HD void advf_st(void *p, int prec, int64_t k, double v) {
    if (prec)
        ((double *)p)[k] = v;
    else
        ((float *)p)[k] = (float)v;
}

/* Built-in schedule at t in [0, 1]: out = a, b, a', b'. p0, p1 = beta_min, beta_max (VP) or
 * sigma_min, sigma_max (VE). End points are exact: b_1 = 0 for linear, cosine and VP (b' of VP
 * is -HUGE_VAL there), a_0 = 0 for linear and cosine. */
ADV_HD void advf_schedule(int kind, double p0, double p1, double t, double out[4]) {
    const double half_pi = 1.5707963267948966;
    if (kind == ADVF_COSINE) {
        // sin of the complementary angle keeps b_1 = 0 and a_0 = 0 exactly.
        out[0] = sin(half_pi * t);
        out[1] = sin(half_pi * (1.0 - t));
        out[2] = half_pi * out[1];
        out[3] = -half_pi * out[0];
    } else if (kind == ADVF_VP) {
        double s = 1.0 - t;
        double B = p0 * s + 0.5 * (p1 - p0) * s * s; // int_0^s beta
        double a = exp(-0.5 * B);
        double b = sqrt(-expm1(-B)); // sqrt(1 - a^2) without cancellation
        double da = 0.5 * a * (p0 + s * (p1 - p0));
        out[0] = a;
        out[1] = b;
        out[2] = da;
        out[3] = b > 0.0 ? -a * da / b : -HUGE_VAL;
    } else if (kind == ADVF_VE) {
        double lr = log(p0 / p1);
        double b = p1 * exp(t * lr);
        out[0] = 1.0;
        out[1] = b;
        out[2] = 0.0;
        out[3] = b * lr;
    } else { // linear
        out[0] = t;
        out[1] = 1.0 - t;
        out[2] = 1.0;
        out[3] = -1.0;
    }
}

/* Velocity and score from the denoiser: v = ca D + cz z, score = sa D + sz z. At b = 0 the
 * velocity and score are singular off the data; both are set to 0 (documented convention). */
ADV_HD void advf_denoiser_coefs(const double ab[4], double sigma, double *ca, double *cz,
                                double *sa, double *sz) {
    double a = ab[0], b = ab[1], da = ab[2], db = ab[3];
    if (!(b > 0.0)) {
        *ca = *cz = *sa = *sz = 0.0;
        return;
    }
    double r = db / b;
    *ca = da - a * r;
    *cz = r;
    double inv = 1.0 / (b * b * sigma * sigma);
    *sa = a * inv;
    *sz = -inv;
}

/* The coefficients a field in denoiser form needs at one particle's time, from the schedule's
 * ab = (a, b, a', b') there: c[0] = a; c[2] = lambda = 1/(2 b^2 sigma^2), +Inf at b = 0;
 * c[1] = the interaction engine's lambda: c[2], or 0 where c[2] is past lambda_direct (that
 * row is redone by the direct loop); c[3..6] = ca, cz, sa, sz (advf_denoiser_coefs). */
ADV_HD void advf_time_coefs(const double ab[4], double sigma, double lambda_direct, double c[7]) {
    const double b = ab[1];
    c[0] = ab[0];
    c[2] = b > 0.0 ? 1.0 / (2.0 * b * b * sigma * sigma) : HUGE_VAL;
    c[1] = c[2] <= lambda_direct ? c[2] : 0.0;
    advf_denoiser_coefs(ab, sigma, &c[3], &c[4], &c[5], &c[6]);
}

/* Empirical posterior mean of particle i: pi_j = softmax(logw_j - q |z_i - a y_j|^2),
 * D_i = sum_j pi_j y_j. q = 1/(2 b^2 sigma^2); q = +Inf (b = 0) or a row whose every score
 * underflows to -Inf selects the nearest data point (smallest distance, ties to the larger
 * weight, then the lower index). acc: d doubles of scratch. */
ADV_HD void advf_empirical_point(int prec, int64_t d, const void *z, int64_t i, int64_t nd,
                                 const void *y, const void *logw, double a, double q,
                                 double *acc, void *den) {
    double m = -HUGE_VAL, s = 0.0;
    int softmax = q < HUGE_VAL;
    if (softmax) {
        for (int64_t k = 0; k < d; ++k) acc[k] = 0.0;
        for (int64_t j = 0; j < nd; ++j) {
            double lw = advf_ld(logw, prec, j);
            if (lw == -HUGE_VAL) continue;
            double d2 = 0.0;
            for (int64_t k = 0; k < d; ++k) {
                double diff = advf_ld(z, prec, i * d + k) - a * advf_ld(y, prec, j * d + k);
                d2 += diff * diff;
            }
            double sc = lw - q * d2;
            if (!(sc > -HUGE_VAL)) continue;
            if (sc > m) {
                double f = (m == -HUGE_VAL) ? 0.0 : exp(m - sc);
                s = s * f + 1.0;
                for (int64_t k = 0; k < d; ++k) acc[k] = acc[k] * f + advf_ld(y, prec, j * d + k);
                m = sc;
            } else {
                double w = exp(sc - m);
                s += w;
                for (int64_t k = 0; k < d; ++k) acc[k] += w * advf_ld(y, prec, j * d + k);
            }
        }
    }
    if (softmax && s > 0.0) {
        for (int64_t k = 0; k < d; ++k) advf_st(den, prec, i * d + k, acc[k] / s);
        return;
    }
    int64_t best = -1;
    double bd = HUGE_VAL, bw = -HUGE_VAL;
    for (int64_t j = 0; j < nd; ++j) {
        double lw = advf_ld(logw, prec, j);
        if (lw == -HUGE_VAL) continue;
        double d2 = 0.0;
        for (int64_t k = 0; k < d; ++k) {
            double diff = advf_ld(z, prec, i * d + k) - a * advf_ld(y, prec, j * d + k);
            d2 += diff * diff;
        }
        if (best < 0 || d2 < bd || (d2 == bd && lw > bw)) {
            best = j;
            bd = d2;
            bw = lw;
        }
    }
    for (int64_t k = 0; k < d; ++k)
        advf_st(den, prec, i * d + k, best >= 0 ? advf_ld(y, prec, best * d + k) : 0.0);
}

/* ---- Gaussian -> Gaussian, independent coupling ----------------------------------------
 * S0 = L L^T, C = L^-1 S1 L^-T = Q diag(lam) Q^T, P = L Q, Pinv = Q^T L^-1. Then
 * Sigma_t = P diag(den) P^T with den = (1-t)^2 + t^2 lam, and
 *   v = (m1 - m0) + P diag((t lam - (1-t))/den) u,   D = m1 + P diag(t lam/den) u,
 *   score = -Pinv^T diag(1/den) u,   u = Pinv (z - m_t).
 * Parameter layout: m0[d] m1[d] P[d*d] Pinv[d*d] lam[d]. */
#define ADVF_FM_SIZE(d) (2 * (d) + 2 * (d) * (d) + (d))

ADV_HD void advf_gauss_fm_point(const double *par, int64_t d, double t, int prec, const void *z,
                                int64_t i, void *vel, void *score, void *den, double *tmp) {
    const double *m0 = par, *m1 = par + d, *P = par + 2 * d, *Pinv = P + d * d;
    const double *lam = Pinv + d * d;
    double *r = tmp, *u = tmp + d;
    for (int64_t k = 0; k < d; ++k)
        r[k] = advf_ld(z, prec, i * d + k) - ((1.0 - t) * m0[k] + t * m1[k]);
    for (int64_t k = 0; k < d; ++k) {
        double acc = 0.0;
        for (int64_t j = 0; j < d; ++j) acc += Pinv[k * d + j] * r[j];
        u[k] = acc;
    }
    const double s = 1.0 - t;
    for (int64_t k = 0; k < d; ++k) {
        double dn = s * s + t * t * lam[k];
        double cv = (t * lam[k] - s) / dn, cd = t * lam[k] / dn, cs = 1.0 / dn;
        r[k] = u[k] * cv; // r is free now: the scaled coordinates
        tmp[2 * d + k] = u[k] * cd;
        tmp[3 * d + k] = u[k] * cs;
    }
    for (int64_t j = 0; j < d; ++j) {
        double av = 0.0, ad = 0.0, as = 0.0;
        for (int64_t k = 0; k < d; ++k) {
            av += P[j * d + k] * r[k];
            ad += P[j * d + k] * tmp[2 * d + k];
            as += Pinv[k * d + j] * tmp[3 * d + k];
        }
        if (vel) advf_st(vel, prec, i * d + j, (m1[j] - m0[j]) + av);
        if (den) advf_st(den, prec, i * d + j, m1[j] + ad);
        if (score) advf_st(score, prec, i * d + j, -as);
    }
}

/* Exact sample of alpha_t: m_t + P diag(sqrt(den)) xi. xi: d standard normals. */
ADV_HD void advf_gauss_fm_sample(const double *par, int64_t d, double t, const double *xi,
                                 int prec, void *z, int64_t i) {
    const double *m0 = par, *m1 = par + d, *P = par + 2 * d, *lam = P + 2 * d * d;
    const double s = 1.0 - t;
    for (int64_t j = 0; j < d; ++j) {
        double acc = (1.0 - t) * m0[j] + t * m1[j];
        for (int64_t k = 0; k < d; ++k) acc += P[j * d + k] * sqrt(s * s + t * t * lam[k]) * xi[k];
        advf_st(z, prec, i * d + j, acc);
    }
}

/* ---- Gaussian -> Gaussian, Bures-Wasserstein OT geodesic -------------------------------
 * A = U diag(g) U^T (the OT map's matrix), M_t = (1-t) I + t A, mu = (1-t) + t g:
 *   v = (m1 - m0) + U diag((g-1)/mu) U^T r,  D = m1 + U diag(g/mu) U^T r,
 *   score = -M_t^-1 S0^-1 M_t^-1 r,  r = z - m_t.
 * Layout: m0[d] m1[d] U[d*d] g[d] S0inv[d*d] L0[d*d] (S0 = L0 L0^T). */
#define ADVF_OT_SIZE(d) (2 * (d) + 3 * (d) * (d) + (d))

ADV_HD void advf_gauss_ot_point(const double *par, int64_t d, double t, int prec, const void *z,
                                int64_t i, void *vel, void *score, void *den, double *tmp) {
    const double *m0 = par, *m1 = par + d, *U = par + 2 * d, *g = U + d * d, *S0inv = g + d;
    double *r = tmp, *w = tmp + d, *x = tmp + 2 * d;
    const double s = 1.0 - t;
    for (int64_t k = 0; k < d; ++k)
        r[k] = advf_ld(z, prec, i * d + k) - (s * m0[k] + t * m1[k]);
    for (int64_t k = 0; k < d; ++k) { // w = U^T r
        double acc = 0.0;
        for (int64_t j = 0; j < d; ++j) acc += U[j * d + k] * r[j];
        w[k] = acc;
    }
    for (int64_t j = 0; j < d; ++j) {
        double av = 0.0, ad = 0.0, ax = 0.0;
        for (int64_t k = 0; k < d; ++k) {
            double mu = s + t * g[k];
            av += U[j * d + k] * (g[k] - 1.0) / mu * w[k];
            ad += U[j * d + k] * g[k] / mu * w[k];
            ax += U[j * d + k] * w[k] / mu;
        }
        if (vel) advf_st(vel, prec, i * d + j, (m1[j] - m0[j]) + av);
        if (den) advf_st(den, prec, i * d + j, m1[j] + ad);
        x[j] = ax; // M_t^-1 r
    }
    if (!score) return;
    for (int64_t j = 0; j < d; ++j) { // r = S0^-1 x
        double acc = 0.0;
        for (int64_t k = 0; k < d; ++k) acc += S0inv[j * d + k] * x[k];
        r[j] = acc;
    }
    for (int64_t k = 0; k < d; ++k) { // w = U^T r
        double acc = 0.0;
        for (int64_t j = 0; j < d; ++j) acc += U[j * d + k] * r[j];
        w[k] = acc / (s + t * g[k]);
    }
    for (int64_t j = 0; j < d; ++j) {
        double acc = 0.0;
        for (int64_t k = 0; k < d; ++k) acc += U[j * d + k] * w[k];
        advf_st(score, prec, i * d + j, -acc);
    }
}

/* Exact sample: m_t + M_t L0 xi. tmp: 2d doubles. */
ADV_HD void advf_gauss_ot_sample(const double *par, int64_t d, double t, const double *xi,
                                 double *tmp, int prec, void *z, int64_t i) {
    const double *m0 = par, *m1 = par + d, *U = par + 2 * d, *g = U + d * d;
    const double *L0 = g + d + d * d;
    double *x = tmp, *w = tmp + d;
    for (int64_t j = 0; j < d; ++j) {
        double acc = 0.0;
        for (int64_t k = 0; k <= j; ++k) acc += L0[j * d + k] * xi[k];
        x[j] = acc;
    }
    for (int64_t k = 0; k < d; ++k) {
        double acc = 0.0;
        for (int64_t j = 0; j < d; ++j) acc += U[j * d + k] * x[j];
        w[k] = acc * ((1.0 - t) + t * g[k]);
    }
    for (int64_t j = 0; j < d; ++j) {
        double acc = (1.0 - t) * m0[j] + t * m1[j];
        for (int64_t k = 0; k < d; ++k) acc += U[j * d + k] * w[k];
        advf_st(z, prec, i * d + j, acc);
    }
}

/* ---- Gaussian mixture -> Gaussian mixture ----------------------------------------------
 * Pair (k, l): S_k = L L^T, L^-1 G_l L^-T = Q diag(lam) Q^T (lam >= 0; exactly 0 on the
 * null directions of G_l), P = L Q, Pinv = Q^T L^-1. C_kl = P diag(den) P^T and
 *   log r_kl = log(p_k q_l) - log|L| - d/2 log 2pi - 1/2 sum log den - 1/2 sum u^2/den,
 *   v_kl = (nu - mu) + P diag((t lam - (1-t))/den) u,  D_kl = nu + P diag(t lam/den) u,
 *   score_kl = -Pinv^T diag(1/den) u,  u = Pinv (z - m_kl).
 * A pair is degenerate when some lam = 0 (a Dirac or rank-deficient target): at t = 1 its
 * density is singular. At t = 1 degenerate pairs are ignored when a regular pair exists (the
 * exact limit for z off the atoms); when all pairs are degenerate the pair nearest in the
 * S_k metric on the null directions is chosen, D = its limit and v = score = 0.
 * Layout: mu[k0*d] nu[k1*d], then per pair (k major): logc, pq, degenerate, lam[d], P[d*d],
 * Pinv[d*d]. logc = log(p_k q_l) - log|L| - d/2 log 2pi, -Inf exactly for a zero weight
 * (formed in logs, so tiny weights stay positive); pq = p_k q_l normalised, only for
 * sampling (it may underflow to 0). */
#define ADVF_GMM_PAIR(d) (3 + (d) + 2 * (d) * (d))
#define ADVF_GMM_SIZE(d, k0, k1) (((k0) + (k1)) * (d) + (k0) * (k1) * ADVF_GMM_PAIR(d))

/* tmp: 6d doubles. any_regular: 1 when some pair is not degenerate. */
ADV_HD void advf_gmm_point(const double *par, int64_t d, int64_t k0, int64_t k1, int any_regular,
                           double t, int prec, const void *z, int64_t i, void *vel, void *score,
                           void *den, double *tmp) {
    const double *mu = par, *nu = par + k0 * d, *pairs = nu + k1 * d;
    double *r = tmp, *u = tmp + d, *av = tmp + 3 * d, *ad = tmp + 4 * d, *as = tmp + 5 * d;
    const double s = 1.0 - t;
    const int at_end = !(s > 0.0);
    double m = -HUGE_VAL, sum = 0.0;
    for (int64_t k = 0; k < d; ++k) av[k] = ad[k] = as[k] = 0.0;
    if (at_end && !any_regular) {
        // All pairs degenerate at t = 1: nearest pair on the null directions.
        double best = HUGE_VAL;
        int64_t bp = 0;
        for (int64_t p = 0; p < k0 * k1; ++p) {
            const double *pr = pairs + p * ADVF_GMM_PAIR(d), *lam = pr + 3, *Pinv = lam + d + d * d;
            const double *nl = nu + (p % k1) * d;
            if (!(pr[0] > -HUGE_VAL)) continue; // zero weight
            double q = 0.0;
            for (int64_t k = 0; k < d; ++k) {
                if (lam[k] > 0.0) continue;
                double acc = 0.0;
                for (int64_t j = 0; j < d; ++j)
                    acc += Pinv[k * d + j] * (advf_ld(z, prec, i * d + j) - nl[j]);
                q += acc * acc;
            }
            if (q < best) {
                best = q;
                bp = p;
            }
        }
        const double *pr = pairs + bp * ADVF_GMM_PAIR(d), *lam = pr + 3, *P = lam + d;
        const double *Pinv = P + d * d, *nl = nu + (bp % k1) * d;
        for (int64_t k = 0; k < d; ++k) r[k] = advf_ld(z, prec, i * d + k) - nl[k];
        for (int64_t k = 0; k < d; ++k) {
            double acc = 0.0;
            for (int64_t j = 0; j < d; ++j) acc += Pinv[k * d + j] * r[j];
            u[k] = lam[k] > 0.0 ? acc : 0.0;
        }
        for (int64_t j = 0; j < d; ++j) {
            double acc = nl[j];
            for (int64_t k = 0; k < d; ++k) acc += P[j * d + k] * u[k];
            if (den) advf_st(den, prec, i * d + j, acc);
            if (vel) advf_st(vel, prec, i * d + j, 0.0);
            if (score) advf_st(score, prec, i * d + j, 0.0);
        }
        return;
    }
    for (int64_t p = 0; p < k0 * k1; ++p) {
        const double *pr = pairs + p * ADVF_GMM_PAIR(d), *lam = pr + 3, *P = lam + d;
        const double *Pinv = P + d * d;
        const double *mk = mu + (p / k1) * d, *nl = nu + (p % k1) * d;
        if (!(pr[0] > -HUGE_VAL)) continue;    // zero weight
        if (at_end && pr[2] != 0.0) continue;  // degenerate at t = 1 (a regular pair exists)
        for (int64_t k = 0; k < d; ++k) r[k] = advf_ld(z, prec, i * d + k) - (s * mk[k] + t * nl[k]);
        double lg = pr[0], q = 0.0;
        for (int64_t k = 0; k < d; ++k) {
            double acc = 0.0;
            for (int64_t j = 0; j < d; ++j) acc += Pinv[k * d + j] * r[j];
            u[k] = acc;
            double dn = s * s + t * t * lam[k];
            q += acc * acc / dn;
            lg -= 0.5 * log(dn);
        }
        lg -= 0.5 * q;
        double f, w;
        if (lg > m) {
            f = (m == -HUGE_VAL) ? 0.0 : exp(m - lg);
            w = 1.0;
            m = lg;
        } else {
            f = 1.0;
            w = exp(lg - m);
        }
        sum = sum * f + w;
        double *cv = r; // r is free now: scaled coordinates
        for (int64_t k = 0; k < d; ++k) {
            double dn = s * s + t * t * lam[k];
            cv[k] = u[k] / dn;
        }
        for (int64_t j = 0; j < d; ++j) {
            double v_ = nl[j] - mk[j], d_ = nl[j], s_ = 0.0;
            for (int64_t k = 0; k < d; ++k) {
                v_ += P[j * d + k] * (t * lam[k] - s) * cv[k];
                d_ += P[j * d + k] * t * lam[k] * cv[k];
                s_ -= Pinv[k * d + j] * cv[k];
            }
            av[j] = av[j] * f + w * v_;
            ad[j] = ad[j] * f + w * d_;
            as[j] = as[j] * f + w * s_;
        }
    }
    for (int64_t j = 0; j < d; ++j) {
        double inv = sum > 0.0 ? 1.0 / sum : 0.0;
        if (vel) advf_st(vel, prec, i * d + j, av[j] * inv);
        if (den) advf_st(den, prec, i * d + j, ad[j] * inv);
        if (score) advf_st(score, prec, i * d + j, as[j] * inv);
    }
}

/* Exact sample of alpha_t: a pair chosen by the uniform u against p_k q_l, then
 * m_kl + P diag(sqrt(den)) xi. */
ADV_HD void advf_gmm_sample(const double *par, int64_t d, int64_t k0, int64_t k1, double t,
                            double uni, const double *xi, int prec, void *z, int64_t i) {
    const double *mu = par, *nu = par + k0 * d, *pairs = nu + k1 * d;
    int64_t np = k0 * k1, p = 0, last = 0;
    double c = 0.0;
    for (p = 0; p < np; ++p) {
        double w = pairs[p * ADVF_GMM_PAIR(d) + 1];
        if (w > 0.0) last = p;
        c += w;
        if (w > 0.0 && uni < c) break;
    }
    if (p >= np) p = last; // rounding: the weights summed to slightly less than u
    const double *pr = pairs + p * ADVF_GMM_PAIR(d), *lam = pr + 3, *P = lam + d;
    const double *mk = mu + (p / k1) * d, *nl = nu + (p % k1) * d;
    const double s = 1.0 - t;
    for (int64_t j = 0; j < d; ++j) {
        double acc = s * mk[j] + t * nl[j];
        for (int64_t k = 0; k < d; ++k) acc += P[j * d + k] * sqrt(s * s + t * t * lam[k]) * xi[k];
        advf_st(z, prec, i * d + j, acc);
    }
}

/* d standard normals of particle `particle` for (seed, stream, counter): dimension j is lane
 * j mod 2 of the Philox block particle * ceil(d/2) + j/2 (float64 Box-Muller), so each
 * particle owns whole blocks and a draw never depends on chunking or threads. */
ADV_HD void advf_normals(uint64_t seed, uint32_t stream, uint32_t counter, uint64_t particle,
                         int64_t d, double *xi) {
    const uint64_t nb = (uint64_t)((d + 1) / 2);
    for (int64_t j = 0; j < d; j += 2) {
        double v[2];
        adv_rng_normal2_f64(seed, stream, particle * nb + (uint64_t)(j / 2), counter, v);
        xi[j] = v[0];
        if (j + 1 < d) xi[j + 1] = v[1];
    }
}

/* One uniform in (0, 1) for a particle (lane 0 of block `particle`). */
ADV_HD double advf_uniform(uint64_t seed, uint32_t stream, uint32_t counter, uint64_t particle) {
    double u[2];
    adv_rng_uniform2_f64(seed, stream, particle, counter, u);
    return u[0];
}

/* Index J with cdf[J-1] <= u < cdf[J] (cdf increasing, cdf[n-1] = 1), skipping zero-weight
 * entries at the top by construction of the caller's cdf. */
ADV_HD int64_t advf_pick(const double *cdf, int64_t n, double u) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (u < cdf[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

#endif
