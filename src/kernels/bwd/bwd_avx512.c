/* AVX-512 backward of a kept row (see dp_bwd_fn), 16 lanes, masked head and tail.
 * The body is bwd_x86.h, shared by the x86 ISAs. */
#include "kernels/simd/vec_avx512.h"

#define DP_BWD_NAME dp_bwd_f32__avx512
#include "kernels/bwd/bwd_body.h"
