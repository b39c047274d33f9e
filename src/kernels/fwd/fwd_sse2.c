/* SSE2 fused forward: out = x + (s*f), 4 lanes; the scalar kernel does head and tail.
 * The body is fwd_x86.h, shared by the x86 ISAs. */
#include "kernels/simd/vec_sse2.h"

#define DP_FWD_NAME dp_fwd_f32__sse2
#include "kernels/fwd/fwd_body.h"
