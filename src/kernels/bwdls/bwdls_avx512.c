/* AVX-512 LayerScale backward of kept rows (see dp_bwdls_fn): 16
 * lanes, masked heads and tails. f32 only. */
#define DP_ISA avx512
#include "kernels/simd/vec_avx512.h"
#include "kernels/bwdls/bwdls_body.h"
