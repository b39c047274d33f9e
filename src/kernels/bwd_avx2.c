/* AVX2 backward of a kept row (see dp_bwd_fn), 8 lanes, masked head and tail. */
#include <immintrin.h>

#include "canon_simd.h"
#include "kernels.h"
#include "x86_stream.h"

#define W 8

/* Lanes [0, k) set. */
static __m256i part_mask(size_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* What the body does with one output: plain store, non-temporal store,
 * accumulate, or nothing (gx == NULL). */
enum { K_SET, K_NT, K_ACC, K_NONE };

DP_X86_INLINE void put(float *p, __m256 v, int kind) {
  if (kind == K_NT)
    _mm256_stream_ps(p, v);
  else
    _mm256_storeu_ps(p, v);
}

/* Elements [i, i+W).  g is loaded before gf is stored: gf may be g.  gx is
 * only offset when present (arithmetic on NULL is undefined). */
DP_X86_INLINE void bwd_vec(float *gf, float *gx, const float *g, size_t i, __m256 vs, int fk, int xk) {
  const __m256 gv = _mm256_loadu_ps(g + i);
  const __m256 sg = _mm256_mul_ps(vs, gv);
  put(gf + i, dp_canon_m256(fk == K_ACC ? _mm256_add_ps(_mm256_loadu_ps(gf + i), sg) : sg), fk);
  if (xk != K_NONE) put(gx + i, xk == K_ACC ? dp_canon_m256(_mm256_add_ps(_mm256_loadu_ps(gx + i), gv)) : gv, xk);
}

/* Whole vectors of [i, n); returns where they end. */
DP_X86_INLINE size_t bwd_body_fx(float *gf, float *gx, const float *g, size_t i, size_t n, __m256 vs, int fk, int xk) {
  for (; n - i >= 4 * W; i += 4 * W) {
    bwd_vec(gf, gx, g, i, vs, fk, xk);
    bwd_vec(gf, gx, g, i + W, vs, fk, xk);
    bwd_vec(gf, gx, g, i + 2 * W, vs, fk, xk);
    bwd_vec(gf, gx, g, i + 3 * W, vs, fk, xk);
  }
  for (; n - i >= W; i += W) bwd_vec(gf, gx, g, i, vs, fk, xk);
  return i;
}

/* One loop per (fk, xk) pair, so the hot loop carries no mode branches. */
DP_X86_INLINE size_t bwd_body_f(float *gf, float *gx, const float *g, size_t i, size_t n, __m256 vs, int fk, int xk) {
  switch (xk) {
    case K_SET: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_SET);
    case K_NT: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_NT);
    case K_ACC: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_ACC);
    default: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_NONE);
  }
}

static size_t bwd_body(float *gf, float *gx, const float *g, size_t i, size_t n, __m256 vs, int fk, int xk) {
  switch (fk) {
    case K_SET: return bwd_body_f(gf, gx, g, i, n, vs, K_SET, xk);
    case K_NT: return bwd_body_f(gf, gx, g, i, n, vs, K_NT, xk);
    default: return bwd_body_f(gf, gx, g, i, n, vs, K_ACC, xk);
  }
}

/* Elements [i, i+k), k < W.  Masked-off lanes are neither read nor written,
 * so short runs stay in bounds. */
static void bwd_part(float *gf, float *gx, const float *g, size_t i, size_t k, __m256 vs, int fk, int xk) {
  const __m256i m = part_mask(k);
  const __m256 gv = _mm256_maskload_ps(g + i, m);
  __m256 sg = _mm256_mul_ps(vs, gv);
  if (fk == K_ACC) sg = _mm256_add_ps(_mm256_maskload_ps(gf + i, m), sg);
  _mm256_maskstore_ps(gf + i, m, dp_canon_m256(sg));
  if (xk == K_NONE) return;
  _mm256_maskstore_ps(gx + i, m, xk == K_ACC ? dp_canon_m256(_mm256_add_ps(_mm256_maskload_ps(gx + i, m), gv)) : gv);
}

void dp_bwd_f32__avx2(void *gf_, void *gx_, const void *g_, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_;
  float *gx = (float *)gx_;
  const float *g = (const float *)g_;
  const __m256 vs = _mm256_set1_ps(s);
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  const int want_nt = (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  size_t i = 0;
  /* Align the output that will stream, else gf: every other misaligned
   * 32-byte store splits a cache line. */
  if (n >= 4 * W) {
    i = dp_f32_head(want_nt && fk != K_SET && xk == K_SET ? (void *)gx : (void *)gf, 32);
    if (i) bwd_part(gf, gx, g, 0, i, vs, fk, xk);
  }
  if (want_nt && fk == K_SET && dp_is_aligned(gf + i, 32)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned(gx + i, 32)) xk = K_NT;
  i = bwd_body(gf, gx, g, i, n, vs, fk, xk);
  if (i < n) bwd_part(gf, gx, g, i, n - i, vs, fk, xk);
}
