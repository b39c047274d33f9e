/* AVX2 fused forward with bf16/f16 storage (see half.h), 8 lanes (16 for pure
 * bf16); the scalar kernel does head and tail. */
#include "kernels/simd/half_avx2.h"
#include "kernels/kernels.h"

#define W DP_HW

/* Each vector is loaded before it is stored: out may be x or f. */
DP_X86_INLINE void fwd_vec(void *out, const void *x, const void *f, size_t i, __m256 vs, int tx, int tf, int nt) {
  const __m256 sf = _mm256_mul_ps(vs, h256_load(f, i, tf));
  h256_store(out, i, _mm256_add_ps(h256_load(x, i, tx), sf), tx, nt);
}

/* Pure bf16: 16 elements per vector (half_avx2.h); both operands are widened
 * in the same lane order, so the math lines up. */
DP_X86_INLINE void fwd_vec_bf16(void *out, const void *x, const void *f, size_t i, __m256 vs, int nt) {
  const __m256i xh = h256_bf16_load2(x, i), fh = h256_bf16_load2(f, i);
  const __m256 lo = _mm256_add_ps(h256_bf16_lo(xh), _mm256_mul_ps(vs, h256_bf16_lo(fh)));
  const __m256 hi = _mm256_add_ps(h256_bf16_hi(xh), _mm256_mul_ps(vs, h256_bf16_hi(fh)));
  h256_bf16_store2(out, i, h256_bf16_narrow2(lo, hi), nt);
}

DP_X86_INLINE size_t fwd_body(void *out, const void *x, const void *f, size_t i, size_t n, __m256 vs, int tx, int tf,
                              int nt) {
  if (tx == DP_T_BF16 && tf == DP_T_BF16) {
    for (; n - i >= 2 * DP_HW2; i += 2 * DP_HW2) {
      fwd_vec_bf16(out, x, f, i, vs, nt);
      fwd_vec_bf16(out, x, f, i + DP_HW2, vs, nt);
    }
    for (; n - i >= DP_HW2; i += DP_HW2) fwd_vec_bf16(out, x, f, i, vs, nt);
    return i;
  }
  for (; n - i >= 4 * W; i += 4 * W) {
    fwd_vec(out, x, f, i, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + W, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + 2 * W, vs, tx, tf, nt);
    fwd_vec(out, x, f, i + 3 * W, vs, tx, tf, nt);
  }
  for (; n - i >= W; i += W) fwd_vec(out, x, f, i, vs, tx, tf, nt);
  return i;
}

#define HV __m256
#define hv_set1(s) _mm256_set1_ps(s)
#define HV_BYTES 32
#define HALF_ISA avx2
#include "kernels/fwd/fwd_half_x86_run.h"
