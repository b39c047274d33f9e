/* Last-level cache detection and a call's share of it (cache.h). */
#include "core/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define DP_CACHE_CPUID 1
#endif

#define PLAUSIBLE_MIN ((size_t)256 << 10)
#define PLAUSIBLE_MAX ((uint64_t)64 << 30)
#define UNKNOWN_BYTES ((size_t)32 << 20)

static dp_llc llc;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* dp_llc_share(1) once known (never 0 then): every small call asks, and
 * one relaxed load costs less than pthread_once's call. */
static atomic_size_t share_one;

static int plausible(uint64_t bytes) { return bytes >= PLAUSIBLE_MIN && bytes <= PLAUSIBLE_MAX && bytes <= SIZE_MAX; }

unsigned dp_llc_count_cpus(const char *s) {
  unsigned n = 0;
  for (;;) {
    char *end;
    const unsigned long a = strtoul(s, &end, 10);
    if (end == s) return 0;
    unsigned long b = a;
    if (*end == '-') {
      const char *t = end + 1;
      b = strtoul(t, &end, 10);
      if (end == t || b < a) return 0;
    }
    n += (unsigned)(b - a + 1);
    if (*end != ',') return n; /* the list ends (a newline or NUL follows) */
    s = end + 1;
  }
}

uint64_t dp_llc_parse_size(const char *text) {
  char *unit;
  const uint64_t v = strtoull(text, &unit, 10);
  if (unit == text) return 0;
  switch (*unit) {
    case 'K': case 'k': return v << 10;
    case 'M': case 'm': return v << 20;
    case 'G': case 'g': return v << 30;
    default: return v;
  }
}

static int read_line(const char *dir, const char *file, char *buf, size_t len) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *fp = fopen(path, "r");
  if (!fp) return 0;
  const int ok = fgets(buf, (int)len, fp) != NULL;
  fclose(fp);
  return ok;
}

/* cpu0's highest data or unified cache in sysfs. */
static int from_sysfs(uint64_t *bytes, unsigned *sharing) {
  int best_level = 0;
  for (int idx = 0; idx < 16; idx++) {
    char dir[96], buf[256];
    snprintf(dir, sizeof dir, "/sys/devices/system/cpu/cpu0/cache/index%d", idx);
    if (!read_line(dir, "level", buf, sizeof buf)) continue;
    const int level = atoi(buf);
    if (!read_line(dir, "type", buf, sizeof buf) || strncmp(buf, "Instruction", 11) == 0) continue;
    if (level <= best_level || !read_line(dir, "size", buf, sizeof buf)) continue;
    best_level = level;
    *bytes = dp_llc_parse_size(buf);
    *sharing = read_line(dir, "shared_cpu_list", buf, sizeof buf) ? dp_llc_count_cpus(buf) : 0;
  }
  return best_level > 0;
}

#if DP_CACHE_CPUID
/* The highest data or unified cache of a deterministic cache leaf (4 on
 * Intel, 0x8000001D on AMD): size and how many logical CPUs share it. */
static int from_cpuid_leaf(unsigned leaf, uint64_t *bytes, unsigned *sharing) {
  int best_level = 0;
  for (unsigned sub = 0; sub < 16; sub++) {
    unsigned a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    const unsigned type = a & 31u, level = (a >> 5) & 7u;
    if (type == 0) break;
    if (type == 2 || (int)level <= best_level) continue; /* 2: instruction cache */
    best_level = (int)level;
    *bytes = (uint64_t)(((b >> 22) & 0x3FFu) + 1) * (((b >> 12) & 0x3FFu) + 1) * ((b & 0xFFFu) + 1) * ((uint64_t)c + 1);
    *sharing = ((a >> 14) & 0xFFFu) + 1;
  }
  return best_level > 0;
}

static int from_cpuid(uint64_t *bytes, unsigned *sharing) {
  if (__get_cpuid_max(0, NULL) >= 4 && from_cpuid_leaf(4, bytes, sharing)) return 1;
  return (unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x8000001Du && from_cpuid_leaf(0x8000001Du, bytes, sharing);
}
#endif

static int under_hypervisor(void) {
#if DP_CACHE_CPUID
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c >> 31 & 1u);
#else
  return 0; /* no portable test: bare metal's cap */
#endif
}

static void detect(void) {
  uint64_t sys_bytes = 0, cpuid_bytes = 0;
  unsigned sys_sharing = 0, cpuid_sharing = 0;
  const char *env = getenv("DROPPATH_LLC_BYTES"); /* for tests, benchmarks and odd systems */
  llc.override = env && *env ? (size_t)strtoull(env, NULL, 0) : 0;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const int have_sys = from_sysfs(&sys_bytes, &sys_sharing) && plausible(sys_bytes);
  int have_cpuid = 0;
#if DP_CACHE_CPUID
  have_cpuid = from_cpuid(&cpuid_bytes, &cpuid_sharing) && plausible(cpuid_bytes);
  /* The leaf counts the IDs the cache can address, often more than exist. */
  if (online > 0 && cpuid_sharing > (unsigned long)online) cpuid_sharing = (unsigned)online;
#endif
  uint64_t bytes = UNKNOWN_BYTES;
  unsigned sharing = 1;
  llc.source = DP_LLC_FROM_DEFAULT;
  if (have_sys) {
    /* sysfs describes the instance a CPU shares (one CCX on AMD, where
     * glibc's sysconf sums every CCD's); where CPUID reports less, the
     * smaller figure counts. */
    llc.source = have_cpuid && cpuid_bytes < sys_bytes ? DP_LLC_FROM_CPUID : DP_LLC_FROM_SYSFS;
    bytes = llc.source == DP_LLC_FROM_CPUID ? cpuid_bytes : sys_bytes;
    sharing = sys_sharing ? sys_sharing : have_cpuid ? cpuid_sharing : 0;
  } else if (have_cpuid) {
    llc.source = DP_LLC_FROM_CPUID;
    bytes = cpuid_bytes;
    sharing = cpuid_sharing;
  } else {
#ifdef _SC_LEVEL3_CACHE_SIZE
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0 && plausible((uint64_t)l3)) {
      llc.source = DP_LLC_FROM_SYSCONF;
      bytes = (uint64_t)l3;
      sharing = 0;
    }
#endif
  }
  /* A known size shared by an unknown number of CPUs: as if every online CPU shared it. */
  if (sharing == 0) sharing = online > 0 ? (unsigned)online : 1;
  llc.bytes = (size_t)bytes;
  llc.sharing = sharing;
  llc.per_cpu_cap = under_hypervisor() ? DP_LLC_CAP_GUEST : DP_LLC_CAP_BARE_METAL;
  if (llc.override) llc.source = DP_LLC_FROM_ENV;
}

size_t dp_llc_share_of(const dp_llc *c, int threads) {
  if (c->override) return c->override;
  const unsigned t = threads < 1 ? 1u : (unsigned)threads;
  const unsigned n = c->sharing ? c->sharing : 1;
  const size_t share = c->bytes / n * (t < n ? t : n);
  const size_t cap = (size_t)t * c->per_cpu_cap; /* t is at most the processors (parallel.c) */
  return share < cap ? share : cap;
}

static void init(void) {
  detect();
  const size_t one = dp_llc_share_of(&llc, 1);
  atomic_store_explicit(&share_one, one ? one : 1, memory_order_release);
}

const dp_llc *dp_llc_info(void) {
  pthread_once(&once, init);
  return &llc;
}

size_t dp_llc_share(int threads) {
  if (threads <= 1) {
    const size_t one = atomic_load_explicit(&share_one, memory_order_acquire);
    if (one) return one;
  }
  pthread_once(&once, init);
  return threads <= 1 ? atomic_load_explicit(&share_one, memory_order_acquire) : dp_llc_share_of(&llc, threads);
}
