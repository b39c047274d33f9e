/*
 * The output subset of the fused residual + norm (dp_forward_norm_subset,
 * dp_backward_norm_subset), held to the full operations on every ISA, dtype
 * combination, layout (each tensor its own: dense, sequence-first, padded),
 * norm, mode of this block and of the next (row, batch, exact-k), thread
 * count, in place and not:
 *   - forward: r, mean, rstd and scales_out are dp_forward_norm's bits and
 *     y_kept's rows its y rows at the next block's kept samples; nothing
 *     else of y_kept is written (padding, guard bytes);
 *   - backward: the subset's rows of grad_x and grad_f are dp_backward_norm's
 *     bits given grad_y zero outside the subset; the other rows are
 *     dp_backward's with grad_out = grad_r_in (+0 or untouched without it)
 *     and the same numbers as dp_backward_norm's; grad_beta is its bits and
 *     grad_gamma too (x-hat finite outside the subset); r, mean and rstd
 *     outside the subset are never read (NaN there);
 *   - two blocks composed: block n's join + norm writes y_kept for block
 *     n+1's mask, block n+1's branch runs on it and joins with
 *     dp_compact_forward, forward and backward, the dense path's bits;
 *   - the error contract.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "droppath/droppath.h"
#include "reference.h"
#include "test_util.h"

static size_t iters(size_t n) {
  const char *e = getenv("DP_TEST_ITERS");
  if (e && *e) return strtoul(e, NULL, 0) > 0 ? (size_t)strtoul(e, NULL, 0) : 1;
  return getenv("DP_TEST_QUICK") ? n / 4 + 1 : n;
}

static const int combos[][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                {DP_F32, DP_BF16}, {DP_F32, DP_F16}};

/* ---------------------------------------------------------------- tensors */

/* n samples of T rows of D elements in one guarded buffer, in a layout of its own. */
typedef struct st_tensor {
  tu_buf buf;
  dp_tensor t;
  size_t es;
} st_tensor;

static void store_elem(unsigned char *p, int dtype, float v) {
  if (dtype == DP_F32) {
    memcpy(p, &v, 4);
    return;
  }
  const uint16_t h = dtype == DP_BF16 ? ref_f32_to_bf16(v) : ref_f32_to_f16(v);
  memcpy(p, &h, 2);
}

/* Values of a few units around `offset`, one in 256 NaN or infinite (specials). */
static void fill_values(tu_rng *rng, unsigned char *p, int dtype, size_t n, float offset, int specials) {
  const size_t es = tu_dtype_size(dtype);
  for (size_t i = 0; i < n; i++) {
    float v = tu_float(rng) * (float)(1 + (tu_next(rng) & 3)) + offset;
    if (specials && (tu_next(rng) & 255) == 0) v = (tu_next(rng) & 1) ? NAN : -INFINITY;
    store_elem(p + i * es, dtype, v);
  }
}

static st_tensor st_alloc(tu_rng *rng, int dtype, size_t n, size_t T, size_t D) {
  st_tensor c;
  memset(&c, 0, sizeof c);
  c.es = tu_dtype_size(dtype);
  c.t.dtype = dtype;
  switch (tu_range(rng, 0, 2)) {
    case 0: /* dense */
      c.t.sample_stride = T * D;
      c.t.seq_stride = D;
      break;
    case 1: /* sequence-first */
      c.t.sample_stride = D;
      c.t.seq_stride = n * D;
      break;
    default: /* padded */
      c.t.seq_stride = D + tu_range(rng, 0, 5);
      c.t.sample_stride = T * c.t.seq_stride + tu_range(rng, 0, 9);
  }
  if (c.t.sample_stride < D) c.t.sample_stride = D; /* sequence-first with n = 0 */
  if (T > 1 && c.t.seq_stride < D) c.t.seq_stride = D;
  const size_t elems = n == 0 || D == 0 ? 0 : (n - 1) * c.t.sample_stride + (T - 1) * c.t.seq_stride + D;
  c.buf = tu_buf_alloc(elems ? elems * c.es : 1, c.es * tu_range(rng, 0, 15));
  fill_values(rng, c.buf.data, dtype, elems, 0.0f, 1);
  c.t.data = c.buf.data;
  return c;
}

static st_tensor st_clone(const st_tensor *a) {
  st_tensor c = *a;
  c.buf = tu_buf_alloc(a->buf.bytes, (size_t)(a->buf.data - a->buf.base - TU_GUARD_BYTES));
  memcpy(c.buf.data, a->buf.data, a->buf.bytes);
  c.t.data = c.buf.data;
  return c;
}

static unsigned char *row_at(const st_tensor *c, size_t b, size_t t) {
  return c->buf.data + (b * c->t.sample_stride + t * c->t.seq_stride) * c->es;
}

/* The tensor's view with data NULL when absent. */
static dp_tensor view_or_null(const st_tensor *c, int present) {
  dp_tensor t = c->t;
  if (!present) t.data = NULL;
  return t;
}

static int same_buffer(const tu_buf *a, const tu_buf *b, const char *what, const char *where) {
  if (!tu_guards_intact(a) || !tu_guards_intact(b)) {
    fprintf(stderr, "FAIL: %s: written outside the buffer; %s\n", what, where);
    return 0;
  }
  if (memcmp(a->data, b->data, a->bytes) == 0) return 1;
  size_t i = 0;
  while (a->data[i] == b->data[i]) i++;
  fprintf(stderr, "FAIL: %s differs at byte %zu of %zu; %s\n", what, i, a->bytes, where);
  return 0;
}

/* Sample b's rank in the ascending kept list, or SIZE_MAX. */
static size_t rank_of(const size_t *idx, size_t k, size_t b) {
  for (size_t i = 0; i < k; i++)
    if (idx[i] == b) return i;
  return SIZE_MAX;
}

/* ---------------------------------------------------------------- a random call */

typedef struct st_case {
  int xt, ft, kind;
  float eps;
  dp_shape sh;
  size_t B, T, D, R;
  dp_params p, next;
  size_t k, *idx;
  char where[320];
} st_case;

static void pick_case(tu_rng *rng, st_case *c) {
  memset(c, 0, sizeof *c);
  const size_t ci = tu_range(rng, 0, 1) ? 0 : tu_range(rng, 0, 4);
  c->xt = combos[ci][0];
  c->ft = combos[ci][1];
  c->kind = (int)tu_range(rng, 0, 1);
  static const float eps_list[] = {1e-5f, 1e-6f, 0.0f, 1e-2f};
  c->eps = eps_list[tu_range(rng, 0, 3)];
  const size_t shape_kind = tu_range(rng, 0, 19);
  c->B = shape_kind == 0 ? tu_range(rng, 0, 2) : shape_kind < 17 ? tu_range(rng, 1, 24) : tu_range(rng, 40, 160);
  static const size_t seqs[] = {0, 1, 1, 2, 3, 5};
  c->sh.seq = seqs[tu_range(rng, 0, 5)];
  const size_t kd = tu_range(rng, 0, 19);
  c->D = shape_kind >= 17 ? tu_range(rng, 1, 40)
         : kd < 13        ? tu_range(rng, 1, 70)
         : kd < 18        ? tu_range(rng, 71, 800)
                          : tu_range(rng, 4090, 5000); /* to past the scratch row (4096) */
  if (c->D > 4000) c->B = tu_range(rng, 1, 4);
  c->sh.batch = c->B;
  c->sh.dim = c->D;
  c->T = c->sh.seq ? c->sh.seq : 1;
  c->R = c->B * c->T;
  static const double probs[] = {0.0, 0.1, 0.5, 1.0};
  static const int modes[] = {DP_MODE_ROW, DP_MODE_ROW, DP_MODE_BATCH, DP_MODE_EXACT_K};
  static const int threads[] = {0, 1, 2, 2};
  dp_params *ps[2] = {&c->p, &c->next};
  for (int i = 0; i < 2; i++) {
    dp_params_init(ps[i]);
    ps[i]->drop_prob = tu_range(rng, 0, 2) ? probs[tu_range(rng, 0, 3)] : (double)tu_range(rng, 0, 100) / 100.0;
    ps[i]->mode = modes[tu_range(rng, 0, 3)];
    ps[i]->scale_by_keep = tu_range(rng, 0, 3) != 0;
    ps[i]->seed = tu_next(rng);
    ps[i]->offset = tu_range(rng, 0, 1000);
    ps[i]->sample_base = tu_range(rng, 0, 1000);
  }
  /* The next block: mostly a subset that keeps some samples and drops some; all and none too. */
  const size_t nk = tu_range(rng, 0, 7);
  c->next.drop_prob = nk == 0 ? 0.0 : nk == 1 ? 1.0 : (double)tu_range(rng, 10, 90) / 100.0;
  c->p.num_threads = threads[tu_range(rng, 0, 3)];
  if (tu_range(rng, 0, 7) == 0) c->p.flags = DP_FLAG_STREAM_ALWAYS;
  c->idx = (size_t *)malloc((c->B + 1) * sizeof(size_t));
  assert_non_null(c->idx);
  assert_int_equal(dp_mask(&c->next, c->B, NULL, NULL, &c->k, c->idx), DP_OK);
  snprintf(c->where, sizeof c->where,
           "%s x=%d f=%d %s eps=%g B=%zu T=%zu D=%zu k=%zu p=%g mode=%d next p=%g mode=%d threads=%d flags=%#x",
           dp_isa_name(dp_active_isa()), c->xt, c->ft, c->kind ? "rms" : "layer", (double)c->eps, c->B, c->T, c->D,
           c->k, c->p.drop_prob, c->p.mode, c->next.drop_prob, c->next.mode, c->p.num_threads, c->p.flags);
}

static float *float_array(tu_rng *rng, size_t n, float base) {
  float *a = (float *)malloc((n + 1) * sizeof(float));
  assert_non_null(a);
  for (size_t i = 0; i < n; i++) a[i] = base + tu_float(rng);
  return a;
}

/* ---------------------------------------------------------------- forward */

enum { R_ABSENT, R_SEPARATE, R_IS_X };

static size_t partial_subsets; /* calls whose subset kept some samples and dropped some */

static int forward_case(tu_rng *rng) {
  st_case c;
  pick_case(rng, &c);
  partial_subsets += c.k > 0 && c.k < c.B;
  const size_t B = c.B, T = c.T, D = c.D, k = c.k;
  const int r_mode = (int)tu_range(rng, 0, 2);
  const int has_gamma = tu_range(rng, 0, 3) != 0, has_beta = tu_range(rng, 0, 3) != 0;
  const int has_stats = tu_range(rng, 0, 3) != 0, has_scales = (int)tu_range(rng, 0, 1);
  st_tensor x1 = st_alloc(rng, c.xt, B, T, D), x2 = st_clone(&x1);
  st_tensor f = st_alloc(rng, c.ft, B, T, D), f0 = st_clone(&f);
  st_tensor r1 = st_alloc(rng, c.xt, B, T, D), r2 = st_clone(&r1);
  st_tensor y = st_alloc(rng, c.ft, B, T, D);
  st_tensor yk = st_alloc(rng, c.ft, k, T, D), yk_want = st_clone(&yk);
  float *gamma = float_array(rng, D, 1.0f), *beta = float_array(rng, D, 0.0f);
  tu_buf stats[2][3]; /* mean, rstd, scales of each side */
  for (int side = 0; side < 2; side++) {
    stats[side][0] = tu_buf_alloc(c.R * 4 + 1, 0);
    stats[side][1] = tu_buf_alloc(c.R * 4 + 1, 0);
    stats[side][2] = tu_buf_alloc(B * 4 + 1, 0);
  }
  dp_norm n[2];
  for (int side = 0; side < 2; side++) {
    dp_norm_init(&n[side]);
    n[side].kind = c.kind;
    n[side].eps = c.eps;
    n[side].gamma = has_gamma ? gamma : NULL;
    n[side].beta = has_beta ? beta : NULL;
    n[side].mean = has_stats ? (float *)(void *)stats[side][0].data : NULL;
    n[side].rstd = has_stats ? (float *)(void *)stats[side][1].data : NULL;
  }
  const dp_tensor rt1 = r_mode == R_IS_X ? x1.t : view_or_null(&r1, r_mode == R_SEPARATE);
  const dp_tensor rt2 = r_mode == R_IS_X ? x2.t : view_or_null(&r2, r_mode == R_SEPARATE);
  dp_status st = dp_forward_norm(&c.p, c.sh, &n[0], y.t, rt1, x1.t, f.t, has_scales ? (float *)(void *)stats[0][2].data : NULL);
  assert_int_equal(st, DP_OK);
  st = dp_forward_norm_subset(&c.p, c.sh, &n[1], yk.t, rt2, x2.t, f.t, k, c.idx,
                              has_scales ? (float *)(void *)stats[1][2].data : NULL);
  if (st != DP_OK) fail_msg("status %s; %s", dp_status_string(st), c.where);
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++) memcpy(row_at(&yk_want, i, t), row_at(&y, c.idx[i], t), D * y.es);
  int ok = same_buffer(&yk.buf, &yk_want.buf, "y_kept", c.where) && same_buffer(&x2.buf, &x1.buf, "x", c.where) &&
           same_buffer(&r2.buf, &r1.buf, "r", c.where) && same_buffer(&f.buf, &f0.buf, "f", c.where);
  static const char *const names[3] = {"mean", "rstd", "scales_out"};
  for (int a = 0; a < 3 && ok; a++) ok = same_buffer(&stats[1][a], &stats[0][a], names[a], c.where);
  if (!ok) fprintf(stderr, "  r_mode=%d gamma=%d beta=%d stats=%d scales=%d\n", r_mode, has_gamma, has_beta, has_stats, has_scales);
  st_tensor *all[] = {&x1, &x2, &f, &f0, &r1, &r2, &y, &yk, &yk_want};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tu_buf_free(&all[i]->buf);
  for (int side = 0; side < 2; side++)
    for (int a = 0; a < 3; a++) tu_buf_free(&stats[side][a]);
  free(gamma);
  free(beta);
  free(c.idx);
  return ok;
}

/* ---------------------------------------------------------------- backward */

enum { GX_ABSENT, GX_OWN, GX_IS_GIN };

static int bits_or_value_equal(const unsigned char *a, const unsigned char *b, int dtype) {
  const float u = tu_load_elem(a, dtype), v = tu_load_elem(b, dtype);
  return u == v || (isnan(u) && isnan(v));
}

/* Outside the subset the full backward's rows are the same numbers: zero's
 * sign may differ, NaN payloads too. */
static int rows_same_values(const st_tensor *a, const st_tensor *b, const st_case *c, const char *what) {
  for (size_t bb = 0; bb < c->B; bb++) {
    if (rank_of(c->idx, c->k, bb) != SIZE_MAX) continue;
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++)
        if (!bits_or_value_equal(row_at(a, bb, t) + d * a->es, row_at(b, bb, t) + d * b->es, a->t.dtype)) {
          fprintf(stderr, "FAIL: %s sample %zu row %zu elem %zu: not the full backward's number; %s\n", what, bb, t,
                  d, c->where);
          return 0;
        }
  }
  return 1;
}

/* NaN bits of dtype in every element of the rows outside the subset. */
static void poison_rows(st_tensor *a, const st_case *c) {
  for (size_t b = 0; b < c->B; b++)
    if (rank_of(c->idx, c->k, b) == SIZE_MAX)
      for (size_t t = 0; t < c->T; t++)
        for (size_t d = 0; d < c->D; d++) store_elem(row_at(a, b, t) + d * a->es, a->t.dtype, NAN);
}

static int backward_case(tu_rng *rng) {
  st_case c;
  pick_case(rng, &c);
  partial_subsets += c.k > 0 && c.k < c.B;
  const size_t B = c.B, T = c.T, D = c.D, k = c.k;
  const int gx_mode = (int)tu_range(rng, 0, 2);
  const int has_gin = gx_mode == GX_IS_GIN || tu_range(rng, 0, 3) != 0;
  const int has_gamma = tu_range(rng, 0, 3) != 0, has_gg = tu_range(rng, 0, 3) != 0, has_gb = tu_range(rng, 0, 3) != 0;
  const int has_scales = (int)tu_range(rng, 0, 1);
  const uint32_t flags = (uint32_t)tu_range(rng, 0, 7);
  const int acc_f = (flags & DP_BWD_ACCUMULATE_GRAD_F) != 0, acc_x = (flags & DP_BWD_ACCUMULATE_GRAD_X) != 0;

  /* grad_y: compact for the subset, the same rows in a zeroed full tensor for the full backward */
  st_tensor gyk = st_alloc(rng, c.ft, k, T, D), gy = st_alloc(rng, c.ft, B, T, D);
  memset(gy.buf.data, 0, gy.buf.bytes);
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++) memcpy(row_at(&gy, c.idx[i], t), row_at(&gyk, i, t), D * gy.es);
  /* r and the statistics: finite outside the subset for the full backward, NaN there for the subset's */
  st_tensor r = st_alloc(rng, c.xt, B, T, D);
  for (size_t b = 0; b < B; b++)
    if (rank_of(c.idx, k, b) == SIZE_MAX)
      for (size_t t = 0; t < T; t++) fill_values(rng, row_at(&r, b, t), c.xt, D, 0.0f, 0);
  st_tensor r_poison = st_clone(&r);
  poison_rows(&r_poison, &c);
  float *mean = float_array(rng, c.R, 0.0f), *rstd = float_array(rng, c.R, 2.5f);
  float *mean_poison = float_array(rng, c.R, 0.0f), *rstd_poison = float_array(rng, c.R, 0.0f);
  for (size_t row = 0; row < c.R; row++) {
    const int in = rank_of(c.idx, k, row / T) != SIZE_MAX;
    mean_poison[row] = in ? mean[row] : NAN;
    rstd_poison[row] = in ? rstd[row] : NAN;
  }
  float *gamma = float_array(rng, D, 1.0f), *scales = float_array(rng, B, 0.0f);
  for (size_t b = 0; b < B; b++) scales[b] = tu_range(rng, 0, 3) ? 1.25f : 0.0f;
  /* Outputs, three copies: the full backward (A), the subset's (B), dp_backward's pass-through (C). */
  st_tensor gin = st_alloc(rng, c.xt, B, T, D);
  st_tensor gf_a = st_alloc(rng, c.ft, B, T, D), gf_b = st_clone(&gf_a), gf_c = st_clone(&gf_a), gf_want = st_clone(&gf_a);
  st_tensor gx_a = gx_mode == GX_IS_GIN ? st_clone(&gin) : st_alloc(rng, c.xt, B, T, D);
  st_tensor gx_b = st_clone(&gx_a), gx_c = st_clone(&gx_a), gx_want = st_clone(&gx_a), gout = st_clone(&gin);
  tu_buf gg[2], gb[2];
  for (int side = 0; side < 2; side++) {
    gg[side] = tu_buf_alloc(D * 4 + 1, 0);
    gb[side] = tu_buf_alloc(D * 4 + 1, 0);
    tu_rng same = *rng;
    tu_fill_floats(&same, (float *)(void *)gg[side].data, D, 0);
    tu_fill_floats(&same, (float *)(void *)gb[side].data, D, 0);
  }
  dp_norm na, nb;
  dp_norm_init(&na);
  na.kind = c.kind;
  na.eps = c.eps;
  na.gamma = has_gamma ? gamma : NULL;
  nb = na;
  na.mean = mean;
  na.rstd = rstd;
  nb.mean = mean_poison;
  nb.rstd = rstd_poison;
  const float *sc = has_scales ? scales : NULL;
  const dp_tensor gxa_t = view_or_null(&gx_a, gx_mode != GX_ABSENT), gxb_t = view_or_null(&gx_b, gx_mode != GX_ABSENT);
  const dp_tensor gina_t = gx_mode == GX_IS_GIN ? gx_a.t : view_or_null(&gin, has_gin);
  const dp_tensor ginb_t = gx_mode == GX_IS_GIN ? gx_b.t : view_or_null(&gin, has_gin);
  assert_int_equal(dp_backward_norm(&c.p, c.sh, &na, gf_a.t, gxa_t, gy.t, r.t, gina_t, sc,
                                    has_gg ? (float *)(void *)gg[0].data : NULL,
                                    has_gb ? (float *)(void *)gb[0].data : NULL, flags),
                   DP_OK);
  const dp_status st = dp_backward_norm_subset(&c.p, c.sh, &nb, gf_b.t, gxb_t, gyk.t, r_poison.t, ginb_t, k, c.idx, sc,
                                               has_gg ? (float *)(void *)gg[1].data : NULL,
                                               has_gb ? (float *)(void *)gb[1].data : NULL, flags);
  if (st != DP_OK) fail_msg("status %s; %s", dp_status_string(st), c.where);
  if (has_gin)
    assert_int_equal(dp_backward(&c.p, c.sh, gf_c.t, view_or_null(&gx_c, gx_mode != GX_ABSENT), gout.t, sc,
                                 flags & (DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X)),
                     DP_OK);
  /* The expected outputs, row by row: the subset's rows from A, the others from C (or +0 / untouched). */
  for (size_t b = 0; b < B; b++) {
    const int in = rank_of(c.idx, k, b) != SIZE_MAX;
    for (size_t t = 0; t < T; t++) {
      if (in || has_gin) {
        memcpy(row_at(&gf_want, b, t), row_at(in ? &gf_a : &gf_c, b, t), D * gf_a.es);
        memcpy(row_at(&gx_want, b, t), row_at(in ? &gx_a : &gx_c, b, t), D * gx_a.es);
        continue;
      }
      if (!acc_f) memset(row_at(&gf_want, b, t), 0, D * gf_a.es);
      if (!acc_x && gx_mode != GX_ABSENT) memset(row_at(&gx_want, b, t), 0, D * gx_a.es);
    }
  }
  int ok = same_buffer(&gf_b.buf, &gf_want.buf, "grad_f", c.where) &&
           same_buffer(&gx_b.buf, &gx_want.buf, "grad_x", c.where) &&
           rows_same_values(&gf_b, &gf_a, &c, "grad_f") &&
           (gx_mode == GX_ABSENT || rows_same_values(&gx_b, &gx_a, &c, "grad_x")) &&
           same_buffer(&gg[1], &gg[0], "grad_gamma", c.where) && same_buffer(&gb[1], &gb[0], "grad_beta", c.where);
  if (!ok)
    fprintf(stderr, "  gx_mode=%d gin=%d gamma=%d gg=%d gb=%d scales=%d flags=%#x\n", gx_mode, has_gin, has_gamma,
            has_gg, has_gb, has_scales, flags);
  st_tensor *all[] = {&gyk, &gy, &r, &r_poison, &gin, &gf_a, &gf_b, &gf_c, &gf_want, &gx_a, &gx_b, &gx_c, &gx_want, &gout};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tu_buf_free(&all[i]->buf);
  for (int side = 0; side < 2; side++) {
    tu_buf_free(&gg[side]);
    tu_buf_free(&gb[side]);
  }
  free(mean);
  free(rstd);
  free(mean_poison);
  free(rstd_poison);
  free(gamma);
  free(scales);
  free(c.idx);
  return ok;
}

static void test_forward_subset_equals_full(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x5f0 ^ (uint64_t)dp_active_isa());
  int failures = 0;
  size_t n = 0;
  partial_subsets = 0;
  for (; n < iters(150) && failures < 5; n++) failures += !forward_case(&rng);
  fprintf(stderr, "[ subset   ] forward on %s: %zu calls, %zu with 0 < k < B\n", dp_isa_name(dp_active_isa()), n,
          partial_subsets);
  assert_int_equal(failures, 0);
}

static void test_backward_subset_equals_full(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x5b0 ^ (uint64_t)dp_active_isa());
  int failures = 0;
  size_t n = 0;
  partial_subsets = 0;
  for (; n < iters(150) && failures < 5; n++) failures += !backward_case(&rng);
  fprintf(stderr, "[ subset   ] backward on %s: %zu calls, %zu with 0 < k < B\n", dp_isa_name(dp_active_isa()), n,
          partial_subsets);
  assert_int_equal(failures, 0);
}

/* ---------------------------------------------------------------- two blocks composed */

/* Block n+1's branch on its kept samples, each sample alone: f2 = (0.5*y)*w + c
 * per channel, in f32, rounded to the branch type; its backward gy = (0.5*w)*gf2. */
static void branch(const st_tensor *y, st_tensor *out, size_t k, size_t T, size_t D, const float *w, const float *cc) {
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++)
      for (size_t d = 0; d < D; d++) {
        const float v = tu_load_elem(row_at(y, i, t) + d * y->es, y->t.dtype);
        store_elem(row_at(out, i, t) + d * out->es, out->t.dtype, (0.5f * v) * w[d] + cc[d]);
      }
}

static void branch_backward(const st_tensor *g, st_tensor *out, size_t k, size_t T, size_t D, const float *w) {
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++)
      for (size_t d = 0; d < D; d++) {
        const float v = tu_load_elem(row_at(g, i, t) + d * g->es, g->t.dtype);
        store_elem(row_at(out, i, t) + d * out->es, out->t.dtype, (0.5f * w[d]) * v);
      }
}

static void expect_same(const tu_buf *a, const tu_buf *b, const char *what, const char *where) {
  if (!same_buffer(a, b, what, where)) fail_msg("%s differs; %s", what, where);
}

enum { CB = 13, CT = 5, CD = 48 }; /* the composed blocks' B, T, D */

static void composed_case(tu_rng *rng, int xt, int ft, int next_mode, int threads) {
  const size_t B = CB, T = CT, D = CD;
  const dp_shape sh = {B, T, D};
  dp_params pn, pn1;
  dp_params_init(&pn);
  pn.drop_prob = 0.2;
  pn.seed = 0x5eed;
  pn.offset = 6; /* step * n_layers + layer */
  pn.num_threads = threads;
  pn1 = pn;
  pn1.drop_prob = 0.4;
  pn1.offset = 7;
  pn1.mode = next_mode;
  char where[160];
  snprintf(where, sizeof where, "%s x=%d f=%d next mode=%d threads=%d", dp_isa_name(dp_active_isa()), xt, ft,
           next_mode, threads);
  float *gamma = float_array(rng, D, 1.0f), *beta = float_array(rng, D, 0.0f);
  float *w = float_array(rng, D, 2.0f), *cc = float_array(rng, D, 0.0f); /* w nonzero: no signed zeros */
  float mean[2][CB * CT], rstd[2][CB * CT];
  st_tensor x = st_alloc(rng, xt, B, T, D), f = st_alloc(rng, ft, B, T, D);
  /* finite inputs: the comparison below is of whole buffers, dropped rows and all */
  fill_values(rng, x.buf.data, xt, x.buf.bytes / x.es, 3.0f, 0);
  fill_values(rng, f.buf.data, ft, f.buf.bytes / f.es, 0.0f, 0);

  /* dense: the norm writes every y; the next block gathers its kept samples */
  size_t k = 0, idx[CB], k2 = 0, idx2[CB];
  assert_int_equal(dp_mask(&pn1, B, NULL, NULL, &k2, idx2), DP_OK);
  st_tensor y = st_alloc(rng, ft, B, T, D), r_d = st_alloc(rng, xt, B, T, D);
  st_tensor yk_d = st_alloc(rng, ft, k2, T, D), f2k_d = st_alloc(rng, ft, k2, T, D), out_d = st_alloc(rng, xt, B, T, D);
  /* the subset path's outputs: the same layouts and the same contents (padding included) to start with */
  st_tensor r_s = st_clone(&r_d), yk_s = st_clone(&yk_d), f2k_s = st_clone(&f2k_d), out_s = st_clone(&out_d);
  dp_norm nm;
  dp_norm_init(&nm);
  nm.gamma = gamma;
  nm.beta = beta;
  nm.mean = mean[0];
  nm.rstd = rstd[0];
  assert_int_equal(dp_forward_norm(&pn, sh, &nm, y.t, r_d.t, x.t, f.t, NULL), DP_OK);
  assert_int_equal(dp_compact_gather(&pn1, sh, yk_d.t, y.t, &k, idx), DP_OK);
  branch(&yk_d, &f2k_d, k, T, D, w, cc);
  assert_int_equal(dp_compact_forward(&pn1, sh, out_d.t, r_d.t, f2k_d.t, k, idx), DP_OK);

  /* subset: the norm writes y_kept for the next block's mask, which runs on it at once */
  nm.mean = mean[1];
  nm.rstd = rstd[1];
  assert_int_equal(dp_forward_norm_subset(&pn, sh, &nm, yk_s.t, r_s.t, x.t, f.t, k2, idx2, NULL), DP_OK);
  branch(&yk_s, &f2k_s, k2, T, D, w, cc);
  assert_int_equal(dp_compact_forward(&pn1, sh, out_s.t, r_s.t, f2k_s.t, k2, idx2), DP_OK);
  assert_int_equal(k, k2);
  assert_memory_equal(idx, idx2, k * sizeof(size_t));
  assert_true(k > 0 && k < B); /* p = 0.4 over 13 samples keeps some and drops some here */
  expect_same(&yk_s.buf, &yk_d.buf, "y_kept", where);
  expect_same(&r_s.buf, &r_d.buf, "r", where);
  expect_same(&out_s.buf, &out_d.buf, "block n+1's output", where);
  assert_memory_equal(mean[0], mean[1], sizeof mean[0]);
  assert_memory_equal(rstd[0], rstd[1], sizeof rstd[0]);

  /* backward from block n+1's output gradient (nonzero: no signed zeros to tell apart) */
  st_tensor gout = st_alloc(rng, xt, B, T, D);
  fill_values(rng, gout.buf.data, xt, gout.buf.bytes / gout.es, 2.0f, 0);
  st_tensor gf2k = st_alloc(rng, ft, k, T, D), g_r = st_alloc(rng, xt, B, T, D), gyk = st_alloc(rng, ft, k, T, D);
  assert_int_equal(dp_compact_backward(&pn1, sh, gf2k.t, g_r.t, gout.t, k, idx, 0), DP_OK);
  branch_backward(&gf2k, &gyk, k, T, D, w);
  float gg[2][CD], gb[2][CD];
  st_tensor gf_d = st_alloc(rng, ft, B, T, D), gx_d = st_alloc(rng, xt, B, T, D), gy = st_alloc(rng, ft, B, T, D);
  st_tensor gf_s = st_clone(&gf_d), gx_s = st_clone(&gx_d);
  /* dense: the kept rows' gradient scattered into zeros, the full norm backward */
  memset(gy.buf.data, 0, gy.buf.bytes);
  assert_int_equal(dp_compact_scatter_add(&pn1, sh, gy.t, gyk.t, k, idx), DP_OK);
  nm.mean = mean[0];
  nm.rstd = rstd[0];
  assert_int_equal(dp_backward_norm(&pn, sh, &nm, gf_d.t, gx_d.t, gy.t, r_d.t, g_r.t, NULL, gg[0], gb[0], 0), DP_OK);
  /* subset: straight from the compact gradient */
  assert_int_equal(dp_backward_norm_subset(&pn, sh, &nm, gf_s.t, gx_s.t, gyk.t, r_s.t, g_r.t, k, idx, NULL, gg[1],
                                           gb[1], 0),
                   DP_OK);
  expect_same(&gf_s.buf, &gf_d.buf, "grad_f", where);
  expect_same(&gx_s.buf, &gx_d.buf, "grad_x", where);
  assert_memory_equal(gg[0], gg[1], sizeof gg[0]);
  assert_memory_equal(gb[0], gb[1], sizeof gb[0]);

  st_tensor *all[] = {&x, &f, &y, &r_d, &yk_d, &f2k_d, &out_d, &r_s, &yk_s, &f2k_s, &out_s,
                      &gout, &gf2k, &g_r, &gyk, &gf_d, &gx_d, &gy, &gf_s, &gx_s};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tu_buf_free(&all[i]->buf);
  free(gamma);
  free(beta);
  free(w);
  free(cc);
}

static void test_composed_blocks(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0xb10c ^ (uint64_t)dp_active_isa());
  static const int next_modes[] = {DP_MODE_ROW, DP_MODE_EXACT_K};
  for (int ci = 0; ci < 5; ci++)
    for (int m = 0; m < 2; m++)
      for (int threads = 1; threads <= 2; threads++) composed_case(&rng, combos[ci][0], combos[ci][1], next_modes[m], threads);
}

/* An empty subset may be passed as NULL (the array is required only when
 * the count is > 0): the results are those of a non-NULL empty list, and
 * the memory behind y_kept / grad_y_kept, which have no samples, is neither
 * written nor read.  The forward used to take a NULL list for "no subset"
 * and wrote y for every sample there, the backward read grad_y the same way
 * (the pattern the fuzzer found in dp_compact_backward_ls). */
static float *fbuf(tu_rng *rng, size_t n) {
  float *p = (float *)malloc(n * sizeof(float));
  assert_non_null(p);
  tu_fill_floats(rng, p, n, 0);
  return p;
}

static float *fclone(const float *a, size_t n) {
  float *p = (float *)malloc(n * sizeof(float));
  assert_non_null(p);
  memcpy(p, a, n * sizeof(float));
  return p;
}

static void test_empty_subset_null(void **state) {
  (void)state;
  enum { B = 4, T = 3, D = 37, N = B * T * D, R = B * T };
  tu_rng rng;
  tu_rng_init(&rng, 0x5b);
  float *x = fbuf(&rng, N), *f = fbuf(&rng, N), *gin = fbuf(&rng, N), *gamma = fbuf(&rng, D), *beta = fbuf(&rng, D);
  float *behind = fbuf(&rng, N), *behind0 = fclone(behind, N); /* room a walk of B samples would use */
  float *r1 = fbuf(&rng, N), *r2 = fclone(r1, N), *st1 = fbuf(&rng, 2 * R), *st2 = fclone(st1, 2 * R);
  float sc1[B], sc2[B];
  const size_t unused_idx[1] = {0};
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.5;
  const dp_shape s = {B, T, D}, none = {0, T, D};
  for (int kind = DP_NORM_LAYER; kind <= DP_NORM_RMS; kind++) {
    dp_norm n1, n2;
    dp_norm_init(&n1);
    n1.kind = kind;
    n1.gamma = gamma;
    n1.beta = beta;
    n2 = n1;
    n1.mean = st1;
    n1.rstd = st1 + R;
    n2.mean = st2;
    n2.rstd = st2 + R;
    assert_int_equal(dp_forward_norm_subset(&p, s, &n1, dp_tensor_dense(behind, DP_F32, none),
                                            dp_tensor_dense(r1, DP_F32, s), dp_tensor_dense(x, DP_F32, s),
                                            dp_tensor_dense(f, DP_F32, s), 0, NULL, sc1),
                     DP_OK);
    assert_int_equal(dp_forward_norm_subset(&p, s, &n2, dp_tensor_dense(behind, DP_F32, none),
                                            dp_tensor_dense(r2, DP_F32, s), dp_tensor_dense(x, DP_F32, s),
                                            dp_tensor_dense(f, DP_F32, s), 0, unused_idx, sc2),
                     DP_OK);
    assert_memory_equal(behind, behind0, N * sizeof(float));
    assert_memory_equal(r1, r2, N * sizeof(float));
    assert_memory_equal(st1, st2, 2 * R * sizeof(float));
    assert_memory_equal(sc1, sc2, sizeof sc1);

    /* Backward from those statistics: grad_y_kept has no samples (the memory behind it is poison for a reader). */
    for (size_t i = 0; i < N; i++) behind[i] = behind0[i] = NAN;
    float *gf1 = fbuf(&rng, N), *gf2 = fclone(gf1, N), *gx1 = fbuf(&rng, N), *gx2 = fclone(gx1, N);
    float gg1[D], gg2[D], gb1[D], gb2[D];
    for (uint32_t flags = 0; flags < 8; flags++) {
      for (size_t i = 0; i < D; i++) gg1[i] = gg2[i] = gb1[i] = gb2[i] = (float)i;
      assert_int_equal(dp_backward_norm_subset(&p, s, &n1, dp_tensor_dense(gf1, DP_F32, s),
                                               dp_tensor_dense(gx1, DP_F32, s), dp_tensor_dense(behind, DP_F32, none),
                                               dp_tensor_dense(r1, DP_F32, s), dp_tensor_dense(gin, DP_F32, s), 0,
                                               NULL, NULL, gg1, gb1, flags),
                       DP_OK);
      assert_int_equal(dp_backward_norm_subset(&p, s, &n2, dp_tensor_dense(gf2, DP_F32, s),
                                               dp_tensor_dense(gx2, DP_F32, s), dp_tensor_dense(behind, DP_F32, none),
                                               dp_tensor_dense(r2, DP_F32, s), dp_tensor_dense(gin, DP_F32, s), 0,
                                               unused_idx, NULL, gg2, gb2, flags),
                       DP_OK);
      assert_memory_equal(gf1, gf2, N * sizeof(float));
      assert_memory_equal(gx1, gx2, N * sizeof(float));
      assert_memory_equal(gg1, gg2, sizeof gg1);
      assert_memory_equal(gb1, gb2, sizeof gb1);
    }
    for (size_t i = 0; i < N; i++) assert_true(isnan(behind[i])); /* never written either */
    free(gf1);
    free(gf2);
    free(gx1);
    free(gx2);
    for (size_t i = 0; i < N; i++) behind[i] = behind0[i] = (float)i;
  }
  float *all[] = {x, f, gin, gamma, beta, behind, behind0, r1, r2, st1, st2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* ---------------------------------------------------------------- contract */

static void expect(dp_status want, dp_status got, const char *what, const float *arena, const float *snapshot,
                   size_t n) {
  if (got != want) fail_msg("%s: got %s, want %s", what, dp_status_string(got), dp_status_string(want));
  if (memcmp(arena, snapshot, n * sizeof(float)) != 0) fail_msg("%s: an output was written", what);
}

/* Each bad call returns its status and writes nothing: all arguments live in one arena. */
static void test_contract(void **state) {
  (void)state;
  enum { ARENA = 2048 };
  float *arena = (float *)malloc(ARENA * sizeof(float)), *snap = (float *)malloc(ARENA * sizeof(float));
  assert_true(arena && snap);
  tu_rng rng;
  tu_rng_init(&rng, 0xc0);
  tu_fill_floats(&rng, arena, ARENA, 0);
  const dp_shape sh = {4, 2, 32};
  /* 256 floats a full tensor: r 0, x 256, f 512, grad_y 768; y_kept (2 samples) 1024; gamma 1152,
   * beta 1184, mean 1216, rstd 1224, scales 1232, indices (size_t) 1240 */
  float *r = arena, *x = arena + 256, *f = arena + 512, *yk = arena + 1024;
  size_t *idx = (size_t *)(void *)(arena + 1240);
  idx[0] = 1;
  idx[1] = 3;
  const size_t k = 2;
  const dp_shape ksh = {k, 2, 32};
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.25;
  dp_norm nm;
  dp_norm_init(&nm);
  nm.gamma = arena + 1152;
  nm.beta = arena + 1184;
  nm.mean = arena + 1216;
  nm.rstd = arena + 1224;
  float *scales = arena + 1232;
#define T_(ptr) dp_tensor_dense((ptr), DP_F32, sh)
#define K_(ptr) dp_tensor_dense((ptr), DP_F32, ksh)
#define FWD_(n_, y_, r_, x_, f_, k_, i_) dp_forward_norm_subset(&p, sh, (n_), (y_), (r_), (x_), (f_), (k_), (i_), scales)
#define EXPECT(want, call, what) \
  do {                           \
    memcpy(snap, arena, ARENA * sizeof(float)); \
    expect((want), (call), (what), arena, snap, ARENA); \
  } while (0)
  /* The valid call writes y_kept, r and the statistics. */
  memcpy(snap, arena, ARENA * sizeof(float));
  assert_int_equal(FWD_(&nm, K_(yk), T_(r), T_(x), T_(f), k, idx), DP_OK);
  assert_true(memcmp(snap, arena, ARENA * sizeof(float)) != 0);

  EXPECT(DP_ERR_NULL_POINTER, dp_forward_norm_subset(NULL, sh, &nm, K_(yk), T_(r), T_(x), T_(f), k, idx, scales),
         "params NULL");
  EXPECT(DP_ERR_NULL_POINTER, FWD_(NULL, K_(yk), T_(r), T_(x), T_(f), k, idx), "norm NULL");
  EXPECT(DP_ERR_NULL_POINTER, FWD_(&nm, K_(NULL), T_(r), T_(x), T_(f), k, idx), "y_kept NULL");
  EXPECT(DP_ERR_BAD_DTYPE, FWD_(&nm, dp_tensor_dense(yk, DP_BF16, ksh), T_(r), T_(x), T_(f), k, idx), "y_kept dtype");
  EXPECT(DP_ERR_NULL_POINTER, FWD_(&nm, K_(yk), T_(r), T_(x), T_(f), k, NULL), "indices NULL");
  EXPECT(DP_ERR_MISALIGNED, FWD_(&nm, K_(yk), T_(r), T_(x), T_(f), k, (const size_t *)(const void *)((char *)idx + 1)),
         "indices misaligned");
  /* overlaps: y_kept may not be f (not even exactly), x or r; the indices not in an output */
  EXPECT(DP_ERR_OVERLAP, FWD_(&nm, K_(f), T_(r), T_(x), T_(f), k, idx), "y_kept is f");
  EXPECT(DP_ERR_OVERLAP, FWD_(&nm, K_(x + 8), T_(r), T_(x), T_(f), k, idx), "y_kept in x");
  EXPECT(DP_ERR_OVERLAP, FWD_(&nm, K_(r), T_(r), T_(x), T_(f), k, idx), "y_kept is r");
  EXPECT(DP_ERR_OVERLAP, FWD_(&nm, K_(yk), T_(r), T_(x), T_(f), k, (const size_t *)(const void *)nm.mean),
         "indices in mean");
  dp_norm bn = nm;
  bn.rstd = yk + 5;
  EXPECT(DP_ERR_OVERLAP, FWD_(&bn, K_(yk), T_(r), T_(x), T_(f), k, idx), "rstd in y_kept");
  /* the indices: order and range, after every other argument */
  const size_t bad[][2] = {{3, 1}, {2, 2}, {1, 4}};
  for (int i = 0; i < 3; i++) {
    EXPECT(DP_ERR_BAD_ARGUMENT, FWD_(&nm, K_(yk), T_(r), T_(x), T_(f), k, bad[i]), "indices unsorted/repeated/>= B");
    EXPECT(DP_ERR_OVERLAP, FWD_(&nm, K_(f), T_(r), T_(x), T_(f), k, bad[i]), "bad indices checked last");
  }
  const size_t five[5] = {0, 1, 2, 3, 4};
  const dp_shape sh5 = {5, 2, 32};
  EXPECT(DP_ERR_BAD_ARGUMENT,
         dp_forward_norm_subset(&p, sh, &nm, dp_tensor_dense(arena + 1280, DP_F32, sh5), T_(r), T_(x), T_(f), 5, five,
                                scales),
         "count above B");

  /* backward: grad_f r, grad_x x, grad_y_kept yk, r f, grad_r_in none; grad_gamma 1248, grad_beta 1280 */
  float *gg = arena + 1248, *gb = arena + 1280;
#define BWD_(n_, gf_, gx_, gy_, i_, fl_) \
  dp_backward_norm_subset(&p, sh, (n_), (gf_), (gx_), (gy_), T_(f), T_(NULL), k, (i_), NULL, gg, gb, (fl_))
  memcpy(snap, arena, ARENA * sizeof(float));
  assert_int_equal(BWD_(&nm, T_(r), T_(x), K_(yk), idx, 0), DP_OK);
  assert_true(memcmp(snap, arena, ARENA * sizeof(float)) != 0);
  EXPECT(DP_ERR_BAD_FLAGS, BWD_(&nm, T_(r), T_(x), K_(yk), idx, 1u << 3), "backward flags");
  EXPECT(DP_ERR_NULL_POINTER, BWD_(NULL, T_(r), T_(x), K_(yk), idx, 0), "backward norm NULL");
  EXPECT(DP_ERR_NULL_POINTER, BWD_(&nm, T_(r), T_(x), K_(NULL), idx, 0), "backward grad_y_kept NULL");
  EXPECT(DP_ERR_OVERLAP, BWD_(&nm, K_(yk), T_(x), K_(yk), idx, 0), "backward grad_f is grad_y_kept");
  EXPECT(DP_ERR_OVERLAP, BWD_(&nm, T_(r), T_(x), K_(x + 3), idx, 0), "backward grad_y_kept in grad_x");
  EXPECT(DP_ERR_OVERLAP, BWD_(&nm, T_(r), T_(x), K_(yk), (const size_t *)(const void *)gg, 0), "backward indices in grad_gamma");
  EXPECT(DP_ERR_NULL_POINTER, BWD_(&nm, T_(r), T_(x), K_(yk), NULL, 0), "backward indices NULL");
  bn = nm;
  bn.rstd = NULL;
  EXPECT(DP_ERR_NULL_POINTER, BWD_(&bn, T_(r), T_(x), K_(yk), bad[0], 0), "backward rstd NULL before the indices");
  for (int i = 0; i < 3; i++) EXPECT(DP_ERR_BAD_ARGUMENT, BWD_(&nm, T_(r), T_(x), K_(yk), bad[i], 0), "backward indices");
#undef BWD_
  /* Valid no-ops and an empty subset: r and the statistics are still written. */
  const dp_shape empty = {0, 2, 32};
  assert_int_equal(dp_forward_norm_subset(&p, empty, &nm, K_(NULL), T_(NULL), T_(NULL), T_(NULL), 0, NULL, NULL), DP_OK);
  memcpy(snap, arena, ARENA * sizeof(float));
  assert_int_equal(FWD_(&nm, K_(NULL), T_(r), T_(x), T_(f), 0, NULL), DP_OK);
  assert_true(memcmp(snap, arena, 256 * sizeof(float)) != 0);                  /* r */
  assert_memory_equal(snap + 256, arena + 256, (1216 - 256) * sizeof(float)); /* x .. beta, y_kept among them */
#undef EXPECT
#undef FWD_
#undef K_
#undef T_
  free(arena);
  free(snap);
}

int main(void) {
  const struct CMUnitTest once[] = {cmocka_unit_test(test_contract), cmocka_unit_test(test_empty_subset_null)};
  const struct CMUnitTest per_isa[] = {
      cmocka_unit_test(test_forward_subset_equals_full),
      cmocka_unit_test(test_backward_subset_equals_full),
      cmocka_unit_test(test_composed_blocks),
  };
  int failed = cmocka_run_group_tests_name("norm_subset", once, NULL, NULL);
  const dp_isa initial = dp_active_isa();
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa) || dp_set_max_isa((dp_isa)isa) != DP_OK) continue;
    if (dp_active_isa() != (dp_isa)isa) continue; /* DROPPATH_ISA narrowed below it: covered */
    char name[32];
    snprintf(name, sizeof name, "norm_subset_%s", dp_isa_name((dp_isa)isa));
    failed += cmocka_run_group_tests_name(name, per_isa, NULL, NULL);
  }
  if (dp_set_max_isa(initial) != DP_OK) failed++;
  return failed != 0;
}
