/*
 * NEON bf16/f16 <-> f32 for the half kernels (the interface of half_vec.h),
 * 8 elements as a pair of 4-lane vectors; the results match half.h bit for
 * bit.  f16 uses FCVTL/FCVTN, which round to nearest even through
 * subnormals under the default FPCR (the process's, as for all arithmetic
 * here); bf16 rounds in integers, since the BFCVT instructions are optional.
 * Tails go through the scalar kernels.  No alignment peel and no streaming,
 * as for f32 (vec_neon.h).
 */
#ifndef DP_HALF_NEON_H
#define DP_HALF_NEON_H

#include <arm_neon.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

typedef struct hv {
  float32x4_t lo, hi;
} hv;
/* Storage bits in the registers they were loaded into: 8 f32 in lo, hi, else
 * 8 halves in h. */
typedef struct hr {
  float32x4_t lo, hi;
  uint16x8_t h;
} hr;

#define HV_LANES(bf) ((size_t)8)
#define HV_UNROLL(bf) 2
#define HV_ALIGN 0
#define HV_STREAM 0
#define HV_MASKED 0

DP_ALWAYS_INLINE hv hv_widen(hr r, int t, int bf) {
  (void)bf;
  if (t == DP_T_F32) return (hv){r.lo, r.hi};
  if (t == DP_T_BF16)
    return (hv){vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(r.h), 16)), vreinterpretq_f32_u32(vshll_high_n_u16(r.h, 16))};
  const float16x8_t f = vreinterpretq_f16_u16(r.h);
  return (hv){vcvt_f32_f16(vget_low_f16(f)), vcvt_high_f32_f16(f)};
}

/* Adding just under half an ulp plus the kept lsb and taking the high half
 * (ADDHN) rounds ties to even; no non-NaN input wraps. */
DP_ALWAYS_INLINE uint16x4_t hn_bf16_narrow4(float32x4_t v) {
  const uint32x4_t u = vreinterpretq_u32_f32(v);
  const uint32x4_t bias = vaddq_u32(vdupq_n_u32(0x7FFF), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1)));
  return vbsl_u16(vmovn_u32(vceqq_f32(v, v)), vaddhn_u32(u, bias), vdup_n_u16(DP_BF16_QNAN));
}

DP_ALWAYS_INLINE hr hv_load_raw(const void *p, size_t i, int t, int bf) {
  const void *q = dp_elem_at(p, i, t);
  hr r = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_u16(0)};
  (void)bf;
  if (t == DP_T_F32) {
    r.lo = vld1q_f32((const float *)q);
    r.hi = vld1q_f32((const float *)q + 4);
  } else {
    r.h = vld1q_u16((const uint16_t *)q);
  }
  return r;
}

/* Separate multiply and add: vmlaq_f32 may be fused. */
DP_ALWAYS_INLINE hv hv_set1(float s) { return (hv){vdupq_n_f32(s), vdupq_n_f32(s)}; }
DP_ALWAYS_INLINE hv hv_mul(hv a, hv b) { return (hv){vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)}; }
DP_ALWAYS_INLINE hv hv_add(hv a, hv b) { return (hv){vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }

DP_ALWAYS_INLINE void hv_store_raw(void *p, size_t i, hr r, int t, int bf, int nt) {
  void *q = dp_elem_at_w(p, i, t);
  (void)bf;
  (void)nt;
  if (t == DP_T_F32) {
    vst1q_f32((float *)q, r.lo);
    vst1q_f32((float *)q + 4, r.hi);
  } else {
    vst1q_u16((uint16_t *)q, r.h);
  }
}

/* Rounded to t, canonical NaN. */
DP_ALWAYS_INLINE void hv_store(void *p, size_t i, hv v, int t, int bf, int nt) {
  hr r = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_u16(0)};
  if (t == DP_T_F32) {
    r.lo = dp_canon_f32x4(v.lo);
    r.hi = dp_canon_f32x4(v.hi);
  } else if (t == DP_T_BF16) {
    r.h = vcombine_u16(hn_bf16_narrow4(v.lo), hn_bf16_narrow4(v.hi));
  } else {
    r.h = vreinterpretq_u16_f16(vcvt_high_f16_f32(vcvt_f16_f32(dp_canon_f32x4(v.lo)), dp_canon_f32x4(v.hi)));
  }
  hv_store_raw(p, i, r, t, bf, nt);
}

#include "kernels/simd/half_vec.h"

#endif /* DP_HALF_NEON_H */
