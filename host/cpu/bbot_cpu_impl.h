/* CPU grid operations of the Benamou-Brenier solver, written once and included twice by
 * bbot_cpu.c with REAL = float/double and SFX = f32/f64. Every loop is an OpenMP loop over
 * cells, faces, lines or particles; the per-element formulas come from
 * kernels/common/bbot_math.h (the CUDA kernels use the same ones). Reductions are in double. */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define MATH(name) CAT(name, SFX)

static void FN(input_stats)(adv_bbot_plan *p, const REAL *rho, double scale, double *sums) {
    const int64_t M = p->grid.M;
    double sum = 0.0, sum2 = 0.0, bad = 0.0, neg = 0.0;
#pragma omp parallel for num_threads(THREADS(p, M)) reduction(+ : sum, sum2, bad, neg) schedule(static)
    for (int64_t i = 0; i < M; ++i) {
        const double v = (double)rho[i];
        if (!isfinite(v)) bad += 1.0;
        else if (v < 0.0) neg += 1.0;
        else {
            sum += v;
            sum2 += (scale * v) * (scale * v);
        }
    }
    sums[ADVI_BBOT_SUM_MASS] += sum;
    sums[ADVI_BBOT_SUM_MASS2] += sum2;
    sums[ADVI_BBOT_SUM_BAD] += bad;
    sums[ADVI_BBOT_SUM_NEG] += neg;
}

static void FN(init_state)(adv_bbot_plan *p, const REAL *rho0, const REAL *rho1, double s0,
                           double s1, int warm) {
    const advk_bbot_grid *g = &p->grid;
    REAL *z = p->bufs.z;
    REAL *f = z + g->offU[0];
    const int64_t M = g->M, P = g->P;
#pragma omp parallel for num_threads(THREADS(p, M)) schedule(static)
    for (int64_t s = 0; s < M; ++s) {
        f[s] = (REAL)(s0 * (double)rho0[s]);
        f[P * M + s] = (REAL)(s1 * (double)rho1[s]);
    }
    if (warm) return;
    // Cold start: ρ linear in time between the end densities, no momentum, V = I(U).
#pragma omp parallel for num_threads(THREADS(p, P * M)) schedule(static)
    for (int64_t i = M; i < P * M; ++i) {
        const double t = (double)(i / M) / (double)P;
        const int64_t s = i % M;
        f[i] = (REAL)((1.0 - t) * (double)f[s] + t * (double)f[P * M + s]);
    }
    for (int c = 1; c <= g->d; ++c) {
        REAL *m = z + g->offU[c];
        const int64_t nf = g->faces[c];
#pragma omp parallel for num_threads(THREADS(p, nf)) schedule(static)
        for (int64_t i = 0; i < nf; ++i) m[i] = 0;
    }
#pragma omp parallel for num_threads(THREADS(p, g->cells)) schedule(static)
    for (int64_t cell = 0; cell < g->cells; ++cell) {
        double cv[ADVK_BBOT_MAX_COMP] = {0};
        MATH(advk_bbot_centred)(g, z, cell, cv);
        for (int c = 0; c <= g->d; ++c) z[g->offV[c] + cell] = (REAL)cv[c];
    }
}

/* Divergence by rows along the last space axis: within a row every component's low face
 * advances with the cell (advk_bbot_low_face is affine there), so the integer divisions are
 * per row; each row goes in chunks of DIV_CHUNK cells through one contiguous loop per
 * component, adding the components in the order of the divergence stencil of
 * kernels/common/bbot_math.h. */
#ifndef ADV_BBOT_DIV_CHUNK
#define ADV_BBOT_DIV_CHUNK 256
#endif
static void FN(divergence)(adv_bbot_plan *p, const REAL *state, double *q, double *sums) {
    const advk_bbot_grid *g = &p->grid;
    const int64_t nl = g->n[g->d - 1], rows = g->cells / nl;
    const int nc = g->d + 1;
    double acc = 0.0;
#pragma omp parallel for num_threads(THREADS(p, g->cells)) reduction(+ : acc) schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t cell0 = row * nl;
        const REAL *lo[ADVK_BBOT_MAX_COMP], *hi[ADVK_BBOT_MAX_COMP];
        for (int c = 0; c < nc; ++c) {
            lo[c] = state + g->offU[c] + advk_bbot_low_face(g, c, cell0);
            hi[c] = lo[c] + g->S[c];
        }
        for (int64_t s0 = 0; s0 < nl; s0 += ADV_BBOT_DIV_CHUNK) {
            const int64_t n = nl - s0 < ADV_BBOT_DIV_CHUNK ? nl - s0 : ADV_BBOT_DIV_CHUNK;
            double r[ADV_BBOT_DIV_CHUNK];
            for (int64_t s = 0; s < n; ++s) r[s] = 0.0;
            for (int c = 0; c < nc; ++c) {
                const REAL *restrict l = lo[c] + s0, *restrict h = hi[c] + s0;
                const double inv = g->inv_sp[c];
                for (int64_t s = 0; s < n; ++s) r[s] += ((double)h[s] - (double)l[s]) * inv;
            }
            if (q) {
                for (int64_t s = 0; s < n; ++s) q[cell0 + s0 + s] = r[s];
            } else {
#pragma omp simd reduction(+ : acc)
                for (int64_t s = 0; s < n; ++s) acc += r[s] * r[s];
            }
        }
    }
    if (!q) sums[ADVI_BBOT_SUM_DIV2] += acc;
}

/* x1.U = z.U + ∇q: nested (o, i, s) loops over each component's faces (no index division),
 * the contiguous axis' component by rows (S = 1: the inner loop runs along the line); same
 * arithmetic as the gradient stencil of kernels/common/bbot_math.h (q in double). */
static void FN(grad_update)(adv_bbot_plan *p) {
    const advk_bbot_grid *g = &p->grid;
    const REAL *z = p->bufs.z;
    const double *q = p->bufs.q;
    REAL *x1 = p->bufs.x1;
    for (int c = 0; c <= g->d; ++c) {
        const REAL *zu = z + g->offU[c];
        REAL *xu = x1 + g->offU[c];
        const int64_t L = g->L[c], S = g->S[c], O = g->cells / (L * S);
        const double inv = g->inv_sp[c];
        if (S == 1) { // the contiguous axis: one line per row, the inner loop along it
#pragma omp parallel for num_threads(THREADS(p, g->faces[c])) schedule(static)
            for (int64_t o = 0; o < O; ++o) {
                const REAL *zr = zu + o * (L + 1);
                const double *qr = q + o * L;
                REAL *xr = xu + o * (L + 1);
                xr[0] = zr[0];
                for (int64_t i = 1; i < L; ++i)
                    xr[i] = (REAL)((double)zr[i] + (qr[i] - qr[i - 1]) * inv);
                xr[L] = zr[L];
            }
            continue;
        }
#pragma omp parallel for collapse(2) num_threads(THREADS(p, g->faces[c])) schedule(static)
        for (int64_t o = 0; o < O; ++o)
            for (int64_t i = 0; i <= L; ++i) {
                const int64_t f0 = (o * (L + 1) + i) * S;
                if (i == 0 || i == L) {
                    for (int64_t s = 0; s < S; ++s) xu[f0 + s] = zu[f0 + s];
                } else {
                    const double *qr = q + (o * L + i) * S, *ql = qr - S;
                    for (int64_t s = 0; s < S; ++s)
                        xu[f0 + s] = (REAL)((double)zu[f0 + s] + (qr[s] - ql[s]) * inv);
                }
            }
    }
}

/* The prox over one block of nb <= ADV_BBOT_PROX_BLOCK cells from c0, every step a
 * branch-free (vectorisable) loop over the block: the roots by the common regime's three
 * Newton steps when the whole block is in it, else by Halley's method
 * (advk_bbot_cubic_root_halley, the closed form of the CUDA kernel to a few ulps), the closed
 * form itself only for a block with a value out of Halley's range; then the pointwise
 * finish. Returns the block's Σ |m*|²/f*. */
ADVI_CPU_CLONES static double FN(prox_block)(const advk_bbot_grid *g, double gamma,
                                             const REAL *z, REAL *x1, int64_t c0, int nb) {
    const int d = g->d;
    double av[ADV_BBOT_PROX_BLOCK], cv[ADV_BBOT_PROX_BLOCK], gv[ADV_BBOT_PROX_BLOCK];
    const REAL *zf = z + g->offV[0] + c0;
    for (int i = 0; i < nb; ++i) av[i] = (double)zf[i] + 2.0 * gamma, cv[i] = 0.0;
    for (int a = 0; a < d; ++a) {
        const REAL *zm = z + g->offV[a + 1] + c0;
        for (int i = 0; i < nb; ++i) cv[i] += (double)zm[i] * (double)zm[i];
    }
    int small = 1, halley = 1;
    for (int i = 0; i < nb; ++i) {
        cv[i] *= gamma;
        small &= advk_bbot_root_is_small(av[i], cv[i]);
        halley &= advk_bbot_root_halley_ok(av[i], cv[i]);
    }
    if (small) {
        for (int i = 0; i < nb; ++i) gv[i] = advk_bbot_cubic_root_small(av[i], cv[i]);
    } else if (halley) {
        for (int i = 0; i < nb; ++i) gv[i] = advk_bbot_cubic_root_halley(av[i], cv[i]);
    } else {
        for (int i = 0; i < nb; ++i) gv[i] = advk_bbot_cubic_root(av[i], cv[i]);
    }
    // The finish of advk_bbot_prox_finish, written with selects over safe denominators so
    // that it vectorises: f* = g - 2γ, m* = (f*/g) m̃ where f* > 0, else (0, 0).
    double sv[ADV_BBOT_PROX_BLOCK], ev[ADV_BBOT_PROX_BLOCK];
    REAL *xf = x1 + g->offV[0] + c0;
    for (int i = 0; i < nb; ++i) {
        const double f = gv[i] - 2.0 * gamma;
        const int pos = f > 0.0;
        const double gs = pos ? gv[i] : 1.0;
        sv[i] = pos ? f / gs : 0.0;
        gv[i] = pos ? f : 0.0;
        xf[i] = (REAL)gv[i];
        ev[i] = 0.0;
    }
    for (int a = 0; a < d; ++a) {
        const REAL *zm = z + g->offV[a + 1] + c0;
        REAL *xm = x1 + g->offV[a + 1] + c0;
        for (int i = 0; i < nb; ++i) {
            const double ms = sv[i] * (double)zm[i];
            xm[i] = (REAL)ms;
            ev[i] += ms * ms;
        }
    }
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < nb; ++i) {
        const double fs = gv[i] > 0.0 ? gv[i] : 1.0;
        acc += gv[i] > 0.0 ? ev[i] / fs : 0.0;
    }
    return acc;
}

static void FN(prox)(adv_bbot_plan *p, double gamma, double *sums) {
    const advk_bbot_grid *g = &p->grid;
    const REAL *z = p->bufs.z;
    REAL *x1 = p->bufs.x1;
    const int64_t nblk = (g->cells + ADV_BBOT_PROX_BLOCK - 1) / ADV_BBOT_PROX_BLOCK;
    double acc = 0.0;
#pragma omp parallel for num_threads(THREADS(p, g->cells)) reduction(+ : acc) schedule(static)
    for (int64_t b = 0; b < nblk; ++b) {
        const int64_t c0 = b * ADV_BBOT_PROX_BLOCK;
        const int nb = (int)(g->cells - c0 < ADV_BBOT_PROX_BLOCK ? g->cells - c0 : ADV_BBOT_PROX_BLOCK);
        acc += FN(prox_block)(g, gamma, z, x1, c0, nb);
    }
    sums[ADVI_BBOT_SUM_COST] += acc;
}

/* One work item of the line projection, compiled per instruction set (flatten: both kernels
 * inline into each clone, not left as baseline-ISA calls): adjacent lines (S > 1,
 * constant unit strides, so the inlined loops vectorise without versioning) through
 * advk_bbot_lines; lines along the contiguous axis (S = 1) through advk_bbot_lines_rows, with
 * rhs (nb (L + 1) doubles) as scratch. With q (grad_lines), the lines' x1.U = z.U + ∇q is
 * written first (the gradient update's arithmetic), so the projection reads it from cache. */
ADVI_CPU_CLONES __attribute__((flatten)) static void FN(lines_item)(
    int64_t L, int64_t S, int64_t nb, const double *cp, const double *inv, double mu, REAL *x2u,
    REAL *zu, REAL *x1u, REAL *zv, const REAL *x1v, const double *q, double inv_sp,
    double *rhs, double *d2, double *x1sq) {
    if (q) {
        // Face i of line j: i·S + j·jf, with q's cells at i·S + j·jc (the line's cell i).
        const int64_t jf = S > 1 ? 1 : L + 1, jc = S > 1 ? 1 : L;
        for (int64_t j = 0; j < nb; ++j) {
            x1u[j * jf] = zu[j * jf];
            x1u[L * S + j * jf] = zu[L * S + j * jf];
        }
        if (S > 1) {
            for (int64_t i = 1; i < L; ++i)
                for (int64_t j = 0; j < nb; ++j) {
                    const double dq = q[i * S + j] - q[(i - 1) * S + j];
                    x1u[i * S + j] = (REAL)((double)zu[i * S + j] + dq * inv_sp);
                }
        } else {
            for (int64_t j = 0; j < nb; ++j)
                for (int64_t i = 1; i < L; ++i)
                    x1u[i + j * jf] = (REAL)((double)zu[i + j * jf] +
                                             (q[i + j * jc] - q[i - 1 + j * jc]) * inv_sp);
        }
    }
    if (S > 1)
        MATH(advk_bbot_lines)(L, S, nb, 1, 1, cp, inv, mu, x2u, zu, x1u, zv, x1v, d2, x1sq);
    else
        MATH(advk_bbot_lines_rows)(L, nb, cp, inv, mu, x2u, zu, x1u, zv, x1v, rhs, d2, x1sq);
}

/* The line projection of every component; with q also x1.U = z.U + ∇q (grad_lines). */
static void FN(lines)(adv_bbot_plan *p, double mu, double *const *cp, double *const *inv,
                      double *rhs, int64_t rhs_per_thread, int rhs_threads, const double *q,
                      double *sums) {
    const advk_bbot_grid *g = &p->grid;
    REAL *z = p->bufs.z, *x2u = p->bufs.x2u;
    REAL *x1 = p->bufs.x1;
    double acc_d = 0.0, acc_x = 0.0;
    const int threads = THREADS(p, g->cells) < rhs_threads ? THREADS(p, g->cells) : rhs_threads;
    for (int c = 0; c <= g->d; ++c) {
        const int64_t L = g->L[c], S = g->S[c], O = g->cells / (L * S);
        // Work item = a block of lines handled together: for S > 1, up to ADV_BBOT_LINE_BLOCK
        // adjacent lines (contiguous, the inner loops vectorise); for S = 1 (the contiguous
        // axis), ADV_BBOT_LINE_GROUP consecutive lines (their recurrences interleave).
        const int64_t blk = S > 1 ? ADV_BBOT_LINE_BLOCK : ADV_BBOT_LINE_GROUP;
        const int64_t per_o = S > 1 ? (S + blk - 1) / blk : 1;
        const int64_t items = S > 1 ? O * per_o : (O + blk - 1) / blk;
        const int64_t offU = g->offU[c], offV = g->offV[c];
        const double *cpc = cp[c], *invc = inv[c];
#pragma omp parallel for num_threads(threads) reduction(+ : acc_d, acc_x) schedule(static)
        for (int64_t item = 0; item < items; ++item) {
            int64_t o, s0, nb;
            if (S > 1) {
                o = item / per_o, s0 = (item % per_o) * blk;
                nb = S - s0 < blk ? S - s0 : blk;
            } else {
                o = item * blk, s0 = 0;
                nb = O - o < blk ? O - o : blk;
            }
            const int64_t fb = offU + o * (L + 1) * S + s0, cb = offV + o * L * S + s0;
            double dd = 0.0, xx = 0.0;
            FN(lines_item)(L, S, nb, cpc, invc, mu, x2u + fb, z + fb, x1 + fb, z + cb, x1 + cb,
                           q ? q + o * L * S + s0 : NULL, g->inv_sp[c],
                           rhs + (size_t)omp_get_thread_num() * (size_t)rhs_per_thread, &dd, &xx);
            acc_d += dd;
            acc_x += xx;
        }
    }
    sums[ADVI_BBOT_SUM_D2] += acc_d;
    sums[ADVI_BBOT_SUM_X1SQ] += acc_x;
}

static void FN(finalise)(adv_bbot_plan *p, double scale, double threshold, REAL *rho, REAL *mom,
                         REAL *vel_out, double *face_mass, double *sums) {
    const advk_bbot_grid *g = &p->grid;
    const REAL *x1 = p->bufs.x1;
    const REAL *f = x1 + g->offU[0];
    REAL *vel = p->bufs.vel;
    const int d = g->d;
    const int64_t M = g->M, P = g->P;
    double path = 0.0;
#pragma omp parallel for num_threads(THREADS(p, g->cells)) reduction(+ : path) schedule(static)
    for (int64_t cell = 0; cell < g->cells; ++cell) {
        double cv[ADVK_BBOT_MAX_COMP] = {0};
        MATH(advk_bbot_centred)(g, x1, cell, cv);
        const int dense = cv[0] > threshold;
        for (int a = 0; a < d; ++a) {
            vel[cell * d + a] = (REAL)(dense ? cv[a + 1] / cv[0] : 0.0);
            if (mom) mom[cell * d + a] = (REAL)(scale * cv[a + 1]);
            if (dense) path += cv[a + 1] * cv[a + 1] / cv[0];
        }
    }
    sums[ADVI_BBOT_SUM_PATH] += path;
    if (vel_out) memcpy(vel_out, vel, (size_t)g->cells * (size_t)d * sizeof(REAL));
    if (rho) {
#pragma omp parallel for num_threads(THREADS(p, (P + 1) * M)) schedule(static)
        for (int64_t i = 0; i < (P + 1) * M; ++i) rho[i] = (REAL)(scale * (double)f[i]);
    }
    for (int64_t j = 0; j <= P; ++j) {
        double acc = 0.0;
#pragma omp parallel for num_threads(THREADS(p, M)) reduction(+ : acc) schedule(static)
        for (int64_t s = 0; s < M; ++s) acc += (double)f[j * M + s];
        face_mass[j] = acc / (double)M;
    }
}

static void FN(scaled_copy)(adv_bbot_plan *p, REAL *dst, int64_t offset, int64_t count,
                            double scale) {
    const REAL *src = (const REAL *)p->bufs.x1 + offset;
#pragma omp parallel for num_threads(THREADS(p, count)) schedule(static)
    for (int64_t i = 0; i < count; ++i) dst[i] = (REAL)(scale * (double)src[i]);
}

static void FN(velocity_eval)(adv_bbot_plan *p, double t, const REAL *times, int64_t n,
                              const REAL *x, REAL *v) {
    const advk_bbot_grid *g = &p->grid;
    const REAL *vel = p->bufs.vel;
    const int d = g->d;
#pragma omp parallel for num_threads(THREADS(p, n * 64)) schedule(static)
    for (int64_t i = 0; i < n; ++i)
        MATH(advk_bbot_velocity_at)(g, vel, times ? advk_bbot_clamp_time((double)times[i]) : t,
                                    x + i * d, v + i * d);
}

#undef CAT_
#undef CAT
#undef FN
#undef MATH
