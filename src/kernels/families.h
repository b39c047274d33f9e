/*
 * The one list of kernel families and the dtype combinations they come in.
 * kernels.h turns it into the kernel typedefs, the dispatch-table slots, the
 * kernel names and declarations; kernel_list.c into the kernel list that
 * dispatch, tests and benchmarks walk. Adding a family is one line here
 * (docs/architecture.md, "Adding an operation").
 *
 * DP_FAMILY_LIST(X, ctx) calls X(ctx, family, combos, params):
 *   family  table slot, typedef dp_<family>_fn, kernel names dp_<family>_<combo>__<isa>
 *   combos  which dtype combinations it has: DP_COMBOS_ALL, DP_COMBOS_PURE or DP_COMBOS_F32
 *   params  the parenthesised parameter list every kernel of the family takes
 * Contracts of each family: kernels.h.
 */
#ifndef DP_FAMILIES_H
#define DP_FAMILIES_H

#include <stddef.h>
#include <stdint.h>

struct dp_norm_kargs; /* the norm families' row constants: kernels/norm/norm_kargs.h */

#define DP_FAMILY_LIST(X, ctx)                                                                    \
  X(ctx, fwd, DP_COMBOS_ALL, (void *out, const void *x, const void *f, float s, size_t n, int stream)) \
  X(ctx, scale, DP_COMBOS_PURE, (void *out, const void *x, float s, size_t n, int stream))         \
  X(ctx, bwd, DP_COMBOS_ALL, (void *gf, void *gx, const void *g, float s, size_t n, unsigned mode)) \
  X(ctx, mask, DP_COMBOS_F32,                                                                     \
    (uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n, float *scales)) \
  X(ctx, nfwd, DP_COMBOS_ALL,                                                                     \
    (void *y, void *r, const void *x, const void *f, float s, size_t n, const struct dp_norm_kargs *a, \
     float *tmp, float *stats))                                                                   \
  X(ctx, nbwd, DP_COMBOS_ALL,                                                                     \
    (void *gx, void *gf, const void *gy, const void *r, const void *gin, const void *f, float s, size_t n, \
     const struct dp_norm_kargs *a, const float *stats, float *pg, float *pb, float *pl))          \
  X(ctx, fwdls, DP_COMBOS_ALL,                                                                    \
    (void *out, const void *x, const void *f, const float *gamma, size_t d, float s, size_t n, int stream)) \
  X(ctx, bwdls, DP_COMBOS_ALL,                                                                    \
    (void *gf, void *gx, const void *g, const void *f, const float *gamma, float *acc, size_t d, float s, size_t n, \
     unsigned mode))

/*
 * Dtype combinations: X is the residual-stream type (x, out, grad_out,
 * grad_x), F the branch type (f, grad_f). A single-operand family (scale)
 * uses X only; the mask family's "f32" is the type of the scales it writes.
 * DP_COMBO_<name>(X, ctx) calls X(ctx, name, id, x_dtype, f_dtype).
 */
#define DP_COMBO_f32(X, ctx) X(ctx, f32, DP_COMBO_F32, DP_F32, DP_F32)
#define DP_COMBO_bf16(X, ctx) X(ctx, bf16, DP_COMBO_BF16, DP_BF16, DP_BF16)
#define DP_COMBO_f16(X, ctx) X(ctx, f16, DP_COMBO_F16, DP_F16, DP_F16)
#define DP_COMBO_f32bf16(X, ctx) X(ctx, f32bf16, DP_COMBO_F32_BF16, DP_F32, DP_BF16) /* "residual in fp32" */
#define DP_COMBO_f32f16(X, ctx) X(ctx, f32f16, DP_COMBO_F32_F16, DP_F32, DP_F16)

#define DP_COMBOS_F32(X, ctx) DP_COMBO_f32(X, ctx)
#define DP_COMBOS_PURE(X, ctx) DP_COMBO_f32(X, ctx) DP_COMBOS_PURE_HALF(X, ctx)
#define DP_COMBOS_ALL(X, ctx) DP_COMBOS_PURE(X, ctx) DP_COMBOS_MIXED_(X, ctx)

/* The combos of DP_COMBOS_PURE and DP_COMBOS_ALL that have a bf16 or f16
 * operand: the ones a family's half kernel body (and scalar file) defines,
 * its f32 body defining f32. */
#define DP_COMBOS_PURE_HALF(X, ctx) DP_COMBO_bf16(X, ctx) DP_COMBO_f16(X, ctx)
#define DP_COMBOS_ALL_HALF(X, ctx) DP_COMBOS_PURE_HALF(X, ctx) DP_COMBOS_MIXED_(X, ctx)
#define DP_COMBOS_MIXED_(X, ctx) DP_COMBO_f32bf16(X, ctx) DP_COMBO_f32f16(X, ctx)

/* Helpers for the lists' users: taking a (a, b) context apart. */
#define DP_CTX_1_(a, b) a
#define DP_CTX_2_(a, b) b
#define DP_CTX_1(ctx) DP_CTX_1_ ctx
#define DP_CTX_2(ctx) DP_CTX_2_ ctx

/* DP_WHEN(flag, ...) is the arguments when flag expands to 1, nothing when 0. */
#define DP_WHEN_0(...)
#define DP_WHEN_1(...) __VA_ARGS__
#define DP_WHEN_(flag, ...) DP_WHEN_##flag(__VA_ARGS__)
#define DP_WHEN(flag, ...) DP_WHEN_(flag, __VA_ARGS__)

#endif /* DP_FAMILIES_H */
