/*
 * AVX2 + F16C bf16/f16 <-> f32 for the half kernels (the interface of
 * half_vec.h); the results match half.h bit for bit.  f16 uses
 * VCVTPH2PS/VCVTPS2PH (exact round-to-nearest-even including subnormals),
 * bf16 rounds in integers.  8 lanes, except that a kernel whose operands are
 * all bf16 takes 16 per vector (below).  Heads and tails go through the
 * scalar kernels, which compute the same bits.
 */
#ifndef DP_HALF_AVX2_H
#define DP_HALF_AVX2_H

#include <immintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

/*
 * 16 bf16 per 256-bit load: bf16 -> f32 is a 16-bit shift, so unpacking
 * against zero widens; the unpacks work per 128-bit lane, which leaves lo =
 * elements 0-3,8-11 and hi = 4-7,12-15.  The per-lane packus on store undoes
 * exactly that order, so element-wise math in between needs no cross-lane
 * shuffles; it only works when every operand is bf16 (bf).  Otherwise an hv
 * is 8 lanes in lo, and hi is never stored (the compiler drops its math).
 */
typedef struct hv {
  __m256 lo, hi;
} hv;
/* Storage bits in the register they were loaded into: 8 f32 in f, 16 bf16
 * in b (bf), else 8 halves in h.  Separate members, not casts of one, so a
 * half load stays a memory operand of its conversion. */
typedef struct hr {
  __m256 f;
  __m256i b;
  __m128i h;
} hr;

#define HV_LANES(bf) ((size_t)((bf) ? 16 : 8))
#define HV_UNROLL(bf) ((bf) ? 2 : 4)
#define HV_ALIGN 32 /* every other misaligned 32-byte store splits a cache line */
#define HV_STREAM 1
#define HV_MASKED 0

/* bf16 bits of 8 results, one per 32-bit lane (canonical NaN): integer
 * round-to-nearest-even of the top half, as half.h does. */
DP_ALWAYS_INLINE __m256i h256_bf16_round(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(DP_BF16_QNAN), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}

DP_ALWAYS_INLINE hv hv_widen(hr r, int t, int bf) {
  const __m256i z = _mm256_setzero_si256();
  const __m256 unused = _mm256_setzero_ps();
  if (bf)
    return (hv){_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, r.b)), _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, r.b))};
  if (t == DP_T_F32) return (hv){r.f, unused};
  if (t == DP_T_F16) return (hv){_mm256_cvtph_ps(r.h), unused};
  return (hv){_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(r.h), 16)), unused};
}

DP_ALWAYS_INLINE hr hv_load_raw(const void *p, size_t i, int t, int bf) {
  const void *q = dp_elem_at(p, i, t);
  hr r = {_mm256_setzero_ps(), _mm256_setzero_si256(), _mm_setzero_si128()};
  if (t == DP_T_F32)
    r.f = _mm256_loadu_ps((const float *)q);
  else if (bf)
    r.b = _mm256_loadu_si256((const __m256i *)q);
  else
    r.h = _mm_loadu_si128((const __m128i *)q);
  return r;
}

DP_ALWAYS_INLINE hv hv_set1(float s) { return (hv){_mm256_set1_ps(s), _mm256_set1_ps(s)}; }
DP_ALWAYS_INLINE hv hv_mul(hv a, hv b) { return (hv){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
DP_ALWAYS_INLINE hv hv_add(hv a, hv b) { return (hv){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }

DP_ALWAYS_INLINE void hv_store_raw(void *p, size_t i, hr r, int t, int bf, int nt) {
  void *q = dp_elem_at_w(p, i, t);
  if (t == DP_T_F32 && nt)
    _mm256_stream_ps((float *)q, r.f);
  else if (t == DP_T_F32)
    _mm256_storeu_ps((float *)q, r.f);
  else if (bf && nt)
    _mm256_stream_si256((__m256i *)q, r.b);
  else if (bf)
    _mm256_storeu_si256((__m256i *)q, r.b);
  else if (nt)
    _mm_stream_si128((__m128i *)q, r.h);
  else
    _mm_storeu_si128((__m128i *)q, r.h);
}

DP_ALWAYS_INLINE void hv_store(void *p, size_t i, hv v, int t, int bf, int nt) {
  hr r = {_mm256_setzero_ps(), _mm256_setzero_si256(), _mm_setzero_si128()};
  if (bf) {
    /* Every lane is below 2^16, so the unsigned saturating pack is exact. */
    r.b = _mm256_packus_epi32(h256_bf16_round(v.lo), h256_bf16_round(v.hi));
  } else if (t == DP_T_F32) {
    r.f = dp_canon_m256(v.lo);
  } else if (t == DP_T_F16) {
    r.h = _mm256_cvtps_ph(dp_canon_m256(v.lo), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  } else {
    const __m256i b = h256_bf16_round(v.lo);
    r.h = _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  }
  hv_store_raw(p, i, r, t, bf, nt);
}

#include "kernels/simd/half_vec.h"

#endif /* DP_HALF_AVX2_H */
