/* The fused forward with bf16/f16 storage, for the x86 ISAs whose heads and
 * tails go through the scalar kernels (SSE2, AVX2): the alignment peel
 * and the entry points. Included at the end of fwd_half_<isa>.c, after its
 * vector body, with
 *   HV, hv_set1(s)  the f32 vector type of the scale and its broadcast,
 *   HV_BYTES        the alignment the stores want,
 *   HALF_ISA        the kernel-name suffix (dp_fwd_bf16__HALF_ISA, ...). */
#if !defined(HV) || !defined(HV_BYTES) || !defined(HALF_ISA)
#error "define HV, hv_set1, HV_BYTES and HALF_ISA first"
#endif

#define DP_HALF_PASTE(a, b) a##__##b
#define DP_HALF_EXPAND(a, b) DP_HALF_PASTE(a, b)
#define DP_HALF_NAME(op) DP_HALF_EXPAND(op, HALF_ISA)

DP_X86_INLINE void fwd_run(void *out, const void *x, const void *f, float s, size_t n, int stream, int tx, int tf,
                           dp_fwd_fn part) {
  const HV vs = hv_set1(s);
  const size_t xs = dp_t_size(tx), fs = dp_t_size(tf);
  size_t i = 0;
  /* Peel to vector alignment of out (HV_BYTES): misaligned stores split cache lines. */
  if (n >= 4 * W) {
    i = dp_elem_head(out, xs, HV_BYTES);
    if (i) part(out, x, f, s, i, 0);
  }
  const int nt = stream && n >= DP_STREAM_MIN_ELEMS && dp_is_aligned((const char *)out + i * xs, HV_BYTES);
  if (nt)
    i = fwd_body(out, x, f, i, n, vs, tx, tf, 1);
  else
    i = fwd_body(out, x, f, i, n, vs, tx, tf, 0);
  if (i < n) part((char *)out + i * xs, (const char *)x + i * xs, (const char *)f + i * fs, s, n - i, 0);
}

void DP_HALF_NAME(dp_fwd_bf16)(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_BF16, DP_T_BF16, dp_fwd_bf16__scalar);
}

void DP_HALF_NAME(dp_fwd_f16)(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F16, DP_T_F16, dp_fwd_f16__scalar);
}

void DP_HALF_NAME(dp_fwd_f32bf16)(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F32, DP_T_BF16, dp_fwd_f32bf16__scalar);
}

void DP_HALF_NAME(dp_fwd_f32f16)(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  fwd_run(out, x, f, s, n, stream, DP_T_F32, DP_T_F16, dp_fwd_f32f16__scalar);
}
