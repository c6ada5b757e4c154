#!/usr/bin/env python3
"""End-to-end test of `advect info` (and of the bare command: `advect` alone prints its usage on
stderr and exits 2, `advect help` on stdout with 0, an unknown command exits 2 with one line
naming it): --help exits 0, an unknown option exits 2 with one line on
stderr, and the text and --json reports agree with each other and with themselves: every GPU
listed has a usability flag (and a reason when not usable), usable_gpus counts the usable
ones, and with none usable both reports give a reason.
usage: info.py ADVECT_BINARY [EXPECTED_USABLE_GPUS]   (an emulated-device build expects 1)"""
import json
import subprocess
import sys

failures = 0


def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print("FAIL:", what)


def run(*args):
    p = subprocess.run([sys.argv[1], "info", *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def run_top(*args):
    p = subprocess.run([sys.argv[1], *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


rc, out, err = run_top()
check(rc == 2 and out == "" and "usage: advect <command>" in err, f"bare advect: rc {rc}, stderr {err!r}")
rc, out, err = run_top("help")
check(rc == 0 and err == "" and "usage: advect <command>" in out, f"advect help: rc {rc}, stdout {out!r}")
rc, out, err = run_top("frobnicate")
check(rc == 2 and out == "" and err == "advect: unknown command 'frobnicate' (try 'advect help')\n",
      f"unknown command: rc {rc}, stderr {err!r}")

rc, out, err = run("--help")
check(rc == 0 and "usage: advect info" in out, f"--help: rc {rc}, stdout {out!r}")
rc, out, err = run("--bogus")
check(rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--bogus" in err,
      f"unknown option: rc {rc}, stderr {err!r}")

rc, out, err = run("--json")
check(rc == 0, f"--json: rc {rc}, stderr {err!r}")
report = json.loads(out)
for key in ("version", "cpu", "openmp", "cuda_compiled", "cuda_runtime_version",
            "cuda_architectures", "gpus", "usable_gpus", "no_gpu_reason"):
    check(key in report, f"--json lacks {key}")
gpus = report["gpus"]
usable = [g for g in gpus if g["usable"]]
check(report["usable_gpus"] == len(usable), f"usable_gpus {report['usable_gpus']} vs {gpus}")
for g in gpus:
    check(g["usable"] or g["reason"], f"unusable GPU without a reason: {g}")
    check(g["name"] and g["compute"].count(".") == 1, f"GPU entry: {g}")
if not usable:
    check(report["no_gpu_reason"] != "", "no usable GPU and no reason")
if not report["cuda_compiled"]:
    check(gpus == [] and "not compiled" in report["no_gpu_reason"], f"no CUDA build: {report}")
if len(sys.argv) > 2:
    check(len(usable) == int(sys.argv[2]), f"expected {sys.argv[2]} usable GPUs: {gpus}")

rc, out, err = run()
check(rc == 0 and out.startswith("advect " + report["version"]), f"text: rc {rc}, {out!r}")
check(("gpu: none usable (" in out) == (not usable), f"text and JSON disagree: {out!r}")
check(out.count("not usable (") == len(gpus) - len(usable), f"text lists: {out!r}")

print(f"advect info: {len(gpus)} GPU(s) reported, {len(usable)} usable; "
      + ("passed" if failures == 0 else f"{failures} failure(s)"))
sys.exit(1 if failures else 0)
