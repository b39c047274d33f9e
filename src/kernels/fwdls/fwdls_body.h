/* The f32 LayerScale join, out = x + ((gamma*f)*s) over whole rows of d
 * elements (see dp_fwdls_fn), for every SIMD ISA: included by
 * fwdls_<isa>.c after its simd/vec_<isa>.h, with DP_ISA set to the ISA's
 * kernel-name suffix.  Same operations in the same order on every ISA, so
 * the same bits as dp_fwdls_f32__scalar.  Rows are walked one by one (gamma
 * restarts with each), each with the fwd family's alignment peel, vector
 * body and masked or scalar tail: a call over many short rows (ConvNeXt's
 * 96 channels) pays one call, not one per row. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/vec_<isa>.h first"
#endif

DP_ALWAYS_INLINE dpv fwdls_math(dpv x, dpv f, dpv g, dpv vs) {
  return dpv_canon(dpv_add(x, dpv_mul(dpv_mul(g, f), vs)));
}

DP_ALWAYS_INLINE void fwdls_vec(float *out, const float *x, const float *f, const float *g, dpv vs, int nt) {
  const dpv r = fwdls_math(dpv_load(x), dpv_load(f), dpv_load(g), vs);
  if (nt)
    dpv_stream(out, r);
  else
    dpv_store(out, r);
}

/* k < DPV_LANES elements of one row: masked lanes where the ISA has them
 * (masked-off lanes are neither read nor written), else the scalar kernel
 * on a row of k. */
static void fwdls_part(float *out, const float *x, const float *f, const float *g, float s, dpv vs, size_t k) {
#if DPV_MASKED
  (void)s;
  const dpv_mask m = dpv_first(k);
  dpv_mstore(m, out, fwdls_math(dpv_mload(m, x), dpv_mload(m, f), dpv_mload(m, g), vs));
#else
  (void)vs;
  dp_fwdls_f32__scalar(out, x, f, g, k, s, k, 0);
#endif
}

/* Whole vectors of a row only; each is loaded before it is stored (out may be x or f). */
DP_ALWAYS_INLINE size_t fwdls_body(float *out, const float *x, const float *f, const float *g, dpv vs, size_t n,
                                   int nt) {
  const size_t W = DPV_LANES;
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    fwdls_vec(out + i, x + i, f + i, g + i, vs, nt);
    fwdls_vec(out + i + W, x + i + W, f + i + W, g + i + W, vs, nt);
    fwdls_vec(out + i + 2 * W, x + i + 2 * W, f + i + 2 * W, g + i + 2 * W, vs, nt);
    fwdls_vec(out + i + 3 * W, x + i + 3 * W, f + i + 3 * W, g + i + 3 * W, vs, nt);
  }
  for (; i + W <= n; i += W) fwdls_vec(out + i, x + i, f + i, g + i, vs, nt);
  return i;
}

/* One row of d elements; want_nt: the call may stream (its rows do when
 * their body starts aligned). */
DP_ALWAYS_INLINE void fwdls_row(float *out, const float *x, const float *f, const float *g, float s, dpv vs, size_t d,
                                int want_nt) {
  size_t i = 0;
  /* Peel to vector alignment: misaligned stores split cache lines (see DPV_ALIGN). */
  if (DPV_ALIGN && d >= 4 * DPV_LANES) {
    i = dp_elem_head(out, sizeof(float), DPV_ALIGN);
    if (i) fwdls_part(out, x, f, g, s, vs, i);
  }
  if (want_nt && dp_is_aligned(out + i, DPV_ALIGN))
    i += fwdls_body(out + i, x + i, f + i, g + i, vs, d - i, 1);
  else
    i += fwdls_body(out + i, x + i, f + i, g + i, vs, d - i, 0);
  if (i < d) fwdls_part(out + i, x + i, f + i, g + i, s, vs, d - i);
}

void DP_KERNEL_NAME(fwdls, f32, DP_ISA)(void *out_, const void *x_, const void *f_, const float *gamma, size_t d,
                                        float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  const dpv vs = dpv_set1(s);
  const int want_nt = DPV_STREAM && stream && n >= DP_STREAM_MIN_ELEMS;
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d) fwdls_row(out + r, x + r, f + r, gamma, s, vs, d, want_nt);
}
