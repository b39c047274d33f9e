/* AVX2 backward of a kept row (see dp_bwd_fn), 8 lanes, masked head and tail.
 * The body is bwd_x86.h, shared by the x86 ISAs. */
#include "kernels/simd/vec_avx2.h"

#define DP_BWD_NAME dp_bwd_f32__avx2
#include "kernels/bwd/bwd_body.h"
