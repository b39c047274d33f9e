/*
 * libFuzzer harness for the public API.  The input decodes into one call:
 * operation, parameters, shape, per-tensor dtype/strides/offset and aliasing,
 * all placed in one arena.  The call runs once per supported ISA on copies of
 * the same arena, and the harness checks what the contract promises:
 *   - a model of the validation rules: calls the contract forbids fail,
 *     calls it clearly allows succeed (ambiguous corners may go either way);
 *   - on error no byte of the arena changes;
 *   - on success no byte outside the output rows changes, f32 outputs match
 *     an independent model of the formulas (an arithmetic NaN result is the
 *     canonical quiet NaN, a copied value keeps its bits), and every ISA
 *     matches scalar bit for bit;
 *   - under ASan, everything outside the rows (stride gaps, slack) is
 *     poisoned, and so are rows the contract says are never read (f of
 *     dropped samples, x of dropped drop_path samples), so over-reads trap.
 * Any violation prints the case and aborts, which libFuzzer reports.
 * Built without libFuzzer (DP_FUZZ_STANDALONE), main() replays files.
 * FZ_DUMP=1 in the environment prints each decoded case.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "droppath/droppath.h"
#include "test_util.h" /* header-only helpers: float bits, element loads */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FZ_ASAN 1
#endif
#ifdef FZ_ASAN
#include <sanitizer/asan_interface.h>
#define FZ_POISON(p, n) __asan_poison_memory_region((p), (n))
#define FZ_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define FZ_POISON(p, n) ((void)(p), (void)(n))
#define FZ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_CAP ((size_t)1 << 20)
#define MAX_OBJ 4
#define MAX_ROWS 8192

typedef unsigned __int128 u128;

enum { OP_FWD, OP_INFER, OP_DROP, OP_BWD, OP_MASK, OP_COUNT };
enum { EXPECT_EITHER, EXPECT_OK, EXPECT_FAIL };

/* One tensor or plain array of the call, placed at a byte offset of the arena. */
typedef struct fz_obj {
  int present; /* the role exists for this operation */
  int null;    /* pass NULL instead of an arena pointer */
  int is_tensor, is_output;
  size_t off;   /* byte offset of the data pointer in the arena */
  dp_tensor t;  /* dtype and strides (data is set per run) */
  size_t es;    /* element size */
  size_t count; /* arrays: element count */
  int overflow; /* footprint arithmetic exceeds size_t */
  int fits;     /* footprint lies inside the arena */
  size_t lo, hi;
} fz_obj;

typedef struct fz_case {
  int op;
  int params_null;
  dp_params prm;
  dp_shape shape;
  size_t B, T, D;
  uint32_t bwd_flags;
  int default_threads;
  fz_obj obj[MAX_OBJ];
  size_t used; /* arena bytes the case covers */
  size_t misalign;
  uint64_t fill_seed;
  unsigned specials;
  int scales_fill; /* bwd: write plausible scales into a fresh scales array */
} fz_case;

/* ------------------------------------------------------------ input reader */

typedef struct fz_reader {
  const uint8_t *p;
  size_t n;
} fz_reader;

static uint64_t take(fz_reader *r, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) {
    uint64_t b = 0;
    if (r->n) {
      b = *r->p++;
      r->n--;
    }
    v |= b << (8 * i);
  }
  return v;
}

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ------------------------------------------------------------ float helpers */

/* The library stores every NaN that arithmetic produces as this one. */
#define CANON_NAN 0x7fc00000u

static float canon(float v) { return isnan(v) ? tu_bits_f32(CANON_NAN) : v; }

/* ------------------------------------------------------------ decoding */

static double decode_prob(fz_reader *r) {
  static const double table[] = {0.0, 1.0, 0.5, 0.1, -0.0, 0.9, 0.25, 1.0 - 0x1p-30, 0x1p-30,
                                 1e-300, NAN, -1e-300, 1.0 + 0x1p-52, INFINITY, -INFINITY};
  const unsigned sel = (unsigned)take(r, 1);
  if (sel < 2 * (sizeof table / sizeof table[0])) return table[sel % (sizeof table / sizeof table[0])];
  const uint64_t v = take(r, 8);
  if (sel < 250) return (double)(v >> 11) * 0x1p-53; /* [0, 1) */
  double d;
  memcpy(&d, &v, 8); /* any bit pattern */
  return d;
}

static void decode_params(fz_case *c, fz_reader *r) {
  dp_params_init(&c->prm);
  const unsigned misc = (unsigned)take(r, 1);
  c->params_null = misc == 0xff;
  c->prm.drop_prob = decode_prob(r);
  static const int modes[] = {DP_MODE_ROW, DP_MODE_ROW, DP_MODE_ROW, DP_MODE_BATCH,
                              DP_MODE_BATCH, DP_MODE_EXACT_K, 3, -1};
  c->prm.mode = modes[misc & 7];
  c->prm.scale_by_keep = (misc >> 3) & 1 ? 0 : 1;
  static const int threads[] = {0, 1, 2, 0, 1, 2, 3, -1};
  c->prm.num_threads = threads[(misc >> 4) & 7];
  c->default_threads = (int)(take(r, 1) % 3);
  const unsigned fl = (unsigned)take(r, 1);
  c->prm.flags = fl < 240 ? fl % 3 : fl < 250 ? 3u : 1u << (fl & 31);
  c->prm.seed = take(r, 8);
  c->prm.offset = take(r, 8);
  const unsigned base_sel = (unsigned)take(r, 1);
  c->prm.sample_base = base_sel < 128 ? base_sel : base_sel < 192 ? UINT64_MAX - (base_sel & 15) : take(r, 8);
}

static void decode_shape(fz_case *c, fz_reader *r) {
  const unsigned sel = (unsigned)take(r, 1);
  const unsigned a = (unsigned)take(r, 1), b = (unsigned)take(r, 1);
  const unsigned w = (unsigned)take(r, 2);
  switch (sel >> 5) {
    case 0: case 1: case 2: case 3: /* small everything */
      c->B = a % 9;
      c->T = b % 5;
      c->D = w % 80;
      break;
    case 4: /* a handful of medium rows */
      c->B = 1 + a % 4;
      c->T = 1 + b % 3;
      c->D = 64 + w % 600;
      break;
    case 5: /* few long rows: split across threads in chunks */
      c->B = 1 + a % 2;
      c->T = 1;
      c->D = 4000 + w % 9000;
      break;
    case 6: /* many samples: the scales go to the heap past 1024 */
      c->B = 1000 + w % 1100;
      c->T = 1 + b % 2;
      c->D = a % 4;
      break;
    default: /* huge counts where nothing may be touched */
      c->B = (sel & 1) ? (size_t)take(r, 8) : (size_t)1 << (30 + a % 34);
      c->T = b % 3;
      c->D = (sel & 2) ? w % 3 : 0;
      break;
  }
  if (c->op == OP_MASK && c->B > 4096) c->B %= 4096; /* mask work is O(B) by design */
  c->shape.batch = c->B;
  c->shape.seq = c->T;
  c->shape.dim = c->D;
  if (c->T == 0) c->T = 1;
}

static void decode_strides(fz_case *c, fz_obj *o, fz_reader *r) {
  const size_t B = c->B, T = c->T, D = c->D;
  const unsigned sel = (unsigned)take(r, 1);
  const size_t p1 = (size_t)take(r, 1) % 19, p2 = (size_t)take(r, 1) % 37;
  switch (sel % 10) {
    case 0: case 1:
      o->t = dp_tensor_dense(NULL, (dp_dtype)o->t.dtype, c->shape);
      break;
    case 2:
      o->t = dp_tensor_seq_first(NULL, (dp_dtype)o->t.dtype, c->shape);
      break;
    case 3: /* padded [B][T][D] */
      o->t.seq_stride = D + p1;
      o->t.sample_stride = T * o->t.seq_stride + p2;
      break;
    case 4: /* padded [T][B][D] */
      o->t.sample_stride = D + p1;
      o->t.seq_stride = B * o->t.sample_stride + p2;
      break;
    case 5: /* arbitrary small strides, often invalid or interleaved */
      o->t.sample_stride = (size_t)take(r, 1) % (3 * D + 8);
      o->t.seq_stride = (size_t)take(r, 1) % (3 * D + 8);
      break;
    case 6: /* arbitrary 64-bit strides */
      o->t.sample_stride = (size_t)take(r, 8);
      o->t.seq_stride = (size_t)take(r, 8);
      break;
    case 7: { /* right at the size_t overflow boundary of the footprint */
      const size_t lim = SIZE_MAX / (o->es ? o->es : 1) - D;
      const size_t k = B > 1 ? B - 1 : (T > 1 ? T - 1 : 1);
      const size_t st = lim / k + (size_t)(int)(p1 % 5) - 2;
      o->t.sample_stride = B > 1 ? st : D;
      o->t.seq_stride = B > 1 ? D : st;
      break;
    }
    case 8: /* sample-major, rows padded, strides above 2^31 or 2^32 when B or T is 1 */
      o->t.seq_stride = D + p1;
      o->t.sample_stride = (B > 1) ? T * o->t.seq_stride : ((size_t)1 << 31) + p2;
      if (T == 1) o->t.seq_stride = ((size_t)1 << 32) + p1;
      break;
    default:
      o->t = dp_tensor_dense(NULL, (dp_dtype)o->t.dtype, c->shape);
      o->t.sample_stride += p1;
      break;
  }
}

/* Footprint of o in elements/bytes, with overflow detection in 128 bits. */
static void compute_footprint(const fz_case *c, fz_obj *o) {
  u128 bytes;
  if (o->is_tensor) {
    if (c->B == 0 || c->D == 0) {
      bytes = 0;
    } else {
      u128 span = (u128)(c->B - 1) * o->t.sample_stride + c->D;
      if (c->T > 1) span += (u128)(c->T - 1) * o->t.seq_stride;
      bytes = span * o->es;
    }
  } else {
    bytes = (u128)o->count * o->es;
  }
  o->overflow = bytes > SIZE_MAX;
  o->lo = o->off;
  o->hi = o->overflow || bytes > ARENA_CAP ? SIZE_MAX : o->off + (size_t)bytes;
  o->fits = !o->null && !o->overflow && o->hi <= ARENA_CAP;
  /* Zero strides pack any number of rows into a few bytes: too many to walk. */
  if (o->is_tensor && (u128)c->B * c->T > ARENA_CAP) o->fits = 0;
  if (o->null || bytes == 0) {
    o->lo = o->hi = 0;
    o->fits = 1;
  }
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

/* Place one object: a fresh region after *cursor, or aliased with an earlier one. */
static void place(fz_case *c, int idx, const int *placed, int nplaced, size_t *cursor, fz_reader *r) {
  fz_obj *o = &c->obj[idx];
  const unsigned sel = (unsigned)take(r, 1);
  const unsigned aux = (unsigned)take(r, 1);
  const size_t align = o->es == 8 ? 8 : o->es;
  int mode = sel < 160 ? 0 : sel < 200 ? 1 : sel < 225 ? 2 : sel < 245 ? 3 : 4;
  if (nplaced == 0 && (mode == 1 || mode == 2)) mode = 0;
  const fz_obj *tgt = nplaced ? &c->obj[placed[aux % (unsigned)nplaced]] : NULL;
  if (tgt && tgt->null && (mode == 1 || mode == 2)) mode = 0;
  switch (mode) {
    case 1: /* exactly the same tensor, or the same start with own layout */
      o->off = align_up(tgt->off, align);
      if (o->is_tensor && tgt->is_tensor && (aux & 0x80)) {
        o->t = tgt->t;
        o->es = tgt->es;
      }
      break;
    case 2: { /* shifted by a few elements */
      const long delta = (long)(aux % 33) - 16;
      const long off = (long)tgt->off + delta * (long)o->es;
      o->off = off < 0 ? 0 : align_up((size_t)off, align);
      if (o->is_tensor && tgt->is_tensor && (aux & 0x40) && o->t.dtype == tgt->t.dtype) o->t = tgt->t;
      break;
    }
    case 3:
      o->null = 1;
      o->off = 0;
      break;
    default: /* fresh region with a small gap (misaligns relative to 64 bytes) */
      o->off = align_up(*cursor + (aux % 48), align);
      break;
  }
  compute_footprint(c, o);
  if (!o->null && o->fits && o->hi > *cursor) *cursor = o->hi;
}

static void set_tensor_role(fz_case *c, int idx, int dtype, int output, fz_reader *r) {
  fz_obj *o = &c->obj[idx];
  const unsigned d = (unsigned)take(r, 1);
  o->present = 1;
  o->is_tensor = 1;
  o->is_output = output;
  o->t.dtype = d < 240 ? dtype : (int)(d % 5) - 1; /* sometimes any dtype, even invalid */
  o->es = tu_dtype_size(o->t.dtype);
  decode_strides(c, o, r);
}

static void set_array_role(fz_case *c, int idx, size_t es, size_t count, int output) {
  fz_obj *o = &c->obj[idx];
  o->present = 1;
  o->is_output = output;
  o->es = es;
  o->count = count;
}

/* Placement order: inputs first, so that outputs can alias them. */
static const int place_order[OP_COUNT][MAX_OBJ] = {
    {1, 2, 0, 3}, {1, 2, 0, -1}, {1, 0, 3, -1}, {2, 3, 0, 1}, {0, 1, 2, 3}};

static void decode_case(fz_case *c, const uint8_t *data, size_t size) {
  fz_reader rd = {data, size}, *r = &rd;
  memset(c, 0, sizeof *c);
  c->op = (int)(take(r, 1) % OP_COUNT);
  decode_params(c, r);
  decode_shape(c, r);
  /* Combination: X = residual type, F = branch type. */
  static const int combos[5][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                   {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  const unsigned cs = (unsigned)take(r, 1);
  const int X = combos[cs % 5][0], F = combos[cs % 5][1];
  const int with_array = (take(r, 1) & 3) != 0;
  switch (c->op) {
    case OP_FWD:
      set_tensor_role(c, 0, X, 1, r);
      set_tensor_role(c, 1, X, 0, r);
      set_tensor_role(c, 2, F, 0, r);
      set_array_role(c, 3, 4, c->B, 1);
      c->obj[3].present = with_array;
      break;
    case OP_INFER:
      set_tensor_role(c, 0, X, 1, r);
      set_tensor_role(c, 1, X, 0, r);
      set_tensor_role(c, 2, F, 0, r);
      break;
    case OP_DROP:
      set_tensor_role(c, 0, X, 1, r);
      set_tensor_role(c, 1, X, 0, r);
      set_array_role(c, 3, 4, c->B, 1);
      c->obj[3].present = with_array;
      break;
    case OP_BWD: {
      set_tensor_role(c, 0, F, 1, r);
      set_tensor_role(c, 1, X, 1, r);
      set_tensor_role(c, 2, X, 0, r);
      set_array_role(c, 3, 4, c->B, 0);
      c->obj[3].present = with_array;
      const unsigned fl = (unsigned)take(r, 1);
      c->bwd_flags = fl < 248 ? fl & 3u : 1u << (fl & 31);
      c->scales_fill = 1;
      break;
    }
    default:
      set_array_role(c, 0, 1, c->B, 1);
      set_array_role(c, 1, 4, c->B, 1);
      set_array_role(c, 2, sizeof(size_t), 1, 1);
      set_array_role(c, 3, sizeof(size_t), c->B, 1);
      break;
  }
  size_t cursor = 64;
  int placed[MAX_OBJ], np = 0;
  for (int k = 0; k < MAX_OBJ; k++) {
    const int idx = place_order[c->op][k];
    if (idx < 0 || !c->obj[idx].present) continue;
    if (c->obj[idx].es == 0) c->obj[idx].es = 1; /* invalid dtype: any offset will do */
    place(c, idx, placed, np, &cursor, r);
    placed[np++] = idx;
  }
  if (c->op == OP_BWD && c->obj[1].null) c->obj[1].present = 0; /* grad_x absent */
  c->used = align_up(cursor + 64, 64);
  c->misalign = (size_t)(take(r, 1) % 8) * 8;
  c->fill_seed = take(r, 8);
  c->specials = (unsigned)take(r, 1) % 4;
}

/* ------------------------------------------------------------ byte ownership */

static uint8_t own[ARENA_CAP + 256]; /* bit i: byte belongs to object i's rows */

typedef void (*run_fn)(void *ctx, size_t lo, size_t n);

/* Call fn on each contiguous byte run of o's rows (o must fit). */
static void for_each_run(const fz_case *c, const fz_obj *o, run_fn fn, void *ctx) {
  if (!o->present || o->null || !o->fits || o->lo == o->hi) return;
  if (!o->is_tensor) {
    fn(ctx, o->lo, o->hi - o->lo);
    return;
  }
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      fn(ctx, o->off + (b * o->t.sample_stride + t * o->t.seq_stride) * o->es, c->D * o->es);
}

typedef struct mark_ctx {
  uint8_t bit;
} mark_ctx;

static void mark_run(void *ctx, size_t lo, size_t n) {
  const uint8_t bit = ((mark_ctx *)ctx)->bit;
  for (size_t i = 0; i < n; i++) own[lo + i] |= bit;
}

static void build_ownership(const fz_case *c) {
  memset(own, 0, c->used);
  for (int i = 0; i < MAX_OBJ; i++) {
    mark_ctx m = {(uint8_t)(1u << i)};
    for_each_run(c, &c->obj[i], mark_run, &m);
  }
}

/* ------------------------------------------------------------ validity model */

static int combo_ok(int x, int f) {
  return (x == f && tu_dtype_size(x)) || (x == DP_F32 && (f == DP_BF16 || f == DP_F16));
}

static int identical(const fz_case *c, const fz_obj *a, const fz_obj *b) {
  return a->off == b->off && !a->null && !b->null && a->t.dtype == b->t.dtype &&
         a->t.sample_stride == b->t.sample_stride && (c->T == 1 || a->t.seq_stride == b->t.seq_stride);
}

static int cmp_size(const void *a, const void *b) {
  const size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

/* 1: rows of o provably overlap; 0: they are disjoint; validity of strides is
 * checked by the caller. */
static int rows_overlap(const fz_case *c, const fz_obj *o) {
  static size_t starts[MAX_ROWS];
  if (c->B > MAX_ROWS || c->T > MAX_ROWS || c->B * c->T > MAX_ROWS) return 0;
  const size_t n = c->B * c->T;
  size_t k = 0;
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++) starts[k++] = b * o->t.sample_stride + t * o->t.seq_stride;
  qsort(starts, n, sizeof starts[0], cmp_size);
  for (size_t i = 1; i < n; i++)
    if (starts[i] - starts[i - 1] < c->D) return 1;
  return 0;
}

/* Kernel combos this build has, probed once through the public API. */
static int have_fwd[3][3], have_scale[3], have_bwd[3][3];

static void probe_combos(void) {
  static int done;
  if (done) return;
  done = 1;
  dp_params p;
  dp_params_init(&p);
  const dp_shape sh = {1, 1, 1};
  for (int x = 0; x < 3; x++) {
    for (int f = 0; f < 3; f++) {
      float a[1] = {0}, b2[1] = {0}, o[1] = {0}, g[1] = {0};
      have_fwd[x][f] = dp_forward(&p, sh, (dp_tensor){o, x, 1, 1}, (dp_tensor){a, x, 1, 1},
                                  (dp_tensor){b2, f, 1, 1}, NULL) == DP_OK;
      have_bwd[x][f] = dp_backward(&p, sh, (dp_tensor){o, f, 1, 1}, (dp_tensor){NULL, x, 1, 1},
                                   (dp_tensor){g, x, 1, 1}, NULL, 0) == DP_OK;
    }
    float a[1] = {0}, o[1] = {0};
    have_scale[x] = dp_drop_path(&p, sh, (dp_tensor){o, x, 1, 1}, (dp_tensor){a, x, 1, 1}, NULL) == DP_OK;
  }
}

static int params_valid(const fz_case *c) {
  if (c->params_null) return 0;
  const dp_params *p = &c->prm;
  if (isnan(p->drop_prob) || p->drop_prob < 0.0 || p->drop_prob > 1.0) return 0;
  if (p->mode != DP_MODE_ROW && p->mode != DP_MODE_BATCH && p->mode != DP_MODE_EXACT_K) return 0;
  if ((p->flags & ~3u) || p->flags == 3u) return 0;
  return p->num_threads >= 0;
}

/* Is (i, j) a pair where output i may be exactly j?  2: allowed, 1: unspecified. */
static int alias_allowed(int op, int i, int j) {
  if ((op == OP_FWD && i == 0 && (j == 1 || j == 2)) || (op == OP_DROP && i == 0 && j == 1) ||
      (op == OP_BWD && i == 0 && j == 2))
    return 2;
  if (op == OP_INFER && i == 0 && (j == 1 || j == 2)) return 1;
  return 0;
}

typedef struct pair_ctx {
  uint8_t bit;
  int hit;
} pair_ctx;

static void pair_run(void *ctx, size_t lo, size_t n) {
  pair_ctx *p = (pair_ctx *)ctx;
  for (size_t i = 0; i < n && !p->hit; i++) p->hit = (own[lo + i] & p->bit) != 0;
}

static int expect_of(const fz_case *c, const char **why) {
  int either = 0;
  *why = "";
  if (!params_valid(c)) return *why = "params", EXPECT_FAIL;
  if (c->op == OP_BWD && (c->bwd_flags & ~3u)) return *why = "bwd flags", EXPECT_FAIL;
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &c->obj[i];
    if (!o->present) continue;
    if (!o->is_tensor) {
      if (o->overflow && !o->null) return *why = "array size", EXPECT_FAIL;
      continue;
    }
    if (!tu_dtype_size(o->t.dtype)) return *why = "dtype", EXPECT_FAIL;
    if (o->t.sample_stride < c->D || (c->T > 1 && o->t.seq_stride < c->D))
      return *why = "stride < D", EXPECT_FAIL;
    if (c->B == 0 || c->D == 0) continue;
    if (o->null) return *why = "null", EXPECT_FAIL;
    if (o->overflow) return *why = "overflow", EXPECT_FAIL;
    if (c->B > 1 && c->T > 1) {
      const u128 ss = o->t.sample_stride, ts = o->t.seq_stride;
      const int nested = ts >= (u128)(c->B - 1) * ss + c->D || ss >= (u128)(c->T - 1) * ts + c->D;
      if (!nested) {
        if (o->is_output && rows_overlap(c, o)) return *why = "rows overlap", EXPECT_FAIL;
        either = 1; /* distinct rows the library may still refuse to walk */
      }
    }
  }
  const fz_obj *ob = c->obj;
  switch (c->op) {
    case OP_FWD:
    case OP_INFER:
      if (!combo_ok(ob[1].t.dtype, ob[2].t.dtype) || ob[0].t.dtype != ob[1].t.dtype)
        return *why = "dtype combo", EXPECT_FAIL;
      if (!have_fwd[ob[1].t.dtype][ob[2].t.dtype]) either = 1;
      break;
    case OP_DROP:
      if (ob[0].t.dtype != ob[1].t.dtype) return *why = "dtype combo", EXPECT_FAIL;
      if (!have_scale[ob[1].t.dtype]) either = 1;
      break;
    case OP_BWD:
      if (!combo_ok(ob[2].t.dtype, ob[0].t.dtype) || (ob[1].present && ob[1].t.dtype != ob[2].t.dtype))
        return *why = "dtype combo", EXPECT_FAIL;
      if (!have_bwd[ob[2].t.dtype][ob[0].t.dtype] || !have_fwd[ob[2].t.dtype][ob[2].t.dtype]) either = 1;
      break;
    default:
      break;
  }
  /* Aliasing: an output may share bytes with another object only when the
   * contract allows it to be exactly that object. */
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &ob[i];
    if (!o->present || !o->is_output || o->null || o->lo == o->hi) continue;
    for (int j = 0; j < MAX_OBJ; j++) {
      const fz_obj *q = &ob[j];
      if (j == i || !q->present || q->null || q->lo == q->hi) continue;
      if (o->lo >= q->hi || q->lo >= o->hi) continue; /* extents disjoint */
      pair_ctx pc = {(uint8_t)(1u << j), 0};
      for_each_run(c, o, pair_run, &pc);
      const int allowed = o->is_tensor && q->is_tensor ? alias_allowed(c->op, i, j) : 0;
      if (allowed && identical(c, o, q)) {
        if (allowed == 1) either = 1;
        continue;
      }
      if (!pc.hit) {
        either = 1; /* interleaved footprints: rejecting them is allowed */
        continue;
      }
      if (allowed && o->off == q->off && o->t.dtype == q->t.dtype) {
        either = 1; /* same elements, different stride spelling */
        continue;
      }
      return *why = "overlap", EXPECT_FAIL;
    }
  }
  return either ? EXPECT_EITHER : EXPECT_OK;
}

/* ------------------------------------------------------------ running */

static void fill_arena(const fz_case *c, unsigned char *a) {
  static const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                                      0xffc12345u, 0x7f812345u, 0x00000001u, 0x807fffffu, 0x7f7fffffu};
  uint64_t s = c->fill_seed;
  for (size_t i = 0; i + 4 <= c->used; i += 4) {
    const uint64_t z = mix64(s += 0x9E3779B97F4A7C15ull);
    uint32_t v;
    if (c->specials && (z & 31) < c->specials)
      v = specials[(z >> 8) % (sizeof specials / sizeof specials[0])];
    else
      v = tu_f32_bits((float)((double)(z >> 40) * 0x1p-22 - 2.0));
    if ((z >> 5 & 7) == 0) v = (uint32_t)(z >> 32); /* raw bits: bf16/f16 patterns of all kinds */
    memcpy(a + i, &v, 4);
  }
  const fz_obj *sc = &c->obj[3];
  if (c->op == OP_BWD && sc->present && !sc->null && sc->fits && c->scales_fill && sc->lo != sc->hi) {
    /* Saved scales look like the forward's: 0 or s, sometimes anything. */
    for (size_t b = 0; b < c->B; b++) {
      const uint64_t z = mix64(s += 0x9E3779B97F4A7C15ull);
      float v = (z & 1) ? 0.0f : 1.25f;
      if ((z & 14) == 0) v = tu_bits_f32((uint32_t)(z >> 32));
      memcpy(a + sc->lo + 4 * b, &v, 4);
    }
  }
}

static void *ptr_of(const fz_obj *o, unsigned char *base) { return o->null ? NULL : base + o->off; }

static dp_tensor tensor_of(const fz_obj *o, unsigned char *base) {
  dp_tensor t = o->t;
  t.data = ptr_of(o, base);
  return t;
}

static dp_status call_api(const fz_case *c, unsigned char *base) {
  const dp_params *p = c->params_null ? NULL : &c->prm;
  const fz_obj *o = c->obj;
  dp_set_num_threads(c->default_threads);
  switch (c->op) {
    case OP_FWD:
      return dp_forward(p, c->shape, tensor_of(&o[0], base), tensor_of(&o[1], base), tensor_of(&o[2], base),
                        o[3].present ? (float *)ptr_of(&o[3], base) : NULL);
    case OP_INFER:
      return dp_inference_add(p, c->shape, tensor_of(&o[0], base), tensor_of(&o[1], base),
                              tensor_of(&o[2], base));
    case OP_DROP:
      return dp_drop_path(p, c->shape, tensor_of(&o[0], base), tensor_of(&o[1], base),
                          o[3].present ? (float *)ptr_of(&o[3], base) : NULL);
    case OP_BWD: {
      dp_tensor gx = {NULL, DP_F32, 0, 0};
      if (o[1].present) gx = tensor_of(&o[1], base);
      return dp_backward(p, c->shape, tensor_of(&o[0], base), gx, tensor_of(&o[2], base),
                         o[3].present ? (const float *)ptr_of(&o[3], base) : NULL, c->bwd_flags);
    }
    default:
      return dp_mask(p, c->B, o[0].present ? (uint8_t *)ptr_of(&o[0], base) : NULL,
                     o[1].present ? (float *)ptr_of(&o[1], base) : NULL,
                     o[2].present ? (size_t *)ptr_of(&o[2], base) : NULL,
                     o[3].present ? (size_t *)ptr_of(&o[3], base) : NULL);
  }
}

static const fz_case *cur_case;

static void dump_case(const fz_case *c) {
  static const char *const ops[] = {"forward", "inference_add", "drop_path", "backward", "mask"};
  fprintf(stderr, "op=%s params=%s p=%a mode=%d sbk=%d nt=%d deft=%d flags=%#x seed=%#llx off=%#llx base=%#llx\n",
          ops[c->op], c->params_null ? "NULL" : "set", c->prm.drop_prob, c->prm.mode, c->prm.scale_by_keep,
          c->prm.num_threads, c->default_threads, (unsigned)c->prm.flags, (unsigned long long)c->prm.seed,
          (unsigned long long)c->prm.offset, (unsigned long long)c->prm.sample_base);
  fprintf(stderr, "shape B=%zu T=%zu(seq=%zu) D=%zu bwd_flags=%#x used=%zu misalign=%zu\n", c->B, c->T,
          c->shape.seq, c->D, (unsigned)c->bwd_flags, c->used, c->misalign);
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &c->obj[i];
    if (!o->present) continue;
    fprintf(stderr, "  obj%d %s%s off=%zu null=%d dtype=%d ss=%zu ts=%zu es=%zu count=%zu fits=%d ovf=%d [%zu,%zu)\n",
            i, o->is_tensor ? "tensor" : "array", o->is_output ? " out" : " in", o->off, o->null, o->t.dtype,
            o->t.sample_stride, o->t.seq_stride, o->es, o->count, o->fits, o->overflow, o->lo, o->hi);
  }
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FUZZ CHECK FAILED: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (cur_case) dump_case(cur_case);
  abort();
}

/* A run buffer: `used` bytes at a chosen 64-byte misalignment. */
typedef struct fz_buf {
  unsigned char *raw, *base;
  size_t span;
} fz_buf;

static fz_buf buf_new(const fz_case *c, const unsigned char *init) {
  fz_buf b;
  b.span = c->used + 128;
  b.raw = (unsigned char *)malloc(b.span);
  if (!b.raw) abort();
  b.base = (unsigned char *)(((uintptr_t)b.raw + 63) & ~(uintptr_t)63) + c->misalign;
  memcpy(b.base, init, c->used);
  return b;
}

static void unpoison_run(void *ctx, size_t lo, size_t n) { FZ_UNPOISON((unsigned char *)ctx + lo, n); }

typedef struct skip_ctx {
  unsigned char *base;
  uint8_t bit;
} skip_ctx;

/* Poison the bytes of a run that belong to no object but `bit`. */
static void poison_exclusive(void *ctx, size_t lo, size_t n) {
  const skip_ctx *s = (const skip_ctx *)ctx;
  size_t i = 0;
  while (i < n) {
    while (i < n && own[lo + i] != s->bit) i++;
    const size_t start = i;
    while (i < n && own[lo + i] == s->bit) i++;
    if (i > start) FZ_POISON(s->base + lo + start, i - start);
  }
}

/* Rows of object `idx` the operation must not read: unreadable under ASan. */
static void poison_unread(const fz_case *c, unsigned char *base, int idx, const float *scales) {
  const fz_obj *o = &c->obj[idx];
  if (!o->present || o->null || !o->fits || o->lo == o->hi) return;
  skip_ctx s = {base, (uint8_t)(1u << idx)};
  for (size_t b = 0; b < c->B; b++) {
    if (scales && scales[b] != 0.0f) continue;
    for (size_t t = 0; t < c->T; t++)
      poison_exclusive(&s, o->off + (b * o->t.sample_stride + t * o->t.seq_stride) * o->es, c->D * o->es);
  }
}

static dp_status run_guarded(const fz_case *c, fz_buf *b, const float *mask_scales) {
  FZ_POISON(b->raw, b->span);
  for (int i = 0; i < MAX_OBJ; i++) for_each_run(c, &c->obj[i], unpoison_run, b->base);
  if (mask_scales && c->op == OP_FWD) poison_unread(c, b->base, 2, mask_scales);
  if (mask_scales && c->op == OP_DROP) poison_unread(c, b->base, 1, mask_scales);
  if (c->op == OP_INFER && !c->params_null && !c->prm.scale_by_keep && (float)(1.0 - c->prm.drop_prob) == 0.0f)
    poison_unread(c, b->base, 2, NULL);
  const dp_status st = call_api(c, b->base);
  FZ_UNPOISON(b->raw, b->span);
  return st;
}

/* ------------------------------------------------------------ checking results */

typedef struct oracle {
  const fz_case *c;
  const unsigned char *init, *got;
  const float *s; /* per-sample scale */
} oracle;

static const unsigned char *at(const fz_case *c, const unsigned char *base, int idx, size_t b, size_t t, size_t d) {
  const fz_obj *o = &c->obj[idx];
  return base + o->off + (b * o->t.sample_stride + t * o->t.seq_stride + d) * o->es;
}

static void expect_f32(const oracle *q, int idx, size_t b, size_t t, size_t d, float want) {
  const float got = tu_load_elem(at(q->c, q->got, idx, b, t, d), DP_F32);
  if (tu_f32_bits(got) != tu_f32_bits(want))
    fail("obj%d[b=%zu t=%zu d=%zu] = %a (%#x), model says %a (%#x), scale %a", idx, b, t, d, (double)got,
         tu_f32_bits(got), (double)want, tu_f32_bits(want), q->s ? (double)q->s[b] : 0.0);
}

static float in_elem(const oracle *q, int idx, size_t b, size_t t, size_t d) {
  return tu_load_elem(at(q->c, q->init, idx, b, t, d), q->c->obj[idx].t.dtype);
}

/* Independent model of each formula, for outputs stored as f32. */
static void check_model(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  oracle q = {c, init, got, s};
  const fz_obj *o = c->obj;
  const float keep = (float)(1.0 - c->prm.drop_prob);
  if (c->B > ARENA_CAP / 4) return; /* only D == 0 gets here: nothing written */
  if ((c->op == OP_FWD || c->op == OP_DROP) && o[3].present && !o[3].null) {
    for (size_t b = 0; b < c->B; b++) {
      float v;
      memcpy(&v, got + o[3].off + 4 * b, 4);
      if (tu_f32_bits(v) != tu_f32_bits(s[b])) fail("scales_out[%zu] = %a, mask says %a", b, (double)v, (double)s[b]);
    }
  }
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        switch (c->op) {
          case OP_FWD:
          case OP_INFER: {
            if (o[0].t.dtype != DP_F32) return;
            const float sb = c->op == OP_FWD ? s[b] : c->prm.scale_by_keep ? 1.0f : keep;
            const float x = in_elem(&q, 1, b, t, d);
            float want = x; /* a dropped branch copies x */
            if (sb != 0.0f) {
              const float sf = sb * in_elem(&q, 2, b, t, d);
              want = canon(x + sf);
            }
            expect_f32(&q, 0, b, t, d, want);
            break;
          }
          case OP_DROP: {
            if (o[0].t.dtype != DP_F32) return;
            float want = 0.0f;
            if (s[b] != 0.0f) want = canon(s[b] * in_elem(&q, 1, b, t, d));
            expect_f32(&q, 0, b, t, d, want);
            break;
          }
          case OP_BWD: {
            const float g = in_elem(&q, 2, b, t, d);
            if (o[0].t.dtype == DP_F32) {
              float want;
              if (s[b] != 0.0f) {
                const float sg = s[b] * g;
                want = canon((c->bwd_flags & DP_BWD_ACCUMULATE_GRAD_F) ? in_elem(&q, 0, b, t, d) + sg : sg);
              } else {
                want = (c->bwd_flags & DP_BWD_ACCUMULATE_GRAD_F) ? in_elem(&q, 0, b, t, d) : 0.0f;
              }
              expect_f32(&q, 0, b, t, d, want);
            }
            if (o[1].present && o[1].t.dtype == DP_F32)
              expect_f32(&q, 1, b, t, d,
                         (c->bwd_flags & DP_BWD_ACCUMULATE_GRAD_X) ? canon(in_elem(&q, 1, b, t, d) + g) : g);
            break;
          }
          default:
            return;
        }
      }
}

static void check_mask_outputs(const fz_case *c, const unsigned char *got, const float *s) {
  const fz_obj *o = c->obj;
  size_t kept = 0;
  for (size_t b = 0; b < c->B; b++) {
    const int k = s[b] != 0.0f;
    if (o[0].present && !o[0].null && got[o[0].off + b] != k) fail("keep_out[%zu] wrong", b);
    if (o[1].present && !o[1].null) {
      float v;
      memcpy(&v, got + o[1].off + 4 * b, 4);
      if (tu_f32_bits(v) != tu_f32_bits(s[b])) fail("scales_out[%zu] wrong", b);
    }
    if (k && o[3].present && !o[3].null) {
      size_t idx;
      memcpy(&idx, got + o[3].off + sizeof(size_t) * kept, sizeof idx);
      if (idx != b) fail("kept_indices[%zu] = %zu, want %zu", kept, idx, b);
    }
    kept += k;
  }
  if (o[2].present && !o[2].null) {
    size_t n;
    memcpy(&n, got + o[2].off, sizeof n);
    if (n != kept) fail("kept_count = %zu, want %zu", n, kept);
  }
}

/* Bytes no output owns must be unchanged. */
static void check_untouched(const fz_case *c, const unsigned char *init, const unsigned char *got, int all) {
  uint8_t outs = 0;
  for (int i = 0; i < MAX_OBJ; i++)
    if (c->obj[i].present && c->obj[i].is_output) outs |= (uint8_t)(1u << i);
  for (size_t i = 0; i < c->used; i++)
    if (got[i] != init[i] && (all || !(own[i] & outs)))
      fail("byte %zu changed (%#x -> %#x), owners %#x, %s", i, init[i], got[i], own[i],
           all ? "call failed" : "not in any output row");
}

/* For a failure report: which element a byte is, and the inputs there. */
static void describe_byte(const fz_case *c, const unsigned char *init, size_t byte) {
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &c->obj[i];
    if (!(own[byte] & (1u << i)) || !o->is_tensor) continue;
    for (size_t b = 0; b < c->B; b++)
      for (size_t t = 0; t < c->T; t++) {
        const size_t row = o->off + (b * o->t.sample_stride + t * o->t.seq_stride) * o->es;
        if (byte < row || byte >= row + c->D * o->es) continue;
        const size_t d = (byte - row) / o->es;
        fprintf(stderr, "  byte %zu is obj%d[b=%zu t=%zu d=%zu]; initial values there:", byte, i, b, t, d);
        for (int j = 0; j < 3; j++) {
          const fz_obj *q = &c->obj[j];
          if (!q->present || !q->is_tensor || q->null || !q->fits || q->lo == q->hi) continue;
          const unsigned char *e = at(c, init, j, b, t, d);
          uint32_t v = 0;
          memcpy(&v, e, q->es);
          fprintf(stderr, " obj%d=%#x (%a)", j, v, (double)tu_load_elem(e, q->t.dtype));
        }
        fprintf(stderr, "\n");
      }
  }
}

/* Per-sample scales from the mask API (the fuzzer checks data paths, test_rng the mask). */
static int mask_scales(const fz_case *c, float **out) {
  *out = NULL;
  if (!params_valid(c) || c->B > ARENA_CAP / 4) return 0; /* larger: D == 0, nothing to check */
  float *s = (float *)malloc((c->B ? c->B : 1) * sizeof(float));
  if (!s) abort();
  if (c->op == OP_BWD && c->obj[3].present && !c->obj[3].null) {
    *out = s;
    return 1; /* filled from the saved scales by the caller */
  }
  if (dp_mask(&c->prm, c->B, NULL, s, NULL, NULL) != DP_OK) fail("dp_mask refused valid params");
  *out = s;
  return 1;
}

static void run_case(const fz_case *c) {
  const char *why;
  const int expect = expect_of(c, &why);
  for (int i = 0; i < MAX_OBJ; i++)
    if (c->obj[i].present && !c->obj[i].fits && expect != EXPECT_FAIL) return; /* cannot be run safely */
  if (c->D != 0 && c->B > ((size_t)1 << 24) && expect != EXPECT_FAIL) return;

  unsigned char *init = (unsigned char *)malloc(c->used);
  if (!init) abort();
  fill_arena(c, init);
  float *s = NULL;
  mask_scales(c, &s);
  if (s && c->op == OP_BWD && c->obj[3].present && !c->obj[3].null)
    for (size_t b = 0; b < c->B; b++) memcpy(&s[b], init + c->obj[3].off + 4 * b, 4);

  if (dp_set_max_isa(DP_ISA_SCALAR) != DP_OK || dp_active_isa() != DP_ISA_SCALAR) fail("cannot select scalar");
  fz_buf ref = buf_new(c, init);
  const dp_status st = run_guarded(c, &ref, s);
  if (expect == EXPECT_FAIL && st == DP_OK) fail("call succeeded, model says it must fail (%s)", why);
  if (expect == EXPECT_OK && st != DP_OK) fail("call failed with %s, model says it must succeed", dp_status_string(st));
  if (st != DP_OK) {
    check_untouched(c, init, ref.base, 1);
  } else {
    check_untouched(c, init, ref.base, 0);
    if (s && c->op == OP_MASK) check_mask_outputs(c, ref.base, s);
    else if (s || c->op == OP_INFER) check_model(c, init, ref.base, s);
  }

  for (int isa = DP_ISA_SCALAR + 1; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa)) continue;
    if (dp_set_max_isa((dp_isa)isa) != DP_OK) fail("cannot select %s", dp_isa_name((dp_isa)isa));
    if (dp_active_isa() != (dp_isa)isa) continue; /* DROPPATH_ISA caps it: a lower ISA ran already */
    fz_buf run = buf_new(c, init);
    const dp_status st2 = run_guarded(c, &run, s);
    if (st2 != st) fail("%s returned %s, scalar %s", dp_isa_name((dp_isa)isa), dp_status_string(st2), dp_status_string(st));
    for (size_t i = 0; i < c->used; i++)
      if (run.base[i] != ref.base[i] && (describe_byte(c, init, i), 1))
        fail("%s differs from scalar at byte %zu (%#x vs %#x, owners %#x)", dp_isa_name((dp_isa)isa), i,
             run.base[i], ref.base[i], own[i]);
    free(run.raw);
  }
  free(ref.raw);
  free(init);
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fz_case c;
  probe_combos();
  decode_case(&c, data, size);
  if (getenv("FZ_DUMP")) dump_case(&c);
  if (c.used > ARENA_CAP) return 0;
  cur_case = &c;
  build_ownership(&c);
  run_case(&c);
  cur_case = NULL;
  return 0;
}

#ifdef DP_FUZZ_STANDALONE
/* Replays inputs without libFuzzer: each argument is a file or a directory. */
#include <dirent.h>

static int replay_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return 0;
  static uint8_t buf[1 << 16];
  const size_t n = fread(buf, 1, sizeof buf, fp);
  fclose(fp);
  LLVMFuzzerTestOneInput(buf, n);
  return 1;
}

int main(int argc, char **argv) {
  int runs = 0;
  for (int i = 1; i < argc; i++) {
    DIR *dir = opendir(argv[i]);
    if (!dir) {
      runs += replay_file(argv[i]);
      continue;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      runs += replay_file(path);
    }
    closedir(dir);
  }
  printf("fuzz_api replay: %d inputs, all checks passed\n", runs);
  return runs > 0 ? 0 : 1;
}
#endif
