// Shared by the benchmark files: suite selection, the buffer pool, shapes,
// naming, and the minimal-traffic byte counts every throughput figure uses.
#ifndef DP_BENCH_COMMON_H
#define DP_BENCH_COMMON_H

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "droppath/droppath.h"
#include "kernels/kernels.h"

namespace dpb {

enum class Suite { kShort, kRatios, kFull, kBlock };

struct Config {
  Suite suite = Suite::kFull;
  double min_time = 0.0;  // 0: leave it to --benchmark_min_time
  int repetitions = 0;    // 0: leave it to --benchmark_repetitions
  int max_threads = 1;    // "all threads": OpenMP's default team size
};
const Config &config();
Config &mutable_config();

// Fixed so every run draws the same masks.
constexpr uint64_t kSeed = 0x5eed0fd120u;
// Calls cycle through this many mask offsets, so a timing averages over
// masks instead of depending on one draw's kept fraction.
constexpr uint64_t kOffsets = 64;

// A dense [B][D] problem; the name is its filter token.
struct Shape {
  const char *name;
  size_t batch;
  size_t dim;
  size_t elems() const { return batch * dim; }
};
const std::vector<Shape> &api_shapes();

// Kernel-level and baseline size classes: elements per array.
struct SizeClass {
  const char *name;  // "L1", "L2", "L3", "DRAM"
  size_t elems;
};
const std::vector<SizeClass> &size_classes();

// Thread counts to register: 1 and "all" (deduplicated).
std::vector<int> thread_counts();
// The ISAs of this architecture in the ISA list (scalar first).
std::vector<dp_isa> arch_isas();
// The widest ISA this CPU runs (with this build), for one-ISA subsets.
dp_isa best_isa();

// Buffer pool: a few big arrays shared by all benchmarks so the large
// shapes are allocated and first-touched once.  X and F hold inputs, O and
// T outputs, E a second branch-like input (F's values; allocated by its first
// user only); a benchmark that writes X, F or E marks them dirty and the next
// user refills them, so values never drift to inf/NaN across benchmarks.
enum Slot { kX = 0, kF = 1, kO = 2, kT = 3, kE = 4, kSlots = 5 };
void pool_reserve(size_t elems);  // before the first pool_get
float *pool_get(Slot slot, size_t elems);
// The same arrays holding elems values of dtype (the pool's values, rounded).
void *pool_get_as(Slot slot, size_t elems, dp_dtype dtype);
void pool_mark_dirty(Slot slot, size_t elems);

// Caps the library at isa; false (and the state skipped) if it cannot run.
bool select_isa(benchmark::State &st, dp_isa isa);

// Name pieces: "0", "0.1", "0.5".
std::string p_token(double p);
// Adds the timing options of the suite and real time (work runs on OpenMP
// threads, so the calling thread's CPU time means nothing).
benchmark::internal::Benchmark *finish(benchmark::internal::Benchmark *b);
// Registers under name, appending "/ratio" when the case feeds a target.
benchmark::internal::Benchmark *reg(const std::string &name, bool ratio,
                                    std::function<void(benchmark::State &)> fn);
// Whether a registration filter lets the case through for the current suite.
bool wanted(bool ratio, bool in_short);

// Kept samples for each of the kOffsets masks of (p, batch).
std::vector<size_t> kept_counts(double p, size_t batch);

void register_api();
void register_baselines();
void register_kernels();
void register_store();
void register_norm();
void register_layerscale();
// The MLP block rows (bench_block.cc; built when OpenBLAS is found, DP_BENCH_HAVE_BLOCK).
void register_block();

}  // namespace dpb

#endif
