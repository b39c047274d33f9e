# Cross-compile for AArch64 Linux from a Debian/Ubuntu host:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
# Needs gcc-aarch64-linux-gnu, plus arm64 multiarch packages for the libraries
# the build links (libcmocka-dev:arm64, libgomp1:arm64); ctest runs the tests
# through qemu-user.  tools/run-aarch64-tests.sh does all of it.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(DP_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${DP_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${DP_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${DP_CROSS_TRIPLE})

# Target files live in two places on a multiarch host: the cross libc under
# /usr/<triple>, and arm64 packages under /usr/lib/<triple> (reached from the
# root "/" through CMAKE_LIBRARY_ARCHITECTURE).  Programs come from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${DP_CROSS_TRIPLE} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must see the arm64 .pc files only, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${DP_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# No -L: with libc6:arm64 installed the loader and libraries are found at their
# multiarch paths, and `qemu-aarch64 -L /usr/<triple>` mixes two glibc copies,
# which hangs threaded programs in pthread_create.
find_program(DP_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(DP_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${DP_QEMU_AARCH64})
endif()
