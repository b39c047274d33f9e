/* Shared test helpers: seeded RNG, guarded buffers, seed reporting. */
#ifndef DP_TEST_UTIL_H
#define DP_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

#endif
