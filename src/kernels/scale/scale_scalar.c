/*
 * Scalar reference for drop_path's kept rows: out = s*x, NaN canonical
 * (canon.h).  With bf16/f16 storage: in f32, rounded once (see half.h).  Only
 * the pure combos exist: drop_path has no branch operand, so a mixed combo
 * would be the f32 kernel.
 */
#include "kernels/common/canon.h"
#include "kernels/common/half.h"
#include "kernels/kernels.h"

void dp_scale_f32__scalar(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  (void)stream;
  for (size_t i = 0; i < n; i++) out[i] = dp_f32_canon(s * x[i]);
}

static inline void scale_run(void *out, const void *x, float s, size_t n, int t) {
  for (size_t i = 0; i < n; i++) dp_store_result(out, i, s * dp_load_elem(x, i, t), t);
}

#define DP_SCALE_SCALAR_(ctx, combo, id, xt, ft)                                                \
  void DP_KERNEL_NAME(scale, combo, scalar)(void *out, const void *x, float s, size_t n, int stream) { \
    (void)stream;                                                                               \
    scale_run(out, x, s, n, xt);                                                                \
  }
DP_COMBOS_PURE_HALF(DP_SCALE_SCALAR_, )
