// LayerScale in the join (dp_forward_ls, dp_backward_ls) against the same
// work as separate passes, f32, p = 0.1, out-of-place:
//   ls/fused/<isa>/<shape>/<fwd|bwd>/t<n>   one library call
//   ls/split/<isa>/<shape>/<fwd|bwd>/t<n>   what a caller does without it:
//       fwd  t = f * gamma (a plain loop into a temporary), then dp_forward(out, x, t)
//       bwd  dp_backward (grad_t and grad_x), grad_gamma = column sums of
//            grad_t * f (one loop, per-thread partials), then grad_t *= gamma
// Shapes: ViT-B [64][197][768] and ConvNeXt-T stage 1 channels-last
// [64][56*56][96].  The split rows' library calls run on the same ISA; the
// plain loops are built with the project's flags.  Bytes are the fused
// call's minimal traffic for both, so GB/s ratios are time ratios.
#include <vector>

#include "baseline_loops.h"
#include "bench_common.h"

namespace dpb {
namespace {

struct LsShape {
  const char *name;
  size_t batch, seq, dim;
  size_t elems() const { return batch * seq * dim; }
};

const LsShape kLsShapes[] = {{"vit", 64, 197, 768}, {"convnext", 64, 56 * 56, 96}};

void run_ls(benchmark::State &st, dp_isa isa, const LsShape &shp, bool fused, bool bwd, int threads) {
  if (!select_isa(st, isa)) return;
  const size_t n = shp.elems(), rows = shp.batch * shp.seq, dim = shp.dim;
  // fwd: x, f, out, temporary; bwd: grad_out, f, grad_f, grad_x.
  float *a = pool_get(kX, n), *f = pool_get(kF, n), *o = pool_get(kO, n), *t = pool_get(kT, n);
  std::vector<float> gamma(dim), grad_gamma(dim), partials(dim * size_t(threads > 1 ? threads : 1));
  for (size_t d = 0; d < dim; d++) gamma[d] = 1e-6f * float(1 + d % 7);  // ConvNeXt's init is 1e-6
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = 0.1;
  prm.seed = kSeed;
  prm.num_threads = threads;
  dp_shape sh;
  sh.batch = shp.batch;
  sh.seq = shp.seq;
  sh.dim = dim;
  const dp_tensor ta = dp_tensor_dense(a, DP_F32, sh), tf = dp_tensor_dense(f, DP_F32, sh),
                  to = dp_tensor_dense(o, DP_F32, sh), tt = dp_tensor_dense(t, DP_F32, sh);
  const std::vector<size_t> kept = kept_counts(prm.drop_prob, shp.batch);
  const size_t row = shp.seq * dim * sizeof(float);
  uint64_t bytes = 0, off = 0;
  dp_status err = DP_OK;
  for (auto _ : st) {
    prm.offset = off;
    dp_status s;
    if (!bwd && fused) {
      s = dp_forward_ls(&prm, sh, to, ta, tf, gamma.data(), nullptr);
    } else if (!bwd) {
      dpb_base::ls_scale(t, f, gamma.data(), rows, dim, threads);
      s = dp_forward(&prm, sh, to, ta, tt, nullptr);
    } else if (fused) {
      s = dp_backward_ls(&prm, sh, to, tt, ta, tf, gamma.data(), grad_gamma.data(), nullptr, 0);
    } else {
      s = dp_backward(&prm, sh, to, tt, ta, nullptr, 0);
      dpb_base::ls_grad_gamma(grad_gamma.data(), partials.data(), o, f, rows, dim, threads);
      dpb_base::ls_mul_inplace(o, gamma.data(), rows, dim, threads);
    }
    benchmark::DoNotOptimize(grad_gamma.data());
    if (s != DP_OK) err = s;
    // Fused minimal traffic: fwd reads x, f, writes out (dropped: copy x);
    // bwd reads grad_out, f, writes grad_f, grad_x (dropped: no f).
    const size_t k = kept[off];
    bytes += bwd ? k * 4 * row + (shp.batch - k) * 3 * row : k * 3 * row + (shp.batch - k) * 2 * row;
    off = off + 1 == kOffsets ? 0 : off + 1;
  }
  if (bwd) pool_mark_dirty(kT, n);
  pool_mark_dirty(kO, n);
  if (err != DP_OK) {
    st.SkipWithError(dp_status_string(err));
    return;
  }
  st.SetBytesProcessed(int64_t(bytes));
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(n));
  st.counters["ws_bytes"] = double(4 * n * sizeof(float));
}

}  // namespace

void register_layerscale() {
  for (const LsShape &shp : kLsShapes) {
    pool_reserve(shp.elems());
    for (dp_isa isa : arch_isas())
      for (int bwd = 0; bwd < 2; bwd++)
        for (int t : thread_counts())
          for (int fused = 1; fused >= 0; fused--) {
            // The widest ISA's rows feed the targets (ratios, short); the
            // others only the full suite.
            const bool ratio = isa == best_isa();
            if (!wanted(ratio, false)) continue;
            const std::string name = std::string("ls/") + (fused ? "fused/" : "split/") + dp_isa_name(isa) + "/" +
                                     shp.name + "/" + (bwd ? "bwd" : "fwd") + "/t" + std::to_string(t);
            const LsShape *sp = &shp;
            reg(name, ratio, [isa, sp, fused, bwd, t](benchmark::State &st) { run_ls(st, isa, *sp, fused, bwd, t); });
          }
  }
}

}  // namespace dpb
