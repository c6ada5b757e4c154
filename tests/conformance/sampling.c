/* Conformance of the sampling module on the backend under test (compiled once per backend):
 * every field kind against naive double references (tests/common/sampling_util.h), per-particle
 * times, exact samples against the shared draw functions, and every integrator against a
 * reference computed here on the host (the same update formulas, the same noise keys from
 * kernels/common/sampler_math.h), plus chunking, host-staged particles and checkpoints.
 * Outputs are poisoned (NaN) before each call. User fields run on every backend (their
 * callback stages device memory through adv_memcpy).
 *
 * Tolerances (u = unit roundoff of the precision):
 *  - empirical denoiser: the posterior scores s_j = log w_j - |z - a y_j|^2/(2 b^2 sigma^2) are
 *    computed from inputs exact in the precision, with absolute error <= ds = u (2 d S + 64),
 *    S = max_j |s_j| (as in tests/conformance/interaction.c); D is a convex combination of the
 *    y_j, so a relative error 2 ds in the weights moves it by <= 2 W (2 ds + u (n + 64)),
 *    W = max |y|. Velocity and score are |c| D + |c'| z: their tolerance is |c| tol_D plus
 *    a few u of each term.
 *  - Gaussian fields: evaluated in double, rounded once: 1e-10 (f64) or 4 u (f32) relative to
 *    the output scale plus the input rounding propagated through the matrices (~1e-6 f32).
 *  - integrators against the host replay: the same formulas in double; in float32 every stage
 *    rounds to float, so the replay (in double) differs by ~K u |z| (f32: 1e-4 with K <= 16).
 *  - SDE noise: normals come from log/cos of each backend's math library: agreement to
 *    1e-12 relative (f64). */
#include "conformance.h"
#include "sampling_util.h"

#include "common/sampler_math.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double umax(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(a[i]));
    return m;
}

/* ---- empirical field -------------------------------------------------------------------- */

typedef struct emp_case {
    int64_t N, n;
    int d;
    adv_schedule_kind kind;
    int weights; /* 0 uniform; 1 random with about one in five zero */
} emp_case;

static void check_empirical(adv_precision p, const emp_case *c) {
    adv_context *ctx = conf_context();
    const double u = tu_unit_roundoff(p), sigma = 0.8;
    const size_t Nd = (size_t)(c->N * c->d), nd = (size_t)(c->n * c->d);
    double *y = tu_calloc(nd, sizeof *y), *z = tu_calloc(Nd, sizeof *z), *w = NULL;
    tu_fill_uniform(y, nd, -2.0, 2.0, 1000 + (uint64_t)c->n);
    tu_fill_uniform(z, Nd, -2.5, 2.5, 2000 + (uint64_t)c->N);
    tu_round_to_precision(y, nd, p);
    tu_round_to_precision(z, Nd, p);
    if (c->weights) {
        w = tu_calloc((size_t)c->n, sizeof *w);
        tu_fill_uniform(w, (size_t)c->n, -0.25, 1.0, 3000);
        for (int64_t j = 0; j < c->n; ++j) w[j] = w[j] < 0 ? 0.0 : w[j];
        w[0] = 0.5;
        tu_round_to_precision(w, (size_t)c->n, p);
    }
    void *dy = conf_upload(ctx, p, y, nd), *dz = conf_upload(ctx, p, z, Nd);
    void *dw = w ? conf_upload(ctx, p, w, (size_t)c->n) : NULL;
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
    eo.sigma = sigma;
    adv_schedule_default(&eo.schedule, c->kind);
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, p, dy, dw, c->n, c->d, &eo, &f), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    double *D = tu_calloc(Nd, sizeof *D), *V = tu_calloc(Nd, sizeof *V), *S = tu_calloc(Nd, sizeof *S);
    double *rd = tu_calloc((size_t)c->d, sizeof *rd), *times = tu_calloc((size_t)c->N, sizeof *times);
    const double W = umax(y, nd);
    for (int pass = 0; pass < 5; ++pass) {
        // Passes 0..3: common times 0, 0.3, 0.77, 1; pass 4: per-particle times (0 and 1 too).
        const double tq[4] = {0.0, 0.3, 0.77, 1.0};
        for (int64_t i = 0; i < c->N; ++i) times[i] = pass < 4 ? tq[pass] : (i % 7 == 0 ? 1.0 : i % 7 == 1 ? 0.0 : (double)(i % 13) / 13.0);
        if (pass == 4) tu_round_to_precision(times, (size_t)c->N, p);
        void *dv = conf_alloc_poisoned(ctx, p, Nd), *ds = conf_alloc_poisoned(ctx, p, Nd), *dd = conf_alloc_poisoned(ctx, p, Nd);
        adv_status st;
        if (pass < 4) {
            st = adv_field_eval(f, tq[pass], c->N, dz, dv, ds, dd);
        } else {
            void *dt = conf_upload(ctx, p, times, (size_t)c->N);
            st = adv_field_eval_times(f, dt, c->N, dz, dv, ds, dd);
            conf_free(ctx, dt);
        }
        cr_assert_eq(st, ADV_OK, "%s", adv_context_last_error(ctx));
        conf_download(ctx, p, dv, V, Nd), conf_download(ctx, p, ds, S, Nd), conf_download(ctx, p, dd, D, Nd);
        for (int64_t i = 0; i < c->N; ++i) {
            double t = times[i], a, b, da, db;
            adv_schedule_eval(&eo.schedule, t, &a, &b, &da, &db);
            const double *zi = z + i * c->d;
            su_ref_empirical(y, w, c->n, c->d, sigma, a, b, zi, rd);
            // Score scale S_i for the tolerance.
            double smax = 0.0;
            for (int64_t j = 0; j < c->n && b > 0; ++j) {
                double d2 = 0.0;
                for (int k = 0; k < c->d; ++k) d2 += (zi[k] - a * y[j * c->d + k]) * (zi[k] - a * y[j * c->d + k]);
                smax = fmax(smax, d2 / (2 * b * b * sigma * sigma) + 5.0);
            }
            double dsc = u * (2.0 * c->d * smax + 64.0);
            double tolD = b > 0 ? 2.0 * W * (2.0 * dsc + u * ((double)c->n + 64.0)) : 0.0;
            double ca = 0, cz = 0, sa = 0, sz = 0;
            if (b > 0) {
                ca = da - a * db / b, cz = db / b;
                sa = a / (b * b * sigma * sigma), sz = -1.0 / (b * b * sigma * sigma);
            }
            for (int k = 0; k < c->d; ++k) {
                double g = D[i * c->d + k], r = rd[k];
                cr_expect(fabs(g - r) <= tolD, "%s N%lld n%lld d%d kind %d t %g: D %.9g vs %.9g (tol %.2e)",
                          tu_precision_name(p), (long long)c->N, (long long)c->n, c->d, c->kind, t, g, r, tolD);
                double rv = ca * r + cz * zi[k], rs = sa * r + sz * zi[k];
                double tv = fabs(ca) * tolD + 8 * u * (fabs(ca * r) + fabs(cz * zi[k]) + 1e-300);
                double ts = fabs(sa) * tolD + 8 * u * (fabs(sa * r) + fabs(sz * zi[k]) + 1e-300);
                cr_expect(fabs(V[i * c->d + k] - rv) <= tv, "t %g: v %.9g vs %.9g", t, V[i * c->d + k], rv);
                cr_expect(fabs(S[i * c->d + k] - rs) <= ts, "t %g: score %.9g vs %.9g", t, S[i * c->d + k], rs);
            }
        }
        conf_free(ctx, dv), conf_free(ctx, ds), conf_free(ctx, dd);
    }
    adv_field_destroy(f);
    conf_free(ctx, dy), conf_free(ctx, dz), conf_free(ctx, dw);
    free(y), free(z), free(w), free(D), free(V), free(S), free(rd), free(times);
    conf_context_destroy(ctx);
}

static const emp_case EMP_CASES[] = {
    {1, 1, 1, ADV_SCHEDULE_LINEAR, 0},   {37, 7, 3, ADV_SCHEDULE_COSINE, 1},
    {130, 300, 2, ADV_SCHEDULE_VP, 0},   {19, 61, 65, ADV_SCHEDULE_VE, 1},
    {64, 257, 5, ADV_SCHEDULE_LINEAR, 1},
    {131, 4099, 3, ADV_SCHEDULE_COSINE, 1}, /* data past one engine key segment (4096 at d = 3) */
    {29, 2100, 64, ADV_SCHEDULE_VP, 1},     /* CUDA: per-row mode on the GEMM path (d >= 64) */
    {300, 3000, 17, ADV_SCHEDULE_LINEAR, 0},
    {45, 1100, 96, ADV_SCHEDULE_COSINE, 1}}; /* CUDA: GEMM-path per-row mode over 2 key tiles */

/* A user schedule with the linear schedule's formulas. */
static void linear_by_hand(void *user, double t, double ab[4]) {
    (void)user;
    ab[0] = t, ab[1] = 1.0 - t, ab[2] = 1.0, ab[3] = -1.0;
}

/* Per-particle times: a built-in schedule's coefficients are computed where the field lives
 * (the time_coefs operation), a user schedule's on the host. The same formulas give the same
 * bits. */
Test(sampling_fields, per_particle_coefficients_user_vs_builtin) {
    adv_context *ctx = conf_context();
    const int64_t N = 57, n = 300;
    const int d = 3;
    double y[900], z[171], times[57], out[2][3][171];
    tu_fill_uniform(y, 900, -2, 2, 61);
    tu_fill_uniform(z, 171, -2.5, 2.5, 62);
    for (int64_t i = 0; i < N; ++i) times[i] = i % 9 == 0 ? 1.0 : i % 9 == 1 ? 0.0 : (double)(i % 23) / 23.0;
    void *dy = conf_upload(ctx, ADV_FLOAT64, y, 900), *dz = conf_upload(ctx, ADV_FLOAT64, z, 171);
    void *dt = conf_upload(ctx, ADV_FLOAT64, times, 57);
    for (int u = 0; u < 2; ++u) {
        adv_empirical_opts eo;
        adv_empirical_default_opts(&eo);
        adv_schedule_default(&eo.schedule, u ? ADV_SCHEDULE_USER : ADV_SCHEDULE_LINEAR);
        eo.schedule.fn = linear_by_hand;
        adv_field *f = NULL;
        cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, dy, NULL, n, d, &eo, &f), ADV_OK);
        void *dv = conf_alloc_poisoned(ctx, ADV_FLOAT64, 171), *ds = conf_alloc_poisoned(ctx, ADV_FLOAT64, 171);
        void *dd = conf_alloc_poisoned(ctx, ADV_FLOAT64, 171);
        cr_assert_eq(adv_field_eval_times(f, dt, N, dz, dv, ds, dd), ADV_OK, "%s", adv_context_last_error(ctx));
        conf_download(ctx, ADV_FLOAT64, dv, out[u][0], 171);
        conf_download(ctx, ADV_FLOAT64, ds, out[u][1], 171);
        conf_download(ctx, ADV_FLOAT64, dd, out[u][2], 171);
        // Fewer rows reuse the field's per-row plan (made for N): the same bits per row.
        void *dd2 = conf_alloc_poisoned(ctx, ADV_FLOAT64, 60);
        double D2[60];
        cr_assert_eq(adv_field_eval_times(f, dt, 20, dz, NULL, NULL, dd2), ADV_OK);
        conf_download(ctx, ADV_FLOAT64, dd2, D2, 60);
        cr_expect(memcmp(D2, out[u][2], sizeof D2) == 0, "schedule %d: 20 rows differ from the first 20 of %lld", u, (long long)N);
        conf_free(ctx, dd2);
        conf_free(ctx, dv), conf_free(ctx, ds), conf_free(ctx, dd);
        adv_field_destroy(f);
    }
    for (int o = 0; o < 3; ++o)
        for (int k = 0; k < 171; ++k) {
            cr_expect(isfinite(out[0][o][k]), "output %d [%d] is not finite", o, k);
            cr_expect(memcmp(&out[0][o][k], &out[1][o][k], sizeof(double)) == 0,
                      "output %d [%d]: built-in %.17g, user %.17g", o, k, out[0][o][k], out[1][o][k]);
        }
    conf_free(ctx, dy), conf_free(ctx, dz), conf_free(ctx, dt);
    conf_context_destroy(ctx);
}

Test(sampling_fields, empirical_f64) {
    for (size_t k = 0; k < sizeof EMP_CASES / sizeof EMP_CASES[0]; ++k) check_empirical(ADV_FLOAT64, &EMP_CASES[k]);
}
Test(sampling_fields, empirical_f32) {
    for (size_t k = 0; k < sizeof EMP_CASES / sizeof EMP_CASES[0]; ++k) check_empirical(ADV_FLOAT32, &EMP_CASES[k]);
}

/* ---- Gaussian and mixture fields -------------------------------------------------------- */

/* Mixture reference: weights r_kl ~ p_k q_l N(z; m_kl, C_kl) with dense inverses. */
static void ref_gmm(int d, int k0, const double *p, const double *mu, const double *S, int k1,
                    const double *q, const double *nu, const double *G, double t, const double *z,
                    double *v, double *sc, double *D) {
    double lw[64], vv[64][8], dd[64][8], ss[64][8], m = -INFINITY;
    for (int k = 0; k < k0; ++k)
        for (int l = 0; l < k1; ++l) {
            int pi = k * k1 + l;
            double C[64], Ci[64], r[8], x[8], det;
            for (int i = 0; i < d * d; ++i) C[i] = (1 - t) * (1 - t) * S[k * d * d + i] + t * t * G[l * d * d + i];
            su_inverse(d, C, Ci);
            // log det by Gaussian elimination on a copy
            double M[64];
            memcpy(M, C, sizeof(double) * d * d);
            det = 0.0;
            for (int c = 0; c < d; ++c) {
                det += log(fabs(M[c * d + c]));
                for (int rr = c + 1; rr < d; ++rr) {
                    double f = M[rr * d + c] / M[c * d + c];
                    for (int j = c; j < d; ++j) M[rr * d + j] -= f * M[c * d + j];
                }
            }
            for (int i = 0; i < d; ++i) r[i] = z[i] - ((1 - t) * mu[k * d + i] + t * nu[l * d + i]);
            double qf = 0.0;
            for (int i = 0; i < d; ++i) {
                x[i] = 0.0;
                for (int j = 0; j < d; ++j) x[i] += Ci[i * d + j] * r[j];
                qf += r[i] * x[i];
            }
            lw[pi] = log(p[k] * q[l]) - 0.5 * det - 0.5 * qf;
            m = fmax(m, lw[pi]);
            for (int i = 0; i < d; ++i) {
                double a = 0.0, b = 0.0;
                for (int j = 0; j < d; ++j) {
                    a += (t * G[l * d * d + i * d + j] - (1 - t) * S[k * d * d + i * d + j]) * x[j];
                    b += t * G[l * d * d + i * d + j] * x[j];
                }
                vv[pi][i] = nu[l * d + i] - mu[k * d + i] + a;
                dd[pi][i] = nu[l * d + i] + b;
                ss[pi][i] = -x[i];
            }
        }
    double sum = 0.0;
    for (int pi = 0; pi < k0 * k1; ++pi) sum += exp(lw[pi] - m);
    for (int i = 0; i < d; ++i) {
        v[i] = D[i] = sc[i] = 0.0;
        for (int pi = 0; pi < k0 * k1; ++pi) {
            double r = exp(lw[pi] - m) / sum;
            v[i] += r * vv[pi][i], D[i] += r * dd[pi][i], sc[i] += r * ss[pi][i];
        }
    }
}

static void check_gauss_family(adv_precision p) {
    adv_context *ctx = conf_context();
    const int d = 3, N = 23;
    const double m0[3] = {0.3, -0.2, 0.5}, m1[3] = {1.0, 0.5, -1.0};
    double S0[9], S1[9], z[69];
    su_random_spd(d, 0.5, 11, S0);
    su_random_spd(d, 0.3, 12, S1);
    tu_fill_uniform(z, 69, -2, 2, 13);
    tu_round_to_precision(z, 69, p);
    // Mixture: 2 source components, 3 targets (a Dirac, a rank-1 and a full one).
    const double pw[2] = {0.3, 0.7}, qw[3] = {0.2, 0.5, 0.3};
    double mu[6] = {-1, 0, 0.5, 1, 0.2, -0.3}, nu[9] = {2, 0, 0, -1, 1, 0, 0, -2, 1};
    double Sm[18], Gm[27] = {0};
    su_random_spd(d, 0.5, 14, Sm);
    su_random_spd(d, 0.8, 15, Sm + 9);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) Gm[9 + i * 3 + j] = (i + 1) * (j + 1) * 0.1; // rank 1
    su_random_spd(d, 0.2, 16, Gm + 18);
    const double u = tu_unit_roundoff(p), tol = p == ADV_FLOAT64 ? 1e-10 : 64 * u;
    adv_field *fm = NULL, *ot = NULL, *gm = NULL;
    cr_assert_eq(adv_field_create_gaussian(ctx, p, d, m0, S0, m1, S1, ADV_COUPLING_INDEPENDENT, &fm), ADV_OK);
    cr_assert_eq(adv_field_create_gaussian(ctx, p, d, m0, S0, m1, S1, ADV_COUPLING_OT, &ot), ADV_OK);
    cr_assert_eq(adv_field_create_gmm(ctx, p, d, 2, pw, mu, Sm, 3, qw, nu, Gm, &gm), ADV_OK, "%s", adv_context_last_error(ctx));
    adv_field_info info = {.struct_size = sizeof info};
    cr_assert_eq(adv_field_get_info(gm, &info), ADV_OK);
    cr_expect_eq(info.singular_end, 1, "a Dirac target makes the end singular");
    void *dz = conf_upload(ctx, p, z, 69);
    double V[69], S[69], D[69], rv[3], rs[3], rdn[3];
    const double ts[4] = {0.0, 0.4, 0.9, 1.0};
    for (int q = 0; q < 4; ++q) {
        void *dv = conf_alloc_poisoned(ctx, p, 69), *ds = conf_alloc_poisoned(ctx, p, 69), *dd = conf_alloc_poisoned(ctx, p, 69);
        cr_assert_eq(adv_field_eval(fm, ts[q], N, dz, dv, ds, dd), ADV_OK);
        conf_download(ctx, p, dv, V, 69), conf_download(ctx, p, ds, S, 69), conf_download(ctx, p, dd, D, 69);
        for (int i = 0; i < N; ++i) {
            su_ref_gauss_fm(d, m0, S0, m1, S1, ts[q], z + 3 * i, rv, rs, rdn);
            for (int k = 0; k < d; ++k) {
                cr_expect(fabs(V[3 * i + k] - rv[k]) <= tol * (1 + umax(rv, 3)), "FM v t %g", ts[q]);
                cr_expect(fabs(S[3 * i + k] - rs[k]) <= tol * (1 + umax(rs, 3)), "FM score t %g", ts[q]);
                cr_expect(fabs(D[3 * i + k] - rdn[k]) <= tol * (1 + umax(rdn, 3)), "FM D t %g", ts[q]);
            }
        }
        cr_assert_eq(adv_field_eval(ot, ts[q], N, dz, dv, ds, dd), ADV_OK);
        conf_download(ctx, p, dv, V, 69), conf_download(ctx, p, ds, S, 69), conf_download(ctx, p, dd, D, 69);
        for (int i = 0; i < N; ++i) {
            su_ref_gauss_ot(d, m0, S0, m1, S1, ts[q], z + 3 * i, rv, rs, rdn);
            for (int k = 0; k < d; ++k) {
                cr_expect(fabs(V[3 * i + k] - rv[k]) <= 1e2 * tol * (1 + umax(rv, 3)), "OT v t %g: %g vs %g", ts[q], V[3 * i + k], rv[k]);
                cr_expect(fabs(S[3 * i + k] - rs[k]) <= 1e2 * tol * (1 + umax(rs, 3)), "OT score t %g: %g vs %g", ts[q], S[3 * i + k], rs[k]);
                cr_expect(fabs(D[3 * i + k] - rdn[k]) <= 1e2 * tol * (1 + umax(rdn, 3)), "OT D t %g: %g vs %g", ts[q], D[3 * i + k], rdn[k]);
            }
        }
        conf_free(ctx, dv), conf_free(ctx, ds), conf_free(ctx, dd);
        dv = conf_alloc_poisoned(ctx, p, 69), ds = conf_alloc_poisoned(ctx, p, 69), dd = conf_alloc_poisoned(ctx, p, 69);
        cr_assert_eq(adv_field_eval(gm, ts[q], N, dz, dv, ds, dd), ADV_OK);
        conf_download(ctx, p, dv, V, 69), conf_download(ctx, p, ds, S, 69), conf_download(ctx, p, dd, D, 69);
        for (int i = 0; i < N; ++i) {
            for (int k = 0; k < d; ++k)
                cr_expect(isfinite(V[3 * i + k]) && isfinite(S[3 * i + k]) && isfinite(D[3 * i + k]), "GMM t %g: non-finite", ts[q]);
            if (ts[q] == 1.0) continue; // the singular end has its own convention (unit tests)
            ref_gmm(d, 2, pw, mu, Sm, 3, qw, nu, Gm, ts[q], z + 3 * i, rv, rs, rdn);
            // The mixture weights are softmax-like: a relative error 64 u in the log-weights of
            // magnitude up to ~|u|^2/den (~1e2 here) moves the outputs by ~1e2 * 64 u * scale.
            double tg = p == ADV_FLOAT64 ? 1e-9 : 1e-4;
            for (int k = 0; k < d; ++k) {
                cr_expect(fabs(V[3 * i + k] - rv[k]) <= tg * (1 + umax(rv, 3)), "GMM v t %g: %g vs %g", ts[q], V[3 * i + k], rv[k]);
                cr_expect(fabs(S[3 * i + k] - rs[k]) <= tg * (1 + umax(rs, 3)), "GMM score t %g: %g vs %g", ts[q], S[3 * i + k], rs[k]);
                cr_expect(fabs(D[3 * i + k] - rdn[k]) <= tg * (1 + umax(rdn, 3)), "GMM D t %g: %g vs %g", ts[q], D[3 * i + k], rdn[k]);
            }
        }
        conf_free(ctx, dv), conf_free(ctx, ds), conf_free(ctx, dd);
    }
    // Per-particle times give the same values as common times, particle by particle.
    double times[23];
    for (int i = 0; i < N; ++i) times[i] = (double)(i % 5) / 4.0;
    void *dt = conf_upload(ctx, p, times, 23), *dv = conf_alloc_poisoned(ctx, p, 69), *d1 = conf_alloc_poisoned(ctx, p, 69);
    adv_field *fs[3] = {fm, ot, gm};
    for (int f = 0; f < 3; ++f) {
        cr_assert_eq(adv_field_eval_times(fs[f], dt, N, dz, dv, NULL, NULL), ADV_OK);
        conf_download(ctx, p, dv, V, 69);
        for (int i = 0; i < N; ++i) {
            cr_assert_eq(adv_field_eval(fs[f], times[i], 1, (char *)dz + (size_t)(3 * i) * tu_real_size(p), d1, NULL, NULL), ADV_OK);
            double one[3];
            conf_download(ctx, p, d1, one, 3);
            for (int k = 0; k < d; ++k) cr_expect(V[3 * i + k] == one[k], "field %d: per-particle time differs", f);
        }
    }
    conf_free(ctx, dt), conf_free(ctx, dv), conf_free(ctx, d1), conf_free(ctx, dz);
    adv_field_destroy(fm), adv_field_destroy(ot), adv_field_destroy(gm);
    conf_context_destroy(ctx);
}

Test(sampling_fields, gaussian_family_f64) { check_gauss_family(ADV_FLOAT64); }
Test(sampling_fields, gaussian_family_f32) { check_gauss_family(ADV_FLOAT32); }

/* A mixture whose targets are all Diracs: at t = 1 the denoiser is the nearest atom. */
Test(sampling_fields, gmm_dirac_end) {
    adv_context *ctx = conf_context();
    const double p[1] = {1}, mu[2] = {0, 0}, S[4] = {1, 0, 0, 1}, q[3] = {1, 1, 1};
    const double nu[6] = {1, 1, -1, 0, 0, -2}, G[12] = {0};
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 2, 1, p, mu, S, 3, q, nu, G, &f), ADV_OK);
    double z[8] = {0.9, 1.2, -0.7, 0.1, 0.1, -1.5, 5, 5}, D[8], V[8];
    void *dz = conf_upload(ctx, ADV_FLOAT64, z, 8), *dd = conf_alloc_poisoned(ctx, ADV_FLOAT64, 8);
    void *dv = conf_alloc_poisoned(ctx, ADV_FLOAT64, 8);
    cr_assert_eq(adv_field_eval(f, 1.0, 4, dz, dv, NULL, dd), ADV_OK);
    conf_download(ctx, ADV_FLOAT64, dd, D, 8);
    conf_download(ctx, ADV_FLOAT64, dv, V, 8);
    const int want[4] = {0, 1, 2, 0};
    for (int i = 0; i < 4; ++i) {
        cr_expect(D[2 * i] == nu[2 * want[i]] && D[2 * i + 1] == nu[2 * want[i] + 1], "particle %d", i);
        cr_expect(V[2 * i] == 0.0 && V[2 * i + 1] == 0.0);
    }
    conf_free(ctx, dz), conf_free(ctx, dd), conf_free(ctx, dv);
    adv_field_destroy(f);
    conf_context_destroy(ctx);
}

/* Positive weights whose normalised value underflows (1e-300 next to 1e300; a GMM pair
 * p_k q_l = 1e-400) are still positive weights: far from the heavy points they dominate the
 * posterior. References from math.md §2 in logs: (a) data {0, 1} with weights {1e300,
 * 1e-300}, linear schedule, sigma = 1: at t = 1 - 1e-4, z = 0.9999 the log-posterior of y = 1
 * is -1381.6 against -5e7 for y = 0, so D = 1; at t = 1 the nearest data point, D(1) = 1.
 * (b) N(0,1) + 1e-200 N(100,1) -> N(0,1) + 1e-200 N(100,4) in d = 1 at t = 1/2, z = 100: the
 * pair (1,1) (log-weight -921) beats every other (<= -1460), so D = 100, v = score = 0 to
 * within 1e-200. Before, both read as zero weights: D = 0, and D = 180, v = 160. */
Test(sampling_fields, tiny_positive_weights_count) {
    adv_context *ctx = conf_context();
    for (int p = 0; p < 2; ++p) {
        const adv_precision prec = p ? ADV_FLOAT64 : ADV_FLOAT32;
        const double y[2] = {0, 1}, zs[2] = {0.9999, 1.0};
        void *dy = conf_upload(ctx, prec, y, 2);
        void *dw = NULL;
        if (p) {
            const double w[2] = {1e300, 1e-300};
            dw = conf_upload(ctx, prec, w, 2);
        } else { // float32 cannot hold the underflowing pair: the same check, smaller ratio
            const double w[2] = {1e30, 1e-30};
            dw = conf_upload(ctx, prec, w, 2);
        }
        adv_field *f = NULL;
        cr_assert_eq(adv_field_create_empirical(ctx, prec, dy, dw, 2, 1, NULL, &f), ADV_OK, "%s",
                     adv_context_last_error(ctx));
        for (int k = 0; k < 2; ++k) {
            const double t = k ? 1.0 : 1.0 - 1e-4;
            double D = NAN;
            void *dz = conf_upload(ctx, prec, &zs[k], 1), *dd = conf_alloc_poisoned(ctx, prec, 1);
            cr_assert_eq(adv_field_eval(f, t, 1, dz, NULL, NULL, dd), ADV_OK, "%s",
                         adv_context_last_error(ctx));
            conf_download(ctx, prec, dd, &D, 1);
            cr_expect(fabs(D - 1.0) < 1e-6, "%s t = %g: D = %g, expected 1",
                      tu_precision_name(prec), t, D);
            conf_free(ctx, dz), conf_free(ctx, dd);
        }
        adv_field_destroy(f);
        conf_free(ctx, dy), conf_free(ctx, dw);
    }
    const double p[2] = {1, 1e-200}, mu[2] = {0, 100}, S[2] = {1, 1};
    const double q[2] = {1, 1e-200}, nu[2] = {0, 100}, G[2] = {1, 4};
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, 1, 2, p, mu, S, 2, q, nu, G, &f), ADV_OK);
    const double z = 100.0;
    double got[3];
    void *dz = conf_upload(ctx, ADV_FLOAT64, &z, 1);
    void *out[3];
    for (int k = 0; k < 3; ++k) out[k] = conf_alloc_poisoned(ctx, ADV_FLOAT64, 1);
    cr_assert_eq(adv_field_eval(f, 0.5, 1, dz, out[0], out[1], out[2]), ADV_OK);
    for (int k = 0; k < 3; ++k) conf_download(ctx, ADV_FLOAT64, out[k], &got[k], 1);
    cr_expect(fabs(got[2] - 100.0) < 1e-12 && fabs(got[0]) < 1e-12 && fabs(got[1]) < 1e-12,
              "GMM: D = %g (100), v = %g (0), score = %g (0)", got[2], got[0], got[1]);
    conf_free(ctx, dz);
    for (int k = 0; k < 3; ++k) conf_free(ctx, out[k]);
    adv_field_destroy(f);
    conf_context_destroy(ctx);
}

/* ---- exact samples ---------------------------------------------------------------------- */

Test(sampling_fields, empirical_samples_follow_the_keys) {
    adv_context *ctx = conf_context();
    const int64_t n = 9, N = 41;
    const int d = 3;
    double y[27], w[9] = {1, 0, 2, 0.5, 0, 1, 1, 3, 0.25}, z[123], cdf[9], tot = 0;
    tu_fill_uniform(y, 27, -1, 1, 17);
    void *dy = conf_upload(ctx, ADV_FLOAT64, y, 27), *dw = conf_upload(ctx, ADV_FLOAT64, w, 9);
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
    eo.sigma = 0.5;
    adv_schedule_default(&eo.schedule, ADV_SCHEDULE_COSINE);
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, dy, dw, n, d, &eo, &f), ADV_OK);
    void *dz = conf_alloc_poisoned(ctx, ADV_FLOAT64, 123);
    cr_assert_eq(adv_field_sample(f, 0.35, 99, 1000, N, dz), ADV_OK);
    conf_download(ctx, ADV_FLOAT64, dz, z, 123);
    for (int j = 0; j < 9; ++j) tot += w[j];
    double c = 0;
    int64_t last = 0;
    for (int j = 0; j < 9; ++j) {
        c += w[j] / tot;
        cdf[j] = c;
        if (w[j] > 0) last = j;
    }
    for (int64_t j = last; j < 9; ++j) cdf[j] = 1.0;
    double a, b;
    adv_schedule_eval(&eo.schedule, 0.35, &a, &b, NULL, NULL);
    for (int64_t i = 0; i < N; ++i) {
        double xi[3];
        uint64_t part = 1000 + (uint64_t)i;
        advf_normals(99, ADVF_STREAM_SOURCE, 0, part, d, xi);
        int64_t J = advf_pick(cdf, n, advf_uniform(99, ADVF_STREAM_SOURCE, 1, part));
        cr_expect(w[J] > 0, "picked a zero-weight point");
        for (int k = 0; k < d; ++k) {
            double want = a * y[J * d + k] + b * 0.5 * xi[k];
            cr_expect(fabs(z[i * d + k] - want) <= 1e-12 * (1 + fabs(want)), "sample %lld: %.17g vs %.17g", (long long)i, z[i * d + k], want);
        }
    }
    conf_free(ctx, dy), conf_free(ctx, dw), conf_free(ctx, dz);
    adv_field_destroy(f);
    conf_context_destroy(ctx);
}

Test(sampling_fields, gaussian_and_gmm_sample_moments) {
    adv_context *ctx = conf_context();
    const int d = 2;
    const int64_t N = 40000;
    const double m0[2] = {0.5, -1}, S0[4] = {1.0, 0.3, 0.3, 0.5}, m1[2] = {-1, 2}, S1[4] = {0.4, -0.1, -0.1, 0.9};
    const adv_coupling cs[2] = {ADV_COUPLING_INDEPENDENT, ADV_COUPLING_OT};
    double *z = tu_calloc((size_t)N * d, sizeof *z), mean[2], cov[4];
    void *dz = conf_alloc_poisoned(ctx, ADV_FLOAT64, (size_t)N * d);
    const double t = 0.3;
    for (int c = 0; c < 2; ++c) {
        adv_field *f = NULL;
        cr_assert_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, d, m0, S0, m1, S1, cs[c], &f), ADV_OK);
        cr_assert_eq(adv_field_sample(f, t, 5, 0, N, dz), ADV_OK);
        conf_download(ctx, ADV_FLOAT64, dz, z, (size_t)N * d);
        su_moments(z, N, d, mean, cov);
        double St[4];
        if (cs[c] == ADV_COUPLING_INDEPENDENT) {
            for (int k = 0; k < 4; ++k) St[k] = (1 - t) * (1 - t) * S0[k] + t * t * S1[k];
        } else { // M_t S0 M_t, M_t = (1-t) I + t A
            double A[4], M[4], T[4];
            su_ref_ot_matrix(d, S0, S1, A);
            for (int k = 0; k < 4; ++k) M[k] = t * A[k] + ((k % 3) == 0 ? 1 - t : 0);
            su_matmul(d, M, S0, T);
            su_matmul(d, T, M, St);
        }
        for (int k = 0; k < 2; ++k) {
            double mt = (1 - t) * m0[k] + t * m1[k];
            cr_expect(fabs(mean[k] - mt) <= 5 * sqrt(St[k * 3] / N), "coupling %d mean %g vs %g", c, mean[k], mt);
        }
        for (int k = 0; k < 4; ++k) {
            int a = k / 2, b = k % 2;
            double se = sqrt((St[a * 3] * St[b * 3] + St[k] * St[k]) / N);
            cr_expect(fabs(cov[k] - St[k]) <= 5 * se, "coupling %d cov %g vs %g", c, cov[k], St[k]);
        }
        adv_field_destroy(f);
    }
    // Mixture at t = 0: the source mixture's mean.
    const double p[2] = {0.25, 0.75}, mu[4] = {-2, 0, 2, 1}, S[8] = {1, 0, 0, 1, 0.5, 0, 0, 0.5};
    const double q[1] = {1}, nu[2] = {0, 0}, G[4] = {0};
    adv_field *g = NULL;
    cr_assert_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, d, 2, p, mu, S, 1, q, nu, G, &g), ADV_OK);
    cr_assert_eq(adv_field_sample(g, 0.0, 6, 0, N, dz), ADV_OK);
    conf_download(ctx, ADV_FLOAT64, dz, z, (size_t)N * d);
    su_moments(z, N, d, mean, cov);
    // mean = (1, 0.75); var_x = E[var] + var of means = 0.625 + 3 = 3.625
    cr_expect(fabs(mean[0] - 1.0) <= 5 * sqrt(3.625 / N), "mixture mean %g", mean[0]);
    cr_expect(fabs(mean[1] - 0.75) <= 5 * sqrt(1.0 / N), "mixture mean %g", mean[1]);
    adv_field_destroy(g);
    conf_free(ctx, dz);
    free(z);
    conf_context_destroy(ctx);
}

/* Mixture samples at t = 0.6 against the mixture's closed-form moments: pair (k, l) with
 * weight p_k q_l has mean (1-t) mu_k + t nu_l and covariance (1-t)^2 S_k + t^2 G_l. A wrong
 * square root in the per-pair scale (den instead of sqrt(den)) changes the covariance several-
 * fold, far beyond the 5-standard-error bound. */
Test(sampling_fields, gmm_sample_moments_at_an_inner_time) {
    adv_context *ctx = conf_context();
    const int d = 2;
    const int64_t N = 40000;
    const double t = 0.6, s = 1 - t;
    const double p[2] = {0.25, 0.75}, mu[4] = {-2, 0, 2, 1}, S[8] = {1, 0.2, 0.2, 0.6, 0.5, 0, 0, 0.3};
    const double q[2] = {0.4, 0.6}, nu[4] = {0, 3, 1, -1}, G[8] = {0.3, 0, 0, 0.1, 0, 0, 0, 0}; // a Dirac
    adv_field *g = NULL;
    cr_assert_eq(adv_field_create_gmm(ctx, ADV_FLOAT64, d, 2, p, mu, S, 2, q, nu, G, &g), ADV_OK);
    double *z = tu_calloc((size_t)N * d, sizeof *z), mean[2], cov[4];
    void *dz = conf_alloc_poisoned(ctx, ADV_FLOAT64, (size_t)N * d);
    cr_assert_eq(adv_field_sample(g, t, 8, 0, N, dz), ADV_OK);
    conf_download(ctx, ADV_FLOAT64, dz, z, (size_t)N * d);
    su_moments(z, N, d, mean, cov);
    double m[2] = {0, 0}, C[4] = {0, 0, 0, 0};
    for (int k = 0; k < 2; ++k)
        for (int l = 0; l < 2; ++l) {
            double w = p[k] * q[l], mk[2];
            for (int a = 0; a < 2; ++a) mk[a] = s * mu[k * 2 + a] + t * nu[l * 2 + a];
            for (int a = 0; a < 2; ++a) {
                m[a] += w * mk[a];
                for (int b = 0; b < 2; ++b)
                    C[a * 2 + b] += w * (s * s * S[k * 4 + a * 2 + b] + t * t * G[l * 4 + a * 2 + b] + mk[a] * mk[b]);
            }
        }
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) C[a * 2 + b] -= m[a] * m[b];
    for (int a = 0; a < 2; ++a)
        cr_expect(fabs(mean[a] - m[a]) <= 5 * sqrt(C[a * 3] / N), "mixture mean[%d] %g vs %g", a, mean[a], m[a]);
    // Standard error of a covariance entry: sqrt((C_aa C_bb + C_ab^2)/N) for a Gaussian; a
    // mixture has heavier fourth moments, so allow 8 of them.
    for (int k = 0; k < 4; ++k) {
        int a = k / 2, b = k % 2;
        double se = sqrt((C[a * 3] * C[b * 3] + C[k] * C[k]) / N);
        cr_expect(fabs(cov[k] - C[k]) <= 8 * se, "mixture cov[%d] %g vs %g", k, cov[k], C[k]);
    }
    adv_field_destroy(g);
    conf_free(ctx, dz);
    free(z);
    conf_context_destroy(ctx);
}

/* Empirical samples at t = 1 on the linear schedule are data points drawn with the weights.
 * The counts are checked against the weights directly (not through the shared picking
 * function), so a picker that never reaches the last point, or reaches a zero-weight one, fails. */
Test(sampling_fields, empirical_sample_frequencies_follow_the_weights) {
    adv_context *ctx = conf_context();
    const int64_t n = 4, N = 20000;
    const double y[4] = {-1.5, 0.25, 2.0, 3.5};
    const double ws[2][4] = {{1, 1, 0, 2}, {0, 3, 1, 0}};
    double *z = tu_calloc((size_t)N, sizeof *z);
    void *dy = conf_upload(ctx, ADV_FLOAT64, y, 4), *dz = conf_alloc_poisoned(ctx, ADV_FLOAT64, (size_t)N);
    for (int c = 0; c < 2; ++c) {
        void *dw = conf_upload(ctx, ADV_FLOAT64, ws[c], 4);
        adv_field *f = NULL;
        cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, dy, dw, n, 1, NULL, &f), ADV_OK);
        cr_assert_eq(adv_field_sample(f, 1.0, 21 + (uint64_t)c, 0, N, dz), ADV_OK);
        conf_download(ctx, ADV_FLOAT64, dz, z, (size_t)N);
        int64_t count[4] = {0, 0, 0, 0}, other = 0;
        for (int64_t i = 0; i < N; ++i) {
            int hit = 0;
            for (int j = 0; j < 4; ++j)
                if (z[i] == y[j]) ++count[j], hit = 1;
            other += !hit;
        }
        cr_expect_eq(other, 0, "weights %d: %lld samples are not data points", c, (long long)other);
        const double tot = ws[c][0] + ws[c][1] + ws[c][2] + ws[c][3];
        for (int j = 0; j < 4; ++j) {
            double pj = ws[c][j] / tot, sd = sqrt(N * pj * (1 - pj));
            cr_expect(fabs((double)count[j] - N * pj) <= 5 * sd, "weights %d: point %d drawn %lld times, expected %g +- %g",
                      c, j, (long long)count[j], N * pj, 5 * sd);
        }
        adv_field_destroy(f);
        conf_free(ctx, dw);
    }
    conf_free(ctx, dy), conf_free(ctx, dz);
    free(z);
    conf_context_destroy(ctx);
}

/* At t = 1 (b = 0) the denoiser is the nearest data point; among equidistant points the
 * larger weight wins, then the lower index (field.h). The origin is at distance exactly 1
 * from all four points, in both precisions. */
Test(sampling_fields, empirical_tie_at_one_goes_to_the_larger_weight) {
    adv_context *ctx = conf_context();
    const double y[8] = {1, 0, -1, 0, 0, 1, 0, -1}, zero[2] = {0, 0}, off[2] = {0.25, 0};
    const double ws[3][4] = {{1, 3, 2, 0.5}, {1, 3, 2, 3}, {4, 1, 1, 1}};
    const int want[3] = {1, 1, 0};
    for (int pq = 0; pq < 2; ++pq) {
        adv_precision pr = pq ? ADV_FLOAT64 : ADV_FLOAT32;
        void *dy = conf_upload(ctx, pr, y, 8);
        for (int c = 0; c < 3; ++c) {
            void *dw = conf_upload(ctx, pr, ws[c], 4), *dz = conf_upload(ctx, pr, zero, 2);
            void *doff = conf_upload(ctx, pr, off, 2), *dd = conf_alloc_poisoned(ctx, pr, 2);
            adv_field *f = NULL;
            cr_assert_eq(adv_field_create_empirical(ctx, pr, dy, dw, 4, 2, NULL, &f), ADV_OK);
            double D[2];
            cr_assert_eq(adv_field_eval(f, 1.0, 1, dz, NULL, NULL, dd), ADV_OK);
            conf_download(ctx, pr, dd, D, 2);
            cr_expect(D[0] == y[2 * want[c]] && D[1] == y[2 * want[c] + 1], "%s weights %d: D = (%g, %g), expected point %d",
                      tu_precision_name(pr), c, D[0], D[1], want[c]);
            // Off the tie the nearest point wins whatever its weight.
            cr_assert_eq(adv_field_eval(f, 1.0, 1, doff, NULL, NULL, dd), ADV_OK);
            conf_download(ctx, pr, dd, D, 2);
            cr_expect(D[0] == 1.0 && D[1] == 0.0, "%s weights %d: off the tie D = (%g, %g)", tu_precision_name(pr), c, D[0], D[1]);
            adv_field_destroy(f);
            conf_free(ctx, dw), conf_free(ctx, dz), conf_free(ctx, doff), conf_free(ctx, dd);
        }
        conf_free(ctx, dy);
    }
    conf_context_destroy(ctx);
}

/* ---- integrators: host replays ---------------------------------------------------------- */

static const double RM0[2] = {0.2, -0.4}, RS0[4] = {1.0, 0.2, 0.2, 0.7}, RM1[2] = {1.0, 0.5},
                    RS1[4] = {0.6, -0.25, -0.25, 0.9};

/* Reference velocity / score / denoiser of the Gaussian FM problem above. */
static void rf(double t, const double *z, double *v, double *s, double *D) {
    su_ref_gauss_fm(2, RM0, RS0, RM1, RS1, t, z, v, s, D);
}

/* Host replay of one run of `m` on the Gaussian FM field (linear path, sigma = 1), with the
 * sampler's grid and update formulas and the shared noise function. */
static void replay(adv_method m, const double *grid, int K, uint64_t seed, int64_t N, double *z) {
    const advs_tableau *tb = m == ADV_METHOD_EULER ? &advs_euler : m == ADV_METHOD_HEUN ? &advs_heun
                           : m == ADV_METHOD_MIDPOINT ? &advs_midpoint : &advs_rk4;
    for (int64_t i = 0; i < N; ++i) {
        double *x = z + 2 * i, Dprev[2] = {0, 0}, hprev = 0;
        int has_prev = 0;
        for (int k = 0; k < K; ++k) {
            double t = grid[k], u = grid[k + 1], h = u - t;
            if (m == ADV_METHOD_DDIM || m == ADV_METHOD_DPM2M || (m == ADV_METHOD_SDE && k == K - 1)) {
                double D[2], at = t, bt = 1 - t, au = u, bu = 1 - u;
                rf(t, x, NULL, NULL, D);
                double ratio = bu / bt, cd = au - at * ratio;
                double lt = at > 0 ? log(at / bt) : -INFINITY, lu = bu > 0 ? log(au / bu) : INFINITY, hl = lu - lt, c = 0;
                if (m == ADV_METHOD_DPM2M && has_prev && isfinite(hl) && isfinite(hprev) && hprev > 0) c = hl / (2 * hprev);
                for (int j = 0; j < 2; ++j) x[j] = ratio * x[j] + (cd * (1 + c) * D[j] - cd * c * Dprev[j]);
                if (m == ADV_METHOD_DPM2M) {
                    memcpy(Dprev, D, sizeof D);
                    has_prev = 1;
                    hprev = hl;
                }
            } else if (m == ADV_METHOD_SDE) {
                double v[2], s[2], g2 = 2 * (1 - t) * ((1 - t) / t + 1); // 2 sigma^2 b (b a'/a - b')
                rf(t, x, v, s, NULL);
                double xi[2];
                advf_normals(seed, ADVF_STREAM_SDE | 0u, (uint32_t)k, (uint64_t)i, 2, xi);
                for (int j = 0; j < 2; ++j) x[j] = x[j] + (h * v[j] + 0.5 * g2 * h * s[j]) + sqrt(g2 * h) * xi[j];
            } else {
                double kk[4][2], y[2];
                for (int st = 0; st < tb->stages; ++st) {
                    for (int j = 0; j < 2; ++j) {
                        double acc = 0;
                        for (int l = 0; l < st; ++l) acc += tb->a[st][l] * kk[l][j];
                        y[j] = x[j] + h * acc;
                    }
                    rf(t + tb->c[st] * h, y, kk[st], NULL, NULL);
                }
                for (int j = 0; j < 2; ++j) {
                    double acc = 0;
                    for (int l = 0; l < tb->stages; ++l) acc += tb->b[l] * kk[l][j];
                    x[j] += h * acc;
                }
            }
        }
    }
}

static void check_integrators(adv_precision p) {
    adv_context *ctx = conf_context();
    const int64_t N = 29;
    const int K = 12;
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_gaussian(ctx, p, 2, RM0, RS0, RM1, RS1, ADV_COUPLING_INDEPENDENT, &f), ADV_OK);
    double z0[58], z[58], ref[58], grid[13];
    tu_fill_uniform(z0, 58, -2, 2, 23);
    tu_round_to_precision(z0, 58, p);
    const adv_method ms[7] = {ADV_METHOD_EULER, ADV_METHOD_HEUN, ADV_METHOD_MIDPOINT, ADV_METHOD_RK4,
                              ADV_METHOD_DDIM, ADV_METHOD_DPM2M, ADV_METHOD_SDE};
    const double tol = p == ADV_FLOAT64 ? 1e-9 : 1e-4;
    for (int m = 0; m < 7; ++m) {
        for (int grid_kind = 0; grid_kind < 3; ++grid_kind) {
            adv_sampler_opts o;
            adv_sampler_default_opts(&o);
            o.method = ms[m];
            o.steps = K;
            o.grid = (adv_time_grid)grid_kind;
            o.t0 = ms[m] == ADV_METHOD_SDE ? 0.1 : 0.0;
            o.seed = 31;
            o.chunk_size = 10;
            adv_sampler *s = NULL;
            cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK, "%s", adv_context_last_error(ctx));
            cr_assert_eq(adv_sampler_time_grid(s, grid), ADV_OK);
            void *dz = conf_upload(ctx, p, z0, 58);
            adv_sampler_stats st = {.struct_size = sizeof st};
            cr_assert_eq(adv_sampler_run(s, N, dz, &st), ADV_OK, "%s", adv_context_last_error(ctx));
            conf_download(ctx, p, dz, z, 58);
            memcpy(ref, z0, sizeof ref);
            replay(ms[m], grid, K, 31, N, ref);
            for (int k = 0; k < 58; ++k)
                cr_expect(fabs(z[k] - ref[k]) <= tol * (1 + fabs(ref[k])), "%s method %d grid %d: %.12g vs %.12g",
                          tu_precision_name(p), (int)ms[m], grid_kind, z[k], ref[k]);
            cr_expect_eq(st.chunks, 3);
            cr_expect_eq(st.steps, K);
            adv_sampler_destroy(s);
            conf_free(ctx, dz);
        }
    }
    // DOPRI5 against the closed-form map.
    double A[4], c[2];
    cr_assert_eq(adv_gaussian_map(ADV_COUPLING_INDEPENDENT, 2, RM0, RS0, RM1, RS1, A, c), ADV_OK);
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.method = ADV_METHOD_DOPRI5;
    o.atol = o.rtol = p == ADV_FLOAT64 ? 1e-8 : 1e-5;
    o.chunk_size = 7;
    void *dz = conf_upload(ctx, p, z0, 58);
    adv_sampler_stats st = {.struct_size = sizeof st};
    cr_assert_eq(adv_sample(f, &o, N, dz, &st), ADV_OK);
    conf_download(ctx, p, dz, z, 58);
    for (int i = 0; i < N; ++i)
        for (int k = 0; k < 2; ++k) {
            double want = c[k] + A[2 * k] * z0[2 * i] + A[2 * k + 1] * z0[2 * i + 1];
            cr_expect(fabs(z[2 * i + k] - want) <= 100 * o.atol * (1 + fabs(want)), "dopri5: %g vs %g", z[2 * i + k], want);
        }
    cr_expect_eq(st.failed, 0);
    conf_free(ctx, dz);
    adv_field_destroy(f);
    conf_context_destroy(ctx);
}

Test(sampling_integrators, replay_f64) { check_integrators(ADV_FLOAT64); }
Test(sampling_integrators, replay_f32) { check_integrators(ADV_FLOAT32); }

/* Chunk sizes, host-staged particles (CUDA; ignored on the CPU) and checkpoints: identical
 * bits on this backend. */
Test(sampling_integrators, chunks_staging_checkpoint) {
    adv_context *ctx = conf_context();
    const int64_t n = 300, N = 45;
    const int d = 2;
    double y[600], z[90], a[90], b[90];
    tu_fill_uniform(y, 600, -2, 2, 41);
    void *dy = conf_upload(ctx, ADV_FLOAT32, y, 600);
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT32, dy, NULL, n, d, NULL, &f), ADV_OK);
    const adv_method ms[3] = {ADV_METHOD_SDE, ADV_METHOD_DOPRI5, ADV_METHOD_DPM2M};
    for (int m = 0; m < 3; ++m) {
        adv_sampler_opts o;
        adv_sampler_default_opts(&o);
        o.method = ms[m];
        o.steps = 10;
        o.t0 = 0.2;
        o.atol = o.rtol = 1e-3;
        o.init_from_source = 1;
        o.seed = 8;
        void *dz = conf_alloc_poisoned(ctx, ADV_FLOAT32, 90);
        cr_assert_eq(adv_sample(f, &o, N, dz, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
        conf_download(ctx, ADV_FLOAT32, dz, z, 90);
        o.chunk_size = 4;
        cr_assert_eq(adv_sample(f, &o, N, dz, NULL), ADV_OK);
        conf_download(ctx, ADV_FLOAT32, dz, a, 90);
        cr_expect(memcmp(a, z, sizeof z) == 0, "method %d: chunking changed the result", (int)ms[m]);
        // Host-staged particles.
        o.particles_on_host = 1;
        float host[90];
        cr_assert_eq(adv_sample(f, &o, N, host, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
        if (adv_context_backend(ctx) == ADV_BACKEND_CUDA)
            for (int k = 0; k < 90; ++k) cr_expect(host[k] == (float)z[k], "method %d: staged run differs", (int)ms[m]);
        o.particles_on_host = 0;
        // Checkpoint after a few steps, resume in a new sampler.
        char path[128];
        snprintf(path, sizeof path, "advect-conf-%d-%d.ckpt", (int)getpid(), m);
        adv_sampler *s = NULL, *r = NULL;
        cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
        cr_assert_eq(adv_sampler_begin(s, N, dz), ADV_OK);
        cr_assert_eq(adv_sampler_advance(s, 13, NULL, NULL), ADV_OK);
        cr_assert_eq(adv_sampler_checkpoint_save(s, path), ADV_OK, "%s", adv_context_last_error(ctx));
        void *dz2 = conf_alloc_poisoned(ctx, ADV_FLOAT32, 90);
        cr_assert_eq(adv_sampler_create(f, &o, &r), ADV_OK);
        cr_assert_eq(adv_sampler_checkpoint_load(r, path, N, dz2), ADV_OK, "%s", adv_context_last_error(ctx));
        int done = 0;
        cr_assert_eq(adv_sampler_advance(r, INT64_MAX, &done, NULL), ADV_OK);
        cr_expect(done);
        conf_download(ctx, ADV_FLOAT32, dz2, b, 90);
        cr_expect(memcmp(b, z, sizeof z) == 0, "method %d: resumed run differs", (int)ms[m]);
        remove(path);
        adv_sampler_destroy(s);
        adv_sampler_destroy(r);
        conf_free(ctx, dz), conf_free(ctx, dz2);
    }
    adv_field_destroy(f);
    conf_free(ctx, dy);
    conf_context_destroy(ctx);
}

/* User fields, on every backend. The callback gets pointers in the context's memory space
 * (device memory on CUDA, where it must finish or enqueue its work on the request's stream):
 * this one stages z (and the per-particle times) to the host with adv_memcpy on the field's
 * context, computes the Gaussian FM problem's denoiser there (rf, double) and copies it
 * back, so it runs unchanged on both backends. It declares DENOISER only, so it must be asked
 * for nothing else (velocity and score NULL), in float64 and d = 2, with the context's stream
 * (conf_context sets none: NULL, the legacy default stream, on both backends). Velocity and
 * score are derived through the schedule: the velocity and the denoiser must match the
 * Gaussian field's own, the score its conversion formula (it assumes an isotropic source,
 * which this problem's is not), at a common time and at per-particle times; and a sampler
 * (Heun, 8 steps to t = 0.9) through the user field must match the same sampler through the
 * Gaussian field.
 * Tolerances: both sides evaluate the same closed form in double (the test's dense inverse,
 * the library's own factorisation; Sigma_t is well conditioned, eigenvalues >= ~0.15), so D
 * agrees to ~1e-15; v = (D - z)/(1 - t) and s = (t D - z)/(1 - t)^2 amplify that (and the
 * rounding of the conversion) by at most 10 and 100 for t <= 0.9: 1e-12 (1 + |ref|). The
 * Heun runs add 16 evaluations whose differences the flow carries with a Lipschitz factor of
 * a few units (dv/dz = (t S1 - (1 - t) S0) Sigma_t^-1 has norm ~1 on [0, 0.9]):
 * 1e-10 (1 + |ref|), a wide margin that still fails on any formula or staging error. */
typedef struct user_stage {
    adv_context *ctx;
    int calls, with_times, bad_request, failed_copy;
} user_stage;

static int gauss_denoiser(void *user, const adv_field_request *r) {
    user_stage *u = user;
    u->calls++;
    if (r->precision != ADV_FLOAT64 || r->dim != 2 || r->n < 1 || !r->z || !r->denoiser ||
        r->velocity || r->score || r->stream != NULL) {
        u->bad_request++;
        return 3;
    }
    const size_t n = (size_t)r->n, nd = 2 * n;
    double *z = tu_calloc(nd, sizeof *z), *D = tu_calloc(nd, sizeof *D);
    double *t = r->times ? tu_calloc(n, sizeof *t) : NULL;
    int rc = adv_memcpy(u->ctx, z, r->z, nd * sizeof *z, ADV_COPY_CONTEXT_TO_HOST) != ADV_OK;
    if (!rc && t) {
        rc = adv_memcpy(u->ctx, t, r->times, n * sizeof *t, ADV_COPY_CONTEXT_TO_HOST) != ADV_OK;
        u->with_times++;
    }
    for (size_t i = 0; !rc && i < n; ++i) rf(t ? t[i] : r->t, z + 2 * i, NULL, NULL, D + 2 * i);
    if (!rc) rc = adv_memcpy(u->ctx, r->denoiser, D, nd * sizeof *D, ADV_COPY_HOST_TO_CONTEXT) != ADV_OK;
    u->failed_copy += rc;
    free(z), free(D), free(t);
    return rc ? 4 : 0;
}

Test(sampling_fields, user_denoiser_conversions) {
    adv_context *ctx = conf_context();
    user_stage us = {ctx, 0, 0, 0, 0};
    adv_user_field_opts uo;
    adv_user_field_default_opts(&uo);
    uo.fn = gauss_denoiser;
    uo.user = &us;
    uo.outputs = ADV_FIELD_DENOISER;
    adv_field *u = NULL, *g = NULL;
    cr_assert_eq(adv_field_create_user(ctx, ADV_FLOAT64, 2, &uo, &u), ADV_OK);
    cr_assert_eq(adv_field_create_gaussian(ctx, ADV_FLOAT64, 2, RM0, RS0, RM1, RS1, ADV_COUPLING_INDEPENDENT, &g), ADV_OK);
    enum { N = 7, ND = 2 * N };
    double z[ND], times[N] = {0.1, 0.2, 0.5, 0.7, 0.9, 0.33, 0.6}, got[2][3][ND];
    tu_fill_uniform(z, ND, -2, 2, 3);
    void *dz = conf_upload(ctx, ADV_FLOAT64, z, ND), *dt = conf_upload(ctx, ADV_FLOAT64, times, N);
    const char *what[3] = {"velocity", "score", "denoiser"};
    for (int pass = 0; pass < 2; ++pass) { // 0: common time 0.4; 1: per-particle times
        for (int k = 0; k < 2; ++k) {      // 0: user field; 1: Gaussian field
            adv_field *f = k ? g : u;
            void *out[3];
            for (int o = 0; o < 3; ++o) out[o] = conf_alloc_poisoned(ctx, ADV_FLOAT64, ND);
            adv_status st = pass ? adv_field_eval_times(f, dt, N, dz, out[0], out[1], out[2])
                                 : adv_field_eval(f, 0.4, N, dz, out[0], out[1], out[2]);
            cr_assert_eq(st, ADV_OK, "pass %d field %d: %s", pass, k, adv_context_last_error(ctx));
            for (int o = 0; o < 3; ++o) {
                conf_download(ctx, ADV_FLOAT64, out[o], got[k][o], ND);
                conf_free(ctx, out[o]);
            }
        }
        for (int o = 0; o < 3; o += 2) // velocity and denoiser: the Gaussian field's
            for (int i = 0; i < ND; ++i)
                cr_expect(fabs(got[0][o][i] - got[1][o][i]) <= 1e-12 * (1 + fabs(got[1][o][i])),
                          "%s times, %s [%d]: user field %.17g, Gaussian field %.17g",
                          pass ? "per-particle" : "common", what[o], i, got[0][o][i], got[1][o][i]);
        // The score conversion assumes the source N(0, sigma^2 I) (here sigma = 1), not this
        // problem's N(m0, S0): checked against its formula, (t D - z) / (1 - t)^2.
        for (int i = 0; i < ND; ++i) {
            const double t = pass ? times[i / 2] : 0.4;
            const double want = (t * got[0][2][i] - z[i]) / ((1 - t) * (1 - t));
            cr_expect(fabs(got[0][1][i] - want) <= 1e-12 * (1 + fabs(want)), "%s times, score [%d]: %.17g, "
                      "(t D - z)/(1 - t)^2 = %.17g", pass ? "per-particle" : "common", i, got[0][1][i], want);
        }
    }
    cr_expect(us.with_times > 0, "the callback never saw per-particle times");
    // A sampler through each field.
    adv_sampler_opts so;
    adv_sampler_default_opts(&so);
    so.method = ADV_METHOD_HEUN;
    so.steps = 8;
    so.t1 = 0.9;
    double zs[2][ND];
    for (int k = 0; k < 2; ++k) {
        void *dzs = conf_upload(ctx, ADV_FLOAT64, z, ND);
        cr_assert_eq(adv_sample(k ? g : u, &so, N, dzs, NULL), ADV_OK, "field %d: %s", k, adv_context_last_error(ctx));
        conf_download(ctx, ADV_FLOAT64, dzs, zs[k], ND);
        conf_free(ctx, dzs);
    }
    for (int i = 0; i < ND; ++i)
        cr_expect(fabs(zs[0][i] - zs[1][i]) <= 1e-10 * (1 + fabs(zs[1][i])), "Heun sample [%d]: user %.17g, Gaussian %.17g",
                  i, zs[0][i], zs[1][i]);
    cr_expect(us.calls >= 2 + 16, "the callback ran %d times", us.calls);
    cr_expect_eq(us.bad_request, 0, "the callback was asked for undeclared outputs, another precision, "
                 "dimension or stream");
    cr_expect_eq(us.failed_copy, 0, "adv_memcpy failed inside the callback");
    conf_free(ctx, dz), conf_free(ctx, dt);
    adv_field_destroy(u);
    adv_field_destroy(g);
    conf_context_destroy(ctx);
}

/* Chunk sizes on the GEMM path (d >= 64 on CUDA: the interaction sums' dot products come from
 * cuBLAS, host/cuda/interaction_cuda.c, in tiles of min(N, 4096) queries, so each chunk's
 * GEMMs see another number of queries). Empirical field of 160 points in d = 64, float32, 24
 * particles drawn from the source: one chunk, chunks of 16 (a full one and a partial one) and
 * of 7; a fixed-step method at common times (the plan's ordinary mode), DOPRI5 (per-particle
 * times: the per-row mode) and the SDE (noise keyed per particle). On CUDA the context logs
 * at DEBUG, and the plans must report the GEMM path.
 * Identical bits are required where the GEMM's summation order cannot depend on its shape: on
 * the CPU (its engine never uses one) and on the emulated device (its cuBLAS is a plain loop).
 * A real cuBLAS may pick another algorithm per shape, and docs/sampling.md promises agreement
 * "to rounding, not bit for bit" there; so on a GPU the test reports how many values differ and
 * by how much (advect-tests: lines) and requires that every particle end nearest the same data
 * point: at t1 = 0.95 each particle lies within about b sigma sqrt(d) = 0.4 of some a_t y_J
 * (seen on the CPU: 0.34 to 0.96) and over 4 from every other one (seen: >= 4.46), so
 * rounding cannot change J, while a chunking error (rows mixed up, a stale workspace) does. */
static void count_gemm_plans(void *user, adv_log_level level, const char *message) {
    (void)level;
    if (strstr(message, "GEMM path")) ++*(int *)user;
}

static int64_t nearest_point(const double *y, int64_t n, int d, double a, const double *z) {
    int64_t best = -1;
    double bd = INFINITY;
    for (int64_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (int k = 0; k < d; ++k) s += (z[k] - a * y[j * d + k]) * (z[k] - a * y[j * d + k]);
        if (s < bd) bd = s, best = j;
    }
    return best;
}

Test(sampling_integrators, chunks_on_the_gemm_path_d64) {
    conf_context_destroy(conf_context()); // (skips without a usable device)
    adv_build_info bi;
    adv_build_info_get(&bi);
    const int bitwise = ADV_TEST_BACKEND == ADV_BACKEND_CPU || strcmp(bi.cuda_architectures, "emulated") == 0;
    int gemm_plans = 0;
    adv_context_opts co;
    adv_context_default_opts(&co);
    co.backend = ADV_TEST_BACKEND;
    co.log = count_gemm_plans;
    co.log_user = &gemm_plans;
    co.log_level = ADV_LOG_DEBUG;
    adv_context *ctx = NULL;
    cr_assert_eq(adv_context_create(&co, &ctx), ADV_OK);
    cr_assert_eq(adv_context_backend(ctx), ADV_TEST_BACKEND);
    enum { n = 160, N = 24, d = 64 };
    const double t1 = 0.95;
    double *y = tu_calloc(n * d, sizeof *y), *ref = tu_calloc(N * d, sizeof *ref), *got = tu_calloc(N * d, sizeof *got);
    tu_fill_uniform(y, n * d, -1, 1, 64);
    tu_round_to_precision(y, n * d, ADV_FLOAT32);
    void *dy = conf_upload(ctx, ADV_FLOAT32, y, n * d);
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT32, dy, NULL, n, d, NULL, &f), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    const adv_method ms[3] = {ADV_METHOD_HEUN, ADV_METHOD_DOPRI5, ADV_METHOD_SDE};
    const int64_t chunks[3] = {0, 16, 7};
    for (int m = 0; m < 3; ++m) {
        adv_sampler_opts o;
        adv_sampler_default_opts(&o);
        o.method = ms[m];
        o.steps = 4;
        o.t0 = 0.4;
        o.t1 = t1;
        o.atol = o.rtol = 2e-2;
        o.init_from_source = 1;
        o.seed = 5;
        for (int c = 0; c < 3; ++c) {
            o.chunk_size = chunks[c];
            void *dz = conf_alloc_poisoned(ctx, ADV_FLOAT32, N * d);
            adv_sampler_stats st = {.struct_size = sizeof st};
            cr_assert_eq(adv_sample(f, &o, N, dz, &st), ADV_OK, "method %d chunk %lld: %s", (int)ms[m],
                         (long long)chunks[c], adv_context_last_error(ctx));
            cr_expect_eq(st.chunks, chunks[c] ? (N + chunks[c] - 1) / chunks[c] : 1);
            conf_download(ctx, ADV_FLOAT32, dz, c ? got : ref, N * d);
            conf_free(ctx, dz);
            if (!c) continue;
            int differ = 0, moved = 0;
            double worst = 0.0;
            for (int i = 0; i < N * d; ++i)
                if (memcmp(&got[i], &ref[i], sizeof got[i]) != 0)
                    differ++, worst = fmax(worst, fabs(got[i] - ref[i]));
            for (int i = 0; i < N; ++i)
                moved += nearest_point(y, n, d, t1, got + i * d) != nearest_point(y, n, d, t1, ref + i * d);
            if (bitwise)
                cr_expect_eq(differ, 0, "method %d: chunks of %lld differ from one chunk in %d of %d values "
                             "(largest difference %.3g)", (int)ms[m], (long long)chunks[c], differ, N * d, worst);
            else
                fprintf(stderr, "advect-tests: %s: GEMM path (d = 64), method %d, chunks of %lld: %d of %d "
                        "values differ from one chunk (largest difference %.3g)\n", ADV_TEST_EXE, (int)ms[m],
                        (long long)chunks[c], differ, N * d, worst);
            cr_expect_eq(moved, 0, "method %d: with chunks of %lld, %d particles end at another data point",
                         (int)ms[m], (long long)chunks[c], moved);
        }
    }
    if (ADV_TEST_BACKEND == ADV_BACKEND_CUDA)
        cr_expect(gemm_plans > 0, "no interaction plan reported the GEMM path at d = 64");
    adv_field_destroy(f);
    conf_free(ctx, dy);
    free(y), free(ref), free(got);
    conf_context_destroy(ctx);
}

/* ---- re-entrant calls from callbacks ---------------------------------------------------- */

/* A user schedule (the linear formulas) that, once armed, evaluates and samples the field it
 * belongs to from inside that field's evaluation: each such call is refused with
 * ADV_ERR_INVALID_VALUE and writes nothing, and the evaluation in progress gives the same bits
 * as without them. Before, the inner evaluation (more rows) reallocated the coefficient
 * staging under the outer one (heap-use-after-free). */
typedef struct reentrant_schedule {
    adv_context *ctx;
    adv_field *self;
    int armed, inside;
    int64_t n;              /* rows of the inner calls */
    void *z, *times, *out;  /* context memory for them; out poisoned */
    adv_status st[3];       /* eval_times, eval, sample */
    char msg[256];
} reentrant_schedule;

static void reentrant_linear(void *user, double t, double ab[4]) {
    reentrant_schedule *r = user;
    ab[0] = t, ab[1] = 1.0 - t, ab[2] = 1.0, ab[3] = -1.0;
    if (!r->self || !r->armed || r->inside) return;
    r->inside = 1;
    r->armed = 0;
    r->st[0] = adv_field_eval_times(r->self, r->times, r->n, r->z, r->out, NULL, NULL);
    snprintf(r->msg, sizeof r->msg, "%s", adv_context_last_error(r->ctx));
    r->st[1] = adv_field_eval(r->self, 0.5, r->n, r->z, NULL, NULL, r->out);
    r->st[2] = adv_field_sample(r->self, 0.5, 1, 0, r->n, r->out);
    r->inside = 0;
}

Test(sampling_fields, reentrant_evaluation_from_a_user_schedule) {
    adv_context *ctx = conf_context();
    const int64_t N = 23, n = 40, big = 64 * N;
    const int d = 2;
    double y[80], z[46], times[23], out[2][46];
    tu_fill_uniform(y, 80, -2, 2, 71);
    tu_fill_uniform(z, 46, -2.5, 2.5, 72);
    for (int64_t i = 0; i < N; ++i) times[i] = (double)(i % 11) / 10.0;
    double *zbig = tu_calloc((size_t)(big * d), sizeof *zbig), *tbig = tu_calloc((size_t)big, sizeof *tbig);
    for (int64_t i = 0; i < big; ++i) tbig[i] = 0.25;
    void *dy = conf_upload(ctx, ADV_FLOAT64, y, 80), *dz = conf_upload(ctx, ADV_FLOAT64, z, 46);
    void *dt = conf_upload(ctx, ADV_FLOAT64, times, 23);
    reentrant_schedule r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.n = big;
    r.z = conf_upload(ctx, ADV_FLOAT64, zbig, (size_t)(big * d));
    r.times = conf_upload(ctx, ADV_FLOAT64, tbig, (size_t)big);
    r.out = conf_alloc_poisoned(ctx, ADV_FLOAT64, (size_t)(big * d));
    adv_empirical_opts eo;
    adv_empirical_default_opts(&eo);
    adv_schedule_default(&eo.schedule, ADV_SCHEDULE_USER);
    eo.schedule.fn = reentrant_linear;
    eo.schedule.user = &r;
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, dy, NULL, n, d, &eo, &f), ADV_OK);
    r.self = f;
    for (int armed = 0; armed < 2; ++armed) {
        r.armed = armed;
        for (int k = 0; k < 3; ++k) r.st[k] = ADV_OK;
        void *dv = conf_alloc_poisoned(ctx, ADV_FLOAT64, 46);
        cr_assert_eq(adv_field_eval_times(f, dt, N, dz, dv, NULL, NULL), ADV_OK, "armed %d: %s", armed,
                     adv_context_last_error(ctx));
        conf_download(ctx, ADV_FLOAT64, dv, out[armed], 46);
        conf_free(ctx, dv);
    }
    cr_expect_eq(r.armed, 0, "the schedule was not called during the evaluation");
    cr_expect_eq(r.st[0], ADV_ERR_INVALID_VALUE, "eval_times from the schedule: %s", adv_status_name(r.st[0]));
    cr_expect(strstr(r.msg, "already being evaluated") != NULL, "message: %s", r.msg);
    cr_expect_eq(r.st[1], ADV_ERR_INVALID_VALUE, "eval from the schedule: %s", adv_status_name(r.st[1]));
    cr_expect_eq(r.st[2], ADV_ERR_INVALID_VALUE, "sample from the schedule: %s", adv_status_name(r.st[2]));
    cr_expect(memcmp(out[0], out[1], sizeof out[0]) == 0, "the refused inner calls changed the result");
    // Nothing written by the refused calls.
    unsigned char *got = tu_calloc((size_t)(big * d), 8), *poison = tu_calloc((size_t)(big * d), 8);
    tu_poison(poison, (size_t)(big * d) * 8);
    cr_assert_eq(adv_memcpy(ctx, got, r.out, (size_t)(big * d) * 8, ADV_COPY_CONTEXT_TO_HOST), ADV_OK);
    cr_expect(memcmp(got, poison, (size_t)(big * d) * 8) == 0, "a refused call wrote its output");
    // The guard is released: the same calls work outside the evaluation.
    cr_expect_eq(adv_field_eval_times(f, r.times, big, r.z, r.out, NULL, NULL), ADV_OK, "%s",
                 adv_context_last_error(ctx));
    cr_expect_eq(adv_field_sample(f, 0.5, 1, 0, big, r.out), ADV_OK);
    cr_expect_eq(adv_field_destroy(f), ADV_OK);
    free(got), free(poison), free(zbig), free(tbig);
    conf_free(ctx, r.z), conf_free(ctx, r.times), conf_free(ctx, r.out);
    conf_free(ctx, dy), conf_free(ctx, dz), conf_free(ctx, dt);
    conf_context_destroy(ctx);
}

/* Checkpoints saved from the snapshot callback: at every snapshot (the first and last of each
 * chunk and the run's last step included), one file each, for each method family, with and
 * without an exponential last step (t1 = 1 and 0.9), 11 particles in chunks of 4. Each file
 * resumes in a fresh sampler to the bits and statistics of the uninterrupted run, calling
 * back exactly the snapshots after its own. Before, a save at a chunk's last snapshot
 * (step K, taken before the chunk's finish) resumed past the grid's end, and DOPRI5's resumed
 * from a segment already done (or, at snapshot 0, before its controller existed). With
 * particles on the host (CUDA), the rows handed to the callback stay valid across the save. */
enum { SNAP_MAX = 64 };
typedef struct snap_saver {
    adv_sampler *s;           /* saves when set, else only records */
    int calls;
    int64_t seq[SNAP_MAX][2]; /* (snapshot, first) of each call */
    adv_status st[SNAP_MAX];
    int rows_changed;         /* host rows handed in differ after the save */
    size_t row_bytes;
    int host_rows;
} snap_saver;

static void snap_path(char *buf, size_t size, int k) {
    snprintf(buf, size, "advect-conf-snap-%d-%d.ckpt", (int)getpid(), k);
}

static int save_at_snapshot(void *user, int64_t snapshot, int64_t step, double t, int64_t first,
                            int64_t count, const void *z) {
    snap_saver *w = user;
    (void)step, (void)t;
    if (w->calls >= SNAP_MAX) return 1;
    const int k = w->calls++;
    w->seq[k][0] = snapshot, w->seq[k][1] = first;
    if (!w->s) return 0;
    char path[96];
    snap_path(path, sizeof path, k);
    const size_t bytes = (size_t)count * w->row_bytes;
    void *before = w->host_rows ? malloc(bytes) : NULL;
    if (before) memcpy(before, z, bytes);
    w->st[k] = adv_sampler_checkpoint_save(w->s, path);
    if (before && memcmp(before, z, bytes) != 0) w->rows_changed++;
    free(before);
    return 0;
}

static void check_snapshot_saves(adv_context *ctx, adv_field *f, adv_method m, double t1,
                                 int64_t every, double tol, int staged) {
    const int64_t N = 11;
    const int d = 2;
    adv_sampler_opts o;
    adv_sampler_default_opts(&o);
    o.method = m;
    o.steps = 5;
    o.t0 = 0.1;
    o.t1 = t1;
    o.atol = o.rtol = tol;
    o.seed = 12;
    o.init_from_source = 1;
    o.chunk_size = 4;
    o.save_every = every;
    o.snapshot = save_at_snapshot;
    o.particles_on_host = staged;
    const int host = staged || adv_context_backend(ctx) == ADV_BACKEND_CPU;
    const size_t bytes = (size_t)(N * d) * sizeof(double);
    // The uninterrupted run (recording only), then the one that saves at every snapshot.
    snap_saver plain = {.row_bytes = d * sizeof(double), .host_rows = host}, saving = plain;
    o.snapshot_user = &plain;
    double ref[22], got[22];
    void *dz = staged ? malloc(bytes) : conf_alloc_poisoned(ctx, ADV_FLOAT64, 22);
    adv_sampler_stats sp = {.struct_size = sizeof sp}, sr = {.struct_size = sizeof sr};
    cr_assert_eq(adv_sample(f, &o, N, dz, &sp), ADV_OK, "%s", adv_context_last_error(ctx));
    if (staged) memcpy(ref, dz, bytes); else conf_download(ctx, ADV_FLOAT64, dz, ref, 22);
    adv_sampler *s = NULL;
    o.snapshot_user = &saving;
    cr_assert_eq(adv_sampler_create(f, &o, &s), ADV_OK);
    saving.s = s;
    cr_assert_eq(adv_sampler_run(s, N, dz, NULL), ADV_OK, "%s", adv_context_last_error(ctx));
    adv_sampler_destroy(s);
    const int calls = plain.calls;
    cr_assert_eq(saving.calls, calls);
    cr_expect_eq(saving.rows_changed, 0, "method %d: the save overwrote the rows handed to the callback", (int)m);
    cr_assert_eq(calls, 3 * (1 + 5 / every), "method %d: %d snapshot calls", (int)m, calls);
    for (int k = 0; k < calls; ++k) {
        cr_assert_eq(saving.st[k], ADV_OK, "method %d t1 %g: save at call %d failed", (int)m, t1, k);
        char path[96];
        snap_path(path, sizeof path, k);
        snap_saver rec = plain;
        rec.calls = 0;
        o.snapshot_user = &rec;
        adv_sampler *r = NULL;
        cr_assert_eq(adv_sampler_create(f, &o, &r), ADV_OK);
        void *dz2 = staged ? malloc(bytes) : conf_alloc_poisoned(ctx, ADV_FLOAT64, 22);
        adv_status st = adv_sampler_checkpoint_load(r, path, N, dz2);
        cr_expect_eq(st, ADV_OK, "method %d t1 %g every %lld: load of the save at snapshot %lld "
                     "(rows from %lld): %s", (int)m, t1, (long long)every, (long long)plain.seq[k][0],
                     (long long)plain.seq[k][1], adv_context_last_error(ctx));
        int done = 0;
        if (st == ADV_OK) {
            cr_expect_eq(adv_sampler_advance(r, 1000, &done, &sr), ADV_OK, "%s", adv_context_last_error(ctx));
            cr_expect(done, "method %d: the resumed run did not finish", (int)m);
        }
        if (st == ADV_OK && done) {
            if (staged) memcpy(got, dz2, bytes); else conf_download(ctx, ADV_FLOAT64, dz2, got, 22);
            cr_expect(memcmp(got, ref, bytes) == 0, "method %d t1 %g every %lld staged %d: resumed "
                      "from snapshot %lld (rows from %lld) differs", (int)m, t1, (long long)every,
                      staged, (long long)plain.seq[k][0], (long long)plain.seq[k][1]);
            cr_expect(sr.particles == sp.particles && sr.chunks == sp.chunks && sr.steps == sp.steps &&
                      sr.accepted == sp.accepted && sr.rejected == sp.rejected &&
                      sr.evaluations == sp.evaluations &&
                      sr.particle_evaluations == sp.particle_evaluations && sr.failed == sp.failed &&
                      sr.snapshots == sp.snapshots && sr.t_reached == sp.t_reached &&
                      sr.completed == sp.completed,
                      "method %d t1 %g: statistics after resuming from call %d differ (evaluations "
                      "%lld vs %lld, snapshots %lld vs %lld)", (int)m, t1, k,
                      (long long)sr.evaluations, (long long)sp.evaluations,
                      (long long)sr.snapshots, (long long)sp.snapshots);
            cr_expect_eq(rec.calls, calls - 1 - k, "method %d t1 %g: resumed from call %d, %d "
                         "snapshot calls (want %d)", (int)m, t1, k, rec.calls, calls - 1 - k);
            for (int j = 0; j < rec.calls && k + 1 + j < calls; ++j)
                cr_expect(rec.seq[j][0] == plain.seq[k + 1 + j][0] && rec.seq[j][1] == plain.seq[k + 1 + j][1],
                          "method %d: resumed from call %d, call %d is snapshot %lld rows %lld", (int)m,
                          k, j, (long long)rec.seq[j][0], (long long)rec.seq[j][1]);
        }
        remove(path);
        adv_sampler_destroy(r);
        if (staged) free(dz2); else conf_free(ctx, dz2);
    }
    if (staged) free(dz); else conf_free(ctx, dz);
}

Test(sampling_integrators, checkpoint_from_every_snapshot) {
    adv_context *ctx = conf_context();
    double y[80];
    tu_fill_uniform(y, 80, -2, 2, 73);
    void *dy = conf_upload(ctx, ADV_FLOAT64, y, 80);
    adv_field *f = NULL;
    cr_assert_eq(adv_field_create_empirical(ctx, ADV_FLOAT64, dy, NULL, 40, 2, NULL, &f), ADV_OK);
    const adv_method ms[5] = {ADV_METHOD_HEUN, ADV_METHOD_DDIM, ADV_METHOD_DPM2M, ADV_METHOD_SDE,
                              ADV_METHOD_DOPRI5};
    const int staged_too = adv_context_backend(ctx) == ADV_BACKEND_CUDA;
    for (int m = 0; m < 5; ++m) {
        check_snapshot_saves(ctx, f, ms[m], 1.0, 1, 1e-4, 0);
        check_snapshot_saves(ctx, f, ms[m], 0.9, 2, 1e-4, 0);
        if (staged_too) check_snapshot_saves(ctx, f, ms[m], 1.0, 1, 1e-4, 1);
    }
    // DOPRI5 whose adaptive part ends at the last interior grid time, 0.82 (no tail: the noise
    // left, b/a, reaches the tolerance 0.3 at t = 0.77): its exponential step follows the last
    // segment in the same step.
    check_snapshot_saves(ctx, f, ADV_METHOD_DOPRI5, 1.0, 1, 0.3, 0);
    adv_field_destroy(f);
    conf_free(ctx, dy);
    conf_context_destroy(ctx);
}
