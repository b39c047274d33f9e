/*
 * The norm kernel families (nfwd, nbwd: kernels.h) and the one order of
 * arithmetic they share, which is what gives the same bits on every ISA:
 *
 *   join    r = x + s*(ls*f) when ls (LayerScale's gamma) is given, else
 *           x + s*f: each product rounded to f32, the sum rounded to X.
 *   lanes   a row sum is kept as 16 f32 partial sums; element i adds into
 *           lane i mod 16, in increasing i (AVX-512 holds the 16 lanes in one
 *           register, AVX2 in two, SSE2 and NEON in four, scalar C in an
 *           array; elements after the last whole block of 16 add into their
 *           lanes last). Every lane starts at -0.0, the additive identity.
 *   tree    the lanes are combined pairwise: l += l+8 (l < 8), l += l+4,
 *           l += l+2, l += l+1; lane 0 is the sum (dp_norm_lane_tree).
 *   stats   mean = sum(r)/D (LayerNorm) or +0 (RMSNorm);
 *           var  = sum((r - mean)*(r - mean))/D, a second pass (RMSNorm:
 *                  sum(r*r)/D, which is the same numbers with mean +0);
 *           rstd = 1/sqrtf(var + eps) (IEEE square root and division,
 *                  correctly rounded everywhere); D is converted to float.
 *   y       ((r - mean)*rstd)*gamma + beta: each operation rounded to f32, the
 *           gamma product and the beta sum only when the array is present.
 *   bwd     xhat = (r - mean)*rstd, g = gy*gamma (gy without gamma);
 *           mg = sum(g)/D (LayerNorm; RMSNorm +0), mgx = sum(g*xhat)/D;
 *           gr = ((g - mg) - xhat*mgx)*rstd, plus gin when present, rounded
 *           to X; gx = gr (or gx + gr), gf = s*gr (or gf + s*gr),
 *           with ls (s*gr)*ls (or gf + (s*gr)*ls);
 *           pg[i] += gy*xhat, pb[i] += gy (per-channel partials, f32).
 * Multiplies and adds are never contracted into FMAs (the build passes
 * -ffp-contract=off); a - b is computed as a + (-b), which IEEE 754 defines
 * to be the same value. Every stored arithmetic result that is NaN is the
 * canonical NaN of its type (common/canon.h, common/half.h).
 */
#ifndef DP_NORM_KARGS_H
#define DP_NORM_KARGS_H

#include <stddef.h>

#include "kernels/kernels.h"

/* A norm kernel's per-call constants besides its element buffers. */
typedef struct dp_norm_kargs {
  const float *gamma, *beta; /* n per-channel factors; NULL: not applied */
  float eps;
  unsigned mode;   /* DP_KNORM_*; nbwd also DP_KBWD_ACC_F, DP_KBWD_ACC_X */
  const float *ls; /* n LayerScale factors of the branch in the join; NULL: not applied */
} dp_norm_kargs;

/* Disjoint from DP_KBWD_*, which nbwd takes in the same word. */
enum {
  DP_KNORM_RMS = 1u << 4,      /* RMSNorm: mean is +0 */
  DP_KNORM_STREAM_Y = 1u << 5, /* y (nbwd: gf, its F output) may use non-temporal stores (caller fences, kernels.h) */
  DP_KNORM_STREAM_R = 1u << 6  /* r (nbwd: gx, its X output) may use non-temporal stores */
};

#define DP_NORM_LANES 16

/* The fixed pairwise tree over the 16 lanes (the lanes are overwritten). */
static inline float dp_norm_lane_tree(float a[DP_NORM_LANES]) {
  for (int w = DP_NORM_LANES / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) a[l] = a[l] + a[l + w];
  return a[0];
}

static inline void dp_norm_lanes_clear(float a[DP_NORM_LANES]) {
  for (int l = 0; l < DP_NORM_LANES; l++) a[l] = -0.0f;
}

#endif /* DP_NORM_KARGS_H */
