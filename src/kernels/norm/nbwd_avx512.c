/* AVX-512: 16 lanes, one vector a block of 16; the residual join + norm
 * backward over half_avx512.h for every combo (nbwd_body.h). */
#define DP_ISA avx512
#include "kernels/simd/half_avx512.h"
#include "kernels/norm/nbwd_body.h"
