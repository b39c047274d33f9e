/* Keep/drop decisions and the public mask query. */
#include <string.h>

#include "internal.h"

void dp_mask_ctx_init(dp_mask_ctx *ctx, const dp_params *params) {
  ctx->seed = params->seed;
  ctx->offset = params->offset;
  ctx->sample_base = params->sample_base;
  ctx->batch_mode = params->mode == DP_MODE_BATCH;
  dp_keep_and_scale(params, &ctx->keep, &ctx->scale);
}

float dp_mask_sample_scale(const dp_mask_ctx *ctx, size_t b) {
  /* Batch mode draws once per call from the reserved counter g = 2^64-1. */
  const uint64_t g = ctx->batch_mode ? UINT64_MAX : ctx->sample_base + (uint64_t)b;
  const uint32_t w0 = dp_philox_word0(ctx->seed, g, ctx->offset);
  /* 24 bits so that u is exact in binary32 and u < keep compares exactly. */
  const float u = (float)(w0 >> 8) * 0x1p-24f;
  return u < ctx->keep ? ctx->scale : 0.0f;
}

void dp_mask_fill_scales(const dp_mask_ctx *ctx, size_t b0, size_t n, float *scales) {
  if (ctx->batch_mode) {
    const float s = n ? dp_mask_sample_scale(ctx, 0) : 0.0f;
    for (size_t i = 0; i < n; i++) scales[i] = s;
    return;
  }
  dp_current_kernels()->mask[DP_COMBO_F32](ctx->seed, ctx->offset, ctx->sample_base + (uint64_t)b0, ctx->keep, ctx->scale, n,
                             scales);
}

dp_status dp_mask(const dp_params *params, size_t batch, uint8_t *keep_out, float *scales_out,
                  size_t *kept_count, size_t *kept_indices) {
  dp_status st = dp_check_params(params);
  if (st != DP_OK) return st;
  dp_extent ext[4];
  if ((st = dp_check_array(keep_out, keep_out ? batch : 0, 1, &ext[0])) != DP_OK) return st;
  if ((st = dp_check_array(scales_out, scales_out ? batch : 0, sizeof(float), &ext[1])) != DP_OK) return st;
  if ((st = dp_check_array(kept_count, kept_count ? 1 : 0, sizeof(size_t), &ext[2])) != DP_OK) return st;
  if ((st = dp_check_array(kept_indices, kept_indices ? batch : 0, sizeof(size_t), &ext[3])) != DP_OK)
    return st;
  for (int i = 0; i < 4; i++)
    for (int j = i + 1; j < 4; j++)
      if (dp_extents_overlap(ext[i], ext[j])) return DP_ERR_OVERLAP;

  if (!keep_out && !scales_out && !kept_count && !kept_indices) return DP_OK; /* nothing asked */
  dp_mask_ctx ctx;
  dp_mask_ctx_init(&ctx, params);
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
