/*
 * Scalar reference for the LayerScale join (see dp_fwdls_fn in kernels.h):
 * out = x + ((gamma*f)*s) over whole rows of d elements, gamma[i] for element
 * i of each row; three roundings in that order (timm's x + drop_path(f *
 * gamma)), NaN canonical (canon.h).  With bf16/f16 storage (see half.h):
 * widen, the same three f32 roundings, round once to out's type.
 */
#include "kernels/common/canon.h"
#include "kernels/common/half.h"
#include "kernels/kernels.h"

void dp_fwdls_f32__scalar(void *out_, const void *x_, const void *f_, const float *gamma, size_t d, float s, size_t n,
                          int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  const float *f = (const float *)f_;
  (void)stream; /* portable C has no non-temporal store */
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d)
    for (size_t i = 0; i < d; i++) {
      /* Read before written: out may be x or f. */
      const float gf = gamma[i] * f[r + i];
      const float t = gf * s;
      out[r + i] = dp_f32_canon(x[r + i] + t);
    }
}

/* Each element is read before it is written: out may be x or f. */
static inline void fwdls_run(void *out, const void *x, const void *f, const float *gamma, size_t d, float s, size_t n,
                             int tx, int tf) {
  if (d == 0) return;
  for (size_t r = 0; r < n; r += d)
    for (size_t i = 0; i < d; i++) {
      const float gf = gamma[i] * dp_load_elem(f, r + i, tf);
      const float t = gf * s;
      dp_store_result(out, r + i, dp_load_elem(x, r + i, tx) + t, tx);
    }
}

#define DP_FWDLS_SCALAR_(ctx, combo, id, xt, ft)                                                             \
  void DP_KERNEL_NAME(fwdls, combo, scalar)(void *out, const void *x, const void *f, const float *gamma, size_t d, \
                                            float s, size_t n, int stream) {                                 \
    (void)stream;                                                                                            \
    fwdls_run(out, x, f, gamma, d, s, n, xt, ft);                                                            \
  }
DP_COMBOS_ALL_HALF(DP_FWDLS_SCALAR_, )
