/* NEON fused forward with bf16/f16 storage (see half.h), 8 per step; the scalar kernel does the tail. */
#include "kernels/simd/half_neon.h"
#include "kernels/kernels.h"

#define W DP_HW

/* Each step is loaded before it is stored: out may be x or f. */
DP_NEON_INLINE void fwd_vec(void *out, const void *x, const void *f, size_t i, float32x4_t vs, int tx, int tf) {
  const hn_f32x8 sf = hn_mul(vs, hn_load(f, i, tf));
  hn_store(out, i, hn_add(hn_load(x, i, tx), sf), tx);
}

DP_NEON_INLINE void fwd_run(void *out, const void *x, const void *f, float s, size_t n, int tx, int tf, dp_fwd_fn tail) {
  const float32x4_t vs = vdupq_n_f32(s);
  size_t i = 0;
  for (; n - i >= 2 * W; i += 2 * W) {
    fwd_vec(out, x, f, i, vs, tx, tf);
    fwd_vec(out, x, f, i + W, vs, tx, tf);
  }
  for (; n - i >= W; i += W) fwd_vec(out, x, f, i, vs, tx, tf);
  if (i < n) tail(hn_at_w(out, i, tx), hn_at(x, i, tx), hn_at(f, i, tf), s, n - i, 0);
}

void dp_fwd_bf16__neon(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_BF16, DP_T_BF16, dp_fwd_bf16__scalar);
}

void dp_fwd_f16__neon(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_F16, DP_T_F16, dp_fwd_f16__scalar);
}

void dp_fwd_f32bf16__neon(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_F32, DP_T_BF16, dp_fwd_f32bf16__scalar);
}

void dp_fwd_f32f16__neon(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_F32, DP_T_F16, dp_fwd_f32f16__scalar);
}
