/* The walk of LayerScale's backward and its fixed-order grad_gamma
 * reduction (ls_backward.h), shared by the dense and compacted backward. */
#include "api/ls_backward.h"

#include <stdlib.h>
#include <string.h>

#include "core/compactwalk.h"
#include "core/dtype.h"

#define LS_STACK_PARTIALS 1024

void dp_ls_bwd_init(dp_ls_bwd_job *lj, const dp_shape *shape, const float *gamma) {
  dp_job_init(&lj->j, shape);
  lj->groups = dp_param_groups_of(lj->j.B * lj->j.T, lj->j.D);
  lj->f.p = NULL;
  lj->gamma = gamma;
  lj->partials = NULL;
  lj->compact = 0;
  lj->idx = NULL;
  lj->kept = 0;
  lj->s = 0.0f;
}

void dp_ls_bwd_f(dp_ls_bwd_job *lj, const dp_tensor *f) {
  lj->f.es = dp_dtype_size(f->dtype);
  lj->f.p = (unsigned char *)f->data;
  lj->f.ss = f->sample_stride * lj->f.es;
  lj->f.ts = f->seq_stride * lj->f.es;
}

/* k rows from row pointers p (grad_f, grad_x, grad_out) and pf, all of scale
 * s; acc: the group's partial sums or NULL. Dropped rows as dp_backward's
 * (grad_x first: grad_f may be grad_out and is zeroed after; a compact
 * grad_f has no dropped rows, p[0] NULL); f and acc are not touched for them. */
static void ls_bwd_rows(const dp_ls_bwd_job *lj, unsigned char *const p[DP_ROLES], const unsigned char *pf,
                        float *acc, float s, size_t k) {
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
  if (p[0] && !(j->mode & DP_KBWD_ACC_F)) memset(p[0], 0, n * j->t[0].es);
}

/* Scale of sample b; pos is the rank of the first kept sample >= b under
 * compaction (b itself otherwise). */
static inline float ls_scale(const dp_ls_bwd_job *lj, size_t b, size_t pos, size_t *memo_b, float *memo_s) {
  if (lj->compact) return pos < lj->kept && lj->idx[pos] == b ? lj->s : 0.0f;
  return dp_scale_of(&lj->j, b, memo_b, memo_s);
}

/* Whether sample nb, after a run of scale s from sample b (rank pos), has
 * scale s too and so joins the run (the job is dense). */
static inline int ls_joins(const dp_ls_bwd_job *lj, size_t b, size_t pos, size_t nb, float s) {
  const dp_job *j = &lj->j;
  if (lj->compact) {
    const size_t np = s != 0.0f ? pos + (nb - b) : pos; /* a kept run's samples are consecutive ranks */
    return (np < lj->kept && lj->idx[np] == nb) == (s != 0.0f);
  }
  return j->fixed || (j->scales && j->scales[nb] == s);
}

/* Groups [lo, hi): each zeroes its partial sums and adds its rows to them in
 * row order, runs of rows of one scale that follow each other in memory
 * (the job is dense) in one kernel call. grad_f and f rows are those of
 * sample pos: b itself, or its rank under compaction. */
static void ls_bwd_range(const dp_job *j_, size_t lo, size_t hi) {
  const dp_ls_bwd_job *lj = (const dp_ls_bwd_job *)j_;
  const dp_job *j = &lj->j;
  const size_t T = j->T, R = j->B * T, per = lj->groups.per;
  size_t memo_b = SIZE_MAX;
  float memo_s = 0.0f;
  for (size_t k = lo; k < hi; k++) {
    float *acc = lj->partials ? lj->partials + k * j->D : NULL;
    if (acc) memset(acc, 0, j->D * sizeof(float)); /* +0.0f */
    const size_t r1 = (k + 1) * per < R ? (k + 1) * per : R;
    size_t r = k * per, b = r / T, t = r % T;
    size_t pos = lj->compact ? dp_kept_lower_bound(lj->idx, lj->kept, b) : b;
    while (r < r1) {
      const float s = ls_scale(lj, b, pos, &memo_b, &memo_s);
      size_t run = 1;
      if (j->dense) {
        run = T - t; /* the rest of the sample, then following samples of the same scale */
        for (size_t nb = b + 1; r + run < r1 && ls_joins(lj, b, pos, nb, s); nb++) run += T;
        if (run > r1 - r) run = r1 - r;
      }
      /* A compact role has no row for a dropped sample. */
      const int own = !lj->compact || s != 0.0f;
      unsigned char *p[DP_ROLES];
      for (int q = 0; q < DP_ROLES; q++) {
        const size_t sb = q == 0 ? pos : b;
        p[q] = j->t[q].p && (q != 0 || own) ? j->t[q].p + sb * j->t[q].ss + t * j->t[q].ts : NULL;
      }
      const unsigned char *pf = lj->f.p && s != 0.0f ? lj->f.p + pos * lj->f.ss + t * lj->f.ts : NULL;
      ls_bwd_rows(lj, p, pf, acc, s, run);
      r += run;
      t += run;
      const size_t db = t / T;
      b += db;
      t %= T;
      if (own) pos += db; /* a dropped run under compaction leaves the rank where it is */
    }
  }
}

/* Whether every present tensor's rows follow each other in memory (b-major). */
static int ls_dense(const dp_ls_bwd_job *lj) {
  const dp_job *j = &lj->j;
  for (int q = 0; q < DP_ROLES; q++)
    if (j->t[q].p && (j->t[q].ts != j->D * j->t[q].es || j->t[q].ss != j->T * j->D * j->t[q].es)) return 0;
  return !lj->f.p || (lj->f.ts == j->D * lj->f.es && lj->f.ss == j->T * j->D * lj->f.es);
}

dp_status dp_ls_bwd_run(dp_ls_bwd_job *lj, const dp_params *params, size_t traffic_bytes, float *grad_gamma,
                        int accumulate_gamma) {
  dp_job *j = &lj->j;
  float stack_partials[LS_STACK_PARTIALS];
  float *heap_partials = NULL;
  /* At least one group's partials: with no rows the sum is +0. */
  const size_t count = lj->groups.count ? lj->groups.count : 1;
  lj->partials = NULL;
  if (grad_gamma) {
    const size_t floats = count * j->D; /* fits: count * D <= max(64, D) * D, and D floats are validated */
    if (floats <= LS_STACK_PARTIALS) lj->partials = stack_partials;
    else if (!(lj->partials = heap_partials = (float *)malloc(floats * sizeof(float)))) return DP_ERR_NO_MEMORY;
    if (!lj->groups.count) memset(lj->partials, 0, j->D * sizeof(float));
  }
  if (lj->groups.count) {
    j->elementwise = 0; /* the walk of groups is the operation's own */
    j->dense = ls_dense(lj);
    dp_run_items(j, params, traffic_bytes, lj->groups.count, ls_bwd_range);
  }
  if (grad_gamma) dp_param_groups_total(grad_gamma, lj->partials, count, j->D, j->D, accumulate_gamma);
  free(heap_partials);
  lj->partials = NULL; /* the stack block ends here */
  return DP_OK;
}
