/*
 * The error contract: for every public entry point, each class of bad
 * argument returns its documented status, and no output byte changes.
 *
 * Every buffer a call could write lives in one guarded arena of random data;
 * the arena is snapshotted before each call and compared after it, so "left
 * untouched" covers tensors, scales, mask outputs and rates alike.  Huge
 * shapes are described over a small real buffer: validation must reject them
 * before any access (if it did not, the call would fault or write the arena).
 * Each test starts with the valid call its cases are derived from and checks
 * that it does write, so an unchanged arena means something.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "droppath/droppath.h"
#include "test_util.h"

/* ---------------------------------------------------------------- the arena */

/* Regions of 64 floats (256 bytes); region 0 stays unused so that a pointer
 * a few elements before region 1 is still inside the arena. */
#define REGION_FLOATS 64
#define N_REGIONS 16
#define ARENA_BYTES (REGION_FLOATS * 4 * N_REGIONS)

static tu_buf arena;
static unsigned char snapshot[ARENA_BYTES];
static tu_rng rng;
static char ctx[200]; /* what the current check is about, for failure messages */
static unsigned long n_checks;

static void set_ctx(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
}

static float *region(int k) { return (float *)(void *)(arena.data + (size_t)k * REGION_FLOATS * 4); }

static void arena_fill(void) { tu_fill_floats(&rng, (float *)(void *)arena.data, ARENA_BYTES / 4, 0); }

static void snap(void) { memcpy(snapshot, arena.data, ARENA_BYTES); }

/* A pointer whose range wraps past the top of the address space.  It is
 * never dereferenced by a library that validates before it touches memory. */
static void *near_top(size_t bytes_below_top) { return (void *)(UINTPTR_MAX - (uintptr_t)bytes_below_top); }

static void expect_(dp_status want, dp_status got, const char *expr, int line) {
  n_checks++;
  if (got != want) {
    fprintf(stderr, "line %d [%s]: %s\n  returned %d (%s), expected %d (%s)\n", line, ctx, expr, (int)got,
            dp_status_string(got), (int)want, dp_status_string(want));
    fail();
  }
  if (want != DP_OK) {
    for (size_t i = 0; i < ARENA_BYTES; i++) {
      if (arena.data[i] != snapshot[i]) {
        fprintf(stderr, "line %d [%s]: %s\n  rejected with %s but changed arena byte %zu\n", line, ctx, expr,
                dp_status_string(got), i);
        fail();
      }
    }
  }
  if (!tu_guards_intact(&arena)) {
    fprintf(stderr, "line %d [%s]: %s\n  guard bytes around the arena overwritten\n", line, ctx, expr);
    fail();
  }
}

/* Snapshot, evaluate the call, compare: the comma operator orders the two. */
#define EXPECT(want, expr) expect_((want), (snap(), (expr)), #expr, __LINE__)

/* The valid call must return DP_OK and write the arena. */
#define EXPECT_WRITES(expr)                                                              \
  do {                                                                                   \
    EXPECT(DP_OK, expr);                                                                 \
    if (memcmp(snapshot, arena.data, ARENA_BYTES) == 0) {                                \
      fprintf(stderr, "line %d [%s]: %s wrote nothing\n", __LINE__, ctx, #expr);         \
      fail();                                                                            \
    }                                                                                    \
  } while (0)

static int setup(void **state) {
  (void)state;
  arena = tu_buf_alloc(ARENA_BYTES, 0);
  arena_fill();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_buf_free(&arena);
  fprintf(stderr, "[ checks   ] %lu calls checked\n", n_checks);
  return 0;
}

/* ---------------------------------------------------------------- tensor operations */

enum { OP_FWD, OP_INFER, OP_DROP, OP_BWD };
static const char *const op_names[] = {"dp_forward", "dp_inference_add", "dp_drop_path", "dp_backward"};
static const char *const role_names[4][3] = {
    {"out", "x", "f"}, {"out", "x", "f"}, {"out", "x", "-"}, {"grad_f", "grad_x", "grad_out"}};

/* B = 3 samples of T = 2 rows of D = 5: 30 elements, well inside a region. */
#define TB 3
#define TT 2
#define TD 5

typedef struct call {
  int op;
  int null_params;
  dp_params p;
  dp_shape s;
  dp_tensor t[3]; /* out/grad_f, x/grad_x, f/grad_out */
  float *sc;      /* scales_out (forward, drop_path) or scales (backward) */
  uint32_t bflags;
} call;

static int n_tensors(int op) { return op == OP_DROP ? 2 : 3; }

static call base_call(int op) {
  call c;
  memset(&c, 0, sizeof c);
  c.op = op;
  dp_params_init(&c.p);
  c.p.drop_prob = 0.25;
  c.p.seed = 7;
  c.s.batch = TB;
  c.s.seq = TT;
  c.s.dim = TD;
  for (int r = 0; r < 3; r++) c.t[r] = dp_tensor_dense(region(1 + r), DP_F32, c.s);
  if (op == OP_DROP) c.t[2].data = NULL;
  c.sc = op == OP_INFER ? NULL : region(4);
  return c;
}

static dp_status run(const call *c) {
  const dp_params *p = c->null_params ? NULL : &c->p;
  switch (c->op) {
    case OP_FWD: return dp_forward(p, c->s, c->t[0], c->t[1], c->t[2], c->sc);
    case OP_INFER: return dp_inference_add(p, c->s, c->t[0], c->t[1], c->t[2]);
    case OP_DROP: return dp_drop_path(p, c->s, c->t[0], c->t[1], c->sc);
    default: return dp_backward(p, c->s, c->t[0], c->t[1], c->t[2], c->sc, c->bflags);
  }
}

static float *fdata(const dp_tensor *t) { return (float *)t->data; }

static void params_cases(int op) {
  call c = base_call(op);
  set_ctx("%s: NULL params", op_names[op]);
  c.null_params = 1;
  EXPECT(DP_ERR_NULL_POINTER, run(&c));

  const double bad_p[] = {NAN, -NAN, -0.1, 1.0000001, INFINITY, -INFINITY, -DBL_MIN, -DBL_TRUE_MIN, 1.0 + DBL_EPSILON};
  for (size_t k = 0; k < sizeof bad_p / sizeof bad_p[0]; k++) {
    c = base_call(op);
    c.p.drop_prob = bad_p[k];
    set_ctx("%s: drop_prob %.17g", op_names[op], bad_p[k]);
    EXPECT(DP_ERR_BAD_PROBABILITY, run(&c));
  }
  const double good_p[] = {-0.0, 0.0, 1.0, DBL_TRUE_MIN, 1.0 - DBL_EPSILON / 2};
  for (size_t k = 0; k < sizeof good_p / sizeof good_p[0]; k++) {
    c = base_call(op);
    c.p.drop_prob = good_p[k];
    set_ctx("%s: drop_prob %.17g accepted", op_names[op], good_p[k]);
    EXPECT(DP_OK, run(&c));
  }
  const int bad_mode[] = {3, -1, 7, INT_MAX, INT_MIN};
  for (size_t k = 0; k < sizeof bad_mode / sizeof bad_mode[0]; k++) {
    c = base_call(op);
    c.p.mode = bad_mode[k];
    set_ctx("%s: mode %d", op_names[op], bad_mode[k]);
    EXPECT(DP_ERR_BAD_MODE, run(&c));
  }
  const uint32_t bad_flags[] = {1u << 2, 1u << 31, ~0u, DP_FLAG_STREAM_NEVER | DP_FLAG_STREAM_ALWAYS,
                                DP_FLAG_STREAM_NEVER | (1u << 5)};
  for (size_t k = 0; k < sizeof bad_flags / sizeof bad_flags[0]; k++) {
    c = base_call(op);
    c.p.flags = bad_flags[k];
    set_ctx("%s: flags %#x", op_names[op], bad_flags[k]);
    EXPECT(DP_ERR_BAD_FLAGS, run(&c));
  }
  const uint32_t good_flags[] = {0, DP_FLAG_STREAM_NEVER, DP_FLAG_STREAM_ALWAYS};
  for (size_t k = 0; k < 3; k++) {
    c = base_call(op);
    c.p.flags = good_flags[k];
    set_ctx("%s: flags %#x accepted", op_names[op], good_flags[k]);
    EXPECT(DP_OK, run(&c));
  }
  const int bad_threads[] = {-1, INT_MIN};
  for (size_t k = 0; k < 2; k++) {
    c = base_call(op);
    c.p.num_threads = bad_threads[k];
    set_ctx("%s: num_threads %d", op_names[op], bad_threads[k]);
    EXPECT(DP_ERR_BAD_ARGUMENT, run(&c));
  }
}

/* Mutations of one tensor's description. */
static void tensor_cases(int op, int r) {
  const char *name = role_names[op][r];
  const int optional = op == OP_BWD && r == 1; /* grad_x: NULL data means "absent" */
  call c = base_call(op);

  set_ctx("%s: %s.data NULL", op_names[op], name);
  c.t[r].data = NULL;
  EXPECT(optional ? DP_OK : DP_ERR_NULL_POINTER, run(&c));

  const int bad_dtype[] = {7, -1, 3, INT_MAX};
  for (size_t k = 0; k < sizeof bad_dtype / sizeof bad_dtype[0]; k++) {
    c = base_call(op);
    c.t[r].dtype = bad_dtype[k];
    set_ctx("%s: %s.dtype %d", op_names[op], name, bad_dtype[k]);
    EXPECT(DP_ERR_BAD_DTYPE, run(&c));
  }

  /* Strides too small for a row, or rows of one tensor overlapping. */
  const struct {
    size_t ss, ts;
    const char *what;
  } bad_stride[] = {
      {TD - 1, TD, "sample_stride < D"},
      {0, TD, "sample_stride 0"},
      {TT * TD, TD - 1, "seq_stride < D"},
      {TT * TD, 0, "seq_stride 0"},
      {TD, TD, "rows (b+1, t) and (b, t+1) coincide"},
      {7, 10, "rows interleave and overlap"},
      {TD + 1, TD + 2, "neither stride nests the other"},
      {(TT - 1) * TD + TD - 1, TD, "sample_stride one short of the sample"},
      {TD, (TB - 1) * TD + TD - 1, "seq-first seq_stride one short of the batch"},
  };
  for (size_t k = 0; k < sizeof bad_stride / sizeof bad_stride[0]; k++) {
    c = base_call(op);
    c.t[r].sample_stride = bad_stride[k].ss;
    c.t[r].seq_stride = bad_stride[k].ts;
    set_ctx("%s: %s %s (ss %zu, ts %zu)", op_names[op], name, bad_stride[k].what, bad_stride[k].ss,
            bad_stride[k].ts);
    EXPECT(DP_ERR_BAD_STRIDE, run(&c));
  }
  /* Exactly tight nestings are fine. */
  const size_t tight[][2] = {{TT * TD, TD}, {TD, TB * TD}, {TT * TD, (TB - 1) * TT * TD + TD}};
  for (size_t k = 0; k < 3; k++) {
    c = base_call(op);
    c.t[r].sample_stride = tight[k][0];
    c.t[r].seq_stride = tight[k][1];
    set_ctx("%s: %s tight strides (%zu, %zu) accepted", op_names[op], name, tight[k][0], tight[k][1]);
    EXPECT(DP_OK, run(&c));
  }
  /* seq_stride does not matter when T == 1; a sample stride may exceed D. */
  c = base_call(op);
  c.s.seq = 1;
  for (int i = 0; i < 3; i++) c.t[i].sample_stride = TD;
  c.t[r].seq_stride = 0;
  c.t[r].sample_stride = TD + 3;
  set_ctx("%s: %s seq_stride 0 with T == 1 accepted", op_names[op], name);
  EXPECT(DP_OK, run(&c));

  /* Byte counts that do not fit in size_t, described over the small buffer. */
  const struct {
    size_t ss, ts;
    const char *what;
  } huge[] = {
      {SIZE_MAX / 2, TD, "sample_stride SIZE_MAX/2 (element count overflows)"},
      {(SIZE_MAX >> 3) + 1, TD, "sample_stride 2^(w-3) (byte count overflows)"},
      {SIZE_MAX, TD, "sample_stride SIZE_MAX"},
      {TT * TD, SIZE_MAX / 3 + 1, "seq_stride SIZE_MAX/3 (byte count overflows)"},
      {TT * TD, SIZE_MAX, "seq_stride SIZE_MAX"},
  };
  for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
    c = base_call(op);
    c.t[r].sample_stride = huge[k].ss;
    c.t[r].seq_stride = huge[k].ts;
    set_ctx("%s: %s %s", op_names[op], name, huge[k].what);
    EXPECT(DP_ERR_SIZE_OVERFLOW, run(&c));
  }

  /* A first element off its size (f32: 4 bytes): rejected, whatever the ISA
   * would make of it (C makes an access through it undefined). */
  for (size_t off = 1; off < 4; off++) {
    c = base_call(op);
    c.t[r].data = (char *)c.t[r].data + off;
    set_ctx("%s: %s.data %zu bytes off a float", op_names[op], name, off);
    EXPECT(DP_ERR_MISALIGNED, run(&c));
  }
  c = base_call(op);
  for (int i = 0; i < 3; i++) c.t[i].dtype = DP_BF16;
  c.t[r].data = (char *)c.t[r].data + 2;
  set_ctx("%s: %s.data 2 bytes on, bf16, accepted", op_names[op], name);
  EXPECT(DP_OK, run(&c));
  c.t[r].data = (char *)c.t[r].data + 1;
  set_ctx("%s: %s.data 3 bytes on, bf16", op_names[op], name);
  EXPECT(DP_ERR_MISALIGNED, run(&c));

  /* 120 bytes starting 64 bytes below the top of the address space. */
  c = base_call(op);
  c.t[r].data = near_top(63);
  set_ctx("%s: %s address range wraps", op_names[op], name);
  EXPECT(DP_ERR_SIZE_OVERFLOW, run(&c));
  c.t[r].data = near_top(119);
  set_ctx("%s: %s address range ends exactly at 2^w", op_names[op], name);
  EXPECT(DP_ERR_SIZE_OVERFLOW, run(&c));
}

/* Shapes whose byte counts overflow for every tensor. */
static void shape_cases(int op) {
  const struct {
    size_t b, t, d, ss, ts;
    const char *what;
  } huge[] = {
      {SIZE_MAX / 2, TT, TD, TT * TD, TD, "B = SIZE_MAX/2"},
      {(SIZE_MAX >> 5) + 1, TT, TD, TT * TD, TD, "B = 2^(w-5): elements fit, bytes do not"},
      {SIZE_MAX, 1, 1, 1, 1, "B = SIZE_MAX, D = 1"},
      {TB, SIZE_MAX / 4, TD, TD, TB * TD, "T = SIZE_MAX/4"},
      {1, 1, (SIZE_MAX >> 2) + 1, (SIZE_MAX >> 2) + 1, 0, "D = 2^(w-2): elements fit, bytes do not"},
      {TB, 1, SIZE_MAX / 2, SIZE_MAX / 2, 0, "D = SIZE_MAX/2"},
  };
  for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
    call c = base_call(op);
    c.s.batch = huge[k].b;
    c.s.seq = huge[k].t;
    c.s.dim = huge[k].d;
    for (int r = 0; r < 3; r++) {
      c.t[r].sample_stride = huge[k].ss;
      c.t[r].seq_stride = huge[k].ts;
    }
    set_ctx("%s: %s", op_names[op], huge[k].what);
    EXPECT(DP_ERR_SIZE_OVERFLOW, run(&c));
  }
  /* Spans of 2^(w-1) bytes (B = 2^(w-3) f32 elements, and the scales too):
   * they fit in size_t and end below the top of the address space, so it is
   * the tensors' overlapping spans that reject the call.  Validation must
   * not form a pointer to the end of such a span: it lies more than
   * PTRDIFF_MAX bytes past the data, which UBSan reports (gcc's
   * pointer-overflow check, tools/sanitize.sh). */
  for (int bf16 = 0; bf16 < 2; bf16++) {
    call c = base_call(op);
    c.s.batch = (size_t)1 << (sizeof(size_t) * CHAR_BIT - 3 + bf16);
    c.s.seq = 1;
    c.s.dim = 1;
    for (int r = 0; r < 3; r++) {
      c.t[r].dtype = bf16 ? DP_BF16 : DP_F32;
      c.t[r].sample_stride = 1;
    }
    set_ctx("%s: B = 2^(w-%d) %s elements, spans of 2^(w-1) bytes", op_names[op], 3 - bf16, bf16 ? "bf16" : "f32");
    /* bf16: the B scales (2^w bytes) overflow first where the call has them. */
    EXPECT(bf16 && op != OP_INFER ? DP_ERR_SIZE_OVERFLOW : DP_ERR_OVERLAP, run(&c));
  }
}

/* Output `o` against another tensor `i`: partial overlap and the same
 * pointer with other strides are errors; exact identity only where allowed. */
static void overlap_pair_cases(int op, int o, int i, int identical_ok) {
  const char *on = role_names[op][o], *in = role_names[op][i];
  call c = base_call(op);
  c.t[o].data = fdata(&c.t[i]);
  set_ctx("%s: %s identical to %s", op_names[op], on, in);
  EXPECT(identical_ok ? DP_OK : DP_ERR_OVERLAP, run(&c));

  const ptrdiff_t shifts[] = {1, -1, TD, 29, -29};
  for (size_t k = 0; k < sizeof shifts / sizeof shifts[0]; k++) {
    c = base_call(op);
    c.t[o].data = fdata(&c.t[i]) + shifts[k];
    set_ctx("%s: %s = %s + %td elements", op_names[op], on, in, shifts[k]);
    EXPECT(DP_ERR_OVERLAP, run(&c));
  }
  /* Same pointer, other strides: not the same elements. */
  const size_t strides[][2] = {
      {TT * TD + 1, TD}, {TD, TB * TD}, {TT * TD + 2, TD + 1}, {TT * TD, (TB - 1) * TT * TD + TD}};
  for (size_t k = 0; k < sizeof strides / sizeof strides[0]; k++) {
    c = base_call(op);
    c.t[o].sample_stride = strides[k][0];
    c.t[o].seq_stride = strides[k][1];
    c.t[o].data = fdata(&c.t[i]);
    set_ctx("%s: %s = %s's pointer with strides (%zu, %zu)", op_names[op], on, in, strides[k][0], strides[k][1]);
    EXPECT(DP_ERR_OVERLAP, run(&c));
  }
  /* The same with the roles swapped: which one moved must not matter. */
  c = base_call(op);
  c.t[i].data = fdata(&c.t[o]) + 3;
  set_ctx("%s: %s = %s + 3 elements", op_names[op], in, on);
  EXPECT(DP_ERR_OVERLAP, run(&c));
}

/* The scales array off a float's alignment. */
static void scales_misaligned_cases(int op) {
  for (size_t off = 1; off < 4; off++) {
    call c = base_call(op);
    c.sc = (float *)(void *)((char *)c.sc + off);
    set_ctx("%s: scales %zu bytes off a float", op_names[op], off);
    EXPECT(DP_ERR_MISALIGNED, run(&c));
  }
}

/* The scales array against tensor r. */
static void scales_overlap_cases(int op, int r, dp_status want) {
  const char *name = role_names[op][r];
  const ptrdiff_t at[] = {0, 1, -2, 27, 29};
  for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
    call c = base_call(op);
    c.sc = fdata(&c.t[r]) + at[k];
    set_ctx("%s: scales at %s + %td elements", op_names[op], name, at[k]);
    EXPECT(want, run(&c));
  }
}

static void dtype_combo_cases(int op) {
  call c;
  if (op == OP_BWD) {
    c = base_call(op);
    c.t[1].dtype = DP_BF16;
    set_ctx("dp_backward: grad_x bf16, grad_out f32");
    EXPECT(DP_ERR_BAD_DTYPE, run(&c));
    c = base_call(op);
    c.t[2].dtype = DP_BF16;
    set_ctx("dp_backward: grad_out bf16, grad_f f32");
    EXPECT(DP_ERR_BAD_DTYPE, run(&c));
    c = base_call(op);
    c.t[0].dtype = DP_F16;
    c.t[2].dtype = DP_BF16;
    c.t[1].dtype = DP_BF16;
    set_ctx("dp_backward: grad_out bf16, grad_f f16");
    EXPECT(DP_ERR_BAD_DTYPE, run(&c));
    return;
  }
  c = base_call(op);
  c.t[0].dtype = DP_BF16;
  set_ctx("%s: out bf16, x f32", op_names[op]);
  EXPECT(DP_ERR_BAD_DTYPE, run(&c));
  c = base_call(op);
  c.t[0].dtype = DP_F16;
  set_ctx("%s: out f16, x f32", op_names[op]);
  EXPECT(DP_ERR_BAD_DTYPE, run(&c));
  if (op == OP_DROP) return;
  c = base_call(op);
  c.t[0].dtype = DP_BF16;
  c.t[1].dtype = DP_BF16;
  set_ctx("%s: x bf16, f f32", op_names[op]);
  EXPECT(DP_ERR_BAD_DTYPE, run(&c));
  c = base_call(op);
  c.t[0].dtype = DP_BF16;
  c.t[1].dtype = DP_BF16;
  c.t[2].dtype = DP_F16;
  set_ctx("%s: x bf16, f f16", op_names[op]);
  EXPECT(DP_ERR_BAD_DTYPE, run(&c));
}

static void op_contract(int op) {
  arena_fill();
  call c = base_call(op);
  set_ctx("%s: the valid call", op_names[op]);
  EXPECT_WRITES(run(&c));
  params_cases(op);
  for (int r = 0; r < n_tensors(op); r++) tensor_cases(op, r);
  shape_cases(op);
  dtype_combo_cases(op);
}

static void test_forward_contract(void **state) {
  (void)state;
  op_contract(OP_FWD);
  overlap_pair_cases(OP_FWD, 0, 1, 1);
  overlap_pair_cases(OP_FWD, 0, 2, 1);
  for (int r = 0; r < 3; r++) scales_overlap_cases(OP_FWD, r, DP_ERR_OVERLAP);
  scales_misaligned_cases(OP_FWD);
  /* Inputs may share memory. */
  call c = base_call(OP_FWD);
  c.t[2] = c.t[1];
  set_ctx("dp_forward: f identical to x accepted");
  EXPECT(DP_OK, run(&c));
}

static void test_inference_add_contract(void **state) {
  (void)state;
  op_contract(OP_INFER);
  overlap_pair_cases(OP_INFER, 0, 1, 1);
  overlap_pair_cases(OP_INFER, 0, 2, 1);
}

static void test_drop_path_contract(void **state) {
  (void)state;
  op_contract(OP_DROP);
  overlap_pair_cases(OP_DROP, 0, 1, 1);
  for (int r = 0; r < 2; r++) scales_overlap_cases(OP_DROP, r, DP_ERR_OVERLAP);
  scales_misaligned_cases(OP_DROP);
}

static void test_backward_contract(void **state) {
  (void)state;
  op_contract(OP_BWD);
  overlap_pair_cases(OP_BWD, 0, 2, 1); /* grad_f may be exactly grad_out */
  overlap_pair_cases(OP_BWD, 1, 2, 0); /* grad_x must not overlap anything */
  overlap_pair_cases(OP_BWD, 1, 0, 0);
  scales_overlap_cases(OP_BWD, 0, DP_ERR_OVERLAP);
  scales_overlap_cases(OP_BWD, 1, DP_ERR_OVERLAP);
  scales_overlap_cases(OP_BWD, 2, DP_OK); /* two inputs */
  scales_misaligned_cases(OP_BWD);

  const uint32_t bad[] = {1u << 2, 1u << 31, ~0u, DP_BWD_ACCUMULATE_GRAD_F | (1u << 7)};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    call c = base_call(OP_BWD);
    c.bflags = bad[k];
    set_ctx("dp_backward: flags %#x", bad[k]);
    EXPECT(DP_ERR_BAD_FLAGS, run(&c));
  }
  for (uint32_t f = 0; f < 4; f++) {
    call c = base_call(OP_BWD);
    c.bflags = f;
    set_ctx("dp_backward: flags %#x accepted", f);
    EXPECT(DP_OK, run(&c));
  }
  /* Without grad_x its strides and dtype are not looked at. */
  call c = base_call(OP_BWD);
  c.t[1].data = NULL;
  c.t[1].dtype = 99;
  c.t[1].sample_stride = 0;
  set_ctx("dp_backward: absent grad_x with garbage fields accepted");
  EXPECT(DP_OK, run(&c));
}

/* ---------------------------------------------------------------- dp_mask */

typedef struct mask_call {
  int null_params;
  dp_params p;
  size_t batch;
  uint8_t *keep;
  float *sc;
  size_t *cnt, *idx;
} mask_call;

static mask_call mask_base(void) {
  mask_call m;
  memset(&m, 0, sizeof m);
  dp_params_init(&m.p);
  m.p.drop_prob = 0.5;
  m.p.seed = 11;
  m.batch = 3;
  m.keep = (uint8_t *)region(5);
  m.sc = region(6);
  m.cnt = (size_t *)(void *)region(7);
  m.idx = (size_t *)(void *)region(8);
  return m;
}

static dp_status run_mask(const mask_call *m) {
  return dp_mask(m->null_params ? NULL : &m->p, m->batch, m->keep, m->sc, m->cnt, m->idx);
}

static void test_mask_contract(void **state) {
  (void)state;
  arena_fill();
  mask_call m = mask_base();
  set_ctx("dp_mask: the valid call");
  EXPECT_WRITES(run_mask(&m));
  /* Each output on its own is written (p = 0: every sample kept). */
  for (int k = 0; k < 4; k++) {
    m = mask_base();
    m.p.drop_prob = 0.0;
    if (k != 0) m.keep = NULL;
    if (k != 1) m.sc = NULL;
    if (k != 2) m.cnt = NULL;
    if (k != 3) m.idx = NULL;
    arena_fill();
    set_ctx("dp_mask: only output %d", k);
    EXPECT_WRITES(run_mask(&m));
  }

  m = mask_base();
  m.null_params = 1;
  set_ctx("dp_mask: NULL params");
  EXPECT(DP_ERR_NULL_POINTER, run_mask(&m));
  const double bad_p[] = {NAN, -0.1, 1.0000001, INFINITY, -INFINITY};
  for (size_t k = 0; k < sizeof bad_p / sizeof bad_p[0]; k++) {
    m = mask_base();
    m.p.drop_prob = bad_p[k];
    set_ctx("dp_mask: drop_prob %g", bad_p[k]);
    EXPECT(DP_ERR_BAD_PROBABILITY, run_mask(&m));
  }
  const double good_p[] = {-0.0, 0.0, 1.0};
  for (size_t k = 0; k < 3; k++) {
    m = mask_base();
    m.p.drop_prob = good_p[k];
    set_ctx("dp_mask: drop_prob %g accepted", good_p[k]);
    EXPECT(DP_OK, run_mask(&m));
  }
  m = mask_base();
  m.p.mode = 3;
  set_ctx("dp_mask: mode 3");
  EXPECT(DP_ERR_BAD_MODE, run_mask(&m));
  m = mask_base();
  m.p.mode = -1;
  set_ctx("dp_mask: mode -1");
  EXPECT(DP_ERR_BAD_MODE, run_mask(&m));
  m = mask_base();
  m.p.flags = 1u << 9;
  set_ctx("dp_mask: unknown flag");
  EXPECT(DP_ERR_BAD_FLAGS, run_mask(&m));
  m = mask_base();
  m.p.flags = DP_FLAG_STREAM_NEVER | DP_FLAG_STREAM_ALWAYS;
  set_ctx("dp_mask: contradictory stream flags");
  EXPECT(DP_ERR_BAD_FLAGS, run_mask(&m));
  m = mask_base();
  m.p.num_threads = -1;
  set_ctx("dp_mask: num_threads -1");
  EXPECT(DP_ERR_BAD_ARGUMENT, run_mask(&m));

  /* Sizes: each output alone, so the failing array is the one under test. */
  m = mask_base();
  m.keep = NULL;
  m.cnt = NULL;
  m.idx = NULL;
  m.batch = SIZE_MAX / 2;
  set_ctx("dp_mask: scales_out of SIZE_MAX/2 floats");
  EXPECT(DP_ERR_SIZE_OVERFLOW, run_mask(&m));
  m = mask_base();
  m.keep = NULL;
  m.cnt = NULL;
  m.sc = NULL;
  m.batch = (SIZE_MAX >> 3) + 1;
  set_ctx("dp_mask: kept_indices of 2^(w-3) entries");
  EXPECT(DP_ERR_SIZE_OVERFLOW, run_mask(&m));
  m = mask_base();
  m.sc = NULL;
  m.cnt = NULL;
  m.idx = NULL;
  m.batch = SIZE_MAX;
  set_ctx("dp_mask: keep_out of SIZE_MAX bytes wraps");
  EXPECT(DP_ERR_SIZE_OVERFLOW, run_mask(&m));
  m = mask_base();
  m.keep = (uint8_t *)near_top(1);
  set_ctx("dp_mask: keep_out range wraps");
  EXPECT(DP_ERR_SIZE_OVERFLOW, run_mask(&m));
  m = mask_base();
  m.cnt = (size_t *)near_top(7);
  set_ctx("dp_mask: kept_count range wraps");
  EXPECT(DP_ERR_SIZE_OVERFLOW, run_mask(&m));
  m = mask_base();
  m.idx = (size_t *)near_top(15);
  set_ctx("dp_mask: kept_indices range wraps");
  EXPECT(DP_ERR_SIZE_OVERFLOW, run_mask(&m));

  /* Outputs off their element's alignment (keep_out is bytes: any address). */
  m = mask_base();
  m.sc = (float *)(void *)((char *)m.sc + 2);
  set_ctx("dp_mask: scales_out 2 bytes off a float");
  EXPECT(DP_ERR_MISALIGNED, run_mask(&m));
  m = mask_base();
  m.cnt = (size_t *)(void *)((char *)m.cnt + 4);
  set_ctx("dp_mask: kept_count 4 bytes off a size_t");
  EXPECT(DP_ERR_MISALIGNED, run_mask(&m));
  m = mask_base();
  m.idx = (size_t *)(void *)((char *)m.idx + 1);
  set_ctx("dp_mask: kept_indices 1 byte off a size_t");
  EXPECT(DP_ERR_MISALIGNED, run_mask(&m));
  m = mask_base();
  m.keep = m.keep + 1;
  set_ctx("dp_mask: keep_out on any byte accepted");
  EXPECT(DP_OK, run_mask(&m));

  /* Outputs overlapping each other, every pair. */
  m = mask_base();
  unsigned char *const sc_b = (unsigned char *)m.sc, *const idx_b = (unsigned char *)m.idx;
  struct {
    int which;
    const char *what;
  } pairs[] = {{0, "keep_out = scales_out"},          {1, "keep_out on the last byte of scales_out"},
               {2, "keep_out inside kept_count"},     {3, "keep_out on the tail of kept_indices"},
               {4, "scales_out = kept_count"},        {5, "scales_out on the last entry of kept_indices"},
               {6, "kept_count on kept_indices[2]"},  {7, "kept_count = kept_indices"}};
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    m = mask_base();
    switch (pairs[k].which) {
      case 0: m.keep = (uint8_t *)m.sc; break;
      case 1: m.keep = (uint8_t *)sc_b + 3 * sizeof(float) - 1; break;
      case 2: m.keep = (uint8_t *)m.cnt - 2; break;
      case 3: m.keep = (uint8_t *)idx_b + 3 * sizeof(size_t) - 2; break;
      case 4: m.sc = (float *)(void *)m.cnt; break;
      case 5: m.sc = (float *)(void *)(idx_b + 3 * sizeof(size_t) - sizeof(float)); break;
      case 6: m.cnt = m.idx + 2; break;
      default: m.cnt = m.idx; break;
    }
    set_ctx("dp_mask: %s", pairs[k].what);
    EXPECT(DP_ERR_OVERLAP, run_mask(&m));
  }
  /* Batch 0: nothing to write except the count; NULL arrays fine. */
  m = mask_base();
  m.batch = 0;
  m.keep = NULL;
  m.sc = NULL;
  m.idx = NULL;
  set_ctx("dp_mask: batch 0");
  EXPECT(DP_OK, run_mask(&m));
}

/* ---------------------------------------------------------------- schedules */

static void test_drop_rates_contract(void **state) {
  (void)state;
  arena_fill();
  double *rates = (double *)(void *)region(10);
  set_ctx("dp_drop_rates: the valid call");
  EXPECT_WRITES(dp_drop_rates(DP_SCHEDULE_HUANG, 0.2, 8, rates));
  const int bad_rule[] = {5, -1, 99, INT_MAX};
  for (size_t k = 0; k < sizeof bad_rule / sizeof bad_rule[0]; k++) {
    set_ctx("dp_drop_rates: rule %d", bad_rule[k]);
    EXPECT(DP_ERR_BAD_ARGUMENT, dp_drop_rates((dp_schedule)bad_rule[k], 0.2, 8, rates));
  }
  const double bad_p[] = {NAN, -0.1, 1.0000001, INFINITY, -INFINITY};
  for (size_t k = 0; k < sizeof bad_p / sizeof bad_p[0]; k++) {
    set_ctx("dp_drop_rates: rate %g", bad_p[k]);
    EXPECT(DP_ERR_BAD_PROBABILITY, dp_drop_rates(DP_SCHEDULE_LINSPACE, bad_p[k], 8, rates));
  }
  const double good_p[] = {-0.0, 0.0, 1.0};
  for (size_t k = 0; k < 3; k++) {
    set_ctx("dp_drop_rates: rate %g accepted", good_p[k]);
    EXPECT(DP_OK, dp_drop_rates(DP_SCHEDULE_CONSTANT, good_p[k], 8, rates));
  }
  set_ctx("dp_drop_rates: NULL rates_out");
  EXPECT(DP_ERR_NULL_POINTER, dp_drop_rates(DP_SCHEDULE_LINSPACE, 0.2, 8, NULL));
  set_ctx("dp_drop_rates: depth 0, NULL rates_out");
  EXPECT(DP_OK, dp_drop_rates(DP_SCHEDULE_LINSPACE, 0.2, 0, NULL));
  set_ctx("dp_drop_rates: depth 2^(w-3)");
  EXPECT(DP_ERR_SIZE_OVERFLOW, dp_drop_rates(DP_SCHEDULE_LINSPACE, 0.2, (SIZE_MAX >> 3) + 1, rates));
  set_ctx("dp_drop_rates: rates_out range wraps");
  EXPECT(DP_ERR_SIZE_OVERFLOW, dp_drop_rates(DP_SCHEDULE_LINSPACE, 0.2, 8, (double *)near_top(31)));
  set_ctx("dp_drop_rates: rates_out 4 bytes off a double");
  EXPECT(DP_ERR_MISALIGNED, dp_drop_rates(DP_SCHEDULE_LINSPACE, 0.2, 8, (double *)(void *)((char *)rates + 4)));
}

static void test_drop_rates_stagewise_contract(void **state) {
  (void)state;
  arena_fill();
  double *rates = (double *)(void *)region(10);
  size_t *depths = (size_t *)(void *)region(12);
  depths[0] = 2;
  depths[1] = 3;
  depths[2] = 1;
  depths[3] = 2;
  set_ctx("dp_drop_rates_stagewise: the valid call");
  EXPECT_WRITES(dp_drop_rates_stagewise(0.3, depths, 4, rates));
  const double bad_p[] = {NAN, -0.1, 1.0000001, INFINITY, -INFINITY};
  for (size_t k = 0; k < sizeof bad_p / sizeof bad_p[0]; k++) {
    set_ctx("dp_drop_rates_stagewise: rate %g", bad_p[k]);
    EXPECT(DP_ERR_BAD_PROBABILITY, dp_drop_rates_stagewise(bad_p[k], depths, 4, rates));
  }
  set_ctx("dp_drop_rates_stagewise: NULL depths");
  EXPECT(DP_ERR_NULL_POINTER, dp_drop_rates_stagewise(0.3, NULL, 4, rates));
  set_ctx("dp_drop_rates_stagewise: NULL rates_out");
  EXPECT(DP_ERR_NULL_POINTER, dp_drop_rates_stagewise(0.3, depths, 4, NULL));
  set_ctx("dp_drop_rates_stagewise: depths 4 bytes off a size_t");
  EXPECT(DP_ERR_MISALIGNED, dp_drop_rates_stagewise(0.3, (size_t *)(void *)((char *)depths + 4), 4, rates));
  set_ctx("dp_drop_rates_stagewise: no stages");
  EXPECT(DP_OK, dp_drop_rates_stagewise(0.3, NULL, 0, NULL));

  size_t *big = (size_t *)(void *)region(14);
  big[0] = SIZE_MAX;
  big[1] = 1;
  set_ctx("dp_drop_rates_stagewise: depths sum overflows");
  EXPECT(DP_ERR_SIZE_OVERFLOW, dp_drop_rates_stagewise(0.3, big, 2, rates));
  big[0] = (SIZE_MAX >> 3) + 1;
  set_ctx("dp_drop_rates_stagewise: rates byte count overflows");
  EXPECT(DP_ERR_SIZE_OVERFLOW, dp_drop_rates_stagewise(0.3, big, 1, rates));
  set_ctx("dp_drop_rates_stagewise: n_stages byte count overflows");
  EXPECT(DP_ERR_SIZE_OVERFLOW, dp_drop_rates_stagewise(0.3, depths, (SIZE_MAX >> 3) + 1, rates));
  big[0] = 0;
  big[1] = 0;
  set_ctx("dp_drop_rates_stagewise: all stages empty, NULL rates_out");
  EXPECT(DP_OK, dp_drop_rates_stagewise(0.3, big, 2, NULL));

  set_ctx("dp_drop_rates_stagewise: rates_out = depths");
  EXPECT(DP_ERR_OVERLAP, dp_drop_rates_stagewise(0.3, depths, 4, (double *)(void *)depths));
  set_ctx("dp_drop_rates_stagewise: rates_out on depths[3]");
  EXPECT(DP_ERR_OVERLAP, dp_drop_rates_stagewise(0.3, depths, 4, (double *)(void *)(depths + 3)));
  set_ctx("dp_drop_rates_stagewise: rates_out ending on depths[0]");
  EXPECT(DP_ERR_OVERLAP, dp_drop_rates_stagewise(0.3, depths, 4, (double *)(void *)depths - 7));
}

/* ---------------------------------------------------------------- global settings */

static void test_dispatch_contract(void **state) {
  (void)state;
  const dp_isa before = dp_active_isa();
  const int bad[] = {DP_ISA_COUNT, -1, 77, INT_MAX, INT_MIN};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    assert_int_equal(dp_set_max_isa((dp_isa)bad[k]), DP_ERR_BAD_ISA);
    assert_int_equal(dp_active_isa(), before);
  }
  for (int i = 0; i < DP_ISA_COUNT; i++) {
    if (dp_isa_supported((dp_isa)i)) continue;
    assert_int_equal(dp_set_max_isa((dp_isa)i), DP_ERR_ISA_UNSUPPORTED);
    assert_int_equal(dp_active_isa(), before);
  }
  assert_int_equal(dp_set_num_threads(-1), DP_ERR_BAD_ARGUMENT);
  assert_int_equal(dp_set_num_threads(INT_MIN), DP_ERR_BAD_ARGUMENT);
  assert_int_equal(dp_set_num_threads(0), DP_OK);
}

int main(void) {
  tu_rng_init(&rng, tu_seed());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_contract),
      cmocka_unit_test(test_inference_add_contract),
      cmocka_unit_test(test_drop_path_contract),
      cmocka_unit_test(test_backward_contract),
      cmocka_unit_test(test_mask_contract),
      cmocka_unit_test(test_drop_rates_contract),
      cmocka_unit_test(test_drop_rates_stagewise_contract),
      cmocka_unit_test(test_dispatch_contract),
  };
  return cmocka_run_group_tests_name("contract", tests, setup, teardown) != 0;
}
