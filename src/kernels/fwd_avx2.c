/* AVX2 fused forward: out = x + (s*f), 8 lanes, masked head and tail. */
#include <immintrin.h>

#include "canon_simd.h"
#include "kernels.h"
#include "x86_stream.h"

#define W 8

/* Lanes [0, k) set. */
static __m256i part_mask(size_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

DP_X86_INLINE void fwd_vec(float *out, const float *x, const float *f, __m256 vs, int nt) {
  const __m256 r = dp_canon_m256(_mm256_add_ps(_mm256_loadu_ps(x), _mm256_mul_ps(vs, _mm256_loadu_ps(f))));
  if (nt)
    _mm256_stream_ps(out, r);
  else
    _mm256_storeu_ps(out, r);
}

/* Masked-off lanes are neither read nor written, so short runs stay in bounds. */
static void fwd_part(float *out, const float *x, const float *f, __m256 vs, size_t k) {
  const __m256i m = part_mask(k);
  const __m256 r = _mm256_add_ps(_mm256_maskload_ps(x, m), _mm256_mul_ps(vs, _mm256_maskload_ps(f, m)));
  _mm256_maskstore_ps(out, m, dp_canon_m256(r));
}

/* Whole vectors only; each vector is loaded before it is stored (out may be x or f). */
DP_X86_INLINE size_t fwd_body(float *out, const float *x, const float *f, __m256 vs, size_t n, int nt) {
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

void dp_fwd_f32__avx2(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  const __m256 vs = _mm256_set1_ps(s);
  size_t i = 0;
  /* Every other misaligned 32-byte store splits a cache line: peel first. */
  if (n >= 4 * W) {
    i = dp_f32_head(out, 32);
    if (i) fwd_part(out, x, f, vs, i);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned(out + i, 32);
  if (nt)
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 1);
  else
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 0);
  if (i < n) fwd_part(out + i, x + i, f + i, vs, n - i);
}
