#!/usr/bin/env bash
# One-shot GPU check for a machine with an NVIDIA GPU and the CUDA toolkit (no network
# needed): configure for sm_90 in build-gpu, build, run the GPU tests (ctest -L cuda), run the
# GPU interaction-sum benchmark (including N = M = 1e6 at d = 2 and 3), a short sampling
# benchmark (Euler and Euler-Maruyama, n = 1e4, N = 1e5 and 1e6, d = 2), the Poisson and
# Benamou-Brenier benchmarks (256^2, 64^3; 64^2x32, 128^2x64 per iteration), optionally the
# KeOps GPU peer, and print a short table LAST. Every step has a timeout and the whole run stays
# under a time budget (default 285 s).
#
# usage: bench/gpu.sh [--results DIR] [--build-only] [--table-only DIR]
#   --results DIR     where logs and CSV files go (default build-gpu/gpu-results; at most 9 files)
#   --build-only      configure and build only, without the GPU check (compile check on a
#                     machine with nvcc but no GPU)
#   --table-only DIR  print the summary table of an earlier run's results and exit
# Environment:
#   ADVECT_COMMIT        commit recorded in the CSV rows (default: git rev-parse, else unknown)
#   ADVECT_DEPS_DIR      carried dependency prefix (default .deps): Debian packages unpacked
#                        with dpkg -x into .deps/root by bench/fetch_gpu_deps.sh (Random123,
#                        Criterion and their runtime libraries), wheels in .deps/wheels
#   ADVECT_GPU_BUDGET_S  time budget for the whole script in seconds (default 285)
# Exit status: 0 all good; 1 tests or validation failed, or a step timed out; 2 configure or
# build failed, or no CUDA toolkit; 3 no GPU.
set -uo pipefail
start=$SECONDS
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-gpu"
results=""
mode="full"
while [ $# -gt 0 ]; do
    case "$1" in
        --results) results="$2"; shift ;;
        --build-only) mode="build" ;;
        --table-only) mode="table"; results="$2"; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
budget="${ADVECT_GPU_BUDGET_S:-285}"
results="${results:-$build/gpu-results}"

# Seconds a step may take: its own cap, but never past the budget (10 s kept for the table).
step_time() {
    local want=$1 left=$((budget - (SECONDS - start) - 10))
    [ "$left" -lt "$want" ] && want=$left
    [ "$want" -lt 1 ] && want=1
    echo "$want"
}
say() { echo "[gpu.sh $((SECONDS - start))s] $*"; }

# ---- the summary table (stdlib Python; also used by --table-only) ----
print_table() {
    python3 - "$1" <<'PY'
import csv, os, sys
res = sys.argv[1]

def read(name, columns=14):
    path = os.path.join(res, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [l for l in f if l.count(",") >= columns - 1]
    return [r for r in csv.DictReader(lines) if r["device"] != "device"]

def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return float("nan")

summary = os.path.join(res, "summary.txt")
if os.path.exists(summary):
    print(open(summary).read().rstrip())
adv = read("advect.csv")
if not adv:
    print("advect benchmark: no results")
    sys.exit(0)
dims = sorted({int(r["d"]) for r in adv})
print("advect interaction sum on the GPU (SQDIST, values = keys), 1e12 pairs/s, median:")
print(f"{'prec':<5}{'N=M':>9}" + "".join(f"{'d=' + str(d):>9}" for d in dims))
cases = {}
for r in adv:
    cases.setdefault((r["precision"], int(r["N"])), {})[int(r["d"])] = r
for (prec, n) in sorted(cases):
    cells = []
    for d in dims:
        r = cases[(prec, n)].get(d)
        if r is None:
            cells.append(f"{'':>9}")
        elif num(r["median_s"]) != num(r["median_s"]):
            cells.append(f"{'FAILED':>9}")
        else:
            cells.append(f"{num(r['pairs_per_s']) / 1e12:9.3g}")
    print(f"{prec:<5}{n:>9}" + "".join(cells))
for prec, tol in (("f32", 1e-3), ("f64", 1e-9)):
    rows = [r for r in adv if r["precision"] == prec]
    if rows:
        e = max(max(num(r["max_rel_err"]), num(r["lse_abs_err"])) for r in rows)
        bad = sum(1 for r in rows if num(r["median_s"]) != num(r["median_s"]))
        print(f"{prec}: max error {e:.2e} (tolerance {tol:g}), {bad} case(s) failed validation")
keops = read("keops.csv")
for r in keops:
    a = cases.get((r["precision"], int(r["N"])), {}).get(int(r["d"]))
    k = num(r["median_s"])
    ratio = num(a["median_s"]) if a else float("nan")
    ratio = k / ratio if ratio == ratio and ratio > 0 else float("nan")
    print(f"{r['device']:<17} {r['precision']} N=M={r['N']} d={r['d']}: "
          f"{num(r['pairs_per_s']) / 1e12:.3g}e12 pairs/s, advect is {ratio:.2f}x faster")
if os.path.exists(os.path.join(res, "keops.csv")) and not keops:
    print("keops: " + open(os.path.join(res, "keops.csv")).read().strip()[:300])
samp = [r for r in read("sampling.csv") if "method" in r]
if samp:
    print("advect sampling on the GPU (f32, K steps, n data, N particles, d), median:")
    by, inter = {}, {}
    for r in samp:
        ok = num(r["median_s"]) == num(r["median_s"])
        by[(r["n_data"], r["n_particles"], r["d"], r["method"])] = num(r["median_s"])
        inter[(r["n_data"], r["n_particles"], r["d"], r["method"])] = num(r["interactions_per_s"])
        print(f"  {r['method']:<6} n={r['n_data']} N={r['n_particles']} d={r['d']} K={r['steps']}: "
              + (f"{num(r['median_s']):.4g} s, {num(r['particle_steps_per_s']):.3g} particle-steps/s, "
                 f"{num(r['interactions_per_s']) / 1e12:.3g}e12 interactions/s, "
                 f"interaction share {num(r['interaction_share']):.2f}" if ok else "FAILED validation"))
    for (n, big_n, d, m), t in sorted(by.items()):
        e = by.get((n, big_n, d, "euler"))
        if m == "sde" and e and e == e and t == t:
            print(f"  Euler-Maruyama / Euler step time, n={n} N={big_n} d={d}: {t / e:.3f} (target <= 1.15)")
        ie, ik = inter.get((n, big_n, d, "euler")), inter.get((n, big_n, d, m))
        if m == "dopri5" and ie and ie == ie and ik == ik:
            print(f"  DOPRI5 / Euler interactions per second (per-particle times), n={n} N={big_n} "
                  f"d={d}: {ik / ie:.2f}")
pois = read("poisson.csv", 11)
if pois:
    print("advect Poisson solve on the GPU, median ms (max relative error):")
    for r in pois:
        ok = num(r["median_s"]) == num(r["median_s"])
        print(f"  {r['precision']} {r['shape']:<12} {r['bc']:<9}: "
              + (f"{num(r['median_s']) * 1e3:.4g} ms ({num(r['max_rel_err']):.1e})" if ok else "FAILED"))
bb = read("bbot.csv", 13)
if bb:
    print("advect Benamou-Brenier on the GPU, ms per iteration (CPU in the same run):")
    for r in bb:
        t = num(r["per_iter_s"])
        note = "  (target <= 0.5 ms)" if r["grid"] == "128x128" and r["P"] == "64" else ""
        print(f"  {r['precision']} {r['grid']}x{r['P']}: "
              + (f"{t * 1e3:.3g} ms (CPU {num(r['cpu_per_iter_s']) * 1e3:.3g} ms){note}" if t == t else "FAILED"))
PY
}

if [ "$mode" = "table" ]; then
    print_table "$results"
    exit 0
fi

# ---- 1. is there a GPU? (answers within seconds) ----
if [ "$mode" = "full" ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "no GPU: nvidia-smi not found"
        exit 3
    fi
    if ! gpu=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm \
                   --format=csv,noheader 2>&1) || [ -z "$gpu" ]; then
        echo "no GPU: nvidia-smi: $(printf '%s' "${gpu:-no device listed}" | head -1)"
        exit 3
    fi
fi
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH="/usr/local/cuda/bin:$PATH"
fi
if ! command -v nvcc >/dev/null 2>&1; then
    echo "no CUDA toolkit: nvcc not found"
    exit 2
fi
mkdir -p "$results" "$build"
rm -f "$results"/{summary.txt,build.log,ctest.log,advect.csv,advect.log,keops.csv,keops.log,sampling.csv,sampling.log,poisson.csv,poisson.log,bbot.csv,bbot.log}
commit="${ADVECT_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
{
    echo "== advect GPU run, commit $commit, $(date -u +%Y-%m-%dT%H:%MZ)"
    [ "$mode" = "full" ] && echo "gpu     : $gpu"
    echo "nvcc    : $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
} >"$results/summary.txt"
cat "$results/summary.txt"

# ---- 2. carried dependency prefix (.deps/root) ----
deps="${ADVECT_DEPS_DIR:-$root/.deps}"
if [ -d "$deps/root" ]; then
    d="$(cd "$deps/root" && pwd)"
    export CMAKE_PREFIX_PATH="$d/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export CPATH="$d/usr/include${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$d/usr/lib/x86_64-linux-gnu:$d/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
    # pkg-config files rewritten to this location; static-link fields dropped (their
    # packages are not carried and only shared linking is used).
    pc="$build/deps-env/pkgconfig"
    rm -rf "$build/deps-env" && mkdir -p "$pc" "$build/deps-env/lib"
    for f in "$d"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc "$d"/usr/share/pkgconfig/*.pc; do
        [ -f "$f" ] || continue
        sed -e "s|^prefix=/usr\$|prefix=$d/usr|" -e '/^Requires.private:/d' \
            -e '/^Libs.private:/d' "$f" >"$pc/$(basename "$f")"
    done
    export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    # Run time: only the libraries the system lacks, so carried copies never shadow its own.
    # Each carried library is known by its SONAME (libgit2.so.1.5, libcriterion.so.3...).
    known="$(ldconfig -p 2>/dev/null)"
    for so in "$d"/usr/lib/x86_64-linux-gnu/*.so.* "$d"/lib/x86_64-linux-gnu/*.so.*; do
        if [ ! -f "$so" ] || [ -L "$so" ]; then continue; fi
        name="$(readelf -d "$so" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
        name="${name:-$(basename "$so")}"
        if ! printf '%s\n' "$known" | grep -q "^[[:space:]]$name "; then
            ln -sf "$so" "$build/deps-env/lib/$name"
        fi
    done
    export LD_LIBRARY_PATH="$build/deps-env/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "using carried prefix $d"
fi

# Tests need Criterion whose runtime libraries all resolve.
tests=ON why=""
crit_lib=""
for dir in ${d:+"$d/usr/lib/x86_64-linux-gnu"} /usr/lib/x86_64-linux-gnu /usr/local/lib /usr/lib64; do
    [ -e "$dir/libcriterion.so" ] && { crit_lib="$dir/libcriterion.so"; break; }
done
if [ -z "$crit_lib" ]; then
    tests=OFF why="Criterion not found (run bench/fetch_gpu_deps.sh and carry .deps)"
elif ldd "$crit_lib" 2>/dev/null | grep -q "not found"; then
    tests=OFF why="Criterion's libraries missing: $(ldd "$crit_lib" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
fi
[ ! -f "$root/tests/CMakeLists.txt" ] && tests=OFF why="no tests/CMakeLists.txt"

# ---- 3. configure and build ----
gen=()
[ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
# nvcc optimises a file's kernels on all cores (interaction.cu alone is most of the build:
# 104 s on one core, 65 s on two, sm_90 only).
cuda_flags=""
# (grep reads all of the help: with -q it could stop early and fail the pipe under pipefail)
nvcc --help 2>/dev/null | grep -- '--split-compile' >/dev/null && cuda_flags="--split-compile=0"
configure() {
    timeout -k 5 "$(step_time 90)" cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DADVECT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="$cuda_flags" -DADVECT_BUILD_BENCH=ON \
        -DADVECT_BUILD_TESTS="$1" -DADVECT_EMULATION_TESTS=OFF -DADVECT_BENCH_COMMIT="$commit" \
        >>"$results/build.log" 2>&1
}
say "configure (tests $tests${why:+: $why})"
configure_failed() {
    tail -20 "$results/build.log"
    echo "build   : CONFIGURE FAILED (build.log)" | tee -a "$results/summary.txt"
    exit 2
}
if ! configure "$tests"; then
    [ "$tests" = ON ] || configure_failed
    # The benchmark matters more than the tests: try once more without them.
    tests=OFF why="configure failed with tests ON (see build.log)"
    say "configure failed with tests ON; again without tests"
    gen=()
    configure OFF || configure_failed
fi
jobs="$(nproc)"
say "build the library and the benchmark (-j$jobs)"
t0=$SECONDS
if ! timeout -k 5 "$(step_time 180)" cmake --build "$build" --target interaction_bench sampling_bench poisson_bench bbot_bench -j "$jobs" \
        >>"$results/build.log" 2>&1; then
    grep -E 'error|Error' "$results/build.log" | head -20
    echo "build   : BUILD FAILED or timed out after $((SECONDS - t0)) s (build.log)" | tee -a "$results/summary.txt"
    exit 2
fi
status=0
if [ "$tests" = ON ]; then
    say "build the tests"
    if ! timeout -k 5 "$(step_time 90)" cmake --build "$build" -j "$jobs" >>"$results/build.log" 2>&1; then
        tests=OFF why="test build failed or timed out (build.log)"
        grep -E 'error' "$results/build.log" | head -10
        status=1
    fi
fi
echo "build   : ok in $((SECONDS - t0)) s; tests ${tests}${why:+ ($why)}" | tee -a "$results/summary.txt"
[ "$mode" = "build" ] && exit $status

# ---- 4. GPU tests ----
if [ "$tests" = ON ]; then
    say "ctest -L cuda"
    (cd "$build" && timeout -k 5 "$(step_time 60)" ctest -L cuda --output-on-failure --timeout 50) \
        >"$results/ctest.log" 2>&1
    rc=$?
    line=$(grep -E 'tests passed|No tests were found' "$results/ctest.log" | tail -1)
    [ "$rc" = 124 ] && line="TIMED OUT ($line)"
    [ "$rc" != 0 ] && status=1 && grep -E '\*\*\*|Failed|FAILED' "$results/ctest.log" | head -10
    echo "tests   : ${line:-ctest exited $rc} (ctest -L cuda)" | tee -a "$results/summary.txt"
fi

# ---- 5. benchmark: standard sizes in both precisions, then N = M = 1e6 at d = 2, 3 ----
bench_exe="$build/bench/interaction_bench"
say "benchmark: N=M in {4096,16384,65536}, d in {2,3,16,64}, f32 and f64"
timeout -k 5 "$(step_time 75)" "$bench_exe" --device cuda --precision both --reps 10 \
    >>"$results/advect.csv" 2>>"$results/advect.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "benchmark exited $rc (124: timeout)"
say "benchmark: N=M=1e6, d in {2,3}, f32"
timeout -k 5 "$(step_time 90)" "$bench_exe" --device cuda --precision f32 --sizes 1000000 \
    --dims 2,3 --reps 10 --no-header >>"$results/advect.csv" 2>>"$results/advect.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "large benchmark exited $rc (124: timeout)"
grep -E 'FAILED|interaction_bench:' "$results/advect.log" | head -5

# ---- 5b. sampling: Euler and Euler-Maruyama (their ratio), n = 1e4, N = 1e5 and 1e6, d = 2 ----
say "sampling benchmark: euler, sde; n=1e4, N in {1e5,1e6}, d=2, K=20, f32"
timeout -k 5 "$(step_time 30)" "$build/bench/sampling_bench" --device cuda --data-sizes 1e4 \
    --particles 1e5,1e6 --dims 2 --methods euler,sde --steps 20 --reps 10 \
    >"$results/sampling.csv" 2>"$results/sampling.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "sampling benchmark exited $rc (124: timeout)"
say "sampling benchmark: dopri5 (per-particle times, the engine's per-row mode); n=1e4, N=1e5, d=2"
timeout -k 5 "$(step_time 20)" "$build/bench/sampling_bench" --device cuda --data-sizes 1e4 \
    --particles 1e5 --dims 2 --methods dopri5 --steps 20 --reps 5 --no-header \
    >>"$results/sampling.csv" 2>>"$results/sampling.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "dopri5 sampling benchmark exited $rc (124: timeout)"
say "sampling benchmark: dopri5 at d=96 (the GEMM path's per-row mode); n=1e4, N=1e4"
timeout -k 5 "$(step_time 20)" "$build/bench/sampling_bench" --device cuda --data-sizes 1e4 \
    --particles 1e4 --dims 96 --methods dopri5 --steps 20 --reps 3 --no-header \
    >>"$results/sampling.csv" 2>>"$results/sampling.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "dopri5 d=96 sampling benchmark exited $rc (124: timeout)"
grep -E 'FAILED|sampling_bench:' "$results/sampling.log" | head -5

# ---- 5c. grid solvers: Poisson solves, Benamou-Brenier per iteration (target at 128^2 x 64) ----
say "grid benchmarks: poisson 256x256, 64x64x64 (f32, f64), 64x128x128 (f64 neumann); bbot 64x64:32, 128x128:64 per iteration"
timeout -k 5 "$(step_time 30)" "$build/bench/poisson_bench" --device cuda --grids 256x256,64x64x64 \
    --reps 10 >"$results/poisson.csv" 2>"$results/poisson.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "poisson benchmark exited $rc (124: timeout)"
# The Benamou-Brenier iteration's own Poisson solve at 128^2 x 64 (its share of the iteration).
timeout -k 5 "$(step_time 15)" "$build/bench/poisson_bench" --device cuda --grids 64x128x128 \
    --bc neumann --precision f64 --reps 10 --no-header >>"$results/poisson.csv" 2>>"$results/poisson.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "poisson benchmark (64x128x128) exited $rc (124: timeout)"
timeout -k 5 "$(step_time 45)" "$build/bench/bbot_bench" --device cuda --grids 64x64:32,128x128:64 \
    --iters 30 --no-converge >"$results/bbot.csv" 2>"$results/bbot.log"
rc=$?
[ "$rc" != 0 ] && status=1 && say "bbot benchmark exited $rc (124: timeout)"

# ---- 6. optional KeOps peer on the same GPU (wheels carried in .deps/wheels) ----
left=$((budget - (SECONDS - start) - 10))
if ls "$deps"/wheels/pykeops-*.whl >/dev/null 2>&1 && [ "$left" -ge 40 ]; then
    site="$build/keops-site"
    say "KeOps GPU peer (N=M=1e6, d in {2,3})"
    if python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" \
            "$deps"/wheels/*.whl >>"$results/keops.log" 2>&1; then
        PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" timeout -k 5 "$(step_time 120)" \
            python3 "$root/bench/peers/interaction_keops.py" --device cuda --sizes 1000000 \
            --dims 2,3 --reps 5 >"$results/keops.csv" 2>>"$results/keops.log" ||
            say "KeOps peer exited $? (124: timeout)"
    else
        echo "keops unavailable: wheel install failed" >"$results/keops.csv"
    fi
else
    say "KeOps GPU peer skipped (no .deps/wheels or too little time left)"
fi

# ---- 7. the table, last ----
echo "total   : $((SECONDS - start)) s" >>"$results/summary.txt"
echo
print_table "$results"
exit $status
