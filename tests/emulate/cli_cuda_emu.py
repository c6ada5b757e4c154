#!/usr/bin/env python3
"""The command-line tool on the emulated CUDA device (advect built against the emulated backend,
tests/emulate.cmake): `advect sample`, `advect bbot --particles` and `advect poisson` with
--device cuda must give the results of --device cpu (same problem, same seed), within float32
or float64 rounding of two different summation orders, and write the same files. Then, with
the shim's probe switches (cuda_runtime_shim.cpp) making cudaGetDeviceCount fail as without a
device (100) or without a driver (35, driver version 0): `advect info` says plainly that no GPU
is usable and why (text and JSON), `sample --device auto` runs on the CPU, and
`sample --device cuda` exits 2 with the reason on one line.
usage: cli_cuda_emu.py ADVECT_EMU_BINARY   (no numpy needed: .npy files are read with struct)"""
import json
import os
import struct
import subprocess
import sys
import tempfile

failures = 0


def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print("FAIL:", what)


def read_npy(path):
    """(shape, values) of a little-endian float32/float64 C-order .npy file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    hlen = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else struct.unpack("<I", data[8:12])[0]
    start = 10 if data[6] == 1 else 12
    header = data[start:start + hlen].decode("latin1")
    fmt = "f" if "'<f4'" in header else "d"
    shape = tuple(int(s) for s in header.split("'shape': (")[1].split(")")[0].split(",") if s.strip())
    body = data[start + hlen:]
    return shape, struct.unpack("<%d%s" % (len(body) // struct.calcsize(fmt), fmt), body)


def run(binary, args, cwd):
    p = subprocess.run([binary] + args, cwd=cwd, capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, "advect %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr[-400:]))
    return json.loads(p.stdout) if p.returncode == 0 and "--json" in args else None


def compare(a, b, tol, what):
    if not (os.path.exists(a) and os.path.exists(b)):
        check(False, "%s: output missing" % what)
        return
    (sa, va), (sb, vb) = read_npy(a), read_npy(b)
    check(sa == sb, "%s: shapes %s and %s" % (what, sa, sb))
    scale = max([abs(v) for v in vb] + [1e-300])
    err = max([abs(x - y) for x, y in zip(va, vb)] + [0.0])
    check(err <= tol * scale, "%s: |cuda - cpu| = %.3g of %.3g (tol %.1g relative)" % (what, err, scale, tol))


def no_usable_gpu(binary, d):
    cases = [("100", None, "cudaErrorNoDevice (100): no CUDA-capable device is detected"),
             ("35", "0", "no NVIDIA driver is installed")]
    for err, driver, why in cases:
        env = dict(os.environ, ADVECT_EMU_DEVICE_COUNT_ERROR=err)
        env.pop("ADVECT_EMU_DRIVER_VERSION", None)
        if driver is not None:
            env["ADVECT_EMU_DRIVER_VERSION"] = driver
        tag = "probe error %s" % err

        def tool(*args):
            return subprocess.run([binary] + list(args), cwd=d, env=env, capture_output=True,
                                  text=True, timeout=600)
        p = tool("info")
        check(p.returncode == 0 and "gpu: none usable (" in p.stdout and why in p.stdout
              and "  gpu 0:" not in p.stdout, "%s: advect info says %r" % (tag, p.stdout))
        p = tool("info", "--json")
        j = json.loads(p.stdout) if p.returncode == 0 else {}
        check(j.get("usable_gpus") == 0 and j.get("gpus") == [] and why in j.get("no_gpu_reason", ""),
              "%s: advect info --json says %r" % (tag, p.stdout))
        small = ["sample", "--toy", "moons", "--n", "50", "--steps", "4", "--out", "nogpu.npy",
                 "--plot", "nogpu.png", "--json", "--quiet"]
        p = tool(*small, "--device", "auto")
        j = json.loads(p.stdout) if p.returncode == 0 else {}
        check(j.get("device") == "cpu", "%s: --device auto: rc %d, %r %r" % (tag, p.returncode, p.stdout, p.stderr))
        p = tool(*small, "--device", "cuda")
        check(p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
              and "no usable CUDA device" in p.stderr and why in p.stderr,
              "%s: --device cuda: rc %d, stderr %r" % (tag, p.returncode, p.stderr))


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as d:
        # Sampling, float32: the interaction sums in another order differ by a few ulp per
        # step, which the flow amplifies over 12 steps to t = 0.9 (seen: 4e-6 to 1e-5 of the
        # samples' scale for the ODEs, 3e-5 for the SDE), so 3e-4 relative.
        for method in ["euler", "heun", "dopri5", "ddim", "dpm2m", "sde"]:
            for dev in ["cuda", "cpu"]:
                j = run(binary, ["sample", "--toy", "moons", "--n", "400", "--method", method,
                                 "--steps", "12", "--t-end", "0.9", "--seed", "3", "--device", dev,
                                 "--out", "%s_%s.npy" % (method, dev), "--plot", "%s_%s.png" % (method, dev),
                                 "--json", "--quiet"], d)
                if j:
                    check(j["device"] == dev, "sample --device %s ran on %s" % (dev, j["device"]))
            compare(os.path.join(d, method + "_cuda.npy"), os.path.join(d, method + "_cpu.npy"), 3e-4,
                    "sample --method " + method)
        # Benamou-Brenier, float64: the same iterations, ρ within 1e-11 relative (seen: 6e-15);
        # particles drawn from ρ0 and advected through the solution's velocity field.
        res = {}
        for dev in ["cuda", "cpu"]:
            res[dev] = run(binary, ["bbot", "--iters", "25", "--time-steps", "8", "--device", dev,
                                    "--out", "bb_%s.npy" % dev, "--frames", "bb_%s.png" % dev,
                                    "--particles", "300", "--json", "--quiet"], d)
        if res["cuda"] and res["cpu"]:
            c, p = res["cuda"]["cost"], res["cpu"]["cost"]
            check(abs(c - p) <= 1e-12 * abs(p), "bbot cost %.17g (cuda) vs %.17g (cpu)" % (c, p))
            check(res["cuda"]["iterations"] == res["cpu"]["iterations"], "bbot iterations differ")
            compare(os.path.join(d, "bb_cuda.npy"), os.path.join(d, "bb_cpu.npy"), 1e-11, "bbot rho")
            compare(os.path.join(d, "bb_cuda_particles.npy"), os.path.join(d, "bb_cpu_particles.npy"),
                    1e-9, "bbot particles")  # (seen: 5e-11 relative)
        # Poisson, float64: 1e-12 relative (seen: 6e-16).
        rhs = os.path.join(d, "rhs.npy")
        vals = [((7 * i) % 11 - 5.0) / 3.0 for i in range(12 * 10)]
        mean = sum(vals) / len(vals)
        vals = [v - mean for v in vals]
        header = "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 10), }"
        header += " " * (128 - 10 - 1 - len(header)) + "\n"  # the data starts 64-byte aligned
        with open(rhs, "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
            f.write(struct.pack("<%dd" % len(vals), *vals))
        for dev in ["cuda", "cpu"]:
            run(binary, ["poisson", "--rhs", rhs, "--bc", "neumann,periodic", "--spacing", "0.1,0.3",
                         "--out", "u_%s.npy" % dev, "--device", dev], d)
        compare(os.path.join(d, "u_cuda.npy"), os.path.join(d, "u_cpu.npy"), 1e-12, "poisson")
        no_usable_gpu(binary, d)
    print("cli_cuda_emu: %d failures" % failures)
    return 1 if failures else 0


sys.exit(main())
