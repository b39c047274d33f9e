/*
 * SSE2 backward of a kept row with bf16/f16 storage (see dp_bwd_fn and
 * half.h), 8 per step; the scalar kernel does head and tail.
 */
#include "kernels/simd/half_sse2.h"
#include "kernels/kernels.h"

#define W DP_HW

/* What the body does with one output: plain store, non-temporal store,
 * accumulate, or nothing (gx == NULL). */
enum { K_SET, K_NT, K_ACC, K_NONE };

/* Elements [i, i+W).  g is read before gf is stored: gf may be g.  gx is only
 * offset when present (arithmetic on NULL is undefined).  gx = g copies g's
 * bits; every other output is rounded from f32. */
DP_X86_INLINE void bwd_vec(void *gf, void *gx, const void *g, size_t i, __m128 vs, int tx, int tf, int fk, int xk) {
  __m128i gh = _mm_setzero_si128();
  h128x2 gv;
  if (tx == DP_T_F32) {
    gv = h128_load(g, i, tx);
  } else {
    gh = _mm_loadu_si128((const __m128i *)h128_at(g, i, tx));
    gv = h128_widen(gh, tx);
  }
  const h128x2 sg = h128_mul(vs, gv);
  h128_store(gf, i, fk == K_ACC ? h128_add(h128_load(gf, i, tf), sg) : sg, tf, fk == K_NT);
  if (xk == K_NONE) return;
  if (xk == K_ACC) {
    h128_store(gx, i, h128_add(h128_load(gx, i, tx), gv), tx, 0);
    return;
  }
  void *q = h128_at_w(gx, i, tx);
  if (tx == DP_T_F32)
    h128_put_f32((float *)q, gv, xk == K_NT);
  else
    h128_put_i(q, gh, xk == K_NT);
}

/* Whole vectors of [i, n); returns where they end. */
DP_X86_INLINE size_t bwd_body_fx(void *gf, void *gx, const void *g, size_t i, size_t n, __m128 vs, int tx, int tf, int fk,
                                 int xk) {
  for (; n - i >= 4 * W; i += 4 * W) {
    bwd_vec(gf, gx, g, i, vs, tx, tf, fk, xk);
    bwd_vec(gf, gx, g, i + W, vs, tx, tf, fk, xk);
    bwd_vec(gf, gx, g, i + 2 * W, vs, tx, tf, fk, xk);
    bwd_vec(gf, gx, g, i + 3 * W, vs, tx, tf, fk, xk);
  }
  for (; n - i >= W; i += W) bwd_vec(gf, gx, g, i, vs, tx, tf, fk, xk);
  return i;
}

#define HV __m128
#define hv_set1(s) _mm_set1_ps(s)
#define HV_BYTES 16
#define HALF_ISA sse2
#include "kernels/bwd/bwd_half_x86_run.h"
