/*
 * The LayerScale join out = x + ((gamma*f)*s) that dp_forward_ls
 * (forward_ls.c) and dp_inference_add_ls (inference_ls.c) share: its
 * arguments, row function and walk, as residual.h is for the plain join.
 * gamma indexes channels, so the job has a period of D (rowwalk.h): rows
 * still join into one kernel call (ConvNeXt's 96-channel rows would
 * otherwise cost a call each), every call starting at channel 0.
 */
#ifndef DP_API_LAYERSCALE_H
#define DP_API_LAYERSCALE_H

#include <string.h>

#include "core/dispatch.h"
#include "core/rowwalk.h"
#include "core/validate.h"
#include "droppath/droppath.h"

/* Roles: out (may be exactly x or f), x, f; gamma (D floats, read), the
 * scales (B floats, written). */
static const dp_op_args ls_join_args = {
    .n_tensors = 3,
    .n_arrays = 2,
    .x_role = 1,
    .f_role = 2,
    .tensor = {{.dtype_class = DP_CLASS_X, .output = 1, .may_be = 1u << 1 | 1u << 2},
               {.dtype_class = DP_CLASS_X},
               {.dtype_class = DP_CLASS_F}},
    .array = {{.per_channel = 1, .elem_size = sizeof(float)},
              {.output = 1, .per_sample = 1, .elem_size = sizeof(float)}},
};

/* Checks out, x, f, gamma (not NULL here) and scales_out (may be NULL)
 * against the shape; yields the kernel for their dtypes. params are checked
 * already. */
static inline dp_status dp_ls_join_check(const dp_shape *shape, const dp_tensor *out, const dp_tensor *x,
                                         const dp_tensor *f, const float *gamma, const float *scales_out,
                                         dp_fwdls_fn *fn) {
  const dp_tensor *const t[3] = {out, x, f};
  const void *const a[2] = {gamma, scales_out};
  dp_combo combo;
  dp_status st = dp_check_args(&ls_join_args, shape, t, a, &combo);
  if (st != DP_OK) return st;
  *fn = dp_current_kernels()->fwdls[combo];
  return *fn ? DP_OK : DP_ERR_BAD_DTYPE;
}

/* A run of kept rows is one kernel call; dropped rows copy x (f is never read). */
static inline void ls_join_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  if (s != 0.0f) j->kernel.fwdls(p[0], p[1], p[2], j->chan, j->period, s, n, j->stream);
  else if (!j->out_is_x) memcpy(p[0], p[1], n * j->t[1].es);
}

static void ls_join_range(const dp_job *j, size_t lo, size_t hi) { dp_walk_range(j, lo, hi, ls_join_row); }

/* out = x + ((gamma*f)*s) over every row of a validated call with D > 0; j
 * holds the scales (per sample, or fixed). */
static inline void dp_ls_join_run(dp_job *j, const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                  const dp_tensor *x, const dp_tensor *f, const float *gamma, dp_fwdls_fn fn) {
  dp_job_role(j, 0, out);
  dp_job_role(j, 1, x);
  dp_job_role(j, 2, f);
  j->kernel.fwdls = fn;
  j->period = shape->dim;
  j->chan = gamma;
  j->out_is_x = dp_tensors_identical(out, x, shape);
  const size_t out_bytes = dp_job_bytes(j, 0);
  j->written = out_bytes;
  /* Reads x and f, writes out (gamma stays in cache). */
  const size_t traffic = dp_sat_add(dp_sat_add(out_bytes, out_bytes), dp_job_bytes(j, 2));
  if (!dp_walk_small(j, params, traffic, ls_join_row)) dp_run_job(j, params, traffic, ls_join_range);
}

#endif /* DP_API_LAYERSCALE_H */
