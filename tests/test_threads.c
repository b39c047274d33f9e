/*
 * Thread safety.  Two hazards:
 *  - first calls: dispatch is initialised lazily, so many threads making
 *    their first call at once race on it.  Only a process that has never
 *    called the library shows this, so each trial forks a child (the parent
 *    has not touched the library yet: this test runs first) in which threads
 *    released by a barrier all make a first call; the child then repeats the
 *    calls serially and compares bits.
 *  - concurrent calls: workers run operations with different parameters,
 *    dtypes and thread counts while other threads keep changing the ISA cap
 *    (dp_set_max_isa) and the default thread count.  Every result must equal
 *    the serial scalar result bit for bit, since every ISA gives the same bits.
 * Under ThreadSanitizer (tools/sanitize.sh) the same runs also prove the
 * absence of data races in the library.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "droppath/droppath.h"
#include "test_util.h"

enum { OP_FWD, OP_INFER, OP_DROP, OP_BWD, OP_MASK, OP_COUNT };

/* One call, its inputs and the bytes it must produce. */
typedef struct job {
  int op;
  int xt, ft; /* dtypes of the residual stream and the branch */
  dp_params prm;
  dp_shape shape;
  int seq_first;
  int want_scales; /* pass scales_out (else the library keeps the scales itself) */
  uint32_t bwd_flags;
  unsigned char *x, *f;   /* inputs (x doubles as grad_out) */
  unsigned char *init;    /* initial output bytes (accumulating backward reads them) */
  unsigned char *expect;  /* outputs of the serial scalar call */
  size_t out_bytes, xbytes, fbytes;
} job;

static size_t elems(const job *j) { return j->shape.batch * (j->shape.seq ? j->shape.seq : 1) * j->shape.dim; }

static dp_tensor view(const job *j, void *p, int dt) {
  return j->seq_first ? dp_tensor_seq_first(p, (dp_dtype)dt, j->shape) : dp_tensor_dense(p, (dp_dtype)dt, j->shape);
}

/* Output layout: [first tensor][second tensor (grad_x)][B floats][mask extras]. */
static dp_status run(const job *j, unsigned char *out) {
  const size_t n = elems(j), B = j->shape.batch;
  unsigned char *o1 = out, *o2 = out + n * 4;
  float *scales = j->want_scales ? (float *)(out + 2 * n * 4) : NULL;
  switch (j->op) {
    case OP_FWD:
      return dp_forward(&j->prm, j->shape, view(j, o1, j->xt), view(j, j->x, j->xt), view(j, j->f, j->ft), scales);
    case OP_INFER:
      return dp_inference_add(&j->prm, j->shape, view(j, o1, j->xt), view(j, j->x, j->xt), view(j, j->f, j->ft));
    case OP_DROP:
      return dp_drop_path(&j->prm, j->shape, view(j, o1, j->xt), view(j, j->x, j->xt), scales);
    case OP_BWD:
      return dp_backward(&j->prm, j->shape, view(j, o1, j->ft), view(j, o2, j->xt), view(j, j->x, j->xt), NULL,
                         j->bwd_flags);
    default: {
      size_t *count = (size_t *)(out + 2 * n * 4 + B * 8); /* 8: keeps size_t aligned */
      return dp_mask(&j->prm, B, o1, (float *)(out + 2 * n * 4), count, count + 1);
    }
  }
}

static size_t out_bytes_of(const job *j) {
  const size_t n = elems(j), B = j->shape.batch;
  return 2 * n * 4 + B * 8 + (B + 1) * sizeof(size_t);
}

static unsigned char *xalloc(size_t n) {
  unsigned char *p = (unsigned char *)malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

/* Finite values only: NaN bits are covered by test_kernels and test_api;
 * these tests are about races, so keep their inputs plain. */
static void fill(tu_rng *r, unsigned char *p, size_t n, int dt) {
  for (size_t i = 0; i < n; i++) {
    const float v = tu_float(r) * 4.0f;
    if (dt == DP_F32) {
      memcpy(p + 4 * i, &v, 4);
    } else {
      uint32_t u;
      memcpy(&u, &v, 4);
      /* Small exponent range: finite in both bf16 and f16. */
      const uint16_t h = dt == DP_BF16 ? (uint16_t)(u >> 16) : (uint16_t)(0x3c00u | (u & 0x83ffu));
      memcpy(p + 2 * i, &h, 2);
    }
  }
}

static int combo_available(int op, int xt, int ft) {
  dp_params p;
  dp_params_init(&p);
  const dp_shape sh = {1, 1, 1};
  unsigned char a[4] = {0}, b[4] = {0}, o[4] = {0}, g[4] = {0};
  if (op == OP_MASK) return 1;
  if (op == OP_DROP) return dp_drop_path(&p, sh, (dp_tensor){o, xt, 1, 1}, (dp_tensor){a, xt, 1, 1}, NULL) == DP_OK;
  if (op == OP_BWD)
    return dp_backward(&p, sh, (dp_tensor){o, ft, 1, 1}, (dp_tensor){g, xt, 1, 1}, (dp_tensor){a, xt, 1, 1}, NULL,
                       0) == DP_OK;
  return dp_forward(&p, sh, (dp_tensor){o, xt, 1, 1}, (dp_tensor){a, xt, 1, 1}, (dp_tensor){b, ft, 1, 1}, NULL) ==
         DP_OK;
}

static void job_init(job *j, int op, int xt, int ft, size_t B, size_t T, size_t D, uint64_t seed) {
  tu_rng r;
  tu_rng_init(&r, seed);
  memset(j, 0, sizeof *j);
  j->op = op;
  j->xt = xt;
  j->ft = ft;
  dp_params_init(&j->prm);
  static const double probs[] = {0.0, 0.1, 0.5, 0.9, 1.0};
  j->prm.drop_prob = probs[tu_next(&r) % 5];
  j->prm.seed = tu_next(&r);
  j->prm.offset = tu_next(&r) % 1000;
  j->prm.sample_base = tu_next(&r) % 100;
  j->prm.mode = tu_next(&r) % 4 == 0 ? DP_MODE_BATCH : DP_MODE_ROW;
  j->prm.scale_by_keep = (int)(tu_next(&r) % 2);
  j->prm.num_threads = (int)(tu_next(&r) % 3); /* 0: library default, which other threads keep changing */
  j->prm.flags = (uint32_t)(tu_next(&r) % 3);
  j->shape = (dp_shape){B, T, D};
  j->seq_first = (int)(tu_next(&r) % 2);
  j->want_scales = (int)(tu_next(&r) % 2);
  if (!j->want_scales) j->prm.drop_prob = 0.5; /* masks that differ from job to job */
  j->bwd_flags = (uint32_t)(tu_next(&r) % 4);
  const size_t n = elems(j);
  j->xbytes = n * tu_dtype_size(xt);
  j->fbytes = n * tu_dtype_size(ft);
  j->x = xalloc(j->xbytes);
  j->f = xalloc(j->fbytes);
  fill(&r, j->x, n, xt);
  fill(&r, j->f, n, ft);
  j->out_bytes = out_bytes_of(j);
  j->init = xalloc(j->out_bytes);
  memset(j->init, 0, j->out_bytes);
  fill(&r, j->init, n, ft);         /* grad_f before accumulation */
  fill(&r, j->init + n * 4, n, xt); /* grad_x before accumulation */
  j->expect = xalloc(j->out_bytes);
}

static void job_free(job *j) {
  free(j->x);
  free(j->f);
  free(j->init);
  free(j->expect);
}

/* Runs j into out (reset first); 0 if it returned DP_OK and matched expect. */
static int run_and_compare(const job *j, unsigned char *out) {
  memcpy(out, j->init, j->out_bytes);
  if (run(j, out) != DP_OK) return 1;
  return memcmp(out, j->expect, j->out_bytes) != 0;
}

static int supported[DP_ISA_COUNT], n_supported;

static void find_isas(void) {
  n_supported = 0;
  for (int i = 0; i < DP_ISA_COUNT; i++)
    if (dp_isa_supported((dp_isa)i)) supported[n_supported++] = i;
}

static dp_isa best_isa(void) { return (dp_isa)supported[n_supported - 1]; }

/* ------------------------------------------------------------ first calls in fresh processes */

#define FIRST_THREADS 8

typedef struct first_ctx {
  pthread_barrier_t *barrier;
  const job *j;
  unsigned char *out;
  dp_status st;
  int isa_seen;
  int cap; /* this thread's first call is dp_set_max_isa(scalar) */
} first_ctx;

static void *first_call(void *arg) {
  first_ctx *c = (first_ctx *)arg;
  pthread_barrier_wait(c->barrier);
  if (c->cap) {
    c->st = dp_set_max_isa(DP_ISA_SCALAR);
  } else {
    memcpy(c->out, c->j->init, c->j->out_bytes);
    c->st = run(c->j, c->out);
  }
  c->isa_seen = (int)dp_active_isa();
  return NULL;
}

/* Child process body: returns its exit status. */
static int first_call_child(int with_cap) {
  job jobs[FIRST_THREADS];
  first_ctx ctx[FIRST_THREADS];
  pthread_t th[FIRST_THREADS];
  pthread_barrier_t barrier;
  /* Plain C only before the barrier: nothing may initialise the library. */
  static const int ops[FIRST_THREADS] = {OP_FWD, OP_BWD, OP_DROP, OP_INFER, OP_MASK, OP_FWD, OP_BWD, OP_FWD};
  for (int k = 0; k < FIRST_THREADS; k++) {
    job_init(&jobs[k], ops[k], DP_F32, DP_F32, 3 + (size_t)k, 2, 67 + 13 * (size_t)k, 1000 + (uint64_t)k);
    jobs[k].prm.num_threads = 1;
    ctx[k] = (first_ctx){&barrier, &jobs[k], xalloc(jobs[k].out_bytes), DP_OK, -1, with_cap && k == 3};
  }
  if (pthread_barrier_init(&barrier, NULL, FIRST_THREADS) != 0) return 2;
  for (int k = 0; k < FIRST_THREADS; k++)
    if (pthread_create(&th[k], NULL, first_call, &ctx[k]) != 0) return 2;
  for (int k = 0; k < FIRST_THREADS; k++) pthread_join(th[k], NULL);
  pthread_barrier_destroy(&barrier);

  int bad = 0;
  const int final_isa = (int)dp_active_isa();
  if (with_cap && final_isa != DP_ISA_SCALAR) {
    fprintf(stderr, "child: cap to scalar lost, active %s\n", dp_isa_name((dp_isa)final_isa));
    bad = 1;
  }
  unsigned char *serial = NULL;
  for (int k = 0; k < FIRST_THREADS; k++) {
    if (ctx[k].st != DP_OK) {
      fprintf(stderr, "child: thread %d's first call failed: %s\n", k, dp_status_string(ctx[k].st));
      bad = 1;
    }
    if (!with_cap && ctx[k].isa_seen != final_isa) {
      fprintf(stderr, "child: thread %d saw ISA %d, later %d\n", k, ctx[k].isa_seen, final_isa);
      bad = 1;
    }
    if (ctx[k].cap) continue;
    free(serial);
    serial = xalloc(jobs[k].out_bytes);
    memcpy(serial, jobs[k].init, jobs[k].out_bytes);
    if (run(&jobs[k], serial) != DP_OK || memcmp(serial, ctx[k].out, jobs[k].out_bytes) != 0) {
      fprintf(stderr, "child: thread %d's concurrent first call differs from the serial call\n", k);
      bad = 1;
    }
  }
  free(serial);
  for (int k = 0; k < FIRST_THREADS; k++) {
    free(ctx[k].out);
    job_free(&jobs[k]);
  }
  return bad;
}

#define FIRST_TRIALS 32

static void first_calls(int with_cap) {
  for (int trial = 0; trial < FIRST_TRIALS; trial++) {
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(first_call_child(with_cap));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "trial %d: child %s %d\n", trial, WIFEXITED(status) ? "exited with" : "killed by signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      fail();
    }
  }
}

/* Must be the first tests: the parent may not have called the library. */
static void test_first_calls_race(void **state) {
  (void)state;
  first_calls(0);
}

static void test_first_calls_race_with_cap(void **state) {
  (void)state;
  first_calls(1);
}

/* ------------------------------------------------------------ concurrent calls */

#define WORKERS 4
#define CAPPERS 2
#define MAX_JOBS 32

static job jobs[MAX_JOBS];
static int n_jobs;
static atomic_int stop_cappers, failures;

static void build_jobs(uint64_t seed) {
  static const int combos[5][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                   {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  n_jobs = 0;
  for (int op = 0; op < OP_COUNT; op++)
    for (int c = 0; c < 5 && n_jobs < MAX_JOBS; c++) {
      if ((op == OP_DROP || op == OP_MASK) && combos[c][0] != combos[c][1]) continue;
      if (op == OP_MASK && c > 0) continue;
      if (!combo_available(op, combos[c][0], combos[c][1])) continue;
      /* Mixed sizes: some calls split rows across OpenMP threads, some don't. */
      const size_t B = 2 + (size_t)((op + c) % 5), T = 1 + (size_t)(c % 3), D = (op % 2) ? 4500 : 301;
      job_init(&jobs[n_jobs], op, combos[c][0], combos[c][1], B, T, D, seed + (uint64_t)(op * 10 + c));
      if (c % 2 == 0 && (op == OP_FWD || op == OP_DROP)) { /* scales kept inside the library */
        jobs[n_jobs].want_scales = 0;
        jobs[n_jobs].prm.drop_prob = 0.5;
      }
      n_jobs++;
    }
  /* Serial results at the scalar ISA: the reference every concurrent call must match. */
  assert_int_equal(dp_set_max_isa(DP_ISA_SCALAR), DP_OK);
  for (int k = 0; k < n_jobs; k++) {
    memcpy(jobs[k].expect, jobs[k].init, jobs[k].out_bytes);
    assert_int_equal(run(&jobs[k], jobs[k].expect), DP_OK);
  }
  assert_int_equal(dp_set_max_isa(best_isa()), DP_OK);
}

static void *worker(void *arg) {
  const int id = (int)(intptr_t)arg;
  const int iters = 100;
  size_t max_bytes = 0;
  for (int k = 0; k < n_jobs; k++)
    if (jobs[k].out_bytes > max_bytes) max_bytes = jobs[k].out_bytes;
  unsigned char *out = xalloc(max_bytes);
  for (int it = 0; it < iters; it++)
    for (int k = 0; k < n_jobs; k++) {
      const job *j = &jobs[(k + id * 7 + it) % n_jobs];
      if (run_and_compare(j, out)) {
        if (atomic_fetch_add(&failures, 1) == 0)
          fprintf(stderr, "worker %d: op %d (dtypes %d/%d) differs from the serial result\n", id, j->op, j->xt,
                  j->ft);
      }
    }
  free(out);
  return NULL;
}

static void *capper(void *arg) {
  tu_rng r;
  tu_rng_init(&r, (uint64_t)(intptr_t)arg);
  while (!atomic_load(&stop_cappers)) {
    const int isa = supported[tu_next(&r) % (uint64_t)n_supported];
    if (dp_set_max_isa((dp_isa)isa) != DP_OK) atomic_fetch_add(&failures, 1);
    if (!dp_isa_supported(dp_active_isa())) atomic_fetch_add(&failures, 1);
    dp_set_num_threads((int)(tu_next(&r) % 3));
  }
  return NULL;
}

static void test_concurrent_calls_and_caps(void **state) {
  (void)state;
  find_isas();
  build_jobs(tu_seed());
  assert_true(n_jobs >= 4);
  pthread_t w[WORKERS], c[CAPPERS];
  atomic_store(&stop_cappers, 0);
  atomic_store(&failures, 0);
  for (int i = 0; i < CAPPERS; i++) assert_int_equal(pthread_create(&c[i], NULL, capper, (void *)(intptr_t)(i + 1)), 0);
  for (int i = 0; i < WORKERS; i++) assert_int_equal(pthread_create(&w[i], NULL, worker, (void *)(intptr_t)i), 0);
  for (int i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
  atomic_store(&stop_cappers, 1);
  for (int i = 0; i < CAPPERS; i++) pthread_join(c[i], NULL);
  assert_int_equal(dp_set_max_isa(best_isa()), DP_OK);
  assert_int_equal(dp_set_num_threads(0), DP_OK);
  assert_int_equal(atomic_load(&failures), 0);
  /* And each ISA alone, serially, gives the same bits too. */
  unsigned char *out = NULL;
  for (int i = 0; i < n_supported; i++) {
    assert_int_equal(dp_set_max_isa((dp_isa)supported[i]), DP_OK);
    for (int k = 0; k < n_jobs; k++) {
      free(out);
      out = xalloc(jobs[k].out_bytes);
      assert_int_equal(run_and_compare(&jobs[k], out), 0);
    }
  }
  free(out);
  assert_int_equal(dp_set_max_isa(best_isa()), DP_OK);
  for (int k = 0; k < n_jobs; k++) job_free(&jobs[k]);
}

#ifdef _OPENMP
/* Calls from inside the caller's own OpenMP region run on the calling thread
 * (no nested teams) and give the same bits. */
static void test_calls_inside_openmp_region(void **state) {
  (void)state;
  find_isas();
  build_jobs(tu_seed() + 1);
  int bad = 0;
#pragma omp parallel num_threads(2) reduction(+ : bad)
  {
    unsigned char *out = NULL;
    for (int k = 0; k < n_jobs; k++) {
      free(out);
      out = xalloc(jobs[k].out_bytes);
      bad += run_and_compare(&jobs[k], out);
    }
    free(out);
  }
  assert_int_equal(bad, 0);
  for (int k = 0; k < n_jobs; k++) job_free(&jobs[k]);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_calls_race),
      cmocka_unit_test(test_first_calls_race_with_cap),
      cmocka_unit_test(test_concurrent_calls_and_caps),
#ifdef _OPENMP
      cmocka_unit_test(test_calls_inside_openmp_region),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
