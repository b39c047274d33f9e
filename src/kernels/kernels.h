/*
 * Internal kernel interface, generated from the family list (families.h)
 * and the ISA list (isas.h): the kernel typedefs, the dispatch table, the
 * declarations of every kernel and the kernel list.
 *
 * A kernel processes one contiguous run of n elements; the row walk
 * (core/rowwalk.h) walks samples and rows, decides keep/drop, splits work
 * across threads and calls these. Every ISA's kernel produces the same bits
 * as the scalar one: one multiply then one add, no FMA, and every arithmetic
 * result that is NaN stored as the canonical quiet NaN of its type
 * (common/canon.h, common/half.h); copies (gx = g) keep their bits.
 *
 * The families' contracts (X, F: the combo's types, families.h):
 *   fwd    out[i] = x[i] + s*f[i]     (out, x: X; f: F). out may equal x or f exactly.
 *   scale  out[i] = s*x[i]            (out, x: X). out may equal x exactly.
 *   bwd    backward of a kept row, one pass over g (X):
 *            gf[i] = s*g[i]   or, with DP_KBWD_ACC_F, gf[i] + s*g[i]   (gf: F)
 *            if gx: gx[i] = g[i]  or, with DP_KBWD_ACC_X, gx[i] + g[i]  (gx: X)
 *          gf may equal g exactly; gx never aliases gf or g.
 *   mask   row-mode scales of the n samples with counters g = base + i (mod 2^64):
 *            w0 = Philox4x32-10 word 0, key (seed lo, seed hi), counter (g lo, g hi, offset lo, offset hi)
 *            scales[i] = (float)(w0 >> 8) * 2^-24 < keep ? scale : 0.0f
 *          (the float compare, exactly as written, for any keep).
 *   nfwd   residual join + norm of one whole row of n >= 1 elements (x, r: X; f, y: F):
 *            r = x + s*f rounded to X (f NULL: the row is dropped, r = x copied, f not read);
 *            r NULL: not written; r may equal x exactly, y may equal f exactly.
 *            y = norm(r)*gamma + beta over the row with the statistics order of
 *            kernels/norm/norm_kargs.h; stats[0] = mean, stats[1] = rstd (canonical NaN).
 *            y NULL: not written (a row outside an output subset), r and stats as ever.
 *            tmp: n floats of scratch (the row widened, re-read by the later passes) or
 *            NULL (they re-read r, or recompute it when r is NULL).
 *   nbwd   backward of nfwd for one whole row (gx, r, gin: X; gf, gy: F), stats = {mean, rstd}
 *            as nfwd wrote them: gr = norm_backward(gy) (+ gin when not NULL) rounded to X;
 *            gx = gr (DP_KBWD_ACC_X: gx + gr; NULL: not written); gf = s*gr (DP_KBWD_ACC_F:
 *            gf + s*gr), and for s == 0 +0 (DP_KBWD_ACC_F: untouched); pg[i] += gy*xhat and
 *            pb[i] += gy unless NULL; pl[i] += (s*gr)*f[i] (LayerScale's gradient; f: F) when
 *            pl is not NULL and s != 0 (f is read only then). gf may equal gy or f exactly, gx gin.
 *   fwdls  LayerScale join over n/d whole rows of d elements (n a multiple of d;
 *          gamma: d floats, element i of a row uses gamma[i]):
 *            out = x + ((gamma*f)*s)  three roundings in that order, no FMA
 *          (out, x: X; f: F). out may equal x or f exactly.
 *   bwdls  backward of fwdls over n/d whole kept rows, one pass over g (X):
 *            gs = g*s;  gf = gs*gamma  or, with DP_KBWD_ACC_F, gf + gs*gamma   (gf: F)
 *            if gx: as bwd (gx = g, or gx + g with DP_KBWD_ACC_X)
 *            if acc: acc[i] = acc[i] + gs*f  for each row in order (acc: d f32; f: F,
 *                    read only when acc is given; acc is never streamed)
 *          gf may equal g or f exactly; gx, gamma and acc never alias anything.
 *
 * Non-temporal stores: with stream = 1 (fwd, scale) or DP_KBWD_STREAM (bwd)
 * an x86 kernel may write its outputs with weakly-ordered non-temporal
 * stores, and it never fences them (a fence per call costs more than the
 * streaming saves on short rows). A caller that passed the flag must execute
 * a store fence (dp_stream_fence) after its last such call and before any
 * other thread may read those outputs; one per thread per sweep is enough.
 * Without the flag a kernel uses ordinary stores only.
 */
#ifndef DP_KERNELS_H
#define DP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "droppath/droppath.h"
#include "kernels/families.h"
#include "kernels/isas.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  DP_KBWD_ACC_F = 1u << 0,
  DP_KBWD_ACC_X = 1u << 1,
  DP_KBWD_STREAM = 1u << 2 /* non-temporal stores for the outputs not accumulated; caller fences (above) */
};

/* The kernel mode of a backward call's public flags (DP_BWD_ACCUMULATE_GRAD_F/X). */
static inline unsigned dp_kbwd_mode(uint32_t flags) {
  /* (unsigned) on both arms: C++ (the benchmark includes this) rejects an enum beside 0u under -Wextra. */
  return ((flags & DP_BWD_ACCUMULATE_GRAD_F) ? (unsigned)DP_KBWD_ACC_F : 0u) |
         ((flags & DP_BWD_ACCUMULATE_GRAD_X) ? (unsigned)DP_KBWD_ACC_X : 0u);
}

#define DP_COMBO_ENUM_(ctx, name, id, xt, ft) id,
typedef enum dp_combo { DP_COMBOS_ALL(DP_COMBO_ENUM_, ) DP_COMBO_COUNT } dp_combo;
#undef DP_COMBO_ENUM_

#define DP_FAMILY_ENUM_(ctx, fam, combos, params) DP_FAMILY_##fam,
typedef enum dp_family { DP_FAMILY_LIST(DP_FAMILY_ENUM_, ) DP_FAMILY_COUNT } dp_family;
#undef DP_FAMILY_ENUM_

/* dp_fwd_fn, dp_scale_fn, ...: one function type per family. */
#define DP_FN_TYPEDEF_(ctx, fam, combos, params) typedef void(*dp_##fam##_fn) params;
DP_FAMILY_LIST(DP_FN_TYPEDEF_, )
#undef DP_FN_TYPEDEF_

/* The kernels one ISA uses: table->fwd[DP_COMBO_F32] and so on (a family's
 * combos that do not exist stay NULL). */
typedef struct dp_kernel_table {
  dp_isa isa;
#define DP_TABLE_SLOT_(ctx, fam, combos, params) dp_##fam##_fn fam[DP_COMBO_COUNT];
  DP_FAMILY_LIST(DP_TABLE_SLOT_, )
#undef DP_TABLE_SLOT_
} dp_kernel_table;

/* A kernel pointer of any family, typed: the member named after its family. */
typedef union dp_kernel_fn {
#define DP_FN_MEMBER_(ctx, fam, combos, params) dp_##fam##_fn fam;
  DP_FAMILY_LIST(DP_FN_MEMBER_, )
#undef DP_FN_MEMBER_
} dp_kernel_fn;

/* dp_<family>_<combo>__<isa>, the name of every kernel. */
#define DP_KERNEL_NAME_(fam, combo, isa) dp_##fam##_##combo##__##isa
#define DP_KERNEL_NAME(fam, combo, isa) DP_KERNEL_NAME_(fam, combo, isa)

/* Declarations of every kernel (of every ISA: only built ones are defined). */
#define DP_DECL_COMBO_(ctx, combo, id, xt, ft) \
  void DP_KERNEL_NAME(DP_CTX_1(DP_CTX_1(ctx)), combo, DP_CTX_2(DP_CTX_1(ctx))) DP_CTX_2(ctx);
#define DP_DECL_FAMILY_(isa, fam, combos, params) combos(DP_DECL_COMBO_, ((fam, isa), params))
#define DP_DECL_ISA_(ctx, name, id, arch, rank, built) DP_FAMILY_LIST(DP_DECL_FAMILY_, name)
DP_ISA_LIST(DP_DECL_ISA_, )
#undef DP_DECL_ISA_
#undef DP_DECL_FAMILY_
#undef DP_DECL_COMBO_

/* One entry of the kernel list, for dispatch, tests and benchmarks. */
typedef struct dp_kernel_info {
  const char *name; /* "dp_fwd_f32__avx2" */
  dp_family family;
  dp_combo combo;
  dp_isa isa;
  dp_kernel_fn fn; /* fn.fwd for DP_FAMILY_fwd, and so on */
} dp_kernel_info;

/* All kernels of this build (scalar first), and their number. */
const dp_kernel_info *dp_kernel_list(size_t *count);

/* Fill table with the best kernels not above isa: per slot, the highest
 * ranked kernel with dp_isa_within(kernel, isa). Pure; no CPU check. */
void dp_kernels_for_isa(dp_isa isa, dp_kernel_table *table);

/* Whether table's slot for k's family and combo holds k's function. */
int dp_table_holds(const dp_kernel_table *table, const dp_kernel_info *k);
/* Whether table has no kernel for (family, combo). */
int dp_table_slot_empty(const dp_kernel_table *table, dp_family family, dp_combo combo);

/* "fwd", "f32bf16": names as in kernel names. */
const char *dp_family_name(dp_family family);
const char *dp_combo_name(dp_combo combo);
/* Element size in bytes of the X and F types of a combo. */
size_t dp_combo_x_size(dp_combo combo);
size_t dp_combo_f_size(dp_combo combo);

#ifdef __cplusplus
}
#endif

#endif /* DP_KERNELS_H */
