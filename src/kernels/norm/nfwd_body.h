/*
 * The residual join + norm (nfwd, kernels.h) for every SIMD ISA and every
 * combo, f32 included: included by nfwd_<isa>.c after its simd/half_<isa>.h,
 * with DP_ISA set to the ISA's kernel-name suffix.
 *
 * One body over the half vector interface (hv, always in memory order: bf =
 * 0) rather than an f32 body and a half body: the row sums' order is fixed at
 * 16 lanes (norm_kargs.h), which a block of 16 elements as 16/HV_LANES
 * vectors gives on every ISA, whatever the storage types. Whole blocks run
 * here; the elements after the last block run through the scalar passes
 * (norm_elem.h) into their lanes, so a tail is the same code everywhere.
 * Three passes over the row, one over memory: pass 1 reads x and f and
 * writes r (and tmp), passes 2 and 3 re-read the row from tmp (in L1), or
 * from r, or recompute it.
 */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/half_<isa>.h first"
#endif

#include "kernels/norm/norm_elem.h"

#define NFWD_K ((size_t)DP_NORM_LANES / HV_LANES(0)) /* vectors per block of 16 */
_Static_assert(DP_NORM_LANES % HV_LANES(0) == 0, "a block of 16 lanes must be whole vectors");

/* Elements [j, j + HV_LANES) of r = x + s*(ls*f) (ls NULL: x + s*f) as
 * stored in tx; stored in r unless it is NULL. The halves round once,
 * through a stack copy whose bits are both stored and widened. */
DP_ALWAYS_INLINE hv nfwd_vec_r(void *r, const void *x, const void *f, const float *ls, size_t j, hv vs, int tx, int tf,
                               int nt) {
  const hv fv = hv_load(f, j, tf, 0);
  const hv sf = hv_mul(vs, ls ? hv_mul(hv_load(ls, j, DP_T_F32, 0), fv) : fv);
  const hv v = hv_add(hv_load(x, j, tx, 0), sf);
  if (tx == DP_T_F32) {
    if (r) hv_store(r, j, v, tx, 0, nt);
    return v;
  }
  uint16_t bits[DP_NORM_LANES];
  hv_store(bits, 0, v, tx, 0, 0);
  const hr raw = hv_load_raw(bits, 0, tx, 0);
  if (r) hv_store_raw(r, j, raw, tx, 0, nt);
  return hv_widen(raw, tx, 0);
}

/* Elements [j, j + HV_LANES) of r for passes 2 and 3 (dp_nfwd_r_again). */
DP_ALWAYS_INLINE hv nfwd_vec_again(const void *r, const void *x, const void *f, const float *ls, const float *tmp,
                                   size_t j, hv vs, int tx, int tf) {
  if (tmp) return hv_load(tmp, j, DP_T_F32, 0);
  if (r) return hv_load(r, j, tx, 0);
  if (!f) return hv_load(x, j, tx, 0);
  return nfwd_vec_r(NULL, x, f, ls, j, vs, tx, tf, 0);
}

/* The vector lanes, spilled in lane order, for the tail and the tree. */
DP_ALWAYS_INLINE void nfwd_spill(const hv acc[NFWD_K], float lanes[DP_NORM_LANES]) {
  for (size_t k = 0; k < NFWD_K; k++) hv_store(lanes, k * HV_LANES(0), acc[k], DP_T_F32, 0, 0);
}

DP_ALWAYS_INLINE void nfwd_run(void *y, void *r, const void *x, const void *f, float s, size_t n,
                               const dp_norm_kargs *a, float *tmp, float *stats, int tx, int tf) {
  const size_t W = HV_LANES(0), nb = n / DP_NORM_LANES * DP_NORM_LANES;
  const int rms = (a->mode & DP_KNORM_RMS) != 0;
  const int long_row = HV_STREAM && n >= DP_STREAM_MIN_ELEMS;
  const hv vs = hv_set1(s);
  float lanes[DP_NORM_LANES];
  hv acc[NFWD_K];
  dp_nfwd_copy_dropped(r, x, f, n, tx);
  if (!f) r = NULL; /* r is x's bits now: nothing more to store */
  /* Streaming r only when the later passes do not read it back. */
  const int ntr = long_row && r && tmp && (a->mode & DP_KNORM_STREAM_R) && dp_is_aligned(r, HV_ALIGN);
  const int nty = long_row && y && (a->mode & DP_KNORM_STREAM_Y) && dp_is_aligned(y, HV_ALIGN);

  for (size_t k = 0; k < NFWD_K; k++) acc[k] = hv_set1(-0.0f);
  for (size_t i = 0; i < nb; i += DP_NORM_LANES)
    for (size_t k = 0; k < NFWD_K; k++) {
      const size_t j = i + k * W;
      const hv v = f ? nfwd_vec_r(r, x, f, a->ls, j, vs, tx, tf, ntr) : hv_load(x, j, tx, 0);
      if (tmp) hv_store(tmp, j, v, DP_T_F32, 0, 0);
      acc[k] = hv_add(acc[k], rms ? hv_mul(v, v) : v);
    }
  nfwd_spill(acc, lanes);
  dp_nfwd_pass1(r, x, f, a->ls, s, tmp, nb, n, rms, tx, tf, lanes);

  float mean = 0.0f;
  if (!rms) {
    mean = dp_norm_mean(lanes, n, 0);
    const hv nm = hv_set1(-mean);
    for (size_t k = 0; k < NFWD_K; k++) acc[k] = hv_set1(-0.0f);
    for (size_t i = 0; i < nb; i += DP_NORM_LANES)
      for (size_t k = 0; k < NFWD_K; k++) {
        const hv d = hv_add(nfwd_vec_again(r, x, f, a->ls, tmp, i + k * W, vs, tx, tf), nm);
        acc[k] = hv_add(acc[k], hv_mul(d, d));
      }
    nfwd_spill(acc, lanes);
    dp_nfwd_pass2(r, x, f, a->ls, s, tmp, nb, n, mean, tx, tf, lanes);
  }
  const float rstd = dp_norm_rstd(lanes, n, a->eps);

  if (y) { /* NULL: a row outside the output subset, statistics only */
    const hv nm = hv_set1(-mean), vr = hv_set1(rstd);
    for (size_t j = 0; j < nb; j += W) {
      hv t = hv_mul(hv_add(nfwd_vec_again(r, x, f, a->ls, tmp, j, vs, tx, tf), nm), vr);
      if (a->gamma) t = hv_mul(t, hv_load(a->gamma, j, DP_T_F32, 0));
      if (a->beta) t = hv_add(t, hv_load(a->beta, j, DP_T_F32, 0));
      hv_store(y, j, t, tf, 0, nty);
    }
    dp_nfwd_pass3(y, r, x, f, a->ls, s, tmp, nb, n, mean, rstd, a, tx, tf);
  }
  stats[0] = dp_f32_canon(mean);
  stats[1] = dp_f32_canon(rstd);
}

#define DP_NFWD_ENTRY_(isa, combo, id, xt, ft)                                                                   \
  void DP_KERNEL_NAME(nfwd, combo, isa)(void *y, void *r, const void *x, const void *f, float s, size_t n,      \
                                        const struct dp_norm_kargs *a, float *tmp, float *stats) {              \
    nfwd_run(y, r, x, f, s, n, a, tmp, stats, xt, ft);                                                          \
  }
DP_COMBOS_ALL(DP_NFWD_ENTRY_, DP_ISA)
#undef DP_NFWD_ENTRY_
#undef NFWD_K
