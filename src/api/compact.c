/*
 * Sample compaction: the residual branch runs on the kept samples only.
 *   dp_compact_gather       draw the mask, dst[i] = src[idx[i]]
 *   dp_compact_forward      out = x, out[idx[i]] = x[idx[i]] + s*f_kept[i]
 *   dp_compact_backward     grad_f_kept[i] = s*grad_out[idx[i]], grad_x (+)= grad_out
 *   dp_compact_scatter_add  grad_x[idx[i]] += grad_in_kept[i]
 * and the join of dp_compact_forward_ls (out[idx[i]] = x[idx[i]] +
 * ((gamma*f_kept[i])*s), compact_ls.c).
 * Every row goes through the kernels dp_forward and dp_backward use, on the
 * same elements, so the results are theirs bit for bit (the kernels are
 * elementwise: how a row is cut into calls changes no bit).
 */
#include <string.h>

#include "api/compact.h"
#include "core/compactwalk.h"
#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/validate.h"

/* ---------------------------------------------------------------- shared */

/* A compact job over shape's rows: every sample (over_kept = 0) or the kept ones. */
static void compact_job_init(dp_compact_job *m, const dp_shape *shape, const size_t *idx, size_t kept, float s,
                             int over_kept) {
  const dp_shape walk = {over_kept ? kept : shape->batch, shape->seq, shape->dim};
  dp_job_init(&m->job, &walk);
  m->idx = idx;
  m->kept = kept;
  m->s = s;
  m->over_kept = over_kept;
  for (int r = 0; r < DP_ROLES; r++) m->map[r] = DP_MAP_SAME;
}

/* Bytes of the rows of role r (0 when absent) that a compact job touches:
 * a compact role or a walk over kept samples has `kept` samples. */
static size_t role_bytes(const dp_compact_job *m, int r, size_t B) {
  const dp_job *j = &m->job;
  if (!j->t[r].p) return 0;
  return dp_samples_bytes(m->over_kept || m->map[r] == DP_MAP_RANK ? m->kept : B, j->T, j->D, j->t[r].es);
}

/* ---------------------------------------------------------------- gather */

static const dp_op_args gather_args = {
    .n_tensors = 2,
    .n_arrays = 2,
    .x_role = 1,
    .f_role = 1,
    .tensor = {{.dtype_class = DP_CLASS_X, .output = 1, .compact = 1}, {.dtype_class = DP_CLASS_X}},
    .array = {{.output = 1, .elem_size = sizeof(size_t)},
              {.output = 1, .per_sample = 1, .elem_size = sizeof(size_t)}},
};

static inline void gather_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  (void)s;
  memcpy(p[0], p[1], n * j->t[0].es);
}

static void gather_range(const dp_job *j, size_t lo, size_t hi) {
  dp_walk_compact((const dp_compact_job *)j, lo, hi, gather_row);
}

/* kept_count (when idx is NULL) or the kept samples into idx, from the
 * call's mask, through a stack block: nothing of the caller's is written
 * before every check has passed. */
static size_t kept_samples(const dp_mask_ctx *ctx, size_t B, size_t *idx) {
  float block[256];
  size_t kept = 0;
  for (size_t b0 = 0; b0 < B; b0 += 256) {
    const size_t nb = B - b0 < 256 ? B - b0 : 256;
    dp_mask_fill_scales(ctx, b0, nb, block);
    for (size_t i = 0; i < nb; i++) {
      if (block[i] == 0.0f) continue;
      if (idx) idx[kept] = b0 + i;
      kept++;
    }
  }
  return kept;
}

/* The checks that need no k: src and the two arrays (dst absent). */
static const dp_op_args gather_src_args = {
    .n_tensors = 2,
    .n_arrays = 2,
    .x_role = 1,
    .f_role = 1,
    .tensor = {{.dtype_class = DP_CLASS_X, .output = 1, .optional = 1}, {.dtype_class = DP_CLASS_X}},
    .array = {{.output = 1, .elem_size = sizeof(size_t)}, {.output = 1, .per_sample = 1, .elem_size = sizeof(size_t)}},
};

static DP_NOINLINE dp_status gather(const dp_params *params, const dp_shape *shape, const dp_tensor *dst,
                                    const dp_tensor *src, size_t *kept_count, size_t *kept_indices) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  /* dst is checked once k is known (it holds k samples): first src and the
   * arrays, whose B entries bound the mask's work, then the mask, drawn
   * without writing anything, then dst. */
  const dp_tensor absent = {NULL, src->dtype, 0, 0};
  const dp_tensor *const t[2] = {&absent, src};
  const void *const a[2] = {kept_count, kept_indices};
  dp_combo combo;
  if ((st = dp_check_args(&gather_src_args, shape, t, a, &combo)) != DP_OK) return st;
  if (!kept_count || (!kept_indices && shape->batch > 0)) return DP_ERR_NULL_POINTER;
  dp_mask_ctx ctx;
  dp_mask_ctx_init(&ctx, params, shape->batch);
  const size_t kept = kept_samples(&ctx, shape->batch, NULL);
  const dp_tensor *const t2[2] = {dst, src};
  if ((st = dp_check_args_kept(&gather_args, shape, kept, t2, a, &combo)) != DP_OK) return st;

  (void)kept_samples(&ctx, shape->batch, kept_indices);
  *kept_count = kept;
  if (kept == 0 || shape->dim == 0) return DP_OK;
  dp_compact_job m;
  compact_job_init(&m, shape, kept_indices, kept, 1.0f, 1);
  dp_job_role(&m.job, 0, dst);
  dp_job_role(&m.job, 1, src);
  m.map[1] = DP_MAP_INDEX;
  const size_t bytes = role_bytes(&m, 0, shape->batch);
  dp_run_job(&m.job, params, dp_sat_add(bytes, bytes), gather_range);
  return DP_OK;
}

dp_status dp_compact_gather(const dp_params *params, dp_shape shape, dp_tensor dst, dp_tensor src,
                            size_t *kept_count, size_t *kept_indices) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = gather(params, &shape, &dst, &src, kept_count, kept_indices);
  dp_fpenv_leave(e);
  return st;
}

/* ---------------------------------------------------------------- forward */

/* Roles: out (may be exactly x), x, f_kept (compact); the kept indices and
 * gamma (D floats, NULL without LayerScale) are inputs. */
static const dp_op_args forward_args = {
    .n_tensors = 3,
    .n_arrays = 2,
    .x_role = 1,
    .f_role = 2,
    .tensor = {{.dtype_class = DP_CLASS_X, .output = 1, .may_be = 1u << 1},
               {.dtype_class = DP_CLASS_X},
               {.dtype_class = DP_CLASS_F, .compact = 1}},
    .array = {{.per_kept = 1, .elem_size = sizeof(size_t)}, {.per_channel = 1, .elem_size = sizeof(float)}},
};

/* dp_forward's row: kept rows through the forward kernel, dropped rows copy x. */
static inline void forward_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  if (s != 0.0f) j->kernel.fwd(p[0], p[1], p[2], s, n, j->stream);
  else if (!j->out_is_x) memcpy(p[0], p[1], n * j->t[1].es);
}

/* dp_forward_ls's row (api/layerscale.h): whole rows, each from channel 0. */
static inline void forward_ls_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  if (s != 0.0f) j->kernel.fwdls(p[0], p[1], p[2], j->chan, j->period, s, n, j->stream);
  else if (!j->out_is_x) memcpy(p[0], p[1], n * j->t[1].es);
}

static void forward_range(const dp_job *j, size_t lo, size_t hi) {
  dp_walk_compact((const dp_compact_job *)j, lo, hi, forward_row);
}

static void forward_ls_range(const dp_job *j, size_t lo, size_t hi) {
  dp_walk_compact((const dp_compact_job *)j, lo, hi, forward_ls_row);
}

DP_NOINLINE dp_status dp_compact_join(const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                                      const dp_tensor *x, const dp_tensor *f_kept, const float *gamma, size_t kept,
                                      const size_t *idx) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  const dp_tensor *const t[3] = {out, x, f_kept};
  const void *const a[2] = {idx, gamma};
  dp_combo combo;
  if ((st = dp_check_args_kept(&forward_args, shape, kept, t, a, &combo)) != DP_OK) return st;
  if ((st = dp_check_kept_indices(idx, kept, shape->batch)) != DP_OK) return st;
  const dp_kernel_table *k = dp_current_kernels();
  if (gamma ? !k->fwdls[combo] : !k->fwd[combo]) return DP_ERR_BAD_DTYPE;
  if (shape->batch == 0 || shape->dim == 0) return DP_OK;

  /* In place only the kept samples change: walk those alone. */
  const int in_place = dp_tensors_identical(out, x, shape);
  if (in_place && kept == 0) return DP_OK;
  dp_compact_job m;
  compact_job_init(&m, shape, idx, kept, dp_kept_scale(params, shape->batch, kept), in_place);
  dp_job_role(&m.job, 0, out);
  dp_job_role(&m.job, 1, x);
  dp_job_role(&m.job, 2, f_kept);
  m.map[0] = m.map[1] = in_place ? DP_MAP_INDEX : DP_MAP_SAME;
  m.map[2] = in_place ? DP_MAP_SAME : DP_MAP_RANK;
  if (gamma) {
    /* gamma indexes channels: chunks cut between rows, each call from channel 0 (rowwalk.h). */
    m.job.kernel.fwdls = k->fwdls[combo];
    m.job.period = shape->dim;
    m.job.chan = gamma;
  } else {
    m.job.kernel.fwd = k->fwd[combo];
  }
  m.job.out_is_x = in_place;
  m.job.written = role_bytes(&m, 0, shape->batch);
  const size_t traffic = dp_sat_add(dp_sat_add(m.job.written, m.job.written), role_bytes(&m, 2, shape->batch));
  dp_run_job(&m.job, params, traffic, gamma ? forward_ls_range : forward_range);
  return DP_OK;
}

dp_status dp_compact_forward(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f_kept,
                             size_t kept_count, const size_t *kept_indices) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = dp_compact_join(params, &shape, &out, &x, &f_kept, NULL, kept_count, kept_indices);
  dp_fpenv_leave(e);
  return st;
}

/* ---------------------------------------------------------------- backward */

/* Roles: grad_f_kept (compact), grad_x (optional), grad_out; the indices are an input. */
static const dp_op_args backward_args = {
    .n_tensors = 3,
    .n_arrays = 1,
    .x_role = 2,
    .f_role = 0,
    .tensor = {{.dtype_class = DP_CLASS_F, .output = 1, .compact = 1},
               {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1},
               {.dtype_class = DP_CLASS_X}},
    .array = {{.per_kept = 1, .elem_size = sizeof(size_t)}},
};

/* Kept rows: dp_backward's kernel. Dropped rows have no grad_f row: grad_x
 * alone, a copy or through the X+X forward kernel when it accumulates. */
static inline void backward_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  if (s != 0.0f) {
    j->kernel.bwd(p[0], p[1], p[2], s, n, j->mode | (j->stream ? DP_KBWD_STREAM : 0u));
    return;
  }
  if (!p[1]) return;
  if (j->mode & DP_KBWD_ACC_X) j->aux.fwd(p[1], p[1], p[2], 1.0f, n, 0);
  else memcpy(p[1], p[2], n * j->t[2].es);
}

static void backward_range(const dp_job *j, size_t lo, size_t hi) {
  dp_walk_compact((const dp_compact_job *)j, lo, hi, backward_row);
}

static DP_NOINLINE dp_status backward(const dp_params *params, const dp_shape *shape, const dp_tensor *grad_f_kept,
                                      const dp_tensor *grad_x, const dp_tensor *grad_out, size_t kept,
                                      const size_t *idx, uint32_t flags) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X)) return DP_ERR_BAD_FLAGS;
  const dp_tensor *const t[3] = {grad_f_kept, grad_x, grad_out};
  const void *const a[1] = {idx};
  dp_combo combo;
  if ((st = dp_check_args_kept(&backward_args, shape, kept, t, a, &combo)) != DP_OK) return st;
  if ((st = dp_check_kept_indices(idx, kept, shape->batch)) != DP_OK) return st;
  const dp_kernel_table *k = dp_current_kernels();
  const dp_fwd_fn acc_x = k->fwd[dp_combo_of(grad_out->dtype, grad_out->dtype)];
  if (!k->bwd[combo] || !acc_x) return DP_ERR_BAD_DTYPE;
  if (shape->batch == 0 || shape->dim == 0) return DP_OK;
  /* Without grad_x only the kept samples have work. */
  const int over_kept = grad_x->data == NULL;
  if (over_kept && kept == 0) return DP_OK;

  dp_compact_job m;
  compact_job_init(&m, shape, idx, kept, dp_kept_scale(params, shape->batch, kept), over_kept);
  dp_job_role(&m.job, 0, grad_f_kept);
  if (grad_x->data) dp_job_role(&m.job, 1, grad_x);
  dp_job_role(&m.job, 2, grad_out);
  m.map[0] = over_kept ? DP_MAP_SAME : DP_MAP_RANK;
  m.map[1] = DP_MAP_SAME; /* absent when over_kept */
  m.map[2] = over_kept ? DP_MAP_INDEX : DP_MAP_SAME;
  m.job.kernel.bwd = k->bwd[combo];
  m.job.aux.fwd = acc_x;
  m.job.mode = dp_kbwd_mode(flags);
  const size_t gf = role_bytes(&m, 0, shape->batch), gx = role_bytes(&m, 1, shape->batch);
  m.job.written = dp_sat_add(gf, gx);
  /* Reads grad_out (and grad_x when accumulating: counted as read and written), writes grad_f and grad_x. */
  const size_t traffic = dp_sat_add(dp_sat_add(gf, role_bytes(&m, 2, shape->batch)), dp_sat_add(gx, gx));
  dp_run_job(&m.job, params, traffic, backward_range);
  return DP_OK;
}

dp_status dp_compact_backward(const dp_params *params, dp_shape shape, dp_tensor grad_f_kept, dp_tensor grad_x,
                              dp_tensor grad_out, size_t kept_count, const size_t *kept_indices, uint32_t flags) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = backward(params, &shape, &grad_f_kept, &grad_x, &grad_out, kept_count, kept_indices, flags);
  dp_fpenv_leave(e);
  return st;
}

/* ---------------------------------------------------------------- scatter-add */

/* Roles: grad_x (read and written), grad_in_kept (compact); the indices are an input. */
static const dp_op_args scatter_args = {
    .n_tensors = 2,
    .n_arrays = 1,
    .x_role = 0,
    .f_role = 1,
    .tensor = {{.dtype_class = DP_CLASS_X, .output = 1}, {.dtype_class = DP_CLASS_F, .compact = 1}},
    .array = {{.per_kept = 1, .elem_size = sizeof(size_t)}},
};

/* grad_x += 1*grad_in: the forward kernel with s = 1, as dp_backward accumulates. */
static inline void scatter_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  (void)s;
  j->kernel.fwd(p[0], p[1], p[2], 1.0f, n, 0);
}

static void scatter_range(const dp_job *j, size_t lo, size_t hi) {
  dp_walk_compact((const dp_compact_job *)j, lo, hi, scatter_row);
}

static DP_NOINLINE dp_status scatter_add(const dp_params *params, const dp_shape *shape, const dp_tensor *grad_x,
                                         const dp_tensor *grad_in_kept, size_t kept, const size_t *idx) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  const dp_tensor *const t[2] = {grad_x, grad_in_kept};
  const void *const a[1] = {idx};
  dp_combo combo;
  if ((st = dp_check_args_kept(&scatter_args, shape, kept, t, a, &combo)) != DP_OK) return st;
  if ((st = dp_check_kept_indices(idx, kept, shape->batch)) != DP_OK) return st;
  const dp_fwd_fn fwd = dp_current_kernels()->fwd[combo];
  if (!fwd) return DP_ERR_BAD_DTYPE;
  if (kept == 0 || shape->dim == 0) return DP_OK;

  dp_compact_job m;
  compact_job_init(&m, shape, idx, kept, 1.0f, 1);
  dp_job_role(&m.job, 0, grad_x);
  dp_job_role(&m.job, 1, grad_x);
  dp_job_role(&m.job, 2, grad_in_kept);
  m.map[0] = m.map[1] = DP_MAP_INDEX;
  m.job.kernel.fwd = fwd;
  m.job.out_is_x = 1; /* in place: never streams */
  const size_t gx = role_bytes(&m, 0, shape->batch);
  m.job.written = gx;
  dp_run_job(&m.job, params, dp_sat_add(dp_sat_add(gx, gx), role_bytes(&m, 2, shape->batch)), scatter_range);
  return DP_OK;
}

dp_status dp_compact_scatter_add(const dp_params *params, dp_shape shape, dp_tensor grad_x, dp_tensor grad_in_kept,
                                 size_t kept_count, const size_t *kept_indices) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = scatter_add(params, &shape, &grad_x, &grad_in_kept, kept_count, kept_indices);
  dp_fpenv_leave(e);
  return st;
}
