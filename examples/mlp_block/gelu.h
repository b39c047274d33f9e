/*
 * GELU, tanh form (Hendrycks & Gimpel; GPT-2/BERT's, PyTorch's approximate="tanh"):
 *
 *   gelu(a)  = 0.5*a*(1 + t),   t = tanh(z),   z = c*(a + 0.044715*a^3),   c = sqrt(2/pi)
 *   gelu'(a) = 0.5*(1 + t) + 0.5*a*(1 - t^2)*c*(1 + 3*0.044715*a^2)
 *
 * tanh comes from a branch-free exp (Cody-Waite reduction and Cephes' degree-5 polynomial; within
 * 1 ulp of exp on [-87, 88], every float tried), so the loops calling it vectorise at -O3: libm's
 * tanhf would be a scalar call per element, and the 4D-wide hidden layer holds most of the block's
 * elements.
 * The functions never form t: they take 1 + t and 1 - t straight from exp(-2|z|), so neither
 * cancels where t is near +-1 (examples/mlp_block.c checks both results against libm).
 * Every function is a fixed sequence of IEEE operations, so an element's result does not depend on
 * where it sits in a row or which row it is in (the dense and compacted blocks rely on that).
 */
#ifndef MLP_BLOCK_GELU_H
#define MLP_BLOCK_GELU_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float mlp_exp(float x) {
  /* Clamp to the range where 2^k is a normal float: e^-87.3 and e^88.7 are near its ends. */
  x = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
  /* k = round(x/ln2) with the 1.5*2^23 trick (exact for |x/ln2| < 2^22), r = x - k*ln2 in two steps. */
  const float shifter = 12582912.0f;
  const float kf = (x * 1.44269504088896341f + shifter) - shifter;
  const float r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t bits = ((int32_t)kf + 127) << 23; /* 2^k */
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* 1 + tanh(z) and 1 - tanh(z), each without cancellation: with e = exp(-2|z|) <= 1 they are
 * 2/(1 + e) and 2e/(1 + e), which is which by the sign of z. */
typedef struct mlp_tanh_pair {
  float one_plus, one_minus;
} mlp_tanh_pair;

static inline mlp_tanh_pair mlp_tanh_sides(float z) {
  const float e = mlp_exp(-2.0f * fabsf(z)), big = 2.0f / (1.0f + e), small = big * e;
  mlp_tanh_pair r;
  r.one_plus = z >= 0.0f ? big : small;
  r.one_minus = z >= 0.0f ? small : big;
  return r;
}

#define MLP_GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define MLP_GELU_K 0.044715f

static inline float mlp_gelu(float a) {
  const mlp_tanh_pair t = mlp_tanh_sides(MLP_GELU_C * (a + MLP_GELU_K * a * a * a));
  return 0.5f * a * t.one_plus;
}

static inline float mlp_gelu_grad(float a) {
  const mlp_tanh_pair t = mlp_tanh_sides(MLP_GELU_C * (a + MLP_GELU_K * a * a * a));
  return 0.5f * t.one_plus + 0.5f * a * (t.one_plus * t.one_minus) * MLP_GELU_C * (1.0f + 3.0f * MLP_GELU_K * a * a);
}

#endif
