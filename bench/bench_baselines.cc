// Baselines, same binary and run as the library figures:
//   triad/<base|native>/<shape|size class>/t<n>   a[i] = b[i] + s*c[i]
//   memcpy/libc/<shape|size class>/t<n>           one chunk per thread
//   naive/base/<shape>/p<p>/<inplace|oop>/t<n>    unfused framework-style forward
//   forkjoin/omp/none/t<n>                        empty OpenMP parallel region
//   pingpong/atomic/none/t2                       one cache-line round trip between
//       two threads (flag set, echoed back): the floor under any fork + join,
//       whatever the thread pool
// Bytes follow the same minimal-traffic rule as the library rows, so a
// GB/s ratio is a time ratio.
#include <atomic>
#include <chrono>
#include <cstring>

#if DP_BENCH_OPENMP
#include <omp.h>
#endif

#include "baseline_loops.h"
#include "bench_common.h"

namespace dpb {
namespace {

struct Region {
  const char *name;  // shape or size class
  size_t batch, dim;
  bool is_shape;
};

std::vector<Region> regions() {
  std::vector<Region> v;
  for (const Shape &s : api_shapes()) v.push_back({s.name, s.batch, s.dim, true});
  for (const SizeClass &c : size_classes()) v.push_back({c.name, 1, c.elems, false});
  return v;
}

void run_triad(benchmark::State &st, bool native, size_t n, int threads) {
  float *a = pool_get(kO, n), *b = pool_get(kX, n), *c = pool_get(kF, n);
  const float s = 1.0f / 0.9f;
  for (auto _ : st) {
    if (native) dpb_native::triad(a, b, c, s, n, threads);
    else dpb_base::triad(a, b, c, s, n, threads);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(3 * n * sizeof(float)));
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(n));
  st.counters["ws_bytes"] = double(3 * n * sizeof(float));
}

void run_memcpy(benchmark::State &st, size_t n, int threads) {
  float *dst = pool_get(kO, n), *src = pool_get(kX, n);
  for (auto _ : st) {
    dpb_base::copy(dst, src, n * sizeof(float), threads);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(2 * n * sizeof(float)));
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(n));
  st.counters["ws_bytes"] = double(2 * n * sizeof(float));
}

// What frameworks run for x + drop_path(f): a B-float mask tensor (drawn by
// the library, so the same samples survive), divided by keep, a broadcast
// multiply into a full temporary, then the residual add.
void run_naive(benchmark::State &st, const Shape &shp, double p, bool inplace, int threads) {
  const size_t n = shp.elems(), batch = shp.batch, dim = shp.dim;
  float *x = pool_get(kX, n), *f = pool_get(kF, n), *o = pool_get(kO, n), *tmp = pool_get(kT, n);
  std::vector<uint8_t> keep_bytes(batch);
  std::vector<float> mask(batch);
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = p;
  prm.seed = kSeed;
  const float keep = float(1.0 - p);
  const std::vector<size_t> kept = kept_counts(p, batch);
  const size_t row = dim * sizeof(float);
  uint64_t bytes = 0, off = 0;
  for (auto _ : st) {
    prm.offset = off;
    if (dp_mask(&prm, batch, keep_bytes.data(), nullptr, nullptr, nullptr) != DP_OK) {
      st.SkipWithError("dp_mask failed");
      break;
    }
    for (size_t b = 0; b < batch; b++) mask[b] = keep_bytes[b] ? 1.0f : 0.0f;
    if (keep > 0.0f)
      for (size_t b = 0; b < batch; b++) mask[b] /= keep;
    dpb_base::scale_rows(tmp, f, mask.data(), batch, dim, threads);
    if (inplace) dpb_base::add_inplace(x, tmp, n, threads);
    else dpb_base::add(o, x, tmp, n, threads);
    benchmark::ClobberMemory();
    bytes += kept[off] * 3 * row + (batch - kept[off]) * (inplace ? 0 : 2 * row);
    off = off + 1 == kOffsets ? 0 : off + 1;
  }
  if (inplace) pool_mark_dirty(kX, n);
  st.SetBytesProcessed(int64_t(bytes));
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(n));
  st.counters["ws_bytes"] = double((inplace ? 3 : 4) * n * sizeof(float));
}

void run_fork_join(benchmark::State &st, int threads) {
  for (auto _ : st) dpb_base::fork_join(threads);
}

// A fork tells a waiting thread to start (one cache-line transfer) and a join
// tells the caller it finished (one more): a round trip, the floor under any
// thread pool.  Both ends are the OpenMP pool's own two threads, spinning, so
// no OS wake-up is included and no third thread competes with a libgomp
// worker still spinning after the previous region (that made a std::thread
// partner read 0.9 us to >10 us here).
void run_ping_pong(benchmark::State &st) {
#if DP_BENCH_OPENMP
  alignas(64) std::atomic<uint64_t> flag{0};
  int team = 0;
  double ns = 0.0;
#pragma omp parallel num_threads(2)
  {
    const int me = omp_get_thread_num();
    if (me == 0) team = omp_get_num_threads();
#pragma omp barrier
    if (team < 2) {
      // one thread: no partner to wait for
    } else if (me == 1) {
      for (uint64_t want = 1;; want += 2) {  // echo until told to stop
        uint64_t v;
        while ((v = flag.load(std::memory_order_acquire)) < want) {
        }
        if (v == UINT64_MAX) break;
        flag.store(want + 1, std::memory_order_release);
      }
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      uint64_t next = 1;
      for (auto _ : st) {
        flag.store(next, std::memory_order_release);
        while (flag.load(std::memory_order_acquire) != next + 1) {
        }
        next += 2;
      }
      ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      flag.store(UINT64_MAX, std::memory_order_release);
    }
  }
  if (team < 2) {
    st.SkipWithError("OpenMP gave one thread");
    return;
  }
  // Two threads time-sharing one CPU (e.g. OMP_PLACES of one core) turn a
  // trip into a scheduler quantum: that is no floor, so say so instead.
  // (Only runs over 1 ms: GB first probes with a few iterations, where its
  // own start-up of some microseconds dominates.)
  if (ns > 1e6 && ns / double(st.iterations()) > 10e3)
    st.SkipWithError("round trips above 10 us: the two threads shared a CPU");
#else
  st.SkipWithError("built without OpenMP");
#endif
}

}  // namespace

void register_baselines() {
  // The floor under any threaded call; explains the L2 scaling figures.
  for (int t : thread_counts())
    if (t > 1 && wanted(true, false))
      reg("forkjoin/omp/none/t" + std::to_string(t), true, [t](benchmark::State &st) { run_fork_join(st, t); });
  if (config().max_threads > 1 && wanted(true, false))
    reg("pingpong/atomic/none/t2", true, [](benchmark::State &st) { run_ping_pong(st); });

  for (const Region &r : regions())
    for (int t : thread_counts()) {
      const size_t n = r.batch * r.dim;
      const std::string tail = std::string("/") + r.name + "/t" + std::to_string(t);
      // large: the triad target; l2: the thread-scaling reference.
      const bool ratio = std::strcmp(r.name, "large") == 0 || std::strcmp(r.name, "l2") == 0;
      // The plot's baselines: every size class at one thread.
      const bool in_short = !r.is_shape && t == 1;
      if (!wanted(ratio, in_short)) continue;
      pool_reserve(n);
      reg("triad/base" + tail, ratio, [n, t](benchmark::State &st) { run_triad(st, false, n, t); });
#if DP_BENCH_HAVE_NATIVE
      reg("triad/native" + tail, ratio, [n, t](benchmark::State &st) { run_triad(st, true, n, t); });
#endif
      reg("memcpy/libc" + tail, false, [n, t](benchmark::State &st) { run_memcpy(st, n, t); });
    }

  const double ps[] = {0.0, 0.1, 0.5};
  for (const Shape &shp : api_shapes())
    for (double p : ps)
      for (int inplace = 0; inplace < 2; inplace++)
        for (int t : thread_counts()) {
          const std::string s = shp.name;
          const bool ratio = !inplace && p == 0.1 && (s == "vit" || s == "resnet");
          if (!wanted(ratio, false)) continue;
          pool_reserve(shp.elems());
          const std::string name = "naive/base/" + s + "/p" + p_token(p) + "/" + (inplace ? "inplace" : "oop") + "/t" +
                                   std::to_string(t);
          const Shape *sp = &shp;
          reg(name, ratio, [sp, p, inplace, t](benchmark::State &st) { run_naive(st, *sp, p, inplace != 0, t); });
        }
}

}  // namespace dpb
