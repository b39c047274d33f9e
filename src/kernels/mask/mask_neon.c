/* NEON mask scales: one sample per 32-bit lane, four per vector, two
 * independent vectors per step of 8.  vmull_u32 / vmull_high_u32 give the
 * full 32x32->64 products of the low and high lane pairs; unzipping them
 * yields the high and low product words back in sample order. */
#include <arm_neon.h>

#include "kernels/kernels.h"
#include "kernels/mask/philox_keys.h"

#define CHAINS 2

/* hi and lo words of m * c for each lane of c, in lane order. */
DP_ALWAYS_INLINE void mul_hilo(uint32x4_t c, uint32_t m, uint32x4_t *hi, uint32x4_t *lo) {
  const uint32x4_t pl = vreinterpretq_u32_u64(vmull_n_u32(vget_low_u32(c), m));
  const uint32x4_t ph = vreinterpretq_u32_u64(vmull_high_n_u32(c, m));
  *hi = vuzp2q_u32(pl, ph);
  *lo = vuzp1q_u32(pl, ph);
}

DP_ALWAYS_INLINE uint32x4_t mul_hi(uint32x4_t c, uint32_t m) {
  const uint32x4_t pl = vreinterpretq_u32_u64(vmull_n_u32(vget_low_u32(c), m));
  const uint32x4_t ph = vreinterpretq_u32_u64(vmull_high_n_u32(c, m));
  return vuzp2q_u32(pl, ph);
}

/* Word 0 of Philox4x32-10 for the counters (glo[j], ghi[j]); the chains are
 * interleaved so they hide each other's multiply latency. */
DP_ALWAYS_INLINE void philox_w0(const dp_mask_keys *k, const uint32x4_t glo[CHAINS], const uint32x4_t ghi[CHAINS],
                              uint32x4_t w[CHAINS]) {
  uint32x4_t c0[CHAINS], c1[CHAINS], c2[CHAINS], c3[CHAINS];
  for (int j = 0; j < CHAINS; j++) {
    uint32x4_t hi0;
    mul_hilo(glo[j], DP_PHILOX_M0, &hi0, &c3[j]);
    c0[j] = veorq_u32(ghi[j], vdupq_n_u32(k->r1_x0));
    c1[j] = vdupq_n_u32(k->r1_c1);
    c2[j] = veorq_u32(hi0, vdupq_n_u32(k->r1_x2));
  }
  for (int r = 1; r < 9; r++) {
    const uint32x4_t k0 = vdupq_n_u32(k->k0[r]), k1 = vdupq_n_u32(k->k1[r]);
    for (int j = 0; j < CHAINS; j++) {
      uint32x4_t hi0, lo0, hi1, lo1;
      mul_hilo(c0[j], DP_PHILOX_M0, &hi0, &lo0);
      mul_hilo(c2[j], DP_PHILOX_M1, &hi1, &lo1);
      /* The key goes into the older word, off the multiply's path. */
      c0[j] = veorq_u32(hi1, veorq_u32(c1[j], k0));
      c2[j] = veorq_u32(hi0, veorq_u32(c3[j], k1));
      c1[j] = lo1;
      c3[j] = lo0;
    }
  }
  for (int j = 0; j < CHAINS; j++)
    w[j] = veorq_u32(mul_hi(c2[j], DP_PHILOX_M1), veorq_u32(c1[j], vdupq_n_u32(k->k0[9])));
}

/* u = (w0 >> 8) * 2^-24 is exact in binary32 (the conversion of a 24-bit
 * integer is exact), so comparing it as float is the scalar decision bit for
 * bit, whatever keep is. */
DP_ALWAYS_INLINE float32x4_t scales_of(uint32x4_t w, float32x4_t keep, uint32x4_t scale_bits) {
  const float32x4_t u = vmulq_n_f32(vcvtq_f32_u32(vshrq_n_u32(w, 8)), 0x1p-24f);
  return vreinterpretq_f32_u32(vandq_u32(vcltq_f32(u, keep), scale_bits));
}

void dp_mask_f32__neon(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                       float *scales) {
  dp_mask_keys k;
  dp_mask_keys_init(&k, seed, offset);
  const float32x4_t vkeep = vdupq_n_f32(keep);
  const uint32x4_t vscale = vreinterpretq_u32_f32(vdupq_n_f32(scale));
  static const uint64_t iota[2] = {0, 1};
  const uint64x2_t two = vdupq_n_u64(2);
  uint64x2_t g = vaddq_u64(vdupq_n_u64(base), vld1q_u64(iota)); /* samples i, i+1 */
  for (size_t i = 0; i < n; i += 4 * CHAINS) {
    uint32x4_t glo[CHAINS], ghi[CHAINS], w[CHAINS];
    for (int j = 0; j < CHAINS; j++) {
      const uint64x2_t g23 = vaddq_u64(g, two);
      glo[j] = vuzp1q_u32(vreinterpretq_u32_u64(g), vreinterpretq_u32_u64(g23));
      ghi[j] = vuzp2q_u32(vreinterpretq_u32_u64(g), vreinterpretq_u32_u64(g23));
      g = vaddq_u64(g23, two);
    }
    philox_w0(&k, glo, ghi, w);
    float32x4_t s[CHAINS];
    for (int j = 0; j < CHAINS; j++) s[j] = scales_of(w[j], vkeep, vscale);
    if (n - i >= 4 * CHAINS) {
      for (int j = 0; j < CHAINS; j++) vst1q_f32(scales + i + 4 * (size_t)j, s[j]);
    } else {
      /* Through a local copy: nothing past scales[n-1] is touched. */
      float tmp[4 * CHAINS];
      for (int j = 0; j < CHAINS; j++) vst1q_f32(tmp + 4 * j, s[j]);
      for (size_t j = 0; j < n - i; j++) scales[i + j] = tmp[j];
      break;
    }
  }
}
