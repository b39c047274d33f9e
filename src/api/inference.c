/* dp_inference_add: out = x + f, or x + keep*f (Huang et al.'s test-time rule). */
#include "api/residual.h"
#include "core/maskgen.h"
#include "core/validate.h"

dp_status dp_inference_add(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  dp_fwd_fn fwd;
  if ((st = dp_residual_check(&shape, &out, &x, &f, NULL, &fwd)) != DP_OK || shape.batch == 0 || shape.dim == 0)
    return st;
  /* Trained with 1/keep scaling: the expectation is already x + f.
   * Trained without (Huang et al.): scale the branch by keep at test time. */
  float keep, unused;
  dp_keep_and_scale(params, &keep, &unused);
  dp_job j;
  dp_job_init(&j, &shape);
  j.fixed = 1;
  j.fixed_scale = params->scale_by_keep ? 1.0f : keep;
  dp_residual_run(&j, params, &shape, &out, &x, &f, fwd);
  return DP_OK;
}
