#!/usr/bin/env bash
# Install the Debian 12 packages a task needs, skipping what is present.
# Usage: tools/install-deps.sh [build] [bench] [clang] [arm64] [fuzz] [valgrind] [mpi] [python] [torchbench] [blas]
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

want=(cmake make gcc libc6-dev pkg-config libcmocka-dev)
for group in "$@"; do
  case "$group" in
    build) ;;
    bench) want+=(g++ libbenchmark-dev python3) ;;
    clang) want+=(clang libomp-dev) ;;
    arm64) want+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libc6:arm64 libcmocka-dev:arm64 libgomp1:arm64) ;;
    fuzz) want+=(clang libclang-rt-14-dev libomp-dev) ;;
    valgrind) want+=(valgrind) ;;
    mpi) want+=(openmpi-bin libopenmpi-dev) ;; # the MPI data-parallel example and its test
    # The Python package's tests: Debian's torch, pytest, venv for the offline install test.
    python) want+=(python3 python3-torch python3-numpy python3-pytest python3-venv) ;;
    # Its benchmark: Debian's torch uses the reference BLAS unless OpenBLAS is installed.
    torchbench) want+=(python3 python3-torch python3-numpy libopenblas0-pthread) ;;
    # The MLP-block example and benchmark rows (sample compaction); never the library.  Debian's
    # libopenblas-dev brings libopenblas0-pthread, the threaded OpenBLAS (its own thread pool).
    blas) want+=(libopenblas-dev) ;;
    *) echo "install-deps: unknown group '$group'" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
