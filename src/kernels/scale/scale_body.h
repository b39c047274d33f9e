/* The f32 drop_path of a kept row, out = s*x, for every SIMD ISA: included
 * by scale_<isa>.c after its simd/vec_<isa>.h, with DP_ISA set to the ISA's
 * kernel-name suffix. Same bits as dp_scale_f32__scalar. */
#ifndef DP_ISA
#error "define DP_ISA and include a simd/vec_<isa>.h first"
#endif

DP_ALWAYS_INLINE void scale_vec(float *out, const float *x, dpv vs, int nt) {
  const dpv r = dpv_canon(dpv_mul(vs, dpv_load(x)));
  if (nt)
    dpv_stream(out, r);
  else
    dpv_store(out, r);
}

/* k < DPV_LANES elements: masked lanes where the ISA has them (masked-off
 * lanes are neither read nor written), else the scalar kernel. */
static void scale_part(float *out, const float *x, float s, dpv vs, size_t k) {
#if DPV_MASKED
  (void)s;
  const dpv_mask m = dpv_first(k);
  dpv_mstore(m, out, dpv_canon(dpv_mul(vs, dpv_mload(m, x))));
#else
  (void)vs;
  dp_scale_f32__scalar(out, x, s, k, 0);
#endif
}

/* Whole vectors only; each vector is loaded before it is stored (out may be x). */
DP_ALWAYS_INLINE size_t scale_body(float *out, const float *x, dpv vs, size_t n, int nt) {
  const size_t W = DPV_LANES;
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    scale_vec(out + i, x + i, vs, nt);
    scale_vec(out + i + W, x + i + W, vs, nt);
    scale_vec(out + i + 2 * W, x + i + 2 * W, vs, nt);
    scale_vec(out + i + 3 * W, x + i + 3 * W, vs, nt);
  }
  for (; i + W <= n; i += W) scale_vec(out + i, x + i, vs, nt);
  return i;
}

void DP_KERNEL_NAME(scale, f32, DP_ISA)(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const dpv vs = dpv_set1(s);
  size_t i = 0;
  /* Peel to vector alignment: misaligned stores split cache lines (see DPV_ALIGN). */
  if (DPV_ALIGN && n >= 4 * DPV_LANES) {
    i = dp_elem_head(out, sizeof(float), DPV_ALIGN);
    if (i) scale_part(out, x, s, vs, i);
  }
  const int nt = DPV_STREAM && stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned(out + i, DPV_ALIGN);
  if (nt)
    i += scale_body(out + i, x + i, vs, n - i, 1);
  else
    i += scale_body(out + i, x + i, vs, n - i, 0);
  if (i < n) scale_part(out + i, x + i, s, vs, n - i);
}
