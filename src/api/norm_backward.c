/* dp_backward_norm(_ls) and dp_backward_norm_subset(_ls): the backward of
 * dp_forward_norm (_subset) in one pass over memory, with grad_gamma,
 * grad_beta and LayerScale's grad_ls_gamma summed in the fixed order of
 * param_groups.h (norm_job.h has the job, the kernels are nbwd). Under an
 * output subset grad_y is compact; a row whose sample is not in it passes
 * grad_r_in through as dp_backward's row does grad_out (the bwd or bwdls
 * kernel, copies), without reading r or the statistics. */
#include <stdlib.h>
#include <string.h>

#include "api/norm_job.h"
#include "api/param_groups.h"
#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/maskgen.h"

enum { GF, GX, GY, RR, GIN, FF };

/* The parameter gradients' partials of a group: grad_gamma's, grad_beta's
 * and grad_ls_gamma's, D floats each. */
enum { P_GAMMA, P_BETA, P_LS, P_COUNT };

/* Roles: grad_f (may be exactly grad_y or f), grad_x (optional, may be
 * exactly grad_r_in), grad_y, r, grad_r_in (optional), f (the forward's
 * branch output; read for grad_ls_gamma only, optional without it); arrays
 * scales, gamma, ls_gamma, mean, rstd (inputs), grad_gamma, grad_beta,
 * grad_ls_gamma (outputs). */
#define NORM_BWD_ARRAYS                                          \
  {.per_sample = 1, .elem_size = sizeof(float)},                 \
      {.per_channel = 1, .elem_size = sizeof(float)},            \
      {.per_channel = 1, .elem_size = sizeof(float)},            \
      {.per_row = 1, .elem_size = sizeof(float)},                \
      {.per_row = 1, .elem_size = sizeof(float)},                \
      {.output = 1, .per_channel = 1, .elem_size = sizeof(float)}, \
      {.output = 1, .per_channel = 1, .elem_size = sizeof(float)}, \
      {.output = 1, .per_channel = 1, .elem_size = sizeof(float)}
static const dp_op_args norm_backward_args = {
    .n_tensors = 6,
    .n_arrays = 8,
    .x_role = RR,
    .f_role = GY,
    .tensor = {[GF] = {.dtype_class = DP_CLASS_F, .output = 1, .may_be = 1u << GY | 1u << FF},
               [GX] = {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1, .may_be = 1u << GIN},
               [GY] = {.dtype_class = DP_CLASS_F},
               [RR] = {.dtype_class = DP_CLASS_X},
               [GIN] = {.dtype_class = DP_CLASS_X, .optional = 1},
               [FF] = {.dtype_class = DP_CLASS_F, .optional = 1}},
    .array = {NORM_BWD_ARRAYS},
};

/* The subset form: grad_y compact (grad_f may not be it), the next block's
 * kept indices a ninth array. */
static const dp_op_args norm_backward_subset_args = {
    .n_tensors = 6,
    .n_arrays = 9,
    .x_role = RR,
    .f_role = GY,
    .tensor = {[GF] = {.dtype_class = DP_CLASS_F, .output = 1, .may_be = 1u << FF},
               [GX] = {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1, .may_be = 1u << GIN},
               [GY] = {.dtype_class = DP_CLASS_F, .compact = 1},
               [RR] = {.dtype_class = DP_CLASS_X},
               [GIN] = {.dtype_class = DP_CLASS_X, .optional = 1},
               [FF] = {.dtype_class = DP_CLASS_F, .optional = 1}},
    .array = {NORM_BWD_ARRAYS, {.per_kept = 1, .elem_size = sizeof(size_t)}},
};
#undef NORM_BWD_ARRAYS

typedef struct bwd_job {
  dp_norm_job nj; /* first: the range function gets &nj.j */
  size_t T, rows;
  int want[P_COUNT]; /* grad_gamma, grad_beta, grad_ls_gamma asked for */
  dp_bwd_fn pass_bwd; /* rows outside a subset: dp_backward's kernels, grad_f = s*g and grad_x (+)= g */
  dp_fwd_fn pass_acc; /* ... and grad_x += g where the bwd kernel cannot (g is grad_x itself, or s == 0) */
  dp_bwdls_fn pass_bwdls; /* ... with LayerScale: grad_f = (s*g)*ls_gamma */
} bwd_job;

/* grad_f (and grad_x unless NULL) of a kept row outside the subset from g:
 * dp_backward's row, or dp_backward_ls's when the join has LayerScale, with
 * its pl += (g*s)*f when grad_ls_gamma is asked for (pl not NULL). */
static void pass_kernel(const bwd_job *bj, void *gf, void *gx, const void *g, const void *f, float *pl, float s,
                        unsigned mode) {
  const size_t D = bj->nj.j.D;
  if (bj->nj.a.ls) bj->pass_bwdls(gf, gx, g, pl ? f : NULL, bj->nj.a.ls, pl, D, s, D, mode);
  else bj->pass_bwd(gf, gx, g, s, D, mode);
}

/* A row outside the output subset: grad_r = grad_r_in, dp_backward's row
 * with grad_out = grad_r_in (grad_x may be grad_r_in itself here); without
 * grad_r_in, grad_r = +0: the outputs are +0, or untouched when accumulated,
 * and the row adds nothing to grad_ls_gamma (f is not read). */
static void pass_through_row(const bwd_job *bj, const dp_norm_cursor *c, float s, unsigned mode, float *pl) {
  const dp_norm_job *nj = &bj->nj;
  const size_t D = nj->j.D;
  unsigned char *gx = dp_norm_row(nj, GX, c), *gf = dp_norm_row(nj, GF, c);
  const unsigned char *gin = dp_norm_row(nj, GIN, c), *f = dp_norm_row(nj, FF, c);
  const int acc_x = (mode & DP_KBWD_ACC_X) != 0, acc_f = (mode & DP_KBWD_ACC_F) != 0;
  if (!gin) {
    if (gx && !acc_x) memset(gx, 0, D * nj->t[GX].es);
    if (!acc_f) memset(gf, 0, D * nj->t[GF].es);
    return;
  }
  if (gx == gin) { /* in place: grad_f first, while grad_x still holds grad_r_in */
    if (s != 0.0f) pass_kernel(bj, gf, NULL, gin, f, pl, s, mode & ~(unsigned)DP_KBWD_ACC_X);
    else if (!acc_f) memset(gf, 0, D * nj->t[GF].es);
    if (acc_x) bj->pass_acc(gx, gx, gin, 1.0f, D, 0);
    return;
  }
  if (s != 0.0f) {
    pass_kernel(bj, gf, gx, gin, f, pl, s, mode);
    return;
  }
  if (gx) {
    if (acc_x) bj->pass_acc(gx, gx, gin, 1.0f, D, 0);
    else memcpy(gx, gin, D * nj->t[GX].es);
  }
  if (!acc_f) memset(gf, 0, D * nj->t[GF].es);
}

/* Groups [lo, hi): zero the group's partials, then its rows in order, b-major. */
static void norm_backward_range(const dp_job *j, size_t lo, size_t hi) {
  const bwd_job *bj = (const bwd_job *)(const void *)dp_norm_job_of(j);
  const dp_norm_job *nj = &bj->nj;
  const size_t D = j->D, G = nj->group_rows;
  dp_norm_kargs a = nj->a;
  if (j->stream) a.mode |= nj->stream_mode;
  /* dp_backward's kernel flags for rows outside a subset */
  const unsigned pass_mode = (a.mode & (DP_KBWD_ACC_F | DP_KBWD_ACC_X)) | (j->stream ? (unsigned)DP_KBWD_STREAM : 0u);
  size_t memo_b = SIZE_MAX, hint = SIZE_MAX;
  float memo_s = 0.0f;
  for (size_t g = lo; g < hi; g++) {
    float *p[P_COUNT] = {NULL, NULL, NULL};
    if (nj->partials) {
      float *const part = nj->partials + g * P_COUNT * D;
      memset(part, 0, P_COUNT * D * sizeof(float)); /* +0.0f */
      for (int q = 0; q < P_COUNT; q++) p[q] = bj->want[q] ? part + q * D : NULL;
    }
    const size_t k1 = (g + 1) * G < bj->rows ? (g + 1) * G : bj->rows;
    dp_norm_cursor c = {g * G / bj->T, g * G % bj->T};
    for (size_t k = g * G; k < k1; k++) {
      const float s = dp_scale_of(j, c.b, &memo_b, &memo_s);
      const unsigned char *gy = nj->sub_on ? dp_norm_subset_row(nj, GY, &c, &hint) : dp_norm_row(nj, GY, &c);
      if (gy) {
        const float stats[2] = {nj->mean_in ? nj->mean_in[k] : 0.0f, nj->rstd_in[k]};
        nj->fn.nbwd(dp_norm_row(nj, GX, &c), dp_norm_row(nj, GF, &c), gy, dp_norm_row(nj, RR, &c),
                    dp_norm_row(nj, GIN, &c), dp_norm_row(nj, FF, &c), s, D, &a, stats, p[P_GAMMA], p[P_BETA],
                    p[P_LS]);
      } else {
        pass_through_row(bj, &c, s, pass_mode, p[P_LS]);
      }
      if (++c.t == bj->T) {
        c.t = 0;
        c.b++;
      }
    }
  }
}

/* What a call gives besides the tensors: the caller's scales and the
 * parameter gradients asked for (each NULL: not asked for). */
typedef struct bwd_outs {
  const float *scales;
  float *grad[P_COUNT]; /* grad_gamma, grad_beta, grad_ls_gamma */
} bwd_outs;

/* The work of every entry point; sub_on 0: every sample has a grad_y row. */
static DP_NOINLINE dp_status norm_backward(const dp_params *params, const dp_shape *shape, const dp_norm *norm,
                                           const dp_tensor *const t[6], const bwd_outs *o, uint32_t flags, int sub_on,
                                           size_t sub_kept, const size_t *sub_idx) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X | DP_NORM_ACCUMULATE_GRAD_PARAMS))
    return DP_ERR_BAD_FLAGS;
  if ((st = dp_norm_check(norm)) != DP_OK) return st;
  float *const grad_ls = o->grad[P_LS];
  if (grad_ls && !norm->ls_gamma) return DP_ERR_BAD_ARGUMENT; /* no LayerScale, no gradient of it */
  const void *const arr[9] = {o->scales,         norm->gamma,       norm->ls_gamma,    norm->mean, norm->rstd,
                              o->grad[P_GAMMA], o->grad[P_BETA], grad_ls, sub_idx};
  /* f is read, so required, only for grad_ls_gamma. */
  dp_op_args spec = sub_on ? norm_backward_subset_args : norm_backward_args;
  spec.tensor[FF].optional = grad_ls == NULL;
  dp_combo combo;
  st = dp_check_args_kept(&spec, shape, sub_kept, t, arr, &combo);
  if (st != DP_OK) return st;
  size_t rows;
  if (dp_rows_of(shape, &rows) != DP_OK) return DP_ERR_SIZE_OVERFLOW;
  const int rms = norm->kind == DP_NORM_RMS;
  if (rows != 0 && shape->dim != 0 && (!norm->rstd || (!rms && !norm->mean))) return DP_ERR_NULL_POINTER;
  if (sub_on && (st = dp_check_kept_indices(sub_idx, sub_kept, shape->batch)) != DP_OK) return st;
  const dp_kernel_table *kt = dp_current_kernels();
  const dp_nbwd_fn fn = kt->nbwd[combo];
  const dp_fwd_fn pass_acc = kt->fwd[dp_combo_of(t[RR]->dtype, t[RR]->dtype)];
  if (!fn || (sub_on && (!kt->bwd[combo] || !pass_acc || (norm->ls_gamma && !kt->bwdls[combo]))))
    return DP_ERR_BAD_DTYPE;
  if (shape->dim == 0) return DP_OK;
  const int acc_params = (flags & DP_NORM_ACCUMULATE_GRAD_PARAMS) != 0;

  bwd_job bj;
  dp_norm_job *nj = &bj.nj;
  dp_job *j = &nj->j;
  bj.T = shape->seq ? shape->seq : 1;
  bj.rows = rows;
  int any = 0;
  for (int q = 0; q < P_COUNT; q++) any |= bj.want[q] = o->grad[q] != NULL;
  bj.pass_bwd = kt->bwd[combo];
  bj.pass_acc = pass_acc;
  bj.pass_bwdls = kt->bwdls[combo];
  nj->sub_on = sub_on;
  nj->sub_idx = sub_on ? sub_idx : NULL;
  nj->sub_kept = sub_kept;
  /* The walk's items are groups of rows: param_groups.h's when a parameter
   * gradient is asked for (each sums its rows in order), else single rows. */
  const dp_param_groups pg = dp_param_groups_of(rows, shape->dim);
  nj->group_rows = any ? pg.per : 1;
  nj->groups = any ? pg.count : rows;
  nj->partials = NULL;
  if (any && rows != 0) {
    const size_t n = dp_norm_mul_sat(dp_norm_mul_sat(pg.count, shape->dim), P_COUNT * sizeof(float));
    if (n == SIZE_MAX || !(nj->partials = (float *)malloc(n))) return DP_ERR_NO_MEMORY;
  }

  float stack_scales[DP_STACK_SCALES], *heap = NULL;
  if (rows != 0) {
    dp_job_init(j, shape);
    dp_job_draw(j, params, o->scales, NULL, stack_scales, &heap);
    j->elementwise = 0;
    dp_norm_role(nj, GF, t[GF]);
    dp_norm_role(nj, GX, t[GX]);
    dp_norm_role(nj, GY, t[GY]);
    dp_norm_role(nj, RR, t[RR]);
    dp_norm_role(nj, GIN, t[GIN]);
    dp_norm_role(nj, FF, t[FF]);
    if (!grad_ls) nj->t[FF].p = NULL; /* not read without grad_ls_gamma */
    nj->a.gamma = norm->gamma;
    nj->a.beta = NULL;
    nj->a.eps = norm->eps;
    nj->a.ls = norm->ls_gamma;
    nj->a.mode = (rms ? (unsigned)DP_KNORM_RMS : 0u) | dp_kbwd_mode(flags);
    nj->mean_in = rms ? NULL : norm->mean;
    nj->rstd_in = norm->rstd;
    nj->fn.nbwd = fn;
    const dp_tensor *grad_x = t[GX], *grad_r_in = t[GIN];
    const int gx_in_place = grad_x->data && grad_r_in->data && dp_tensors_identical(grad_x, grad_r_in, shape);
    nj->stream_mode = DP_KNORM_STREAM_Y | (gx_in_place ? 0u : (unsigned)DP_KNORM_STREAM_R);
    const size_t gf_bytes = dp_norm_bytes(nj, GF), gx_bytes = dp_norm_bytes(nj, GX);
    j->written = dp_sat_add((flags & DP_BWD_ACCUMULATE_GRAD_F) ? 0 : gf_bytes,
                            (flags & DP_BWD_ACCUMULATE_GRAD_X) || gx_in_place ? 0 : gx_bytes);
    /* Reads grad_y, r, grad_r_in, f (and the accumulated outputs), writes grad_f and grad_x; a
     * subset's grad_y and the r rows read have its kept samples only. */
    const size_t bt = sub_on ? sub_kept : shape->batch;
    const size_t gy_bytes = dp_norm_mul_sat(dp_norm_mul_sat(dp_norm_mul_sat(bt, bj.T), shape->dim), nj->t[GY].es);
    const size_t r_bytes = dp_norm_mul_sat(dp_norm_mul_sat(dp_norm_mul_sat(bt, bj.T), shape->dim), nj->t[RR].es);
    size_t traffic = dp_sat_add(dp_sat_add(gy_bytes, r_bytes), dp_norm_bytes(nj, GIN));
    traffic = dp_sat_add(traffic, dp_sat_add(gf_bytes, gx_bytes));
    traffic = dp_sat_add(traffic, dp_norm_bytes(nj, FF));
    if (flags & DP_BWD_ACCUMULATE_GRAD_F) traffic = dp_sat_add(traffic, gf_bytes);
    if (flags & DP_BWD_ACCUMULATE_GRAD_X) traffic = dp_sat_add(traffic, gx_bytes);
    /* The walk's items are the groups: B groups of one row each (T = 1). */
    j->B = nj->groups;
    j->T = 1;
    dp_run_job(j, params, traffic, norm_backward_range);
  }
  /* With no rows each asked-for sum is +0 (or the gradient as it was, when accumulating). */
  for (int q = 0; q < P_COUNT; q++)
    if (o->grad[q])
      dp_param_groups_total(o->grad[q], nj->partials ? nj->partials + (size_t)q * shape->dim : NULL,
                            rows ? nj->groups : 0, P_COUNT * shape->dim, shape->dim, acc_params);
  free(nj->partials);
  if (heap) free(heap);
  return DP_OK;
}

/* The public entries: the work runs in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of it moves across the switch. */
dp_status dp_backward_norm_ls(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                              dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in, dp_tensor f,
                              const float *scales, float *grad_gamma, float *grad_beta, float *grad_ls_gamma,
                              uint32_t flags) {
  const dp_tensor *const t[6] = {&grad_f, &grad_x, &grad_y, &r, &grad_r_in, &f};
  const bwd_outs o = {scales, {grad_gamma, grad_beta, grad_ls_gamma}};
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = norm_backward(params, &shape, norm, t, &o, flags, 0, 0, NULL);
  dp_fpenv_leave(e);
  return st;
}

dp_status dp_backward_norm(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                           dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in, const float *scales,
                           float *grad_gamma, float *grad_beta, uint32_t flags) {
  const dp_tensor none = {NULL, grad_f.dtype, 0, 0};
  return dp_backward_norm_ls(params, shape, norm, grad_f, grad_x, grad_y, r, grad_r_in, none, scales, grad_gamma,
                             grad_beta, NULL, flags);
}

dp_status dp_backward_norm_subset_ls(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                                     dp_tensor grad_x, dp_tensor grad_y_kept, dp_tensor r, dp_tensor grad_r_in,
                                     dp_tensor f, size_t next_kept_count, const size_t *next_kept_indices,
                                     const float *scales, float *grad_gamma, float *grad_beta, float *grad_ls_gamma,
                                     uint32_t flags) {
  const dp_tensor *const t[6] = {&grad_f, &grad_x, &grad_y_kept, &r, &grad_r_in, &f};
  const bwd_outs o = {scales, {grad_gamma, grad_beta, grad_ls_gamma}};
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = norm_backward(params, &shape, norm, t, &o, flags, 1, next_kept_count, next_kept_indices);
  dp_fpenv_leave(e);
  return st;
}

dp_status dp_backward_norm_subset(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                                  dp_tensor grad_x, dp_tensor grad_y_kept, dp_tensor r, dp_tensor grad_r_in,
                                  size_t next_kept_count, const size_t *next_kept_indices, const float *scales,
                                  float *grad_gamma, float *grad_beta, uint32_t flags) {
  const dp_tensor none = {NULL, grad_f.dtype, 0, 0};
  return dp_backward_norm_subset_ls(params, shape, norm, grad_f, grad_x, grad_y_kept, r, grad_r_in, none,
                                    next_kept_count, next_kept_indices, scales, grad_gamma, grad_beta, NULL, flags);
}
