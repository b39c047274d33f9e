/* The backward of a kept row with a bf16/f16 operand (see dp_bwd_fn; the
 * combos of DP_COMBOS_ALL_HALF) for every SIMD ISA: included by bwd_<isa>.c
 * after its simd/half_<isa>.h, with DP_ISA set to the ISA's kernel-name
 * suffix.  gf = (gf +) s*g and gx = gx + g are computed in f32 and rounded
 * once; a plain gx = g stores g's bits as loaded.  The same bits as
 * dp_bwd_<combo>__scalar. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/half_<isa>.h first"
#endif

#include "kernels/bwd/bwd_kinds.h"

/* Elements [i, i+W).  g is read before gf is stored: gf may be g.  gx is only
 * offset when present (arithmetic on NULL is undefined). */
DP_ALWAYS_INLINE void bwd_half_vec(void *gf, void *gx, const void *g, size_t i, hv vs, int tx, int tf, int bf, int fk,
                                   int xk) {
  const hr graw = hv_load_raw(g, i, tx, bf);
  const hv gv = hv_widen(graw, tx, bf);
  const hv sg = hv_mul(vs, gv);
  hv_store(gf, i, fk == K_ACC ? hv_add(hv_load(gf, i, tf, bf), sg) : sg, tf, bf, fk == K_NT);
  if (xk == K_ACC)
    hv_store(gx, i, hv_add(hv_load(gx, i, tx, bf), gv), tx, bf, 0);
  else if (xk != K_NONE)
    hv_store_raw(gx, i, graw, tx, bf, xk == K_NT);
}

/* Whole vectors of [i, n); returns where they end. */
DP_ALWAYS_INLINE size_t bwd_half_loop(void *gf, void *gx, const void *g, size_t i, size_t n, hv vs, int tx, int tf,
                                      int fk, int xk) {
  const int bf = tx == DP_T_BF16 && tf == DP_T_BF16;
  const size_t W = HV_LANES(bf);
  for (; n - i >= HV_UNROLL(bf) * W; i += HV_UNROLL(bf) * W) {
    bwd_half_vec(gf, gx, g, i, vs, tx, tf, bf, fk, xk);
    bwd_half_vec(gf, gx, g, i + W, vs, tx, tf, bf, fk, xk);
    if (HV_UNROLL(bf) == 4) {
      bwd_half_vec(gf, gx, g, i + 2 * W, vs, tx, tf, bf, fk, xk);
      bwd_half_vec(gf, gx, g, i + 3 * W, vs, tx, tf, bf, fk, xk);
    }
  }
  for (; n - i >= W; i += W) bwd_half_vec(gf, gx, g, i, vs, tx, tf, bf, fk, xk);
  return i;
}

DP_ALWAYS_INLINE size_t bwd_half_loops(void *gf, void *gx, const void *g, size_t i, size_t n, hv vs, int tx, int tf,
                                       int fk, int xk) {
  BWD_BY_KINDS(fk, xk, bwd_half_loop, gf, gx, g, i, n, vs, tx, tf)
}

/* Elements [i, i+k) outside the vector loop: one masked vector (k <=
 * HV_LANES) where the ISA has them (g read before gf is stored), else the
 * scalar kernel of the same combo with the caller's mode. */
#if HV_MASKED
static void bwd_half_part(void *gf, void *gx, const void *g, size_t i, size_t k, float s, unsigned mode, hv vs, int tx,
                          int tf, int fk, int xk, dp_bwd_fn scalar) {
  (void)s;
  (void)mode;
  (void)scalar;
  const hv_mask m = hv_first(k);
  const hr graw = hv_mload_raw(m, g, i, tx);
  const hv gv = hv_widen(graw, tx, 0);
  hv sg = hv_mul(vs, gv);
  if (fk == K_ACC) sg = hv_add(hv_mload(m, gf, i, tf), sg);
  hv_mstore(m, gf, i, sg, tf);
  if (xk == K_ACC)
    hv_mstore(m, gx, i, hv_add(hv_mload(m, gx, i, tx), gv), tx);
  else if (xk != K_NONE)
    hv_mstore_raw(m, gx, i, graw, tx);
}
#else
DP_ALWAYS_INLINE void bwd_half_part(void *gf, void *gx, const void *g, size_t i, size_t k, float s, unsigned mode,
                                    hv vs, int tx, int tf, int fk, int xk, dp_bwd_fn scalar) {
  (void)vs;
  (void)fk;
  (void)xk;
  scalar(dp_elem_at_w(gf, i, tf), gx ? dp_elem_at_w(gx, i, tx) : NULL, dp_elem_at(g, i, tx), s, k, mode);
}
#endif

DP_ALWAYS_INLINE void bwd_half_run(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode, int tx, int tf,
                                   dp_bwd_fn scalar) {
  const int bf = tx == DP_T_BF16 && tf == DP_T_BF16;
  const hv vs = hv_set1(s);
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  const int want_nt = HV_STREAM && (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  const size_t xs = dp_t_size(tx), fs = dp_t_size(tf);
  size_t i = 0;
  /* Align the output that will stream, else gf: misaligned stores split
   * cache lines. */
  if (HV_ALIGN && n >= hv_step(bf)) {
    i = want_nt && fk != K_SET && xk == K_SET ? dp_elem_head(gx, xs, HV_ALIGN)
                                               : dp_elem_head(gf, fs, HV_ALIGN);
#if HV_MASKED /* a head of halves can be two vectors */
    for (size_t j = 0, W = HV_LANES(0); j < i; j += W)
      bwd_half_part(gf, gx, g, j, hv_min(i - j, W), s, mode, vs, tx, tf, fk, xk, scalar);
#else
    if (i) bwd_half_part(gf, gx, g, 0, i, s, mode, vs, tx, tf, fk, xk, scalar);
#endif
  }
  if (want_nt && fk == K_SET && dp_is_aligned((char *)gf + i * fs, HV_ALIGN)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned((char *)gx + i * xs, HV_ALIGN)) xk = K_NT;
  i = bwd_half_loops(gf, gx, g, i, n, vs, tx, tf, fk, xk);
#if HV_MASKED /* a masked part is at most HV_LANES(0); a pure bf16 tail can be more */
  for (; i < n; i += HV_LANES(0)) bwd_half_part(gf, gx, g, i, hv_min(n - i, HV_LANES(0)), s, mode, vs, tx, tf, fk, xk, scalar);
#else
  if (i < n) bwd_half_part(gf, gx, g, i, n - i, s, mode, vs, tx, tf, fk, xk, scalar);
#endif
}

#define DP_BWD_HALF_ENTRY_(isa, combo, id, xt, ft)                                                            \
  void DP_KERNEL_NAME(bwd, combo, isa)(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) { \
    bwd_half_run(gf, gx, g, s, n, mode, xt, ft, DP_KERNEL_NAME(bwd, combo, scalar));                          \
  }
DP_COMBOS_ALL_HALF(DP_BWD_HALF_ENTRY_, DP_ISA)
#undef DP_BWD_HALF_ENTRY_
