/* SSE2 backward of a kept row (see dp_bwd_fn), 4 lanes; the scalar kernel does head and tail. */
#include <emmintrin.h>

#include "canon_simd.h"
#include "kernels.h"
#include "x86_stream.h"

#define W 4

/* What the body does with one output: plain store, non-temporal store,
 * accumulate, or nothing (gx == NULL). */
enum { K_SET, K_NT, K_ACC, K_NONE };

DP_X86_INLINE void put(float *p, __m128 v, int kind) {
  if (kind == K_NT)
    _mm_stream_ps(p, v);
  else
    _mm_storeu_ps(p, v);
}

/* Elements [i, i+W).  g is loaded before gf is stored: gf may be g.  gx is
 * only offset when present (arithmetic on NULL is undefined). */
DP_X86_INLINE void bwd_vec(float *gf, float *gx, const float *g, size_t i, __m128 vs, int fk, int xk) {
  const __m128 gv = _mm_loadu_ps(g + i);
  const __m128 sg = _mm_mul_ps(vs, gv);
  put(gf + i, dp_canon_m128(fk == K_ACC ? _mm_add_ps(_mm_loadu_ps(gf + i), sg) : sg), fk);
  if (xk != K_NONE) put(gx + i, xk == K_ACC ? dp_canon_m128(_mm_add_ps(_mm_loadu_ps(gx + i), gv)) : gv, xk);
}

/* Whole vectors of [i, n); returns where they end. */
DP_X86_INLINE size_t bwd_body_fx(float *gf, float *gx, const float *g, size_t i, size_t n, __m128 vs, int fk, int xk) {
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
DP_X86_INLINE size_t bwd_body_f(float *gf, float *gx, const float *g, size_t i, size_t n, __m128 vs, int fk, int xk) {
  switch (xk) {
    case K_SET: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_SET);
    case K_NT: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_NT);
    case K_ACC: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_ACC);
    default: return bwd_body_fx(gf, gx, g, i, n, vs, fk, K_NONE);
  }
}

static size_t bwd_body(float *gf, float *gx, const float *g, size_t i, size_t n, __m128 vs, int fk, int xk) {
  switch (fk) {
    case K_SET: return bwd_body_f(gf, gx, g, i, n, vs, K_SET, xk);
    case K_NT: return bwd_body_f(gf, gx, g, i, n, vs, K_NT, xk);
    default: return bwd_body_f(gf, gx, g, i, n, vs, K_ACC, xk);
  }
}

/* Elements [i, i+k) through the reference kernel; gx only offset when present. */
static void bwd_part(float *gf, float *gx, const float *g, size_t i, size_t k, float s, unsigned mode) {
  dp_bwd_f32__scalar(gf + i, gx ? gx + i : NULL, g + i, s, k, mode);
}

void dp_bwd_f32__sse2(void *gf_, void *gx_, const void *g_, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_;
  float *gx = (float *)gx_;
  const float *g = (const float *)g_;
  const __m128 vs = _mm_set1_ps(s);
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  const int want_nt = (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  size_t i = 0;
  /* Align the output that will stream, else gf: aligned 16-byte stores never
   * split a cache line. */
  if (n >= 4 * W) {
    i = dp_f32_head(want_nt && fk != K_SET && xk == K_SET ? (void *)gx : (void *)gf, 16);
    if (i) bwd_part(gf, gx, g, 0, i, s, mode);
  }
  if (want_nt && fk == K_SET && dp_is_aligned(gf + i, 16)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned(gx + i, 16)) xk = K_NT;
  i = bwd_body(gf, gx, g, i, n, vs, fk, xk);
  if (i < n) bwd_part(gf, gx, g, i, n - i, s, mode);
}
