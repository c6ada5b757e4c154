#!/usr/bin/env bash
# Prepares .deps/ (git-ignored) for bench/gpu.sh on a GPU machine that has the CUDA toolkit
# but no network and no Random123 / Criterion: downloads the Debian packages (apt-get
# download, nothing is installed) into .deps/debs and unpacks each with dpkg -x into
# .deps/root (never into /). Optionally also downloads the pure-Python wheels of pykeops
# into .deps/wheels so gpu.sh can run the KeOps GPU peer. Run it on a Debian/Ubuntu machine
# with network access, then carry .deps along with the working tree.
#
# usage: bench/fetch_gpu_deps.sh [--no-wheels]
# Environment: ADVECT_DEPS_DIR (default: .deps in the repository root).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${ADVECT_DEPS_DIR:-$root/.deps}"
wheels=1
[ "${1:-}" = "--no-wheels" ] && wheels=0

# Random123 is header-only. Criterion's runtime library needs nanomsg and libgit2, and
# libgit2 needs the libraries below; the C library, zlib, pcre2, OpenSSL and libffi are
# assumed present on any target system (gpu.sh only puts on the library path what the
# system lacks). FFTW is there for the grid solvers' CPU side. ADVECT_DEPS_EXTRA adds more
# (a space-separated list, split on purpose).
# shellcheck disable=SC2206
pkgs=(librandom123-dev libcriterion-dev libcriterion3 libnanomsg5 libgit2-1.5
      libhttp-parser2.9 libmbedcrypto7 libmbedtls14 libmbedx509-1 libssh2-1
      libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
      libfftw3-dev libfftw3-double3 libfftw3-single3
      ${ADVECT_DEPS_EXTRA:-})

mkdir -p "$deps/debs" "$deps/root"
echo "== downloading ${#pkgs[@]} Debian packages into $deps/debs"
if ! (cd "$deps/debs" && apt-get download "${pkgs[@]}" >/dev/null 2>&1); then
    echo "apt-get download failed (run 'apt-get update' first?)" >&2
    exit 1
fi
for f in "$deps"/debs/*.deb; do
    dpkg -x "$f" "$deps/root"
done
# Only shared linking is used: drop static archives and documentation so what has to travel
# (.deps/root and .deps/wheels; .deps/debs can stay behind) stays small.
find "$deps/root" -name '*.a' -delete
rm -rf "$deps/root/usr/share/doc" "$deps/root/usr/share/man" "$deps/root/usr/share/info"

if [ "$wheels" = 1 ]; then
    # pykeops and keopscore are published as source only; 'pip wheel' turns them into
    # pure-Python (py3-none-any) wheels that install offline on any Python 3.
    py="python3"
    [ -x "$root/bench/.venv/bin/python" ] && py="$root/bench/.venv/bin/python"
    echo "== building pykeops wheels into $deps/wheels"
    mkdir -p "$deps/wheels"
    "$py" -m pip wheel --quiet --no-deps -w "$deps/wheels" pykeops keopscore pybind11 ||
        echo "(wheel build failed: gpu.sh will skip KeOps)"
fi

# ---- checks: what a build configured against .deps/root alone would find ----
# Debian 12 puts some libraries in /lib, others in /usr/lib.
libdirs=("$deps/root/usr/lib/x86_64-linux-gnu" "$deps/root/lib/x86_64-linux-gnu")
status=0
for f in usr/include/Random123/philox.h usr/include/criterion/criterion.h usr/include/fftw3.h \
         usr/lib/x86_64-linux-gnu/libcriterion.so usr/lib/x86_64-linux-gnu/pkgconfig/criterion.pc; do
    if [ -e "$deps/root/$f" ]; then echo "ok       $f"; else echo "MISSING  $f"; status=1; fi
done
# What CMake finds when pointed at .deps/root the way gpu.sh does it (CMAKE_PREFIX_PATH is
# searched before the system prefixes, so these must resolve inside .deps/root).
if command -v cmake >/dev/null; then
    probe="$(mktemp -d)"
    cat >"$probe/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(deps_probe LANGUAGES C)
find_path(R123 Random123/philox.h)
find_path(CRIT criterion/criterion.h)
find_library(CRITLIB criterion)
find_path(FFTW fftw3.h)
message(STATUS "probe Random123=${R123}")
message(STATUS "probe criterion=${CRIT}")
message(STATUS "probe libcriterion=${CRITLIB}")
message(STATUS "probe fftw3=${FFTW}")
EOF
    if out=$(CMAKE_PREFIX_PATH="$deps/root/usr" cmake -S "$probe" -B "$probe/b" 2>&1); then
        while read -r line; do
            case "$line" in
                *"$deps/root"*) echo "ok       cmake finds ${line#-- probe }" ;;
                *) echo "OUTSIDE  cmake finds ${line#-- probe }"; status=1 ;;
            esac
        done < <(printf '%s\n' "$out" | grep -- '-- probe ')
    else
        echo "cmake probe failed:"; printf '%s\n' "$out" | tail -5; status=1
    fi
    rm -rf "$probe"
fi
# Shared libraries the unpacked libraries need that .deps does not provide: the target
# system must have these (usually libc, zlib, pcre2, OpenSSL).
if command -v readelf >/dev/null; then
    needed=$(for so in "${libdirs[0]}"/*.so.* "${libdirs[1]}"/*.so.*; do
                 [ -f "$so" ] && readelf -d "$so" 2>/dev/null | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'
             done | sort -u)
    missing=""
    for n in $needed; do
        [ -e "${libdirs[0]}/$n" ] || [ -e "${libdirs[1]}/$n" ] || missing="$missing $n"
    done
    echo "needed from the target system:${missing:- (none)}"
fi
du -sh "$deps/root" "$deps/wheels" 2>/dev/null | sed 's/^/size to carry: /'
exit $status
