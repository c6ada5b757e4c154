#!/usr/bin/env bash
# CPU side-by-side benchmark of the grid solvers: advect's Poisson solve (bench/poisson_bench)
# against scipy.fft (bench/peers/poisson_scipy.py), and advect's Benamou-Brenier iteration
# (bench/bbot_bench) against the same splitting in vectorised NumPy (bench/peers/bbot_numpy.py),
# on the same systems, with 1 thread / 1 scipy.fft worker on each side and then T of each, then
# one table of our figure, the peer's beside it and the ratio (printed only where both sides
# validated).
#
# usage: bench/run_grids.sh [--quick] [--threads T] [--no-peers] [--no-converge]
#                           [--only poisson|bbot] [--poisson-grids L] [--bc L]
#                           [--precision f32|f64|both] [--reps R] [--bbot-grids L]
#                           [--bbot-precision f32|f64] [--iters K] [--table DIR] [BUILD_DIR]
#   BUILD_DIR     an existing build tree (ADVECT_BUILD_BENCH=ON); default: configures and builds
#                 build-bench-cpu in the repository root
#   defaults      Poisson: 256x256,1024x1024,64x64x64,128x128x128; periodic,neumann,dirichlet;
#                 f32 and f64; 10 reps. Benamou-Brenier: 32x32:32,64x64:32,128x128:64,
#                 32x32x32:32 (space grid:time steps); f64; K = 30 iterations, each grid first
#                 run to tolerance (1 thread) and its cost checked against the known W2^2
#   --quick       Poisson 256x256,64x64x64 in f64, 5 reps; Benamou-Brenier 32x32:32,64x64:32,
#                 K = 10
#   --threads T   the second pass's threads / workers (default nproc; T = 1: one pass only)
#   --no-converge skip the to-tolerance runs (advect's Benamou-Brenier rows are then checked
#                 only by their iterate: finite, and equal to the peer's at iteration K)
#   --no-peers    advect only (no ratios)
#   --table DIR   print the table of an earlier run's results directory again (runs nothing)
# Environment: ADVECT_BENCH_VENV (default bench/.venv; created by bench/peers/setup_venv.sh).
# CSV files and logs go to BUILD_DIR/bench-results/grids-DATE/.
# Exit status: non-zero when advect's validation failed or one of its benchmarks errored.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

threads="" build="" peers=1 converge=1 only="" table=""
pgrids="256x256,1024x1024,64x64x64,128x128x128" bcs="periodic,neumann,dirichlet" pprec="both"
reps=10 bgrids="32x32:32,64x64:32,128x128:64,32x32x32:32" bprec="f64" iters=30
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) pgrids="256x256,64x64x64"; pprec="f64"; reps=5
                 bgrids="32x32:32,64x64:32"; iters=10 ;;
        --threads) threads="$2"; shift ;;
        --no-peers) peers=0 ;;
        --no-converge) converge=0 ;;
        --only) only="$2"; shift ;;
        --poisson-grids) pgrids="$2"; shift ;;
        --bc) bcs="$2"; shift ;;
        --precision) pprec="$2"; shift ;;
        --reps) reps="$2"; shift ;;
        --bbot-grids) bgrids="$2"; shift ;;
        --bbot-precision) bprec="$2"; shift ;;
        --iters) iters="$2"; shift ;;
        --table) table="$2"; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        -*) echo "run_grids.sh: unknown option $1" >&2; exit 2 ;;
        *) build="$1" ;;
    esac
    shift
done
case "$only" in ""|poisson|bbot) ;; *) echo "run_grids.sh: --only poisson|bbot" >&2; exit 2 ;; esac
# ---- table (standard library only): print_table RESULTS_DIR ----
print_table() {
python3 - "$1" <<'PY'
import csv, math, os, sys
res = sys.argv[1]

def read(name):
    path = os.path.join(res, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [l for l in f if "," in l and not l.startswith("#")]
    rows = []
    for r in csv.DictReader(lines):
        if r.get("device") in (None, "device"):
            continue
        # A failed row ends with one more field, VALIDATION_FAILED (DictReader: key None).
        r["failed"] = "VALIDATION_FAILED" in (r.pop(None, None) or [])
        rows.append(r)
    return rows

def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan

def ok_time(t):
    return t == t and t > 0

fmt = lambda t, scale=1e3: f"{t * scale:10.4g}" if t == t else "       n/a"

# Poisson. A row is validated when its program checked the error before timing (failed rows
# are not timed: nan) and the error is within the bound (1e-8 f64, 1e-2 f32).
adv, peer = read("poisson_advect.csv"), read("poisson_scipy.csv")
if adv or peer:
    cases = {}
    for side, rows in (("adv", adv), ("peer", peer)):
        for r in rows:
            key = (r["precision"], r["shape"], r["bc"], int(r["threads"]))
            bound = 1e-8 if r["precision"] == "f64" else 1e-2
            t, err = num(r["median_s"]), num(r["max_rel_err"])
            valid = not r["failed"] and ok_time(t) and err <= bound
            cases.setdefault(key, {})[side] = (t, err, valid, r["commit"])
    commits = sorted({v[3] for c in cases.values() for v in c.values()})
    print()
    print("Poisson solve (manufactured problem, spacing 1/N, c = 0), median ms; "
          "ratio = scipy.fft / advect (> 1: advect faster)")
    print(f"{'case':<31}{'threads':>8}{'advect':>10}{'scipy':>10}{'ratio':>9}"
          f"{'adv err':>10}{'scipy err':>10}")
    bcs = ("periodic", "neumann", "dirichlet")
    order = lambda k: (k[0] != "f64", len(k[1].split("x")), int(k[1].split("x")[0]),
                       bcs.index(k[2]) if k[2] in bcs else 9, k[3])
    for key in sorted(cases, key=order):
        a = cases[key].get("adv", (math.nan, math.nan, False, ""))
        p = cases[key].get("peer", (math.nan, math.nan, False, ""))
        if ("adv" in cases[key] and not a[2]) or ("peer" in cases[key] and not p[2]):
            ratio = "  INVALID"  # some side failed its validation: no ratio
        elif "adv" in cases[key] and "peer" in cases[key]:
            ratio = f"{p[0] / a[0]:8.2f}x"
        else:
            ratio = "        -"
        e = lambda v: f"{v[1]:10.1e}" if v[1] == v[1] else "       n/a"
        print(f"{key[0] + ' ' + key[1] + ' ' + key[2]:<31}{key[3]:>8}{fmt(a[0])}{fmt(p[0])}"
              f"{ratio}{e(a)}{e(p)}")
    print("versions: " + ", ".join(commits))

# Benamou-Brenier. advect: validated by its to-tolerance run (the grid's cost against W2^2,
# bbot_bench fails the grid otherwise) unless --no-converge, and a finite iterate; the peer by
# its self-check; and both iterates at iteration K must agree (same splitting, same start).
adv, peer = read("bbot_advect.csv"), read("bbot_numpy.csv")
if adv or peer:
    w2 = {}
    for r in adv:
        if int(r["iters_to_tol"]) >= 0:
            w2[(r["precision"], r["grid"], r["P"])] = (int(r["converged"]), num(r["cost_rel_err"]),
                                                       not r["failed"])
    cases = {}
    for side, rows in (("adv", adv), ("peer", peer)):
        for r in rows:
            key = (r["precision"], r["grid"], r["P"], int(r["threads"]))
            cases.setdefault(key, {})[side] = r
    commits = sorted({r["commit"] for rows in (adv, peer) for r in rows})
    iters = sorted({r["iters"] for rows in (adv, peer) for r in rows})
    print()
    print(f"Benamou-Brenier, ms per iteration (wall; K = {','.join(iters)} iterations from the "
          "same start); ratio = NumPy / advect (> 1: advect faster)")
    print(f"{'case':<22}{'threads':>8}{'advect':>10}{'numpy':>10}{'ratio':>9}{'cpu ratio':>10}  check")
    order = lambda k: (k[0] != "f64", len(k[1].split("x")), int(k[1].split("x")[0]), k[3])
    for key in sorted(cases, key=order):
        a, p = cases[key].get("adv"), cases[key].get("peer")
        notes, valid = [], True
        ta = num(a["per_iter_s"]) if a else math.nan
        tp = num(p["per_iter_s"]) if p else math.nan
        if a:
            v = w2.get(key[:3])
            resolved = all(int(n) >= 25 for n in key[1].split("x"))  # bbot_bench's rule
            if v is None:
                notes.append("no W2 check (--no-converge)")
            elif not v[2]:
                notes.append(f"advect W2 check FAILED ({v[1]:+.2%})")
                valid = False
            elif not v[0]:
                notes.append(f"advect not converged at the cap (cost {v[1]:+.2%}, not checked)")
            elif not resolved:
                notes.append(f"W2 {v[1]:+.2%} (coarse grid, not checked)")
            else:
                notes.append(f"W2 {v[1]:+.2%}")
            if a["failed"] or not ok_time(ta):
                notes.append("advect FAILED")
                valid = False
        if p and (p["failed"] or not ok_time(tp)):
            notes.append("numpy self-check FAILED")
            valid = False
        if a and p and valid:
            tol = 1e-8 if key[0] == "f64" else 1e-3
            dev = max(abs(num(a[c]) - num(p[c])) / abs(num(a[c])) for c in ("iter_cost", "iter_divres"))
            same_k = a["iters"] == p["iters"]
            if not same_k or not dev <= tol:
                notes.append(f"iterates DIFFER ({dev:.1e} > {tol:g})" if same_k else "different K")
                valid = False
            else:
                notes.append(f"iterate K agrees ({dev:.0e})")
        both = a is not None and p is not None
        ratio = "  INVALID" if not valid else (f"{tp / ta:8.2f}x" if both else "        -")
        cpu = "         -"
        if both and valid and key[3] == 1:
            cpu = f"{num(p['cpu_per_iter_s']) / num(a['cpu_per_iter_s']):9.2f}x"
        name = f"{key[0]} {key[1]} P={key[2]}"
        print(f"{name:<22}{key[3]:>8}{fmt(ta)}{fmt(tp)}{ratio}{cpu}  {'; '.join(notes)}")
    print("cpu ratio: process CPU time per iteration, one-thread rows only (steadier on a shared "
          "machine)")
    print("versions: " + ", ".join(commits))
print("targets (issue): Poisson >= 1.5x scipy.fft at equal threads (256^2, 64^3, f64); "
      "Benamou-Brenier >= 5x the NumPy splitting per iteration")
PY

}

if [ -n "$table" ]; then
    print_table "$table"
    exit 0
fi
threads="${threads:-$(nproc)}"
passes="1"
[ "$threads" != 1 ] && passes="1 $threads"
do_poisson=1 do_bbot=1
[ "$only" = bbot ] && do_poisson=0
[ "$only" = poisson ] && do_bbot=0

if [ -z "$build" ]; then
    build="$root/build-bench-cpu"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DADVECT_CUDA=OFF \
        -DADVECT_BUILD_TESTS=OFF -DADVECT_BUILD_BENCH=ON >/dev/null || exit 2
fi
cmake --build "$build" --target poisson_bench bbot_bench -j2 >/dev/null || exit 2
for exe in poisson_bench bbot_bench; do
    [ -x "$build/bench/$exe" ] || { echo "run_grids.sh: $build/bench/$exe not built" >&2; exit 2; }
done
results="$build/bench-results/grids-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"

if [ "$peers" = 1 ]; then
    venv="${ADVECT_BENCH_VENV:-$here/.venv}"
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating the peers' venv ($venv)"
        ADVECT_BENCH_VENV="$venv" "$here/peers/setup_venv.sh" || peers=0
    fi
    py="$venv/bin/python"
fi

echo "== grid solvers, CPU: threads/workers in {${passes// /,}}; results in $results"
status=0
note_rc() { # name rc log
    [ "$2" = 0 ] && return
    echo "!! $1 exited $2:"
    grep -E 'FAILED|_bench:|Error|error' "$3" | head -5
}

# ---- Poisson: advect and scipy.fft on the same systems, per thread count ----
if [ "$do_poisson" = 1 ]; then
    echo "== Poisson: grids {$pgrids}, bc {$bcs}, precision $pprec, $reps reps"
    hdr=()
    for t in $passes; do
        export OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" MKL_NUM_THREADS="$t"
        "$build/bench/poisson_bench" --device cpu --grids "$pgrids" --bc "$bcs" \
            --precision "$pprec" --reps "$reps" --threads "$t" "${hdr[@]}" \
            >>"$results/poisson_advect.csv" 2>>"$results/poisson_advect.log"
        rc=$?
        [ "$rc" != 0 ] && status=1
        note_rc "poisson_bench (threads $t)" "$rc" "$results/poisson_advect.log"
        if [ "$peers" = 1 ]; then
            (unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
             "$py" "$here/peers/poisson_scipy.py" --grids "$pgrids" --bc "$bcs" \
                --precision "$pprec" --reps "$reps" --workers "$t" "${hdr[@]}" \
                >>"$results/poisson_scipy.csv" 2>>"$results/poisson_scipy.log")
            note_rc "poisson_scipy.py (workers $t)" "$?" "$results/poisson_scipy.log"
        fi
        hdr=(--no-header)
    done
    [ "$peers" = 1 ] && grep -m1 -E '^# numpy' "$results/poisson_scipy.log"
fi

# ---- Benamou-Brenier: per-iteration time, advect and the NumPy splitting ----
if [ "$do_bbot" = 1 ]; then
    echo "== Benamou-Brenier: grids {$bgrids}, $bprec, K = $iters iterations" \
         "$([ "$converge" = 1 ] && echo "(each grid first run to tolerance: validation)")"
    hdr=()
    for t in $passes; do
        export OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" MKL_NUM_THREADS="$t"
        conv=(--no-converge)
        # The to-tolerance validation once per grid, in the first (one-thread) pass.
        [ "$converge" = 1 ] && [ "${#hdr[@]}" = 0 ] && conv=()
        "$build/bench/bbot_bench" --device cpu --precision "$bprec" --grids "$bgrids" \
            --iters "$iters" --threads "$t" "${conv[@]}" "${hdr[@]}" \
            >>"$results/bbot_advect.csv" 2>>"$results/bbot_advect.log"
        rc=$?
        [ "$rc" != 0 ] && status=1
        note_rc "bbot_bench (threads $t)" "$rc" "$results/bbot_advect.log"
        if [ "$peers" = 1 ]; then
            (unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
             "$py" "$here/peers/bbot_numpy.py" --grids "$bgrids" --precision "$bprec" \
                --iters "$iters" --workers "$t" "${hdr[@]}" \
                >>"$results/bbot_numpy.csv" 2>>"$results/bbot_numpy.log")
            note_rc "bbot_numpy.py (workers $t)" "$?" "$results/bbot_numpy.log"
        fi
        hdr=(--no-header)
    done
    [ "$converge" = 1 ] && grep -E '^# to tolerance' "$results/bbot_advect.log"
fi

print_table "$results"
exit "$status"
