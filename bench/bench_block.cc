// Sample compaction on a real block: one training step (forward + backward) of a pre-norm
// transformer MLP block at ViT-S sizes (B = 32, T = 197, D = 384, hidden 1536; GEMMs from
// OpenBLAS), dense and compacted (examples/mlp_block/step.h), per mask mode, drop rate and thread
// count:
//   block/<isa>/<row|exactk>/p<p>/t<n>
// <isa> is the library's widest (the block's own loops do not depend on it).  A row times both
// paths, paired: each iteration takes one of kMasks masks (offsets 0..kMasks-1) and runs the dense
// step and the compacted step back to back on it, the order alternating by round; each path keeps
// its fastest time per mask over kRounds rounds.  Pairs in time and minima per mask are what make a
// ratio mean something on a machine whose load changes from one minute to the next (separate rows
// minutes apart did not).  Counters:
//   dense_ms, compact_ms  the sums over the masks of those fastest step times
//   ratio                 compact_ms / dense_ms, the figure tools/bench_report.py judges
//   kept_frac             the fraction of samples the masks kept
//   cpu_ratio             the same ratio of the calling thread's CPU time (at one thread all the work,
//                         without the time spent waiting for a processor)
//   spread                the median over masks of slowest / fastest dense time (> 1.25: unsteady)
// Threads: OpenBLAS's (openblas_set_num_threads), the block's OpenMP loops and libdroppath's
// num_threads alike.  In the block suite (tools/demo.sh block) and in full: a step is ~0.4 s, so
// the rows take minutes, which the short and ratios tours leave out.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <vector>

#include "bench_common.h"

extern "C" {
#include "mlp_block/block.h"
#include "mlp_block/step.h"
}

namespace dpb {
namespace {

constexpr size_t kB = 32, kT = 197, kD = 384;
constexpr int kMasks = 5, kRounds = 3;

// One set of buffers for every row, made on first use (a step holds ~200 MB of activations).
struct BlockData {
  mlp_weights w;
  block_step step;
  float *x, *y, *grad_y, *grad_x;
};

BlockData *block_data() {
  static BlockData *d = [] {
    BlockData *b = new BlockData();
    const dp_shape shape = {kB, kT, kD};
    const size_t n = kB * kT * kD;
    if (mlp_weights_alloc(&b->w, kD) != 0 || block_step_init(&b->step, shape, &b->w, 1) != 0 ||
        !(b->x = mlp_alloc_floats(n)) || !(b->y = mlp_alloc_floats(n)) || !(b->grad_y = mlp_alloc_floats(n)) ||
        !(b->grad_x = mlp_alloc_floats(n))) {
      std::fprintf(stderr, "dp_bench: out of memory for the MLP block\n");
      std::abort();
    }
    mlp_weights_init(&b->w, 1);
    for (size_t i = 0; i < n; i++) {  // values of a residual stream and its gradient, no special cases
      b->x[i] = float(int(i % 97) - 48) * 0.03125f;
      b->grad_y[i] = float(int(i % 89) - 44) * 1e-3f;
    }
    return b;
  }();
  return d;
}

struct BlockCase {
  int mode;  // DP_MODE_ROW or DP_MODE_EXACT_K
  double p;
  int threads;
};

double thread_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_block(benchmark::State &st, const BlockCase &c) {
  if (!select_isa(st, best_isa())) return;
  BlockData *d = block_data();
  d->step.threads = c.threads;
  mlp_set_blas_threads(c.threads);
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = c.p;
  prm.mode = c.mode;
  prm.seed = kSeed;
  // The samples each mask keeps, outside the timing.
  uint64_t kept_sum = 0;
  for (uint64_t off = 0; off < uint64_t(kMasks); off++) {
    prm.offset = off;
    size_t kept = 0;
    if (dp_mask(&prm, kB, nullptr, nullptr, &kept, nullptr) != DP_OK) std::abort();
    kept_sum += kept;
  }
  auto step = [&](bool compacted, uint64_t offset) {
    prm.offset = offset;
    return block_train_step(&d->step, compacted, &prm, d->x, d->y, d->grad_y, d->grad_x);
  };
  // Untimed: the first touch of the buffers and OpenBLAS's thread start-up.
  dp_status err = step(false, kOffsets - 1);
  if (err == DP_OK) err = step(true, kOffsets - 1);

  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> fast[2], slow_dense(kMasks, 0.0), cpu[2];  // [0] dense, [1] compacted
  for (int k = 0; k < 2; k++) {
    fast[k].assign(kMasks, inf);
    cpu[k].assign(kMasks, inf);
  }
  int64_t i = 0;
  for (auto _ : st) {
    const int mask = int(i % kMasks), round = int(i / kMasks);
    for (int n = 0; n < 2; n++) {
      const int compacted = (n + round) % 2;  // dense first in even rounds, compacted first in odd ones
      const double c0 = thread_cpu_ms();
      const auto t0 = std::chrono::steady_clock::now();
      const dp_status s = step(compacted != 0, uint64_t(mask));
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const double cpu_ms = thread_cpu_ms() - c0;
      if (s != DP_OK) err = s;
      fast[compacted][size_t(mask)] = std::min(fast[compacted][size_t(mask)], ms);
      cpu[compacted][size_t(mask)] = std::min(cpu[compacted][size_t(mask)], cpu_ms);
      if (!compacted) slow_dense[size_t(mask)] = std::max(slow_dense[size_t(mask)], ms);
    }
    i++;
  }
  if (err != DP_OK) {
    st.SkipWithError(dp_status_string(err));
    return;
  }
  double sum[2] = {0, 0}, cpu_sum[2] = {0, 0};
  std::vector<double> spread;
  for (int m = 0; m < kMasks; m++) {
    for (int k = 0; k < 2; k++) {
      sum[k] += fast[k][size_t(m)];
      cpu_sum[k] += cpu[k][size_t(m)];
    }
    spread.push_back(slow_dense[size_t(m)] / fast[0][size_t(m)]);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(2 * kB));
  st.counters["dense_ms"] = sum[0];
  st.counters["compact_ms"] = sum[1];
  st.counters["ratio"] = sum[1] / sum[0];
  st.counters["cpu_ratio"] = cpu_sum[1] / cpu_sum[0];
  st.counters["kept_frac"] = double(kept_sum) / (double(kMasks) * double(kB));
  st.counters["spread"] = median(spread);
}

}  // namespace

void register_block() {
  if (config().suite != Suite::kBlock && config().suite != Suite::kFull) return;
  const double ps[] = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5};
  const char *isa = dp_isa_name(best_isa());
  for (int t : thread_counts())
    for (double p : ps)
      for (int mode : {int(DP_MODE_ROW), int(DP_MODE_EXACT_K)}) {
        const BlockCase c = {mode, p, t};
        const std::string name = std::string("block/") + isa + "/" + (mode == DP_MODE_ROW ? "row" : "exactk") +
                                 "/p" + p_token(p) + "/t" + std::to_string(t) + "/ratio";
        // Not through reg(): the iteration count is fixed (every mask kRounds times) and the rounds
        // are the repetitions, so neither the suite's minimum time nor its repetitions apply.
        benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State &st) { run_block(st, c); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->Iterations(kMasks * kRounds)
            ->Repetitions(1);
      }
}

}  // namespace dpb
