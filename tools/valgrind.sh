#!/usr/bin/env bash
# Memcheck over the examples (not the MPI one) and the fuzz seed corpus (replayed by the
# non-libFuzzer build of tests/fuzz/fuzz_api.c, which calls every operation
# with many shapes, strides and aliasings).  Valgrind cannot run AVX-512, so
# the library is capped at AVX2 with DROPPATH_ISA=avx2.  Fails on any memcheck
# error or definite leak.  (OpenMP's thread pool stays allocated at exit:
# "possibly lost" blocks are not errors.)
#
# Usage: tools/valgrind.sh    DP_VALGRIND_BUILD_DIR overrides build-valgrind
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh" build valgrind
build=${DP_VALGRIND_BUILD_DIR:-$root/build-valgrind}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDP_WERROR=ON \
  -DDP_BUILD_TESTS=OFF -DDP_BUILD_EXAMPLES=ON -DDP_BUILD_FUZZ=ON -DDP_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target example_train_step example_inference example_engine_threads fuzz_api

export DROPPATH_ISA=avx2 OMP_WAIT_POLICY=passive
vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
  --show-leak-kinds=definite,indirect --track-origins=yes --quiet)
status=0
run() {
  echo "=== valgrind: $* ==="
  if ! timeout -k 10 900 "${vg[@]}" "$@"; then
    echo "=== valgrind: FAILED: $* ===" >&2
    status=1
  fi
}
run "$build/examples/example_train_step"
run "$build/examples/example_inference"
run "$build/examples/example_engine_threads"
run "$build/tests/fuzz/fuzz_api" "$root/tests/fuzz/corpus"
[ $status -eq 0 ] && echo "valgrind: clean"
exit $status
