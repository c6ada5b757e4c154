/* CPU backend of the interaction sum (spec math.md §1): blocked over keys, OpenMP over
 * tiles of query groups (and key segments when queries are few), QB queries per key load,
 * one rescale per key block, and a vector exp (cpu/vexp.h). Also the internal per-row SQDIST
 * mode of the empirical field at per-particle times. The float and double versions are the
 * same code (interaction_cpu_impl.h included twice); hot loops are compiled for x86-64-v4
 * (AVX-512), x86-64-v3 (AVX2+FMA) and baseline x86-64 and chosen at load time. */
#include "internal.h"
#include "sampling_internal.h"
#include "common/interaction_math.h"
#include "cpu/vexp.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define ADV_CPU_QB 4   /* queries per register block */
#define ADV_CPU_KV 4   /* key vectors per register block of scores */
#define ADV_CPU_KB 512 /* keys per block: scores of QB queries stay in L1 */
#define ADV_CPU_LANE_VALUES 4 /* value dims summed in lanes over keys; more: per component */
/* Keys per segment, the fixed unit of the reduction order: whole blocks that stay in L2 with
 * their values while a tile of query groups sweeps them (at most ~1 MB with e = d). Low
 * dimensions take longer segments: fewer segment merges per query. */
#define ADV_CPU_SEG_KEYS_LOW_D 4096 /* d <= 16 */
#define ADV_CPU_SEG_KEYS 2048
#define ADV_CPU_TILE_GROUPS 16 /* query groups sweeping the key segments together */
/* SQDIST by the centred expansion (one FMA per coordinate) from this dimension on, when
 * λ R^2 <= ADV_CPU_EXPAND_MAX_RANGE for the keys' radius R (see expand_sqdist): below it the
 * difference costs little next to the exp. */
#define ADV_CPU_EXPAND_MIN_DIM 16
#define ADV_CPU_EXPAND_MAX_RANGE 16.0

enum { SCORE_SQDIST, SCORE_DOT, SCORE_ROWS }; /* score kinds of the inner loops */

#define REAL float
#define VEC adv_vf32
#define IVEC adv_vi32
#define LANE_PARTNERS                                                                             \
    {{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7},                                     \
     {4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11},                                     \
     {2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13},                                     \
     {1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14}}
#define SFX f32
#include "cpu/interaction_cpu_impl.h"
#undef REAL
#undef VEC
#undef IVEC
#undef LANE_PARTNERS
#undef SFX

#define REAL double
#define VEC adv_vf64
#define IVEC adv_vi64
#define LANE_PARTNERS                                                                             \
    {{4, 5, 6, 7, 0, 1, 2, 3}, {2, 3, 0, 1, 6, 7, 4, 5}, {1, 0, 3, 2, 5, 4, 7, 6}}
#define SFX f64
#include "cpu/interaction_cpu_impl.h"
#undef REAL
#undef VEC
#undef IVEC
#undef LANE_PARTNERS
#undef SFX

adv_status advi_cpu_interaction(adv_context *ctx, const adv_interaction_desc *desc,
                                const void *x, const void *y, const void *beta, const void *w,
                                void *lse, void *out) {
    if (desc->precision == ADV_FLOAT64)
        return cpu_interaction_f64(ctx, desc, x, y, beta, w, NULL, NULL, lse, out);
    return cpu_interaction_f32(ctx, desc, x, y, beta, w, NULL, NULL, lse, out);
}

adv_status advi_cpu_interaction_rows(adv_context *ctx, const adv_interaction_desc *desc,
                                     const void *x, const void *y, const void *beta,
                                     const void *w, const double *row_a,
                                     const double *row_lambda, void *lse, void *out) {
    if (desc->precision == ADV_FLOAT64)
        return cpu_interaction_f64(ctx, desc, x, y, beta, w, row_a, row_lambda, lse, out);
    return cpu_interaction_f32(ctx, desc, x, y, beta, w, row_a, row_lambda, lse, out);
}
