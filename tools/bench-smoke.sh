#!/usr/bin/env bash
# CI guard against benchmark rot: the suite builds warning-free with
# -Werror and a few cases of every kind run (timings are not judged here;
# the targets are judged by tools/demo.sh ratios on a quiet machine). One kern
# row of every family runs, through its check file's bench hooks, and, when the
# benchmark was built with OpenBLAS, one MLP-block row (dense and compacted, ~15 s).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh" bench blas
build=${DP_BUILD_DIR:-$root/build-bench-smoke}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_BENCH=ON -DDP_BUILD_TESTS=OFF -DDP_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
out=$build/smoke.json
"$build/bench/dp_bench" --dp_suite=short --benchmark_filter='small|tiny|kern/.*/scalar/L1/store|kern/mask_f32/scalar/B8|kern/n(fwd|bwd)_f32/scalar/D768/store' --benchmark_min_time=0.01 \
  --benchmark_repetitions=1 --benchmark_out="$out" --benchmark_out_format=json >/dev/null
outs=("$out")
if "$build/bench/dp_bench" --dp_suite=block --benchmark_list_tests >/dev/null 2>&1; then
  outs+=("$build/smoke-block.json")
  "$build/bench/dp_bench" --dp_suite=block --benchmark_filter='block/.*/row/p0.5/t1' \
    --benchmark_out="${outs[1]}" --benchmark_out_format=json >/dev/null
fi
python3 "$root/tools/bench_report.py" "${outs[@]}" >/dev/null
python3 - "${outs[@]}" <<'PY'
import json, sys
runs = [r for path in sys.argv[1:] for r in json.load(open(path))["benchmarks"]]
errors = [r["name"] for r in runs if r.get("error_occurred") and "not supported" not in r.get("error_message", "")]
if not runs or errors:
    sys.exit(f"bench smoke: {len(runs)} runs, errors: {errors}")
print(f"bench smoke: {len(runs)} benchmark runs ok")
PY
