/*
 * The canonical-NaN rule every kernel follows: an arithmetic result that is
 * NaN is stored as the one quiet NaN below (bf16 and f16 have their own, see
 * half.h); copies keep their bits.  Which NaN an add returns when both
 * operands are NaN depends on the operand order a compiler picks (it may
 * commute `+`), and the sign of a freshly made NaN differs between x86 and
 * Arm, so only a canonical NaN gives the same bits on every ISA.
 * SIMD forms of dp_f32_canon are in canon_simd.h.
 */
#ifndef DP_CANON_H
#define DP_CANON_H

#include <stdint.h>
#include <string.h>

#define DP_F32_QNAN 0x7FC00000u

/* A select, not a branch, so loops over it vectorise; v != v holds exactly
 * for NaN (the build never enables -ffast-math). */
static inline float dp_f32_canon(float v) {
  const uint32_t q = DP_F32_QNAN;
  float qnan;
  memcpy(&qnan, &q, sizeof qnan);
  return v != v ? qnan : v;
}

#endif /* DP_CANON_H */
