#!/usr/bin/env bash
# The README's test command: install what is missing, build warning-free
# (-Wall -Wextra -Werror) and run the whole cmocka suite through ctest.
# Every test runs each kernel for every ISA this CPU supports.
# Usage: tools/test.sh [extra cmake args...]   (CC=clang tools/test.sh for clang)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh" build
cc_name=$(basename "${CC:-cc}")
build=${DP_BUILD_DIR:-$root/build-test-$cc_name}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDP_WERROR=ON "$@"
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
