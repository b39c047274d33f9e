#!/usr/bin/env bash
# Cross-build libdroppath for AArch64 and run the whole ctest suite under
# qemu-user twice: with the best ISA (NEON) and with DROPPATH_ISA=scalar.
# Exits non-zero if the build or any test of either run fails.
#
#   tools/run-aarch64-tests.sh [build-dir] [-Dextra=cmake-args...]
#
# Missing tools and arm64 libraries are installed with apt-get (Debian/Ubuntu,
# as root or through sudo); nothing is installed when everything is present.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo/build-aarch64
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  build=$1
  shift
fi
case $build in /*) ;; *) build=$PWD/$build ;; esac
triple=aarch64-linux-gnu
jobs=$(nproc 2>/dev/null || echo 2)

# --- packages ---------------------------------------------------------------
# Tools are checked by command (they may come from elsewhere than apt); the
# arm64 libraries by package, since the cross compiler and qemu look for them
# at their multiarch paths (/usr/lib/aarch64-linux-gnu).
missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_pkg() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$1")
}
need_cmd cmake cmake
need_cmd make make
need_cmd pkg-config pkg-config
need_cmd ${triple}-gcc gcc-${triple}
need_cmd qemu-aarch64 qemu-user
need_pkg libc6:arm64
need_pkg libcmocka-dev:arm64 # the tests link cmocka
need_pkg libgomp1:arm64      # OpenMP runtime, found by the loader at run time

if [ ${#missing[@]} -gt 0 ]; then
  echo "run-aarch64-tests: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "run-aarch64-tests: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    "${sudo[@]}" dpkg --add-architecture arm64
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- build ------------------------------------------------------------------
cmake -S "$repo" -B "$build" \
  -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-aarch64.cmake" \
  -DCMAKE_BUILD_TYPE=Release \
  -DDP_WERROR=ON \
  -DDP_BUILD_TESTS=ON \
  -DDP_BUILD_BENCH=OFF \
  "$@"
cmake --build "$build" -j "$jobs"

# --- tests ------------------------------------------------------------------
# Both runs always happen, so one report shows every failure.
status=0
run_ctest() {
  local label=$1
  shift
  echo "=== ctest (aarch64, $label) ==="
  if (cd "$build" && env "$@" ctest --output-on-failure --no-tests=error -j "$jobs"); then
    echo "=== $label: passed ==="
  else
    echo "=== $label: FAILED ===" >&2
    status=1
  fi
}
run_ctest "best ISA" -u DROPPATH_ISA
run_ctest "DROPPATH_ISA=scalar" DROPPATH_ISA=scalar

exit $status
