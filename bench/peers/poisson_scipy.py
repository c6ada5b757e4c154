#!/usr/bin/env python3
"""scipy.fft peer of bench/poisson_bench.c: the same Poisson systems solved the usual way.

For each grid and boundary condition: the manufactured problem of the C benchmark (random u,
zero mean unless Dirichlet, f = (c - Lap_h) u by the stencil, c = 0, spacing 1/N per axis),
then u = T^-1 (T f / lambda) with T = rfftn (periodic), dctn type 2 (Neumann) or dstn type 2
(Dirichlet), eigenvalues lambda = sum_a (2 - 2 cos theta_a) / h_a^2 precomputed outside the
timed region (like the C plan), zero mode set to 0. Prints CSV rows in the C benchmark's
columns, device "cpu-scipy"; the "threads" column holds scipy.fft's workers. Exit status 1
when a case fails validation (it is then not timed).
"""
import argparse
import statistics
import sys
import time

import numpy as np
import scipy
import scipy.fft as sf

SEED = 20240611
HEADER = "device,precision,shape,bc,median_s,min_s,max_s,cells_per_s,max_rel_err,threads,commit"
BCS = ("periodic", "neumann", "dirichlet")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grids", default="256x256,1024x1024,64x64x64,128x128x128")
    p.add_argument("--bc", default="periodic,neumann,dirichlet")
    p.add_argument("--precision", choices=("f32", "f64", "both"), default="both")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--workers", type=int, default=1,
                   help="scipy.fft workers (default 1, scipy's own default; -1 = all cores)")
    p.add_argument("--quick", action="store_true", help="grids 64x64,16x16x16, reps 3")
    p.add_argument("--no-header", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.grids, a.reps = "64x64,16x16x16", 3
    a.grids = [tuple(int(v) for v in g.split("x")) for g in a.grids.split(",") if g]
    a.bcs = [b for b in a.bc.split(",") if b]
    if any(b not in BCS for b in a.bcs):
        p.error("--bc: periodic, neumann or dirichlet")
    a.precisions = ["f32", "f64"] if a.precision == "both" else [a.precision]
    return a


def apply_stencil(u, h, bc):
    """(-Lap_h) u with the ghost values of the boundary condition (float64)."""
    out = np.zeros_like(u)
    for ax, ha in enumerate(h):
        if bc == "periodic":
            left, right = np.roll(u, 1, axis=ax), np.roll(u, -1, axis=ax)
        else:
            sign = 1.0 if bc == "neumann" else -1.0
            first = np.take(u, [0], axis=ax)
            last = np.take(u, [u.shape[ax] - 1], axis=ax)
            n = u.shape[ax]
            left = np.concatenate([sign * first, np.take(u, range(n - 1), axis=ax)], axis=ax)
            right = np.concatenate([np.take(u, range(1, n), axis=ax), sign * last], axis=ax)
        out -= (left - 2.0 * u + right) / (ha * ha)
    return out


def eigenvalues(shape, h, bc, dtype):
    """lambda on the transform grid (the rfftn half-spectrum for periodic)."""
    lam = 0.0
    for ax, (n, ha) in enumerate(zip(shape, h)):
        if bc == "periodic":
            m = n // 2 + 1 if ax == len(shape) - 1 else n
            theta = 2.0 * np.pi * np.arange(m) / n
        elif bc == "neumann":
            theta = np.pi * np.arange(n) / n
        else:
            theta = np.pi * (np.arange(n) + 1) / n
        e = 4.0 * np.sin(theta / 2) ** 2 / (ha * ha)
        lam = np.add.outer(lam, e) if ax else e
    lam = np.asarray(lam, dtype=np.float64)
    inv = np.zeros_like(lam)
    np.divide(1.0, lam, out=inv, where=lam > 0)  # zero mode -> 0 (zero-mean solution)
    return inv.astype(dtype)


def make_solver(shape, h, bc, dtype, workers):
    inv = eigenvalues(shape, h, bc, dtype)
    if bc == "periodic":
        def solve(f):
            return sf.irfftn(sf.rfftn(f, workers=workers) * inv, s=shape, workers=workers)
    elif bc == "neumann":
        def solve(f):
            return sf.idctn(sf.dctn(f, type=2, workers=workers) * inv, type=2, workers=workers)
    else:
        def solve(f):
            return sf.idstn(sf.dstn(f, type=2, workers=workers) * inv, type=2, workers=workers)
    return solve


def main():
    a = parse_args()
    print(f"# numpy {np.__version__}, scipy {scipy.__version__}, workers {a.workers}",
          file=sys.stderr, flush=True)
    if not a.no_header:
        print(HEADER, flush=True)
    tag = f"scipy-{scipy.__version__}"
    status = 0
    for prec in a.precisions:
        dtype = np.float32 if prec == "f32" else np.float64
        bound = 1e-2 if prec == "f32" else 1e-8
        for shape in a.grids:
            n = int(np.prod(shape))
            h = [1.0 / s for s in shape]
            for bc in a.bcs:
                rng = np.random.default_rng(SEED + n + BCS.index(bc))
                u = rng.uniform(-1.0, 1.0, shape)
                if bc != "dirichlet":
                    u -= u.mean()
                f = apply_stencil(u, h, bc).astype(dtype)
                solve = make_solver(shape, h, bc, dtype, a.workers)
                got = solve(f)  # warm-up and validation
                err = float(np.abs(got.astype(np.float64) - u).max() / np.abs(u).max())
                sname = "x".join(str(s) for s in shape)
                if not err <= bound:
                    print(f"cpu-scipy,{prec},{sname},{bc},nan,nan,nan,nan,{err:.3e},"
                          f"{a.workers},{tag},VALIDATION_FAILED", flush=True)
                    status = 1
                    continue
                times = []
                for _ in range(a.reps):
                    t0 = time.perf_counter()
                    solve(f)
                    times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                print(f"cpu-scipy,{prec},{sname},{bc},{med:.6e},{min(times):.6e},"
                      f"{max(times):.6e},{n / med:.4e},{err:.3e},{a.workers},{tag}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
