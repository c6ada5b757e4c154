#!/usr/bin/env python3
"""PyTorch CPU peer of bench/sampling_bench.c: the closed-form sampler of sampling_numpy.py
(same problems, methods, validation and CSV columns) with the denoiser in torch: for blocks of
particles, scores s = (t/b^2) z.y^T - (t^2/(2 b^2)) |y|^2 by torch.addmm (BLAS), torch.softmax
over the data, and D = softmax @ y. Device "cpu-torch"; threads from --threads (else
OMP_NUM_THREADS) through torch.set_num_threads. If torch cannot be imported it prints
"torch unavailable: REASON" and exits 0.
"""
import os
import sys

import numpy as np

import sampling_numpy as sn


def main():
    args = sn.parse_args(__doc__.splitlines()[0])
    try:
        import torch
    except Exception as exc:  # optional peer
        print(f"torch unavailable: {type(exc).__name__}: {exc}", flush=True)
        return 0
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    sn.note(f"torch {torch.__version__}; {torch.get_num_threads()} threads")
    tdtype = torch.float32 if args.precision == "f32" else torch.float64
    block_bytes = int(args.block_mb * (1 << 20))

    def make_den(y):
        y2 = (y * y).sum(dim=1)
        n = y.shape[0]
        rows = max(1, block_bytes // (n * y.element_size()))

        def den(t, z):
            b = 1.0 - t
            c2 = y2 * (t * t / (2.0 * b * b))
            out = torch.empty_like(z)
            for a in range(0, z.shape[0], rows):
                e = min(z.shape[0], a + rows)
                # s = -c2 + (t/b^2) z y^T (one GEMM), then a softmax over the data points
                s = torch.addmm(-c2, z[a:e], y.T, beta=1.0, alpha=t / (b * b))
                torch.mm(torch.softmax(s, dim=1), y, out=out[a:e])
            return out
        return den

    def make_randn(seed):
        gen = torch.Generator().manual_seed(seed)
        return lambda shape, step: torch.randn(shape, generator=gen, dtype=tdtype)

    return sn.run_all("cpu-torch", f"torch-{torch.__version__}", args, make_den,
                      lambda a: torch.from_numpy(np.ascontiguousarray(a)),
                      lambda a: a.numpy(), make_randn)


if __name__ == "__main__":
    sys.exit(main())
