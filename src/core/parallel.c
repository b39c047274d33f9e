/* Thread-count and store-kind policy. */
#include <stdatomic.h>

#include "core/parallel.h"
#include "dp_config.h"

#if DP_HAVE_OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

/* Below this many bytes of traffic a call runs on the calling thread: an
 * OpenMP fork/join costs a few microseconds, more than the work itself. */
#define DP_PARALLEL_MIN_BYTES ((size_t)192 * 1024)

static atomic_int default_threads = 0;

dp_status dp_set_num_threads(int num_threads) {
  if (num_threads < 0) return DP_ERR_BAD_ARGUMENT;
  atomic_store(&default_threads, num_threads);
  return DP_OK;
}

int dp_has_openmp(void) { return DP_HAVE_OPENMP; }

#if DP_HAVE_OPENMP
/* The processors this process may run on (omp_get_num_procs, which honours
 * the affinity mask), asked once: libgomp answers with a system call. */
static int processors(void) {
  static atomic_int cached = 0;
  int n = atomic_load_explicit(&cached, memory_order_relaxed);
  if (n == 0) {
    n = omp_get_num_procs();
    if (n < 1) n = 1;
    atomic_store_explicit(&cached, n, memory_order_relaxed);
  }
  return n;
}
#endif

int dp_plan_threads(const dp_params *params, size_t bytes, size_t items) {
#if DP_HAVE_OPENMP
  int want = params->num_threads;
  if (want == 0) want = atomic_load(&default_threads);
  if (want == 1 || items <= 1) return 1;
  /* Size first: a tiny call decides without asking the OpenMP runtime. Only
   * an explicit per-call num_threads overrides the threshold. */
  if (params->num_threads == 0 && bytes < DP_PARALLEL_MIN_BYTES) return 1;
  /* Called from inside a parallel region: the caller already owns the
   * cores; nesting would oversubscribe them. */
  if (omp_in_parallel()) return 1;
  if (want == 0) want = omp_get_max_threads();
  /* More threads than processors only queue behind each other, and a count
   * like INT_MAX would make the runtime abort when thread creation fails:
   * the cap is what the machine can run at once. */
  if (want > processors()) want = processors();
  if ((size_t)want > items) want = (int)items;
  return want < 1 ? 1 : want;
#else
  (void)params;
  (void)bytes;
  (void)items;
  return 1;
#endif
}

void dp_stream_fence(void) {
#if defined(__x86_64__) || defined(__i386__)
  /* Non-temporal stores are weakly ordered: drain them before another thread
   * (or the caller, after the parallel region's barrier) reads the output. */
  _mm_sfence();
#endif
}
