/* AVX2 fused forward, out = x + (s*f): f32 in 8 lanes with masked heads and
 * tails; bf16/f16 in 8 lanes (16 when all operands are bf16) with the scalar
 * kernels doing heads and tails. */
#define DP_ISA avx2
#include "kernels/simd/vec_avx2.h"
#include "kernels/simd/half_avx2.h"
#include "kernels/fwd/fwd_body.h"
#include "kernels/fwd/fwd_half_body.h"
