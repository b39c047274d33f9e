/* Shared test helpers: seeded RNG, float bits and element widening, guarded
 * buffers, seed reporting. No cmocka: the kernel checks (tests/kernels) use
 * them and dp_bench links those. */
#ifndef DP_TEST_UTIL_H
#define DP_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "droppath/droppath.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seed for this run: DP_TEST_SEED env var if set, else time-based. Printed
 * once to stderr so a failure can be replayed with DP_TEST_SEED=<n>. */
uint64_t tu_seed(void);

/* The bits of a float and back (memcpy: no aliasing or union tricks). */
static inline uint32_t tu_f32_bits(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}
static inline float tu_bits_f32(uint32_t u) {
  float v;
  memcpy(&v, &u, 4);
  return v;
}

/* Exact widening of bf16 and f16 bits; a NaN keeps its sign and payload. */
static inline float tu_bf16_to_f32(uint16_t h) { return tu_bits_f32((uint32_t)h << 16); }
static inline float tu_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u;
  if (e == 31) return tu_bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float v = (float)m * 0x1p-24f; /* zero or subnormal: exact */
    return sign ? -v : v;
  }
  return tu_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}
/* Bytes per element of dtype; 0 for an unknown one. */
static inline size_t tu_dtype_size(int dtype) {
  return dtype == DP_F32 ? 4 : (dtype == DP_BF16 || dtype == DP_F16) ? 2 : 0;
}

/* The element of type dtype (DP_F32, DP_BF16, DP_F16) at p, as a float. */
static inline float tu_load_elem(const void *p, int dtype) {
  if (dtype == DP_F32) {
    float f;
    memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  memcpy(&h, p, 2);
  return dtype == DP_BF16 ? tu_bf16_to_f32(h) : tu_f16_to_f32(h);
}

/* splitmix64-based generator: deterministic for a given state. */
typedef struct tu_rng {
  uint64_t state;
} tu_rng;
void tu_rng_init(tu_rng *r, uint64_t seed);
uint64_t tu_next(tu_rng *r);
/* Uniform integer in [lo, hi]. */
size_t tu_range(tu_rng *r, size_t lo, size_t hi);
/* Uniform float in [-1, 1). */
float tu_float(tu_rng *r);
/* Fill n floats with random values, occasionally special ones (0, -0, inf, NaN, subnormal). */
void tu_fill_floats(tu_rng *r, float *p, size_t n, int specials);

/* A buffer with guard bytes on both sides. data points inside; the guard
 * pattern is TU_GUARD_BYTE. */
#define TU_GUARD_BYTES 256
#define TU_GUARD_BYTE 0x99
typedef struct tu_buf {
  unsigned char *base; /* malloc'd block */
  size_t bytes;        /* usable bytes at data */
  unsigned char *data; /* base + TU_GUARD_BYTES + misalign */
} tu_buf;
/* Allocate `bytes` usable bytes, data misaligned by `misalign` bytes from a
 * 64-byte boundary, everything (data included) filled with TU_GUARD_BYTE. */
tu_buf tu_buf_alloc(size_t bytes, size_t misalign);
void tu_buf_free(tu_buf *b);
/* Nonzero if both guard zones are intact. */
int tu_guards_intact(const tu_buf *b);
/* Whether the library may use ISA k's kernels when capped at ISA cap: the
 * expected rule written out here, independently of src/kernels/isas.h, so a
 * wrong list or rule there fails the tests (add a new ISA here too): scalar
 * stands in for everything, the x86 ISAs in order, NEON only for itself. */
static inline int tu_isa_le(dp_isa k, dp_isa cap) {
  if (k == DP_ISA_SCALAR) return 1;
  if (k == DP_ISA_NEON || cap == DP_ISA_NEON) return k == cap;
  return k <= cap;
}

/* Index of the first byte of [p, p+n) that is not TU_GUARD_BYTE; n if none. */
size_t tu_first_dirty(const unsigned char *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif
