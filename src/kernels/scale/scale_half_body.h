/* The drop_path of a kept row with bf16/f16 storage, out = s*x (the combos
 * of DP_COMBOS_PURE_HALF), for every SIMD ISA: included by scale_<isa>.c
 * after its simd/half_<isa>.h, with DP_ISA set to the ISA's kernel-name
 * suffix.  Widen, multiply in f32, round once: the same bits as
 * dp_scale_<combo>__scalar. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/half_<isa>.h first"
#endif

/* Each vector is loaded before it is stored: out may be x. */
DP_ALWAYS_INLINE void scale_half_vec(void *out, const void *x, size_t i, hv vs, int t, int bf, int nt) {
  hv_store(out, i, hv_mul(vs, hv_load(x, i, t, bf)), t, bf, nt);
}

/* Whole vectors of [i, n); returns where they end. */
DP_ALWAYS_INLINE size_t scale_half_loop(void *out, const void *x, size_t i, size_t n, hv vs, int t, int bf, int nt) {
  const size_t W = HV_LANES(bf);
  for (; n - i >= HV_UNROLL(bf) * W; i += HV_UNROLL(bf) * W) {
    scale_half_vec(out, x, i, vs, t, bf, nt);
    scale_half_vec(out, x, i + W, vs, t, bf, nt);
    if (HV_UNROLL(bf) == 4) {
      scale_half_vec(out, x, i + 2 * W, vs, t, bf, nt);
      scale_half_vec(out, x, i + 3 * W, vs, t, bf, nt);
    }
  }
  for (; n - i >= W; i += W) scale_half_vec(out, x, i, vs, t, bf, nt);
  return i;
}

/* Elements [i, i+k) outside the vector loop: one masked vector (k <=
 * HV_LANES) where the ISA has them, else the scalar kernel of the same combo. */
#if HV_MASKED
static void scale_half_part(void *out, const void *x, size_t i, size_t k, float s, hv vs, int t, dp_scale_fn scalar) {
  (void)s;
  (void)scalar;
  const hv_mask m = hv_first(k);
  hv_mstore(m, out, i, hv_mul(vs, hv_mload(m, x, i, t)), t);
}
#else
DP_ALWAYS_INLINE void scale_half_part(void *out, const void *x, size_t i, size_t k, float s, hv vs, int t,
                                      dp_scale_fn scalar) {
  (void)vs;
  scalar(dp_elem_at_w(out, i, t), dp_elem_at(x, i, t), s, k, 0);
}
#endif

DP_ALWAYS_INLINE void scale_half_run(void *out, const void *x, float s, size_t n, int stream, int t,
                                     dp_scale_fn scalar) {
  const int bf = t == DP_T_BF16;
  const hv vs = hv_set1(s);
  const size_t xs = dp_t_size(t);
  size_t i = 0;
  /* Peel to HV_ALIGN of out: misaligned stores split cache lines. */
  if (HV_ALIGN && n >= hv_step(bf)) {
    i = dp_elem_head(out, xs, HV_ALIGN);
#if HV_MASKED /* a head of halves can be two vectors */
    for (size_t j = 0, W = HV_LANES(0); j < i; j += W)
      scale_half_part(out, x, j, hv_min(i - j, W), s, vs, t, scalar);
#else
    if (i) scale_half_part(out, x, 0, i, s, vs, t, scalar);
#endif
  }
  const int nt =
      HV_STREAM && stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + i * xs, HV_ALIGN);
  if (nt)
    i = scale_half_loop(out, x, i, n, vs, t, bf, 1);
  else
    i = scale_half_loop(out, x, i, n, vs, t, bf, 0);
#if HV_MASKED /* a masked part is at most HV_LANES(0); a pure bf16 tail can be more */
  for (; i < n; i += HV_LANES(0)) scale_half_part(out, x, i, hv_min(n - i, HV_LANES(0)), s, vs, t, scalar);
#else
  if (i < n) scale_half_part(out, x, i, n - i, s, vs, t, scalar);
#endif
}

#define DP_SCALE_HALF_ENTRY_(isa, combo, id, xt, ft)                                               \
  void DP_KERNEL_NAME(scale, combo, isa)(void *out, const void *x, float s, size_t n, int stream) { \
    scale_half_run(out, x, s, n, stream, xt, DP_KERNEL_NAME(scale, combo, scalar));                \
  }
DP_COMBOS_PURE_HALF(DP_SCALE_HALF_ENTRY_, DP_ISA)
#undef DP_SCALE_HALF_ENTRY_
