/* AVX-512 drop_path of a kept row with bf16/f16 storage: out = s*x (see half.h), 16 lanes. */
#include "kernels/simd/half_avx512.h"
#include "kernels/kernels.h"

#define W DP_HW

/* Each vector is loaded before it is stored: out may be x. */
DP_X86_INLINE void scale_vec(void *out, const void *x, size_t i, __m512 vs, int t, int nt) {
  h512_store(out, i, _mm512_mul_ps(vs, h512_load(x, i, t)), t, nt);
}

static void scale_part(void *out, const void *x, size_t i, size_t k, __m512 vs, int t) {
  const __mmask16 m = h512_mask(k);
  h512_store_part(out, i, m, _mm512_mul_ps(vs, h512_load_part(x, i, m, t)), t);
}

DP_X86_INLINE size_t scale_body(void *out, const void *x, size_t i, size_t n, __m512 vs, int t, int nt) {
  for (; n - i >= 4 * W; i += 4 * W) {
    scale_vec(out, x, i, vs, t, nt);
    scale_vec(out, x, i + W, vs, t, nt);
    scale_vec(out, x, i + 2 * W, vs, t, nt);
    scale_vec(out, x, i + 3 * W, vs, t, nt);
  }
  for (; n - i >= W; i += W) scale_vec(out, x, i, vs, t, nt);
  return i;
}

DP_X86_INLINE void scale_run(void *out, const void *x, float s, size_t n, int stream, int t) {
  const __m512 vs = _mm512_set1_ps(s);
  size_t i = 0;
  /* Peel to a 64-byte boundary of out: misaligned stores split cache lines. */
  if (n >= 4 * W) {
    i = dp_elem_head(out, 2, 64);
    /* Up to 31 elements: more than one masked vector. */
    for (size_t j = 0; j < i; j += W) scale_part(out, x, j, i - j < W ? i - j : W, vs, t);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + 2 * i, 64);
  if (nt)
    i = scale_body(out, x, i, n, vs, t, 1);
  else
    i = scale_body(out, x, i, n, vs, t, 0);
  if (i < n) scale_part(out, x, i, n - i, vs, t);
}

void dp_scale_bf16__avx512(void *out, const void *x, float s, size_t n, int stream) {
  scale_run(out, x, s, n, stream, DP_T_BF16);
}

void dp_scale_f16__avx512(void *out, const void *x, float s, size_t n, int stream) {
  scale_run(out, x, s, n, stream, DP_T_F16);
}
