#!/usr/bin/env python3
"""Blocked NumPy peer of bench/interaction_bench.c (the performance spec's CPU baseline).

For blocks of queries: scores through BLAS, s = 2*lam*x.y^T - lam*|y|^2 (np.dot; the
-lam*|x|^2 term is constant along a row, so it cancels in the softmax and is added to lse
afterwards), a max-subtracted exp over the block in place, lse from the row sums and out
from a second BLAS product with the values. The block is sized so the block of scores stays
a few MB, never N x M. Prints CSV rows in the C benchmark's columns, device "cpu-numpy".
Exit status 1 when a case fails validation (it is then not timed).
"""
import sys

import numpy as np

import bench_common as bc


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = []
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            parts.append(f"{lib.get('internal_api')} {lib.get('version')} "
                         f"threads={lib.get('num_threads')} arch={lib.get('architecture')}")
    return "; ".join(parts) or "no BLAS found by threadpoolctl"


class BlockedSoftmax:
    """Preallocated buffers and the blocked computation for one problem."""

    def __init__(self, x, y, lam, block_bytes=8 << 20):
        self.x, self.y, self.lam = x, y, lam
        n, m = x.shape[0], y.shape[0]
        dt = x.dtype
        self.rows = int(max(1, min(n, block_bytes // (m * dt.itemsize))))
        self.ly2 = (lam * np.einsum("ij,ij->i", y, y)).astype(dt)  # lam*|y_j|^2
        self.lx2 = (lam * np.einsum("ij,ij->i", x, x)).astype(dt)  # lam*|x_i|^2
        self.two_lam = dt.type(2.0 * lam)
        self.s = np.empty((self.rows, m), dtype=dt)
        self.lse = np.empty(n, dtype=dt)
        self.out = np.empty_like(x)

    def __call__(self):
        x, y = self.x, self.y
        n = x.shape[0]
        for a in range(0, n, self.rows):
            b = min(n, a + self.rows)
            s = self.s[: b - a]
            np.dot(x[a:b], y.T, out=s)  # BLAS GEMM
            s *= self.two_lam
            s -= self.ly2
            smax = s.max(axis=1)
            s -= smax[:, None]
            np.exp(s, out=s)
            ssum = s.sum(axis=1)
            self.lse[a:b] = smax + np.log(ssum) - self.lx2[a:b]
            np.dot(s, y, out=self.out[a:b])  # BLAS GEMM with the values (= keys)
            self.out[a:b] /= ssum[:, None]
        return self.lse, self.out


def main():
    args = bc.parse_args(__doc__.splitlines()[0])
    bc.note(f"numpy {np.__version__}; BLAS: {blas_info()}")
    if not args.no_header:
        print(bc.HEADER, flush=True)
    tag = f"numpy-{np.__version__}"
    status = 0
    for n in args.sizes:
        for d in args.dims:
            x, y = bc.make_data(n, d, args.dtype)
            run = BlockedSoftmax(x, y, args.lam)
            run.lse.fill(np.nan)
            run.out.fill(np.nan)
            lse, out = run()  # warm-up
            out_err, lse_err = bc.validate(x, y, args.lam, lse, out)
            bc.note(f"cpu-numpy {args.precision} N=M={n} d={d}: block {run.rows} rows; "
                    f"out rel err {out_err:.3g}, lse abs err {lse_err:.3g}")
            if not (out_err <= args.tol and lse_err <= args.tol):
                print(f"VALIDATION FAILED: cpu-numpy N=M={n} d={d}; not timed", file=sys.stderr)
                print(bc.failed_row("cpu-numpy", args, n, d, out_err, lse_err, tag), flush=True)
                status = 1
                continue
            med, tmin, tmax = bc.time_reps(run, args.reps)
            print(bc.csv_row("cpu-numpy", args, n, d, med, tmin, tmax, out_err, lse_err, tag),
                  flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
