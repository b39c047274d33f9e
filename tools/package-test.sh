#!/usr/bin/env bash
# Packaging test: install the library to a temporary prefix, then build and run
# an out-of-tree consumer four ways: find_package() shared and static, and
# pkg-config shared and static. Usage: tools/package-test.sh [build-dir]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-package}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=OFF -DDP_BUILD_EXAMPLES=OFF \
  -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
cmake --install "$build" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n1)
libdir=${libdir%/}
test -f "$libdir/libdroppath.a"
ls "$libdir"/libdroppath.so.* >/dev/null
test -f "$libdir/pkgconfig/droppath.pc"
test -f "$libdir/cmake/droppath/droppathConfigVersion.cmake"

for kind in shared static; do
  static=OFF; [ "$kind" = static ] && static=ON
  cmake -S "$src/tests/package" -B "$work/cmake-$kind" -DCMAKE_PREFIX_PATH="$prefix" -DUSE_STATIC=$static >/dev/null
  cmake --build "$work/cmake-$kind" >/dev/null
  if [ "$kind" = static ] && ldd "$work/cmake-$kind/consumer" | grep -q libdroppath; then
    echo "static consumer links libdroppath.so" >&2; exit 1
  fi
  echo "find_package/$kind: $(LD_LIBRARY_PATH=$libdir "$work/cmake-$kind/consumer")"
done

export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -o "$work/pc-shared" "$src/tests/package/consumer.c" $(pkg-config --cflags --libs droppath)
echo "pkg-config/shared: $(LD_LIBRARY_PATH=$libdir "$work/pc-shared")"
# -l:libdroppath.a picks the archive; --static adds its private deps (OpenMP, libm).
cc -o "$work/pc-static" "$src/tests/package/consumer.c" -DDP_STATIC_DEFINE $(pkg-config --cflags droppath) \
  $(pkg-config --static --libs droppath | sed 's/-ldroppath/-l:libdroppath.a/')
echo "pkg-config/static: $("$work/pc-static")"

# The shared library exports the public API and nothing else.
bad=$(nm -D --defined-only "$libdir"/libdroppath.so | awk '$2 ~ /[TDB]/ {print $3}' | grep -v '^dp_' || true)
# Kernels are dp_<family>_<combo>__<isa>: the double underscore marks them internal.
internal=$(nm -D --defined-only "$libdir"/libdroppath.so | awk '{print $3}' | grep -E '^dp_.*__' || true)
if [ -n "$bad$internal" ]; then echo "unexpected exported symbols: $bad $internal" >&2; exit 1; fi
echo "package test: 4 consumers passed"
