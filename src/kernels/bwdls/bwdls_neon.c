/* NEON LayerScale backward of kept rows (see dp_bwdls_fn): 4 lanes;
 * the scalar kernel does tails. f32 only. */
#define DP_ISA neon
#include "kernels/simd/vec_neon.h"
#include "kernels/bwdls/bwdls_body.h"
