/* The fused forward with a bf16/f16 operand (the combos of
 * DP_COMBOS_ALL_HALF) for every SIMD ISA: included by fwd_<isa>.c after its
 * simd/half_<isa>.h, with DP_ISA set to the ISA's kernel-name suffix.  Widen,
 * out = x + (s*f) in f32 with two roundings, round once to out's type: the
 * same bits as dp_fwd_<combo>__scalar. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/half_<isa>.h first"
#endif

/* Each vector is loaded before it is stored: out may be x or f. */
DP_ALWAYS_INLINE void fwd_half_vec(void *out, const void *x, const void *f, size_t i, hv vs, int tx, int tf, int bf,
                                   int nt) {
  const hv sf = hv_mul(vs, hv_load(f, i, tf, bf));
  hv_store(out, i, hv_add(hv_load(x, i, tx, bf), sf), tx, bf, nt);
}

/* Whole vectors of [i, n); returns where they end. */
DP_ALWAYS_INLINE size_t fwd_half_loop(void *out, const void *x, const void *f, size_t i, size_t n, hv vs, int tx,
                                      int tf, int bf, int nt) {
  const size_t W = HV_LANES(bf);
  for (; n - i >= HV_UNROLL(bf) * W; i += HV_UNROLL(bf) * W) {
    fwd_half_vec(out, x, f, i, vs, tx, tf, bf, nt);
    fwd_half_vec(out, x, f, i + W, vs, tx, tf, bf, nt);
    if (HV_UNROLL(bf) == 4) {
      fwd_half_vec(out, x, f, i + 2 * W, vs, tx, tf, bf, nt);
      fwd_half_vec(out, x, f, i + 3 * W, vs, tx, tf, bf, nt);
    }
  }
  for (; n - i >= W; i += W) fwd_half_vec(out, x, f, i, vs, tx, tf, bf, nt);
  return i;
}

/* Elements [i, i+k) outside the vector loop: one masked vector (k <=
 * HV_LANES) where the ISA has them, else the scalar kernel of the same combo. */
#if HV_MASKED
static void fwd_half_part(void *out, const void *x, const void *f, size_t i, size_t k, float s, hv vs, int tx, int tf,
                          dp_fwd_fn scalar) {
  (void)s;
  (void)scalar;
  const hv_mask m = hv_first(k);
  const hv sf = hv_mul(vs, hv_mload(m, f, i, tf));
  hv_mstore(m, out, i, hv_add(hv_mload(m, x, i, tx), sf), tx);
}
#else
DP_ALWAYS_INLINE void fwd_half_part(void *out, const void *x, const void *f, size_t i, size_t k, float s, hv vs,
                                    int tx, int tf, dp_fwd_fn scalar) {
  (void)vs;
  scalar(dp_elem_at_w(out, i, tx), dp_elem_at(x, i, tx), dp_elem_at(f, i, tf), s, k, 0);
}
#endif

DP_ALWAYS_INLINE void fwd_half_run(void *out, const void *x, const void *f, float s, size_t n, int stream, int tx,
                                   int tf, dp_fwd_fn scalar) {
  const int bf = tx == DP_T_BF16 && tf == DP_T_BF16;
  const hv vs = hv_set1(s);
  const size_t xs = dp_t_size(tx);
  size_t i = 0;
  /* Peel to HV_ALIGN of out: misaligned stores split cache lines. */
  if (HV_ALIGN && n >= hv_step(bf)) {
    i = dp_elem_head(out, xs, HV_ALIGN);
#if HV_MASKED /* a head of halves can be two vectors */
    for (size_t j = 0, W = HV_LANES(0); j < i; j += W)
      fwd_half_part(out, x, f, j, hv_min(i - j, W), s, vs, tx, tf, scalar);
#else
    if (i) fwd_half_part(out, x, f, 0, i, s, vs, tx, tf, scalar);
#endif
  }
  const int nt =
      HV_STREAM && stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + i * xs, HV_ALIGN);
  if (nt)
    i = fwd_half_loop(out, x, f, i, n, vs, tx, tf, bf, 1);
  else
    i = fwd_half_loop(out, x, f, i, n, vs, tx, tf, bf, 0);
#if HV_MASKED /* a masked part is at most HV_LANES(0); a pure bf16 tail can be more */
  for (; i < n; i += HV_LANES(0)) fwd_half_part(out, x, f, i, hv_min(n - i, HV_LANES(0)), s, vs, tx, tf, scalar);
#else
  if (i < n) fwd_half_part(out, x, f, i, n - i, s, vs, tx, tf, scalar);
#endif
}

#define DP_FWD_HALF_ENTRY_(isa, combo, id, xt, ft)                                                         \
  void DP_KERNEL_NAME(fwd, combo, isa)(void *out, const void *x, const void *f, float s, size_t n, int stream) { \
    fwd_half_run(out, x, f, s, n, stream, xt, ft, DP_KERNEL_NAME(fwd, combo, scalar));                   \
  }
DP_COMBOS_ALL_HALF(DP_FWD_HALF_ENTRY_, DP_ISA)
#undef DP_FWD_HALF_ENTRY_
