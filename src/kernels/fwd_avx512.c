/* AVX-512 fused forward: out = x + (s*f), 16 lanes, masked head and tail. */
#include <immintrin.h>

#include "canon_simd.h"
#include "kernels.h"
#include "x86_stream.h"

#define W 16

DP_X86_INLINE void fwd_vec(float *out, const float *x, const float *f, __m512 vs, int nt) {
  const __m512 r = dp_canon_m512(_mm512_add_ps(_mm512_loadu_ps(x), _mm512_mul_ps(vs, _mm512_loadu_ps(f))));
  if (nt)
    _mm512_stream_ps(out, r);
  else
    _mm512_storeu_ps(out, r);
}

/* Masked-off lanes are neither read nor written, so short runs stay in bounds. */
static void fwd_part(float *out, const float *x, const float *f, __m512 vs, size_t k) {
  const __mmask16 m = (__mmask16)((1u << k) - 1u);
  const __m512 r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x), _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(m, f)));
  _mm512_mask_storeu_ps(out, m, dp_canon_m512(r));
}

/* Whole vectors only; each vector is loaded before it is stored (out may be x or f). */
DP_X86_INLINE size_t fwd_body(float *out, const float *x, const float *f, __m512 vs, size_t n, int nt) {
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

void dp_fwd_f32__avx512(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  const __m512 vs = _mm512_set1_ps(s);
  size_t i = 0;
  /* A misaligned 64-byte store splits a cache line every time: peel first. */
  if (n >= 4 * W) {
    i = dp_f32_head(out, 64);
    if (i) fwd_part(out, x, f, vs, i);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned(out + i, 64);
  if (nt)
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 1);
  else
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 0);
  if (i < n) fwd_part(out + i, x + i, f + i, vs, n - i);
}
