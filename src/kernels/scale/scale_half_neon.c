/* NEON drop_path of a kept row with bf16/f16 storage: out = s*x (see half.h), 8 per step. */
#include "kernels/simd/half_neon.h"
#include "kernels/kernels.h"

#define W DP_HW

/* Each step is loaded before it is stored: out may be x. */
DP_NEON_INLINE void scale_run(void *out, const void *x, float s, size_t n, int t, dp_scale_fn tail) {
  const float32x4_t vs = vdupq_n_f32(s);
  size_t i = 0;
  for (; n - i >= W; i += W) hn_store(out, i, hn_mul(vs, hn_load(x, i, t)), t);
  if (i < n) tail(hn_at_w(out, i, t), hn_at(x, i, t), s, n - i, 0);
}

void dp_scale_bf16__neon(void *out, const void *x, float s, size_t n, int stream) {
  (void)stream;
  scale_run(out, x, s, n, DP_T_BF16, dp_scale_bf16__scalar);
}

void dp_scale_f16__neon(void *out, const void *x, float s, size_t n, int stream) {
  (void)stream;
  scale_run(out, x, s, n, DP_T_F16, dp_scale_f16__scalar);
}
