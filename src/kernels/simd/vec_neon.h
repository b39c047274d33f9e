/* The f32 vector of the NEON kernels, as the <family>_body.h kernel bodies
 * use it: 4 lanes, no masked loads or stores (tails go to the scalar
 * kernels).  No alignment peel and no streaming: AArch64 has no
 * non-temporal store worth using here (STNP is only a hint), and the NEON
 * kernels never peeled.  Multiply and add stay separate instructions
 * (vmlaq_f32 may be fused), so each result is rounded twice as in the scalar
 * kernel. Included once, by a NEON kernel file, before its body. */
#ifndef DP_VEC_NEON_H
#define DP_VEC_NEON_H

#include <arm_neon.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/kernels.h"
#include "kernels/common/stream.h"

typedef float32x4_t dpv;
#define DPV_LANES 4
#define DPV_ALIGN 0 /* no peel */
#define DPV_STREAM 0
#define DPV_MASKED 0
#define dpv_set1(s) vdupq_n_f32(s)
#define dpv_load(p) vld1q_f32(p)
#define dpv_store(p, v) vst1q_f32((p), (v))
#define dpv_stream(p, v) vst1q_f32((p), (v)) /* never chosen: DPV_STREAM is 0 */
#define dpv_add(a, b) vaddq_f32((a), (b))
#define dpv_mul(a, b) vmulq_f32((a), (b))
#define dpv_canon(v) dp_canon_f32x4(v)

#endif
