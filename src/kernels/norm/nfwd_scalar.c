/*
 * Scalar reference of the residual join + norm (nfwd, kernels.h): the passes
 * of norm_elem.h over the whole row, in the order norm_kargs.h specifies.
 */
#include "kernels/norm/norm_elem.h"

static inline void nfwd_run(void *y, void *r, const void *x, const void *f, float s, size_t n,
                            const dp_norm_kargs *a, float *tmp, float *stats, int tx, int tf) {
  const int rms = (a->mode & DP_KNORM_RMS) != 0;
  float acc[DP_NORM_LANES];
  dp_nfwd_copy_dropped(r, x, f, n, tx);
  if (!f) r = NULL; /* r is x's bits now: nothing more to store */
  dp_norm_lanes_clear(acc);
  dp_nfwd_pass1(r, x, f, a->ls, s, tmp, 0, n, rms, tx, tf, acc);
  const void *src = r; /* the later passes' r; only when it was just written or x itself */
  float mean = 0.0f;
  if (!rms) {
    mean = dp_norm_mean(acc, n, 0);
    dp_norm_lanes_clear(acc);
    dp_nfwd_pass2(src, x, f, a->ls, s, tmp, 0, n, mean, tx, tf, acc);
  }
  const float rstd = dp_norm_rstd(acc, n, a->eps);
  if (y) dp_nfwd_pass3(y, src, x, f, a->ls, s, tmp, 0, n, mean, rstd, a, tx, tf); /* NULL: statistics only */
  stats[0] = dp_f32_canon(mean);
  stats[1] = dp_f32_canon(rstd);
}

#define DP_NFWD_SCALAR_(ctx, combo, id, xt, ft)                                                                 \
  void DP_KERNEL_NAME(nfwd, combo, scalar)(void *y, void *r, const void *x, const void *f, float s, size_t n,  \
                                           const struct dp_norm_kargs *a, float *tmp, float *stats) {          \
    nfwd_run(y, r, x, f, s, n, a, tmp, stats, xt, ft);                                                           \
  }
DP_COMBOS_ALL(DP_NFWD_SCALAR_, )
