/* AVX-512 fused forward with bf16/f16 storage (see half.h), 16 lanes, masked head and tail. */
#include "kernels/simd/half_avx512.h"
#include "kernels/kernels.h"

#define W DP_HW

/* Each vector is loaded before it is stored: out may be x or f. */
DP_X86_INLINE void fwd_vec(void *out, const void *x, const void *f, size_t i, __m512 vs, int tx, int tf, int nt) {
  const __m512 sf = _mm512_mul_ps(vs, h512_load(f, i, tf));
  h512_store(out, i, _mm512_add_ps(h512_load(x, i, tx), sf), tx, nt);
}

static void fwd_part(void *out, const void *x, const void *f, size_t i, size_t k, __m512 vs, int tx, int tf) {
  const __mmask16 m = h512_mask(k);
  const __m512 sf = _mm512_mul_ps(vs, h512_load_part(f, i, m, tf));
  h512_store_part(out, i, m, _mm512_add_ps(h512_load_part(x, i, m, tx), sf), tx);
}

DP_X86_INLINE size_t fwd_body(void *out, const void *x, const void *f, size_t i, size_t n, __m512 vs, int tx, int tf,
                              int nt) {
  for (; n - i >= 4 * W; i += 4 * W) {
    fwd_vec(out, x, f, i, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + W, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + 2 * W, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + 3 * W, vs, tx, tf, nt);
  }
  for (; n - i >= W; i += W) fwd_vec(out, x, f, i, vs, tx, tf, nt);
  return i;
}

DP_X86_INLINE void fwd_run(void *out, const void *x, const void *f, float s, size_t n, int stream, int tx, int tf) {
  const __m512 vs = _mm512_set1_ps(s);
  const size_t xs = dp_t_size(tx);
  size_t i = 0;
  /* Peel to a 64-byte boundary of out: misaligned stores split cache lines. */
  if (n >= 4 * W) {
    i = dp_elem_head(out, xs, 64);
    /* Up to 31 half elements: more than one masked vector. */
    for (size_t j = 0; j < i; j += W) fwd_part(out, x, f, j, i - j < W ? i - j : W, vs, tx, tf);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + i * xs, 64);
  if (nt)
    i = fwd_body(out, x, f, i, n, vs, tx, tf, 1);
  else
    i = fwd_body(out, x, f, i, n, vs, tx, tf, 0);
  if (i < n) fwd_part(out, x, f, i, n - i, vs, tx, tf);
}

void dp_fwd_bf16__avx512(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_BF16, DP_T_BF16);
}

void dp_fwd_f16__avx512(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F16, DP_T_F16);
}

void dp_fwd_f32bf16__avx512(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F32, DP_T_BF16);
}

void dp_fwd_f32f16__avx512(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F32, DP_T_F16);
}
