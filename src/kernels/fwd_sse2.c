/* SSE2 fused forward: out = x + (s*f), 4 lanes; the scalar kernel does head and tail. */
#include <emmintrin.h>

#include "canon_simd.h"
#include "kernels.h"
#include "x86_stream.h"

#define W 4

DP_X86_INLINE void fwd_vec(float *out, const float *x, const float *f, __m128 vs, int nt) {
  const __m128 r = dp_canon_m128(_mm_add_ps(_mm_loadu_ps(x), _mm_mul_ps(vs, _mm_loadu_ps(f))));
  if (nt)
    _mm_stream_ps(out, r);
  else
    _mm_storeu_ps(out, r);
}

/* Whole vectors only; each vector is loaded before it is stored (out may be x or f). */
DP_X86_INLINE size_t fwd_body(float *out, const float *x, const float *f, __m128 vs, size_t n, int nt) {
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    fwd_vec(out + i, x + i, f + i, vs, nt);
    fwd_vec(out + i + W, x + i + W, f + i + W, vs, nt);
    fwd_vec(out + i + 2 * W, x + i + 2 * W, f + i + 2 * W, vs, nt);
    fwd_vec(out + i + 3 * W, x + i + 3 * W, f + i + 3 * W, vs, nt);
  }
  for (; i + W <= n; i += W) fwd_vec(out + i, x + i, f + i, vs, nt);
  return i;
}

void dp_fwd_f32__sse2(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  const __m128 vs = _mm_set1_ps(s);
  size_t i = 0;
  /* Aligned 16-byte stores never split a cache line: peel first. */
  if (n >= 4 * W) {
    i = dp_f32_head(out, 16);
    if (i) dp_fwd_f32__scalar(out, x, f, s, i, 0);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned(out + i, 16);
  if (nt)
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 1);
  else
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 0);
  if (i < n) dp_fwd_f32__scalar(out + i, x + i, f + i, s, n - i, 0);
}
