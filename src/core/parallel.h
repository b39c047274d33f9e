/* Thread-count and store-kind policy: how many OpenMP threads a call gets,
 * and whether its outputs are written with non-temporal stores. */
#ifndef DP_CORE_PARALLEL_H
#define DP_CORE_PARALLEL_H

#include <stdatomic.h>
#include <stddef.h>

#include "droppath/droppath.h"

/* Threads to use for a call touching `bytes` bytes of memory in `items` work items. */
int dp_plan_threads(const dp_params *params, size_t bytes, size_t items);
/* Bytes of the last-level cache (DROPPATH_LLC_BYTES, sysfs, sysconf, else 32 MiB). */
size_t dp_llc_bytes(void);
/* dp_llc_bytes() once it has been asked, else 0. */
extern atomic_size_t dp_llc_cached;

/* Whether a call writing out_bytes should use non-temporal stores. */
static inline int dp_plan_stream(const dp_params *params, size_t out_bytes) {
  if (params->flags & DP_FLAG_STREAM_NEVER) return 0;
  if (params->flags & DP_FLAG_STREAM_ALWAYS) return 1;
  /* Streaming stores skip the read-for-ownership of each output line but
   * leave the result out of cache: worth it only when it would not fit. */
  const size_t llc = atomic_load_explicit(&dp_llc_cached, memory_order_relaxed);
  return out_bytes > (llc ? llc : dp_llc_bytes());
}

/* Store fence after a thread's share of non-temporal stores (x86 sfence;
 * no-op elsewhere). Kernels never fence themselves. */
void dp_stream_fence(void);

#endif /* DP_CORE_PARALLEL_H */
