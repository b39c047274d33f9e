/* AVX2 LayerScale backward of kept rows (see dp_bwdls_fn): 8 lanes,
 * masked heads and tails. f32 only. */
#define DP_ISA avx2
#include "kernels/simd/vec_avx2.h"
#include "kernels/bwdls/bwdls_body.h"
