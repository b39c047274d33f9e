/* AVX2 LayerScale backward of kept rows (see dp_bwdls_fn): f32 in 8 lanes with
 * masked heads and tails; bf16/f16 in 8 lanes (F16C) with the scalar kernels
 * doing heads and tails. */
#define DP_ISA avx2
#include "kernels/simd/vec_avx2.h"
#include "kernels/simd/half_avx2.h"
#include "kernels/bwdls/bwdls_body.h"
#include "kernels/bwdls/bwdls_half_body.h"
