/*
 * How much last-level cache a call can count on, for the store choice:
 * outputs that fit stay in cache for the next layer (normal stores),
 * larger ones skip the read-for-ownership of every line (non-temporal
 * stores). A call on t threads gets its share of one cache instance,
 *   share(t) = min(size * min(t, n) / n, t * DP_LLC_MAX_PER_CPU)
 * where n is the number of CPUs sharing the instance. Size and n come from
 * sysfs (cpu0's highest data or unified cache and its shared_cpu_list), else
 * CPUID leaf 4 / 0x8000001D, else sysconf; DROPPATH_LLC_BYTES overrides
 * the share outright.
 *
 * The per-CPU cap is what keeps a reported size honest: no shipping x86 part
 * has more than 12 MiB of L3 per core (AMD's 3D V-Cache), while VMs report
 * the host's whole cache to a handful of vCPUs (an Intel VM here: 480 MiB
 * for 2 vCPUs, behaving like DRAM from 64 MiB on). Sizes below 256 KiB or
 * above 64 GiB are taken as unknown (a zeroed CPUID leaf reports 0: glibc
 * BZ 30428), and unknown means 32 MiB, then capped the same way.
 */
#ifndef DP_CORE_CACHE_H
#define DP_CORE_CACHE_H

#include <stddef.h>

#define DP_LLC_MAX_PER_CPU ((size_t)16 << 20)

/* Where the figures came from. */
enum { DP_LLC_FROM_DEFAULT, DP_LLC_FROM_SYSFS, DP_LLC_FROM_CPUID, DP_LLC_FROM_SYSCONF, DP_LLC_FROM_ENV };

typedef struct dp_llc {
  size_t bytes;     /* one instance, as reported (0 if unknown) */
  unsigned sharing; /* CPUs sharing it (1 if unknown) */
  int source;       /* DP_LLC_FROM_* */
  size_t override;  /* DROPPATH_LLC_BYTES, 0 if unset */
} dp_llc;

/* The detected cache, read once (thread-safe). */
const dp_llc *dp_llc_info(void);

/* Bytes of last-level cache a call on `threads` threads can count on. */
size_t dp_llc_share(int threads);

#endif /* DP_CORE_CACHE_H */
