/* AVX-512 mask scales: one sample per 64-bit lane, 8 per vector.  vpmuludq
 * multiplies the low 32 bits of each lane into a full 64-bit product, so a
 * lane's low half is the Philox word and its high half is ignored garbage
 * (XOR keeps halves apart, vpmuludq never reads it). */
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/mask/philox_keys.h"

typedef struct keys512 {
  __m512i k0[10], k1[10], r1_c1, r1_x0, r1_x2, m0, m1;
} keys512;

static void keys512_init(keys512 *v, uint64_t seed, uint64_t offset) {
  dp_mask_keys k;
  dp_mask_keys_init(&k, seed, offset);
  for (int r = 0; r < 10; r++) {
    v->k0[r] = _mm512_set1_epi32((int)k.k0[r]);
    v->k1[r] = _mm512_set1_epi32((int)k.k1[r]);
  }
  v->r1_c1 = _mm512_set1_epi32((int)k.r1_c1);
  v->r1_x0 = _mm512_set1_epi32((int)k.r1_x0);
  v->r1_x2 = _mm512_set1_epi32((int)k.r1_x2);
  v->m0 = _mm512_set1_epi64(DP_PHILOX_M0);
  v->m1 = _mm512_set1_epi64(DP_PHILOX_M1);
}

#define XOR3(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)

/* Word 0 of Philox4x32-10 for the counters in g (one per 64-bit lane), in the
 * low half of each lane. */
DP_ALWAYS_INLINE __m512i philox_w0(const keys512 *k, __m512i g) {
  __m512i p0 = _mm512_mul_epu32(g, k->m0);
  __m512i c0 = _mm512_xor_si512(_mm512_srli_epi64(g, 32), k->r1_x0);
  __m512i c1 = k->r1_c1;
  __m512i c2 = _mm512_xor_si512(_mm512_srli_epi64(p0, 32), k->r1_x2);
  __m512i c3 = p0;
  for (int r = 1; r < 9; r++) {
    p0 = _mm512_mul_epu32(c0, k->m0);
    const __m512i p1 = _mm512_mul_epu32(c2, k->m1);
    c0 = XOR3(_mm512_srli_epi64(p1, 32), c1, k->k0[r]);
    c2 = XOR3(_mm512_srli_epi64(p0, 32), c3, k->k1[r]);
    c1 = p1;
    c3 = p0;
  }
  return XOR3(_mm512_srli_epi64(_mm512_mul_epu32(c2, k->m1), 32), c1, k->k0[9]);
}

/* Integer form of the scalar decision u < keep, u = (w0 >> 8) * 2^-24:
 * t = w0 >> 8 is an integer, so t < keep*2^24 iff t < ceil(keep*2^24) = thr,
 * iff w0 < thr*256 (which may be 2^32: compared in 64-bit lanes).  Same bits
 * as the float compare, a few cycles shorter on the latency chain a tiny
 * call waits on. */
DP_ALWAYS_INLINE __m256 scales_of(__m512i w, __m512i lo32, __m512i thr, __m256 scale) {
  return _mm256_maskz_mov_ps(_mm512_cmplt_epu64_mask(_mm512_and_si512(w, lo32), thr), scale);
}

void dp_mask_f32__avx512(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                         float *scales) {
  keys512 k;
  keys512_init(&k, seed, offset);
  /* keep outside (0, 1), NaN included, keeps none or all, as u < keep does.
   * Inside, t = keep*2^24 is exact and below 2^24: thr = ceil(t), in integers. */
  const float t24 = keep * 0x1p24f;
  const uint32_t whole = keep > 0.0f && keep < 1.0f ? (uint32_t)t24 : 0;
  const uint64_t thr = !(keep > 0.0f) ? 0
                       : keep >= 1.0f ? (uint64_t)1 << 32
                                      : (uint64_t)(whole + ((float)whole < t24 ? 1u : 0u)) << 8;
  const __m512i vthr = _mm512_set1_epi64((long long)thr), lo32 = _mm512_set1_epi64(0xFFFFFFFFll);
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m512i iota = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), step = _mm512_set1_epi64(8);
  __m512i g = _mm512_add_epi64(_mm512_set1_epi64((long long)base), iota);
  size_t i = 0;
  /* Four independent vectors per step keep the multipliers busy. */
  for (; i + 32 <= n; i += 32) {
    const __m512i g1 = _mm512_add_epi64(g, step), g2 = _mm512_add_epi64(g1, step), g3 = _mm512_add_epi64(g2, step);
    const __m512i w0 = philox_w0(&k, g), w1 = philox_w0(&k, g1), w2 = philox_w0(&k, g2), w3 = philox_w0(&k, g3);
    _mm256_storeu_ps(scales + i, scales_of(w0, lo32, vthr, vscale));
    _mm256_storeu_ps(scales + i + 8, scales_of(w1, lo32, vthr, vscale));
    _mm256_storeu_ps(scales + i + 16, scales_of(w2, lo32, vthr, vscale));
    _mm256_storeu_ps(scales + i + 24, scales_of(w3, lo32, vthr, vscale));
    g = _mm512_add_epi64(g3, step);
  }
  for (; i < n; i += 8) {
    const __m256 s = scales_of(philox_w0(&k, g), lo32, vthr, vscale);
    g = _mm512_add_epi64(g, step);
    if (n - i >= 8) {
      _mm256_storeu_ps(scales + i, s);
    } else {
      /* Masked-off lanes are not written: nothing past scales[n-1] is touched. */
      _mm256_mask_storeu_ps(scales + i, (__mmask8)((1u << (n - i)) - 1u), s);
      break;
    }
  }
}
