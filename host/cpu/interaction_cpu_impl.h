/* CPU interaction sum, written once and included twice by interaction_cpu.c with
 * REAL/VEC/IVEC = float or double scalars/vectors and SFX = f32/f64. Keys (and values) of one
 * batch entry are packed block-major and padded to whole key blocks (padding has
 * beta = -Inf), so the inner loops run over contiguous keys with explicit vectors. Work items
 * are tiles of query groups sweeping the key segments (or one group and one segment when
 * queries are few); each segment gives a reduction state (m, s, acc) per query, folded in
 * segment order, then normalised. Memory: O(M (d + e)) packed keys + O(N S (e + 2)) states;
 * never N x M. */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define VEXPV CAT(adv_vexpv, SFX)
#define VEXP_ZERO_BELOW CAT(ADV_VEXP_ZERO_BELOW, SFX)

/* Explicit vectors of VL lanes (one 64-byte register on AVX-512). Loads and stores go
 * through memcpy: no alignment assumption, no aliasing violation, one vmovups. */
#define VL ((int)(64 / sizeof(REAL)))

static inline __attribute__((always_inline)) VEC FN(vload)(const REAL *p) {
    VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void FN(vstore)(REAL *p, VEC v) {
    memcpy(p, &v, sizeof v);
}
static inline __attribute__((always_inline)) VEC FN(vmax)(VEC a, VEC b) {
    const IVEC gt = a > b;
    return (VEC)(((IVEC)a & gt) | ((IVEC)b & ~gt));
}
/* Maximum over the lanes: log2(VL) butterfly steps (lane l meets lane l ^ h) instead of a
 * scalar chain, which costs as much as a key block's worth of max operations. */
static inline __attribute__((always_inline)) REAL FN(hmax)(VEC v) {
#if defined(__clang__)
    REAL m = v[0];
    for (int l = 1; l < VL; ++l) m = v[l] > m ? v[l] : m;
    return m;
#else
    static const IVEC partners[] = LANE_PARTNERS; // lane l ^ h for h = VL/2, ..., 1
    for (size_t h = 0; h < sizeof partners / sizeof partners[0]; ++h)
        v = FN(vmax)(v, __builtin_shuffle(v, partners[h]));
    return v[0];
#endif
}

typedef struct {
    int dot, causal;
    int rows;               /* per-query key scale and λ (SCORE_ROWS) */
    int64_t d, e, ep;       /* ep: value row length of the row-major packing (gemm) */
    int gemm;               /* values accumulated row-major (e > ADV_CPU_LANE_VALUES) */
    REAL lambda;            /* SCORE_DOT: the dot-product scale (2λ for expanded SQDIST) */
    const REAL *yT, *bp; /* packed keys (block-major, see pack_keys), log-weights (Mpad) */
    const REAL *wT;      /* values, block-major like the keys, when !gemm */
    const REAL *wR;      /* values row-major (Mpad x ep, zero padded) when gemm */
} FN(keyset);

/* Distances (SQDIST; SCORE_ROWS: |x_q - a_q y|^2 with a per-query key scale, one FMA per
 * difference) or dot products of the QB queries with KV vectors of keys (yT: the first key's
 * coordinate 0, row stride KB) into a[q][v]. KV key vectors give KV·QB independent FMA
 * chains, enough to hide the FMA latency. */
static inline __attribute__((always_inline)) void FN(pair_scores)(
    int mode, int64_t D, const REAL *restrict xg, const REAL *restrict ra,
    const REAL *restrict yT, VEC a[ADV_CPU_QB][ADV_CPU_KV]) {
    for (int q = 0; q < ADV_CPU_QB; ++q)
        for (int v = 0; v < ADV_CPU_KV; ++v) a[q][v] = (VEC){0};
    for (int64_t k = 0; k < D; ++k) {
        VEC yv[ADV_CPU_KV];
        for (int v = 0; v < ADV_CPU_KV; ++v) yv[v] = FN(vload)(yT + k * ADV_CPU_KB + v * VL);
        for (int q = 0; q < ADV_CPU_QB; ++q) {
            const REAL c = xg[q * D + k];
            for (int v = 0; v < ADV_CPU_KV; ++v) {
                if (mode == SCORE_DOT) {
                    a[q][v] += c * yv[v];
                } else {
                    const VEC t = mode == SCORE_ROWS ? c - ra[q] * yv[v] : c - yv[v];
                    a[q][v] += t * t;
                }
            }
        }
    }
}

/* Scores of the QB queries against one key block into sc[q][j], with the lane-wise maxima
 * in mx[q]. Keys are taken 2·VL at a time with the accumulators in registers and the
 * coordinates looped inside, so each key coordinate is loaded once for QB queries. SQDIST
 * uses direct differences (exact for any λ); D is a compile-time constant for small
 * dimensions (the coordinate loop unrolls) or the runtime d. */
static inline __attribute__((always_inline)) void FN(block_scores)(
    const FN(keyset) *ks, int mode, int64_t D, const REAL *restrict xg,
    const REAL *restrict ra, const REAL *restrict rl, int64_t i0, int64_t j0,
    REAL (*restrict sc)[ADV_CPU_KB], VEC mx[ADV_CPU_QB]) {
    REAL sign[ADV_CPU_QB]; // score = beta + sign * (distance or dot product)
    _Static_assert(ADV_CPU_KB % (ADV_CPU_KV * 64 / sizeof(REAL)) == 0, "key block of whole chunks");
    for (int q = 0; q < ADV_CPU_QB; ++q)
        sign[q] = mode == SCORE_DOT ? ks->lambda : (mode == SCORE_ROWS ? -rl[q] : -ks->lambda);
    for (int q = 0; q < ADV_CPU_QB; ++q) mx[q] = (VEC){0} - (REAL)INFINITY;
    for (int ch = 0; ch < ADV_CPU_KB; ch += ADV_CPU_KV * VL) {
        VEC a[ADV_CPU_QB][ADV_CPU_KV];
        FN(pair_scores)(mode, D, xg, ra, ks->yT + j0 * D + ch, a);
        for (int v = 0; v < ADV_CPU_KV; ++v) {
            const VEC bv = FN(vload)(ks->bp + j0 + ch + v * VL);
            for (int q = 0; q < ADV_CPU_QB; ++q) a[q][v] = bv + sign[q] * a[q][v];
        }
        if (ks->causal && j0 + ch + ADV_CPU_KV * VL - 1 > i0)
            for (int q = 0; q < ADV_CPU_QB; ++q)
                for (int v = 0; v < ADV_CPU_KV; ++v)
                    for (int l = 0; l < VL; ++l)
                        if (j0 + ch + v * VL + l > i0 + q) a[q][v][l] = -(REAL)INFINITY;
        for (int q = 0; q < ADV_CPU_QB; ++q)
            for (int v = 0; v < ADV_CPU_KV; ++v) {
                FN(vstore)(sc[q] + ch + v * VL, a[q][v]);
                mx[q] = FN(vmax)(mx[q], a[q][v]);
            }
    }
}

/* Small e: softmax terms of one query, their sum and the E value sums in VL partial lanes
 * (lanes over keys; sums in registers, one pass over the scores). */
static inline __attribute__((always_inline)) void FN(accumulate_lanes)(
    int64_t E, const REAL *restrict row, REAL mq, const REAL *restrict wT,
    REAL *restrict sq, REAL *restrict aq) {
    VEC sum = FN(vload)(sq), acc[ADV_CPU_LANE_VALUES];
    for (int64_t c = 0; c < E; ++c) acc[c] = FN(vload)(aq + c * VL);
    const VEC mv = (VEC){0} + mq;
    for (int ch = 0; ch < ADV_CPU_KB; ch += VL) {
        const VEC p = VEXPV(FN(vload)(row + ch) - mv); // argument <= 0; -Inf gives 0
        sum += p;
        for (int64_t c = 0; c < E; ++c) acc[c] += p * FN(vload)(wT + c * ADV_CPU_KB + ch);
    }
    FN(vstore)(sq, sum);
    for (int64_t c = 0; c < E; ++c) FN(vstore)(aq + c * VL, acc[c]);
}

/* Large e: value sums as a small matrix product, acc[q][:] += p[q][j] * w[j][:], with lanes
 * over NV vectors of value components, so each value row is loaded once for QB queries and
 * needs no horizontal reduction. Even and odd keys go to separate accumulators (2·QB·NV
 * independent FMA chains) that start from zero for each block and are added to the running
 * sums at its end: chains of 128 terms, not of a whole segment, keep float32 sums accurate. */
static inline __attribute__((always_inline)) void FN(accumulate_rows)(
    int NV, REAL (*restrict sc)[ADV_CPU_KB], const REAL *restrict wR, int64_t ep,
    REAL *restrict al) {
    VEC even[ADV_CPU_QB][2], odd[ADV_CPU_QB][2];
    for (int q = 0; q < ADV_CPU_QB; ++q)
        for (int v = 0; v < NV; ++v) even[q][v] = odd[q][v] = (VEC){0};
    for (int j = 0; j < ADV_CPU_KB; j += 2) {
        const REAL *w0 = wR + j * ep, *w1 = w0 + ep;
        for (int v = 0; v < NV; ++v) {
            const VEC wa = FN(vload)(w0 + v * VL), wb = FN(vload)(w1 + v * VL);
            for (int q = 0; q < ADV_CPU_QB; ++q) {
                even[q][v] += sc[q][j] * wa;
                odd[q][v] += sc[q][j + 1] * wb;
            }
        }
    }
    for (int q = 0; q < ADV_CPU_QB; ++q)
        for (int v = 0; v < NV; ++v) {
            REAL *dst = al + q * ep + v * VL;
            FN(vstore)(dst, FN(vload)(dst) + (even[q][v] + odd[q][v]));
        }
}

/* Folds key blocks [kb0, kb1) into the states of queries i0..i0+QB-1 (xg: their QB x d
 * coordinates, already scaled by gamma; rows past the end duplicate the last query).
 * Softmax sums are kept in VL partial lanes (sl: QB x VL); value sums in lanes too (al:
 * QB x e x VL) for small e, or per component (al: QB x ep) for large e. The caller reduces
 * the lanes once per segment. */
ADVI_CPU_CLONES static void FN(process_group)(const FN(keyset) *ks, const REAL *restrict xg,
                                             const REAL *restrict ra, const REAL *restrict rl,
                                             int64_t i0, int64_t kb0, int64_t kb1, REAL *m,
                                             REAL *restrict sl, REAL *restrict al) {
    REAL sc[ADV_CPU_QB][ADV_CPU_KB] __attribute__((aligned(64)));
    const int64_t d = ks->d, e = ks->e, ep = ks->ep;
    const int64_t value_stride = ks->gemm ? ep : e * VL; // al entries per query
    for (int64_t kb = kb0; kb < kb1; ++kb) {
        const int64_t j0 = kb * ADV_CPU_KB;
        if (ks->causal && j0 > i0 + ADV_CPU_QB - 1) break; // every later key is masked
        VEC mx[ADV_CPU_QB];
        // Constant d (common sizes) lets the compiler unroll the coordinate loop; the kernel
        // choice is hoisted out of the inner loops the same way.
        if (ks->dot) {
            switch (d) {
            case 2: FN(block_scores)(ks, SCORE_DOT, 2, xg, ra, rl, i0, j0, sc, mx); break;
            case 16: FN(block_scores)(ks, SCORE_DOT, 16, xg, ra, rl, i0, j0, sc, mx); break;
            case 64: FN(block_scores)(ks, SCORE_DOT, 64, xg, ra, rl, i0, j0, sc, mx); break;
            default: FN(block_scores)(ks, SCORE_DOT, d, xg, ra, rl, i0, j0, sc, mx); break;
            }
        } else if (ks->rows) {
            switch (d) {
            case 2: FN(block_scores)(ks, SCORE_ROWS, 2, xg, ra, rl, i0, j0, sc, mx); break;
            case 3: FN(block_scores)(ks, SCORE_ROWS, 3, xg, ra, rl, i0, j0, sc, mx); break;
            default: FN(block_scores)(ks, SCORE_ROWS, d, xg, ra, rl, i0, j0, sc, mx); break;
            }
        } else {
            switch (d) {
            case 1: FN(block_scores)(ks, SCORE_SQDIST, 1, xg, ra, rl, i0, j0, sc, mx); break;
            case 2: FN(block_scores)(ks, SCORE_SQDIST, 2, xg, ra, rl, i0, j0, sc, mx); break;
            case 3: FN(block_scores)(ks, SCORE_SQDIST, 3, xg, ra, rl, i0, j0, sc, mx); break;
            case 4: FN(block_scores)(ks, SCORE_SQDIST, 4, xg, ra, rl, i0, j0, sc, mx); break;
            case 8: FN(block_scores)(ks, SCORE_SQDIST, 8, xg, ra, rl, i0, j0, sc, mx); break;
            case 16: FN(block_scores)(ks, SCORE_SQDIST, 16, xg, ra, rl, i0, j0, sc, mx); break;
            case 32: FN(block_scores)(ks, SCORE_SQDIST, 32, xg, ra, rl, i0, j0, sc, mx); break;
            case 64: FN(block_scores)(ks, SCORE_SQDIST, 64, xg, ra, rl, i0, j0, sc, mx); break;
            default: FN(block_scores)(ks, SCORE_SQDIST, d, xg, ra, rl, i0, j0, sc, mx); break;
            }
        }
        int live[ADV_CPU_QB], grows = 0;
        VEC shift = (VEC){0}; // lane q: m_old - m_new <= 0 (-Inf when nothing was summed yet)
        for (int q = 0; q < ADV_CPU_QB; ++q) {
            const REAL mb = FN(hmax)(mx[q]);
            // Nothing to add when every score is -Inf, or when every term exp(s - m) would be
            // exactly 0 (s - m <= mb - m is below the vector exp's zero threshold): skipping is
            // then bitwise the same as summing zeros (large λ: sampling near t = 1).
            live[q] = mb != -(REAL)INFINITY && !(mb - m[q] < VEXP_ZERO_BELOW);
            if (live[q] && mb > m[q]) {
                shift[q] = m[q] - mb;
                m[q] = mb;
                grows = 1;
            }
        }
        if (grows) {
            // One rescale per block and query: previous sums move to the new maximum. The QB
            // factors come from one vector exp (exp(-Inf) = 0, exp(0) = 1 for the others).
            const VEC f = VEXPV(shift);
            for (int q = 0; q < ADV_CPU_QB; ++q) {
                if (shift[q] == 0) continue;
                REAL *sq = sl + q * VL, *aq = al + q * value_stride;
                for (int l = 0; l < VL; ++l) sq[l] *= f[q];
                for (int64_t c = 0; c < value_stride; ++c) aq[c] *= f[q];
            }
        }
        if (!ks->gemm) {
            const REAL *wT = ks->wT + j0 * e;
            for (int q = 0; q < ADV_CPU_QB; ++q) {
                if (!live[q]) continue;
                REAL *sq = sl + q * VL, *aq = al + q * value_stride;
                switch (e) {
                case 0: FN(accumulate_lanes)(0, sc[q], m[q], wT, sq, aq); break;
                case 1: FN(accumulate_lanes)(1, sc[q], m[q], wT, sq, aq); break;
                case 2: FN(accumulate_lanes)(2, sc[q], m[q], wT, sq, aq); break;
                case 3: FN(accumulate_lanes)(3, sc[q], m[q], wT, sq, aq); break;
                default: FN(accumulate_lanes)(4, sc[q], m[q], wT, sq, aq); break;
                }
            }
            continue;
        }
        // Large e: turn the scores into softmax terms in place (0 for a query with nothing
        // in this block), then one row-major product pass for all QB queries.
        for (int q = 0; q < ADV_CPU_QB; ++q) {
            REAL *row = sc[q];
            if (!live[q]) {
                for (int j = 0; j < ADV_CPU_KB; ++j) row[j] = 0;
                continue;
            }
            const VEC mv = (VEC){0} + m[q];
            VEC sum = FN(vload)(sl + q * VL);
            for (int ch = 0; ch < ADV_CPU_KB; ch += VL) {
                const VEC p = VEXPV(FN(vload)(row + ch) - mv);
                FN(vstore)(row + ch, p);
                sum += p;
            }
            FN(vstore)(sl + q * VL, sum);
        }
        const REAL *wR = ks->wR + j0 * ep;
        for (int64_t c0 = 0; c0 < ep; c0 += 2 * VL) {
            switch ((ep - c0) / VL) { // at most 2 vectors: 2·QB·NV accumulators in registers
            case 1: FN(accumulate_rows)(1, sc, wR + c0, ep, al + c0); break;
            default: FN(accumulate_rows)(2, sc, wR + c0, ep, al + c0); break;
            }
        }
    }
}

/* Query coordinate k as the score loops take it: γx, or γx - c_k for expanded SQDIST (the lse
 * correction recomputes it with this same function). */
static inline REAL FN(query_coord)(REAL x, REAL gamma, const REAL *center, int64_t k) {
    const REAL gx = gamma * x;
    return center ? gx - center[k] : gx;
}

/* dst = dst (+) src for reduction states (m, s, acc[e]); the one merge used everywhere, so
 * every path folds segments with the same operations. */
static void FN(fold_state)(REAL *dst, const REAL *src, int64_t e) {
    REAL fa, fb;
    CAT(adv_merge_state, SFX)(&dst[0], &dst[1], src[0], src[1], &fa, &fb);
    for (int64_t c = 0; c < e; ++c)
        dst[2 + c] = CAT(adv_merge_acc, SFX)(fa, dst[2 + c], fb, src[2 + c]);
}

static REAL FN(sum_lanes)(const REAL *lanes) {
    REAL t = 0;
    for (int l = 0; l < VL; ++l) t += lanes[l];
    return t;
}

/* Packs y (M x d) of one batch entry block-major: block kb holds its KB keys as d rows of KB
 * coordinates (key j, coordinate k at (j/KB·d + k)·KB + j%KB), so the score loops read one
 * contiguous stretch per block (a transposed d x Mpad layout would put the d rows of a block
 * a power-of-two stride apart, all in the same L1 set). beta goes into Mpad entries with -Inf
 * padding; when wT/wR is given, w (M x e) is packed block-major the same way or row-major into
 * Mpad x ep. Padding is zero. With a center c (expanded SQDIST, see expand_sqdist), keys are
 * packed as y - c and the log-weights as beta - λ |y - c|^2. */
static void FN(pack_keys)(const REAL *y, const REAL *w, const REAL *beta, int64_t M, int64_t d,
                          int64_t e, int64_t ep, int64_t Mpad, const REAL *center, REAL lambda,
                          REAL *yT, REAL *wT, REAL *wR, REAL *bp) {
#pragma omp for schedule(static)
    for (int64_t j = 0; j < Mpad; ++j) {
        const int in = j < M;
        const int64_t blk = j / ADV_CPU_KB, jj = j % ADV_CPU_KB;
        double norm2 = 0; // |y - c|^2 in double: one rounding in the packed log-weight
        for (int64_t k = 0; k < d; ++k) {
            const REAL yk = in ? (center ? y[j * d + k] - center[k] : y[j * d + k]) : 0;
            yT[(blk * d + k) * ADV_CPU_KB + jj] = yk;
            norm2 += (double)yk * (double)yk;
        }
        if (wT)
            for (int64_t c = 0; c < e; ++c)
                wT[(blk * e + c) * ADV_CPU_KB + jj] = in ? w[j * e + c] : 0;
        if (wR)
            for (int64_t c = 0; c < ep; ++c) wR[j * ep + c] = in && c < e ? w[j * e + c] : 0;
        const double b = in && beta ? (double)beta[j] : 0;
        bp[j] = in ? (REAL)(center ? b - (double)lambda * norm2 : b) : -(REAL)INFINITY;
    }
}

/* Large d: SQDIST by the expansion |x - y|^2 = |x - c|^2 - 2<x - c, y - c> + |y - c|^2, one FMA
 * per coordinate instead of a difference and an FMA (~20 % faster at d = 16 and 64). The
 * query term |x - c|^2 is the same for every key, so it leaves the softmax and only shifts lse.
 * Its rounding error, a few d u λ (|x - c|^2 + |y - c|^2), does not shrink with the distance
 * as that of direct differences does; it is taken only when it is harmless: c is the centre of
 * the keys' bounding box (translation invariance, so data far from the origin loses nothing),
 * and λ R^2 <= ADV_CPU_EXPAND_MAX_RANGE with R the keys' largest |y - c|. Then the extra score
 * error is at most ~6 d u λ R^2 (plus a multiple of the direct error for distant queries),
 * no more than the d u·87 that direct differences already carry on the terms down to e^-87
 * that make up the softmax. Large λ (sampling near t = 1) keeps direct differences. The
 * choice depends on the keys and λ only, never on the queries: rows stay independent of the
 * call. For SQDIST with d >= ADV_CPU_EXPAND_MIN_DIM (the caller's may_expand): fills center
 * (d entries; lo is d entries of scratch) and returns 1 when the expansion is taken. */
static int FN(expand_sqdist)(const adv_interaction_desc *desc, const REAL *y, int threads,
                             REAL *center, REAL *lo) {
    const int64_t M = desc->n_keys, d = desc->dim;
    REAL *hi = center; // the upper corner, then the centre in place
    for (int64_t k = 0; k < d; ++k) lo[k] = hi[k] = y[k];
    const int par = (double)M * (double)d > 1e5; // two passes over the keys, threaded when long
#pragma omp parallel for num_threads(threads) if (par) reduction(min : lo[:d]) reduction(max : hi[:d])
    for (int64_t j = 1; j < M; ++j)
        for (int64_t k = 0; k < d; ++k) {
            const REAL v = y[j * d + k];
            lo[k] = v < lo[k] ? v : lo[k];
            hi[k] = v > hi[k] ? v : hi[k];
        }
    for (int64_t k = 0; k < d; ++k) center[k] = (REAL)(0.5 * ((double)lo[k] + (double)hi[k]));
    double r2 = 0;
    int finite = 1;
#pragma omp parallel for num_threads(threads) if (par) reduction(max : r2) reduction(&& : finite)
    for (int64_t j = 0; j < M; ++j) {
        double n2 = 0;
        for (int64_t k = 0; k < d; ++k) {
            const double t = (double)y[j * d + k] - (double)center[k];
            n2 += t * t;
        }
        r2 = n2 > r2 ? n2 : r2;
        finite = finite && isfinite(n2);
    }
    // Non-finite keys (finiteness check off) keep direct differences.
    return finite && fabs(desc->lambda) * r2 <= ADV_CPU_EXPAND_MAX_RANGE;
}

/* row_a, row_lambda (B x N, or both NULL): SQDIST with a per-query key scale and λ,
 * s_ij = beta_j - row_lambda_i |x_i - row_a_i y_j|^2 (desc->lambda and gamma unused). */
static adv_status FN(cpu_interaction)(adv_context *ctx, const adv_interaction_desc *desc,
                                      const REAL *x, const REAL *y, const REAL *beta,
                                      const REAL *w, const double *row_a,
                                      const double *row_lambda, REAL *lse, REAL *out) {
    const int64_t B = desc->batch, N = desc->n_queries, M = desc->n_keys, d = desc->dim;
    const int64_t e = out ? desc->value_dim : 0; // values are only needed for out
    const int64_t nkb = (M + ADV_CPU_KB - 1) / ADV_CPU_KB, Mpad = nkb * ADV_CPU_KB;
    const int64_t ngroups = (N + ADV_CPU_QB - 1) / ADV_CPU_QB;
    // Small problems run on fewer threads: waking a team costs more than ~1e5 pairs of work.
    const double work = (double)B * (double)N * (double)M * (double)(d + e + 8);
    int threads = advi_cpu_threads(ctx);
    if (work < 2e6 * threads) threads = work < 2e6 ? 1 : (int)(work / 2e6);
    // Keys are reduced in fixed segments of seg_blocks blocks, each from a fresh
    // state, and segment states are folded left to right. The reduction order therefore
    // depends on M and d only: results are bitwise identical for any thread count, any N (so any
    // chunking of the queries by a caller) and whether or not segments run on different
    // threads. Segments go to different threads when query groups are too few.
    const int64_t seg_blocks = (d <= 16 ? ADV_CPU_SEG_KEYS_LOW_D : ADV_CPU_SEG_KEYS) / ADV_CPU_KB;
    const int64_t nseg = (nkb + seg_blocks - 1) / seg_blocks;
    const int split = ngroups < 4 * (int64_t)threads && nseg > 1 && !desc->causal;
    const int64_t stored = split ? nseg : 1; // segment states kept per query
    const int64_t state = 2 + e;             // m, s, acc[e]
    // Values: up to ADV_CPU_LANE_VALUES components are summed in lanes over keys from a
    // transposed copy (the keys themselves when values are keys); more are summed per
    // component from a row-major copy padded to whole vectors.
    const int gemm = e > ADV_CPU_LANE_VALUES;
    const int64_t ep = gemm ? (e + VL - 1) / VL * VL : 0;
    const int rows = row_a != NULL;
    const int may_expand = !rows && desc->kernel == ADV_KERNEL_SQDIST && d >= ADV_CPU_EXPAND_MIN_DIM;
    // Values that are keys are read from the packed keys, unless those may be centred.
    const int pack_transposed = e > 0 && !gemm && (!desc->values_are_keys || may_expand);
    const int64_t value_stride = gemm ? ep : e * VL; // value sums per query in scratch

    size_t bytes_keys =
        ((size_t)Mpad * (size_t)(d + (pack_transposed ? e : 0) + ep + 1) + 2 * (size_t)d) * sizeof(REAL);
    size_t bytes_states = (size_t)(ngroups * ADV_CPU_QB) * (size_t)stored * (size_t)state * sizeof(REAL);
    const size_t per_thread =
        (size_t)ADV_CPU_QB * (size_t)(d + 3 + VL + value_stride + state);
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
    REAL *yT = keys, *bp = keys + Mpad * d, *extra = bp + Mpad;
    REAL *wT = pack_transposed ? extra : yT, *wR = gemm ? extra : NULL;
    REAL *center = extra + Mpad * ((pack_transposed ? e : 0) + ep); // d entries, then d scratch
    const REAL gamma = desc->kernel == ADV_KERNEL_SQDIST ? (REAL)desc->gamma : (REAL)1;
    FN(keyset) ks = {desc->kernel == ADV_KERNEL_DOT, desc->causal, rows, d, e, ep, gemm,
                     (REAL)desc->lambda, yT, bp, wT, wR};
    // Without the split, a work item is a tile of consecutive query groups that sweep the
    // segments together, so a segment's keys and values (seg_blocks blocks, sized to
    // stay in L2) are read from cache by every group of the tile instead of streaming from
    // memory once per group. The tile stays small enough to leave work for every thread.
    int64_t tile = split ? 1 : ngroups / (4 * (int64_t)threads);
    tile = tile < 1 ? 1 : (tile > ADV_CPU_TILE_GROUPS ? ADV_CPU_TILE_GROUPS : tile);
    const int64_t items = split ? ngroups * nseg : (ngroups + tile - 1) / tile;

    for (int64_t b = 0; b < B; ++b) {
        const REAL *xb = x + b * N * d, *yb = y + b * M * d;
        const REAL *wb = w ? w + b * M * desc->value_dim : NULL;
        const REAL *betab = beta ? beta + b * M : NULL;
        // Expanded SQDIST (per batch entry: it depends on the entry's keys) runs as a DOT
        // score with scale 2λ against centred keys; queries are centred below.
        const int expand = may_expand && FN(expand_sqdist)(desc, yb, threads, center, center + d);
        ks.dot = desc->kernel == ADV_KERNEL_DOT || expand;
        ks.lambda = (REAL)(expand ? 2 * desc->lambda : desc->lambda);
#pragma omp parallel num_threads(threads)
        {
            FN(pack_keys)(yb, desc->values_are_keys ? yb : wb, betab, M, d, e, ep, Mpad,
                          expand ? center : NULL, (REAL)desc->lambda, yT,
                          pack_transposed ? wT : NULL, wR, bp);
            // (implicit barrier after the omp for in pack_keys)
            REAL *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
            REAL *xg = mine, *m = mine + ADV_CPU_QB * d, *sl = m + ADV_CPU_QB,
                 *al = sl + ADV_CPU_QB * VL, *seg_state = al + ADV_CPU_QB * value_stride,
                 *ra = seg_state + state, *rl = ra + ADV_CPU_QB; // per-query a and λ (rows)
#pragma omp for schedule(dynamic, 1)
            for (int64_t item = 0; item < items; ++item) {
                const int64_t g_first = split ? item / nseg : item * tile;
                const int64_t g_last = g_first + tile < ngroups ? g_first + tile : ngroups;
                const int64_t seg_first = split ? item % nseg : 0;
                const int64_t seg_last = split ? seg_first + 1 : nseg;
                for (int64_t sg = seg_first; sg < seg_last; ++sg) {
                    const int64_t kb0 = sg * seg_blocks;
                    const int64_t kb1 = kb0 + seg_blocks < nkb ? kb0 + seg_blocks : nkb;
                    for (int64_t g = g_first; g < g_last; ++g) {
                        const int64_t i0 = g * ADV_CPU_QB;
                        if (desc->causal && kb0 * ADV_CPU_KB > i0 + ADV_CPU_QB - 1) continue;
                        for (int q = 0; q < ADV_CPU_QB; ++q) {
                            const int64_t i = i0 + q < N ? i0 + q : N - 1;
                            for (int64_t k = 0; k < d; ++k)
                                xg[q * d + k] = FN(query_coord)(xb[i * d + k], rows ? 1 : gamma,
                                                                expand ? center : NULL, k);
                            if (rows) {
                                ra[q] = (REAL)row_a[b * N + i];
                                rl[q] = (REAL)row_lambda[b * N + i];
                            }
                            m[q] = -(REAL)INFINITY;
                        }
                        for (int64_t c = 0; c < ADV_CPU_QB * VL; ++c) sl[c] = 0;
                        for (int64_t c = 0; c < ADV_CPU_QB * value_stride; ++c) al[c] = 0;
                        FN(process_group)(&ks, xg, ra, rl, i0, kb0, kb1, m, sl, al);
                        for (int q = 0; q < ADV_CPU_QB; ++q) {
                            REAL *st = split ? states + ((i0 + q) * nseg + sg) * state : seg_state;
                            st[0] = m[q];
                            st[1] = FN(sum_lanes)(sl + q * VL);
                            for (int64_t c = 0; c < e; ++c)
                                st[2 + c] = gemm ? al[q * ep + c]
                                                 : FN(sum_lanes)(al + (q * e + c) * VL);
                            if (split) continue;
                            REAL *run = states + (i0 + q) * state; // fold into the running state
                            if (sg == 0)
                                for (int64_t c = 0; c < state; ++c) run[c] = st[c];
                            else
                                FN(fold_state)(run, st, e);
                        }
                    }
                }
            }
            // Fold the segment states of each query (split case) and normalise.
#pragma omp for schedule(static)
            for (int64_t i = 0; i < N; ++i) {
                REAL *st0 = states + i * stored * state;
                for (int64_t sg = 1; sg < stored; ++sg) FN(fold_state)(st0, st0 + sg * state, e);
                if (lse) {
                    REAL v = CAT(adv_lse_finalize, SFX)(st0[0], st0[1]);
                    if (expand) { // the query term -λ |γx - c|^2 left out of the scores
                        double n2 = 0;
                        for (int64_t k = 0; k < d; ++k) {
                            const double t = FN(query_coord)(xb[i * d + k], gamma, center, k);
                            n2 += t * t;
                        }
                        v = (REAL)((double)v - desc->lambda * n2);
                    }
                    lse[b * N + i] = v;
                }
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
#undef VEXPV
#undef VEXP_ZERO_BELOW
#undef VL
