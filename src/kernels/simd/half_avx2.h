/*
 * AVX2 + F16C bf16/f16 <-> f32 for the half kernels, 8 lanes; the results
 * match half.h bit for bit.  f16 uses VCVTPH2PS/VCVTPS2PH (exact
 * round-to-nearest-even including subnormals), bf16 rounds in integers.
 * Heads and tails go through the scalar kernels, which compute the same bits.
 */
#ifndef DP_HALF_AVX2_H
#define DP_HALF_AVX2_H

#include <immintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

#define DP_HW 8 /* elements per vector */

DP_X86_INLINE const void *h256_at(const void *p, size_t i, int t) { return (const char *)p + i * dp_t_size(t); }
DP_X86_INLINE void *h256_at_w(void *p, size_t i, int t) { return (char *)p + i * dp_t_size(t); }

DP_X86_INLINE __m256 h256_widen(__m128i h, int t) {
  if (t == DP_T_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* bf16 bits of 8 results, one per 32-bit lane (canonical NaN): integer
 * round-to-nearest-even of the top half, as half.h does. */
DP_X86_INLINE __m256i h256_bf16_round(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(DP_BF16_QNAN), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}

/* Rounded storage bits of 8 results (canonical NaN). */
DP_X86_INLINE __m128i h256_narrow(__m256 v, int t) {
  if (t == DP_T_F16) return _mm256_cvtps_ph(dp_canon_m256(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i r = h256_bf16_round(v);
  /* Every lane is below 2^16, so the unsigned saturating pack is exact. */
  return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

/*
 * 16 bf16 per 256-bit vector.  bf16 -> f32 is a 16-bit shift, so unpacking
 * against zero widens; the unpacks work per 128-bit lane, which leaves lo =
 * elements 0-3,8-11 and hi = 4-7,12-15.  The per-lane pack in h256_bf16_narrow2
 * undoes exactly that order, so element-wise math in between needs no
 * cross-lane shuffles.
 */
#define DP_HW2 16

DP_X86_INLINE __m256 h256_bf16_lo(__m256i h) { return _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), h)); }
DP_X86_INLINE __m256 h256_bf16_hi(__m256i h) { return _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), h)); }

DP_X86_INLINE __m256i h256_bf16_load2(const void *p, size_t i) {
  return _mm256_loadu_si256((const __m256i *)((const char *)p + 2 * i));
}

/* Inverse of h256_bf16_lo/hi; every lane is below 2^16, so packus is exact. */
DP_X86_INLINE __m256i h256_bf16_narrow2(__m256 lo, __m256 hi) {
  return _mm256_packus_epi32(h256_bf16_round(lo), h256_bf16_round(hi));
}

/* nt needs p[i] 32-byte aligned. */
DP_X86_INLINE void h256_bf16_store2(void *p, size_t i, __m256i h, int nt) {
  __m256i *q = (__m256i *)((char *)p + 2 * i);
  if (nt)
    _mm256_stream_si256(q, h);
  else
    _mm256_storeu_si256(q, h);
}

/* 8 elements of type t at p[i..], widened. */
DP_X86_INLINE __m256 h256_load(const void *p, size_t i, int t) {
  if (t == DP_T_F32) return _mm256_loadu_ps(h256_at(p, i, t));
  return h256_widen(_mm_loadu_si128((const __m128i *)h256_at(p, i, t)), t);
}

/* Store 8 results as type t at p[i..]; nt needs p[i] aligned to the store. */
DP_X86_INLINE void h256_store(void *p, size_t i, __m256 v, int t, int nt) {
  void *q = h256_at_w(p, i, t);
  if (t == DP_T_F32) {
    if (nt)
      _mm256_stream_ps((float *)q, dp_canon_m256(v));
    else
      _mm256_storeu_ps(q, dp_canon_m256(v));
    return;
  }
  if (nt)
    _mm_stream_si128((__m128i *)q, h256_narrow(v, t));
  else
    _mm_storeu_si128((__m128i *)q, h256_narrow(v, t));
}

#endif /* DP_HALF_AVX2_H */
