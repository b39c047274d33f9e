/*
 * The one fixed reduction order of every per-channel parameter gradient:
 * LayerScale's grad_gamma (dp_backward_ls, dp_compact_backward_ls) and the
 * fused norm's grad_gamma, grad_beta and grad_ls_gamma (dp_backward_norm_ls).
 * Rows r = b*T + t are cut into groups of `per` consecutive rows fixed by the
 * shape alone (droppath.h gives the formula), each group summed in row order
 * from +0.0f by one thread, then the groups in order: the same bits for any
 * thread count and on every ISA. Sharing the rule is what lets the fused
 * norm's grad_ls_gamma be dp_backward_ls's bits on the same gradient.
 */
#ifndef DP_API_PARAM_GROUPS_H
#define DP_API_PARAM_GROUPS_H

#include <stddef.h>

#include "kernels/common/canon.h"

#define DP_PARAM_GROUP_ELEMS ((size_t)1 << 16)  /* a group is at least this many elements ... */
#define DP_PARAM_MAX_GROUPS ((size_t)64)        /* ... there are at most this many ... */
#define DP_PARAM_MAX_PARTIALS ((size_t)1 << 22) /* ... and one partial sum per group and channel fits this many floats */

typedef struct dp_param_groups {
  size_t per, count; /* rows per group; groups (0 when there are no rows or no channels) */
} dp_param_groups;

/* M = min(64, max(1, floor(2^22 / D))) groups at most, P = max(ceil(2^16 / D), ceil(R / M)) rows each. */
static inline dp_param_groups dp_param_groups_of(size_t rows, size_t D) {
  dp_param_groups g = {1, 0};
  if (rows == 0 || D == 0) return g;
  size_t max_groups = DP_PARAM_MAX_PARTIALS / D;
  if (max_groups < 1) max_groups = 1;
  if (max_groups > DP_PARAM_MAX_GROUPS) max_groups = DP_PARAM_MAX_GROUPS;
  const size_t by_size = (DP_PARAM_GROUP_ELEMS + D - 1) / D, by_count = (rows + max_groups - 1) / max_groups;
  g.per = by_size > by_count ? by_size : by_count;
  g.count = (rows + g.per - 1) / g.per;
  return g;
}

/* The last step of the order: out[d] = the groups' partial sums added in
 * group order (no groups: +0), or out[d] plus that total when accumulating,
 * NaN canonical. Group g's D partials start at partials + g*stride. */
static inline void dp_param_groups_total(float *out, const float *partials, size_t groups, size_t stride, size_t D,
                                         int accumulate) {
  for (size_t d = 0; d < D; d++) {
    float t = groups ? partials[d] : 0.0f;
    for (size_t g = 1; g < groups; g++) t = t + partials[g * stride + d];
    out[d] = dp_f32_canon(accumulate ? out[d] + t : t);
  }
}

#endif /* DP_API_PARAM_GROUPS_H */
