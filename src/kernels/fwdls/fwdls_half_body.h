/* The LayerScale join with a bf16/f16 operand (the combos of
 * DP_COMBOS_ALL_HALF, see dp_fwdls_fn) for every SIMD ISA: included by
 * fwdls_<isa>.c after its simd/half_<isa>.h, with DP_ISA set to the ISA's
 * kernel-name suffix.  Widen, out = x + ((gamma*f)*s) in f32 with three
 * roundings, round once to out's type: the same bits as
 * dp_fwdls_<combo>__scalar.  gamma is f32, so the vectors are always in
 * memory order (bf = 0: AVX2's 16-lane pure-bf16 order would need gamma
 * shuffled).  Rows are walked one by one as in fwdls_body.h, each with the
 * fwd half body's peel, vector loop and head/tail parts. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/half_<isa>.h first"
#endif

/* Elements [i, i+W) of a row; each is loaded before it is stored: out may be x or f. */
DP_ALWAYS_INLINE void fwdls_half_vec(void *out, const void *x, const void *f, const float *gm, size_t i, hv vs,
                                     int tx, int tf, int nt) {
  const hv t = hv_mul(hv_mul(hv_load(gm, i, DP_T_F32, 0), hv_load(f, i, tf, 0)), vs);
  hv_store(out, i, hv_add(hv_load(x, i, tx, 0), t), tx, 0, nt);
}

/* Whole vectors of [i, n) of a row; returns where they end. */
DP_ALWAYS_INLINE size_t fwdls_half_loop(void *out, const void *x, const void *f, const float *gm, size_t i, size_t n,
                                        hv vs, int tx, int tf, int nt) {
  const size_t W = HV_LANES(0);
  for (; n - i >= HV_UNROLL(0) * W; i += HV_UNROLL(0) * W) {
    fwdls_half_vec(out, x, f, gm, i, vs, tx, tf, nt);
    fwdls_half_vec(out, x, f, gm, i + W, vs, tx, tf, nt);
    if (HV_UNROLL(0) == 4) {
      fwdls_half_vec(out, x, f, gm, i + 2 * W, vs, tx, tf, nt);
      fwdls_half_vec(out, x, f, gm, i + 3 * W, vs, tx, tf, nt);
    }
  }
  for (; n - i >= W; i += W) fwdls_half_vec(out, x, f, gm, i, vs, tx, tf, nt);
  return i;
}

/* Elements [i, i+k) of a row outside the vector loop: one masked vector (k
 * <= HV_LANES) where the ISA has them, else the scalar kernel of the same
 * combo on a row of k. */
#if HV_MASKED
static void fwdls_half_part(void *out, const void *x, const void *f, const float *gm, size_t i, size_t k, float s,
                            hv vs, int tx, int tf, dp_fwdls_fn scalar) {
  (void)s;
  (void)scalar;
  const hv_mask m = hv_first(k);
  const hv t = hv_mul(hv_mul(hv_mload(m, gm, i, DP_T_F32), hv_mload(m, f, i, tf)), vs);
  hv_mstore(m, out, i, hv_add(hv_mload(m, x, i, tx), t), tx);
}
#else
DP_ALWAYS_INLINE void fwdls_half_part(void *out, const void *x, const void *f, const float *gm, size_t i, size_t k,
                                      float s, hv vs, int tx, int tf, dp_fwdls_fn scalar) {
  (void)vs;
  scalar(dp_elem_at_w(out, i, tx), dp_elem_at(x, i, tx), dp_elem_at(f, i, tf), gm + i, k, s, k, 0);
}
#endif

/* One row of d elements; want_nt: the call may stream (a row does when its
 * vector loop starts aligned). */
DP_ALWAYS_INLINE void fwdls_half_row(void *out, const void *x, const void *f, const float *gm, size_t d, float s,
                                     hv vs, int want_nt, int tx, int tf, dp_fwdls_fn scalar) {
  const size_t xs = dp_t_size(tx);
  size_t i = 0;
  /* Peel to HV_ALIGN of out: misaligned stores split cache lines. */
  if (HV_ALIGN && d >= hv_step(0)) {
    i = dp_elem_head(out, xs, HV_ALIGN);
#if HV_MASKED /* a head of halves can be two vectors */
    for (size_t j = 0, W = HV_LANES(0); j < i; j += W)
      fwdls_half_part(out, x, f, gm, j, hv_min(i - j, W), s, vs, tx, tf, scalar);
#else
    if (i) fwdls_half_part(out, x, f, gm, 0, i, s, vs, tx, tf, scalar);
#endif
  }
  if (want_nt && dp_is_aligned((const char *)out + i * xs, HV_ALIGN))
    i = fwdls_half_loop(out, x, f, gm, i, d, vs, tx, tf, 1);
  else
    i = fwdls_half_loop(out, x, f, gm, i, d, vs, tx, tf, 0);
  if (i < d) fwdls_half_part(out, x, f, gm, i, d - i, s, vs, tx, tf, scalar);
}

DP_ALWAYS_INLINE void fwdls_half_run(void *out, const void *x, const void *f, const float *gamma, size_t d, float s,
                                     size_t n, int stream, int tx, int tf, dp_fwdls_fn scalar) {
  const hv vs = hv_set1(s);
  const int want_nt = HV_STREAM && stream && n >= DP_STREAM_MIN_ELEMS;
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d)
    fwdls_half_row(dp_elem_at_w(out, r, tx), dp_elem_at(x, r, tx), dp_elem_at(f, r, tf), gamma, d, s, vs, want_nt,
                   tx, tf, scalar);
}

#define DP_FWDLS_HALF_ENTRY_(isa, combo, id, xt, ft)                                                            \
  void DP_KERNEL_NAME(fwdls, combo, isa)(void *out, const void *x, const void *f, const float *gamma, size_t d, \
                                         float s, size_t n, int stream) {                                      \
    fwdls_half_run(out, x, f, gamma, d, s, n, stream, xt, ft, DP_KERNEL_NAME(fwdls, combo, scalar));           \
  }
DP_COMBOS_ALL_HALF(DP_FWDLS_HALF_ENTRY_, DP_ISA)
#undef DP_FWDLS_HALF_ENTRY_
