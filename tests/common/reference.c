/* Naive reference interaction sum in double precision (see reference.h). Written for
 * obviousness, not speed: every score is recomputed from its definition in each pass. */
#include "reference.h"

#include <math.h>
#include <stddef.h>

static const double *row(const double *a, int64_t b, int64_t rows, int64_t i, int64_t cols) {
    return a + ((size_t)b * (size_t)rows + (size_t)i) * (size_t)cols;
}

static const double *values(const ref_problem *p) { return p->values_are_keys ? p->y : p->w; }

double ref_score(const ref_problem *p, int64_t b, int64_t i, int64_t j) {
    if (p->kernel == ADV_KERNEL_DOT && p->causal && j > i) return -INFINITY;
    double beta = p->beta ? p->beta[(size_t)b * (size_t)p->m + (size_t)j] : 0.0;
    if (beta == -INFINITY) return -INFINITY;
    const double *x = row(p->x, b, p->n, i, p->d);
    const double *y = row(p->y, b, p->m, j, p->d);
    double acc = 0.0;
    if (p->kernel == ADV_KERNEL_SQDIST) {
        for (int64_t k = 0; k < p->d; ++k) {
            double diff = p->gamma * x[k] - y[k];
            acc += diff * diff;
        }
        return beta - p->lambda * acc;
    }
    for (int64_t k = 0; k < p->d; ++k) acc += x[k] * y[k];
    return beta + p->lambda * acc;
}

void ref_interaction(const ref_problem *p, double *lse, double *out) {
    const double *w = values(p);
    const int64_t e = p->values_are_keys ? p->d : p->e;
    for (int64_t b = 0; b < p->batch; ++b) {
        for (int64_t i = 0; i < p->n; ++i) {
            const size_t r = (size_t)b * (size_t)p->n + (size_t)i;
            /* Pass 1: the maximum score (stays -Inf when every key is excluded). */
            double m = -INFINITY;
            for (int64_t j = 0; j < p->m; ++j) {
                double s = ref_score(p, b, i, j);
                if (s > m) m = s;
            }
            double *o = out ? out + r * (size_t)e : NULL;
            if (o)
                for (int64_t k = 0; k < e; ++k) o[k] = 0.0;
            if (m == -INFINITY) {
                if (lse) lse[r] = -INFINITY;
                continue;
            }
            /* Pass 2: sum of exp(s - m) <= 1 per term, and the weighted values. */
            double sum = 0.0;
            for (int64_t j = 0; j < p->m; ++j) {
                double s = ref_score(p, b, i, j);
                if (s == -INFINITY) continue;
                double t = exp(s - m);
                sum += t;
                if (o) {
                    const double *wj = row(w, b, p->m, j, e);
                    for (int64_t k = 0; k < e; ++k) o[k] += t * wj[k];
                }
            }
            if (lse) lse[r] = m + log(sum);
            if (o)
                for (int64_t k = 0; k < e; ++k) o[k] /= sum;
        }
    }
}

static double sq_norm(const double *v, int64_t d) {
    double acc = 0.0;
    for (int64_t k = 0; k < d; ++k) acc += v[k] * v[k];
    return acc;
}

void ref_score_scale(const ref_problem *p, double *scale) {
    for (int64_t b = 0; b < p->batch; ++b) {
        double max_beta = 0.0, max_y2 = 0.0;
        for (int64_t j = 0; j < p->m; ++j) {
            double beta = p->beta ? p->beta[(size_t)b * (size_t)p->m + (size_t)j] : 0.0;
            if (isfinite(beta) && fabs(beta) > max_beta) max_beta = fabs(beta);
            double y2 = sq_norm(row(p->y, b, p->m, j, p->d), p->d);
            if (y2 > max_y2) max_y2 = y2;
        }
        for (int64_t i = 0; i < p->n; ++i) {
            double x2 = sq_norm(row(p->x, b, p->n, i, p->d), p->d);
            double terms = p->kernel == ADV_KERNEL_SQDIST ? p->gamma * p->gamma * x2 + max_y2
                                                          : sqrt(x2) * sqrt(max_y2);
            scale[(size_t)b * (size_t)p->n + (size_t)i] = max_beta + fabs(p->lambda) * terms;
        }
    }
}

void ref_value_scale(const ref_problem *p, double *scale) {
    const double *w = values(p);
    const int64_t e = p->values_are_keys ? p->d : p->e;
    for (int64_t b = 0; b < p->batch; ++b) {
        double wmax = 0.0;
        for (size_t k = 0; w && k < (size_t)p->m * (size_t)e; ++k) {
            double v = fabs(w[(size_t)b * (size_t)p->m * (size_t)e + k]);
            if (isfinite(v) && v > wmax) wmax = v;
        }
        for (int64_t i = 0; i < p->n; ++i) scale[(size_t)b * (size_t)p->n + (size_t)i] = wmax;
    }
}
