/*
 * The row walk (src/core/rowwalk.h) on its own, with a row function that
 * records its calls instead of computing: which rows it is handed, how many
 * elements at a time, with which scale, in which order. Elementwise jobs
 * join adjacent rows of one scale, flatten a sample's back-to-back rows and
 * split long rows across threads; a job that is not elementwise (a norm
 * over D) must get every row whole and alone, and one with a period (a
 * per-channel vector) only whole rows, starting at channel 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "core/rowwalk.h"
#include "dp_config.h"

#if DP_HAVE_OPENMP
#include <omp.h>
#endif

#define MAX_CALLS 256

typedef struct call {
  size_t off; /* element offset of p[0] from the buffer */
  size_t n;
  float s;
} call;

static float buf[64 * 1024];
static call calls[MAX_CALLS]; /* in call order when one thread walks */
static atomic_size_t ncalls;
static atomic_int top_thread; /* highest OpenMP thread number that made a call */
static unsigned char visits[64 * 1024]; /* per element, for the threaded walks */

static void rec_row(const dp_job *j, unsigned char *const p[DP_ROLES], float s, size_t n) {
  (void)j;
  const size_t off = (size_t)((float *)(void *)p[0] - buf);
  for (size_t i = 0; i < n; i++) visits[off + i]++; /* rows are disjoint: no two threads share an element */
  const size_t k = atomic_fetch_add(&ncalls, 1);
  if (k < MAX_CALLS) calls[k] = (call){off, n, s};
#if DP_HAVE_OPENMP
  const int me = omp_get_thread_num();
  for (int t = atomic_load(&top_thread); me > t && !atomic_compare_exchange_weak(&top_thread, &t, me);) {
  }
#endif
}

static void rec_range(const dp_job *j, size_t lo, size_t hi) { dp_walk_range(j, lo, hi, rec_row); }

static void reset(void) {
  atomic_store(&ncalls, 0);
  atomic_store(&top_thread, 0);
  memset(visits, 0, sizeof visits);
}

/* A one-role job over buf with the given strides (elements) and scales. */
static void make_job(dp_job *j, size_t B, size_t T, size_t D, size_t ss, size_t ts, const float *scales,
                     int elementwise) {
  const dp_shape shape = {B, T, D};
  const dp_tensor t = {buf, DP_F32, ss, ts};
  dp_job_init(j, &shape);
  dp_job_role(j, 0, &t);
  j->scales = scales;
  j->elementwise = elementwise;
}

static dp_params one_thread(void) {
  dp_params p;
  dp_params_init(&p);
  p.num_threads = 1;
  return p;
}

static void expect_call(size_t i, size_t off, size_t n, float s) {
  assert_true(i < atomic_load(&ncalls));
  assert_int_equal(calls[i].off, off);
  assert_int_equal(calls[i].n, n);
  assert_true(calls[i].s == s);
}

static void test_elementwise_joins_equal_scales(void **state) {
  (void)state;
  static const float s[4] = {1.0f, 1.0f, 0.0f, 2.0f};
  const dp_params p = one_thread();
  dp_job j;
  reset();
  make_job(&j, 4, 1, 8, 8, 8, s, 1);
  dp_run_job(&j, &p, 4 * 8 * 4, rec_range);
  assert_int_equal(atomic_load(&ncalls), 3);
  expect_call(0, 0, 16, 1.0f);
  expect_call(1, 16, 8, 0.0f);
  expect_call(2, 24, 8, 2.0f);
  /* The small walk makes the same calls. */
  reset();
  make_job(&j, 4, 1, 8, 8, 8, s, 1);
  assert_true(dp_walk_small(&j, &p, 4 * 8 * 4, rec_row));
  assert_int_equal(atomic_load(&ncalls), 3);
  expect_call(0, 0, 16, 1.0f);
}

static void test_whole_rows_when_not_elementwise(void **state) {
  (void)state;
  static const float s[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  const dp_params p = one_thread();
  dp_job j;
  /* Dense [4][3][8]: an elementwise walk would make one call of 96. */
  reset();
  make_job(&j, 4, 3, 8, 24, 8, s, 0);
  dp_run_job(&j, &p, 96 * 4, rec_range);
  assert_int_equal(atomic_load(&ncalls), 12);
  for (size_t i = 0; i < 12; i++) expect_call(i, 8 * i, 8, 1.0f);
  /* [4][8] rows back to back, one scale: still one call per row. */
  reset();
  make_job(&j, 4, 1, 8, 8, 8, s, 0);
  dp_run_job(&j, &p, 32 * 4, rec_range);
  assert_int_equal(atomic_load(&ncalls), 4);
  for (size_t i = 0; i < 4; i++) expect_call(i, 8 * i, 8, 1.0f);
  /* The small walk declines: it only joins rows. */
  assert_false(dp_walk_small(&j, &p, 96 * 4, rec_row));
  reset();
  make_job(&j, 4, 3, 8, 24, 8, s, 1);
  dp_run_job(&j, &p, 96 * 4, rec_range);
  assert_int_equal(atomic_load(&ncalls), 1);
  expect_call(0, 0, 96, 1.0f);
}

static void test_seq_first_order(void **state) {
  (void)state;
  static const float s[3] = {1.0f, 0.5f, 1.0f};
  const dp_params p = one_thread();
  dp_job j;
  /* [T=2][B=3][D=4]: rows in memory order are (t, b) t-major. */
  reset();
  make_job(&j, 3, 2, 4, 4, 12, s, 0);
  dp_run_job(&j, &p, 24 * 4, rec_range);
  assert_int_equal(atomic_load(&ncalls), 6);
  for (size_t i = 0; i < 6; i++) expect_call(i, 4 * i, 4, s[i % 3]);
}

static void test_threads_split_only_elementwise_rows(void **state) {
  (void)state;
  static const float s[1] = {1.0f};
  dp_params p;
  dp_params_init(&p);
  p.num_threads = 2; /* explicit: splits even a small call */
  const size_t D = 40000;
  dp_job j;
  reset();
  make_job(&j, 1, 1, D, D, D, s, 1);
  dp_run_job(&j, &p, D * 12, rec_range);
  for (size_t i = 0; i < D; i++)
    if (visits[i] != 1) fail_msg("element %zu visited %u times", i, (unsigned)visits[i]);
#if DP_HAVE_OPENMP
  /* Chunks for the second thread, where there is a second processor (the cap). */
  if (omp_get_num_procs() > 1) assert_true(atomic_load(&ncalls) > 1);
#endif
  reset();
  make_job(&j, 1, 1, D, D, D, s, 0);
  dp_run_job(&j, &p, D * 12, rec_range);
  assert_int_equal(atomic_load(&ncalls), 1);
  expect_call(0, 0, D, 1.0f);
}

/* A per-channel vector (period D): rows join and split across threads,
 * but every call starts at channel 0 and covers whole rows. */
static void test_period_whole_rows(void **state) {
  (void)state;
  static const float s[1] = {1.0f};
  dp_params p;
  dp_params_init(&p);
  p.num_threads = 2;
  const size_t T = 500, D = 96; /* one sample of 500 rows, back to back: flattened to 48000 */
  dp_job j;
  reset();
  make_job(&j, 1, T, D, T * D, D, s, 1);
  j.period = D;
  dp_run_job(&j, &p, T * D * 12, rec_range);
  for (size_t i = 0; i < T * D; i++)
    if (visits[i] != 1) fail_msg("element %zu visited %u times", i, (unsigned)visits[i]);
  const size_t n = atomic_load(&ncalls);
  for (size_t i = 0; i < n && i < MAX_CALLS; i++)
    if (calls[i].off % D || calls[i].n % D) fail_msg("call %zu: offset %zu, %zu elements", i, calls[i].off, calls[i].n);
#if DP_HAVE_OPENMP
  if (omp_get_num_procs() > 1) assert_true(n > 1); /* the one flattened row was split */
#endif
  /* The small walk joins whole rows too. */
  static const float s4[4] = {1.0f, 1.0f, 0.0f, 1.0f};
  reset();
  make_job(&j, 4, 3, 8, 24, 8, s4, 1);
  j.period = 8;
  p.num_threads = 1;
  assert_true(dp_walk_small(&j, &p, 96 * 4, rec_row));
  assert_int_equal(atomic_load(&ncalls), 3);
  expect_call(0, 0, 48, 1.0f);
  expect_call(1, 48, 24, 0.0f);
  expect_call(2, 72, 24, 1.0f);
}

/* num_threads far above the machine: capped at the processors OpenMP reports
 * (starting INT_MAX threads would make libgomp abort the process). */
static void test_thread_cap(void **state) {
  (void)state;
  static float s[3000];
  for (size_t b = 0; b < 3000; b++) s[b] = (float)(b % 7);
  dp_params p;
  dp_params_init(&p);
  p.num_threads = INT_MAX;
  dp_job j;
  reset();
  make_job(&j, 3000, 1, 16, 16, 16, s, 0);
  dp_run_job(&j, &p, 3000 * 16 * 12, rec_range);
  assert_int_equal(atomic_load(&ncalls), 3000);
  for (size_t i = 0; i < 3000 * 16; i++)
    if (visits[i] != 1) fail_msg("element %zu visited %u times", i, (unsigned)visits[i]);
#if DP_HAVE_OPENMP
  if (atomic_load(&top_thread) >= omp_get_num_procs())
    fail_msg("thread %d ran with %d processors", atomic_load(&top_thread), omp_get_num_procs());
#endif
  assert_int_equal(dp_set_num_threads(INT_MAX), DP_OK);
  p.num_threads = 0;
  reset();
  make_job(&j, 3000, 1, 16, 16, 16, s, 0);
  dp_run_job(&j, &p, (size_t)1 << 30, rec_range); /* above the size threshold */
  assert_int_equal(atomic_load(&ncalls), 3000);
#if DP_HAVE_OPENMP
  assert_true(atomic_load(&top_thread) < omp_get_num_procs());
#endif
  assert_int_equal(dp_set_num_threads(0), DP_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_elementwise_joins_equal_scales),
      cmocka_unit_test(test_whole_rows_when_not_elementwise),
      cmocka_unit_test(test_seq_first_order),
      cmocka_unit_test(test_threads_split_only_elementwise_rows),
      cmocka_unit_test(test_period_whole_rows),
      cmocka_unit_test(test_thread_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
