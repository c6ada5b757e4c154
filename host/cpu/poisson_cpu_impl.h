/* Per-precision passes of the CPU Poisson backend, included twice by poisson_cpu.c with
 * REAL = float/double and SFX = f32/f64 (the layouts are described there).
 *   load: copies one right-hand side into the workspace (w NULL: only reads it); returns 1
 *     when it holds NaN/Inf (if checked; then also max|f|, for the overflow bound) and gives
 *     Σf and Σ|f| in double (if asked);
 *   scale (all-periodic path): multiplies every coefficient of the half-spectrum by
 *     1/(λ·norm), row by row along the last (contiguous) axis so that the inner loop
 *     vectorises.
 * Real-transform path (twiddles: the pair maps of kernels/common/poisson_math.h, in double):
 *   rt_rows: the last axis by blocks of row pairs — f -> B (load with the reordering and
 *     the Dirichlet signs, DFT, twiddles), B -> u (the inverse), or both with the scaling in
 *     between when it is the only axis;
 *   rt_axis: another axis by blocks of complex columns of B, in place — forward, inverse,
 *     or (the first axis) forward twiddles, scaling and inverse twiddles in one pass.
 * The per-row / per-plane item functions are compiled per instruction set (ADVI_CPU_CLONES),
 * and inside them the loops are written once and instantiated for a constant boundary kind
 * (periodic or not), so that they have no control flow and vectorise. */

#define PCAT_(a, b) a##_##b
#define PCAT(a, b) PCAT_(a, b)
#define PFN(name) PCAT(name, SFX)
/* Calls the inlined loop fn(kind, ...) with the boundary kind as a constant: periodic, or
 * Neumann for both reordered kinds (Dirichlet differs only in signs and eigenvalue order,
 * handled outside). */
#define PBY_KIND(bc, fn, ...)                                                    \
    do {                                                                         \
        if ((bc) == ADVI_POISSON_PERIODIC) fn(ADVI_POISSON_PERIODIC, __VA_ARGS__); \
        else fn(ADVI_POISSON_NEUMANN, __VA_ARGS__);                              \
    } while (0)
#define PINLINE static inline __attribute__((always_inline))

static int PFN(load)(const REAL *restrict f, REAL *restrict w, size_t n, int check_finite,
                     int want_mean, double *sum, double *abs_sum, double *max_abs,
                     int threads) {
    int bad = 0;
    double s = 0.0, sa = 0.0, m = 0.0;
#pragma omp parallel for reduction(| : bad) reduction(+ : s, sa) reduction(max : m) \
    schedule(static) num_threads(threads) if (n >= ADVI_POISSON_PARALLEL_MIN)
    for (size_t i = 0; i < n; ++i) {
        const REAL v = f[i];
        if (w) w[i] = v;
        if (check_finite) {
            bad |= !isfinite(v);
            m = fmax(m, fabs((double)v)); // NaN-ignoring: a NaN fails the check anyway
        }
        if (want_mean) {
            s += (double)v;
            sa += fabs((double)v);
        }
    }
    *sum = s;
    *abs_sum = sa;
    *max_abs = m;
    return bad;
}

/* w holds rows of row_len complex coefficients; coefficient j of a row is mode j of the
 * last axis. */
static void PFN(scale)(REAL *w, const adv_poisson_plan *plan, const cpu_poisson *st,
                       int64_t row_len) {
    const adv_poisson_desc *d = &plan->desc;
    const int last = d->ndim - 1;
    const int64_t rows_per_rhs = (int64_t)plan->cells / d->shape[last];
    const int64_t rows = rows_per_rhs * d->batch;
    const double *el = st->eig[last];
    const double c = d->shift, inv_norm = st->inv_norm;
#pragma omp parallel for schedule(static) num_threads(st->threads) \
    if (rows * row_len >= ADVI_POISSON_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; ++r) {
        // Multi-index of the row within its right-hand side, last axis excluded.
        int64_t q = r % rows_per_rhs;
        double base = c;
        for (int a = last - 1; a >= 0; --a) {
            base += st->eig[a][q % d->shape[a]];
            q /= d->shape[a];
        }
        REAL *row = w + r * row_len * 2;
        for (int64_t j = 0; j < row_len; ++j) {
            const double g = advi_poisson_scale(base + el[j], inv_norm);
            row[2 * j] = (REAL)((double)row[2 * j] * g);
            row[2 * j + 1] = (REAL)((double)row[2 * j + 1] * g);
        }
    }
}

/* ---- load and store: one row pair of a block (two rows of f/u, each with its signs for even
 * and odd indices along the last axis) ---- */

/* The reordered kinds go through split real/imaginary rows in tmp (2 n reals, in L1): the
 * reversal of the odd half and the pairs (k, n-k) are then plain reversed accesses, which
 * vectorise, where reversed interleaved ones do not. */
ADVI_CPU_CLONES static void PFN(load_item)(int64_t nl, int reorder, const REAL *restrict x0,
                                           const REAL *restrict x1, REAL e0, REAL o0, REAL e1,
                                           REAL o1, REAL *restrict dst, REAL *restrict tmp) {
    if (!reorder) {
        for (int64_t j = 0; j < nl; ++j) {
            dst[2 * j] = e0 * x0[j];
            dst[2 * j + 1] = e1 * x1[j];
        }
        return;
    }
    // x_{2m} -> position m, x_{2m+1} -> position n-1-m.
    REAL *restrict vr = tmp, *restrict vi = tmp + nl;
    for (int64_t m = 0; m < (nl + 1) / 2; ++m) {
        vr[m] = e0 * x0[2 * m];
        vi[m] = e1 * x1[2 * m];
    }
    for (int64_t m = 0; m < nl / 2; ++m) {
        vr[nl - 1 - m] = o0 * x0[2 * m + 1];
        vi[nl - 1 - m] = o1 * x1[2 * m + 1];
    }
    for (int64_t j = 0; j < nl; ++j) {
        dst[2 * j] = vr[j];
        dst[2 * j + 1] = vi[j];
    }
}

ADVI_CPU_CLONES static void PFN(store_item)(int64_t nl, int reorder, const REAL *restrict src,
                                            REAL e0, REAL o0, REAL e1, REAL o1,
                                            REAL *restrict u0, REAL *restrict u1,
                                            REAL *restrict tmp) {
    if (!reorder) {
        for (int64_t j = 0; j < nl; ++j) {
            u0[j] = e0 * src[2 * j];
            u1[j] = e1 * src[2 * j + 1];
        }
        return;
    }
    REAL *restrict vr = tmp, *restrict vi = tmp + nl;
    for (int64_t j = 0; j < nl; ++j) {
        vr[j] = src[2 * j];
        vi[j] = src[2 * j + 1];
    }
    for (int64_t m = 0; m < (nl + 1) / 2; ++m) {
        u0[2 * m] = e0 * vr[m];
        u1[2 * m] = e1 * vi[m];
    }
    for (int64_t m = 0; m < nl / 2; ++m) {
        u0[2 * m + 1] = o0 * vr[nl - 1 - m];
        u1[2 * m + 1] = o1 * vi[nl - 1 - m];
    }
}

/* ---- the last axis: row pair q of a block (spectra) <-> rows 2q, 2q+1 of B (transforms),
 * through split rows in tmp as above ---- */

PINLINE void PFN(rows_forward_loop)(int kind, int64_t nl, const double *restrict tw,
                                    const REAL *restrict re, const REAL *restrict im,
                                    REAL *restrict x, REAL *restrict y) {
    for (int64_t k = 1; k <= (nl - 1) / 2; ++k) {
        double ar = re[k], ai = im[k], br = re[nl - k], bi = im[nl - k];
        advi_poisson_pair_forward(kind, tw[2 * k], tw[2 * k + 1], &ar, &ai, &br, &bi);
        x[k] = (REAL)ar;
        y[k] = (REAL)ai;
        x[nl - k] = (REAL)br;
        y[nl - k] = (REAL)bi;
    }
}

ADVI_CPU_CLONES static void PFN(rows_forward_item)(int bc, int64_t nl, const double *tw,
                                                   double f0, double fh,
                                                   const REAL *restrict a, REAL *restrict x,
                                                   REAL *restrict y, REAL *restrict tmp) {
    REAL *restrict re = tmp, *restrict im = tmp + nl;
    for (int64_t j = 0; j < nl; ++j) {
        re[j] = a[2 * j];
        im[j] = a[2 * j + 1];
    }
    x[0] = (REAL)(f0 * (double)re[0]);
    y[0] = (REAL)(f0 * (double)im[0]);
    PBY_KIND(bc, PFN(rows_forward_loop), nl, tw, re, im, x, y);
    if (nl & 1) { // the padding column stays 0 (it rides along as a partner column)
        x[nl] = 0;
        y[nl] = 0;
    } else {
        x[nl / 2] = (REAL)(fh * (double)re[nl / 2]);
        y[nl / 2] = (REAL)(fh * (double)im[nl / 2]);
    }
}

PINLINE void PFN(rows_inverse_loop)(int kind, int64_t nl, const double *restrict tw,
                                    REAL *restrict re, REAL *restrict im,
                                    const REAL *restrict x, const REAL *restrict y) {
    for (int64_t k = 1; k <= (nl - 1) / 2; ++k) {
        double ar = x[k], ai = y[k], br = x[nl - k], bi = y[nl - k];
        advi_poisson_pair_inverse(kind, tw[2 * k], tw[2 * k + 1], &ar, &ai, &br, &bi);
        re[k] = (REAL)ar;
        im[k] = (REAL)ai;
        re[nl - k] = (REAL)br;
        im[nl - k] = (REAL)bi;
    }
}

ADVI_CPU_CLONES static void PFN(rows_inverse_item)(int bc, int64_t nl, const double *tw,
                                                   double f0, double fh,
                                                   const REAL *restrict x,
                                                   const REAL *restrict y, REAL *restrict a,
                                                   REAL *restrict tmp) {
    REAL *restrict re = tmp, *restrict im = tmp + nl;
    re[0] = (REAL)(f0 * (double)x[0]);
    im[0] = (REAL)(f0 * (double)y[0]);
    PBY_KIND(bc, PFN(rows_inverse_loop), nl, tw, re, im, x, y);
    if (!(nl & 1)) {
        re[nl / 2] = (REAL)(fh * (double)x[nl / 2]);
        im[nl / 2] = (REAL)(fh * (double)y[nl / 2]);
    }
    for (int64_t j = 0; j < nl; ++j) {
        a[2 * j] = re[j];
        a[2 * j + 1] = im[j];
    }
}

/* ---- another axis: the planes k and n-k of one outer index, S complex columns each ---- */

PINLINE void PFN(pairs_loop)(int kind, int inverse, int64_t S, double c, double sn,
                             REAL *restrict zk, REAL *restrict zn) {
    for (int64_t i = 0; i < S; ++i) {
        double ar = zk[2 * i], ai = zk[2 * i + 1], br = zn[2 * i], bi = zn[2 * i + 1];
        if (inverse) advi_poisson_pair_inverse(kind, c, sn, &ar, &ai, &br, &bi);
        else advi_poisson_pair_forward(kind, c, sn, &ar, &ai, &br, &bi);
        zk[2 * i] = (REAL)ar;
        zk[2 * i + 1] = (REAL)ai;
        zn[2 * i] = (REAL)br;
        zn[2 * i + 1] = (REAL)bi;
    }
}

ADVI_CPU_CLONES static void PFN(pairs_item)(int bc, int inverse, int64_t S, double c, double sn,
                                            REAL *restrict zk, REAL *restrict zn) {
    if (inverse) PBY_KIND(bc, PFN(pairs_loop), 1, S, c, sn, zk, zn);
    else PBY_KIND(bc, PFN(pairs_loop), 0, S, c, sn, zk, zn);
}

ADVI_CPU_CLONES static void PFN(scale_item)(int64_t n, double f, REAL *restrict z) {
    for (int64_t i = 0; i < n; ++i) z[i] = (REAL)(f * (double)z[i]);
}

/* ---- the first axis: forward twiddles, 1/(λ·norm), inverse twiddles ---- */

PINLINE void PFN(solve_loop)(int kind, int64_t P, double c, double sn, double b1, double b2,
                             const double *restrict laml, double inv_norm, REAL *restrict zk,
                             REAL *restrict zn) {
    for (int64_t p = 0; p < P; ++p) {
        double ar = zk[2 * p], ai = zk[2 * p + 1], br = zn[2 * p], bi = zn[2 * p + 1];
        advi_poisson_pair_forward(kind, c, sn, &ar, &ai, &br, &bi);
        ar *= advi_poisson_scale(b1 + laml[2 * p], inv_norm);
        ai *= advi_poisson_scale(b1 + laml[2 * p + 1], inv_norm);
        br *= advi_poisson_scale(b2 + laml[2 * p], inv_norm);
        bi *= advi_poisson_scale(b2 + laml[2 * p + 1], inv_norm);
        advi_poisson_pair_inverse(kind, c, sn, &ar, &ai, &br, &bi);
        zk[2 * p] = (REAL)ar;
        zk[2 * p + 1] = (REAL)ai;
        zn[2 * p] = (REAL)br;
        zn[2 * p + 1] = (REAL)bi;
    }
}

/* Planes k and n-k (P complex columns): coefficient column j of the last axis has
 * eigenvalue base + laml[j], base = b1 in plane k and b2 in plane n-k. */
ADVI_CPU_CLONES static void PFN(solve_item)(int bc, int64_t P, double c, double sn, double b1,
                                            double b2, const double *restrict laml,
                                            double inv_norm, REAL *restrict zk,
                                            REAL *restrict zn) {
    PBY_KIND(bc, PFN(solve_loop), P, c, sn, b1, b2, laml, inv_norm, zk, zn);
}

/* A self-paired plane: z_j *= f / (base + laml[j]) over n reals. */
ADVI_CPU_CLONES static void PFN(solve_self_item)(int64_t n, double base,
                                                 const double *restrict laml, double f,
                                                 REAL *restrict z) {
    for (int64_t j = 0; j < n; ++j)
        z[j] = (REAL)((double)z[j] * advi_poisson_scale(base + laml[j], f));
}

/* A single kept axis: one row pair (two right-hand sides, or one and the zero padding, with
 * the same eigenvalues). Only 1-D problems take it: kept simple. */
static void PFN(solve_rows_item)(const cpu_poisson *s, REAL *restrict a) {
    const rt_axis *ax = &s->ax[0];
    const int64_t n = ax->n;
    const int bc = ax->bc;
    const double *tw = ax->tw, *lam = ax->lam;
    const double inv_norm = s->inv_norm, shift = s->shift;
    const double g0 = advi_poisson_scale(shift + lam[0], inv_norm) *
                      advi_poisson_self_factor(bc, 0, 0) * advi_poisson_self_factor(bc, 0, 1);
    a[0] = (REAL)(g0 * (double)a[0]);
    a[1] = (REAL)(g0 * (double)a[1]);
    for (int64_t k = 1; k < n - k; ++k) {
        double ar = a[2 * k], ai = a[2 * k + 1], br = a[2 * (n - k)], bi = a[2 * (n - k) + 1];
        const double gk = advi_poisson_scale(shift + lam[k], inv_norm);
        const double gn = advi_poisson_scale(shift + lam[n - k], inv_norm);
        advi_poisson_pair_forward(bc, tw[2 * k], tw[2 * k + 1], &ar, &ai, &br, &bi);
        ar *= gk, ai *= gk, br *= gn, bi *= gn;
        advi_poisson_pair_inverse(bc, tw[2 * k], tw[2 * k + 1], &ar, &ai, &br, &bi);
        a[2 * k] = (REAL)ar;
        a[2 * k + 1] = (REAL)ai;
        a[2 * (n - k)] = (REAL)br;
        a[2 * (n - k) + 1] = (REAL)bi;
    }
    if (n > 1 && !(n & 1)) {
        const double gh = advi_poisson_scale(shift + lam[n / 2], inv_norm) *
                          advi_poisson_self_factor(bc, n / 2, 0) *
                          advi_poisson_self_factor(bc, n / 2, 1);
        a[n] = (REAL)(gh * (double)a[n]);
        a[n + 1] = (REAL)(gh * (double)a[n + 1]);
    }
}

/* ---- the passes ---- */

/* Row pair q of a block buffer (n_last complex) <-> rows 2q, 2q+1 of f/u: the rows' offsets
 * (the second is -1 past the last row) and their signs for even and odd indices. */
static inline void PFN(pair_rows)(const adv_poisson_plan *plan, const cpu_poisson *s, int64_t q,
                                  int64_t *off, REAL *even, REAL *odd) {
    const int dir = s->ax[s->D - 1].bc == ADVI_POISSON_DIRICHLET;
    for (int i = 0; i < 2; ++i) {
        const int64_t r = 2 * q + i;
        int neg = 0;
        off[i] = r < s->rows ? rt_row_source(plan, s, r, &neg) : -1;
        even[i] = neg ? (REAL)-1 : (REAL)1;
        odd[i] = dir ? -even[i] : even[i];
    }
}

/* The last axis, by blocks of row pairs. f != NULL: load f (checked already) and transform;
 * u != NULL: transform back and store to u. With both (a single kept axis) the scaling is
 * done in between; with one of them the block goes to / comes from B. */
static void PFN(rt_rows)(const adv_poisson_plan *plan, const cpu_poisson *s, const void *fv,
                         void *uv) {
    const rt_axis *ax = &s->ax[s->D - 1];
    const int64_t nl = ax->n, ls = s->ls;
    const int bc = ax->bc, reorder = bc != ADVI_POISSON_PERIODIC;
    const adv_precision prec = plan->desc.precision;
    const REAL *f = fv;
    REAL *u = uv, *B = s->b;
    const REAL *zero = (const REAL *)s->pad; // the partner of an odd last row
    REAL *junk = (REAL *)s->pad + nl;        // where the result of that partner goes
    // Factors of the self-paired coefficients 0 and n/2, forward (f) and inverse (i).
    const double f0 = advi_poisson_self_factor(bc, 0, 0);
    const double fh = advi_poisson_self_factor(bc, nl / 2, 0);
    const double i0 = advi_poisson_self_factor(bc, 0, 1);
    const double ih = advi_poisson_self_factor(bc, nl / 2, 1);
    // The partner row of an odd last row must read back 0, not what the forward pass left.
    if (!f && (s->rows & 1)) memset(B + s->rows * ls, 0, (size_t)ls * sizeof(REAL));
#pragma omp parallel num_threads(s->threads)
    {
        REAL *buf = (REAL *)s->scratch + (size_t)omp_get_thread_num() * 2 * s->scratch_elems;
        REAL *tmp = buf + 2 * s->block_elems;
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < ax->blocks; ++blk) {
            const int64_t q0 = blk * ax->width;
            const int tail = blk == ax->blocks - 1;
            const int64_t w = tail ? ax->tail : ax->width;
            if (f) {
                for (int64_t j = 0; j < w; ++j) {
                    int64_t off[2];
                    REAL e[2], o[2];
                    PFN(pair_rows)(plan, s, q0 + j, off, e, o);
                    PFN(load_item)(nl, reorder, f + off[0], off[1] < 0 ? zero : f + off[1], e[0],
                                   o[0], e[1], o[1], buf + j * 2 * nl, tmp);
                }
                execute_block(prec, ax->plan[tail][0], buf);
                if (!u) {
                    for (int64_t j = 0; j < w; ++j)
                        PFN(rows_forward_item)(bc, nl, ax->tw, f0, fh, buf + j * 2 * nl,
                                               B + 2 * (q0 + j) * ls,
                                               B + (2 * (q0 + j) + 1) * ls, tmp);
                    continue;
                }
                for (int64_t j = 0; j < w; ++j) PFN(solve_rows_item)(s, buf + j * 2 * nl);
            } else {
                for (int64_t j = 0; j < w; ++j)
                    PFN(rows_inverse_item)(bc, nl, ax->tw, i0, ih, B + 2 * (q0 + j) * ls,
                                           B + (2 * (q0 + j) + 1) * ls, buf + j * 2 * nl, tmp);
            }
            execute_block(prec, ax->plan[tail][1], buf);
            for (int64_t j = 0; j < w; ++j) {
                int64_t off[2];
                REAL e[2], o[2];
                PFN(pair_rows)(plan, s, q0 + j, off, e, o);
                PFN(store_item)(nl, reorder, buf + j * 2 * nl, e[0], o[0], e[1], o[1],
                                u + off[0], off[1] < 0 ? junk : u + off[1], tmp);
            }
        }
    }
}

/* The first axis' scaling on a block buffer: n planes of w complex columns, the block's
 * first column being column c0 of B's rows (complex column p of a row holds the last axis'
 * coefficients 2p and 2p+1; the row t between the first and the last axis adds lam_mid[t]). */
static void PFN(solve_block)(const cpu_poisson *s, int64_t c0, int64_t w, REAL *buf) {
    const rt_axis *ax = &s->ax[0];
    const int64_t n = ax->n, P = s->ls / 2;
    const double *laml = s->ax[s->D - 1].lam;
    for (int64_t k = 0; k <= n / 2; ++k) {
        const int64_t k2 = (n - k) % n;
        const double self = advi_poisson_self_factor(ax->bc, k, 0) *
                            advi_poisson_self_factor(ax->bc, k, 1) * s->inv_norm;
        // Runs of columns within one row t.
        for (int64_t c = c0; c < c0 + w;) {
            const int64_t t = c / P, p0 = c % P;
            const int64_t len = P - p0 < c0 + w - c ? P - p0 : c0 + w - c;
            const double base = s->shift + s->lam_mid[t];
            REAL *zk = buf + 2 * (k * w + c - c0);
            if (k == k2)
                PFN(solve_self_item)(2 * len, base + ax->lam[k], laml + 2 * p0, self, zk);
            else
                PFN(solve_item)(ax->bc, len, ax->tw[2 * k], ax->tw[2 * k + 1], base + ax->lam[k],
                                base + ax->lam[k2], laml + 2 * p0, s->inv_norm, zk,
                                buf + 2 * (k2 * w + c - c0));
            c += len;
        }
    }
}

/* The twiddles of every plane pair (k, n-k) of a block buffer of n planes of w columns. */
static void PFN(pairs_block)(const rt_axis *ax, int inverse, int64_t w, REAL *buf) {
    const int64_t n = ax->n;
    for (int64_t k = 0; k <= n / 2; ++k) {
        REAL *zk = buf + 2 * k * w;
        if (k == 0 || 2 * k == n) {
            const double f = advi_poisson_self_factor(ax->bc, k, inverse);
            if (f != 1.0) PFN(scale_item)(2 * w, f, zk);
        } else {
            PFN(pairs_item)(ax->bc, inverse, w, ax->tw[2 * k], ax->tw[2 * k + 1], zk,
                            buf + 2 * (n - k) * w);
        }
    }
}

/* Axis a (not the last), in place on B, by blocks of complex columns: gather the block's n
 * planes, transform (RT_FORWARD: DFT and twiddles; RT_INVERSE: twiddles and inverse DFT;
 * RT_SOLVE, the first axis: DFT, scaling, inverse DFT), scatter back. */
static void PFN(rt_axis)(const cpu_poisson *s, int a, int mode) {
    const rt_axis *ax = &s->ax[a];
    const int64_t n = ax->n, S = ax->stride;
    const adv_precision prec = sizeof(REAL) == 8 ? ADV_FLOAT64 : ADV_FLOAT32;
    REAL *B = s->b;
#pragma omp parallel num_threads(s->threads)
    {
        REAL *buf = (REAL *)s->scratch + (size_t)omp_get_thread_num() * 2 * s->scratch_elems;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < ax->outer * ax->blocks; ++item) {
            const int64_t o = item / ax->blocks, blk = item % ax->blocks;
            const int tail = blk == ax->blocks - 1;
            const int64_t c0 = blk * ax->width, w = tail ? ax->tail : ax->width;
            REAL *col = B + 2 * (o * n * S + c0);
            for (int64_t k = 0; k < n; ++k)
                memcpy(buf + 2 * k * w, col + 2 * k * S, (size_t)(2 * w) * sizeof(REAL));
            if (mode != RT_INVERSE) execute_block(prec, ax->plan[tail][0], buf);
            if (mode == RT_SOLVE) PFN(solve_block)(s, c0, w, buf);
            else PFN(pairs_block)(ax, mode == RT_INVERSE, w, buf);
            if (mode != RT_FORWARD) execute_block(prec, ax->plan[tail][1], buf);
            for (int64_t k = 0; k < n; ++k)
                memcpy(col + 2 * k * S, buf + 2 * k * w, (size_t)(2 * w) * sizeof(REAL));
        }
    }
}

#undef PINLINE
#undef PBY_KIND
#undef PFN
#undef PCAT
#undef PCAT_
