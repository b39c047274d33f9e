/* Version, status names, defaults and tensor-view helpers. */
#include "droppath/droppath.h"
#include "droppath/version.h"

const char *dp_version_string(void) { return DP_VERSION_STRING; }

int dp_version_number(void) { return DP_VERSION_NUMBER; }

const char *dp_status_string(dp_status status) {
  switch (status) {
    case DP_OK: return "success";
    case DP_ERR_NULL_POINTER: return "required pointer is NULL";
    case DP_ERR_BAD_PROBABILITY: return "probability is NaN or outside [0, 1]";
    case DP_ERR_BAD_STRIDE: return "invalid stride (smaller than the row, or rows overlap)";
    case DP_ERR_SIZE_OVERFLOW: return "size arithmetic overflows";
    case DP_ERR_OVERLAP: return "output overlaps an input or another output";
    case DP_ERR_BAD_MODE: return "unknown mode";
    case DP_ERR_BAD_DTYPE: return "unknown or unsupported dtype combination";
    case DP_ERR_BAD_FLAGS: return "unknown or contradictory flags";
    case DP_ERR_BAD_ISA: return "unknown ISA";
    case DP_ERR_ISA_UNSUPPORTED: return "ISA not available on this CPU or build";
    case DP_ERR_BAD_ARGUMENT: return "invalid argument";
    case DP_ERR_MISALIGNED: return "data pointer not aligned to its element size";
    case DP_ERR_NO_MEMORY: return "out of memory for a work buffer";
  }
  return "unknown status";
}

void dp_params_init(dp_params *params) {
  if (!params) return;
  *params = (dp_params){0};
  params->mode = DP_MODE_ROW;
  params->scale_by_keep = 1;
}

dp_tensor dp_tensor_dense(void *data, dp_dtype dtype, dp_shape shape) {
  const size_t T = shape.seq ? shape.seq : 1;
  dp_tensor t = {data, (int)dtype, T * shape.dim, shape.dim};
  return t;
}

dp_tensor dp_tensor_seq_first(void *data, dp_dtype dtype, dp_shape shape) {
  dp_tensor t = {data, (int)dtype, shape.dim, shape.batch * shape.dim};
  return t;
}
