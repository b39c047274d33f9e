/* AVX2: 8 lanes a vector, two vectors a block of 16; the residual join + norm
 * backward over half_avx2.h for every combo (nbwd_body.h). */
#define DP_ISA avx2
#include "kernels/simd/half_avx2.h"
#include "kernels/norm/nbwd_body.h"
