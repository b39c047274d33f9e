/* SSE2 fused forward with bf16/f16 storage (see half.h), 8 per step; the scalar kernel does head and tail. */
#include "half_sse2.h"
#include "kernels.h"

#define W DP_HW

/* Each vector is loaded before it is stored: out may be x or f. */
DP_X86_INLINE void fwd_vec(void *out, const void *x, const void *f, size_t i, __m128 vs, int tx, int tf, int nt) {
  const h128x2 sf = h128_mul(vs, h128_load(f, i, tf));
  h128_store(out, i, h128_add(h128_load(x, i, tx), sf), tx, nt);
}

DP_X86_INLINE size_t fwd_body(void *out, const void *x, const void *f, size_t i, size_t n, __m128 vs, int tx, int tf,
                              int nt) {
  for (; n - i >= 4 * W; i += 4 * W) {
    fwd_vec(out, x, f, i, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + W, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + 2 * W, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + 3 * W, vs, tx, tf, nt);
  }
  for (; n - i >= W; i += W) fwd_vec(out, x, f, i, vs, tx, tf, nt);
  return i;
}

DP_X86_INLINE void fwd_run(void *out, const void *x, const void *f, float s, size_t n, int stream, int tx, int tf,
                           dp_fwd_fn part) {
  const __m128 vs = _mm_set1_ps(s);
  const size_t xs = dp_t_size(tx), fs = dp_t_size(tf);
  size_t i = 0;
  /* Peel to a 16-byte boundary of out: aligned 16-byte stores never split a cache line. */
  if (n >= 4 * W) {
    i = dp_elem_head(out, xs, 16);
    if (i) part(out, x, f, s, i, 0);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + i * xs, 16);
  if (nt)
    i = fwd_body(out, x, f, i, n, vs, tx, tf, 1);
  else
    i = fwd_body(out, x, f, i, n, vs, tx, tf, 0);
  if (i < n) part((char *)out + i * xs, (const char *)x + i * xs, (const char *)f + i * fs, s, n - i, 0);
}

void dp_fwd_bf16__sse2(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_BF16, DP_T_BF16, dp_fwd_bf16__scalar);
}

void dp_fwd_f16__sse2(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F16, DP_T_F16, dp_fwd_f16__scalar);
}

void dp_fwd_f32bf16__sse2(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F32, DP_T_BF16, dp_fwd_f32bf16__scalar);
}

void dp_fwd_f32f16__sse2(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F32, DP_T_F16, dp_fwd_f32f16__scalar);
}
