/*
 * SSE2 bf16/f16 <-> f32 for the half kernels (the interface of half_vec.h),
 * 8 elements as a pair of 4-lane vectors; the results match half.h bit for
 * bit.  SSE2 has no half conversions, so both directions are done with
 * integer operations, plus one exact float subtraction (f16 subnormal in) and
 * one float add whose round-to-nearest-even is the subnormal rounding (f16
 * subnormal out).  Heads and tails go through the scalar kernels.
 */
#ifndef DP_HALF_SSE2_H
#define DP_HALF_SSE2_H

#include <emmintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

typedef struct hv {
  __m128 lo, hi;
} hv;
/* Storage bits in the registers they were loaded into: 8 f32 in lo, hi, else
 * 8 halves in h. */
typedef struct hr {
  __m128 lo, hi;
  __m128i h;
} hr;

#define HV_LANES(bf) ((size_t)8)
#define HV_UNROLL(bf) 4
#define HV_ALIGN 16 /* aligned 16-byte stores never split a cache line */
#define HV_STREAM 1
#define HV_MASKED 0

DP_ALWAYS_INLINE __m128i h128_sel(__m128i m, __m128i a, __m128i b) {
  return _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
}

DP_ALWAYS_INLINE __m128i h128_k(uint32_t k) { return _mm_set1_epi32((int)k); }

/* f16 bits zero-extended in each 32-bit lane -> f32 (NaNs quieted, as F16C). */
DP_ALWAYS_INLINE __m128 h128_f16_widen4(__m128i h) {
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
DP_ALWAYS_INLINE __m128i h128_f16_narrow4(__m128 v) {
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
DP_ALWAYS_INLINE __m128i h128_bf16_narrow4(__m128 v) {
  const __m128i u = _mm_castps_si128(v);
  const __m128i lsb = _mm_and_si128(_mm_srli_epi32(u, 16), h128_k(1));
  const __m128i r = _mm_srai_epi32(_mm_add_epi32(_mm_add_epi32(u, h128_k(0x7FFF)), lsb), 16);
  return h128_sel(_mm_castps_si128(_mm_cmpunord_ps(v, v)), h128_k(DP_BF16_QNAN), r);
}

DP_ALWAYS_INLINE hv hv_widen(hr r, int t, int bf) {
  const __m128i zero = _mm_setzero_si128();
  (void)bf;
  if (t == DP_T_F32) return (hv){r.lo, r.hi};
  if (t == DP_T_BF16)
    return (hv){_mm_castsi128_ps(_mm_unpacklo_epi16(zero, r.h)), _mm_castsi128_ps(_mm_unpackhi_epi16(zero, r.h))};
  return (hv){h128_f16_widen4(_mm_unpacklo_epi16(r.h, zero)), h128_f16_widen4(_mm_unpackhi_epi16(r.h, zero))};
}

DP_ALWAYS_INLINE hr hv_load_raw(const void *p, size_t i, int t, int bf) {
  const void *q = dp_elem_at(p, i, t);
  hr r = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_si128()};
  (void)bf;
  if (t == DP_T_F32) {
    r.lo = _mm_loadu_ps((const float *)q);
    r.hi = _mm_loadu_ps((const float *)q + 4);
  } else {
    r.h = _mm_loadu_si128((const __m128i *)q);
  }
  return r;
}

DP_ALWAYS_INLINE hv hv_set1(float s) { return (hv){_mm_set1_ps(s), _mm_set1_ps(s)}; }
DP_ALWAYS_INLINE hv hv_mul(hv a, hv b) { return (hv){_mm_mul_ps(a.lo, b.lo), _mm_mul_ps(a.hi, b.hi)}; }
DP_ALWAYS_INLINE hv hv_add(hv a, hv b) { return (hv){_mm_add_ps(a.lo, b.lo), _mm_add_ps(a.hi, b.hi)}; }

DP_ALWAYS_INLINE void hv_store_raw(void *p, size_t i, hr r, int t, int bf, int nt) {
  void *q = dp_elem_at_w(p, i, t);
  (void)bf;
  if (t != DP_T_F32 && nt) {
    _mm_stream_si128((__m128i *)q, r.h);
  } else if (t != DP_T_F32) {
    _mm_storeu_si128((__m128i *)q, r.h);
  } else if (nt) {
    _mm_stream_ps((float *)q, r.lo);
    _mm_stream_ps((float *)q + 4, r.hi);
  } else {
    _mm_storeu_ps((float *)q, r.lo);
    _mm_storeu_ps((float *)q + 4, r.hi);
  }
}

DP_ALWAYS_INLINE void hv_store(void *p, size_t i, hv v, int t, int bf, int nt) {
  hr r = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_si128()};
  if (t == DP_T_F32) {
    r.lo = dp_canon_m128(v.lo);
    r.hi = dp_canon_m128(v.hi);
  } else if (t == DP_T_BF16) {
    r.h = _mm_packs_epi32(h128_bf16_narrow4(v.lo), h128_bf16_narrow4(v.hi));
  } else {
    r.h = _mm_packs_epi32(h128_f16_narrow4(v.lo), h128_f16_narrow4(v.hi));
  }
  hv_store_raw(p, i, r, t, bf, nt);
}

#include "kernels/simd/half_vec.h"

#endif /* DP_HALF_SSE2_H */
