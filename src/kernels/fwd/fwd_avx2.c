/* AVX2 fused forward: out = x + (s*f), 8 lanes, masked head and tail.
 * The body is fwd_x86.h, shared by the x86 ISAs. */
#include "kernels/simd/vec_avx2.h"

#define DP_FWD_NAME dp_fwd_f32__avx2
#include "kernels/fwd/fwd_body.h"
