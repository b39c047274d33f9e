/* AVX2 drop_path of a kept row with bf16/f16 storage: out = s*x (see half.h), 8 lanes
 * (16 for bf16). */
#include "kernels/simd/half_avx2.h"
#include "kernels/kernels.h"

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

#define HV __m256
#define hv_set1(s) _mm256_set1_ps(s)
#define HV_BYTES 32
#define HALF_ISA avx2
#include "kernels/scale/scale_half_x86_run.h"
