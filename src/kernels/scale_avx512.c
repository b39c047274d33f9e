/* AVX-512 drop_path of a kept row: out = s*x, 16 lanes, masked head and tail. */
#include <immintrin.h>

#include "canon_simd.h"
#include "kernels.h"
#include "x86_stream.h"

#define W 16

DP_X86_INLINE void scale_vec(float *out, const float *x, __m512 vs, int nt) {
  const __m512 r = dp_canon_m512(_mm512_mul_ps(vs, _mm512_loadu_ps(x)));
  if (nt)
    _mm512_stream_ps(out, r);
  else
    _mm512_storeu_ps(out, r);
}

/* Masked-off lanes are neither read nor written, so short runs stay in bounds. */
static void scale_part(float *out, const float *x, __m512 vs, size_t k) {
  const __mmask16 m = (__mmask16)((1u << k) - 1u);
  _mm512_mask_storeu_ps(out, m, dp_canon_m512(_mm512_mul_ps(vs, _mm512_maskz_loadu_ps(m, x))));
}

/* Whole vectors only; each vector is loaded before it is stored (out may be x). */
DP_X86_INLINE size_t scale_body(float *out, const float *x, __m512 vs, size_t n, int nt) {
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

void dp_scale_f32__avx512(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const __m512 vs = _mm512_set1_ps(s);
  size_t i = 0;
  /* A misaligned 64-byte store splits a cache line every time: peel first. */
  if (n >= 4 * W) {
    i = dp_f32_head(out, 64);
    if (i) scale_part(out, x, vs, i);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned(out + i, 64);
  if (nt)
    i += scale_body(out + i, x + i, vs, n - i, 1);
  else
    i += scale_body(out + i, x + i, vs, n - i, 0);
  if (i < n) scale_part(out + i, x + i, vs, n - i);
}
