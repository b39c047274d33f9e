/* AVX-512 drop_path of a kept row: out = s*x, 16 lanes, masked head and tail.
 * The body is scale_x86.h, shared by the x86 ISAs. */
#include "kernels/simd/vec_avx512.h"

#define DP_SCALE_NAME dp_scale_f32__avx512
#include "kernels/scale/scale_body.h"
