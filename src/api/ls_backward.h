/*
 * The walk of LayerScale's backward (dp_backward_ls, backward_ls.c, and
 * dp_compact_backward_ls, compact_ls.c): grad_f, grad_x and the per-channel
 * grad_gamma in one pass over grad_out, the rows r = b*T + t of the whole
 * batch in groups fixed by the shape (droppath.h gives the order), each
 * group's kept rows summed in row order into partials that are then added in
 * group order. With compaction grad_f and f hold the kept samples only: the
 * same rows, groups and sums, so grad_gamma has the same bits.
 */
#ifndef DP_API_LS_BACKWARD_H
#define DP_API_LS_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "api/param_groups.h"
#include "core/rowwalk.h"
#include "droppath/droppath.h"

/* The job plus what the walk of groups needs beyond three roles. */
typedef struct dp_ls_bwd_job {
  dp_job j;          /* first: the range function is handed &j. Roles: grad_f, grad_x (optional), grad_out */
  dp_rowptr f;       /* absent (p NULL) when grad_gamma is not asked for */
  const float *gamma;
  float *partials;   /* set by dp_ls_bwd_run */
  dp_param_groups groups; /* grad_gamma's fixed reduction order (param_groups.h) */
  /* Compaction: when compact, grad_f and f are compact, sample i of them
   * being sample idx[i] (ascending, `kept` of them) of scale s; every
   * other sample is dropped, and j's scales are not read. idx may be NULL
   * when kept is 0, so the flag, not idx, says whether the job is compact. */
  int compact;
  const size_t *idx;
  size_t kept;
  float s;
} dp_ls_bwd_job;

/* A job over shape with no roles yet, no compaction; its groups set. */
void dp_ls_bwd_init(dp_ls_bwd_job *lj, const dp_shape *shape, const float *gamma);

/* The branch input f (validated; NULL data: absent) as the job's f. */
void dp_ls_bwd_f(dp_ls_bwd_job *lj, const dp_tensor *f);

/*
 * Runs a job whose roles, kernels (kernel.bwdls, aux.fwd: the X+X forward
 * kernel grad_x accumulates with), mode and scales are set: its groups on
 * the planned threads, then grad_gamma (+)= the partials in group order when
 * grad_gamma is not NULL. DP_ERR_NO_MEMORY (the partials) before anything
 * is written. traffic_bytes sizes the thread plan.
 */
dp_status dp_ls_bwd_run(dp_ls_bwd_job *lj, const dp_params *params, size_t traffic_bytes, float *grad_gamma,
                        int accumulate_gamma);

#endif /* DP_API_LS_BACKWARD_H */
