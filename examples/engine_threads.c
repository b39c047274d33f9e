/*
 * An engine with its own thread pool calling libdroppath: the engine cuts a
 * call's rows into one range per worker, and each worker calls the library
 * on its range with num_threads = 1, so the library starts no threads inside
 * the engine's.  The results are the bits of one call over the whole batch.
 *
 * A batch is B samples of T rows.  Worker w takes the flat rows
 * [r0, r1) of the B*T, which are at most three pieces: the end of one sample,
 * whole samples, the start of another.  For a piece of samples [b0, b1) and
 * rows [t0, t1):
 *
 *   data pointers   advanced by b0 * sample_stride + t0 * seq_stride elements
 *                   (strides unchanged: the piece is a view of the tensor)
 *   shape           {b1 - b0, t1 - t0, D}
 *   sample_base     base + b0: the global index of the piece's first sample
 *   num_threads     1
 *
 * The mask is drawn per sample from Philox at counter (sample_base + b,
 * offset), so every piece of sample b, on whichever worker, gets b's draw,
 * and the backward, regenerating the mask, gets it too (given the forward's
 * scales instead, a piece reads them from index b0).  Batch mode's single
 * draw ignores sample_base: every piece gets the call's decision.
 * dp_inference_add has no mask and can be cut anywhere.  A piece that starts
 * inside a sample does not write that sample's scale: the piece holding the
 * sample's first row does (one writer per element).
 *
 * The program checks dp_forward, dp_backward (mask regenerated, and from saved
 * scales) and dp_inference_add through the engine against one call, for
 * pools of 1 to 4 workers, shapes cut across and inside samples, dense and
 * sequence-first layouts, row and batch mode, and exits nonzero on any
 * difference.
 */
#include <droppath/droppath.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- a minimal thread pool */

typedef void (*task_fn)(void *ctx, int worker, int n_workers);

enum { MAX_WORKERS = 8 };

typedef struct pool pool;

typedef struct worker_arg {
  pool *p;
  int id;
} worker_arg;

struct pool {
  pthread_t threads[MAX_WORKERS];
  worker_arg args[MAX_WORKERS];
  int n;
  pthread_mutex_t mu;
  pthread_cond_t start, done;
  task_fn fn;
  void *ctx;
  unsigned long generation; /* bumped once per pool_run: workers start on a change */
  int running;              /* workers still busy with the current task */
  int quit;
};

static void *worker_main(void *arg) {
  worker_arg *w = arg;
  pool *p = w->p;
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->generation == seen) pthread_cond_wait(&p->start, &p->mu);
    if (p->quit) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    p->fn(p->ctx, w->id, p->n);
    pthread_mutex_lock(&p->mu);
    if (--p->running == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Starts n workers (at most MAX_WORKERS); nonzero on failure. */
static int pool_init(pool *p, int n) {
  if (n < 1 || n > MAX_WORKERS) return -1;
  memset(p, 0, sizeof *p);
  p->n = n;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->start, NULL);
  pthread_cond_init(&p->done, NULL);
  for (int i = 0; i < n; i++) {
    p->args[i] = (worker_arg){p, i};
    if (pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]) != 0) return -1;
  }
  return 0;
}

/* Runs fn(ctx, w, n) on every worker w and returns when all are done. */
static void pool_run(pool *p, task_fn fn, void *ctx) {
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->running = p->n;
  p->generation++;
  pthread_cond_broadcast(&p->start);
  while (p->running > 0) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

static void pool_destroy(pool *p) {
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->start);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
}

/* ---------------------------------------------------------------- cutting rows */

/* Rows [t0, t1) of samples [b0, b1): whole samples (t0 = 0, t1 = T) or part of one (b1 = b0 + 1). */
typedef struct piece {
  size_t b0, b1, t0, t1;
} piece;

/* Cuts the flat rows [r0, r1) of a batch of samples of T rows into at most 3 pieces. */
static int cut_rows(size_t r0, size_t r1, size_t T, piece out[3]) {
  int n = 0;
  while (r0 < r1) {
    const size_t b = r0 / T, t = r0 % T;
    if (t != 0 || r1 - r0 < T) { /* inside one sample */
      const size_t t1 = t + (r1 - r0 < T - t ? r1 - r0 : T - t);
      out[n++] = (piece){b, b + 1, t, t1};
      r0 += t1 - t;
    } else { /* whole samples */
      const size_t nb = (r1 - r0) / T;
      out[n++] = (piece){b, b + nb, 0, T};
      r0 += nb * T;
    }
  }
  return n;
}

/* Worker w's share of R rows out of n workers: as even as possible. */
static void share_of(size_t R, int w, int n, size_t *r0, size_t *r1) {
  const size_t q = R / (size_t)n, extra = R % (size_t)n, uw = (size_t)w;
  *r0 = uw * q + (uw < extra ? uw : extra);
  *r1 = *r0 + q + (uw < extra);
}

/* The piece's view of a tensor: same strides, data moved to its first row. */
static dp_tensor view_of(dp_tensor t, const piece *pc) {
  if (!t.data) return t; /* an optional tensor left out */
  const size_t elem = t.dtype == DP_F32 ? 4 : 2;
  t.data = (char *)t.data + (pc->b0 * t.sample_stride + pc->t0 * t.seq_stride) * elem;
  return t;
}

/* ---------------------------------------------------------------- the engine's operations */

enum { OP_FORWARD, OP_BACKWARD, OP_INFERENCE };

/* One operation over the pool: the arguments of the library call, whole. */
typedef struct call {
  int op;
  dp_params params;
  dp_shape shape;
  dp_tensor t[3];                /* forward, inference: out, x, f; backward: grad_f, grad_x, grad_out */
  float *scales_out;             /* forward (or NULL) */
  const float *scales;           /* backward: the forward's scales, or NULL to regenerate the mask */
  uint32_t flags;                /* backward */
  dp_status status[MAX_WORKERS]; /* per worker */
} call;

static dp_status run_piece(const call *c, const piece *pc) {
  dp_params p = c->params;
  p.sample_base = c->params.sample_base + pc->b0; /* the piece's first sample, globally */
  p.num_threads = 1;
  const dp_shape sh = {pc->b1 - pc->b0, pc->t1 - pc->t0, c->shape.dim};
  const dp_tensor a = view_of(c->t[0], pc), b = view_of(c->t[1], pc), d = view_of(c->t[2], pc);
  switch (c->op) {
    case OP_FORWARD: /* only the piece holding a sample's first row writes its scale */
      return dp_forward(&p, sh, a, b, d, c->scales_out && pc->t0 == 0 ? c->scales_out + pc->b0 : NULL);
    case OP_BACKWARD:
      return dp_backward(&p, sh, a, b, d, c->scales ? c->scales + pc->b0 : NULL, c->flags);
    default:
      return dp_inference_add(&p, sh, a, b, d);
  }
}

static void call_task(void *ctx, int w, int n) {
  call *c = ctx;
  const size_t T = c->shape.seq ? c->shape.seq : 1;
  size_t r0, r1;
  piece pieces[3];
  share_of(c->shape.batch * T, w, n, &r0, &r1);
  const int np = cut_rows(r0, r1, T, pieces);
  c->status[w] = DP_OK;
  for (int i = 0; i < np && c->status[w] == DP_OK; i++) c->status[w] = run_piece(c, &pieces[i]);
}

/* Runs the call on the pool; the first worker's error, if any.  (Unlike one
 * library call, a failing call may have written other workers' pieces.) */
static dp_status engine_run(pool *p, call *c) {
  pool_run(p, call_task, c);
  for (int w = 0; w < p->n; w++)
    if (c->status[w] != DP_OK) return c->status[w];
  return DP_OK;
}

/* The engine's entry points: the library's signatures, run on the pool. */
static dp_status engine_forward(pool *pl, const dp_params *p, dp_shape sh, dp_tensor out, dp_tensor x, dp_tensor f,
                                float *scales_out) {
  call c = {.op = OP_FORWARD, .params = *p, .shape = sh, .t = {out, x, f}, .scales_out = scales_out};
  return engine_run(pl, &c);
}

static dp_status engine_backward(pool *pl, const dp_params *p, dp_shape sh, dp_tensor grad_f, dp_tensor grad_x,
                                 dp_tensor grad_out, const float *scales, uint32_t flags) {
  call c = {.op = OP_BACKWARD, .params = *p, .shape = sh, .t = {grad_f, grad_x, grad_out}, .scales = scales,
            .flags = flags};
  return engine_run(pl, &c);
}

static dp_status engine_inference_add(pool *pl, const dp_params *p, dp_shape sh, dp_tensor out, dp_tensor x,
                                      dp_tensor f) {
  call c = {.op = OP_INFERENCE, .params = *p, .shape = sh, .t = {out, x, f}};
  return engine_run(pl, &c);
}

/* ---------------------------------------------------------------- the check */

typedef struct test_case {
  const char *name;
  dp_shape shape;
  int seq_first;
  int mode;
} test_case;

static float frand(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)(*s >> 8) * 0x1p-24f * 4.0f - 2.0f;
}

static dp_tensor view(const test_case *tc, float *data) {
  return tc->seq_first ? dp_tensor_seq_first(data, DP_F32, tc->shape) : dp_tensor_dense(data, DP_F32, tc->shape);
}

/* Engine result vs one call, for each operation; returns the number of mismatches. */
static int check_case(pool *pl, const test_case *tc) {
  const size_t B = tc->shape.batch, n = B * tc->shape.seq * tc->shape.dim;
  float *buf = malloc(sizeof(float) * (6 * n + 2 * B));
  if (!buf) return 1;
  /* inputs x, f; outputs of one call and of the engine (backward: grad_f, grad_x) */
  float *x = buf, *f = x + n, *one = f + n, *eng = one + n, *one2 = eng + n, *eng2 = one2 + n;
  float *sc_one = eng2 + n, *sc_eng = sc_one + B;
  uint32_t seed = 7;
  for (size_t i = 0; i < 2 * n; i++) buf[i] = frand(&seed);

  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.4;
  p.seed = 99;
  p.offset = 5;
  p.sample_base = 1000; /* the batch's place in a larger one, say */
  p.mode = tc->mode;
  int bad = 0;
  enum { FORWARD, BACKWARD_REGENERATED, BACKWARD_SAVED, INFERENCE, N_CHECKS };
  const char *names[] = {"dp_forward", "dp_backward (mask regenerated)", "dp_backward (saved scales)",
                         "dp_inference_add"};
  for (int check = 0; check < N_CHECKS; check++) {
    /* Distinct fill of the outputs, so a row nobody writes shows up. */
    memset(one, 0x11, 4 * n * sizeof(float)); /* one, eng, one2, eng2 */
    memset(sc_one, 0x22, sizeof(float) * B);
    memset(sc_eng, 0x22, sizeof(float) * B);
    const dp_shape sh = tc->shape;
    dp_status s1, s2;
    switch (check) {
      case FORWARD:
        s1 = dp_forward(&p, sh, view(tc, one), view(tc, x), view(tc, f), sc_one);
        s2 = engine_forward(pl, &p, sh, view(tc, eng), view(tc, x), view(tc, f), sc_eng);
        break;
      case BACKWARD_REGENERATED: /* grad_out = x; out: grad_f and grad_x */
        s1 = dp_backward(&p, sh, view(tc, one), view(tc, one2), view(tc, x), NULL, 0);
        s2 = engine_backward(pl, &p, sh, view(tc, eng), view(tc, eng2), view(tc, x), NULL, 0);
        break;
      case BACKWARD_SAVED: /* the scales a forward saves, the same for both */
        s1 = dp_mask(&p, B, NULL, sc_one, NULL, NULL);
        memcpy(sc_eng, sc_one, B * sizeof(float));
        if (s1 == DP_OK) s1 = dp_backward(&p, sh, view(tc, one), view(tc, one2), view(tc, x), sc_one, 0);
        s2 = engine_backward(pl, &p, sh, view(tc, eng), view(tc, eng2), view(tc, x), sc_eng, 0);
        break;
      default:
        s1 = dp_inference_add(&p, sh, view(tc, one), view(tc, x), view(tc, f));
        s2 = engine_inference_add(pl, &p, sh, view(tc, eng), view(tc, x), view(tc, f));
        break;
    }
    const int same = s1 == DP_OK && s2 == DP_OK && memcmp(one, eng, n * sizeof(float)) == 0 &&
                     memcmp(one2, eng2, n * sizeof(float)) == 0 && memcmp(sc_one, sc_eng, B * sizeof(float)) == 0;
    if (!same) {
      bad++;
      fprintf(stderr, "MISMATCH %s, %s, %d workers (%s / %s)\n", names[check], tc->name, pl->n, dp_status_string(s1),
              dp_status_string(s2));
    }
  }
  free(buf);
  return bad;
}

int main(void) {
  const test_case cases[] = {
      {"37x1x50 dense, row mode (cut across samples)", {37, 1, 50}, 0, DP_MODE_ROW},
      {"3x41x24 dense, row mode (cut inside samples)", {3, 41, 24}, 0, DP_MODE_ROW},
      {"5x9x16 sequence-first, row mode", {5, 9, 16}, 1, DP_MODE_ROW},
      {"2x33x8 dense, batch mode", {2, 33, 8}, 0, DP_MODE_BATCH},
      {"11x3x7 sequence-first, batch mode", {11, 3, 7}, 1, DP_MODE_BATCH},
  };
  const int n_cases = (int)(sizeof cases / sizeof cases[0]);
  int bad = 0;
  printf("engine pools of 1-4 pthreads, each worker calling with num_threads = 1,\n"
         "vs one call over the whole batch (dp_forward, dp_backward, dp_inference_add):\n");
  for (int i = 0; i < n_cases; i++) {
    int bad_case = 0;
    for (int workers = 1; workers <= 4; workers++) {
      pool pl;
      if (pool_init(&pl, workers) != 0) {
        fprintf(stderr, "cannot start %d threads\n", workers);
        return 1;
      }
      bad_case += check_case(&pl, &cases[i]);
      pool_destroy(&pl);
    }
    printf("  %-46s %s\n", cases[i].name, bad_case ? "DIFFERENT" : "bit-identical");
    bad += bad_case;
  }
  printf("%s\n", bad ? "FAILED" : "all bit-identical");
  return bad != 0;
}
