/* AVX2 LayerScale join, out = x + ((gamma*f)*s): 8 lanes, masked
 * heads and tails. f32 only. */
#define DP_ISA avx2
#include "kernels/simd/vec_avx2.h"
#include "kernels/fwdls/fwdls_body.h"
