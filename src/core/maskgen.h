/*
 * Keep/drop decisions: a call's mask context, per-sample scales (s for a
 * kept sample, 0 for a dropped one) drawn through the dispatched mask kernel,
 * and the early draw of small batches.
 */
#ifndef DP_CORE_MASKGEN_H
#define DP_CORE_MASKGEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/dispatch.h"
#include "core/philox.h"
#include "droppath/droppath.h"

/* An exact-k call's cut: sample b is kept iff (w0(b), b) <= (word, index)
 * in lexicographic order (droppath.h, "Exact-k"). */
typedef struct dp_exact_cut {
  uint32_t word;
  size_t index;
} dp_exact_cut;

/* Everything needed to decide keep/drop for any sample of one call. */
typedef struct dp_mask_ctx {
  uint64_t seed, offset, sample_base;
  float keep;  /* (float)(1 - drop_prob) */
  float scale; /* s for kept samples */
  int batch_mode;
  int exact;         /* exact-k mode: kept iff at or below cut */
  dp_exact_cut cut;  /* exact-k: the k-th smallest (w0, b) of the call */
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

/* k of an exact-k call of B samples: max(floor(B*(1 - drop_prob)), 1), 0 when B == 0. */
size_t dp_exact_k_count(double drop_prob, size_t B);
/* The cut of an exact-k call keeping k of B >= k >= 1 samples. With
 * use_memory, selection over B keys (a temporary block of B entries when B
 * fits 32 bits and the memory is there); otherwise, or as the fallback, a
 * memory-free bisection over the 32-bit words (33 passes over the samples).
 * Both give the same cut: tests compare them. */
dp_exact_cut dp_exact_k_cut(uint64_t seed, uint64_t offset, uint64_t sample_base, size_t B, size_t k,
                            int use_memory);

/* The mask of a call of `batch` samples (exact-k mode needs the batch to
 * find its cut). */
void dp_mask_ctx_init(dp_mask_ctx *ctx, const dp_params *params, size_t batch);
/* Scale of sample b of the call: ctx->scale if kept, 0.0f if dropped. */
float dp_mask_sample_scale(const dp_mask_ctx *ctx, size_t b);
/* scales[i] = scale of sample b0 + i, for i < n (lane-parallel Philox). */
void dp_mask_fill_scales(const dp_mask_ctx *ctx, size_t b0, size_t n, float *scales);

/* A call of at most this many samples is "small": its mask is drawn before
 * its tensors are validated (below), and a small call on one thread skips
 * the job machinery (core/rowwalk.h). */
#define DP_SMALL_BATCH 16

/* The mask of a small batch (1..DP_SMALL_BATCH samples) into buf, else NULL.
 * The Philox chain is latency-bound (~24 ns for 8 samples on Zen 5): drawn
 * first, the checks run in its shadow. buf is the caller's stack, so a call
 * rejected afterwards still writes nothing. */
const float *dp_draw_small(const dp_params *params, size_t batch, float buf[DP_SMALL_BATCH]);

/* Small batches keep their per-sample scales on the stack. */
#define DP_STACK_SCALES 1024

/* The B per-sample scales of a call with rows of D elements: into dst when
 * the caller wants them, else stack_buf (B <= DP_STACK_SCALES) or a heap
 * block returned in *heap (free it). NULL when there is nothing to draw
 * (D == 0 and no dst) or no memory: the row walk then draws per sample. */
float *dp_scales_prepare(const dp_mask_ctx *ctx, size_t B, size_t D, float *dst, float *stack_buf, float **heap);

#endif /* DP_CORE_MASKGEN_H */
