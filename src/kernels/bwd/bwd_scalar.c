/* Scalar reference for the backward of a kept row (see dp_bwd_fn): arithmetic
 * results NaN canonical (canon.h), the copy gx = g bit for bit. */
#include "kernels/common/canon.h"
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
