// Every operation through the public API, per ISA, shape, drop rate,
// in-place/out-of-place and thread count:
//   {fwd,infer,droppath,bwd,bwdx,bwdxacc}/<isa>/<shape>/p<p>/<inplace|oop>/t<n>
// bwd has no grad_x; bwdx writes grad_x = grad_out; bwdxacc accumulates it.
#include <cstring>

#include "bench_common.h"

namespace dpb {
namespace {

enum class Op { kFwd, kInfer, kDropPath, kBwd, kBwdX, kBwdXAcc };

const char *op_name(Op op) {
  switch (op) {
    case Op::kFwd: return "fwd";
    case Op::kInfer: return "infer";
    case Op::kDropPath: return "droppath";
    case Op::kBwd: return "bwd";
    case Op::kBwdX: return "bwdx";
    default: return "bwdxacc";
  }
}

struct ApiCase {
  Op op;
  dp_isa isa;
  Shape shape;
  double p;
  bool inplace;
  int threads;
};

// Minimal bytes a sample must move, kept and dropped (D floats per tensor
// row).  A dropped in-place forward sample moves nothing: out already is x.
struct SampleBytes {
  size_t kept, dropped;
};

SampleBytes sample_bytes(const ApiCase &c) {
  const size_t r = c.shape.dim * sizeof(float);
  switch (c.op) {
    case Op::kFwd: return {3 * r, c.inplace ? 0 : 2 * r};  // read x, f; write out | copy x
    case Op::kInfer: return {3 * r, 3 * r};                 // no randomness: every sample kept
    case Op::kDropPath: return {2 * r, r};                  // read x, write out | write zeros
    case Op::kBwd: return {2 * r, r};                       // read g, write gf | zero gf
    case Op::kBwdX: return {3 * r, 3 * r};                  // + write gx | read g, write gx, zero gf
    default: return {4 * r, 4 * r};                         // + read gx
  }
}

// Distinct tensors the call touches (the working set, for the plot).
size_t tensors(const ApiCase &c) {
  switch (c.op) {
    case Op::kDropPath:
    case Op::kBwd: return c.inplace ? 1 : 2;
    default: return c.inplace ? 2 : 3;
  }
}

void run_api(benchmark::State &st, const ApiCase &c) {
  if (!select_isa(st, c.isa)) return;
  const size_t n = c.shape.elems(), batch = c.shape.batch;
  float *x = pool_get(kX, n), *f = pool_get(kF, n), *o = pool_get(kO, n);
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = c.p;
  prm.seed = kSeed;
  prm.num_threads = c.threads;
  dp_shape sh;
  sh.batch = batch;
  sh.seq = 1;
  sh.dim = c.shape.dim;
  const dp_tensor tx = dp_tensor_dense(x, DP_F32, sh), tf = dp_tensor_dense(f, DP_F32, sh);
  const dp_tensor to = dp_tensor_dense(o, DP_F32, sh), none = dp_tensor_dense(nullptr, DP_F32, sh);
  const std::vector<size_t> kept = c.op == Op::kInfer ? std::vector<size_t>(kOffsets, batch) : kept_counts(c.p, batch);
  const SampleBytes sb = sample_bytes(c);
  const uint32_t bwd_flags = c.op == Op::kBwdXAcc ? uint32_t(DP_BWD_ACCUMULATE_GRAD_X) : 0u;

  uint64_t bytes = 0, kept_sum = 0, off = 0;
  dp_status err = DP_OK;
  for (auto _ : st) {
    prm.offset = off;
    dp_status s;
    switch (c.op) {
      case Op::kFwd: s = dp_forward(&prm, sh, c.inplace ? tx : to, tx, tf, nullptr); break;
      case Op::kInfer: s = dp_inference_add(&prm, sh, c.inplace ? tx : to, tx, tf); break;
      case Op::kDropPath: s = dp_drop_path(&prm, sh, c.inplace ? tx : to, tx, nullptr); break;
      case Op::kBwd: s = dp_backward(&prm, sh, c.inplace ? tf : to, none, tf, nullptr, 0); break;
      default: s = dp_backward(&prm, sh, c.inplace ? tf : to, tx, tf, nullptr, bwd_flags); break;
    }
    if (s != DP_OK) err = s;
    bytes += kept[off] * sb.kept + (batch - kept[off]) * sb.dropped;
    kept_sum += kept[off];
    off = off + 1 == kOffsets ? 0 : off + 1;
  }
  // In-place calls rewrite their inputs; the next benchmark gets fresh ones.
  const bool writes_x = c.op == Op::kBwdX || c.op == Op::kBwdXAcc ||
                        (c.inplace && (c.op == Op::kFwd || c.op == Op::kInfer || c.op == Op::kDropPath));
  if (writes_x) pool_mark_dirty(kX, n);
  if (c.inplace && c.op >= Op::kBwd) pool_mark_dirty(kF, n);
  if (err != DP_OK) {
    st.SkipWithError(dp_status_string(err));
    return;
  }
  st.SetBytesProcessed(int64_t(bytes));
  st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(n));
  st.counters["kept_frac"] = double(kept_sum) / (double(st.iterations()) * double(batch));
  st.counters["ws_bytes"] = double(tensors(c) * n * sizeof(float));
}

// The rows behind the targets: fwd/bwdx vs triad (large, out-of-place,
// p=0), fwd vs naive (ViT-B, ResNet-50 at the common p=0.1), in-place
// p=0.5 vs p=0 (large), and thread scaling on the L2-resident shape.
bool is_ratio(const ApiCase &c) {
  const std::string s = c.shape.name;
  const bool fwd = c.op == Op::kFwd, fb = fwd || c.op == Op::kBwdX;
  if (fb && !c.inplace && c.p == 0.0 && (s == "large" || s == "l2")) return true;
  if (fwd && !c.inplace && c.p == 0.1 && (s == "vit" || s == "resnet")) return true;
  return fwd && c.inplace && (c.p == 0.0 || c.p == 0.5) && s == "large";
}

// Plus one representative row per operation for the short suite.
bool is_short(const ApiCase &c) {
  return c.isa == best_isa() && !c.inplace && std::strcmp(c.shape.name, "vit") == 0 &&
         (c.p == 0.1 || c.op == Op::kInfer);
}

}  // namespace

void register_api() {
  const Op ops[] = {Op::kFwd, Op::kInfer, Op::kDropPath, Op::kBwd, Op::kBwdX, Op::kBwdXAcc};
  const double ps[] = {0.0, 0.1, 0.5};
  for (const Shape &shp : api_shapes())
    for (Op op : ops)
      for (dp_isa isa : arch_isas())
        for (double p : ps) {
          if (op == Op::kInfer && p != 0.0) continue;  // inference does the same work at any p
          for (int inplace = 0; inplace < 2; inplace++)
            for (int t : thread_counts()) {
              const ApiCase c = {op, isa, shp, p, inplace != 0, t};
              const bool ratio = is_ratio(c);
              if (!wanted(ratio, is_short(c))) continue;
              pool_reserve(shp.elems());
              const std::string name = std::string(op_name(op)) + "/" + dp_isa_name(isa) + "/" + shp.name + "/p" +
                                       p_token(p) + "/" + (inplace ? "inplace" : "oop") + "/t" + std::to_string(t);
              reg(name, ratio, [c](benchmark::State &st) { run_api(st, c); });
            }
        }
}

}  // namespace dpb
