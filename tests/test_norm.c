/*
 * The fused residual + norm operations (dp_forward_norm, dp_inference_norm):
 *   - against the plain model (reference_norm.c) bit for bit, on every ISA,
 *     every dtype combination, layouts, in place, 1 and 2 threads;
 *   - against a double-precision computation within the error bound the
 *     README states ("Fused residual + norm": accuracy);
 *   - dropped samples: r = x exactly and f never read;
 *   - the error contract: each bad argument's status, outputs untouched;
 *   - golden outputs (tests/vectors/norm_outputs.txt), the same on every ISA
 *     and on AArch64 under qemu.
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
#include "reference_norm.h"
#include "test_util.h"

static size_t base_iters(void) {
  const char *e = getenv("DP_TEST_ITERS");
  const long v = e && *e ? strtol(e, NULL, 0) : 150;
  return v > 0 ? (size_t)v : 1;
}

static tu_rng rng_for(const char *name) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  tu_rng r;
  tu_rng_init(&r, tu_seed() ^ h);
  return r;
}

/* Runs body once per ISA this machine supports (the widest left active). */
#define FOR_EACH_ISA(isa)                                                                   \
  for (int isa = 0; isa < DP_ISA_COUNT; isa++)                                              \
    if (dp_isa_supported((dp_isa)isa) && dp_set_max_isa((dp_isa)isa) == DP_OK &&           \
        dp_active_isa() == (dp_isa)isa)

static void widest_isa(void) {
  for (int isa = DP_ISA_COUNT - 1; isa >= 0; isa--)
    if (dp_isa_supported((dp_isa)isa) && dp_set_max_isa((dp_isa)isa) == DP_OK) break;
}

static const char *dtype_name(int t) { return t == DP_F32 ? "f32" : t == DP_BF16 ? "bf16" : "f16"; }

/* ---------------------------------------------------------------- a random call, both sides */

enum { TY, TR, TX, TF, NT };
enum { R_ABSENT, R_SEPARATE, R_IS_X };

typedef struct ncase {
  int xt, ft, inference, kind, r_mode, y_is_f;
  int has_gamma, has_beta, has_mean, has_rstd, has_scales;
  float eps;
  dp_shape sh;
  dp_params p;
  size_t ss[NT], ts[NT], mis[NT], span[NT];
  /* [side][tensor]: side 0 the library, 1 the reference */
  tu_buf t[2][NT], mean[2], rstd[2], scales[2];
  float *gamma, *beta;
} ncase;

static size_t rows(dp_shape s) { return s.batch * (s.seq ? s.seq : 1); }

static int t_dtype(const ncase *c, int i) { return i == TY || i == TF ? c->ft : c->xt; }

static void describe(const ncase *c) {
  fprintf(stderr,
          "  case: %s x:%s f:%s B=%zu T=%zu D=%zu %s eps=%g p=%.17g mode=%d sbk=%d seed=%#llx threads=%d flags=%#x "
          "r=%d y_is_f=%d gamma=%d beta=%d mean=%d rstd=%d isa=%s\n",
          c->inference ? "inference" : "forward", dtype_name(c->xt), dtype_name(c->ft), c->sh.batch, c->sh.seq,
          c->sh.dim, c->kind == DP_NORM_RMS ? "rms" : "layer", (double)c->eps, c->p.drop_prob, c->p.mode,
          c->p.scale_by_keep, (unsigned long long)c->p.seed, c->p.num_threads, c->p.flags, c->r_mode, c->y_is_f,
          c->has_gamma, c->has_beta, c->has_mean, c->has_rstd, dp_isa_name(dp_active_isa()));
  for (int i = 0; i < NT; i++) fprintf(stderr, "  tensor %d: ss=%zu ts=%zu mis=%zu\n", i, c->ss[i], c->ts[i], c->mis[i]);
}

static void pick_layout(tu_rng *rng, dp_shape s, size_t *ss, size_t *ts) {
  const size_t T = s.seq ? s.seq : 1;
  const int seq_first = (int)tu_range(rng, 0, 1);
  const size_t row = s.dim + (tu_range(rng, 0, 2) == 0 ? tu_range(rng, 1, 7) : 0);
  if (seq_first) {
    *ss = row;
    *ts = (s.batch ? s.batch : 1) * row;
  } else {
    *ts = row;
    *ss = T * row;
  }
}

static void fill_x(tu_rng *rng, unsigned char *p, int dtype, size_t n, float offset) {
  for (size_t i = 0; i < n; i++) {
    float v = tu_float(rng) * (float)(1 + (tu_next(rng) & 3)) + offset;
    if ((tu_next(rng) & 255) == 0) v = (tu_next(rng) & 1) ? NAN : INFINITY;
    if (dtype == DP_F32) memcpy(p + 4 * i, &v, 4);
    else {
      const uint16_t h = dtype == DP_BF16 ? ref_f32_to_bf16(v) : ref_f32_to_f16(v);
      memcpy(p + 2 * i, &h, 2);
    }
  }
}

static void case_random(ncase *c, tu_rng *rng, int inference) {
  static const int combos[][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                  {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  static const size_t seqs[] = {0, 1, 1, 2, 3, 5};
  static const float eps_list[] = {1e-5f, 1e-6f, 0.0f, 1e-2f};
  memset(c, 0, sizeof *c);
  const size_t k = tu_range(rng, 0, 1) ? 0 : tu_range(rng, 0, 4);
  c->xt = combos[k][0];
  c->ft = combos[k][1];
  c->inference = inference;
  c->kind = (int)tu_range(rng, 0, 1);
  c->eps = eps_list[tu_range(rng, 0, 3)];
  c->r_mode = (int)tu_range(rng, 0, 2);
  c->y_is_f = tu_range(rng, 0, 3) == 0;
  c->has_gamma = (int)tu_range(rng, 0, 3) != 0;
  c->has_beta = (int)tu_range(rng, 0, 3) != 0;
  c->has_mean = (int)tu_range(rng, 0, 1);
  c->has_rstd = (int)tu_range(rng, 0, 1);
  c->has_scales = (int)tu_range(rng, 0, 1);
  c->sh.batch = tu_range(rng, 0, 9) < 8 ? tu_range(rng, 1, 9) : tu_range(rng, 0, 40);
  c->sh.seq = seqs[tu_range(rng, 0, 5)];
  const size_t kd = tu_range(rng, 0, 19);
  c->sh.dim = kd < 12 ? tu_range(rng, 1, 70) : kd < 18 ? tu_range(rng, 71, 800) : tu_range(rng, 4090, 4200);
  dp_params_init(&c->p);
  static const double ps[] = {0.0, 0.1, 0.5, 1.0};
  c->p.drop_prob = ps[tu_range(rng, 0, 3)];
  static const int modes[] = {DP_MODE_BATCH, DP_MODE_EXACT_K, DP_MODE_ROW, DP_MODE_ROW, DP_MODE_ROW};
  c->p.mode = modes[tu_range(rng, 0, 4)];
  c->p.scale_by_keep = tu_range(rng, 0, 3) != 0;
  c->p.seed = tu_next(rng);
  c->p.offset = tu_next(rng) & 0xffff;
  c->p.sample_base = tu_range(rng, 0, 1000);
  c->p.num_threads = (int)tu_range(rng, 0, 2);
  if (tu_range(rng, 0, 7) == 0) c->p.flags = DP_FLAG_STREAM_ALWAYS;
  const float offset = tu_range(rng, 0, 3) == 0 ? 100.0f * tu_float(rng) : 0.0f;
  for (int i = 0; i < NT; i++) {
    pick_layout(rng, c->sh, &c->ss[i], &c->ts[i]);
    c->mis[i] = tu_dtype_size(t_dtype(c, i)) * tu_range(rng, 0, 64 / tu_dtype_size(t_dtype(c, i)) - 1);
  }
  /* In place: the same layout and buffer. */
  if (c->r_mode == R_IS_X) c->ss[TR] = c->ss[TX], c->ts[TR] = c->ts[TX];
  if (c->y_is_f) c->ss[TY] = c->ss[TF], c->ts[TY] = c->ts[TF];
  const size_t D = c->sh.dim, R = rows(c->sh);
  for (int i = 0; i < NT; i++) {
    const dp_tensor v = {NULL, t_dtype(c, i), c->ss[i], c->ts[i]};
    c->span[i] = ref_span_elems(&v, c->sh);
    for (int side = 0; side < 2; side++) c->t[side][i] = tu_buf_alloc(c->span[i] * tu_dtype_size(t_dtype(c, i)), c->mis[i]);
  }
  fill_x(rng, c->t[0][TX].data, c->xt, c->span[TX], offset);
  fill_x(rng, c->t[0][TF].data, c->ft, c->span[TF], 0.0f);
  for (int i = TX; i <= TF; i++) memcpy(c->t[1][i].data, c->t[0][i].data, c->t[0][i].bytes);
  for (int side = 0; side < 2; side++) {
    c->mean[side] = tu_buf_alloc(R * 4, 0);
    c->rstd[side] = tu_buf_alloc(R * 4, 0);
    c->scales[side] = tu_buf_alloc(c->sh.batch * 4, 0);
  }
  c->gamma = (float *)malloc((D + 1) * 4);
  c->beta = (float *)malloc((D + 1) * 4);
  assert_true(c->gamma && c->beta);
  for (size_t d = 0; d < D; d++) {
    c->gamma[d] = 1.0f + 0.5f * tu_float(rng);
    c->beta[d] = tu_float(rng);
  }
}

static void case_free(ncase *c) {
  for (int side = 0; side < 2; side++) {
    for (int i = 0; i < NT; i++) tu_buf_free(&c->t[side][i]);
    tu_buf_free(&c->mean[side]);
    tu_buf_free(&c->rstd[side]);
    tu_buf_free(&c->scales[side]);
  }
  free(c->gamma);
  free(c->beta);
}

static dp_tensor view(const ncase *c, int side, int i) {
  int src = i;
  if (i == TR && c->r_mode == R_IS_X) src = TX;
  if (i == TY && c->y_is_f) src = TF;
  const dp_tensor t = {(i == TR && c->r_mode == R_ABSENT) ? NULL : c->t[side][src].data, t_dtype(c, i), c->ss[i],
                       c->ts[i]};
  return t;
}

static dp_norm norm_of(const ncase *c, int side) {
  dp_norm n;
  dp_norm_init(&n);
  n.kind = c->kind;
  n.eps = c->eps;
  n.gamma = c->has_gamma ? c->gamma : NULL;
  n.beta = c->has_beta ? c->beta : NULL;
  n.mean = c->has_mean ? (float *)(void *)c->mean[side].data : NULL;
  n.rstd = c->has_rstd ? (float *)(void *)c->rstd[side].data : NULL;
  return n;
}

static dp_status call_lib(const ncase *c) {
  const dp_norm n = norm_of(c, 0);
  if (c->inference) return dp_inference_norm(&c->p, c->sh, &n, view(c, 0, TY), view(c, 0, TR), view(c, 0, TX), view(c, 0, TF));
  return dp_forward_norm(&c->p, c->sh, &n, view(c, 0, TY), view(c, 0, TR), view(c, 0, TX), view(c, 0, TF),
                         c->has_scales ? (float *)(void *)c->scales[0].data : NULL);
}

static void call_ref(const ncase *c) {
  const dp_norm n = norm_of(c, 1);
  ref_norm_forward(&c->p, c->sh, &n, view(c, 1, TY), view(c, 1, TR), view(c, 1, TX), view(c, 1, TF),
                   c->has_scales ? (float *)(void *)c->scales[1].data : NULL, c->inference);
}

static int same_buf(const ncase *c, const tu_buf *a, const tu_buf *b, const char *what) {
  if (!tu_guards_intact(a)) {
    fprintf(stderr, "FAIL: %s: the library wrote outside the buffer\n", what);
    describe(c);
    return 0;
  }
  if (memcmp(a->data, b->data, a->bytes) == 0) return 1;
  size_t i = 0;
  while (a->data[i] == b->data[i]) i++;
  fprintf(stderr, "FAIL: %s differs from the reference at byte %zu\n", what, i);
  describe(c);
  return 0;
}

static int case_check(const ncase *c) {
  static const char *const names[NT] = {"y", "r", "x", "f"};
  int ok = 1;
  for (int i = 0; i < NT; i++) ok = ok && same_buf(c, &c->t[0][i], &c->t[1][i], names[i]);
  ok = ok && same_buf(c, &c->mean[0], &c->mean[1], "mean") && same_buf(c, &c->rstd[0], &c->rstd[1], "rstd");
  return ok && (c->inference || same_buf(c, &c->scales[0], &c->scales[1], "scales_out"));
}

static void run_random(const char *name, int inference) {
  tu_rng rng = rng_for(name);
  int failures = 0, runs = 0;
  const size_t iters = base_iters();
  FOR_EACH_ISA(isa) {
    tu_rng r = rng; /* the same cases on every ISA */
    for (size_t it = 0; it < iters && failures < 5; it++) {
      ncase c;
      case_random(&c, &r, inference);
      const dp_status st = call_lib(&c);
      if (st != DP_OK) {
        fprintf(stderr, "FAIL: status %s\n", dp_status_string(st));
        describe(&c);
        failures++;
      } else {
        call_ref(&c);
        failures += !case_check(&c);
      }
      case_free(&c);
      runs++;
    }
  }
  widest_isa();
  fprintf(stderr, "[ norm     ] %s: %d random calls\n", name, runs);
  assert_int_equal(failures, 0);
}

static void test_forward_matches_reference(void **state) {
  (void)state;
  run_random("forward_norm", 0);
}

static void test_inference_matches_reference(void **state) {
  (void)state;
  run_random("inference_norm", 1);
}

/* ---------------------------------------------------------------- same bits for any thread count */

static void test_threads_same_bits(void **state) {
  (void)state;
  const dp_shape sh = {24, 7, 768};
  const size_t n = 24 * 7 * 768, R = 24 * 7;
  tu_rng rng = rng_for("threads");
  float *x = (float *)malloc(n * 4), *f = (float *)malloc(n * 4), *gamma = (float *)malloc(768 * 4);
  float *y[3], *r[3], *mean[3], *rstd[3];
  assert_true(x && f && gamma);
  tu_fill_floats(&rng, x, n, 1);
  tu_fill_floats(&rng, f, n, 1);
  tu_fill_floats(&rng, gamma, 768, 0);
  const int threads[3] = {1, 2, 0};
  FOR_EACH_ISA(isa) {
    for (int k = 0; k < 3; k++) {
      y[k] = (float *)malloc(n * 4);
      r[k] = (float *)malloc(n * 4);
      mean[k] = (float *)malloc(R * 4);
      rstd[k] = (float *)malloc(R * 4);
      assert_true(y[k] && r[k] && mean[k] && rstd[k]);
      dp_params p;
      dp_params_init(&p);
      p.drop_prob = 0.3;
      p.seed = 99;
      p.num_threads = threads[k];
      dp_norm nm;
      dp_norm_init(&nm);
      nm.gamma = gamma;
      nm.mean = mean[k];
      nm.rstd = rstd[k];
      assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_seq_first(y[k], DP_F32, sh),
                                       dp_tensor_dense(r[k], DP_F32, sh), dp_tensor_dense(x, DP_F32, sh),
                                       dp_tensor_dense(f, DP_F32, sh), NULL),
                       DP_OK);
    }
    for (int k = 1; k < 3; k++) {
      assert_memory_equal(y[0], y[k], n * 4);
      assert_memory_equal(r[0], r[k], n * 4);
      assert_memory_equal(mean[0], mean[k], R * 4);
      assert_memory_equal(rstd[0], rstd[k], R * 4);
    }
    for (int k = 0; k < 3; k++) {
      free(y[k]);
      free(r[k]);
      free(mean[k]);
      free(rstd[k]);
    }
  }
  widest_isa();
  free(x);
  free(f);
  free(gamma);
}

/* ---------------------------------------------------------------- dropped samples */

/* p = 1: every branch is NaN, yet r is x's bits and y the norm of x. */
static void test_dropped_never_read(void **state) {
  (void)state;
  const dp_shape sh = {5, 3, 77};
  const size_t n = 5 * 3 * 77;
  tu_rng rng = rng_for("dropped");
  float *x = (float *)malloc(n * 4), *f = (float *)malloc(n * 4), *r = (float *)malloc(n * 4);
  float *y = (float *)malloc(n * 4), *y0 = (float *)malloc(n * 4), *zero = (float *)calloc(n, 4);
  assert_true(x && f && r && y && y0 && zero);
  tu_fill_floats(&rng, x, n, 0);
  for (size_t i = 0; i < n; i++) f[i] = NAN;
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 1.0;
  dp_norm nm;
  dp_norm_init(&nm);
  FOR_EACH_ISA(isa) {
    assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                     dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), NULL),
                     DP_OK);
    assert_memory_equal(r, x, n * 4);
    /* The same y as the inference norm of x + 0. */
    dp_params q;
    dp_params_init(&q);
    assert_int_equal(dp_inference_norm(&q, sh, &nm, dp_tensor_dense(y0, DP_F32, sh), dp_tensor_dense(NULL, DP_F32, sh),
                                       dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(zero, DP_F32, sh)),
                     DP_OK);
    for (size_t i = 0; i < n; i++) assert_false(isnan(y[i]));
    assert_memory_equal(y, y0, n * 4);
  }
  widest_isa();
  free(x);
  free(f);
  free(r);
  free(y);
  free(y0);
  free(zero);
}

/* Inference: y is the same bits whether r is written or not. */
static void test_inference_r_optional(void **state) {
  (void)state;
  const dp_shape sh = {3, 2, 5000}; /* longer than the scratch: the recomputing path */
  const size_t n = 3 * 2 * 5000;
  tu_rng rng = rng_for("inference_r");
  uint16_t *x = (uint16_t *)malloc(n * 2), *f = (uint16_t *)malloc(n * 2), *r = (uint16_t *)malloc(n * 2);
  uint16_t *y1 = (uint16_t *)malloc(n * 2), *y2 = (uint16_t *)malloc(n * 2);
  assert_true(x && f && r && y1 && y2);
  fill_x(&rng, (unsigned char *)x, DP_BF16, n, 3.0f);
  fill_x(&rng, (unsigned char *)f, DP_BF16, n, 0.0f);
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.25;
  p.scale_by_keep = 0; /* r = x + keep*f: rounding to bf16 matters */
  dp_norm nm;
  dp_norm_init(&nm);
  nm.kind = DP_NORM_RMS;
  FOR_EACH_ISA(isa) {
    for (int with_r = 0; with_r < 2; with_r++)
      assert_int_equal(dp_inference_norm(&p, sh, &nm, dp_tensor_dense(with_r ? y1 : y2, DP_BF16, sh),
                                         dp_tensor_dense(with_r ? r : NULL, DP_BF16, sh),
                                         dp_tensor_dense(x, DP_BF16, sh), dp_tensor_dense(f, DP_BF16, sh)),
                       DP_OK);
    assert_memory_equal(y1, y2, n * 2);
  }
  widest_isa();
  free(x);
  free(f);
  free(r);
  free(y1);
  free(y2);
}

/* ---------------------------------------------------------------- accuracy against doubles */

/*
 * The bound (README "Fused residual + norm", accuracy), per element, with
 * u = 2^-24, m = ceil(D/16) terms per lane, K = m + 8, A = mean(|r|) and, in
 * double from the stored r: mu, sigma = sqrt(var + eps), xhat = (r - mu)/sigma:
 *   |y - y_exact| <= 2*K*u*|gamma|*(A/sigma + |xhat|) + u*|y_exact| + u_t*|y_exact| + h_t
 * u_t and h_t: the storage rounding of y (0 for f32; bf16 2^-8 and 2^-133,
 * f16 2^-11 and 2^-25, the last terms half an ulp of the smallest subnormal).
 * Derivation: each lane sums at most m terms and the tree adds 4 levels, so
 * the computed sum is off by at most (m+4)u*sum|r| (Higham, first order); the
 * mean by (m+5)u*A; the variance's sum of squares (nonnegative terms, 3
 * roundings each) relatively by (m+8)u, and rstd by half that plus 3u; the
 * mean's error enters xhat as delta_mean/sigma. y adds one rounding each for
 * the product with gamma and the sum with beta. The factor 2 covers the
 * second-order terms. RMSNorm has mean 0 exactly (the A/sigma term only
 * over-counts there).
 */
static void test_accuracy_bound(void **state) {
  (void)state;
  tu_rng rng = rng_for("accuracy");
  double worst = 0.0, worst_f32 = 0.0; /* all outputs; f32 outputs (no storage rounding) */
  char worst_at[96] = "";
  int failures = 0;
  static const int combos[][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                  {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  static const size_t dims[] = {1, 2, 15, 16, 17, 100, 768, 1000, 4096, 5000, 16384};
  const double u = 0x1p-24;
  for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
    for (int ci = 0; ci < 5; ci++)
      for (int kind = 0; kind < 2; kind++) {
        const size_t D = dims[di];
        const int xt = combos[ci][0], ft = combos[ci][1];
        const dp_shape sh = {4, 1, D};
        const size_t n = 4 * D;
        unsigned char *x = (unsigned char *)malloc(n * 4), *f = (unsigned char *)malloc(n * 4);
        unsigned char *r = (unsigned char *)malloc(n * 4), *y = (unsigned char *)malloc(n * 4);
        float *gamma = (float *)malloc(D * 4), *beta = (float *)malloc(D * 4);
        assert_true(x && f && r && y && gamma && beta);
        /* Rows with offsets of 0 to 1000 times their spread: the two-pass
         * variance's case (E[r^2] - mean^2 loses every digit there). */
        const float offsets[4] = {0.0f, 10.0f, 1000.0f, -300.0f};
        for (int b = 0; b < 4; b++)
          fill_x(&rng, x + (size_t)b * D * tu_dtype_size(xt), xt, D, xt == DP_F32 || offsets[b] < 200 ? offsets[b] : 30.0f);
        for (size_t i = 0; i < n; i++) { /* finite values only */
          const float v = tu_float(&rng);
          if (ft == DP_F32) memcpy(f + 4 * i, &v, 4);
          else {
            const uint16_t h = ft == DP_BF16 ? ref_f32_to_bf16(v) : ref_f32_to_f16(v);
            memcpy(f + 2 * i, &h, 2);
          }
        }
        for (size_t i = 0; i < n; i++) {
          const float v = tu_load_elem(x + i * tu_dtype_size(xt), xt);
          if (!isfinite(v)) {
            const float z = 1.0f;
            if (xt == DP_F32) memcpy(x + 4 * i, &z, 4);
            else {
              const uint16_t h = xt == DP_BF16 ? ref_f32_to_bf16(z) : ref_f32_to_f16(z);
              memcpy(x + 2 * i, &h, 2);
            }
          }
        }
        for (size_t d = 0; d < D; d++) {
          gamma[d] = 2.0f * tu_float(&rng);
          beta[d] = tu_float(&rng);
        }
        dp_params p;
        dp_params_init(&p);
        dp_norm nm;
        dp_norm_init(&nm);
        nm.kind = kind;
        nm.gamma = gamma;
        nm.beta = beta;
        assert_int_equal(dp_inference_norm(&p, sh, &nm, dp_tensor_dense(y, (dp_dtype)ft, sh),
                                           dp_tensor_dense(r, (dp_dtype)xt, sh), dp_tensor_dense(x, (dp_dtype)xt, sh),
                                           dp_tensor_dense(f, (dp_dtype)ft, sh)),
                         DP_OK);
        const double ut = ft == DP_F32 ? 0.0 : ft == DP_BF16 ? 0x1p-8 : 0x1p-11;
        const double ht = ft == DP_F32 ? 0.0 : ft == DP_BF16 ? 0x1p-133 : 0x1p-25;
        const double K = (double)((D + 15) / 16 + 8);
        for (int b = 0; b < 4; b++) {
          const unsigned char *rr = r + (size_t)b * D * tu_dtype_size(xt);
          double sum = 0.0, sabs = 0.0, var = 0.0;
          for (size_t d = 0; d < D; d++) {
            const double v = tu_load_elem(rr + d * tu_dtype_size(xt), xt);
            sum += v;
            sabs += fabs(v);
          }
          const double mu = kind == DP_NORM_RMS ? 0.0 : sum / (double)D;
          for (size_t d = 0; d < D; d++) {
            const double v = tu_load_elem(rr + d * tu_dtype_size(xt), xt) - mu;
            var += v * v;
          }
          const double sigma = sqrt(var / (double)D + (double)nm.eps), A = sabs / (double)D;
          for (size_t d = 0; d < D; d++) {
            const double xh = (tu_load_elem(rr + d * tu_dtype_size(xt), xt) - mu) / sigma;
            const double ye = xh * gamma[d] + beta[d];
            const double got = tu_load_elem(y + ((size_t)b * D + d) * tu_dtype_size(ft), ft);
            const double bound = 2.0 * K * u * fabs(gamma[d]) * (A / sigma + fabs(xh)) + (u + ut) * fabs(ye) + ht;
            const double ratio = fabs(got - ye) / bound;
            if (ft == DP_F32 && ratio > worst_f32) worst_f32 = ratio;
            if (ratio > worst) {
              worst = ratio;
              snprintf(worst_at, sizeof worst_at, "D=%zu %s/%s %s row %d", D, dtype_name(xt), dtype_name(ft),
                       kind ? "rms" : "layer", b);
            }
            if (!(ratio <= 1.0) && failures++ < 5)
              fprintf(stderr, "FAIL: D=%zu %s/%s %s row %d elem %zu: got %.9g, exact %.9g, bound %.3g\n", D,
                      dtype_name(xt), dtype_name(ft), kind ? "rms" : "layer", b, d, got, ye, bound);
          }
        }
        free(x);
        free(f);
        free(r);
        free(y);
        free(gamma);
        free(beta);
      }
  fprintf(stderr, "[ norm     ] accuracy: worst error / bound = %.3f (%s), f32 outputs %.3f, on %s\n", worst,
          worst_at, worst_f32, dp_isa_name(dp_active_isa()));
  assert_int_equal(failures, 0);
}

/* ---------------------------------------------------------------- backward */

enum { BGF, BGX, BGY, BR, BGIN, BFF, NB };

/* A random backward call: dp_backward_norm, or dp_backward_norm_ls with
 * LayerScale (ls_gamma, f, grad_ls_gamma each there or not). */
typedef struct bcase {
  int xt, ft, kind, gx_mode, gin, gf_is_gy, gf_is_f, has_gamma, has_gg, has_gb, has_scales, has_ls, has_gl, call_ls;
  uint32_t flags;
  dp_shape sh;
  dp_params p;
  size_t ss[NB], ts[NB], mis[NB], span[NB];
  tu_buf t[2][NB], gg[2], gb[2], gl[2];
  float *gamma, *mean, *rstd, *scales, *ls;
} bcase;

enum { GX_ABSENT, GX_OWN, GX_IS_GIN };

static int b_dtype(const bcase *c, int i) { return i == BGF || i == BGY || i == BFF ? c->ft : c->xt; }

static void b_describe(const bcase *c) {
  fprintf(stderr,
          "  backward case: x:%s f:%s B=%zu T=%zu D=%zu %s p=%.17g mode=%d seed=%#llx threads=%d flags=%#x gx=%d "
          "gin=%d gf_is=%s gamma=%d gg=%d gb=%d scales=%d ls=%d grad_ls=%d call=%s isa=%s\n",
          dtype_name(c->xt), dtype_name(c->ft), c->sh.batch, c->sh.seq, c->sh.dim,
          c->kind == DP_NORM_RMS ? "rms" : "layer", c->p.drop_prob, c->p.mode, (unsigned long long)c->p.seed,
          c->p.num_threads, c->flags, c->gx_mode, c->gin, c->gf_is_gy ? "gy" : c->gf_is_f ? "f" : "own", c->has_gamma,
          c->has_gg, c->has_gb, c->has_scales, c->has_ls, c->has_gl, c->call_ls ? "_ls" : "plain",
          dp_isa_name(dp_active_isa()));
}

static void b_random(bcase *c, tu_rng *rng) {
  static const int combos[][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                  {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  static const size_t seqs[] = {0, 1, 1, 2, 3, 5};
  memset(c, 0, sizeof *c);
  const size_t k = tu_range(rng, 0, 1) ? 0 : tu_range(rng, 0, 4);
  c->xt = combos[k][0];
  c->ft = combos[k][1];
  c->kind = (int)tu_range(rng, 0, 1);
  c->gx_mode = (int)tu_range(rng, 0, 2);
  c->gin = c->gx_mode == GX_IS_GIN || tu_range(rng, 0, 3) != 0;
  c->gf_is_gy = tu_range(rng, 0, 3) == 0;
  c->has_ls = (int)tu_range(rng, 0, 1);
  c->has_gl = c->has_ls && tu_range(rng, 0, 3) != 0;
  c->call_ls = c->has_gl || tu_range(rng, 0, 1);
  c->gf_is_f = c->has_gl && !c->gf_is_gy && tu_range(rng, 0, 3) == 0;
  c->has_gamma = tu_range(rng, 0, 3) != 0;
  c->has_gg = tu_range(rng, 0, 3) != 0;
  c->has_gb = tu_range(rng, 0, 3) != 0;
  c->has_scales = (int)tu_range(rng, 0, 1);
  c->flags = (uint32_t)tu_range(rng, 0, 7);
  c->sh.batch = tu_range(rng, 0, 9) < 8 ? tu_range(rng, 1, 9) : tu_range(rng, 0, 60);
  c->sh.seq = seqs[tu_range(rng, 0, 5)];
  const size_t kd = tu_range(rng, 0, 19);
  c->sh.dim = kd < 14 ? tu_range(rng, 1, 70) : tu_range(rng, 71, 900);
  dp_params_init(&c->p);
  static const double ps[] = {0.0, 0.1, 0.5, 1.0};
  c->p.drop_prob = ps[tu_range(rng, 0, 3)];
  static const int modes[] = {DP_MODE_BATCH, DP_MODE_EXACT_K, DP_MODE_ROW, DP_MODE_ROW, DP_MODE_ROW};
  c->p.mode = modes[tu_range(rng, 0, 4)];
  c->p.seed = tu_next(rng);
  c->p.num_threads = (int)tu_range(rng, 0, 2);
  for (int i = 0; i < NB; i++) {
    pick_layout(rng, c->sh, &c->ss[i], &c->ts[i]);
    c->mis[i] = tu_dtype_size(b_dtype(c, i)) * tu_range(rng, 0, 64 / tu_dtype_size(b_dtype(c, i)) - 1);
  }
  if (c->gx_mode == GX_IS_GIN) c->ss[BGX] = c->ss[BGIN], c->ts[BGX] = c->ts[BGIN];
  if (c->gf_is_gy) c->ss[BGF] = c->ss[BGY], c->ts[BGF] = c->ts[BGY];
  if (c->gf_is_f) c->ss[BGF] = c->ss[BFF], c->ts[BGF] = c->ts[BFF];
  const size_t D = c->sh.dim, R = rows(c->sh);
  for (int i = 0; i < NB; i++) {
    const dp_tensor v = {NULL, b_dtype(c, i), c->ss[i], c->ts[i]};
    c->span[i] = ref_span_elems(&v, c->sh);
    c->t[0][i] = tu_buf_alloc(c->span[i] * tu_dtype_size(b_dtype(c, i)), c->mis[i]);
    c->t[1][i] = tu_buf_alloc(c->span[i] * tu_dtype_size(b_dtype(c, i)), c->mis[i]);
    fill_x(rng, c->t[0][i].data, b_dtype(c, i), c->span[i], 0.0f); /* outputs too: accumulated */
    memcpy(c->t[1][i].data, c->t[0][i].data, c->t[0][i].bytes);
  }
  for (int side = 0; side < 2; side++) {
    c->gg[side] = tu_buf_alloc(D * 4, 0);
    c->gb[side] = tu_buf_alloc(D * 4, 0);
    c->gl[side] = tu_buf_alloc(D * 4, 0);
    tu_rng same = *rng;
    tu_fill_floats(&same, (float *)(void *)c->gg[side].data, D, 0);
    tu_fill_floats(&same, (float *)(void *)c->gb[side].data, D, 0);
    tu_fill_floats(&same, (float *)(void *)c->gl[side].data, D, 0);
  }
  c->ls = (float *)malloc((D + 1) * 4);
  assert_non_null(c->ls);
  for (size_t d = 0; d < D; d++) c->ls[d] = 0.1f * tu_float(rng);
  c->gamma = (float *)malloc((D + 1) * 4);
  c->mean = (float *)malloc((R + 1) * 4);
  c->rstd = (float *)malloc((R + 1) * 4);
  c->scales = (float *)malloc((c->sh.batch + 1) * 4);
  assert_true(c->gamma && c->mean && c->rstd && c->scales);
  for (size_t d = 0; d < D; d++) c->gamma[d] = 1.0f + 0.5f * tu_float(rng);
  for (size_t i = 0; i < R; i++) {
    c->mean[i] = tu_float(rng);
    c->rstd[i] = 1.5f + tu_float(rng);
  }
  for (size_t b = 0; b < c->sh.batch; b++) c->scales[b] = tu_range(rng, 0, 3) ? 1.25f : 0.0f;
}

static void b_free(bcase *c) {
  for (int side = 0; side < 2; side++) {
    for (int i = 0; i < NB; i++) tu_buf_free(&c->t[side][i]);
    tu_buf_free(&c->gg[side]);
    tu_buf_free(&c->gb[side]);
    tu_buf_free(&c->gl[side]);
  }
  free(c->ls);
  free(c->gamma);
  free(c->mean);
  free(c->rstd);
  free(c->scales);
}

static dp_tensor b_view(const bcase *c, int side, int i) {
  int src = i;
  if (i == BGX && c->gx_mode == GX_IS_GIN) src = BGIN;
  if (i == BGF && c->gf_is_gy) src = BGY;
  if (i == BGF && c->gf_is_f) src = BFF;
  void *data = c->t[side][src].data;
  if ((i == BGX && c->gx_mode == GX_ABSENT) || (i == BGIN && !c->gin)) data = NULL;
  if (i == BFF && !c->has_gl && (c->sh.dim & 1)) data = NULL; /* f is not read then: absent or not */
  const dp_tensor t = {data, b_dtype(c, i), c->ss[i], c->ts[i]};
  return t;
}

static dp_status b_call(const bcase *c, int side) {
  dp_norm n;
  dp_norm_init(&n);
  n.kind = c->kind;
  n.gamma = c->has_gamma ? c->gamma : NULL;
  n.mean = c->mean;
  n.rstd = c->rstd;
  n.ls_gamma = c->has_ls ? c->ls : NULL;
  float *gg = c->has_gg ? (float *)(void *)c->gg[side].data : NULL;
  float *gb = c->has_gb ? (float *)(void *)c->gb[side].data : NULL;
  float *gl = c->has_gl ? (float *)(void *)c->gl[side].data : NULL;
  const float *sc = c->has_scales ? c->scales : NULL;
  if (side == 1) {
    ref_norm_backward_ls(&c->p, c->sh, &n, b_view(c, 1, BGF), b_view(c, 1, BGX), b_view(c, 1, BGY),
                         b_view(c, 1, BR), b_view(c, 1, BGIN), b_view(c, 1, BFF), sc, gg, gb, gl, c->flags);
    return DP_OK;
  }
  if (c->call_ls)
    return dp_backward_norm_ls(&c->p, c->sh, &n, b_view(c, 0, BGF), b_view(c, 0, BGX), b_view(c, 0, BGY),
                               b_view(c, 0, BR), b_view(c, 0, BGIN), b_view(c, 0, BFF), sc, gg, gb, gl, c->flags);
  return dp_backward_norm(&c->p, c->sh, &n, b_view(c, 0, BGF), b_view(c, 0, BGX), b_view(c, 0, BGY),
                          b_view(c, 0, BR), b_view(c, 0, BGIN), sc, gg, gb, c->flags);
}

static int b_check(const bcase *c) {
  static const char *const names[NB] = {"grad_f", "grad_x", "grad_y", "r", "grad_r_in", "f"};
  int ok = 1;
  for (int i = 0; i < NB && ok; i++) {
    ok = tu_guards_intact(&c->t[0][i]) && memcmp(c->t[0][i].data, c->t[1][i].data, c->t[0][i].bytes) == 0;
    if (!ok) fprintf(stderr, "FAIL: backward %s differs from the reference (or its guards)\n", names[i]);
  }
  if (ok && (memcmp(c->gg[0].data, c->gg[1].data, c->gg[0].bytes) || memcmp(c->gb[0].data, c->gb[1].data, c->gb[0].bytes) ||
             memcmp(c->gl[0].data, c->gl[1].data, c->gl[0].bytes))) {
    fprintf(stderr, "FAIL: backward grad_gamma, grad_beta or grad_ls_gamma differs from the reference\n");
    ok = 0;
  }
  if (!ok) b_describe(c);
  return ok;
}

static void test_backward_matches_reference(void **state) {
  (void)state;
  tu_rng rng = rng_for("backward_norm");
  int failures = 0, runs = 0;
  FOR_EACH_ISA(isa) {
    tu_rng r = rng;
    for (size_t it = 0; it < base_iters() && failures < 5; it++) {
      bcase c;
      b_random(&c, &r);
      const dp_status st = b_call(&c, 0);
      if (st != DP_OK) {
        fprintf(stderr, "FAIL: status %s\n", dp_status_string(st));
        b_describe(&c);
        failures++;
      } else {
        b_call(&c, 1);
        failures += !b_check(&c);
      }
      b_free(&c);
      runs++;
    }
  }
  widest_isa();
  fprintf(stderr, "[ norm     ] backward_norm: %d random calls\n", runs);
  assert_int_equal(failures, 0);
}

/* grad_gamma, grad_beta and every tensor: the same bits at 1, 2 and the
 * default number of threads, on a shape the walk splits (ViT-B rows). */
static void test_backward_threads_same_bits(void **state) {
  (void)state;
  const dp_shape sh = {16, 197, 768};
  const size_t n = 16 * 197 * 768, R = 16 * 197;
  tu_rng rng = rng_for("backward_threads");
  float *gy = (float *)malloc(n * 4), *r = (float *)malloc(n * 4), *gin = (float *)malloc(n * 4);
  float *gamma = (float *)malloc(768 * 4), *mean = (float *)malloc(R * 4), *rstd = (float *)malloc(R * 4);
  assert_true(gy && r && gin && gamma && mean && rstd);
  tu_fill_floats(&rng, gy, n, 0);
  tu_fill_floats(&rng, r, n, 0);
  tu_fill_floats(&rng, gin, n, 0);
  tu_fill_floats(&rng, gamma, 768, 0);
  for (size_t i = 0; i < R; i++) {
    mean[i] = 0.1f * tu_float(&rng);
    rstd[i] = 1.7f + tu_float(&rng);
  }
  const int threads[3] = {1, 2, 0};
  float *gf[3], *gx[3], gg[3][768], gb[3][768];
  FOR_EACH_ISA(isa) {
    for (int k = 0; k < 3; k++) {
      gf[k] = (float *)malloc(n * 4);
      gx[k] = (float *)malloc(n * 4);
      assert_true(gf[k] && gx[k]);
      dp_params p;
      dp_params_init(&p);
      p.drop_prob = 0.2;
      p.seed = 7;
      p.num_threads = threads[k];
      dp_norm nm;
      dp_norm_init(&nm);
      nm.gamma = gamma;
      nm.mean = mean;
      nm.rstd = rstd;
      assert_int_equal(dp_backward_norm(&p, sh, &nm, dp_tensor_dense(gf[k], DP_F32, sh), dp_tensor_dense(gx[k], DP_F32, sh),
                                        dp_tensor_dense(gy, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                        dp_tensor_dense(gin, DP_F32, sh), NULL, gg[k], gb[k], 0),
                       DP_OK);
    }
    for (int k = 1; k < 3; k++) {
      assert_memory_equal(gf[0], gf[k], n * 4);
      assert_memory_equal(gx[0], gx[k], n * 4);
      assert_memory_equal(gg[0], gg[k], sizeof gg[0]);
      assert_memory_equal(gb[0], gb[k], sizeof gb[0]);
    }
    for (int k = 0; k < 3; k++) {
      free(gf[k]);
      free(gx[k]);
    }
  }
  widest_isa();
  free(gy);
  free(r);
  free(gin);
  free(gamma);
  free(mean);
  free(rstd);
}

/* The forward's statistics feed the backward: grad_gamma against a double
 * computation of sum(grad_y * xhat) from the forward's r (a loose check that
 * the two operations agree on xhat: relative 1e-4). */
static void test_backward_after_forward(void **state) {
  (void)state;
  const dp_shape sh = {6, 5, 96};
  const size_t n = 6 * 5 * 96, R = 30;
  tu_rng rng = rng_for("bwd_after_fwd");
  float *x = (float *)malloc(n * 4), *f = (float *)malloc(n * 4), *r = (float *)malloc(n * 4);
  float *y = (float *)malloc(n * 4), *gy = (float *)malloc(n * 4), *gf = (float *)malloc(n * 4);
  float *gx = (float *)malloc(n * 4), mean[30], rstd[30], gg[96], gb[96], scales[6];
  assert_true(x && f && r && y && gy && gf && gx);
  tu_fill_floats(&rng, x, n, 0);
  tu_fill_floats(&rng, f, n, 0);
  tu_fill_floats(&rng, gy, n, 0);
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.3;
  p.seed = 5;
  dp_norm nm;
  dp_norm_init(&nm);
  nm.mean = mean;
  nm.rstd = rstd;
  assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                   dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), scales),
                   DP_OK);
  assert_int_equal(dp_backward_norm(&p, sh, &nm, dp_tensor_dense(gf, DP_F32, sh), dp_tensor_dense(gx, DP_F32, sh),
                                    dp_tensor_dense(gy, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                    dp_tensor_dense(NULL, DP_F32, sh), NULL, gg, gb, 0),
                   DP_OK);
  for (size_t d = 0; d < 96; d++) {
    double want = 0.0, wb = 0.0, scale = 0.0;
    for (size_t k = 0; k < R; k++) {
      want += (double)gy[k * 96 + d] * (double)y[k * 96 + d]; /* y is xhat without gamma and beta */
      wb += gy[k * 96 + d];
      scale += fabs((double)gy[k * 96 + d] * (double)y[k * 96 + d]);
    }
    assert_true(fabs(gg[d] - want) <= 1e-4 * scale + 1e-30);
    assert_true(fabs(gb[d] - wb) <= 1e-5 * R);
  }
  /* grad_f = s * grad_x, the regenerated mask dropping the same samples */
  for (size_t b = 0; b < 6; b++)
    for (size_t i = 0; i < 5 * 96; i++) assert_true(gf[b * 480 + i] == scales[b] * gx[b * 480 + i] || isnan(gx[b * 480 + i]));
  free(x);
  free(f);
  free(r);
  free(y);
  free(gy);
  free(gf);
  free(gx);
}

/* ---------------------------------------------------------------- the error contract */

/* Every output lives in one arena snapshotted around each bad call. */
#define ARENA_FLOATS 4096
static float *arena;
static unsigned char snapshot[ARENA_FLOATS * 4];

static void expect(dp_status want, dp_status got, const char *what) {
  if (got != want) fail_msg("%s: got %s, want %s", what, dp_status_string(got), dp_status_string(want));
  if (memcmp(snapshot, arena, sizeof snapshot) != 0) fail_msg("%s: an output changed", what);
}

static void test_contract(void **state) {
  (void)state;
  arena = (float *)aligned_alloc(64, sizeof snapshot);
  assert_non_null(arena);
  tu_rng rng = rng_for("contract");
  tu_fill_floats(&rng, arena, ARENA_FLOATS, 0);
  const dp_shape sh = {4, 2, 32};
  /* 256 elements per tensor: y 0, r 256, x 512, f 768, gamma 1024, beta 1056,
   * mean 1088, rstd 1096, scales 1104 */
  float *y = arena, *r = arena + 256, *x = arena + 512, *f = arena + 768;
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.2;
  dp_norm nm;
  dp_norm_init(&nm);
  nm.gamma = arena + 1024;
  nm.beta = arena + 1056;
  nm.mean = arena + 1088;
  nm.rstd = arena + 1096;
  float *scales = arena + 1104;
#define T_(ptr) dp_tensor_dense((ptr), DP_F32, sh)
  /* The valid call writes. */
  memcpy(snapshot, arena, sizeof snapshot);
  assert_int_equal(dp_forward_norm(&p, sh, &nm, T_(y), T_(r), T_(x), T_(f), scales), DP_OK);
  assert_true(memcmp(snapshot, arena, sizeof snapshot) != 0);
  memcpy(snapshot, arena, sizeof snapshot);

  expect(DP_ERR_NULL_POINTER, dp_forward_norm(NULL, sh, &nm, T_(y), T_(r), T_(x), T_(f), scales), "params NULL");
  expect(DP_ERR_NULL_POINTER, dp_forward_norm(&p, sh, NULL, T_(y), T_(r), T_(x), T_(f), scales), "norm NULL");
  expect(DP_ERR_NULL_POINTER, dp_inference_norm(&p, sh, NULL, T_(y), T_(r), T_(x), T_(f)), "inference norm NULL");
  dp_params bad = p;
  bad.drop_prob = 2.0;
  expect(DP_ERR_BAD_PROBABILITY, dp_forward_norm(&bad, sh, NULL, T_(y), T_(r), T_(x), T_(f), scales),
         "params before norm");
  dp_norm bn = nm;
  bn.kind = 2;
  expect(DP_ERR_BAD_ARGUMENT, dp_forward_norm(&p, sh, &bn, T_(y), T_(r), T_(x), T_(f), scales), "kind");
  const float bad_eps[3] = {-1e-5f, NAN, INFINITY};
  for (int i = 0; i < 3; i++) {
    bn = nm;
    bn.eps = bad_eps[i];
    expect(DP_ERR_BAD_ARGUMENT, dp_forward_norm(&p, sh, &bn, T_(y), T_(r), T_(x), T_(f), scales), "eps");
    expect(DP_ERR_BAD_ARGUMENT, dp_inference_norm(&p, sh, &bn, T_(y), T_(r), T_(x), T_(f)), "inference eps");
  }
  expect(DP_ERR_NULL_POINTER, dp_forward_norm(&p, sh, &nm, T_(NULL), T_(r), T_(x), T_(f), scales), "y NULL");
  expect(DP_ERR_NULL_POINTER, dp_forward_norm(&p, sh, &nm, T_(y), T_(r), T_(NULL), T_(f), scales), "x NULL");
  expect(DP_ERR_MISALIGNED,
         dp_forward_norm(&p, sh, &nm, T_(y), T_(r), T_(x), T_((float *)(void *)((char *)f + 2)), scales), "f odd");
  /* dtypes: y has f's type, r has x's. */
  expect(DP_ERR_BAD_DTYPE,
         dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, DP_BF16, sh), T_(r), T_(x), T_(f), scales), "y dtype");
  expect(DP_ERR_BAD_DTYPE,
         dp_forward_norm(&p, sh, &nm, T_(y), dp_tensor_dense(r, DP_F16, sh), T_(x), T_(f), scales), "r dtype");
  expect(DP_ERR_BAD_DTYPE,
         dp_forward_norm(&p, sh, &nm, T_(y), T_(r), dp_tensor_dense(x, DP_BF16, sh), T_(f), scales), "x bf16 f f32");
  /* arrays, in order gamma, beta, mean, rstd, scales */
  bn = nm;
  bn.gamma = (const float *)(const void *)((const char *)nm.gamma + 1);
  bn.rstd = (float *)(void *)((char *)nm.rstd + 2);
  expect(DP_ERR_MISALIGNED, dp_forward_norm(&p, sh, &bn, T_(y), T_(r), T_(x), T_(f), scales), "gamma misaligned");
  /* overlaps: outputs only where the roles allow it */
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &nm, T_(x), T_(r), T_(x), T_(f), scales), "y is x");
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &nm, T_(y), T_(f), T_(x), T_(f), scales), "r is f");
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &nm, T_(y), T_(y), T_(x), T_(f), scales), "r is y");
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &nm, T_(f + 8), T_(r), T_(x), T_(f), scales), "y shifted from f");
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &nm, T_(y), T_(r + 1), T_(r), T_(f), scales), "r shifted from x");
  bn = nm;
  bn.mean = nm.rstd - 4;
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &bn, T_(y), T_(r), T_(x), T_(f), scales), "mean over rstd");
  bn = nm;
  bn.rstd = y + 3;
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &bn, T_(y), T_(r), T_(x), T_(f), scales), "rstd in y");
  bn = nm;
  bn.gamma = nm.beta - 5; /* inputs may overlap each other */
  bn.beta = y + 17;       /* ... but not an output */
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &bn, T_(y), T_(r), T_(x), T_(f), scales), "beta in y");
  expect(DP_ERR_OVERLAP, dp_forward_norm(&p, sh, &nm, T_(y), T_(r), T_(x), T_(f), nm.mean + 1), "scales in mean");
  /* B*T rows that overflow, with D = 0 (no tensor spans them) */
  const dp_shape huge = {SIZE_MAX / 2, 4, 0};
  expect(DP_ERR_SIZE_OVERFLOW,
         dp_inference_norm(&p, huge, &nm, dp_tensor_dense(y, DP_F32, huge), dp_tensor_dense(NULL, DP_F32, huge),
                           dp_tensor_dense(x, DP_F32, huge), dp_tensor_dense(f, DP_F32, huge)),
         "rows overflow");
  /* The backward: grad_f 0, grad_x 256, grad_y 512, r 768, grad_r_in none; grad_gamma 1112, grad_beta 1144. */
  float *gg = arena + 1112, *gb = arena + 1144;
  nm.gamma = arena + 1024;
  assert_int_equal(dp_backward_norm(&p, sh, &nm, T_(y), T_(r), T_(x), T_(f), T_(NULL), NULL, gg, gb, 0), DP_OK);
  memcpy(snapshot, arena, sizeof snapshot);
#define BWD_(n_, gf_, gx_, gy_, rr_, gin_, sc_, gg_, gb_, fl_) \
  dp_backward_norm(&p, sh, (n_), T_(gf_), T_(gx_), T_(gy_), T_(rr_), T_(gin_), (sc_), (gg_), (gb_), (fl_))
  expect(DP_ERR_BAD_FLAGS, BWD_(&nm, y, r, x, f, NULL, NULL, gg, gb, 1u << 3), "backward flags");
  expect(DP_ERR_NULL_POINTER, BWD_(NULL, y, r, x, f, NULL, NULL, gg, gb, 0), "backward norm NULL");
  bn = nm;
  bn.eps = NAN;
  expect(DP_ERR_BAD_ARGUMENT, BWD_(&bn, y, r, x, f, NULL, NULL, gg, gb, 0), "backward eps");
  bn = nm;
  bn.rstd = NULL;
  expect(DP_ERR_NULL_POINTER, BWD_(&bn, y, r, x, f, NULL, NULL, gg, gb, 0), "backward rstd NULL");
  bn = nm;
  bn.mean = NULL;
  expect(DP_ERR_NULL_POINTER, BWD_(&bn, y, r, x, f, NULL, NULL, gg, gb, 0), "backward LayerNorm mean NULL");
  expect(DP_ERR_NULL_POINTER, BWD_(&nm, y, r, NULL, f, NULL, NULL, gg, gb, 0), "backward grad_y NULL");
  expect(DP_ERR_OVERLAP, BWD_(&nm, y, r, x, y, NULL, NULL, gg, gb, 0), "backward r is grad_f");
  expect(DP_ERR_OVERLAP, BWD_(&nm, y, x, x, f, NULL, NULL, gg, gb, 0), "backward grad_x is grad_y");
  expect(DP_ERR_OVERLAP, BWD_(&nm, y, r, x, f, r + 1, NULL, gg, gb, 0), "backward grad_x shifted from grad_r_in");
  expect(DP_ERR_OVERLAP, BWD_(&nm, y, r, x, f, NULL, NULL, y + 1, gb, 0), "backward grad_gamma in grad_f");
  expect(DP_ERR_OVERLAP, BWD_(&nm, y, r, x, f, NULL, NULL, gg, gg + 3, 0), "backward grad_beta over grad_gamma");
  expect(DP_ERR_OVERLAP, BWD_(&nm, y, r, x, f, NULL, gg, gg, gb, 0), "backward scales in grad_gamma");
  expect(DP_ERR_BAD_DTYPE,
         dp_backward_norm(&p, sh, &nm, T_(y), dp_tensor_dense(r, DP_BF16, sh), T_(x), T_(f), T_(NULL), NULL, gg, gb, 0),
         "backward grad_x dtype");
  bn = nm;
  bn.kind = DP_NORM_RMS;
  bn.mean = NULL; /* RMSNorm reads no mean */
  assert_int_equal(BWD_(&bn, y, r, x, f, NULL, NULL, gg, gb, 0), DP_OK);
  memcpy(snapshot, arena, sizeof snapshot);
#undef BWD_
  /* Valid no-ops. */
  const dp_shape empty = {0, 3, 32};
  expect(DP_OK, dp_forward_norm(&p, empty, &nm, T_(NULL), T_(NULL), T_(NULL), T_(NULL), NULL), "B = 0");
#undef T_
  free(arena);
}

/* ---------------------------------------------------------------- golden outputs */

typedef struct golden {
  const char *name;
  int xt, ft, kind, inference, seq_first, r_mode, gamma, beta;
  size_t B, T, D;
  double p;
} golden;

static const golden goldens[] = {
    {"norm_fwd_f32_layer", DP_F32, DP_F32, DP_NORM_LAYER, 0, 0, R_SEPARATE, 1, 1, 7, 3, 77, 0.3},
    {"norm_fwd_f32_rms_seqfirst", DP_F32, DP_F32, DP_NORM_RMS, 0, 1, R_SEPARATE, 1, 0, 5, 4, 48, 0.25},
    {"norm_fwd_bf16_layer_inplace", DP_BF16, DP_BF16, DP_NORM_LAYER, 0, 0, R_IS_X, 1, 1, 6, 2, 100, 0.5},
    {"norm_fwd_f16_rms", DP_F16, DP_F16, DP_NORM_RMS, 0, 0, R_SEPARATE, 0, 0, 6, 2, 33, 0.2},
    {"norm_fwd_f32_bf16_layer", DP_F32, DP_BF16, DP_NORM_LAYER, 0, 0, R_SEPARATE, 1, 1, 4, 3, 768, 0.1},
    {"norm_fwd_f32_f16_layer_long", DP_F32, DP_F16, DP_NORM_LAYER, 0, 0, R_SEPARATE, 1, 1, 2, 1, 5003, 0.4},
    {"norm_infer_f32_noscale", DP_F32, DP_F32, DP_NORM_LAYER, 1, 0, R_ABSENT, 1, 1, 3, 2, 65, 0.2},
    {"norm_infer_bf16_rms", DP_BF16, DP_BF16, DP_NORM_RMS, 1, 1, R_SEPARATE, 1, 0, 4, 3, 129, 0.2},
};
enum { N_GOLDEN = sizeof goldens / sizeof goldens[0] };

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
  return h;
}

/* Inputs as raw bits, every class included (NaN payloads, inf, subnormals). */
static void golden_fill(tu_rng *r, unsigned char *p, size_t n, int dtype) {
  if (dtype == DP_F32) {
    float *v = (float *)malloc(n * 4);
    assert_non_null(v);
    tu_fill_floats(r, v, n, 1);
    memcpy(p, v, n * 4);
    free(v);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint16_t v = (uint16_t)tu_next(r);
    if (tu_next(r) & 31) v = (uint16_t)((v & 0x83ffu) | (dtype == DP_BF16 ? 0x3c00u : 0x3800u));
    memcpy(p + 2 * i, &v, 2);
  }
}

/* The backward of a golden forward case, from that forward's outputs. */
static const char *const golden_bwd_names[] = {"norm_bwd_f32_layer", "norm_bwd_f32_rms_seqfirst", "norm_bwd_bf16_layer_inplace",
                                              "norm_bwd_f16_rms", "norm_bwd_f32_bf16_layer", "norm_bwd_f32_f16_layer_long"};
enum { N_GOLDEN_BWD = sizeof golden_bwd_names / sizeof golden_bwd_names[0] };

static uint64_t golden_run(const golden *g, int backward) {
  const dp_shape sh = {g->B, g->T, g->D};
  const size_t n = g->B * g->T * g->D, R = g->B * g->T;
  tu_rng rng;
  tu_rng_init(&rng, 0x4E0A0000u + (uint64_t)(g - goldens));
  unsigned char *x = (unsigned char *)malloc(n * 4), *f = (unsigned char *)malloc(n * 4);
  unsigned char *y = (unsigned char *)calloc(n, 4), *r = (unsigned char *)calloc(n, 4);
  float *gamma = (float *)malloc(g->D * 4), *beta = (float *)malloc(g->D * 4), *mean = (float *)calloc(R, 4);
  float *rstd = (float *)calloc(R, 4), *scales = (float *)calloc(g->B, 4);
  assert_true(x && f && y && r && gamma && beta && mean && rstd && scales);
  golden_fill(&rng, x, n, g->xt);
  golden_fill(&rng, f, n, g->ft);
  tu_fill_floats(&rng, gamma, g->D, 0);
  tu_fill_floats(&rng, beta, g->D, 0);
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = g->p;
  p.seed = 0x0123456789abcdefull;
  p.offset = 42;
  p.sample_base = 1000;
  p.scale_by_keep = !g->inference;
  dp_norm nm;
  dp_norm_init(&nm);
  nm.kind = g->kind;
  nm.gamma = g->gamma ? gamma : NULL;
  nm.beta = g->beta ? beta : NULL;
  nm.mean = mean;
  nm.rstd = rstd;
  dp_tensor (*view_fn)(void *, dp_dtype, dp_shape) = g->seq_first ? dp_tensor_seq_first : dp_tensor_dense;
  const dp_tensor ty = view_fn(y, (dp_dtype)g->ft, sh), tx = view_fn(x, (dp_dtype)g->xt, sh);
  const dp_tensor tf = view_fn(f, (dp_dtype)g->ft, sh);
  const dp_tensor tr = view_fn(g->r_mode == R_IS_X ? x : g->r_mode == R_ABSENT ? NULL : r, (dp_dtype)g->xt, sh);
  const dp_status st = g->inference ? dp_inference_norm(&p, sh, &nm, ty, tr, tx, tf)
                                    : dp_forward_norm(&p, sh, &nm, ty, tr, tx, tf, scales);
  assert_int_equal(st, DP_OK);
  uint64_t h = 0xcbf29ce484222325ull;
  if (backward) {
    /* grad_y: fresh values over y (y is grad_f's buffer); grad_r_in over x, accumulated in place. */
    unsigned char *gx = g->r_mode == R_IS_X ? (unsigned char *)calloc(n, 4) : x;
    float *gg = (float *)calloc(g->D, 4), *gb = (float *)calloc(g->D, 4);
    assert_true(gx && gg && gb);
    golden_fill(&rng, y, n, g->ft);
    const dp_tensor tr2 = view_fn(g->r_mode == R_IS_X ? x : r, (dp_dtype)g->xt, sh);
    const dp_tensor tgx = view_fn(gx, (dp_dtype)g->xt, sh);
    assert_int_equal(dp_backward_norm(&p, sh, &nm, ty, tgx, ty, tr2, g->r_mode == R_IS_X ? view_fn(NULL, (dp_dtype)g->xt, sh) : tgx,
                                      NULL, gg, gb, DP_BWD_ACCUMULATE_GRAD_X),
                     DP_OK);
    h = fnv1a(fnv1a(fnv1a(fnv1a(h, y, n * tu_dtype_size(g->ft)), gx, n * tu_dtype_size(g->xt)), gg, g->D * 4), gb,
              g->D * 4);
    if (gx != x) free(gx);
    free(gg);
    free(gb);
  }
  h = fnv1a(h, y, n * tu_dtype_size(g->ft));
  h = fnv1a(h, g->r_mode == R_IS_X ? x : r, n * tu_dtype_size(g->xt));
  h = fnv1a(fnv1a(fnv1a(h, mean, R * 4), rstd, R * 4), scales, g->B * 4);
  free(x);
  free(f);
  free(y);
  free(r);
  free(gamma);
  free(beta);
  free(mean);
  free(rstd);
  free(scales);
  return h;
}

static void test_golden(void **state) {
  (void)state;
  const char *write_path = getenv("DP_GOLDEN_WRITE_NORM");
  if (write_path) {
    FILE *fp = fopen(write_path, "w");
    assert_non_null(fp);
    fprintf(fp, "# FNV-1a 64 of every output of tests/test_norm.c's golden cases (name hash).\n"
                "# Same on every ISA and architecture; regenerate with DP_GOLDEN_WRITE_NORM=<this file>.\n");
    for (int i = 0; i < N_GOLDEN; i++) fprintf(fp, "%s %016llx\n", goldens[i].name, (unsigned long long)golden_run(&goldens[i], 0));
    for (int i = 0; i < N_GOLDEN_BWD; i++)
      fprintf(fp, "%s %016llx\n", golden_bwd_names[i], (unsigned long long)golden_run(&goldens[i], 1));
    fclose(fp);
    return;
  }
  uint64_t want[N_GOLDEN + N_GOLDEN_BWD];
  int found = 0;
  FILE *fp = fopen(DP_TEST_DATA_DIR "/norm_outputs.txt", "r");
  assert_non_null(fp);
  char line[256], name[128];
  unsigned long long v;
  while (fgets(line, sizeof line, fp))
    if (line[0] != '#' && sscanf(line, "%127s %llx", name, &v) == 2)
      for (int i = 0; i < N_GOLDEN + N_GOLDEN_BWD; i++)
        if (strcmp(name, i < N_GOLDEN ? goldens[i].name : golden_bwd_names[i - N_GOLDEN]) == 0) want[i] = v, found++;
  fclose(fp);
  assert_int_equal(found, N_GOLDEN + N_GOLDEN_BWD);
  int failures = 0, isas = 0;
  FOR_EACH_ISA(isa) {
    isas++;
    for (int i = 0; i < N_GOLDEN + N_GOLDEN_BWD; i++) {
      const int bwd = i >= N_GOLDEN;
      const uint64_t got = golden_run(&goldens[bwd ? i - N_GOLDEN : i], bwd);
      if (got != want[i]) {
        fprintf(stderr, "golden mismatch: %s on %s: got %016llx want %016llx\n",
                bwd ? golden_bwd_names[i - N_GOLDEN] : goldens[i].name,
                dp_isa_name((dp_isa)isa), (unsigned long long)got, (unsigned long long)want[i]);
        failures++;
      }
    }
  }
  widest_isa();
  fprintf(stderr, "[ golden   ] %d norm cases x %d ISAs checked\n", N_GOLDEN + N_GOLDEN_BWD, isas);
  assert_true(isas > 0);
  assert_int_equal(failures, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_matches_reference), cmocka_unit_test(test_inference_matches_reference),
      cmocka_unit_test(test_threads_same_bits),         cmocka_unit_test(test_dropped_never_read),
      cmocka_unit_test(test_inference_r_optional),      cmocka_unit_test(test_accuracy_bound),
      cmocka_unit_test(test_backward_matches_reference), cmocka_unit_test(test_backward_threads_same_bits),
      cmocka_unit_test(test_backward_after_forward),
      cmocka_unit_test(test_contract),                  cmocka_unit_test(test_golden),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
