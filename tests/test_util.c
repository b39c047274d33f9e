#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t tu_seed(void) {
  static int printed;
  static uint64_t seed;
  if (!printed) {
    const char *env = getenv("DP_TEST_SEED");
    seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    fprintf(stderr, "[ seed     ] DP_TEST_SEED=%llu\n", (unsigned long long)seed);
    printed = 1;
  }
  return seed;
}

void tu_rng_init(tu_rng *r, uint64_t seed) { r->state = seed ^ 0x9E3779B97F4A7C15ull; }

uint64_t tu_next(tu_rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

size_t tu_range(tu_rng *r, size_t lo, size_t hi) {
  if (hi <= lo) return lo;
  return lo + (size_t)(tu_next(r) % (uint64_t)(hi - lo + 1));
}

float tu_float(tu_rng *r) { return (float)((double)(tu_next(r) >> 40) * 0x1p-23 - 1.0); }

void tu_fill_floats(tu_rng *r, float *p, size_t n, int specials) {
  /* Signed zeros, infinities, NaNs with other payloads and signs (quiet and
   * signalling), subnormals, FLT_MAX: the cases where ISAs could differ. */
  static const uint32_t special_bits[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                                          0x7fc00000u, 0xffc00000u, 0x7fc12345u, 0x7f800001u,
                                          0x00000001u, 0x807fffffu, 0x7f7fffffu};
  for (size_t i = 0; i < n; i++) {
    if (specials && (tu_next(r) & 63) == 0) {
      uint32_t bits = special_bits[tu_next(r) % (sizeof special_bits / sizeof special_bits[0])];
      memcpy(&p[i], &bits, 4);
    } else {
      /* Two statements: the order of two tu_next() calls inside one
       * expression is unspecified, and golden files need it fixed. */
      const float v = tu_float(r);
      p[i] = v * (float)(1 + (tu_next(r) & 7));
    }
  }
}

tu_buf tu_buf_alloc(size_t bytes, size_t misalign) {
  tu_buf b;
  size_t total = bytes + 2 * TU_GUARD_BYTES + 128;
  b.base = (unsigned char *)malloc(total);
  if (!b.base) {
    fprintf(stderr, "out of memory allocating %zu bytes\n", total);
    abort();
  }
  memset(b.base, TU_GUARD_BYTE, total);
  uintptr_t start = ((uintptr_t)b.base + TU_GUARD_BYTES + 63) & ~(uintptr_t)63;
  b.data = (unsigned char *)start + (misalign % 64);
  b.bytes = bytes;
  return b;
}

void tu_buf_free(tu_buf *b) {
  free(b->base);
  b->base = b->data = NULL;
}

size_t tu_first_dirty(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n && p[i] == TU_GUARD_BYTE) i++;
  return i;
}

int tu_guards_intact(const tu_buf *b) {
  return tu_first_dirty(b->data - TU_GUARD_BYTES, TU_GUARD_BYTES) == TU_GUARD_BYTES &&
         tu_first_dirty(b->data + b->bytes, TU_GUARD_BYTES) == TU_GUARD_BYTES;
}
