/* SSE2 drop_path of a kept row: out = s*x, 4 lanes; the scalar kernel does head and tail. */
#include <emmintrin.h>

#include "canon_simd.h"
#include "kernels.h"
#include "x86_stream.h"

#define W 4

DP_X86_INLINE void scale_vec(float *out, const float *x, __m128 vs, int nt) {
  const __m128 r = dp_canon_m128(_mm_mul_ps(vs, _mm_loadu_ps(x)));
  if (nt)
    _mm_stream_ps(out, r);
  else
    _mm_storeu_ps(out, r);
}

/* Whole vectors only; each vector is loaded before it is stored (out may be x). */
DP_X86_INLINE size_t scale_body(float *out, const float *x, __m128 vs, size_t n, int nt) {
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    scale_vec(out + i, x + i, vs, nt);
    scale_vec(out + i + W, x + i + W, vs, nt);
    scale_vec(out + i + 2 * W, x + i + 2 * W, vs, nt);
    scale_vec(out + i + 3 * W, x + i + 3 * W, vs, nt);
  }
  for (; i + W <= n; i += W) scale_vec(out + i, x + i, vs, nt);
  return i;
}

void dp_scale_f32__sse2(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const __m128 vs = _mm_set1_ps(s);
  size_t i = 0;
  /* Aligned 16-byte stores never split a cache line: peel first. */
  if (n >= 4 * W) {
    i = dp_f32_head(out, 16);
    if (i) dp_scale_f32__scalar(out, x, s, i, 0);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned(out + i, 16);
  if (nt)
    i += scale_body(out + i, x + i, vs, n - i, 1);
  else
    i += scale_body(out + i, x + i, vs, n - i, 0);
  if (i < n) dp_scale_f32__scalar(out + i, x + i, s, n - i, 0);
}
