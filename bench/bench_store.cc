// The store choice and the physical limit, widest ISA, f32, out-of-place:
//   store/<alone|consumer>/<size>MiB/<auto|stream|normal>/t<n>
//       the fused forward (p = 0) over an output of <size> MiB (x and f the
//       same size), with the library's choice of stores, forced streaming
//       (DP_FLAG_STREAM_ALWAYS) or forced normal stores (DP_FLAG_STREAM_NEVER);
//       "consumer" adds the next layer reading the output once (a sum). The
//       report's regret rows are time(auto) / min(time(stream), time(normal)).
//   triad_nt/<native|base>/large/t<n>  a = b + s*c with non-temporal stores: the
//       forward's traffic at the machine's limit (bytes as the triad's)
//   split_nt/<native|base>/large/t<n>  a = s*c, b = c with non-temporal stores: the
//       backward's (grad_f, grad_x) traffic at the machine's limit
#include <cstring>

#include "baseline_loops.h"
#include "bench_common.h"

namespace dpb {
namespace {

const size_t kStoreMiB[] = {1, 4, 16, 64, 256, 1024};

// The baselines' loops at their best: built for this machine where the
// compiler allows (the x86 non-temporal stores then are the widest it has).
#if DP_BENCH_HAVE_NATIVE
namespace loops = dpb_native;
const char *const kLoops = "native";
#else
namespace loops = dpb_base;
const char *const kLoops = "base";
#endif

enum class Stores { kAuto, kStream, kNormal };

const char *stores_name(Stores m) { return m == Stores::kAuto ? "auto" : m == Stores::kStream ? "stream" : "normal"; }

void run_store(benchmark::State &st, size_t mib, Stores m, bool consumer, int threads) {
  const dp_isa isa = best_isa();
  if (!select_isa(st, isa)) return;
  const size_t n = mib << 18, batch = 64;  // MiB of f32, as 64 rows
  float *x = pool_get(kX, n), *f = pool_get(kF, n), *o = pool_get(kO, n);
  dp_params prm;
  dp_params_init(&prm);
  prm.seed = kSeed;
  prm.num_threads = threads;
  prm.flags = m == Stores::kStream   ? uint32_t(DP_FLAG_STREAM_ALWAYS)
              : m == Stores::kNormal ? uint32_t(DP_FLAG_STREAM_NEVER)
                                     : 0u;
  dp_shape sh;
  sh.batch = batch;
  sh.seq = 1;
  sh.dim = n / batch;
  const dp_tensor to = dp_tensor_dense(o, DP_F32, sh), tx = dp_tensor_dense(x, DP_F32, sh);
  const dp_tensor tf = dp_tensor_dense(f, DP_F32, sh);
  dp_status err = DP_OK;
  float total = 0.0f;
  for (auto _ : st) {
    const dp_status s = dp_forward(&prm, sh, to, tx, tf, nullptr);
    if (s != DP_OK) err = s;
    if (consumer) total += loops::sum(o, n, threads);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(total);
  if (err != DP_OK) {
    st.SkipWithError(dp_status_string(err));
    return;
  }
  const size_t bytes = (consumer ? 4 : 3) * n * sizeof(float);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(bytes));
  st.counters["ws_bytes"] = double(3 * n * sizeof(float));
}

// The machine's limit for a fused pass's traffic: the triad's shape (read
// b and c, write a) or the backward's (read c, write a and b).
void run_nt(benchmark::State &st, size_t n, int threads, bool split) {
  float *a = pool_get(kO, n), *c = pool_get(kF, n);
  float *b = split ? pool_get(kT, n) : pool_get(kX, n);
  for (auto _ : st) {
    if (split) loops::split_nt(a, b, c, 1.0f / 0.9f, n, threads);
    else loops::triad_nt(a, b, c, 1.0f / 0.9f, n, threads);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(3 * n * sizeof(float)));
  st.counters["ws_bytes"] = double(3 * n * sizeof(float));
}

}  // namespace

void register_store() {
  for (int t : thread_counts()) {
    const std::string tt = "/t" + std::to_string(t);
    for (size_t mib : kStoreMiB)
      for (int consumer = 0; consumer < 2; consumer++)
        for (Stores m : {Stores::kAuto, Stores::kStream, Stores::kNormal}) {
          if (!wanted(true, false)) continue;
          pool_reserve(mib << 18);
          const std::string name = std::string("store/") + (consumer ? "consumer/" : "alone/") + std::to_string(mib) +
                                   "MiB/" + stores_name(m) + tt;
          reg(name, true, [mib, m, consumer, t](benchmark::State &st) { run_store(st, mib, m, consumer != 0, t); });
        }
    for (const Shape &s : api_shapes()) {
      if (std::strcmp(s.name, "large") != 0 || !wanted(true, false)) continue;
      const size_t n = s.elems();
      pool_reserve(n);
      for (bool split : {false, true})
        reg(std::string(split ? "split_nt/" : "triad_nt/") + kLoops + "/large" + tt, true,
            [n, t, split](benchmark::State &st) { run_nt(st, n, t, split); });
    }
  }
}

}  // namespace dpb
