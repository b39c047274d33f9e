/* Declarations shared by the library's C files (not installed). */
#ifndef DP_INTERNAL_H
#define DP_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "droppath/droppath.h"
#include "kernels/kernels.h"

/* ---- masks (mask.c) */

/* Everything needed to decide keep/drop for any sample of one call. */
typedef struct dp_mask_ctx {
  uint64_t seed, offset, sample_base;
  float keep;  /* (float)(1 - drop_prob) */
  float scale; /* s for kept samples */
  int batch_mode;
} dp_mask_ctx;

/* keep = (float)(1 - drop_prob) and the scale of kept samples: the one
 * derivation every path uses. */
static inline void dp_keep_and_scale(const dp_params *params, float *keep, float *scale) {
  const float k = (float)(1.0 - params->drop_prob);
  /* keep == 0 drops every sample and the scale is never used. The divisor is
   * clamped because compilers may evaluate 1/keep speculatively, and a 1/0
   * would trap for callers running with FP exceptions enabled. Any nonzero
   * keep is >= 2^-53, so the clamp changes no value. */
  const float divisor = k > 0x1p-60f ? k : 0x1p-60f;
  *keep = k;
  *scale = params->scale_by_keep && k > 0.0f ? 1.0f / divisor : 1.0f;
}

void dp_mask_ctx_init(dp_mask_ctx *ctx, const dp_params *params);
/* Scale of sample b of the call: ctx->scale if kept, 0.0f if dropped. */
float dp_mask_sample_scale(const dp_mask_ctx *ctx, size_t b);
/* scales[i] = scale of sample b0 + i, for i < n (lane-parallel Philox). */
void dp_mask_fill_scales(const dp_mask_ctx *ctx, size_t b0, size_t n, float *scales);
/* Philox word 0 for (seed, counter g, offset): the only word the mask uses. */
uint32_t dp_philox_word0(uint64_t seed, uint64_t g, uint64_t offset);

/* ---- argument checking (validate.c) */

/* A tensor's footprint after validation. */
typedef struct dp_extent {
  const unsigned char *lo; /* first byte (NULL for an empty or absent tensor) */
  const unsigned char *hi; /* one past the last byte */
} dp_extent;

dp_status dp_check_params(const dp_params *params);
/* Checks dtype, pointer, strides and size arithmetic of one tensor; fills *ext. */
dp_status dp_check_tensor(const dp_tensor *t, const dp_shape *shape, dp_extent *ext);
/* Extent of a plain array of n elements of elem_size bytes (n may be 0, p may be NULL then). */
dp_status dp_check_array(const void *p, size_t n, size_t elem_size, dp_extent *ext);
/* Nonzero if the two extents share a byte. (Inline: called up to six times per call.) */
static inline int dp_extents_overlap(dp_extent a, dp_extent b) {
  if (!a.lo || !b.lo || a.lo == a.hi || b.lo == b.hi) return 0;
  return a.lo < b.hi && b.lo < a.hi;
}
/* The small helpers below are inline: a tiny call (8 rows of 384) runs them a
 * dozen times, and each cross-file call was a measurable share of its
 * ~30 ns of API overhead. */

/* Nonzero if a and b describe exactly the same elements (same data, dtype, strides). */
static inline int dp_tensors_identical(const dp_tensor *a, const dp_tensor *b, const dp_shape *shape) {
  const size_t T = shape->seq ? shape->seq : 1;
  /* A stride that is never applied (one sample, one row) does not matter. */
  return a->data == b->data && a->dtype == b->dtype &&
         (shape->batch <= 1 || a->sample_stride == b->sample_stride) &&
         (T == 1 || a->seq_stride == b->seq_stride);
}

/* The kernel type combination for residual-stream type x and branch type f, or -1. */
static inline int dp_combo_of(int x_dtype, int f_dtype) {
  if (x_dtype == DP_F32 && f_dtype == DP_F32) return DP_COMBO_F32;
  if (x_dtype == DP_BF16 && f_dtype == DP_BF16) return DP_COMBO_BF16;
  if (x_dtype == DP_F16 && f_dtype == DP_F16) return DP_COMBO_F16;
  if (x_dtype == DP_F32 && f_dtype == DP_BF16) return DP_COMBO_F32_BF16;
  if (x_dtype == DP_F32 && f_dtype == DP_F16) return DP_COMBO_F32_F16;
  return -1;
}

/* Bytes per element, 0 for an unknown dtype. */
static inline size_t dp_dtype_size(int dtype) {
  switch (dtype) {
    case DP_F32: return 4;
    case DP_BF16:
    case DP_F16: return 2;
    default: return 0;
  }
}

/* ---- dispatch (dispatch.c, cpu_features.c) */

/* The table in use, NULL until dispatch is initialised (dispatch.c). */
extern _Atomic(const dp_kernel_table *) dp_active_table;
/* Initialises dispatch once (thread-safe) and returns the table in use. */
const dp_kernel_table *dp_current_kernels_slow(void);
/* The table in use: after the first call, a single acquire load. */
static inline const dp_kernel_table *dp_current_kernels(void) {
  const dp_kernel_table *t = atomic_load_explicit(&dp_active_table, memory_order_acquire);
  return t ? t : dp_current_kernels_slow();
}
/* CPU/OS support bitmask, bit i = dp_isa i runnable (compiled-in or not). */
unsigned dp_cpu_isa_mask(void);
/* Bitmask of ISAs with kernels compiled into this build. */
unsigned dp_built_isa_mask(void);

/* ---- threads (parallel.c) */

/* Threads to use for a call touching `bytes` bytes of memory in `items` work items. */
int dp_plan_threads(const dp_params *params, size_t bytes, size_t items);
/* Bytes of the last-level cache (sysfs/sysconf, else 32 MiB). */
size_t dp_llc_bytes(void);
/* dp_llc_bytes() once it has been asked, else 0 (parallel.c). */
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

#endif
