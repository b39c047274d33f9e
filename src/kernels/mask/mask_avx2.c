/* AVX2 mask scales: one sample per 64-bit lane, two independent vectors of
 * four per step of 8.  vpmuludq multiplies the low 32 bits of each lane into a
 * full 64-bit product, so a lane's low half is the Philox word and its high
 * half is ignored garbage (XOR keeps halves apart, vpmuludq never reads it). */
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/mask/philox_keys.h"

typedef struct keys256 {
  __m256i k0[10], k1[10], r1_c1, r1_x0, r1_x2, m0, m1;
} keys256;

static void keys256_init(keys256 *v, uint64_t seed, uint64_t offset) {
  dp_mask_keys k;
  dp_mask_keys_init(&k, seed, offset);
  for (int r = 0; r < 10; r++) {
    v->k0[r] = _mm256_set1_epi32((int)k.k0[r]);
    v->k1[r] = _mm256_set1_epi32((int)k.k1[r]);
  }
  v->r1_c1 = _mm256_set1_epi32((int)k.r1_c1);
  v->r1_x0 = _mm256_set1_epi32((int)k.r1_x0);
  v->r1_x2 = _mm256_set1_epi32((int)k.r1_x2);
  v->m0 = _mm256_set1_epi64x(DP_PHILOX_M0);
  v->m1 = _mm256_set1_epi64x(DP_PHILOX_M1);
}

#define XOR(a, b) _mm256_xor_si256((a), (b))

/* Word 0 of Philox4x32-10 for the counters in ga and gb (one per 64-bit
 * lane), in the low half of each lane; the two chains are interleaved so one
 * hides the other's multiply latency. */
DP_ALWAYS_INLINE void philox_w0_x2(const keys256 *k, __m256i ga, __m256i gb, __m256i *wa, __m256i *wb) {
  __m256i p0a = _mm256_mul_epu32(ga, k->m0), p0b = _mm256_mul_epu32(gb, k->m0);
  __m256i c0a = XOR(_mm256_srli_epi64(ga, 32), k->r1_x0), c0b = XOR(_mm256_srli_epi64(gb, 32), k->r1_x0);
  __m256i c1a = k->r1_c1, c1b = k->r1_c1;
  __m256i c2a = XOR(_mm256_srli_epi64(p0a, 32), k->r1_x2), c2b = XOR(_mm256_srli_epi64(p0b, 32), k->r1_x2);
  __m256i c3a = p0a, c3b = p0b;
  for (int r = 1; r < 9; r++) {
    p0a = _mm256_mul_epu32(c0a, k->m0);
    p0b = _mm256_mul_epu32(c0b, k->m0);
    const __m256i p1a = _mm256_mul_epu32(c2a, k->m1), p1b = _mm256_mul_epu32(c2b, k->m1);
    /* The key goes into the older word, off the multiply's path. */
    c0a = XOR(_mm256_srli_epi64(p1a, 32), XOR(c1a, k->k0[r]));
    c0b = XOR(_mm256_srli_epi64(p1b, 32), XOR(c1b, k->k0[r]));
    c2a = XOR(_mm256_srli_epi64(p0a, 32), XOR(c3a, k->k1[r]));
    c2b = XOR(_mm256_srli_epi64(p0b, 32), XOR(c3b, k->k1[r]));
    c1a = p1a;
    c1b = p1b;
    c3a = p0a;
    c3b = p0b;
  }
  *wa = XOR(_mm256_srli_epi64(_mm256_mul_epu32(c2a, k->m1), 32), XOR(c1a, k->k0[9]));
  *wb = XOR(_mm256_srli_epi64(_mm256_mul_epu32(c2b, k->m1), 32), XOR(c1b, k->k0[9]));
}

/* Eight scales in sample order from wa (samples 0,1,4,5) and wb (2,3,6,7):
 * that split lets one in-lane shuffle gather the low words in order.
 * u = (w0 >> 8) * 2^-24 is exact in binary32, so comparing it as float is the
 * scalar decision bit for bit, whatever keep is. */
DP_ALWAYS_INLINE __m256 scales_of(__m256i wa, __m256i wb, __m256 keep, __m256 scale) {
  const __m256 lo = _mm256_shuffle_ps(_mm256_castsi256_ps(wa), _mm256_castsi256_ps(wb), _MM_SHUFFLE(2, 0, 2, 0));
  const __m256i t = _mm256_srli_epi32(_mm256_castps_si256(lo), 8);
  const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(0x1p-24f));
  return _mm256_and_ps(_mm256_cmp_ps(u, keep, _CMP_LT_OQ), scale);
}

void dp_mask_f32__avx2(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                       float *scales) {
  keys256 k;
  keys256_init(&k, seed, offset);
  const __m256 vkeep = _mm256_set1_ps(keep), vscale = _mm256_set1_ps(scale);
  const __m256i step = _mm256_set1_epi64x(8);
  __m256i ga = _mm256_add_epi64(_mm256_set1_epi64x((long long)base), _mm256_set_epi64x(5, 4, 1, 0));
  __m256i gb = _mm256_add_epi64(_mm256_set1_epi64x((long long)base), _mm256_set_epi64x(7, 6, 3, 2));
  for (size_t i = 0; i < n; i += 8) {
    __m256i wa, wb;
    philox_w0_x2(&k, ga, gb, &wa, &wb);
    const __m256 s = scales_of(wa, wb, vkeep, vscale);
    ga = _mm256_add_epi64(ga, step);
    gb = _mm256_add_epi64(gb, step);
    if (n - i >= 8) {
      _mm256_storeu_ps(scales + i, s);
    } else {
      /* Through a local copy: nothing past scales[n-1] is touched. */
      float tmp[8];
      _mm256_storeu_ps(tmp, s);
      for (size_t j = 0; j < n - i; j++) scales[i + j] = tmp[j];
      break;
    }
  }
}
