/* Philox4x32-10, the mask generator (philox.c; the public dp_philox4x32_10 too). */
#ifndef DP_CORE_PHILOX_H
#define DP_CORE_PHILOX_H

#include <stdint.h>

/* Philox word 0 for (seed, counter g, offset): the only word the mask uses. */
uint32_t dp_philox_word0(uint64_t seed, uint64_t g, uint64_t offset);

#endif /* DP_CORE_PHILOX_H */
