#!/usr/bin/env python3
"""Blocked NumPy peer of bench/sampling_bench.c: the same closed-form sampler.

Empirical target (n data points, uniform weights), Gaussian source N(0, I) (sigma = 1), linear
schedule Z_t = t X1 + (1 - t) X0. The denoiser D_t(z) = sum_i softmax_i(-|z - t y_i|^2 /
(2 (1-t)^2)) y_i is computed for blocks of particles (the block of scores stays a few MB,
never N x n) with BLAS for the dot products: s = (t/b^2) z.y^T - (t^2/(2 b^2)) |y|^2 (the |z|^2
term is constant along a row and cancels), max-subtracted exp in place, row sums, and a second
BLAS product with the data. Velocity (D - z)/(1 - t), score (t D - z)/(1 - t)^2. Methods on the
uniform grid of K steps, as advect does them: Euler, Heun, midpoint, RK4 (the last step to
t = 1 is the exponential step z <- D), DDIM (z <- (b_u/b_t) z + (a_u - a_t b_u/b_t) D),
DPM-Solver++(2M), and Euler-Maruyama (eta = 1, g^2 = 2(1-t)/t, start t0 > 0, noise-free last
step). CSV rows in the C benchmark's columns, device "cpu-numpy". Validation before timing:
the final state of a few rows against a float64 integration with a direct (difference-form)
denoiser (SDE: its eta = 0 path), and every final particle inside the data's bounding box.
This module also holds the parts the PyTorch peer (sampling_torch.py) shares. Exit status 1
when a case fails validation (it is then not timed).
"""
import argparse
import math
import statistics
import sys
import time

import numpy as np

SEED = 20240611
CHECK_ROWS = 8
METHODS = ("euler", "heun", "midpoint", "rk4", "ddim", "dpm2m", "sde")
HEADER = ("device,precision,method,n_data,n_particles,d,steps,median_s,min_s,max_s,"
          "particle_steps_per_s,interactions_per_s,interaction_share,max_rel_err,commit")


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-sizes", default="1e4,1e5", help="data points n")
    p.add_argument("--particles", default="1e4", help="particles N")
    p.add_argument("--dims", default="2,64")
    p.add_argument("--methods", default="euler,heun,rk4,ddim,dpm2m,sde",
                   help="comma list of " + ",".join(METHODS) + " (dopri5 is skipped)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--precision", choices=("f32", "f64"), default="f32")
    p.add_argument("--sde-t0", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (torch peer)")
    p.add_argument("--block-mb", type=float, default=8.0, help="score block size in MB")
    p.add_argument("--no-header", action="store_true")
    args = p.parse_args()
    ints = lambda s: [int(float(v)) for v in s.split(",") if v]
    args.data_sizes, args.particles, args.dims = ints(args.data_sizes), ints(args.particles), ints(args.dims)
    args.methods = [m for m in args.methods.split(",") if m]
    for m in args.methods:
        if m not in METHODS + ("dopri5",):
            p.error(f"unknown method {m}")
    args.dtype = np.float32 if args.precision == "f32" else np.float64
    args.ttol = 1e-3 if args.precision == "f32" else 1e-7
    return args


def note(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def make_problem(n, big_n, d, t0, dtype):
    """Data uniform on [0,1)^d; start state exact samples of alpha_t0: t0 y_J + (1 - t0) xi."""
    rng = np.random.default_rng(SEED + 7 * n + d)
    y = rng.random((n, d)).astype(dtype)
    j = rng.integers(0, n, big_n)
    z0 = (t0 * y[j].astype(np.float64) + (1.0 - t0) * rng.standard_normal((big_n, d))).astype(dtype)
    return y, z0


def grid(method, steps, sde_t0):
    t0 = sde_t0 if method == "sde" else 0.0
    return [t0 + (1.0 - t0) * k / steps for k in range(steps)] + [1.0]


def integrate(z, ts, method, den, randn, eta=1.0):
    """Advects z (an array of the backend: NumPy or torch) along ts. den(t, z) returns D_t(z)
    (a new array); randn(shape, step) standard normals. Returns the final state and the
    number of denoiser calls. Mirrors host/sampler.c step by step."""
    k_steps = len(ts) - 1
    calls = 0
    d_prev, h_prev, has_prev = None, 0.0, False

    def vel(t, x):
        nonlocal calls
        calls += 1
        return (den(t, x) - x) * (1.0 / (1.0 - t))

    for s in range(k_steps):
        t, u = ts[s], ts[s + 1]
        h = u - t
        if method in ("ddim", "dpm2m") or s == k_steps - 1:
            dd = den(t, z)
            calls += 1
            ratio = (1.0 - u) / (1.0 - t)
            cd = u - t * ratio
            lt = math.log(t / (1.0 - t)) if t > 0.0 else -math.inf
            lu = math.log(u / (1.0 - u)) if u < 1.0 else math.inf
            hl, c = lu - lt, 0.0
            if method == "dpm2m" and has_prev and math.isfinite(hl) and math.isfinite(h_prev) and h_prev > 0:
                c = hl / (2.0 * h_prev)
            z = z * ratio + dd * (cd * (1.0 + c))
            if c != 0.0:
                z = z - d_prev * (cd * c)
            if method == "dpm2m":
                d_prev, h_prev, has_prev = dd, hl, True
        elif method == "euler":
            z = z + vel(t, z) * h
        elif method == "heun":
            k1 = vel(t, z)
            k2 = vel(u, z + k1 * h)
            z = z + (k1 + k2) * (0.5 * h)
        elif method == "midpoint":
            k1 = vel(t, z)
            z = z + vel(t + 0.5 * h, z + k1 * (0.5 * h)) * h
        elif method == "rk4":
            k1 = vel(t, z)
            k2 = vel(t + 0.5 * h, z + k1 * (0.5 * h))
            k3 = vel(t + 0.5 * h, z + k2 * (0.5 * h))
            k4 = vel(u, z + k3 * h)
            z = z + (k1 + k2 * 2.0 + k3 * 2.0 + k4) * (h / 6.0)
        elif method == "sde":
            # dX = [v + g^2/2 score] dt + g dW, g^2 = eta 2 sigma^2 b (b a'/a - b') = eta 2(1-t)/t
            dd = den(t, z)
            calls += 1
            g2 = eta * 2.0 * (1.0 - t) / t
            v = (dd - z) * (1.0 / (1.0 - t))
            score = (dd * t - z) * (1.0 / (1.0 - t) ** 2)
            z = z + v * h + score * (0.5 * g2 * h)
            if g2 > 0.0:
                z = z + randn(tuple(z.shape), s) * math.sqrt(g2 * h)
        else:
            raise ValueError(method)
    return z, calls


def direct_denoiser(y):
    """float64 difference-form D_t for a few rows (the reference)."""
    y64 = y.astype(np.float64)

    def den(t, z):
        b = 1.0 - t
        diff = z[:, None, :] - t * y64[None, :, :]
        s = -(diff ** 2).sum(-1) / (2.0 * b * b)
        s -= s.max(axis=1, keepdims=True)
        w = np.exp(s)
        return (w @ y64) / w.sum(axis=1, keepdims=True)
    return den


def check_rows(big_n):
    k = min(big_n, CHECK_ROWS)
    return np.unique((np.arange(k) * (big_n - 1) / max(1, k - 1)).astype(np.int64))


def validate(y, z0, ts, method, final, eta0_final):
    """Max error of the check rows relative to the data scale, and the number of final values
    outside the data's bounding box (widened by the tolerance's scale) or not finite.
    eta0_final: for the SDE, the candidate's eta = 0 run on the check rows."""
    rows = check_rows(z0.shape[0])
    ref, _ = integrate(z0[rows].astype(np.float64), ts, method, direct_denoiser(y), None, eta=0.0)
    got = eta0_final if method == "sde" else final[rows]
    scale = float(np.abs(y).max()) or 1.0
    err = float(np.abs(np.asarray(got, dtype=np.float64) - ref).max() / scale)
    lo, hi = float(y.min()), float(y.max())
    f = np.asarray(final)
    bad = int((~np.isfinite(f)).sum() + (f < lo - 1e-3 * scale).sum() + (f > hi + 1e-3 * scale).sum())
    return err, bad


def time_reps(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def row(device, args, method, n, big_n, d, med, tmin, tmax, calls, share, err, tag):
    steps = args.steps
    return (f"{device},{args.precision},{method},{n},{big_n},{d},{steps},{med:.6e},{tmin:.6e},"
            f"{tmax:.6e},{big_n * steps / med:.4e},{calls * big_n * n / med:.4e},{share:.4f},"
            f"{err:.3e},{tag}")


def failed_row(device, args, method, n, big_n, d, err, tag):
    return (f"{device},{args.precision},{method},{n},{big_n},{d},{args.steps},nan,nan,nan,nan,nan,"
            f"nan,{err:.3e},{tag}")


def run_all(device, tag, args, make_den, to_backend, to_numpy, make_randn):
    """The benchmark loop shared by the peers. make_den(y) returns den(t, z) on backend arrays;
    to_backend / to_numpy convert arrays; make_randn(seed) returns randn(shape, step)."""
    if not args.no_header:
        print(HEADER, flush=True)
    status = 0
    for n in args.data_sizes:
        for big_n in args.particles:
            for d in args.dims:
                for method in args.methods:
                    if method == "dopri5":
                        note(f"{device}: dopri5 not implemented in the peer; skipped")
                        continue
                    ts = grid(method, args.steps, args.sde_t0)
                    y, z0 = make_problem(n, big_n, d, ts[0], args.dtype)
                    den = make_den(to_backend(y))
                    zb = to_backend(z0)
                    run = lambda: integrate(zb, ts, method, den, make_randn(5))
                    final, calls = run()  # warm-up
                    eta0 = None
                    if method == "sde":
                        eta0, _ = integrate(to_backend(z0[check_rows(big_n)]), ts, method, den,
                                            None, eta=0.0)
                        eta0 = to_numpy(eta0)
                    err, bad = validate(y, z0, ts, method, to_numpy(final), eta0)
                    note(f"{device} {args.precision} {method} n={n} N={big_n} d={d}: "
                         f"{calls} evaluations; trajectory err {err:.3g} (tol {args.ttol:g}), "
                         f"{bad} final values non-finite or outside the data box")
                    if bad or not err <= args.ttol:
                        print(f"VALIDATION FAILED: {device} {method} n={n} N={big_n} d={d}; "
                              "not timed", file=sys.stderr)
                        print(failed_row(device, args, method, n, big_n, d, err, tag), flush=True)
                        status = 1
                        continue
                    med, tmin, tmax = time_reps(run, args.reps)
                    _, t_den, _ = time_reps(lambda: den(0.5, zb), args.reps)
                    share = t_den * calls / tmin  # fastest against fastest, as sampling_bench
                    print(row(device, args, method, n, big_n, d, med, tmin, tmax, calls, share,
                              err, tag), flush=True)
    return status


class BlockedDenoiser:
    """D_t(z) for blocks of particles with preallocated NumPy buffers (see the module doc)."""

    def __init__(self, y, block_bytes):
        self.y = y
        self.y2 = np.einsum("ij,ij->i", y, y)
        n = y.shape[0]
        self.rows = int(max(1, block_bytes // (n * y.dtype.itemsize)))
        self.s = np.empty((self.rows, n), dtype=y.dtype)

    def __call__(self, t, z):
        dt = self.y.dtype.type
        b = 1.0 - t
        coef, c2 = dt(t / (b * b)), (dt(t * t / (2.0 * b * b)) * self.y2).astype(self.y.dtype)
        out = np.empty_like(z)
        for a in range(0, z.shape[0], self.rows):
            e = min(z.shape[0], a + self.rows)
            s = self.s[: e - a]
            np.dot(z[a:e], self.y.T, out=s)  # BLAS GEMM
            s *= coef
            s -= c2
            s -= s.max(axis=1)[:, None]
            np.exp(s, out=s)
            ssum = s.sum(axis=1)
            np.dot(s, self.y, out=out[a:e])  # BLAS GEMM with the data
            out[a:e] /= ssum[:, None]
        return out


def main():
    args = parse_args(__doc__.splitlines()[0])
    try:
        from threadpoolctl import threadpool_info
        blas = "; ".join(f"{l.get('internal_api')} {l.get('version')} threads={l.get('num_threads')}"
                         for l in threadpool_info() if l.get("user_api") == "blas")
    except ImportError:
        blas = "threadpoolctl not installed"
    note(f"numpy {np.__version__}; BLAS: {blas}")
    dtype = args.dtype

    def make_randn(seed):
        rng = np.random.default_rng(seed)
        return lambda shape, step: rng.standard_normal(shape, dtype=dtype)

    return run_all("cpu-numpy", f"numpy-{np.__version__}", args,
                   lambda y: BlockedDenoiser(y, int(args.block_mb * (1 << 20))),
                   lambda a: a, lambda a: a, make_randn)


if __name__ == "__main__":
    sys.exit(main())
