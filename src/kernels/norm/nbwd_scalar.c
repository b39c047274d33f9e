/*
 * Scalar reference of the residual join + norm backward (nbwd, kernels.h):
 * the two passes of norm_elem.h over the whole row (norm_kargs.h, "bwd").
 */
#include "kernels/norm/norm_elem.h"

static inline void nbwd_run(void *gx, void *gf, const void *gy, const void *r, const void *gin, const void *f,
                            float s, size_t n, const dp_norm_kargs *a, const float *stats, float *pg, float *pb,
                            float *pl, int tx, int tf) {
  const int rms = (a->mode & DP_KNORM_RMS) != 0;
  float ag[DP_NORM_LANES], agx[DP_NORM_LANES];
  dp_nbwd_row w = dp_nbwd_row_of(stats, rms);
  dp_norm_lanes_clear(ag);
  dp_norm_lanes_clear(agx);
  dp_nbwd_pass1(gy, r, 0, n, &w, a, pg, pb, tx, tf, ag, agx);
  dp_nbwd_means(&w, ag, agx, n, rms);
  dp_nbwd_pass2(gx, gf, gy, r, gin, f, s, 0, n, &w, a, pl, tx, tf);
}

#define DP_NBWD_SCALAR_(ctx, combo, id, xt, ft)                                                                    \
  void DP_KERNEL_NAME(nbwd, combo, scalar)(void *gx, void *gf, const void *gy, const void *r, const void *gin,    \
                                           const void *f, float s, size_t n, const struct dp_norm_kargs *a,       \
                                           const float *stats, float *pg, float *pb, float *pl) {                 \
    nbwd_run(gx, gf, gy, r, gin, f, s, n, a, stats, pg, pb, pl, xt, ft);                                          \
  }
DP_COMBOS_ALL(DP_NBWD_SCALAR_, )
