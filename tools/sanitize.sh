#!/usr/bin/env bash
# Sanitizer runs, each in its own build directory:
#   asan  the whole ctest suite, the fuzz seed corpus (replayed; its arenas
#         are ASan-poisoned outside the rows) and the examples under
#         AddressSanitizer + UndefinedBehaviorSanitizer;
#   tsan  test_threads and example_engine_threads under ThreadSanitizer, in
#         a build with -DDP_ENABLE_OPENMP=OFF: libgomp is not built with TSan,
#         so its internal synchronisation would be reported as races.  The
#         threads under test are the programs' own pthreads calling the library.
# The MPI example is not built here (Open MPI is not instrumented).
# Any sanitizer report aborts the test that triggered it, so ctest fails;
# both runs always happen, and the script fails if either did.
#
# Usage: tools/sanitize.sh [asan|tsan|all]    (default: all)
#   The compiler is $CC (gcc by default; CC=clang works too).
#   DP_ASAN_BUILD_DIR / DP_TSAN_BUILD_DIR override build-asan / build-tsan.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
case $what in asan | tsan | all) ;; *) echo "usage: $0 [asan|tsan|all]" >&2; exit 2 ;; esac
case ${CC:-} in
  *clang*) "$root/tools/install-deps.sh" build clang fuzz ;; # fuzz: clang's sanitizer runtimes
  *) "$root/tools/install-deps.sh" build ;;
esac
jobs=$(nproc)
status=0
common=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDP_WERROR=ON -DDP_BUILD_BENCH=OFF)

if [ "$what" != tsan ]; then
  build=${DP_ASAN_BUILD_DIR:-$root/build-asan}
  echo "=== ASan + UBSan: whole suite ($build) ==="
  cmake -S "$root" -B "$build" "${common[@]}" -DDP_WITH_SANITIZER=address+undefined \
    -DDP_BUILD_TESTS=ON -DDP_BUILD_EXAMPLES=ON -DDP_BUILD_FUZZ=ON >/dev/null
  cmake --build "$build" -j"$jobs"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$jobs" --timeout 900 || status=1
  # The examples too, whether or not ctest registered them.
  for ex in example_train_step example_inference example_engine_threads; do
    echo "--- $ex"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
      "$build/examples/$ex" >/dev/null || { echo "$ex failed under ASan/UBSan" >&2; status=1; }
  done
fi

if [ "$what" != asan ]; then
  build=${DP_TSAN_BUILD_DIR:-$root/build-tsan}
  echo "=== TSan: test_threads and example_engine_threads, OpenMP off ($build) ==="
  cmake -S "$root" -B "$build" "${common[@]}" -DDP_WITH_SANITIZER=thread -DDP_ENABLE_OPENMP=OFF \
    -DDP_BUILD_TESTS=ON -DDP_BUILD_EXAMPLES=ON >/dev/null
  cmake --build "$build" --target test_threads example_engine_threads -j"$jobs"
  TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
    ctest --test-dir "$build" --output-on-failure --no-tests=error -R '^(test_threads|example_engine_threads)$' \
    --timeout 900 || status=1
fi
if [ $status -ne 0 ]; then
  echo "sanitize: FAILED" >&2
  exit 1
fi
echo "sanitize: clean"
