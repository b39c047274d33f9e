/*
 * What the fused residual + norm operations (norm.c, norm_backward.c) share:
 * the descriptor check, the job, the row cursor and the output subset.
 *
 * A norm reduces over D, so its job is not elementwise: every row is whole
 * (core/rowwalk.h). It has more tensors than a dp_job's roles, so the job is
 * the first member of a norm_job that holds them all; the range function
 * gets &nj->j from dp_run_job and steps back to the norm_job. The dp_job's
 * own roles hold only role 0, the output whose memory order the thread split
 * follows.
 *
 * An output subset (dp_forward_norm_subset, dp_backward_norm_subset) makes
 * y (grad_y) compact: it holds the rows of the samples idx[0..kept) only,
 * sample i of it being sample idx[i] of the call. Every other role keeps all
 * B samples; a row whose sample is not in the subset has no y row (NULL).
 */
#ifndef DP_API_NORM_JOB_H
#define DP_API_NORM_JOB_H

#include <math.h>

#include "core/compactwalk.h"
#include "core/rowwalk.h"
#include "core/validate.h"
#include "droppath/droppath.h"
#include "kernels/norm/norm_kargs.h"

/* Rows up to this long keep a widened copy on the stack of the thread that
 * normalises them (16 KiB), which passes 2 and 3 re-read from L1; longer rows
 * re-read r or recompute it (the same bits). */
#define DP_NORM_TMP 4096

#define DP_NORM_MAX_ROLES 6

typedef struct dp_norm_job {
  dp_job j; /* first: dp_run_job's range function gets &j */
  dp_rowptr t[DP_NORM_MAX_ROLES];
  dp_norm_kargs a;
  const float *mean_in, *rstd_in; /* backward: the forward's statistics */
  float *mean_out, *rstd_out;     /* forward: where they go */
  dp_kernel_fn fn;
  unsigned stream_mode; /* kernel mode bits added when the walk streams */
  float *partials;      /* backward: per-group partials of grad_gamma, grad_beta, grad_ls_gamma (3*D each) */
  size_t group_rows, groups;
  int sub_on;            /* an output subset: y (grad_y) holds the samples sub_idx[0..sub_kept) only */
  const size_t *sub_idx; /* the subset's samples, ascending (NULL when sub_kept is 0) */
  size_t sub_kept;       /* their count */
} dp_norm_job;

static inline const dp_norm_job *dp_norm_job_of(const dp_job *j) { return (const dp_norm_job *)(const void *)j; }

/* The descriptor: present, a known kind, eps finite and >= 0. */
static inline dp_status dp_norm_check(const dp_norm *norm) {
  if (!norm) return DP_ERR_NULL_POINTER;
  if (norm->kind != DP_NORM_LAYER && norm->kind != DP_NORM_RMS) return DP_ERR_BAD_ARGUMENT;
  if (!(norm->eps >= 0.0f) || isinf(norm->eps)) return DP_ERR_BAD_ARGUMENT; /* NaN fails >= */
  return DP_OK;
}

/* Role r of the norm job is tensor t (validated; NULL data: absent). */
static inline void dp_norm_role(dp_norm_job *nj, int r, const dp_tensor *t) {
  dp_rowptr *p = &nj->t[r];
  p->es = dp_dtype_size(t->dtype);
  p->p = (unsigned char *)t->data;
  p->ss = t->sample_stride * p->es;
  p->ts = t->seq_stride * p->es;
}

/* Bytes of role r's B*T*D elements (0 when absent), saturating. */
static inline size_t dp_norm_mul_sat(size_t a, size_t b) { return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b; }
static inline size_t dp_norm_bytes(const dp_norm_job *nj, int r) {
  const dp_job *j = &nj->j;
  if (!nj->t[r].p) return 0;
  return dp_norm_mul_sat(dp_norm_mul_sat(dp_norm_mul_sat(j->B, j->T), j->D), nj->t[r].es);
}

/* Rows (b, t) in the order dp_run_job hands them out: t-major when role 0
 * is sequence-first (seq_major), else b-major; k = b*T + t indexes the
 * per-row statistics whatever the order. */
typedef struct dp_norm_cursor {
  size_t b, t;
} dp_norm_cursor;

static inline dp_norm_cursor dp_norm_cursor_at(const dp_job *j, size_t item) {
  dp_norm_cursor c;
  c.b = j->seq_major ? item % j->B : item / j->T;
  c.t = j->seq_major ? item / j->B : item % j->T;
  return c;
}

static inline void dp_norm_cursor_next(const dp_job *j, dp_norm_cursor *c) {
  if (j->seq_major) {
    if (++c->b == j->B) {
      c->b = 0;
      c->t++;
    }
  } else if (++c->t == j->T) {
    c->t = 0;
    c->b++;
  }
}

/* Row (b, t) of role r, or NULL when the role is absent. */
static inline unsigned char *dp_norm_row(const dp_norm_job *nj, int r, const dp_norm_cursor *c) {
  const dp_rowptr *p = &nj->t[r];
  return p->p ? p->p + c->b * p->ss + c->t * p->ts : NULL;
}

/* Row (b, t) of the compact role r (y, grad_y) under an output subset: the
 * row of its sample's rank i (idx[i] == b), or NULL when b is not in the
 * subset. *hint carries the search from row to row (start it at SIZE_MAX):
 * the walks visit b in increasing order, or from 0 again in the next t. */
static inline unsigned char *dp_norm_subset_row(const dp_norm_job *nj, int r, const dp_norm_cursor *c, size_t *hint) {
  const size_t *idx = nj->sub_idx, kept = nj->sub_kept;
  size_t i = *hint;
  if (i > kept || (i > 0 && idx[i - 1] >= c->b)) i = dp_kept_lower_bound(idx, kept, c->b);
  else
    while (i < kept && idx[i] < c->b) i++;
  *hint = i;
  if (i == kept || idx[i] != c->b) return NULL;
  const dp_rowptr *p = &nj->t[r];
  return p->p + i * p->ss + c->t * p->ts;
}

#endif /* DP_API_NORM_JOB_H */
