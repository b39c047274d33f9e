/* Kernel dispatch: the table in use is the one for
 *   best ISA in (CPU/OS support ∩ built kernels), capped by DROPPATH_ISA
 *   (which can only narrow) and by dp_set_max_isa().
 * Per-ISA tables are built once under pthread_once; afterwards every call
 * only loads an atomic table pointer, so the first concurrent calls cannot race. */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/dispatch.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static dp_kernel_table tables[DP_ISA_COUNT];
static unsigned usable_mask; /* CPU ∩ built */
static int env_cap = -1;     /* from DROPPATH_ISA, -1 = none */
static atomic_int api_cap = -1;
_Atomic(const dp_kernel_table *) dp_active_table = NULL;
static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;

const char *dp_isa_name(dp_isa isa) {
  return (unsigned)isa < DP_ISA_COUNT ? dp_isa_info(isa)->name : "unknown";
}

/* Is `isa` allowed under `cap` (-1: no cap)? */
static int isa_at_most(int isa, int cap) { return cap < 0 || dp_isa_within((dp_isa)isa, (dp_isa)cap); }

static int best_isa(void) {
  const int cap = atomic_load(&api_cap);
  int best = DP_ISA_SCALAR;
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!(usable_mask >> isa & 1) || !isa_at_most(isa, env_cap) || !isa_at_most(isa, cap)) continue;
    /* Usable ISAs share one architecture, so rank orders them. */
    if (dp_isa_info((dp_isa)isa)->rank > dp_isa_info((dp_isa)best)->rank) best = isa;
  }
  return best;
}

static int parse_isa_env(const char *s) {
  char buf[16];
  size_t n = 0;
  if (!s) return -1;
  for (; s[n] && n + 1 < sizeof buf; n++) buf[n] = (char)tolower((unsigned char)s[n]);
  buf[n] = 0;
  for (int isa = 0; isa < DP_ISA_COUNT; isa++)
    if (strcmp(buf, dp_isa_info((dp_isa)isa)->name) == 0) return dp_isa_native((dp_isa)isa) ? isa : -1;
  if (strcmp(buf, "avx512f") == 0 || strcmp(buf, "avx-512") == 0) return dp_isa_native(DP_ISA_AVX512) ? DP_ISA_AVX512 : -1;
  if (strcmp(buf, "none") == 0 || strcmp(buf, "c") == 0) return DP_ISA_SCALAR;
  /* Unknown names (including another architecture's) are ignored: the
   * variable may narrow the choice but a typo must not break the program. */
  return -1;
}

/* Publishes the ISA's table: one store, so the ISA reported and the table
 * in use never disagree; release orders the table's contents (built
 * before) for the inline dp_current_kernels() readers. */
static void set_active(int isa) { atomic_store_explicit(&dp_active_table, &tables[isa], memory_order_release); }

static void init_dispatch(void) {
  usable_mask = dp_cpu_isa_mask() & dp_built_isa_mask();
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) dp_kernels_for_isa((dp_isa)isa, &tables[isa]);
  env_cap = parse_isa_env(getenv("DROPPATH_ISA"));
  set_active(best_isa());
}

const dp_kernel_table *dp_current_kernels_slow(void) {
  pthread_once(&init_once, init_dispatch);
  return atomic_load_explicit(&dp_active_table, memory_order_acquire);
}

int dp_isa_supported(dp_isa isa) {
  if ((unsigned)isa >= DP_ISA_COUNT) return 0;
  pthread_once(&init_once, init_dispatch);
  return (usable_mask >> isa) & 1;
}

dp_isa dp_active_isa(void) {
  pthread_once(&init_once, init_dispatch);
  return (dp_isa)(atomic_load_explicit(&dp_active_table, memory_order_acquire) - tables);
}

dp_status dp_set_max_isa(dp_isa isa) {
  if ((unsigned)isa >= DP_ISA_COUNT) return DP_ERR_BAD_ISA;
  if (!dp_isa_supported(isa)) return DP_ERR_ISA_UNSUPPORTED;
  /* Serialise writers so the active ISA always matches the last cap set. */
  pthread_mutex_lock(&cap_lock);
  atomic_store(&api_cap, (int)isa);
  set_active(best_isa());
  pthread_mutex_unlock(&cap_lock);
  return DP_OK;
}
