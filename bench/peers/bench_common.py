"""Shared pieces of the benchmark peers (NumPy, pykeops): options, input data, the naive
float64 reference, validation and the CSV row format of bench/interaction_bench.c.

The problem is the C benchmark's: SQDIST kernel s_ij = -lambda * |x_i - y_j|^2 (beta = 0,
gamma = 1), values are the keys (e = d), outputs lse_i and out_i = sum_j softmax_j(s_ij) y_j,
inputs uniform on [0, 1)^d with a fixed seed. The peers draw their data with NumPy's
generator, so the numbers differ from the C benchmark's but the distribution is the same.
"""
import argparse
import statistics
import sys
import time

import numpy as np

CHECK_ROWS = 64
SEED = 20240611
HEADER = ("device,precision,kernel,N,M,d,e,median_s,min_s,max_s,pairs_per_s,"
          "max_rel_err,lse_abs_err,commit")


def parse_args(description, default_reps=5):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--sizes", default="4096,16384,65536",
                   help="N = M values, comma separated (1e6 accepted)")
    p.add_argument("--dims", default="2,3,16,64", help="d values, comma separated")
    p.add_argument("--reps", type=int, default=None,
                   help=f"timed repetitions (default {default_reps}; 3 with --quick)")
    p.add_argument("--precision", choices=("f32", "f64"), default="f32")
    p.add_argument("--lambda", dest="lam", type=float, default=1.0, help="score scale")
    p.add_argument("--quick", action="store_true", help="sizes 2048, reps 3")
    p.add_argument("--no-header", action="store_true")
    args, extra = p.parse_known_args()
    if extra:
        p.error("unknown arguments: " + " ".join(extra))
    if args.quick and args.sizes == p.get_default("sizes"):
        args.sizes = "2048"
    if args.reps is None:
        args.reps = 3 if args.quick else default_reps
    args.sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    args.dims = [int(s) for s in args.dims.split(",") if s]
    args.dtype = np.float32 if args.precision == "f32" else np.float64
    args.tol = 1e-3 if args.precision == "f32" else 1e-9
    return args


def make_data(n, d, dtype, seed_offset=0):
    rng = np.random.default_rng(SEED + 1000 * n + d + seed_offset)
    x = rng.random((n, d), dtype=np.float64).astype(dtype)
    y = rng.random((n, d), dtype=np.float64).astype(dtype)
    return x, y


def check_rows(n):
    k = min(n, CHECK_ROWS)
    if k == 1:
        return np.zeros(1, dtype=np.int64)
    return (np.arange(k, dtype=np.float64) * (n - 1) / (k - 1)).astype(np.int64)


def reference(x, y, lam, rows):
    """Naive float64 lse and out for the given query rows over all keys (direct differences,
    a running maximum), in chunks of rows so memory stays O(chunk * M * d), a few tens of MB."""
    xd = x[rows].astype(np.float64)
    yd = y.astype(np.float64)
    m, d = yd.shape
    chunk = max(1, min(len(rows), (1 << 22) // (m * d)))
    lse = np.empty(len(rows))
    out = np.empty((len(rows), yd.shape[1]))
    for a in range(0, len(rows), chunk):
        b = min(len(rows), a + chunk)
        diff = xd[a:b, None, :] - yd[None, :, :]
        s = -lam * (diff ** 2).sum(-1)
        smax = s.max(axis=1, keepdims=True)
        p = np.exp(s - smax)
        ssum = p.sum(axis=1)
        lse[a:b] = smax[:, 0] + np.log(ssum)
        out[a:b] = (p @ yd) / ssum[:, None]
    return lse, out


def validate(x, y, lam, lse, out):
    """Max error of out relative to the value scale max|w| (out is a convex combination of
    the w_j) and max absolute error of lse, on CHECK_ROWS rows; NaN anywhere fails."""
    rows = check_rows(x.shape[0])
    ref_lse, ref_out = reference(x, y, lam, rows)
    wscale = float(np.abs(y).max()) or 1.0
    if not (np.all(np.isfinite(lse)) and np.all(np.isfinite(out))):
        return float("nan"), float("nan")
    out_err = float(np.abs(out[rows].astype(np.float64) - ref_out).max() / wscale)
    lse_err = float(np.abs(lse[rows].astype(np.float64) - ref_lse).max())
    return out_err, lse_err


def time_reps(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def csv_row(device, args, n, d, med, tmin, tmax, out_err, lse_err, tag):
    pairs = float(n) * float(n)
    return (f"{device},{args.precision},sqdist,{n},{n},{d},{d},{med:.6e},{tmin:.6e},{tmax:.6e},"
            f"{pairs / med:.4e},{out_err:.3e},{lse_err:.3e},{tag}")


def failed_row(device, args, n, d, out_err, lse_err, tag):
    return (f"{device},{args.precision},sqdist,{n},{n},{d},{d},nan,nan,nan,nan,"
            f"{out_err:.3e},{lse_err:.3e},{tag}")


def note(msg):
    print("# " + msg, file=sys.stderr, flush=True)
