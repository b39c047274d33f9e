/*
 * NEON bf16/f16 <-> f32 for the half kernels, 8 elements as two 4-lane
 * halves; the results match half.h bit for bit.  f16 uses FCVTL/FCVTN, which
 * round to nearest even through subnormals under the default FPCR (the
 * process's, as for all arithmetic here); bf16 rounds in integers, since the
 * BFCVT instructions are optional.  Tails go through the scalar kernels.
 * AArch64 has no non-temporal store worth using (STNP is only a hint), so the
 * stream flags are ignored.
 */
#ifndef DP_HALF_NEON_H
#define DP_HALF_NEON_H

#include <arm_neon.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"

#if defined(__GNUC__)
#define DP_NEON_INLINE static inline __attribute__((always_inline))
#else
#define DP_NEON_INLINE static inline
#endif

#define DP_HW 8 /* elements per step */

typedef struct hn_f32x8 {
  float32x4_t lo, hi;
} hn_f32x8;

DP_NEON_INLINE const void *hn_at(const void *p, size_t i, int t) { return (const char *)p + i * dp_t_size(t); }
DP_NEON_INLINE void *hn_at_w(void *p, size_t i, int t) { return (char *)p + i * dp_t_size(t); }

DP_NEON_INLINE hn_f32x8 hn_widen(uint16x8_t h, int t) {
  hn_f32x8 r;
  if (t == DP_T_BF16) {
    r.lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    r.hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
  } else {
    const float16x8_t f = vreinterpretq_f16_u16(h);
    r.lo = vcvt_f32_f16(vget_low_f16(f));
    r.hi = vcvt_high_f32_f16(f);
  }
  return r;
}

/* Adding just under half an ulp plus the kept lsb and taking the high half
 * (ADDHN) rounds ties to even; no non-NaN input wraps. */
DP_NEON_INLINE uint16x4_t hn_bf16_narrow4(float32x4_t v) {
  const uint32x4_t u = vreinterpretq_u32_f32(v);
  const uint32x4_t bias = vaddq_u32(vdupq_n_u32(0x7FFF), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1)));
  return vbsl_u16(vmovn_u32(vceqq_f32(v, v)), vaddhn_u32(u, bias), vdup_n_u16(DP_BF16_QNAN));
}

/* Rounded storage bits of 8 results (canonical NaN). */
DP_NEON_INLINE uint16x8_t hn_narrow(hn_f32x8 v, int t) {
  if (t == DP_T_BF16) return vcombine_u16(hn_bf16_narrow4(v.lo), hn_bf16_narrow4(v.hi));
  return vreinterpretq_u16_f16(vcvt_high_f16_f32(vcvt_f16_f32(dp_canon_f32x4(v.lo)), dp_canon_f32x4(v.hi)));
}

DP_NEON_INLINE uint16x8_t hn_load_raw(const void *p, size_t i, int t) {
  return vld1q_u16((const uint16_t *)hn_at(p, i, t));
}

/* 8 elements of type t at p[i..], widened. */
DP_NEON_INLINE hn_f32x8 hn_load(const void *p, size_t i, int t) {
  if (t != DP_T_F32) return hn_widen(hn_load_raw(p, i, t), t);
  const float *q = (const float *)hn_at(p, i, t);
  hn_f32x8 r;
  r.lo = vld1q_f32(q);
  r.hi = vld1q_f32(q + 4);
  return r;
}

/* Separate multiply and add: vmlaq_f32 may be fused. */
DP_NEON_INLINE hn_f32x8 hn_mul(float32x4_t s, hn_f32x8 v) {
  v.lo = vmulq_f32(s, v.lo);
  v.hi = vmulq_f32(s, v.hi);
  return v;
}

DP_NEON_INLINE hn_f32x8 hn_add(hn_f32x8 a, hn_f32x8 b) {
  a.lo = vaddq_f32(a.lo, b.lo);
  a.hi = vaddq_f32(a.hi, b.hi);
  return a;
}

/* Store raw f32 lanes (no NaN change). */
DP_NEON_INLINE void hn_put_f32(void *p, size_t i, hn_f32x8 v) {
  float *q = (float *)hn_at_w(p, i, DP_T_F32);
  vst1q_f32(q, v.lo);
  vst1q_f32(q + 4, v.hi);
}

/* Store 8 results as type t at p[i..]. */
DP_NEON_INLINE void hn_store(void *p, size_t i, hn_f32x8 v, int t) {
  if (t != DP_T_F32) {
    vst1q_u16((uint16_t *)hn_at_w(p, i, t), hn_narrow(v, t));
    return;
  }
  v.lo = dp_canon_f32x4(v.lo);
  v.hi = dp_canon_f32x4(v.hi);
  hn_put_f32(p, i, v);
}

#endif /* DP_HALF_NEON_H */
