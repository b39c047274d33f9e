/* Row-mode mask scales in portable C: the reference for the SIMD mask kernels. */
#include "kernels/kernels.h"
#include "kernels/mask/philox_keys.h"

/* Lanes per block: independent Philox streams the compiler can interleave,
 * hiding the multiply latency. */
#define LANES 8

static inline void mask_block(uint32_t k0, uint32_t k1, uint32_t o0, uint32_t o1, uint64_t g0, float keep,
                              float scale, size_t lanes, float *scales) {
  uint32_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
  for (size_t l = 0; l < lanes; l++) {
    const uint64_t g = g0 + (uint64_t)l; /* wraps mod 2^64, as the counter does */
    c0[l] = (uint32_t)g;
    c1[l] = (uint32_t)(g >> 32);
    c2[l] = o0;
    c3[l] = o1;
  }
  uint32_t key0 = k0, key1 = k1;
  for (int r = 0; r < 10; r++) {
    if (r) {
      key0 += DP_PHILOX_W0;
      key1 += DP_PHILOX_W1;
    }
    for (size_t l = 0; l < lanes; l++) {
      const uint64_t p0 = (uint64_t)DP_PHILOX_M0 * c0[l];
      const uint64_t p1 = (uint64_t)DP_PHILOX_M1 * c2[l];
      const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ key0;
      const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ key1;
      c1[l] = (uint32_t)p1;
      c3[l] = (uint32_t)p0;
      c0[l] = n0;
      c2[l] = n2;
    }
  }
  for (size_t l = 0; l < lanes; l++) {
    /* 24 bits so that u is exact in binary32 and u < keep compares exactly. */
    const float u = (float)(c0[l] >> 8) * 0x1p-24f;
    scales[l] = u < keep ? scale : 0.0f;
  }
}

void dp_mask_f32__scalar(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                         float *scales) {
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  const uint32_t o0 = (uint32_t)offset, o1 = (uint32_t)(offset >> 32);
  size_t i = 0;
  for (; i + LANES <= n; i += LANES) mask_block(k0, k1, o0, o1, base + (uint64_t)i, keep, scale, LANES, scales + i);
  if (i < n) mask_block(k0, k1, o0, o1, base + (uint64_t)i, keep, scale, n - i, scales + i);
}
