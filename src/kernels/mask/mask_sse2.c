/* SSE2 mask scales: one sample per 64-bit lane, four independent vectors of
 * two per step of 8.  pmuludq multiplies the low 32 bits of each lane into a
 * full 64-bit product, so a lane's low half is the Philox word and its high
 * half is ignored garbage (XOR keeps halves apart, pmuludq never reads it). */
#include <emmintrin.h>

#include "kernels/kernels.h"
#include "kernels/mask/philox_keys.h"

#define XOR(a, b) _mm_xor_si128((a), (b))
#define CHAINS 4

/* Word 0 of Philox4x32-10 for the counters in g[j] (one per 64-bit lane), in
 * the low half of each lane; the chains are interleaved so they hide each
 * other's multiply latency. */
DP_ALWAYS_INLINE void philox_w0(const dp_mask_keys *k, const __m128i g[CHAINS], __m128i w[CHAINS]) {
  const __m128i m0 = _mm_set1_epi32((int)DP_PHILOX_M0), m1 = _mm_set1_epi32((int)DP_PHILOX_M1);
  const __m128i r1_x0 = _mm_set1_epi32((int)k->r1_x0), r1_x2 = _mm_set1_epi32((int)k->r1_x2);
  __m128i c0[CHAINS], c1[CHAINS], c2[CHAINS], c3[CHAINS];
  for (int j = 0; j < CHAINS; j++) {
    const __m128i p0 = _mm_mul_epu32(g[j], m0);
    c0[j] = XOR(_mm_srli_epi64(g[j], 32), r1_x0);
    c1[j] = _mm_set1_epi32((int)k->r1_c1);
    c2[j] = XOR(_mm_srli_epi64(p0, 32), r1_x2);
    c3[j] = p0;
  }
  /* Unrolled, so the chains live in registers rather than in arrays. */
#pragma GCC unroll 10
  for (int r = 1; r < 10; r++) {
    const __m128i k0 = _mm_set1_epi32((int)k->k0[r]), k1 = _mm_set1_epi32((int)k->k1[r]);
    for (int j = 0; j < CHAINS; j++) {
      const __m128i p0 = _mm_mul_epu32(c0[j], m0), p1 = _mm_mul_epu32(c2[j], m1);
      /* The key goes into the older word, off the multiply's path. */
      c0[j] = XOR(_mm_srli_epi64(p1, 32), XOR(c1[j], k0));
      c2[j] = XOR(_mm_srli_epi64(p0, 32), XOR(c3[j], k1));
      c1[j] = p1;
      c3[j] = p0;
    }
  }
  for (int j = 0; j < CHAINS; j++) w[j] = c0[j];
}

/* Four scales in sample order from wa (samples 0,1) and wb (2,3).
 * u = (w0 >> 8) * 2^-24 is exact in binary32, so comparing it as float is the
 * scalar decision bit for bit, whatever keep is. */
DP_ALWAYS_INLINE __m128 scales_of(__m128i wa, __m128i wb, __m128 keep, __m128 scale) {
  const __m128 lo = _mm_shuffle_ps(_mm_castsi128_ps(wa), _mm_castsi128_ps(wb), _MM_SHUFFLE(2, 0, 2, 0));
  const __m128i t = _mm_srli_epi32(_mm_castps_si128(lo), 8);
  const __m128 u = _mm_mul_ps(_mm_cvtepi32_ps(t), _mm_set1_ps(0x1p-24f));
  return _mm_and_ps(_mm_cmplt_ps(u, keep), scale);
}

void dp_mask_f32__sse2(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                       float *scales) {
  dp_mask_keys k;
  dp_mask_keys_init(&k, seed, offset);
  const __m128 vkeep = _mm_set1_ps(keep), vscale = _mm_set1_ps(scale);
  const __m128i step = _mm_set1_epi64x(8);
  __m128i g[CHAINS];
  for (int j = 0; j < CHAINS; j++)
    g[j] = _mm_add_epi64(_mm_set1_epi64x((long long)base), _mm_set_epi64x(2 * j + 1, 2 * j));
  for (size_t i = 0; i < n; i += 8) {
    __m128i w[CHAINS];
    philox_w0(&k, g, w);
    const __m128 s0 = scales_of(w[0], w[1], vkeep, vscale), s1 = scales_of(w[2], w[3], vkeep, vscale);
    for (int j = 0; j < CHAINS; j++) g[j] = _mm_add_epi64(g[j], step);
    if (n - i >= 8) {
      _mm_storeu_ps(scales + i, s0);
      _mm_storeu_ps(scales + i + 4, s1);
    } else {
      /* Through a local copy: nothing past scales[n-1] is touched. */
      float tmp[8];
      _mm_storeu_ps(tmp, s0);
      _mm_storeu_ps(tmp + 4, s1);
      for (size_t j = 0; j < n - i; j++) scales[i + j] = tmp[j];
      break;
    }
  }
}
