/*
 * Scalar reference for the backward of a kept row with bf16/f16 storage (see
 * dp_bwd_fn and half.h): gf = (gf +) s*g and gx = gx + g are computed in f32
 * and rounded once; a plain gx = g copies the bits.
 */
#include "kernels/common/half.h"
#include "kernels/kernels.h"

static inline void bwd_run(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode, int tx, int tf) {
  const size_t xs = dp_t_size(tx);
  const int acc_f = (mode & DP_KBWD_ACC_F) != 0;
  const int acc_x = (mode & DP_KBWD_ACC_X) != 0;
  for (size_t i = 0; i < n; i++) {
    /* Everything of g[i] is read before gf[i] is written: gf may be g. */
    unsigned char raw[4];
    memcpy(raw, (const unsigned char *)g + i * xs, xs);
    const float gi = dp_load_elem(g, i, tx);
    const float sg = s * gi;
    dp_store_result(gf, i, acc_f ? dp_load_elem(gf, i, tf) + sg : sg, tf);
    if (!gx) continue;
    if (acc_x)
      dp_store_result(gx, i, dp_load_elem(gx, i, tx) + gi, tx);
    else
      memcpy((unsigned char *)gx + i * xs, raw, xs);
  }
}

void dp_bwd_bf16__scalar(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_BF16, DP_T_BF16);
}

void dp_bwd_f16__scalar(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F16, DP_T_F16);
}

void dp_bwd_f32bf16__scalar(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F32, DP_T_BF16);
}

void dp_bwd_f32f16__scalar(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F32, DP_T_F16);
}
