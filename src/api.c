/* Public operations: validate everything, draw the mask, then walk the rows
 * (optionally across OpenMP threads) calling the dispatched kernels. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if DP_HAVE_OPENMP
#include <omp.h>
#endif

typedef enum dp_op { OP_FWD, OP_INFER, OP_DROP_PATH, OP_BWD } dp_op;

/* Tensor roles: FWD/INFER out,x,f; DROP_PATH out,x; BWD gf,gx,g. */
enum { R_OUT = 0, R_X = 1, R_F = 2, R_GF = 0, R_GX = 1, R_G = 2, R_COUNT = 3 };

typedef struct dp_rowptr {
  unsigned char *p; /* NULL if the role is absent */
  size_t ss, ts;    /* byte strides between samples and between rows */
  size_t es;        /* element size */
} dp_rowptr;

/* Fields are set one by one in init_job(): add any new one there too. */
typedef struct dp_job {
  dp_op op;
  size_t B, T, D;
  size_t chunk, chunks_per_row, items;
  int seq_major; /* visit rows t-major, following the output's memory order */
  dp_rowptr t[R_COUNT];
  const float *scales; /* per-sample scale, or NULL to draw per item */
  dp_mask_ctx mask;
  float fixed_scale; /* OP_INFER */
  int out_is_x;      /* out and x are the same tensor: dropped rows need no work */
  int dense;         /* every tensor's rows follow each other in memory */
  int stream;
  unsigned bwd_mode;
  dp_fwd_fn fwd, fwd_x; /* fwd_x: X+X accumulate for grad_x of dropped rows */
  dp_scale_fn scale;
  dp_bwd_fn bwd;
} dp_job;

#if defined(__GNUC__)
#define DP_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define DP_ALWAYS_INLINE static inline
#endif

/* Work item = (row, chunk); rows are visited b-major or t-major. */
typedef struct dp_cursor {
  size_t b, t, c;
} dp_cursor;

static dp_cursor cursor_at(const dp_job *j, size_t item) {
  const size_t row = item / j->chunks_per_row;
  dp_cursor k;
  k.c = item % j->chunks_per_row;
  k.b = j->seq_major ? row % j->B : row / j->T;
  k.t = j->seq_major ? row / j->B : row % j->T;
  return k;
}

static void cursor_next(const dp_job *j, dp_cursor *k) {
  if (++k->c < j->chunks_per_row) return;
  k->c = 0;
  if (j->seq_major) {
    if (++k->b == j->B) {
      k->b = 0;
      k->t++;
    }
  } else if (++k->t == j->T) {
    k->t = 0;
    k->b++;
  }
}

/* Scale of sample b: fixed (inference), precomputed, or drawn (memoised). */
static inline float scale_of(const dp_job *j, dp_op op, size_t b, size_t *memo_b, float *memo_s) {
  if (op == OP_INFER) return j->fixed_scale;
  if (j->scales) return j->scales[b];
  if (*memo_b != b) {
    *memo_s = dp_mask_sample_scale(&j->mask, b);
    *memo_b = b;
  }
  return *memo_s;
}

/* One run of n elements of one row; p[] point at its first element. */
static inline void run_row(const dp_job *j, dp_op op, unsigned char *const p[R_COUNT], float s, size_t n) {
  switch (op) {
    case OP_FWD:
    case OP_INFER:
      if (s != 0.0f) j->fwd(p[R_OUT], p[R_X], p[R_F], s, n, j->stream);
      else if (!j->out_is_x) memcpy(p[R_OUT], p[R_X], n * j->t[R_X].es); /* f is never read */
      break;
    case OP_DROP_PATH:
      if (s != 0.0f) j->scale(p[R_OUT], p[R_X], s, n, j->stream);
      else memset(p[R_OUT], 0, n * j->t[R_OUT].es); /* +0.0 in every dtype */
      break;
    case OP_BWD:
      if (s != 0.0f) {
        j->bwd(p[R_GF], p[R_GX], p[R_G], s, n, j->bwd_mode);
        break;
      }
      /* grad_x first: grad_f may be grad_out itself and is zeroed below. */
      if (p[R_GX]) {
        if (j->bwd_mode & DP_KBWD_ACC_X) j->fwd_x(p[R_GX], p[R_GX], p[R_G], 1.0f, n, 0);
        else memcpy(p[R_GX], p[R_G], n * j->t[R_G].es);
      }
      if (!(j->bwd_mode & DP_KBWD_ACC_F)) memset(p[R_GF], 0, n * j->t[R_GF].es);
      break;
  }
}

DP_ALWAYS_INLINE void run_item(const dp_job *j, dp_op op, const dp_cursor *k, size_t *memo_b, float *memo_s) {
  const size_t d0 = k->c * j->chunk;
  const size_t n = j->D - d0 < j->chunk ? j->D - d0 : j->chunk;
  unsigned char *p[R_COUNT];
  for (int r = 0; r < R_COUNT; r++)
    p[r] = j->t[r].p ? j->t[r].p + k->b * j->t[r].ss + k->t * j->t[r].ts + d0 * j->t[r].es : NULL;
  run_row(j, op, p, scale_of(j, op, k->b, memo_b, memo_s), n);
}

/* Rows b+1.. that can join row b's kernel call: the next ones in memory (the
 * job is dense) with the same scale. One call over n rows gives the same
 * bits as n calls (kernels are elementwise) and saves their per-call head
 * and tail work: ~11 ns of a tiny call's 8 calls of 384 elements. */
DP_ALWAYS_INLINE size_t joinable_rows(const dp_job *j, dp_op op, size_t b, size_t hi, float s) {
  if (!j->dense) return 1;
  if (op == OP_INFER) return hi - b; /* one scale for every row */
  if (!j->scales) return 1;          /* drawn per row: keep to one draw each */
  size_t n = 1;
  while (b + n < hi && j->scales[b + n] == s) n++;
  return n;
}

/* The row walk, inlined once per operation (run_range passes a constant op)
 * so the per-row switch and the inference test fold away. */
DP_ALWAYS_INLINE void run_range_op(const dp_job *j, size_t lo, size_t hi, dp_op op) {
  size_t memo_b = SIZE_MAX;
  float memo_s = 0.0f;
  if (j->T == 1 && j->chunks_per_row == 1) {
    /* Plain [B][D] rows, the common case: walk pointers, no index maths. */
    unsigned char *p[R_COUNT];
    for (int r = 0; r < R_COUNT; r++) p[r] = j->t[r].p ? j->t[r].p + lo * j->t[r].ss : NULL;
    for (size_t b = lo;;) {
      const float s = scale_of(j, op, b, &memo_b, &memo_s);
      const size_t n = joinable_rows(j, op, b, hi, s);
      run_row(j, op, p, s, n * j->D);
      b += n;
      if (b == hi) break; /* never step past the last row: that address may not exist */
      for (int r = 0; r < R_COUNT; r++)
        if (p[r]) p[r] += n * j->t[r].ss;
    }
  } else {
    dp_cursor k = cursor_at(j, lo); /* the only division of the range */
    for (size_t i = lo; i < hi; i++, cursor_next(j, &k)) run_item(j, op, &k, &memo_b, &memo_s);
  }
}

static void run_range(const dp_job *j, size_t lo, size_t hi) {
  if (lo >= hi) return;
  switch (j->op) {
    case OP_FWD: run_range_op(j, lo, hi, OP_FWD); break;
    case OP_INFER: run_range_op(j, lo, hi, OP_INFER); break;
    case OP_DROP_PATH: run_range_op(j, lo, hi, OP_DROP_PATH); break;
    case OP_BWD: run_range_op(j, lo, hi, OP_BWD); break;
  }
  if (j->stream || (j->bwd_mode & DP_KBWD_STREAM)) dp_stream_fence();
}

/* Minimum elements per work item when rows are split across threads: large
 * enough that per-item overhead vanishes, a multiple of 16 so split points
 * fall on cache lines of aligned f32 rows. */
#define DP_MIN_CHUNK ((size_t)4096)

static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* When each sample's T rows are back to back in every tensor, a sample is
 * one row of T*D elements (same scale, same bits): fewer, longer kernel
 * calls. Then note whether consecutive samples are back to back too. */
static void flatten_rows(dp_job *j) {
  int seq_dense = j->T > 1, dense = 1;
  for (int r = 0; r < R_COUNT; r++)
    if (j->t[r].p && j->t[r].ts != j->D * j->t[r].es) seq_dense = 0;
  if (seq_dense) {
    j->D *= j->T; /* fits: a validated span holds every row */
    j->T = 1;
    j->seq_major = 0; /* rows of one sample are adjacent, so the output was sample-major */
  }
  for (int r = 0; r < R_COUNT; r++)
    if (j->t[r].p && j->t[r].ss != j->D * j->t[r].es) dense = 0;
  j->dense = j->T == 1 && dense;
}

/* Threads for `rows` rows of `row_elems` elements moving traffic_bytes: a
 * row long enough to split into DP_MIN_CHUNK pieces counts as that many
 * items. The job and the small-call loop both decide with this. */
static int plan_row_threads(const dp_params *params, size_t traffic_bytes, size_t rows, size_t row_elems) {
  const size_t max_chunks = row_elems / DP_MIN_CHUNK > 0 ? row_elems / DP_MIN_CHUNK : 1;
  return dp_plan_threads(params, traffic_bytes, rows * max_chunks);
}

static void run_job(dp_job *j, const dp_params *params, size_t traffic_bytes) {
  flatten_rows(j);
  const size_t rows = j->B * j->T; /* fits: a validated span holds every row */
  const int nt = plan_row_threads(params, traffic_bytes, rows, j->D);
  j->chunk = j->D;
  if (nt > 1 && rows < (size_t)nt * 8) {
    /* Few rows for the threads (B = 1, say): split rows too. */
    const size_t want = (size_t)nt * 8;
    const size_t per_row = (want + rows - 1) / rows;
    size_t chunk = (j->D + per_row - 1) / per_row;
    chunk = (chunk + 15) & ~(size_t)15;
    j->chunk = chunk < DP_MIN_CHUNK ? DP_MIN_CHUNK : chunk;
    if (j->chunk > j->D) j->chunk = j->D;
  }
  /* (A division costs as much as a tiny call's validation: skip it.) */
  j->chunks_per_row = j->chunk == j->D ? 1 : (j->D + j->chunk - 1) / j->chunk;
  j->items = rows * j->chunks_per_row;
#if DP_HAVE_OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const size_t k = (size_t)omp_get_thread_num(), m = (size_t)omp_get_num_threads();
      const size_t base = j->items / m, rem = j->items % m;
      const size_t lo = k * base + (k < rem ? k : rem);
      run_range(j, lo, lo + base + (k < rem ? 1 : 0));
    }
    return;
  }
#endif
  run_range(j, 0, j->items);
}

static void set_role(dp_job *j, int role, const dp_tensor *t) {
  j->t[role].es = dp_dtype_size(t->dtype);
  j->t[role].p = (unsigned char *)t->data;
  j->t[role].ss = t->sample_stride * j->t[role].es;
  j->t[role].ts = t->seq_stride * j->t[role].es;
}

/* Every field is assigned by name (a new field must be added here). Not
 * memset, a compound literal or a copy of a zero job: for this ~250-byte
 * struct GCC turns each into `rep stos`/`rep movs`, whose start-up alone was
 * ~8 ns of a ~150 ns tiny call on Zen 5 (perf annotate of dp_forward). */
static void init_job(dp_job *j, dp_op op, const dp_params *params, const dp_shape *shape) {
  static const dp_rowptr absent = {NULL, 0, 0, 0};
  for (int r = 0; r < R_COUNT; r++) j->t[r] = absent;
  j->scales = NULL;
  j->fixed_scale = 0.0f;
  j->out_is_x = 0;
  j->dense = 0;
  j->stream = 0;
  j->bwd_mode = 0;
  j->fwd = j->fwd_x = NULL;
  j->scale = NULL;
  j->bwd = NULL;
  j->chunk = j->chunks_per_row = j->items = 0;
  j->seq_major = 0;
  j->op = op;
  j->B = shape->batch;
  j->T = shape->seq ? shape->seq : 1;
  j->D = shape->dim;
  dp_mask_ctx_init(&j->mask, params);
}

/* Iterate rows in the output's memory order: seq-first tensors t-major. */
static void choose_order(dp_job *j, const dp_tensor *out) {
  j->seq_major = j->T > 1 && j->B > 1 && out->seq_stride > out->sample_stride;
}

/* Small batches keep their per-sample scales on the stack. */
#define DP_STACK_SCALES 1024

/* Fill per-sample scales for the job: into `dst` when the caller wants them,
 * else a stack or heap buffer; with no memory, items draw their own. */
static float *prepare_scales(dp_job *j, float *dst, float *stack_buf, float **heap) {
  *heap = NULL;
  float *s = dst;
  /* No data to scale and no caller buffer: nothing to draw. (B is unchecked
   * when D == 0, so it must not size an allocation here.) */
  if (!s && j->D == 0) return NULL;
  if (!s && j->B <= DP_STACK_SCALES) s = stack_buf;
  if (!s && j->B <= SIZE_MAX / sizeof(float)) s = *heap = (float *)malloc(j->B * sizeof(float));
  if (s) dp_mask_fill_scales(&j->mask, 0, j->B, s);
  return s;
}

/* Bytes of B*T*D elements of size es; B*T*D itself fits (validated spans). */
static size_t row_bytes(const dp_job *j, size_t es) {
  const size_t elems = j->B * j->T * j->D;
  return es != 0 && elems > SIZE_MAX / es ? SIZE_MAX : elems * es;
}

/* Output o may be exactly input i, or not overlap it at all. */
static dp_status check_alias(const dp_tensor *o, dp_extent oe, const dp_tensor *i, dp_extent ie,
                             const dp_shape *shape, int alias_allowed) {
  if (!dp_extents_overlap(oe, ie)) return DP_OK;
  return alias_allowed && dp_tensors_identical(o, i, shape) ? DP_OK : DP_ERR_OVERLAP;
}

/* Validation of the tensors shared by dp_forward and dp_inference_add
 * (params are checked first; scales_out may be NULL); yields the forward
 * kernel for the dtypes. */
static dp_status check_residual(const dp_shape *shape, const dp_tensor *out,
                                const dp_tensor *x, const dp_tensor *f, const float *scales_out,
                                dp_fwd_fn *fwd) {
  dp_status st;
  dp_extent eo, ex, ef, es;
  if ((st = dp_check_tensor(out, shape, &eo)) != DP_OK) return st;
  if ((st = dp_check_tensor(x, shape, &ex)) != DP_OK) return st;
  if ((st = dp_check_tensor(f, shape, &ef)) != DP_OK) return st;
  const int combo = dp_combo_of(x->dtype, f->dtype);
  if (combo < 0 || out->dtype != x->dtype) return DP_ERR_BAD_DTYPE;
  if ((st = dp_check_array(scales_out, scales_out ? shape->batch : 0, sizeof(float), &es)) != DP_OK)
    return st;
  if ((st = check_alias(out, eo, x, ex, shape, 1)) != DP_OK) return st;
  if ((st = check_alias(out, eo, f, ef, shape, 1)) != DP_OK) return st;
  if (dp_extents_overlap(es, eo) || dp_extents_overlap(es, ex) || dp_extents_overlap(es, ef))
    return DP_ERR_OVERLAP;
  *fwd = dp_current_kernels()->fwd[combo];
  return *fwd ? DP_OK : DP_ERR_BAD_DTYPE;
}

/* out = x + s*f over all rows of a validated call with D > 0. */
/* Whether a residual op writing out_bytes streams its stores. In place,
 * every output line was just read, so it is in cache already: streaming
 * saves no read-for-ownership there (measured ~4% slower). */
static int residual_stream(const dp_params *params, int out_is_x, size_t out_bytes) {
  return (params->flags & DP_FLAG_STREAM_ALWAYS) || (!out_is_x && dp_plan_stream(params, out_bytes));
}

/* Bytes a residual op moves over `elems` elements: reads x and f, writes out. */
static size_t residual_traffic(size_t elems, size_t xs, size_t fs) {
  const size_t x_bytes = elems > SIZE_MAX / (2 * xs) ? SIZE_MAX : elems * 2 * xs;
  return sat_add(x_bytes, elems > SIZE_MAX / fs ? SIZE_MAX : elems * fs);
}

static void run_residual(dp_job *j, const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                         const dp_tensor *x, const dp_tensor *f, dp_fwd_fn fwd) {
  set_role(j, R_OUT, out);
  set_role(j, R_X, x);
  set_role(j, R_F, f);
  j->out_is_x = dp_tensors_identical(out, x, shape);
  j->fwd = fwd;
  j->stream = residual_stream(params, j->out_is_x, row_bytes(j, j->t[R_OUT].es));
  choose_order(j, out);
  run_job(j, params, residual_traffic(j->B * j->T * j->D, j->t[R_X].es, j->t[R_F].es));
}

/* ---- small calls
 * A call of at most DP_SMALL_BATCH samples that runs on one thread skips the
 * job: validation, then one loop over the rows. On a tiny call (8 x 384 f32)
 * setting up and walking a job cost ~15 ns over the same kernel calls made
 * by hand (bench tiny/api vs tiny/direct). Its mask is drawn before the
 * tensors are validated: the Philox chain is latency-bound (~24 ns for 8
 * samples on Zen 5) and the checks run in its shadow. The draw goes to the
 * stack, so a rejected call still writes nothing. */
#define DP_SMALL_BATCH 16

/* The mask of a small batch (1..DP_SMALL_BATCH samples) into buf, else NULL. */
static const float *draw_small(const dp_params *params, size_t batch, float buf[DP_SMALL_BATCH]) {
  if (batch == 0 || batch > DP_SMALL_BATCH) return NULL;
  if (params->mode == DP_MODE_BATCH) { /* one draw for all */
    dp_mask_ctx ctx;
    dp_mask_ctx_init(&ctx, params);
    dp_mask_fill_scales(&ctx, 0, batch, buf);
    return buf;
  }
  /* The kernel called here rather than through a mask context: measured
   * ~8 ns less on the tiny call (the draw starts that much sooner). */
  float keep, scale;
  dp_keep_and_scale(params, &keep, &scale);
  dp_current_kernels()->mask[DP_COMBO_F32](params->seed, params->offset, params->sample_base, keep, scale, batch, buf);
  return buf;
}

/* out = x + s[b]*f (s = NULL: fixed_s for every row) on one thread without a
 * job, when the call is small and its rows are plain: returns 0 (nothing
 * done) otherwise. Same kernels and calls as the job walk, so same bits. */
static int run_small_residual(const dp_params *params, const dp_shape *shape, const dp_tensor *out,
                              const dp_tensor *x, const dp_tensor *f, dp_fwd_fn fwd, const float *s,
                              float fixed_s) {
  const size_t B = shape->batch, T = shape->seq ? shape->seq : 1;
  size_t n = shape->dim; /* elements per row: a sample's T rows when they are back to back */
  if (B > DP_SMALL_BATCH || n == 0) return 0;
  if (T > 1) {
    if (out->seq_stride != n || x->seq_stride != n || f->seq_stride != n) return 0;
    n *= T; /* fits: a validated span holds every row */
  }
  const size_t xs = dp_dtype_size(x->dtype), fs = dp_dtype_size(f->dtype);
  /* The job's own decisions (run_residual, run_job), on the same numbers. */
  if (plan_row_threads(params, residual_traffic(B * n, xs, fs), B, n) != 1) return 0;
  const int out_is_x = dp_tensors_identical(out, x, shape);
  const int stream = residual_stream(params, out_is_x, B * n * xs); /* fits: validated span */
  unsigned char *po = (unsigned char *)out->data;
  const unsigned char *px = (const unsigned char *)x->data, *pf = (const unsigned char *)f->data;
  const size_t so = out->sample_stride * xs, sx = x->sample_stride * xs, sf = f->sample_stride * fs;
  const int dense = so == n * xs && sx == n * xs && sf == n * fs;
  for (size_t b = 0, run;; ) {
    const float sb = s ? s[b] : fixed_s;
    run = 1; /* adjacent rows with the same scale share one call (see joinable_rows) */
    if (dense) {
      if (!s) run = B - b;
      else
        while (b + run < B && s[b + run] == sb) run++;
    }
    if (sb != 0.0f) fwd(po, px, pf, sb, run * n, stream);
    else if (!out_is_x) memcpy(po, px, run * n * xs); /* f is never read */
    b += run;
    if (b == B) break; /* never step past the last row: that address may not exist */
    po += run * so;
    px += run * sx;
    pf += run * sf;
  }
  if (stream) dp_stream_fence();
  return 1;
}

dp_status dp_forward(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                     float *scales_out) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  float small[DP_SMALL_BATCH];
  const float *drawn = draw_small(params, shape.batch, small);
  dp_fwd_fn fwd;
  if ((st = check_residual(&shape, &out, &x, &f, scales_out, &fwd)) != DP_OK || shape.batch == 0) return st;
  if (drawn) {
    if (scales_out) memcpy(scales_out, drawn, shape.batch * sizeof(float));
    if (shape.dim == 0 || run_small_residual(params, &shape, &out, &x, &f, fwd, drawn, 0.0f)) return DP_OK;
  }

  dp_job j;
  init_job(&j, OP_FWD, params, &shape);
  float stack_scales[DP_STACK_SCALES], *heap = NULL;
  j.scales = drawn ? drawn : prepare_scales(&j, scales_out, stack_scales, &heap);
  if (j.D != 0) run_residual(&j, params, &shape, &out, &x, &f, fwd);
  if (heap) free(heap); /* most calls never allocate: skip the call */
  return DP_OK;
}

dp_status dp_inference_add(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                           dp_tensor f) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  dp_fwd_fn fwd;
  if ((st = check_residual(&shape, &out, &x, &f, NULL, &fwd)) != DP_OK || shape.batch == 0 || shape.dim == 0)
    return st;
  /* Trained with 1/keep scaling: the expectation is already x + f.
   * Trained without (Huang et al.): scale the branch by keep at test time. */
  float keep, unused;
  dp_keep_and_scale(params, &keep, &unused);
  const float fixed = params->scale_by_keep ? 1.0f : keep;
  if (run_small_residual(params, &shape, &out, &x, &f, fwd, NULL, fixed)) return DP_OK;

  dp_job j;
  init_job(&j, OP_INFER, params, &shape);
  j.fixed_scale = fixed;
  run_residual(&j, params, &shape, &out, &x, &f, fwd);
  return DP_OK;
}

dp_status dp_drop_path(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                       float *scales_out) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  float small[DP_SMALL_BATCH];
  const float *drawn = draw_small(params, shape.batch, small); /* see "small calls" */
  dp_extent eo, ex, es;
  if ((st = dp_check_tensor(&out, &shape, &eo)) != DP_OK) return st;
  if ((st = dp_check_tensor(&x, &shape, &ex)) != DP_OK) return st;
  const int combo = dp_combo_of(x.dtype, x.dtype);
  if (combo < 0 || out.dtype != x.dtype) return DP_ERR_BAD_DTYPE;
  if ((st = dp_check_array(scales_out, scales_out ? shape.batch : 0, sizeof(float), &es)) != DP_OK)
    return st;
  if ((st = check_alias(&out, eo, &x, ex, &shape, 1)) != DP_OK) return st;
  if (dp_extents_overlap(es, eo) || dp_extents_overlap(es, ex)) return DP_ERR_OVERLAP;
  const dp_kernel_table *k = dp_current_kernels();
  if (!k->scale[combo]) return DP_ERR_BAD_DTYPE;
  if (shape.batch == 0) return DP_OK;

  dp_job j;
  init_job(&j, OP_DROP_PATH, params, &shape);
  float stack_scales[DP_STACK_SCALES], *heap = NULL;
  if (drawn && scales_out) memcpy(scales_out, drawn, shape.batch * sizeof(float));
  j.scales = drawn ? drawn : prepare_scales(&j, scales_out, stack_scales, &heap);
  if (j.D != 0) {
    set_role(&j, R_OUT, &out);
    set_role(&j, R_X, &x);
    j.scale = k->scale[combo];
    j.stream = dp_plan_stream(params, row_bytes(&j, j.t[R_OUT].es));
    choose_order(&j, &out);
    run_job(&j, params, row_bytes(&j, 2 * j.t[R_X].es));
  }
  if (heap) free(heap);
  return DP_OK;
}

dp_status dp_backward(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                      dp_tensor grad_out, const float *scales, uint32_t flags) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  if (flags & ~(uint32_t)(DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X)) return DP_ERR_BAD_FLAGS;
  float small[DP_SMALL_BATCH];
  const float *drawn = scales ? NULL : draw_small(params, shape.batch, small); /* see "small calls" */
  const int has_gx = grad_x.data != NULL;
  dp_extent ef, ex = {NULL, NULL}, eg, es;
  if ((st = dp_check_tensor(&grad_f, &shape, &ef)) != DP_OK) return st;
  if (has_gx && (st = dp_check_tensor(&grad_x, &shape, &ex)) != DP_OK) return st;
  if ((st = dp_check_tensor(&grad_out, &shape, &eg)) != DP_OK) return st;
  const int combo = dp_combo_of(grad_out.dtype, grad_f.dtype);
  if (combo < 0 || (has_gx && grad_x.dtype != grad_out.dtype)) return DP_ERR_BAD_DTYPE;
  if ((st = dp_check_array(scales, scales ? shape.batch : 0, sizeof(float), &es)) != DP_OK) return st;
  if ((st = check_alias(&grad_f, ef, &grad_out, eg, &shape, 1)) != DP_OK) return st;
  if (dp_extents_overlap(ex, ef) || dp_extents_overlap(ex, eg)) return DP_ERR_OVERLAP;
  if (dp_extents_overlap(es, ef) || dp_extents_overlap(es, ex)) return DP_ERR_OVERLAP;
  const dp_kernel_table *k = dp_current_kernels();
  const int x_combo = dp_combo_of(grad_out.dtype, grad_out.dtype);
  if (!k->bwd[combo] || !k->fwd[x_combo]) return DP_ERR_BAD_DTYPE;
  if (shape.batch == 0 || shape.dim == 0) return DP_OK;

  dp_job j;
  init_job(&j, OP_BWD, params, &shape);
  float stack_scales[DP_STACK_SCALES], *heap = NULL;
  j.scales = scales ? scales : drawn ? drawn : prepare_scales(&j, NULL, stack_scales, &heap);
  set_role(&j, R_GF, &grad_f);
  if (has_gx) set_role(&j, R_GX, &grad_x);
  set_role(&j, R_G, &grad_out);
  j.bwd = k->bwd[combo];
  j.fwd_x = k->fwd[x_combo];
  j.bwd_mode = ((flags & DP_BWD_ACCUMULATE_GRAD_F) ? DP_KBWD_ACC_F : 0u) |
               ((flags & DP_BWD_ACCUMULATE_GRAD_X) ? DP_KBWD_ACC_X : 0u);
  if (dp_plan_stream(params, sat_add(row_bytes(&j, j.t[R_GF].es), row_bytes(&j, j.t[R_GX].es))))
    j.bwd_mode |= DP_KBWD_STREAM;
  choose_order(&j, &grad_f);
  size_t traffic = sat_add(row_bytes(&j, j.t[R_GF].es), row_bytes(&j, j.t[R_G].es));
  traffic = sat_add(traffic, row_bytes(&j, 2 * j.t[R_GX].es));
  run_job(&j, params, traffic);
  if (heap) free(heap);
  return DP_OK;
}
