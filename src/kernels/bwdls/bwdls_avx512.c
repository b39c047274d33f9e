/* AVX-512 LayerScale backward of kept rows (see dp_bwdls_fn): f32 and bf16/f16
 * in 16 lanes, masked heads and tails. */
#define DP_ISA avx512
#include "kernels/simd/vec_avx512.h"
#include "kernels/simd/half_avx512.h"
#include "kernels/bwdls/bwdls_body.h"
#include "kernels/bwdls/bwdls_half_body.h"
