/*
 * AVX-512 (F+BW+VL) bf16/f16 <-> f32 for the half kernels, 16 lanes; the
 * results match half.h bit for bit.  f16 uses VCVTPH2PS/VCVTPS2PH, which are
 * exact round-to-nearest-even including subnormals.  bf16 rounds in integers:
 * VCVTNEPS2BF16 (AVX512_BF16) treats subnormal inputs and outputs as zero, so
 * it cannot match.
 */
#ifndef DP_HALF_AVX512_H
#define DP_HALF_AVX512_H

#include <immintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

#define DP_HW 16 /* elements per vector */

DP_X86_INLINE const void *h512_at(const void *p, size_t i, int t) { return (const char *)p + i * dp_t_size(t); }
DP_X86_INLINE void *h512_at_w(void *p, size_t i, int t) { return (char *)p + i * dp_t_size(t); }

DP_X86_INLINE __m512 h512_widen(__m256i h, int t) {
  if (t == DP_T_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Rounded storage bits of 16 results (canonical NaN). */
DP_X86_INLINE __m256i h512_narrow(__m512 v, int t) {
  if (t == DP_T_F16) return _mm512_cvtps_ph(dp_canon_m512(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb);
  r = _mm512_srli_epi32(r, 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(DP_BF16_QNAN));
  return _mm512_cvtepi32_epi16(r);
}

/* 16 elements of type t at p[i..], widened. */
DP_X86_INLINE __m512 h512_load(const void *p, size_t i, int t) {
  if (t == DP_T_F32) return _mm512_loadu_ps(h512_at(p, i, t));
  return h512_widen(_mm256_loadu_si256((const __m256i *)h512_at(p, i, t)), t);
}

/* Lanes outside m are neither read nor written, so short runs stay in bounds. */
DP_X86_INLINE __m512 h512_load_part(const void *p, size_t i, __mmask16 m, int t) {
  if (t == DP_T_F32) return _mm512_maskz_loadu_ps(m, h512_at(p, i, t));
  return h512_widen(_mm256_maskz_loadu_epi16(m, h512_at(p, i, t)), t);
}

/* Store 16 results as type t at p[i..]; nt needs p[i] 64-byte aligned for
 * f32, 32-byte aligned for halves. */
DP_X86_INLINE void h512_store(void *p, size_t i, __m512 v, int t, int nt) {
  void *q = h512_at_w(p, i, t);
  if (t == DP_T_F32) {
    if (nt)
      _mm512_stream_ps((float *)q, dp_canon_m512(v));
    else
      _mm512_storeu_ps(q, dp_canon_m512(v));
    return;
  }
  if (nt)
    _mm256_stream_si256((__m256i *)q, h512_narrow(v, t));
  else
    _mm256_storeu_si256((__m256i *)q, h512_narrow(v, t));
}

DP_X86_INLINE void h512_store_part(void *p, size_t i, __mmask16 m, __m512 v, int t) {
  void *q = h512_at_w(p, i, t);
  if (t == DP_T_F32)
    _mm512_mask_storeu_ps(q, m, dp_canon_m512(v));
  else
    _mm256_mask_storeu_epi16(q, m, h512_narrow(v, t));
}

DP_X86_INLINE __mmask16 h512_mask(size_t k) { return (__mmask16)((1u << k) - 1u); }

#endif /* DP_HALF_AVX512_H */
