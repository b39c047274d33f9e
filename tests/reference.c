/* Plain reference model; see reference.h.  Written for obviousness, not
 * speed: every element goes through the same load -> compute -> store path
 * whatever the layout, so a wrong stride or a missed tail in the library
 * shows up as a difference. */
#include "reference.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- Philox */

/* Random123's constants: multipliers and the Weyl key increments. */
#define REF_M0 0xD2511F53u
#define REF_M1 0xCD9E8D57u
#define REF_W0 0x9E3779B9u
#define REF_W1 0xBB67AE85u

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  const uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

void ref_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t r0 = counter[0], r1 = counter[1], r2 = counter[2], r3 = counter[3];
  for (uint32_t round = 0; round < 10; round++) {
    /* Round r uses the key bumped r times (unsigned wrap-around is the spec). */
    const uint32_t k0 = key[0] + round * REF_W0;
    const uint32_t k1 = key[1] + round * REF_W1;
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(REF_M0, r0, &hi0, &lo0);
    mulhilo(REF_M1, r2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ r1 ^ k0, n1 = lo1, n2 = hi0 ^ r3 ^ k1, n3 = lo0;
    r0 = n0;
    r1 = n1;
    r2 = n2;
    r3 = n3;
  }
  out[0] = r0;
  out[1] = r1;
  out[2] = r2;
  out[3] = r3;
}

/* ---------------------------------------------------------------- masks */

float ref_keep(double drop_prob) { return (float)(1.0 - drop_prob); }

size_t ref_exact_k(double drop_prob, size_t batch) {
  if (batch == 0) return 0;
  const double want = floor((double)batch * (1.0 - drop_prob));
  return want < 1.0 ? 1 : want > (double)batch ? batch : (size_t)want;
}

float ref_kept_scale(const dp_params *params, size_t batch) {
  if (params->mode == DP_MODE_EXACT_K)
    return params->scale_by_keep && batch > 0 ? (float)((double)batch / (double)ref_exact_k(params->drop_prob, batch))
                                              : 1.0f;
  const float keep = ref_keep(params->drop_prob);
  if (params->scale_by_keep && keep > 0.0f) return 1.0f / keep;
  return 1.0f;
}

/* Word 0 of Philox at counter g (the row-mode counter of global sample g). */
static uint32_t ref_word0(const dp_params *params, uint64_t g) {
  const uint32_t counter[4] = {(uint32_t)(g & 0xffffffffu), (uint32_t)(g >> 32),
                               (uint32_t)(params->offset & 0xffffffffu), (uint32_t)(params->offset >> 32)};
  const uint32_t key[2] = {(uint32_t)(params->seed & 0xffffffffu), (uint32_t)(params->seed >> 32)};
  uint32_t w[4];
  ref_philox4x32_10(counter, key, w);
  return w[0];
}

int ref_is_kept(const dp_params *params, size_t batch, size_t b) {
  if (params->mode == DP_MODE_EXACT_K) {
    /* Kept iff fewer than k samples have a smaller (word, index) pair: the
     * rank, counted directly (the library selects instead). */
    const uint32_t wb = ref_word0(params, params->sample_base + (uint64_t)b);
    size_t rank = 0;
    for (size_t j = 0; j < batch; j++) {
      const uint32_t wj = ref_word0(params, params->sample_base + (uint64_t)j);
      rank += wj < wb || (wj == wb && j < b);
    }
    return rank < ref_exact_k(params->drop_prob, batch);
  }
  const uint64_t g = params->mode == DP_MODE_BATCH ? UINT64_MAX : params->sample_base + (uint64_t)b;
  /* u = (w0 >> 8) * 2^-24, compared in double: both sides are exact there. */
  const double u = (double)(ref_word0(params, g) >> 8) / 16777216.0;
  return u < (double)ref_keep(params->drop_prob);
}

float ref_sample_scale(const dp_params *params, size_t batch, size_t b) {
  return ref_is_kept(params, batch, b) ? ref_kept_scale(params, batch) : 0.0f;
}

void ref_mask(const dp_params *params, size_t batch, uint8_t *keep_out, float *scales_out,
              size_t *kept_count, size_t *kept_indices) {
  size_t kept = 0;
  for (size_t b = 0; b < batch; b++) {
    const int k = ref_is_kept(params, batch, b);
    if (keep_out) keep_out[b] = (uint8_t)(k ? 1 : 0);
    if (scales_out) scales_out[b] = k ? ref_kept_scale(params, batch) : 0.0f;
    if (k) {
      if (kept_indices) kept_indices[kept] = b;
      kept++;
    }
  }
  if (kept_count) *kept_count = kept;
}

/* ---------------------------------------------------------------- dtypes */

size_t ref_dtype_size(int dtype) { return tu_dtype_size(dtype); }

float ref_bf16_to_f32(uint16_t h) { return tu_bf16_to_f32(h); }

uint16_t ref_f32_to_bf16(float v) {
  const uint32_t u = tu_f32_bits(v);
  if (isnan(v)) return (uint16_t)((u >> 16) | 0x0040u); /* keep sign and payload top, force quiet */
  const uint32_t lsb = (u >> 16) & 1u;
  return (uint16_t)((u + 0x7fffu + lsb) >> 16); /* ties to even; overflow carries into inf */
}

float ref_f16_to_f32(uint16_t h) { return tu_f16_to_f32(h); }

uint16_t ref_f32_to_f16(float v) {
  const uint16_t sign = (uint16_t)((tu_f32_bits(v) >> 31) << 15);
  if (isnan(v)) return (uint16_t)(sign | 0x7e00u | ((tu_f32_bits(v) >> 13) & 0x3ffu));
  const double a = fabs((double)v);
  if (a >= 65520.0) return (uint16_t)(sign | 0x7c00u); /* halfway to 2^16 and beyond round to inf */
  if (a < 0x1p-14) {
    /* Subnormal: units of 2^-24; rounding up to 1024 yields the smallest normal's bits. */
    return (uint16_t)(sign | (uint16_t)nearbyint(a * 0x1p24));
  }
  int e2;
  (void)frexp(a, &e2); /* a = m * 2^e2, m in [0.5, 1) */
  int e = e2 - 1;
  double q = nearbyint(ldexp(a, 10 - e)); /* 11-bit significand, ties to even */
  if (q == 2048.0) {
    q = 1024.0;
    e++;
  }
  return (uint16_t)(sign | (uint16_t)((e + 15) << 10) | (uint16_t)(q - 1024.0));
}

/* ---------------------------------------------------------------- elements */

static size_t rows_of(dp_shape shape) { return shape.seq ? shape.seq : 1; }

size_t ref_span_elems(const dp_tensor *t, dp_shape shape) {
  if (shape.batch == 0 || shape.dim == 0) return 0;
  const size_t T = rows_of(shape);
  return (shape.batch - 1) * t->sample_stride + (T > 1 ? (T - 1) * t->seq_stride : 0) + shape.dim;
}

static unsigned char *elem_ptr(const dp_tensor *t, size_t b, size_t r, size_t d) {
  const size_t idx = b * t->sample_stride + r * t->seq_stride + d;
  return (unsigned char *)t->data + idx * ref_dtype_size(t->dtype);
}

static float load(const dp_tensor *t, size_t b, size_t r, size_t d) {
  const unsigned char *p = elem_ptr(t, b, r, d);
  uint16_t h;
  float v;
  switch (t->dtype) {
    case DP_BF16:
      memcpy(&h, p, 2);
      return ref_bf16_to_f32(h);
    case DP_F16:
      memcpy(&h, p, 2);
      return ref_f16_to_f32(h);
    default:
      memcpy(&v, p, 4);
      return v;
  }
}

static void store(const dp_tensor *t, size_t b, size_t r, size_t d, float v) {
  unsigned char *p = elem_ptr(t, b, r, d);
  uint16_t h;
  switch (t->dtype) {
    case DP_BF16:
      h = ref_f32_to_bf16(v);
      memcpy(p, &h, 2);
      break;
    case DP_F16:
      h = ref_f32_to_f16(v);
      memcpy(p, &h, 2);
      break;
    default: memcpy(p, &v, 4); break;
  }
}

/* Arithmetic results.  The kernels store every NaN result as the canonical
 * quiet NaN of its dtype (src/kernels/canon.h, half.h), because which NaN an
 * add returns differs between x86 and Arm and with operand order. */
static void store_result(const dp_tensor *t, size_t b, size_t r, size_t d, float v) {
  if (!isnan(v)) {
    store(t, b, r, d, v);
    return;
  }
  unsigned char *p = elem_ptr(t, b, r, d);
  const uint32_t q32 = 0x7fc00000u;
  const uint16_t q16 = t->dtype == DP_BF16 ? 0x7fc0u : 0x7e00u;
  if (t->dtype == DP_F32) memcpy(p, &q32, 4);
  else memcpy(p, &q16, 2);
}

/* Copies are bit copies: a dropped sample's residual passes through unchanged. */
static void copy_elem(const dp_tensor *dst, const dp_tensor *src, size_t b, size_t r, size_t d) {
  memmove(elem_ptr(dst, b, r, d), elem_ptr(src, b, r, d), ref_dtype_size(dst->dtype));
}

static void zero_elem(const dp_tensor *t, size_t b, size_t r, size_t d) {
  memset(elem_ptr(t, b, r, d), 0, ref_dtype_size(t->dtype)); /* +0.0 in every dtype */
}

/* ---------------------------------------------------------------- operations */

/* out = x + (s*f) where s != 0, else out = x; f is read only for kept samples. */
static void residual_add(dp_shape shape, const dp_tensor *out, const dp_tensor *x, const dp_tensor *f,
                         size_t b, float s) {
  for (size_t r = 0; r < rows_of(shape); r++) {
    for (size_t d = 0; d < shape.dim; d++) {
      if (s != 0.0f) {
        const float xv = load(x, b, r, d);
        const float sf = s * load(f, b, r, d);
        store_result(out, b, r, d, xv + sf);
      } else {
        copy_elem(out, x, b, r, d);
      }
    }
  }
}

void ref_forward(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                 float *scales_out) {
  for (size_t b = 0; b < shape.batch; b++) {
    const float s = ref_sample_scale(params, shape.batch, b);
    if (scales_out) scales_out[b] = s;
    residual_add(shape, &out, &x, &f, b, s);
  }
}

void ref_inference_add(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                       dp_tensor f) {
  const float s = params->scale_by_keep ? 1.0f : ref_keep(params->drop_prob);
  for (size_t b = 0; b < shape.batch; b++) residual_add(shape, &out, &x, &f, b, s);
}

void ref_drop_path(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                   float *scales_out) {
  for (size_t b = 0; b < shape.batch; b++) {
    const float s = ref_sample_scale(params, shape.batch, b);
    if (scales_out) scales_out[b] = s;
    for (size_t r = 0; r < rows_of(shape); r++) {
      for (size_t d = 0; d < shape.dim; d++) {
        if (s != 0.0f) store_result(&out, b, r, d, s * load(&x, b, r, d));
        else zero_elem(&out, b, r, d);
      }
    }
  }
}

void ref_backward(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                  dp_tensor grad_out, const float *scales, uint32_t flags) {
  const int acc_f = (flags & DP_BWD_ACCUMULATE_GRAD_F) != 0;
  const int acc_x = (flags & DP_BWD_ACCUMULATE_GRAD_X) != 0;
  for (size_t b = 0; b < shape.batch; b++) {
    const float s = scales ? scales[b] : ref_sample_scale(params, shape.batch, b);
    for (size_t r = 0; r < rows_of(shape); r++) {
      for (size_t d = 0; d < shape.dim; d++) {
        const float g = load(&grad_out, b, r, d);
        /* grad_x before grad_f: grad_f may be grad_out itself. */
        if (grad_x.data) {
          if (acc_x) store_result(&grad_x, b, r, d, load(&grad_x, b, r, d) + g);
          else copy_elem(&grad_x, &grad_out, b, r, d);
        }
        if (s != 0.0f) {
          const float sg = s * g;
          store_result(&grad_f, b, r, d, acc_f ? load(&grad_f, b, r, d) + sg : sg);
        } else if (!acc_f) {
          zero_elem(&grad_f, b, r, d);
        }
      }
    }
  }
}

/* ---------------------------------------------------------------- LayerScale */

static float canon_f32(float v) { return isnan(v) ? tu_bits_f32(0x7fc00000u) : v; }

/* out = x + ((gamma_d*f)*s) where s != 0, else out = x. */
static void ls_join(dp_shape shape, const dp_tensor *out, const dp_tensor *x, const dp_tensor *f,
                    const float *gamma, size_t b, float s) {
  for (size_t r = 0; r < rows_of(shape); r++) {
    for (size_t d = 0; d < shape.dim; d++) {
      if (s != 0.0f) {
        const float xv = load(x, b, r, d);
        const float ls = gamma[d] * load(f, b, r, d);
        const float dropped = ls * s;
        store_result(out, b, r, d, xv + dropped);
      } else {
        copy_elem(out, x, b, r, d);
      }
    }
  }
}

void ref_forward_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                    const float *gamma, float *scales_out) {
  if (!gamma) {
    ref_forward(params, shape, out, x, f, scales_out);
    return;
  }
  for (size_t b = 0; b < shape.batch; b++) {
    const float s = ref_sample_scale(params, shape.batch, b);
    if (scales_out) scales_out[b] = s;
    ls_join(shape, &out, &x, &f, gamma, b, s);
  }
}

void ref_inference_add_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                          const float *gamma) {
  if (!gamma) {
    ref_inference_add(params, shape, out, x, f);
    return;
  }
  const float s = params->scale_by_keep ? 1.0f : ref_keep(params->drop_prob);
  for (size_t b = 0; b < shape.batch; b++) ls_join(shape, &out, &x, &f, gamma, b, s);
}

void ref_ls_groups(dp_shape shape, size_t *per, size_t *count) {
  const size_t R = shape.batch * rows_of(shape), D = shape.dim;
  /* M = min(64, max(1, floor(2^22 / D))), P = max(ceil(2^16 / D), ceil(R / M)). */
  size_t M = D ? ((size_t)1 << 22) / D : 64;
  if (M < 1) M = 1;
  if (M > 64) M = 64;
  size_t P = D ? (((size_t)1 << 16) + D - 1) / D : 1;
  if ((R + M - 1) / M > P) P = (R + M - 1) / M;
  *per = P;
  *count = (R + P - 1) / P;
}

void ref_backward_ls(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                     dp_tensor grad_out, dp_tensor f, const float *gamma, float *grad_gamma, const float *scales,
                     uint32_t flags) {
  if (!gamma) {
    ref_backward(params, shape, grad_f, grad_x, grad_out, scales, flags & ~(uint32_t)DP_BWD_ACCUMULATE_GRAD_GAMMA);
    return;
  }
  const int acc_f = (flags & DP_BWD_ACCUMULATE_GRAD_F) != 0;
  const int acc_x = (flags & DP_BWD_ACCUMULATE_GRAD_X) != 0;
  const size_t T = rows_of(shape), D = shape.dim;
  size_t per, count;
  ref_ls_groups(shape, &per, &count);
  float *total = (float *)calloc(D ? D : 1, sizeof(float)), *part = (float *)calloc(D ? D : 1, sizeof(float));
  if (!total || !part) abort();
  for (size_t k = 0; k < count; k++) {
    for (size_t d = 0; d < D; d++) part[d] = 0.0f;
    for (size_t row = k * per; row < (k + 1) * per && row < shape.batch * T; row++) {
      const size_t b = row / T, r = row % T;
      const float s = scales ? scales[b] : ref_sample_scale(params, shape.batch, b);
      for (size_t d = 0; d < D; d++) {
        const float g = load(&grad_out, b, r, d);
        /* Everything read before grad_f is written: it may be grad_out or f. */
        const float fv = grad_gamma && s != 0.0f ? load(&f, b, r, d) : 0.0f;
        if (grad_x.data) {
          if (acc_x) store_result(&grad_x, b, r, d, load(&grad_x, b, r, d) + g);
          else copy_elem(&grad_x, &grad_out, b, r, d);
        }
        if (s != 0.0f) {
          const float grad_t = g * s;
          const float gf = grad_t * gamma[d];
          store_result(&grad_f, b, r, d, acc_f ? load(&grad_f, b, r, d) + gf : gf);
          if (grad_gamma) part[d] = canon_f32(part[d] + grad_t * fv);
        } else if (!acc_f) {
          zero_elem(&grad_f, b, r, d);
        }
      }
    }
    /* Group 0's partials are the running total; the next ones add to it. */
    for (size_t d = 0; d < D; d++) total[d] = k == 0 ? part[d] : total[d] + part[d];
  }
  if (grad_gamma)
    for (size_t d = 0; d < D; d++)
      grad_gamma[d] = canon_f32((flags & DP_BWD_ACCUMULATE_GRAD_GAMMA) ? grad_gamma[d] + total[d] : total[d]);
  free(part);
  free(total);
}

void ref_grad_gamma_f64(const dp_params *params, dp_shape shape, dp_tensor grad_out, dp_tensor f,
                        const float *scales, double *sum, double *abs_sum) {
  for (size_t d = 0; d < shape.dim; d++) sum[d] = abs_sum[d] = 0.0;
  for (size_t b = 0; b < shape.batch; b++) {
    const float s = scales ? scales[b] : ref_sample_scale(params, shape.batch, b);
    if (s == 0.0f) continue;
    for (size_t r = 0; r < rows_of(shape); r++)
      for (size_t d = 0; d < shape.dim; d++) {
        const float grad_t = load(&grad_out, b, r, d) * s;
        const double term = (double)grad_t * (double)load(&f, b, r, d);
        sum[d] += term;
        abs_sum[d] += fabs(term);
      }
  }
}
