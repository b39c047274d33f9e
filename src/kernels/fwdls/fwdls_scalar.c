/*
 * Scalar reference for the LayerScale join (see dp_fwdls_fn in kernels.h):
 * out = x + ((gamma*f)*s) over whole rows of d elements, gamma[i] for element
 * i of each row; three roundings in that order (timm's x + drop_path(f *
 * gamma)), NaN canonical (canon.h).  f32 only.
 */
#include "kernels/common/canon.h"
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
