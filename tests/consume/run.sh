#!/bin/sh
# Installs a built advect into a temporary prefix, then builds and runs tests/consume/main.c
# against the installed copy twice: with the CMake package (find_package(advect), target
# advect::advect) and with pkg-config (advect.pc); with a shared library also a C++-only
# CMake consumer (cxx/), and the installed `advect` tool must start without LD_LIBRARY_PATH.
# Fails if any of them does.
# Usage: run.sh <advect build dir> [<this directory>]
# Environment: CMAKE (cmake to use), CC (C compiler), CONSUME_FLAGS (extra compile and link
# flags, e.g. the sanitizer flags of a sanitizer build).
set -eu
build_dir=$1
src_dir=${2:-$(cd "$(dirname "$0")" && pwd)}
cmake=${CMAKE:-cmake}
cc=${CC:-cc}
flags=${CONSUME_FLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/advect-consume.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix

step() { echo "consume: $*"; }

step "installing $build_dir into a temporary prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; exit 1; }

pc=$(find "$prefix" -name advect.pc | head -n 1)
[ -n "$pc" ] || { echo "consume: advect.pc was not installed"; exit 1; }
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
shared=""
ls "$libdir"/libadvect.so* >/dev/null 2>&1 && shared=1

step "installed advect info, without LD_LIBRARY_PATH"
env -u LD_LIBRARY_PATH "$prefix/bin/advect" info >"$tmp/info.log" 2>&1 ||
    { cat "$tmp/info.log"; echo "consume: the installed advect does not start"; exit 1; }
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step "CMake package: configure, build, run"
"$cmake" -S "$src_dir" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/configure.log" 2>&1 ||
    { cat "$tmp/configure.log"; exit 1; }
"$cmake" --build "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
"$tmp/build/consume"

if [ -n "$shared" ]; then
    step "C++-only CMake package consumer: configure, build, run"
    "$cmake" -S "$src_dir/cxx" -B "$tmp/build_cxx" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" \
        -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/configure_cxx.log" 2>&1 ||
        { cat "$tmp/configure_cxx.log"; exit 1; }
    "$cmake" --build "$tmp/build_cxx" >"$tmp/build_cxx.log" 2>&1 ||
        { cat "$tmp/build_cxx.log"; exit 1; }
    "$tmp/build_cxx/consume_cxx"
fi

step "pkg-config: compile, link, run"
static=""
[ -n "$shared" ] || static="--static"
pkg_flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config $static --cflags --libs advect)
echo "consume: pkg-config $static --cflags --libs advect: $pkg_flags"
# shellcheck disable=SC2086  # the flags are a list of words
"$cc" -std=c99 $flags -o "$tmp/consume_pc" "$src_dir/main.c" $pkg_flags -lm
"$tmp/consume_pc"
examples=$(cd "$src_dir/../../examples" 2>/dev/null && pwd || true)
if [ -n "$examples" ] && [ -f "$examples/CMakeLists.txt" ]; then
    step "examples/: configure, build, run against the installed package"
    "$cmake" -S "$examples" -B "$tmp/examples" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/examples.log" 2>&1 ||
        { cat "$tmp/examples.log"; exit 1; }
    "$cmake" --build "$tmp/examples" >>"$tmp/examples.log" 2>&1 || { cat "$tmp/examples.log"; exit 1; }
    "$tmp/examples/kernel_density"
fi
echo "consume: passed (installed tool, CMake package, pkg-config and examples)"
