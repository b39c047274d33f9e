/*
 * The residual join out = x + s*f that dp_forward (forward.c) and
 * dp_inference_add (inference.c) share: its arguments, row function and
 * walk. A header of inline definitions, so each entry point inlines the
 * whole path as a tiny call needs (one out-of-line call costs ~1% there).
 */
#ifndef DP_API_RESIDUAL_H
#define DP_API_RESIDUAL_H

#include <string.h>

#include "core/dispatch.h"
#include "core/rowwalk.h"
#include "core/validate.h"
#include "droppath/droppath.h"

/* Roles: out (may be exactly x or f), x, f; the scales array is an output. */
static const dp_op_args residual_args = {
    .n_tensors = 3,
    .n_arrays = 1,
    .x_role = 1,
    .f_role = 2,
    .tensor = {{.dtype_class = DP_CLASS_X, .output = 1, .may_be = 1u << 1 | 1u << 2},
               {.dtype_class = DP_CLASS_X},
               {.dtype_class = DP_CLASS_F}},
    .array = {{.output = 1, .per_sample = 1, .elem_size = sizeof(float)}},
};

/* Checks out, x, f (and scales_out, may be NULL) against the shape; yields
 * the forward kernel for their dtypes. params are checked already. */
static inline dp_status dp_residual_check(const dp_shape *shape, const dp_tensor *out, const dp_tensor *x, const dp_tensor *f,
                            const float *scales_out, dp_fwd_fn *fwd) {
  const dp_tensor *const t[3] = {out, x, f};
  const void *const a[1] = {scales_out};
  dp_combo combo;
  dp_status st = dp_check_args(&residual_args, shape, t, a, &combo);
  if (st != DP_OK) return st;
  *fwd = dp_current_kernels()->fwd[combo];
  return *fwd ? DP_OK : DP_ERR_BAD_DTYPE;
}

/* A run of kept rows is one kernel call; dropped rows copy x (f is never read). */
static inline void residual_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  if (s != 0.0f) j->kernel.fwd(p[0], p[1], p[2], s, n, j->stream);
  else if (!j->out_is_x) memcpy(p[0], p[1], n * j->t[1].es);
}

static void residual_range(const dp_job *j, size_t lo, size_t hi) { dp_walk_range(j, lo, hi, residual_row); }

/* out = x + s*f over every row of a validated call with D > 0; j holds the
 * scales (per sample, or fixed). */
static inline void dp_residual_run(dp_job *j, const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                   const dp_tensor *x, const dp_tensor *f, dp_fwd_fn fwd) {
  dp_job_role(j, 0, out);
  dp_job_role(j, 1, x);
  dp_job_role(j, 2, f);
  j->kernel.fwd = fwd;
  j->out_is_x = dp_tensors_identical(out, x, shape);
  const size_t out_bytes = dp_job_bytes(j, 0);
  j->written = out_bytes;
  /* Reads x and f, writes out (x and out have one dtype). */
  const size_t traffic = dp_sat_add(dp_sat_add(out_bytes, out_bytes), dp_job_bytes(j, 2));
  if (!dp_walk_small(j, params, traffic, residual_row)) dp_run_job(j, params, traffic, residual_range);
}

#endif /* DP_API_RESIDUAL_H */
