#!/usr/bin/env bash
# The README's test command: installs what is missing, configures (CUDA backend when nvcc is
# found), builds, runs every ctest suite and prints one closing line
# "N passed, M failed, K skipped" counting individual Criterion tests (Criterion's own summary
# hides skips). Usage: bash tests/run.sh [build-dir] [extra cmake args...]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
bash "$root/.ci/install-deps.sh" || { echo "advect: dependency installation failed"; exit 1; }
cuda_home="${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}"
if ! command -v nvcc >/dev/null 2>&1 && [ -x "$cuda_home/bin/nvcc" ]; then
  export PATH="$cuda_home/bin:$PATH"
fi
jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
grep -E "advect: CUDA backend" "$build.configure.log" || true
cmake --build "$build" -j "$jobs" >"$build.build.log" 2>&1 \
  || { tail -50 "$build.build.log"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
log="$build/ctest.log"
# ctest runs several test programs at once on few cores: OpenMP threads that spin while
# waiting would steal the cores from each other (correct but many times slower).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# Sanitizer builds: every leak fails its test (FAIL_REGULAR_EXPRESSION in tests/CMakeLists.txt);
# the one program whose Criterion runner leaks by itself sets tests/lsan.supp (tests/cli.cmake).
# GPU suites take the GPU one at a time (RESOURCE_LOCK); CPU suites run in parallel.
(cd "$build" && ctest -j "$jobs" --output-on-failure -V) >"$log" 2>&1
ctest_rc=$?
grep -E "^[0-9]+/[0-9]+ Test|tests passed|advect-tests:|SKIP|skipped:" "$log" | sed 's/^[0-9]*: //' | sort -u | grep -v "^$" | head -200
python3 "$root/tests/summarize.py" "$log"
summary_rc=$?
[ $ctest_rc -eq 0 ] && [ $summary_rc -eq 0 ]
