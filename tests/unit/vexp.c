/* The CPU engine's vector exp (host/cpu/vexp.h) against libm in double: accuracy over the
 * whole argument range it is used on (x <= 0), exact zeros below the underflow threshold and
 * for -Inf (padding keys and masked scores must weigh exactly nothing), exp(0) = 1, and lanes
 * that do not affect each other; and the base-2 row states of the CUDA float32 kernel. */
#include "test_util.h"
#include "common/interaction_math.h"
#include "cpu/vexp.h"

#include <criterion/criterion.h>
#include <math.h>

/* Max relative error over x = -87.3 .. 0 (float) in 2e6 steps, each lane a different x. */
Test(vexp, float_accuracy) {
    double worst = 0.0, at = 0.0;
    const int steps = 2000000;
    for (int i = 0; i < steps; i += 16) {
        adv_vf32 x;
        for (int l = 0; l < 16; ++l) x[l] = (float)(-87.33 * (double)(i + l) / steps);
        const adv_vf32 y = adv_vexpv_f32(x);
        for (int l = 0; l < 16; ++l) {
            const double ref = exp((double)x[l]);
            const double err = fabs((double)y[l] - ref) / ref;
            if (err > worst) worst = err, at = x[l];
        }
    }
    // Degree-5 minimax fit: 0.89 ulp in exact arithmetic, plus the rounding of the reduction
    // and of Horner's steps; 2 ulp of float (2^-23) leaves a margin over the 1.48 ulp observed.
    cr_expect(worst <= 2.0 * 0x1p-23, "worst relative error %.3g at x = %.9g", worst, at);
}

Test(vexp, double_accuracy) {
    double worst = 0.0, at = 0.0;
    const int steps = 2000000;
    for (int i = 0; i < steps; i += 8) {
        adv_vf64 x;
        for (int l = 0; l < 8; ++l) x[l] = -708.39 * (double)(i + l) / steps;
        const adv_vf64 y = adv_vexpv_f64(x);
        for (int l = 0; l < 8; ++l) {
            const double ref = exp(x[l]);
            const double err = fabs(y[l] - ref) / ref;
            if (err > worst) worst = err, at = x[l];
        }
    }
    cr_expect(worst <= 4.0 * 0x1p-53, "worst relative error %.3g at x = %.17g", worst, at);
}

Test(vexp, zeros_and_one) {
    const float fin[4] = {-INFINITY, -1e30f, -87.5f, -100.0f};
    const double din[4] = {-INFINITY, -1e300, -708.5, -1000.0};
    adv_vf32 x = (adv_vf32){0};
    adv_vf64 w = (adv_vf64){0};
    for (int l = 0; l < 4; ++l) x[2 * l + 1] = fin[l], w[2 * l + 1] = din[l];
    const adv_vf32 y = adv_vexpv_f32(x);
    const adv_vf64 v = adv_vexpv_f64(w);
    for (int l = 0; l < 16; ++l) {
        // odd lanes below the threshold give exactly 0; the others are exp(0) = 1 exactly
        const float want = (l % 2 == 1 && l < 8) ? 0.0f : 1.0f;
        cr_expect(y[l] == want, "float lane %d: exp(%g) = %g, want %g", l, x[l], y[l], want);
    }
    for (int l = 0; l < 8; ++l) {
        const double want = l % 2 == 1 ? 0.0 : 1.0;
        cr_expect(v[l] == want, "double lane %d: exp(%g) = %g, want %g", l, w[l], v[l], want);
    }
}

/* A lane's result does not depend on its neighbours: each lane equals the same argument
 * evaluated alone (broadcast). */
Test(vexp, lanes_independent) {
    adv_vf32 x;
    for (int l = 0; l < 16; ++l) x[l] = l % 3 == 0 ? -INFINITY : -0.37f * (float)(l * l);
    const adv_vf32 y = adv_vexpv_f32(x);
    for (int l = 0; l < 16; ++l) {
        const adv_vf32 one = adv_vexpv_f32((adv_vf32){0} + x[l]);
        cr_expect(y[l] == one[0], "lane %d: %a vs %a", l, (double)y[l], (double)one[0]);
    }
}

/* The base-2 row states of the CUDA float32 direct kernel (kernels/common/interaction_math.h),
 * evaluated here with exp2f, against the exact terms in double. Rows of 16 keys with random
 * beta, lambda and squared distances; the kernel's base-2 scores s2 = fma(-fl(lambda log2 e),
 * d2, fl(beta log2 e)) and the natural-unit form it replaced, exp2((s - m) log2 e) with
 * s = fma(-lambda, d2, beta), must both stay within the same bound: each score carries
 * about u S_j of rounding (S_j = |beta_j| + lambda d2_j, the scale the conformance suite's
 * tolerances use), so a term is within 4 u (S_j + S_max + 1) of exp(s_j - m) relative (both
 * forms measured at 0.55-0.56 of that bound).
 * A missing or doubled log2(e) is off by 40 % or more. */
Test(base2_states, terms_merges_and_lse_match_natural_units) {
    const double u = 0x1p-24;
    const float scale = ADV_LOG2E_F32;
    tu_rng r;
    tu_rng_seed(&r, 21);
    double worst2 = 0.0, worst_nat = 0.0;
    for (int row = 0; row < 4000; ++row) {
        const float lambda = (float)exp(tu_rng_uniform(&r, -3.0, 12.0));
        float beta[16], d2[16];
        double s[16], smax = -INFINITY;
        int jmax = 0;
        for (int j = 0; j < 16; ++j) {
            beta[j] = (float)tu_rng_uniform(&r, -10.0, 10.0); // s - m >= -80: no underflow
            d2[j] = (float)(tu_rng_uniform(&r, 0.0, 60.0) / (double)lambda);
            s[j] = (double)beta[j] - (double)lambda * (double)d2[j];
            if (s[j] > smax) smax = s[j], jmax = j;
        }
        const float lam2 = lambda * scale;
        float s2[16], sn[16], m2 = -INFINITY, mn = -INFINITY;
        for (int j = 0; j < 16; ++j) {
            s2[j] = fmaf(-lam2, d2[j], beta[j] * scale);
            sn[j] = fmaf(-lambda, d2[j], beta[j]);
            m2 = fmaxf(m2, s2[j]);
            mn = fmaxf(mn, sn[j]);
        }
        const double smax_scale = fabs((double)beta[jmax]) + (double)lambda * (double)d2[jmax];
        for (int j = 0; j < 16; ++j) {
            const double want = exp(s[j] - smax);
            const double sj = fabs((double)beta[j]) + (double)lambda * (double)d2[j];
            const double bound = 4.0 * u * (sj + smax_scale + 1.0);
            const double e2 = fabs(adv_softmax_term_base2_f32(s2[j], m2) - want) / want / bound;
            const double en = fabs(adv_softmax_term_exp2_f32(sn[j], mn) - want) / want / bound;
            if (e2 > worst2) worst2 = e2;
            if (en > worst_nat) worst_nat = en;
        }
    }
    cr_expect(worst2 <= 1.0 && worst_nat <= 1.0,
              "terms off by %.3g (base 2) and %.3g (natural units) of the bound", worst2, worst_nat);
    cr_expect_eq(adv_softmax_term_base2_f32(-INFINITY, 3.0f), 0.0f);
    cr_expect_eq(adv_rescale_base2_f32(-INFINITY, 3.0f), 0.0f);
    // Merge of (m_a, s_a) and (m_b, s_b): the same state as in natural units.
    const float ma = 12.5f, sa = 3.0f, mb = 11.0f, sb = 5.0f;
    float m2 = ma * scale, s2 = sa, fa, fb;
    adv_merge_state_base2_f32(&m2, &s2, mb * scale, sb, &fa, &fb);
    const double want_s = sa + sb * exp((double)mb - (double)ma);
    cr_expect(fabs(s2 - want_s) <= 8 * u * want_s, "merged sum %.9g, expected %.9g", s2, want_s);
    cr_expect(fa == 1.0f && fabs(fb - exp((double)mb - (double)ma)) <= 8 * u * 2 * fb);
    // lse = m + log(s) from base-2 m: within a few u of the largest of |m| and log s.
    const float lse = adv_lse_finalize_base2_f32(m2, s2);
    const double want_lse = (double)ma + log(want_s);
    cr_expect(fabs(lse - want_lse) <= 8 * u * (fabs(want_lse) + 1), "lse %.9g, expected %.9g", lse,
              want_lse);
    cr_expect(adv_lse_finalize_base2_f32(-INFINITY, 0.0f) == -INFINITY &&
              adv_lse_finalize_base2_f32(1.0f, 0.0f) == -INFINITY);
}
