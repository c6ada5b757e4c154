/* Private declarations of the sampling module (fields and samplers): the field structure,
 * the host linear-algebra helpers behind the Gaussian fields, and the table of elementwise
 * operations each backend provides (host/cpu/sampler_cpu.c, host/cuda/sampler_cuda.c). The
 * algorithms (host/field.c, host/sampler.c) are written once against this table; every array
 * argument of an operation is in the context's memory space. */
#ifndef ADVECT_HOST_SAMPLING_INTERNAL_H
#define ADVECT_HOST_SAMPLING_INTERNAL_H

#include "internal.h"

/* Elementwise operations over n particle rows of d values in the precision p. Arrays named
 * *vec are n doubles; `tmp` is device scratch (CUDA; NULL on the CPU, which uses per-thread
 * scratch) with a row stride of d doubles per particle for empirical_direct, 3d for sample and
 * 6d for gauss. */
typedef struct advi_sampling_ops {
    /* out = cb * base + s_i * sum_j c[j] * bufs[j], s_i = hvec ? hvec[i] : h; base may be
     * NULL; out may alias base or a buffer. nb <= ADVS_MAX_TERMS. */
    adv_status (*lincomb)(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *out,
                          double cb, const void *base, double h, const double *hvec, int nb,
                          const double *c, const void *const *bufs);
    /* out = alpha_i * base + beta_i * buf (per-particle coefficients). */
    adv_status (*lincomb_pp)(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *out,
                             const double *alpha, const void *base, const double *beta,
                             const void *buf);
    /* z += scale * xi(seed, first + i, step, stage, k). */
    adv_status (*add_noise)(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *z,
                            double scale, uint64_t seed, uint32_t stage, uint32_t step,
                            int64_t first);
    /* out[i] = scaled RMS norm of row i of x (advs_rms_row); y2 may be NULL. */
    adv_status (*rms_norm)(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                           const void *x, const void *y, const void *y2, double atol,
                           double rtol, double *out);
    /* For r < n with mask[r] != 0 (every r when mask is NULL): dst row dst_idx[r] = src row
     * src_idx[r]; a NULL index array stands for r itself (gathers, scatters, masked copies). */
    adv_status (*copy_rows)(adv_context *ctx, adv_precision p, int64_t n, int64_t d, void *dst,
                            const int64_t *dst_idx, const void *src, const int64_t *src_idx,
                            const unsigned char *mask);
    /* out[k] = a * in[k], k < count. */
    adv_status (*scale)(adv_context *ctx, adv_precision p, size_t count, void *out, double a,
                        const void *in);
    /* Empirical denoiser by the direct per-particle loop (advf_empirical_point): every row
     * with a common (a, q) past ADVI_LAMBDA_DIRECT, or with per-particle avec/qvec (non-NULL)
     * the rows whose qvec[i] is above q only (q = -1: every row; the others are untouched). */
    adv_status (*empirical_direct)(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                   const void *z, int64_t nd, const void *y, const void *logw,
                                   double a, double q, const double *avec, const double *qvec,
                                   void *den, double *tmp);
    /* Empirical denoiser at per-particle times through the interaction engine's per-row mode:
     * scores logw_j - qvec_i |z_i - avec_i y_j|^2 (every qvec_i finite), values y, for n rows.
     * `plan` is a field's plan (advi_empirical_desc) for at least n queries, whose other
     * sizes it takes. tmp: scratch as for empirical_direct (unused by both backends). */
    adv_status (*empirical_rows)(adv_interaction_plan *plan, int64_t n, const void *z,
                                 const void *y, const void *logw, const double *avec,
                                 const double *qvec, void *den, double *tmp);
    /* Per-particle-time coefficients for a built-in schedule (kind ADVF_LINEAR..ADVF_VE with
     * parameters p0, p1, see advf_schedule): column k of out (7 x n doubles) holds c[k] of
     * advf_time_coefs at times[i], with lambda_direct = ADVI_LAMBDA_DIRECT. */
    adv_status (*time_coefs)(adv_context *ctx, int64_t n, const double *times, int kind,
                             double p0, double p1, double sigma, double *out);
    /* Gaussian-family field (kind ADV_FIELD_GAUSSIAN / _OT / _GMM) at time t or per-particle
     * times tvec (non-NULL); outputs may be NULL. par: the field's parameter block. */
    adv_status (*gauss)(adv_context *ctx, adv_precision p, int kind, const double *par,
                        int64_t d, int64_t k0, int64_t k1, int any_regular, int64_t n,
                        const void *z, double t, const double *tvec, void *vel, void *score,
                        void *den, double *tmp);
    /* Exact samples of alpha_t for rows first..first+n-1 (kind as adv_field_kind). Empirical:
     * y, cdf (nd doubles), a and bs = b sigma; Gaussian family: par. */
    adv_status (*sample)(adv_context *ctx, adv_precision p, int kind, const double *par,
                         int64_t d, int64_t k0, int64_t k1, int64_t n, double t, uint64_t seed,
                         int64_t first, const void *y, const double *cdf, int64_t nd, double a,
                         double bs, void *z, double *tmp);
} advi_sampling_ops;

/* Empirical posterior at scores beta_j - q |z - a y_j|^2: up to this q through the
 * interaction engine; above it the scores lose meaning there (q |z - a y|^2 overflows float32
 * for ordinary data) and the direct loop takes over, with its nearest-point limit (q = ∞ at
 * t = 1 exactly). */
#define ADVI_LAMBDA_DIRECT 1e15

/* The interaction problem of the empirical posterior: SQDIST between n particles and nd data
 * points in d dimensions, values of dimension d (the caller sets λ, γ and where the values
 * come from); inputs are validated by the field, so no finiteness scan. */
static inline void advi_empirical_desc(adv_interaction_desc *desc, adv_precision p, int64_t n,
                                       int64_t nd, int64_t d) {
    adv_interaction_default_desc(desc);
    desc->precision = p;
    desc->kernel = ADV_KERNEL_SQDIST;
    desc->n_queries = n;
    desc->n_keys = nd;
    desc->dim = d;
    desc->value_dim = d;
    desc->check_finite = 0;
}

/* The CPU interaction engine with a per-query key scale and λ (host/cpu/interaction_cpu.c):
 * SQDIST scores s_ij = beta_j - row_lambda_i |x_i - row_a_i y_j|^2 (B x N arrays on the host;
 * desc->lambda and gamma unused). No argument checks: callers pass a validated problem. */
adv_status advi_cpu_interaction_rows(adv_context *ctx, const adv_interaction_desc *desc,
                                     const void *x, const void *y, const void *beta,
                                     const void *w, const double *row_a,
                                     const double *row_lambda, void *lse, void *out);

const advi_sampling_ops *advi_cpu_sampling_ops(void);
/* The CPU field operations (host/cpu/field_cpu.c), entries of the CPU table. */
adv_status advi_cpu_field_scale(adv_context *ctx, adv_precision p, size_t count, void *out,
                                double a, const void *in);
adv_status advi_cpu_field_empirical_direct(adv_context *ctx, adv_precision p, int64_t n, int64_t d,
                                           const void *z, int64_t nd, const void *y,
                                           const void *logw, double a, double q, const double *avec,
                                           const double *qvec, void *den, double *tmp);
adv_status advi_cpu_field_empirical_rows(adv_interaction_plan *plan, int64_t n, const void *z,
                                         const void *y, const void *logw, const double *avec,
                                         const double *qvec, void *den, double *tmp);
adv_status advi_cpu_field_time_coefs(adv_context *ctx, int64_t n, const double *times, int kind,
                                     double p0, double p1, double sigma, double *out);
adv_status advi_cpu_field_gauss(adv_context *ctx, adv_precision p, int kind, const double *par,
                                int64_t d, int64_t k0, int64_t k1, int any_regular, int64_t n,
                                const void *z, double t, const double *tvec, void *vel,
                                void *score, void *den, double *tmp);
adv_status advi_cpu_field_sample(adv_context *ctx, adv_precision p, int kind, const double *par,
                                 int64_t d, int64_t k0, int64_t k1, int64_t n, double t,
                                 uint64_t seed, int64_t first, const void *y, const double *cdf,
                                 int64_t nd, double a, double bs, void *z, double *tmp);
/* NULL when the CUDA backend is not compiled in (host/cuda_stub.c). */
const advi_sampling_ops *advi_cuda_sampling_ops(void);

static inline const advi_sampling_ops *advi_sampling_ops_of(const adv_context *ctx) {
    return ctx->backend == ADV_BACKEND_CUDA ? advi_cuda_sampling_ops() : advi_cpu_sampling_ops();
}

/* Context-memory buffer that grows on demand (kept by fields and samplers). */
typedef struct advi_buffer {
    void *ptr;
    size_t bytes;
} advi_buffer;

/* Makes b at least `bytes` long (old contents are lost when it grows). */
adv_status advi_buffer_reserve(adv_context *ctx, advi_buffer *b, size_t bytes);
void advi_buffer_release(adv_context *ctx, advi_buffer *b);
/* Context-memory allocation and copies that keep the context's last error. */
adv_status advi_ctx_alloc(adv_context *ctx, size_t bytes, void **ptr);
void advi_ctx_free(adv_context *ctx, void *ptr);
adv_status advi_ctx_copy(adv_context *ctx, void *dst, const void *src, size_t bytes);
/* Host -> context copy (memcpy on the CPU). */
adv_status advi_upload(adv_context *ctx, void *dst, const void *src, size_t bytes);
adv_status advi_download(adv_context *ctx, void *dst, const void *src, size_t bytes);

struct adv_field {
    adv_context *ctx;
    adv_field_kind kind;
    adv_precision precision;
    int64_t d;
    int outputs;            /* what adv_field_eval may return */
    int busy;               /* an evaluation or sampling is in progress (field.c field_enter) */
    adv_schedule sched;
    double sigma;
    int singular_end;
    /* empirical */
    int64_t n;
    void *data;             /* n x d, context memory */
    void *logw;             /* n, log of the normalised weights (precision) */
    double *cdf;            /* n doubles, context memory: cumulative weights for sampling */
    int owns_data;
    /* Interaction plan for up to plan_n particles (lambda set per call). It only grows, so a
     * sampler's last, smaller chunk and DOPRI5's rounds (as many particles as are active) do
     * not re-create it and its device workspace. */
    adv_interaction_plan *plan;
    int64_t plan_n;
    double keys_a;          /* the a_t the scaled keys buffer holds (NaN: none) */
    advi_buffer keys;       /* a_t * data */
    /* Gaussian family: parameter block (doubles) on the host and in context memory */
    int64_t k0, k1;
    int any_regular;
    double *par_host;
    size_t par_len;
    double *par;
    /* user */
    adv_field_fn fn;
    void *user;
    int user_outputs;
    /* Per-coordinate reach of samples of the marginal: |z_t,k| <= a_t reach1 + b_t reach0
     * but with vanishing probability (reach0: the source, reach1: the target, each with
     * ADVI_REACH_SIGMAS standard deviations); +Inf when unknown (user fields, unchecked
     * data). See advi_field_reach. */
    double reach0, reach1;
    /* scratch */
    advi_buffer den;        /* n x d denoiser when the caller does not ask for it */
    advi_buffer tmp;        /* n x 6d doubles (CUDA) */
    advi_buffer coef;       /* per-particle coefficients: 7 x n doubles */
    double *coef_host;      /* host staging of coef */
    size_t coef_host_n;
};

/* Standard deviations in a field's reach: a normal coordinate beyond 10 sigma has
 * probability 1.5e-23, so no run of 1e8 particles in 1e4 dimensions meets one. */
#define ADVI_REACH_SIGMAS 10.0

/* The field's reach at time t (see reach0/reach1): a_t reach1 + b_t reach0 with the field's
 * schedule (the Gaussian family's paths are linear: a_t = t, b_t = 1 - t); +Inf if unknown. */
double advi_field_reach(const adv_field *f, double t);

/* Folds the numbers that define the field into *h (advi_fnv1a): the empirical data points and
 * log-weights (read back from context memory) or the Gaussian family's parameter block. A
 * user field's callback is opaque: nothing is added. Used by the sampler's checkpoints, so a
 * run cannot be resumed on other data. */
adv_status advi_field_hash(adv_field *f, uint64_t *h);

/* Schedule evaluation that also serves user callbacks (host). ab = a, b, a', b'. */
void advi_schedule_eval(const adv_schedule *s, double t, double ab[4]);
/* A built-in schedule as advf_schedule's kind and parameters; 0 for a user callback. */
int advi_schedule_builtin(const adv_schedule *s, int *kind, double *p0, double *p1);
adv_status advi_schedule_check(adv_context *ctx, const adv_schedule *s);

/* Field evaluation without argument checks: a common time t (times == NULL) or per-particle
 * host times (n doubles). Outputs may be NULL; velocity/score are derived from the denoiser
 * where the field is in denoiser form. */
adv_status advi_field_eval(adv_field *f, double t, const double *times, int64_t n,
                           const void *z, void *vel, void *score, void *den);
adv_status advi_field_sample(adv_field *f, double t, uint64_t seed, int64_t first, int64_t n,
                             void *z);

/* ---- host linear algebra (host/field_linalg.c), row-major double ---- */
/* Cyclic Jacobi: S = V diag(w) V^T, w ascending, eigenvectors in columns. Returns 0 on
 * success, -1 when S is not finite, -2 when out of memory. */
int advi_jacobi_eigen(int64_t d, const double *S, double *w, double *V);
/* Cholesky S = L L^T (L lower, zeros above). Returns 0, or -1 when S is not positive
 * definite. */
int advi_cholesky(int64_t d, const double *S, double *L);
/* Inverse of a lower-triangular L. */
void advi_lower_inverse(int64_t d, const double *L, double *Linv);
/* C = A B (d x d), C may not alias. */
void advi_matmul(int64_t d, const double *A, const double *B, double *C);
/* 1 when S is finite and symmetric up to 1e-12 relative. */
int advi_is_symmetric(int64_t d, const double *S);

#endif
