/* SSE2 backward of a kept row (see dp_bwd_fn), 4 lanes; the scalar kernel does head and tail.
 * The body is bwd_x86.h, shared by the x86 ISAs. */
#include "kernels/simd/vec_sse2.h"

#define DP_BWD_NAME dp_bwd_f32__sse2
#include "kernels/bwd/bwd_body.h"
