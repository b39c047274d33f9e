# Which SIMD kernel files this build compiles, and with which flags.
# Each ISA's flags go on that ISA's files only (set in src/CMakeLists.txt), so
# the rest of the library stays baseline-portable.
include(CheckCSourceCompiles)

# The SIMD ISAs, as in src/kernels/isas.h: kernel files *_<isa>.c, flags
# DP_FLAGS_<ISA>, and DP_HAVE_<ISA> in dp_config.h all follow this list.
set(DP_SIMD_ISAS SSE2 AVX2 AVX512 NEON)
foreach(_isa ${DP_SIMD_ISAS})
  set(DP_HAVE_${_isa} 0)
endforeach()

string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _dp_proc)
if(_dp_proc MATCHES "^(x86_64|amd64|x64)$")
  set(DP_ARCH_X86 1)
elseif(_dp_proc MATCHES "^(aarch64|arm64)$")
  set(DP_ARCH_AARCH64 1)
endif()

function(dp_probe_isa var flags source)
  list(JOIN flags " " CMAKE_REQUIRED_FLAGS)
  check_c_source_compiles("${source}" ${var}_COMPILES)
  if(${var}_COMPILES)
    set(${var} 1 PARENT_SCOPE)
  endif()
endfunction()

if(DP_ENABLE_SIMD AND DP_ARCH_X86 AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  set(DP_FLAGS_SSE2 -msse2)
  set(DP_FLAGS_AVX2 -mavx2 -mf16c)
  set(DP_FLAGS_AVX512 -mavx512f -mavx512bw -mavx512vl -mavx512dq)
  dp_probe_isa(DP_HAVE_SSE2 "${DP_FLAGS_SSE2}"
    "#include <emmintrin.h>\nint main(void){__m128 a=_mm_set1_ps(1.f);_mm_stream_ps((float*)0+0,a);return 0;}")
  dp_probe_isa(DP_HAVE_AVX2 "${DP_FLAGS_AVX2}"
    "#include <immintrin.h>\nint main(void){__m256i m=_mm256_set1_epi32(-1);float b[8];__m256 a=_mm256_maskload_ps(b,m);_mm256_maskstore_ps(b,m,a);return (int)b[0];}")
  dp_probe_isa(DP_HAVE_AVX512 "${DP_FLAGS_AVX512}"
    "#include <immintrin.h>\nint main(void){float b[16]={0};__m512 a=_mm512_maskz_loadu_ps((__mmask16)3,b);_mm512_mask_storeu_ps(b,(__mmask16)3,a);return (int)b[0];}")
elseif(DP_ENABLE_SIMD AND DP_ARCH_AARCH64)
  set(DP_FLAGS_NEON "")
  dp_probe_isa(DP_HAVE_NEON ""
    "#include <arm_neon.h>\nint main(void){float b[4]={0};float32x4_t a=vld1q_f32(b);vst1q_f32(b,vmulq_n_f32(a,2.f));return (int)b[0];}")
endif()

set(DP_ISA_DEFINES "")
set(_dp_summary "")
foreach(_isa ${DP_SIMD_ISAS})
  string(APPEND DP_ISA_DEFINES "#define DP_HAVE_${_isa} ${DP_HAVE_${_isa}}\n")
  string(TOLOWER ${_isa} _l)
  string(APPEND _dp_summary " ${_l}=${DP_HAVE_${_isa}}")
endforeach()
message(STATUS "droppath ISAs:${_dp_summary}")
