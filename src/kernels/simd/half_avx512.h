/*
 * AVX-512 (F+BW+VL) bf16/f16 <-> f32 for the half kernels (the interface of
 * half_vec.h), 16 lanes with masked heads and tails; the results match
 * half.h bit for bit.  f16 uses VCVTPH2PS/VCVTPS2PH, which are exact
 * round-to-nearest-even including subnormals.  bf16 rounds in integers:
 * VCVTNEPS2BF16 (AVX512_BF16) treats subnormal inputs and outputs as zero, so
 * it cannot match.
 */
#ifndef DP_HALF_AVX512_H
#define DP_HALF_AVX512_H

#include <immintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

typedef __m512 hv;
/* Storage bits in the register they were loaded into: 16 f32 in f, else 16
 * halves in h.  Separate members, not casts of one, so a half load stays a
 * memory operand of its conversion. */
typedef struct hr {
  __m512 f;
  __m256i h;
} hr;
typedef __mmask16 hv_mask;

#define HV_LANES(bf) ((size_t)16)
#define HV_UNROLL(bf) 4
#define HV_ALIGN 64 /* a misaligned 64-byte store of f32 splits a cache line every time */
#define HV_STREAM 1
#define HV_MASKED 1

DP_ALWAYS_INLINE hr h512_f(__m512 f) { return (hr){f, _mm256_setzero_si256()}; }
DP_ALWAYS_INLINE hr h512_h(__m256i h) { return (hr){_mm512_setzero_ps(), h}; }

DP_ALWAYS_INLINE hv hv_widen(hr r, int t, int bf) {
  (void)bf;
  if (t == DP_T_F32) return r.f;
  if (t == DP_T_F16) return _mm512_cvtph_ps(r.h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(r.h), 16));
}

/* Rounded storage bits of 16 results (canonical NaN). */
DP_ALWAYS_INLINE __m256i h512_narrow(hv v, int t) {
  if (t == DP_T_F16) return _mm512_cvtps_ph(dp_canon_m512(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb);
  r = _mm512_srli_epi32(r, 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(DP_BF16_QNAN));
  return _mm512_cvtepi32_epi16(r);
}

DP_ALWAYS_INLINE hr hv_load_raw(const void *p, size_t i, int t, int bf) {
  const void *q = dp_elem_at(p, i, t);
  (void)bf;
  if (t == DP_T_F32) return h512_f(_mm512_loadu_ps(q));
  return h512_h(_mm256_loadu_si256((const __m256i *)q));
}

DP_ALWAYS_INLINE hv hv_set1(float s) { return _mm512_set1_ps(s); }
DP_ALWAYS_INLINE hv hv_mul(hv a, hv b) { return _mm512_mul_ps(a, b); }
DP_ALWAYS_INLINE hv hv_add(hv a, hv b) { return _mm512_add_ps(a, b); }

/* nt: 64-byte stores of f32, 32-byte of halves. */
DP_ALWAYS_INLINE void hv_store_raw(void *p, size_t i, hr r, int t, int bf, int nt) {
  void *q = dp_elem_at_w(p, i, t);
  (void)bf;
  if (t == DP_T_F32 && nt)
    _mm512_stream_ps((float *)q, r.f);
  else if (t == DP_T_F32)
    _mm512_storeu_ps(q, r.f);
  else if (nt)
    _mm256_stream_si256((__m256i *)q, r.h);
  else
    _mm256_storeu_si256((__m256i *)q, r.h);
}

DP_ALWAYS_INLINE void hv_store(void *p, size_t i, hv v, int t, int bf, int nt) {
  hv_store_raw(p, i, t == DP_T_F32 ? h512_f(dp_canon_m512(v)) : h512_h(h512_narrow(v, t)), t, bf, nt);
}

/* Lanes [0, k) set, k <= 16. */
DP_ALWAYS_INLINE hv_mask hv_first(size_t k) { return (__mmask16)((1u << k) - 1u); }

DP_ALWAYS_INLINE hr hv_mload_raw(hv_mask m, const void *p, size_t i, int t) {
  const void *q = dp_elem_at(p, i, t);
  if (t == DP_T_F32) return h512_f(_mm512_maskz_loadu_ps(m, q));
  return h512_h(_mm256_maskz_loadu_epi16(m, q));
}

DP_ALWAYS_INLINE void hv_mstore_raw(hv_mask m, void *p, size_t i, hr r, int t) {
  void *q = dp_elem_at_w(p, i, t);
  if (t == DP_T_F32)
    _mm512_mask_storeu_ps(q, m, r.f);
  else
    _mm256_mask_storeu_epi16(q, m, r.h);
}

DP_ALWAYS_INLINE void hv_mstore(hv_mask m, void *p, size_t i, hv v, int t) {
  hv_mstore_raw(m, p, i, t == DP_T_F32 ? h512_f(dp_canon_m512(v)) : h512_h(h512_narrow(v, t)), t);
}

#include "kernels/simd/half_vec.h"

#endif /* DP_HALF_AVX512_H */
