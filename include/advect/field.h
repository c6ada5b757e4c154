/* advect fields (spec math.md §2): objects that evaluate, for a batch of particles at time
 * t in [0, 1], the velocity v_t(z), the score grad log alpha_t(z) and the denoiser
 * D_t(z) = E[X1 | Z_t = z] of a probability path from a source alpha_0 (noise) to a target
 * alpha_1 (data). Time runs from source (t = 0) to target (t = 1).
 *
 * Kinds: empirical target (one interaction sum per evaluation), Gaussian -> Gaussian with the
 * independent (flow-matching) coupling or the Bures-Wasserstein OT geodesic, Gaussian mixture
 * -> Gaussian mixture (target components may be Diracs), and user callbacks. Closed-form
 * Gaussian helpers (time-1 maps, W2^2 without the factor 1/2, kinetic energy) are computed on
 * the host in double. Plain C; no CUDA types. */
#ifndef ADVECT_FIELD_H
#define ADVECT_FIELD_H

#include "advect/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- scalar schedules Z_t = a_t X1 + b_t X0 ------------------------------------------ */

typedef enum adv_schedule_kind {
    ADV_SCHEDULE_LINEAR = 0, /* a = t, b = 1 - t (rectified flow) */
    ADV_SCHEDULE_COSINE = 1, /* a = sin(pi t / 2), b = cos(pi t / 2) */
    ADV_SCHEDULE_VP = 2,     /* a = exp(-1/2 int_0^{1-t} beta), beta(u) = beta_min +
                                u (beta_max - beta_min), b = sqrt(1 - a^2); a_0 > 0 (small) */
    ADV_SCHEDULE_VE = 3,     /* a = 1, b = sigma_max (sigma_min / sigma_max)^t; b_1 = sigma_min */
    ADV_SCHEDULE_USER = 4    /* a, b, a', b' from a host callback */
} adv_schedule_kind;

/* User schedule: writes ab[0..3] = a_t, b_t, a'_t, b'_t for t in [0, 1]. Called on the host,
 * also during evaluations of a field that uses it (which it must not evaluate: see
 * adv_field_fn).
 * Requirements (checked at t = 0, 1/2, 1 when a field is created): all finite, a_t >= 0,
 * b_t >= 0, b_t > 0 for t < 1. */
typedef void (*adv_schedule_fn)(void *user, double t, double ab[4]);

typedef struct adv_schedule {
    size_t struct_size;      /* sizeof(adv_schedule); set by adv_schedule_default */
    adv_schedule_kind kind;  /* default ADV_SCHEDULE_LINEAR */
    double beta_min;         /* VP: default 0.1 */
    double beta_max;         /* VP: default 20 */
    double sigma_min;        /* VE: default 0.01 */
    double sigma_max;        /* VE: default 80 */
    adv_schedule_fn fn;      /* USER */
    void *user;              /* USER: passed to fn */
} adv_schedule;

/* Fills *s with the defaults of `kind` (parameters above). */
ADV_API adv_status adv_schedule_default(adv_schedule *s, adv_schedule_kind kind);

/* Evaluates a schedule at t in [0, 1]: any output pointer may be NULL. Derivatives that are
 * infinite at an end point (VP's b' at t = 1) are returned as +-HUGE_VAL, never NaN.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_VALUE (bad kind/parameters, t outside [0,1]). */
ADV_API adv_status adv_schedule_eval(const adv_schedule *s, double t, double *a, double *b,
                                     double *da, double *db);

/* ---- fields --------------------------------------------------------------------------- */

typedef struct adv_field adv_field;

typedef enum adv_field_kind {
    ADV_FIELD_EMPIRICAL = 0,
    ADV_FIELD_GAUSSIAN = 1,    /* Gaussian -> Gaussian, independent coupling (flow matching) */
    ADV_FIELD_GAUSSIAN_OT = 2, /* Gaussian -> Gaussian, Bures-Wasserstein OT geodesic */
    ADV_FIELD_GMM = 3,         /* Gaussian mixture -> Gaussian mixture, independent coupling */
    ADV_FIELD_USER = 4
} adv_field_kind;

/* Output flags (bit mask). */
enum {
    ADV_FIELD_VELOCITY = 1,
    ADV_FIELD_SCORE = 2,
    ADV_FIELD_DENOISER = 4
};

typedef struct adv_field_info {
    size_t struct_size;      /* set by the caller to sizeof(adv_field_info) */
    adv_field_kind kind;
    adv_precision precision;
    int64_t dim;             /* d */
    int64_t n_data;          /* empirical: n; GMM: number of target components; else 0 */
    int outputs;             /* ADV_FIELD_* flags this field can evaluate */
    adv_schedule schedule;   /* the path's schedule; LINEAR for Gaussian/GMM fields (their
                                denoiser form is z = t X1 + (1 - t) X0) */
    double sigma;            /* source scale: X0 ~ N(0, sigma^2 I) for empirical fields; the
                                scale used by the default SDE diffusion (1 for Gaussian/GMM) */
    int singular_end;        /* 1 when b_1 = 0 and the target has atoms (empirical, Dirac
                                components): velocity and score at t = 1 are conventions
                                (see adv_field_eval) and samplers end with an exponential step */
} adv_field_info;

ADV_API adv_status adv_field_get_info(const adv_field *field, adv_field_info *info);

/* Empirical target alpha_1 = sum_i w_i delta_{y_i} with source N(0, sigma^2 I):
 *   pi_i(z) = softmax_i(log w_i - |z - a_t y_i|^2 / (2 b_t^2 sigma^2)),  D_t = sum_i pi_i y_i,
 *   score = (a_t D - z) / (b_t^2 sigma^2),  v = a'_t D + b'_t (z - a_t D) / b_t.
 * One interaction sum per evaluation (SQDIST with queries z, keys a_t y, gamma = 1,
 * lambda = 1/(2 b_t^2 sigma^2), beta = log w, values y; see docs/sampling.md for why not
 * gamma = a_t). */
typedef struct adv_empirical_opts {
    size_t struct_size;      /* sizeof(adv_empirical_opts); set by adv_empirical_default_opts */
    double sigma;            /* source scale, > 0; default 1 */
    adv_schedule schedule;   /* default linear */
    int copy_data;           /* default 1: the field keeps its own copy of data and weights;
                                0: it borrows them (they must outlive the field, unchanged) */
    int check_finite;        /* default 1: reject NaN/Inf in data and weights */
} adv_empirical_opts;

ADV_API adv_status adv_empirical_default_opts(adv_empirical_opts *opts);

/* data: n x d row-major, weights: n (>= 0, not all 0; normalised internally) or NULL for
 * uniform weights. Both in the context's memory space, in `precision`. opts may be NULL.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_SIZE (n < 1, d < 1), ADV_ERR_NONFINITE
 * (data/weights), ADV_ERR_INVALID_VALUE (negative or all-zero weights, sigma <= 0, bad
 * schedule). On error *field is NULL. */
ADV_API adv_status adv_field_create_empirical(adv_context *ctx, adv_precision precision,
                                              const void *data, const void *weights, int64_t n,
                                              int64_t d, const adv_empirical_opts *opts,
                                              adv_field **field);

typedef enum adv_coupling {
    ADV_COUPLING_INDEPENDENT = 0, /* flow matching: (X0, X1) independent */
    ADV_COUPLING_OT = 1           /* Bures-Wasserstein optimal transport (X1 = T(X0)) */
} adv_coupling;

/* Gaussian -> Gaussian: X0 ~ N(m0, S0), X1 ~ N(m1, S1). Host arrays in double (m: d,
 * S: d x d, symmetric positive definite; checked by Cholesky). The field copies them.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_SIZE, ADV_ERR_NONFINITE, ADV_ERR_INVALID_VALUE
 * (not symmetric, not positive definite, bad coupling). */
ADV_API adv_status adv_field_create_gaussian(adv_context *ctx, adv_precision precision,
                                             int64_t d, const double *m0, const double *S0,
                                             const double *m1, const double *S1,
                                             adv_coupling coupling, adv_field **field);

/* Gaussian mixture -> Gaussian mixture (independent coupling):
 * alpha_0 = sum_k p_k N(mu_k, S_k) (S_k positive definite), alpha_1 = sum_l q_l N(nu_l, G_l)
 * (G_l positive semi-definite; G_l = 0 is a Dirac). Host doubles: p (k0), mu (k0 x d),
 * S (k0 x d x d), q (k1), nu (k1 x d), G (k1 x d x d). Weights >= 0, not all 0 (normalised).
 * Per-particle cost O(k0 k1 d^2). */
ADV_API adv_status adv_field_create_gmm(adv_context *ctx, adv_precision precision, int64_t d,
                                        int64_t k0, const double *p, const double *mu,
                                        const double *S, int64_t k1, const double *q,
                                        const double *nu, const double *G, adv_field **field);

/* One evaluation request passed to a user callback. Pointers are in the context's memory
 * space (host on CPU; device on CUDA, where the callback must enqueue its work on `stream`
 * or finish it before returning). */
typedef struct adv_field_request {
    adv_precision precision;
    int64_t n;               /* particles */
    int64_t dim;             /* d */
    double t;                /* the common time, when times == NULL */
    const void *times;       /* n per-particle times (precision), or NULL */
    const void *z;           /* n x d */
    void *velocity;          /* n x d output, or NULL when not requested */
    void *score;             /* n x d output, or NULL */
    void *denoiser;          /* n x d output, or NULL */
    void *stream;            /* CUDA: the context's cudaStream_t; CPU: NULL */
} adv_field_request;

/* Returns 0 on success; any other value makes the evaluation fail with ADV_ERR_INVALID_VALUE
 * (the value is reported in the context's last error). It is only asked for outputs it
 * declared in adv_user_field_opts.outputs. It may use other objects of the context (evaluate
 * other fields, allocate, copy) but not this field: evaluating, sampling or destroying it from
 * inside its own callback (or from a user schedule's callback during its evaluation) fails with
 * ADV_ERR_INVALID_VALUE ("field is already being evaluated"), writing nothing, and the
 * evaluation in progress goes on. Its outputs are used as written: NaN/Inf are not checked
 * here (a sampler reports them as ADV_ERR_NONFINITE). */
typedef int (*adv_field_fn)(void *user, const adv_field_request *request);

typedef struct adv_user_field_opts {
    size_t struct_size;      /* sizeof(adv_user_field_opts); set by adv_user_field_default_opts */
    adv_field_fn fn;         /* required */
    void *user;
    int outputs;             /* ADV_FIELD_* flags the callback computes (at least VELOCITY or
                                DENOISER); default ADV_FIELD_VELOCITY */
    adv_schedule schedule;   /* the path's schedule, used to derive velocity and score from a
                                denoiser, and by DDIM/DPM/SDE samplers; default linear */
    double sigma;            /* source scale for score conversions; default 1 */
} adv_user_field_opts;

ADV_API adv_status adv_user_field_default_opts(adv_user_field_opts *opts);

/* When the callback provides DENOISER, the field can also return velocity and score
 * (converted through the schedule); otherwise only what the callback provides. */
ADV_API adv_status adv_field_create_user(adv_context *ctx, adv_precision precision, int64_t d,
                                         const adv_user_field_opts *opts, adv_field **field);

/* ADV_ERR_INVALID_VALUE (nothing freed) when called from the field's own callback. */
ADV_API adv_status adv_field_destroy(adv_field *field);

/* Evaluates the field at time t in [0, 1] for n particles z (n x d, context memory, the
 * field's precision). Outputs velocity / score / denoiser (n x d each, context memory) may be
 * NULL; at least one must be given, and each must be one the field supports. Outputs must
 * not alias z. For the built-in kinds every output is finite for t in [0, 1], including t = 1
 * exactly (a user callback's outputs are what it writes, NaN included):
 *  - empirical, t = 1 with b_1 = 0: the posterior is one-hot on the nearest data point
 *    (smallest |z - y_i|, ties to the larger weight, then the lower index): D = that point.
 *    The velocity and score are infinite off the data there; the field returns 0 for both
 *    (a convention, documented in docs/sampling.md; the samplers never use them: a step
 *    ending at t = 1 is taken in exponential form and lands on D).
 *  - Gaussian mixtures with Dirac target components at t = 1: the same convention.
 *  - VE keeps b_1 = sigma_min > 0: no special case.
 *  - VP/linear/cosine at t = 0: a_0 (almost) 0; D is the weighted data mean (exact limit).
 * CPU: synchronous. CUDA: asynchronous on the context's stream.
 * Errors: ADV_ERR_NULL_POINTER, ADV_ERR_INVALID_SIZE (n < 1), ADV_ERR_INVALID_VALUE (t not in
 * [0, 1] or NaN, aliasing, a call from the field's own callback), ADV_ERR_UNSUPPORTED (an
 * output the field cannot give). Nothing is written on these errors; a CUDA failure or a user
 * callback returning non-zero (ADV_ERR_INVALID_VALUE) during the evaluation may leave outputs
 * partly written. */
ADV_API adv_status adv_field_eval(adv_field *field, double t, int64_t n, const void *z,
                                  void *velocity, void *score, void *denoiser);

/* As adv_field_eval with one time per particle: times is n values (context memory, the
 * field's precision), each in [0, 1] (checked on the host for CPU; on CUDA values outside
 * are clamped). Used by adaptive samplers with per-particle step sizes. */
ADV_API adv_status adv_field_eval_times(adv_field *field, const void *times, int64_t n,
                                        const void *z, void *velocity, void *score,
                                        void *denoiser);

/* Draws n exact samples of alpha_t (n x d, context memory): the particle-th sample uses the
 * random stream keyed by (seed, particle) only, so any chunk gives the same rows. Empirical:
 * a_t y_J + b_t sigma xi with J ~ w; Gaussian: m_t + Sigma_t^{1/2} xi; GMM: a random
 * component pair, then its Gaussian. first_particle offsets the particle index (chunks);
 * ADV_ERR_INVALID_VALUE when it is negative or (first_particle + n) ceil(d/2) exceeds 2^64
 * (the random blocks would repeat). ADV_ERR_UNSUPPORTED for user fields. */
ADV_API adv_status adv_field_sample(adv_field *field, double t, uint64_t seed,
                                    int64_t first_particle, int64_t n, void *z);

/* ---- closed-form Gaussian helpers (host, double, no context) ------------------------------
 * Matrices are d x d row-major. S0, S1 symmetric positive definite (else
 * ADV_ERR_INVALID_VALUE); NULL pointers give ADV_ERR_NULL_POINTER; d < 1 ADV_ERR_INVALID_SIZE. */

/* Symmetric eigendecomposition by cyclic Jacobi: S = V diag(evals) V^T, evals ascending,
 * eigenvectors in the COLUMNS of V (row-major d x d). */
ADV_API adv_status adv_symmetric_eigen(int64_t d, const double *S, double *evals, double *V);

/* Time-1 map x -> A x + c of a Gaussian path with the given coupling:
 *  OT:          A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2}  (symmetric)
 *  INDEPENDENT: A = S0^{1/2} C^{1/2} S0^{-1/2},  C = S0^{-1/2} S1 S0^{-1/2}  (flow-matching
 *               ODE map; pushes S0 to S1, equals the OT map iff S0 S1 = S1 S0)
 * and c = m1 - A m0. */
ADV_API adv_status adv_gaussian_map(adv_coupling coupling, int64_t d, const double *m0,
                                    const double *S0, const double *m1, const double *S1,
                                    double *A, double *c);

/* W2^2(N(m0,S0), N(m1,S1)) = |m0 - m1|^2 + tr(S0 + S1 - 2 (S0^{1/2} S1 S0^{1/2})^{1/2}),
 * without the factor 1/2. S0 and S1 may be positive semi-definite here. */
ADV_API adv_status adv_gaussian_w2sq(int64_t d, const double *m0, const double *S0,
                                     const double *m1, const double *S1, double *w2sq);

/* Kinetic energy int_0^1 E|v_t(Z_t)|^2 dt of the Gaussian path with the given coupling, by
 * composite Gauss-Legendre quadrature (`nodes` sub-intervals of 4 points each, nodes >= 1;
 * 16 is plenty): equals W2^2 for OT, and is >= W2^2 for the independent coupling (strictly
 * unless S0 S1 = S1 S0). */
ADV_API adv_status adv_gaussian_kinetic_energy(adv_coupling coupling, int64_t d,
                                               const double *m0, const double *S0,
                                               const double *m1, const double *S1, int nodes,
                                               double *energy);

#ifdef __cplusplus
}
#endif
#endif
