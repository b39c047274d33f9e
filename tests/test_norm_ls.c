/*
 * LayerScale in the fused residual + norm (dp_norm.ls_gamma):
 *   - forward: r bit for bit dp_forward_ls's (same params, same mask), y,
 *     mean and rstd those of the norm of that r (dp_forward_norm with every
 *     sample dropped: y = norm(x)); inference likewise against
 *     dp_inference_add_ls, with and without scale_by_keep;
 *   - backward: grad_x the grad_r of the call without ls_gamma, grad_f that
 *     grad_r pushed through dp_backward_ls, and dp_backward_norm_ls's
 *     grad_ls_gamma dp_backward_ls's grad_gamma on it (bit for bit, set and
 *     accumulated); the subset forms likewise, with and without grad_r_in;
 *   - every ISA, 1 and 2 threads; halves: every ISA the scalar ISA's bits,
 *     and ls_gamma of ones the bits of no ls_gamma;
 *   - the contract: ls_gamma misaligned or overlapping an output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "droppath/droppath.h"
#include "test_util.h"

#define FOR_EACH_ISA(isa)                                                                   \
  for (int isa = 0; isa < DP_ISA_COUNT; isa++)                                              \
    if (dp_isa_supported((dp_isa)isa) && dp_set_max_isa((dp_isa)isa) == DP_OK &&           \
        dp_active_isa() == (dp_isa)isa)

static void widest_isa(void) {
  for (int isa = DP_ISA_COUNT - 1; isa >= 0; isa--)
    if (dp_isa_supported((dp_isa)isa) && dp_set_max_isa((dp_isa)isa) == DP_OK) break;
}

static float *floats(tu_rng *rng, size_t n, int specials) {
  float *p = (float *)malloc((n ? n : 1) * sizeof(float));
  assert_non_null(p);
  tu_fill_floats(rng, p, n, specials);
  return p;
}

static float *zeros(size_t n) {
  float *p = (float *)calloc(n ? n : 1, sizeof(float));
  assert_non_null(p);
  return p;
}

static dp_params params_of(double drop, uint64_t seed, int threads) {
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = drop;
  p.seed = seed;
  p.num_threads = threads;
  return p;
}

/* Shapes with row tails (D not a multiple of 16) and one longer than the
 * norm's stack scratch (4096: the later passes recompute r). */
static const dp_shape shapes[] = {{5, 3, 37}, {4, 2, 96}, {3, 5, 768}, {2, 1, 4100}, {9, 1, 1}};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static size_t elems(dp_shape s) { return s.batch * s.seq * s.dim; }

/* ---------------------------------------------------------------- forward */

static void check_forward(dp_shape sh, int rms, int threads, tu_rng *rng) {
  const size_t n = elems(sh), R = sh.batch * sh.seq, D = sh.dim;
  float *x = floats(rng, n, 0), *f = floats(rng, n, 0), *ls = floats(rng, D, 0), *gamma = floats(rng, D, 0);
  float *r1 = zeros(n), *y1 = zeros(n), *m1 = zeros(R), *s1 = zeros(R), *r2 = zeros(n), *y2 = zeros(n),
        *m2 = zeros(R), *s2 = zeros(R), *sc1 = zeros(sh.batch), *sc2 = zeros(sh.batch);
  const dp_params p = params_of(0.4, tu_next(rng), threads), all = params_of(1.0, 1, threads);
  dp_norm nm;
  dp_norm_init(&nm);
  assert_null(nm.ls_gamma);
  nm.kind = rms ? DP_NORM_RMS : DP_NORM_LAYER;
  nm.gamma = gamma;
  nm.ls_gamma = ls;
  nm.mean = m1;
  nm.rstd = s1;
  assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y1, DP_F32, sh), dp_tensor_dense(r1, DP_F32, sh),
                                   dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), sc1),
                   DP_OK);
  assert_int_equal(dp_forward_ls(&p, sh, dp_tensor_dense(r2, DP_F32, sh), dp_tensor_dense(x, DP_F32, sh),
                                 dp_tensor_dense(f, DP_F32, sh), ls, sc2),
                   DP_OK);
  assert_memory_equal(sc1, sc2, sh.batch * 4);
  assert_memory_equal(r1, r2, n * 4);
  /* The norm of that r: every sample dropped, so r = x and y = norm(x). */
  nm.ls_gamma = NULL;
  nm.mean = m2;
  nm.rstd = s2;
  assert_int_equal(dp_forward_norm(&all, sh, &nm, dp_tensor_dense(y2, DP_F32, sh), dp_tensor_dense(NULL, DP_F32, sh),
                                   dp_tensor_dense(r2, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), NULL),
                   DP_OK);
  assert_memory_equal(y1, y2, n * 4);
  assert_memory_equal(s1, s2, R * 4);
  if (!rms) assert_memory_equal(m1, m2, R * 4);

  /* Inference, r not written (y the same bits), against dp_inference_add_ls. */
  for (int by_keep = 0; by_keep < 2; by_keep++) {
    dp_params q = params_of(0.25, 0, threads);
    q.scale_by_keep = by_keep;
    nm.ls_gamma = ls;
    nm.mean = nm.rstd = NULL;
    assert_int_equal(dp_inference_norm(&q, sh, &nm, dp_tensor_dense(y1, DP_F32, sh), dp_tensor_dense(NULL, DP_F32, sh),
                                       dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh)),
                     DP_OK);
    assert_int_equal(dp_inference_add_ls(&q, sh, dp_tensor_dense(r2, DP_F32, sh), dp_tensor_dense(x, DP_F32, sh),
                                         dp_tensor_dense(f, DP_F32, sh), ls),
                     DP_OK);
    nm.ls_gamma = NULL;
    assert_int_equal(dp_forward_norm(&all, sh, &nm, dp_tensor_dense(y2, DP_F32, sh),
                                     dp_tensor_dense(NULL, DP_F32, sh), dp_tensor_dense(r2, DP_F32, sh),
                                     dp_tensor_dense(f, DP_F32, sh), NULL),
                     DP_OK);
    assert_memory_equal(y1, y2, n * 4);
  }
  free(x), free(f), free(ls), free(gamma), free(r1), free(y1), free(m1), free(s1), free(r2), free(y2), free(m2);
  free(s2), free(sc1), free(sc2);
}

static void test_forward_is_ls_then_norm(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x6e6c7331u);
  FOR_EACH_ISA(isa) {
    for (size_t i = 0; i < NSHAPES; i++)
      for (int rms = 0; rms < 2; rms++)
        for (int threads = 1; threads <= 2; threads++) check_forward(shapes[i], rms, threads, &rng);
  }
  widest_isa();
}

/* ---------------------------------------------------------------- backward */

/* grad_x with ls_gamma is grad_r of the call without it; grad_f and
 * grad_ls_gamma those of that grad_r through dp_backward_ls (same scales).
 * sub: the subset form, y's gradient on the samples {0, 2, 4, ...} only;
 * no_gin: without grad_r_in (grad_r +0 outside the subset). */
static void check_backward(dp_shape sh, int rms, int threads, int sub, int no_gin, tu_rng *rng) {
  const size_t n = elems(sh), R = sh.batch * sh.seq, D = sh.dim;
  size_t idx[16], kept = 0;
  for (size_t b = 0; b < sh.batch; b += 2) idx[kept++] = b;
  const dp_shape ysh = {sub ? kept : sh.batch, sh.seq, sh.dim};
  float *x = floats(rng, n, 0), *f = floats(rng, n, 0), *ls = floats(rng, D, 0), *gamma = floats(rng, D, 0);
  float *gy = floats(rng, elems(ysh), 0), *gin = floats(rng, n, 0);
  float *r = zeros(n), *y = zeros(n), *mean = zeros(R), *rstd = zeros(R), *sc = zeros(sh.batch);
  float *gf1 = zeros(n), *gx1 = zeros(n), *gr = zeros(n), *gf0 = zeros(n), *gf2 = zeros(n);
  float *gg1 = zeros(D), *gb1 = zeros(D), *gg0 = zeros(D), *gb0 = zeros(D), *gl1 = zeros(D), *gl2 = zeros(D);
  const dp_params p = params_of(0.4, tu_next(rng), threads);
  dp_norm nm;
  dp_norm_init(&nm);
  nm.kind = rms ? DP_NORM_RMS : DP_NORM_LAYER;
  nm.gamma = gamma;
  nm.ls_gamma = ls;
  nm.mean = mean;
  nm.rstd = rstd;
  assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                   dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), sc),
                   DP_OK);
  const dp_tensor tr = dp_tensor_dense(r, DP_F32, sh), tgy = dp_tensor_dense(gy, DP_F32, ysh),
                  tgin = dp_tensor_dense(no_gin ? NULL : gin, DP_F32, sh), tf = dp_tensor_dense(f, DP_F32, sh);
  for (int pass = 0; pass < 2; pass++) { /* 0: with ls_gamma (and its gradient), 1: without */
    nm.ls_gamma = pass ? NULL : ls;
    float *gf = pass ? gf0 : gf1, *gx = pass ? gr : gx1, *gg = pass ? gg0 : gg1, *gb = pass ? gb0 : gb1;
    const dp_tensor tgf = dp_tensor_dense(gf, DP_F32, sh), tgx = dp_tensor_dense(gx, DP_F32, sh);
    dp_status st;
    if (pass)
      st = sub ? dp_backward_norm_subset(&p, sh, &nm, tgf, tgx, tgy, tr, tgin, kept, idx, sc, gg, gb, 0)
               : dp_backward_norm(&p, sh, &nm, tgf, tgx, tgy, tr, tgin, sc, gg, gb, 0);
    else
      st = sub ? dp_backward_norm_subset_ls(&p, sh, &nm, tgf, tgx, tgy, tr, tgin, tf, kept, idx, sc, gg, gb, gl1, 0)
               : dp_backward_norm_ls(&p, sh, &nm, tgf, tgx, tgy, tr, tgin, tf, sc, gg, gb, gl1, 0);
    assert_int_equal(st, DP_OK);
  }
  assert_memory_equal(gx1, gr, n * 4);
  assert_memory_equal(gg1, gg0, D * 4); /* the norm's own parameters do not see ls_gamma */
  assert_memory_equal(gb1, gb0, D * 4);
  assert_int_equal(dp_backward_ls(&p, sh, dp_tensor_dense(gf2, DP_F32, sh), dp_tensor_dense(NULL, DP_F32, sh),
                                  dp_tensor_dense(gr, DP_F32, sh), tf, ls, gl2, sc, 0),
                   DP_OK);
  if (no_gin) /* grad_r is +0 outside the subset: grad_f +0 there, dp_backward_ls's (+0*s)*ls a zero of ls's sign */
    for (size_t i = 0; i < n; i++) assert_true(gf1[i] == gf2[i]);
  else
    assert_memory_equal(gf1, gf2, n * 4);
  assert_memory_equal(gl1, gl2, D * 4);
  /* Accumulating every parameter gradient: grad_ls_gamma + the sum, as dp_backward_ls's. */
  nm.ls_gamma = ls;
  {
    const dp_tensor tgf = dp_tensor_dense(gf1, DP_F32, sh), tnone = dp_tensor_dense(NULL, DP_F32, sh);
    const uint32_t fl = DP_NORM_ACCUMULATE_GRAD_PARAMS;
    assert_int_equal(sub ? dp_backward_norm_subset_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tgin, tf, kept, idx, sc, gg1,
                                                      NULL, gl1, fl)
                         : dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tgin, tf, sc, gg1, NULL, gl1, fl),
                     DP_OK);
    assert_int_equal(dp_backward_ls(&p, sh, dp_tensor_dense(gf2, DP_F32, sh), tnone, dp_tensor_dense(gr, DP_F32, sh),
                                    tf, ls, gl2, sc, DP_BWD_ACCUMULATE_GRAD_GAMMA),
                     DP_OK);
    assert_memory_equal(gl1, gl2, D * 4);
  }

  /* Accumulating grad_f: gf + (s*grad_r)*ls, as dp_backward_ls's. */
  nm.ls_gamma = ls;
  memcpy(gf2, gin, n * 4);
  memcpy(gf1, gin, n * 4);
  assert_int_equal(sub ? dp_backward_norm_subset(&p, sh, &nm, dp_tensor_dense(gf1, DP_F32, sh),
                                                 dp_tensor_dense(NULL, DP_F32, sh), tgy, tr, tgin, kept, idx, sc,
                                                 NULL, NULL, DP_BWD_ACCUMULATE_GRAD_F)
                       : dp_backward_norm(&p, sh, &nm, dp_tensor_dense(gf1, DP_F32, sh),
                                          dp_tensor_dense(NULL, DP_F32, sh), tgy, tr, tgin, sc, NULL, NULL,
                                          DP_BWD_ACCUMULATE_GRAD_F),
                   DP_OK);
  assert_int_equal(dp_backward_ls(&p, sh, dp_tensor_dense(gf2, DP_F32, sh), dp_tensor_dense(NULL, DP_F32, sh),
                                  dp_tensor_dense(gr, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), ls, NULL, sc,
                                  DP_BWD_ACCUMULATE_GRAD_F),
                   DP_OK);
  assert_memory_equal(gf1, gf2, n * 4);
  free(x), free(f), free(ls), free(gamma), free(gy), free(gin), free(r), free(y), free(mean), free(rstd), free(sc);
  free(gf1), free(gx1), free(gr), free(gf0), free(gf2), free(gg1), free(gb1), free(gg0), free(gb0), free(gl1), free(gl2);
}

static void test_backward_is_norm_then_ls(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x6e6c7332u);
  FOR_EACH_ISA(isa) {
    for (size_t i = 0; i < NSHAPES; i++)
      for (int v = 0; v < 12; v++) check_backward(shapes[i], v & 1, 1 + ((v >> 1) & 1), v >> 2 != 0, v >> 3, &rng);
  }
  widest_isa();
}

/* ---------------------------------------------------------------- halves */

/* Finite half values of magnitude about 2^-5 .. 4. */
static void fill_half(tu_rng *rng, uint16_t *p, size_t n, int dtype) {
  for (size_t i = 0; i < n; i++) {
    const uint32_t u = (uint32_t)tu_next(rng);
    p[i] = dtype == DP_BF16 ? (uint16_t)((u & 0x807fu) | (uint32_t)(122 + (u >> 16) % 8) << 7)
                            : (uint16_t)((u & 0x83ffu) | (uint32_t)(10 + (u >> 16) % 8) << 10);
  }
}

/* Bytes of n elements of dtype t, padded so that the next segment is aligned. */
static size_t seg_bytes(int t, size_t n) { return (tu_dtype_size(t) * n + 3) & ~(size_t)3; }

/* Forward and backward of one (X, F) combination with ls_gamma: outputs
 * into out (y, r, grad_f, grad_x one after another, zero padding between,
 * then grad_ls_gamma's D floats when ls is given, checked there against
 * dp_backward_ls's grad_gamma on the grad_r the call gave). */
static void run_combo(dp_shape sh, int tx, int tf, const void *x, const void *f, const void *gy, const float *ls,
                      const float *gamma, unsigned char *out) {
  const size_t n = elems(sh), R = sh.batch * sh.seq, ex = seg_bytes(tx, n), ef = seg_bytes(tf, n);
  float *mean = zeros(R), *rstd = zeros(R);
  const dp_params p = params_of(0.4, 1234, 2);
  dp_norm nm;
  dp_norm_init(&nm);
  nm.gamma = gamma;
  nm.ls_gamma = ls;
  nm.mean = mean;
  nm.rstd = rstd;
  unsigned char *y = out, *r = out + ef, *gf = r + ex, *gx = gf + ef;
  assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, (dp_dtype)tf, sh),
                                   dp_tensor_dense(r, (dp_dtype)tx, sh), dp_tensor_dense((void *)x, (dp_dtype)tx, sh),
                                   dp_tensor_dense((void *)f, (dp_dtype)tf, sh), NULL),
                   DP_OK);
  float *gl = ls ? (float *)(void *)(gx + ex) : NULL, *gl2 = zeros(sh.dim);
  const dp_tensor tfv = dp_tensor_dense((void *)f, (dp_dtype)tf, sh);
  assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, dp_tensor_dense(gf, (dp_dtype)tf, sh),
                                       dp_tensor_dense(gx, (dp_dtype)tx, sh),
                                       dp_tensor_dense((void *)gy, (dp_dtype)tf, sh),
                                       dp_tensor_dense(r, (dp_dtype)tx, sh), dp_tensor_dense(NULL, (dp_dtype)tx, sh),
                                       tfv, NULL, NULL, NULL, gl, 0),
                   DP_OK);
  if (ls) {
    unsigned char *gf2 = (unsigned char *)malloc(ef);
    assert_non_null(gf2);
    assert_int_equal(dp_backward_ls(&p, sh, dp_tensor_dense(gf2, (dp_dtype)tf, sh),
                                    dp_tensor_dense(NULL, (dp_dtype)tx, sh), dp_tensor_dense(gx, (dp_dtype)tx, sh), tfv,
                                    ls, gl2, NULL, 0),
                     DP_OK);
    assert_memory_equal(gl, gl2, sh.dim * 4);
    free(gf2);
  }
  free(mean), free(rstd), free(gl2);
}

static void test_halves_same_bits_everywhere(void **state) {
  (void)state;
  static const int combos[][2] = {{DP_BF16, DP_BF16}, {DP_F16, DP_F16}, {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x6e6c7333u);
  for (size_t c = 0; c < 4; c++)
    for (size_t i = 0; i < NSHAPES; i++) {
      const dp_shape sh = shapes[i];
      const int tx = combos[c][0], tf = combos[c][1];
      const size_t n = elems(sh), part = 2 * (seg_bytes(tx, n) + seg_bytes(tf, n)), bytes = part + 4 * sh.dim;
      void *x = malloc(n * tu_dtype_size(tx)), *f = malloc(n * 2), *gy = malloc(n * 2);
      unsigned char *want = (unsigned char *)malloc(bytes), *got = (unsigned char *)malloc(bytes),
                    *plain = (unsigned char *)malloc(bytes);
      float *ls = floats(&rng, sh.dim, 0), *ones = zeros(sh.dim), *gamma = floats(&rng, sh.dim, 0);
      assert_true(x && f && gy && want && got && plain);
      for (size_t d = 0; d < sh.dim; d++) ones[d] = 1.0f;
      if (tx == DP_F32) tu_fill_floats(&rng, (float *)x, n, 0);
      else fill_half(&rng, (uint16_t *)x, n, tx);
      fill_half(&rng, (uint16_t *)f, n, tf);
      fill_half(&rng, (uint16_t *)gy, n, tf);
      memset(want, 0, bytes);
      memset(plain, 0, bytes);
      assert_int_equal(dp_set_max_isa(DP_ISA_SCALAR), DP_OK);
      run_combo(sh, tx, tf, x, f, gy, ls, gamma, want);
      run_combo(sh, tx, tf, x, f, gy, NULL, gamma, plain);
      FOR_EACH_ISA(isa) {
        memset(got, 0, bytes);
        run_combo(sh, tx, tf, x, f, gy, ls, gamma, got);
        assert_memory_equal(got, want, bytes);
        /* A LayerScale of ones is no LayerScale: 1*f is f exactly. */
        memset(got, 0, bytes);
        run_combo(sh, tx, tf, x, f, gy, ones, gamma, got);
        assert_memory_equal(got, plain, part); /* grad_ls_gamma: only with ls_gamma */
      }
      widest_isa();
      assert_memory_not_equal(want, plain, bytes); /* ls_gamma is applied at all */
      free(x), free(f), free(gy), free(want), free(got), free(plain), free(ls), free(ones), free(gamma);
    }
}

/* ---------------------------------------------------------------- contract */

static void test_contract(void **state) {
  (void)state;
  const dp_shape sh = {2, 3, 8};
  const size_t n = 48;
  tu_rng rng;
  tu_rng_init(&rng, 7);
  float *x = floats(&rng, n, 0), *f = floats(&rng, n, 0), *y = zeros(n), *r = zeros(n), *ls = floats(&rng, 9, 0);
  float *mean = zeros(6), *rstd = zeros(6), *gf = zeros(n), *gy = floats(&rng, n, 0);
  uint16_t *hx = (uint16_t *)calloc(n, 2), *hf = (uint16_t *)calloc(n, 2);
  assert_true(hx && hf);
  const dp_params p = params_of(0.3, 5, 1);
  dp_norm nm;
  dp_norm_init(&nm);
  nm.mean = mean;
  nm.rstd = rstd;
  nm.ls_gamma = (const float *)(const void *)((const char *)ls + 2);
  assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                   dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), NULL),
                   DP_ERR_MISALIGNED);
  assert_int_equal(dp_backward_norm(&p, sh, &nm, dp_tensor_dense(gf, DP_F32, sh), dp_tensor_dense(NULL, DP_F32, sh),
                                    dp_tensor_dense(gy, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                    dp_tensor_dense(NULL, DP_F32, sh), NULL, NULL, NULL, 0),
                   DP_ERR_MISALIGNED);
  /* ls_gamma is an input: an output over it is an overlap. */
  nm.ls_gamma = y + 4;
  assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                   dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), NULL),
                   DP_ERR_OVERLAP);
  nm.ls_gamma = mean;
  assert_int_equal(dp_forward_norm(&p, sh, &nm, dp_tensor_dense(y, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                   dp_tensor_dense(x, DP_F32, sh), dp_tensor_dense(f, DP_F32, sh), NULL),
                   DP_ERR_OVERLAP);
  nm.ls_gamma = gf + 8;
  assert_int_equal(dp_backward_norm(&p, sh, &nm, dp_tensor_dense(gf, DP_F32, sh), dp_tensor_dense(NULL, DP_F32, sh),
                                    dp_tensor_dense(gy, DP_F32, sh), dp_tensor_dense(r, DP_F32, sh),
                                    dp_tensor_dense(NULL, DP_F32, sh), NULL, NULL, NULL, 0),
                   DP_ERR_OVERLAP);
  /* grad_ls_gamma: needs ls_gamma (BAD_ARGUMENT, after the norm) and f; overlaps nothing. */
  {
    float *gl = zeros(8);
    const dp_tensor tgf = dp_tensor_dense(gf, DP_F32, sh), tnone = dp_tensor_dense(NULL, DP_F32, sh),
                    tgy = dp_tensor_dense(gy, DP_F32, sh), tr = dp_tensor_dense(r, DP_F32, sh),
                    tf = dp_tensor_dense(f, DP_F32, sh);
    nm.ls_gamma = NULL;
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tnone, tf, NULL, NULL, NULL, gl, 0),
                     DP_ERR_BAD_ARGUMENT);
    assert_int_equal(dp_backward_norm_ls(&p, sh, NULL, tgf, tnone, tgy, tr, tnone, tf, NULL, NULL, NULL, gl, 0),
                     DP_ERR_NULL_POINTER);
    nm.ls_gamma = ls;
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tnone, tnone, NULL, NULL, NULL, gl, 0),
                     DP_ERR_NULL_POINTER);
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tnone, tf, NULL, NULL, NULL, gf + 3, 0),
                     DP_ERR_OVERLAP);
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tnone, tf, NULL, NULL, NULL, f + 3, 0),
                     DP_ERR_OVERLAP);
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tnone, tf, NULL, NULL, NULL, ls, 0),
                     DP_ERR_OVERLAP);
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tnone, tf, NULL, gl, gl + 4, NULL, 0),
                     DP_ERR_OVERLAP);
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tgf, tnone, tgy, tr, tnone,
                                         dp_tensor_dense(hf, DP_BF16, sh), NULL, NULL, NULL, gl, 0),
                     DP_ERR_BAD_DTYPE);
    /* grad_f may be f itself; any other overlap of f with an output is refused. */
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, tf, tnone, tgy, tr, tnone, tf, NULL, NULL, NULL, gl, 0), DP_OK);
    float *big = zeros(n + 1);
    assert_int_equal(dp_backward_norm_ls(&p, sh, &nm, dp_tensor_dense(big + 1, DP_F32, sh), tnone, tgy, tr, tnone,
                                         dp_tensor_dense(big, DP_F32, sh), NULL, NULL, NULL, gl, 0),
                     DP_ERR_OVERLAP);
    free(gl), free(big);
  }
  /* The subset backward's rows outside the subset use dp_backward_ls's kernels, which
   * every dtype combination has: a bf16 call runs. */
  nm.ls_gamma = ls;
  const size_t idx[1] = {1};
  const dp_shape ksh = {1, 3, 8};
  assert_int_equal(dp_backward_norm_subset(&p, sh, &nm, dp_tensor_dense(hf, DP_BF16, sh),
                                           dp_tensor_dense(NULL, DP_BF16, sh), dp_tensor_dense(gy, DP_BF16, ksh),
                                           dp_tensor_dense(hx, DP_BF16, sh), dp_tensor_dense(NULL, DP_BF16, sh), 1,
                                           idx, NULL, NULL, NULL, 0),
                   DP_OK);
  free(x), free(f), free(y), free(r), free(ls), free(mean), free(rstd), free(gf), free(gy), free(hx), free(hf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_is_ls_then_norm),
      cmocka_unit_test(test_backward_is_norm_then_ls),
      cmocka_unit_test(test_halves_same_bits_everywhere),
      cmocka_unit_test(test_contract),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
