/*
 * Scalar reference for the fused forward, out = x + (s*f): two roundings, NaN
 * canonical (canon.h).  With bf16/f16 storage (see half.h): widen, compute in
 * f32, round once to out's type.
 */
#include "kernels/common/canon.h"
#include "kernels/common/half.h"
#include "kernels/kernels.h"

void dp_fwd_f32__scalar(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  (void)stream; /* portable C has no non-temporal store */
  for (size_t i = 0; i < n; i++) {
    const float sf = s * f[i];
    out[i] = dp_f32_canon(x[i] + sf);
  }
}

/* Each element is read before it is written: out may be x or f. */
static inline void fwd_run(void *out, const void *x, const void *f, float s, size_t n, int tx, int tf) {
  for (size_t i = 0; i < n; i++) {
    const float sf = s * dp_load_elem(f, i, tf);
    dp_store_result(out, i, dp_load_elem(x, i, tx) + sf, tx);
  }
}

#define DP_FWD_SCALAR_(ctx, combo, id, xt, ft)                                                                \
  void DP_KERNEL_NAME(fwd, combo, scalar)(void *out, const void *x, const void *f, float s, size_t n, int stream) { \
    (void)stream;                                                                                             \
    fwd_run(out, x, f, s, n, xt, ft);                                                                         \
  }
DP_COMBOS_ALL_HALF(DP_FWD_SCALAR_, )
