/* SSE2 drop_path of a kept row with bf16/f16 storage: out = s*x (see half.h), 8 per step. */
#include "kernels/simd/half_sse2.h"
#include "kernels/kernels.h"

#define W DP_HW

/* Each vector is loaded before it is stored: out may be x. */
DP_X86_INLINE void scale_vec(void *out, const void *x, size_t i, __m128 vs, int t, int nt) {
  h128_store(out, i, h128_mul(vs, h128_load(x, i, t)), t, nt);
}

DP_X86_INLINE size_t scale_body(void *out, const void *x, size_t i, size_t n, __m128 vs, int t, int nt) {
  for (; n - i >= 4 * W; i += 4 * W) {
    scale_vec(out, x, i, vs, t, nt);
    scale_vec(out, x, i + W, vs, t, nt);
    scale_vec(out, x, i + 2 * W, vs, t, nt);
    scale_vec(out, x, i + 3 * W, vs, t, nt);
  }
  for (; n - i >= W; i += W) scale_vec(out, x, i, vs, t, nt);
  return i;
}

#define HV __m128
#define hv_set1(s) _mm_set1_ps(s)
#define HV_BYTES 16
#define HALF_ISA sse2
#include "kernels/scale/scale_half_x86_run.h"
