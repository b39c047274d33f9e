/* AVX-512 drop_path of a kept row, out = s*x: f32 and bf16/f16 in 16 lanes,
 * masked heads and tails. */
#define DP_ISA avx512
#include "kernels/simd/vec_avx512.h"
#include "kernels/simd/half_avx512.h"
#include "kernels/scale/scale_body.h"
#include "kernels/scale/scale_half_body.h"
