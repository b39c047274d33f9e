/* dp_mask: a call's mask without touching data (keep flags, scales, kept count, kept indices). */
#include "core/fpenv.h"
#include "core/maskgen.h"
#include "core/validate.h"

/* Four optional outputs, none of which may overlap another. */
static const dp_op_args mask_args = {
    .n_tensors = 0,
    .n_arrays = 4,
    .array = {{.output = 1, .per_sample = 1, .elem_size = 1},
              {.output = 1, .per_sample = 1, .elem_size = sizeof(float)},
              {.output = 1, .elem_size = sizeof(size_t)},
              {.output = 1, .per_sample = 1, .elem_size = sizeof(size_t)}},
};

static DP_NOINLINE dp_status mask(const dp_params *params, size_t batch, uint8_t *keep_out, float *scales_out,
                                  size_t *kept_count, size_t *kept_indices) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  const dp_shape shape = {batch, 1, 0};
  const void *const a[4] = {keep_out, scales_out, kept_count, kept_indices};
  dp_combo unused;
  if ((st = dp_check_args(&mask_args, &shape, NULL, a, &unused)) != DP_OK) return st;

  if (!keep_out && !scales_out && !kept_count && !kept_indices) return DP_OK; /* nothing asked */
  if (params->mode == DP_MODE_EXACT_K && !keep_out && !scales_out && !kept_indices) {
    *kept_count = dp_exact_k_count(params->drop_prob, batch); /* B may be unchecked: no selection */
    return DP_OK;
  }
  dp_mask_ctx ctx;
  dp_mask_ctx_init(&ctx, params, batch);
  /* Scales go straight to scales_out when asked for (it overlaps nothing),
   * else through a block; each other output is then a pass of its own, so
   * the common ones (keep bytes, a count) compile without branches. */
  size_t kept = 0;
  float block[256];
  for (size_t b0 = 0; b0 < batch; b0 += 256) {
    const size_t nb = batch - b0 < 256 ? batch - b0 : 256;
    float *s = scales_out ? scales_out + b0 : block;
    dp_mask_fill_scales(&ctx, b0, nb, s);
    if (keep_out)
      for (size_t i = 0; i < nb; i++) keep_out[b0 + i] = s[i] != 0.0f;
    if (kept_indices) {
      for (size_t i = 0; i < nb; i++)
        if (s[i] != 0.0f) kept_indices[kept++] = b0 + i;
    } else if (kept_count) {
      for (size_t i = 0; i < nb; i++) kept += s[i] != 0.0f;
    }
  }
  if (kept_count) *kept_count = kept;
  return DP_OK;
}

/* The public entry: the work runs in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of it moves across the switch. */
dp_status dp_mask(const dp_params *params, size_t batch, uint8_t *keep_out, float *scales_out,
                  size_t *kept_count, size_t *kept_indices) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = mask(params, batch, keep_out, scales_out, kept_count, kept_indices);
  dp_fpenv_leave(e);
  return st;
}
