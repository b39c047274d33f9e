/* dp_drop_path: out[b] = m[b]*s*x[b], timm's non-residual drop_path. */
#include <stdlib.h>
#include <string.h>

#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/rowwalk.h"
#include "core/validate.h"

/* Roles: out (may be exactly x), x; the scales array is an output. */
static const dp_op_args drop_path_args = {
    .n_tensors = 2,
    .n_arrays = 1,
    .x_role = 1,
    .f_role = 1,
    .tensor = {{.dtype_class = DP_CLASS_X, .output = 1, .may_be = 1u << 1}, {.dtype_class = DP_CLASS_X}},
    .array = {{.output = 1, .per_sample = 1, .elem_size = sizeof(float)}},
};

/* Kept rows are scaled; dropped rows are +0.0 in every dtype, x unread. */
static inline void drop_path_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  if (s != 0.0f) j->kernel.scale(p[0], p[1], s, n, j->stream);
  else memset(p[0], 0, n * j->t[0].es);
}

static void drop_path_range(const dp_job *j, size_t lo, size_t hi) { dp_walk_range(j, lo, hi, drop_path_row); }

static DP_NOINLINE dp_status drop_path(const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                       const dp_tensor *x, float *scales_out) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  float small[DP_SMALL_BATCH];
  const float *drawn = dp_draw_small(params, shape->batch, small);
  const dp_tensor *const t[2] = {out, x};
  const void *const a[1] = {scales_out};
  dp_combo combo;
  if ((st = dp_check_args(&drop_path_args, shape, t, a, &combo)) != DP_OK) return st;
  const dp_scale_fn scale = dp_current_kernels()->scale[combo];
  if (!scale) return DP_ERR_BAD_DTYPE;
  if (shape->batch == 0) return DP_OK;

  dp_job j;
  dp_job_init(&j, shape);
  float stack_scales[DP_STACK_SCALES], *heap;
  dp_job_draw(&j, params, drawn, scales_out, stack_scales, &heap);
  if (j.D != 0) {
    dp_job_role(&j, 0, out);
    dp_job_role(&j, 1, x);
    j.kernel.scale = scale;
    /* Streams in place too (out_is_x stays 0), as it always has: the in-place
     * rule was measured on the residual join. */
    j.written = dp_job_bytes(&j, 0);
    const size_t traffic = dp_sat_add(dp_job_bytes(&j, 0), dp_job_bytes(&j, 1));
    if (!dp_walk_small(&j, params, traffic, drop_path_row)) dp_run_job(&j, params, traffic, drop_path_range);
  }
  if (heap) free(heap);
  return DP_OK;
}

/* The public entry: the work runs in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of it moves across the switch. */
dp_status dp_drop_path(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, float *scales_out) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = drop_path(params, &shape, &out, &x, scales_out);
  dp_fpenv_leave(e);
  return st;
}
