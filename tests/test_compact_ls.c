/*
 * Sample compaction with LayerScale (dp_compact_forward_ls,
 * dp_compact_backward_ls): on every ISA, dtype combination (each has
 * LayerScale kernels: every call must succeed), layout, mode (row, batch, exact-k), drop probability, thread count and
 * flag, in place and not, the compacted path gives the bits of the dense one
 * (dp_forward_ls, dp_backward_ls), grad_gamma included, when the branch acts
 * on each sample alone; nothing is written outside the outputs' rows. Then
 * shapes with many reduction groups on 1 to 4 threads, gamma NULL, and the
 * error contract.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compact_util.h"
#include "droppath/droppath.h"
#include "test_util.h"

static size_t iters(size_t n) { return getenv("DP_TEST_QUICK") ? n / 4 + 1 : n; }

static float *floats_make(tu_rng *rng, size_t n, int specials) {
  float *p = malloc((n + 1) * sizeof(float));
  assert_non_null(p);
  tu_fill_floats(rng, p, n, specials);
  return p;
}

static float *floats_clone(const float *a, size_t n) {
  float *p = malloc((n + 1) * sizeof(float));
  assert_non_null(p);
  memcpy(p, a, n * sizeof(float));
  return p;
}

/* Puts the rows of compact `got` into a copy of its initial buffer `init`
 * and compares: bytes outside the rows (padding, guards) must be untouched. */
static void assert_only_rows_written(const ct_tensor *got, const ct_tensor *init, size_t k, size_t T, size_t D,
                                     const char *what) {
  ct_tensor want = ct_clone(init);
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++) memcpy(ct_row(&want, i, t), ct_row(got, i, t), D * got->es);
  ct_assert_same_buffer(got, &want, what);
  ct_free(&want);
}

/* ---------------------------------------------------------------- forward */

static void forward_case(tu_rng *rng, const ct_case *c, const float *gamma, const char *what) {
  const size_t B = c->shape.batch, T = ct_seq_of(&c->shape), D = c->shape.dim, k = c->k;
  ct_tensor x = ct_alloc(rng, c->xt, B, T, D), f = ct_alloc(rng, c->ft, B, T, D);
  if (tu_range(rng, 0, 1)) {
    ct_fill_moderate(&x, rng);
    ct_fill_moderate(&f, rng);
  }
  ct_tensor fk = ct_alloc(rng, c->ft, k, T, D);
  ct_copy_rows(&fk, &f, c->idx, k, T, D); /* the branch's output on the kept samples */

  ct_tensor out_d = ct_alloc(rng, c->xt, B, T, D), out_c = ct_clone(&out_d), out0 = ct_clone(&out_d);
  const dp_status sd = dp_forward_ls(&c->p, c->shape, out_d.t, x.t, f.t, gamma, NULL);
  assert_int_equal(dp_compact_forward_ls(&c->p, c->shape, out_c.t, x.t, fk.t, gamma, k, c->idx), sd);
  assert_int_equal(sd, DP_OK); /* every dtype combination has LayerScale kernels */
  ct_assert_same_buffer(&out_c, &out_d, what);

  /* in place: out == x */
  ct_tensor xd = ct_clone(&x), xc = ct_clone(&x);
  assert_int_equal(dp_forward_ls(&c->p, c->shape, xd.t, xd.t, f.t, gamma, NULL), sd);
  assert_int_equal(dp_compact_forward_ls(&c->p, c->shape, xc.t, xc.t, fk.t, gamma, k, c->idx), sd);
  ct_assert_same_buffer(&xc, &xd, what);

  /* gamma NULL: dp_compact_forward itself */
  ct_tensor n1 = ct_clone(&out0), n2 = ct_clone(&out0);
  const dp_status sp = dp_compact_forward(&c->p, c->shape, n1.t, x.t, fk.t, k, c->idx);
  assert_int_equal(dp_compact_forward_ls(&c->p, c->shape, n2.t, x.t, fk.t, NULL, k, c->idx), sp);
  ct_assert_same_buffer(&n2, &n1, what);

  ct_tensor *all[] = {&x, &f, &fk, &out_d, &out_c, &out0, &xd, &xc, &n1, &n2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ct_free(all[i]);
}

/* ---------------------------------------------------------------- backward */

/* grad_f (dense) and grad_f_kept start with the same kept rows, so
 * accumulation compares too; in place, grad_f is f (and grad_f_kept f_kept). */
static void backward_case(tu_rng *rng, const ct_case *c, const float *gamma, const char *what) {
  const size_t B = c->shape.batch, T = ct_seq_of(&c->shape), D = c->shape.dim, k = c->k;
  const uint32_t flags = (uint32_t)tu_range(rng, 0, 7);
  const int with_gx = tu_range(rng, 0, 3) != 0, with_gg = tu_range(rng, 0, 3) != 0;
  const int in_place = tu_range(rng, 0, 3) == 0;
  ct_tensor g = ct_alloc(rng, c->xt, B, T, D), f = ct_alloc(rng, c->ft, B, T, D);
  if (tu_range(rng, 0, 3)) {
    ct_fill_moderate(&g, rng);
    ct_fill_moderate(&f, rng);
  }
  ct_tensor fk = ct_alloc(rng, c->ft, k, T, D);
  ct_copy_rows(&fk, &f, c->idx, k, T, D);
  ct_tensor gf = ct_alloc(rng, c->ft, B, T, D), gfk = ct_alloc(rng, c->ft, k, T, D);
  ct_copy_rows(&gfk, &gf, c->idx, k, T, D);
  ct_tensor fd = ct_clone(&f), fkc = ct_clone(&fk), gfk0 = ct_clone(&gfk), fk0 = ct_clone(&fk);
  ct_tensor gx_d = ct_alloc(rng, c->xt, B, T, D), gx_c = ct_clone(&gx_d);
  dp_tensor gxd_t = gx_d.t, gxc_t = gx_c.t;
  if (!with_gx) gxd_t.data = gxc_t.data = NULL;
  float *gg_d = floats_make(rng, D, 1), *gg_c = floats_clone(gg_d, D), *gg0 = floats_clone(gg_d, D);

  const dp_tensor gf_d = in_place ? fd.t : gf.t, gf_c = in_place ? fkc.t : gfk.t;
  const dp_status sd =
      dp_backward_ls(&c->p, c->shape, gf_d, gxd_t, g.t, fd.t, gamma, with_gg ? gg_d : NULL, NULL, flags);
  const dp_status sc = dp_compact_backward_ls(&c->p, c->shape, gf_c, gxc_t, g.t, fkc.t, gamma,
                                              with_gg ? gg_c : NULL, k, c->idx, flags);
  assert_int_equal(sc, sd);
  assert_int_equal(sd, DP_OK); /* every dtype combination has LayerScale kernels */
  ct_assert_same_buffer(&gx_c, &gx_d, what);
  const ct_tensor *got = in_place ? &fkc : &gfk, *want = in_place ? &fd : &gf;
  if (!ct_rows_equal(got, want, c->idx, k, T, D)) fail_msg("%s: grad_f_kept differs (in place %d)", what, in_place);
  assert_only_rows_written(got, in_place ? &fk0 : &gfk0, k, T, D, what);
  if (with_gg && D > 0 && memcmp(gg_c, gg_d, D * sizeof(float)) != 0) {
    size_t d = 0;
    while (tu_f32_bits(gg_c[d]) == tu_f32_bits(gg_d[d])) d++;
    fail_msg("%s flags=%u: grad_gamma[%zu] %a, dense %a", what, flags, d, (double)gg_c[d], (double)gg_d[d]);
  }
  if (!with_gg) assert_memory_equal(gg_c, gg0, D * sizeof(float));
  if (!in_place) ct_assert_same_buffer(&fkc, &fk0, what); /* f_kept is an input */

  ct_tensor *all[] = {&g, &f, &fk, &gf, &gfk, &fd, &fkc, &gfk0, &fk0, &gx_d, &gx_c};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ct_free(all[i]);
  free(gg_d);
  free(gg_c);
  free(gg0);
}

static void one_case(tu_rng *rng) {
  ct_case c;
  ct_pick_case(rng, &c);
  char what[256];
  snprintf(what, sizeof what, "%s B=%zu T=%zu D=%zu k=%zu p=%g mode=%d sbk=%d threads=%d x=%d f=%d",
           dp_isa_name(dp_active_isa()), c.shape.batch, ct_seq_of(&c.shape), c.shape.dim, c.k, c.p.drop_prob,
           c.p.mode, c.p.scale_by_keep, c.p.num_threads, c.xt, c.ft);
  float *gamma = floats_make(rng, c.shape.dim, tu_range(rng, 0, 3) == 0);
  forward_case(rng, &c, gamma, what);
  backward_case(rng, &c, gamma, what);
  free(gamma);
  free(c.idx);
}

static void test_compact_ls_equals_dense(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x15c0 ^ (uint64_t)dp_active_isa());
  for (size_t it = 0; it < iters(400); it++) one_case(&rng);
}

/* ---------------------------------------------------------------- many groups, threads */

static void widest_isa(void) {
  for (int i = DP_ISA_COUNT - 1; i >= 0; i--)
    if (dp_isa_supported((dp_isa)i) && dp_set_max_isa((dp_isa)i) == DP_OK) return;
}

/* Shapes whose grad_gamma has several reduction groups (boundaries inside
 * samples too), f32 and dense or padded layouts, on 1..4 threads, every
 * mode: grad_gamma and the gradients are dp_backward_ls's bits each time,
 * and the same bits for every thread count and ISA. */
static void test_grad_gamma_groups(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x15c1);
  static const dp_shape shapes[] = {
      {64, 50, 96},  /* 3200 rows: 5 groups of 683, cut inside samples */
      {7, 197, 384}, /* 1379 rows: groups of 171 */
      {200, 1, 700}, /* 3 groups of 94 rows */
      {3, 1, 70000}, /* rows longer than a group */
  };
  static const int modes[] = {DP_MODE_ROW, DP_MODE_BATCH, DP_MODE_EXACT_K};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    for (size_t mi = 0; mi < 3; mi++) {
      ct_case c;
      memset(&c, 0, sizeof c);
      c.shape = shapes[si];
      c.xt = c.ft = DP_F32;
      dp_params_init(&c.p);
      c.p.mode = modes[mi];
      c.p.drop_prob = mi == 1 ? 0.5 : 0.25;
      c.p.seed = tu_next(&rng);
      c.p.sample_base = tu_range(&rng, 0, 1000);
      const size_t B = c.shape.batch, T = c.shape.seq, D = c.shape.dim;
      c.idx = malloc((B + 1) * sizeof(size_t));
      assert_non_null(c.idx);
      assert_int_equal(dp_mask(&c.p, B, NULL, NULL, &c.k, c.idx), DP_OK);
      float *gamma = floats_make(&rng, D, 0);
      ct_tensor g = ct_alloc(&rng, DP_F32, B, T, D), f = ct_alloc(&rng, DP_F32, B, T, D);
      ct_fill_moderate(&g, &rng);
      ct_fill_moderate(&f, &rng);
      ct_tensor fk = ct_alloc(&rng, DP_F32, c.k, T, D);
      ct_copy_rows(&fk, &f, c.idx, c.k, T, D);
      float *first = NULL;
      for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
        if (!dp_isa_supported((dp_isa)isa)) continue;
        assert_int_equal(dp_set_max_isa((dp_isa)isa), DP_OK);
        for (int t = 1; t <= 4; t++) {
          c.p.num_threads = t;
          ct_tensor gf = ct_alloc(&rng, DP_F32, B, T, D), gfk = ct_alloc(&rng, DP_F32, c.k, T, D);
          float *gg_d = floats_make(&rng, D, 0), *gg_c = floats_make(&rng, D, 0);
          assert_int_equal(dp_backward_ls(&c.p, c.shape, gf.t, (dp_tensor){NULL, DP_F32, 0, 0}, g.t, f.t, gamma,
                                          gg_d, NULL, 0),
                           DP_OK);
          assert_int_equal(dp_compact_backward_ls(&c.p, c.shape, gfk.t, (dp_tensor){NULL, DP_F32, 0, 0}, g.t, fk.t,
                                                  gamma, gg_c, c.k, c.idx, 0),
                           DP_OK);
          char what[160];
          snprintf(what, sizeof what, "B=%zu T=%zu D=%zu mode=%d k=%zu isa=%s t%d", B, T, D, c.p.mode, c.k,
                   dp_isa_name((dp_isa)isa), t);
          if (memcmp(gg_c, gg_d, D * sizeof(float)) != 0) fail_msg("%s: grad_gamma differs from dense", what);
          if (!ct_rows_equal(&gfk, &gf, c.idx, c.k, T, D)) fail_msg("%s: grad_f_kept differs", what);
          if (!first) first = floats_clone(gg_c, D);
          else if (memcmp(gg_c, first, D * sizeof(float)) != 0) fail_msg("%s: grad_gamma differs across runs", what);
          ct_free(&gf);
          ct_free(&gfk);
          free(gg_d);
          free(gg_c);
        }
      }
      widest_isa();
      ct_free(&g);
      ct_free(&f);
      ct_free(&fk);
      free(first);
      free(gamma);
      free(c.idx);
    }
  }
}

/* ---------------------------------------------------------------- gamma NULL */

/* The backward without gamma is dp_compact_backward, bit for bit. */
static void test_null_gamma_is_plain(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0x15c2);
  for (size_t it = 0; it < iters(60); it++) {
    ct_case c;
    ct_pick_case(&rng, &c);
    const size_t B = c.shape.batch, T = ct_seq_of(&c.shape), D = c.shape.dim;
    const uint32_t flags = (uint32_t)tu_range(&rng, 0, 3);
    ct_tensor g = ct_alloc(&rng, c.xt, B, T, D), gfk = ct_alloc(&rng, c.ft, c.k, T, D), gfk2 = ct_clone(&gfk);
    ct_tensor gx = ct_alloc(&rng, c.xt, B, T, D), gx2 = ct_clone(&gx);
    const dp_tensor none = {NULL, c.ft, 0, 0};
    assert_int_equal(dp_compact_backward(&c.p, c.shape, gfk.t, gx.t, g.t, c.k, c.idx, flags), DP_OK);
    assert_int_equal(
        dp_compact_backward_ls(&c.p, c.shape, gfk2.t, gx2.t, g.t, none, NULL, NULL, c.k, c.idx,
                               flags | DP_BWD_ACCUMULATE_GRAD_GAMMA),
        DP_OK);
    ct_assert_same_buffer(&gfk2, &gfk, "grad_f_kept");
    ct_assert_same_buffer(&gx2, &gx, "grad_x");
    ct_tensor *all[] = {&g, &gfk, &gfk2, &gx, &gx2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ct_free(all[i]);
    free(c.idx);
  }
}

/* An empty kept list may be NULL (the array is required only when the count
 * is > 0): every sample is dropped, so the call gives grad_x and a zero
 * grad_gamma, the same bits as with a non-NULL empty list, and touches no
 * memory of the compact tensors, which have no samples.  Found by the
 * fuzzer: the LayerScale walk took a NULL list for "not compacted" and
 * wrote grad_f_kept as a tensor of B samples (and read the mask of a
 * context never drawn). */
static void test_empty_kept_list(void **state) {
  (void)state;
  enum { B = 5, T = 2, D = 7, N = B * T * D };
  tu_rng rng;
  tu_rng_init(&rng, 0xe3);
  float *g = floats_make(&rng, N, 0), *gx0 = floats_make(&rng, N, 0), *gamma = floats_make(&rng, D, 0);
  float *gx = floats_clone(gx0, N), *gx_ref = floats_clone(gx0, N);
  float *gfk_mem = floats_make(&rng, N, 0), *fk_mem = floats_make(&rng, N, 0); /* room a B-sample walk would use */
  float *gfk_mem0 = floats_clone(gfk_mem, N), *fk_mem0 = floats_clone(fk_mem, N);
  float gg[D], gg_ref[D];
  const size_t unused_idx[1] = {0};
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.5;
  const dp_shape s = {B, T, D}, none = {0, T, D};
  for (uint32_t flags = 0; flags < 8; flags++) {
    for (size_t i = 0; i < D; i++) gg[i] = gg_ref[i] = (float)i;
    memcpy(gx, gx0, N * sizeof(float));
    memcpy(gx_ref, gx0, N * sizeof(float));
    assert_int_equal(dp_compact_backward_ls(&p, s, dp_tensor_dense(gfk_mem, DP_F32, none),
                                            dp_tensor_dense(gx, DP_F32, s), dp_tensor_dense(g, DP_F32, s),
                                            dp_tensor_dense(fk_mem, DP_F32, none), gamma, gg, 0, NULL, flags),
                     DP_OK);
    assert_int_equal(dp_compact_backward_ls(&p, s, dp_tensor_dense(gfk_mem, DP_F32, none),
                                            dp_tensor_dense(gx_ref, DP_F32, s), dp_tensor_dense(g, DP_F32, s),
                                            dp_tensor_dense(fk_mem, DP_F32, none), gamma, gg_ref, 0, unused_idx,
                                            flags),
                     DP_OK);
    assert_memory_equal(gfk_mem, gfk_mem0, N * sizeof(float));
    assert_memory_equal(fk_mem, fk_mem0, N * sizeof(float));
    assert_memory_equal(gx, gx_ref, N * sizeof(float));
    assert_memory_equal(gg, gg_ref, sizeof gg);
    for (size_t i = 0; i < D; i++) assert_true(gg[i] == ((flags & DP_BWD_ACCUMULATE_GRAD_GAMMA) ? (float)i : 0.0f));
  }
  float *all[] = {g, gx0, gamma, gx, gx_ref, gfk_mem, fk_mem, gfk_mem0, fk_mem0};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* ---------------------------------------------------------------- contract */

/* Every bad call returns its status and leaves every output byte alone. */
static void test_contract(void **state) {
  (void)state;
  enum { B = 6, T = 2, D = 5, N = B * T * D, K = 3, NK = K * T * D };
  _Alignas(16) float out[N], gx[N], gfk[NK];
  float x[N], g[N], fk[NK], gamma[2 * D], gg[D];
  float out0[N], gx0[N], gfk0[NK], gg0[D];
  const size_t idx[K] = {0, 2, 5};
  for (size_t i = 0; i < N; i++) x[i] = g[i] = out[i] = out0[i] = gx[i] = gx0[i] = (float)i;
  for (size_t i = 0; i < NK; i++) fk[i] = gfk[i] = gfk0[i] = (float)i;
  for (size_t i = 0; i < 2 * D; i++) gamma[i] = 0.5f;
  for (size_t i = 0; i < D; i++) gg[i] = gg0[i] = 1.0f;
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.5;
  const dp_shape s = {B, T, D}, sk = {K, T, D};
  const dp_tensor tx = dp_tensor_dense(x, DP_F32, s), tout = dp_tensor_dense(out, DP_F32, s);
  const dp_tensor tg = dp_tensor_dense(g, DP_F32, s), tgx = dp_tensor_dense(gx, DP_F32, s);
  const dp_tensor tfk = dp_tensor_dense(fk, DP_F32, sk), tgfk = dp_tensor_dense(gfk, DP_F32, sk);
  const dp_tensor none = {NULL, DP_F32, 0, 0};
#define UNTOUCHED()                                    \
  do {                                                 \
    assert_memory_equal(out, out0, sizeof out);        \
    assert_memory_equal(gx, gx0, sizeof gx);           \
    assert_memory_equal(gfk, gfk0, sizeof gfk);        \
    assert_memory_equal(gg, gg0, sizeof gg);           \
  } while (0)
  /* params, flags, indices */
  assert_int_equal(dp_compact_forward_ls(NULL, s, tout, tx, tfk, gamma, K, idx), DP_ERR_NULL_POINTER);
  assert_int_equal(dp_compact_backward_ls(NULL, s, tgfk, tgx, tg, tfk, gamma, gg, K, idx, 0), DP_ERR_NULL_POINTER);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gamma, gg, K, idx, 1u << 3), DP_ERR_BAD_FLAGS);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, NULL, gg, K, idx, 0), DP_ERR_BAD_ARGUMENT);
  const size_t bad_idx[][K] = {{2, 0, 5}, {0, 2, 2}, {0, 2, 6}};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(dp_compact_forward_ls(&p, s, tout, tx, tfk, gamma, K, bad_idx[i]), DP_ERR_BAD_ARGUMENT);
    assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gamma, gg, K, bad_idx[i], 0),
                     DP_ERR_BAD_ARGUMENT);
  }
  assert_int_equal(dp_compact_forward_ls(&p, s, tout, tx, tfk, gamma, K, NULL), DP_ERR_NULL_POINTER);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gamma, gg, K, NULL, 0), DP_ERR_NULL_POINTER);
  UNTOUCHED();
  /* f_kept is required for grad_gamma; gamma misaligned; a dtype mix without kernels */
  dp_tensor no_f = tfk;
  no_f.data = NULL;
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, no_f, gamma, gg, K, idx, 0), DP_ERR_NULL_POINTER);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, none, tg, no_f, gamma, NULL, K, idx, 0), DP_OK);
  memcpy(gfk, gfk0, sizeof gfk); /* (that call wrote grad_f_kept: f_kept is not needed without grad_gamma) */
  const float *gamma_odd = (const float *)(const void *)((const char *)gamma + 1);
  assert_int_equal(dp_compact_forward_ls(&p, s, tout, tx, tfk, gamma_odd, K, idx), DP_ERR_MISALIGNED);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gamma_odd, gg, K, idx, 0), DP_ERR_MISALIGNED);
  dp_tensor bad = tout;
  bad.dtype = DP_BF16;
  assert_int_equal(dp_compact_forward_ls(&p, s, bad, tx, tfk, gamma, K, idx), DP_ERR_BAD_DTYPE);
  bad = tgx;
  bad.dtype = DP_BF16;
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, bad, tg, tfk, gamma, gg, K, idx, 0), DP_ERR_BAD_DTYPE);
  UNTOUCHED();
  /* overlaps: gamma with an output, grad_gamma with an input, outputs with each other */
  assert_int_equal(dp_compact_forward_ls(&p, s, tout, tx, tfk, out + 2, K, idx), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gx + 7, gg, K, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gfk, gg, K, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gamma, gamma + 2, K, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gamma, g + 1, K, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tg, tfk, gamma, gfk, K, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgfk, tg, tfk, gamma, gg, K, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, tgfk, tgx, tgfk, tfk, gamma, gg, K, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_backward_ls(&p, s, dp_tensor_dense(fk + 1, DP_F32, sk), tgx, tg, tfk, gamma, gg, K,
                                          idx, 0),
                   DP_ERR_OVERLAP);
  /* f_kept is an input: its memory must stay as it was too */
  UNTOUCHED();
  for (size_t i = 0; i < NK; i++) assert_true(fk[i] == (float)i);
  /* good calls: grad_f_kept exactly f_kept is allowed; gamma NULL forward is the plain join */
  assert_int_equal(dp_compact_backward_ls(&p, s, tfk, tgx, tg, tfk, gamma, gg, K, idx, 0), DP_OK);
  assert_int_equal(dp_compact_forward_ls(&p, s, tout, tx, tfk, NULL, K, idx), DP_OK);
#undef UNTOUCHED
}

int main(void) {
  const struct CMUnitTest once[] = {
      cmocka_unit_test(test_grad_gamma_groups),
      cmocka_unit_test(test_null_gamma_is_plain),
      cmocka_unit_test(test_contract),
      cmocka_unit_test(test_empty_kept_list),
  };
  const struct CMUnitTest per_isa[] = {cmocka_unit_test(test_compact_ls_equals_dense)};
  int failed = cmocka_run_group_tests_name("compact_ls", once, NULL, NULL);
  const dp_isa initial = dp_active_isa();
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa) || dp_set_max_isa((dp_isa)isa) != DP_OK) continue;
    if (dp_active_isa() != (dp_isa)isa) continue; /* DROPPATH_ISA narrowed below it: covered */
    char name[32];
    snprintf(name, sizeof name, "compact_ls_%s", dp_isa_name((dp_isa)isa));
    failed += cmocka_run_group_tests_name(name, per_isa, NULL, NULL);
  }
  if (dp_set_max_isa(initial) != DP_OK) failed++;
  return failed != 0;
}
