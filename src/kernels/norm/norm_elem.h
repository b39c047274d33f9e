/*
 * The norm kernels one element at a time (norm_kargs.h has the order of
 * arithmetic): the scalar kernels are these passes over a whole row, and the
 * SIMD bodies run them over the elements after their last whole block of 16,
 * so a row's tail is the same code on every ISA.
 */
#ifndef DP_NORM_ELEM_H
#define DP_NORM_ELEM_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/common/canon.h"
#include "kernels/common/half.h"
#include "kernels/norm/norm_kargs.h"

/* v rounded to type t and widened back: the value a stored v reads as. The
 * halves' bits go to *bits for the caller to store. */
static inline float dp_norm_round(float v, int t, uint16_t *bits) {
  if (t == DP_T_F32) return v;
  *bits = t == DP_T_BF16 ? dp_bf16_result(v) : dp_f16_result(v);
  return t == DP_T_BF16 ? dp_bf16_to_f32(*bits) : dp_f16_to_f32(*bits);
}

/* Stores the value dp_norm_round returned (with its bits) as element i of p. */
static inline void dp_norm_store_rounded(void *p, size_t i, float v, uint16_t bits, int t) {
  if (t == DP_T_F32)
    dp_store_result(p, i, v, t);
  else
    memcpy((char *)p + 2 * i, &bits, 2);
}

/* Element i of r = x + s*(ls*f) (ls NULL: x + s*f) as stored in type tx (f NULL: x itself). */
static inline float dp_nfwd_r_elem(const void *x, const void *f, const float *ls, float s, size_t i, int tx, int tf,
                                   uint16_t *bits) {
  if (!f) return dp_load_elem(x, i, tx);
  const float fv = dp_load_elem(f, i, tf);
  const float sf = s * (ls ? ls[i] * fv : fv);
  return dp_norm_round(dp_load_elem(x, i, tx) + sf, tx, bits);
}

/* Pass 1 over [i0, n): r (stored unless r is NULL or the row is dropped),
 * tmp (unless NULL), and into lane i mod 16 the sum of r (LayerNorm) or of
 * r*r (RMSNorm). */
static inline void dp_nfwd_pass1(void *r, const void *x, const void *f, const float *ls, float s, float *tmp, size_t i0, size_t n,
                                 int rms, int tx, int tf, float acc[DP_NORM_LANES]) {
  for (size_t i = i0; i < n; i++) {
    uint16_t bits = 0;
    const float v = dp_nfwd_r_elem(x, f, ls, s, i, tx, tf, &bits);
    if (r && f) dp_norm_store_rounded(r, i, v, bits, tx);
    if (tmp) tmp[i] = v;
    acc[i % DP_NORM_LANES] = acc[i % DP_NORM_LANES] + (rms ? v * v : v);
  }
}

/* Element i of r for the later passes: from tmp, else r as stored, else recomputed. */
static inline float dp_nfwd_r_again(const void *r, const void *x, const void *f, const float *ls, float s, const float *tmp, size_t i,
                                    int tx, int tf) {
  uint16_t bits;
  if (tmp) return tmp[i];
  if (r) return dp_load_elem(r, i, tx);
  return dp_nfwd_r_elem(x, f, ls, s, i, tx, tf, &bits);
}

/* Pass 2 (LayerNorm) over [i0, n): (r - mean)^2 into the lanes. */
static inline void dp_nfwd_pass2(const void *r, const void *x, const void *f, const float *ls, float s, const float *tmp, size_t i0,
                                 size_t n, float mean, int tx, int tf, float acc[DP_NORM_LANES]) {
  for (size_t i = i0; i < n; i++) {
    const float d = dp_nfwd_r_again(r, x, f, ls, s, tmp, i, tx, tf) - mean;
    acc[i % DP_NORM_LANES] = acc[i % DP_NORM_LANES] + d * d;
  }
}

/* Pass 3 over [i0, n): y = ((r - mean)*rstd)*gamma + beta. */
static inline void dp_nfwd_pass3(void *y, const void *r, const void *x, const void *f, const float *ls, float s, const float *tmp,
                                 size_t i0, size_t n, float mean, float rstd, const dp_norm_kargs *a, int tx, int tf) {
  for (size_t i = i0; i < n; i++) {
    float v = (dp_nfwd_r_again(r, x, f, ls, s, tmp, i, tx, tf) - mean) * rstd;
    if (a->gamma) v = v * a->gamma[i];
    if (a->beta) v = v + a->beta[i];
    dp_store_result(y, i, v, tf);
  }
}

/* mean from the lanes of pass 1 (+0 for RMSNorm, whose lanes hold r*r). */
static inline float dp_norm_mean(float acc[DP_NORM_LANES], size_t n, int rms) {
  return rms ? 0.0f : dp_norm_lane_tree(acc) / (float)n;
}

/* rstd from the lanes of squares. */
static inline float dp_norm_rstd(float acc[DP_NORM_LANES], size_t n, float eps) {
  const float var = dp_norm_lane_tree(acc) / (float)n;
  return 1.0f / sqrtf(var + eps);
}

/* A dropped row's r is x's bits (unless r is x itself or not written). */
static inline void dp_nfwd_copy_dropped(void *r, const void *x, const void *f, size_t n, int tx) {
  if (!f && r && r != x) memcpy(r, x, n * dp_t_size(tx));
}

/* ---------------------------------------------------------------- nbwd */

/* The backward's per-row constants (norm_kargs.h, "bwd"). */
typedef struct dp_nbwd_row {
  float mean, rstd; /* mean +0 for RMSNorm */
  float mg, mgx;    /* mean(g) (+0 for RMSNorm) and mean(g*xhat): after pass 1 */
} dp_nbwd_row;

/* Pass 1 over [i0, n): sums of g (LayerNorm) and g*xhat into the lanes, and
 * the per-channel partials pg += gy*xhat, pb += gy (NULL: not asked for). */
static inline void dp_nbwd_pass1(const void *gy, const void *r, size_t i0, size_t n, const dp_nbwd_row *w,
                                 const dp_norm_kargs *a, float *pg, float *pb, int tx, int tf,
                                 float ag[DP_NORM_LANES], float agx[DP_NORM_LANES]) {
  const int rms = (a->mode & DP_KNORM_RMS) != 0;
  for (size_t i = i0; i < n; i++) {
    const float gyv = dp_load_elem(gy, i, tf);
    const float xh = (dp_load_elem(r, i, tx) - w->mean) * w->rstd;
    const float g = a->gamma ? gyv * a->gamma[i] : gyv;
    if (!rms) ag[i % DP_NORM_LANES] = ag[i % DP_NORM_LANES] + g;
    agx[i % DP_NORM_LANES] = agx[i % DP_NORM_LANES] + g * xh;
    if (pg) pg[i] = dp_f32_canon(pg[i] + gyv * xh);
    if (pb) pb[i] = dp_f32_canon(pb[i] + gyv);
  }
}

/* Pass 2 over [i0, n): gr = ((g - mg) - xhat*mgx)*rstd (+ gin) rounded to X;
 * gx = gr or gx + gr; gf = s*gr or gf + s*gr (times ls[i] first when ls), a dropped row's (s == 0) +0 or
 * untouched; pl (unless NULL; kept rows only) += (s*gr)*f. Each element is read before it is
 * written: gf may be gy or f, gx gin. */
static inline void dp_nbwd_pass2(void *gx, void *gf, const void *gy, const void *r, const void *gin, const void *f,
                                 float s, size_t i0, size_t n, const dp_nbwd_row *w, const dp_norm_kargs *a,
                                 float *pl, int tx, int tf) {
  for (size_t i = i0; i < n; i++) {
    const float gyv = dp_load_elem(gy, i, tf);
    const float xh = (dp_load_elem(r, i, tx) - w->mean) * w->rstd;
    const float g = a->gamma ? gyv * a->gamma[i] : gyv;
    const float gn = ((g - w->mg) - xh * w->mgx) * w->rstd;
    uint16_t bits = 0;
    const float gr = dp_norm_round(gin ? dp_load_elem(gin, i, tx) + gn : gn, tx, &bits);
    if (gx) {
      if (a->mode & DP_KBWD_ACC_X) dp_store_result(gx, i, dp_load_elem(gx, i, tx) + gr, tx);
      else dp_norm_store_rounded(gx, i, gr, bits, tx);
    }
    if (s != 0.0f) {
      const float gs = s * gr, sg = a->ls ? gs * a->ls[i] : gs;
      if (pl) pl[i] = dp_f32_canon(pl[i] + gs * dp_load_elem(f, i, tf));
      dp_store_result(gf, i, (a->mode & DP_KBWD_ACC_F) ? dp_load_elem(gf, i, tf) + sg : sg, tf);
    } else if (!(a->mode & DP_KBWD_ACC_F)) {
      dp_store_result(gf, i, 0.0f, tf);
    }
  }
}

/* mg and mgx from pass 1's lanes. */
static inline void dp_nbwd_means(dp_nbwd_row *w, float ag[DP_NORM_LANES], float agx[DP_NORM_LANES], size_t n,
                                 int rms) {
  w->mg = rms ? 0.0f : dp_norm_lane_tree(ag) / (float)n;
  w->mgx = dp_norm_lane_tree(agx) / (float)n;
}

/* The row's statistics as the backward reads them. */
static inline dp_nbwd_row dp_nbwd_row_of(const float *stats, int rms) {
  dp_nbwd_row w;
  w.mean = rms ? 0.0f : stats[0];
  w.rstd = stats[1];
  w.mg = w.mgx = 0.0f;
  return w;
}

#endif /* DP_NORM_ELEM_H */
