/* NEON scaling for drop_path's kept rows: out = s*x (stream ignored, see fwd_neon.c). */
#include <arm_neon.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/kernels.h"

void dp_scale_f32__neon(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float32x4_t vs = vdupq_n_f32(s);
  size_t i = 0;
  (void)stream;
  for (; i + 16 <= n; i += 16) {
    const float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
    const float32x4_t x2 = vld1q_f32(x + i + 8), x3 = vld1q_f32(x + i + 12);
    vst1q_f32(out + i, dp_canon_f32x4(vmulq_f32(vs, x0)));
    vst1q_f32(out + i + 4, dp_canon_f32x4(vmulq_f32(vs, x1)));
    vst1q_f32(out + i + 8, dp_canon_f32x4(vmulq_f32(vs, x2)));
    vst1q_f32(out + i + 12, dp_canon_f32x4(vmulq_f32(vs, x3)));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, dp_canon_f32x4(vmulq_f32(vs, vld1q_f32(x + i))));
  /* Scalar tail: never read past the buffer. */
  for (; i < n; i++) out[i] = dp_f32_canon(s * x[i]);
}
