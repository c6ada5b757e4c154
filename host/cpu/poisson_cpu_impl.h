/* Per-precision loops of the CPU Poisson backend, included twice by poisson_cpu.c with
 * REAL = float/double and SFX = f32/f64.
 * load: copies one right-hand side into the workspace; returns 1 when it holds NaN/Inf (if
 *   checked) and gives Σf and Σ|f| in double (if asked).
 * scale: multiplies every transformed coefficient by 1/(λ·norm), row by row along the last
 *   (contiguous) axis so that the inner loop vectorises. */

#define PCAT_(a, b) a##_##b
#define PCAT(a, b) PCAT_(a, b)
#define PFN(name) PCAT(name, SFX)

static int PFN(load)(const REAL *restrict f, REAL *restrict w, size_t n, int check_finite,
                     int want_mean, double *sum, double *abs_sum, int threads) {
    int bad = 0;
    double s = 0.0, sa = 0.0;
#pragma omp parallel for reduction(| : bad) reduction(+ : s, sa) schedule(static) \
    num_threads(threads) if (n >= ADVI_POISSON_PARALLEL_MIN)
    for (size_t i = 0; i < n; ++i) {
        const REAL v = f[i];
        w[i] = v;
        if (check_finite) bad |= !isfinite(v);
        if (want_mean) {
            s += (double)v;
            sa += fabs((double)v);
        }
    }
    *sum = s;
    *abs_sum = sa;
    return bad;
}

/* w holds rows of row_len coefficients, each coefficient `per` reals (1: r2r, 2: complex
 * half-spectrum); coefficient j of a row is mode j of the last axis. */
static void PFN(scale)(REAL *w, const adv_poisson_plan *plan, const cpu_poisson *st,
                       int64_t row_len, int64_t per) {
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
        REAL *row = w + r * row_len * per;
        if (per == 1) {
            for (int64_t j = 0; j < row_len; ++j)
                row[j] = (REAL)((double)row[j] * advi_poisson_scale(base + el[j], inv_norm));
        } else {
            for (int64_t j = 0; j < row_len; ++j) {
                const double g = advi_poisson_scale(base + el[j], inv_norm);
                row[2 * j] = (REAL)((double)row[2 * j] * g);
                row[2 * j + 1] = (REAL)((double)row[2 * j + 1] * g);
            }
        }
    }
}

#undef PFN
#undef PCAT
#undef PCAT_
