/* AVX-512 backward of a kept row (see dp_bwd_fn): f32 and bf16/f16 in 16
 * lanes, masked heads and tails. */
#define DP_ISA avx512
#include "kernels/simd/vec_avx512.h"
#include "kernels/simd/half_avx512.h"
#include "kernels/bwd/bwd_body.h"
#include "kernels/bwd/bwd_half_body.h"
