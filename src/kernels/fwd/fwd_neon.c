/*
 * NEON fused forward: out = x + (s*f).  The multiply and the add are separate
 * instructions (vmulq_f32, vaddq_f32) so each result is rounded twice, like
 * the scalar kernel; vmlaq_f32 is avoided because some compilers fuse it.
 * NaN results are stored canonical (canon.h), as on every ISA.
 * AArch64 has no non-temporal store worth using here (STNP is only a hint),
 * so `stream` is ignored.
 */
#include <arm_neon.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/kernels.h"

void dp_fwd_f32__neon(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  const float32x4_t vs = vdupq_n_f32(s);
  size_t i = 0;
  (void)stream;
  /* All loads of a block precede its stores: out may be x or f. */
  for (; i + 16 <= n; i += 16) {
    const float32x4_t f0 = vld1q_f32(f + i), f1 = vld1q_f32(f + i + 4);
    const float32x4_t f2 = vld1q_f32(f + i + 8), f3 = vld1q_f32(f + i + 12);
    const float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
    const float32x4_t x2 = vld1q_f32(x + i + 8), x3 = vld1q_f32(x + i + 12);
    vst1q_f32(out + i, dp_canon_f32x4(vaddq_f32(x0, vmulq_f32(vs, f0))));
    vst1q_f32(out + i + 4, dp_canon_f32x4(vaddq_f32(x1, vmulq_f32(vs, f1))));
    vst1q_f32(out + i + 8, dp_canon_f32x4(vaddq_f32(x2, vmulq_f32(vs, f2))));
    vst1q_f32(out + i + 12, dp_canon_f32x4(vaddq_f32(x3, vmulq_f32(vs, f3))));
  }
  for (; i + 4 <= n; i += 4)
    vst1q_f32(out + i, dp_canon_f32x4(vaddq_f32(vld1q_f32(x + i), vmulq_f32(vs, vld1q_f32(f + i)))));
  /* At most 3 left: scalar, so nothing past the buffers is read. */
  for (; i < n; i++) {
    const float sf = s * f[i];
    out[i] = dp_f32_canon(x[i] + sf);
  }
}
