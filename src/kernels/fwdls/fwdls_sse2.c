/* SSE2 LayerScale join, out = x + ((gamma*f)*s): 4 lanes; the scalar
 * kernel does heads and tails. f32 only. */
#define DP_ISA sse2
#include "kernels/simd/vec_sse2.h"
#include "kernels/fwdls/fwdls_body.h"
