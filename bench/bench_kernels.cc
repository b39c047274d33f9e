// Below the API:
//   kern/<family>_<combo>/<isa>/<L1|L2|L3|DRAM>/<store|stream>  one kernel call on
//       one contiguous run (bwd writes grad_f and grad_x), single thread
//   tiny/<api|direct|rows>/<isa>/p<p>/t1  B=8, D=384 forward, one thread:
//       api     dp_forward (validation, dispatch, mask, row walk);
//       direct  the same work by hand with the same ISA's kernels: the mask
//               kernel, then one forward call per run of adjacent kept rows
//               (memcpy per run of dropped rows), as the API makes them;
//       rows    one call per row, scales precomputed (no mask): a reference
//       api-fpstate  dp_forward while the caller rounds upward: the cost of
//               switching to the library's floating-point state and back
//   tiny/mask/-/p<p>/t1  dp_mask alone for the same 8 samples (no data)
//   kern/mask_f32/<isa>/B<n>  the mask kernel alone: scales of n samples
// The kern rows come from the kernel list: each family's check file says how
// to call its kernels, on what sizes and with what traffic.
#include <cfenv>
#include <cstdlib>
#include <cstring>

#include "bench_common.h"
#include "harness.h"

namespace dpb {
namespace {

// One row of a kernel, timed through its family's check file
// (tests/kernels/check_<family>.c): the calls run in a C loop through the
// typed pointer, one batch of exactly the iterations the benchmark asks for.
void run_kernel(benchmark::State &st, const dp_kernel_info &k, size_t n, int variant) {
  if (!dp_isa_supported(k.isa)) {
    st.SkipWithError("ISA not supported by this CPU or build");
    return;
  }
  const kt_bench &b = kt_family_of(k.family)->bench;
  static const Slot slots[KT_BUFS] = {kO, kX, kF, kT};
  kt_bench_args a = {};
  // Pool arrays are float-sized, so they hold n elements of any combo.
  for (int i = 0; i < KT_BUFS; i++)
    if (b.bufs >> i & 1u) a.buf[i] = pool_get(slots[i], n);
  a.n = n;
  a.variant = variant;
  a.keep = 0.9f;
  a.seed = kSeed;
  a.cycle = kOffsets;
  while (st.KeepRunningBatch(st.max_iterations)) b.calls(&k, &a, size_t(st.max_iterations));
  benchmark::ClobberMemory();
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(n));
  if (!b.bytes) return;
  const size_t per_call = b.bytes(k.combo, n);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(per_call));
  st.counters["ws_bytes"] = double(per_call);
}

constexpr size_t kTinyBatch = 8, kTinyDim = 384;

// Private, cache-resident arrays: the pool's would sit at the same addresses
// as the big shapes and drag their cache history along.
float *tiny_buf(int which) {
  static float *bufs[3] = {};
  if (!bufs[which]) {
    bufs[which] = static_cast<float *>(std::aligned_alloc(64, kTinyBatch * kTinyDim * sizeof(float)));
    if (!bufs[which]) std::abort();
    for (size_t i = 0; i < kTinyBatch * kTinyDim; i++) bufs[which][i] = which == 0 ? 1.0f : which == 1 ? 1e-3f : 0.0f;
  }
  return bufs[which];
}

// kApiFpState: the API called while the caller rounds upward, so every call
// switches to the library's floating-point state and back (core/fpenv.h).
enum class Tiny { kApi, kDirect, kRows, kApiFpState };

void run_tiny(benchmark::State &st, dp_isa isa, double p, Tiny how) {
  if (!select_isa(st, isa)) return;
  const size_t batch = kTinyBatch, dim = kTinyDim, row = dim * sizeof(float);
  float *x = tiny_buf(0), *f = tiny_buf(1), *o = tiny_buf(2);
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = p;
  prm.seed = kSeed;
  prm.num_threads = 1;
  const std::vector<size_t> kept = kept_counts(p, batch);
  // Both variants walk the same kOffsets masks.
  std::vector<float> scales(kOffsets * batch);
  for (uint64_t k = 0; k < kOffsets; k++) {
    prm.offset = k;
    if (dp_mask(&prm, batch, nullptr, &scales[k * batch], nullptr, nullptr) != DP_OK) std::abort();
  }
  dp_kernel_table table;
  dp_kernels_for_isa(isa, &table);
  const dp_fwd_fn fwd = table.fwd[DP_COMBO_F32];
  // The API's keep and scale (dp_params docs); the direct mask must match it.
  const float keep = float(1.0 - p), scale = 1.0f / keep;
  std::vector<float> check(batch);
  for (uint64_t k = 0; k < kOffsets; k++) {
    table.mask[DP_COMBO_F32](kSeed, k, 0, keep, scale, batch, check.data());
    if (std::memcmp(check.data(), &scales[k * batch], batch * sizeof(float)) != 0) std::abort();
  }
  dp_shape sh;
  sh.batch = batch;
  sh.seq = 1;
  sh.dim = dim;
  const dp_tensor to = dp_tensor_dense(o, DP_F32, sh), tx = dp_tensor_dense(x, DP_F32, sh);
  const dp_tensor tf = dp_tensor_dense(f, DP_F32, sh);
  uint64_t bytes = 0, off = 0;
  dp_status err = DP_OK;
  const bool api = how == Tiny::kApi || how == Tiny::kApiFpState;
  if (how == Tiny::kApiFpState) std::fesetround(FE_UPWARD);
  for (auto _ : st) {
    if (!api) {
      float drawn[kTinyBatch];
      const float *s = &scales[off * batch];
      if (how == Tiny::kDirect) {
        table.mask[DP_COMBO_F32](kSeed, off, 0, keep, scale, batch, drawn);
        s = drawn;
      }
      for (size_t b = 0, n; b < batch; b += n) {
        // direct makes the API's calls: one per run of adjacent rows with
        // the same scale; rows makes one per row.
        n = 1;
        if (how == Tiny::kDirect)
          while (b + n < batch && s[b + n] == s[b]) n++;
        if (s[b] != 0.0f) fwd(o + b * dim, x + b * dim, f + b * dim, s[b], n * dim, 0);
        else std::memcpy(o + b * dim, x + b * dim, n * row);
      }
      benchmark::ClobberMemory();
    } else {
      prm.offset = off;
      const dp_status s = dp_forward(&prm, sh, to, tx, tf, nullptr);
      if (s != DP_OK) err = s;
    }
    bytes += kept[off] * 3 * row + (batch - kept[off]) * 2 * row;
    off = off + 1 == kOffsets ? 0 : off + 1;
  }
  std::fesetround(FE_TONEAREST);
  if (err != DP_OK) {
    st.SkipWithError(dp_status_string(err));
    return;
  }
  st.SetBytesProcessed(int64_t(bytes));
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(batch * dim));
  st.counters["ws_bytes"] = double(3 * batch * row);
}

void run_tiny_mask(benchmark::State &st, double p) {
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = p;
  prm.seed = kSeed;
  float scales[kTinyBatch];
  uint64_t off = 0;
  dp_status err = DP_OK;
  for (auto _ : st) {
    prm.offset = off;
    const dp_status s = dp_mask(&prm, kTinyBatch, nullptr, scales, nullptr, nullptr);
    if (s != DP_OK) err = s;
    benchmark::DoNotOptimize(scales);
    off = off + 1 == kOffsets ? 0 : off + 1;
  }
  if (err != DP_OK) st.SkipWithError(dp_status_string(err));
}

}  // namespace

void register_kernels() {
  size_t count = 0;
  const dp_kernel_info *list = dp_kernel_list(&count);
  for (size_t i = 0; i < count; i++) {
    const dp_kernel_info *k = &list[i];
    const kt_bench &b = kt_family_of(k->family)->bench;
    if (!b.calls) continue;
    // A family without sizes of its own takes the cache-level classes.
    std::vector<kt_bench_size> sizes(b.sizes, b.sizes + b.nsizes);
    if (!b.sizes)
      for (const SizeClass &sc : size_classes()) sizes.push_back({sc.name, sc.elems, 1});
    const std::string row = std::string("kern/") + dp_family_name(k->family) + "_" + dp_combo_name(k->combo) + "/" +
                            dp_isa_name(k->isa) + "/";
    for (const kt_bench_size &sz : sizes)
      for (size_t v = 0; v < (b.nvariants ? b.nvariants : 1); v++) {
        // The short suite keeps f32 (the plot's subject) at the sizes marked for it.
        if (!wanted(false, k->combo == DP_COMBO_F32 && sz.in_short)) continue;
        pool_reserve(sz.n);
        const std::string name = row + sz.name + (b.nvariants ? std::string("/") + b.variants[v] : std::string());
        const size_t n = sz.n;
        const int variant = int(v);
        reg(name, false, [k, n, variant](benchmark::State &st) { run_kernel(st, *k, n, variant); });
      }
  }

  const double ps[] = {0.0, 0.1, 0.5};
  const char *const tiny_names[] = {"api", "direct", "rows", "api-fpstate"};
  for (dp_isa isa : arch_isas())
    for (double p : ps)
      for (int how = 0; how < 4; how++) {
        const bool ratio = p == 0.1;
        if (static_cast<Tiny>(how) == Tiny::kApiFpState && !ratio) continue;
        if (!wanted(ratio, false)) continue;
        const std::string name =
            std::string("tiny/") + tiny_names[how] + "/" + dp_isa_name(isa) + "/p" + p_token(p) + "/t1";
        reg(name, ratio, [isa, p, how](benchmark::State &st) { run_tiny(st, isa, p, static_cast<Tiny>(how)); });
      }
  // Explains part of the API's tiny-call overhead, so it rides with the ratios.
  for (double p : ps)
    if (wanted(p == 0.1, false))
      reg("tiny/mask/-/p" + p_token(p) + "/t1", p == 0.1, [p](benchmark::State &st) { run_tiny_mask(st, p); });
}

}  // namespace dpb
