/* AVX2 drop_path of a kept row with bf16/f16 storage: out = s*x (see half.h), 8 lanes
 * (16 for bf16). */
#include "half_avx2.h"
#include "kernels.h"

#define W DP_HW

/* Each vector is loaded before it is stored: out may be x. */
DP_X86_INLINE void scale_vec(void *out, const void *x, size_t i, __m256 vs, int t, int nt) {
  h256_store(out, i, _mm256_mul_ps(vs, h256_load(x, i, t)), t, nt);
}

DP_X86_INLINE void scale_vec_bf16(void *out, const void *x, size_t i, __m256 vs, int nt) {
  const __m256i xh = h256_bf16_load2(x, i);
  const __m256 lo = _mm256_mul_ps(vs, h256_bf16_lo(xh)), hi = _mm256_mul_ps(vs, h256_bf16_hi(xh));
  h256_bf16_store2(out, i, h256_bf16_narrow2(lo, hi), nt);
}

DP_X86_INLINE size_t scale_body(void *out, const void *x, size_t i, size_t n, __m256 vs, int t, int nt) {
  if (t == DP_T_BF16) {
    for (; n - i >= 2 * DP_HW2; i += 2 * DP_HW2) {
      scale_vec_bf16(out, x, i, vs, nt);
      scale_vec_bf16(out, x, i + DP_HW2, vs, nt);
    }
    for (; n - i >= DP_HW2; i += DP_HW2) scale_vec_bf16(out, x, i, vs, nt);
    return i;
  }
  for (; n - i >= 4 * W; i += 4 * W) {
    scale_vec(out, x, i, vs, t, nt);
    scale_vec(out, x, i + W, vs, t, nt);
    scale_vec(out, x, i + 2 * W, vs, t, nt);
    scale_vec(out, x, i + 3 * W, vs, t, nt);
  }
  for (; n - i >= W; i += W) scale_vec(out, x, i, vs, t, nt);
  return i;
}

DP_X86_INLINE void scale_run(void *out, const void *x, float s, size_t n, int stream, int t, dp_scale_fn part) {
  const __m256 vs = _mm256_set1_ps(s);
  size_t i = 0;
  /* Peel to a 32-byte boundary of out: misaligned stores split cache lines. */
  if (n >= 4 * W) {
    i = dp_elem_head(out, 2, 32);
    if (i) part(out, x, s, i, 0);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + 2 * i, 32);
  if (nt)
    i = scale_body(out, x, i, n, vs, t, 1);
  else
    i = scale_body(out, x, i, n, vs, t, 0);
  if (i < n) part((char *)out + 2 * i, (const char *)x + 2 * i, s, n - i, 0);
}

void dp_scale_bf16__avx2(void *out, const void *x, float s, size_t n, int stream) {
  scale_run(out, x, s, n, stream, DP_T_BF16, dp_scale_bf16__scalar);
}

void dp_scale_f16__avx2(void *out, const void *x, float s, size_t n, int stream) {
  scale_run(out, x, s, n, stream, DP_T_F16, dp_scale_f16__scalar);
}
