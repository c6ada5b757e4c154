/* The CPU engine's vector exp (host/cpu/vexp.h) against libm in double: accuracy over the
 * whole argument range it is used on (x <= 0), exact zeros below the underflow threshold and
 * for -Inf (padding keys and masked scores must weigh exactly nothing), exp(0) = 1, and lanes
 * that do not affect each other. */
#include "test_util.h"
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
