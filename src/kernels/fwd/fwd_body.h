/* The f32 fused forward, out = x + (s*f), for every SIMD ISA: included by
 * fwd_<isa>.c after its simd/vec_<isa>.h, with DP_ISA set to the ISA's
 * kernel-name suffix. Same operations in the same order on every ISA, so
 * the same bits as dp_fwd_f32__scalar. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/vec_<isa>.h first"
#endif

DP_ALWAYS_INLINE void fwd_vec(float *out, const float *x, const float *f, dpv vs, int nt) {
  const dpv r = dpv_canon(dpv_add(dpv_load(x), dpv_mul(vs, dpv_load(f))));
  if (nt)
    dpv_stream(out, r);
  else
    dpv_store(out, r);
}

/* k < DPV_LANES elements: masked lanes where the ISA has them (masked-off
 * lanes are neither read nor written), else the scalar kernel. */
static void fwd_part(float *out, const float *x, const float *f, float s, dpv vs, size_t k) {
#if DPV_MASKED
  (void)s;
  const dpv_mask m = dpv_first(k);
  dpv_mstore(m, out, dpv_canon(dpv_add(dpv_mload(m, x), dpv_mul(vs, dpv_mload(m, f)))));
#else
  (void)vs;
  dp_fwd_f32__scalar(out, x, f, s, k, 0);
#endif
}

/* Whole vectors only; each vector is loaded before it is stored (out may be x or f). */
DP_ALWAYS_INLINE size_t fwd_body(float *out, const float *x, const float *f, dpv vs, size_t n, int nt) {
  const size_t W = DPV_LANES;
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    fwd_vec(out + i, x + i, f + i, vs, nt);
    fwd_vec(out + i + W, x + i + W, f + i + W, vs, nt);
    fwd_vec(out + i + 2 * W, x + i + 2 * W, f + i + 2 * W, vs, nt);
    fwd_vec(out + i + 3 * W, x + i + 3 * W, f + i + 3 * W, vs, nt);
  }
  for (; i + W <= n; i += W) fwd_vec(out + i, x + i, f + i, vs, nt);
  return i;
}

void DP_KERNEL_NAME(fwd, f32, DP_ISA)(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  const dpv vs = dpv_set1(s);
  size_t i = 0;
  /* Peel to vector alignment: misaligned stores split cache lines (see DPV_ALIGN). */
  if (DPV_ALIGN && n >= 4 * DPV_LANES) {
    i = dp_elem_head(out, sizeof(float), DPV_ALIGN);
    if (i) fwd_part(out, x, f, s, vs, i);
  }
  const int nt = DPV_STREAM && stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned(out + i, DPV_ALIGN);
  if (nt)
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 1);
  else
    i += fwd_body(out + i, x + i, f + i, vs, n - i, 0);
  if (i < n) fwd_part(out + i, x + i, f + i, s, vs, n - i);
}
