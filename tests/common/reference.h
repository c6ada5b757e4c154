/* Naive reference of the interaction sum (spec math.md §1): the executable specification
 * every backend is checked against. Plain loops, double arithmetic, two passes per row
 * (maximum, then sum relative to it). Slow on purpose: O(B N M (d + e)) time, O(1) extra
 * memory per row, nothing clever that could share a bug with an optimised kernel. */
#ifndef ADVECT_TESTS_REFERENCE_H
#define ADVECT_TESTS_REFERENCE_H

#include <advect/interaction.h>

#include <stdint.h>

typedef struct ref_problem {
    adv_kernel kernel;
    int64_t batch, n, m, d, e; /* B, N (queries), M (keys), dim, value_dim */
    double lambda, gamma;      /* gamma is used by SQDIST only */
    int causal;                /* DOT only: keep keys j <= i */
    int values_are_keys;       /* w_j = y_j (then e == d and w is ignored) */
    const double *x;           /* B x N x d */
    const double *y;           /* B x M x d */
    const double *beta;        /* B x M, entries may be -Inf; NULL means 0 */
    const double *w;           /* B x M x e */
} ref_problem;

/* Score s_ij of batch b: beta_j - lambda |gamma x_i - y_j|^2 (SQDIST) or
 * beta_j + lambda <x_i, y_j> (DOT); -Inf for keys removed by the causal mask. */
double ref_score(const ref_problem *p, int64_t b, int64_t i, int64_t j);

/* lse (B x N) and out (B x N x e); either may be NULL. Rows whose scores are all -Inf get
 * lse = -Inf and out = 0. */
void ref_interaction(const ref_problem *p, double *lse, double *out);

/* Per row (B x N): a bound on the magnitude of the terms that make up any score of the row,
 *   SQDIST: max|beta| + |lambda| (gamma^2 |x_i|^2 + max_j |y_j|^2)
 *   DOT:    max|beta| + |lambda| |x_i| max_j |y_j|
 * (finite beta only). A float computation of s_ij, by direct differences or by the GEMM
 * form |gx|^2 + |y|^2 - 2g<x,y>, has absolute error at most about d u times this bound
 * (u = unit roundoff), which is what the suites scale their tolerances by. */
void ref_score_scale(const ref_problem *p, double *scale);

/* Per row (B x N): max_j |w_j|_inf over the row's batch (finite values), the scale of out. */
void ref_value_scale(const ref_problem *p, double *scale);

#endif
