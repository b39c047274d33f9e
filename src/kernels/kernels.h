/*
 * Internal kernel interface. A kernel processes one contiguous run of n
 * elements; the API layer walks samples and rows, decides keep/drop, splits
 * work across threads and calls these.  Every ISA's kernel must produce the
 * same bits as the scalar one: one multiply then one add, no FMA, and every
 * arithmetic result that is NaN stored as the canonical quiet NaN of its type
 * (canon.h, half.h); copies (gx = g) keep their bits.
 *
 * Type combinations ("combos"): X is the residual-stream type (x, out,
 * grad_out, grad_x), F the branch type (f, grad_f).
 */
#ifndef DP_KERNELS_H
#define DP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "droppath/droppath.h"
#include "dp_config.h"

typedef enum dp_combo {
  DP_COMBO_F32 = 0,      /* X = f32,  F = f32  */
  DP_COMBO_BF16 = 1,     /* X = bf16, F = bf16 */
  DP_COMBO_F16 = 2,      /* X = f16,  F = f16  */
  DP_COMBO_F32_BF16 = 3, /* X = f32,  F = bf16 ("residual in fp32") */
  DP_COMBO_F32_F16 = 4,  /* X = f32,  F = f16  */
  DP_COMBO_COUNT = 5
} dp_combo;

/* Non-temporal stores: with stream = 1 (fwd, scale) or DP_KBWD_STREAM (bwd)
 * an x86 kernel may write its outputs with weakly-ordered non-temporal
 * stores, and it never fences them (a fence per call costs more than the
 * streaming saves on short rows).  A caller that passed the flag must execute
 * a store fence (dp_stream_fence) after its last such call and before any
 * other thread may read those outputs; one per thread per sweep is enough.
 * Without the flag a kernel uses ordinary stores only. */

/* out[i] = x[i] + s*f[i]   (out, x: X; f: F).  out may equal x or f exactly. */
typedef void (*dp_fwd_fn)(void *out, const void *x, const void *f, float s, size_t n, int stream);

/* out[i] = s*x[i]          (out, x: X).  out may equal x exactly. */
typedef void (*dp_scale_fn)(void *out, const void *x, float s, size_t n, int stream);

/* Backward of a kept row, one pass over g (X):
 *   gf[i] = s*g[i]            or, with DP_KBWD_ACC_F, gf[i] = gf[i] + s*g[i]   (gf: F)
 *   if gx: gx[i] = g[i]       or, with DP_KBWD_ACC_X, gx[i] = gx[i] + g[i]     (gx: X)
 * gf may equal g exactly; gx never aliases gf or g. */
typedef void (*dp_bwd_fn)(void *gf, void *gx, const void *g, float s, size_t n, unsigned mode);
enum {
  DP_KBWD_ACC_F = 1u << 0,
  DP_KBWD_ACC_X = 1u << 1,
  DP_KBWD_STREAM = 1u << 2 /* non-temporal stores for the outputs not accumulated; caller fences (above) */
};

/* Row-mode mask scales for the n samples with counters g = base + i (mod 2^64):
 *   w0 = Philox4x32-10 word 0, key (seed lo, seed hi), counter (g lo, g hi, offset lo, offset hi)
 *   scales[i] = (float)(w0 >> 8) * 2^-24 < keep ? scale : 0.0f
 * (the float compare, exactly as written, for any keep). Listed with combo
 * DP_COMBO_F32; the table has one slot. */
typedef void (*dp_mask_fn)(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                           float *scales);

typedef struct dp_kernel_table {
  dp_isa isa;
  dp_fwd_fn fwd[DP_COMBO_COUNT];
  dp_scale_fn scale[DP_COMBO_COUNT];
  dp_bwd_fn bwd[DP_COMBO_COUNT];
  dp_mask_fn mask;
} dp_kernel_table;

/* Declarations of every kernel compiled into this build. */
#define DP_KERNEL(family, combo_name, combo, isa_name, isa) \
  void dp_##family##_##combo_name##__##isa_name(DP_KERNEL_ARGS_##family);
#define DP_KERNEL_ARGS_fwd void *out, const void *x, const void *f, float s, size_t n, int stream
#define DP_KERNEL_ARGS_scale void *out, const void *x, float s, size_t n, int stream
#define DP_KERNEL_ARGS_bwd void *gf, void *gx, const void *g, float s, size_t n, unsigned mode
#define DP_KERNEL_ARGS_mask \
  uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n, float *scales
#include "kernels.inc"
#undef DP_KERNEL

/* One entry of the kernel list, for tests and benchmarks that walk all kernels. */
typedef struct dp_kernel_info {
  const char *name;   /* "dp_fwd_f32__avx2" */
  const char *family; /* "fwd", "scale", "bwd", "mask" */
  dp_combo combo;
  dp_isa isa;
  void (*fn)(void); /* cast to dp_fwd_fn / dp_scale_fn / dp_bwd_fn / dp_mask_fn by family */
} dp_kernel_info;

/* All kernels of this build (scalar first), and their number. */
const dp_kernel_info *dp_kernel_list(size_t *count);

/* Fill table with the best kernels not above isa: scalar, then each ISA of the
 * same architecture up to isa overrides the entries it has.  Pure; no CPU check. */
void dp_kernels_for_isa(dp_isa isa, dp_kernel_table *table);

/* Element size in bytes of the X and F types of a combo. */
size_t dp_combo_x_size(dp_combo combo);
size_t dp_combo_f_size(dp_combo combo);

#endif /* DP_KERNELS_H */
