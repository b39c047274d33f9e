/*
 * AVX-512 (F+BW+VL) bf16/f16 <-> f32 for the half kernels (the interface of
 * half_vec.h), 16 lanes with masked heads and tails; the results match
 * half.h bit for bit.  f16 uses VCVTPH2PS/VCVTPS2PH, which are exact
 * round-to-nearest-even including subnormals.  bf16 rounds in integers:
 * VCVTNEPS2BF16 (AVX512_BF16) treats subnormal inputs and outputs as zero, so
 * it cannot match.
 *
 * A kernel whose operands are all bf16 (bf) takes 32 per vector, split by
 * parity instead of widened in order: one 64-byte load holds 32 bf16, and a
 * bf16 is the top half of its f32, so the even elements are the load shifted
 * left 16 (lo) and the odd ones the load masked to the top halves (hi); the
 * store rounds both and puts them back with one shift and one ternary logic
 * op.  Element-wise math never mixes lanes, so this needs no shuffle at all,
 * where the in-order widening takes a VPMOVZXWD per 16 loaded and two uops
 * of VPMOVDW per 16 stored, all on one port on Intel cores (the pure bf16
 * forward was 10% slower per element than f16 with them, README "Numbers").
 * Otherwise an hv is 16 in-order lanes in lo, and hi is never stored (the
 * compiler drops its math).
 */
#ifndef DP_HALF_AVX512_H
#define DP_HALF_AVX512_H

#include <immintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/common/half.h"
#include "kernels/common/stream.h"

typedef struct hv {
  __m512 lo, hi; /* bf: even and odd elements; else lo alone, in memory order */
} hv;
/* Storage bits in the register they were loaded into: 16 f32 in f, 32 bf16
 * in b (bf), else 16 halves in h.  Separate members, not casts of one, so a
 * half load stays a memory operand of its conversion. */
typedef struct hr {
  __m512 f;
  __m256i h;
  __m512i b;
} hr;
typedef __mmask16 hv_mask;

#define HV_LANES(bf) ((size_t)((bf) ? 32 : 16))
#define HV_UNROLL(bf) ((bf) ? 2 : 4)
#define HV_ALIGN 64 /* a misaligned 64-byte store of f32 splits a cache line every time */
#define HV_STREAM 1
#define HV_MASKED 1

DP_ALWAYS_INLINE hr h512_f(__m512 f) { return (hr){f, _mm256_setzero_si256(), _mm512_setzero_si512()}; }
DP_ALWAYS_INLINE hr h512_h(__m256i h) { return (hr){_mm512_setzero_ps(), h, _mm512_setzero_si512()}; }
DP_ALWAYS_INLINE hr h512_b(__m512i b) { return (hr){_mm512_setzero_ps(), _mm256_setzero_si256(), b}; }
DP_ALWAYS_INLINE hv hv1(__m512 v) { return (hv){v, _mm512_setzero_ps()}; }

DP_ALWAYS_INLINE hv hv_widen(hr r, int t, int bf) {
  if (bf) return (hv){_mm512_castsi512_ps(_mm512_slli_epi32(r.b, 16)),
                      _mm512_castsi512_ps(_mm512_and_si512(r.b, _mm512_set1_epi32((int)0xFFFF0000u)))};
  if (t == DP_T_F32) return hv1(r.f);
  if (t == DP_T_F16) return hv1(_mm512_cvtph_ps(r.h));
  return hv1(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(r.h), 16)));
}

/* bf16 bits of 16 results (canonical NaN) in the top half of each 32-bit
 * lane, the low half left as garbage: integer round-to-nearest-even, as
 * half.h does. */
DP_ALWAYS_INLINE __m512i h512_bf16_top(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb);
  return _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(DP_BF16_QNAN << 16));
}

/* Rounded storage bits of 16 in-order results (canonical NaN). */
DP_ALWAYS_INLINE __m256i h512_narrow(__m512 v, int t) {
  if (t == DP_T_F16) return _mm512_cvtps_ph(dp_canon_m512(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(h512_bf16_top(v), 16));
}

DP_ALWAYS_INLINE hr hv_load_raw(const void *p, size_t i, int t, int bf) {
  const void *q = dp_elem_at(p, i, t);
  if (bf) return h512_b(_mm512_loadu_si512(q));
  if (t == DP_T_F32) return h512_f(_mm512_loadu_ps(q));
  return h512_h(_mm256_loadu_si256((const __m256i *)q));
}

DP_ALWAYS_INLINE hv hv_set1(float s) { return (hv){_mm512_set1_ps(s), _mm512_set1_ps(s)}; }
DP_ALWAYS_INLINE hv hv_mul(hv a, hv b) { return (hv){_mm512_mul_ps(a.lo, b.lo), _mm512_mul_ps(a.hi, b.hi)}; }
DP_ALWAYS_INLINE hv hv_add(hv a, hv b) { return (hv){_mm512_add_ps(a.lo, b.lo), _mm512_add_ps(a.hi, b.hi)}; }

/* nt: 64-byte stores of f32 and of 32 bf16 (bf), 32-byte of 16 halves. */
DP_ALWAYS_INLINE void hv_store_raw(void *p, size_t i, hr r, int t, int bf, int nt) {
  void *q = dp_elem_at_w(p, i, t);
  if (bf && nt)
    _mm512_stream_si512(q, r.b);
  else if (bf)
    _mm512_storeu_si512(q, r.b);
  else if (t == DP_T_F32 && nt)
    _mm512_stream_ps((float *)q, r.f);
  else if (t == DP_T_F32)
    _mm512_storeu_ps(q, r.f);
  else if (nt)
    _mm256_stream_si256((__m256i *)q, r.h);
  else
    _mm256_storeu_si256((__m256i *)q, r.h);
}

DP_ALWAYS_INLINE void hv_store(void *p, size_t i, hv v, int t, int bf, int nt) {
  if (bf) {
    /* Each 32-bit lane of the store: the odd element's bits on top, the even one's below
     * ((hi & 0xFFFF0000) | (lo >> 16); 0xEA is (A & B) | C). */
    const __m512i b = _mm512_ternarylogic_epi32(h512_bf16_top(v.hi), _mm512_set1_epi32((int)0xFFFF0000u),
                                                _mm512_srli_epi32(h512_bf16_top(v.lo), 16), 0xEA);
    hv_store_raw(p, i, h512_b(b), t, bf, nt);
    return;
  }
  hv_store_raw(p, i, t == DP_T_F32 ? h512_f(dp_canon_m512(v.lo)) : h512_h(h512_narrow(v.lo, t)), t, bf, nt);
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
  hv_mstore_raw(m, p, i, t == DP_T_F32 ? h512_f(dp_canon_m512(v.lo)) : h512_h(h512_narrow(v.lo, t)), t);
}

#include "kernels/simd/half_vec.h"

#endif /* DP_HALF_AVX512_H */
