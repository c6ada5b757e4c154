#!/usr/bin/env bash
# CPU side-by-side sampling benchmark: advect (bench/sampling_bench) against the same
# closed-form sampler in blocked NumPy and in PyTorch CPU (bench/peers/sampling_*.py) on the
# same problems (empirical target, linear schedule, sigma = 1, f32, K uniform steps), with the
# same thread count on every side, then a table of median times, ratios and advect's
# interaction share.
#
# usage: bench/run_sampling.sh [--quick | --full | --issue-sizes] [--no-peers] [--threads T]
#                              [--data-sizes L] [--particles L] [--dims L] [--methods L]
#                              [--steps K] [--reps R] [BUILD_DIR]
#   BUILD_DIR     an existing build tree (ADVECT_BUILD_BENCH=ON); default: configures and
#                 builds build-bench-cpu in the repository root
#   defaults      n = 1e4; N = 1e4; d = 2; every method (euler, heun, midpoint, rk4, dopri5,
#                 ddim, dpm2m, sde; the peers have no dopri5); K = 20; 5 reps
#   --quick       n = 2000, N = 2000, d = 2, every method, 3 reps (a check that all runs)
#   --full        n = 1e4,1e5; N = 1e4; d = 2,64 (several hours on 2 cores, most of it NumPy)
#   --issue-sizes n = 1e4,1e5; N = 1e4,1e5,1e6 (the issue's range: hours on a small CPU, meant
#                 for a large one; pair it with --no-peers, --dims 2, --methods)
#   --no-peers    advect only
#   Options after a preset override it (--quick --methods euler,dopri5).
# Environment: ADVECT_BENCH_VENV (default bench/.venv; created by bench/peers/setup_venv.sh).
# CSV files and logs go to BUILD_DIR/bench-results/sampling-DATE/.
# Exit status: non-zero when advect's validation failed or its benchmark errored.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

threads="" build="" data="1e4" parts="1e4" dims="2" methods="euler,heun,midpoint,rk4,dopri5,ddim,dpm2m,sde"
steps=20 reps=5 peers=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) data="2000"; parts="2000"; dims="2"; reps=3 ;;
        --full) data="1e4,1e5"; parts="1e4"; dims="2,64" ;;
        --issue-sizes) data="1e4,1e5"; parts="1e4,1e5,1e6" ;;
        --no-peers) peers=0 ;;
        --threads) threads="$2"; shift ;;
        --data-sizes) data="$2"; shift ;;
        --particles) parts="$2"; shift ;;
        --dims) dims="$2"; shift ;;
        --methods) methods="$2"; shift ;;
        --steps) steps="$2"; shift ;;
        --reps) reps="$2"; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        -*) echo "run_sampling.sh: unknown option $1" >&2; exit 2 ;;
        *) build="$1" ;;
    esac
    shift
done
threads="${threads:-$(nproc)}"
problem=(--data-sizes "$data" --particles "$parts" --dims "$dims" --methods "$methods"
         --steps "$steps" --reps "$reps")

if [ -z "$build" ]; then
    build="$root/build-bench-cpu"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DADVECT_CUDA=OFF \
        -DADVECT_BUILD_TESTS=OFF -DADVECT_BUILD_BENCH=ON >/dev/null || exit 2
fi
cmake --build "$build" --target sampling_bench -j2 >/dev/null || exit 2
bench_exe="$build/bench/sampling_bench"
[ -x "$bench_exe" ] || { echo "run_sampling.sh: $bench_exe not built" >&2; exit 2; }
results="$build/bench-results/sampling-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"

# Same thread count everywhere: OpenMP (advect), OpenBLAS (NumPy), torch.set_num_threads.
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
echo "== sampling benchmark: f32, n in {$data}, N in {$parts}, d in {$dims}, {$methods}, K=$steps, $reps reps, $threads threads"
echo "== results in $results"

"$bench_exe" --device cpu --precision f32 "${problem[@]}" >"$results/advect.csv" 2>"$results/advect.log"
advect_rc=$?
[ "$advect_rc" = 0 ] || { echo "!! advect benchmark exited $advect_rc:"; grep -E 'FAILED|sampling_bench:' "$results/advect.log"; }

venv=""
[ "$peers" = 1 ] && venv="${ADVECT_BENCH_VENV:-$here/.venv}"
if [ -n "$venv" ] && [ ! -x "$venv/bin/python" ]; then
    echo "== creating the peers' venv ($venv)"
    ADVECT_BENCH_VENV="$venv" "$here/peers/setup_venv.sh" || venv=""
fi
if [ -n "$venv" ]; then
    py="$venv/bin/python"
    # Unset for the NumPy peer only: they slow current NumPy's OpenBLAS down.
    (unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
     "$py" "$here/peers/sampling_numpy.py" "${problem[@]}" >"$results/numpy.csv" \
        2>"$results/numpy.log") || echo "!! numpy peer exited $?"
    grep -E '^# numpy' "$results/numpy.log"
    "$py" "$here/peers/sampling_torch.py" --threads "$threads" "${problem[@]}" \
        >"$results/torch.csv" 2>"$results/torch.log" || echo "!! torch peer exited $?"
    grep -h 'unavailable' "$results/torch.csv"
    grep -E '^# torch' "$results/torch.log"
fi

python3 - "$results" <<'PY'
import csv, os, sys
res = sys.argv[1]
rows = {}
for name in ("advect", "numpy", "torch"):
    path = os.path.join(res, name + ".csv")
    if not os.path.exists(path):
        continue
    with open(path) as f:
        lines = [l for l in f if l.count(",") >= 14]
    for r in csv.DictReader(lines):
        try:
            t = float(r["median_s"])
        except ValueError:
            continue
        if t != t:  # nan: failed validation
            continue
        key = (r["method"], int(r["n_data"]), int(r["n_particles"]), int(r["d"]))
        rows.setdefault(key, {})[r["device"]] = (t, r["interaction_share"])

fmt = lambda t: f"{t:10.4g}" if t is not None else "       n/a"
ratio = lambda a, b: f"{a / b:9.2f}x" if a is not None and b is not None else "       n/a"
print()
print(f"{'case (f32)':<36}{'advect s':>10}{'numpy s':>10}{'torch s':>10}"
      f"{'numpy/adv':>10}{'torch/adv':>10}{'adv share':>10}")
order = ("euler", "heun", "midpoint", "rk4", "dopri5", "ddim", "dpm2m", "sde")
rank = lambda m: order.index(m) if m in order else len(order)
for key in sorted(rows, key=lambda k: (k[1], k[2], k[3], rank(k[0]))):
    r = rows[key]
    adv = r.get("cpu", (None, ""))
    npy = r.get("cpu-numpy", (None, ""))[0]
    trc = r.get("cpu-torch", (None, ""))[0]
    name = f"{key[0]} n={key[1]} N={key[2]} d={key[3]}"
    print(f"{name:<36}{fmt(adv[0])}{fmt(npy)}{fmt(trc)}{ratio(npy, adv[0])}{ratio(trc, adv[0])}"
          f"{adv[1]:>10}")
print("ratios > 1: advect faster (n/a: a side has no validated row; the peers have no dopri5)")
print("adv share = share of advect's run inside the interaction sum (dopri5: measured over one "
      "run, inside its field evaluations)")
PY
exit "$advect_rc"
