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
jobs=$(nproc 2>/dev/null || echo 2)

# --- packages ---------------------------------------------------------------
# Cross compiler, qemu-user and the arm64 libraries the tests load (cmocka,
# libgomp) at their multiarch paths; nothing is installed when present.
"$repo/tools/install-deps.sh" arm64

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
