// The fused residual + norm (dp_forward_norm, dp_backward_norm) against the
// same work done in separate passes, f32 LayerNorm with gamma and beta, p=0.1:
//   norm/fused/<isa>/<shape>/t<n>    dp_forward_norm: reads x, f; writes r, y
//   norm/sep/<isa>/<shape>/t<n>      dp_forward (r), then the library's own
//       separate norm pass: dp_inference_norm with the branch switched off
//       (keep = 0 under the paper rule: f is not read, r not written), which
//       runs the same kernel reading r once and writing y
//   norm/sepc/<isa>/<shape>/t<n>     dp_forward, then a plain C LayerNorm loop
//       compiled -O3 -march=native (bench/baseline_loops.cc)
//   norm/bwdfused/<isa>/<shape>/t<n> dp_backward_norm: grad_x in place over
//       grad_r_in, grad_f, grad_gamma and grad_beta
//   norm/bwdsep/<isa>/<shape>/t<n>   the separate norm backward (dp_backward_norm
//       with every scale 0 and grad_f accumulated: grad_f is neither read nor
//       written, so the pass is grad_r = grad_r_in + norm_backward(grad_y) in
//       place), then dp_backward (grad_f = m*s*grad_r)
//   norm/lsbwdfused/<isa>/<shape>/t<n> with LayerScale in the join (ls_gamma):
//       dp_backward_norm_ls, which also gives grad_ls_gamma from the forward's f
//   norm/lsbwdsep/<isa>/<shape>/t<n>   what a caller does without it:
//       dp_backward_norm (grad_f with ls_gamma), then dp_backward_ls on grad_r
//       and f for grad_ls_gamma (the same bits; it writes grad_f again)
// Shapes: vit (64 x 197 x 768) and dram (64 x 512 x 1024, 128 MiB a tensor).
#include <cstring>
#include <vector>

#include "baseline_loops.h"
#include "bench_common.h"

namespace dpb {
namespace {

struct NormShape {
  const char *name;
  size_t B, T, D;
  size_t elems() const { return B * T * D; }
  size_t rows() const { return B * T; }
};

const NormShape kNormShapes[] = {{"vit", 64, 197, 768}, {"dram", 64, 512, 1024}};

enum class How { kFused, kSep, kSepC, kBwdFused, kBwdSep, kLsBwdFused, kLsBwdSep };
const char *const kHowNames[] = {"fused", "sep", "sepc", "bwdfused", "bwdsep", "lsbwdfused", "lsbwdsep"};
constexpr int kHows = 7;

// Per-shape arrays the calls share: gamma, beta, the statistics, zero scales.
struct NormArrays {
  std::vector<float> gamma, beta, mean, rstd, zeros, gg, gb, ls, gl;
};

NormArrays &arrays_for(const NormShape &s) {
  static NormArrays a[2];
  NormArrays &r = a[&s - kNormShapes];
  if (r.gamma.empty()) {
    r.gamma.assign(s.D, 1.0f);
    r.beta.assign(s.D, 0.0f);
    for (size_t d = 0; d < s.D; d++) r.gamma[d] = 1.0f + 1e-3f * float(d % 7), r.beta[d] = 1e-3f * float(d % 5);
    r.mean.assign(s.rows(), 0.0f);
    r.rstd.assign(s.rows(), 1.0f);
    r.zeros.assign(s.B, 0.0f);
    r.gg.assign(s.D, 0.0f);
    r.gb.assign(s.D, 0.0f);
    r.ls.assign(s.D, 0.0f);
    for (size_t d = 0; d < s.D; d++) r.ls[d] = 0.1f * float(1 + d % 7);
    r.gl.assign(s.D, 0.0f);
  }
  return r;
}

void run_norm(benchmark::State &st, dp_isa isa, const NormShape &s, How how, int threads) {
  if (!select_isa(st, isa)) return;
  const size_t n = s.elems();
  float *x = pool_get(kX, n), *f = pool_get(kF, n), *o = pool_get(kO, n), *t = pool_get(kT, n);
  const bool ls = how == How::kLsBwdFused || how == How::kLsBwdSep;
  float *e = ls ? pool_get(kE, n) : nullptr;
  NormArrays &a = arrays_for(s);
  const dp_shape sh = {s.B, s.T, s.D};
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = 0.1;
  prm.seed = kSeed;
  prm.num_threads = threads;
  dp_params off = prm;  // the separate norm pass: the branch switched off
  off.drop_prob = 1.0;
  off.scale_by_keep = 0;
  dp_norm nm;
  dp_norm_init(&nm);
  nm.gamma = a.gamma.data();
  nm.beta = a.beta.data();
  nm.mean = a.mean.data();
  nm.rstd = a.rstd.data();
  if (ls) nm.ls_gamma = a.ls.data();
  auto T_ = [&](float *p) { return dp_tensor_dense(p, DP_F32, sh); };
  // Forward: x = X, f = F, r = T, y = O.  Backward: grad_y = F, r = X,
  // grad_r_in = grad_x = T, grad_f = O; with LayerScale the forward's f = E.
  uint64_t off_k = 0;
  dp_status err = DP_OK;
  for (auto _ : st) {
    prm.offset = off_k;
    dp_status r = DP_OK;
    switch (how) {
      case How::kFused: r = dp_forward_norm(&prm, sh, &nm, T_(o), T_(t), T_(x), T_(f), nullptr); break;
      case How::kSep:
        r = dp_forward(&prm, sh, T_(t), T_(x), T_(f), nullptr);
        if (r == DP_OK) r = dp_inference_norm(&off, sh, &nm, T_(o), T_(nullptr), T_(t), T_(t));
        break;
      case How::kSepC:
        r = dp_forward(&prm, sh, T_(t), T_(x), T_(f), nullptr);
#if DP_BENCH_HAVE_NATIVE
        dpb_native::layernorm(o, t, nm.gamma, nm.beta, nm.mean, nm.rstd, s.rows(), s.D, nm.eps, threads);
#else
        dpb_base::layernorm(o, t, nm.gamma, nm.beta, nm.mean, nm.rstd, s.rows(), s.D, nm.eps, threads);
#endif
        break;
      case How::kBwdFused:
        r = dp_backward_norm(&prm, sh, &nm, T_(o), T_(t), T_(f), T_(x), T_(t), nullptr, a.gg.data(), a.gb.data(), 0);
        break;
      case How::kBwdSep:
        r = dp_backward_norm(&prm, sh, &nm, T_(o), T_(t), T_(f), T_(x), T_(t), a.zeros.data(), a.gg.data(),
                             a.gb.data(), DP_BWD_ACCUMULATE_GRAD_F);
        if (r == DP_OK) r = dp_backward(&prm, sh, T_(o), T_(nullptr), T_(t), nullptr, 0);
        break;
      case How::kLsBwdFused:
        r = dp_backward_norm_ls(&prm, sh, &nm, T_(o), T_(t), T_(f), T_(x), T_(t), T_(e), nullptr, a.gg.data(),
                                a.gb.data(), a.gl.data(), 0);
        break;
      case How::kLsBwdSep:
        r = dp_backward_norm(&prm, sh, &nm, T_(o), T_(t), T_(f), T_(x), T_(t), nullptr, a.gg.data(), a.gb.data(), 0);
        if (r == DP_OK)
          r = dp_backward_ls(&prm, sh, T_(o), T_(nullptr), T_(t), T_(e), nm.ls_gamma, a.gl.data(), nullptr, 0);
        break;
    }
    if (r != DP_OK) err = r;
    off_k = off_k + 1 == kOffsets ? 0 : off_k + 1;
  }
  if (err != DP_OK) {
    st.SkipWithError(dp_status_string(err));
    return;
  }
  // The fused passes' minimal traffic: 4 tensors forward, 5 backward (6 with LayerScale's f).
  const bool bwd = how == How::kBwdFused || how == How::kBwdSep;
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(n * 4 * (ls ? 6 : bwd ? 5 : 4)));
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(n));
  st.counters["ws_bytes"] = double(n * 4 * 4);
}

}  // namespace

void register_norm() {
  for (const NormShape &s : kNormShapes)
    for (dp_isa isa : arch_isas())
      for (int t : thread_counts())
        for (int h = 0; h < kHows; h++) {
          // The targets compare on the widest ISA; the rest only in the full suite.
          const bool ratio = isa == best_isa();
          if (!wanted(ratio, ratio && std::strcmp(s.name, "vit") == 0 && t == 1)) continue;
          pool_reserve(s.elems());
          const std::string name = std::string("norm/") + kHowNames[h] + "/" + dp_isa_name(isa) + "/" + s.name +
                                   "/t" + std::to_string(t);
          const NormShape *sp = &s;
          reg(name, ratio, [isa, sp, h, t](benchmark::State &st) { run_norm(st, isa, *sp, How(h), t); });
        }
}

}  // namespace dpb
