/* Element types: their sizes, and the kernel combo of a residual and a branch type. */
#ifndef DP_CORE_DTYPE_H
#define DP_CORE_DTYPE_H

#include <stddef.h>

#include "droppath/droppath.h"
#include "kernels/kernels.h"

/* Bytes per element, 0 for an unknown dtype. */
static inline size_t dp_dtype_size(int dtype) {
  switch (dtype) {
    case DP_F32: return 4;
    case DP_BF16:
    case DP_F16: return 2;
    default: return 0;
  }
}

/* The kernel combo for residual-stream type x and branch type f, or -1. */
static inline int dp_combo_of(int x_dtype, int f_dtype) {
#define DP_COMBO_MATCH_(ctx, name, id, xt, ft) \
  if (x_dtype == (xt) && f_dtype == (ft)) return id;
  DP_COMBOS_ALL(DP_COMBO_MATCH_, )
#undef DP_COMBO_MATCH_
  return -1;
}

#endif /* DP_CORE_DTYPE_H */
