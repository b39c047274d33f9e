/* dp_forward_norm, dp_forward_norm_subset and dp_inference_norm: r = x + s*f
 * (x + s*(ls_gamma*f) with LayerScale)
 * and y = norm(r)*gamma + beta, one pass over memory (norm_job.h has the job,
 * the kernels nfwd). The subset form writes y compactly for the samples the
 * next block keeps: their rows' y pointers are the compact rows, the other
 * rows' NULL (the kernel then computes r and the statistics only). */
#include <stdlib.h>

#include "api/norm_job.h"
#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/maskgen.h"

enum { NY, NR, NX, NF };

/* Roles: y (may be exactly f), r (optional, may be exactly x), x, f; arrays
 * gamma, beta, ls_gamma, mean, rstd, scales_out. */
static const dp_op_args norm_forward_args = {
    .n_tensors = 4,
    .n_arrays = 6,
    .x_role = NX,
    .f_role = NF,
    .tensor = {[NY] = {.dtype_class = DP_CLASS_F, .output = 1, .may_be = 1u << NF},
               [NR] = {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1, .may_be = 1u << NX},
               [NX] = {.dtype_class = DP_CLASS_X},
               [NF] = {.dtype_class = DP_CLASS_F}},
    .array = {{.per_channel = 1, .elem_size = sizeof(float)},
              {.per_channel = 1, .elem_size = sizeof(float)},
              {.per_channel = 1, .elem_size = sizeof(float)},
              {.output = 1, .per_row = 1, .elem_size = sizeof(float)},
              {.output = 1, .per_row = 1, .elem_size = sizeof(float)},
              {.output = 1, .per_sample = 1, .elem_size = sizeof(float)}},
};

/* The subset form: y compact (next_kept_count samples; it may not be f, whose
 * samples it does not match), the next block's kept indices a seventh array. */
static const dp_op_args norm_subset_args = {
    .n_tensors = 4,
    .n_arrays = 7,
    .x_role = NX,
    .f_role = NF,
    .tensor = {[NY] = {.dtype_class = DP_CLASS_F, .output = 1, .compact = 1},
               [NR] = {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1, .may_be = 1u << NX},
               [NX] = {.dtype_class = DP_CLASS_X},
               [NF] = {.dtype_class = DP_CLASS_F}},
    .array = {{.per_channel = 1, .elem_size = sizeof(float)},
              {.per_channel = 1, .elem_size = sizeof(float)},
              {.per_channel = 1, .elem_size = sizeof(float)},
              {.output = 1, .per_row = 1, .elem_size = sizeof(float)},
              {.output = 1, .per_row = 1, .elem_size = sizeof(float)},
              {.output = 1, .per_sample = 1, .elem_size = sizeof(float)},
              {.per_kept = 1, .elem_size = sizeof(size_t)}},
};

void dp_norm_init(dp_norm *norm) {
  if (!norm) return;
  norm->kind = DP_NORM_LAYER;
  norm->eps = 1e-5f;
  norm->gamma = norm->beta = NULL;
  norm->ls_gamma = NULL;
  norm->mean = norm->rstd = NULL;
}

/* Rows [lo, hi) in the walk's order: one kernel call per row; a dropped
 * row's f is not passed, so it is never read. */
static void norm_forward_range(const dp_job *j, size_t lo, size_t hi) {
  const dp_norm_job *nj = dp_norm_job_of(j);
  float tmp_buf[DP_NORM_TMP];
  float *tmp = j->D <= DP_NORM_TMP ? tmp_buf : NULL;
  dp_norm_kargs a = nj->a;
  if (j->stream) a.mode |= nj->stream_mode;
  size_t memo_b = SIZE_MAX, hint = SIZE_MAX;
  float memo_s = 0.0f;
  dp_norm_cursor c = dp_norm_cursor_at(j, lo);
  for (size_t i = lo; i < hi; i++, dp_norm_cursor_next(j, &c)) {
    const float s = dp_scale_of(j, c.b, &memo_b, &memo_s);
    float stats[2];
    void *y = nj->sub_on ? dp_norm_subset_row(nj, NY, &c, &hint) : dp_norm_row(nj, NY, &c);
    nj->fn.nfwd(y, dp_norm_row(nj, NR, &c), dp_norm_row(nj, NX, &c), s != 0.0f ? dp_norm_row(nj, NF, &c) : NULL, s,
                j->D, &a, tmp, stats);
    const size_t k = c.b * j->T + c.t;
    if (nj->mean_out) nj->mean_out[k] = stats[0];
    if (nj->rstd_out) nj->rstd_out[k] = stats[1];
  }
}

/* A subset of the samples that y holds (compact), or every sample (idx NULL, subset 0). */
typedef struct norm_subset {
  int on;
  size_t kept;
  const size_t *idx;
} norm_subset;

/* The work of every entry point; scales_out only for the training forward. */
static DP_NOINLINE dp_status norm_forward(const dp_params *params, const dp_shape *shape, const dp_norm *norm,
                                          const dp_tensor *y, const dp_tensor *r, const dp_tensor *x,
                                          const dp_tensor *f, float *scales_out, int inference, norm_subset sub) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK || (st = dp_norm_check(norm)) != DP_OK) return st;
  const dp_tensor *const t[4] = {y, r, x, f};
  const void *const arr[7] = {norm->gamma, norm->beta, norm->ls_gamma, norm->mean, norm->rstd, scales_out, sub.idx};
  dp_combo combo;
  if (sub.on) {
    if ((st = dp_check_args_kept(&norm_subset_args, shape, sub.kept, t, arr, &combo)) != DP_OK ||
        (st = dp_check_kept_indices(sub.idx, sub.kept, shape->batch)) != DP_OK)
      return st;
  } else if ((st = dp_check_args(&norm_forward_args, shape, t, arr, &combo)) != DP_OK) {
    return st;
  }
  const dp_nfwd_fn fn = dp_current_kernels()->nfwd[combo];
  if (!fn) return DP_ERR_BAD_DTYPE;
  if (shape->batch == 0) return DP_OK;

  dp_norm_job nj;
  dp_job *j = &nj.j;
  dp_job_init(j, shape);
  float stack_scales[DP_STACK_SCALES], *heap = NULL;
  if (inference) {
    float keep, unused;
    dp_keep_and_scale(params, &keep, &unused);
    j->fixed = 1;
    j->fixed_scale = params->scale_by_keep ? 1.0f : keep; /* 0: f is not read */
  } else {
    dp_job_draw(j, params, NULL, scales_out, stack_scales, &heap);
  }
  if (shape->dim != 0) {
    j->elementwise = 0;
    dp_norm_role(&nj, NY, y);
    dp_norm_role(&nj, NR, r);
    dp_norm_role(&nj, NX, x);
    dp_norm_role(&nj, NF, f);
    nj.sub_on = sub.on;
    nj.sub_idx = sub.on ? sub.idx : NULL;
    nj.sub_kept = sub.kept;
    /* The thread split follows y's memory order, or r's (x's) when y is compact. */
    j->t[0] = !sub.on ? nj.t[NY] : r->data ? nj.t[NR] : nj.t[NX];
    nj.a.gamma = norm->gamma;
    nj.a.beta = norm->beta;
    nj.a.eps = norm->eps;
    nj.a.ls = norm->ls_gamma;
    nj.a.mode = norm->kind == DP_NORM_RMS ? (unsigned)DP_KNORM_RMS : 0u;
    nj.mean_out = norm->mean;
    nj.rstd_out = norm->rstd;
    nj.fn.nfwd = fn;
    /* r written in place was just read: streaming it saves nothing (rowwalk.h). */
    const int r_in_place = r->data && dp_tensors_identical(r, x, shape);
    nj.stream_mode = DP_KNORM_STREAM_Y | (r_in_place ? 0u : (unsigned)DP_KNORM_STREAM_R);
    const size_t y_bytes = sub.on ? dp_norm_mul_sat(dp_norm_mul_sat(dp_norm_mul_sat(sub.kept, j->T), j->D), nj.t[NY].es)
                                  : dp_norm_bytes(&nj, NY);
    j->written = dp_sat_add(y_bytes, r_in_place ? 0 : dp_norm_bytes(&nj, NR));
    /* Reads x and f, writes y and r. */
    const size_t traffic = dp_sat_add(dp_sat_add(dp_norm_bytes(&nj, NX), dp_norm_bytes(&nj, NF)),
                                      dp_sat_add(y_bytes, dp_norm_bytes(&nj, NR)));
    dp_run_job(j, params, traffic, norm_forward_range);
  }
  if (heap) free(heap);
  return DP_OK;
}

/* The public entries: the work runs in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of it moves across the switch. */
dp_status dp_forward_norm(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor y, dp_tensor r,
                          dp_tensor x, dp_tensor f, float *scales_out) {
  const dp_fpenv e = dp_fpenv_enter();
  const norm_subset all = {0, 0, NULL};
  const dp_status st = norm_forward(params, &shape, norm, &y, &r, &x, &f, scales_out, 0, all);
  dp_fpenv_leave(e);
  return st;
}

dp_status dp_forward_norm_subset(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor y_kept,
                                 dp_tensor r, dp_tensor x, dp_tensor f, size_t next_kept_count,
                                 const size_t *next_kept_indices, float *scales_out) {
  const dp_fpenv e = dp_fpenv_enter();
  const norm_subset sub = {1, next_kept_count, next_kept_indices};
  const dp_status st = norm_forward(params, &shape, norm, &y_kept, &r, &x, &f, scales_out, 0, sub);
  dp_fpenv_leave(e);
  return st;
}

dp_status dp_inference_norm(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor y, dp_tensor r,
                            dp_tensor x, dp_tensor f) {
  const dp_fpenv e = dp_fpenv_enter();
  const norm_subset all = {0, 0, NULL};
  const dp_status st = norm_forward(params, &shape, norm, &y, &r, &x, &f, NULL, 1, all);
  dp_fpenv_leave(e);
  return st;
}
