/* Thread-count and store-kind policy: how many OpenMP threads a call gets,
 * and whether its outputs are written with non-temporal stores. */
#ifndef DP_CORE_PARALLEL_H
#define DP_CORE_PARALLEL_H

#include <stddef.h>

#include "core/cache.h"

#include "droppath/droppath.h"

/* Threads to use for a call touching `bytes` bytes of memory in `items` work items. */
int dp_plan_threads(const dp_params *params, size_t bytes, size_t items);
/* Whether a call on `threads` threads writing out_bytes uses non-temporal
 * stores: the flags decide, else outputs larger than the call's share of the
 * last-level cache (core/cache.h) stream. */
static inline int dp_plan_stream(const dp_params *params, size_t out_bytes, int threads) {
  if (params->flags & DP_FLAG_STREAM_NEVER) return 0;
  if (params->flags & DP_FLAG_STREAM_ALWAYS) return 1;
  /* Streaming stores skip the read-for-ownership of each output line but
   * leave the result out of cache: worth it only when it would not fit. */
  return out_bytes > dp_llc_share(threads);
}

/* Store fence after a thread's share of non-temporal stores (x86 sfence;
 * no-op elsewhere). Kernels never fence themselves. */
void dp_stream_fence(void);

#endif /* DP_CORE_PARALLEL_H */
