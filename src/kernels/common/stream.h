/*
 * Shared by the SIMD kernel bodies of every ISA: when non-temporal stores are
 * worth it, how far an output is from vector alignment, and the forced
 * inlining the bodies rely on.  No intrinsics here, so files built for any
 * ISA can include it.
 */
#ifndef DP_STREAM_H
#define DP_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/common/inline.h"

/* The caller decides streaming per call and fences once after its last call
 * (kernels.h), so a run only has to be long enough for its aligned
 * non-temporal body to outweigh the partial lines at its ends.  Measured on
 * Zen 5, one thread, output far larger than L3: rows that start on a cache
 * line gain 1.1-1.5x from 256 B up; rows that start 4 bytes off lose up to
 * 20% below 512 B, and bwd (two streamed outputs) still loses ~15% at 1 KiB,
 * winning from 3 KiB.  256 elements (1 KiB of f32, 512 B of bf16/f16) keeps
 * the common aligned rows' gain. */
#define DP_STREAM_MIN_ELEMS ((size_t)256)

/* Elements of esize bytes before p reaches `align` (a power of two); 0 when p
 * is not esize-aligned, since whole elements can never align it then. */
static inline size_t dp_elem_head(const void *p, size_t esize, size_t align) {
  const uintptr_t a = (uintptr_t)p;
  if (a & (esize - 1)) return 0;
  return ((align - (a & (align - 1))) & (align - 1)) / esize;
}

static inline int dp_is_aligned(const void *p, size_t align) {
  return ((uintptr_t)p & (align - 1)) == 0;
}

#endif /* DP_STREAM_H */
