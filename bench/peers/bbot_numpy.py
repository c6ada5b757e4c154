#!/usr/bin/env python3
"""Vectorised NumPy peer of the Benamou-Brenier solver (host/cpu/bbot_cpu.c, docs/bbot.md):
the same Papadakis-Peyre-Oudet Douglas-Rachford splitting on the same staggered space-time
grid, for the side-by-side per-iteration timing of bench/bbot_bench.c.

One iteration = the pointwise prox of gamma*|m|^2/f (closed-form cubic + Newton polish), the
projection on the continuity constraint (space-time Neumann Poisson solve by DCT-II in every
axis: scipy.fft when importable, else an FFT-based DCT written with numpy.fft), the per-line
tridiagonal least squares of the interpolation constraint (Thomas, vectorised across lines)
and the relaxed update.

Timing, as bench/bbot_bench.c does it: K = --iters iterations from the library's start (rho
linear in time, m = 0); the first is the warm-up (FFT plans, caches) and is followed by the
self-check below; the wall-clock and process CPU seconds of iterations 2..K, divided by K - 1,
are reported, with the cost and the divergence residual of iteration K (iter_cost,
iter_divres), which must agree with bbot_bench's from the same start (bench/run_grids.sh
compares them: 1e-8 relative in float64).

Self-check before timing (a failure prints a row with nan times and VALIDATION_FAILED, exit 1):
after iteration 1, the continuity projection of the iterate must satisfy the discrete
continuity equation (residual <= 1e-10 in float64, 1e-3 in float32, relative to the densities'
norm), the prox output must be finite with f >= 0, and the cost and residual finite; iteration
K's cost and residual must be finite.

CSV columns are bbot_bench's (device "cpu-numpy"; threads = scipy.fft workers; the
to-tolerance columns are -1/0/nan: the peer does not run to tolerance; commit = the NumPy and
SciPy versions).

usage: bbot_numpy.py [--grids 32x32:32,64x64:32] [--time-steps 32,32] [--iters 30]
                     [--precision f64] [--workers 1] [--gamma 1] [--mu 1.98] [--no-header]
"""
import argparse
import sys
import time

import numpy as np

try:  # scipy.fft is the fastest DCT available to NumPy code; optional
    import scipy
    import scipy.fft as _sfft
except ImportError:  # pragma: no cover - depends on the environment
    scipy = _sfft = None

_WORKERS = 1  # scipy.fft workers (--workers)

HEADER = ("device,precision,grid,P,threads,iters,per_iter_s,cpu_per_iter_s,iter_cost,iter_divres,"
          "iters_to_tol,converged,time_to_tol_s,cost,cost_rel_err,commit")


def _dct2(x, axis):
    """Unnormalised DCT-II along axis (scipy's convention: 2 sum x_n cos(pi k (2n+1) / 2N))."""
    if _sfft is not None:
        return _sfft.dct(x, type=2, axis=axis, workers=_WORKERS)
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    v = np.concatenate([x[..., ::2], x[..., 1::2][..., ::-1]], axis=-1)
    vf = np.fft.fft(v, axis=-1)
    k = np.arange(n)
    out = 2.0 * np.real(vf * np.exp(-1j * np.pi * k / (2 * n)))
    return np.moveaxis(out.astype(x.dtype, copy=False), -1, axis)


def _idct2(x, axis):
    """Inverse of _dct2 (a scaled DCT-III)."""
    if _sfft is not None:
        return _sfft.idct(x, type=2, axis=axis, workers=_WORKERS)
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    k = np.arange(n)
    w = np.exp(1j * np.pi * k / (2 * n)) * x
    w[..., 0] *= 0.5
    v = np.real(np.fft.ifft(w, axis=-1))  # Makhoul's permuted sequence
    out = np.empty_like(v)
    h = (n + 1) // 2
    out[..., ::2] = v[..., :h]
    out[..., 1::2] = v[..., h:][..., ::-1]
    return np.moveaxis(out.astype(x.dtype, copy=False), -1, axis)


class BBSolver:
    """Staggered U = (f, m_1..m_d), centred V = (fb, mb_1..mb_d); axis 0 of every array is time."""

    def __init__(self, rho0, rho1, P, gamma, mu, dtype=np.float64):
        self.dt = dtype
        self.n = rho0.shape
        self.d = len(self.n)
        self.P = P
        self.k = 1.0 / P
        self.h = [1.0 / na for na in self.n]
        self.gamma = gamma
        self.mu = mu
        cell = float(np.prod(self.h))
        r0 = rho0 / (rho0.sum() * cell)
        r1 = rho1 / (rho1.sum() * cell)
        self.rho0, self.rho1 = r0.astype(dtype), r1.astype(dtype)
        self.scale = max(np.sqrt((r0 ** 2).sum() * cell), np.sqrt((r1 ** 2).sum() * cell))
        # Eigenvalues of -Laplacian (Neumann, cell centred) on the space-time grid.
        shape = (P,) + self.n
        sp = [self.k] + self.h
        lam = np.zeros(shape)
        for ax, L in enumerate(shape):
            e = (2 - 2 * np.cos(np.pi * np.arange(L) / L)) / sp[ax] ** 2
            sh = [1] * len(shape)
            sh[ax] = L
            lam = lam + e.reshape(sh)
        lam[(0,) * len(shape)] = 1.0
        self.inv_lam = (1.0 / lam).astype(dtype)
        self.inv_lam[(0,) * len(shape)] = 0.0
        # Thomas factors of tridiag(1/4, 3/2, 1/4) for every line length.
        self.thomas = {}
        for L in set(shape):
            self.thomas[L] = self._factor(L - 1)
        # Initial iterate: linear interpolation in time, zero momentum.
        t = np.linspace(0, 1, P + 1).reshape((P + 1,) + (1,) * self.d)
        f = ((1 - t) * self.rho0 + t * self.rho1).astype(dtype)
        m = []
        for a in range(self.d):
            s = list(shape)
            s[a + 1] += 1
            m.append(np.zeros(s, dtype))
        self.zU = [f] + m
        self.zV = self.interp(self.zU)

    @staticmethod
    def _factor(n):
        cp = np.zeros(max(n, 1))
        inv = np.zeros(max(n, 1))
        for i in range(n):
            den = 1.5 - (0.25 * cp[i - 1] if i > 0 else 0.0)
            inv[i] = 1.0 / den
            cp[i] = 0.25 * inv[i]
        return cp, inv

    def interp(self, U):
        out = []
        for c, u in enumerate(U):
            ax = c if c > 0 else 0  # f: time axis 0; m_a: axis a+1 (component index c = a+1)
            out.append(0.5 * (np.take(u, range(0, u.shape[ax] - 1), axis=ax)
                              + np.take(u, range(1, u.shape[ax]), axis=ax)))
        return out

    def div(self, U):
        f = U[0]
        r = (f[1:] - f[:-1]) / self.k
        for a in range(self.d):
            r = r + np.diff(U[a + 1], axis=a + 1) / self.h[a]
        return r

    def proj_c(self, U):
        r = self.div(U)
        for ax in range(r.ndim):
            r = _dct2(r, ax)
        r *= self.inv_lam
        for ax in range(r.ndim):
            r = _idct2(r, ax)
        q = r  # -Lap q = div U, zero mean
        out = [u.copy() for u in U]
        out[0][1:-1] += np.diff(q, axis=0) / self.k
        for a in range(self.d):
            sl = [slice(None)] * q.ndim
            sl[a + 1] = slice(1, -1)
            out[a + 1][tuple(sl)] += np.diff(q, axis=a + 1) / self.h[a]
        return out

    def prox_j(self, V):
        g = self.gamma
        fb = V[0]
        m2 = sum(v * v for v in V[1:])
        a = fb + 2 * g
        c = g * m2
        disc = c * (a ** 3 / 27 + c / 4)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = a ** 3 / 27 + c / 2 + np.sqrt(np.maximum(disc, 0))
            u1 = np.cbrt(t)
            root1 = u1 + a * a / (9 * u1) + a / 3
            aa = np.abs(a)
            arg = np.clip(27 * c / (2 * aa ** 3) - 1, -1, 1)
            root3 = (2 * aa / 3) * np.cos(np.arccos(arg) / 3) - aa / 3
        G = np.where(disc >= 0, root1, root3)
        A = np.maximum(a, 0)
        G = np.where(np.isfinite(G), G, A)
        G = np.clip(G, A, A + np.cbrt(c))
        for _ in range(2):
            dphi = G * (3 * G - 2 * a)
            with np.errstate(invalid="ignore", divide="ignore"):
                step = np.where(dphi > 0, (G * G * (G - a) - c) / dphi, 0)
            G = np.clip(G - step, A, A + np.cbrt(c))
        fs = G - 2 * g
        pos = fs > 0
        scale = np.where(pos, fs / np.where(pos, G, 1), 0)
        out = [np.where(pos, fs, 0).astype(self.dt)] + [(scale * v).astype(self.dt) for v in V[1:]]
        with np.errstate(invalid="ignore", divide="ignore"):
            cost = np.where(pos, sum(v * v for v in out[1:]) / np.where(pos, out[0], 1), 0).sum()
        return out, cost * self.k * float(np.prod(self.h))

    def proj_s(self, U, V):
        """Least squares onto {V = I(U)} with the boundary faces of U fixed, per line."""
        outU, outV = [], []
        for c, (u, v) in enumerate(zip(U, V)):
            ax = c if c > 0 else 0
            u = np.moveaxis(u, ax, 0)
            v = np.moveaxis(v, ax, 0)
            L = v.shape[0]
            cp, inv = self.thomas[L]
            rhs = u[1:-1] + 0.5 * (v[:-1] + v[1:])
            rhs[0] -= 0.25 * u[0]
            rhs[-1] -= 0.25 * u[-1]
            x = np.empty_like(rhs)
            for i in range(L - 1):  # forward sweep
                x[i] = (rhs[i] - (0.25 * x[i - 1] if i > 0 else 0)) * inv[i]
            for i in range(L - 3, -1, -1):  # back substitution
                x[i] -= cp[i] * x[i + 1]
            un = u.copy()
            un[1:-1] = x
            vn = 0.5 * (un[:-1] + un[1:])
            outU.append(np.moveaxis(un, 0, ax))
            outV.append(np.moveaxis(vn, 0, ax))
        return outU, outV

    def step(self):
        U1 = self.proj_c(self.zU)
        V1, cost = self.prox_j(self.zV)
        rU = [2 * a - b for a, b in zip(U1, self.zU)]
        rV = [2 * a - b for a, b in zip(V1, self.zV)]
        U2, V2 = self.proj_s(rU, rV)
        for z, a, b in zip(self.zU, U2, U1):
            z += self.mu * (a - b)
        for z, a, b in zip(self.zV, V2, V1):
            z += self.mu * (a - b)
        cell = self.k * float(np.prod(self.h))
        divres = np.sqrt((self.div(U2) ** 2).sum() * cell) / self.scale
        return cost, divres

    def solve(self, iters, tol=0.0, verbose=False):
        prev = None
        it = 0
        for it in range(1, iters + 1):
            cost, divres = self.step()
            dc = abs(cost - prev) / max(cost, 1e-300) if prev is not None else np.inf
            prev = cost
            if verbose and (it % 100 == 0 or it == 1):
                print(f"it {it} cost {cost:.6g} divres {divres:.3e} dcost {dc:.3e}",
                      file=sys.stderr)
            if tol > 0 and divres < tol and dc < tol:
                break
        U1 = self.proj_c(self.zU)
        V1, cost = self.prox_j(self.zV)
        return U1, V1, cost, it


def bump(n, centres, sigma):
    axes = [(np.arange(na) + 0.5) / na for na in n]
    grid = np.meshgrid(*axes, indexing="ij")
    out = np.zeros(n)
    for c in centres:
        out += np.exp(-sum((g - ci) ** 2 for g, ci in zip(grid, c)) / (2 * sigma ** 2))
    return out


def self_check(s):
    """Invariants of one iteration's pieces on the current iterate (see the module doc).
    Returns (ok, message)."""
    tol = 1e-10 if s.dt == np.float64 else 1e-3
    cell = s.k * float(np.prod(s.h))
    U1 = s.proj_c(s.zU)
    cont = float(np.sqrt((s.div(U1).astype(np.float64) ** 2).sum() * cell) / s.scale)
    V1, cost = s.prox_j(s.zV)
    finite = all(np.all(np.isfinite(v)) for v in V1) and np.isfinite(cost)
    positive = bool(np.all(V1[0] >= 0))
    ok = cont <= tol and finite and positive
    return ok, (f"continuity residual of the projection {cont:.3g} (tol {tol:g}), prox output "
                f"{'finite' if finite else 'NOT finite'}, f {'>= 0' if positive else 'NEGATIVE'}")


def main():
    global _WORKERS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grids", default="32x32:32,64x64:32",
                   help="space grids, optionally with time steps: 64x64:32,32x32x32:32")
    p.add_argument("--time-steps", default="",
                   help="P per grid without ':P' (default: N/2 except 32^2: 32)")
    p.add_argument("--iters", type=int, default=30, help="iterations K (>= 2; default 30)")
    p.add_argument("--precision", choices=("f32", "f64"), default="f64")
    p.add_argument("--workers", type=int, default=1,
                   help="scipy.fft workers (default 1, scipy's default; -1: all cores)")
    p.add_argument("--gamma", type=float, default=1.0,
                   help="prox step for densities of mean 1 (the library's default, 1)")
    p.add_argument("--mu", type=float, default=1.98)
    p.add_argument("--no-header", action="store_true")
    args = p.parse_args()
    if args.iters < 2:
        p.error("--iters must be >= 2")
    _WORKERS = args.workers
    dtype = np.float32 if args.precision == "f32" else np.float64
    specs = []
    for g in args.grids.split(","):
        if g:
            space, _, steps = g.partition(":")
            specs.append((tuple(int(v) for v in space.split("x")), int(steps) if steps else None))
    steps = [int(s) for s in args.time_steps.split(",") if s]
    fft = f"scipy-{scipy.__version__}" if _sfft is not None else "numpy.fft"
    tag = f"numpy-{np.__version__}+{fft}"
    print(f"# bbot_numpy: numpy {np.__version__}, DCT by {fft}, workers {_WORKERS}",
          file=sys.stderr, flush=True)
    if not args.no_header:
        print(HEADER, flush=True)
    status = 0
    for gi, (n, P) in enumerate(specs):
        if P is None:
            P = steps[gi] if gi < len(steps) else (32 if max(n) <= 32 else max(n) // 2)
        d = len(n)
        gname = "x".join(map(str, n))
        # The C benchmark's problem: a bump (sigma 0.06) translated by 0.2 along every axis.
        r0 = bump(n, [[0.35] * d], 0.06)
        r1 = bump(n, [[0.55] * d], 0.06)
        s = BBSolver(r0, r1, P, args.gamma, args.mu, dtype)
        cost, divres = s.step()  # iteration 1: warm-up (FFT plans, caches)
        ok, msg = self_check(s)
        ok = ok and bool(np.isfinite(cost)) and bool(np.isfinite(divres))
        per = cpu = float("nan")
        if ok:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.iters - 1):
                cost, divres = s.step()
            per = (time.perf_counter() - t0) / (args.iters - 1)
            cpu = (time.process_time() - c0) / (args.iters - 1)
            if not (np.isfinite(cost) and np.isfinite(divres)):
                ok, msg = False, msg + f"; iteration {args.iters}: cost {cost}, residual {divres}"
                per = cpu = float("nan")
        print(f"# {gname} P {P} {args.precision}: {msg}", file=sys.stderr, flush=True)
        if not ok:
            print(f"VALIDATION FAILED: {gname} P {P}", file=sys.stderr, flush=True)
            status = 1
        print(f"cpu-numpy,{args.precision},{gname},{P},{_WORKERS},{args.iters},{per:.6e},"
              f"{cpu:.6e},{float(cost):.15e},{float(divres):.15e},-1,0,nan,nan,nan,{tag}"
              + ("" if ok else ",VALIDATION_FAILED"), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
