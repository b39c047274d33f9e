/*
 * The one list of instruction sets. Dispatch, the kernel list, the tests and
 * the benchmarks all read it; nothing else orders ISAs.
 *
 * DP_ISA_LIST(X, ctx) calls X(ctx, name, id, arch, rank, built) once per ISA,
 * in dp_isa order:
 *   name   kernel-name suffix and dp_isa_name() ("avx2": dp_fwd_f32__avx2)
 *   id     its dp_isa value (public ABI: checked against the list below)
 *   arch   DP_ARCH_ANY (portable C), DP_ARCH_X86 or DP_ARCH_ARM
 *   rank   capability within its arch; ANY is rank 0
 *   built  1 when this build compiles the ISA's kernels (dp_config.h)
 * A kernel table for ISA c may hold kernels of ISA k when k is c, or k is
 * ANY or of c's arch and ranks below c: dp_isa_within(k, c).
 */
#ifndef DP_ISAS_H
#define DP_ISAS_H

#include "droppath/droppath.h"
#include "dp_config.h"

#define DP_ISA_LIST(X, ctx)                                   \
  X(ctx, scalar, DP_ISA_SCALAR, DP_ARCH_ANY, 0, 1)            \
  X(ctx, sse2, DP_ISA_SSE2, DP_ARCH_X86, 1, DP_HAVE_SSE2)     \
  X(ctx, avx2, DP_ISA_AVX2, DP_ARCH_X86, 2, DP_HAVE_AVX2)     \
  X(ctx, avx512, DP_ISA_AVX512, DP_ARCH_X86, 3, DP_HAVE_AVX512) \
  X(ctx, neon, DP_ISA_NEON, DP_ARCH_ARM, 1, DP_HAVE_NEON)

enum { DP_ARCH_ANY, DP_ARCH_X86, DP_ARCH_ARM, DP_ARCH_OTHER };

/* The architecture this code was compiled for. */
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define DP_ARCH_NATIVE DP_ARCH_X86
#elif defined(__aarch64__) || defined(_M_ARM64)
#define DP_ARCH_NATIVE DP_ARCH_ARM
#else
#define DP_ARCH_NATIVE DP_ARCH_OTHER
#endif

#if defined(__cplusplus)
#define DP_STATIC_ASSERT static_assert
#else
#define DP_STATIC_ASSERT _Static_assert
#endif

/* The list is in dp_isa order and covers every dp_isa. */
#define DP_ISA_POS_(ctx, name, id, arch, rank, built) DP_ISA_POS_##name,
enum { DP_ISA_LIST(DP_ISA_POS_, ) DP_ISA_POS_COUNT_ };
#define DP_ISA_ORDER_(ctx, name, id, arch, rank, built) \
  DP_STATIC_ASSERT((int)(id) == (int)DP_ISA_POS_##name, "DP_ISA_LIST is not in dp_isa order");
DP_ISA_LIST(DP_ISA_ORDER_, )
DP_STATIC_ASSERT((int)DP_ISA_POS_COUNT_ == (int)DP_ISA_COUNT, "DP_ISA_LIST must list every dp_isa");
#undef DP_ISA_ORDER_
#undef DP_ISA_POS_

typedef struct dp_isa_row {
  const char *name;
  int arch, rank, built;
} dp_isa_row;

/* Row of the list for isa (which must be < DP_ISA_COUNT). */
static inline const dp_isa_row *dp_isa_info(dp_isa isa) {
#define DP_ISA_ROW_(ctx, name, id, arch, rank, built) {#name, arch, rank, built},
  static const dp_isa_row rows[DP_ISA_COUNT] = {DP_ISA_LIST(DP_ISA_ROW_, )};
#undef DP_ISA_ROW_
  return &rows[isa];
}

/* Whether a table for ISA `cap` may use kernels of ISA `k` (see above).
 * Two ISAs of one rank never stand in for each other: neither implies the
 * other, so either's kernels could fault on a CPU with only the other. */
static inline int dp_isa_within(dp_isa k, dp_isa cap) {
  const dp_isa_row *a = dp_isa_info(k), *b = dp_isa_info(cap);
  return (a->arch == DP_ARCH_ANY || a->arch == b->arch) && (a->rank < b->rank || k == cap);
}

/* Whether ISA isa belongs to the architecture this code runs on (or is portable). */
static inline int dp_isa_native(dp_isa isa) {
  const int arch = dp_isa_info(isa)->arch;
  return arch == DP_ARCH_ANY || arch == DP_ARCH_NATIVE;
}

#endif /* DP_ISAS_H */
