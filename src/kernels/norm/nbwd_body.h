/*
 * The residual join + norm backward (nbwd, kernels.h) for every SIMD ISA and
 * every combo: included by nbwd_<isa>.c after its simd/half_<isa>.h, with
 * DP_ISA set to the ISA's kernel-name suffix. One body over hv in memory
 * order, whole blocks of 16 here and the tail through the scalar passes
 * (norm_elem.h), as nfwd_body.h. Two passes over the row, one over memory:
 * pass 1 reads gy and r (and updates the per-channel partials), pass 2
 * re-reads them from cache and writes gx and gf.
 */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/half_<isa>.h first"
#endif

#include "kernels/norm/norm_elem.h"

#define NBWD_K ((size_t)DP_NORM_LANES / HV_LANES(0))
_Static_assert(DP_NORM_LANES % HV_LANES(0) == 0, "a block of 16 lanes must be whole vectors");

/* xhat and g of elements [j, j + HV_LANES). */
DP_ALWAYS_INLINE void nbwd_vec_xg(const void *gy, const void *r, size_t j, hv nm, hv vr, const float *gamma, int tx,
                                  int tf, hv *gyv, hv *xh, hv *g) {
  *gyv = hv_load(gy, j, tf, 0);
  *xh = hv_mul(hv_add(hv_load(r, j, tx, 0), nm), vr);
  *g = gamma ? hv_mul(*gyv, hv_load(gamma, j, DP_T_F32, 0)) : *gyv;
}

DP_ALWAYS_INLINE void nbwd_run(void *gx, void *gf, const void *gy, const void *r, const void *gin, const void *f,
                               float s, size_t n, const dp_norm_kargs *a, const float *stats, float *pg, float *pb,
                               float *pl, int tx, int tf) {
  const size_t W = HV_LANES(0), nb = n / DP_NORM_LANES * DP_NORM_LANES;
  const int rms = (a->mode & DP_KNORM_RMS) != 0;
  const int acc_x = (a->mode & DP_KBWD_ACC_X) != 0, acc_f = (a->mode & DP_KBWD_ACC_F) != 0;
  const int long_row = HV_STREAM && n >= DP_STREAM_MIN_ELEMS;
  const int ntx = long_row && gx && !acc_x && (a->mode & DP_KNORM_STREAM_R) && dp_is_aligned(gx, HV_ALIGN);
  const int ntf = long_row && !acc_f && (a->mode & DP_KNORM_STREAM_Y) && dp_is_aligned(gf, HV_ALIGN);
  dp_nbwd_row w = dp_nbwd_row_of(stats, rms);
  const hv nm = hv_set1(-w.mean), vr = hv_set1(w.rstd);
  float lg[DP_NORM_LANES], lgx[DP_NORM_LANES];
  hv ag[NBWD_K], agx[NBWD_K];

  for (size_t k = 0; k < NBWD_K; k++) ag[k] = agx[k] = hv_set1(-0.0f);
  for (size_t i = 0; i < nb; i += DP_NORM_LANES)
    for (size_t k = 0; k < NBWD_K; k++) {
      const size_t j = i + k * W;
      hv gyv, xh, g;
      nbwd_vec_xg(gy, r, j, nm, vr, a->gamma, tx, tf, &gyv, &xh, &g);
      if (!rms) ag[k] = hv_add(ag[k], g);
      agx[k] = hv_add(agx[k], hv_mul(g, xh));
      if (pg) hv_store(pg, j, hv_add(hv_load(pg, j, DP_T_F32, 0), hv_mul(gyv, xh)), DP_T_F32, 0, 0);
      if (pb) hv_store(pb, j, hv_add(hv_load(pb, j, DP_T_F32, 0), gyv), DP_T_F32, 0, 0);
    }
  for (size_t k = 0; k < NBWD_K; k++) {
    hv_store(lg, k * W, ag[k], DP_T_F32, 0, 0);
    hv_store(lgx, k * W, agx[k], DP_T_F32, 0, 0);
  }
  dp_nbwd_pass1(gy, r, nb, n, &w, a, pg, pb, tx, tf, lg, lgx);
  dp_nbwd_means(&w, lg, lgx, n, rms);

  const hv nmg = hv_set1(-w.mg), nmgx = hv_set1(-w.mgx), vs = hv_set1(s), zero = hv_set1(0.0f);
  for (size_t j = 0; j < nb; j += W) {
    hv gyv, xh, g;
    nbwd_vec_xg(gy, r, j, nm, vr, a->gamma, tx, tf, &gyv, &xh, &g);
    const hv gn = hv_mul(hv_add(hv_add(g, nmg), hv_mul(xh, nmgx)), vr);
    hv gr = gin ? hv_add(hv_load(gin, j, tx, 0), gn) : gn;
    if (tx == DP_T_F32) {
      if (gx) hv_store(gx, j, acc_x ? hv_add(hv_load(gx, j, tx, 0), gr) : gr, tx, 0, ntx);
    } else { /* round to X once, through a stack copy (nfwd_body.h) */
      uint16_t bits[DP_NORM_LANES];
      hv_store(bits, 0, gr, tx, 0, 0);
      const hr raw = hv_load_raw(bits, 0, tx, 0);
      gr = hv_widen(raw, tx, 0);
      if (gx && acc_x) hv_store(gx, j, hv_add(hv_load(gx, j, tx, 0), gr), tx, 0, 0);
      else if (gx) hv_store_raw(gx, j, raw, tx, 0, ntx);
    }
    if (s != 0.0f) {
      const hv gs = hv_mul(vs, gr), sg = a->ls ? hv_mul(gs, hv_load(a->ls, j, DP_T_F32, 0)) : gs;
      /* f before gf is stored: gf may be f */
      if (pl) hv_store(pl, j, hv_add(hv_load(pl, j, DP_T_F32, 0), hv_mul(gs, hv_load(f, j, tf, 0))), DP_T_F32, 0, 0);
      hv_store(gf, j, acc_f ? hv_add(hv_load(gf, j, tf, 0), sg) : sg, tf, 0, ntf);
    } else if (!acc_f) {
      hv_store(gf, j, zero, tf, 0, ntf);
    }
  }
  dp_nbwd_pass2(gx, gf, gy, r, gin, f, s, nb, n, &w, a, pl, tx, tf);
}

#define DP_NBWD_ENTRY_(isa, combo, id, xt, ft)                                                                   \
  void DP_KERNEL_NAME(nbwd, combo, isa)(void *gx, void *gf, const void *gy, const void *r, const void *gin,     \
                                        const void *f, float s, size_t n, const struct dp_norm_kargs *a,        \
                                        const float *stats, float *pg, float *pb, float *pl) {                  \
    nbwd_run(gx, gf, gy, r, gin, f, s, n, a, stats, pg, pb, pl, xt, ft);                                        \
  }
DP_COMBOS_ALL(DP_NBWD_ENTRY_, DP_ISA)
#undef DP_NBWD_ENTRY_
#undef NBWD_K
