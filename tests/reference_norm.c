/* The fused residual + norm model (reference_norm.h). */
#include "reference_norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

static size_t rows_of(dp_shape s) { return s.seq ? s.seq : 1; }

static unsigned char *at(const dp_tensor *t, size_t b, size_t r, size_t d) {
  return (unsigned char *)t->data + (b * t->sample_stride + r * t->seq_stride + d) * ref_dtype_size(t->dtype);
}

static float load(const dp_tensor *t, size_t b, size_t r, size_t d) {
  const unsigned char *p = at(t, b, r, d);
  uint16_t h;
  float v;
  if (t->dtype == DP_F32) {
    memcpy(&v, p, 4);
    return v;
  }
  memcpy(&h, p, 2);
  return t->dtype == DP_BF16 ? ref_bf16_to_f32(h) : ref_f16_to_f32(h);
}

/* An arithmetic result: rounded to the dtype, NaN as the canonical quiet NaN. */
static void store_result(const dp_tensor *t, size_t b, size_t r, size_t d, float v) {
  unsigned char *p = at(t, b, r, d);
  const uint32_t q32 = 0x7fc00000u;
  uint16_t h;
  if (t->dtype == DP_F32) {
    if (isnan(v)) memcpy(p, &q32, 4);
    else memcpy(p, &v, 4);
    return;
  }
  if (isnan(v)) h = t->dtype == DP_BF16 ? 0x7fc0u : 0x7e00u;
  else h = t->dtype == DP_BF16 ? ref_f32_to_bf16(v) : ref_f32_to_f16(v);
  memcpy(p, &h, 2);
}

/* v as it reads back once stored in dtype t. */
static float round_to(float v, int t) {
  if (t == DP_F32 || isnan(v)) return v;
  return t == DP_BF16 ? ref_bf16_to_f32(ref_f32_to_bf16(v)) : ref_f16_to_f32(ref_f32_to_f16(v));
}

static float canon(float v) { return isnan(v) ? (float)NAN : v; }

static float canon_bits(float v) {
  const uint32_t q = 0x7fc00000u;
  float c;
  memcpy(&c, &q, 4);
  return isnan(v) ? c : v;
}

/* Sum of v[0..n) (or of v*v) in 16 lanes, lane i mod 16, then the tree. */
static float lane_sum(const float *v, size_t n, float minus, int square) {
  float lane[16];
  for (int l = 0; l < 16; l++) lane[l] = -0.0f;
  for (size_t i = 0; i < n; i++) {
    const float d = v[i] - minus;
    lane[i % 16] = lane[i % 16] + (square ? d * d : d);
  }
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) lane[l] = lane[l] + lane[l + w];
  return lane[0];
}

void ref_norm_forward(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor y, dp_tensor r,
                      dp_tensor x, dp_tensor f, float *scales_out, int inference) {
  const size_t B = shape.batch, T = rows_of(shape), D = shape.dim;
  const int rms = norm->kind == DP_NORM_RMS;
  const int r_is_x = r.data == x.data;
  float *v = (float *)malloc((D ? D : 1) * sizeof(float));
  if (!v) abort();
  for (size_t b = 0; b < B; b++) {
    float s;
    if (inference) s = params->scale_by_keep ? 1.0f : ref_keep(params->drop_prob);
    else s = ref_sample_scale(params, shape.batch, b);
    if (scales_out && !inference) scales_out[b] = s;
    if (D == 0) continue;
    for (size_t t = 0; t < T; t++) {
      for (size_t d = 0; d < D; d++) {
        if (s != 0.0f) {
          const float sf = s * load(&f, b, t, d);
          v[d] = round_to(load(&x, b, t, d) + sf, x.dtype);
          if (r.data) store_result(&r, b, t, d, v[d]);
        } else {
          v[d] = load(&x, b, t, d); /* f is not read */
          if (r.data && !r_is_x) memcpy(at(&r, b, t, d), at(&x, b, t, d), ref_dtype_size(x.dtype));
        }
      }
      const float mean = rms ? 0.0f : lane_sum(v, D, 0.0f, 0) / (float)D;
      const float var = lane_sum(v, D, mean, 1) / (float)D;
      const float rstd = 1.0f / sqrtf(var + norm->eps);
      for (size_t d = 0; d < D; d++) {
        float o = (v[d] - mean) * rstd;
        if (norm->gamma) o = o * norm->gamma[d];
        if (norm->beta) o = o + norm->beta[d];
        store_result(&y, b, t, d, canon(o));
      }
      if (norm->mean) norm->mean[b * T + t] = canon_bits(mean);
      if (norm->rstd) norm->rstd[b * T + t] = canon_bits(rstd);
    }
  }
  free(v);
}

/* g and xhat of element d of row (b, t). */
static void grad_terms(const dp_tensor *gy, const dp_tensor *r, const dp_norm *norm, size_t b, size_t t, size_t d,
                       float mean, float rstd, float *gyv, float *xh, float *g) {
  *gyv = load(gy, b, t, d);
  *xh = (load(r, b, t, d) - mean) * rstd;
  *g = norm->gamma ? *gyv * norm->gamma[d] : *gyv;
}

void ref_norm_backward(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                       dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in, const float *scales,
                       float *grad_gamma, float *grad_beta, uint32_t flags) {
  const dp_tensor none = {NULL, grad_f.dtype, 0, 0};
  ref_norm_backward_ls(params, shape, norm, grad_f, grad_x, grad_y, r, grad_r_in, none, scales, grad_gamma, grad_beta,
                       NULL, flags);
}

void ref_norm_backward_ls(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                          dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in, dp_tensor f,
                          const float *scales, float *grad_gamma, float *grad_beta, float *grad_ls_gamma,
                          uint32_t flags) {
  const size_t T = rows_of(shape), D = shape.dim, rows = shape.batch * T;
  const int rms = norm->kind == DP_NORM_RMS;
  if (D == 0) return;
  /* Groups of G rows, k = b*T + t in order (the header's rule, LayerScale's); three partials each. */
  size_t G, groups;
  ref_ls_groups(shape, &G, &groups);
  float *part = (float *)calloc(groups ? groups * 3 * D : 1, sizeof(float));
  float *ag = (float *)malloc(D * sizeof(float)), *agx = (float *)malloc(D * sizeof(float));
  if (!part || !ag || !agx) abort();
  for (size_t k = 0; k < rows; k++) {
    const size_t b = k / T, t = k % T;
    float *pg = part + (k / G) * 3 * D, *pb = pg + D, *pl = pb + D;
    const float s = scales ? scales[b] : ref_sample_scale(params, shape.batch, b);
    const float mean = rms ? 0.0f : norm->mean[k], rstd = norm->rstd[k];
    float gyv, xh, g;
    for (size_t d = 0; d < D; d++) {
      grad_terms(&grad_y, &r, norm, b, t, d, mean, rstd, &gyv, &xh, &g);
      ag[d] = g;
      agx[d] = g * xh;
      pg[d] = canon_bits(pg[d] + gyv * xh);
      pb[d] = canon_bits(pb[d] + gyv);
    }
    const float mg = rms ? 0.0f : lane_sum(ag, D, 0.0f, 0) / (float)D;
    const float mgx = lane_sum(agx, D, 0.0f, 0) / (float)D;
    for (size_t d = 0; d < D; d++) {
      grad_terms(&grad_y, &r, norm, b, t, d, mean, rstd, &gyv, &xh, &g);
      const float gn = ((g - mg) - xh * mgx) * rstd;
      const float gr = round_to(grad_r_in.data ? load(&grad_r_in, b, t, d) + gn : gn, r.dtype);
      if (grad_x.data)
        store_result(&grad_x, b, t, d, (flags & DP_BWD_ACCUMULATE_GRAD_X) ? load(&grad_x, b, t, d) + gr : gr);
      if (s != 0.0f) {
        const float gs = s * gr, sg = norm->ls_gamma ? gs * norm->ls_gamma[d] : gs;
        /* f before grad_f is written: grad_f may be f */
        if (grad_ls_gamma) pl[d] = canon_bits(pl[d] + gs * load(&f, b, t, d));
        store_result(&grad_f, b, t, d, (flags & DP_BWD_ACCUMULATE_GRAD_F) ? load(&grad_f, b, t, d) + sg : sg);
      } else if (!(flags & DP_BWD_ACCUMULATE_GRAD_F)) {
        store_result(&grad_f, b, t, d, 0.0f);
      }
    }
  }
  for (size_t d = 0; d < D; d++)
    for (int which = 0; which < 3; which++) {
      float *out = which == 0 ? grad_gamma : which == 1 ? grad_beta : grad_ls_gamma;
      if (!out) continue;
      float sum = groups ? part[which * D + d] : 0.0f; /* +0 without rows */
      for (size_t g = 1; g < groups; g++) sum = sum + part[g * 3 * D + which * D + d];
      out[d] = canon_bits((flags & DP_NORM_ACCUMULATE_GRAD_PARAMS) ? out[d] + sum : sum);
    }
  free(part);
  free(ag);
  free(agx);
}
