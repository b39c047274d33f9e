/* Scalar reference for drop_path's kept rows: out = s*x, NaN canonical (canon.h). */
#include "kernels/common/canon.h"
#include "kernels/kernels.h"

void dp_scale_f32__scalar(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  (void)stream;
  for (size_t i = 0; i < n; i++) out[i] = dp_f32_canon(s * x[i]);
}
