/*
 * Shared by the x86 SIMD kernels: when non-temporal stores are worth it, and
 * how far an output is from vector alignment.  No intrinsics here, so files
 * built for any ISA can include it.
 */
#ifndef DP_X86_STREAM_H
#define DP_X86_STREAM_H

#include <stddef.h>
#include <stdint.h>

/* The caller decides streaming per call, but each streaming call ends with an
 * sfence that waits for the write-combining buffers to drain: measured on
 * Zen 5, per-row streaming loses 2-5x on 256 B-1 KiB rows, breaks even near
 * 4 KiB and wins from about 8 KiB. */
#define DP_STREAM_MIN_ELEMS ((size_t)8192 / sizeof(float))

/* Force the per-mode workers to be specialised: each instantiation must lose
 * its mode branches, which only happens once the constants are inlined. */
#define DP_X86_INLINE static inline __attribute__((always_inline))

/* f32 elements to process before p reaches `align` (a power of two); 0 when p
 * is not 4-byte aligned, since whole elements can never align it then. */
static inline size_t dp_f32_head(const void *p, size_t align) {
  const uintptr_t a = (uintptr_t)p;
  if (a & 3u) return 0;
  return ((align - (a & (align - 1))) & (align - 1)) / sizeof(float);
}

static inline int dp_is_aligned(const void *p, size_t align) {
  return ((uintptr_t)p & (align - 1)) == 0;
}

#endif /* DP_X86_STREAM_H */
