/*
 * Inference with stochastic-depth residual blocks: no randomness, one fused
 * pass. Weights trained with timm's scaling (scale_by_keep = 1) need
 * out = x + f; weights trained with the paper's rule (no scaling during
 * training, e.g. TF-addons StochasticDepth) need out = x + keep*f.
 */
#include <droppath/droppath.h>
#include <stdio.h>

int main(void) {
  enum { B = 2, D = 4 };
  float x[B * D], f[B * D], out[B * D];
  for (int i = 0; i < B * D; i++) {
    x[i] = (float)i;
    f[i] = 10.0f;
  }
  const dp_shape shape = {B, 1, D};
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.2;

  for (int rule = 0; rule < 2; rule++) {
    p.scale_by_keep = rule == 0;
    const dp_status st = dp_inference_add(&p, shape, dp_tensor_dense(out, DP_F32, shape),
                                          dp_tensor_dense(x, DP_F32, shape), dp_tensor_dense(f, DP_F32, shape));
    if (st != DP_OK) {
      fprintf(stderr, "dp_inference_add: %s\n", dp_status_string(st));
      return 1;
    }
    printf("%s: out[0..3] = %g %g %g %g\n", rule == 0 ? "scale_by_keep (timm):      x + f"
                                                      : "paper rule (Huang et al.): x + keep*f",
           out[0], out[1], out[2], out[3]);
    const float expect = rule == 0 ? 10.0f : 0.8f * 10.0f;
    if (out[1] != 1.0f + expect) return 1;
  }
  return 0;
}
