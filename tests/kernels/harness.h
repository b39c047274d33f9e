/*
 * The kernel checks, in the style of dav1d's checkasm: every SIMD kernel
 * against the scalar kernel of its family and combo on identical inputs (the
 * generator is reseeded per family+combo, so every ISA of one kernel sees the
 * same cases whatever the CPU skips), outputs starting as the guard pattern,
 * results plus the guard bytes around every buffer compared bit for bit. The
 * f32 scalar kernels are held to a formula the same way, so a scalar-only
 * build still checks something.
 *
 * Buffers live in arenas bounded by PROT_NONE pages, so a case can place a
 * buffer flush against a fence: a tail or head over-read faults instead of
 * passing silently, and the crash handler names the case.
 *
 * This harness is generic. Each family brings one check file, check_<family>.c,
 * defining kt_family_<family>: how to call and how to check its kernels, and
 * how to time them (dp_bench reaches the same descriptor). A family missing its
 * file is a link error, through the declarations generated below.
 */
#ifndef DP_KT_HARNESS_H
#define DP_KT_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "test_util.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KT_NROLES 11 /* buffers a kernel takes, at most (nbwd: 6 row buffers, gamma, ls and 3 partials) */
#define KT_MAX_VARIANTS 48
#define KT_MAX_N ((size_t)16384 + 64) /* elements of the largest case (the streaming sweep) */

/* GUARDED: TU_GUARD_BYTES of guard on both sides; FENCE_HEAD: the buffer
 * starts `off` bytes after a PROT_NONE page; FENCE_TAIL: it ends right at one. */
enum { KT_PLACE_GUARDED, KT_PLACE_FENCE_HEAD, KT_PLACE_FENCE_TAIL, KT_PLACE_COUNT };

/* ---------------------------------------------------------------- data families
 * Families whose kernels read and write element buffers (fwd, scale, bwd) share
 * one case type and the sweeps of sweeps.c; their check files describe roles
 * and variants. */

/* One way of calling a kernel: its flags and which buffers coincide. */
typedef struct kt_variant {
  int stream;      /* the kernel may use non-temporal stores */
  int alias;       /* role whose buffer the output (role 0) is, or 0 for none */
  unsigned flags;  /* the family's own (bwd: DP_KBWD_ACC_*) */
  unsigned absent; /* bit r: role r is passed as NULL */
} kt_variant;

typedef struct kt_case {
  kt_variant v;
  size_t n;
  size_t d; /* families with channel roles: the row length (n is a multiple of it); else 0 */
  size_t off[KT_NROLES]; /* bytes past a 64-byte boundary, a multiple of the element size */
  int place;
  float s;
  int specials; /* 0: none, 1: one in 64, 2: one in 4 */
} kt_case;

/* v[(*n)++] = x while there is room: a family with more variants than the
 * harness holds fails its check (kt_data_run) instead of overrunning v. */
static inline void kt_push_variant(kt_variant *v, size_t cap, size_t *n, kt_variant x) {
  if (*n < cap) v[*n] = x;
  (*n)++;
}

typedef struct kt_data {
  const char *roles[KT_NROLES]; /* buffer names in argument order, NULL past the last */
  unsigned f_roles;             /* bit r: role r has the branch type F; the others X */
  unsigned f32_roles;           /* bit r: role r is f32 whatever the combo (LayerScale's gamma) */
  unsigned chan_roles;          /* bit r: role r holds one row of d elements, not n (gamma, its
                                   gradient's partial sums): cases are then whole rows */
  /* Every variant the family allows for combo c, appended with
   * kt_push_variant; returns how many there are (more than cap fails). */
  size_t (*variants)(dp_combo c, kt_variant *v, size_t cap);
  /* Bit r: the kernel reads role r (it gets random contents, the others the guard pattern). */
  unsigned (*reads)(const kt_variant *v);
  void (*call)(const dp_kernel_info *k, unsigned char *const p[KT_NROLES], const kt_case *c);
  /* The variant's flags for a failure message ("stream=1"); returns the length. */
  int (*describe)(char *buf, size_t len, const kt_variant *v);
} kt_data;

/* ---------------------------------------------------------------- benchmark hooks */

/* dp_bench's four arrays, each of at least n floats' room. */
enum { KT_BUF_O, KT_BUF_X, KT_BUF_F, KT_BUF_T, KT_BUFS };

typedef struct kt_bench_args {
  void *buf[KT_BUFS]; /* the ones kt_bench.bufs names */
  size_t n;
  int variant;    /* index into kt_bench.variants */
  float keep;     /* the modelled keep probability: kept rows scale by 1/keep */
  uint64_t seed;  /* mask seed */
  uint64_t cycle; /* calls cycle through this many mask offsets */
  uint64_t state; /* carried from one call to the next */
} kt_bench_args;

typedef struct kt_bench_size {
  const char *name;
  size_t n;
  int in_short; /* in dp_bench's short suite */
} kt_bench_size;

typedef struct kt_bench {
  /* Row sizes of the family's own ("B8"), or NULL for dp_bench's cache-level
   * classes (L1 .. DRAM). */
  const kt_bench_size *sizes;
  size_t nsizes;
  /* Last token of the row name, one per variant ("store", "stream"); none if 0. */
  const char *const *variants;
  size_t nvariants;
  unsigned bufs; /* bit KT_BUF_*: arrays the calls use */
  /* Minimal memory traffic of one call on n elements; NULL: no byte counts. */
  size_t (*bytes)(dp_combo c, size_t n);
  /* `iters` calls of k through its typed pointer, nothing else in the loop;
   * NULL: the family has no kern rows. */
  void (*calls)(const dp_kernel_info *k, kt_bench_args *a, size_t iters);
} kt_bench;

/* The data families' row variants: ordinary stores, then streaming ones. */
extern const char *const kt_store_stream[2];

/* ---------------------------------------------------------------- a family */

typedef struct kt_runner kt_runner;

typedef struct kt_family {
  dp_family family;
  /* What the scalar kernel of the formula's combo is held to. */
  const dp_kernel_info *formula;
  /* Either a data family, checked by the shared sweeps ... */
  const kt_data *data;
  /* ... or one with cases of its own: every check of ru->k (0 after the first
   * failure, reported), and a case written out for messages. */
  int (*run)(kt_runner *ru);
  void (*describe)(char *buf, size_t len, const kt_runner *ru, const void *c);
  kt_bench bench;
} kt_family;

/* kt_family_fwd, ...: one per family of the list, each in its check file. */
#define KT_FAMILY_DECL_(ctx, fam, combos, params) extern const kt_family kt_family_##fam;
DP_FAMILY_LIST(KT_FAMILY_DECL_, )
#undef KT_FAMILY_DECL_

const kt_family *kt_family_of(dp_family family);

/* ---------------------------------------------------------------- running checks */

typedef struct kt_config {
  uint64_t seed;
  int iters; /* random cases per kernel */
  const char *filter;
} kt_config;
extern kt_config kt_cfg;

/* DP_TEST_SEED (printed), DP_TEST_ITERS, DP_TEST_KERNEL=<substring>. */
void kt_configure(void);
void kt_arenas_alloc(void);
void kt_arenas_free(void);

/* Checks every kernel of the family; the number that failed (FAIL lines printed). */
int kt_check_family(const kt_family *fam);

struct kt_runner {
  const kt_family *fam;
  const dp_kernel_info *k, *ref;
  tu_rng rng;
  size_t checks;
  const char *section;
};

/* The kernel of the list, or NULL. */
const dp_kernel_info *kt_find_kernel(dp_family family, dp_combo combo, dp_isa isa);

/* A buffer of `bytes` placed in arena (set, slot), set 0 for the kernel under
 * test and 1 for the reference; guard bytes and buffer hold the guard pattern. */
typedef struct kt_placed {
  unsigned char *data;
  size_t bytes;
  size_t gl, gr; /* guard bytes checked before and after */
} kt_placed;
kt_placed kt_place(int set, int slot, int place, size_t off, size_t bytes);
const char *kt_place_name(int place);

/* The kernel about to run on case c, for the crash handler; NULL when none. */
void kt_running(const kt_runner *ru, const dp_kernel_info *k, const void *c);
/* The FAIL line of case c, with what went wrong and how to replay it. */
void kt_report(const kt_runner *ru, const void *c, const char *what);

/* ---------------------------------------------------------------- values */

/* The factors s the cases use: 1/keep as the library derives it, plain ones
 * and one that overflows ordinary inputs. */
#define KT_N_S 6
extern const float kt_s_list[KT_N_S];

/* Element type of role r of combo c in a data family (a dp_dtype). */
int kt_role_dtype(const kt_data *d, dp_combo c, int role);
/* n random elements of dtype; specials as in kt_case. */
void kt_fill(tu_rng *r, unsigned char *p, size_t n, int dtype, int specials);
/* "0x3f800000 (1)". */
void kt_format(char *buf, size_t len, const unsigned char *p, int dtype);

/* v, or the canonical quiet NaN when v is a NaN: how kernels store a NaN
 * sum or product (copies keep their bits). For the f32 formulas. */
static inline float kt_canon_f32(float v) { return v == v ? v : tu_bits_f32(0x7FC00000u); }

/* The shared sweeps (sweeps.c). */
int kt_data_run(kt_runner *ru);
void kt_data_describe(char *buf, size_t len, const kt_runner *ru, const void *c);

/* The kernel list and the per-ISA tables (list_tests.c: cmocka, the test binary only). */
void kt_test_kernel_list(void **state);
void kt_test_kernels_for_isa(void **state);

#ifdef __cplusplus
}
#endif

#endif /* DP_KT_HARNESS_H */
