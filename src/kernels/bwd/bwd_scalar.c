/*
 * Scalar reference for the backward of a kept row (see dp_bwd_fn): arithmetic
 * results NaN canonical (canon.h), the copy gx = g bit for bit.  With
 * bf16/f16 storage (see half.h): gf = (gf +) s*g and gx = gx + g are computed
 * in f32 and rounded once; a plain gx = g copies the bits.
 */
#include "kernels/common/canon.h"
#include "kernels/common/half.h"
#include "kernels/kernels.h"

void dp_bwd_f32__scalar(void *gf_, void *gx_, const void *g_, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_;
  float *gx = (float *)gx_;
  const float *g = (const float *)g_;
  const int acc_f = (mode & DP_KBWD_ACC_F) != 0;
  const int acc_x = (mode & DP_KBWD_ACC_X) != 0;
  for (size_t i = 0; i < n; i++) {
    /* Read g before writing gf: gf may be g. */
    const float gi = g[i];
    const float sg = s * gi;
    gf[i] = dp_f32_canon(acc_f ? gf[i] + sg : sg);
    if (gx) gx[i] = acc_x ? dp_f32_canon(gx[i] + gi) : gi;
  }
}

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

#define DP_BWD_SCALAR_(ctx, combo, id, xt, ft)                                                                  \
  void DP_KERNEL_NAME(bwd, combo, scalar)(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) { \
    bwd_run(gf, gx, g, s, n, mode, xt, ft);                                                                     \
  }
DP_COMBOS_ALL_HALF(DP_BWD_SCALAR_, )
