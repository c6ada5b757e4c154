/* CPU backend of the fields' elementwise work: the empirical posterior at per-particle times
 * (through the interaction engine) or at b_t = 0 (direct), the Gaussian / Bures / mixture
 * fields, exact samples of alpha_t and key scaling. The direct paths are one call of a
 * kernels/common/field_math.h function per particle, the same one the CUDA kernels call;
 * OpenMP over particles, so results do not depend on threads. */
#include "sampling_internal.h"
#include "common/field_math.h"

#include <stdlib.h>

adv_status advi_cpu_field_scale(adv_context *ctx, adv_precision p, size_t count, void *out,
                                double a, const void *in) {
    const int prec = p == ADV_FLOAT64;
#pragma omp parallel for schedule(static) num_threads(advi_cpu_threads(ctx)) if (count > 16384)
    for (size_t k = 0; k < count; ++k) advf_st(out, prec, (int64_t)k, a * advf_ld(in, prec, (int64_t)k));
    return ADV_OK;
}

/* The direct per-particle loop over every row, or with per-particle avec/qvec over the rows
 * whose qvec[i] is above q. */
adv_status advi_cpu_field_empirical_direct(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                           const void *z, int64_t nd, const void *y,
                                           const void *logw, double a, double q, const double *avec,
                                           const double *qvec, void *den, double *tmp) {
    (void)tmp;
    const int prec = p == ADV_FLOAT64;
    int fail = 0;
#pragma omp parallel num_threads(advi_cpu_threads(ctx)) if (n > 64)
    {
        double *acc = malloc((size_t)d * sizeof *acc);
        if (!acc) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n; ++i) {
            if (!acc || (qvec && !(qvec[i] > q))) continue;
            advf_empirical_point(prec, d, z, i, nd, y, logw, avec ? avec[i] : a, qvec ? qvec[i] : q,
                                 acc, den);
        }
        free(acc);
    }
    return fail ? advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "empirical field scratch") : ADV_OK;
}

/* Per-particle times through the interaction engine with a per-row key scale and λ: the
 * same vectorised arithmetic as the common-time path, and bitwise independent of threads
 * and chunking like it. */
adv_status advi_cpu_field_empirical_rows(adv_interaction_plan *plan, int64_t n, const void *z,
                                         const void *y, const void *logw, const double *avec,
                                         const double *qvec, void *den, double *tmp) {
    (void)tmp;
    adv_interaction_desc desc = plan->desc;
    desc.n_queries = n;
    desc.values_are_keys = 1; // D = sum of softmax weights times the unscaled data
    return advi_cpu_interaction_rows(plan->ctx, &desc, z, y, logw, NULL, avec, qvec, NULL, den);
}

adv_status advi_cpu_field_time_coefs(adv_context *ctx, int64_t n, const double *times, int kind,
                                     double p0, double p1, double sigma, double *out) {
#pragma omp parallel for schedule(static) num_threads(advi_cpu_threads(ctx)) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) {
        double ab[4], c[7];
        advf_schedule(kind, p0, p1, times[i], ab);
        advf_time_coefs(ab, sigma, ADVI_LAMBDA_DIRECT, c);
        for (int k = 0; k < 7; ++k) out[k * n + i] = c[k];
    }
    return ADV_OK;
}

adv_status advi_cpu_field_gauss(adv_context *ctx, adv_precision p, int kind, const double *par,
                                int64_t d, int64_t k0, int64_t k1, int any_regular, int64_t n,
                                const void *z, double t, const double *tvec, void *vel,
                                void *score, void *den, double *tmp) {
    (void)tmp;
    const int prec = p == ADV_FLOAT64;
    int fail = 0;
#pragma omp parallel num_threads(advi_cpu_threads(ctx)) if (n > 64)
    {
        double *w = malloc(6 * (size_t)d * sizeof *w);
        if (!w) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            if (!w) continue;
            double ti = tvec ? tvec[i] : t;
            if (kind == ADV_FIELD_GAUSSIAN)
                advf_gauss_fm_point(par, d, ti, prec, z, i, vel, score, den, w);
            else if (kind == ADV_FIELD_GAUSSIAN_OT)
                advf_gauss_ot_point(par, d, ti, prec, z, i, vel, score, den, w);
            else
                advf_gmm_point(par, d, k0, k1, any_regular, ti, prec, z, i, vel, score, den, w);
        }
        free(w);
    }
    return fail ? advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Gaussian field scratch") : ADV_OK;
}

adv_status advi_cpu_field_sample(adv_context *ctx, adv_precision p, int kind, const double *par,
                                 int64_t d, int64_t k0, int64_t k1, int64_t n, double t,
                                 uint64_t seed, int64_t first, const void *y, const double *cdf,
                                 int64_t nd, double a, double bs, void *z, double *tmp) {
    (void)tmp;
    const int prec = p == ADV_FLOAT64;
    int fail = 0;
#pragma omp parallel num_threads(advi_cpu_threads(ctx)) if (n > 64)
    {
        double *w = malloc(3 * (size_t)d * sizeof *w);
        if (!w) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            if (!w) continue;
            uint64_t part = (uint64_t)(first + i);
            advf_normals(seed, ADVF_STREAM_SOURCE, 0, part, d, w);
            if (kind == ADV_FIELD_EMPIRICAL) {
                int64_t j = advf_pick(cdf, nd, advf_uniform(seed, ADVF_STREAM_SOURCE, 1, part));
                for (int64_t k = 0; k < d; ++k)
                    advf_st(z, prec, i * d + k, a * advf_ld(y, prec, j * d + k) + bs * w[k]);
            } else if (kind == ADV_FIELD_GAUSSIAN) {
                advf_gauss_fm_sample(par, d, t, w, prec, z, i);
            } else if (kind == ADV_FIELD_GAUSSIAN_OT) {
                advf_gauss_ot_sample(par, d, t, w, w + d, prec, z, i);
            } else {
                double u = advf_uniform(seed, ADVF_STREAM_SOURCE, 1, part);
                advf_gmm_sample(par, d, k0, k1, t, u, w, prec, z, i);
            }
        }
        free(w);
    }
    return fail ? advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "sampling scratch") : ADV_OK;
}
