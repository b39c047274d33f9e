/*
 * A pre-norm transformer MLP block with stochastic depth, y = x + drop_path(MLP(LayerNorm(x))),
 * on a dense [B][T][D] f32 batch, forward and backward, two ways:
 *
 *   dense:      the branch on all B samples, then dp_forward; backward dp_backward, then the
 *               branch backward on all B samples (dropped ones carry zero gradient).
 *   compacted:  dp_compact_gather of the branch input, the branch on the k kept samples,
 *               dp_compact_forward; backward dp_compact_backward, the branch backward on the k
 *               samples, dp_compact_scatter_add of its input gradient into grad_x.
 *
 * Both give y and grad_x bit for bit alike when the branch is row-wise deterministic (block.h).
 * A step holds all its buffers: nothing is allocated per call.
 */
#ifndef MLP_BLOCK_STEP_H
#define MLP_BLOCK_STEP_H

#include <droppath/droppath.h>

#include "block.h"

typedef struct block_step {
  dp_shape shape;                /* B, T, D */
  const mlp_weights *w;          /* the branch's parameters (not owned) */
  mlp_weights grad;              /* their gradients, written by each backward */
  mlp_cache cache;               /* activations, room for B*T rows */
  float *f, *grad_f;             /* branch output and its gradient: B samples, or the first k */
  float *x_kept, *grad_in_kept;  /* compacted: the gathered input and its gradient */
  float *scales;                 /* dense: dp_forward's per-sample scales, reused by dp_backward */
  size_t *kept_idx, kept;        /* compacted: the kept samples of the last forward */
  int threads;                   /* OpenMP threads of the branch's loops and of libdroppath */
} block_step;

/* Buffers for shape and weights w; threads as block.h (OpenBLAS's own count is separate). 0 on success. */
int block_step_init(block_step *s, dp_shape shape, const mlp_weights *w, int threads);
void block_step_free(block_step *s);

/* Forward: y = x + drop_path(branch(x)), the mask from params (num_threads is set from s). */
dp_status block_forward_dense(block_step *s, const dp_params *params, const float *x, float *y);
dp_status block_forward_compact(block_step *s, const dp_params *params, const float *x, float *y);
/* Backward of the same step's last forward: grad_x = dL/dx and s->grad from grad_y = dL/dy. */
dp_status block_backward_dense(block_step *s, const dp_params *params, const float *grad_y, float *grad_x);
dp_status block_backward_compact(block_step *s, const dp_params *params, const float *grad_y, float *grad_x);

/* One training step (forward then backward), dense or compacted. */
dp_status block_train_step(block_step *s, int compacted, const dp_params *params, const float *x, float *y,
                           const float *grad_y, float *grad_x);

#endif
