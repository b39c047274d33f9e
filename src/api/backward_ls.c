/* dp_backward_ls: the backward of dp_forward_ls in one pass over grad_out:
 * grad_f[b] = ((grad_out*s)*gamma), grad_x (+)= grad_out, and grad_gamma
 * (+)= the sum over kept rows of ((grad_out*s)*f), in a fixed order. */
#include <stdlib.h>
#include <string.h>

#include "kernels/common/canon.h"
#include "core/dispatch.h"
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/rowwalk.h"
#include "core/validate.h"

/* Roles: grad_f (may be exactly grad_out or f), grad_x (optional, overlaps
 * nothing), grad_out, f (the forward's branch input: optional unless
 * grad_gamma is asked for); gamma (D floats, read), grad_gamma (D floats,
 * written), the caller's scales (read). */
#define LS_BWD_ARGS(f_optional)                                                                     \
  {                                                                                                 \
    .n_tensors = 4, .n_arrays = 3, .x_role = 2, .f_role = 0,                                        \
    .tensor = {{.dtype_class = DP_CLASS_F, .output = 1, .may_be = 1u << 2 | 1u << 3},              \
               {.dtype_class = DP_CLASS_X, .output = 1, .optional = 1},                             \
               {.dtype_class = DP_CLASS_X},                                                         \
               {.dtype_class = DP_CLASS_F, .optional = (f_optional)}},                              \
    .array = {{.per_channel = 1, .elem_size = sizeof(float)},                                       \
              {.output = 1, .per_channel = 1, .elem_size = sizeof(float)},                          \
              {.per_sample = 1, .elem_size = sizeof(float)}},                                       \
  }
static const dp_op_args ls_bwd_args_f = LS_BWD_ARGS(0);     /* grad_gamma asked for: f is read */
static const dp_op_args ls_bwd_args_no_f = LS_BWD_ARGS(1);  /* f not read */

/* The fixed reduction order of grad_gamma (droppath.h): rows r = b*T + t in
 * groups of `per` consecutive rows, as many groups as `count`. */
typedef struct ls_groups {
  size_t per, count;
} ls_groups;

#define LS_GROUP_ELEMS ((size_t)1 << 16)   /* a group is at least this many elements ... */
#define LS_MAX_GROUPS ((size_t)64)         /* ... there are at most this many ... */
#define LS_MAX_PARTIALS ((size_t)1 << 22)  /* ... and their partial sums hold at most this many floats */

static ls_groups ls_groups_of(size_t rows, size_t D) {
  ls_groups g = {1, 0};
  if (rows == 0 || D == 0) return g;
  size_t max_groups = LS_MAX_PARTIALS / D;
  if (max_groups < 1) max_groups = 1;
  if (max_groups > LS_MAX_GROUPS) max_groups = LS_MAX_GROUPS;
  const size_t by_size = (LS_GROUP_ELEMS + D - 1) / D, by_count = (rows + max_groups - 1) / max_groups;
  g.per = by_size > by_count ? by_size : by_count;
  g.count = (rows + g.per - 1) / g.per;
  return g;
}

/* The job plus what the walk of groups needs beyond three roles. */
typedef struct ls_bwd_job {
  dp_job j; /* first: the range function is handed &job.j */
  dp_rowptr f;      /* absent (p NULL) when grad_gamma is not asked for */
  const float *gamma;
  float *partials;  /* count x D, group k's at k*D; NULL without grad_gamma */
  ls_groups groups;
} ls_bwd_job;

/* k rows from row pointers p (grad_f, grad_x, grad_out) and pf, all of scale
 * s; acc: the group's partial sums or NULL. Dropped rows as dp_backward's
 * (grad_x first: grad_f may be grad_out and is zeroed after); f and acc are
 * not touched for them. */
static void ls_bwd_rows(const ls_bwd_job *lj, unsigned char *const p[DP_ROLES], const unsigned char *pf, float *acc,
                        float s, size_t k) {
  const dp_job *j = &lj->j;
  const size_t n = k * j->D;
  if (s != 0.0f) {
    j->kernel.bwdls(p[0], p[1], p[2], pf, lj->gamma, acc, j->D, s, n, j->mode | (j->stream ? DP_KBWD_STREAM : 0u));
    return;
  }
  if (p[1]) {
    if (j->mode & DP_KBWD_ACC_X) j->aux.fwd(p[1], p[1], p[2], 1.0f, n, 0);
    else memcpy(p[1], p[2], n * j->t[2].es);
  }
  if (!(j->mode & DP_KBWD_ACC_F)) memset(p[0], 0, n * j->t[0].es);
}

/* Groups [lo, hi): each zeroes its partial sums and adds its rows to them in
 * row order, runs of kept rows that follow each other in memory (the job is
 * dense) in one kernel call. */
static void ls_bwd_range(const dp_job *j_, size_t lo, size_t hi) {
  const ls_bwd_job *lj = (const ls_bwd_job *)j_;
  const dp_job *j = &lj->j;
  const size_t T = j->T, R = j->B * T, per = lj->groups.per;
  size_t memo_b = SIZE_MAX;
  float memo_s = 0.0f;
  for (size_t k = lo; k < hi; k++) {
    float *acc = lj->partials ? lj->partials + k * j->D : NULL;
    if (acc) memset(acc, 0, j->D * sizeof(float)); /* +0.0f */
    const size_t r1 = (k + 1) * per < R ? (k + 1) * per : R;
    size_t r = k * per, b = r / T, t = r % T;
    while (r < r1) {
      const float s = dp_scale_of(j, b, &memo_b, &memo_s);
      size_t run = 1;
      if (j->dense) {
        run = T - t; /* the rest of the sample, then following samples of the same scale */
        for (size_t nb = b + 1; r + run < r1 && (j->fixed || (j->scales && j->scales[nb] == s)); nb++) run += T;
        if (run > r1 - r) run = r1 - r;
      }
      unsigned char *p[DP_ROLES];
      for (int q = 0; q < DP_ROLES; q++)
        p[q] = j->t[q].p ? j->t[q].p + b * j->t[q].ss + t * j->t[q].ts : NULL;
      const unsigned char *pf = lj->f.p ? lj->f.p + b * lj->f.ss + t * lj->f.ts : NULL;
      ls_bwd_rows(lj, p, pf, acc, s, run);
      r += run;
      t += run;
      b += t / T;
      t %= T;
    }
  }
}

/* Whether every present tensor's rows follow each other in memory (b-major). */
static int ls_dense(const ls_bwd_job *lj) {
  const dp_job *j = &lj->j;
  for (int q = 0; q < DP_ROLES; q++)
    if (j->t[q].p && (j->t[q].ts != j->D * j->t[q].es || j->t[q].ss != j->T * j->D * j->t[q].es)) return 0;
  return !lj->f.p || (lj->f.ts == j->D * lj->f.es && lj->f.ss == j->T * j->D * lj->f.es);
}

/* grad_gamma (+)= the partials summed in group order, on this thread. */
static void ls_combine(const ls_bwd_job *lj, float *grad_gamma, int accumulate) {
  const size_t D = lj->j.D;
  float *tot = lj->partials;
  for (size_t k = 1; k < lj->groups.count; k++) {
    const float *pk = lj->partials + k * D;
    for (size_t i = 0; i < D; i++) tot[i] = tot[i] + pk[i];
  }
  for (size_t i = 0; i < D; i++) grad_gamma[i] = dp_f32_canon(accumulate ? grad_gamma[i] + tot[i] : tot[i]);
}

#define LS_STACK_PARTIALS 1024

static DP_NOINLINE dp_status backward_ls(const dp_params *params, const dp_shape *shape, const dp_tensor *grad_f,
                                         const dp_tensor *grad_x, const dp_tensor *grad_out, const dp_tensor *f,
                                         const float *gamma, float *grad_gamma, const float *scales,
                                         uint32_t flags) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X | DP_BWD_ACCUMULATE_GRAD_GAMMA))
    return DP_ERR_BAD_FLAGS;
  float small[DP_SMALL_BATCH];
  const float *drawn = scales ? scales : dp_draw_small(params, shape->batch, small);
  const dp_tensor *const t[4] = {grad_f, grad_x, grad_out, f};
  const void *const a[3] = {gamma, grad_gamma, scales};
  dp_combo combo;
  /* Each table a constant where the checker is inlined, so its loops unroll. */
  st = grad_gamma ? dp_check_args(&ls_bwd_args_f, shape, t, a, &combo)
                  : dp_check_args(&ls_bwd_args_no_f, shape, t, a, &combo);
  if (st != DP_OK) return st;
  const dp_kernel_table *k = dp_current_kernels();
  const dp_fwd_fn acc_x = k->fwd[dp_combo_of(grad_out->dtype, grad_out->dtype)];
  if (!k->bwdls[combo] || !acc_x) return DP_ERR_BAD_DTYPE;
  if (shape->dim == 0) return DP_OK;

  ls_bwd_job lj;
  dp_job *j = &lj.j;
  dp_job_init(j, shape);
  lj.groups = ls_groups_of(j->B * j->T, j->D);
  float stack_partials[LS_STACK_PARTIALS];
  float *heap_partials = NULL;
  lj.partials = NULL;
  if (grad_gamma) {
    /* At least one group: with no rows the sum is +0. Allocated before
     * anything is written, so a failure leaves every output untouched. */
    const size_t count = lj.groups.count ? lj.groups.count : 1;
    const size_t floats = count * j->D; /* fits: count * D <= max(64, D) * D, and D floats are validated */
    if (floats <= LS_STACK_PARTIALS) lj.partials = stack_partials;
    else if (!(lj.partials = heap_partials = (float *)malloc(floats * sizeof(float)))) return DP_ERR_NO_MEMORY;
    if (!lj.groups.count) memset(lj.partials, 0, j->D * sizeof(float));
  }
  if (shape->batch != 0) {
    float stack_scales[DP_STACK_SCALES], *heap;
    dp_job_draw(j, params, drawn, NULL, stack_scales, &heap);
    dp_job_role(j, 0, grad_f);
    if (grad_x->data) dp_job_role(j, 1, grad_x);
    dp_job_role(j, 2, grad_out);
    lj.f.p = NULL;
    if (grad_gamma) {
      lj.f.es = dp_dtype_size(f->dtype);
      lj.f.p = (unsigned char *)f->data;
      lj.f.ss = f->sample_stride * lj.f.es;
      lj.f.ts = f->seq_stride * lj.f.es;
    }
    lj.gamma = gamma;
    j->kernel.bwdls = k->bwdls[combo];
    j->aux.fwd = acc_x;
    j->mode = ((flags & DP_BWD_ACCUMULATE_GRAD_F) ? DP_KBWD_ACC_F : 0u) |
              ((flags & DP_BWD_ACCUMULATE_GRAD_X) ? DP_KBWD_ACC_X : 0u);
    j->elementwise = 0; /* the walk of groups is the operation's own */
    j->dense = ls_dense(&lj);
    j->written = dp_sat_add(dp_job_bytes(j, 0), dp_job_bytes(j, 1));
    /* Reads grad_out and f (grad_x when accumulating: read and written), writes grad_f and grad_x. */
    size_t traffic = dp_sat_add(dp_job_bytes(j, 0), dp_job_bytes(j, 2));
    traffic = dp_sat_add(traffic, dp_sat_add(dp_job_bytes(j, 1), dp_job_bytes(j, 1)));
    if (grad_gamma) traffic = dp_sat_add(traffic, dp_job_bytes(j, 0));
    dp_run_items(j, params, traffic, lj.groups.count, ls_bwd_range);
    if (heap) free(heap);
  }
  if (grad_gamma) ls_combine(&lj, grad_gamma, (flags & DP_BWD_ACCUMULATE_GRAD_GAMMA) != 0);
  free(heap_partials);
  return DP_OK;
}

/* Without gamma the call is dp_backward's, bit for bit (f is not looked at;
 * asking for grad_gamma then is DP_ERR_BAD_ARGUMENT). Otherwise the work runs
 * in the library's floating-point state (core/fpenv.h). */
dp_status dp_backward_ls(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                         dp_tensor grad_out, dp_tensor f, const float *gamma, float *grad_gamma, const float *scales,
                         uint32_t flags) {
  if (!gamma) {
    const dp_status st = dp_check_params(params);
    if (st != DP_OK) return st;
    if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X | DP_BWD_ACCUMULATE_GRAD_GAMMA))
      return DP_ERR_BAD_FLAGS;
    if (grad_gamma) return DP_ERR_BAD_ARGUMENT;
    return dp_backward(params, shape, grad_f, grad_x, grad_out, scales, flags & ~(uint32_t)DP_BWD_ACCUMULATE_GRAD_GAMMA);
  }
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = backward_ls(params, &shape, &grad_f, &grad_x, &grad_out, &f, gamma, grad_gamma, scales, flags);
  dp_fpenv_leave(e);
  return st;
}
