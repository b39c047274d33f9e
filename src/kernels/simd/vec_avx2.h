/* The f32 vector of the AVX2 kernels, as the <family>_body.h kernel bodies
 * use it: 8 lanes; heads and tails use vmaskmov, whose masked-off lanes are
 * neither read nor written. Included once, by an AVX2 kernel file, before
 * its body. */
#ifndef DP_VEC_AVX2_H
#define DP_VEC_AVX2_H

#include <immintrin.h>

#include "kernels/simd/canon_simd.h"
#include "kernels/kernels.h"
#include "kernels/common/stream.h"

typedef __m256 dpv;
typedef __m256i dpv_mask;
#define DPV_LANES 8
#define DPV_ALIGN 32 /* every other misaligned 32-byte store splits a cache line */
#define DPV_STREAM 1
#define DPV_MASKED 1
#define dpv_set1(s) _mm256_set1_ps(s)
#define dpv_load(p) _mm256_loadu_ps(p)
#define dpv_store(p, v) _mm256_storeu_ps((p), (v))
#define dpv_stream(p, v) _mm256_stream_ps((p), (v))
#define dpv_add(a, b) _mm256_add_ps((a), (b))
#define dpv_mul(a, b) _mm256_mul_ps((a), (b))
#define dpv_canon(v) dp_canon_m256(v)
#define dpv_mload(m, p) _mm256_maskload_ps((p), (m))
#define dpv_mstore(m, p, v) _mm256_maskstore_ps((p), (m), (v))

/* Lanes [0, k) set, k < 8. */
static inline dpv_mask dpv_first(size_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#endif
