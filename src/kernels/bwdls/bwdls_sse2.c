/* SSE2 LayerScale backward of kept rows (see dp_bwdls_fn): f32 in 4 lanes,
 * bf16/f16 8 per step with integer conversions; the scalar kernels do heads
 * and tails. */
#define DP_ISA sse2
#include "kernels/simd/vec_sse2.h"
#include "kernels/simd/half_sse2.h"
#include "kernels/bwdls/bwdls_body.h"
#include "kernels/bwdls/bwdls_half_body.h"
