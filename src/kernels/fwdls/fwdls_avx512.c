/* AVX-512 LayerScale join, out = x + ((gamma*f)*s): 16 lanes,
 * masked heads and tails. f32 only. */
#define DP_ISA avx512
#include "kernels/simd/vec_avx512.h"
#include "kernels/fwdls/fwdls_body.h"
