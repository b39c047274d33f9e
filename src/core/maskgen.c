/* Keep/drop decisions (maskgen.h). */
#include "core/maskgen.h"

#include <math.h>
#include <stdlib.h>

size_t dp_exact_k_count(double drop_prob, size_t B) {
  if (B == 0) return 0;
  const double want = floor((double)B * (1.0 - drop_prob)); /* DINOv2: int(B * (1 - p)) */
  if (want < 1.0) return 1;
  return want >= (double)B ? B : (size_t)want;
}

/* (w, b) pairs in one 64-bit key, for calls of at most 2^32 samples. */
static inline uint64_t exact_key(uint32_t w, size_t b) { return (uint64_t)w << 32 | (uint64_t)b; }

/* The n-th smallest (0-based) of keys[0..m): Wirth's selection (Hoare's
 * partition around keys[n]). The keys are distinct, so any selection order
 * yields the same value. m fits ptrdiff_t: the keys fit in memory. */
static uint64_t select_nth(uint64_t *keys, size_t m, size_t n) {
  ptrdiff_t l = 0, r = (ptrdiff_t)m - 1;
  const ptrdiff_t nn = (ptrdiff_t)n;
  while (l < r) {
    const uint64_t pivot = keys[nn];
    ptrdiff_t i = l, j = r;
    do {
      while (keys[i] < pivot) i++;
      while (pivot < keys[j]) j--;
      if (i <= j) {
        const uint64_t t = keys[i];
        keys[i] = keys[j];
        keys[j] = t;
        i++;
        j--;
      }
    } while (i <= j);
    if (j < nn) l = i;
    if (nn < i) r = j;
  }
  return keys[nn];
}

/* Samples among B whose word is below w (strictly), and those equal to w. */
static void count_words(uint64_t seed, uint64_t offset, uint64_t base, size_t B, uint32_t w, size_t *below,
                        size_t *equal) {
  size_t lt = 0, eq = 0;
  for (size_t b = 0; b < B; b++) {
    const uint32_t x = dp_philox_word0(seed, base + (uint64_t)b, offset);
    lt += x < w;
    eq += x == w;
  }
  *below = lt;
  *equal = eq;
}

/* Without memory: the smallest word W with at least k samples at or below
 * it (bisection over the words), then the (k - below(W))-th sample whose
 * word is W, in index order. */
static dp_exact_cut cut_by_bisection(uint64_t seed, uint64_t offset, uint64_t base, size_t B, size_t k) {
  uint64_t lo = 0, hi = UINT32_MAX; /* W lies in [lo, hi] */
  size_t below, equal;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    count_words(seed, offset, base, B, (uint32_t)mid, &below, &equal);
    if (below + equal >= k) hi = mid;
    else lo = mid + 1;
  }
  const uint32_t w = (uint32_t)lo;
  count_words(seed, offset, base, B, w, &below, &equal);
  size_t need = k - below, b = 0;
  for (;; b++)
    if (dp_philox_word0(seed, base + (uint64_t)b, offset) == w && --need == 0) break;
  const dp_exact_cut cut = {w, b};
  return cut;
}

dp_exact_cut dp_exact_k_cut(uint64_t seed, uint64_t offset, uint64_t base, size_t B, size_t k, int use_memory) {
  uint64_t stack[256], *keys = NULL;
  if (use_memory && (uint64_t)(B - 1) <= UINT32_MAX) {
    keys = B <= 256 ? stack : (uint64_t *)malloc(B * sizeof(uint64_t)); /* B*8 fits: B <= 2^32 */
  }
  if (!keys) return cut_by_bisection(seed, offset, base, B, k);
  for (size_t b = 0; b < B; b++) keys[b] = exact_key(dp_philox_word0(seed, base + (uint64_t)b, offset), b);
  const uint64_t key = select_nth(keys, B, k - 1);
  if (keys != stack) free(keys);
  const dp_exact_cut cut = {(uint32_t)(key >> 32), (size_t)(key & UINT32_MAX)};
  return cut;
}

void dp_mask_ctx_init(dp_mask_ctx *ctx, const dp_params *params, size_t batch) {
  ctx->seed = params->seed;
  ctx->offset = params->offset;
  ctx->sample_base = params->sample_base;
  ctx->batch_mode = params->mode == DP_MODE_BATCH;
  ctx->exact = params->mode == DP_MODE_EXACT_K;
  dp_keep_and_scale(params, &ctx->keep, &ctx->scale);
  if (ctx->exact && batch > 0) {
    const size_t k = dp_exact_k_count(params->drop_prob, batch);
    ctx->cut = dp_exact_k_cut(ctx->seed, ctx->offset, ctx->sample_base, batch, k, 1);
    ctx->scale = params->scale_by_keep ? (float)((double)batch / (double)k) : 1.0f;
  }
}

float dp_mask_sample_scale(const dp_mask_ctx *ctx, size_t b) {
  if (ctx->exact) {
    const uint32_t w = dp_philox_word0(ctx->seed, ctx->sample_base + (uint64_t)b, ctx->offset);
    return w < ctx->cut.word || (w == ctx->cut.word && b <= ctx->cut.index) ? ctx->scale : 0.0f;
  }
  /* Batch mode draws once per call from the reserved counter g = 2^64-1. */
  const uint64_t g = ctx->batch_mode ? UINT64_MAX : ctx->sample_base + (uint64_t)b;
  const uint32_t w0 = dp_philox_word0(ctx->seed, g, ctx->offset);
  /* 24 bits so that u is exact in binary32 and u < keep compares exactly. */
  const float u = (float)(w0 >> 8) * 0x1p-24f;
  return u < ctx->keep ? ctx->scale : 0.0f;
}

void dp_mask_fill_scales(const dp_mask_ctx *ctx, size_t b0, size_t n, float *scales) {
  if (ctx->exact) {
    for (size_t i = 0; i < n; i++) scales[i] = dp_mask_sample_scale(ctx, b0 + i);
    return;
  }
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
  if (params->mode != DP_MODE_ROW) { /* batch: one draw for all; exact-k: a cut over the batch */
    dp_mask_ctx ctx;
    dp_mask_ctx_init(&ctx, params, batch);
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
