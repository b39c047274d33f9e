/*
 * The row walk: how an operation's rows are visited. An operation fills a
 * job (its tensors as roles 0..2, role 0 being the output whose memory order
 * the walk follows; the per-sample scales; the kernels its row function
 * calls) and provides a row function: what to do with n elements of one row,
 * or of several rows joined, at p[role], given the sample's scale s (0: the
 * sample is dropped). The walk does the rest:
 *   - small calls (at most DP_SMALL_BATCH samples on one thread) run in one
 *     loop on the calling thread, without dp_run_job's planning (dp_walk_small);
 *   - otherwise dp_run_job plans threads, splits rows into chunks when the
 *     batch is too small to share out, and runs each thread's share through
 *     the operation's range function, an instantiation of dp_walk_range;
 *   - when the operation is elementwise, adjacent rows with the same scale
 *     join into one kernel call and a sample's T rows become one row when
 *     they are back to back (same bits: kernels are elementwise).
 * Both walks are inline templates, so each operation's row function is
 * inlined into its own loops, as a hand-written loop would be.
 */
#ifndef DP_CORE_ROWWALK_H
#define DP_CORE_ROWWALK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"
#include "core/maskgen.h"
#include "core/parallel.h"
#include "droppath/droppath.h"
#include "kernels/common/inline.h"
#include "kernels/kernels.h"

/* Tensors a row function sees, p[0..DP_ROLES-1]; an absent one is NULL. */
#define DP_ROLES 3

typedef struct dp_rowptr {
  unsigned char *p; /* NULL if the role is absent */
  size_t ss, ts;    /* byte strides between samples and between rows */
  size_t es;        /* element size */
} dp_rowptr;

typedef struct dp_job dp_job;
/* A thread's share of the job: items [lo, hi). */
typedef void (*dp_range_fn)(const dp_job *j, size_t lo, size_t hi);

struct dp_job {
  /* Set by the operation: dp_job_init (add a new field with a default
   * there), dp_job_role for each tensor, then its own fields. */
  size_t B, T, D;
  dp_rowptr t[DP_ROLES];
  int elementwise;     /* rows may be split, joined and flattened (not a norm over D) */
  size_t period;       /* 0, or the length of a per-channel vector the kernels index (LayerScale's
                          gamma, `chan`): rows still join and flatten, but every kernel call starts
                          at channel 0 and covers whole periods (chunks are multiples of it) */
  const float *chan;   /* the per-channel vector, when period is set */
  const float *scales; /* per-sample scales; NULL: fixed_scale (fixed) or drawn per sample */
  int fixed;           /* every sample has fixed_scale (inference) */
  float fixed_scale;
  dp_mask_ctx mask;        /* set (dp_mask_ctx_init) when scales is NULL and not fixed: drawn per sample */
  dp_kernel_fn kernel, aux; /* what the row function calls */
  size_t written;          /* bytes of the outputs the kernels may stream */
  unsigned mode;           /* operation-specific kernel flags */
  int out_is_x;            /* role 0 is exactly role 1 (in place: it never streams) */
  /* Set by the walk (dp_walk_small, dp_run_job). */
  int stream;    /* kernels may use non-temporal stores: each thread fences after its share */
  int seq_major; /* visit rows t-major, following role 0's memory order */
  int dense;     /* every tensor's rows follow each other in memory */
  size_t chunk, chunks_per_row, items;
};

/* A job over shape with no roles, no kernels and no scales yet (mask
 * unset); the walk's own fields are set by dp_run_job. Fields are assigned
 * one by one, only those an operation may leave at their default: not
 * memset, a compound literal or a copy of a zero job, which GCC turns into
 * `rep stos`/`rep movs` for this ~250-byte struct, whose start-up alone was
 * ~8 ns of a ~150 ns tiny call on Zen 5. Inline, like the role and byte
 * helpers below: a tiny call pays each. */
static inline void dp_job_init(dp_job *j, const dp_shape *shape) {
  for (int r = 0; r < DP_ROLES; r++) j->t[r].p = NULL; /* absent; the walk reads nothing else of it */
  j->B = shape->batch;
  j->T = shape->seq ? shape->seq : 1;
  j->D = shape->dim;
  j->elementwise = 1;
  j->period = 0;
  j->scales = NULL;
  j->fixed = 0;
  j->fixed_scale = 0.0f;
  j->written = 0;
  j->mode = 0;
  j->out_is_x = 0;
}

/* Role r is tensor t (validated). */
static inline void dp_job_role(dp_job *j, int r, const dp_tensor *t) {
  j->t[r].es = dp_dtype_size(t->dtype);
  j->t[r].p = (unsigned char *)t->data;
  j->t[r].ss = t->sample_stride * j->t[r].es;
  j->t[r].ts = t->seq_stride * j->t[r].es;
}

/* j->scales of a call: the small batch's early draw (copied to dst when the
 * caller asked for the scales), else drawn now into dst, stack_buf
 * (DP_STACK_SCALES floats) or a heap block left in *heap (free it). */
static inline void dp_job_draw(dp_job *j, const dp_params *params, const float *drawn, float *dst, float *stack_buf,
                               float **heap) {
  *heap = NULL;
  if (drawn) {
    if (dst) memcpy(dst, drawn, j->B * sizeof(float));
    j->scales = drawn;
    return;
  }
  /* With D == 0 and no scales asked for nothing is drawn, and B (then
   * unchecked: no tensor spans it) must not size an exact-k selection. */
  dp_mask_ctx_init(&j->mask, params, dst || j->D != 0 ? j->B : 0);
  j->scales = dp_scales_prepare(&j->mask, j->B, j->D, dst, stack_buf, heap);
}

/* Bytes of the B*T*D elements of role r (0 when absent), saturating. */
static inline size_t dp_job_bytes(const dp_job *j, int r) {
  const size_t elems = j->B * j->T * j->D; /* fits: validated spans hold every row */
  const size_t es = j->t[r].p ? j->t[r].es : 0;
#if defined(__GNUC__)
  size_t bytes; /* a multiply and a flag test: a division costs more than a tiny call's kernel */
  return __builtin_mul_overflow(elems, es, &bytes) ? SIZE_MAX : bytes;
#else
  return es != 0 && elems > SIZE_MAX / es ? SIZE_MAX : elems * es;
#endif
}
/* Saturating a + b, for byte counts. */
static inline size_t dp_sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* Whether a job's kernels stream their stores on `threads` threads: outputs
 * larger than the call's cache share do (dp_plan_stream), unless they are
 * written in place, where every output line was just read and is in cache
 * already, so streaming saves no read-for-ownership (measured ~4% slower).
 * DP_FLAG_STREAM_ALWAYS streams either way. */
static inline int dp_job_stream(const dp_params *params, const dp_job *j, int threads) {
  return (params->flags & DP_FLAG_STREAM_ALWAYS) || (!j->out_is_x && dp_plan_stream(params, j->written, threads));
}

/* Threads for `rows` rows of `row_elems` elements moving traffic_bytes: a
 * row of an elementwise operation long enough to split counts as that many
 * items. The job and the small walk both decide with this. */
int dp_plan_row_threads(const dp_params *params, size_t traffic_bytes, size_t rows, size_t row_elems,
                        int elementwise);

/* Runs the job: plan threads, chunk rows, call range on each thread's share
 * (and fence when the job streams). traffic_bytes sizes the thread plan. */
void dp_run_job(dp_job *j, const dp_params *params, size_t traffic_bytes, dp_range_fn range);

/* Runs `items` work items the operation defines itself (not rows: groups of
 * rows that share a partial sum, say): plan threads for them, call range on
 * each thread's contiguous share [lo, hi) of [0, items), fence when the job
 * streams. The walk's row fields (chunk, seq_major, dense) are not set. */
void dp_run_items(dp_job *j, const dp_params *params, size_t traffic_bytes, size_t items, dp_range_fn range);

/* ---- the walk templates; row is a constant: the operation's inline row function */

typedef void (*dp_row_fn)(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n);

/* Scale of sample b: fixed, precomputed, or drawn (memoised). */
DP_ALWAYS_INLINE float dp_scale_of(const dp_job *j, size_t b, size_t *memo_b, float *memo_s) {
  if (j->fixed) return j->fixed_scale;
  if (j->scales) return j->scales[b];
  if (*memo_b != b) {
    *memo_s = dp_mask_sample_scale(&j->mask, b);
    *memo_b = b;
  }
  return *memo_s;
}

/* Rows b+1.. that can join row b's kernel call: the next ones in memory (the
 * job is dense) with the same scale. One call over n rows gives the same
 * bits as n calls (kernels are elementwise) and saves their per-call head
 * and tail work: ~11 ns of a tiny call's 8 calls of 384 elements. */
DP_ALWAYS_INLINE size_t dp_joinable_rows(const dp_job *j, size_t b, size_t hi, float s) {
  if (!j->dense) return 1;
  if (j->fixed) return hi - b; /* one scale for every row */
  if (!j->scales) return 1;    /* drawn per row: keep to one draw each */
  size_t n = 1;
  while (b + n < hi && j->scales[b + n] == s) n++;
  return n;
}

/* Items [lo, hi) of a planned job (dp_run_job). */
DP_ALWAYS_INLINE void dp_walk_range(const dp_job *j, size_t lo, size_t hi, dp_row_fn row) {
  size_t memo_b = SIZE_MAX;
  float memo_s = 0.0f;
  unsigned char *p[DP_ROLES];
  if (lo >= hi) return;
  if (j->T == 1 && j->chunks_per_row == 1) {
    /* Plain [B][D] rows, the common case: walk pointers, no index maths. */
    for (int r = 0; r < DP_ROLES; r++) p[r] = j->t[r].p ? j->t[r].p + lo * j->t[r].ss : NULL;
    for (size_t b = lo;;) {
      const float s = dp_scale_of(j, b, &memo_b, &memo_s);
      const size_t n = dp_joinable_rows(j, b, hi, s);
      row(j, p, s, n * j->D);
      b += n;
      if (b == hi) break; /* never step past the last row: that address may not exist */
      for (int r = 0; r < DP_ROLES; r++)
        if (p[r]) p[r] += n * j->t[r].ss;
    }
    return;
  }
  /* Item = (row, chunk); rows b-major or t-major. One division for the range. */
  const size_t row0 = lo / j->chunks_per_row;
  size_t c = lo % j->chunks_per_row;
  size_t b = j->seq_major ? row0 % j->B : row0 / j->T;
  size_t t = j->seq_major ? row0 / j->B : row0 % j->T;
  for (size_t i = lo; i < hi; i++) {
    const size_t d0 = c * j->chunk;
    const size_t n = j->D - d0 < j->chunk ? j->D - d0 : j->chunk;
    for (int r = 0; r < DP_ROLES; r++)
      p[r] = j->t[r].p ? j->t[r].p + b * j->t[r].ss + t * j->t[r].ts + d0 * j->t[r].es : NULL;
    row(j, p, dp_scale_of(j, b, &memo_b, &memo_s), n);
    if (++c < j->chunks_per_row) continue;
    c = 0;
    if (j->seq_major) {
      if (++b == j->B) {
        b = 0;
        t++;
      }
    } else if (++t == j->T) {
      t = 0;
      b++;
    }
  }
}

/*
 * A small call (see DP_SMALL_BATCH) of an elementwise operation whose scales
 * are ready, in one loop on the calling thread: returns 0 (nothing done)
 * otherwise. On a tiny call (8 x 384 f32) planning and walking a job through
 * dp_run_job cost ~15 ns over the same kernel calls made by hand (bench
 * tiny/api vs tiny/direct). Same row calls as the job walk, so the same bits.
 */
DP_ALWAYS_INLINE int dp_walk_small(dp_job *j, const dp_params *params, size_t traffic_bytes, dp_row_fn row) {
  const size_t B = j->B;
  size_t n = j->D; /* elements per row: a sample's T rows when they are back to back */
  if (B > DP_SMALL_BATCH || n == 0 || !j->elementwise || (!j->fixed && !j->scales)) return 0;
  if (j->T > 1) {
    for (int r = 0; r < DP_ROLES; r++)
      if (j->t[r].p && j->t[r].ts != n * j->t[r].es) return 0;
    n *= j->T; /* fits: a validated span holds every row */
  }
  /* The job's own thread decision, on the same numbers. */
  if (dp_plan_row_threads(params, traffic_bytes, B, n, 1) != 1) return 0;
  j->stream = dp_job_stream(params, j, 1);
  unsigned char *p[DP_ROLES];
  int dense = 1;
  for (int r = 0; r < DP_ROLES; r++) {
    p[r] = j->t[r].p;
    if (p[r] && j->t[r].ss != n * j->t[r].es) dense = 0;
  }
  for (size_t b = 0, run;;) {
    const float s = j->fixed ? j->fixed_scale : j->scales[b];
    run = 1; /* adjacent rows with the same scale share one call (see dp_joinable_rows) */
    if (dense) {
      if (j->fixed) run = B - b;
      else
        while (b + run < B && j->scales[b + run] == s) run++;
    }
    row(j, p, s, run * n);
    b += run;
    if (b == B) break; /* never step past the last row: that address may not exist */
    for (int r = 0; r < DP_ROLES; r++)
      if (p[r]) p[r] += run * j->t[r].ss;
  }
  if (j->stream) dp_stream_fence();
  return 1;
}

#endif /* DP_CORE_ROWWALK_H */
