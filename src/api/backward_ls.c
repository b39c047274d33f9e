/* dp_backward_ls: the backward of dp_forward_ls in one pass over grad_out:
 * grad_f[b] = ((grad_out*s)*gamma), grad_x (+)= grad_out, and grad_gamma
 * (+)= the sum over kept rows of ((grad_out*s)*f), in a fixed order (the walk
 * of row groups is ls_backward.c's). */
#include <stdlib.h>

#include "api/ls_backward.h"
#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/rowwalk.h"
#include "core/validate.h"

/* Roles: grad_f (may be exactly grad_out or f), grad_x (optional, overlaps
 * nothing), grad_out, f (the forward's branch input: optional unless
 * grad_gamma is asked for); gamma (D floats, read), grad_gamma (D floats,
 * written), the caller's scales (read). */
#define LS_BWD_ARGS(f_optional)                                                                     \
  {                                                                                                 \
    .n_tensors = 4, .n_arrays = 3, .x_role = 2, .f_role = 0,                                        \
    .tensor = {{.dtype_class = DP_CLASS_F, .output = 1, .may_be = 1u << 2 | 1u << 3},              \
               {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1},                             \
               {.dtype_class = DP_CLASS_X},                                                         \
               {.dtype_class = DP_CLASS_F, .optional = (f_optional)}},                              \
    .array = {{.per_channel = 1, .elem_size = sizeof(float)},                                       \
              {.output = 1, .per_channel = 1, .elem_size = sizeof(float)},                          \
              {.per_sample = 1, .elem_size = sizeof(float)}},                                       \
  }
static const dp_op_args ls_bwd_args_f = LS_BWD_ARGS(0);     /* grad_gamma asked for: f is read */
static const dp_op_args ls_bwd_args_no_f = LS_BWD_ARGS(1);  /* f not read */

static DP_NOINLINE dp_status backward_ls(const dp_params *params, const dp_shape *shape, const dp_tensor *grad_f,
                                         const dp_tensor *grad_x, const dp_tensor *grad_out, const dp_tensor *f,
                                         const float *gamma, float *grad_gamma, const float *scales,
                                         uint32_t flags) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X | DP_BWD_ACCUMULATE_GRAD_GAMMA))
    return DP_ERR_BAD_FLAGS;
  float small[DP_SMALL_BATCH];
  const float *drawn = scales ? scales : dp_draw_small(params, shape->batch, small);
  const dp_tensor *const t[4] = {grad_f, grad_x, grad_out, f};
  const void *const a[3] = {gamma, grad_gamma, scales};
  dp_combo combo;
  /* Each table a constant where the checker is inlined, so its loops unroll. */
  st = grad_gamma ? dp_check_args(&ls_bwd_args_f, shape, t, a, &combo)
                  : dp_check_args(&ls_bwd_args_no_f, shape, t, a, &combo);
  if (st != DP_OK) return st;
  const dp_kernel_table *k = dp_current_kernels();
  const dp_fwd_fn acc_x = k->fwd[dp_combo_of(grad_out->dtype, grad_out->dtype)];
  if (!k->bwdls[combo] || !acc_x) return DP_ERR_BAD_DTYPE;
  if (shape->dim == 0) return DP_OK;

  dp_ls_bwd_job lj;
  dp_job *j = &lj.j;
  dp_ls_bwd_init(&lj, shape, gamma);
  float stack_scales[DP_STACK_SCALES], *heap = NULL;
  if (shape->batch != 0) {
    dp_job_draw(j, params, drawn, NULL, stack_scales, &heap);
    dp_job_role(j, 0, grad_f);
    if (grad_x->data) dp_job_role(j, 1, grad_x);
    dp_job_role(j, 2, grad_out);
    if (grad_gamma) dp_ls_bwd_f(&lj, f);
    j->kernel.bwdls = k->bwdls[combo];
    j->aux.fwd = acc_x;
    j->mode = dp_kbwd_mode(flags);
    j->written = dp_sat_add(dp_job_bytes(j, 0), dp_job_bytes(j, 1));
  }
  /* Reads grad_out and f (grad_x when accumulating: read and written), writes grad_f and grad_x. */
  size_t traffic = dp_sat_add(dp_job_bytes(j, 0), dp_job_bytes(j, 2));
  traffic = dp_sat_add(traffic, dp_sat_add(dp_job_bytes(j, 1), dp_job_bytes(j, 1)));
  if (grad_gamma) traffic = dp_sat_add(traffic, dp_job_bytes(j, 0));
  st = dp_ls_bwd_run(&lj, params, traffic, grad_gamma, (flags & DP_BWD_ACCUMULATE_GRAD_GAMMA) != 0);
  if (heap) free(heap);
  return st;
}

/* Without gamma the call is dp_backward's, bit for bit (f is not looked at;
 * asking for grad_gamma then is DP_ERR_BAD_ARGUMENT). Otherwise the work runs
 * in the library's floating-point state (core/fpenv.h). */
dp_status dp_backward_ls(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                         dp_tensor grad_out, dp_tensor f, const float *gamma, float *grad_gamma, const float *scales,
                         uint32_t flags) {
  if (!gamma) {
    const dp_status st = dp_check_params(params);
    if (st != DP_OK) return st;
    if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X | DP_BWD_ACCUMULATE_GRAD_GAMMA))
      return DP_ERR_BAD_FLAGS;
    if (grad_gamma) return DP_ERR_BAD_ARGUMENT;
    return dp_backward(params, shape, grad_f, grad_x, grad_out, scales, flags & ~(uint32_t)DP_BWD_ACCUMULATE_GRAD_GAMMA);
  }
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = backward_ls(params, &shape, &grad_f, &grad_x, &grad_out, &f, gamma, grad_gamma, scales, flags);
  dp_fpenv_leave(e);
  return st;
}
