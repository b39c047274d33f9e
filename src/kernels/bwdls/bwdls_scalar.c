/*
 * Scalar reference for the LayerScale backward of kept rows (see
 * dp_bwdls_fn in kernels.h): gs = g*s, gf = (gf +) gs*gamma, gx = g or
 * gx + g, acc[i] = acc[i] + gs*f row after row.  Arithmetic results NaN
 * canonical (canon.h), the copy gx = g bit for bit.  f32 only.
 */
#include "kernels/common/canon.h"
#include "kernels/kernels.h"

void dp_bwdls_f32__scalar(void *gf_, void *gx_, const void *g_, const void *f_, const float *gamma, float *acc,
                          size_t d, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_;
  float *gx = (float *)gx_;
  const float *g = (const float *)g_;
  const float *f = (const float *)f_;
  const int acc_f = (mode & DP_KBWD_ACC_F) != 0;
  const int acc_x = (mode & DP_KBWD_ACC_X) != 0;
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d)
    for (size_t i = 0; i < d; i++) {
      /* g and f are read before gf is written: gf may be either. */
      const float gi = g[r + i];
      const float gs = gi * s;
      const float fi = acc ? f[r + i] : 0.0f;
      const float t = gs * gamma[i];
      gf[r + i] = dp_f32_canon(acc_f ? gf[r + i] + t : t);
      if (gx) gx[r + i] = acc_x ? dp_f32_canon(gx[r + i] + gi) : gi;
      if (acc) acc[i] = dp_f32_canon(acc[i] + gs * fi);
    }
}
