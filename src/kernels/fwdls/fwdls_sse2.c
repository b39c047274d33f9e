/* SSE2 LayerScale join, out = x + ((gamma*f)*s): f32 in 4 lanes, bf16/f16 8
 * per step with integer conversions; the scalar kernels do heads and tails. */
#define DP_ISA sse2
#include "kernels/simd/vec_sse2.h"
#include "kernels/simd/half_sse2.h"
#include "kernels/fwdls/fwdls_body.h"
#include "kernels/fwdls/fwdls_half_body.h"
