#!/usr/bin/env python3
"""pykeops peer of bench/interaction_bench.c: the same SQDIST problems through KeOps.

Two formulations, each a CSV row in the C benchmark's columns:
  keops        the documented LazyTensor route: S = -lam*((x_i - y_j)**2).sum(-1), then
               S.logsumexp(dim=1) for lse and S.sumsoftmaxweight(y_j, dim=1) for out
               (two passes over the keys, as a KeOps user would write it);
  keops-1pass  one Genred "Max_SumShiftExpWeight" reduction with weight [1, y_j], which
               returns (max, sum exp, sum exp*y) in a single pass; lse and out follow on the
               host. This is the fastest way KeOps offers to get both outputs.
KeOps compiles each formula at its first call: that call is the warm-up, excluded from the
timings, and its latency is reported separately on stderr ("first call").

--device cpu (default) uses pykeops.numpy and KeOps' CPU (OpenMP) backend; --device cuda uses
pykeops.torch on CUDA tensors (needs torch with a GPU) and synchronises before each clock read.
If KeOps cannot be imported or cannot compile here, prints one line "keops unavailable: REASON"
and exits 0, so scripts that run every peer go on.
"""
import contextlib
import sys
import tempfile
import time

try:
    import numpy as np

    import bench_common as bc
except ImportError as _exc:  # outside the benchmark venv (bench/peers/setup_venv.sh)
    print(f"keops unavailable: {_exc} (create the venv with bench/peers/setup_venv.sh)")
    sys.exit(0)


def unavailable(reason):
    print(f"keops unavailable: {reason}", flush=True)
    return 0


class Problem:
    """One problem on one device, with the two KeOps formulations as callables."""

    def __init__(self, x, y, lam, device, variants):
        self.lam, self.device = lam, device
        d = x.shape[1]
        if device == "cuda":
            import torch
            from pykeops.torch import Genred, LazyTensor

            self.sync = torch.cuda.synchronize
            self.x = torch.from_numpy(x).cuda()
            self.y = torch.from_numpy(y).cuda()
            self.l = torch.tensor([lam], dtype=self.x.dtype, device="cuda")
            self.to_host = lambda t: t.cpu().numpy()
            self.log = torch.log
        else:
            from pykeops.numpy import Genred, LazyTensor

            self.sync = lambda: None
            self.x, self.y = x, y
            self.l = np.array([lam], dtype=x.dtype)
            self.to_host = lambda a: a
            self.log = np.log
        self.fns = {}
        if "lazy" in variants:
            x_i = LazyTensor(self.x[:, None, :])
            y_j = LazyTensor(self.y[None, :, :])
            s_ij = -lam * ((x_i - y_j) ** 2).sum(-1)

            def lazy():
                lse = s_ij.logsumexp(dim=1)
                out = s_ij.sumsoftmaxweight(y_j, dim=1)
                return lse, out

            self.fns["keops"] = lazy
        if "1pass" in variants:
            red = Genred("-l*SqDist(x,y)", [f"x=Vi({d})", f"y=Vj({d})", "l=Pm(1)"],
                         reduction_op="Max_SumShiftExpWeight", axis=1,
                         formula2="Concat(IntCst(1),y)")

            def one_pass():
                r = red(self.x, self.y, self.l)  # columns: max, sum exp, sum exp * y
                lse = r[:, 0] + self.log(r[:, 1])
                out = r[:, 2:] / r[:, 1:2]
                return lse, out

            self.fns["keops-1pass"] = one_pass

    def run(self, name):
        lse, out = self.fns[name]()
        self.sync()
        return lse, out

    def host(self, lse, out):
        return (np.asarray(self.to_host(lse)).reshape(-1),
                np.asarray(self.to_host(out)).reshape(out.shape[0], -1))


def main():
    extra = {"device": "cpu", "variants": "lazy,1pass", "fresh": False}
    argv = []
    it = iter(sys.argv[1:])
    for a in it:  # the peer's own options; the rest go to bench_common's parser
        if a == "--device":
            extra["device"] = next(it, "cpu")
        elif a == "--variants":
            extra["variants"] = next(it, "lazy,1pass")
        elif a == "--fresh-cache":
            extra["fresh"] = True
        else:
            argv.append(a)
    if extra["device"] not in ("cpu", "cuda"):
        print("--device must be cpu or cuda", file=sys.stderr)
        return 2
    sys.argv = [sys.argv[0]] + argv
    default_reps = 10 if extra["device"] == "cuda" else 5
    args = bc.parse_args(__doc__.splitlines()[0], default_reps=default_reps)
    variants = extra["variants"].split(",")

    # KeOps prints its progress on stdout; keep stdout for CSV rows only.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            import pykeops
            if extra["device"] == "cuda":
                import torch
                if not torch.cuda.is_available():
                    raise RuntimeError("torch sees no CUDA device")
                import pykeops.torch  # noqa: F401
            else:
                import pykeops.numpy  # noqa: F401
            if extra["fresh"]:
                # A fresh build folder, so the first call includes KeOps' compilation.
                pykeops.set_build_folder(tempfile.mkdtemp(prefix="keops-bench-"))
        except Exception as exc:  # ImportError, missing compiler, no GPU...
            return unavailable(f"{type(exc).__name__}: {exc}")
    bc.note(f"pykeops {pykeops.__version__}, device {extra['device']}, build folder "
            f"{pykeops.get_build_folder()}")
    if not args.no_header:
        print(bc.HEADER, flush=True)
    tag = f"pykeops-{pykeops.__version__}"
    status = 0
    for n in args.sizes:
        for d in args.dims:
            x, y = bc.make_data(n, d, args.dtype)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    prob = Problem(x, y, args.lam, extra["device"], variants)
            except Exception as exc:
                return unavailable(f"{type(exc).__name__}: {exc}")
            for name in prob.fns:
                device = f"{extra['device']}-{name}"
                t0 = time.perf_counter()
                try:
                    with contextlib.redirect_stdout(sys.stderr):
                        lse, out = prob.run(name)  # warm-up: compiles (or loads) the formula
                except Exception as exc:
                    return unavailable(f"{name} failed at its first call: "
                                       f"{type(exc).__name__}: {exc}")
                first = time.perf_counter() - t0
                lse_h, out_h = prob.host(lse, out)
                out_err, lse_err = bc.validate(x, y, args.lam, lse_h, out_h)
                bc.note(f"{device} {args.precision} N=M={n} d={d}: first call {first:.3g} s; "
                        f"out rel err {out_err:.3g}, lse abs err {lse_err:.3g}")
                if not (out_err <= args.tol and lse_err <= args.tol):
                    print(f"VALIDATION FAILED: {device} N=M={n} d={d}; not timed", file=sys.stderr)
                    print(bc.failed_row(device, args, n, d, out_err, lse_err, tag), flush=True)
                    status = 1
                    continue
                med, tmin, tmax = bc.time_reps(lambda: prob.run(name), args.reps)
                print(bc.csv_row(device, args, n, d, med, tmin, tmax, out_err, lse_err, tag),
                      flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
