# OpenBLAS (or another CBLAS) for the MLP-block example and benchmark only: the library never
# links a BLAS.  Defines DP_HAVE_CBLAS and, when found, the interface target dp_cblas.
# pkg-config first (Debian's libopenblas-dev: "openblas", the pthread build), then "cblas";
# cross builds see only the target's .pc files (cmake/toolchain-aarch64.cmake), so a host
# OpenBLAS is never picked up for another architecture.
if(TARGET dp_cblas)  # found by an earlier include (another directory)
  set(DP_HAVE_CBLAS 1)
  return()
endif()
set(DP_HAVE_CBLAS 0)
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(DP_OPENBLAS QUIET IMPORTED_TARGET openblas)
  if(DP_OPENBLAS_FOUND)
    add_library(dp_cblas INTERFACE)
    target_link_libraries(dp_cblas INTERFACE PkgConfig::DP_OPENBLAS)
    # openblas_set_num_threads / openblas_get_config
    target_compile_definitions(dp_cblas INTERFACE MLP_HAVE_OPENBLAS)
    set(DP_HAVE_CBLAS 1)
    message(STATUS "droppath: MLP block example and benchmark rows with OpenBLAS ${DP_OPENBLAS_VERSION}")
  else()
    pkg_check_modules(DP_CBLAS QUIET IMPORTED_TARGET cblas)
    if(DP_CBLAS_FOUND)
      add_library(dp_cblas INTERFACE)
      target_link_libraries(dp_cblas INTERFACE PkgConfig::DP_CBLAS)
      set(DP_HAVE_CBLAS 1)
      message(STATUS "droppath: MLP block example and benchmark rows with CBLAS ${DP_CBLAS_VERSION} (not OpenBLAS: no BLAS thread setting)")
    endif()
  endif()
endif()
if(NOT DP_HAVE_CBLAS)
  message(STATUS "droppath: MLP block example and benchmark rows skipped: no OpenBLAS or CBLAS (tools/install-deps.sh blas installs OpenBLAS)")
endif()
