/* AVX2 drop_path of a kept row, out = s*x: f32 in 8 lanes with masked heads
 * and tails; bf16/f16 in 8 lanes (16 for bf16) with the scalar kernels doing
 * heads and tails. */
#define DP_ISA avx2
#include "kernels/simd/vec_avx2.h"
#include "kernels/simd/half_avx2.h"
#include "kernels/scale/scale_body.h"
#include "kernels/scale/scale_half_body.h"
