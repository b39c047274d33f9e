/*
 * What the sample compaction entry points (compact.c, compact_ls.c) share:
 * the scale of a kept sample, byte counts, and the join with or without
 * LayerScale (the kept indices' check is core/validate's).
 */
#ifndef DP_API_COMPACT_H
#define DP_API_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "core/maskgen.h"
#include "droppath/droppath.h"

/* s of a kept sample of a call whose mask kept `kept` of B samples. */
static inline float dp_kept_scale(const dp_params *params, size_t B, size_t kept) {
  float keep, s;
  dp_keep_and_scale(params, &keep, &s);
  if (params->mode == DP_MODE_EXACT_K && params->scale_by_keep && kept > 0) s = (float)((double)B / (double)kept);
  return s;
}

/* Bytes of `samples` samples of T rows of D elements of es bytes, saturating. */
static inline size_t dp_samples_bytes(size_t samples, size_t T, size_t D, size_t es) {
  const size_t per_sample = T * D * es; /* fits: a validated span holds it */
  return samples != 0 && per_sample > SIZE_MAX / samples ? SIZE_MAX : samples * per_sample;
}

/*
 * The compacted join, checked and run: out = x for dropped samples and
 * out[idx[i]] = x[idx[i]] + s*f_kept[i] (gamma NULL, dp_compact_forward) or
 * x[idx[i]] + ((gamma*f_kept[i])*s) (dp_compact_forward_ls). The caller is
 * in the library's floating-point state.
 */
dp_status dp_compact_join(const dp_params *params, const dp_shape *shape, const dp_tensor *out, const dp_tensor *x,
                          const dp_tensor *f_kept, const float *gamma, size_t kept, const size_t *idx);

#endif /* DP_API_COMPACT_H */
