// Entry point and shared helpers of the benchmark binary.
//
//   dp_bench [--dp_suite=full|short|ratios|block] [--dp_min_time=S] [--dp_repetitions=N]
//            [benchmark flags]
//
// full (default) registers the whole cross product; short a representative
// subset for a quick run (~1-3 min); ratios only the rows behind the
// performance targets (their names end in "/ratio" in every suite) plus
// memcpy at the same size; block only the MLP-block rows of sample
// compaction (bench_block.cc, minutes long: also in full, not in short or
// ratios, though they feed targets too).  short and ratios default to a
// short minimum time and several repetitions (tools/bench_report.py keeps
// the best); --benchmark_min_time / --benchmark_repetitions override those
// defaults.  The block rows fix their own iterations and rounds.
#include "bench_common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

extern "C" {
#include "kernels/common/half.h"
}

#ifdef __linux__
#include <sys/mman.h>
#endif

#if DP_BENCH_OPENMP
#include <omp.h>
#endif

namespace dpb {

static Config g_config;
const Config &config() { return g_config; }
Config &mutable_config() { return g_config; }

const std::vector<Shape> &api_shapes() {
  // l2: every tensor of a forward fits one core's L2 together (3 x 256 KiB).
  // large: 256 MiB per tensor, 8x a 32 MiB L3.
  static const std::vector<Shape> shapes = {
      {"l2", 16, 4096},
      {"small", 8, 197 * 384},
      {"vit", 64, 197 * 768},
      {"resnet", 32, 256 * 56 * 56},
      {"large", 64, size_t(1) << 20},
  };
  return shapes;
}

static size_t pow2_floor(size_t v) {
  size_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

// Data/unified cache of one level as cpu0 sees it (sysfs first: glibc's
// sysconf reports a whole socket's L3 on some AMD VMs), else the fallback.
static size_t cache_bytes(int level, size_t fallback) {
  for (int idx = 0; idx < 8; idx++) {
    char path[80];
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/", idx);
    int lvl = 0;
    char type[32] = {0}, unit = 0;
    unsigned long size = 0;
    FILE *fp = std::fopen((std::string(path) + "level").c_str(), "r");
    if (!fp) continue;
    const bool ok_level = std::fscanf(fp, "%d", &lvl) == 1;
    std::fclose(fp);
    if (!ok_level || lvl != level) continue;
    if ((fp = std::fopen((std::string(path) + "type").c_str(), "r"))) {
      if (std::fscanf(fp, "%31s", type) != 1) type[0] = 0;
      std::fclose(fp);
    }
    if (std::strcmp(type, "Instruction") == 0) continue;
    if (!(fp = std::fopen((std::string(path) + "size").c_str(), "r"))) continue;
    const int got = std::fscanf(fp, "%lu%c", &size, &unit);
    std::fclose(fp);
    if (got < 1 || size == 0) continue;
    return unit == 'K' ? size << 10 : unit == 'M' ? size << 20 : size;
  }
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  const long v = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : level == 2 ? _SC_LEVEL2_CACHE_SIZE : _SC_LEVEL3_CACHE_SIZE);
  if (v > 0) return size_t(v);
#endif
  return fallback;
}

const std::vector<SizeClass> &size_classes() {
  // Three arrays (a fused forward) fill half of a level; DRAM is 4x L3 per array.
  static const std::vector<SizeClass> classes = [] {
    const size_t l1 = cache_bytes(1, size_t(48) << 10);
    const size_t l2 = cache_bytes(2, size_t(1) << 20);
    const size_t l3 = cache_bytes(3, size_t(32) << 20);
    std::vector<SizeClass> v = {
        {"L1", pow2_floor(l1 / 2 / (3 * sizeof(float)))},
        {"L2", pow2_floor(l2 / 2 / (3 * sizeof(float)))},
        {"L3", pow2_floor(l3 / 2 / (3 * sizeof(float)))},
        {"DRAM", pow2_floor(4 * l3 / sizeof(float))},
    };
    return v;
  }();
  return classes;
}

std::vector<int> thread_counts() {
  std::vector<int> v = {1};
  if (g_config.max_threads > 1) v.push_back(g_config.max_threads);
  return v;
}

std::vector<dp_isa> arch_isas() {
  std::vector<dp_isa> v;
  for (int i = 0; i < DP_ISA_COUNT; i++)
    if (dp_isa_native(dp_isa(i))) v.push_back(dp_isa(i));
  return v;
}

dp_isa best_isa() {
  dp_isa best = DP_ISA_SCALAR;
  for (dp_isa isa : arch_isas())
    if (dp_isa_supported(isa)) best = isa;
  return best;
}

// ---------------------------------------------------------------- pool

namespace {
struct Pool {
  size_t cap = 0;
  float *p[kSlots] = {};
  size_t dirty[kSlots] = {};
  dp_dtype held[kSlots] = {};  // element type the slot was last filled with
};
Pool g_pool;

// Inputs stay normal numbers in every element type under every operation
// the benches repeat (scales are >= 1), so no run ever pays for subnormals.
float value(Slot slot, ptrdiff_t i) {
  return slot == kX ? 1.0f + float(i & 7) * 0.125f : slot == kF || slot == kE ? 1e-3f * float(1 + (i & 3)) : 0.0f;
}

void fill(Slot slot, void *p, size_t n, dp_dtype dtype) {
  float *pf = static_cast<float *>(p);
  uint16_t *ph = static_cast<uint16_t *>(p);
#if DP_BENCH_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (ptrdiff_t i = 0; i < ptrdiff_t(n); i++) {
    const float v = value(slot, i);
    if (dtype == DP_F32) pf[i] = v;
    else ph[i] = dtype == DP_BF16 ? dp_f32_to_bf16(v) : dp_f32_to_f16(v);
  }
}
}  // namespace

void pool_reserve(size_t elems) { g_pool.cap = std::max(g_pool.cap, elems); }

void *pool_get_as(Slot slot, size_t elems, dp_dtype dtype) {
  if (elems > g_pool.cap) {
    std::fprintf(stderr, "dp_bench: pool too small (%zu > %zu)\n", elems, g_pool.cap);
    std::abort();
  }
  if (!g_pool.p[slot]) {
    // 2 MiB alignment and huge pages keep TLB misses out of the streaming
    // figures; every benchmark (baselines too) uses the same arrays.
    const size_t align = size_t(2) << 20;
    const size_t bytes = (g_pool.cap * sizeof(float) + align - 1) / align * align;
    g_pool.p[slot] = static_cast<float *>(std::aligned_alloc(align, bytes));
    if (!g_pool.p[slot]) {
      std::fprintf(stderr, "dp_bench: out of memory (%zu bytes)\n", bytes);
      std::abort();
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(g_pool.p[slot], bytes, MADV_HUGEPAGE);
#endif
    fill(slot, g_pool.p[slot], g_pool.cap, dtype);
  } else if (g_pool.held[slot] != dtype) {
    // One pass over the slot, outside any timed loop.
    fill(slot, g_pool.p[slot], g_pool.cap, dtype);
  } else if (g_pool.dirty[slot]) {
    fill(slot, g_pool.p[slot], g_pool.dirty[slot], dtype);
  }
  g_pool.held[slot] = dtype;
  g_pool.dirty[slot] = 0;
  return g_pool.p[slot];
}

float *pool_get(Slot slot, size_t elems) { return static_cast<float *>(pool_get_as(slot, elems, DP_F32)); }

void pool_mark_dirty(Slot slot, size_t elems) { g_pool.dirty[slot] = std::max(g_pool.dirty[slot], elems); }

// ---------------------------------------------------------------- helpers

bool select_isa(benchmark::State &st, dp_isa isa) {
  if (!dp_isa_supported(isa)) {
    st.SkipWithError("ISA not supported by this CPU or build");
    return false;
  }
  if (dp_set_max_isa(isa) != DP_OK || dp_active_isa() != isa) {
    st.SkipWithError("ISA capped below this one (DROPPATH_ISA?)");
    return false;
  }
  return true;
}

std::string p_token(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", p);
  return buf;
}

benchmark::internal::Benchmark *finish(benchmark::internal::Benchmark *b) {
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
  if (g_config.min_time > 0) b->MinTime(g_config.min_time);
  if (g_config.repetitions > 0) b->Repetitions(g_config.repetitions);
  return b;
}

benchmark::internal::Benchmark *reg(const std::string &name, bool ratio,
                                    std::function<void(benchmark::State &)> fn) {
  const std::string full = ratio ? name + "/ratio" : name;
  return finish(benchmark::RegisterBenchmark(full.c_str(), std::move(fn)));
}

bool wanted(bool ratio, bool in_short) {
  switch (g_config.suite) {
    case Suite::kRatios: return ratio;
    case Suite::kShort: return ratio || in_short;
    case Suite::kBlock: return false;  // only register_block's rows
    default: return true;
  }
}

std::vector<size_t> kept_counts(double p, size_t batch) {
  std::vector<size_t> kept(kOffsets);
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = p;
  prm.seed = kSeed;
  for (uint64_t k = 0; k < kOffsets; k++) {
    prm.offset = k;
    size_t n = 0;
    if (dp_mask(&prm, batch, nullptr, nullptr, &n, nullptr) != DP_OK) std::abort();
    kept[k] = n;
  }
  return kept;
}

}  // namespace dpb

namespace {

const char *suite_name(dpb::Suite s) {
  switch (s) {
    case dpb::Suite::kShort: return "short";
    case dpb::Suite::kRatios: return "ratios";
    case dpb::Suite::kBlock: return "block";
    default: return "full";
  }
}

// Takes our own --dp_* options out of argv before Google Benchmark sees it.
bool parse_args(int *argc, char **argv) {
  dpb::Config &cfg = dpb::mutable_config();
  double min_time = -1.0;
  int repetitions = -1;
  bool user_min_time = false, user_reps = false;
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];
    if (std::strncmp(a, "--dp_suite=", 11) == 0) {
      const char *v = a + 11;
      if (std::strcmp(v, "short") == 0) cfg.suite = dpb::Suite::kShort;
      else if (std::strcmp(v, "ratios") == 0) cfg.suite = dpb::Suite::kRatios;
      else if (std::strcmp(v, "full") == 0) cfg.suite = dpb::Suite::kFull;
      else if (std::strcmp(v, "block") == 0) cfg.suite = dpb::Suite::kBlock;
      else {
        std::fprintf(stderr, "dp_bench: --dp_suite must be full, short, ratios or block\n");
        return false;
      }
      continue;
    }
    if (std::strncmp(a, "--dp_min_time=", 14) == 0) {
      min_time = std::atof(a + 14);
      continue;
    }
    if (std::strncmp(a, "--dp_repetitions=", 17) == 0) {
      repetitions = std::atoi(a + 17);
      continue;
    }
    if (std::strncmp(a, "--benchmark_min_time", 20) == 0) user_min_time = true;
    if (std::strncmp(a, "--benchmark_repetitions", 23) == 0) user_reps = true;
    argv[out++] = argv[i];
  }
  *argc = out;
  // Per-benchmark settings beat --benchmark_min_time/--benchmark_repetitions,
  // so the suite defaults apply only when the user did not ask for global ones.
  const bool quick = cfg.suite != dpb::Suite::kFull;
  if (min_time >= 0) cfg.min_time = min_time;
  else if (!user_min_time && quick) cfg.min_time = cfg.suite == dpb::Suite::kShort ? 0.1 : 0.2;
  if (repetitions >= 0) cfg.repetitions = repetitions;
  else if (!user_reps && quick) cfg.repetitions = 3;
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  if (!parse_args(&argc, argv)) return 2;
#if DP_BENCH_OPENMP
  dpb::mutable_config().max_threads = omp_get_max_threads();
#endif
  dpb::register_api();
  dpb::register_baselines();
  dpb::register_kernels();
  dpb::register_store();
  dpb::register_norm();
  dpb::register_layerscale();
#if DP_BENCH_HAVE_BLOCK
  dpb::register_block();
#else
  if (dpb::config().suite == dpb::Suite::kBlock) {
    std::fprintf(stderr, "dp_bench: built without OpenBLAS, no block rows (tools/install-deps.sh blas, reconfigure)\n");
    return 2;
  }
#endif

  benchmark::AddCustomContext("dp_version", dp_version_string());
  benchmark::AddCustomContext("dp_suite", suite_name(dpb::config().suite));
  benchmark::AddCustomContext("dp_best_isa", dp_isa_name(dpb::best_isa()));
  benchmark::AddCustomContext("dp_threads_all", std::to_string(dpb::config().max_threads));
  std::string classes;
  for (const dpb::SizeClass &c : dpb::size_classes())
    classes += (classes.empty() ? "" : ",") + std::string(c.name) + "=" + std::to_string(c.elems);
  benchmark::AddCustomContext("dp_size_class_elems", classes);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
