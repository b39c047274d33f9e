/* The drop_path of a kept row with bf16/f16 storage, for the x86 ISAs whose heads and
 * tails go through the scalar kernels (SSE2, AVX2): the alignment peel
 * and the entry points. Included at the end of scale_half_<isa>.c, after its
 * vector body, with
 *   HV, hv_set1(s)  the f32 vector type of the scale and its broadcast,
 *   HV_BYTES        the alignment the stores want,
 *   HALF_ISA        the kernel-name suffix (dp_scale_bf16__HALF_ISA, ...). */
#if !defined(HV) || !defined(HV_BYTES) || !defined(HALF_ISA)
#error "define HV, hv_set1, HV_BYTES and HALF_ISA first"
#endif

#define DP_HALF_PASTE(a, b) a##__##b
#define DP_HALF_EXPAND(a, b) DP_HALF_PASTE(a, b)
#define DP_HALF_NAME(op) DP_HALF_EXPAND(op, HALF_ISA)

DP_X86_INLINE void scale_run(void *out, const void *x, float s, size_t n, int stream, int t, dp_scale_fn part) {
  const HV vs = hv_set1(s);
  size_t i = 0;
  /* Peel to vector alignment of out (HV_BYTES): misaligned stores split cache lines. */
  if (n >= 4 * W) {
    i = dp_elem_head(out, 2, HV_BYTES);
    if (i) part(out, x, s, i, 0);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + 2 * i, HV_BYTES);
  if (nt)
    i = scale_body(out, x, i, n, vs, t, 1);
  else
    i = scale_body(out, x, i, n, vs, t, 0);
  if (i < n) part((char *)out + 2 * i, (const char *)x + 2 * i, s, n - i, 0);
}

void DP_HALF_NAME(dp_scale_bf16)(void *out, const void *x, float s, size_t n, int stream) {
  scale_run(out, x, s, n, stream, DP_T_BF16, dp_scale_bf16__scalar);
}

void DP_HALF_NAME(dp_scale_f16)(void *out, const void *x, float s, size_t n, int stream) {
  scale_run(out, x, s, n, stream, DP_T_F16, dp_scale_f16__scalar);
}
