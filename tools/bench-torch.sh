#!/usr/bin/env bash
# The PyTorch package's benchmark (README "From PyTorch"): droppath's fused join
# against PyTorch eager timm-style x + drop_path(f) at ViT-B and ResNet-50
# shapes, and the compacted ViT-S MLP block (drop_path_block) against the dense
# timm-style block at p = 0.1 ... 0.5, 1 and 2 threads, in one process, with
# target rows (PASS/MISS).
# Installs Debian's torch and OpenBLAS (without it Debian's torch runs the
# reference BLAS), builds the library (Release) and runs
# python/bench/bench_torch.py against it; arguments go to that script.
# Usage: tools/bench-torch.sh [--reps N] [--block-reps N] [--threads 1,2] [--p 0.1]
#        [--only join|block] [--quick]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh" build torchbench
build=${DP_BUILD_DIR:-$root/build-bench-torch}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=OFF -DDP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
DROPPATH_LIBRARY="$build/src/libdroppath.so.0" "${DP_PYTHON:-/usr/bin/python3}" "$root/python/bench/bench_torch.py" "$@"
