/*
 * How much last-level cache a call can count on, for the store choice:
 * outputs that fit stay in cache for the next layer (normal stores),
 * larger ones skip the read-for-ownership of every line (non-temporal
 * stores). A call on t threads gets its share of one cache instance,
 *   share(t) = min(size * min(t, n) / n, t * per_cpu_cap)
 * where n is the number of CPUs sharing the instance.
 *
 * Size and n come from sysfs (cpu0's highest data or unified cache and its
 * shared_cpu_list) and CPUID leaf 4 / 0x8000001D, cross-checked: where both
 * report a size the smaller counts (the known failures over-report), and
 * CPUID's sharing count, the number of IDs the cache can address, is
 * bounded by the CPUs online. sysconf is the last source. Sizes below
 * 256 KiB or above 64 GiB are taken as unknown (a zeroed CPUID leaf reports
 * 0: glibc BZ 30428), and unknown means 32 MiB for any call.
 * DROPPATH_LLC_BYTES sets the share outright.
 *
 * The per-CPU cap keeps a report honest. On bare metal it is 48 MiB, the
 * most L3 per core any x86 part ships (AMD EPYC 7373X / 9184X: 768 MiB for
 * 16 cores). Under a hypervisor (CPUID.1:ECX[31]) it is 16 MiB: a guest may
 * be shown its host's whole cache, which other tenants share (the Intel VM
 * of this project reports 480 MiB for 2 vCPUs and behaves like DRAM from
 * 64 MiB outputs on).
 */
#ifndef DP_CORE_CACHE_H
#define DP_CORE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define DP_LLC_CAP_BARE_METAL ((size_t)48 << 20)
#define DP_LLC_CAP_GUEST ((size_t)16 << 20)

/* Where the figures came from. */
enum { DP_LLC_FROM_DEFAULT, DP_LLC_FROM_SYSFS, DP_LLC_FROM_CPUID, DP_LLC_FROM_SYSCONF, DP_LLC_FROM_ENV };

typedef struct dp_llc {
  size_t bytes;       /* one instance, after the cross-check (32 MiB if unknown) */
  unsigned sharing;   /* CPUs sharing it (1 if unknown) */
  size_t per_cpu_cap; /* DP_LLC_CAP_BARE_METAL or DP_LLC_CAP_GUEST */
  int source;         /* DP_LLC_FROM_*: where bytes came from */
  size_t override;    /* DROPPATH_LLC_BYTES, 0 if unset */
} dp_llc;

/* The detected cache, read once (thread-safe). */
const dp_llc *dp_llc_info(void);

/* Bytes of last-level cache a call on `threads` threads can count on. */
size_t dp_llc_share(int threads);

/* The rule on given figures (the override first): pure, for tests. */
size_t dp_llc_share_of(const dp_llc *llc, int threads);

/* Parsers of the sysfs formats, for tests: CPUs in a list such as
 * "0-3,8,10-11" (0 if malformed), and bytes in a size such as "491520K". */
unsigned dp_llc_count_cpus(const char *list);
uint64_t dp_llc_parse_size(const char *text);

#endif /* DP_CORE_CACHE_H */
