/* Per-element math of the interaction sum (spec math.md §1), shared by the CPU backend and
 * the CUDA kernels. The reduction state of one query row is (m, s, acc[e]): the running
 * maximum score, the sum of exp(score - m) and the exp-weighted sum of values. States merge
 * exactly (split-key variants), and a row whose scores are all -Inf keeps m = -Inf and
 * finalises to lse = -Inf, out = 0 instead of NaN. */
#ifndef ADVECT_KERNELS_COMMON_INTERACTION_MATH_H
#define ADVECT_KERNELS_COMMON_INTERACTION_MATH_H

#include "adv_hd.h"

#define ADV_DEFINE_INTERACTION_MATH(real, sfx, EXP, LOG, FMA)                                  \
    /* SQDIST score from the squared distance (one FMA on the GPU). */                          \
    ADV_HD real adv_sqdist_score_##sfx(real beta, real lambda, real dist2) {                     \
        return FMA(-lambda, dist2, beta);                                                        \
    }                                                                                            \
    ADV_HD real adv_dot_score_##sfx(real beta, real lambda, real dot) {                          \
        return FMA(lambda, dot, beta);                                                           \
    }                                                                                            \
    /* Factor that moves a sum taken relative to m_old to m_new >= m_old. Never exponentiates \
     * a positive number; 0 when nothing was accumulated yet (m_old = -Inf). */                 \
    ADV_HD real adv_rescale_##sfx(real m_old, real m_new) {                                      \
        return (m_old == -(real)INFINITY) ? (real)0 : EXP(m_old - m_new);                        \
    }                                                                                            \
    /* exp(score - m) for score <= m; 0 for score = -Inf (also when m = -Inf). */                \
    ADV_HD real adv_softmax_term_##sfx(real score, real m) {                                     \
        return (score == -(real)INFINITY) ? (real)0 : EXP(score - m);                            \
    }                                                                                            \
    /* lse of a finished row. */                                                                 \
    ADV_HD real adv_lse_finalize_##sfx(real m, real s) {                                         \
        return (m == -(real)INFINITY || !(s > (real)0)) ? -(real)INFINITY : m + LOG(s);          \
    }                                                                                            \
    /* Normalised value component of a finished row: 0 for an empty row. */                      \
    ADV_HD real adv_out_finalize_##sfx(real acc, real s) {                                       \
        return (s > (real)0) ? acc / s : (real)0;                                                \
    }

ADV_DEFINE_INTERACTION_MATH(float, f32, expf, logf, ADV_FMA_F32)
ADV_DEFINE_INTERACTION_MATH(double, f64, exp, log, ADV_FMA_F64)

/* fa * a + fb * b: a sum or value accumulator of a merged state, with one rounding sequence
 * wherever states are merged (a merge into the empty state, fa = 0, fb = 1, copies b exactly),
 * so a row folded inside one kernel and a row folded from split-key partials agree bitwise. */
ADV_HD float adv_merge_acc_f32(float fa, float a, float fb, float b) {
    return ADV_FMA_F32(fa, a, fb * b);
}
ADV_HD double adv_merge_acc_f64(double fa, double a, double fb, double b) {
    return ADV_FMA_F64(fa, a, fb * b);
}

/* Merges row state b into a: a = a (+) b, both relative to their own maxima. The caller
 * merges the value accumulators with the returned factors: adv_merge_acc(fa, acc_a, fb, acc_b).
 */
ADV_HD float adv_merge_state_f32(float *m_a, float *s_a, float m_b, float s_b, float *fa,
                                 float *fb) {
    float m = *m_a > m_b ? *m_a : m_b;
    *fa = adv_rescale_f32(*m_a, m);
    *fb = adv_rescale_f32(m_b, m);
    *s_a = adv_merge_acc_f32(*fa, *s_a, *fb, s_b);
    *m_a = m;
    return m;
}
ADV_HD double adv_merge_state_f64(double *m_a, double *s_a, double m_b, double s_b, double *fa,
                                  double *fb) {
    double m = *m_a > m_b ? *m_a : m_b;
    *fa = adv_rescale_f64(*m_a, m);
    *fb = adv_rescale_f64(m_b, m);
    *s_a = adv_merge_acc_f64(*fa, *s_a, *fb, s_b);
    *m_a = m;
    return m;
}

/* exp(score - m) through exp2, the GPU's native exponential (CUDA kernels, float32): one
 * multiply by log2(e) of the non-positive difference. The error grows with |score - m|, so
 * it stays within a few ulp where terms matter (score near m). Needs a finite m >= score;
 * score = -Inf gives exp2(-Inf) = 0, so for a finite m it equals adv_softmax_term_f32 up to
 * rounding. On the GPU it is the flush-to-zero form of the hardware exp2 (one MUFU.EX2; the
 * IEEE form adds a compare and two multiplies per term to produce subnormal results): terms
 * below 2^-126 of the row maximum are exactly 0, as in the CPU's vector exp. */
ADV_HD float adv_softmax_term_exp2_f32(float score, float m) {
    const float x = (score - m) * 1.44269504088896341f;
#if defined(__CUDA_ARCH__)
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#else
    return exp2f(x);
#endif
}

#endif
