/* The f32 backward of a kept row (see dp_bwd_fn) for every SIMD ISA:
 * included by bwd_<isa>.c after its simd/vec_<isa>.h, with DP_ISA set to the
 * ISA's kernel-name suffix. Same bits as dp_bwd_f32__scalar. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/vec_<isa>.h first"
#endif

#include "kernels/bwd/bwd_kinds.h"

DP_ALWAYS_INLINE void put(float *p, dpv v, int kind) {
  if (kind == K_NT)
    dpv_stream(p, v);
  else
    dpv_store(p, v);
}

/* Elements [i, i+W).  g is loaded before gf is stored: gf may be g.  gx is
 * only offset when present (arithmetic on NULL is undefined). */
DP_ALWAYS_INLINE void bwd_vec(float *gf, float *gx, const float *g, size_t i, dpv vs, int fk, int xk) {
  const dpv gv = dpv_load(g + i);
  const dpv sg = dpv_mul(vs, gv);
  put(gf + i, dpv_canon(fk == K_ACC ? dpv_add(dpv_load(gf + i), sg) : sg), fk);
  if (xk != K_NONE) put(gx + i, xk == K_ACC ? dpv_canon(dpv_add(dpv_load(gx + i), gv)) : gv, xk);
}

/* Whole vectors of [i, n); returns where they end. */
DP_ALWAYS_INLINE size_t bwd_body_fx(float *gf, float *gx, const float *g, size_t i, size_t n, dpv vs, int fk,
                                    int xk) {
  const size_t W = DPV_LANES;
  for (; n - i >= 4 * W; i += 4 * W) {
    bwd_vec(gf, gx, g, i, vs, fk, xk);
    bwd_vec(gf, gx, g, i + W, vs, fk, xk);
    bwd_vec(gf, gx, g, i + 2 * W, vs, fk, xk);
    bwd_vec(gf, gx, g, i + 3 * W, vs, fk, xk);
  }
  for (; n - i >= W; i += W) bwd_vec(gf, gx, g, i, vs, fk, xk);
  return i;
}

static size_t bwd_body(float *gf, float *gx, const float *g, size_t i, size_t n, dpv vs, int fk, int xk) {
  BWD_BY_KINDS(fk, xk, bwd_body_fx, gf, gx, g, i, n, vs)
}

/* Elements [i, i+k), k < DPV_LANES: masked lanes where the ISA has them
 * (masked-off lanes are neither read nor written), else the scalar kernel
 * with the caller's mode. */
static void bwd_part(float *gf, float *gx, const float *g, size_t i, size_t k, dpv vs, int fk, int xk, float s,
                     unsigned mode) {
#if DPV_MASKED
  (void)s;
  (void)mode;
  const dpv_mask m = dpv_first(k);
  const dpv gv = dpv_mload(m, g + i);
  dpv sg = dpv_mul(vs, gv);
  if (fk == K_ACC) sg = dpv_add(dpv_mload(m, gf + i), sg);
  dpv_mstore(m, gf + i, dpv_canon(sg));
  if (xk == K_NONE) return;
  dpv_mstore(m, gx + i, xk == K_ACC ? dpv_canon(dpv_add(dpv_mload(m, gx + i), gv)) : gv);
#else
  (void)vs;
  (void)fk;
  (void)xk;
  dp_bwd_f32__scalar(gf + i, gx ? gx + i : NULL, g + i, s, k, mode);
#endif
}

void DP_KERNEL_NAME(bwd, f32, DP_ISA)(void *gf_, void *gx_, const void *g_, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_;
  float *gx = (float *)gx_;
  const float *g = (const float *)g_;
  const dpv vs = dpv_set1(s);
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  const int want_nt = DPV_STREAM && (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  size_t i = 0;
  /* Align the output that will stream, else gf: misaligned stores split
   * cache lines (see DPV_ALIGN). */
  if (DPV_ALIGN && n >= 4 * DPV_LANES) {
    i = dp_elem_head(want_nt && fk != K_SET && xk == K_SET ? (void *)gx : (void *)gf, sizeof(float), DPV_ALIGN);
    if (i) bwd_part(gf, gx, g, 0, i, vs, fk, xk, s, mode);
  }
  if (want_nt && fk == K_SET && dp_is_aligned(gf + i, DPV_ALIGN)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned(gx + i, DPV_ALIGN)) xk = K_NT;
  i = bwd_body(gf, gx, g, i, n, vs, fk, xk);
  if (i < n) bwd_part(gf, gx, g, i, n - i, vs, fk, xk, s, mode);
}
