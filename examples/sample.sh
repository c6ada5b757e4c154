#!/usr/bin/env bash
# The README's main-job command: installs what is missing, builds advect (CUDA backend when
# nvcc is found; the GPU is used when one is usable) and runs `advect sample` on its embedded
# default (checkerboard, 20000 samples → advect-out/samples.npy and samples.png).
# Extra arguments go to `advect sample`, e.g. bash examples/sample.sh --method dopri5 --json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/.ci/install-deps.sh"
cuda_home="${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}"
if ! command -v nvcc >/dev/null 2>&1 && [ -x "$cuda_home/bin/nvcc" ]; then
  export PATH="$cuda_home/bin:$PATH"
fi
build="${ADVECT_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target advect_cli >/dev/null
exec "$build/bin/advect" sample "$@"
