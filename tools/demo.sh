#!/usr/bin/env bash
# The README's main job: build the library (Release) with the benchmark, run the
# examples, then a short benchmark of every operation on every ISA this CPU
# has, against same-run baselines, and print the ratio table.
# Usage: tools/demo.sh [short|ratios|full|block]   (default short, ~3 min)
#   block: sample compaction only: the MLP-block example's checks at ViT-S sizes, then the
#   block's training step dense and compacted at p = 0..0.5 (11 min on a loaded 2-vCPU VM)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=${1:-short}
case $suite in
  short | ratios) "$root/tools/install-deps.sh" bench ;;
  full | block) "$root/tools/install-deps.sh" bench blas ;; # their MLP-block rows need OpenBLAS
  *) echo "usage: $0 [short|ratios|full|block]" >&2; exit 2 ;;
esac
build=${DP_BUILD_DIR:-$root/build-demo}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_BENCH=ON -DDP_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"

echo
echo "== examples"
if [ "$suite" = block ]; then
  "$build/examples/example_mlp_block" 32 197 384 "$(nproc)"
else
  "$build/examples/example_inference"
  "$build/examples/example_train_step"
fi

echo
echo "== benchmark (suite: $suite): Google Benchmark console in $build/bench-$suite.log, JSON in"
echo "   $build/bench-$suite.json; the table below is computed from that JSON"
"$build/bench/dp_bench" --dp_suite="$suite" --benchmark_out="$build/bench-$suite.json" \
  --benchmark_out_format=json >"$build/bench-$suite.log" 2>&1 || { tail -20 "$build/bench-$suite.log"; exit 1; }
head -n 12 "$build/bench-$suite.log"
echo
python3 "$root/tools/bench_report.py" "$build/bench-$suite.json" --svg "$build/bench-$suite.svg"
