/* AVX-512 LayerScale join, out = x + ((gamma*f)*s): f32 and bf16/f16 in 16
 * lanes, masked heads and tails. */
#define DP_ISA avx512
#include "kernels/simd/vec_avx512.h"
#include "kernels/simd/half_avx512.h"
#include "kernels/fwdls/fwdls_body.h"
#include "kernels/fwdls/fwdls_half_body.h"
