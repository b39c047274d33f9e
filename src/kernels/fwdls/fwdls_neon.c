/* NEON LayerScale join, out = x + ((gamma*f)*s): 4 lanes; the
 * scalar kernel does tails. f32 only. */
#define DP_ISA neon
#include "kernels/simd/vec_neon.h"
#include "kernels/fwdls/fwdls_body.h"
