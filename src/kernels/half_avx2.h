/*
 * AVX2 + F16C bf16/f16 <-> f32 for the half kernels, 8 lanes; the results
 * match half.h bit for bit.  f16 uses VCVTPH2PS/VCVTPS2PH (exact
 * round-to-nearest-even including subnormals), bf16 rounds in integers.
 * Heads and tails go through the scalar kernels, which compute the same bits.
 */
#ifndef DP_HALF_AVX2_H
#define DP_HALF_AVX2_H

#include <immintrin.h>

#include "canon_simd.h"
#include "half.h"
#include "x86_stream.h"

#define DP_HW 8 /* elements per vector */

DP_X86_INLINE const void *h256_at(const void *p, size_t i, int t) { return (const char *)p + i * dp_t_size(t); }
DP_X86_INLINE void *h256_at_w(void *p, size_t i, int t) { return (char *)p + i * dp_t_size(t); }

DP_X86_INLINE __m256 h256_widen(__m128i h, int t) {
  if (t == DP_T_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Rounded storage bits of 8 results (canonical NaN). */
DP_X86_INLINE __m128i h256_narrow(__m256 v, int t) {
  if (t == DP_T_F16) return _mm256_cvtps_ph(dp_canon_m256(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(DP_BF16_QNAN), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
  /* Every lane is below 2^16, so the unsigned saturating pack is exact. */
  return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
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
