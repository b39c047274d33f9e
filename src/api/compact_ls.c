/*
 * Sample compaction with LayerScale (x + drop_path(gamma * f) with the branch
 * run on the kept samples only):
 *   dp_compact_forward_ls   out = x, out[idx[i]] = x[idx[i]] + ((gamma*f_kept[i])*s)
 *   dp_compact_backward_ls  grad_f_kept[i] = (grad_out[idx[i]]*s)*gamma,
 *                           grad_x (+)= grad_out, grad_gamma (+)= the sum
 *                           over kept rows of (grad_out*s)*f_kept
 * The rows go through dp_forward_ls's and dp_backward_ls's kernels, and
 * grad_gamma through dp_backward_ls's walk of row groups (ls_backward.c)
 * over the whole batch's rows: the results are theirs bit for bit.
 */
#include "api/compact.h"
#include "api/ls_backward.h"
#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/validate.h"

/* ---------------------------------------------------------------- forward */

/* Without gamma the call is dp_compact_forward's, bit for bit. */
dp_status dp_compact_forward_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                                dp_tensor f_kept, const float *gamma, size_t kept_count, const size_t *kept_indices) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = dp_compact_join(params, &shape, &out, &x, &f_kept, gamma, kept_count, kept_indices);
  dp_fpenv_leave(e);
  return st;
}

/* ---------------------------------------------------------------- backward */

/* Roles: grad_f_kept (compact, may be exactly f_kept), grad_x (optional,
 * overlaps nothing), grad_out, f_kept (compact: optional unless grad_gamma
 * is asked for); the kept indices and gamma (D floats) are read, grad_gamma
 * (D floats) written. */
#define CLS_BWD_ARGS(f_optional)                                                                    \
  {                                                                                                 \
    .n_tensors = 4, .n_arrays = 3, .x_role = 2, .f_role = 0,                                        \
    .tensor = {{.dtype_class = DP_CLASS_F, .output = 1, .compact = 1, .may_be = 1u << 3},          \
               {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1},                             \
               {.dtype_class = DP_CLASS_X},                                                         \
               {.dtype_class = DP_CLASS_F, .compact = 1, .optional = (f_optional)}},                \
    .array = {{.per_kept = 1, .elem_size = sizeof(size_t)},                                         \
              {.per_channel = 1, .elem_size = sizeof(float)},                                       \
              {.output = 1, .per_channel = 1, .elem_size = sizeof(float)}},                         \
  }
static const dp_op_args cls_bwd_args_f = CLS_BWD_ARGS(0);    /* grad_gamma asked for: f_kept is read */
static const dp_op_args cls_bwd_args_no_f = CLS_BWD_ARGS(1); /* f_kept not read */

static DP_NOINLINE dp_status backward_ls(const dp_params *params, const dp_shape *shape, const dp_tensor *grad_f_kept,
                                         const dp_tensor *grad_x, const dp_tensor *grad_out, const dp_tensor *f_kept,
                                         const float *gamma, float *grad_gamma, size_t kept, const size_t *idx,
                                         uint32_t flags) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X | DP_BWD_ACCUMULATE_GRAD_GAMMA))
    return DP_ERR_BAD_FLAGS;
  const dp_tensor *const t[4] = {grad_f_kept, grad_x, grad_out, f_kept};
  const void *const a[3] = {idx, gamma, grad_gamma};
  dp_combo combo;
  st = grad_gamma ? dp_check_args_kept(&cls_bwd_args_f, shape, kept, t, a, &combo)
                  : dp_check_args_kept(&cls_bwd_args_no_f, shape, kept, t, a, &combo);
  if (st != DP_OK) return st;
  if ((st = dp_check_kept_indices(idx, kept, shape->batch)) != DP_OK) return st;
  const dp_kernel_table *k = dp_current_kernels();
  const dp_fwd_fn acc_x = k->fwd[dp_combo_of(grad_out->dtype, grad_out->dtype)];
  if (!k->bwdls[combo] || !acc_x) return DP_ERR_BAD_DTYPE;
  if (shape->dim == 0) return DP_OK;

  /* Every row of the batch, in dp_backward_ls's groups: the dropped ones
   * give grad_x only, and nothing to grad_gamma (f and grad_out not read). */
  dp_ls_bwd_job lj;
  dp_job *j = &lj.j;
  dp_ls_bwd_init(&lj, shape, gamma);
  lj.compact = 1;
  lj.idx = idx; /* NULL when kept is 0 */
  lj.kept = kept;
  lj.s = dp_kept_scale(params, shape->batch, kept);
  const size_t T = j->T, D = j->D;
  size_t traffic = 0;
  if (shape->batch != 0) {
    dp_job_role(j, 0, grad_f_kept);
    if (grad_x->data) dp_job_role(j, 1, grad_x);
    dp_job_role(j, 2, grad_out);
    if (grad_gamma) dp_ls_bwd_f(&lj, f_kept);
    j->kernel.bwdls = k->bwdls[combo];
    j->aux.fwd = acc_x;
    j->mode = dp_kbwd_mode(flags);
    const size_t gf = dp_samples_bytes(kept, T, D, j->t[0].es), gx = dp_job_bytes(j, 1);
    j->written = dp_sat_add(gf, gx);
    /* Reads the kept rows of grad_out and f (grad_x when accumulating: read
     * and written), writes grad_f_kept and grad_x. */
    const size_t kept_g = dp_samples_bytes(kept, T, D, j->t[2].es);
    traffic = dp_sat_add(dp_sat_add(gf, gf), dp_sat_add(gx, gx));
    traffic = dp_sat_add(traffic, grad_x->data ? dp_job_bytes(j, 2) : kept_g);
    if (grad_gamma) traffic = dp_sat_add(traffic, dp_samples_bytes(kept, T, D, lj.f.es));
  }
  return dp_ls_bwd_run(&lj, params, traffic, grad_gamma, (flags & DP_BWD_ACCUMULATE_GRAD_GAMMA) != 0);
}

/* Without gamma the call is dp_compact_backward's, bit for bit (f_kept is
 * not looked at; asking for grad_gamma then is DP_ERR_BAD_ARGUMENT). */
dp_status dp_compact_backward_ls(const dp_params *params, dp_shape shape, dp_tensor grad_f_kept, dp_tensor grad_x,
                                 dp_tensor grad_out, dp_tensor f_kept, const float *gamma, float *grad_gamma,
                                 size_t kept_count, const size_t *kept_indices, uint32_t flags) {
  if (!gamma) {
    const dp_status st = dp_check_params(params);
    if (st != DP_OK) return st;
    if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X | DP_BWD_ACCUMULATE_GRAD_GAMMA))
      return DP_ERR_BAD_FLAGS;
    if (grad_gamma) return DP_ERR_BAD_ARGUMENT;
    return dp_compact_backward(params, shape, grad_f_kept, grad_x, grad_out, kept_count, kept_indices,
                               flags & ~(uint32_t)DP_BWD_ACCUMULATE_GRAD_GAMMA);
  }
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = backward_ls(params, &shape, &grad_f_kept, &grad_x, &grad_out, &f_kept, gamma, grad_gamma,
                                   kept_count, kept_indices, flags);
  dp_fpenv_leave(e);
  return st;
}
