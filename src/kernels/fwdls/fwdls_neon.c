/* NEON LayerScale join, out = x + ((gamma*f)*s): f32 in 4 lanes, bf16/f16 8
 * per step; the scalar kernels do tails. */
#define DP_ISA neon
#include "kernels/simd/vec_neon.h"
#include "kernels/simd/half_neon.h"
#include "kernels/fwdls/fwdls_body.h"
#include "kernels/fwdls/fwdls_half_body.h"
