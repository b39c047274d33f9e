/* The f32 vector of the SSE2 kernels, as the <family>_body.h kernel bodies
 * use it: 4 lanes, no masked loads or stores (heads and tails go to the
 * scalar kernels). Included once, by an SSE2 kernel file, before its body. */
#ifndef DP_VEC_SSE2_H
#define DP_VEC_SSE2_H

#include <emmintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/kernels.h"
#include "kernels/common/stream.h"

typedef __m128 dpv;
#define DPV_LANES 4
#define DPV_ALIGN 16 /* aligned 16-byte stores never split a cache line */
#define DPV_STREAM 1
#define DPV_MASKED 0
#define dpv_set1(s) _mm_set1_ps(s)
#define dpv_load(p) _mm_loadu_ps(p)
#define dpv_store(p, v) _mm_storeu_ps((p), (v))
#define dpv_stream(p, v) _mm_stream_ps((p), (v))
#define dpv_add(a, b) _mm_add_ps((a), (b))
#define dpv_mul(a, b) _mm_mul_ps((a), (b))
#define dpv_canon(v) dp_canon_m128(v)

#endif
