/* What dp_forward and dp_inference_add share: their arguments and the walk
 * out = x + s*f over every row (residual.c). */
#ifndef DP_API_RESIDUAL_H
#define DP_API_RESIDUAL_H

#include "core/rowwalk.h"
#include "droppath/droppath.h"

/* Checks out, x, f (and scales_out, may be NULL) against the shape; yields
 * the forward kernel for their dtypes. params are checked already. */
dp_status dp_residual_check(const dp_shape *shape, const dp_tensor *out, const dp_tensor *x, const dp_tensor *f,
                            const float *scales_out, dp_fwd_fn *fwd);

/* out = x + s*f over every row of a validated call with D > 0; j holds the
 * shape and the scales (per sample, or fixed). */
void dp_residual_run(dp_job *j, const dp_params *params, const dp_tensor *out, const dp_tensor *x,
                     const dp_tensor *f, dp_fwd_fn fwd);

#endif /* DP_API_RESIDUAL_H */
