#!/usr/bin/env bash
# Per-kernel GPU profile, for a machine where bench/gpu.sh has just built build-gpu: Nsight
# Compute (ncu) times every kernel of three Benamou-Brenier iterations at 128^2 x 64 (where the
# time of an iteration goes, against the 0.5 ms target), and reads the issue counters of one
# launch of the interaction sum's direct kernel at N = M = 1e6, d = 2 (instructions per pair and
# issue efficiency, against the 2e12 pairs/s target). Diagnostics only: no test, no pass/fail;
# ncu may be missing or unable to read counters (then it says so and exits 0). Clocks are left
# alone (--clock-control none). Prints a short table last.
#
# usage: bench/gpu_profile.sh [--results DIR]   (default build-gpu/gpu-results)
# Environment: ADVECT_PROFILE_BUDGET_S  time budget in seconds (default 90)
set -uo pipefail
start=$SECONDS
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-gpu"
results="$build/gpu-results"
[ "${1:-}" = "--results" ] && results="$2"
budget="${ADVECT_PROFILE_BUDGET_S:-90}"
left() { echo $((budget - (SECONDS - start))); }
say() { echo "[gpu_profile.sh $((SECONDS - start))s] $*"; }

ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)"
if [ -z "$ncu" ]; then
    echo "profile : ncu not found, nothing profiled"
    exit 0
fi
for exe in bbot_bench interaction_bench; do
    if [ ! -x "$build/bench/$exe" ]; then
        echo "profile : $build/bench/$exe missing (run bench/gpu.sh first)"
        exit 0
    fi
done
mkdir -p "$results"

say "Benamou-Brenier kernels, 128x128:64 f64, 3 iterations"
timeout -k 5 "$(( $(left) < 60 ? $(left) : 60 ))" "$ncu" --clock-control none --csv \
    --print-units base --metrics gpu__time_duration.sum \
    "$build/bench/bbot_bench" --device cuda --grids 128x128:64 --iters 3 --no-converge \
    >"$results/profile_bbot.csv" 2>"$results/profile_bbot.log"
say "ncu exited $? (124: timeout)"

say "interaction direct kernel, N=M=1e6, d=2, f32, one launch"
timeout -k 5 "$(( $(left) < 60 ? $(left) : 60 ))" "$ncu" --clock-control none --csv \
    --print-units base --kernel-name regex:direct_kernel --launch-skip 1 --launch-count 1 \
    --metrics gpu__time_duration.sum,sm__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active,sm__cycles_elapsed.avg.per_second \
    "$build/bench/interaction_bench" --device cuda --precision f32 --sizes 1000000 --dims 2 \
    --reps 2 >"$results/profile_interaction.csv" 2>"$results/profile_interaction.log"
say "ncu exited $? (124: timeout)"

python3 - "$results" <<'EOF'
import csv, io, os, sys
res = sys.argv[1]
def rows(name):
    path = os.path.join(res, name)
    if not os.path.exists(path):
        return []
    text = open(path, errors="replace").read()
    start = text.find('"ID"')  # ncu's CSV starts at its header line; program output precedes it
    return list(csv.DictReader(io.StringIO(text[start:]))) if start >= 0 else []
bb = [r for r in rows("profile_bbot.csv") if r.get("Metric Name") == "gpu__time_duration.sum"]
if bb:
    tot = {}
    for r in bb:
        name = r["Kernel Name"].replace("(anonymous namespace)::", "")
        name = name[5:] if name.startswith("void ") else name
        name = name.split("(")[0][:48]
        n, t = tot.get(name, (0, 0.0))
        tot[name] = (n + 1, t + float(r["Metric Value"].replace(",", "")))
    print("Benamou-Brenier 128^2 x 64 f64 under ncu (3 iterations plus setup and finalisation):")
    for name, (n, t) in sorted(tot.items(), key=lambda kv: -kv[1][1]):
        print(f"  {name:<48} {n:4d} launches {t / 1e3:9.1f} us total {t / n / 1e3:8.1f} us each")
    print(f"  all kernels: {sum(t for _, t in tot.values()) / 1e3:.1f} us")
else:
    print("Benamou-Brenier profile: no kernel rows (see profile_bbot.log)")
it = rows("profile_interaction.csv")
m = {r["Metric Name"]: r["Metric Value"].replace(",", "") for r in it}
if "gpu__time_duration.sum" in m:
    t = float(m["gpu__time_duration.sum"]) * 1e-9
    inst = float(m.get("sm__inst_executed.sum", "nan"))
    pairs = 1e12
    print(f"interaction direct kernel, N=M=1e6, d=2, f32 ({it[0]['Kernel Name'][:60]}):")
    print(f"  {t * 1e3:.1f} ms = {pairs / t:.3g} pairs/s; {inst * 32 / pairs:.2f} thread instructions per pair "
          f"(warp instructions x 32); issue active {m.get('smsp__issue_active.avg.pct_of_peak_sustained_active', '?')} %, "
          f"warps active {m.get('sm__warps_active.avg.pct_of_peak_sustained_active', '?')} %, "
          f"SM clock {float(m.get('sm__cycles_elapsed.avg.per_second', 'nan')) / 1e9:.3g} GHz")
else:
    print("interaction profile: no metrics (see profile_interaction.log)")
EOF
exit 0
