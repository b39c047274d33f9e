/*
 * Helpers of the sample compaction tests (test_compact.c, test_compact_ls.c):
 * tensors of n samples in a layout of their own (dense, seq-first, padded)
 * in guarded buffers, row copies and comparisons, and a random call (dtypes,
 * mode, drop probability, threads, shape) with its mask's kept samples.
 */
#ifndef DP_TEST_COMPACT_UTIL_H
#define DP_TEST_COMPACT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "droppath/droppath.h"
#include "test_util.h"

/* A tensor of n samples in one guarded buffer, in a layout of its own. */
typedef struct ct_tensor {
  tu_buf buf;
  dp_tensor t;
  size_t n, es;
} ct_tensor;

/* n samples of T rows of D elements of dtype, a random layout, random bytes
 * (NaNs and infinities included: both paths of a comparison see them). */
ct_tensor ct_alloc(tu_rng *rng, int dtype, size_t n, size_t T, size_t D);
/* Refills every element (padding too) with values of magnitude 2^-6 to 2^6,
 * either sign: sums over many rows then depend on their order. */
void ct_fill_moderate(ct_tensor *c, tu_rng *rng);
/* A copy in a buffer of its own (same layout, same misalignment). */
ct_tensor ct_clone(const ct_tensor *a);
void ct_free(ct_tensor *c);
unsigned char *ct_row(const ct_tensor *c, size_t b, size_t t);
/* dst sample i := src sample idx[i], row by row (the test's own gather). */
void ct_copy_rows(const ct_tensor *dst, const ct_tensor *src, const size_t *idx, size_t k, size_t T, size_t D);
/* Nonzero if sample i of a and sample idx[i] (i when idx is NULL) of b have the same row bytes, for every i < k. */
int ct_rows_equal(const ct_tensor *a, const ct_tensor *b, const size_t *idx, size_t k, size_t T, size_t D);
/* Whole buffers (padding included) and both guard zones equal, else a failure naming `what`. */
void ct_assert_same_buffer(const ct_tensor *a, const ct_tensor *b, const char *what);

/* A random call: dtypes (x, f), params, shape, and the mask's kept samples
 * (k of them in idx, malloc'd: free it). */
typedef struct ct_case {
  dp_params p;
  dp_shape shape;
  int xt, ft;
  size_t k, *idx;
} ct_case;

void ct_pick_case(tu_rng *rng, ct_case *c);
size_t ct_seq_of(const dp_shape *s);

#endif /* DP_TEST_COMPACT_UTIL_H */
