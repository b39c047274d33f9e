/*
 * libdroppath — fused DropPath / Stochastic Depth for CPUs.
 *
 * A batch is B samples; each sample is T rows ("sequence positions") of D
 * contiguous elements. One Bernoulli(keep) draw per sample (row mode) or per
 * call (batch mode) decides whether the sample's residual branch survives.
 *
 *   training forward   out[b] = x[b] + m[b]*s*f[b]        dp_forward
 *   inference add      out    = x + f  | x + keep*f       dp_inference_add
 *   drop_path          out[b] = m[b]*s*x[b]               dp_drop_path
 *   backward           grad_f[b] = m[b]*s*grad_out[b]     dp_backward
 *                      grad_x   (+)= grad_out
 *   LayerScale join    out[b] = x[b] + m[b]*s*(gamma ⊙ f[b])   dp_forward_ls,
 *                      (and its inference add and backward)   dp_inference_add_ls,
 *                                                             dp_backward_ls
 *
 * keep = (float)(1.0 - drop_prob); s = 1/keep when scale_by_keep and keep > 0,
 * else 1.  Arithmetic is x + (s*f): one multiply, one add, never fused into an
 * FMA, so every ISA produces the same bits.  An arithmetic result that is NaN
 * is stored as the canonical quiet NaN (f32 0x7FC00000, bf16 0x7FC0, f16
 * 0x7E00), so NaNs are the same bits on every ISA and architecture too.
 * With bf16/f16 storage the math is a multiply and an add, each rounded in
 * f32, then one rounding to the storage type (to nearest, ties to even,
 * through subnormals).  A dropped sample's branch is never read: out = x
 * exactly (NaN in f cannot leak; timm would give x + 0*NaN = NaN).  Dropped
 * samples get +0.0 from dp_drop_path and in grad_f (PyTorch's autograd gives
 * -0.0 where grad_out is negative).
 *
 * Floating-point state: every call computes in round-to-nearest-even with
 * subnormals honoured and FP exceptions masked, on every thread it uses,
 * whatever the caller set (rounding mode, flush-to-zero, denormals-are-zero,
 * traps: x86 MXCSR, AArch64 FPCR), and restores the caller's control state;
 * keep and s are computed that way too.  The sticky exception flags are not
 * part of the promise: a caller already in the default state sees the flags
 * the library's arithmetic raises, as for any computation.
 *
 * Mask specification (reproducible in any language):
 *   Philox4x32-10 (Salmon et al., Random123), key = (seed_lo, seed_hi),
 *   counter = (g_lo, g_hi, offset_lo, offset_hi), with g = sample_base + b in
 *   row mode (mod 2^64) and g = 2^64-1 in batch mode.  From the first output word w0,
 *   u = (w0 >> 8) * 2^-24 and the sample is kept iff u < keep.
 *   Batch mode's counter is also the row-mode counter of global sample
 *   2^64-1: that sample and a batch-mode call with the same seed and offset
 *   share one draw.  Exact-k mode (DP_MODE_EXACT_K) keeps exactly
 *   k = max(floor(B*(1 - drop_prob)), 1) of the call's B > 0 samples, B*(1 - drop_prob) computed in
 *   double: the k samples whose (w0, b) pairs are smallest, w0 being the row-mode word of sample b
 *   and ties in w0 going to the lower b; kept samples get s = (float)((double)B/k) (1 without
 *   scale_by_keep).  The selection depends on every sample of the call, so unlike row mode it is not
 *   the same when the batch is split into shards.  keep is rounded to a float, so a drop_prob below about
 *   2^-25 gives keep = 1 (nothing is dropped), and as u is a multiple of
 *   2^-24 the drop probability acts in steps of 2^-24.
 *
 * Every function validates all arguments before touching memory: on any error
 * it returns a status other than DP_OK and leaves every output byte unchanged.
 * When a call has several faults the first failing check decides, in this
 * order: params (NULL, drop_prob, mode, flags, num_threads); dp_backward's
 * flags; each tensor in argument order (dtype; a stride shorter than a row;
 * NULL data; sizes that overflow, rows that overlap each other; alignment);
 * the dtype combination; each array in argument order (size, alignment; an
 * optional array that is NULL is not asked for);
 * overlaps between arguments; a dtype combination without kernels.
 * Data pointers must be aligned to their element size (4 bytes for f32, 2 for
 * bf16/f16, the element type's size for arrays): DP_ERR_MISALIGNED otherwise.
 * Overlap is judged by address range, a tensor's span from its first to its
 * last element: tensors whose elements are disjoint but whose spans
 * interleave (out on the even rows and x on the odd rows of one buffer, say)
 * are rejected with DP_ERR_OVERLAP.  D = 0 writes no tensor data, but
 * scales_out is still written: the mask does not depend on D.
 */
#ifndef DROPPATH_H
#define DROPPATH_H

#include <stddef.h>
#include <stdint.h>

#include "droppath/version.h"

#if defined(DP_STATIC_DEFINE)
#define DP_API
#elif defined(_WIN32)
#if defined(DP_BUILDING_LIBRARY)
#define DP_API __declspec(dllexport)
#else
#define DP_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define DP_API __attribute__((visibility("default")))
#else
#define DP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every fallible call. DP_OK is 0; errors are positive. */
typedef enum dp_status {
  DP_OK = 0,
  DP_ERR_NULL_POINTER = 1,  /**< a required pointer is NULL while the size is non-zero */
  DP_ERR_BAD_PROBABILITY,   /**< drop_prob (or a rate) is NaN or outside [0, 1] */
  DP_ERR_BAD_STRIDE,        /**< a stride is smaller than the row it must hold, or rows would overlap */
  DP_ERR_SIZE_OVERFLOW,     /**< a byte count or address range does not fit in size_t */
  DP_ERR_OVERLAP,           /**< an output partially overlaps an input or another output */
  DP_ERR_BAD_MODE,          /**< unknown dp_mode */
  DP_ERR_BAD_DTYPE,         /**< unknown dtype, or a dtype combination the operation lacks */
  DP_ERR_BAD_FLAGS,         /**< unknown bits in a flags word, or both DP_FLAG_STREAM_* set */
  DP_ERR_BAD_ISA,           /**< unknown dp_isa value */
  DP_ERR_ISA_UNSUPPORTED,   /**< the ISA is not compiled in or the CPU/OS cannot run it */
  DP_ERR_BAD_ARGUMENT,      /**< any other invalid value (schedule rule, thread count, ...) */
  DP_ERR_MISALIGNED,        /**< a data pointer is not a multiple of its element size (4 for f32,
                                 2 for bf16/f16; arrays: their element type's size) */
  DP_ERR_NO_MEMORY          /**< a work buffer could not be allocated (the per-group partial sums of
                                 dp_backward_norm's parameter gradients or dp_backward_ls's grad_gamma);
                                 nothing was written */
} dp_status;

/** Element type of a tensor. */
typedef enum dp_dtype {
  DP_F32 = 0,  /**< IEEE binary32 */
  DP_BF16 = 1, /**< bfloat16 (upper half of binary32) */
  DP_F16 = 2   /**< IEEE binary16 */
} dp_dtype;

/** How many Bernoulli draws a call makes. */
typedef enum dp_mode {
  DP_MODE_ROW = 0,  /**< one draw per sample (timm, torchvision "row"); the default */
  DP_MODE_BATCH = 1, /**< one draw for the whole call (torchvision "batch", Huang et al.) */
  DP_MODE_EXACT_K = 2 /**< exactly k = max(floor(B*(1 - drop_prob)), 1) samples kept (B > 0), scaled by
                           B/k (DINOv2's rule): the k with the smallest Philox word (see "Exact-k"
                           below). Depends on the whole call's batch: not shard-invariant. */
} dp_mode;

/** Instruction sets with kernels. Order is by capability on each architecture. */
typedef enum dp_isa {
  DP_ISA_SCALAR = 0,
  DP_ISA_SSE2 = 1,
  DP_ISA_AVX2 = 2,
  DP_ISA_AVX512 = 3,
  DP_ISA_NEON = 4,
  DP_ISA_COUNT = 5
} dp_isa;

/** Flags for dp_backward. */
enum {
  DP_BWD_ACCUMULATE_GRAD_F = 1u << 0, /**< grad_f += m*s*grad_out (dropped rows untouched) */
  DP_BWD_ACCUMULATE_GRAD_X = 1u << 1, /**< grad_x += grad_out (else grad_x = grad_out) */
  DP_BWD_ACCUMULATE_GRAD_GAMMA = 1u << 2 /**< dp_backward_ls only: grad_gamma += the sum (else =) */
};

/** Flags in dp_params.flags. */
enum {
  DP_FLAG_STREAM_NEVER = 1u << 0, /**< never use non-temporal stores (default: only for outputs
                                       larger than the call's share of the last-level cache, and
                                       not in place; README "Stores") */
  DP_FLAG_STREAM_ALWAYS = 1u << 1 /**< always use non-temporal stores where the ISA has them */
};

/** Per-call parameters. Initialise with dp_params_init(); then set fields. */
typedef struct dp_params {
  double drop_prob;     /**< probability of dropping a sample's branch, in [0, 1] */
  uint64_t seed;        /**< Philox key */
  uint64_t offset;      /**< per-call counter (e.g. step * n_layers + layer) */
  uint64_t sample_base; /**< global index of sample 0 of this call (shards, ranges) */
  int mode;             /**< dp_mode; default DP_MODE_ROW */
  int scale_by_keep;    /**< nonzero (default): kept branches scaled by 1/keep */
  int num_threads;      /**< 0 (default): library setting; 1: run on the calling thread; n: at most
                             n OpenMP threads, and never more than the processors the process may
                             run on (omp_get_num_procs, asked once) */
  uint32_t flags;       /**< DP_FLAG_*; 0 by default */
} dp_params;

/** Shape shared by all tensors of a call: B samples x T rows x D elements. */
typedef struct dp_shape {
  size_t batch; /**< B: samples; the mask has one entry per sample */
  size_t seq;   /**< T: rows per sample (1 for plain [B][D]); 0 is treated as 1 */
  size_t dim;   /**< D: contiguous elements per row */
} dp_shape;

/**
 * Where one tensor's rows live: row (b, t) starts at element
 * b*sample_stride + t*seq_stride.  Strides are in elements.  Examples:
 *   [B][D] dense            sample_stride = D
 *   [B][T][D] dense         sample_stride = T*D, seq_stride = D
 *   [T][B][D] (seq-first)   sample_stride = D,   seq_stride = B*D
 * Output rows must not overlap each other; see dp_tensor_dense/dp_tensor_seq_first.
 */
typedef struct dp_tensor {
  void *data;
  int dtype;            /**< dp_dtype */
  size_t sample_stride; /**< elements between samples b and b+1; >= D */
  size_t seq_stride;    /**< elements between rows t and t+1 of one sample; >= D when T > 1 */
} dp_tensor;

/** Drop-rate schedule rules for dp_drop_rates. */
typedef enum dp_schedule {
  DP_SCHEDULE_LINSPACE = 0,     /**< timm: linspace(0, rate, L), rate_i = rate*i/(L-1), i = 0..L-1 */
  DP_SCHEDULE_RESNET = 1,       /**< torchvision/ResNet: rate*i/(L-1), i = 0..L-1 (same values as LINSPACE) */
  DP_SCHEDULE_EFFICIENTNET = 2, /**< EfficientNet: rate*i/L, i = 0..L-1 */
  DP_SCHEDULE_HUANG = 3,        /**< Huang et al. 2016: rate*i/L, i = 1..L (last block gets rate) */
  DP_SCHEDULE_CONSTANT = 4      /**< every block gets rate */
} dp_schedule;

/* ---------------------------------------------------------------- basics */

/** Runtime version as "MAJOR.MINOR.PATCH". */
DP_API const char *dp_version_string(void);
/** Runtime version as MAJOR*10000 + MINOR*100 + PATCH. */
DP_API int dp_version_number(void);
/** Short English name of a status ("invalid stride", ...); never NULL. */
DP_API const char *dp_status_string(dp_status status);
/** Defaults: drop_prob 0, seed 0, offset 0, sample_base 0, row mode, scale_by_keep 1. */
DP_API void dp_params_init(dp_params *params);
/** A dense [B][T][D] tensor view (sample_stride = T*D, seq_stride = D). */
DP_API dp_tensor dp_tensor_dense(void *data, dp_dtype dtype, dp_shape shape);
/** A dense sequence-first [T][B][D] tensor view (sample_stride = D, seq_stride = B*D). */
DP_API dp_tensor dp_tensor_seq_first(void *data, dp_dtype dtype, dp_shape shape);

/* ---------------------------------------------------------------- operations */

/**
 * Training forward, fused: out[b] = x[b] + m[b]*s*f[b].
 * out may be exactly x (dropped samples are then not touched) or exactly f
 * (dropped samples get a copy of x); any other overlap is DP_ERR_OVERLAP.
 * scales_out, if not NULL, receives B floats: s for kept samples, 0 for dropped.
 * dtypes: all F32; all BF16; all F16; or out/x F32 with f BF16 or F16.
 */
DP_API dp_status dp_forward(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                            dp_tensor f, float *scales_out);

/**
 * Inference residual add, no randomness: out = x + f when scale_by_keep
 * (weights trained with 1/keep scaling), else out = x + keep*f (Huang et al.'s
 * test-time rule). With keep == 0 under the second rule f is not read and out = x.
 */
DP_API dp_status dp_inference_add(const dp_params *params, dp_shape shape, dp_tensor out,
                                  dp_tensor x, dp_tensor f);

/**
 * Non-residual drop_path (timm's drop_path): out[b] = m[b]*s*x[b]; dropped
 * samples are written as +0.0 and x is not read for them. out may be exactly x.
 */
DP_API dp_status dp_drop_path(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                              float *scales_out);

/**
 * Backward of dp_forward / dp_drop_path: grad_f[b] = m[b]*s*grad_out[b].
 * The mask comes from scales (B floats saved by the forward) or, when scales is
 * NULL, is regenerated from params exactly as the forward drew it.
 * flags: DP_BWD_ACCUMULATE_GRAD_F makes it grad_f += ..., leaving dropped
 * samples untouched (else they are zeroed).  If grad_x.data is not NULL, the
 * same pass writes grad_x = grad_out, or grad_x += grad_out with
 * DP_BWD_ACCUMULATE_GRAD_X, so grad_out is read once.  grad_f may be exactly
 * grad_out; grad_x must not overlap anything.  dtypes: grad_out and grad_x
 * share the residual type X, grad_f has the branch type F, and (X, F) is one
 * of dp_forward's combinations (f32/f32, bf16/bf16, f16/f16, f32/bf16, f32/f16).
 */
DP_API dp_status dp_backward(const dp_params *params, dp_shape shape, dp_tensor grad_f,
                             dp_tensor grad_x, dp_tensor grad_out, const float *scales,
                             uint32_t flags);

/*
 * LayerScale (Touvron et al. 2021; timm's LayerScale, ConvNeXt's gamma):
 * blocks computing x + drop_path(gamma * f) with gamma a learnable vector of
 * D floats (f32 whatever the tensors' type), one per channel (the last,
 * contiguous dimension).  The _ls functions fuse the multiply into the join;
 * gamma == NULL makes each exactly its plain counterpart, bit for bit.
 *
 * Arithmetic order (timm's x + drop_path(f * gamma), drop_path multiplying
 * by m/keep): out = x + ((gamma_d*f)*s): two multiplies and an add, each
 * rounded in f32, never fused, the same bits on every ISA.  Backward, as
 * PyTorch's autograd of that expression: gs = grad_out*s, grad_f = gs*gamma_d
 * for kept samples (+0.0 for dropped ones, as dp_backward), grad_x (+)=
 * grad_out, grad_gamma_d (+)= the sum over kept rows of gs*f.
 *
 * grad_gamma's summation order, fixed by the shape alone (never by threads
 * or ISA, so the bits are the same for any thread count and on every ISA);
 * every per-channel parameter gradient of the library is summed in it (the
 * fused norm's grad_gamma, grad_beta and grad_ls_gamma too, over all rows):
 * rows r = b*T + t (b-major, whatever the tensors' layout) are cut into
 * groups of P consecutive rows, with R = B*T,
 *   M = min(64, max(1, floor(2^22 / D)))          most groups
 *   P = max(ceil(2^16 / D), ceil(R / M))          rows per group
 * Each group sums its kept rows in row order into partial sums starting at
 * +0.0f (a dropped row is skipped, f and grad_out never read for it); the
 * partials of groups 0, 1, 2, ... are added in that order; then grad_gamma
 * = total, or grad_gamma + total with DP_BWD_ACCUMULATE_GRAD_GAMMA.  Every
 * sum is f32 (per channel, never across channels); a NaN result is stored
 * canonical.  The f32 error is bounded by (P + ceil(R/P) + 2) * 2^-24 times
 * the sum of |gs*f| (first order), the bound the tests hold it to against a
 * double-precision sum.  Scratch: ceil(R/P) * D floats (at most 16 MiB or
 * 64 * D floats), on the stack up to 1024 floats.
 *
 * dtypes: every combination the plain operations take (f32; bf16; f16; f32
 * x, out, grad_out, grad_x with a bf16 or f16 f and grad_f); gamma and
 * grad_gamma are f32 whatever the tensors' type.  With bf16/f16 storage the
 * arithmetic above runs on the widened values, each step rounded in f32,
 * then one rounding to the stored type (to nearest, ties to even, through
 * subnormals); grad_gamma sums the f32 products gs*f in the order above.
 */

/**
 * Training forward with LayerScale, fused: out[b] = x[b] + m[b]*s*(gamma ⊙ f[b]),
 * computed as x + ((gamma_d*f)*s).  gamma: D floats, or NULL for dp_forward
 * itself.  Everything else as dp_forward: out may be exactly x or f; dropped
 * samples copy x (f not read); scales_out may be NULL.  gamma must not
 * overlap out or scales_out.
 */
DP_API dp_status dp_forward_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                               const float *gamma, float *scales_out);

/**
 * Inference residual add with LayerScale: out = x + gamma ⊙ f when
 * scale_by_keep, else out = x + (gamma ⊙ f)*keep (Huang et al.'s rule),
 * computed as x + ((gamma_d*f)*s) with s = 1 or keep ((gamma_d*f)*1 is
 * gamma_d*f exactly).  gamma NULL: dp_inference_add itself.
 */
DP_API dp_status dp_inference_add_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                                     dp_tensor f, const float *gamma);

/**
 * Backward of dp_forward_ls, one pass over grad_out (and f):
 *   grad_f[b]   = (grad_out[b]*s)*gamma   (+= with DP_BWD_ACCUMULATE_GRAD_F;
 *                 dropped samples +0.0, or untouched when accumulating)
 *   grad_x      (+)= grad_out             when grad_x.data is not NULL
 *   grad_gamma  (+)= sum over kept rows of (grad_out*s)*f, in the fixed order
 *                 above (+= with DP_BWD_ACCUMULATE_GRAD_GAMMA); NULL: not asked for
 * f is the branch input the forward scaled (type F, f's layout of its own);
 * it is read only for grad_gamma and may have NULL data without it.  The
 * mask comes from scales (B floats) or, when NULL, from params as the
 * forward drew it.  grad_f may be exactly grad_out or f; grad_x and
 * grad_gamma overlap nothing; gamma overlaps no output.  gamma NULL:
 * dp_backward itself (f not looked at), and grad_gamma must then be NULL
 * (else DP_ERR_BAD_ARGUMENT, checked after the flags).
 */
DP_API dp_status dp_backward_ls(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                                dp_tensor grad_out, dp_tensor f, const float *gamma, float *grad_gamma,
                                const float *scales, uint32_t flags);

/**
 * The mask of a call without touching data.  Each output may be NULL:
 * keep_out (B bytes, 1 = kept), scales_out (B floats: s or 0), kept_count,
 * kept_indices (ascending indices b of kept samples; room for B entries).
 */
DP_API dp_status dp_mask(const dp_params *params, size_t batch, uint8_t *keep_out,
                         float *scales_out, size_t *kept_count, size_t *kept_indices);

/* ---------------------------------------------------------------- sample compaction */
/*
 * Run the residual branch only on the kept samples (stochastic depth's
 * saving): dp_compact_gather draws the mask and copies the kept samples of
 * the branch input into a compact batch of k samples; the branch runs on
 * those k; dp_compact_forward joins its output back into the residual
 * stream.  Backward: dp_compact_backward gives the branch's output gradient
 * for the k kept samples (and grad_x), dp_compact_scatter_add adds the
 * branch's input gradient back into grad_x.  The results are bit for bit
 * those of dp_forward / dp_backward with a branch that acts on each sample
 * alone; dp_compact_forward_ls / dp_compact_backward_ls are the join and
 * backward with LayerScale, those of dp_forward_ls / dp_backward_ls.  A compact tensor has kept_count samples, of the shape's T rows of
 * D elements each, laid out as its own strides say; kept_indices are the
 * ascending sample indices b of the kept samples, as dp_compact_gather or
 * dp_mask return them (checked after every other argument: present,
 * strictly ascending, below B, else DP_ERR_NULL_POINTER or
 * DP_ERR_BAD_ARGUMENT).  s is the scale of kept samples: 1/keep (or 1) in
 * row and batch mode, B/k in exact-k mode (see the mode).
 */

/**
 * Draws the call's mask (as dp_mask) and gathers the kept samples:
 * dst[i] = src[kept_indices[i]] for i < k, a copy (dst and src have one
 * dtype, any).  kept_count receives k and kept_indices (room for B entries)
 * the kept samples; dst is a compact tensor of k samples (checked after the
 * draw, so it may be sized for k), which must not overlap src or the arrays.
 */
DP_API dp_status dp_compact_gather(const dp_params *params, dp_shape shape, dp_tensor dst, dp_tensor src,
                                   size_t *kept_count, size_t *kept_indices);

/**
 * Forward join of a compacted branch: out[b] = x[b] for dropped samples and
 * out[b] = x[b] + s*f_kept[i] for b = kept_indices[i], one pass.  out may be
 * exactly x: then only kept samples are touched.  f_kept is a compact tensor
 * of kept_count samples.  dtypes as dp_forward (out, x: X; f_kept: F).
 */
DP_API dp_status dp_compact_forward(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                                    dp_tensor f_kept, size_t kept_count, const size_t *kept_indices);

/**
 * Backward of dp_compact_forward, one pass over grad_out:
 * grad_f_kept[i] = s*grad_out[kept_indices[i]] (or += with
 * DP_BWD_ACCUMULATE_GRAD_F), and, if grad_x.data is not NULL, grad_x =
 * grad_out (or += with DP_BWD_ACCUMULATE_GRAD_X) for every sample.
 * grad_f_kept is compact (kept_count samples); no output may overlap
 * another argument.  dtypes as dp_backward.
 */
DP_API dp_status dp_compact_backward(const dp_params *params, dp_shape shape, dp_tensor grad_f_kept,
                                     dp_tensor grad_x, dp_tensor grad_out, size_t kept_count,
                                     const size_t *kept_indices, uint32_t flags);

/**
 * Scatter-add of the branch's input gradient: grad_x[kept_indices[i]] +=
 * grad_in_kept[i] (dropped samples untouched).  grad_in_kept is compact
 * (kept_count samples) and must not overlap grad_x; dtypes as dp_forward's
 * (grad_x: X, grad_in_kept: F).  params gives threads and flags only: no mask is drawn.
 */
DP_API dp_status dp_compact_scatter_add(const dp_params *params, dp_shape shape, dp_tensor grad_x,
                                        dp_tensor grad_in_kept, size_t kept_count, const size_t *kept_indices);

/**
 * dp_compact_forward with LayerScale (see above): out[b] = x[b] for dropped
 * samples and out[b] = x[b] + ((gamma_d*f_kept[i])*s) for b =
 * kept_indices[i], the bits of dp_forward_ls with a branch that acts on each
 * sample alone.  gamma: D floats, not overlapping out; NULL:
 * dp_compact_forward itself.  dtypes as dp_forward_ls.
 */
DP_API dp_status dp_compact_forward_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                                       dp_tensor f_kept, const float *gamma, size_t kept_count,
                                       const size_t *kept_indices);

/**
 * Backward of dp_compact_forward_ls, one pass over grad_out (and f_kept):
 *   grad_f_kept[i] = (grad_out[kept_indices[i]]*s)*gamma   (+= with DP_BWD_ACCUMULATE_GRAD_F)
 *   grad_x         (+)= grad_out for every sample          when grad_x.data is not NULL
 *   grad_gamma     (+)= sum over kept rows of (grad_out*s)*f_kept   (NULL: not asked for)
 * grad_gamma is summed in dp_backward_ls's order over the whole batch's rows
 * r = b*T + t (the groups fixed by B, T and D; each group's kept rows in row
 * order), so every output has dp_backward_ls's bits for any thread count and
 * ISA.  f_kept is the compact branch input (read only for grad_gamma, may
 * have NULL data without it); grad_f_kept may be exactly f_kept; grad_x and
 * grad_gamma overlap nothing; gamma overlaps no output.  gamma NULL:
 * dp_compact_backward itself, and grad_gamma must then be NULL (else
 * DP_ERR_BAD_ARGUMENT).  dtypes as dp_backward_ls.
 */
DP_API dp_status dp_compact_backward_ls(const dp_params *params, dp_shape shape, dp_tensor grad_f_kept,
                                        dp_tensor grad_x, dp_tensor grad_out, dp_tensor f_kept, const float *gamma,
                                        float *grad_gamma, size_t kept_count, const size_t *kept_indices,
                                        uint32_t flags);

/** Per-block drop rates for a network of `depth` blocks under `rule`. */
DP_API dp_status dp_drop_rates(dp_schedule rule, double rate, size_t depth, double *rates_out);

/**
 * timm's calculate_drop_path_rates(rate, depths, stagewise=True):
 * linspace(0, rate, sum(depths)) over all blocks, grouped by stage;
 * rates_out holds sum(depths) entries.
 */
DP_API dp_status dp_drop_rates_stagewise(double rate, const size_t *depths, size_t n_stages,
                                         double *rates_out);

/** Philox4x32-10 with key (k0, k1) on counter (c0..c3): the mask generator, exposed for tests. */
DP_API void dp_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* ---------------------------------------------------------------- residual join + norm */

/** The normalisation of the fused pre-norm join (dp_forward_norm and friends). */
typedef enum dp_norm_kind {
  DP_NORM_LAYER = 0, /**< LayerNorm: n = (r - mean) * rstd, rstd = 1/sqrt(var + eps) */
  DP_NORM_RMS = 1    /**< RMSNorm: n = r * rstd, rstd = 1/sqrt(mean(r*r) + eps) */
} dp_norm_kind;

/** Flag of dp_backward_norm, beside DP_BWD_ACCUMULATE_GRAD_F and _X. */
enum {
  DP_NORM_ACCUMULATE_GRAD_PARAMS = 1u << 2 /**< grad_gamma, grad_beta (and grad_ls_gamma) += the sums (else =) */
};

/**
 * The norm of a fused call: y = n*gamma + beta over each row of D elements.
 * Initialise with dp_norm_init(); then set fields.  Row k = b*T + t indexes
 * mean and rstd whatever the tensors' layout.
 */
typedef struct dp_norm {
  int kind;           /**< dp_norm_kind; default DP_NORM_LAYER */
  float eps;          /**< added to the variance (mean square); finite and >= 0; default 1e-5 */
  const float *gamma; /**< D per-channel factors, or NULL (1: not applied) */
  const float *beta;  /**< D per-channel shifts, or NULL (0: not applied) */
  float *mean;        /**< B*T row means: written by the forward (RMSNorm writes 0), read by
                           dp_backward_norm (LayerNorm); NULL in a forward: not saved */
  float *rstd;        /**< B*T row 1/sqrt(var + eps): written by the forward, read by the backward;
                           NULL in a forward: not saved */
  const float *ls_gamma; /**< D LayerScale factors of the branch in the join, or NULL (not applied):
                              r = x + m*s*(ls_gamma*f), arithmetic as dp_forward_ls; default NULL */
} dp_norm;

/** Defaults: LayerNorm, eps 1e-5, no gamma, beta, ls_gamma, mean or rstd. */
DP_API void dp_norm_init(dp_norm *norm);

/**
 * Training forward of a pre-norm block's join, one pass over memory:
 *   r[b] = x[b] + m[b]*s*f[b]   (dropped samples: r = x exactly, f not read)
 *   y    = norm(r) * gamma + beta, each row normalised over its D elements
 * with norm's mean and rstd saved per row when asked for.  r is the next
 * residual; y the next branch's input.  The mask is dp_forward's (same
 * params, same samples kept) and scales_out as there.
 * r may be exactly x (in place; dropped samples are then not touched) or
 * have NULL data (not written); y may be exactly f; any other overlap is
 * DP_ERR_OVERLAP.  dtypes: x and r share the residual type X, f and y the
 * branch type F, and (X, F) is one of dp_forward's combinations (with X f32
 * and F bf16/f16: flash-attention's residual_in_fp32).
 * Arithmetic (README "Fused residual + norm"): the norm is computed on r as
 * stored (rounded to X); row sums in 16 lane-wise f32 partial sums combined
 * in a fixed tree; mean = sum/D; var = two-pass sum((r-mean)^2)/D (RMSNorm:
 * sum(r*r)/D, mean 0); rstd = 1/sqrtf(var + eps); y = ((r - mean)*rstd)*gamma
 * + beta; no FMA: the same bits on every ISA.
 * LayerScale: with norm->ls_gamma the join is r = x + m*s*(ls_gamma*f),
 * computed as dp_forward_ls's x + ((ls_gamma*f)*s) (each product rounded to
 * f32, the sum to X): for f32 r is dp_forward_ls's bits, and y the norm of
 * that r.  ls_gamma NULL: the join above, bit for bit.
 * Further checks, after params: norm NULL is DP_ERR_NULL_POINTER, an unknown
 * kind or an eps that is NaN, negative or infinite DP_ERR_BAD_ARGUMENT; the
 * arrays are checked in the order gamma, beta, ls_gamma, mean, rstd,
 * scales_out (ls_gamma overlaps no output).
 */
DP_API dp_status dp_forward_norm(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor y,
                                 dp_tensor r, dp_tensor x, dp_tensor f, float *scales_out);

/**
 * dp_forward_norm with an output subset, written compactly (flash-attention's
 * out_subset): y_kept[i] = norm(r[next_kept_indices[i]])*gamma + beta for
 * i < next_kept_count, the samples the *next* block keeps (dp_mask with the
 * next block's params), so y_kept is what dp_compact_gather(next params, y)
 * would return and the next branch runs on it directly: the gather pass is
 * this one, and the y rows of samples the next block drops are never written.
 * Everything else is dp_forward_norm's, bit for bit (y_kept's rows too): this
 * block's mask from params, r for every sample (the next block's x), mean and
 * rstd for every row, scales_out (dp_backward_norm_subset reads the
 * statistics of the subset's rows only).
 * y_kept is a compact tensor of next_kept_count samples (T rows of D
 * elements, its own strides) of the branch type F; it may not overlap any
 * other argument (not even f: its sample i is not f's sample i).  r as in
 * dp_forward_norm (exactly x, or NULL data).  next_kept_indices: an input
 * array of next_kept_count entries, checked with the arrays (after
 * scales_out), and, after every other argument, strictly ascending and below
 * B (else DP_ERR_NULL_POINTER or DP_ERR_BAD_ARGUMENT), as the compaction
 * functions check their kept_indices.  No inference form: at inference the
 * next block keeps every sample.
 */
DP_API dp_status dp_forward_norm_subset(const dp_params *params, dp_shape shape, const dp_norm *norm,
                                        dp_tensor y_kept, dp_tensor r, dp_tensor x, dp_tensor f,
                                        size_t next_kept_count, const size_t *next_kept_indices,
                                        float *scales_out);

/**
 * Inference form of dp_forward_norm, no randomness: r = x + f when
 * scale_by_keep, else r = x + keep*f (f not read when keep == 0), as
 * dp_inference_add (with norm->ls_gamma: ls_gamma*f in place of f, as
 * dp_inference_add_ls); then y = norm(r)*gamma + beta.  r with NULL data is not
 * written (y is the same bits either way).  Arguments as dp_forward_norm.
 */
DP_API dp_status dp_inference_norm(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor y,
                                   dp_tensor r, dp_tensor x, dp_tensor f);

/**
 * Backward of dp_forward_norm, one pass over memory, from grad_y and the
 * gradient grad_r_in arriving on the residual stream (NULL data: none):
 *   grad_r = grad_r_in + norm_backward(grad_y), rounded to X
 *   grad_x = grad_r        (DP_BWD_ACCUMULATE_GRAD_X: grad_x += grad_r; NULL data: not written)
 *   grad_f = m*s*grad_r    (DP_BWD_ACCUMULATE_GRAD_F: +=; dropped samples +0, or untouched);
 *            with norm->ls_gamma (grad_r*s)*ls_gamma, dp_backward_ls's grad_f on grad_r
 *            (dp_backward_norm_ls also gives the gradient of ls_gamma)
 *   grad_gamma = sum over rows of grad_y*xhat, grad_beta = sum of grad_y (each NULL: not
 *   computed; DP_NORM_ACCUMULATE_GRAD_PARAMS: +=; no rows: +0)
 * with xhat = (r - mean)*rstd from the forward's r (as stored) and its saved
 * norm->mean (LayerNorm) and norm->rstd, which are required.  norm_backward:
 * g = grad_y*gamma, ((g - mean(g)) - xhat*mean(g*xhat))*rstd (RMSNorm:
 * without the mean(g) term), row means in the forward's 16-lane order.
 * The mask comes from scales (B floats) or, when NULL, is regenerated from
 * params exactly as dp_forward_norm drew it.
 * Deterministic: grad_gamma and grad_beta are summed in f32 in the fixed
 * order of the LayerScale section ("grad_gamma's summation order": groups of
 * P consecutive rows k = b*T + t, each from +0 in row order, then the groups
 * in order; here every row adds, dropped or not): the groups depend only on
 * the shape, so the sums are the same bits for any thread count and ISA.
 * grad_f may be exactly grad_y, grad_x exactly grad_r_in; any other overlap
 * of an output is DP_ERR_OVERLAP.  dtypes: grad_x, r, grad_r_in have X;
 * grad_f, grad_y have F, as in the forward.  Checks: params, flags, norm, the
 * tensors, the dtypes, the arrays in the order scales, gamma, ls_gamma, mean, rstd,
 * grad_gamma, grad_beta, overlaps, then a missing rstd (or LayerNorm mean)
 * is DP_ERR_NULL_POINTER; DP_ERR_NO_MEMORY when the partials cannot be
 * allocated.
 */
DP_API dp_status dp_backward_norm(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                                  dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in,
                                  const float *scales, float *grad_gamma, float *grad_beta, uint32_t flags);

/**
 * dp_backward_norm that also gives LayerScale's parameter gradient, in the
 * same pass:
 *   grad_ls_gamma (+)= sum over kept rows of (grad_r*s)*f
 * bit for bit dp_backward_ls's grad_gamma on grad_out = grad_r (as stored,
 * rounded to X) with the same f, mask and norm->ls_gamma: its order (the
 * LayerScale section's groups, dropped rows skipped, f never read for them)
 * and its accumulation (DP_NORM_ACCUMULATE_GRAD_PARAMS: +=, as
 * DP_BWD_ACCUMULATE_GRAD_GAMMA there; no rows: +0).  f is the branch output
 * the forward joined (dp_forward_norm's f: type F, a layout of its own);
 * grad_f may be exactly f.  grad_ls_gamma NULL: dp_backward_norm itself, and
 * f may then have NULL data (it is not read).  Checks as dp_backward_norm,
 * plus: grad_ls_gamma without norm->ls_gamma is DP_ERR_BAD_ARGUMENT (after
 * the norm); f among the tensors (after grad_r_in), required with
 * grad_ls_gamma; grad_ls_gamma among the arrays (after grad_beta),
 * overlapping nothing.  Everything else is dp_backward_norm's, bit for bit.
 */
DP_API dp_status dp_backward_norm_ls(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                                     dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in,
                                     dp_tensor f, const float *scales, float *grad_gamma, float *grad_beta,
                                     float *grad_ls_gamma, uint32_t flags);

/**
 * Backward of dp_forward_norm_subset: grad_y_kept is compact (sample i is
 * sample next_kept_indices[i] of the call: the next branch's input gradient
 * on the next block's kept samples), zero for every other sample.  One pass:
 *   in the subset: grad_r = grad_r_in + norm_backward(grad_y) as dp_backward_norm;
 *   elsewhere:     grad_r = grad_r_in, passed through unread by the norm
 *                  (r, mean and rstd of those rows are not read)
 *   grad_x = grad_r, grad_f = m*s*grad_r (flags as dp_backward_norm)
 *   grad_gamma, grad_beta: dp_backward_norm's groups and order, the rows
 *   outside the subset adding nothing.
 * Outside the subset the rows are dp_backward's with grad_out = grad_r_in
 * (grad_x a copy of its bits, or += it; grad_f = m*s*grad_r_in); without
 * grad_r_in (NULL data) grad_x and grad_f are +0 there, or untouched with
 * DP_BWD_ACCUMULATE_GRAD_X / _F.
 * Against dp_backward_norm given the full grad_y, zero outside the subset:
 * the subset's rows of grad_x and grad_f are the same bits; grad_beta is the
 * same bits, and grad_gamma too when x-hat (from r, mean, rstd) is finite on
 * the other rows (a zero term leaves a partial sum's bits as they are); the
 * other rows of grad_x and grad_f are the same numbers up to the sign of a
 * zero, except where x-hat or gamma is not finite: there dp_backward_norm's
 * zero norm term is NaN, and this form has none.
 * With norm->ls_gamma the rows outside the subset are dp_backward_ls's (grad_f
 * = (grad_r_in*s)*ls_gamma), in every dtype combination.
 * Arguments as dp_backward_norm, except: grad_y_kept has next_kept_count
 * samples and may not overlap any other argument (grad_f may not be it);
 * next_kept_indices is checked as in dp_forward_norm_subset, after the
 * arrays (after grad_beta) for its extent and, after every other check, for
 * its order and range.
 */
DP_API dp_status dp_backward_norm_subset(const dp_params *params, dp_shape shape, const dp_norm *norm,
                                         dp_tensor grad_f, dp_tensor grad_x, dp_tensor grad_y_kept, dp_tensor r,
                                         dp_tensor grad_r_in, size_t next_kept_count,
                                         const size_t *next_kept_indices, const float *scales, float *grad_gamma,
                                         float *grad_beta, uint32_t flags);

/**
 * dp_backward_norm_subset with LayerScale's parameter gradient, as
 * dp_backward_norm_ls: grad_ls_gamma (+)= the sum over kept rows of
 * (grad_r*s)*f in dp_backward_ls's order, grad_r being grad_r_in outside
 * the subset.  A row outside the subset without grad_r_in (NULL data) has no
 * gradient and adds nothing (f is not read there: the same bits as
 * dp_backward_ls on the +0 grad_r whenever f is finite on those rows).
 * Arguments as dp_backward_norm_subset plus f (after grad_r_in) and
 * grad_ls_gamma (after grad_beta), checked as in dp_backward_norm_ls.
 */
DP_API dp_status dp_backward_norm_subset_ls(const dp_params *params, dp_shape shape, const dp_norm *norm,
                                            dp_tensor grad_f, dp_tensor grad_x, dp_tensor grad_y_kept, dp_tensor r,
                                            dp_tensor grad_r_in, dp_tensor f, size_t next_kept_count,
                                            const size_t *next_kept_indices, const float *scales,
                                            float *grad_gamma, float *grad_beta, float *grad_ls_gamma,
                                            uint32_t flags);

/* ---------------------------------------------------------------- dispatch and threads */

/** Lower-case name of an ISA ("scalar", "sse2", "avx2", "avx512", "neon"), or "unknown". */
DP_API const char *dp_isa_name(dp_isa isa);
/** Nonzero if this build has kernels for isa and this CPU and OS can run them. */
DP_API int dp_isa_supported(dp_isa isa);
/** The ISA whose kernels the operations use now. */
DP_API dp_isa dp_active_isa(void);
/**
 * Cap the ISA: the library uses the best supported ISA not above isa (on its
 * architecture), intersected with the DROPPATH_ISA environment variable, which
 * can only narrow.  DP_ERR_ISA_UNSUPPORTED if isa itself cannot run here.
 * DROPPATH_ISA, read once, in any case: scalar, sse2, avx2, avx512 (or avx512f,
 * avx-512), neon, and none or c for scalar; another architecture's name or an
 * unknown value is ignored.
 */
DP_API dp_status dp_set_max_isa(dp_isa isa);
/** Default thread count for calls with num_threads == 0; 0 restores "all OpenMP threads"
 *  (capped like dp_params.num_threads). */
DP_API dp_status dp_set_num_threads(int num_threads);
/** Nonzero if the library was built with OpenMP. */
DP_API int dp_has_openmp(void);

#ifdef __cplusplus
}
#endif

#endif /* DROPPATH_H */
