/* Argument checks (validate.h): parameters, one tensor, one array, and a
 * whole call against its operation's role table. */
#include "core/validate.h"

#include <math.h>

dp_status dp_check_params(const dp_params *params) {
  if (!params) return DP_ERR_NULL_POINTER;
  /* NaN fails both comparisons' complements, so test it explicitly. */
  if (isnan(params->drop_prob) || params->drop_prob < 0.0 || params->drop_prob > 1.0)
    return DP_ERR_BAD_PROBABILITY;
  if (params->mode != DP_MODE_ROW && params->mode != DP_MODE_BATCH && params->mode != DP_MODE_EXACT_K)
    return DP_ERR_BAD_MODE;
  const uint32_t known = DP_FLAG_STREAM_NEVER | DP_FLAG_STREAM_ALWAYS;
  if ((params->flags & ~known) != 0) return DP_ERR_BAD_FLAGS;
  if ((params->flags & known) == known) return DP_ERR_BAD_FLAGS; /* contradictory */
  if (params->num_threads < 0) return DP_ERR_BAD_ARGUMENT;
  return DP_OK;
}

/* a*b without wrapping; returns 0 on overflow. The builtins compile to a
 * multiply and a flag test: a division here costs more than a tiny call's
 * whole kernel time. */
static int mul_ok(size_t a, size_t b, size_t *out) {
#if defined(__GNUC__) || defined(__clang__)
  return !__builtin_mul_overflow(a, b, out);
#else
  if (b != 0 && a > SIZE_MAX / b) return 0;
  *out = a * b;
  return 1;
#endif
}

/* a*b + c without wrapping; returns 0 on overflow. */
static int mul_add(size_t a, size_t b, size_t c, size_t *out) {
  size_t ab;
  if (!mul_ok(a, b, &ab) || ab > SIZE_MAX - c) return 0;
  *out = ab + c;
  return 1;
}

static dp_status extent_of(const void *p, size_t bytes, dp_extent *ext) {
  const uintptr_t lo = (uintptr_t)p;
  if (bytes > UINTPTR_MAX - lo) return DP_ERR_SIZE_OVERFLOW; /* wraps the address space */
  ext->lo = lo;
  ext->hi = lo + bytes;
  return DP_OK;
}

dp_status dp_check_array(const void *p, size_t n, size_t elem_size, dp_extent *ext) {
  ext->lo = ext->hi = 0;
  if (n == 0) return DP_OK;
  if (!p) return DP_ERR_NULL_POINTER;
  size_t bytes;
  if (!mul_ok(n, elem_size, &bytes)) return DP_ERR_SIZE_OVERFLOW;
  const dp_status st = extent_of(p, bytes, ext);
  /* Elements are read as their type: an address off its size is undefined behaviour in C. */
  return st == DP_OK && ((uintptr_t)p & (elem_size - 1)) != 0 ? DP_ERR_MISALIGNED : st; /* sizes are powers of 2 */
}

dp_status dp_check_kept_indices(const size_t *idx, size_t kept, size_t B) {
  if (!idx && kept > 0) return DP_ERR_NULL_POINTER;
  if (kept > B) return DP_ERR_BAD_ARGUMENT;
  for (size_t i = 0; i < kept; i++)
    if (idx[i] >= B || (i > 0 && idx[i] <= idx[i - 1])) return DP_ERR_BAD_ARGUMENT;
  return DP_OK;
}

dp_status dp_check_tensor(const dp_tensor *t, const dp_shape *shape, dp_extent *ext) {
  const size_t B = shape->batch, D = shape->dim, T = shape->seq ? shape->seq : 1;
  ext->lo = ext->hi = 0;
  const size_t es = dp_dtype_size(t->dtype);
  if (es == 0) return DP_ERR_BAD_DTYPE;
  if (t->sample_stride < D) return DP_ERR_BAD_STRIDE;
  if (T > 1 && t->seq_stride < D) return DP_ERR_BAD_STRIDE;
  if (B == 0 || D == 0) return DP_OK;
  if (!t->data) return DP_ERR_NULL_POINTER;

  /* Last element index: (B-1)*ss + (T-1)*ts + D-1; the span is one more. */
  size_t span, with_seq;
  if (!mul_add(B - 1, t->sample_stride, D, &span)) return DP_ERR_SIZE_OVERFLOW;
  if (T > 1) {
    if (!mul_add(T - 1, t->seq_stride, span, &with_seq)) return DP_ERR_SIZE_OVERFLOW;
    span = with_seq;
    /* Rows must be distinct: one stride must step over the whole range of
     * the other (sample-major or sequence-major nesting). */
    if (B > 1) {
      size_t sample_block, seq_block;
      const int seq_outer_ok = mul_add(B - 1, t->sample_stride, D, &sample_block) &&
                               t->seq_stride >= sample_block;
      const int sample_outer_ok = mul_add(T - 1, t->seq_stride, D, &seq_block) &&
                                  t->sample_stride >= seq_block;
      if (!seq_outer_ok && !sample_outer_ok) return DP_ERR_BAD_STRIDE;
    }
  }
  size_t bytes;
  if (!mul_ok(span, es, &bytes)) return DP_ERR_SIZE_OVERFLOW;
  const dp_status st = extent_of(t->data, bytes, ext);
  /* Strides count elements, so an aligned first element aligns every row. */
  return st == DP_OK && ((uintptr_t)t->data & (es - 1)) != 0 ? DP_ERR_MISALIGNED : st;
}

