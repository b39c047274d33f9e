/*
 * bf16 and IEEE binary16 ("f16") storage: the scalar definition every SIMD
 * kernel reproduces bit for bit.
 *
 * Widening is exact.  bf16 widens by a shift, so a signalling NaN stays
 * signalling; an f16 NaN comes out quiet with its payload kept, which is what
 * F16C (VCVTPH2PS) and AArch64 (FCVTL) do.  Either way a widened value only
 * feeds arithmetic, which quiets it.
 *
 * Narrowing rounds to nearest, ties to even, exactly through subnormals and up
 * to infinity.  dp_f32_to_bf16/f16 keep a NaN's sign and the top of its
 * payload and make it quiet (as VCVTPS2PH and VCVTNEPS2BF16 do).
 *
 * A kernel stores an arithmetic result through dp_bf16_result/dp_f16_result
 * instead (dp_f32_canon for f32, see canon.h): the same rounding, but every
 * NaN becomes the canonical quiet NaN (positive, payload only the quiet bit),
 * the only NaN that is the same bits on every ISA.  Copies (grad_x =
 * grad_out) keep their bits.
 */
#ifndef DP_HALF_H
#define DP_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "droppath/droppath.h"
#include "kernels/common/canon.h"

#define DP_BF16_QNAN 0x7FC0u
#define DP_F16_QNAN 0x7E00u

/* Element types of kernel operands: the dp_dtype values, so the dtypes of
 * the combo list (families.h) can be passed as they are. */
enum { DP_T_F32 = DP_F32, DP_T_BF16 = DP_BF16, DP_T_F16 = DP_F16 };

static inline size_t dp_t_size(int t) { return t == DP_T_F32 ? 4 : 2; }

/* Where element i of an array of type t starts. */
static inline const void *dp_elem_at(const void *p, size_t i, int t) { return (const char *)p + i * dp_t_size(t); }
static inline void *dp_elem_at_w(void *p, size_t i, int t) { return (char *)p + i * dp_t_size(t); }

static inline uint32_t dp_f32_bits(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

static inline float dp_f32_from_bits(uint32_t u) {
  float v;
  memcpy(&v, &u, sizeof v);
  return v;
}

static inline float dp_bf16_to_f32(uint16_t h) { return dp_f32_from_bits((uint32_t)h << 16); }

static inline float dp_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  uint32_t m = h & 0x3FFu;
  uint32_t u;
  if (e == 0x1F) {
    u = 0x7F800000u | m << 13 | (m ? 0x00400000u : 0u);
  } else if (e != 0) {
    u = (e + (127 - 15)) << 23 | m << 13;
  } else if (m == 0) {
    u = 0;
  } else {
    /* Subnormal m * 2^-24: every one is a normal f32, so normalise. */
    uint32_t fe = 127 - 14;
    while (!(m & 0x400u)) {
      m <<= 1;
      fe--;
    }
    u = fe << 23 | (m & 0x3FFu) << 13;
  }
  return dp_f32_from_bits(sign | u);
}

static inline uint16_t dp_f32_to_bf16(float v) {
  const uint32_t u = dp_f32_bits(v);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)(u >> 16 | 0x0040u);
  /* Adding just under half an ulp, plus the kept lsb, rounds ties to even;
   * the carry walks into the exponent (up to infinity) on its own. */
  return (uint16_t)((u + 0x7FFFu + (u >> 16 & 1u)) >> 16);
}

static inline uint16_t dp_f32_to_f16(float v) {
  const uint32_t u = dp_f32_bits(v);
  const uint16_t sign = (uint16_t)(u >> 16 & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | (a >> 13 & 0x3FFu));
  if (a >= 0x47800000u) return (uint16_t)(sign | 0x7C00u); /* >= 2^16 */
  if (a >= 0x38800000u) {
    /* Normal f16 range (2^-14 and up): rebias, then round as for bf16; a
     * carry out of the mantissa reaches infinity from 65520 on. */
    const uint32_t r = a - ((127u - 15u) << 23);
    return (uint16_t)(sign | (r + 0x0FFFu + (r >> 13 & 1u)) >> 13);
  }
  if (a <= 0x33000000u) return sign; /* <= 2^-25: half the smallest subnormal ties to 0 */
  /* Subnormal: count units of 2^-24 in the full significand. */
  const uint32_t shift = 126u - (a >> 23);
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
  uint32_t q = m >> shift;
  q += rem > halfway || (rem == halfway && (q & 1u));
  return (uint16_t)(sign | q);
}

static inline int dp_f32_isnan(float v) { return (dp_f32_bits(v) & 0x7FFFFFFFu) > 0x7F800000u; }

static inline uint16_t dp_bf16_result(float v) { return dp_f32_isnan(v) ? DP_BF16_QNAN : dp_f32_to_bf16(v); }
static inline uint16_t dp_f16_result(float v) { return dp_f32_isnan(v) ? DP_F16_QNAN : dp_f32_to_f16(v); }

/* Element i of an array of type t, widened.  memcpy because the API does not
 * promise element-aligned data. */
static inline float dp_load_elem(const void *p, size_t i, int t) {
  if (t == DP_T_F32) {
    float v;
    memcpy(&v, (const char *)p + 4 * i, sizeof v);
    return v;
  }
  uint16_t h;
  memcpy(&h, (const char *)p + 2 * i, sizeof h);
  return t == DP_T_BF16 ? dp_bf16_to_f32(h) : dp_f16_to_f32(h);
}

/* Store an arithmetic result as element i of an array of type t. */
static inline void dp_store_result(void *p, size_t i, float v, int t) {
  if (t == DP_T_F32) {
    const float r = dp_f32_canon(v);
    memcpy((char *)p + 4 * i, &r, sizeof r);
  } else {
    const uint16_t h = t == DP_T_BF16 ? dp_bf16_result(v) : dp_f16_result(v);
    memcpy((char *)p + 2 * i, &h, sizeof h);
  }
}

#endif /* DP_HALF_H */
