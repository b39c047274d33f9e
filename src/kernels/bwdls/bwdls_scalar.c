/*
 * Scalar reference for the LayerScale backward of kept rows (see
 * dp_bwdls_fn in kernels.h): gs = g*s, gf = (gf +) gs*gamma, gx = g or
 * gx + g, acc[i] = acc[i] + gs*f row after row.  Arithmetic results NaN
 * canonical (canon.h), the copy gx = g bit for bit.  With bf16/f16 storage
 * (see half.h): gf and gx + g computed in f32 and rounded once to their
 * type, acc summed in f32 as for f32 tensors.
 */
#include "kernels/common/canon.h"
#include "kernels/common/half.h"
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

static inline void bwdls_run(void *gf, void *gx, const void *g, const void *f, const float *gamma, float *acc,
                             size_t d, float s, size_t n, unsigned mode, int tx, int tf) {
  const size_t xs = dp_t_size(tx);
  const int acc_f = (mode & DP_KBWD_ACC_F) != 0;
  const int acc_x = (mode & DP_KBWD_ACC_X) != 0;
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d)
    for (size_t i = 0; i < d; i++) {
      const size_t e = r + i;
      /* Everything of g[e] and f[e] is read before gf[e] is written: gf may be either. */
      unsigned char raw[4];
      memcpy(raw, (const unsigned char *)g + e * xs, xs);
      const float gi = dp_load_elem(g, e, tx);
      const float gs = gi * s;
      const float fi = acc ? dp_load_elem(f, e, tf) : 0.0f;
      const float t = gs * gamma[i];
      dp_store_result(gf, e, acc_f ? dp_load_elem(gf, e, tf) + t : t, tf);
      if (gx) {
        if (acc_x)
          dp_store_result(gx, e, dp_load_elem(gx, e, tx) + gi, tx);
        else
          memcpy((unsigned char *)gx + e * xs, raw, xs);
      }
      if (acc) acc[i] = dp_f32_canon(acc[i] + gs * fi);
    }
}

#define DP_BWDLS_SCALAR_(ctx, combo, id, xt, ft)                                                                  \
  void DP_KERNEL_NAME(bwdls, combo, scalar)(void *gf, void *gx, const void *g, const void *f, const float *gamma, \
                                            float *acc, size_t d, float s, size_t n, unsigned mode) {             \
    bwdls_run(gf, gx, g, f, gamma, acc, d, s, n, mode, xt, ft);                                                   \
  }
DP_COMBOS_ALL_HALF(DP_BWDLS_SCALAR_, )
