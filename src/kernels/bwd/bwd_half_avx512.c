/*
 * AVX-512 backward of a kept row with bf16/f16 storage (see dp_bwd_fn and
 * half.h), 16 lanes, masked head and tail.
 */
#include "kernels/simd/half_avx512.h"
#include "kernels/kernels.h"

#define W DP_HW

/* What the body does with one output: plain store, non-temporal store,
 * accumulate, or nothing (gx == NULL). */
enum { K_SET, K_NT, K_ACC, K_NONE };

/* gx = g copies g's bits; every other output is rounded from f32. */
DP_X86_INLINE void put_copy(void *gx, size_t i, __m512 gv, __m256i gh, int tx, int nt) {
  void *q = h512_at_w(gx, i, tx);
  if (tx == DP_T_F32) {
    if (nt)
      _mm512_stream_ps((float *)q, gv);
    else
      _mm512_storeu_ps(q, gv);
  } else if (nt) {
    _mm256_stream_si256((__m256i *)q, gh);
  } else {
    _mm256_storeu_si256((__m256i *)q, gh);
  }
}

/* Elements [i, i+W).  g is read before gf is stored: gf may be g.  gx is only
 * offset when present (arithmetic on NULL is undefined). */
DP_X86_INLINE void bwd_vec(void *gf, void *gx, const void *g, size_t i, __m512 vs, int tx, int tf, int fk, int xk) {
  __m256i gh = _mm256_setzero_si256();
  __m512 gv;
  if (tx == DP_T_F32) {
    gv = _mm512_loadu_ps(h512_at(g, i, tx));
  } else {
    gh = _mm256_loadu_si256((const __m256i *)h512_at(g, i, tx));
    gv = h512_widen(gh, tx);
  }
  const __m512 sg = _mm512_mul_ps(vs, gv);
  h512_store(gf, i, fk == K_ACC ? _mm512_add_ps(h512_load(gf, i, tf), sg) : sg, tf, fk == K_NT);
  if (xk == K_ACC)
    h512_store(gx, i, _mm512_add_ps(h512_load(gx, i, tx), gv), tx, 0);
  else if (xk != K_NONE)
    put_copy(gx, i, gv, gh, tx, xk == K_NT);
}

/* Elements [i, i+k), k <= W.  Masked-off lanes are neither read nor written;
 * g is read before gf is stored. */
static void bwd_part(void *gf, void *gx, const void *g, size_t i, size_t k, __m512 vs, int tx, int tf, int fk, int xk) {
  const __mmask16 m = h512_mask(k);
  const __m512 gv = h512_load_part(g, i, m, tx);
  const __m256i gh = tx == DP_T_F32 ? _mm256_setzero_si256() : _mm256_maskz_loadu_epi16(m, h512_at(g, i, tx));
  __m512 sg = _mm512_mul_ps(vs, gv);
  if (fk == K_ACC) sg = _mm512_add_ps(h512_load_part(gf, i, m, tf), sg);
  h512_store_part(gf, i, m, sg, tf);
  if (xk == K_ACC)
    h512_store_part(gx, i, m, _mm512_add_ps(h512_load_part(gx, i, m, tx), gv), tx);
  else if (xk != K_NONE && tx == DP_T_F32)
    _mm512_mask_storeu_ps(h512_at_w(gx, i, tx), m, gv);
  else if (xk != K_NONE)
    _mm256_mask_storeu_epi16(h512_at_w(gx, i, tx), m, gh);
}

/* Whole vectors of [i, n); returns where they end. */
DP_X86_INLINE size_t bwd_body_fx(void *gf, void *gx, const void *g, size_t i, size_t n, __m512 vs, int tx, int tf, int fk,
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

/* One loop per (fk, xk) pair, so the hot loop carries no mode branches. */
DP_X86_INLINE size_t bwd_body_f(void *gf, void *gx, const void *g, size_t i, size_t n, __m512 vs, int tx, int tf, int fk,
                                int xk) {
  switch (xk) {
    case K_SET: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_SET);
    case K_NT: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_NT);
    case K_ACC: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_ACC);
    default: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_NONE);
  }
}

DP_X86_INLINE size_t bwd_body(void *gf, void *gx, const void *g, size_t i, size_t n, __m512 vs, int tx, int tf, int fk,
                              int xk) {
  switch (fk) {
    case K_SET: return bwd_body_f(gf, gx, g, i, n, vs, tx, tf, K_SET, xk);
    case K_NT: return bwd_body_f(gf, gx, g, i, n, vs, tx, tf, K_NT, xk);
    default: return bwd_body_f(gf, gx, g, i, n, vs, tx, tf, K_ACC, xk);
  }
}

DP_X86_INLINE void bwd_run(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode, int tx, int tf) {
  const __m512 vs = _mm512_set1_ps(s);
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  const int want_nt = (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  const size_t xs = dp_t_size(tx), fs = dp_t_size(tf);
  size_t i = 0;
  /* Align the output that will stream, else gf: misaligned stores split
   * cache lines. */
  if (n >= 4 * W) {
    i = want_nt && fk != K_SET && xk == K_SET ? dp_elem_head(gx, xs, 64) : dp_elem_head(gf, fs, 64);
    /* Up to 31 half elements: more than one masked vector. */
    for (size_t j = 0; j < i; j += W) bwd_part(gf, gx, g, j, i - j < W ? i - j : W, vs, tx, tf, fk, xk);
  }
  if (want_nt && fk == K_SET && dp_is_aligned((char *)gf + i * fs, 64)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned((char *)gx + i * xs, 64)) xk = K_NT;
  i = bwd_body(gf, gx, g, i, n, vs, tx, tf, fk, xk);
  if (i < n) bwd_part(gf, gx, g, i, n - i, vs, tx, tf, fk, xk);
}

void dp_bwd_bf16__avx512(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_BF16, DP_T_BF16);
}

void dp_bwd_f16__avx512(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F16, DP_T_F16);
}

void dp_bwd_f32bf16__avx512(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F32, DP_T_BF16);
}

void dp_bwd_f32f16__avx512(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F32, DP_T_F16);
}
