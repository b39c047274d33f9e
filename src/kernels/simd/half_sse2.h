/*
 * SSE2 bf16/f16 <-> f32 for the half kernels, 8 elements as two 4-lane
 * halves; the results match half.h bit for bit.  SSE2 has no half
 * conversions, so both directions are done with integer operations, plus one
 * exact float subtraction (f16 subnormal in) and one float add whose
 * round-to-nearest-even is the subnormal rounding (f16 subnormal out).
 * Heads and tails go through the scalar kernels.
 */
#ifndef DP_HALF_SSE2_H
#define DP_HALF_SSE2_H

#include <emmintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

#define DP_HW 8 /* elements per step */

typedef struct h128x2 {
  __m128 lo, hi;
} h128x2;

DP_X86_INLINE const void *h128_at(const void *p, size_t i, int t) { return (const char *)p + i * dp_t_size(t); }
DP_X86_INLINE void *h128_at_w(void *p, size_t i, int t) { return (char *)p + i * dp_t_size(t); }

DP_X86_INLINE __m128i h128_sel(__m128i m, __m128i a, __m128i b) {
  return _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
}

DP_X86_INLINE __m128i h128_k(uint32_t k) { return _mm_set1_epi32((int)k); }

/* f16 bits zero-extended in each 32-bit lane -> f32 (NaNs quieted, as F16C). */
DP_X86_INLINE __m128 h128_f16_widen4(__m128i h) {
  const __m128i zero = _mm_setzero_si128();
  const __m128i em = _mm_slli_epi32(_mm_and_si128(h, h128_k(0x7FFF)), 13);
  const __m128i exp = _mm_and_si128(em, h128_k(0x0F800000));
  __m128i o = _mm_add_epi32(em, h128_k((127 - 15) << 23));
  const __m128i infnan = _mm_cmpeq_epi32(exp, h128_k(0x0F800000));
  o = _mm_add_epi32(o, _mm_and_si128(infnan, h128_k((128 - 16) << 23)));
  const __m128i nan = _mm_andnot_si128(_mm_cmpeq_epi32(_mm_and_si128(em, h128_k(0x007FE000)), zero), infnan);
  o = _mm_or_si128(o, _mm_and_si128(nan, h128_k(0x00400000)));
  /* Zero and subnormals: (2^-14 + m*2^-24) - 2^-14, both normal and exact. */
  const __m128 sub = _mm_sub_ps(_mm_castsi128_ps(_mm_add_epi32(o, h128_k(1u << 23))), _mm_castsi128_ps(h128_k(113u << 23)));
  o = h128_sel(_mm_cmpeq_epi32(exp, zero), _mm_castps_si128(sub), o);
  return _mm_castsi128_ps(_mm_or_si128(o, _mm_slli_epi32(_mm_and_si128(h, h128_k(0x8000)), 16)));
}

/* Rounded f16 bits of 4 results, sign-extended from 16 bits (canonical NaN). */
DP_X86_INLINE __m128i h128_f16_narrow4(__m128 v) {
  const __m128i u = _mm_castps_si128(v);
  const __m128i a = _mm_and_si128(u, h128_k(0x7FFFFFFF));
  const __m128i r = _mm_sub_epi32(a, h128_k((127u - 15u) << 23));
  const __m128i nrm = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(r, h128_k(0x0FFF)), _mm_and_si128(_mm_srli_epi32(r, 13), h128_k(1))), 13);
  /* Below 2^-14: adding 0.5f rounds |v| to a multiple of 2^-24, the subnormal unit. */
  const __m128i sub = _mm_sub_epi32(_mm_castps_si128(_mm_add_ps(_mm_castsi128_ps(a), _mm_set1_ps(0.5f))), h128_k(0x3F000000));
  __m128i o = h128_sel(_mm_cmplt_epi32(a, h128_k(0x38800000)), sub, nrm);
  o = h128_sel(_mm_cmpgt_epi32(a, h128_k(0x477FFFFF)), h128_k(0x7C00), o);
  o = _mm_or_si128(o, _mm_srli_epi32(_mm_and_si128(u, h128_k(0x80000000u)), 16));
  o = h128_sel(_mm_cmpgt_epi32(a, h128_k(0x7F800000)), h128_k(DP_F16_QNAN), o);
  return _mm_srai_epi32(_mm_slli_epi32(o, 16), 16);
}

/* Rounded bf16 bits of 4 results, sign-extended from 16 bits (canonical NaN).
 * No non-NaN input overflows the signed add. */
DP_X86_INLINE __m128i h128_bf16_narrow4(__m128 v) {
  const __m128i u = _mm_castps_si128(v);
  const __m128i lsb = _mm_and_si128(_mm_srli_epi32(u, 16), h128_k(1));
  const __m128i r = _mm_srai_epi32(_mm_add_epi32(_mm_add_epi32(u, h128_k(0x7FFF)), lsb), 16);
  return h128_sel(_mm_castps_si128(_mm_cmpunord_ps(v, v)), h128_k(DP_BF16_QNAN), r);
}

DP_X86_INLINE h128x2 h128_widen(__m128i h, int t) {
  const __m128i zero = _mm_setzero_si128();
  h128x2 r;
  if (t == DP_T_BF16) {
    r.lo = _mm_castsi128_ps(_mm_unpacklo_epi16(zero, h));
    r.hi = _mm_castsi128_ps(_mm_unpackhi_epi16(zero, h));
  } else {
    r.lo = h128_f16_widen4(_mm_unpacklo_epi16(h, zero));
    r.hi = h128_f16_widen4(_mm_unpackhi_epi16(h, zero));
  }
  return r;
}

DP_X86_INLINE __m128i h128_narrow(h128x2 v, int t) {
  if (t == DP_T_BF16) return _mm_packs_epi32(h128_bf16_narrow4(v.lo), h128_bf16_narrow4(v.hi));
  return _mm_packs_epi32(h128_f16_narrow4(v.lo), h128_f16_narrow4(v.hi));
}

/* 8 elements of type t at p[i..], widened. */
DP_X86_INLINE h128x2 h128_load(const void *p, size_t i, int t) {
  if (t != DP_T_F32) return h128_widen(_mm_loadu_si128((const __m128i *)h128_at(p, i, t)), t);
  const float *q = (const float *)h128_at(p, i, t);
  h128x2 r;
  r.lo = _mm_loadu_ps(q);
  r.hi = _mm_loadu_ps(q + 4);
  return r;
}

DP_X86_INLINE h128x2 h128_mul(__m128 s, h128x2 v) {
  v.lo = _mm_mul_ps(s, v.lo);
  v.hi = _mm_mul_ps(s, v.hi);
  return v;
}

DP_X86_INLINE h128x2 h128_add(h128x2 a, h128x2 b) {
  a.lo = _mm_add_ps(a.lo, b.lo);
  a.hi = _mm_add_ps(a.hi, b.hi);
  return a;
}

/* Store raw f32 lanes (no rounding, no NaN change); nt needs q 16-byte aligned. */
DP_X86_INLINE void h128_put_f32(float *q, h128x2 v, int nt) {
  if (nt) {
    _mm_stream_ps(q, v.lo);
    _mm_stream_ps(q + 4, v.hi);
  } else {
    _mm_storeu_ps(q, v.lo);
    _mm_storeu_ps(q + 4, v.hi);
  }
}

DP_X86_INLINE void h128_put_i(void *q, __m128i v, int nt) {
  if (nt)
    _mm_stream_si128((__m128i *)q, v);
  else
    _mm_storeu_si128((__m128i *)q, v);
}

/* Store 8 results as type t at p[i..]; nt needs p[i] 16-byte aligned. */
DP_X86_INLINE void h128_store(void *p, size_t i, h128x2 v, int t, int nt) {
  void *q = h128_at_w(p, i, t);
  if (t != DP_T_F32) {
    h128_put_i(q, h128_narrow(v, t), nt);
    return;
  }
  v.lo = dp_canon_m128(v.lo);
  v.hi = dp_canon_m128(v.hi);
  h128_put_f32((float *)q, v, nt);
}

#endif /* DP_HALF_SSE2_H */
