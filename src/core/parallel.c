/* Thread-count and store-kind policy. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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
  if ((size_t)want > items) want = (int)items;
  return want < 1 ? 1 : want;
#else
  (void)params;
  (void)bytes;
  (void)items;
  return 1;
#endif
}

static size_t read_sysfs_cache_bytes(void) {
  size_t best = 0;
  char path[96];
  for (int idx = 0; idx < 8; idx++) {
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
    FILE *fp = fopen(path, "r");
    if (!fp) continue;
    unsigned long v = 0;
    char unit = 0;
    if (fscanf(fp, "%lu%c", &v, &unit) >= 1) {
      size_t bytes = (size_t)v;
      if (unit == 'K' || unit == 'k') bytes *= 1024;
      else if (unit == 'M' || unit == 'm') bytes *= 1024 * 1024;
      if (bytes > best) best = bytes;
    }
    fclose(fp);
  }
  return best;
}

atomic_size_t dp_llc_cached = 0;

size_t dp_llc_bytes(void) {
  size_t v = atomic_load(&dp_llc_cached);
  if (v) return v;
  const char *env = getenv("DROPPATH_LLC_BYTES"); /* for tests and odd systems */
  if (env && *env) v = (size_t)strtoull(env, NULL, 0);
  /* sysfs first: it describes the cache a core actually shares (one CCX on
   * AMD: 32 MiB here), while glibc's sysconf reported 384 MiB, the sum over
   * all CCDs, which would keep outputs 12x too large out of streaming. */
  if (!v) v = read_sysfs_cache_bytes();
#ifdef _SC_LEVEL3_CACHE_SIZE
  if (!v) {
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0) v = (size_t)l3;
  }
#endif
  if (!v) v = (size_t)32 << 20;
  atomic_store(&dp_llc_cached, v);
  return v;
}

void dp_stream_fence(void) {
#if defined(__x86_64__) || defined(__i386__)
  /* Non-temporal stores are weakly ordered: drain them before another thread
   * (or the caller, after the parallel region's barrier) reads the output. */
  _mm_sfence();
#endif
}
