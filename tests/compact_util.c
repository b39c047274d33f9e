/* Helpers of the sample compaction tests (compact_util.h). */
#include "compact_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { LAYOUT_DENSE, LAYOUT_SEQ_FIRST, LAYOUT_PADDED, LAYOUT_COUNT };

static size_t span_elems(const dp_tensor *t, size_t n, size_t T, size_t D) {
  if (n == 0 || D == 0) return 0;
  return (n - 1) * t->sample_stride + (T - 1) * t->seq_stride + D;
}

ct_tensor ct_alloc(tu_rng *rng, int dtype, size_t n, size_t T, size_t D) {
  ct_tensor c;
  memset(&c, 0, sizeof c);
  c.n = n;
  c.es = tu_dtype_size(dtype);
  c.t.dtype = dtype;
  switch (tu_range(rng, 0, LAYOUT_COUNT - 1)) {
    case LAYOUT_DENSE:
      c.t.sample_stride = T * D;
      c.t.seq_stride = D;
      break;
    case LAYOUT_SEQ_FIRST:
      c.t.sample_stride = D;
      c.t.seq_stride = n * D;
      break;
    default:
      c.t.seq_stride = D + tu_range(rng, 0, 5);
      c.t.sample_stride = T * c.t.seq_stride + tu_range(rng, 0, 9);
  }
  if (c.t.sample_stride < D) c.t.sample_stride = D; /* seq-first with n = 0 */
  if (T > 1 && c.t.seq_stride < D) c.t.seq_stride = D;
  const size_t bytes = span_elems(&c.t, n, T, D) * c.es;
  c.buf = tu_buf_alloc(bytes ? bytes : 1, c.es * tu_range(rng, 0, 15));
  /* Random contents, NaNs and infinities included: both paths see them. */
  for (size_t i = 0; i < c.buf.bytes; i++) c.buf.data[i] = (unsigned char)tu_next(rng);
  c.t.data = c.buf.data;
  return c;
}

void ct_fill_moderate(ct_tensor *c, tu_rng *rng) {
  for (size_t i = 0; i + c->es <= c->buf.bytes; i += c->es) {
    const uint64_t r = tu_next(rng);
    const uint32_t sign = (uint32_t)(r >> 63), e = (uint32_t)((r >> 32) % 13); /* exponent e - 6 */
    if (c->es == 4) {
      const uint32_t bits = sign << 31 | (e + 121u) << 23 | ((uint32_t)r & 0x7fffffu);
      memcpy(c->buf.data + i, &bits, 4);
    } else {
      const int bf = c->t.dtype == DP_BF16;
      const uint16_t bits = (uint16_t)(sign << 15 | (bf ? (e + 121u) << 7 | ((uint32_t)r & 0x7fu)
                                                        : (e + 9u) << 10 | ((uint32_t)r & 0x3ffu)));
      memcpy(c->buf.data + i, &bits, 2);
    }
  }
}

ct_tensor ct_clone(const ct_tensor *a) {
  ct_tensor c = *a;
  c.buf = tu_buf_alloc(a->buf.bytes, (size_t)(a->buf.data - a->buf.base - TU_GUARD_BYTES));
  memcpy(c.buf.data, a->buf.data, a->buf.bytes);
  c.t.data = c.buf.data;
  return c;
}

void ct_free(ct_tensor *c) { tu_buf_free(&c->buf); }

unsigned char *ct_row(const ct_tensor *c, size_t b, size_t t) {
  return c->buf.data + (b * c->t.sample_stride + t * c->t.seq_stride) * c->es;
}

void ct_copy_rows(const ct_tensor *dst, const ct_tensor *src, const size_t *idx, size_t k, size_t T, size_t D) {
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++) memcpy(ct_row(dst, i, t), ct_row(src, idx[i], t), D * src->es);
}

int ct_rows_equal(const ct_tensor *a, const ct_tensor *b, const size_t *idx, size_t k, size_t T, size_t D) {
  for (size_t i = 0; i < k; i++)
    for (size_t t = 0; t < T; t++)
      if (memcmp(ct_row(a, i, t), ct_row(b, idx ? idx[i] : i, t), D * a->es) != 0) return 0;
  return 1;
}

void ct_assert_same_buffer(const ct_tensor *a, const ct_tensor *b, const char *what) {
  if (memcmp(a->buf.data, b->buf.data, a->buf.bytes) != 0) {
    size_t i = 0;
    while (a->buf.data[i] == b->buf.data[i]) i++;
    fail_msg("%s: buffers differ at byte %zu of %zu", what, i, a->buf.bytes);
  }
  assert_true(tu_guards_intact(&a->buf));
  assert_true(tu_guards_intact(&b->buf));
}

void ct_pick_case(tu_rng *rng, ct_case *c) {
  static const int combos[][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                  {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  const size_t ci = tu_range(rng, 0, 4);
  c->xt = combos[ci][0];
  c->ft = combos[ci][1];
  dp_params_init(&c->p);
  static const double probs[] = {0.0, 1.0, 0.5, 0.1, 0.9};
  c->p.drop_prob = tu_range(rng, 0, 2) ? probs[tu_range(rng, 0, 4)] : (double)tu_range(rng, 0, 1000) / 1000.0;
  static const int modes[] = {DP_MODE_ROW, DP_MODE_ROW, DP_MODE_BATCH, DP_MODE_EXACT_K, DP_MODE_EXACT_K};
  c->p.mode = modes[tu_range(rng, 0, 4)];
  c->p.scale_by_keep = tu_range(rng, 0, 3) != 0;
  c->p.seed = tu_next(rng);
  c->p.offset = tu_range(rng, 0, 50);
  c->p.sample_base = tu_range(rng, 0, 3) ? tu_range(rng, 0, 1000) : UINT64_MAX - tu_range(rng, 0, 10);
  static const int threads[] = {0, 1, 1, 2, 3};
  c->p.num_threads = threads[tu_range(rng, 0, 4)];
  static const uint32_t flags[] = {0, 0, DP_FLAG_STREAM_NEVER, DP_FLAG_STREAM_ALWAYS};
  c->p.flags = flags[tu_range(rng, 0, 3)];
  const size_t shape_kind = tu_range(rng, 0, 9);
  c->shape.batch = shape_kind == 0 ? tu_range(rng, 0, 2) : shape_kind < 8 ? tu_range(rng, 1, 40) : tu_range(rng, 60, 300);
  c->shape.seq = tu_range(rng, 0, 3) ? tu_range(rng, 1, 4) : 0;
  c->shape.dim = shape_kind == 9 ? tu_range(rng, 1, 3) : tu_range(rng, 0, 9) == 0 ? tu_range(rng, 8193, 9000)
                                                                                      : tu_range(rng, 0, 70);
  if (c->shape.dim > 8192) c->shape.batch = tu_range(rng, 1, 3); /* rows split into chunks across threads */
  c->idx = malloc((c->shape.batch + 1) * sizeof(size_t));
  assert_non_null(c->idx);
  assert_int_equal(dp_mask(&c->p, c->shape.batch, NULL, NULL, &c->k, c->idx), DP_OK);
}

size_t ct_seq_of(const dp_shape *s) { return s->seq ? s->seq : 1; }

