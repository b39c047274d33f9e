/* The LayerScale backward of kept rows with a bf16/f16 operand (the combos
 * of DP_COMBOS_ALL_HALF, see dp_bwdls_fn) for every SIMD ISA: included by
 * bwdls_<isa>.c after its simd/half_<isa>.h, with DP_ISA set to the ISA's
 * kernel-name suffix.  gs = g*s, gf = (gf +) gs*gamma and gx + g computed
 * in f32 and rounded once to their type, a plain gx = g stored as loaded,
 * acc (f32) summing gs*f per lane and channel row after row: the same bits
 * as dp_bwdls_<combo>__scalar.  gamma and acc are f32, so the vectors are
 * always in memory order (bf = 0).  Rows are walked one by one as in
 * bwdls_body.h, each with the bwd half body's peel, loops and parts. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/half_<isa>.h first"
#endif

#include "kernels/bwd/bwd_kinds.h"

/* Elements [i, i+W) of a row.  g and f are loaded before gf is stored: gf
 * may be either.  gx, f and acc are only used when present. */
DP_ALWAYS_INLINE void bwdls_half_vec(void *gf, void *gx, const void *g, const void *f, const float *gm, float *acc,
                                     size_t i, hv vs, int tx, int tf, int ak, int fk, int xk) {
  const hr graw = hv_load_raw(g, i, tx, 0);
  const hv gv = hv_widen(graw, tx, 0);
  const hv gs = hv_mul(gv, vs);
  const hv fv = ak ? hv_load(f, i, tf, 0) : gv;
  const hv t = hv_mul(gs, hv_load(gm, i, DP_T_F32, 0));
  hv_store(gf, i, fk == K_ACC ? hv_add(hv_load(gf, i, tf, 0), t) : t, tf, 0, fk == K_NT);
  if (xk == K_ACC)
    hv_store(gx, i, hv_add(hv_load(gx, i, tx, 0), gv), tx, 0, 0);
  else if (xk != K_NONE)
    hv_store_raw(gx, i, graw, tx, 0, xk == K_NT);
  if (ak) hv_store(acc, i, hv_add(hv_load(acc, i, DP_T_F32, 0), hv_mul(gs, fv)), DP_T_F32, 0, 0);
}

/* Whole vectors of [i, n) of a row; returns where they end. */
DP_ALWAYS_INLINE size_t bwdls_half_loop(void *gf, void *gx, const void *g, const void *f, const float *gm, float *acc,
                                        size_t i, size_t n, hv vs, int tx, int tf, int ak, int fk, int xk) {
  const size_t W = HV_LANES(0);
  for (; n - i >= HV_UNROLL(0) * W; i += HV_UNROLL(0) * W) {
    bwdls_half_vec(gf, gx, g, f, gm, acc, i, vs, tx, tf, ak, fk, xk);
    bwdls_half_vec(gf, gx, g, f, gm, acc, i + W, vs, tx, tf, ak, fk, xk);
    if (HV_UNROLL(0) == 4) {
      bwdls_half_vec(gf, gx, g, f, gm, acc, i + 2 * W, vs, tx, tf, ak, fk, xk);
      bwdls_half_vec(gf, gx, g, f, gm, acc, i + 3 * W, vs, tx, tf, ak, fk, xk);
    }
  }
  for (; n - i >= W; i += W) bwdls_half_vec(gf, gx, g, f, gm, acc, i, vs, tx, tf, ak, fk, xk);
  return i;
}

DP_ALWAYS_INLINE size_t bwdls_half_loop_a0(void *gf, void *gx, const void *g, const void *f, const float *gm,
                                           float *acc, size_t i, size_t n, hv vs, int tx, int tf, int fk, int xk) {
  return bwdls_half_loop(gf, gx, g, f, gm, acc, i, n, vs, tx, tf, 0, fk, xk);
}
DP_ALWAYS_INLINE size_t bwdls_half_loop_a1(void *gf, void *gx, const void *g, const void *f, const float *gm,
                                           float *acc, size_t i, size_t n, hv vs, int tx, int tf, int fk, int xk) {
  return bwdls_half_loop(gf, gx, g, f, gm, acc, i, n, vs, tx, tf, 1, fk, xk);
}

/* One loop per (gf kind, gx kind, acc or not): no mode branches inside. */
DP_ALWAYS_INLINE size_t bwdls_half_loops(void *gf, void *gx, const void *g, const void *f, const float *gm,
                                         float *acc, size_t i, size_t n, hv vs, int tx, int tf, int fk, int xk) {
  if (acc) {
    BWD_BY_KINDS(fk, xk, bwdls_half_loop_a1, gf, gx, g, f, gm, acc, i, n, vs, tx, tf)
  }
  BWD_BY_KINDS(fk, xk, bwdls_half_loop_a0, gf, gx, g, f, gm, acc, i, n, vs, tx, tf)
}

/* Elements [i, i+k) of a row outside the vector loop: one masked vector (k
 * <= HV_LANES) where the ISA has them (g and f read before gf is stored),
 * else the scalar kernel of the same combo on a row of k with the caller's
 * mode. */
#if HV_MASKED
static void bwdls_half_part(void *gf, void *gx, const void *g, const void *f, const float *gm, float *acc, size_t i,
                            size_t k, float s, unsigned mode, hv vs, int tx, int tf, int fk, int xk,
                            dp_bwdls_fn scalar) {
  (void)s;
  (void)mode;
  (void)scalar;
  const hv_mask m = hv_first(k);
  const hr graw = hv_mload_raw(m, g, i, tx);
  const hv gv = hv_widen(graw, tx, 0);
  const hv gs = hv_mul(gv, vs);
  const hv fv = acc ? hv_mload(m, f, i, tf) : gv;
  hv t = hv_mul(gs, hv_mload(m, gm, i, DP_T_F32));
  if (fk == K_ACC) t = hv_add(hv_mload(m, gf, i, tf), t);
  hv_mstore(m, gf, i, t, tf);
  if (xk == K_ACC)
    hv_mstore(m, gx, i, hv_add(hv_mload(m, gx, i, tx), gv), tx);
  else if (xk != K_NONE)
    hv_mstore_raw(m, gx, i, graw, tx);
  if (acc) hv_mstore(m, acc, i, hv_add(hv_mload(m, acc, i, DP_T_F32), hv_mul(gs, fv)), DP_T_F32);
}
#else
DP_ALWAYS_INLINE void bwdls_half_part(void *gf, void *gx, const void *g, const void *f, const float *gm, float *acc,
                                      size_t i, size_t k, float s, unsigned mode, hv vs, int tx, int tf, int fk, int xk,
                                      dp_bwdls_fn scalar) {
  (void)vs;
  (void)fk;
  (void)xk;
  scalar(dp_elem_at_w(gf, i, tf), gx ? dp_elem_at_w(gx, i, tx) : NULL, dp_elem_at(g, i, tx),
         acc ? dp_elem_at(f, i, tf) : NULL, gm + i, acc ? acc + i : NULL, k, s, k, mode);
}
#endif

/* One row of d elements. */
DP_ALWAYS_INLINE void bwdls_half_row(void *gf, void *gx, const void *g, const void *f, const float *gm, float *acc,
                                     size_t d, float s, unsigned mode, hv vs, int want_nt, int tx, int tf,
                                     dp_bwdls_fn scalar) {
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  const size_t xs = dp_t_size(tx), fs = dp_t_size(tf);
  size_t i = 0;
  /* Align the output that will stream, else gf: misaligned stores split
   * cache lines. */
  if (HV_ALIGN && d >= hv_step(0)) {
    i = want_nt && fk != K_SET && xk == K_SET ? dp_elem_head(gx, xs, HV_ALIGN) : dp_elem_head(gf, fs, HV_ALIGN);
#if HV_MASKED /* a head of halves can be two vectors */
    for (size_t j = 0, W = HV_LANES(0); j < i; j += W)
      bwdls_half_part(gf, gx, g, f, gm, acc, j, hv_min(i - j, W), s, mode, vs, tx, tf, fk, xk, scalar);
#else
    if (i) bwdls_half_part(gf, gx, g, f, gm, acc, 0, i, s, mode, vs, tx, tf, fk, xk, scalar);
#endif
  }
  if (want_nt && fk == K_SET && dp_is_aligned((char *)gf + i * fs, HV_ALIGN)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned((char *)gx + i * xs, HV_ALIGN)) xk = K_NT;
  i = bwdls_half_loops(gf, gx, g, f, gm, acc, i, d, vs, tx, tf, fk, xk);
  if (i < d) bwdls_half_part(gf, gx, g, f, gm, acc, i, d - i, s, mode, vs, tx, tf, fk, xk, scalar);
}

DP_ALWAYS_INLINE void bwdls_half_run(void *gf, void *gx, const void *g, const void *f, const float *gamma, float *acc,
                                     size_t d, float s, size_t n, unsigned mode, int tx, int tf, dp_bwdls_fn scalar) {
  const hv vs = hv_set1(s);
  const int want_nt = HV_STREAM && (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d)
    bwdls_half_row(dp_elem_at_w(gf, r, tf), gx ? dp_elem_at_w(gx, r, tx) : NULL, dp_elem_at(g, r, tx),
                   acc ? dp_elem_at(f, r, tf) : NULL, gamma, acc, d, s, mode, vs, want_nt, tx, tf, scalar);
}

#define DP_BWDLS_HALF_ENTRY_(isa, combo, id, xt, ft)                                                               \
  void DP_KERNEL_NAME(bwdls, combo, isa)(void *gf, void *gx, const void *g, const void *f, const float *gamma,   \
                                         float *acc, size_t d, float s, size_t n, unsigned mode) {               \
    bwdls_half_run(gf, gx, g, f, gamma, acc, d, s, n, mode, xt, ft, DP_KERNEL_NAME(bwdls, combo, scalar));       \
  }
DP_COMBOS_ALL_HALF(DP_BWDLS_HALF_ENTRY_, DP_ISA)
#undef DP_BWDLS_HALF_ENTRY_
