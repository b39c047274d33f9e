/*
 * The row walk of sample compaction (api/compact.c): a job some of whose
 * tensors hold only the kept samples. The walk visits either every sample
 * of the call (the join writes dropped samples too) or only the kept ones;
 * each role says how its sample follows from the walk's sample b:
 *   DP_MAP_SAME   the role's sample is b;
 *   DP_MAP_RANK   a compact role in a walk over every sample: the kept
 *                 sample b = idx[i] is its sample i, and it is absent
 *                 (p[r] = NULL) for a dropped b;
 *   DP_MAP_INDEX  a full role in a walk over the kept samples: its sample
 *                 is idx[b].
 * Threads, chunks and the row order are dp_run_job's, as for every job; the
 * row function sees s (0 for a dropped sample) as in dp_walk_range. Rows of
 * different samples never join: their compact rows are not neighbours.
 */
#ifndef DP_CORE_COMPACTWALK_H
#define DP_CORE_COMPACTWALK_H

#include <stddef.h>
#include <stdint.h>

#include "core/rowwalk.h"

enum { DP_MAP_SAME = 0, DP_MAP_RANK, DP_MAP_INDEX };

typedef struct dp_compact_job {
  dp_job job;             /* first: a range function's dp_job is this struct's */
  const size_t *idx;      /* the kept samples, ascending */
  size_t kept;            /* their count */
  float s;                /* scale of a kept sample */
  int over_kept;          /* the walk visits kept samples only (job.B == kept) */
  int map[DP_ROLES];      /* DP_MAP_* per role */
} dp_compact_job;

/* First i with idx[i] >= b. */
static inline size_t dp_kept_lower_bound(const size_t *idx, size_t kept, size_t b) {
  size_t lo = 0, hi = kept;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (idx[mid] < b) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Items [lo, hi) of a planned compact job: dp_walk_range's item order
 * (rows b-major or t-major, then chunks), with each role's sample mapped. */
DP_ALWAYS_INLINE void dp_walk_compact(const dp_compact_job *m, size_t lo, size_t hi, dp_row_fn row) {
  const dp_job *j = &m->job;
  if (lo >= hi) return;
  const size_t row0 = lo / j->chunks_per_row;
  size_t c = lo % j->chunks_per_row;
  size_t b = j->seq_major ? row0 % j->B : row0 / j->T;
  size_t t = j->seq_major ? row0 / j->B : row0 % j->T;
  /* Over every sample: pos is the rank of the first kept sample >= b. */
  size_t pos = m->over_kept ? 0 : dp_kept_lower_bound(m->idx, m->kept, b);
  unsigned char *p[DP_ROLES];
  for (size_t i = lo; i < hi; i++) {
    const int kept = m->over_kept || (pos < m->kept && m->idx[pos] == b);
    const size_t d0 = c * j->chunk;
    const size_t n = j->D - d0 < j->chunk ? j->D - d0 : j->chunk;
    for (int r = 0; r < DP_ROLES; r++) {
      const dp_rowptr *rp = &j->t[r];
      size_t sb = b;
      if (m->map[r] == DP_MAP_INDEX) sb = m->idx[b];
      else if (m->map[r] == DP_MAP_RANK) sb = pos;
      p[r] = rp->p && (kept || m->map[r] != DP_MAP_RANK) ? rp->p + sb * rp->ss + t * rp->ts + d0 * rp->es : NULL;
    }
    row(j, p, kept ? m->s : 0.0f, n);
    if (++c < j->chunks_per_row) continue;
    c = 0;
    if (j->seq_major) {
      if (++b == j->B) { /* next row t: samples from 0 again */
        b = 0;
        t++;
        pos = 0;
        continue;
      }
    } else if (++t == j->T) {
      t = 0;
      b++;
    } else {
      continue; /* same sample */
    }
    if (!m->over_kept && pos < m->kept && m->idx[pos] < b) pos++; /* b grew by one */
  }
}

#endif /* DP_CORE_COMPACTWALK_H */
