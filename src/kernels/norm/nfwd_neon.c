/* NEON: 8 lanes a vector (two registers), two vectors a block of 16; the residual join + norm
 * over half_neon.h for every combo (nfwd_body.h). */
#define DP_ISA neon
#include "kernels/simd/half_neon.h"
#include "kernels/norm/nfwd_body.h"
