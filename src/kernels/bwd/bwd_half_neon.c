/*
 * NEON backward of a kept row with bf16/f16 storage (see dp_bwd_fn and
 * half.h), 8 per step; the scalar kernel does the tail.  The mode is resolved
 * once: bwd_run is force-inlined into one loop per mode.
 */
#include "kernels/simd/half_neon.h"
#include "kernels/kernels.h"

#define W DP_HW

enum { GX_NONE, GX_COPY, GX_ACC };

/* Elements [i, i+W).  g is read before gf is stored: gf may be g.  gx is only
 * offset when used (arithmetic on NULL is undefined).  gx = g copies g's bits;
 * every other output is rounded from f32. */
DP_NEON_INLINE void bwd_vec(void *gf, void *gx, const void *g, size_t i, float32x4_t vs, int tx, int tf, int acc_f,
                            int gx_mode) {
  uint16x8_t gh = vdupq_n_u16(0);
  hn_f32x8 gv;
  if (tx == DP_T_F32) {
    gv = hn_load(g, i, tx);
  } else {
    gh = hn_load_raw(g, i, tx);
    gv = hn_widen(gh, tx);
  }
  const hn_f32x8 sg = hn_mul(vs, gv);
  hn_store(gf, i, acc_f ? hn_add(hn_load(gf, i, tf), sg) : sg, tf);
  if (gx_mode == GX_ACC) hn_store(gx, i, hn_add(hn_load(gx, i, tx), gv), tx);
  if (gx_mode == GX_COPY && tx == DP_T_F32) hn_put_f32(gx, i, gv);
  if (gx_mode == GX_COPY && tx != DP_T_F32) vst1q_u16((uint16_t *)hn_at_w(gx, i, tx), gh);
}

DP_NEON_INLINE void bwd_run(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode, int tx, int tf,
                            int acc_f, int gx_mode, dp_bwd_fn tail) {
  const float32x4_t vs = vdupq_n_f32(s);
  size_t i = 0;
  for (; n - i >= 2 * W; i += 2 * W) {
    bwd_vec(gf, gx, g, i, vs, tx, tf, acc_f, gx_mode);
    bwd_vec(gf, gx, g, i + W, vs, tx, tf, acc_f, gx_mode);
  }
  for (; n - i >= W; i += W) bwd_vec(gf, gx, g, i, vs, tx, tf, acc_f, gx_mode);
  if (i < n) tail(hn_at_w(gf, i, tf), gx ? hn_at_w(gx, i, tx) : NULL, hn_at(g, i, tx), s, n - i, mode);
}

DP_NEON_INLINE void bwd_dispatch(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode, int tx, int tf,
                                 dp_bwd_fn tail) {
  const int acc_f = (mode & DP_KBWD_ACC_F) != 0;
  const int gx_mode = !gx ? GX_NONE : (mode & DP_KBWD_ACC_X) ? GX_ACC : GX_COPY;
  switch (acc_f * 3 + gx_mode) {
    case 0: bwd_run(gf, gx, g, s, n, mode, tx, tf, 0, GX_NONE, tail); break;
    case 1: bwd_run(gf, gx, g, s, n, mode, tx, tf, 0, GX_COPY, tail); break;
    case 2: bwd_run(gf, gx, g, s, n, mode, tx, tf, 0, GX_ACC, tail); break;
    case 3: bwd_run(gf, gx, g, s, n, mode, tx, tf, 1, GX_NONE, tail); break;
    case 4: bwd_run(gf, gx, g, s, n, mode, tx, tf, 1, GX_COPY, tail); break;
    default: bwd_run(gf, gx, g, s, n, mode, tx, tf, 1, GX_ACC, tail); break;
  }
}

void dp_bwd_bf16__neon(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_dispatch(gf, gx, g, s, n, mode, DP_T_BF16, DP_T_BF16, dp_bwd_bf16__scalar);
}

void dp_bwd_f16__neon(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_dispatch(gf, gx, g, s, n, mode, DP_T_F16, DP_T_F16, dp_bwd_f16__scalar);
}

void dp_bwd_f32bf16__neon(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_dispatch(gf, gx, g, s, n, mode, DP_T_F32, DP_T_BF16, dp_bwd_f32bf16__scalar);
}

void dp_bwd_f32f16__neon(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_dispatch(gf, gx, g, s, n, mode, DP_T_F32, DP_T_F16, dp_bwd_f32f16__scalar);
}
