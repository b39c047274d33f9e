/*
 * NEON backward of a kept row (see dp_bwd_fn): gf = (gf +) s*g, gx = (gx +) g.
 * Separate multiply and add, as in the scalar kernel (no vmlaq_f32: it may be
 * fused); NaN sums and products are stored canonical (canon.h), the copy
 * gx = g keeps its bits.  The mode is resolved once: bwd_run is force-inlined
 * into one call per mode with constant flags, so each inner loop is
 * branch-free.
 * DP_KBWD_STREAM is ignored (no useful non-temporal store on AArch64).
 */
#include <arm_neon.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/kernels.h"

#if defined(__GNUC__)
#define DP_FORCE_INLINE static inline __attribute__((always_inline))
#else
#define DP_FORCE_INLINE static inline
#endif

enum { GX_NONE, GX_COPY, GX_ACC };

/* Lanes i..i+3, with g[i..i+3] already loaded (before any store: gf may be g).
 * gx + i is formed only when gx is used: offsetting NULL is undefined. */
DP_FORCE_INLINE void bwd_step(float *gf, float *gx, size_t i, float32x4_t g, float32x4_t vs, int acc_f, int gx_mode) {
  float32x4_t sg = vmulq_f32(vs, g);
  if (acc_f) sg = vaddq_f32(vld1q_f32(gf + i), sg);
  vst1q_f32(gf + i, dp_canon_f32x4(sg));
  if (gx_mode == GX_COPY) vst1q_f32(gx + i, g);
  if (gx_mode == GX_ACC) vst1q_f32(gx + i, dp_canon_f32x4(vaddq_f32(vld1q_f32(gx + i), g)));
}

DP_FORCE_INLINE void bwd_run(float *gf, float *gx, const float *g, float s, size_t n, int acc_f, int gx_mode) {
  const float32x4_t vs = vdupq_n_f32(s);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const float32x4_t g0 = vld1q_f32(g + i), g1 = vld1q_f32(g + i + 4);
    const float32x4_t g2 = vld1q_f32(g + i + 8), g3 = vld1q_f32(g + i + 12);
    bwd_step(gf, gx, i, g0, vs, acc_f, gx_mode);
    bwd_step(gf, gx, i + 4, g1, vs, acc_f, gx_mode);
    bwd_step(gf, gx, i + 8, g2, vs, acc_f, gx_mode);
    bwd_step(gf, gx, i + 12, g3, vs, acc_f, gx_mode);
  }
  for (; i + 4 <= n; i += 4) bwd_step(gf, gx, i, vld1q_f32(g + i), vs, acc_f, gx_mode);
  /* Scalar tail: never read past the buffers. */
  for (; i < n; i++) {
    const float gi = g[i];
    const float sg = s * gi;
    gf[i] = dp_f32_canon(acc_f ? gf[i] + sg : sg);
    if (gx_mode == GX_COPY) gx[i] = gi;
    if (gx_mode == GX_ACC) gx[i] = dp_f32_canon(gx[i] + gi);
  }
}

void dp_bwd_f32__neon(void *gf_, void *gx_, const void *g_, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_;
  float *gx = (float *)gx_;
  const float *g = (const float *)g_;
  const int acc_f = (mode & DP_KBWD_ACC_F) != 0;
  const int gx_mode = !gx ? GX_NONE : (mode & DP_KBWD_ACC_X) ? GX_ACC : GX_COPY;
  switch (acc_f * 3 + gx_mode) {
    case 0: bwd_run(gf, gx, g, s, n, 0, GX_NONE); break;
    case 1: bwd_run(gf, gx, g, s, n, 0, GX_COPY); break;
    case 2: bwd_run(gf, gx, g, s, n, 0, GX_ACC); break;
    case 3: bwd_run(gf, gx, g, s, n, 1, GX_NONE); break;
    case 4: bwd_run(gf, gx, g, s, n, 1, GX_COPY); break;
    default: bwd_run(gf, gx, g, s, n, 1, GX_ACC); break;
  }
}
