/* AVX-512 fused forward: out = x + (s*f), 16 lanes, masked head and tail.
 * The body is fwd_x86.h, shared by the x86 ISAs. */
#include "x86_vec_avx512.h"

#define DP_FWD_NAME dp_fwd_f32__avx512
#include "fwd_x86.h"
