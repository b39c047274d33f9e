/*
 * Argument checking. Every public operation runs all of its checks before
 * it writes a byte, which is what makes "on error, outputs are untouched"
 * true. An operation describes its arguments once, as a table of roles
 * (dp_op_args); dp_check_args checks a call against it.
 */
#ifndef DP_CORE_VALIDATE_H
#define DP_CORE_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "kernels/common/inline.h"
#include "droppath/droppath.h"

/* A tensor's or array's footprint after validation, as addresses: a span
 * that fits in size_t may still end more than PTRDIFF_MAX bytes past its
 * data, where forming a pointer is undefined (UBSan reports it), so the
 * ends are integers. */
typedef struct dp_extent {
  uintptr_t lo; /* first byte (0 for an empty or absent argument) */
  uintptr_t hi; /* one past the last byte */
} dp_extent;

dp_status dp_check_params(const dp_params *params);
/* Checks dtype, pointer, strides and size arithmetic of one tensor; fills *ext. */
dp_status dp_check_tensor(const dp_tensor *t, const dp_shape *shape, dp_extent *ext);
/* Extent of a plain array of n elements of elem_size bytes (n may be 0, p may be NULL then). */
dp_status dp_check_array(const void *p, size_t n, size_t elem_size, dp_extent *ext);
/* Kept indices of a compact call: `kept` entries (the array is required when
 * kept > 0), strictly ascending, each below B; else DP_ERR_NULL_POINTER or
 * DP_ERR_BAD_ARGUMENT. Run after dp_check_args_kept has checked the array's
 * extent, so reading it is safe. */
dp_status dp_check_kept_indices(const size_t *idx, size_t kept, size_t B);

/* Nonzero if the two extents share a byte. */
static inline int dp_extents_overlap(dp_extent a, dp_extent b) {
  if (!a.lo || !b.lo || a.lo == a.hi || b.lo == b.hi) return 0;
  return a.lo < b.hi && b.lo < a.hi;
}

/* Nonzero if a and b describe exactly the same elements (same data, dtype, strides). */
static inline int dp_tensors_identical(const dp_tensor *a, const dp_tensor *b, const dp_shape *shape) {
  const size_t T = shape->seq ? shape->seq : 1;
  /* A stride that is never applied (one sample, one row) does not matter. */
  return a->data == b->data && a->dtype == b->dtype && (shape->batch <= 1 || a->sample_stride == b->sample_stride) &&
         (T == 1 || a->seq_stride == b->seq_stride);
}

/* B*T rows of a shape (T = 0 counts as 1), or DP_ERR_SIZE_OVERFLOW. */
static inline dp_status dp_rows_of(const dp_shape *shape, size_t *rows) {
  const size_t T = shape->seq ? shape->seq : 1;
#if defined(__GNUC__)
  return __builtin_mul_overflow(shape->batch, T, rows) ? DP_ERR_SIZE_OVERFLOW : DP_OK;
#else
  if (T != 0 && shape->batch > SIZE_MAX / T) return DP_ERR_SIZE_OVERFLOW;
  *rows = shape->batch * T;
  return DP_OK;
#endif
}

/* ---- role tables */

#define DP_MAX_TENSORS 6
#define DP_MAX_ARRAYS 9

/* The dtype class of a tensor role: the residual-stream type X or the branch type F. */
enum { DP_CLASS_X, DP_CLASS_F };

typedef struct dp_tensor_role {
  unsigned char dtype_class; /* DP_CLASS_X or DP_CLASS_F */
  unsigned char output;      /* written by the operation */
  unsigned char optional;    /* data == NULL means absent (else NULL is an error when not empty) */
  unsigned char may_be;      /* bit i: an output may be exactly tensor i (the same elements) */
  unsigned char compact;     /* holds the call's kept samples only (sample compaction) */
} dp_tensor_role;

typedef struct dp_array_role {
  unsigned char output;
  unsigned char per_sample; /* B elements, else one (unless one of those below) */
  unsigned char per_kept;   /* the kept count's elements (sample compaction) */
  unsigned char elem_size;  /* bytes */
  unsigned char per_row;     /* B*T elements (one per row) */
  unsigned char per_channel; /* D elements (one per element of a row) */
} dp_array_role;

/* An operation's arguments: tensors (each absent or validated against the
 * shape) and plain arrays (each optional: NULL means not asked for). The
 * dtypes of x_role and f_role choose the combo; every X-class tensor has
 * x_role's dtype and every F-class one f_role's. */
typedef struct dp_op_args {
  int n_tensors, n_arrays;
  int x_role, f_role;
  dp_tensor_role tensor[DP_MAX_TENSORS];
  dp_array_role array[DP_MAX_ARRAYS];
} dp_op_args;

#if defined(__GNUC__)
#define DP_UNROLL _Pragma("GCC unroll 8")
#else
#define DP_UNROLL
#endif

/*
 * Checks a call against its table, in this order (which fixes the status of
 * a call with several faults): each tensor, the dtypes, each array, then
 * overlaps (an output may share memory with another argument only by being
 * exactly a tensor its role names). tensors[i] has NULL data for an absent
 * optional tensor; arrays[i] may be NULL. Compact roles have `kept` samples
 * (dp_check_args: none). Yields the combo.
 * Inline, with spec a constant table: the loops unroll into the straight
 * checks a hand-written entry point would make (a tiny call pays every one).
 */
DP_ALWAYS_INLINE dp_status dp_check_args_kept(const dp_op_args *spec, const dp_shape *shape, size_t kept,
                                             const dp_tensor *const tensors[], const void *const arrays[],
                                             dp_combo *combo) {
  dp_extent e[DP_MAX_TENSORS + DP_MAX_ARRAYS];
  dp_status st;
  const int nt = spec->n_tensors, na = spec->n_arrays;
  const dp_shape kept_shape = {kept, shape->seq, shape->dim};
  DP_UNROLL for (int i = 0; i < nt; i++) {
    e[i].lo = e[i].hi = 0;
    if (spec->tensor[i].optional && !tensors[i]->data) continue;
    if ((st = dp_check_tensor(tensors[i], spec->tensor[i].compact ? &kept_shape : shape, &e[i])) != DP_OK) return st;
  }
  if (nt > 0) {
    const int x = tensors[spec->x_role]->dtype, f = tensors[spec->f_role]->dtype;
    const int c = dp_combo_of(x, f);
    if (c < 0) return DP_ERR_BAD_DTYPE;
    DP_UNROLL for (int i = 0; i < nt; i++) {
      if (spec->tensor[i].optional && !tensors[i]->data) continue;
      if (tensors[i]->dtype != (spec->tensor[i].dtype_class == DP_CLASS_X ? x : f)) return DP_ERR_BAD_DTYPE;
    }
    *combo = (dp_combo)c;
  }
  DP_UNROLL for (int a = 0; a < na; a++) {
    e[nt + a].lo = e[nt + a].hi = 0;
    if (!arrays[a]) continue;
    size_t n = spec->array[a].per_kept ? kept : spec->array[a].per_sample ? shape->batch : 1;
    if (spec->array[a].per_channel) n = shape->dim;
    if (spec->array[a].per_row && dp_rows_of(shape, &n) != DP_OK) return DP_ERR_SIZE_OVERFLOW;
    if ((st = dp_check_array(arrays[a], n, spec->array[a].elem_size, &e[nt + a])) != DP_OK) return st;
  }
  /* Each output against every other argument (inputs may share memory). */
  DP_UNROLL for (int o = 0; o < nt + na; o++) {
    if (!(o < nt ? spec->tensor[o].output : spec->array[o - nt].output)) continue;
    DP_UNROLL for (int i = 0; i < nt + na; i++) {
      if (i == o || !dp_extents_overlap(e[o], e[i])) continue;
      if (o < nt && i < nt && (spec->tensor[o].may_be >> i & 1u) && dp_tensors_identical(tensors[o], tensors[i], shape))
        continue;
      return DP_ERR_OVERLAP;
    }
  }
  return DP_OK;
}

/* A call without compact roles. */
DP_ALWAYS_INLINE dp_status dp_check_args(const dp_op_args *spec, const dp_shape *shape, const dp_tensor *const tensors[],
                                        const void *const arrays[], dp_combo *combo) {
  return dp_check_args_kept(spec, shape, 0, tensors, arrays, combo);
}

#endif /* DP_CORE_VALIDATE_H */
