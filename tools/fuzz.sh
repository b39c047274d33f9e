#!/usr/bin/env bash
# Fuzz the public API with libFuzzer for N seconds (default 60).
# Builds tests/fuzz/fuzz_api.c with clang: ASan + UBSan and coverage
# instrumentation over the whole library.  Starts from the committed seed
# corpus (tests/fuzz/corpus, only read) plus the inputs earlier runs found in
# <build>/corpus.  Fails on any finding: a failed check, a sanitizer report, a
# leak, a timeout or running out of memory; the reproducer is written to
# <build>/artifacts/ (replay it with <build>/tests/fuzz/fuzz_api <file>).
# Prints executions and coverage from libFuzzer's final statistics.
#
# Usage: tools/fuzz.sh [seconds] [extra libFuzzer flags...]
#   DP_FUZZ_BUILD_DIR   build directory (default: build-fuzz)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
case $secs in '' | *[!0-9]*) echo "fuzz.sh: seconds must be a number" >&2; exit 2 ;; esac

"$root/tools/install-deps.sh" build fuzz
build=${DP_FUZZ_BUILD_DIR:-$root/build-fuzz}
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDP_BUILD_FUZZ=ON -DDP_BUILD_TESTS=OFF -DDP_BUILD_EXAMPLES=OFF -DDP_WERROR=ON \
  -DDP_WITH_SANITIZER=address+undefined -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
# Only the fuzzer: it links the static library.
cmake --build "$build" --target fuzz_api -j"$(nproc)"

work=$build/corpus
art=$build/artifacts
log=$build/fuzz.log
mkdir -p "$work"
rm -rf "$art"
mkdir -p "$art"
echo "fuzz: running for ${secs}s (log: $log)"
set +e
# Hard bound on top of -max_total_time, in case a run wedges.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  timeout -k 10 $((secs + 120)) "$build/tests/fuzz/fuzz_api" \
  -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -max_len=512 \
  -print_final_stats=1 -artifact_prefix="$art/" "$@" "$work" "$root/tests/fuzz/corpus" >"$log" 2>&1
rc=$?
set -e

edges=$(sed -n 's/.*Loaded [0-9]* modules *(\([0-9]*\) inline 8-bit counters).*/\1/p' "$log" | head -n1)
last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n1 || true)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
pct=""
[ -n "$edges" ] && [ -n "$cov" ] && [ "$edges" -gt 0 ] && pct=" ($((100 * cov / edges))%)"
echo "fuzz: ${execs:-?} executions (${rate:-?}/s), coverage ${cov:-?} of ${edges:-?} edges${pct}, ${ft:-?} features, corpus ${corp:-?} inputs"

if [ "$rc" -ne 0 ] || ls "$art"/* >/dev/null 2>&1; then
  echo "fuzz: FAILED (exit $rc); end of the log:" >&2
  grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)' "$log" |
    sed -n '/ERROR\|FUZZ CHECK FAILED\|runtime error\|Test unit written/,$p' | head -n 60 >&2
  ls -l "$art" >&2 || true
  exit 1
fi
echo "fuzz: no findings"
