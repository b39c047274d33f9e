/* The backward of a kept row with bf16/f16 storage, for the x86 ISAs whose heads and
 * tails go through the scalar kernels (SSE2, AVX2): the mode dispatch, the alignment peel
 * and the entry points. Included at the end of bwd_half_<isa>.c, after its
 * vector body, with
 *   HV, hv_set1(s)  the f32 vector type of the scale and its broadcast,
 *   HV_BYTES        the alignment the stores want,
 *   HALF_ISA        the kernel-name suffix (dp_bwd_bf16__HALF_ISA, ...). */
#if !defined(HV) || !defined(HV_BYTES) || !defined(HALF_ISA)
#error "define HV, hv_set1, HV_BYTES and HALF_ISA first"
#endif

#define DP_HALF_PASTE(a, b) a##__##b
#define DP_HALF_EXPAND(a, b) DP_HALF_PASTE(a, b)
#define DP_HALF_NAME(op) DP_HALF_EXPAND(op, HALF_ISA)

/* One loop per (fk, xk) pair, so the hot loop carries no mode branches. */
DP_X86_INLINE size_t bwd_body_f(void *gf, void *gx, const void *g, size_t i, size_t n, HV vs, int tx, int tf, int fk,
                                int xk) {
  switch (xk) {
    case K_SET: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_SET);
    case K_NT: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_NT);
    case K_ACC: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_ACC);
    default: return bwd_body_fx(gf, gx, g, i, n, vs, tx, tf, fk, K_NONE);
  }
}

DP_X86_INLINE size_t bwd_body(void *gf, void *gx, const void *g, size_t i, size_t n, HV vs, int tx, int tf, int fk,
                              int xk) {
  switch (fk) {
    case K_SET: return bwd_body_f(gf, gx, g, i, n, vs, tx, tf, K_SET, xk);
    case K_NT: return bwd_body_f(gf, gx, g, i, n, vs, tx, tf, K_NT, xk);
    default: return bwd_body_f(gf, gx, g, i, n, vs, tx, tf, K_ACC, xk);
  }
}

/* Elements [i, i+k) through the scalar kernel; gx only offset when present. */
DP_X86_INLINE void bwd_part(void *gf, void *gx, const void *g, size_t i, size_t k, float s, unsigned mode, int tx, int tf,
                            dp_bwd_fn part) {
  part((char *)gf + i * dp_t_size(tf), gx ? (char *)gx + i * dp_t_size(tx) : NULL, (const char *)g + i * dp_t_size(tx), s,
       k, mode);
}

DP_X86_INLINE void bwd_run(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode, int tx, int tf,
                           dp_bwd_fn part) {
  const HV vs = hv_set1(s);
  int fk = (mode & DP_KBWD_ACC_F) ? K_ACC : K_SET;
  int xk = !gx ? K_NONE : (mode & DP_KBWD_ACC_X) ? K_ACC : K_SET;
  const int want_nt = (mode & DP_KBWD_STREAM) && n >= DP_STREAM_MIN_ELEMS;
  const size_t xs = dp_t_size(tx), fs = dp_t_size(tf);
  size_t i = 0;
  /* Align the output that will stream, else gf: misaligned stores split
   * cache lines. */
  if (n >= 4 * W) {
    i = want_nt && fk != K_SET && xk == K_SET ? dp_elem_head(gx, xs, HV_BYTES) : dp_elem_head(gf, fs, HV_BYTES);
    if (i) bwd_part(gf, gx, g, 0, i, s, mode, tx, tf, part);
  }
  if (want_nt && fk == K_SET && dp_is_aligned((char *)gf + i * fs, HV_BYTES)) fk = K_NT;
  if (want_nt && xk == K_SET && dp_is_aligned((char *)gx + i * xs, HV_BYTES)) xk = K_NT;
  i = bwd_body(gf, gx, g, i, n, vs, tx, tf, fk, xk);
  if (i < n) bwd_part(gf, gx, g, i, n - i, s, mode, tx, tf, part);
}

void DP_HALF_NAME(dp_bwd_bf16)(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_BF16, DP_T_BF16, dp_bwd_bf16__scalar);
}

void DP_HALF_NAME(dp_bwd_f16)(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F16, DP_T_F16, dp_bwd_f16__scalar);
}

void DP_HALF_NAME(dp_bwd_f32bf16)(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F32, DP_T_BF16, dp_bwd_f32bf16__scalar);
}

void DP_HALF_NAME(dp_bwd_f32f16)(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode) {
  bwd_run(gf, gx, g, s, n, mode, DP_T_F32, DP_T_F16, dp_bwd_f32f16__scalar);
}
