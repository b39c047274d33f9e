/* Declarations shared by the library's C files (not installed). */
#ifndef DP_INTERNAL_H
#define DP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "droppath/droppath.h"
#include "kernels.h"

/* ---- masks (mask.c) */

/* Everything needed to decide keep/drop for any sample of one call. */
typedef struct dp_mask_ctx {
  uint64_t seed, offset, sample_base;
  float keep;  /* (float)(1 - drop_prob) */
  float scale; /* s for kept samples */
  int batch_mode;
} dp_mask_ctx;

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
/* Nonzero if a and b describe exactly the same elements (same data, dtype, strides). */
int dp_tensors_identical(const dp_tensor *a, const dp_tensor *b, const dp_shape *shape);
/* The kernel type combination for residual-stream type x and branch type f, or -1. */
int dp_combo_of(int x_dtype, int f_dtype);
size_t dp_dtype_size(int dtype);

/* ---- dispatch (dispatch.c, cpu_features.c) */

const dp_kernel_table *dp_current_kernels(void);
/* CPU/OS support bitmask, bit i = dp_isa i runnable (compiled-in or not). */
unsigned dp_cpu_isa_mask(void);
/* Bitmask of ISAs with kernels compiled into this build. */
unsigned dp_built_isa_mask(void);

/* ---- threads (parallel.c) */

/* Threads to use for a call touching `bytes` bytes of memory in `items` work items. */
int dp_plan_threads(const dp_params *params, size_t bytes, size_t items);
/* Bytes of the last-level cache (sysfs/sysconf, else 32 MiB). */
size_t dp_llc_bytes(void);
/* Whether a call writing out_bytes should use non-temporal stores. */
int dp_plan_stream(const dp_params *params, size_t out_bytes);
/* Store fence after a thread's share of non-temporal stores (x86 sfence;
 * no-op elsewhere). Kernels never fence themselves. */
void dp_stream_fence(void);

#endif
