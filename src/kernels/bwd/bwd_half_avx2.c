/*
 * AVX2 backward of a kept row with bf16/f16 storage (see dp_bwd_fn and
 * half.h), 8 lanes (16 for pure bf16); the scalar kernel does head and tail.
 */
#include "kernels/simd/half_avx2.h"
#include "kernels/kernels.h"

#define W DP_HW

/* What the body does with one output: plain store, non-temporal store,
 * accumulate, or nothing (gx == NULL). */
enum { K_SET, K_NT, K_ACC, K_NONE };

/* Elements [i, i+W).  g is read before gf is stored: gf may be g.  gx is only
 * offset when present (arithmetic on NULL is undefined).  gx = g copies g's
 * bits; every other output is rounded from f32. */
DP_X86_INLINE void bwd_vec(void *gf, void *gx, const void *g, size_t i, __m256 vs, int tx, int tf, int fk, int xk) {
  __m128i gh = _mm_setzero_si128();
  __m256 gv;
  if (tx == DP_T_F32) {
    gv = _mm256_loadu_ps(h256_at(g, i, tx));
  } else {
    gh = _mm_loadu_si128((const __m128i *)h256_at(g, i, tx));
    gv = h256_widen(gh, tx);
  }
  const __m256 sg = _mm256_mul_ps(vs, gv);
  h256_store(gf, i, fk == K_ACC ? _mm256_add_ps(h256_load(gf, i, tf), sg) : sg, tf, fk == K_NT);
  if (xk == K_NONE) return;
  if (xk == K_ACC) {
    h256_store(gx, i, _mm256_add_ps(h256_load(gx, i, tx), gv), tx, 0);
    return;
  }
  void *q = h256_at_w(gx, i, tx);
  if (tx == DP_T_F32 && xk == K_NT)
    _mm256_stream_ps((float *)q, gv);
  else if (tx == DP_T_F32)
    _mm256_storeu_ps(q, gv);
  else if (xk == K_NT)
    _mm_stream_si128((__m128i *)q, gh);
  else
    _mm_storeu_si128((__m128i *)q, gh);
}

/* Pure bf16, 16 elements (half_avx2.h); same contract as bwd_vec. */
DP_X86_INLINE void bwd_vec_bf16(void *gf, void *gx, const void *g, size_t i, __m256 vs, int fk, int xk) {
  const __m256i gh = h256_bf16_load2(g, i);
  const __m256 glo = h256_bf16_lo(gh), ghi = h256_bf16_hi(gh);
  __m256 flo = _mm256_mul_ps(vs, glo), fhi = _mm256_mul_ps(vs, ghi);
  if (fk == K_ACC) {
    const __m256i fh = h256_bf16_load2(gf, i);
    flo = _mm256_add_ps(h256_bf16_lo(fh), flo);
    fhi = _mm256_add_ps(h256_bf16_hi(fh), fhi);
  }
  h256_bf16_store2(gf, i, h256_bf16_narrow2(flo, fhi), fk == K_NT);
  if (xk == K_NONE) return;
  if (xk == K_ACC) {
    const __m256i xh = h256_bf16_load2(gx, i);
    const __m256 xlo = _mm256_add_ps(h256_bf16_lo(xh), glo), xhi = _mm256_add_ps(h256_bf16_hi(xh), ghi);
    h256_bf16_store2(gx, i, h256_bf16_narrow2(xlo, xhi), 0);
    return;
  }
  h256_bf16_store2(gx, i, gh, xk == K_NT);
}

/* Whole vectors of [i, n); returns where they end. */
DP_X86_INLINE size_t bwd_body_fx(void *gf, void *gx, const void *g, size_t i, size_t n, __m256 vs, int tx, int tf, int fk,
                                 int xk) {
  if (tx == DP_T_BF16 && tf == DP_T_BF16) {
    for (; n - i >= 2 * DP_HW2; i += 2 * DP_HW2) {
      bwd_vec_bf16(gf, gx, g, i, vs, fk, xk);
      bwd_vec_bf16(gf, gx, g, i + DP_HW2, vs, fk, xk);
    }
    for (; n - i >= DP_HW2; i += DP_HW2) bwd_vec_bf16(gf, gx, g, i, vs, fk, xk);
    return i;
  }
  for (; n - i >= 4 * W; i += 4 * W) {
    bwd_vec(gf, gx, g, i, vs, tx, tf, fk, xk);
    bwd_vec(gf, gx, g, i + W, vs, tx, tf, fk, xk);
    bwd_vec(gf, gx, g, i + 2 * W, vs, tx, tf, fk, xk);
    bwd_vec(gf, gx, g, i + 3 * W, vs, tx, tf, fk, xk);
  }
  for (; n - i >= W; i += W) bwd_vec(gf, gx, g, i, vs, tx, tf, fk, xk);
  return i;
}

#define HV __m256
#define hv_set1(s) _mm256_set1_ps(s)
#define HV_BYTES 32
#define HALF_ISA avx2
#include "kernels/bwd/bwd_half_x86_run.h"
