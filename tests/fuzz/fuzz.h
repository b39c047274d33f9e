/*
 * What the API fuzzer's files share.  fuzz_api.c is the engine (decoding,
 * placement in the arena, the generic validation model, the runs on every
 * ISA, the entry point) and the plain operations; fuzz_ls.c (LayerScale),
 * fuzz_compact.c (sample compaction) and fuzz_norm.c (the fused norm) each
 * describe one family of operations.  They are separate files so that each
 * family's contract rules and models read on their own, beside the engine
 * rather than inside it.
 *
 * An operation is an fz_opdef: its argument roles (tensors and arrays, which
 * are outputs, which may be exactly which other argument), hooks for the
 * bytes it decodes beyond the common ones, the contract's rules beyond the
 * generic ones (flags, descriptors, kept indices), the call itself, the rows
 * the contract says are never read (poisoned under ASan) and an independent
 * model of its results.
 */
#ifndef DP_FUZZ_H
#define DP_FUZZ_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "droppath/droppath.h"
#include "test_util.h" /* header-only helpers: float bits, element loads */

#define ARENA_CAP ((size_t)1 << 22) /* 4 MiB: several f32 tensors of R*D > 2^16 elements */
#define MAX_OBJ 12     /* dp_backward_norm has 12 arguments in the arena */
#define MAX_ROWS 8192
#define MAX_KEPT 4608  /* kept lists the harness writes: B <= 4096 plus a few too many */

typedef unsigned __int128 u128;

/* The harness's per-element and per-byte loops (loads, models, scans of the
 * arena) without libFuzzer's coverage and comparison tracing: on the
 * megabyte arenas of the multi-group shapes they took most of an execution,
 * and their branches say nothing about the library. */
#if defined(__clang__) && __clang_major__ >= 13
#define FZ_NO_COV __attribute__((no_sanitize("coverage")))
#else
#define FZ_NO_COV
#endif

/* The operation numbers are the first input byte modulo OP_COUNT: the plain
 * operations keep 0..4, so the seed corpus keeps its meaning. */
enum {
  OP_FWD, OP_INFER, OP_DROP, OP_BWD, OP_MASK,                          /* fuzz_api.c */
  OP_FWD_LS, OP_INFER_LS, OP_BWD_LS,                                   /* fuzz_ls.c */
  OP_GATHER, OP_CFWD, OP_CFWD_LS, OP_CBWD, OP_CBWD_LS, OP_SCATTER,     /* fuzz_compact.c */
  OP_FWD_NORM, OP_INFER_NORM, OP_BWD_NORM,                             /* fuzz_norm.c */
  OP_COUNT
};
enum { EXPECT_EITHER, EXPECT_OK, EXPECT_FAIL };

/* ------------------------------------------------------------ roles */

enum { FZ_NONE, FZ_TENSOR, FZ_ARRAY };
enum { FZ_X, FZ_F };                                         /* a tensor's dtype class */
enum { FZ_N_SAMPLE, FZ_N_ONE, FZ_N_ROW, FZ_N_CHAN, FZ_N_KEPT }; /* an array's element count */

typedef struct fz_role {
  unsigned char kind;    /* FZ_NONE, FZ_TENSOR or FZ_ARRAY */
  unsigned char cls;     /* tensors: FZ_X (residual type) or FZ_F (branch type) */
  unsigned char out;     /* written by the call */
  unsigned char opt;     /* tensors: NULL data means absent */
  unsigned char compact; /* tensors: holds the kept samples only (c->kept of them) */
  unsigned char count;   /* arrays: FZ_N_* */
  unsigned char es;      /* arrays: bytes per element */
  uint16_t may_be;       /* outputs: bit j, the contract lets it be exactly object j */
  uint16_t may_be_unspec; /* bit j: the contract does not say; either outcome passes */
} fz_role;

#define FZ_T(c, o) {FZ_TENSOR, (c), (o), 0, 0, 0, 0, 0, 0}
#define FZ_A(n, e, o) {FZ_ARRAY, 0, (o), 0, 0, (n), (e), 0, 0}

/* One tensor or plain array of the call, placed at a byte offset of the arena. */
typedef struct fz_obj {
  int present;    /* the role exists for this call (else NULL is passed) */
  int null;       /* pass NULL instead of an arena pointer */
  int force_null; /* decoded before placement: place it as NULL */
  int ignored;    /* passed, but the contract says the call does not look at it */
  int is_tensor, is_output, optional, compact;
  size_t nsamp;   /* tensors: samples (B, or the kept count when compact) */
  size_t off;     /* byte offset of the data pointer in the arena */
  dp_tensor t;    /* dtype and strides (data is set per run) */
  size_t es;      /* element size */
  u128 count;     /* arrays: element count */
  int overflow;   /* footprint arithmetic exceeds size_t */
  int fits;       /* footprint lies inside the arena */
  int empty;      /* no element: nothing of it is checked beyond dtype and strides */
  size_t lo, hi;
} fz_obj;

struct fz_opdef;

typedef struct fz_case {
  int op;
  const struct fz_opdef *def;
  int params_null;
  dp_params prm;
  dp_shape shape;
  size_t B, T, D;
  uint32_t flags; /* the backward's flags word */
  int default_threads;
  fz_obj obj[MAX_OBJ];
  size_t used; /* arena bytes the case covers */
  size_t misalign;
  uint64_t fill_seed;
  unsigned specials;
  int finite; /* fill with finite values of [-2, 2) only (specials aside): sums stay finite */
  size_t kept; /* samples of compact tensors and entries of per-kept arrays */
  /* Sample compaction: the indices written into the kept_indices array
   * (nlist of them known), the mask's own k. */
  size_t nlist, mask_k;
  int s_unclear; /* exact-k with a kept count other than the mask's: s is not specified */
  size_t kept_list[MAX_KEPT];
  /* Fused norm: the descriptor (its arrays are arena objects) or NULL. */
  int norm_null;
  int norm_kind;
  float norm_eps;
} fz_case;

typedef struct fz_reader {
  const uint8_t *p;
  size_t n;
} fz_reader;

typedef struct fz_opdef {
  const char *name;
  fz_role role[MAX_OBJ];
  int place_order[MAX_OBJ]; /* inputs first, so outputs can alias them; -1 ends */
  int x_role, f_role;       /* tensors whose dtypes pick the combination; -1: none */
  int scales_in;            /* saved scales (an input array of B floats), or -1 */
  /* Bytes of the operation's own, before the roles (they may size compact tensors). */
  void (*pre)(fz_case *c, fz_reader *r);
  /* After the roles, before placement. */
  void (*post)(fz_case *c, fz_reader *r, int with_array);
  /* After placement: which objects are absent or ignored. */
  void (*placed)(fz_case *c);
  /* Contract rules beyond params, tensors, dtypes, arrays and overlaps. */
  int (*expect)(const fz_case *c, const char **why);
  /* Zero when this build lacks the kernels of the call's dtypes. */
  int (*have)(const fz_case *c);
  /* After the random fill: contents the call needs (kept indices). */
  void (*fill)(const fz_case *c, unsigned char *arena);
  /* Per-sample scales of the model (NULL: saved scales or dp_mask); 0: none. */
  int (*scales)(const fz_case *c, const unsigned char *init, float *s);
  dp_status (*call)(const fz_case *c, unsigned char *base);
  /* Poisons rows the contract says are never read (s may be NULL). */
  void (*poison)(const fz_case *c, unsigned char *base, const float *s);
  /* Checks a successful call's outputs (s may be NULL). */
  void (*check)(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s);
  void (*dump)(const fz_case *c);
} fz_opdef;

extern const fz_opdef fz_op_fwd_ls, fz_op_infer_ls, fz_op_bwd_ls;
extern const fz_opdef fz_op_gather, fz_op_cfwd, fz_op_cfwd_ls, fz_op_cbwd, fz_op_cbwd_ls, fz_op_scatter;
extern const fz_opdef fz_op_fwd_norm, fz_op_infer_norm, fz_op_bwd_norm;

/* ------------------------------------------------------------ engine services (fuzz_api.c) */

uint64_t fz_take(fz_reader *r, int bytes);
uint64_t fz_mix64(uint64_t z);
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int fz_params_valid(const fz_case *c);
int fz_combo_ok(int x, int f);
/* The call's arguments at run base `base`. */
void *fz_ptr(const fz_obj *o, unsigned char *base);
dp_tensor fz_tensor(const fz_obj *o, unsigned char *base);
/* NULL for an absent role, else fz_ptr. */
void *fz_arg(const fz_obj *o, unsigned char *base);
/* Element (b, t, d) of object idx: b is the object's own sample (a rank when compact). */
const unsigned char *fz_at(const fz_case *c, const unsigned char *base, int idx, size_t b, size_t t, size_t d);
float fz_load(const fz_case *c, const unsigned char *base, int idx, size_t b, size_t t, size_t d);
float fz_arr_f32(const fz_case *c, const unsigned char *base, int idx, size_t i);
/* Whether object idx is passed and has elements in the arena. */
int fz_live(const fz_case *c, int idx);
/* Fails unless element (b, t, d) of f32 object idx in got has want's bits. */
void fz_expect_f32(const fz_case *c, const unsigned char *got, int idx, size_t b, size_t t, size_t d, float want);
/* Fails unless element (b, t, d) of object idx has the same bytes in got and init. */
void fz_expect_same(const fz_case *c, const unsigned char *init, const unsigned char *got, int idx, size_t b,
                    size_t t, size_t d, const char *what);
/* Fails unless the f32 array idx holds s (B floats). */
void fz_check_scales_out(const fz_case *c, const unsigned char *got, int idx, const float *s);
/* Poisons the rows of object idx whose sample has s[b] == 0 (every row when
 * s is NULL), except bytes another object shares. */
void fz_poison_rows(const fz_case *c, unsigned char *base, int idx, const float *s);

/* ------------------------------------------------------------ model helpers (fuzz_api.c) */

/* The library stores every NaN that arithmetic produces as this one. */
#define CANON_NAN 0x7fc00000u
static inline float fz_canon(float v) { return isnan(v) ? tu_bits_f32(CANON_NAN) : v; }

/* keep = (float)(1 - p); the row and batch mode scale s = 1/keep (1 without
 * scale_by_keep or when keep is 0), written out from the header's formulas. */
float fz_keep(const fz_case *c);
float fz_row_scale(const fz_case *c);
/* The join x + ((g*f)*s) (g NULL: x + s*f) as the header states it. */
static inline float fz_join(float x, float f, const float *g, size_t d, float s) {
  return fz_canon(x + (g ? (g[d] * f) * s : s * f));
}
/* A per-channel f32 array of object idx in init (D floats), or NULL when absent. */
float *fz_channel(const fz_case *c, const unsigned char *init, int idx);

/* Per-channel sums in a fixed order of row groups: rows r = b*T + t in
 * groups of `per` consecutive rows, each group from +0.0f in row order, the
 * groups' sums added in group order, then out = total or old + total, NaN
 * canonical.  term(ctx, b, t, d) is row r's addend; with s, rows of samples
 * with s[b] == 0 add nothing.  No rows: the total is +0. */
typedef float (*fz_term_fn)(const void *ctx, size_t b, size_t t, size_t d);
void fz_group_sum(const fz_case *c, size_t per, const float *s, fz_term_fn term, const void *ctx, const float *old,
                  int accumulate, float *out);
/* LayerScale's grad_gamma groups (droppath.h): P = max(ceil(2^16/D),
 * ceil(R/M)) rows, M = min(64, max(1, floor(2^22/D))), R = B*T. */
size_t fz_ls_group_rows(const fz_case *c);
/* The dtype combos (indices: dp_dtype of X, then of F) each plain and
 * LayerScale kernel family of this build takes, probed once through the
 * public API; scale: the single-operand drop_path. */
typedef struct fz_combos {
  int fwd[3][3], fwdls[3][3], bwd[3][3], bwdls[3][3], scale[3];
} fz_combos;
const fz_combos *fz_have(void);
/* Fails unless the f32 array idx of got holds want (D floats). */
void fz_expect_channels(const fz_case *c, const unsigned char *got, int idx, const float *want, const char *what);

#endif /* DP_FUZZ_H */
