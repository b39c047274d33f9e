/* dp_forward: out[b] = x[b] + m[b]*s*f[b], the fused training forward. */
#include <stdlib.h>

#include "api/residual.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/validate.h"

static DP_NOINLINE dp_status forward(const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                     const dp_tensor *x, const dp_tensor *f, float *scales_out) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  float small[DP_SMALL_BATCH];
  const float *drawn = dp_draw_small(params, shape->batch, small);
  dp_fwd_fn fwd;
  if ((st = dp_residual_check(shape, out, x, f, scales_out, &fwd)) != DP_OK || shape->batch == 0) return st;

  dp_job j;
  dp_job_init(&j, shape);
  float stack_scales[DP_STACK_SCALES], *heap;
  dp_job_draw(&j, params, drawn, scales_out, stack_scales, &heap);
  if (shape->dim != 0) dp_residual_run(&j, params, shape, out, x, f, fwd);
  if (heap) free(heap); /* most calls never allocate: skip the call */
  return DP_OK;
}

/* The public entry: the work runs in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of it moves across the switch. */
dp_status dp_forward(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                     float *scales_out) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = forward(params, &shape, &out, &x, &f, scales_out);
  dp_fpenv_leave(e);
  return st;
}
