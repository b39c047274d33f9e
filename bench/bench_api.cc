// Every operation through the public API, per ISA, shape, drop rate,
// in-place/out-of-place and thread count:
//   {fwd,infer,droppath,bwd,bwdx,bwdxacc}/<isa>/<shape>/p<p>/<inplace|oop>/t<n>
// bwd has no grad_x; bwdx writes grad_x = grad_out; bwdxacc accumulates it.
// Those are f32.  The forward also runs on half-precision storage (large and
// vit, out-of-place, p=0), with the dtypes as one more segment:
//   fwd/<isa>/<shape>/p0/oop/t<n>/<bf16|f16|f32-bf16|f32-f16>
// where f32-bf16 is x and out f32 with f bf16 (the header's mixed form).
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

// Element types of a case: out (and grad tensors) share x's.
struct Dtypes {
  dp_dtype x, f;
  const char *token;  // name segment; f32 cases have none
};
const Dtypes kF32 = {DP_F32, DP_F32, ""};
const Dtypes kHalfForms[] = {
    {DP_BF16, DP_BF16, "bf16"},
    {DP_F16, DP_F16, "f16"},
    {DP_F32, DP_BF16, "f32-bf16"},
    {DP_F32, DP_F16, "f32-f16"},
};

size_t elem_size(dp_dtype d) { return d == DP_F32 ? 4 : 2; }

struct ApiCase {
  Op op;
  dp_isa isa;
  Shape shape;
  double p;
  bool inplace;
  int threads;
  Dtypes dt;
};

// Minimal bytes a sample must move, kept and dropped (D elements per tensor
// row).  A dropped in-place forward sample moves nothing: out already is x.
struct SampleBytes {
  size_t kept, dropped;
};

SampleBytes sample_bytes(const ApiCase &c) {
  const size_t r = c.shape.dim * elem_size(c.dt.x), rf = c.shape.dim * elem_size(c.dt.f);
  switch (c.op) {
    case Op::kFwd: return {2 * r + rf, c.inplace ? 0 : 2 * r};  // read x, f; write out | copy x
    case Op::kInfer: return {3 * r, 3 * r};                 // no randomness: every sample kept
    case Op::kDropPath: return {2 * r, r};                  // read x, write out | write zeros
    case Op::kBwd: return {2 * r, r};                       // read g, write gf | zero gf
    case Op::kBwdX: return {3 * r, 3 * r};                  // + write gx | read g, write gx, zero gf
    default: return {4 * r, 4 * r};                         // + read gx
  }
}

// Bytes of the distinct tensors the call touches (the working set, for the
// plot).  Only the forward has half-precision cases.
size_t ws_bytes(const ApiCase &c) {
  const size_t n = c.shape.elems(), xb = n * elem_size(c.dt.x), fb = n * elem_size(c.dt.f);
  switch (c.op) {
    case Op::kDropPath:
    case Op::kBwd: return (c.inplace ? 1 : 2) * xb;
    default: return (c.inplace ? 1 : 2) * xb + fb;
  }
}

void run_api(benchmark::State &st, const ApiCase &c) {
  if (!select_isa(st, c.isa)) return;
  const size_t n = c.shape.elems(), batch = c.shape.batch;
  void *x = pool_get_as(kX, n, c.dt.x), *f = pool_get_as(kF, n, c.dt.f), *o = pool_get_as(kO, n, c.dt.x);
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = c.p;
  prm.seed = kSeed;
  prm.num_threads = c.threads;
  dp_shape sh;
  sh.batch = batch;
  sh.seq = 1;
  sh.dim = c.shape.dim;
  const dp_tensor tx = dp_tensor_dense(x, c.dt.x, sh), tf = dp_tensor_dense(f, c.dt.f, sh);
  const dp_tensor to = dp_tensor_dense(o, c.dt.x, sh), none = dp_tensor_dense(nullptr, c.dt.x, sh);
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
  st.counters["ws_bytes"] = double(ws_bytes(c));
}

bool is_f32(const ApiCase &c) { return c.dt.x == DP_F32 && c.dt.f == DP_F32; }

// The rows behind the targets: fwd/bwdx vs triad (large, out-of-place,
// p=0), fwd vs naive (ViT-B, ResNet-50 at the common p=0.1), in-place
// p=0.5 vs p=0 (large), thread scaling on the L2-resident shape, and
// half-precision vs f32 forward time (large, out-of-place, p=0).
bool is_ratio(const ApiCase &c) {
  const std::string s = c.shape.name;
  if (!is_f32(c)) return s == "large";
  const bool fwd = c.op == Op::kFwd, fb = fwd || c.op == Op::kBwdX;
  if (fb && !c.inplace && c.p == 0.0 && (s == "large" || s == "l2")) return true;
  if (fwd && !c.inplace && c.p == 0.1 && (s == "vit" || s == "resnet")) return true;
  return fwd && c.inplace && (c.p == 0.0 || c.p == 0.5) && s == "large";
}

// Plus one representative row per operation for the short suite, and the
// bf16 and mixed bf16 forward on ViT-B.
bool is_short(const ApiCase &c) {
  if (c.isa != best_isa() || c.inplace || std::strcmp(c.shape.name, "vit") != 0) return false;
  if (!is_f32(c)) return c.dt.x == DP_BF16 || c.dt.f == DP_BF16;
  return c.p == 0.1 || c.op == Op::kInfer;
}

void register_case(const ApiCase &c) {
  const bool ratio = is_ratio(c), in_short = is_short(c);
  // f16 and mixed rows only inform (the target is bf16's), and the
  // software-f16 ISAs take ~0.2 s per call on large: not in short.
  const bool informs = ratio && !is_f32(c) && c.dt.x != DP_BF16;
  if (informs && !in_short && config().suite == Suite::kShort) return;
  if (!wanted(ratio, in_short)) return;
  pool_reserve(c.shape.elems());
  std::string name = std::string(op_name(c.op)) + "/" + dp_isa_name(c.isa) + "/" + c.shape.name + "/p" +
                     p_token(c.p) + "/" + (c.inplace ? "inplace" : "oop") + "/t" + std::to_string(c.threads);
  if (!is_f32(c)) name += std::string("/") + c.dt.token;
  reg(name, ratio, [c](benchmark::State &st) { run_api(st, c); });
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
              ApiCase c = {op, isa, shp, p, inplace != 0, t, kF32};
              register_case(c);
              // Right after their f32 sibling, so a ratio compares
              // neighbours in time.
              const std::string s = shp.name;
              if (op != Op::kFwd || inplace || p != 0.0 || (s != "large" && s != "vit")) continue;
              for (const Dtypes &dt : kHalfForms) {
                c.dt = dt;
                register_case(c);
              }
            }
        }
}

}  // namespace dpb
