/* The f32 vector of the AVX-512 kernels, as the <family>_body.h kernel
 * bodies use it: 16 lanes; heads and tails use mask registers, whose
 * masked-off lanes are neither read nor written. Included once, by an
 * AVX-512 kernel file, before its body. */
#ifndef DP_VEC_AVX512_H
#define DP_VEC_AVX512_H

#include <immintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/kernels.h"
#include "kernels/common/stream.h"

typedef __m512 dpv;
typedef __mmask16 dpv_mask;
#define DPV_LANES 16
#define DPV_ALIGN 64 /* a misaligned 64-byte store splits a cache line every time */
#define DPV_STREAM 1
#define DPV_MASKED 1
#define dpv_set1(s) _mm512_set1_ps(s)
#define dpv_load(p) _mm512_loadu_ps(p)
#define dpv_store(p, v) _mm512_storeu_ps((p), (v))
#define dpv_stream(p, v) _mm512_stream_ps((p), (v))
#define dpv_add(a, b) _mm512_add_ps((a), (b))
#define dpv_mul(a, b) _mm512_mul_ps((a), (b))
#define dpv_canon(v) dp_canon_m512(v)
#define dpv_mload(m, p) _mm512_maskz_loadu_ps((m), (p))
#define dpv_mstore(m, p, v) _mm512_mask_storeu_ps((p), (m), (v))

/* Lanes [0, k) set, k < 16. */
static inline dpv_mask dpv_first(size_t k) { return (__mmask16)((1u << k) - 1u); }

#endif
