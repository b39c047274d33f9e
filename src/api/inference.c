/* dp_inference_add: out = x + f, or x + keep*f (Huang et al.'s test-time rule). */
#include "api/residual.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/validate.h"

static DP_NOINLINE dp_status inference_add(const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                           const dp_tensor *x, const dp_tensor *f) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  dp_fwd_fn fwd;
  if ((st = dp_residual_check(shape, out, x, f, NULL, &fwd)) != DP_OK || shape->batch == 0 || shape->dim == 0)
    return st;
  /* Trained with 1/keep scaling: the expectation is already x + f.
   * Trained without (Huang et al.): scale the branch by keep at test time. */
  float keep, unused;
  dp_keep_and_scale(params, &keep, &unused);
  dp_job j;
  dp_job_init(&j, shape);
  j.fixed = 1;
  j.fixed_scale = params->scale_by_keep ? 1.0f : keep;
  dp_residual_run(&j, params, shape, out, x, f, fwd);
  return DP_OK;
}

/* The public entry: the work runs in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of it moves across the switch. */
dp_status dp_inference_add(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = inference_add(params, &shape, &out, &x, &f);
  dp_fpenv_leave(e);
  return st;
}
