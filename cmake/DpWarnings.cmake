# Warning flags for every target of the project (not for consumers).
if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  set(DP_WARNING_FLAGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla)
  if(DP_WERROR)
    list(APPEND DP_WARNING_FLAGS -Werror)
  endif()
  # Bit-identical results across ISAs need x + (s*f) with two roundings:
  # never let the compiler contract it into an FMA (GCC does by default on AArch64).
  set(DP_FP_FLAGS -ffp-contract=off -fno-fast-math)
else()
  set(DP_WARNING_FLAGS)
  set(DP_FP_FLAGS)
endif()
