/* dp_inference_add_ls: out = x + gamma ⊙ f, or x + (gamma ⊙ f)*keep (Huang
 * et al.'s test-time rule), computed as x + ((gamma*f)*s) with s = 1 or keep. */
#include "api/layerscale.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/validate.h"

static DP_NOINLINE dp_status inference_add_ls(const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                              const dp_tensor *x, const dp_tensor *f, const float *gamma) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  dp_fwdls_fn fn;
  if ((st = dp_ls_join_check(shape, out, x, f, gamma, NULL, &fn)) != DP_OK || shape->batch == 0 || shape->dim == 0)
    return st;
  float keep, unused;
  dp_keep_and_scale(params, &keep, &unused);
  dp_job j;
  dp_job_init(&j, shape);
  j.fixed = 1;
  /* (gamma*f)*1 is gamma*f exactly: the first rule needs no kernel of its own. */
  j.fixed_scale = params->scale_by_keep ? 1.0f : keep;
  dp_ls_join_run(&j, params, shape, out, x, f, gamma, fn);
  return DP_OK;
}

/* Without gamma the call is dp_inference_add's, bit for bit. Otherwise the
 * work runs in the library's floating-point state (core/fpenv.h). */
dp_status dp_inference_add_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                              const float *gamma) {
  if (!gamma) return dp_inference_add(params, shape, out, x, f);
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = inference_add_ls(params, &shape, &out, &x, &f, gamma);
  dp_fpenv_leave(e);
  return st;
}
