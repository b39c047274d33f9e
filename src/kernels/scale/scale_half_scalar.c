/*
 * Scalar reference for drop_path's kept rows with bf16/f16 storage: out = s*x
 * in f32, rounded once (see half.h).  Only the pure combos exist: drop_path
 * has no branch operand, so a mixed combo would be the f32 kernel.
 */
#include "kernels/common/half.h"
#include "kernels/kernels.h"

static inline void scale_run(void *out, const void *x, float s, size_t n, int t) {
  for (size_t i = 0; i < n; i++) dp_store_result(out, i, s * dp_load_elem(x, i, t), t);
}

void dp_scale_bf16__scalar(void *out, const void *x, float s, size_t n, int stream) {
  (void)stream;
  scale_run(out, x, s, n, DP_T_BF16);
}

void dp_scale_f16__scalar(void *out, const void *x, float s, size_t n, int stream) {
  (void)stream;
  scale_run(out, x, s, n, DP_T_F16);
}
