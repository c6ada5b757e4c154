/* CPU interaction sum, written once and included twice by interaction_cpu.c with
 * REAL = float/double and SFX = f32/f64. Keys (and values) of one batch entry are packed
 * transposed and padded to whole key blocks (padding has beta = -Inf), so the inner loops run
 * over contiguous keys and vectorise. Work items are (group of QB queries, key split); each
 * produces a reduction state (m, s, acc) per query that a final pass merges and normalises.
 * Memory: O(M (d + e)) packed keys + O(N S (e + 2)) states; never N x M. */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define VEXP CAT(adv_vexp, SFX)
#define RESCALE CAT(adv_rescale, SFX)

/* Scores of QB queries against one key block, written to sc[q][j]. D is a compile-time
 * constant for the common small dimensions (the k loop then unrolls) or the runtime d. */
static inline __attribute__((always_inline)) void FN(block_scores)(
    int dot, int64_t D, const REAL *restrict xg, const REAL *restrict yT, int64_t Mpad,
    const REAL *restrict bp, REAL lambda, REAL (*restrict sc)[ADV_CPU_KB]) {
    const REAL *x0 = xg, *x1 = xg + D, *x2 = xg + 2 * D, *x3 = xg + 3 * D;
    if (!dot) {
        for (int j = 0; j < ADV_CPU_KB; ++j) {
            REAL a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (int64_t k = 0; k < D; ++k) {
                const REAL y = yT[k * Mpad + j];
                const REAL t0 = x0[k] - y, t1 = x1[k] - y, t2 = x2[k] - y, t3 = x3[k] - y;
                a0 += t0 * t0;
                a1 += t1 * t1;
                a2 += t2 * t2;
                a3 += t3 * t3;
            }
            sc[0][j] = bp[j] - lambda * a0;
            sc[1][j] = bp[j] - lambda * a1;
            sc[2][j] = bp[j] - lambda * a2;
            sc[3][j] = bp[j] - lambda * a3;
        }
    } else {
        for (int j = 0; j < ADV_CPU_KB; ++j) {
            REAL a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (int64_t k = 0; k < D; ++k) {
                const REAL y = yT[k * Mpad + j];
                a0 += x0[k] * y;
                a1 += x1[k] * y;
                a2 += x2[k] * y;
                a3 += x3[k] * y;
            }
            sc[0][j] = bp[j] + lambda * a0;
            sc[1][j] = bp[j] + lambda * a1;
            sc[2][j] = bp[j] + lambda * a2;
            sc[3][j] = bp[j] + lambda * a3;
        }
    }
}

/* Scores for larger d: keys in chunks of ADV_CPU_LANES with the QB accumulators held in
 * vector registers (explicit lane arrays that the compiler keeps in registers) and the
 * coordinates looped inside, so each key coordinate is loaded once for QB queries and no
 * horizontal sums are needed. */
static inline __attribute__((always_inline)) void FN(block_scores_wide)(
    int dot, int64_t D, const REAL *restrict xg, const REAL *restrict yT, int64_t Mpad,
    const REAL *restrict bp, REAL lambda, REAL (*restrict sc)[ADV_CPU_KB]) {
    enum { L = ADV_CPU_LANES };
    const REAL *x0 = xg, *x1 = xg + D, *x2 = xg + 2 * D, *x3 = xg + 3 * D;
    const REAL sign = dot ? lambda : -lambda;
    for (int j = 0; j < ADV_CPU_KB; j += L) {
        REAL a0[L] = {0}, a1[L] = {0}, a2[L] = {0}, a3[L] = {0};
        if (!dot) {
            for (int64_t k = 0; k < D; ++k) {
                const REAL *y = yT + k * Mpad + j;
                const REAL c0 = x0[k], c1 = x1[k], c2 = x2[k], c3 = x3[k];
                for (int l = 0; l < L; ++l) {
                    const REAL t0 = c0 - y[l], t1 = c1 - y[l], t2 = c2 - y[l], t3 = c3 - y[l];
                    a0[l] += t0 * t0;
                    a1[l] += t1 * t1;
                    a2[l] += t2 * t2;
                    a3[l] += t3 * t3;
                }
            }
        } else {
            for (int64_t k = 0; k < D; ++k) {
                const REAL *y = yT + k * Mpad + j;
                const REAL c0 = x0[k], c1 = x1[k], c2 = x2[k], c3 = x3[k];
                for (int l = 0; l < L; ++l) {
                    a0[l] += c0 * y[l];
                    a1[l] += c1 * y[l];
                    a2[l] += c2 * y[l];
                    a3[l] += c3 * y[l];
                }
            }
        }
        for (int l = 0; l < L; ++l) {
            sc[0][j + l] = bp[j + l] + sign * a0[l];
            sc[1][j + l] = bp[j + l] + sign * a1[l];
            sc[2][j + l] = bp[j + l] + sign * a2[l];
            sc[3][j + l] = bp[j + l] + sign * a3[l];
        }
    }
}

typedef struct {
    int dot, causal;
    int64_t d, e, Mpad;
    REAL lambda;
    const REAL *yT, *wT, *bp; /* packed keys (d x Mpad), values (e x Mpad), log-weights */
} FN(keyset);

/* Folds key blocks [kb0, kb1) into the states of queries i0..i0+QB-1 (xg: their QB x d
 * coordinates, already scaled by gamma; rows past the end duplicate the last query).
 * Sums are kept in ADV_CPU_LANES partial lanes (sl: QB x LANES, al: QB x e x LANES) so every
 * inner loop is element-wise SIMD; the lanes are reduced once, by the caller. */
ADV_CPU_CLONES static void FN(process_group)(const FN(keyset) *ks, const REAL *restrict xg,
                                             int64_t i0, int64_t kb0, int64_t kb1, REAL *m,
                                             REAL *restrict sl, REAL *restrict al) {
    enum { L = ADV_CPU_LANES };
    REAL sc[ADV_CPU_QB][ADV_CPU_KB] __attribute__((aligned(64)));
    const int64_t d = ks->d, e = ks->e, Mpad = ks->Mpad;
    for (int64_t kb = kb0; kb < kb1; ++kb) {
        const int64_t j0 = kb * ADV_CPU_KB;
        if (ks->causal && j0 > i0 + ADV_CPU_QB - 1) break; // every later key is masked
        const REAL *yT = ks->yT + j0, *bp = ks->bp + j0;
        switch (d) { // constant d lets the compiler unroll the coordinate loop
        case 1: FN(block_scores)(ks->dot, 1, xg, yT, Mpad, bp, ks->lambda, sc); break;
        case 2: FN(block_scores)(ks->dot, 2, xg, yT, Mpad, bp, ks->lambda, sc); break;
        case 3: FN(block_scores)(ks->dot, 3, xg, yT, Mpad, bp, ks->lambda, sc); break;
        case 4: FN(block_scores)(ks->dot, 4, xg, yT, Mpad, bp, ks->lambda, sc); break;
        default: FN(block_scores_wide)(ks->dot, d, xg, yT, Mpad, bp, ks->lambda, sc); break;
        }
        if (ks->causal && j0 + ADV_CPU_KB - 1 > i0)
            for (int q = 0; q < ADV_CPU_QB; ++q)
                for (int j = 0; j < ADV_CPU_KB; ++j)
                    if (j0 + j > i0 + q) sc[q][j] = -(REAL)INFINITY;
        for (int q = 0; q < ADV_CPU_QB; ++q) {
            REAL *row = sc[q];
            // Lane-wise maxima vectorise (a scalar max reduction does not, because of NaN
            // semantics); the lanes are then reduced once.
            REAL lanes[L];
            for (int l = 0; l < L; ++l) lanes[l] = row[l];
            for (int j = L; j < ADV_CPU_KB; j += L)
                for (int l = 0; l < L; ++l) lanes[l] = row[j + l] > lanes[l] ? row[j + l] : lanes[l];
            REAL mb = lanes[0];
            for (int l = 1; l < L; ++l) mb = lanes[l] > mb ? lanes[l] : mb;
            if (mb == -(REAL)INFINITY) continue; // nothing in this block for this query
            REAL *sq = sl + q * L, *aq = al + q * e * L;
            if (mb > m[q]) {
                // One rescale per block: previous sums move to the new maximum.
                const REAL f = RESCALE(m[q], mb);
                for (int l = 0; l < L; ++l) sq[l] *= f;
                for (int64_t c = 0; c < e * L; ++c) aq[c] *= f;
                m[q] = mb;
            }
            const REAL mq = m[q];
            for (int j = 0; j < ADV_CPU_KB; ++j)
                row[j] = VEXP(row[j] - mq); // argument <= 0; -Inf gives exactly 0
            REAL part[L]; // local copy: no aliasing with row, stays in a register
            for (int l = 0; l < L; ++l) part[l] = sq[l];
            for (int j = 0; j < ADV_CPU_KB; j += L)
                for (int l = 0; l < L; ++l) part[l] += row[j + l];
            for (int l = 0; l < L; ++l) sq[l] = part[l];
            for (int64_t c = 0; c < e; ++c) {
                const REAL *wc = ks->wT + c * Mpad + j0;
                REAL *ac = aq + c * L;
                for (int l = 0; l < L; ++l) part[l] = ac[l];
                for (int j = 0; j < ADV_CPU_KB; j += L)
                    for (int l = 0; l < L; ++l) part[l] += row[j + l] * wc[j + l];
                for (int l = 0; l < L; ++l) ac[l] = part[l];
            }
        }
    }
}

/* dst = dst (+) src for reduction states (m, s, acc[e]); the one merge used everywhere, so
 * every path folds segments with the same operations. */
static void FN(fold_state)(REAL *dst, const REAL *src, int64_t e) {
    REAL fa, fb;
    CAT(adv_merge_state, SFX)(&dst[0], &dst[1], src[0], src[1], &fa, &fb);
    for (int64_t c = 0; c < e; ++c) dst[2 + c] = fa * dst[2 + c] + fb * src[2 + c];
}

static REAL FN(sum_lanes)(const REAL *lanes) {
    REAL t = 0;
    for (int l = 0; l < ADV_CPU_LANES; ++l) t += lanes[l];
    return t;
}

/* Packs y (M x d) and w (M x e) of one batch entry transposed into d x Mpad and e x Mpad,
 * zero-padded, and beta into Mpad entries with -Inf padding. */
static void FN(pack_keys)(const REAL *y, const REAL *w, const REAL *beta, int64_t M, int64_t d,
                          int64_t e, int64_t Mpad, REAL *yT, REAL *wT, REAL *bp) {
#pragma omp for schedule(static)
    for (int64_t j = 0; j < Mpad; ++j) {
        const int in = j < M;
        for (int64_t k = 0; k < d; ++k) yT[k * Mpad + j] = in ? y[j * d + k] : 0;
        if (wT)
            for (int64_t c = 0; c < e; ++c) wT[c * Mpad + j] = in ? w[j * e + c] : 0;
        bp[j] = in ? (beta ? beta[j] : 0) : -(REAL)INFINITY;
    }
}

static adv_status FN(cpu_interaction)(adv_context *ctx, const adv_interaction_desc *desc,
                                      const REAL *x, const REAL *y, const REAL *beta,
                                      const REAL *w, REAL *lse, REAL *out) {
    const int64_t B = desc->batch, N = desc->n_queries, M = desc->n_keys, d = desc->dim;
    const int64_t e = out ? desc->value_dim : 0; // values are only needed for out
    const int64_t nkb = (M + ADV_CPU_KB - 1) / ADV_CPU_KB, Mpad = nkb * ADV_CPU_KB;
    const int64_t ngroups = (N + ADV_CPU_QB - 1) / ADV_CPU_QB;
    // Small problems run on fewer threads: waking a team costs more than ~1e5 pairs of work.
    const double work = (double)B * (double)N * (double)M * (double)(d + e + 8);
    int threads = advi_cpu_threads(ctx);
    if (work < 2e6 * threads) threads = work < 2e6 ? 1 : (int)(work / 2e6);
    // Keys are reduced in fixed segments of ADV_CPU_SEG_BLOCKS blocks, each from a fresh
    // state, and segment states are folded left to right. The reduction order therefore
    // depends on M only: results are bitwise identical for any thread count, any N (so any
    // chunking of the queries by a caller) and whether or not segments run on different
    // threads. Segments go to different threads when query groups are too few.
    const int64_t nseg = (nkb + ADV_CPU_SEG_BLOCKS - 1) / ADV_CPU_SEG_BLOCKS;
    const int split = ngroups < 4 * (int64_t)threads && nseg > 1 && !desc->causal;
    const int64_t stored = split ? nseg : 1; // segment states kept per query
    const int64_t state = 2 + e;             // m, s, acc[e]
    const int pack_values = e > 0 && !desc->values_are_keys;

    size_t bytes_keys = (size_t)Mpad * (size_t)(d + (pack_values ? e : 0) + 1) * sizeof(REAL);
    size_t bytes_states = (size_t)(ngroups * ADV_CPU_QB) * (size_t)stored * (size_t)state * sizeof(REAL);
    const size_t per_thread =
        (size_t)ADV_CPU_QB * (size_t)(d + 1 + (1 + e) * ADV_CPU_LANES + state);
    size_t bytes_scratch = (size_t)threads * per_thread * sizeof(REAL);
    REAL *keys = advi_host_alloc(ctx, bytes_keys);
    REAL *states = advi_host_alloc(ctx, bytes_states);
    REAL *scratch = advi_host_alloc(ctx, bytes_scratch);
    if (!keys || !states || !scratch) {
        advi_host_free(ctx, keys);
        advi_host_free(ctx, states);
        advi_host_free(ctx, scratch);
        return advi_fail(ctx, ADV_ERR_OUT_OF_MEMORY, "CPU interaction workspace (%zu bytes)",
                         bytes_keys + bytes_states + bytes_scratch);
    }
    REAL *yT = keys, *bp = keys + Mpad * d, *wT = pack_values ? bp + Mpad : yT;
    const REAL gamma = desc->kernel == ADV_KERNEL_SQDIST ? (REAL)desc->gamma : (REAL)1;
    FN(keyset) ks = {desc->kernel == ADV_KERNEL_DOT, desc->causal, d, e, Mpad,
                     (REAL)desc->lambda, yT, wT, bp};
    const int64_t items = split ? ngroups * nseg : ngroups;

    for (int64_t b = 0; b < B; ++b) {
        const REAL *xb = x + b * N * d, *yb = y + b * M * d;
        const REAL *wb = w ? w + b * M * desc->value_dim : NULL;
        const REAL *betab = beta ? beta + b * M : NULL;
#pragma omp parallel num_threads(threads)
        {
            FN(pack_keys)(yb, pack_values ? wb : NULL, betab, M, d, e, Mpad, yT,
                          pack_values ? wT : NULL, bp);
            // (implicit barrier after the omp for in pack_keys)
            REAL *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
            REAL *xg = mine, *m = mine + ADV_CPU_QB * d, *sl = m + ADV_CPU_QB,
                 *al = sl + ADV_CPU_QB * ADV_CPU_LANES, *seg_state = al + ADV_CPU_QB * e * ADV_CPU_LANES;
#pragma omp for schedule(dynamic, 1)
            for (int64_t item = 0; item < items; ++item) {
                const int64_t g = split ? item / nseg : item;
                const int64_t i0 = g * ADV_CPU_QB;
                for (int q = 0; q < ADV_CPU_QB; ++q) {
                    const int64_t i = i0 + q < N ? i0 + q : N - 1;
                    for (int64_t k = 0; k < d; ++k) xg[q * d + k] = gamma * xb[i * d + k];
                }
                const int64_t seg_first = split ? item % nseg : 0;
                const int64_t seg_last = split ? seg_first + 1 : nseg;
                for (int64_t sg = seg_first; sg < seg_last; ++sg) {
                    const int64_t kb0 = sg * ADV_CPU_SEG_BLOCKS;
                    if (desc->causal && kb0 * ADV_CPU_KB > i0 + ADV_CPU_QB - 1) break;
                    const int64_t kb1 = kb0 + ADV_CPU_SEG_BLOCKS < nkb ? kb0 + ADV_CPU_SEG_BLOCKS : nkb;
                    for (int q = 0; q < ADV_CPU_QB; ++q) m[q] = -(REAL)INFINITY;
                    for (int64_t c = 0; c < ADV_CPU_QB * ADV_CPU_LANES; ++c) sl[c] = 0;
                    for (int64_t c = 0; c < ADV_CPU_QB * e * ADV_CPU_LANES; ++c) al[c] = 0;
                    FN(process_group)(&ks, xg, i0, kb0, kb1, m, sl, al);
                    for (int q = 0; q < ADV_CPU_QB; ++q) {
                        REAL *st = split ? states + ((i0 + q) * nseg + sg) * state : seg_state;
                        st[0] = m[q];
                        st[1] = FN(sum_lanes)(sl + q * ADV_CPU_LANES);
                        for (int64_t c = 0; c < e; ++c)
                            st[2 + c] = FN(sum_lanes)(al + (q * e + c) * ADV_CPU_LANES);
                        if (split) continue;
                        REAL *run = states + (i0 + q) * state; // fold into the running state
                        if (sg == 0)
                            for (int64_t c = 0; c < state; ++c) run[c] = st[c];
                        else
                            FN(fold_state)(run, st, e);
                    }
                }
            }
            // Fold the segment states of each query (split case) and normalise.
#pragma omp for schedule(static)
            for (int64_t i = 0; i < N; ++i) {
                REAL *st0 = states + i * stored * state;
                for (int64_t sg = 1; sg < stored; ++sg) FN(fold_state)(st0, st0 + sg * state, e);
                if (lse) lse[b * N + i] = CAT(adv_lse_finalize, SFX)(st0[0], st0[1]);
                for (int64_t c = 0; c < e; ++c)
                    out[(b * N + i) * e + c] = CAT(adv_out_finalize, SFX)(st0[2 + c], st0[1]);
            }
        }
    }
    advi_host_free(ctx, keys);
    advi_host_free(ctx, states);
    advi_host_free(ctx, scratch);
    return ADV_OK;
}

#undef FN
#undef VEXP
#undef RESCALE
