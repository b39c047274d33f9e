/*
 * Sample compaction (dp_compact_*): on every ISA, dtype combination, layout
 * (dense, seq-first, padded, each tensor its own), mode (row, batch,
 * exact-k), drop probability, thread count, in place and not, the compacted
 * path gives the bits of the dense one (dp_forward, dp_backward) when the
 * branch acts on each sample alone; gather copies exactly the kept samples;
 * scatter-add adds exactly into them; nothing is written outside the
 * outputs' rows (padding and guard bytes). Then exact-k's count and
 * selection, and the error contract.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/maskgen.h"
#include "droppath/droppath.h"
#include "compact_util.h"
#include "reference.h"
#include "test_util.h"

static size_t iters(size_t n) { return getenv("DP_TEST_QUICK") ? n / 4 + 1 : n; }

static void one_case(tu_rng *rng) {
  ct_case c;
  ct_pick_case(rng, &c);
  const size_t B = c.shape.batch, T = ct_seq_of(&c.shape), D = c.shape.dim, k = c.k;
  char what[256];
  snprintf(what, sizeof what, "%s B=%zu T=%zu D=%zu k=%zu p=%g mode=%d sbk=%d threads=%d x=%d f=%d",
           dp_isa_name(dp_active_isa()), B, T, D, k, c.p.drop_prob, c.p.mode, c.p.scale_by_keep, c.p.num_threads,
           c.xt, c.ft);

  /* gather: x's kept samples into a compact tensor of its own layout */
  ct_tensor x = ct_alloc(rng, c.xt, B, T, D);
  ct_tensor xk = ct_alloc(rng, c.xt, k, T, D), xk0 = ct_clone(&xk);
  size_t got_k = SIZE_MAX, *got_idx = malloc((B + 1) * sizeof(size_t));
  assert_non_null(got_idx);
  assert_int_equal(dp_compact_gather(&c.p, c.shape, xk.t, x.t, &got_k, got_idx), DP_OK);
  assert_int_equal(got_k, k);
  if (k > 0) assert_memory_equal(got_idx, c.idx, k * sizeof(size_t));
  ct_copy_rows(&xk0, &x, c.idx, k, T, D);
  ct_assert_same_buffer(&xk, &xk0, what);

  /* forward, out of place and in place */
  ct_tensor f = ct_alloc(rng, c.ft, B, T, D), fk = ct_alloc(rng, c.ft, k, T, D);
  ct_copy_rows(&fk, &f, c.idx, k, T, D); /* the branch's output on the kept samples */
  ct_tensor out_d = ct_alloc(rng, c.xt, B, T, D), out_c = ct_clone(&out_d);
  out_c.t = out_d.t;
  out_c.t.data = out_c.buf.data;
  assert_int_equal(dp_forward(&c.p, c.shape, out_d.t, x.t, f.t, NULL), DP_OK);
  assert_int_equal(dp_compact_forward(&c.p, c.shape, out_c.t, x.t, fk.t, k, c.idx), DP_OK);
  ct_assert_same_buffer(&out_d, &out_c, what);
  ct_tensor xd = ct_clone(&x), xc = ct_clone(&x);
  assert_int_equal(dp_forward(&c.p, c.shape, xd.t, xd.t, f.t, NULL), DP_OK);
  assert_int_equal(dp_compact_forward(&c.p, c.shape, xc.t, xc.t, fk.t, k, c.idx), DP_OK);
  ct_assert_same_buffer(&xd, &xc, what);

  /* backward: grad_f_kept holds grad_f's kept rows, so accumulation compares too */
  const uint32_t flags = (uint32_t)tu_range(rng, 0, 3);
  const int with_gx = tu_range(rng, 0, 3) != 0;
  ct_tensor g = ct_alloc(rng, c.xt, B, T, D);
  ct_tensor gf = ct_alloc(rng, c.ft, B, T, D), gfk = ct_alloc(rng, c.ft, k, T, D), gfk0 = ct_clone(&gfk);
  ct_copy_rows(&gfk, &gf, c.idx, k, T, D);
  ct_copy_rows(&gfk0, &gf, c.idx, k, T, D);
  ct_tensor gx_d = ct_alloc(rng, c.xt, B, T, D), gx_c = ct_clone(&gx_d);
  dp_tensor gxd_t = gx_d.t, gxc_t = gx_d.t;
  gxc_t.data = gx_c.buf.data;
  if (!with_gx) gxd_t.data = gxc_t.data = NULL;
  assert_int_equal(dp_backward(&c.p, c.shape, gf.t, gxd_t, g.t, NULL, flags), DP_OK);
  assert_int_equal(dp_compact_backward(&c.p, c.shape, gfk.t, gxc_t, g.t, k, c.idx, flags), DP_OK);
  ct_assert_same_buffer(&gx_d, &gx_c, what);
  assert_true(ct_rows_equal(&gfk, &gf, c.idx, k, T, D));
  /* padding of grad_f_kept untouched: put the rows back into the initial copy and compare */
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++) memcpy(ct_row(&gfk0, i, t), ct_row(&gfk, i, t), D * gfk.es);
  ct_assert_same_buffer(&gfk, &gfk0, what);

  /* scatter-add: against one single-sample inference add per kept sample */
  ct_tensor gin = ct_alloc(rng, c.ft, k, T, D);
  ct_tensor acc = ct_alloc(rng, c.xt, B, T, D), acc_ref = ct_clone(&acc);
  assert_int_equal(dp_compact_scatter_add(&c.p, c.shape, acc.t, gin.t, k, c.idx), DP_OK);
  dp_params one;
  dp_params_init(&one);
  one.num_threads = 1;
  const dp_shape s1 = {1, T, D};
  for (size_t i = 0; i < k && D > 0; i++) {
    const dp_tensor o = {ct_row(&acc_ref, c.idx[i], 0), c.xt, acc.t.sample_stride, acc.t.seq_stride};
    const dp_tensor gi = {ct_row(&gin, i, 0), c.ft, gin.t.sample_stride, gin.t.seq_stride};
    assert_int_equal(dp_inference_add(&one, s1, o, o, gi), DP_OK);
  }
  ct_assert_same_buffer(&acc, &acc_ref, what);

  ct_tensor *all[] = {&x, &xk, &xk0, &f, &fk, &out_d, &out_c, &xd, &xc, &g, &gf, &gfk, &gfk0, &gx_d, &gx_c,
                      &gin, &acc, &acc_ref};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ct_free(all[i]);
  free(got_idx);
  free(c.idx);
}

static void test_compact_equals_dense(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0xc0 ^ (uint64_t)dp_active_isa());
  for (size_t it = 0; it < iters(400); it++) one_case(&rng);
}

/* ---------------------------------------------------------------- exact-k */

static int cmp_u64(const void *a, const void *b) {
  const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* k = max(floor(B*(1-p)), 1), scale B/k, and the k kept ones are the k smallest (w0, b). */
static void test_exact_k_rule(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0xe1);
  for (size_t it = 0; it < iters(150); it++) {
    dp_params p;
    dp_params_init(&p);
    p.mode = DP_MODE_EXACT_K;
    p.drop_prob = (double)tu_range(&rng, 0, 100) / 100.0;
    p.seed = tu_next(&rng);
    p.offset = tu_next(&rng);
    p.sample_base = tu_next(&rng);
    p.scale_by_keep = (int)tu_range(&rng, 0, 1);
    const size_t B = tu_range(&rng, 0, 200);
    float *sc = malloc((B + 1) * sizeof(float));
    size_t kept = SIZE_MAX;
    assert_non_null(sc);
    assert_int_equal(dp_mask(&p, B, NULL, sc, &kept, NULL), DP_OK);
    assert_int_equal(kept, ref_exact_k(p.drop_prob, B));
    const float s = p.scale_by_keep ? (float)((double)B / (double)kept) : 1.0f;
    size_t n = 0;
    for (size_t b = 0; b < B; b++) {
      assert_true(sc[b] == 0.0f || sc[b] == s);
      assert_int_equal(sc[b] != 0.0f, ref_is_kept(&p, B, b));
      n += sc[b] != 0.0f;
    }
    assert_int_equal(n, kept);
    size_t only = SIZE_MAX;
    assert_int_equal(dp_mask(&p, B, NULL, NULL, &only, NULL), DP_OK); /* the count alone */
    assert_int_equal(only, kept);
    free(sc);
  }
}

/* The selection with memory and the memory-free bisection find the same
 * cut, also where words tie (B large enough that 32-bit words collide). */
static void test_exact_k_cut_paths_agree(void **state) {
  (void)state;
  tu_rng rng;
  tu_rng_init(&rng, tu_seed() ^ 0xe2);
  for (size_t it = 0; it < iters(40); it++) {
    const size_t B = it < 4 ? tu_range(&rng, 150000, 250000) : tu_range(&rng, 1, 2000);
    const size_t k = tu_range(&rng, 1, B);
    const uint64_t seed = tu_next(&rng), offset = tu_next(&rng), base = tu_next(&rng);
    const dp_exact_cut a = dp_exact_k_cut(seed, offset, base, B, k, 1);
    const dp_exact_cut b = dp_exact_k_cut(seed, offset, base, B, k, 0);
    assert_int_equal(a.word, b.word);
    assert_int_equal(a.index, b.index);
  }
  /* A tie at the cut: two samples with one word, of which only the lower
   * index is kept. 300000 32-bit words hold ~10 equal pairs. */
  const size_t B = 300000;
  uint64_t *keys = malloc(B * sizeof(uint64_t));
  assert_non_null(keys);
  int found = 0;
  for (uint64_t seed = 1; seed < 20 && !found; seed++) {
    for (size_t b = 0; b < B; b++) keys[b] = (uint64_t)dp_philox_word0(seed, (uint64_t)b, 0) << 32 | b;
    qsort(keys, B, sizeof keys[0], cmp_u64);
    for (size_t r = 1; r < B && !found; r++) {
      if (keys[r] >> 32 != keys[r - 1] >> 32) continue;
      /* keys[r - 1] is the r-th smallest (w, b): k = r puts the cut on it, k = r + 1 on its twin. */
      for (size_t k = r; k <= r + 1; k++) {
        const dp_exact_cut a = dp_exact_k_cut(seed, 0, 0, B, k, 1), c = dp_exact_k_cut(seed, 0, 0, B, k, 0);
        assert_int_equal(a.word, keys[k - 1] >> 32);
        assert_int_equal(a.index, keys[k - 1] & UINT32_MAX);
        assert_int_equal(c.word, a.word);
        assert_int_equal(c.index, a.index);
      }
      found = 1;
    }
  }
  free(keys);
  assert_true(found);
}

/* The exact-k vectors tools/droppath_ref.py wrote (an independent Python
 * model of the rule): dp_mask keeps the same samples with the same scale. */
static void test_exact_k_vectors(void **state) {
  (void)state;
  FILE *fh = fopen(DP_TEST_DATA_DIR "/droppath_exact_k.txt", "r");
  assert_non_null(fh);
  char line[8192];
  size_t lines = 0;
  while (fgets(line, sizeof line, fh)) {
    if (line[0] == '#' || line[0] == '\n') continue;
    unsigned long long seed, offset, base;
    size_t batch, k;
    double p, s;
    int used = 0;
    assert_int_equal(sscanf(line, "%llx %llx %llx %zu %lf %lf %zu %n", &seed, &offset, &base, &batch, &p, &s, &k, &used), 7);
    size_t want[300], got[300], got_k = 0;
    float sc[300];
    assert_true(batch <= 300 && k <= batch);
    const char *q = line + used;
    for (size_t i = 0; i < k; i++) {
      char *end;
      want[i] = (size_t)strtoull(q, &end, 10);
      assert_true(end != q);
      q = *end == ',' ? end + 1 : end;
    }
    dp_params prm;
    dp_params_init(&prm);
    prm.mode = DP_MODE_EXACT_K;
    prm.seed = seed;
    prm.offset = offset;
    prm.sample_base = base;
    prm.drop_prob = p;
    assert_int_equal(dp_mask(&prm, batch, NULL, sc, &got_k, got), DP_OK);
    assert_int_equal(got_k, k);
    assert_memory_equal(got, want, k * sizeof(size_t));
    for (size_t b = 0, i = 0; b < batch; b++) {
      const int kept = i < k && want[i] == b;
      assert_true(sc[b] == (kept ? (float)s : 0.0f));
      i += kept;
    }
    lines++;
  }
  fclose(fh);
  assert_true(lines >= 70);
}

/* ---------------------------------------------------------------- contract */

/* Every bad call returns its status and leaves every output byte alone. */
static void test_compact_contract(void **state) {
  (void)state;
  enum { B = 6, T = 2, D = 5, N = B * T * D };
  _Alignas(16) float out[N];
  float x[N], f[N], out0[N], g[N];
  size_t idx[B] = {0, 2, 5}, k = 3, got_idx[B], got_k = 77;
  for (size_t i = 0; i < N; i++) x[i] = f[i] = g[i] = out[i] = out0[i] = (float)i;
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.5;
  const dp_shape s = {B, T, D};
  const dp_tensor tx = dp_tensor_dense(x, DP_F32, s), tout = dp_tensor_dense(out, DP_F32, s);
  const dp_tensor tf = dp_tensor_dense(f, DP_F32, s), tg = dp_tensor_dense(g, DP_F32, s);
  const dp_tensor none = {NULL, DP_F32, 0, 0};
#define UNTOUCHED() assert_memory_equal(out, out0, sizeof out)
  /* unsorted, repeated, out-of-range indices and a count above B */
  const size_t bad_idx[][3] = {{2, 0, 5}, {0, 2, 2}, {0, 2, 6}};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(dp_compact_forward(&p, s, tout, tx, tf, 3, bad_idx[i]), DP_ERR_BAD_ARGUMENT);
    assert_int_equal(dp_compact_backward(&p, s, tout, none, tg, 3, bad_idx[i], 0), DP_ERR_BAD_ARGUMENT);
    assert_int_equal(dp_compact_scatter_add(&p, s, tout, tf, 3, bad_idx[i]), DP_ERR_BAD_ARGUMENT);
    UNTOUCHED();
  }
  size_t many[B + 1] = {0, 1, 2, 3, 4, 5, 6};
  float *big = calloc((B + 1) * T * D, sizeof(float));
  assert_non_null(big);
  assert_int_equal(dp_compact_forward(&p, s, tout, tx, dp_tensor_dense(big, DP_F32, s), B + 1, many),
                   DP_ERR_BAD_ARGUMENT);
  free(big);
  UNTOUCHED();
  /* params, mode, flags, NULL data, dtype mix without kernels, misalignment */
  assert_int_equal(dp_compact_forward(NULL, s, tout, tx, tf, k, idx), DP_ERR_NULL_POINTER);
  dp_params q = p;
  q.mode = 3;
  assert_int_equal(dp_compact_forward(&q, s, tout, tx, tf, k, idx), DP_ERR_BAD_MODE);
  q = p;
  q.drop_prob = 1.5;
  assert_int_equal(dp_compact_gather(&q, s, tout, tx, &got_k, got_idx), DP_ERR_BAD_PROBABILITY);
  assert_int_equal(got_k, 77);
  assert_int_equal(dp_compact_backward(&p, s, tout, none, tg, k, idx, 1u << 5), DP_ERR_BAD_FLAGS);
  assert_int_equal(dp_compact_forward(&p, s, tout, tx, tf, k, NULL), DP_ERR_NULL_POINTER);
  dp_tensor bad = tf;
  bad.data = NULL;
  assert_int_equal(dp_compact_forward(&p, s, tout, tx, bad, k, idx), DP_ERR_NULL_POINTER);
  dp_tensor bad_out = tout;
  bad_out.dtype = DP_BF16;
  assert_int_equal(dp_compact_forward(&p, s, bad_out, tx, tf, k, idx), DP_ERR_BAD_DTYPE);
  bad = tf;
  bad.data = (char *)f + 1;
  assert_int_equal(dp_compact_forward(&p, s, tout, tx, bad, k, idx), DP_ERR_MISALIGNED);
  assert_int_equal(dp_compact_forward(&p, s, tout, tx, tf, k, (const size_t *)(const void *)((char *)idx + 1)),
                   DP_ERR_MISALIGNED);
  UNTOUCHED();
  /* overlaps: out over f_kept, gather's dst over src, grad_x over grad_f_kept */
  assert_int_equal(dp_compact_forward(&p, s, tout, tx, dp_tensor_dense(out + 3, DP_F32, s), k, idx), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_gather(&p, s, dp_tensor_dense(x + 1, DP_F32, s), tx, &got_k, got_idx), DP_ERR_OVERLAP);
  assert_int_equal(got_k, 77);
  assert_int_equal(dp_compact_backward(&p, s, tout, tout, tg, k, idx, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_scatter_add(&p, s, tout, tout, k, idx), DP_ERR_OVERLAP);
  assert_int_equal(dp_compact_gather(&p, s, tout, tx, &got_k, (size_t *)(void *)out), DP_ERR_OVERLAP);
  /* gather's arrays are required */
  assert_int_equal(dp_compact_gather(&p, s, tout, tx, NULL, got_idx), DP_ERR_NULL_POINTER);
  assert_int_equal(dp_compact_gather(&p, s, tout, tx, &got_k, NULL), DP_ERR_NULL_POINTER);
  UNTOUCHED();
  assert_int_equal(got_k, 77);
  /* and a good call still works */
  assert_int_equal(dp_compact_gather(&p, s, tout, tx, &got_k, got_idx), DP_OK);
#undef UNTOUCHED
}

/* Random arguments, valid or not, into one guarded arena: a call either
 * fails and leaves the arena and the index array as they were, or succeeds
 * without writing outside the arena; it never crashes (and under ASan never
 * reads outside what it was given). */
static dp_tensor random_tensor(tu_rng *r, unsigned char *arena, size_t D, int dtype) {
  dp_tensor t;
  t.dtype = tu_range(r, 0, 7) == 0 ? (int)tu_range(r, 0, 3) : dtype; /* 3: no such dtype */
  const size_t es = t.dtype == DP_F32 ? 4 : 2;
  t.data = tu_range(r, 0, 15) == 0 ? NULL : arena + es * tu_range(r, 0, 4096) + (tu_range(r, 0, 15) == 0);
  t.sample_stride = tu_range(r, 0, 7) == 0 ? tu_range(r, 0, 3 * D + 3) : D * tu_range(r, 1, 3);
  t.seq_stride = tu_range(r, 0, 7) == 0 ? tu_range(r, 0, 3 * D + 3) : D;
  return t;
}

static void test_compact_random_args(void **state) {
  (void)state;
  tu_rng r;
  tu_rng_init(&r, tu_seed() ^ 0xa5);
  enum { ARENA = 1 << 16 };
  tu_buf arena = tu_buf_alloc(ARENA, 0);
  unsigned char *copy = malloc(ARENA);
  size_t idx[40], idx0[40], kept = 0;
  assert_non_null(copy);
  for (size_t it = 0; it < iters(20000); it++) {
    for (size_t i = 0; i < ARENA; i += 8) memcpy(arena.data + i, &(uint64_t){tu_next(&r)}, 8);
    dp_params p;
    dp_params_init(&p);
    p.drop_prob = tu_range(&r, 0, 20) == 0 ? 2.0 : (double)tu_range(&r, 0, 4) / 4.0;
    p.mode = tu_range(&r, 0, 15) == 0 ? 3 : (int)tu_range(&r, 0, 2);
    p.seed = tu_next(&r);
    p.num_threads = (int)tu_range(&r, 0, 2);
    const dp_shape sh = {tu_range(&r, 0, 20), tu_range(&r, 0, 3), tu_range(&r, 0, 20)};
    /* indices: the mask's, or arbitrary */
    if (tu_range(&r, 0, 2) != 0) {
      dp_params q = p;
      q.drop_prob = q.drop_prob > 1.0 ? 0.5 : q.drop_prob;
      q.mode = q.mode > 2 ? 0 : q.mode;
      assert_int_equal(dp_mask(&q, sh.batch, NULL, NULL, &kept, idx), DP_OK);
    } else {
      kept = tu_range(&r, 0, sh.batch + 2);
      for (size_t i = 0; i < kept; i++) idx[i] = tu_range(&r, 0, 2) ? i * 2 : tu_range(&r, 0, 25);
    }
    if (tu_range(&r, 0, 20) == 0) kept += tu_range(&r, 1, 3);
    memcpy(idx0, idx, sizeof idx);
    const int dt = (int)tu_range(&r, 0, 2);
    const dp_tensor a = random_tensor(&r, arena.data, sh.dim, dt), b = random_tensor(&r, arena.data, sh.dim, dt),
                    c = random_tensor(&r, arena.data, sh.dim, dt);
    const size_t *ip = tu_range(&r, 0, 30) == 0 ? NULL : idx;
    memcpy(copy, arena.data, ARENA);
    dp_status st;
    size_t got_k = 12345;
    switch (tu_range(&r, 0, 3)) {
      case 0: st = dp_compact_gather(&p, sh, a, b, &got_k, idx); break;
      case 1: st = dp_compact_forward(&p, sh, a, b, c, kept, ip); break;
      case 2: st = dp_compact_backward(&p, sh, a, b, c, kept, ip, (uint32_t)tu_range(&r, 0, 4)); break;
      default: st = dp_compact_scatter_add(&p, sh, a, b, kept, ip); break;
    }
    assert_true(tu_guards_intact(&arena));
    if (st != DP_OK) {
      assert_memory_equal(copy, arena.data, ARENA);
      assert_memory_equal(idx, idx0, sizeof idx);
      assert_int_equal(got_k, 12345);
    }
  }
  free(copy);
  tu_buf_free(&arena);
}

int main(void) {
  const struct CMUnitTest once[] = {
      cmocka_unit_test(test_exact_k_rule),
      cmocka_unit_test(test_exact_k_cut_paths_agree),
      cmocka_unit_test(test_exact_k_vectors),
      cmocka_unit_test(test_compact_contract),
      cmocka_unit_test(test_compact_random_args),
  };
  const struct CMUnitTest per_isa[] = {cmocka_unit_test(test_compact_equals_dense)};
  int failed = cmocka_run_group_tests_name("compact", once, NULL, NULL);
  const dp_isa initial = dp_active_isa();
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa) || dp_set_max_isa((dp_isa)isa) != DP_OK) continue;
    if (dp_active_isa() != (dp_isa)isa) continue; /* DROPPATH_ISA narrowed below it: covered */
    char name[32];
    snprintf(name, sizeof name, "compact_%s", dp_isa_name((dp_isa)isa));
    failed += cmocka_run_group_tests_name(name, per_isa, NULL, NULL);
  }
  if (dp_set_max_isa(initial) != DP_OK) failed++;
  return failed != 0;
}
