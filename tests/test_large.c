/*
 * Sizes past 32-bit arithmetic, without terabytes of memory.
 *  - Strides and offsets above 2^31 and 2^32 elements over a sparse mapping
 *    (MAP_NORESERVE): only the rows are touched, so a few pages back tens of
 *    GiB of address space.  Every ISA must write exactly the rows, with the
 *    right values, and leave the elements around each row alone; a stride
 *    truncated to 32 bits would write somewhere else.
 *  - Footprints whose size or address range overflows size_t must be refused
 *    before any byte is touched, with tiny real buffers behind them.
 *  - D = 0 with a huge batch touches no tensor memory and must return quickly
 *    and safely, whatever B * sizeof(float) would be.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "droppath/droppath.h"
#include "test_util.h"

#define SENTINEL 0x5au
#define PAD 64 /* elements checked on each side of a row */

static int has_combo(int dt) {
  dp_params p;
  dp_params_init(&p);
  unsigned char a[4] = {0}, b[4] = {0}, o[4] = {0};
  const dp_shape sh = {1, 1, 1};
  return dp_forward(&p, sh, (dp_tensor){o, dt, 1, 1}, (dp_tensor){a, dt, 1, 1}, (dp_tensor){b, dt, 1, 1}, NULL) ==
         DP_OK;
}

/* A value exactly representable in every dtype: small integers / 8. */
static void store(unsigned char *p, int dt, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  if (dt == DP_F32) {
    memcpy(p, &v, 4);
  } else if (dt == DP_BF16) {
    const uint16_t h = (uint16_t)(u >> 16);
    memcpy(p, &h, 2);
  } else {
    const uint32_t e = (u >> 23) & 255u;
    const uint16_t h = v == 0.0f ? 0 : (uint16_t)(((u >> 31) << 15) | ((e - 112u) << 10) | ((u >> 13) & 1023u));
    memcpy(p, &h, 2);
  }
}

/* A sparse mapping: untouched pages cost nothing. */
typedef struct sparse {
  unsigned char *p;
  size_t bytes;
} sparse;

static int sparse_map(sparse *s, size_t bytes) {
  s->bytes = bytes;
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  s->p = p == MAP_FAILED ? NULL : (unsigned char *)p;
  return s->p != NULL;
}

static void sparse_unmap(sparse *s) {
  if (s->p) munmap(s->p, s->bytes);
  s->p = NULL;
}

/* Geometry of one test: three tensors (x, f, out), each in its own mapping
 * with its data PAD elements in, so the guard elements before row 0 exist. */
typedef struct geo {
  int dt;
  size_t B, T, D, ss, ts;
} geo;

static size_t row_elem(const geo *g, size_t b, size_t t) { return PAD + b * g->ss + t * g->ts; }

static size_t geo_bytes(const geo *g) { return (row_elem(g, g->B - 1, g->T - 1) + g->D + PAD) * tu_dtype_size(g->dt); }

static unsigned char *elem(const sparse *s, const geo *g, int k, size_t b, size_t t, size_t d) {
  return s[k].p + (row_elem(g, b, t) + d) * tu_dtype_size(g->dt);
}

static dp_tensor tensor_k(const sparse *s, const geo *g, int k) {
  return (dp_tensor){elem(s, g, k, 0, 0, 0), g->dt, g->ss, g->ts};
}

static float value(int k, size_t b, size_t t, size_t d) {
  return (float)((int)((k * 7 + b * 5 + t * 3 + d) % 29) - 14) * 0.125f;
}

/* Fill each row and the PAD elements around it (sentinel bytes). */
static void prepare(const sparse *s, const geo *g) {
  const size_t es = tu_dtype_size(g->dt);
  for (int k = 0; k < 3; k++)
    for (size_t b = 0; b < g->B; b++)
      for (size_t t = 0; t < g->T; t++) {
        memset(elem(s, g, k, b, t, 0) - PAD * es, SENTINEL, (g->D + 2 * PAD) * es);
        for (size_t d = 0; d < g->D; d++) store(elem(s, g, k, b, t, d), g->dt, value(k, b, t, d));
      }
}

static void check_pads(const sparse *s, const geo *g, const char *what) {
  const size_t es = tu_dtype_size(g->dt);
  for (int k = 0; k < 3; k++)
    for (size_t b = 0; b < g->B; b++)
      for (size_t t = 0; t < g->T; t++) {
        const unsigned char *lo = elem(s, g, k, b, t, 0) - PAD * es, *hi = elem(s, g, k, b, t, g->D);
        for (size_t i = 0; i < PAD * es; i++)
          if (lo[i] != SENTINEL || hi[i] != SENTINEL) {
            fprintf(stderr, "%s: bytes around tensor %d row (b=%zu, t=%zu) changed\n", what, k, b, t);
            fail();
          }
      }
}

static void expect_row_values(const sparse *s, const geo *g, int op, const float *scales, const char *what) {
  for (size_t b = 0; b < g->B; b++)
    for (size_t t = 0; t < g->T; t++)
      for (size_t d = 0; d < g->D; d++) {
        const float x = value(0, b, t, d), f = value(1, b, t, d), sb = scales[b];
        float want;
        if (op == 0) want = sb != 0.0f ? x + sb * f : x;   /* forward: out = x + s*f */
        else if (op == 1) want = sb != 0.0f ? sb * x : 0.0f; /* drop_path: out = s*x */
        else want = x + f;                                 /* inference, scale_by_keep */
        const float got = tu_load_elem(elem(s, g, 2, b, t, d), g->dt);
        if (got != want) {
          fprintf(stderr, "%s: out[b=%zu t=%zu d=%zu] = %g, want %g\n", what, b, t, d, (double)got, (double)want);
          fail();
        }
      }
}

static void run_geometry(const geo *g) {
  if (g->dt != DP_F32 && !has_combo(g->dt)) return;
  sparse s[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
  for (int k = 0; k < 3; k++)
    if (!sparse_map(&s[k], geo_bytes(g))) {
      fprintf(stderr, "cannot map %zu bytes sparsely (vm.overcommit_memory=2?)\n", geo_bytes(g));
      for (int i = 0; i < k; i++) sparse_unmap(&s[i]);
      skip();
    }
  const dp_shape shape = {g->B, g->T, g->D};
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = 0.5;
  prm.seed = 99;
  float scales[8];
  char what[96];
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa)) continue;
    assert_int_equal(dp_set_max_isa((dp_isa)isa), DP_OK);
    for (int nt = 1; nt <= 2; nt++) {
      prm.num_threads = nt;
      for (uint64_t seed = 0; seed < 4; seed++) { /* enough seeds to keep and drop each sample */
        prm.seed = seed;
        snprintf(what, sizeof what, "%s dtype %d B=%zu T=%zu ss=%zu ts=%zu seed %d nt %d", dp_isa_name((dp_isa)isa),
                 g->dt, g->B, g->T, g->ss, g->ts, (int)seed, nt);
        for (int op = 0; op < 3; op++) {
          prepare(s, g);
          dp_status st;
          if (op == 0)
            st = dp_forward(&prm, shape, tensor_k(s, g, 2), tensor_k(s, g, 0), tensor_k(s, g, 1), scales);
          else if (op == 1)
            st = dp_drop_path(&prm, shape, tensor_k(s, g, 2), tensor_k(s, g, 0), scales);
          else
            st = dp_inference_add(&prm, shape, tensor_k(s, g, 2), tensor_k(s, g, 0), tensor_k(s, g, 1));
          assert_int_equal(st, DP_OK);
          check_pads(s, g, what);
          expect_row_values(s, g, op, scales, what);
        }
        /* Backward: grad_f (tensor 2) = s*grad_out (tensor 0), grad_x (tensor 1) = grad_out. */
        prepare(s, g);
        assert_int_equal(dp_mask(&prm, g->B, NULL, scales, NULL, NULL), DP_OK);
        assert_int_equal(dp_backward(&prm, shape, tensor_k(s, g, 2), tensor_k(s, g, 1), tensor_k(s, g, 0), NULL, 0),
                         DP_OK);
        check_pads(s, g, what);
        for (size_t b = 0; b < g->B; b++)
          for (size_t t = 0; t < g->T; t++)
            for (size_t d = 0; d < g->D; d++) {
              const float go = value(0, b, t, d);
              assert_true(tu_load_elem(elem(s, g, 2, b, t, d), g->dt) == (scales[b] != 0.0f ? scales[b] * go : 0.0f));
              assert_true(tu_load_elem(elem(s, g, 1, b, t, d), g->dt) == go);
            }
      }
    }
  }
  for (int isa = DP_ISA_COUNT - 1; isa >= 0; isa--) /* back to the best ISA */
    if (dp_isa_supported((dp_isa)isa) && dp_set_max_isa((dp_isa)isa) == DP_OK) break;
  for (int k = 0; k < 3; k++) sparse_unmap(&s[k]);
}

/* B = 2, sample stride 2^31 + 17 elements: sample 1 lies 8 GiB in. */
static void test_sample_stride_above_2g(void **state) {
  (void)state;
  const geo g = {DP_F32, 2, 1, 1000, ((size_t)1 << 31) + 17, 0};
  run_geometry(&g);
}

/* Three samples 2^31 - 3 apart: b * stride crosses both 2^31 and 2^32. */
static void test_sample_offsets_cross_2g_and_4g(void **state) {
  (void)state;
  const geo g = {DP_F32, 3, 1, 77, ((size_t)1 << 31) - 3, 0};
  run_geometry(&g);
}

/* Sequence-first rows 2^32 + 3 elements apart, in 16-bit dtypes too. */
static void test_seq_stride_above_4g(void **state) {
  (void)state;
  for (int dt = 0; dt < 3; dt++) {
    const geo g = {dt, 2, 2, 133, 133 + 2 * PAD + 3, ((size_t)1 << 32) + 3};
    run_geometry(&g);
  }
}

/* ------------------------------------------------------------ refused before touching */

#define GUARD_BYTES 256

static unsigned char guard_buf[4][GUARD_BYTES];

static void reset_guards(void) { memset(guard_buf, SENTINEL, sizeof guard_buf); }

static void assert_guards(void) {
  for (size_t i = 0; i < sizeof guard_buf; i++)
    if (((unsigned char *)guard_buf)[i] != SENTINEL) {
      fprintf(stderr, "a refused call wrote byte %zu of its buffers\n", i);
      fail();
    }
}

static dp_status call_op(int op, const dp_params *prm, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                         float *scales) {
  switch (op) {
    case 0: return dp_forward(prm, shape, out, x, f, scales);
    case 1: return dp_inference_add(prm, shape, out, x, f);
    case 2: return dp_drop_path(prm, shape, out, x, scales);
    default: return dp_backward(prm, shape, out, f, x, NULL, 0);
  }
}

/* Each case: a shape and strides whose footprint cannot exist, applied to
 * tensor `which`; whatever the others look like, the call must be refused. */
typedef struct huge_case {
  const char *name;
  size_t B, T, D, ss, ts;
} huge_case;

static void test_overflowing_footprints_refused(void **state) {
  (void)state;
  const size_t M = SIZE_MAX;
  const huge_case cases[] = {
      {"B*stride overflows", (size_t)1 << 62, 1, 4, 4, 4},
      {"span*4 overflows", 2, 1, 1, M / 4, 1},
      {"span*4 is exactly 2^64", 2, 1, 1, M / 4, 1},
      {"(B-1)*ss + D wraps by one", 2, 1, 2, M - 1, 2},
      {"T*ts overflows", 1, (size_t)1 << 33, 4, 4, (size_t)1 << 32},
      {"seq part wraps", 2, 2, 8, 8, M - 9},
      {"2^32 rows of 2^32", (size_t)1 << 32, 1, (size_t)1 << 32, (size_t)1 << 32, 1},
  };
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = 0.25;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int op = 0; op < 4; op++)
      for (int which = 0; which < 3; which++) {
        if (op == 2 && which == 2) continue;
        const huge_case *h = &cases[c];
        const dp_shape shape = {h->B, h->T, h->D};
        dp_tensor t[3];
        for (int k = 0; k < 3; k++) t[k] = (dp_tensor){guard_buf[k], DP_F32, h->D, h->D};
        t[which].sample_stride = h->ss;
        t[which].seq_stride = h->ts;
        reset_guards();
        const dp_status st = call_op(op, &prm, shape, t[0], t[1], t[2], (float *)guard_buf[3]);
        if (st == DP_OK) {
          fprintf(stderr, "case '%s', op %d, tensor %d: accepted\n", h->name, op, which);
          fail();
        }
        assert_guards();
      }
}

/* A footprint that fits in size_t but runs past the top of the address space. */
static void test_address_wrap_refused(void **state) {
  (void)state;
  dp_params prm;
  dp_params_init(&prm);
  reset_guards();
  const uintptr_t room = UINTPTR_MAX - (uintptr_t)guard_buf[0]; /* bytes until the address space ends */
  const size_t D = 4, ss = (size_t)(room / 4) + 1;                 /* sample 1 starts past the end */
  const dp_shape shape = {2, 1, D};
  const dp_tensor big = {guard_buf[0], DP_F32, ss, D};
  const dp_tensor x = {guard_buf[1], DP_F32, D, D}, f = {guard_buf[2], DP_F32, D, D};
  assert_int_not_equal(dp_forward(&prm, shape, big, x, f, NULL), DP_OK);
  assert_int_not_equal(dp_forward(&prm, shape, (dp_tensor){guard_buf[3], DP_F32, D, D}, big, f, NULL), DP_OK);
  assert_int_not_equal(dp_drop_path(&prm, shape, big, x, NULL), DP_OK);
  assert_int_not_equal(dp_backward(&prm, shape, big, (dp_tensor){NULL, 0, 0, 0}, x, NULL, 0), DP_OK);
  assert_guards();
  /* Plain arrays: B floats or B size_t that cannot exist. */
  const size_t nb = ((size_t)1 << 62) + 1; /* nb * 4 wraps to 4 */
  assert_int_equal(dp_mask(&prm, nb, NULL, (float *)guard_buf[0], NULL, NULL), DP_ERR_SIZE_OVERFLOW);
  assert_int_equal(dp_mask(&prm, nb, NULL, NULL, NULL, (size_t *)guard_buf[1]), DP_ERR_SIZE_OVERFLOW);
  assert_guards();
}

/* Helpers that compute T*D themselves must not wrap into a valid-looking stride. */
static void test_dense_helper_overflow_refused(void **state) {
  (void)state;
  dp_params prm;
  dp_params_init(&prm);
  reset_guards();
  const dp_shape shape = {2, (size_t)1 << 33, ((size_t)1 << 31) + 1}; /* T*D wraps mod 2^64 */
  const dp_tensor d0 = dp_tensor_dense(guard_buf[0], DP_F32, shape);
  const dp_tensor d1 = dp_tensor_dense(guard_buf[1], DP_F32, shape);
  const dp_tensor d2 = dp_tensor_dense(guard_buf[2], DP_F32, shape);
  assert_int_not_equal(dp_forward(&prm, shape, d0, d1, d2, NULL), DP_OK);
  const dp_shape sf = {(size_t)1 << 33, 2, ((size_t)1 << 31) + 1}; /* B*D wraps */
  const dp_tensor s0 = dp_tensor_seq_first(guard_buf[0], DP_F32, sf);
  const dp_tensor s1 = dp_tensor_seq_first(guard_buf[1], DP_F32, sf);
  assert_int_not_equal(dp_drop_path(&prm, sf, s0, s1, NULL), DP_OK);
  assert_guards();
}

/* ------------------------------------------------------------ D = 0, huge B */

static void test_empty_rows_huge_batch(void **state) {
  (void)state;
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = 0.5;
  reset_guards();
  /* B * sizeof(float) wraps to 4: a scale buffer sized from it would be tiny. */
  const size_t batches[] = {((size_t)1 << 62) + 1, (size_t)1 << 40, SIZE_MAX};
  for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
    const dp_shape shape = {batches[i], 1, 0};
    const dp_tensor a = {guard_buf[0], DP_F32, 0, 0}, b = {guard_buf[1], DP_F32, 0, 0};
    const dp_tensor c = {guard_buf[2], DP_F32, 0, 0};
    assert_int_equal(dp_forward(&prm, shape, a, b, c, NULL), DP_OK);
    assert_int_equal(dp_inference_add(&prm, shape, a, b, c), DP_OK);
    assert_int_equal(dp_drop_path(&prm, shape, a, b, NULL), DP_OK);
    assert_int_equal(dp_backward(&prm, shape, a, c, b, NULL, DP_BWD_ACCUMULATE_GRAD_X), DP_OK);
    assert_guards();
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_overflowing_footprints_refused),
      cmocka_unit_test(test_address_wrap_refused),
      cmocka_unit_test(test_dense_helper_overflow_refused),
      cmocka_unit_test(test_empty_rows_huge_batch),
      cmocka_unit_test(test_sample_stride_above_2g),
      cmocka_unit_test(test_sample_offsets_cross_2g_and_4g),
      cmocka_unit_test(test_seq_stride_above_4g),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
