/* The block's dense and compacted paths over libdroppath (step.h). */
#include "step.h"

#include <stdlib.h>
#include <string.h>

static size_t rows_of(const block_step *s, size_t samples) { return samples * s->shape.seq; }

int block_step_init(block_step *s, dp_shape shape, const mlp_weights *w, int threads) {
  memset(s, 0, sizeof *s);
  if (shape.seq == 0) shape.seq = 1;
  s->shape = shape;
  s->w = w;
  s->threads = threads;
  const size_t rows = shape.batch * shape.seq, n = rows * shape.dim;
  const int ok = mlp_weights_alloc(&s->grad, shape.dim) == 0 && mlp_cache_alloc(&s->cache, rows, shape.dim) == 0;
  s->f = mlp_alloc_floats(n);
  s->grad_f = mlp_alloc_floats(n);
  s->x_kept = mlp_alloc_floats(n);
  s->grad_in_kept = mlp_alloc_floats(n);
  s->scales = mlp_alloc_floats(shape.batch);
  s->kept_idx = calloc(shape.batch ? shape.batch : 1, sizeof *s->kept_idx);
  if (ok && s->f && s->grad_f && s->x_kept && s->grad_in_kept && s->scales && s->kept_idx) return 0;
  block_step_free(s);
  return -1;
}

void block_step_free(block_step *s) {
  mlp_weights_free(&s->grad);
  mlp_cache_free(&s->cache);
  free(s->f);
  free(s->grad_f);
  free(s->x_kept);
  free(s->grad_in_kept);
  free(s->scales);
  free(s->kept_idx);
  memset(s, 0, sizeof *s);
}

static dp_params with_threads(const block_step *s, const dp_params *params) {
  dp_params p = *params;
  p.num_threads = s->threads;
  return p;
}

static dp_tensor view(const block_step *s, const float *data) {
  return dp_tensor_dense((void *)(uintptr_t)data, DP_F32, s->shape);
}

dp_status block_forward_dense(block_step *s, const dp_params *params, const float *x, float *y) {
  const dp_params p = with_threads(s, params);
  mlp_forward(s->w, &s->cache, rows_of(s, s->shape.batch), x, s->f, s->threads);
  return dp_forward(&p, s->shape, view(s, y), view(s, x), view(s, s->f), s->scales);
}

dp_status block_backward_dense(block_step *s, const dp_params *params, const float *grad_y, float *grad_x) {
  const dp_params p = with_threads(s, params);
  /* grad_f = m*s*grad_y and grad_x = grad_y in one pass; the branch then adds its input gradient. */
  const dp_status st = dp_backward(&p, s->shape, view(s, s->grad_f), view(s, grad_x), view(s, grad_y), s->scales, 0);
  if (st != DP_OK) return st;
  mlp_backward(s->w, &s->cache, rows_of(s, s->shape.batch), s->grad_f, grad_x, 1, &s->grad, s->threads);
  return DP_OK;
}

dp_status block_forward_compact(block_step *s, const dp_params *params, const float *x, float *y) {
  const dp_params p = with_threads(s, params);
  dp_status st = dp_compact_gather(&p, s->shape, view(s, s->x_kept), view(s, x), &s->kept, s->kept_idx);
  if (st != DP_OK) return st;
  mlp_forward(s->w, &s->cache, rows_of(s, s->kept), s->x_kept, s->f, s->threads);
  return dp_compact_forward(&p, s->shape, view(s, y), view(s, x), view(s, s->f), s->kept, s->kept_idx);
}

dp_status block_backward_compact(block_step *s, const dp_params *params, const float *grad_y, float *grad_x) {
  const dp_params p = with_threads(s, params);
  dp_status st = dp_compact_backward(&p, s->shape, view(s, s->grad_f), view(s, grad_x), view(s, grad_y), s->kept,
                                     s->kept_idx, 0);
  if (st != DP_OK) return st;
  mlp_backward(s->w, &s->cache, rows_of(s, s->kept), s->grad_f, s->grad_in_kept, 0, &s->grad, s->threads);
  return dp_compact_scatter_add(&p, s->shape, view(s, grad_x), view(s, s->grad_in_kept), s->kept, s->kept_idx);
}

dp_status block_train_step(block_step *s, int compacted, const dp_params *params, const float *x, float *y,
                           const float *grad_y, float *grad_x) {
  dp_status st = compacted ? block_forward_compact(s, params, x, y) : block_forward_dense(s, params, x, y);
  if (st != DP_OK) return st;
  return compacted ? block_backward_compact(s, params, grad_y, grad_x) : block_backward_dense(s, params, grad_y, grad_x);
}
