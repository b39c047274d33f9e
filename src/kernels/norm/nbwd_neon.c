/* NEON: 8 lanes a vector (two registers), two vectors a block of 16; the residual join + norm
 * backward over half_neon.h for every combo (nbwd_body.h). */
#define DP_ISA neon
#include "kernels/simd/half_neon.h"
#include "kernels/norm/nbwd_body.h"
