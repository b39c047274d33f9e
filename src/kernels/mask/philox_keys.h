/* Philox4x32-10 for the mask kernels: the constants (the same values as
 * philox.c, which the kernels cannot include) and the per-call key schedule
 * every SIMD kernel shares. */
#ifndef DP_MASK_PHILOX_H
#define DP_MASK_PHILOX_H

#include <stdint.h>

#include "kernels/common/inline.h"

#define DP_PHILOX_M0 0xD2511F53u
#define DP_PHILOX_M1 0xCD9E8D57u
#define DP_PHILOX_W0 0x9E3779B9u
#define DP_PHILOX_W1 0xBB67AE85u

/* Counter words 2 and 3 (the offset) are the same for every sample, so the
 * first round's second product is one scalar multiply per call. */
typedef struct dp_mask_keys {
  uint32_t k0[10], k1[10]; /* round keys */
  uint32_t r1_c1;          /* after round 1: c1 = lo(M1*o0) */
  uint32_t r1_x0;          /* after round 1: c0 = (g >> 32) ^ r1_x0 */
  uint32_t r1_x2;          /* after round 1: c2 = hi(M0*(uint32_t)g) ^ r1_x2 */
} dp_mask_keys;

static inline void dp_mask_keys_init(dp_mask_keys *k, uint64_t seed, uint64_t offset) {
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    k->k0[r] = k0;
    k->k1[r] = k1;
    k0 += DP_PHILOX_W0;
    k1 += DP_PHILOX_W1;
  }
  const uint64_t p1 = (uint64_t)DP_PHILOX_M1 * (uint32_t)offset;
  k->r1_c1 = (uint32_t)p1;
  k->r1_x0 = (uint32_t)(p1 >> 32) ^ k->k0[0];
  k->r1_x2 = (uint32_t)(offset >> 32) ^ k->k1[0];
}

#endif
