/* Keep/drop decisions (maskgen.h). */
#include "core/maskgen.h"

#include <stdlib.h>

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
  dp_current_kernels()->mask[DP_COMBO_F32](ctx->seed, ctx->offset, ctx->sample_base + (uint64_t)b0, ctx->keep,
                                           ctx->scale, n, scales);
}

const float *dp_draw_small(const dp_params *params, size_t batch, float buf[DP_SMALL_BATCH]) {
  if (batch == 0 || batch > DP_SMALL_BATCH) return NULL;
  if (params->mode == DP_MODE_BATCH) { /* one draw for all */
    dp_mask_ctx ctx;
    dp_mask_ctx_init(&ctx, params);
    dp_mask_fill_scales(&ctx, 0, batch, buf);
    return buf;
  }
  /* The kernel called here rather than through a mask context: measured
   * ~8 ns less on the tiny call (the draw starts that much sooner). */
  float keep, scale;
  dp_keep_and_scale(params, &keep, &scale);
  dp_current_kernels()->mask[DP_COMBO_F32](params->seed, params->offset, params->sample_base, keep, scale, batch, buf);
  return buf;
}

float *dp_scales_prepare(const dp_mask_ctx *ctx, size_t B, size_t D, float *dst, float *stack_buf, float **heap) {
  *heap = NULL;
  float *s = dst;
  /* No data to scale and no caller buffer: nothing to draw. (B is unchecked
   * when D == 0, so it must not size an allocation here.) */
  if (!s && D == 0) return NULL;
  if (!s && B <= DP_STACK_SCALES) s = stack_buf;
  if (!s && B <= SIZE_MAX / sizeof(float)) s = *heap = (float *)malloc(B * sizeof(float));
  if (s) dp_mask_fill_scales(ctx, 0, B, s);
  return s;
}
