/* The f32 LayerScale backward of kept rows (see dp_bwdls_fn) for every SIMD
 * ISA: included by bwdls_<isa>.c after its simd/vec_<isa>.h, with DP_ISA set
 * to the ISA's kernel-name suffix.  Same operations in the same order as
 * dp_bwdls_f32__scalar, each lane of acc summing its own channel row after
 * row (no horizontal sums), so the same bits.  Rows are walked one by one,
 * each with the bwd family's peel, body and tail; the kinds of the outputs
 * (bwd/bwd_kinds.h) are resolved per row, as the alignment that decides
 * streaming can differ between rows. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/vec_<isa>.h first"
#endif

#include "kernels/bwd/bwd_kinds.h"

DP_ALWAYS_INLINE void bwdls_put(float *p, dpv v, int kind) {
  if (kind == K_NT)
    dpv_stream(p, v);
  else
    dpv_store(p, v);
}

/* Elements [i, i+W) of a row.  g and f are loaded before gf is stored: gf
 * may be either.  gx, f and acc are only offset when present. */
DP_ALWAYS_INLINE void bwdls_vec(float *gf, float *gx, const float *g, const float *f, const float *gm, float *acc,
                                size_t i, dpv vs, int fk, int xk, int ak) {
  const dpv gv = dpv_load(g + i);
  const dpv gs = dpv_mul(gv, vs);
  const dpv fv = ak ? dpv_load(f + i) : gv;
  const dpv t = dpv_mul(gs, dpv_load(gm + i));
  bwdls_put(gf + i, dpv_canon(fk == K_ACC ? dpv_add(dpv_load(gf + i), t) : t), fk);
  if (xk != K_NONE) bwdls_put(gx + i, xk == K_ACC ? dpv_canon(dpv_add(dpv_load(gx + i), gv)) : gv, xk);
  if (ak) dpv_store(acc + i, dpv_canon(dpv_add(dpv_load(acc + i), dpv_mul(gs, fv))));
}

/* Whole vectors of [i, n) of one row; returns where they end. */
DP_ALWAYS_INLINE size_t bwdls_loop(float *gf, float *gx, const float *g, const float *f, const float *gm, float *acc,
                                   size_t i, size_t n, dpv vs, int fk, int xk, int ak) {
  const size_t W = DPV_LANES;
  for (; n - i >= 4 * W; i += 4 * W) {
    bwdls_vec(gf, gx, g, f, gm, acc, i, vs, fk, xk, ak);
    bwdls_vec(gf, gx, g, f, gm, acc, i + W, vs, fk, xk, ak);
    bwdls_vec(gf, gx, g, f, gm, acc, i + 2 * W, vs, fk, xk, ak);
    bwdls_vec(gf, gx, g, f, gm, acc, i + 3 * W, vs, fk, xk, ak);
  }
  for (; n - i >= W; i += W) bwdls_vec(gf, gx, g, f, gm, acc, i, vs, fk, xk, ak);
  return i;
}

DP_ALWAYS_INLINE size_t bwdls_loop_a0(float *gf, float *gx, const float *g, const float *f, const float *gm,
                                      float *acc, size_t i, size_t n, dpv vs, int fk, int xk) {
  return bwdls_loop(gf, gx, g, f, gm, acc, i, n, vs, fk, xk, 0);
}
DP_ALWAYS_INLINE size_t bwdls_loop_a1(float *gf, float *gx, const float *g, const float *f, const float *gm,
                                      float *acc, size_t i, size_t n, dpv vs, int fk, int xk) {
  return bwdls_loop(gf, gx, g, f, gm, acc, i, n, vs, fk, xk, 1);
}

/* One loop per (gf kind, gx kind, acc or not): no mode branches inside. */
static size_t bwdls_body(float *gf, float *gx, const float *g, const float *f, const float *gm, float *acc, size_t i,
                         size_t n, dpv vs, int fk, int xk) {
  if (acc) {
    BWD_BY_KINDS(fk, xk, bwdls_loop_a1, gf, gx, g, f, gm, acc, i, n, vs)
  }
  BWD_BY_KINDS(fk, xk, bwdls_loop_a0, gf, gx, g, f, gm, acc, i, n, vs)
}

/* Elements [i, i+k) of a row, k < DPV_LANES: masked lanes where the ISA has
 * them (masked-off lanes are neither read nor written), else the scalar
 * kernel on a row of k with the caller's mode. */
static void bwdls_part(float *gf, float *gx, const float *g, const float *f, const float *gm, float *acc, size_t i,
                       size_t k, dpv vs, int fk, int xk, float s, unsigned mode) {
#if DPV_MASKED
  (void)s;
  (void)mode;
  const dpv_mask m = dpv_first(k);
  const dpv gv = dpv_mload(m, g + i);
  const dpv gs = dpv_mul(gv, vs);
  const dpv fv = acc ? dpv_mload(m, f + i) : gv;
  dpv t = dpv_mul(gs, dpv_mload(m, gm + i));
  if (fk == K_ACC) t = dpv_add(dpv_mload(m, gf + i), t);
  dpv_mstore(m, gf + i, dpv_canon(t));
  if (xk != K_NONE) dpv_mstore(m, gx + i, xk == K_ACC ? dpv_canon(dpv_add(dpv_mload(m, gx + i), gv)) : gv);
  if (acc) dpv_mstore(m, acc + i, dpv_canon(dpv_add(dpv_mload(m, acc + i), dpv_mul(gs, fv))));
#else
  (void)vs;
  (void)fk;
  (void)xk;
  dp_bwdls_f32__scalar(gf + i, gx ? gx + i : NULL, g + i, acc ? f + i : NULL, gm + i, acc ? acc + i : NULL, k, s, k,
                       mode);
#endif
}

/* One row of d elements. */
static void bwdls_row(float *gf, float *gx, const float *g, const float *f, const float *gm, float *acc, size_t d,
                      dpv vs, float s, unsigned mode, int want_nt) {
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  size_t i = 0;
  /* Align the output that will stream, else gf: misaligned stores split
   * cache lines (see DPV_ALIGN). */
  if (DPV_ALIGN && d >= 4 * DPV_LANES) {
    i = dp_elem_head(want_nt && fk != K_SET && xk == K_SET ? (void *)gx : (void *)gf, sizeof(float), DPV_ALIGN);
    if (i) bwdls_part(gf, gx, g, f, gm, acc, 0, i, vs, fk, xk, s, mode);
  }
  if (want_nt && fk == K_SET && dp_is_aligned(gf + i, DPV_ALIGN)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned(gx + i, DPV_ALIGN)) xk = K_NT;
  i = bwdls_body(gf, gx, g, f, gm, acc, i, d, vs, fk, xk);
  if (i < d) bwdls_part(gf, gx, g, f, gm, acc, i, d - i, vs, fk, xk, s, mode);
}

void DP_KERNEL_NAME(bwdls, f32, DP_ISA)(void *gf_, void *gx_, const void *g_, const void *f_, const float *gamma,
                                        float *acc, size_t d, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_;
  float *gx = (float *)gx_;
  const float *g = (const float *)g_;
  const float *f = (const float *)f_;
  const dpv vs = dpv_set1(s);
  const int want_nt = DPV_STREAM && (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d)
    bwdls_row(gf + r, gx ? gx + r : NULL, g + r, acc ? f + r : NULL, gamma, acc, d, vs, s, mode, want_nt);
}
