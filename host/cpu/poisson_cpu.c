/* CPU backend of the Poisson plan (spec math.md §4) through FFTW, batched over the
 * right-hand sides. Two paths:
 *  - every axis periodic: one multi-dimensional real-to-complex / complex-to-real plan pair
 *    (the eigenvalues are real, so the scaling multiplies the half-spectrum);
 *  - otherwise the real transforms of each axis (DCT-II/III for Neumann, DST-II/III for
 *    Dirichlet, the DHT for periodic axes, which diagonalises the symmetric circulant as the
 *    DFT does and keeps every axis real) built from complex DFTs as the CUDA path builds them
 *    (Makhoul's reordering and twiddles, kernels/common/poisson_math.h): FFTW's own r2r
 *    kinds have no SIMD codelets and measured 2.5-3.4x slower than its complex DFTs here.
 *    Two real lines travel as one complex line, so every transform is a complex DFT of
 *    length n on half the data:
 *      last (contiguous) axis: rows 2q and 2q+1 as the real and imaginary parts of row
 *        pair q, built by the load pass in a block buffer;
 *      other axes: B, the natural layout with rows padded to an even length ls, where the
 *        columns 2p and 2p+1 of a row are one complex number.
 *    Each axis is one pass over memory, by blocks of lines that one thread transforms in
 *    cache (single-threaded FFTW plans on per-thread block buffers; the threads take
 *    blocks): the last axis f -> B (load with the reordering along every Neumann/Dirichlet
 *    axis and the signs (-1)^j of Dirichlet axes, DFT, twiddles), the axes between in place
 *    (gather, DFT, twiddles, scatter), the first axis in place with its DFT, the scaling
 *    1/(λ·norm) between its forward and inverse twiddles and its inverse DFT in one pass;
 *    then back, and the last axis B -> u. DST-II(x) is the DCT-II of (-1)^j x_j in reverse
 *    order: the coefficients stay in DCT order and the eigenvalue table is reversed. Axes of
 *    length 1 are dropped (a Dirichlet one adds 4/h² to the shift).
 * The input checks (finiteness, zero mean) read f before anything is written to u; past the
 * overflow bound of host/poisson.c the solution is scanned after it is written.
 * FFTW's planner is not thread-safe and fftw_plan_with_nthreads is global: planning and plan
 * destruction hold one process-wide lock. Its thread count and its wisdom are process-wide
 * too: a planning session (planner_begin/_end) saves both, plans from no wisdom and restores
 * them, so plans do not depend on what was planned before in the process, and the caller's
 * FFTW settings come back unchanged. */
#include "internal.h"

#include "common/poisson_math.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Elements (batch × cells) from which the plan uses the context's threads. */
#define ADVI_POISSON_PARALLEL_MIN 32768

/* Bytes of one block of lines transformed in cache by one thread (FFT, twiddles and, on the
 * first axis, the scaling and the inverse, before the block goes back to memory). */
#define ADVI_POISSON_BLOCK_BYTES 32768

/* One axis of the real-transform path (length >= 2, except the single axis of a grid whose
 * axes all have length 1). Blocks: of `width` row pairs (last axis) or complex columns of B
 * (other axes); the last block of an outer index may be narrower (`tail`). */
typedef struct rt_axis {
    int64_t n;
    int bc;
    double h;
    int64_t span;   /* elements of f between consecutive indices along the axis */
    int64_t stride; /* complex elements of B between consecutive indices (not the last axis) */
    int64_t outer;  /* outer indices (batch included) of B (not the last axis) */
    int64_t width, tail, blocks; /* block width, width of the last block, blocks per outer */
    int64_t *src;   /* position m of the transform's input -> index j along the axis */
    double *tw;     /* cos, sin of πk/(2n) for k = 0..n/2 */
    double *lam;    /* eigenvalue of coefficient k in this path's order (Dirichlet: of mode
                       n-1-k); the last axis has ls entries, the padding column 0 */
    void *plan[2][2]; /* fftw(f)_plan [last block][backward]: in place on a block buffer */
} rt_axis;

typedef struct cpu_poisson {
    int threads;
    double inv_norm;          /* 1 / Π_a norm_a of the transform pairs */
    double *sum, *abs_sum;    /* per right-hand side: Σf and Σ|f| */
    int complex_path;         /* every axis periodic */
    /* all-periodic path */
    void *work;               /* batch * cells elements of the plan's precision */
    void *cwork;              /* batch * rows * (n_last/2 + 1) complex */
    void *forward, *backward; /* fftw_plan or fftwf_plan */
    double *eig[ADV_POISSON_MAX_DIM]; /* eigenvalues of -Δ_h along each axis */
    /* real-transform path */
    int D;                    /* axes kept (the last is the contiguous one) */
    rt_axis ax[ADV_POISSON_MAX_DIM];
    double shift;             /* c + 4/h² per Dirichlet axis of length 1 */
    int64_t rows, pairs, ls;  /* rows of the last axis (batch included), ⌈rows/2⌉, ls */
    double *lam_mid;          /* per row of the axes between the first and the last: Σ λ */
    void *b;                  /* B: 2·pairs rows of ls reals (the last one when rows is odd:
                                 the zero partner of the last row) */
    void *scratch;            /* threads × scratch_elems complex: a block buffer of
                                 block_elems and n_last more (split rows) each */
    int64_t scratch_elems, block_elems;
    void *pad;                /* 2 n_last reals: a zero row (the partner of an odd last row
                                 on load) and a row its result is stored to */
} cpu_poisson;

static pthread_once_t fftw_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fftw_planner_lock = PTHREAD_MUTEX_INITIALIZER;
static int fftw_threads_ready;

static void fftw_global_init(void) {
    fftw_threads_ready = fftw_init_threads() != 0 && fftwf_init_threads() != 0;
    // Protects the planner against other FFTW users in the same process as well.
    fftw_make_planner_thread_safe();
    fftwf_make_planner_thread_safe();
}

/* FFTW's process-wide planner state around one planning session (under fftw_planner_lock):
 * without it, a MEASURE plan of one context left its timings in the wisdom, and a later
 * ESTIMATE plan of the same problem in another context took that algorithm (different
 * rounding, so different bits), and the host's own planner thread count was overwritten. */
typedef struct planner_session {
    int f64;
    int threads;  /* the planner's thread count before the session */
    char *wisdom; /* the wisdom before the session (FFTW-allocated string), or NULL */
} planner_session;

static void planner_begin(planner_session *ps, int f64, int threads) {
    ps->f64 = f64;
    if (f64) {
        ps->threads = fftw_planner_nthreads();
        ps->wisdom = fftw_export_wisdom_to_string();
        fftw_forget_wisdom();
        fftw_plan_with_nthreads(threads);
    } else {
        ps->threads = fftwf_planner_nthreads();
        ps->wisdom = fftwf_export_wisdom_to_string();
        fftwf_forget_wisdom();
        fftwf_plan_with_nthreads(threads);
    }
}

static void planner_end(planner_session *ps) {
    if (ps->f64) {
        fftw_forget_wisdom();
        if (ps->wisdom) (void)fftw_import_wisdom_from_string(ps->wisdom);
        fftw_plan_with_nthreads(ps->threads);
    } else {
        fftwf_forget_wisdom();
        if (ps->wisdom) (void)fftwf_import_wisdom_from_string(ps->wisdom);
        fftwf_plan_with_nthreads(ps->threads);
    }
    free(ps->wisdom); // fftw_export_wisdom_to_string's string is malloc'ed (FFTW manual 4.7)
}

static void destroy_fftw_plan(adv_precision p, void *plan) {
    if (!plan) return;
    pthread_mutex_lock(&fftw_planner_lock);
    if (p == ADV_FLOAT64) fftw_destroy_plan((fftw_plan)plan);
    else fftwf_destroy_plan((fftwf_plan)plan);
    pthread_mutex_unlock(&fftw_planner_lock);
}

static void execute_fftw_plan(adv_precision p, void *plan) {
    if (p == ADV_FLOAT64) fftw_execute((fftw_plan)plan);
    else fftwf_execute((fftwf_plan)plan);
}

void advi_cpu_poisson_plan_fini(adv_poisson_plan *plan) {
    cpu_poisson *s = plan->backend_state;
    if (!s) return;
    adv_precision p = plan->desc.precision;
    destroy_fftw_plan(p, s->forward);
    destroy_fftw_plan(p, s->backward);
    for (int a = 0; a < ADV_POISSON_MAX_DIM; ++a) {
        free(s->eig[a]);
        rt_axis *ax = &s->ax[a];
        for (int dir = 0; dir < 2; ++dir) {
            if (ax->plan[1][dir] != ax->plan[0][dir]) destroy_fftw_plan(p, ax->plan[1][dir]);
            destroy_fftw_plan(p, ax->plan[0][dir]);
        }
        free(ax->src);
        free(ax->tw);
        free(ax->lam);
    }
    free(s->lam_mid);
    free(s->sum);
    free(s->abs_sum);
    advi_host_free(plan->ctx, s->work);
    advi_host_free(plan->ctx, s->cwork);
    advi_host_free(plan->ctx, s->b);
    advi_host_free(plan->ctx, s->scratch);
    free(s->pad);
    free(s);
    plan->backend_state = NULL;
}

static unsigned fftw_flags(const adv_poisson_desc *d) {
    return d->effort == ADV_FFT_MEASURE ? FFTW_MEASURE : FFTW_ESTIMATE;
}

/* All-periodic path: r2c from s->work to s->cwork and c2r back. */
static adv_status make_complex_plans(adv_poisson_plan *plan, cpu_poisson *s) {
    const adv_poisson_desc *d = &plan->desc;
    const int last = d->ndim - 1;
    const ptrdiff_t half = (ptrdiff_t)d->shape[last] / 2 + 1;
    fftw_iodim64 cdims[ADV_POISSON_MAX_DIM], bdims[ADV_POISSON_MAX_DIM];
    ptrdiff_t stride = 1, cstride = 1; // real and half-spectrum strides, row-major
    for (int a = last; a >= 0; --a) {
        cdims[a].n = (ptrdiff_t)d->shape[a];
        cdims[a].is = stride;  // r2c: real input
        cdims[a].os = cstride; //      complex output
        stride *= (ptrdiff_t)d->shape[a];
        cstride *= a == last ? half : (ptrdiff_t)d->shape[a];
    }
    for (int a = 0; a <= last; ++a) { // c2r: strides swapped
        bdims[a].n = cdims[a].n;
        bdims[a].is = cdims[a].os;
        bdims[a].os = cdims[a].is;
    }
    const ptrdiff_t B = (ptrdiff_t)d->batch;
    fftw_iodim64 howmany_r2c = {B, stride, cstride}, howmany_c2r = {B, cstride, stride};
    const unsigned flags = fftw_flags(d);
    const int n = d->ndim;

    pthread_mutex_lock(&fftw_planner_lock);
    planner_session ps;
    planner_begin(&ps, d->precision == ADV_FLOAT64, s->threads);
    if (d->precision == ADV_FLOAT64) {
        s->forward = fftw_plan_guru64_dft_r2c(n, cdims, 1, &howmany_r2c, s->work, s->cwork,
                                              flags);
        s->backward = fftw_plan_guru64_dft_c2r(n, bdims, 1, &howmany_c2r, s->cwork, s->work,
                                               flags);
    } else {
        s->forward = fftwf_plan_guru64_dft_r2c(n, cdims, 1, &howmany_r2c, s->work, s->cwork,
                                               flags);
        s->backward = fftwf_plan_guru64_dft_c2r(n, bdims, 1, &howmany_c2r, s->cwork, s->work,
                                                flags);
    }
    planner_end(&ps);
    pthread_mutex_unlock(&fftw_planner_lock);
    if (!s->forward || !s->backward)
        return advi_fail(plan->ctx, ADV_ERR_FFTW,
                         "fftw%s_plan_guru64_dft_r2c/c2r returned NULL (%s plan)",
                         d->precision == ADV_FLOAT64 ? "" : "f",
                         s->forward ? "backward" : "forward");
    return ADV_OK;
}

static adv_status init_complex_path(adv_poisson_plan *plan, cpu_poisson *s) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    const size_t es = advi_real_size(d->precision);
    const int64_t nl = d->shape[d->ndim - 1];
    const size_t bytes = plan->cells * (size_t)d->batch * es;
    const size_t cbytes =
        plan->cells / (size_t)nl * (size_t)(nl / 2 + 1) * (size_t)d->batch * 2 * es;
    s->work = advi_host_alloc(ctx, bytes);
    s->cwork = advi_host_alloc(ctx, cbytes);
    int ok = s->work && s->cwork;
    double norm = 1.0;
    for (int a = 0; a < d->ndim && ok; ++a) {
        const int64_t n = d->shape[a];
        s->eig[a] = malloc((size_t)n * sizeof(double));
        ok = s->eig[a] != NULL;
        for (int64_t k = 0; ok && k < n; ++k)
            s->eig[a][k] = advi_poisson_axis_eigenvalue((int)d->bc[a], k, n, d->spacing[a]);
        norm *= advi_poisson_axis_norm((int)d->bc[a], n);
    }
    if (!ok)
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson workspace of %zu bytes",
                         bytes + cbytes);
    s->inv_norm = 1.0 / norm;
    return make_complex_plans(plan, s);
}

/* Real-transform path: per kept axis the complex DFTs of one block (full and last), forward
 * and backward, in place on a block buffer, single-threaded (the threads take blocks).
 * Last axis: `width` contiguous rows of n; other axes: n rows of `width` columns. */
static adv_status make_rt_plans(adv_poisson_plan *plan, cpu_poisson *s) {
    const adv_poisson_desc *d = &plan->desc;
    const unsigned flags = fftw_flags(d);
    const int f64 = d->precision == ADV_FLOAT64;
    int failed = 0;
    pthread_mutex_lock(&fftw_planner_lock);
    planner_session ps;
    planner_begin(&ps, f64, 1);
    for (int a = 0; a < s->D && !failed; ++a) {
        rt_axis *ax = &s->ax[a];
        const int last = a == s->D - 1;
        for (int t = 0; t < 2 && !failed; ++t) {
            const int64_t w = t ? ax->tail : ax->width;
            if (t && w == ax->width) { // no narrower last block: share the plans
                ax->plan[1][0] = ax->plan[0][0];
                ax->plan[1][1] = ax->plan[0][1];
                break;
            }
            fftw_iodim64 dim = {ax->n, last ? 1 : w, last ? 1 : w};
            fftw_iodim64 loop = {w, last ? ax->n : 1, last ? ax->n : 1};
            for (int dir = 0; dir < 2; ++dir) {
                const int sign = dir ? FFTW_BACKWARD : FFTW_FORWARD;
                ax->plan[t][dir] =
                    f64 ? (void *)fftw_plan_guru64_dft(1, &dim, 1, &loop, s->scratch, s->scratch,
                                                       sign, flags)
                        : (void *)fftwf_plan_guru64_dft(1, &dim, 1, &loop, s->scratch,
                                                        s->scratch, sign, flags);
                failed |= !ax->plan[t][dir];
            }
        }
    }
    planner_end(&ps);
    pthread_mutex_unlock(&fftw_planner_lock);
    if (failed)
        return advi_fail(plan->ctx, ADV_ERR_FFTW, "fftw%s_plan_guru64_dft returned NULL",
                         f64 ? "" : "f");
    return ADV_OK;
}

/* Lines per block: about ADVI_POISSON_BLOCK_BYTES of them (a multiple of 4 when more than 4,
 * which keeps the columns SIMD-aligned), at most `lines`. */
static int64_t block_width(int64_t lines, int64_t n, size_t es) {
    int64_t w = (int64_t)(ADVI_POISSON_BLOCK_BYTES / (2 * es)) / n;
    if (w > 4) w -= w % 4;
    if (w < 1) w = 1;
    return w < lines ? w : lines;
}

static void set_blocks(rt_axis *ax, int64_t lines, size_t es) {
    ax->width = block_width(lines, ax->n, es);
    ax->blocks = (lines + ax->width - 1) / ax->width;
    ax->tail = lines - (ax->blocks - 1) * ax->width;
}

static adv_status init_rt_path(adv_poisson_plan *plan, cpu_poisson *s) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    const size_t es = advi_real_size(d->precision);
    // Kept axes: length > 1. A Dirichlet axis of length 1 is the operator 4/h² (both ghost
    // values are -u_0); a periodic or Neumann one is 0.
    s->shift = d->shift;
    s->D = 0;
    int64_t span = 1;
    int64_t spans[ADV_POISSON_MAX_DIM];
    for (int a = d->ndim - 1; a >= 0; --a) {
        spans[a] = span;
        span *= d->shape[a];
    }
    for (int a = 0; a < d->ndim; ++a) {
        if (d->shape[a] > 1) {
            rt_axis *ax = &s->ax[s->D++];
            ax->n = d->shape[a];
            ax->bc = (int)d->bc[a];
            ax->span = spans[a];
            ax->h = d->spacing[a];
        } else if (d->bc[a] == ADV_BC_DIRICHLET) {
            s->shift += 4.0 / (d->spacing[a] * d->spacing[a]);
        }
    }
    if (s->D == 0) { // one cell: a periodic axis of length 1 is the identity transform
        s->ax[0].n = 1;
        s->ax[0].bc = ADVI_POISSON_PERIODIC;
        s->ax[0].span = 1;
        s->D = 1;
    }
    const int L = s->D - 1;
    const int64_t nl = s->ax[L].n;
    s->rows = (int64_t)(plan->cells / (size_t)nl) * d->batch;
    s->pairs = (s->rows + 1) / 2;
    s->ls = nl + (nl & 1);
    // Blocks: row pairs of the last axis; complex columns of B (rows of ls/2) for the others.
    set_blocks(&s->ax[L], s->pairs, es);
    s->block_elems = s->ax[L].width * nl;
    int64_t inner = s->ls / 2, outer = d->batch;
    for (int a = L - 1; a >= 0; --a) {
        s->ax[a].stride = inner;
        inner *= s->ax[a].n;
    }
    for (int a = 0; a < L; ++a) {
        rt_axis *ax = &s->ax[a];
        ax->outer = outer;
        outer *= ax->n;
        set_blocks(ax, ax->stride, es);
        if (ax->width * ax->n > s->block_elems) s->block_elems = ax->width * ax->n;
    }
    s->block_elems += (-s->block_elems) & 7; // 64-byte aligned, like the block buffers
    s->scratch_elems = s->block_elems + nl;
    s->scratch_elems += (-s->scratch_elems) & 7;
    const size_t bbytes = L > 0 ? (size_t)s->pairs * 2 * (size_t)s->ls * es : 0;
    const size_t sbytes = (size_t)s->threads * (size_t)s->scratch_elems * 2 * es;
    s->scratch = advi_host_alloc(ctx, sbytes);
    int ok = s->scratch != NULL;
    if (L > 0) {
        s->b = advi_host_alloc(ctx, bbytes);
        ok = ok && s->b;
    }
    s->pad = calloc((size_t)(2 * nl), es);
    ok = ok && s->pad;
    double norm = 1.0;
    for (int a = 0; a <= L && ok; ++a) {
        rt_axis *ax = &s->ax[a];
        const int64_t n = ax->n, nlam = a == L ? s->ls : n;
        ax->src = malloc((size_t)n * sizeof *ax->src);
        ax->tw = malloc((size_t)(n / 2 + 1) * 2 * sizeof *ax->tw);
        ax->lam = calloc((size_t)nlam, sizeof *ax->lam);
        ok = ax->src && ax->tw && ax->lam;
        if (!ok) break;
        const int reorder = ax->bc != ADVI_POISSON_PERIODIC;
        for (int64_t m = 0; m < n; ++m)
            ax->src[m] = !reorder ? m : m < (n + 1) / 2 ? 2 * m : 2 * (n - 1 - m) + 1;
        for (int64_t k = 0; k <= n / 2; ++k)
            advi_poisson_twiddle(k, n, &ax->tw[2 * k], &ax->tw[2 * k + 1]);
        for (int64_t k = 0; k < n; ++k) {
            const int64_t mode = ax->bc == ADVI_POISSON_DIRICHLET ? n - 1 - k : k;
            ax->lam[k] = n > 1 ? advi_poisson_axis_eigenvalue(ax->bc, mode, n, ax->h) : 0.0;
        }
        norm *= advi_poisson_axis_norm(ax->bc, n);
    }
    // Σ λ of the axes strictly between the first and the last, per row of them.
    int64_t mid = 1;
    for (int a = 1; a < L; ++a) mid *= s->ax[a].n;
    if (ok) {
        s->lam_mid = calloc((size_t)mid, sizeof *s->lam_mid);
        ok = s->lam_mid != NULL;
    }
    for (int64_t t = 0; ok && t < mid; ++t) {
        int64_t q = t;
        double acc = 0.0;
        for (int a = L - 1; a >= 1; --a) {
            acc += s->ax[a].lam[q % s->ax[a].n];
            q /= s->ax[a].n;
        }
        s->lam_mid[t] = acc;
    }
    if (!ok)
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson workspace of %zu bytes",
                         bbytes + sbytes);
    s->inv_norm = 1.0 / norm;
    // B's padding (the column of an odd last axis, the row of an odd row count) must be
    // finite: it rides along in the transforms.
    if (s->b) memset(s->b, 0, bbytes);
    return make_rt_plans(plan, s);
}

adv_status advi_cpu_poisson_plan_init(adv_poisson_plan *plan) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    pthread_once(&fftw_once, fftw_global_init);
    if (!fftw_threads_ready)
        return advi_fail(ctx, ADV_ERR_FFTW, "fftw_init_threads failed");

    cpu_poisson *s = calloc(1, sizeof *s);
    if (!s) return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson CPU state");
    plan->backend_state = s;
    // Small grids run on one thread: waking a team costs more than the whole solve.
    s->threads = plan->cells * (size_t)d->batch >= ADVI_POISSON_PARALLEL_MIN
                     ? advi_cpu_threads(ctx)
                     : 1;
    s->complex_path = 1;
    for (int a = 0; a < d->ndim; ++a) s->complex_path &= d->bc[a] == ADV_BC_PERIODIC;
    s->sum = calloc((size_t)d->batch, sizeof *s->sum);
    s->abs_sum = calloc((size_t)d->batch, sizeof *s->abs_sum);
    adv_status st = s->sum && s->abs_sum
                        ? (s->complex_path ? init_complex_path(plan, s) : init_rt_path(plan, s))
                        : advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "Poisson CPU state");
    if (st != ADV_OK) advi_cpu_poisson_plan_fini(plan);
    return st;
}

/* Row r of A/B (rows in the transforms' order: reordered along every Neumann/Dirichlet axis
 * but the last) is the row of f (and of u) at the returned offset, batch included; *neg is
 * the parity of its Dirichlet indices, i.e. its sign in the DST-by-DCT identity. */
static inline int64_t rt_row_source(const adv_poisson_plan *plan, const cpu_poisson *s,
                                    int64_t r, int *neg) {
    int64_t off = 0, q = r;
    int odd = 0;
    for (int a = s->D - 2; a >= 0; --a) {
        const rt_axis *ax = &s->ax[a];
        const int64_t j = ax->src[q % ax->n];
        q /= ax->n;
        off += j * ax->span;
        odd ^= ax->bc == ADVI_POISSON_DIRICHLET && (j & 1);
    }
    *neg = odd;
    return off + q * (int64_t)plan->cells; // q is the right-hand side
}

/* What a pass over an axis other than the last does to each block. */
enum { RT_FORWARD, RT_INVERSE, RT_SOLVE };

/* Executes an in-place block plan on buf (new-array interface: thread-safe). */
static inline void execute_block(adv_precision p, void *plan, void *buf) {
    if (p == ADV_FLOAT64) fftw_execute_dft((fftw_plan)plan, buf, buf);
    else fftwf_execute_dft((fftwf_plan)plan, buf, buf);
}

/* The per-precision passes, written once in poisson_cpu_impl.h. */
#define REAL float
#define SFX f32
#include "cpu/poisson_cpu_impl.h"
#undef REAL
#undef SFX
#define REAL double
#define SFX f64
#include "cpu/poisson_cpu_impl.h"
#undef REAL
#undef SFX

static adv_status solve(adv_poisson_plan *plan, const void *f, void *u, double *max_f_out) {
    adv_context *ctx = plan->ctx;
    const adv_poisson_desc *d = &plan->desc;
    cpu_poisson *s = plan->backend_state;
    const adv_precision prec = d->precision;
    const int f64 = prec == ADV_FLOAT64;
    const size_t n = plan->cells, es = advi_real_size(prec);
    const int want_mean = plan->singular && d->mean_policy == ADV_POISSON_REQUIRE_ZERO_MEAN;

    // Check (the real-transform path) or load and check (all periodic) every right-hand side
    // before anything is written to u.
    const int check = d->check_finite || want_mean;
    double max_f = 0.0;
    for (int64_t b = 0; b < d->batch && (check || s->complex_path); ++b) {
        const size_t off = (size_t)b * n;
        void *w = s->complex_path ? (char *)s->work + off * es : NULL;
        double max_b = 0.0;
        int bad = f64 ? load_f64((const double *)f + off, w, n, d->check_finite, want_mean,
                                 &s->sum[b], &s->abs_sum[b], &max_b, s->threads)
                      : load_f32((const float *)f + off, w, n, d->check_finite, want_mean,
                                 &s->sum[b], &s->abs_sum[b], &max_b, s->threads);
        max_f = fmax(max_f, max_b);
        if (bad)
            return advi_fail(ctx, ADV_ERR_NONFINITE, "f (right-hand side %lld) contains NaN or Inf",
                             (long long)b);
    }
    if (want_mean)
        for (int64_t b = 0; b < d->batch; ++b)
            if (fabs(s->sum[b]) > plan->mean_tolerance * s->abs_sum[b])
                return advi_fail(ctx, ADV_ERR_INVALID_VALUE,
                                 "f (right-hand side %lld) has mean %g but c = 0 with no Dirichlet "
                                 "axis needs zero mean (|sum f| > %g sum |f|); remove the mean or "
                                 "use ADV_POISSON_PROJECT_MEAN",
                                 (long long)b, s->sum[b] / (double)n, plan->mean_tolerance);

    *max_f_out = max_f;
    if (s->complex_path) {
        // The half-spectrum: complex coefficients (two reals each) over n_last/2 + 1 modes.
        const int64_t row_len = d->shape[d->ndim - 1] / 2 + 1;
        execute_fftw_plan(prec, s->forward);
        if (f64) scale_f64(s->cwork, plan, s, row_len);
        else scale_f32(s->cwork, plan, s, row_len);
        execute_fftw_plan(prec, s->backward);
        memcpy(u, s->work, n * (size_t)d->batch * es);
        return ADV_OK;
    }

    // Real-transform path: the last axis (f -> B), the axes between, the first axis with
    // the scaling, back, and the last axis (B -> u); a single axis does it all in one pass.
    const int L = s->D - 1;
    if (L == 0) {
        if (f64) rt_rows_f64(plan, s, f, u);
        else rt_rows_f32(plan, s, f, u);
        return ADV_OK;
    }
    if (f64) rt_rows_f64(plan, s, f, NULL);
    else rt_rows_f32(plan, s, f, NULL);
    for (int a = L - 1; a >= 0; --a) {
        if (f64) rt_axis_f64(s, a, a == 0 ? RT_SOLVE : RT_FORWARD);
        else rt_axis_f32(s, a, a == 0 ? RT_SOLVE : RT_FORWARD);
    }
    for (int a = 1; a < L; ++a) {
        if (f64) rt_axis_f64(s, a, RT_INVERSE);
        else rt_axis_f32(s, a, RT_INVERSE);
    }
    if (f64) rt_rows_f64(plan, s, NULL, u);
    else rt_rows_f32(plan, s, NULL, u);
    return ADV_OK;
}

adv_status advi_cpu_poisson_execute(adv_poisson_plan *plan, const void *f, void *u) {
    const adv_poisson_desc *d = &plan->desc;
    double max_f = 0.0;
    adv_status st = solve(plan, f, u, &max_f);
    if (st != ADV_OK || !d->check_finite || !(max_f > plan->safe_max_f)) return st;
    const size_t count = plan->cells * (size_t)d->batch;
    if (advi_cpu_all_finite(plan->ctx, d->precision, u, count, 0, NULL)) return ADV_OK;
    memset(u, 0, count * advi_real_size(d->precision));
    return advi_poisson_overflow(plan, max_f);
}
