/* Minimal consumer of an installed libdroppath: one fused forward, checked. */
#include <droppath/droppath.h>
#include <stdio.h>

int main(void) {
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, f[8] = {1, 1, 1, 1, 1, 1, 1, 1}, out[8], scales[2];
  const dp_shape shape = {2, 1, 4};
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.5;
  p.seed = 7;
  const dp_status st = dp_forward(&p, shape, dp_tensor_dense(out, DP_F32, shape), dp_tensor_dense(x, DP_F32, shape),
                                  dp_tensor_dense(f, DP_F32, shape), scales);
  if (st != DP_OK || dp_version_number() != DP_VERSION_NUMBER) return 1;
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 4; i++)
      if (out[b * 4 + i] != x[b * 4 + i] + scales[b] * f[b * 4 + i]) return 1;
  printf("consumer ok: libdroppath %s (%s), scales %g %g\n", dp_version_string(), dp_isa_name(dp_active_isa()),
         scales[0], scales[1]);
  return 0;
}
