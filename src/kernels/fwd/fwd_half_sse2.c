/* SSE2 fused forward with bf16/f16 storage (see half.h), 8 per step; the scalar kernel does head and tail. */
#include "kernels/simd/half_sse2.h"
#include "kernels/kernels.h"

#define W DP_HW

/* Each vector is loaded before it is stored: out may be x or f. */
DP_X86_INLINE void fwd_vec(void *out, const void *x, const void *f, size_t i, __m128 vs, int tx, int tf, int nt) {
  const h128x2 sf = h128_mul(vs, h128_load(f, i, tf));
  h128_store(out, i, h128_add(h128_load(x, i, tx), sf), tx, nt);
}

DP_X86_INLINE size_t fwd_body(void *out, const void *x, const void *f, size_t i, size_t n, __m128 vs, int tx, int tf,
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

#define HV __m128
#define hv_set1(s) _mm_set1_ps(s)
#define HV_BYTES 16
#define HALF_ISA sse2
#include "kernels/fwd/fwd_half_x86_run.h"
