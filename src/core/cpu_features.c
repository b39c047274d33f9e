/* What the CPU and OS can run. On x86 an instruction set is usable only if
 * CPUID reports it AND the OS saves the register state it needs (XGETBV):
 * a CPU with AVX-512 under an OS that doesn't save ZMM/opmask state would
 * corrupt registers on context switch. */
#include "core/dispatch.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define DP_X86 1
#include <cpuid.h>

static uint64_t read_xcr0(void) {
  uint32_t eax, edx;
  /* xgetbv with ecx = 0, spelled as bytes so no -mxsave is needed here. */
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

static unsigned detect_x86(void) {
  unsigned mask = 1u << DP_ISA_SCALAR;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return mask;
  const int sse2 = (d >> 26) & 1;
  const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
  if (sse2) mask |= 1u << DP_ISA_SSE2;
  if (!osxsave || !avx) return mask;
  const uint64_t xcr0 = read_xcr0();
  const int os_ymm = (xcr0 & 0x6) == 0x6;    /* XMM and YMM state */
  const int os_zmm = (xcr0 & 0xe6) == 0xe6;  /* + opmask, ZMM_Hi256, Hi16_ZMM */
  unsigned max_leaf = __get_cpuid_max(0, NULL);
  if (max_leaf < 7) return mask;
  __cpuid_count(7, 0, a, b, c, d);
  const int avx2 = (b >> 5) & 1;
  const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
  const int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
  if (os_ymm && avx2 && f16c) mask |= 1u << DP_ISA_AVX2;
  if (os_zmm && (mask >> DP_ISA_AVX2 & 1) && avx512f && avx512dq && avx512bw && avx512vl)
    mask |= 1u << DP_ISA_AVX512;
  return mask;
}
#endif

unsigned dp_cpu_isa_mask(void) {
#if defined(DP_X86)
  return detect_x86();
#elif defined(__aarch64__)
  /* Advanced SIMD is architectural on AArch64. */
  return (1u << DP_ISA_SCALAR) | (1u << DP_ISA_NEON);
#else
  return 1u << DP_ISA_SCALAR;
#endif
}

unsigned dp_built_isa_mask(void) {
#define DP_BUILT_BIT_(ctx, name, id, arch, rank, built) | ((unsigned)(built) << (id))
  return 0u DP_ISA_LIST(DP_BUILT_BIT_, );
#undef DP_BUILT_BIT_
}
