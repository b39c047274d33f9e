/*
 * Scalar reference for the fused forward with bf16/f16 storage (see half.h):
 * widen, out = x + (s*f) in f32 with two roundings, round once to out's type.
 */
#include "kernels/common/half.h"
#include "kernels/kernels.h"

/* Each element is read before it is written: out may be x or f. */
static inline void fwd_run(void *out, const void *x, const void *f, float s, size_t n, int tx, int tf) {
  for (size_t i = 0; i < n; i++) {
    const float sf = s * dp_load_elem(f, i, tf);
    dp_store_result(out, i, dp_load_elem(x, i, tx) + sf, tx);
  }
}

void dp_fwd_bf16__scalar(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_BF16, DP_T_BF16);
}

void dp_fwd_f16__scalar(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_F16, DP_T_F16);
}

void dp_fwd_f32bf16__scalar(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_F32, DP_T_BF16);
}

void dp_fwd_f32f16__scalar(void *out, const void *x, const void *f, float s, size_t n, int stream) {
  (void)stream;
  fwd_run(out, x, f, s, n, DP_T_F32, DP_T_F16);
}
