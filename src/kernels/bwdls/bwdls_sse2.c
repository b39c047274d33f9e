/* SSE2 LayerScale backward of kept rows (see dp_bwdls_fn): 4 lanes;
 * the scalar kernel does heads and tails. f32 only. */
#define DP_ISA sse2
#include "kernels/simd/vec_sse2.h"
#include "kernels/bwdls/bwdls_body.h"
