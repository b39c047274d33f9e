#!/usr/bin/env bash
# The README's test command: install what is missing, build warning-free
# (-Wall -Wextra -Werror), run the whole cmocka suite through ctest, then the
# Python package's tests (python/tests, pytest) against the library just built.
# Every test runs each kernel for every ISA this CPU supports.
# Usage: tools/test.sh [extra cmake args...]   (CC=clang tools/test.sh for clang)
# DP_PYTHON picks the interpreter (default Debian's, which has python3-torch);
# DP_SKIP_PYTHON=1 leaves the Python tests out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${DP_PYTHON:-/usr/bin/python3}
skip_python=${DP_SKIP_PYTHON:-0}
if [ "$skip_python" = 1 ]; then
  "$root/tools/install-deps.sh" build
else
  "$root/tools/install-deps.sh" build python
fi
cc_name=$(basename "${CC:-cc}")
build=${DP_BUILD_DIR:-$root/build-test-$cc_name}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDP_WERROR=ON "$@"
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
if [ "$skip_python" != 1 ]; then
  DROPPATH_LIBRARY="$build/src/libdroppath.so.0" "$python" -m pytest -q -p no:cacheprovider "$root/python/tests"
fi
