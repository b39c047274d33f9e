/* dp_backward: grad_f[b] = m[b]*s*grad_out[b] and grad_x (+)= grad_out, one pass over grad_out. */
#include <stdlib.h>
#include <string.h>

#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/rowwalk.h"
#include "core/validate.h"

/* Roles: grad_f (may be exactly grad_out), grad_x (optional, overlaps
 * nothing), grad_out; the caller's scales are an input. */
static const dp_op_args backward_args = {
    .n_tensors = 3,
    .n_arrays = 1,
    .x_role = 2,
    .f_role = 0,
    .tensor = {{.dtype_class = DP_CLASS_F, .output = 1, .may_be = 1u << 2},
               {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1},
               {.dtype_class = DP_CLASS_X}},
    .array = {{.per_sample = 1, .elem_size = sizeof(float)}},
};

/* Kept rows: one bwd kernel call. Dropped rows: grad_x first (grad_f may be
 * grad_out itself and is zeroed after), through the X+X forward kernel when
 * it accumulates. */
static inline void backward_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  if (s != 0.0f) {
    j->kernel.bwd(p[0], p[1], p[2], s, n, j->mode | (j->stream ? DP_KBWD_STREAM : 0u));
    return;
  }
  if (p[1]) {
    if (j->mode & DP_KBWD_ACC_X) j->aux.fwd(p[1], p[1], p[2], 1.0f, n, 0);
    else memcpy(p[1], p[2], n * j->t[2].es);
  }
  if (!(j->mode & DP_KBWD_ACC_F)) memset(p[0], 0, n * j->t[0].es);
}

static void backward_range(const dp_job *j, size_t lo, size_t hi) { dp_walk_range(j, lo, hi, backward_row); }

static DP_NOINLINE dp_status backward(const dp_params *params, const dp_shape *shape, const dp_tensor *grad_f,
                                      const dp_tensor *grad_x, const dp_tensor *grad_out, const float *scales,
                                      uint32_t flags) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X)) return DP_ERR_BAD_FLAGS;
  float small[DP_SMALL_BATCH];
  const float *drawn = scales ? scales : dp_draw_small(params, shape->batch, small);
  const dp_tensor *const t[3] = {grad_f, grad_x, grad_out};
  const void *const a[1] = {scales};
  dp_combo combo;
  if ((st = dp_check_args(&backward_args, shape, t, a, &combo)) != DP_OK) return st;
  const dp_kernel_table *k = dp_current_kernels();
  const dp_fwd_fn acc_x = k->fwd[dp_combo_of(grad_out->dtype, grad_out->dtype)];
  if (!k->bwd[combo] || !acc_x) return DP_ERR_BAD_DTYPE;
  if (shape->batch == 0 || shape->dim == 0) return DP_OK;

  dp_job j;
  dp_job_init(&j, shape);
  float stack_scales[DP_STACK_SCALES], *heap;
  dp_job_draw(&j, params, drawn, NULL, stack_scales, &heap);
  dp_job_role(&j, 0, grad_f);
  if (grad_x->data) dp_job_role(&j, 1, grad_x);
  dp_job_role(&j, 2, grad_out);
  j.kernel.bwd = k->bwd[combo];
  j.aux.fwd = acc_x;
  j.mode = dp_kbwd_mode(flags);
  j.written = dp_sat_add(dp_job_bytes(&j, 0), dp_job_bytes(&j, 1));
  /* Reads grad_out (and grad_x when accumulating: counted as read and written), writes grad_f and grad_x. */
  size_t traffic = dp_sat_add(dp_job_bytes(&j, 0), dp_job_bytes(&j, 2));
  traffic = dp_sat_add(traffic, dp_sat_add(dp_job_bytes(&j, 1), dp_job_bytes(&j, 1)));
  if (!dp_walk_small(&j, params, traffic, backward_row)) dp_run_job(&j, params, traffic, backward_range);
  if (heap) free(heap);
  return DP_OK;
}

/* The public entry: the work runs in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of it moves across the switch. */
dp_status dp_backward(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                      dp_tensor grad_out, const float *scales, uint32_t flags) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = backward(params, &shape, &grad_f, &grad_x, &grad_out, scales, flags);
  dp_fpenv_leave(e);
  return st;
}
