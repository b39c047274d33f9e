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
 *
 * This file is the engine and the plain operations (dp_forward,
 * dp_inference_add, dp_drop_path, dp_backward, dp_mask); the LayerScale,
 * sample compaction and fused norm families live in fuzz_ls.c,
 * fuzz_compact.c and fuzz_norm.c, each an fz_opdef (fuzz.h) the engine
 * drives the same way.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

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

/* ------------------------------------------------------------ input reader */

uint64_t fz_take(fz_reader *r, int bytes) {
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

uint64_t fz_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ------------------------------------------------------------ decoding */

static double decode_prob(fz_reader *r) {
  static const double table[] = {0.0, 1.0, 0.5, 0.1, -0.0, 0.9, 0.25, 1.0 - 0x1p-30, 0x1p-30,
                                 1e-300, NAN, -1e-300, 1.0 + 0x1p-52, INFINITY, -INFINITY};
  const unsigned sel = (unsigned)fz_take(r, 1);
  if (sel < 2 * (sizeof table / sizeof table[0])) return table[sel % (sizeof table / sizeof table[0])];
  const uint64_t v = fz_take(r, 8);
  if (sel < 250) return (double)(v >> 11) * 0x1p-53; /* [0, 1) */
  double d;
  memcpy(&d, &v, 8); /* any bit pattern */
  return d;
}

static void decode_params(fz_case *c, fz_reader *r) {
  dp_params_init(&c->prm);
  const unsigned misc = (unsigned)fz_take(r, 1);
  c->params_null = misc == 0xff;
  c->prm.drop_prob = decode_prob(r);
  static const int modes[] = {DP_MODE_ROW, DP_MODE_ROW, DP_MODE_ROW, DP_MODE_BATCH,
                              DP_MODE_BATCH, DP_MODE_EXACT_K, 3, -1};
  c->prm.mode = modes[misc & 7];
  c->prm.scale_by_keep = (misc >> 3) & 1 ? 0 : 1;
  static const int threads[] = {0, 1, 2, 0, 1, 2, 3, -1};
  c->prm.num_threads = threads[(misc >> 4) & 7];
  c->default_threads = (int)(fz_take(r, 1) % 3);
  const unsigned fl = (unsigned)fz_take(r, 1);
  c->prm.flags = fl < 240 ? fl % 3 : fl < 250 ? 3u : 1u << (fl & 31);
  c->prm.seed = fz_take(r, 8);
  c->prm.offset = fz_take(r, 8);
  const unsigned base_sel = (unsigned)fz_take(r, 1);
  c->prm.sample_base = base_sel < 128 ? base_sel : base_sel < 192 ? UINT64_MAX - (base_sel & 15) : fz_take(r, 8);
}

static void decode_shape(fz_case *c, fz_reader *r) {
  const unsigned sel = (unsigned)fz_take(r, 1);
  const unsigned a = (unsigned)fz_take(r, 1), b = (unsigned)fz_take(r, 1);
  const unsigned w = (unsigned)fz_take(r, 2);
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
    case 5:
      if (c->op >= OP_FWD_LS && (b & 1)) {
        /* The later families only: enough rows of medium length for several
         * of LayerScale's grad_gamma row groups (R*D beyond 2^16) and of the
         * norm backward's, still inside the arena with f32 tensors. */
        c->B = 16 + a % 64;
        c->T = 1 + (b >> 1) % 2;
        c->D = 300 + w % 700;
        break;
      }
      /* few long rows: split across threads in chunks */
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
      c->B = (sel & 1) ? (size_t)fz_take(r, 8) : (size_t)1 << (30 + a % 34);
      c->T = b % 3;
      c->D = (sel & 2) ? w % 3 : 0;
      break;
  }
  /* Mask work is O(B) by design (dp_mask; dp_compact_gather draws the mask
   * before it can check dst, which holds k samples). */
  if ((c->op == OP_MASK || c->op == OP_GATHER) && c->B > 4096) c->B %= 4096;
  c->shape.batch = c->B;
  c->shape.seq = c->T;
  c->shape.dim = c->D;
  if (c->T == 0) c->T = 1;
}

/* Strides for o, which holds o->nsamp samples (B, or the kept count). */
static void decode_strides(fz_case *c, fz_obj *o, fz_reader *r) {
  const size_t B = o->nsamp, T = c->T, D = c->D;
  const dp_shape own_shape = {B, c->shape.seq, D};
  const unsigned sel = (unsigned)fz_take(r, 1);
  const size_t p1 = (size_t)fz_take(r, 1) % 19, p2 = (size_t)fz_take(r, 1) % 37;
  switch (sel % 10) {
    case 0: case 1:
      o->t = dp_tensor_dense(NULL, (dp_dtype)o->t.dtype, own_shape);
      break;
    case 2:
      o->t = dp_tensor_seq_first(NULL, (dp_dtype)o->t.dtype, own_shape);
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
      o->t.sample_stride = (size_t)fz_take(r, 1) % (3 * D + 8);
      o->t.seq_stride = (size_t)fz_take(r, 1) % (3 * D + 8);
      break;
    case 6: /* arbitrary 64-bit strides */
      o->t.sample_stride = (size_t)fz_take(r, 8);
      o->t.seq_stride = (size_t)fz_take(r, 8);
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
      o->t = dp_tensor_dense(NULL, (dp_dtype)o->t.dtype, own_shape);
      o->t.sample_stride += p1;
      break;
  }
}

/* Footprint of o in elements/bytes, with overflow detection in 128 bits. */
static void compute_footprint(const fz_case *c, fz_obj *o) {
  u128 bytes;
  if (o->is_tensor) {
    if (o->nsamp == 0 || c->D == 0) {
      bytes = 0;
    } else {
      u128 span = (u128)(o->nsamp - 1) * o->t.sample_stride + c->D;
      if (c->T > 1) span += (u128)(c->T - 1) * o->t.seq_stride;
      bytes = span * o->es;
    }
  } else {
    bytes = o->count * o->es;
  }
  o->empty = bytes == 0;
  o->overflow = bytes > SIZE_MAX;
  o->lo = o->off;
  o->hi = o->overflow || bytes > ARENA_CAP ? SIZE_MAX : o->off + (size_t)bytes;
  o->fits = !o->null && !o->overflow && o->hi <= ARENA_CAP;
  /* Zero strides pack any number of rows into a few bytes: too many to walk. */
  if (o->is_tensor && (u128)o->nsamp * c->T > ARENA_CAP) o->fits = 0;
  if (o->null || bytes == 0) {
    o->lo = o->hi = 0;
    o->fits = 1;
  }
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

/* Place one object: a fresh region after *cursor, or aliased with an earlier one. */
static void place(fz_case *c, int idx, const int *placed, int nplaced, size_t *cursor, fz_reader *r) {
  fz_obj *o = &c->obj[idx];
  const unsigned sel = (unsigned)fz_take(r, 1);
  const unsigned aux = (unsigned)fz_take(r, 1);
  const size_t align = o->es;
  int mode = sel < 160 ? 0 : sel < 200 ? 1 : sel < 225 ? 2 : sel < 245 ? 3 : 4;
  if (nplaced == 0 && (mode == 1 || mode == 2)) mode = 0;
  const fz_obj *tgt = nplaced ? &c->obj[placed[aux % (unsigned)nplaced]] : NULL;
  if (tgt && tgt->null && (mode == 1 || mode == 2)) mode = 0;
  if (o->force_null) mode = 3;
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

static void set_tensor_role(fz_case *c, int idx, const fz_role *ro, int dtype, fz_reader *r) {
  fz_obj *o = &c->obj[idx];
  const unsigned d = (unsigned)fz_take(r, 1);
  o->present = 1;
  o->is_tensor = 1;
  o->is_output = ro->out;
  o->optional = ro->opt;
  o->compact = ro->compact;
  o->nsamp = ro->compact ? c->kept : c->B;
  o->t.dtype = d < 240 ? dtype : (int)(d % 5) - 1; /* sometimes any dtype, even invalid */
  o->es = tu_dtype_size(o->t.dtype);
  decode_strides(c, o, r);
}

static void set_array_role(fz_case *c, int idx, const fz_role *ro) {
  fz_obj *o = &c->obj[idx];
  o->present = 1;
  o->is_output = ro->out;
  o->es = ro->es;
  switch (ro->count) {
    case FZ_N_ONE: o->count = 1; break;
    case FZ_N_ROW: o->count = (u128)c->B * c->T; break;
    case FZ_N_CHAN: o->count = c->D; break;
    case FZ_N_KEPT: o->count = c->kept; break;
    default: o->count = c->B; break;
  }
}

static const fz_opdef op_fwd, op_infer, op_drop, op_bwd, op_mask;
static const fz_opdef *const ops[OP_COUNT] = {
    [OP_FWD] = &op_fwd, [OP_INFER] = &op_infer, [OP_DROP] = &op_drop, [OP_BWD] = &op_bwd, [OP_MASK] = &op_mask,
    [OP_FWD_LS] = &fz_op_fwd_ls, [OP_INFER_LS] = &fz_op_infer_ls, [OP_BWD_LS] = &fz_op_bwd_ls,
    [OP_GATHER] = &fz_op_gather, [OP_CFWD] = &fz_op_cfwd, [OP_CFWD_LS] = &fz_op_cfwd_ls,
    [OP_CBWD] = &fz_op_cbwd, [OP_CBWD_LS] = &fz_op_cbwd_ls, [OP_SCATTER] = &fz_op_scatter,
    [OP_FWD_NORM] = &fz_op_fwd_norm, [OP_INFER_NORM] = &fz_op_infer_norm, [OP_BWD_NORM] = &fz_op_bwd_norm,
};

/* The byte layout: op, params, shape, dtype combination, array flag, the
 * operation's own bytes, each role in index order (tensors: dtype and
 * strides), each placement in the operation's order, then misalignment,
 * fill seed and specials.  The plain operations have no bytes of their own
 * before the roles, so inputs written before the other families existed
 * decode as they did. */
static void decode_case(fz_case *c, const uint8_t *data, size_t size) {
  fz_reader rd = {data, size}, *r = &rd;
  memset(c, 0, sizeof *c);
  c->op = (int)(fz_take(r, 1) % OP_COUNT);
  c->def = ops[c->op];
  decode_params(c, r);
  decode_shape(c, r);
  /* Combination: X = residual type, F = branch type. */
  static const int combos[5][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                   {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  const unsigned cs = (unsigned)fz_take(r, 1);
  const int X = combos[cs % 5][0], F = combos[cs % 5][1];
  const int with_array = (fz_take(r, 1) & 3) != 0;
  const fz_opdef *def = c->def;
  if (def->pre) def->pre(c, r);
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_role *ro = &def->role[i];
    if (ro->kind == FZ_TENSOR) set_tensor_role(c, i, ro, ro->cls == FZ_X ? X : F, r);
    else if (ro->kind == FZ_ARRAY) set_array_role(c, i, ro);
  }
  if (def->post) def->post(c, r, with_array);
  size_t cursor = 64;
  int placed[MAX_OBJ], np = 0;
  for (int k = 0; k < MAX_OBJ; k++) {
    const int idx = def->place_order[k];
    if (idx < 0) break;
    if (!c->obj[idx].present) continue;
    if (c->obj[idx].es == 0) c->obj[idx].es = 1; /* invalid dtype: any offset will do */
    place(c, idx, placed, np, &cursor, r);
    placed[np++] = idx;
  }
  if (def->placed) def->placed(c);
  c->used = align_up(cursor + 64, 64);
  c->misalign = (size_t)(fz_take(r, 1) % 8) * 8;
  c->fill_seed = fz_take(r, 8);
  const unsigned sp = (unsigned)fz_take(r, 1);
  c->specials = sp % 4;
  /* The later families sum many rows (grad_gamma, grad_beta): raw bit
   * patterns (one word in 8) make nearly every long sum NaN or infinite,
   * which hides the order of the additions, so their inputs may ask for
   * finite values only.  The plain operations keep their fill. */
  c->finite = c->op >= OP_FWD_LS && (sp & 4);
}

/* ------------------------------------------------------------ byte ownership */

static uint16_t own[ARENA_CAP + 256]; /* bit i: byte belongs to object i's rows */

typedef void (*run_fn)(void *ctx, size_t lo, size_t n);

/* Call fn on each contiguous byte run of o's rows (o must fit).  Ignored
 * objects have none: the call must not touch them. */
static void for_each_run(const fz_case *c, const fz_obj *o, run_fn fn, void *ctx) {
  if (!o->present || o->ignored || o->null || !o->fits || o->lo == o->hi) return;
  if (!o->is_tensor) {
    fn(ctx, o->lo, o->hi - o->lo);
    return;
  }
  for (size_t b = 0; b < o->nsamp; b++)
    for (size_t t = 0; t < c->T; t++)
      fn(ctx, o->off + (b * o->t.sample_stride + t * o->t.seq_stride) * o->es, c->D * o->es);
}

typedef struct mark_ctx {
  uint16_t bit;
} mark_ctx;

FZ_NO_COV static void mark_run(void *ctx, size_t lo, size_t n) {
  const uint16_t bit = ((mark_ctx *)ctx)->bit;
  for (size_t i = 0; i < n; i++) own[lo + i] |= bit;
}

static void build_ownership(const fz_case *c) {
  memset(own, 0, c->used * sizeof own[0]);
  for (int i = 0; i < MAX_OBJ; i++) {
    mark_ctx m = {(uint16_t)(1u << i)};
    for_each_run(c, &c->obj[i], mark_run, &m);
  }
}

/* ------------------------------------------------------------ validity model */

int fz_combo_ok(int x, int f) {
  return (x == f && tu_dtype_size(x)) || (x == DP_F32 && (f == DP_BF16 || f == DP_F16));
}

static int identical(const fz_case *c, const fz_obj *a, const fz_obj *b) {
  return a->off == b->off && !a->null && !b->null && a->t.dtype == b->t.dtype && a->nsamp == b->nsamp &&
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
  if (o->nsamp > MAX_ROWS || c->T > MAX_ROWS || o->nsamp * c->T > MAX_ROWS) return 0;
  const size_t n = o->nsamp * c->T;
  size_t k = 0;
  for (size_t b = 0; b < o->nsamp; b++)
    for (size_t t = 0; t < c->T; t++) starts[k++] = b * o->t.sample_stride + t * o->t.seq_stride;
  qsort(starts, n, sizeof starts[0], cmp_size);
  for (size_t i = 1; i < n; i++)
    if (starts[i] - starts[i - 1] < c->D) return 1;
  return 0;
}

/* Kernel combos this build has, probed once through the public API, for
 * every family's .have (fuzz.h). */
static fz_combos combos;

const fz_combos *fz_have(void) {
  static int done;
  if (done) return &combos;
  done = 1;
  dp_params p;
  dp_params_init(&p);
  const dp_shape sh = {1, 1, 1};
  for (int x = 0; x < 3; x++) {
    for (int f = 0; f < 3; f++) {
      float g[1] = {1}, gg[1] = {0}, o[1] = {0}, a[1] = {0}, b[1] = {0};
      const dp_tensor to = {o, x, 1, 1}, tof = {o, f, 1, 1}, ta = {a, x, 1, 1}, tb = {b, f, 1, 1},
                      none = {NULL, x, 1, 1};
      combos.fwd[x][f] = dp_forward(&p, sh, to, ta, tb, NULL) == DP_OK;
      combos.fwdls[x][f] = dp_forward_ls(&p, sh, to, ta, tb, g, NULL) == DP_OK;
      combos.bwd[x][f] = dp_backward(&p, sh, tof, none, ta, NULL, 0) == DP_OK;
      combos.bwdls[x][f] = dp_backward_ls(&p, sh, tof, none, ta, tb, g, gg, NULL, 0) == DP_OK;
    }
    float a[1] = {0}, o[1] = {0};
    combos.scale[x] = dp_drop_path(&p, sh, (dp_tensor){o, x, 1, 1}, (dp_tensor){a, x, 1, 1}, NULL) == DP_OK;
  }
  return &combos;
}

int fz_params_valid(const fz_case *c) {
  if (c->params_null) return 0;
  const dp_params *p = &c->prm;
  if (isnan(p->drop_prob) || p->drop_prob < 0.0 || p->drop_prob > 1.0) return 0;
  if (p->mode != DP_MODE_ROW && p->mode != DP_MODE_BATCH && p->mode != DP_MODE_EXACT_K) return 0;
  if ((p->flags & ~3u) || p->flags == 3u) return 0;
  return p->num_threads >= 0;
}

typedef struct pair_ctx {
  uint16_t bit;
  int hit;
} pair_ctx;

static void pair_run(void *ctx, size_t lo, size_t n) {
  pair_ctx *p = (pair_ctx *)ctx;
  for (size_t i = 0; i < n && !p->hit; i++) p->hit = (own[lo + i] & p->bit) != 0;
}

/* An argument the call checks and that has bytes in the arena. */
static int in_arena(const fz_obj *o) { return o->present && !o->ignored && !o->null && o->lo != o->hi; }

/* The generic rules (every operation's arguments, in the header's order:
 * params; the operation's own rules; each tensor; the dtypes; each array;
 * overlaps; kernels), then the operation's own (def->expect). */
static int expect_of(const fz_case *c, const char **why) {
  const fz_opdef *def = c->def;
  int either = 0;
  *why = "";
  if (!fz_params_valid(c)) return *why = "params", EXPECT_FAIL;
  if (def->expect) {
    const int e = def->expect(c, why);
    if (e == EXPECT_FAIL) return EXPECT_FAIL;
    if (e == EXPECT_EITHER) either = 1;
  }
  const fz_obj *ob = c->obj;
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &ob[i];
    if (!o->present || o->ignored) continue;
    if (!o->is_tensor) {
      if (o->overflow && !o->null) return *why = "array size", EXPECT_FAIL;
      continue;
    }
    const int bad_stride = o->t.sample_stride < c->D || (c->T > 1 && o->t.seq_stride < c->D);
    if (o->optional && o->null) {
      /* An absent optional tensor: the header names no check of its dtype
       * or strides (the library skips them), so either outcome passes. */
      if (!tu_dtype_size(o->t.dtype) || bad_stride) either = 1;
      continue;
    }
    if (!tu_dtype_size(o->t.dtype)) return *why = "dtype", EXPECT_FAIL;
    if (bad_stride) return *why = "stride < D", EXPECT_FAIL;
    if (o->nsamp == 0 || c->D == 0) continue;
    if (o->null) return *why = "null", EXPECT_FAIL;
    if (o->overflow) return *why = "overflow", EXPECT_FAIL;
    if (o->nsamp > 1 && c->T > 1) {
      const u128 ss = o->t.sample_stride, ts = o->t.seq_stride;
      const int nested = ts >= (u128)(o->nsamp - 1) * ss + c->D || ss >= (u128)(c->T - 1) * ts + c->D;
      if (!nested) {
        if (o->is_output && rows_overlap(c, o)) return *why = "rows overlap", EXPECT_FAIL;
        either = 1; /* distinct rows the library may still refuse to walk */
      }
    }
  }
  if (def->x_role >= 0) {
    const int X = ob[def->x_role].t.dtype, F = ob[def->f_role].t.dtype;
    if (!fz_combo_ok(X, F)) return *why = "dtype combo", EXPECT_FAIL;
    for (int i = 0; i < MAX_OBJ; i++) {
      const fz_obj *o = &ob[i];
      if (!o->present || o->ignored || !o->is_tensor) continue;
      if (o->t.dtype == (def->role[i].cls == FZ_X ? X : F)) continue;
      if (o->optional && o->null) {
        either = 1; /* absent: see above */
        continue;
      }
      return *why = "dtype combo", EXPECT_FAIL;
    }
    if (def->have && !def->have(c)) either = 1;
  }
  /* Aliasing: an output may share bytes with another object only when the
   * contract allows it to be exactly that object. */
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &ob[i];
    if (!in_arena(o) || !o->is_output) continue;
    for (int j = 0; j < MAX_OBJ; j++) {
      const fz_obj *q = &ob[j];
      if (j == i || !in_arena(q)) continue;
      if (o->lo >= q->hi || q->lo >= o->hi) continue; /* extents disjoint */
      pair_ctx pc = {(uint16_t)(1u << j), 0};
      for_each_run(c, o, pair_run, &pc);
      const fz_role *ro = &def->role[i];
      int allowed = 0;
      if (o->is_tensor && q->is_tensor) allowed = (ro->may_be >> j & 1u) ? 2 : (ro->may_be_unspec >> j & 1u) ? 1 : 0;
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

FZ_NO_COV static void fill_arena(const fz_case *c, unsigned char *a) {
  static const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                                      0xffc12345u, 0x7f812345u, 0x00000001u, 0x807fffffu, 0x7f7fffffu};
  uint64_t s = c->fill_seed;
  for (size_t i = 0; i + 4 <= c->used; i += 4) {
    const uint64_t z = fz_mix64(s += 0x9E3779B97F4A7C15ull);
    uint32_t v;
    if (c->specials && (z & 31) < c->specials)
      v = specials[(z >> 8) % (sizeof specials / sizeof specials[0])];
    else
      v = tu_f32_bits((float)((double)(z >> 40) * 0x1p-22 - 2.0));
    if ((z >> 5 & 7) == 0 && !c->finite) v = (uint32_t)(z >> 32); /* raw bits: bf16/f16 patterns of all kinds */
    memcpy(a + i, &v, 4);
  }
  const fz_obj *sc = c->def->scales_in >= 0 ? &c->obj[c->def->scales_in] : NULL;
  if (sc && sc->present && !sc->null && sc->fits && sc->lo != sc->hi) {
    /* Saved scales look like the forward's: 0 or s, sometimes anything. */
    for (size_t b = 0; b < c->B; b++) {
      const uint64_t z = fz_mix64(s += 0x9E3779B97F4A7C15ull);
      float v = (z & 1) ? 0.0f : 1.25f;
      if ((z & 14) == 0) v = tu_bits_f32((uint32_t)(z >> 32));
      memcpy(a + sc->lo + 4 * b, &v, 4);
    }
  }
  if (c->def->fill) c->def->fill(c, a);
}

void *fz_ptr(const fz_obj *o, unsigned char *base) { return o->null ? NULL : base + o->off; }

void *fz_arg(const fz_obj *o, unsigned char *base) { return o->present ? fz_ptr(o, base) : NULL; }

dp_tensor fz_tensor(const fz_obj *o, unsigned char *base) {
  dp_tensor t = o->t;
  t.data = fz_ptr(o, base);
  return t;
}

static const fz_case *cur_case;

static void dump_case(const fz_case *c) {
  fprintf(stderr, "op=%s params=%s p=%a mode=%d sbk=%d nt=%d deft=%d flags=%#x seed=%#llx off=%#llx base=%#llx\n",
          c->def->name, c->params_null ? "NULL" : "set", c->prm.drop_prob, c->prm.mode, c->prm.scale_by_keep,
          c->prm.num_threads, c->default_threads, (unsigned)c->prm.flags, (unsigned long long)c->prm.seed,
          (unsigned long long)c->prm.offset, (unsigned long long)c->prm.sample_base);
  fprintf(stderr, "shape B=%zu T=%zu(seq=%zu) D=%zu call flags=%#x used=%zu misalign=%zu specials=%u%s\n", c->B,
          c->T, c->shape.seq, c->D, (unsigned)c->flags, c->used, c->misalign, c->specials,
          c->finite ? " finite" : "");
  if (c->def->dump) c->def->dump(c);
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &c->obj[i];
    if (!o->present) continue;
    fprintf(stderr,
            "  obj%d %s%s%s%s off=%zu null=%d dtype=%d ss=%zu ts=%zu es=%zu nsamp=%zu count=%llu fits=%d ovf=%d "
            "[%zu,%zu)\n",
            i, o->is_tensor ? "tensor" : "array", o->is_output ? " out" : " in", o->compact ? " compact" : "",
            o->ignored ? " ignored" : "", o->off, o->null, o->t.dtype, o->t.sample_stride, o->t.seq_stride, o->es,
            o->nsamp, o->count > UINT64_MAX ? ~0ull : (unsigned long long)o->count, o->fits, o->overflow, o->lo,
            o->hi);
  }
}

void fz_fail(const char *fmt, ...) {
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
  uint16_t bit;
} skip_ctx;

/* Poison the bytes of a run that belong to no object but `bit`. */
FZ_NO_COV static void poison_exclusive(void *ctx, size_t lo, size_t n) {
  const skip_ctx *s = (const skip_ctx *)ctx;
  size_t i = 0;
  while (i < n) {
    while (i < n && own[lo + i] != s->bit) i++;
    const size_t start = i;
    while (i < n && own[lo + i] == s->bit) i++;
    if (i > start) FZ_POISON(s->base + lo + start, i - start);
  }
}

void fz_poison_rows(const fz_case *c, unsigned char *base, int idx, const float *s) {
  const fz_obj *o = &c->obj[idx];
  if (!o->present || o->ignored || o->null || !o->fits || o->lo == o->hi) return;
  skip_ctx sc = {base, (uint16_t)(1u << idx)};
  for (size_t b = 0; b < o->nsamp; b++) {
    if (s && s[b] != 0.0f) continue;
    for (size_t t = 0; t < c->T; t++)
      poison_exclusive(&sc, o->off + (b * o->t.sample_stride + t * o->t.seq_stride) * o->es, c->D * o->es);
  }
}

static dp_status run_guarded(const fz_case *c, fz_buf *b, const float *s) {
  FZ_POISON(b->raw, b->span);
  for (int i = 0; i < MAX_OBJ; i++) for_each_run(c, &c->obj[i], unpoison_run, b->base);
  if (c->def->poison) c->def->poison(c, b->base, s);
  dp_set_num_threads(c->default_threads);
  const dp_status st = c->def->call(c, b->base);
  FZ_UNPOISON(b->raw, b->span);
  return st;
}

/* ------------------------------------------------------------ checking results */

int fz_live(const fz_case *c, int idx) {
  const fz_obj *o = &c->obj[idx];
  return o->present && !o->ignored && !o->null && o->fits && o->lo != o->hi;
}

FZ_NO_COV const unsigned char *fz_at(const fz_case *c, const unsigned char *base, int idx, size_t b, size_t t, size_t d) {
  const fz_obj *o = &c->obj[idx];
  return base + o->off + (b * o->t.sample_stride + t * o->t.seq_stride + d) * o->es;
}

FZ_NO_COV float fz_load(const fz_case *c, const unsigned char *base, int idx, size_t b, size_t t, size_t d) {
  return tu_load_elem(fz_at(c, base, idx, b, t, d), c->obj[idx].t.dtype);
}

FZ_NO_COV float fz_arr_f32(const fz_case *c, const unsigned char *base, int idx, size_t i) {
  float v;
  memcpy(&v, base + c->obj[idx].off + 4 * i, 4);
  return v;
}

FZ_NO_COV void fz_expect_f32(const fz_case *c, const unsigned char *got, int idx, size_t b, size_t t, size_t d, float want) {
  const float v = tu_load_elem(fz_at(c, got, idx, b, t, d), DP_F32);
  if (tu_f32_bits(v) != tu_f32_bits(want))
    fz_fail("obj%d[b=%zu t=%zu d=%zu] = %a (%#x), model says %a (%#x)", idx, b, t, d, (double)v, tu_f32_bits(v),
            (double)want, tu_f32_bits(want));
}

FZ_NO_COV void fz_expect_same(const fz_case *c, const unsigned char *init, const unsigned char *got, int idx, size_t b,
                    size_t t, size_t d, const char *what) {
  if (memcmp(fz_at(c, init, idx, b, t, d), fz_at(c, got, idx, b, t, d), c->obj[idx].es) != 0)
    fz_fail("obj%d[b=%zu t=%zu d=%zu] changed: %s", idx, b, t, d, what);
}

FZ_NO_COV void fz_check_scales_out(const fz_case *c, const unsigned char *got, int idx, const float *s) {
  if (!fz_live(c, idx)) return;
  for (size_t b = 0; b < c->B; b++) {
    const float v = fz_arr_f32(c, got, idx, b);
    if (tu_f32_bits(v) != tu_f32_bits(s[b])) fz_fail("scales_out[%zu] = %a, mask says %a", b, (double)v, (double)s[b]);
  }
}

float fz_keep(const fz_case *c) { return (float)(1.0 - c->prm.drop_prob); }

float fz_row_scale(const fz_case *c) {
  const float keep = fz_keep(c);
  return c->prm.scale_by_keep && keep > 0.0f ? 1.0f / keep : 1.0f;
}

float *fz_channel(const fz_case *c, const unsigned char *init, int idx) {
  if (!c->obj[idx].present || c->obj[idx].null) return NULL;
  float *g = (float *)malloc((c->D ? c->D : 1) * sizeof(float));
  if (!g) abort();
  if (c->D) memcpy(g, init + c->obj[idx].off, c->D * sizeof(float));
  return g;
}

size_t fz_ls_group_rows(const fz_case *c) {
  const size_t D = c->D, R = c->B * c->T;
  if (D == 0) return 1;
  size_t M = ((size_t)1 << 22) / D;
  if (M < 1) M = 1;
  if (M > 64) M = 64;
  size_t P = (((size_t)1 << 16) + D - 1) / D;
  if ((R + M - 1) / M > P) P = (R + M - 1) / M;
  return P;
}

FZ_NO_COV void fz_group_sum(const fz_case *c, size_t per, const float *s, fz_term_fn term, const void *ctx, const float *old,
                  int accumulate, float *out) {
  const size_t D = c->D, R = c->B * c->T;
  if (D == 0) return;
  float *part = (float *)malloc(D * sizeof(float));
  if (!part) abort();
  for (size_t d = 0; d < D; d++) out[d] = 0.0f; /* no rows: the sum is +0 */
  for (size_t r0 = 0, k = 0; r0 < R; r0 += per, k++) {
    for (size_t d = 0; d < D; d++) part[d] = 0.0f;
    for (size_t r = r0; r < r0 + per && r < R; r++) {
      const size_t b = r / c->T, t = r % c->T;
      if (s && s[b] == 0.0f) continue;
      for (size_t d = 0; d < D; d++) part[d] = part[d] + term(ctx, b, t, d);
    }
    for (size_t d = 0; d < D; d++) out[d] = k == 0 ? part[d] : out[d] + part[d];
  }
  for (size_t d = 0; d < D; d++) out[d] = fz_canon(accumulate ? old[d] + out[d] : out[d]);
  free(part);
}

FZ_NO_COV void fz_expect_channels(const fz_case *c, const unsigned char *got, int idx, const float *want, const char *what) {
  for (size_t d = 0; d < c->D; d++) {
    const float v = fz_arr_f32(c, got, idx, d);
    if (tu_f32_bits(v) != tu_f32_bits(want[d]))
      fz_fail("%s[%zu] = %a (%#x), model says %a (%#x)", what, d, (double)v, tu_f32_bits(v), (double)want[d],
              tu_f32_bits(want[d]));
  }
}

/* Bytes no output owns must be unchanged. */
FZ_NO_COV static void check_untouched(const fz_case *c, const unsigned char *init, const unsigned char *got, int all) {
  uint16_t outs = 0;
  for (int i = 0; i < MAX_OBJ; i++)
    if (c->obj[i].present && c->obj[i].is_output) outs |= (uint16_t)(1u << i);
  /* Blocks that compare equal need no look at their bytes (the arenas of
   * the multi-group shapes are megabytes, and ASan makes byte loops slow). */
  for (size_t lo = 0; lo < c->used; lo += 256) {
    const size_t n = c->used - lo < 256 ? c->used - lo : 256;
    if (memcmp(got + lo, init + lo, n) == 0) continue;
    for (size_t i = lo; i < lo + n; i++)
      if (got[i] != init[i] && (all || !(own[i] & outs)))
        fz_fail("byte %zu changed (%#x -> %#x), owners %#x, %s", i, init[i], got[i], own[i],
                all ? "call failed" : "not in any output row");
  }
}

/* For a failure report: which element a byte is, and the inputs there. */
FZ_NO_COV static void describe_byte(const fz_case *c, const unsigned char *init, size_t byte) {
  for (int i = 0; i < MAX_OBJ; i++) {
    const fz_obj *o = &c->obj[i];
    if (!(own[byte] & (1u << i)) || !o->is_tensor) continue;
    for (size_t b = 0; b < o->nsamp; b++)
      for (size_t t = 0; t < c->T; t++) {
        const size_t row = o->off + (b * o->t.sample_stride + t * o->t.seq_stride) * o->es;
        if (byte < row || byte >= row + c->D * o->es) continue;
        const size_t d = (byte - row) / o->es;
        fprintf(stderr, "  byte %zu is obj%d[b=%zu t=%zu d=%zu]; initial values there:", byte, i, b, t, d);
        for (int j = 0; j < MAX_OBJ; j++) {
          const fz_obj *q = &c->obj[j];
          if (!q->is_tensor || !fz_live(c, j) || b >= q->nsamp) continue;
          const unsigned char *e = fz_at(c, init, j, b, t, d);
          uint32_t v = 0;
          memcpy(&v, e, q->es);
          fprintf(stderr, " obj%d=%#x (%a)", j, v, (double)tu_load_elem(e, q->t.dtype));
        }
        fprintf(stderr, "\n");
      }
  }
}

/* Per-sample scales for the model: the operation's own rule, the saved
 * scales it reads, or the mask API's (the fuzzer checks data paths, test_rng
 * the mask).  NULL when there are none to check against. */
static float *model_scales(const fz_case *c, const unsigned char *init) {
  if (!fz_params_valid(c) || c->B > ARENA_CAP / 4) return NULL; /* larger: D == 0, nothing to check */
  float *s = (float *)malloc((c->B ? c->B : 1) * sizeof(float));
  if (!s) abort();
  const int si = c->def->scales_in;
  if (c->def->scales) {
    if (c->def->scales(c, init, s)) return s;
  } else if (si >= 0 && c->obj[si].present && !c->obj[si].null) {
    if (fz_live(c, si) || c->B == 0) {
      for (size_t b = 0; b < c->B; b++) s[b] = fz_arr_f32(c, init, si, b);
      return s;
    }
  } else {
    if (dp_mask(&c->prm, c->B, NULL, s, NULL, NULL) != DP_OK) fz_fail("dp_mask refused valid params");
    return s;
  }
  free(s);
  return NULL;
}

static void run_case(const fz_case *c) {
  unsigned char *init = (unsigned char *)malloc(c->used);
  if (!init) abort();
  fill_arena(c, init);
  const char *why;
  const int expect = expect_of(c, &why);
  int runnable = !(c->D != 0 && c->B > ((size_t)1 << 24));
  for (int i = 0; i < MAX_OBJ; i++)
    if (c->obj[i].present && !c->obj[i].fits) runnable = 0;
  if (!runnable && expect != EXPECT_FAIL) { /* cannot be run safely */
    free(init);
    return;
  }
  float *s = model_scales(c, init);

  if (dp_set_max_isa(DP_ISA_SCALAR) != DP_OK || dp_active_isa() != DP_ISA_SCALAR) fz_fail("cannot select scalar");
  fz_buf ref = buf_new(c, init);
  const dp_status st = run_guarded(c, &ref, s);
  if (getenv("FZ_DUMP"))
    fprintf(stderr, "  model: %s%s%s; scalar: %s\n", expect == EXPECT_FAIL ? "must fail" : expect == EXPECT_OK ? "must succeed" : "either",
            *why ? ", " : "", why, dp_status_string(st));
  if (expect == EXPECT_FAIL && st == DP_OK) fz_fail("call succeeded, model says it must fail (%s)", why);
  if (expect == EXPECT_OK && st != DP_OK)
    fz_fail("call failed with %s, model says it must succeed", dp_status_string(st));
  if (st != DP_OK) {
    check_untouched(c, init, ref.base, 1);
  } else {
    check_untouched(c, init, ref.base, 0);
    if (c->def->check) c->def->check(c, init, ref.base, s);
  }

  for (int isa = DP_ISA_SCALAR + 1; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa)) continue;
    if (dp_set_max_isa((dp_isa)isa) != DP_OK) fz_fail("cannot select %s", dp_isa_name((dp_isa)isa));
    if (dp_active_isa() != (dp_isa)isa) continue; /* DROPPATH_ISA caps it: a lower ISA ran already */
    fz_buf run = buf_new(c, init);
    const dp_status st2 = run_guarded(c, &run, s);
    if (st2 != st)
      fz_fail("%s returned %s, scalar %s", dp_isa_name((dp_isa)isa), dp_status_string(st2), dp_status_string(st));
    if (memcmp(run.base, ref.base, c->used) != 0)
      for (size_t i = 0; i < c->used; i++)
        if (run.base[i] != ref.base[i] && (describe_byte(c, init, i), 1))
          fz_fail("%s differs from scalar at byte %zu (%#x vs %#x, owners %#x)", dp_isa_name((dp_isa)isa), i,
                  run.base[i], ref.base[i], own[i]);
    free(run.raw);
  }
  free(ref.raw);
  free(init);
  free(s);
}

/* ------------------------------------------------------------ the plain operations */

/* Objects: out, x, f, scales_out (forward); out, x, -, scales_out (drop_path);
 * grad_f, grad_x, grad_out, scales (backward); keep_out, scales_out,
 * kept_count, kept_indices (mask). */

static void post_scales_array(fz_case *c, fz_reader *r, int with_array) {
  (void)r;
  c->obj[3].present = with_array;
}

static void post_bwd(fz_case *c, fz_reader *r, int with_array) {
  c->obj[3].present = with_array;
  const unsigned fl = (unsigned)fz_take(r, 1);
  c->flags = fl < 248 ? fl & 3u : 1u << (fl & 31);
}

static void placed_bwd(fz_case *c) {
  if (c->obj[1].null) c->obj[1].present = 0; /* grad_x absent */
}

static int expect_bwd(const fz_case *c, const char **why) {
  if (c->flags & ~3u) return *why = "bwd flags", EXPECT_FAIL;
  return EXPECT_OK;
}

static int have_fwd_combo(const fz_case *c) {
  return fz_have()->fwd[c->obj[1].t.dtype][c->obj[2].t.dtype];
}

static int have_drop_combo(const fz_case *c) {
  return fz_have()->scale[c->obj[1].t.dtype];
}

static int have_bwd_combo(const fz_case *c) {
  const fz_combos *h = fz_have();
  const int X = c->obj[2].t.dtype;
  return h->bwd[X][c->obj[0].t.dtype] && h->fwd[X][X];
}

static dp_status call_fwd(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_forward(c->params_null ? NULL : &c->prm, c->shape, fz_tensor(&o[0], base), fz_tensor(&o[1], base),
                    fz_tensor(&o[2], base), (float *)fz_arg(&o[3], base));
}

static dp_status call_infer(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_inference_add(c->params_null ? NULL : &c->prm, c->shape, fz_tensor(&o[0], base), fz_tensor(&o[1], base),
                          fz_tensor(&o[2], base));
}

static dp_status call_drop(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_drop_path(c->params_null ? NULL : &c->prm, c->shape, fz_tensor(&o[0], base), fz_tensor(&o[1], base),
                      (float *)fz_arg(&o[3], base));
}

static dp_status call_bwd(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  dp_tensor gx = {NULL, DP_F32, 0, 0};
  if (o[1].present) gx = fz_tensor(&o[1], base);
  return dp_backward(c->params_null ? NULL : &c->prm, c->shape, fz_tensor(&o[0], base), gx, fz_tensor(&o[2], base),
                     (const float *)fz_arg(&o[3], base), c->flags);
}

static dp_status call_mask(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_mask(c->params_null ? NULL : &c->prm, c->B, (uint8_t *)fz_arg(&o[0], base), (float *)fz_arg(&o[1], base),
                 (size_t *)fz_arg(&o[2], base), (size_t *)fz_arg(&o[3], base));
}

/* f of dropped samples is never read. */
static void poison_fwd(const fz_case *c, unsigned char *base, const float *s) {
  if (s) fz_poison_rows(c, base, 2, s);
}

/* x of dropped drop_path samples is never read. */
static void poison_drop(const fz_case *c, unsigned char *base, const float *s) {
  if (s) fz_poison_rows(c, base, 1, s);
}

/* With keep == 0 under Huang's rule f is not read. */
static void poison_infer(const fz_case *c, unsigned char *base, const float *s) {
  (void)s;
  if (!c->params_null && !c->prm.scale_by_keep && fz_keep(c) == 0.0f) fz_poison_rows(c, base, 2, NULL);
}

/* Independent models of each formula, for outputs stored as f32. */
FZ_NO_COV static void check_fwd(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s) return; /* only D == 0 gets here: nothing written */
  fz_check_scales_out(c, got, 3, s);
  if (c->obj[0].t.dtype != DP_F32) return;
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float x = fz_load(c, init, 1, b, t, d); /* a dropped branch copies x */
        fz_expect_f32(c, got, 0, b, t, d, s[b] != 0.0f ? fz_join(x, fz_load(c, init, 2, b, t, d), NULL, 0, s[b]) : x);
      }
}

FZ_NO_COV static void check_infer(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  (void)s;
  if (c->B > ARENA_CAP / 4 || c->obj[0].t.dtype != DP_F32) return; /* larger: D == 0, nothing written */
  const float sb = c->prm.scale_by_keep ? 1.0f : fz_keep(c);
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float x = fz_load(c, init, 1, b, t, d);
        fz_expect_f32(c, got, 0, b, t, d, sb != 0.0f ? fz_join(x, fz_load(c, init, 2, b, t, d), NULL, 0, sb) : x);
      }
}

FZ_NO_COV static void check_drop(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s) return;
  fz_check_scales_out(c, got, 3, s);
  if (c->obj[0].t.dtype != DP_F32) return;
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++)
        fz_expect_f32(c, got, 0, b, t, d, s[b] != 0.0f ? fz_canon(s[b] * fz_load(c, init, 1, b, t, d)) : 0.0f);
}

FZ_NO_COV static void check_bwd(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s) return;
  const int acc_f = (c->flags & DP_BWD_ACCUMULATE_GRAD_F) != 0, acc_x = (c->flags & DP_BWD_ACCUMULATE_GRAD_X) != 0;
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float g = fz_load(c, init, 2, b, t, d);
        if (c->obj[0].t.dtype == DP_F32) {
          const float old = fz_load(c, init, 0, b, t, d);
          float want = acc_f ? old : 0.0f;
          if (s[b] != 0.0f) want = fz_canon(acc_f ? old + s[b] * g : s[b] * g);
          fz_expect_f32(c, got, 0, b, t, d, want);
        }
        if (c->obj[1].present && c->obj[1].t.dtype == DP_F32)
          fz_expect_f32(c, got, 1, b, t, d, acc_x ? fz_canon(fz_load(c, init, 1, b, t, d) + g) : g);
      }
}

FZ_NO_COV static void check_mask(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  (void)init;
  if (!s) return;
  const fz_obj *o = c->obj;
  size_t kept = 0;
  for (size_t b = 0; b < c->B; b++) {
    const int k = s[b] != 0.0f;
    if (fz_live(c, 0) && got[o[0].off + b] != k) fz_fail("keep_out[%zu] wrong", b);
    if (fz_live(c, 1) && tu_f32_bits(fz_arr_f32(c, got, 1, b)) != tu_f32_bits(s[b])) fz_fail("scales_out[%zu] wrong", b);
    if (k && fz_live(c, 3)) {
      size_t idx;
      memcpy(&idx, got + o[3].off + sizeof(size_t) * kept, sizeof idx);
      if (idx != b) fz_fail("kept_indices[%zu] = %zu, want %zu", kept, idx, b);
    }
    kept += k;
  }
  if (fz_live(c, 2)) {
    size_t n;
    memcpy(&n, got + o[2].off, sizeof n);
    if (n != kept) fz_fail("kept_count = %zu, want %zu", n, kept);
  }
}

static const fz_opdef op_fwd = {
    .name = "forward",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .may_be = 1u << 1 | 1u << 2},
             FZ_T(FZ_X, 0), FZ_T(FZ_F, 0), FZ_A(FZ_N_SAMPLE, 4, 1)},
    .place_order = {1, 2, 0, 3, -1},
    .x_role = 1, .f_role = 2, .scales_in = -1,
    .post = post_scales_array, .have = have_fwd_combo, .call = call_fwd, .poison = poison_fwd, .check = check_fwd};

/* The header does not say whether out may be exactly x or f here. */
static const fz_opdef op_infer = {
    .name = "inference_add",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .may_be_unspec = 1u << 1 | 1u << 2},
             FZ_T(FZ_X, 0), FZ_T(FZ_F, 0)},
    .place_order = {1, 2, 0, -1},
    .x_role = 1, .f_role = 2, .scales_in = -1,
    .have = have_fwd_combo, .call = call_infer, .poison = poison_infer, .check = check_infer};

static const fz_opdef op_drop = {
    .name = "drop_path",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .may_be = 1u << 1}, FZ_T(FZ_X, 0), {.kind = FZ_NONE},
             FZ_A(FZ_N_SAMPLE, 4, 1)},
    .place_order = {1, 0, 3, -1},
    .x_role = 1, .f_role = 1, .scales_in = -1,
    .post = post_scales_array, .have = have_drop_combo, .call = call_drop, .poison = poison_drop,
    .check = check_drop};

static const fz_opdef op_bwd = {
    .name = "backward",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_F, .out = 1, .may_be = 1u << 2}, FZ_T(FZ_X, 1), FZ_T(FZ_X, 0),
             FZ_A(FZ_N_SAMPLE, 4, 0)},
    .place_order = {2, 3, 0, 1, -1},
    .x_role = 2, .f_role = 0, .scales_in = 3,
    .post = post_bwd, .placed = placed_bwd, .expect = expect_bwd, .have = have_bwd_combo, .call = call_bwd,
    .check = check_bwd};

static const fz_opdef op_mask = {
    .name = "mask",
    .role = {FZ_A(FZ_N_SAMPLE, 1, 1), FZ_A(FZ_N_SAMPLE, 4, 1), FZ_A(FZ_N_ONE, sizeof(size_t), 1),
             FZ_A(FZ_N_SAMPLE, sizeof(size_t), 1)},
    .place_order = {0, 1, 2, 3, -1},
    .x_role = -1, .f_role = -1, .scales_in = -1,
    .call = call_mask, .check = check_mask};

/* ------------------------------------------------------------ entry points */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fz_case c;
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
