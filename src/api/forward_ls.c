/* dp_forward_ls: out[b] = x[b] + m[b]*s*(gamma ⊙ f[b]), the fused training
 * forward of a LayerScale'd branch, computed as x + ((gamma*f)*s). */
#include <stdlib.h>

#include "api/layerscale.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/validate.h"

static DP_NOINLINE dp_status forward_ls(const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                        const dp_tensor *x, const dp_tensor *f, const float *gamma,
                                        float *scales_out) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  float small[DP_SMALL_BATCH];
  const float *drawn = dp_draw_small(params, shape->batch, small);
  dp_fwdls_fn fn;
  if ((st = dp_ls_join_check(shape, out, x, f, gamma, scales_out, &fn)) != DP_OK || shape->batch == 0) return st;

  dp_job j;
  dp_job_init(&j, shape);
  float stack_scales[DP_STACK_SCALES], *heap;
  dp_job_draw(&j, params, drawn, scales_out, stack_scales, &heap);
  if (shape->dim != 0) dp_ls_join_run(&j, params, shape, out, x, f, gamma, fn);
  if (heap) free(heap);
  return DP_OK;
}

/* Without gamma the call is dp_forward's, bit for bit. Otherwise the work
 * runs in the library's floating-point state (core/fpenv.h), behind a call
 * so that none of it moves across the switch. */
dp_status dp_forward_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                        const float *gamma, float *scales_out) {
  if (!gamma) return dp_forward(params, shape, out, x, f, scales_out);
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = forward_ls(params, &shape, &out, &x, &f, gamma, scales_out);
  dp_fpenv_leave(e);
  return st;
}
