/* Scalar reference for the fused forward: out = x + (s*f), two roundings, NaN canonical (canon.h). */
#include "kernels/common/canon.h"
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
