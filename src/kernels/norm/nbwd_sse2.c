/* SSE2: 8 lanes a vector (two registers), two vectors a block of 16; the residual join + norm
 * backward over half_sse2.h for every combo (nbwd_body.h). */
#define DP_ISA sse2
#include "kernels/simd/half_sse2.h"
#include "kernels/norm/nbwd_body.h"
