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

/* 2^x, the GPU's native exponential (CUDA kernels, float32): on the GPU the flush-to-zero
 * form of the hardware exp2 (one MUFU.EX2; the IEEE form adds a compare and two multiplies to
 * produce subnormal results), so results below 2^-126 are exactly 0, as in the CPU's vector
 * exp. exp2(-Inf) = 0. */
ADV_HD float adv_exp2_ftz_f32(float x) {
#if defined(__CUDA_ARCH__)
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#else
    return exp2f(x);
#endif
}

/* exp(score - m) through exp2: one multiply by log2(e) of the non-positive difference. The
 * error grows with |score - m|, so it stays within a few ulp where terms matter (score near
 * m). Needs a finite m >= score; score = -Inf gives 0, so for a finite m it equals
 * adv_softmax_term_f32 up to rounding. */
ADV_HD float adv_softmax_term_exp2_f32(float score, float m) {
    return adv_exp2_ftz_f32((score - m) * 1.44269504088896341f);
}

/* Row states in base 2 (the CUDA float32 direct kernel and the merge of its split-key
 * partials): scores are taken in units of 1/ln 2 (lambda and the log-weights multiplied by
 * log2(e) once, so score2 = score log2(e) up to one rounding of each), the running maximum m2
 * in the same units. A softmax term is then one subtraction and one exp2, without the
 * multiply per pair of adv_softmax_term_exp2_f32; the argument carries the same relative
 * rounding (tests/unit/vexp.c compares both forms). lse converts back once per row. */
#define ADV_LOG2E_F32 1.44269504088896341f
#define ADV_LN2_F32 0.693147180559945309f
ADV_HD float adv_softmax_term_base2_f32(float score2, float m2) {
    return adv_exp2_ftz_f32(score2 - m2);
}
ADV_HD float adv_rescale_base2_f32(float m_old, float m_new) {
    return (m_old == -INFINITY) ? 0.0f : adv_exp2_ftz_f32(m_old - m_new);
}
/* adv_merge_state_f32 for base-2 states (the value accumulators merge with
 * adv_merge_acc_f32 and the returned factors, as there). */
ADV_HD float adv_merge_state_base2_f32(float *m_a, float *s_a, float m_b, float s_b, float *fa,
                                       float *fb) {
    float m = *m_a > m_b ? *m_a : m_b;
    *fa = adv_rescale_base2_f32(*m_a, m);
    *fb = adv_rescale_base2_f32(m_b, m);
    *s_a = adv_merge_acc_f32(*fa, *s_a, *fb, s_b);
    *m_a = m;
    return m;
}
ADV_HD float adv_lse_finalize_base2_f32(float m2, float s) {
    return (m2 == -INFINITY || !(s > 0.0f)) ? -INFINITY : ADV_FMA_F32(m2, ADV_LN2_F32, logf(s));
}

#endif
