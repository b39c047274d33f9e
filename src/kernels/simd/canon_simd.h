/*
 * dp_f32_canon (canon.h) on whole vectors, for the ISAs the including file is
 * compiled for: each lane that is NaN becomes DP_F32_QNAN, the rest pass
 * through unchanged.  Only for arithmetic results (their NaNs are quiet).
 */
#ifndef DP_CANON_SIMD_H
#define DP_CANON_SIMD_H

#include "kernels/common/canon.h"

#if defined(__SSE2__)
#include <immintrin.h>

/* SSE2 has no blend.  A NaN that arithmetic produced is already quiet, so
 * clearing its sign and the payload below the quiet bit leaves DP_F32_QNAN:
 * one operation fewer than a select. */
static inline __m128 dp_canon_m128(__m128 v) {
  const __m128 nan = _mm_cmpunord_ps(v, v);
  return _mm_andnot_ps(_mm_and_ps(nan, _mm_castsi128_ps(_mm_set1_epi32((int)0x803FFFFFu))), v);
}
#endif

#if defined(__AVX__)
static inline __m256 dp_canon_m256(__m256 v) {
  const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
  return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32((int)DP_F32_QNAN)), nan);
}
#endif

#if defined(__AVX512F__)
static inline __m512 dp_canon_m512(__m512 v) {
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(v, nan, _mm512_castsi512_ps(_mm512_set1_epi32((int)DP_F32_QNAN)));
}
#endif

#if defined(__ARM_NEON)
#include <arm_neon.h>

static inline float32x4_t dp_canon_f32x4(float32x4_t v) {
  return vbslq_f32(vceqq_f32(v, v), v, vreinterpretq_f32_u32(vdupq_n_u32(DP_F32_QNAN)));
}
#endif

#endif /* DP_CANON_SIMD_H */
