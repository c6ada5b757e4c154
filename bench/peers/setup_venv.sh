#!/usr/bin/env bash
# Creates the Python virtual environment used ONLY by the benchmark peers (NumPy, pykeops).
# Location: $ADVECT_BENCH_VENV, else bench/.venv (git-ignored). Re-running it upgrades the
# packages in place. Usage: bench/peers/setup_venv.sh [--with-torch]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${ADVECT_BENCH_VENV:-$(cd "$here/.." && pwd)/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating benchmark venv in $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
if [ "${1:-}" = "--with-torch" ]; then
    "$venv/bin/python" -m pip install --quiet torch
fi
"$venv/bin/python" - <<'PY'
import importlib
for name in ("numpy", "threadpoolctl", "pykeops", "torch"):
    try:
        m = importlib.import_module(name)
        print(f"  {name} {getattr(m, '__version__', '?')}")
    except Exception as exc:  # optional packages may be absent
        print(f"  {name}: not available ({type(exc).__name__})")
PY
echo "benchmark venv ready: $venv"
