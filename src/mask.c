/* Keep/drop decisions and the public mask query. */
#include <math.h>
#include <string.h>

#include "internal.h"

void dp_mask_ctx_init(dp_mask_ctx *ctx, const dp_params *params) {
  ctx->seed = params->seed;
  ctx->offset = params->offset;
  ctx->sample_base = params->sample_base;
  ctx->batch_mode = params->mode == DP_MODE_BATCH;
  ctx->keep = (float)(1.0 - params->drop_prob);
  /* keep == 0 drops every sample and the scale is never used. The divisor is
   * clamped because compilers may evaluate 1/keep speculatively, and a 1/0
   * would trap for callers running with FP exceptions enabled. Any nonzero
   * keep is >= 2^-53, so the clamp changes no value. */
  ctx->scale = params->scale_by_keep && ctx->keep > 0.0f ? 1.0f / fmaxf(ctx->keep, 0x1p-60f) : 1.0f;
}

float dp_mask_sample_scale(const dp_mask_ctx *ctx, size_t b) {
  /* Batch mode draws once per call from the reserved counter g = 2^64-1. */
  const uint64_t g = ctx->batch_mode ? UINT64_MAX : ctx->sample_base + (uint64_t)b;
  const uint32_t w0 = dp_philox_word0(ctx->seed, g, ctx->offset);
  /* 24 bits so that u is exact in binary32 and u < keep compares exactly. */
  const float u = (float)(w0 >> 8) * 0x1p-24f;
  return u < ctx->keep ? ctx->scale : 0.0f;
}

/* Lanes per block: independent Philox streams the compiler can interleave
 * or vectorise (pmuludq/vpmuludq), hiding the multiply latency. */
#define DP_MASK_LANES 8

void dp_mask_fill_scales(const dp_mask_ctx *ctx, size_t b0, size_t n, float *scales) {
  if (ctx->batch_mode) {
    const float s = n ? dp_mask_sample_scale(ctx, 0) : 0.0f;
    for (size_t i = 0; i < n; i++) scales[i] = s;
    return;
  }
  const uint32_t k0 = (uint32_t)ctx->seed, k1 = (uint32_t)(ctx->seed >> 32);
  const uint32_t o0 = (uint32_t)ctx->offset, o1 = (uint32_t)(ctx->offset >> 32);
  size_t i = 0;
  for (; i + DP_MASK_LANES <= n; i += DP_MASK_LANES) {
    uint32_t c0[DP_MASK_LANES], c1[DP_MASK_LANES], c2[DP_MASK_LANES], c3[DP_MASK_LANES];
    for (int l = 0; l < DP_MASK_LANES; l++) {
      const uint64_t g = ctx->sample_base + (uint64_t)(b0 + i + (size_t)l);
      c0[l] = (uint32_t)g;
      c1[l] = (uint32_t)(g >> 32);
      c2[l] = o0;
      c3[l] = o1;
    }
    uint32_t key0 = k0, key1 = k1;
    for (int r = 0; r < 10; r++) {
      if (r) {
        key0 += 0x9E3779B9u;
        key1 += 0xBB67AE85u;
      }
      for (int l = 0; l < DP_MASK_LANES; l++) {
        const uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
        const uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ key0;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ key1;
        c1[l] = (uint32_t)p1;
        c3[l] = (uint32_t)p0;
        c0[l] = n0;
        c2[l] = n2;
      }
    }
    for (int l = 0; l < DP_MASK_LANES; l++) {
      const float u = (float)(c0[l] >> 8) * 0x1p-24f;
      scales[i + (size_t)l] = u < ctx->keep ? ctx->scale : 0.0f;
    }
  }
  for (; i < n; i++) scales[i] = dp_mask_sample_scale(ctx, b0 + i);
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
  size_t kept = 0;
  float block[256];
  for (size_t b = 0; b < batch; b++) {
    if (b % 256 == 0) dp_mask_fill_scales(&ctx, b, batch - b < 256 ? batch - b : 256, block);
    const float s = block[b % 256];
    if (keep_out) keep_out[b] = s != 0.0f;
    if (scales_out) scales_out[b] = s;
    if (s != 0.0f) {
      if (kept_indices) kept_indices[kept] = b;
      kept++;
    }
  }
  if (kept_count) *kept_count = kept;
  return DP_OK;
}
