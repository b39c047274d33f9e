/* The row walk's engine (rowwalk.h): job set-up, thread plan, chunking and
 * the OpenMP region. */
#include "core/rowwalk.h"

#include "core/fpenv.h"

#include "dp_config.h"

#if DP_HAVE_OPENMP
#include <omp.h>
#endif

/* Minimum elements per work item when rows are split across threads: large
 * enough that per-item overhead vanishes, a multiple of 16 so split points
 * fall on cache lines of aligned f32 rows. */
#define DP_MIN_CHUNK ((size_t)4096)

int dp_plan_row_threads(const dp_params *params, size_t traffic_bytes, size_t rows, size_t row_elems,
                        int elementwise) {
  const size_t max_chunks = elementwise && row_elems / DP_MIN_CHUNK > 0 ? row_elems / DP_MIN_CHUNK : 1;
  return dp_plan_threads(params, traffic_bytes, rows * max_chunks);
}

/* When each sample's T rows are back to back in every tensor, a sample is
 * one row of T*D elements (same scale, same bits): fewer, longer kernel
 * calls. Then note whether consecutive samples are back to back too. */
static void flatten_rows(dp_job *j) {
  int seq_dense = j->T > 1, dense = 1;
  for (int r = 0; r < DP_ROLES; r++)
    if (j->t[r].p && j->t[r].ts != j->D * j->t[r].es) seq_dense = 0;
  if (seq_dense) {
    j->D *= j->T; /* fits: a validated span holds every row */
    j->T = 1;
  }
  for (int r = 0; r < DP_ROLES; r++)
    if (j->t[r].p && j->t[r].ss != j->D * j->t[r].es) dense = 0;
  j->dense = j->T == 1 && dense;
}

/* Thread k of m: its share of the items, in the library's floating-point
 * state (an OpenMP worker keeps the one it was created with), and a fence
 * after its stores. */
static void run_share(const dp_job *j, dp_range_fn range, size_t k, size_t m) {
  const dp_fpenv e = dp_fpenv_enter();
  const size_t base = j->items / m, rem = j->items % m;
  const size_t lo = k * base + (k < rem ? k : rem);
  range(j, lo, lo + base + (k < rem ? 1 : 0));
  if (j->stream) dp_stream_fence();
  dp_fpenv_leave(e);
}

/* j->items on nt threads. */
static void run_planned(dp_job *j, const dp_params *params, int nt, dp_range_fn range) {
  j->stream = dp_job_stream(params, j, nt);
#if DP_HAVE_OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    run_share(j, range, (size_t)omp_get_thread_num(), (size_t)omp_get_num_threads());
    return;
  }
#endif
  run_share(j, range, 0, 1);
}

void dp_run_job(dp_job *j, const dp_params *params, size_t traffic_bytes, dp_range_fn range) {
  /* Rows in role 0's memory order: seq-first outputs t-major. */
  j->seq_major = j->T > 1 && j->B > 1 && j->t[0].ts > j->t[0].ss;
  j->dense = 0; /* rows join only when elementwise (flatten_rows) */
  if (j->elementwise) {
    flatten_rows(j);
    if (j->T == 1) j->seq_major = 0;
  }
  const size_t rows = j->B * j->T; /* fits: a validated span holds every row */
  const int nt = dp_plan_row_threads(params, traffic_bytes, rows, j->D, j->elementwise);
  j->chunk = j->D;
  if (j->elementwise && nt > 1 && rows < (size_t)nt * 8) {
    /* Few rows for the threads (B = 1, say): split rows too. */
    const size_t want = (size_t)nt * 8;
    const size_t per_row = (want + rows - 1) / rows;
    size_t chunk = (j->D + per_row - 1) / per_row;
    chunk = (chunk + 15) & ~(size_t)15;
    if (chunk < DP_MIN_CHUNK) chunk = DP_MIN_CHUNK;
    /* A per-channel vector restarts at each period: cut only between them
     * (D, flattened or not, is a multiple of the period). */
    if (j->period) chunk = (chunk + j->period - 1) / j->period * j->period;
    j->chunk = chunk > j->D ? j->D : chunk;
  }
  /* (A division costs as much as a tiny call's validation: skip it.) */
  j->chunks_per_row = j->chunk == j->D ? 1 : (j->D + j->chunk - 1) / j->chunk;
  j->items = rows * j->chunks_per_row;
  run_planned(j, params, nt, range);
}

void dp_run_items(dp_job *j, const dp_params *params, size_t traffic_bytes, size_t items, dp_range_fn range) {
  j->items = items;
  run_planned(j, params, dp_plan_threads(params, traffic_bytes, items), range);
}
