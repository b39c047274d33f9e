/* AVX-512 fused forward: out = x + (s*f), 16 lanes, masked head and tail.
 * The body is fwd_x86.h, shared by the x86 ISAs. */
#include "kernels/simd/vec_avx512.h"

#define DP_FWD_NAME dp_fwd_f32__avx512
#include "kernels/fwd/fwd_body.h"
