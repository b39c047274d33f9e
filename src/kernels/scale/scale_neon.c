/* NEON drop_path of a kept row, out = s*x: f32 in 4 lanes, bf16/f16 8 per
 * step; the scalar kernels do tails. */
#define DP_ISA neon
#include "kernels/simd/vec_neon.h"
#include "kernels/simd/half_neon.h"
#include "kernels/scale/scale_body.h"
#include "kernels/scale/scale_half_body.h"
