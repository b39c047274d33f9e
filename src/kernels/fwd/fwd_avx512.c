/* AVX-512 fused forward, out = x + (s*f): f32 and bf16/f16 in 16 lanes,
 * masked heads and tails. */
#define DP_ISA avx512
#include "kernels/simd/vec_avx512.h"
#include "kernels/simd/half_avx512.h"
#include "kernels/fwd/fwd_body.h"
#include "kernels/fwd/fwd_half_body.h"
