/*
 * Kernel dispatch: the table in use is the one for the best ISA in
 * (CPU/OS support ∩ built kernels), capped by DROPPATH_ISA (which can only
 * narrow) and by dp_set_max_isa(). dispatch.c builds every ISA's table once
 * and publishes the one in use with a single atomic store.
 */
#ifndef DP_CORE_DISPATCH_H
#define DP_CORE_DISPATCH_H

#include <stdatomic.h>

#include "kernels/kernels.h"

/* The table in use, NULL until dispatch is initialised. */
extern _Atomic(const dp_kernel_table *) dp_active_table;
/* Initialises dispatch once (thread-safe) and returns the table in use. */
const dp_kernel_table *dp_current_kernels_slow(void);
/* The table in use: after the first call, a single acquire load (inline:
 * a tiny call asks for it several times). */
static inline const dp_kernel_table *dp_current_kernels(void) {
  const dp_kernel_table *t = atomic_load_explicit(&dp_active_table, memory_order_acquire);
  return t ? t : dp_current_kernels_slow();
}

/* CPU/OS support bitmask, bit i = dp_isa i runnable here (cpu_features.c). */
unsigned dp_cpu_isa_mask(void);
/* Bitmask of ISAs with kernels compiled into this build (cpu_features.c). */
unsigned dp_built_isa_mask(void);

#endif /* DP_CORE_DISPATCH_H */
