#!/usr/bin/env bash
# CPU side-by-side benchmark of the interaction sum: advect (bench/interaction_bench) against
# blocked NumPy and pykeops on the same problems (SQDIST, float32, values = keys, lambda = 1),
# with the same thread count for everyone, then a table of times and ratios.
#
# usage: bench/run_cpu.sh [--full] [--quick] [--no-peers] [--threads T] [BUILD_DIR]
#   BUILD_DIR   an existing build tree to use (must have ADVECT_BUILD_BENCH=ON); default: the
#               script configures and builds build-bench-cpu in the repository root
#   --full      also N = M = 65536 (slow on a small machine)
#   --quick     N = M = 4096 only, 3 repetitions
#   --no-peers  advect only
#   --threads T threads for all sides (default: all cores, nproc)
# Environment: ADVECT_BENCH_VENV (the peers' venv, default bench/.venv; created by
# bench/peers/setup_venv.sh when missing). CSV files and logs go to BUILD_DIR/bench-results/.
# Exit status: non-zero when advect's validation failed or its benchmark errored.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

full=0 quick=0 peers=1 threads="" build=""
while [ $# -gt 0 ]; do
    case "$1" in
        --full) full=1 ;;
        --quick) quick=1 ;;
        --no-peers) peers=0 ;;
        --threads) threads="$2"; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) echo "run_cpu.sh: unknown option $1" >&2; exit 2 ;;
        *) build="$1" ;;
    esac
    shift
done
threads="${threads:-$(nproc)}"
sizes="4096,16384"
[ "$full" = 1 ] && sizes="4096,16384,65536"
reps=5
if [ "$quick" = 1 ]; then sizes="4096"; reps=3; fi
dims="2,3,16,64"

# ---- build (or reuse) ----
if [ -z "$build" ]; then
    build="$root/build-bench-cpu"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DADVECT_CUDA=OFF \
        -DADVECT_BUILD_TESTS=OFF -DADVECT_BUILD_BENCH=ON >/dev/null || exit 2
fi
cmake --build "$build" --target interaction_bench -j2 >/dev/null || exit 2
bench_exe="$build/bench/interaction_bench"
[ -x "$bench_exe" ] || { echo "run_cpu.sh: $bench_exe not built" >&2; exit 2; }
results="$build/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"

# Same thread count on every side: OpenMP (advect, KeOps) and OpenBLAS (NumPy).
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
echo "== interaction-sum CPU benchmark: f32, N=M in {$sizes}, d in {$dims}, $reps reps, $threads threads"
echo "== results in $results"

# ---- advect ----
"$bench_exe" --device cpu --precision f32 --sizes "$sizes" --dims "$dims" --reps "$reps" \
    >"$results/advect.csv" 2>"$results/advect.log"
advect_rc=$?
grep -E '^#|FAILED|interaction_bench:' "$results/advect.log" | head -3
[ "$advect_rc" = 0 ] || { echo "!! advect benchmark exited $advect_rc:"; grep -E 'FAILED|interaction_bench:' "$results/advect.log"; }

# ---- peers ----
if [ "$peers" = 1 ]; then
    venv="${ADVECT_BENCH_VENV:-$here/.venv}"
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating the peers' venv ($venv)"
        ADVECT_BENCH_VENV="$venv" "$here/peers/setup_venv.sh" || peers=0
    fi
fi
if [ "$peers" = 1 ]; then
    py="$venv/bin/python"
    # These two variables (set on some machines for other software) slow current NumPy's
    # OpenBLAS down; unset them for the NumPy peer only.
    (unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
     "$py" "$here/peers/interaction_numpy.py" --sizes "$sizes" --dims "$dims" --reps "$reps" \
        >"$results/numpy.csv" 2>"$results/numpy.log") || echo "!! numpy peer exited $?"
    grep -E '^# numpy' "$results/numpy.log"
    "$py" "$here/peers/interaction_keops.py" --device cpu --sizes "$sizes" --dims "$dims" \
        --reps "$reps" >"$results/keops.csv" 2>"$results/keops.log" || echo "!! keops peer exited $?"
    grep -h 'unavailable' "$results/keops.csv"
    grep -E '^# (pykeops|cpu-keops)' "$results/keops.log" | grep -E 'pykeops|first call' | sed 's/; out rel.*//'
fi

# ---- table (standard library only) ----
python3 - "$results" <<'PY'
import csv, os, sys
res = sys.argv[1]
rows = {}
for name in ("advect", "numpy", "keops"):
    path = os.path.join(res, name + ".csv")
    if not os.path.exists(path):
        continue
    with open(path) as f:
        lines = [l for l in f if l.count(",") >= 13]
    for r in csv.DictReader(lines):
        try:
            t = float(r["median_s"])
        except ValueError:
            continue
        if t != t:  # nan: failed validation
            continue
        key = (int(r["N"]), int(r["d"]))
        rows.setdefault(key, {})[r["device"]] = t

def fmt(t):
    return f"{t:10.4g}" if t is not None else "       n/a"

def ratio(a, b):
    return f"{a / b:8.2f}x" if a is not None and b is not None else "      n/a"

print()
print(f"{'case (f32)':<18}{'advect s':>10}{'numpy s':>10}{'keops s':>10}{'keops1p s':>10}"
      f"{'numpy/adv':>10}{'keops/adv':>10}")
for (n, d) in sorted(rows):
    r = rows[(n, d)]
    adv, npy = r.get("cpu"), r.get("cpu-numpy")
    k2, k1 = r.get("cpu-keops"), r.get("cpu-keops-1pass")
    kbest = min([t for t in (k2, k1) if t is not None], default=None)
    print(f"{f'N=M={n} d={d}':<18}{fmt(adv)}{fmt(npy)}{fmt(k2)}{fmt(k1)}"
          f"{ratio(npy, adv):>10}{ratio(kbest, adv):>10}")
print("ratios > 1: advect faster; keops/adv uses the faster KeOps formulation")
PY
exit "$advect_rc"
