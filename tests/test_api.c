/*
 * API-level tests: every public operation against the plain reference
 * (reference.c), compared with memcmp over whole buffers (gaps between rows
 * and guard zones included), plus the properties the header promises:
 * in-place rules, dropped rows never read or written, mask reproducibility
 * across call splits and thread counts, streaming stores not changing bits.
 * Random cases are mostly f32; the rest use the bf16, f16 and mixed
 * (f32 residual, bf16/f16 branch) combinations.
 *
 * Every arithmetic NaN result is the canonical quiet NaN in every dtype (the
 * library's rule), so NaN inputs compare bit for bit too; copies (dropped
 * rows, grad_x = grad_out) keep their bits.
 *
 * The per-ISA group runs once for every ISA the CPU and build support, so
 * each dispatch path goes through all of it.  DP_TEST_SEED replays a run;
 * DP_TEST_ITERS sets the random cases per test (default 150; lower it under
 * emulation).
 */
#if defined(__linux__)
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c11 */
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#define HAVE_PAGE_GUARDS 1
#else
#define HAVE_PAGE_GUARDS 0
#endif

#include "droppath/droppath.h"
#include "reference.h"
#include "test_util.h"

/* ---------------------------------------------------------------- helpers */

static size_t base_iters(void) {
  const char *e = getenv("DP_TEST_ITERS");
  const long v = e && *e ? strtol(e, NULL, 0) : 150;
  return v > 0 ? (size_t)v : 1;
}

static size_t iters_div(size_t div) {
  const size_t n = base_iters() / div;
  return n ? n : 1;
}

/* Each test draws from its own stream so one test's cases don't depend on
 * which tests ran before it; the same cases run under every ISA. */
static tu_rng rng_for(const char *test_name) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = test_name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  tu_rng r;
  tu_rng_init(&r, tu_seed() ^ h);
  return r;
}


/* ---------------------------------------------------------------- one call, both sides */

enum { OP_FWD, OP_INFER, OP_DROP, OP_BWD, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"forward", "inference_add", "drop_path", "backward"};

/* Buffer roles.  R0: out / grad_f.  R1: x / grad_x (optional in backward).
 * R2: f / grad_out (absent in drop_path).  RS: B floats of scales (output of
 * forward and drop_path, input of backward; optional). */
enum { R0, R1, R2, RS, NROLES };
enum { SIDE_LIB, SIDE_REF };

typedef struct role {
  int present;
  int alias_of; /* -1, or the role whose buffer and strides this one shares */
  int dtype;
  size_t es; /* element size */
  size_t ss, ts, misalign, elems, bytes;
  tu_buf lib;
  unsigned char *ref, *init;
} role;

typedef struct api_case {
  int op;
  int xt, ft; /* dtypes of the residual stream (out, x, grad_out, grad_x) and the branch (f, grad_f) */
  dp_params p;
  dp_shape shape;
  uint32_t bflags;
  int scales_other_seed; /* backward: scales given come from another seed */
  int scales_in_runs;    /* backward: scales given are hand-made runs (see fill_scale_runs) */
  role r[NROLES];
} api_case;

static size_t rows_of(dp_shape s) { return s.seq ? s.seq : 1; }

static const char *dtype_name(int t) { return t == DP_F32 ? "f32" : t == DP_BF16 ? "bf16" : "f16"; }

static void describe(const api_case *c) {
  fprintf(stderr,
          "  case: %s x:%s f:%s B=%zu T=%zu D=%zu p=%.17g mode=%d scale_by_keep=%d seed=%#llx offset=%#llx "
          "sample_base=%#llx threads=%d flags=%#x bflags=%#x\n",
          op_names[c->op], dtype_name(c->xt), dtype_name(c->ft), c->shape.batch, c->shape.seq, c->shape.dim,
          c->p.drop_prob, c->p.mode, c->p.scale_by_keep, (unsigned long long)c->p.seed, (unsigned long long)c->p.offset,
          (unsigned long long)c->p.sample_base, c->p.num_threads, c->p.flags, c->bflags);
  for (int i = 0; i < NROLES; i++) {
    const role *r = &c->r[i];
    if (!r->present) continue;
    fprintf(stderr, "  role %d: alias_of=%d ss=%zu ts=%zu misalign=%zu elems=%zu\n", i, r->alias_of,
            r->ss, r->ts, r->misalign, r->elems);
  }
}

static double pick_prob(tu_rng *rng) {
  static const double fixed[] = {0.0, 0.1, 0.5, 1.0, 0.1, 0.5};
  const size_t k = tu_range(rng, 0, 7);
  if (k < 6) return fixed[k];
  return (double)(tu_next(rng) >> 11) * 0x1p-53;
}

/* A random layout for one tensor: dense [B][T][D], seq-first [T][B][D], or
 * either with rows padded beyond D and extra gaps between blocks. */
static void pick_layout(tu_rng *rng, dp_shape s, size_t *ss, size_t *ts) {
  const size_t T = rows_of(s);
  const int padded = tu_range(rng, 0, 2) == 0;
  const int seq_first = tu_range(rng, 0, 1) == 1;
  if (!padded) {
    const dp_tensor t = seq_first ? dp_tensor_seq_first(NULL, DP_F32, s) : dp_tensor_dense(NULL, DP_F32, s);
    *ss = t.sample_stride;
    *ts = t.seq_stride;
  } else {
    const size_t row = s.dim + tu_range(rng, 1, 7);
    const size_t gap = tu_range(rng, 0, 1) ? tu_range(rng, 1, 9) : 0;
    if (seq_first) {
      *ss = row;
      *ts = s.batch * row + gap;
    } else {
      *ts = row;
      *ss = T * row + gap;
    }
  }
  if (T == 1 && tu_range(rng, 0, 3) == 0) *ts = tu_range(rng, 0, 2); /* ignored when T == 1 */
}

static dp_shape pick_shape(tu_rng *rng) {
  static const size_t seqs[] = {0, 1, 1, 1, 2, 3, 5};
  dp_shape s;
  const size_t kb = tu_range(rng, 0, 9);
  s.batch = kb < 7 ? tu_range(rng, 1, 9) : tu_range(rng, 10, 40);
  s.seq = seqs[tu_range(rng, 0, 6)];
  const size_t kd = tu_range(rng, 0, 9);
  s.dim = kd < 6 ? tu_range(rng, 1, 40) : kd < 9 ? tu_range(rng, 41, 300) : tu_range(rng, 301, 2100);
  return s;
}

/* Which dtype each role has: X for the residual stream, F for the branch. */
static int role_dtype(const api_case *c, int i) {
  if (i == RS) return DP_F32;
  if (c->op == OP_BWD) return i == R0 ? c->ft : c->xt;
  return i == R2 ? c->ft : c->xt;
}

static void set_role(tu_rng *rng, api_case *c, int i) {
  role *r = &c->r[i];
  r->present = 1;
  r->alias_of = -1;
  r->dtype = role_dtype(c, i);
  r->es = ref_dtype_size(r->dtype);
  if (i == RS) {
    r->ss = r->ts = 0;
    r->elems = c->shape.batch;
  } else {
    pick_layout(rng, c->shape, &r->ss, &r->ts);
  }
  r->misalign = r->es * tu_range(rng, 0, 64 / r->es - 1);
}

/* Mostly f32; otherwise one of the other combinations the API accepts
 * (drop_path has no branch, so only the uniform ones). */
static void pick_dtypes(tu_rng *rng, api_case *c) {
  static const int combos[][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16},
                                  {DP_F32, DP_BF16}, {DP_F32, DP_F16}};
  size_t k = tu_range(rng, 0, 1) ? 0 : tu_range(rng, 0, 4);
  if (c->op == OP_DROP && k > 2) k -= 2;
  c->xt = combos[k][0];
  c->ft = combos[k][1];
}

static void case_random(api_case *c, tu_rng *rng, int op) {
  memset(c, 0, sizeof *c);
  c->op = op;
  pick_dtypes(rng, c);
  dp_params_init(&c->p);
  c->p.drop_prob = pick_prob(rng);
  static const int modes[] = {DP_MODE_BATCH, DP_MODE_EXACT_K, DP_MODE_ROW, DP_MODE_ROW, DP_MODE_ROW};
  c->p.mode = modes[tu_range(rng, 0, 4)];
  c->p.scale_by_keep = tu_range(rng, 0, 2) != 0;
  c->p.seed = tu_next(rng);
  c->p.offset = tu_range(rng, 0, 1) ? tu_next(rng) : tu_range(rng, 0, 100);
  /* Sometimes near 2^64 so sample_base + b wraps inside the call. */
  c->p.sample_base = tu_range(rng, 0, 5) == 0 ? UINT64_MAX - tu_range(rng, 0, 20) : tu_range(rng, 0, 1000);
  /* Mostly the default; explicit thread teams on tiny calls cost a fork/join
   * each, which dominates the run time on a loaded machine. */
  static const int thread_set[] = {0, 0, 0, 0, 0, 1, 1, 2, 3};
  c->p.num_threads = thread_set[tu_range(rng, 0, 8)];
  static const uint32_t flag_set[] = {0, DP_FLAG_STREAM_NEVER, DP_FLAG_STREAM_ALWAYS};
  c->p.flags = flag_set[tu_range(rng, 0, 2)];
  c->shape = pick_shape(rng);
  for (int i = 0; i < NROLES; i++) c->r[i].alias_of = -1;
  set_role(rng, c, R0);
  switch (op) {
    case OP_FWD:
    case OP_INFER:
      set_role(rng, c, R1);
      set_role(rng, c, R2);
      if (tu_range(rng, 0, 3) == 0) c->r[R0].alias_of = (int)tu_range(rng, R1, R2);
      if (c->r[R0].alias_of == R2 && c->xt != c->ft) c->r[R0].alias_of = R1; /* identical needs one dtype */
      if (op == OP_FWD && tu_range(rng, 0, 1)) set_role(rng, c, RS);
      break;
    case OP_DROP:
      set_role(rng, c, R1);
      if (tu_range(rng, 0, 3) == 0) c->r[R0].alias_of = R1;
      if (tu_range(rng, 0, 1)) set_role(rng, c, RS);
      break;
    default:
      if (tu_range(rng, 0, 2) != 0) set_role(rng, c, R1);
      set_role(rng, c, R2);
      if (tu_range(rng, 0, 3) == 0 && c->xt == c->ft) c->r[R0].alias_of = R2;
      if (tu_range(rng, 0, 1)) {
        set_role(rng, c, RS);
        c->scales_other_seed = (int)tu_range(rng, 0, 1);
      }
      c->bflags = (uint32_t)tu_range(rng, 0, 3);
      break;
  }
}

/* Random values (with the occasional zero, inf, NaN, subnormal) in any dtype. */
static void fill_elems(tu_rng *rng, unsigned char *p, int dtype, size_t n) {
  if (dtype == DP_F32) {
    tu_fill_floats(rng, (float *)(void *)p, n, 1);
    return;
  }
  float v[64];
  for (size_t i = 0; i < n; i += 64) {
    const size_t m = n - i < 64 ? n - i : 64;
    tu_fill_floats(rng, v, m, 1);
    for (size_t k = 0; k < m; k++) {
      const uint16_t h = dtype == DP_BF16 ? ref_f32_to_bf16(v[k]) : ref_f32_to_f16(v[k]);
      memcpy(p + 2 * (i + k), &h, 2);
    }
  }
}

/* Runs of 1-4 equal scales from a palette of values that compare equal
 * (+0 and -0), never do (NaN), or are merely unusual (inf, a subnormal):
 * what a caller may pass to dp_backward. The library joins adjacent rows
 * with equal scales into one kernel call; the results must not show it. */
static void fill_scale_runs(tu_rng *rng, float *s, size_t n) {
  static const float palette[] = {0.5f, 2.0f, 1.0f, 0.0f, -0.0f, NAN, INFINITY, 0x1p-140f, 1.25f, -3.0f};
  for (size_t i = 0; i < n;) {
    const float v = palette[tu_range(rng, 0, sizeof palette / sizeof palette[0] - 1)];
    for (size_t k = tu_range(rng, 1, 4); k > 0 && i < n; k--) s[i++] = v;
  }
}

/* Allocate and fill every buffer; the library side, the reference side and a
 * pristine copy (for re-running) start identical. */
static void case_alloc(api_case *c, tu_rng *rng) {
  for (int i = 0; i < NROLES; i++) {
    role *r = &c->r[i];
    if (!r->present || r->alias_of >= 0) continue;
    if (i != RS) {
      const dp_tensor t = {NULL, r->dtype, r->ss, r->ts};
      r->elems = ref_span_elems(&t, c->shape);
    } else {
      r->elems = c->shape.batch;
    }
    r->bytes = r->elems * r->es;
    r->lib = tu_buf_alloc(r->bytes, r->misalign);
    if (i == RS && c->op == OP_BWD && c->scales_in_runs) {
      fill_scale_runs(rng, (float *)(void *)r->lib.data, c->shape.batch);
    } else if (i == RS && c->op == OP_BWD) {
      dp_params q = c->p;
      if (c->scales_other_seed) q.seed ^= 0x5bd1e995u;
      ref_mask(&q, c->shape.batch, NULL, (float *)(void *)r->lib.data, NULL, NULL);
    } else {
      fill_elems(rng, r->lib.data, r->dtype, r->elems);
    }
    r->ref = (unsigned char *)malloc(r->bytes ? r->bytes : 1);
    r->init = (unsigned char *)malloc(r->bytes ? r->bytes : 1);
    assert_non_null(r->ref);
    assert_non_null(r->init);
    memcpy(r->ref, r->lib.data, r->bytes);
    memcpy(r->init, r->lib.data, r->bytes);
  }
}

static void case_reset(api_case *c) {
  for (int i = 0; i < NROLES; i++) {
    role *r = &c->r[i];
    if (r->present && r->alias_of < 0) memcpy(r->lib.data, r->init, r->bytes);
  }
}

static void case_free(api_case *c) {
  for (int i = 0; i < NROLES; i++) {
    role *r = &c->r[i];
    if (!r->present || r->alias_of >= 0) continue;
    tu_buf_free(&r->lib);
    free(r->ref);
    free(r->init);
    r->ref = r->init = NULL;
  }
}

static unsigned char *role_base(const api_case *c, int i, int side) {
  const role *r = &c->r[i];
  return side == SIDE_LIB ? r->lib.data : r->ref;
}

/* The view of role i on one side, starting at element `off` of its buffer. */
static dp_tensor view(const api_case *c, int i, int side, size_t off) {
  if (!c->r[i].present) {
    const dp_tensor none = {NULL, DP_F32, 0, 0};
    return none;
  }
  const int src = c->r[i].alias_of >= 0 ? c->r[i].alias_of : i;
  const role *r = &c->r[src];
  const dp_tensor t = {role_base(c, src, side) + off * r->es, r->dtype, r->ss, r->ts};
  return t;
}

/* Run the case's operation on samples [b0, b0+nb) and elements [d0, d0+nd)
 * of each row, the way a caller's own thread pool would split it: data
 * pointers advanced, sample_base advanced by b0.  The reference side always
 * runs the whole call. */
static dp_status case_call_part(const api_case *c, const dp_params *params, size_t b0, size_t nb, size_t d0,
                                size_t nd) {
  dp_params p = *params;
  p.sample_base += b0;
  const dp_shape s = {nb, c->shape.seq, nd};
  dp_tensor t[3];
  for (int i = 0; i < 3; i++) {
    const int src = c->r[i].alias_of >= 0 ? c->r[i].alias_of : i;
    t[i] = view(c, i, SIDE_LIB, b0 * c->r[src].ss + d0);
  }
  float *sc = c->r[RS].present ? (float *)(void *)role_base(c, RS, SIDE_LIB) + b0 : NULL;
  switch (c->op) {
    case OP_FWD: return dp_forward(&p, s, t[R0], t[R1], t[R2], sc);
    case OP_INFER: return dp_inference_add(&p, s, t[R0], t[R1], t[R2]);
    case OP_DROP: return dp_drop_path(&p, s, t[R0], t[R1], sc);
    default: return dp_backward(&p, s, t[R0], t[R1], t[R2], sc, c->bflags);
  }
}

static dp_status case_call_lib(const api_case *c, const dp_params *params) {
  return case_call_part(c, params, 0, c->shape.batch, 0, c->shape.dim);
}

static void case_call_ref(const api_case *c) {
  const dp_tensor out = view(c, R0, SIDE_REF, 0), a = view(c, R1, SIDE_REF, 0), b = view(c, R2, SIDE_REF, 0);
  float *sc = c->r[RS].present ? (float *)(void *)role_base(c, RS, SIDE_REF) : NULL;
  switch (c->op) {
    case OP_FWD: ref_forward(&c->p, c->shape, out, a, b, sc); break;
    case OP_INFER: ref_inference_add(&c->p, c->shape, out, a, b); break;
    case OP_DROP: ref_drop_path(&c->p, c->shape, out, a, sc); break;
    default: ref_backward(&c->p, c->shape, out, a, b, sc, c->bflags); break;
  }
}

/* Every buffer of the library side equals the reference side byte for byte
 * (outputs computed alike, inputs and gaps untouched) and no guard moved. */
static void case_check(const api_case *c, const char *what) {
  for (int i = 0; i < NROLES; i++) {
    const role *r = &c->r[i];
    if (!r->present || r->alias_of >= 0) continue;
    if (!tu_guards_intact(&r->lib)) {
      fprintf(stderr, "[%s] role %d: guard bytes overwritten\n", what, i);
      describe(c);
      fail();
    }
    if (memcmp(r->lib.data, r->ref, r->bytes) == 0) continue;
    for (size_t e = 0; e < r->elems; e++) {
      uint32_t a = 0, b = 0;
      memcpy(&a, r->lib.data + r->es * e, r->es);
      memcpy(&b, r->ref + r->es * e, r->es);
      if (a == b) continue;
      fprintf(stderr, "[%s] role %d (%s) element %zu: library %#x, reference %#x\n", what, i,
              dtype_name(r->dtype), e, a, b);
      break;
    }
    describe(c);
    fail();
  }
}

/* The common pattern: one library call vs the reference. */
static void run_case(api_case *c, tu_rng *rng, const char *what) {
  case_alloc(c, rng);
  const dp_status st = case_call_lib(c, &c->p);
  if (st != DP_OK) {
    fprintf(stderr, "[%s] status %d (%s)\n", what, (int)st, dp_status_string(st));
    describe(c);
    fail();
  }
  case_call_ref(c);
  case_check(c, what);
  case_free(c);
}

/* ---------------------------------------------------------------- once: metadata, dispatch, reference */

static void test_version(void **state) {
  (void)state;
  assert_int_equal(dp_version_number(), DP_VERSION_NUMBER);
  assert_int_equal(DP_VERSION_NUMBER, DP_VERSION_MAJOR * 10000 + DP_VERSION_MINOR * 100 + DP_VERSION_PATCH);
  assert_string_equal(dp_version_string(), DP_VERSION_STRING);
  char buf[64];
  snprintf(buf, sizeof buf, "%d.%d.%d", DP_VERSION_MAJOR, DP_VERSION_MINOR, DP_VERSION_PATCH);
  assert_string_equal(dp_version_string(), buf);
}

static void test_status_strings(void **state) {
  (void)state;
  const char *s[DP_ERR_NO_MEMORY + 1];
  for (int i = DP_OK; i <= DP_ERR_NO_MEMORY; i++) {
    s[i] = dp_status_string((dp_status)i);
    assert_non_null(s[i]);
    assert_true(s[i][0] != '\0');
    for (int j = 0; j < i; j++) assert_string_not_equal(s[i], s[j]);
  }
  assert_non_null(dp_status_string((dp_status)99));
  assert_non_null(dp_status_string((dp_status)-1));
}

static void test_isa_names(void **state) {
  (void)state;
  static const char *const names[DP_ISA_COUNT] = {"scalar", "sse2", "avx2", "avx512", "neon"};
  for (int i = 0; i < DP_ISA_COUNT; i++) assert_string_equal(dp_isa_name((dp_isa)i), names[i]);
  assert_string_equal(dp_isa_name(DP_ISA_COUNT), "unknown");
  assert_string_equal(dp_isa_name((dp_isa)-1), "unknown");
  assert_true(dp_isa_supported(DP_ISA_SCALAR));
  assert_false(dp_isa_supported(DP_ISA_COUNT));
  assert_false(dp_isa_supported((dp_isa)-1));
  /* x86 and Arm ISAs never coexist. */
  assert_false(dp_isa_supported(DP_ISA_NEON) && dp_isa_supported(DP_ISA_SSE2));
  assert_true(dp_isa_supported(dp_active_isa()));
}


static void test_set_max_isa(void **state) {
  (void)state;
  const dp_isa initial = dp_active_isa();
  const char *env = getenv("DROPPATH_ISA");
  const int env_narrows = env && *env;
  for (int i = 0; i < DP_ISA_COUNT; i++) {
    const dp_isa before = dp_active_isa();
    const dp_status st = dp_set_max_isa((dp_isa)i);
    if (dp_isa_supported((dp_isa)i)) {
      assert_int_equal(st, DP_OK);
      const dp_isa now = dp_active_isa();
      assert_true(dp_isa_supported(now));
      assert_true(tu_isa_le(now, (dp_isa)i));
      if (!env_narrows) assert_int_equal(now, i);
    } else {
      assert_int_equal(st, DP_ERR_ISA_UNSUPPORTED);
      assert_int_equal(dp_active_isa(), before);
    }
  }
  const int bad[] = {DP_ISA_COUNT, -1, 100, INT_MAX, INT_MIN};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    const dp_isa before = dp_active_isa();
    assert_int_equal(dp_set_max_isa((dp_isa)bad[k]), DP_ERR_BAD_ISA);
    assert_int_equal(dp_active_isa(), before);
  }
  /* Raising the cap again restores the best ISA. */
  assert_int_equal(dp_set_max_isa(DP_ISA_SCALAR), DP_OK);
  assert_int_equal(dp_active_isa(), DP_ISA_SCALAR);
  assert_int_equal(dp_set_max_isa(initial), DP_OK);
  assert_int_equal(dp_active_isa(), initial);
}

static void test_set_num_threads(void **state) {
  (void)state;
  assert_int_equal(dp_set_num_threads(-1), DP_ERR_BAD_ARGUMENT);
  assert_int_equal(dp_set_num_threads(INT_MIN), DP_ERR_BAD_ARGUMENT);
  assert_int_equal(dp_set_num_threads(1), DP_OK);
  assert_int_equal(dp_set_num_threads(3), DP_OK);
  assert_int_equal(dp_set_num_threads(1000), DP_OK);
  assert_int_equal(dp_set_num_threads(0), DP_OK);
  assert_true(dp_has_openmp() == 0 || dp_has_openmp() == 1);
}

static void test_params_init_and_views(void **state) {
  (void)state;
  dp_params p;
  memset(&p, 0xA5, sizeof p);
  dp_params_init(&p);
  assert_true(p.drop_prob == 0.0 && !signbit(p.drop_prob));
  assert_true(p.seed == 0 && p.offset == 0 && p.sample_base == 0);
  assert_int_equal(p.mode, DP_MODE_ROW);
  assert_int_equal(p.scale_by_keep, 1);
  assert_int_equal(p.num_threads, 0);
  assert_int_equal(p.flags, 0);

  float buf[4];
  const dp_shape s = {3, 5, 7};
  dp_tensor t = dp_tensor_dense(buf, DP_F32, s);
  assert_ptr_equal(t.data, buf);
  assert_int_equal(t.dtype, DP_F32);
  assert_int_equal(t.sample_stride, 35);
  assert_int_equal(t.seq_stride, 7);
  t = dp_tensor_seq_first(buf, DP_BF16, s);
  assert_int_equal(t.dtype, DP_BF16);
  assert_int_equal(t.sample_stride, 7);
  assert_int_equal(t.seq_stride, 21);
  const dp_shape s0 = {3, 0, 7}; /* seq 0 counts as 1 */
  t = dp_tensor_dense(buf, DP_F16, s0);
  assert_int_equal(t.sample_stride, 7);
}

static void test_reference_philox(void **state) {
  (void)state;
  /* Random123 known answers (tests/vectors/philox4x32_10_kat.txt, first lines). */
  static const uint32_t kat[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
       0x5001e420, 0x24126ea1}};
  for (int k = 0; k < 3; k++) {
    uint32_t out[4];
    ref_philox4x32_10(&kat[k][0], &kat[k][4], out);
    for (int i = 0; i < 4; i++) assert_int_equal(out[i], kat[k][6 + i]);
  }
  tu_rng rng = rng_for(__func__);
  for (size_t n = 0; n < 1000; n++) {
    uint32_t c[4], key[2], a[4], b[4];
    for (int i = 0; i < 4; i++) c[i] = (uint32_t)tu_next(&rng);
    key[0] = (uint32_t)tu_next(&rng);
    key[1] = (uint32_t)tu_next(&rng);
    ref_philox4x32_10(c, key, a);
    dp_philox4x32_10(c, key, b);
    assert_memory_equal(a, b, sizeof a);
  }
}

static void test_reference_conversions(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    const float fb = ref_bf16_to_f32((uint16_t)h), fh = ref_f16_to_f32((uint16_t)h);
    if (!isnan(fb)) assert_int_equal(ref_f32_to_bf16(fb), h);
    if (!isnan(fh)) assert_int_equal(ref_f32_to_f16(fh), h);
    else assert_true(isnan(ref_f16_to_f32(ref_f32_to_f16(fh))));
  }
  assert_int_equal(ref_f32_to_f16(1.0f), 0x3c00);
  assert_int_equal(ref_f32_to_f16(65504.0f), 0x7bff);
  assert_int_equal(ref_f32_to_f16(65519.99f), 0x7bff);
  assert_int_equal(ref_f32_to_f16(65520.0f), 0x7c00);
  assert_int_equal(ref_f32_to_f16(0x1p-24f), 0x0001);
  assert_int_equal(ref_f32_to_f16(0x1p-25f), 0x0000);          /* tie to even */
  assert_int_equal(ref_f32_to_f16(0x1.8p-24f), 0x0002);        /* tie to even */
  assert_int_equal(ref_f32_to_f16(0x1.ffcp-15f), 0x0400);      /* rounds up into the normals */
  assert_int_equal(ref_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie to even */
  assert_int_equal(ref_f32_to_f16(-2.0f), 0xc000);
  assert_int_equal(ref_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);   /* tie to even */
  assert_int_equal(ref_f32_to_bf16(0x1.03p0f), 0x3f82); /* tie to even, up */
  assert_int_equal(ref_f32_to_bf16(tu_bits_f32(0x7f7fffffu)), 0x7f80);
}

/* ---------------------------------------------------------------- per ISA: masks */

static void test_mask_matches_reference(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  const size_t n = iters_div(1);
  for (size_t it = 0; it < n; it++) {
    api_case c; /* only for its random params */
    case_random(&c, &rng, OP_FWD);
    const size_t B = tu_range(&rng, 0, 1) ? tu_range(&rng, 0, 20) : tu_range(&rng, 21, 700);
    const unsigned which = (unsigned)tu_range(&rng, 0, 15);
    tu_buf kb = tu_buf_alloc(B, tu_range(&rng, 0, 63));
    tu_buf sb = tu_buf_alloc(B * 4, 4 * tu_range(&rng, 0, 15));
    tu_buf cb = tu_buf_alloc(sizeof(size_t), 0);
    tu_buf ib = tu_buf_alloc(B * sizeof(size_t), 0);
    uint8_t *keep = (which & 1) ? kb.data : NULL;
    float *sc = (which & 2) ? (float *)(void *)sb.data : NULL;
    size_t *cnt = (which & 4) ? (size_t *)(void *)cb.data : NULL;
    size_t *idx = (which & 8) ? (size_t *)(void *)ib.data : NULL;
    assert_int_equal(dp_mask(&c.p, B, keep, sc, cnt, idx), DP_OK);

    unsigned char *rk = malloc(B + 1), *rs = malloc(B * 4 + 1), *ri = malloc(B * sizeof(size_t) + 1);
    size_t rc = 0;
    assert_true(rk && rs && ri);
    ref_mask(&c.p, B, rk, (float *)(void *)rs, &rc, (size_t *)(void *)ri);
    if (keep) assert_memory_equal(keep, rk, B);
    if (sc) assert_memory_equal(sc, rs, B * 4);
    if (cnt) assert_int_equal(*cnt, rc);
    if (idx) {
      assert_memory_equal(idx, ri, rc * sizeof(size_t));
      /* Entries past the kept count are not written. */
      for (size_t k = rc * sizeof(size_t); k < B * sizeof(size_t); k++) assert_int_equal(ib.data[k], TU_GUARD_BYTE);
    }
    if (c.p.mode == DP_MODE_BATCH)
      for (size_t b = 1; b < B; b++) assert_int_equal(rk[b], rk[0]);
    assert_true(tu_guards_intact(&kb) && tu_guards_intact(&sb) && tu_guards_intact(&cb) && tu_guards_intact(&ib));
    /* Untouched when not requested. */
    if (!keep)
      for (size_t k = 0; k < B; k++) assert_int_equal(kb.data[k], TU_GUARD_BYTE);
    free(rk);
    free(rs);
    free(ri);
    tu_buf_free(&kb);
    tu_buf_free(&sb);
    tu_buf_free(&cb);
    tu_buf_free(&ib);
  }
}

/* A batch split into calls by sample_base has the same mask as one call. */
static void test_mask_split_by_sample_base(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(3); it++) {
    api_case c;
    case_random(&c, &rng, OP_FWD);
    if (c.p.mode == DP_MODE_EXACT_K) c.p.mode = DP_MODE_ROW; /* exact-k selects over the call: not split-invariant */
    const size_t B = tu_range(&rng, 1, 600);
    float *whole = malloc(B * 4), *parts = malloc(B * 4);
    size_t *wi = malloc(B * sizeof(size_t)), *pi = malloc(B * sizeof(size_t));
    assert_true(whole && parts && wi && pi);
    size_t wc = 0, pc = 0;
    assert_int_equal(dp_mask(&c.p, B, NULL, whole, &wc, wi), DP_OK);
    for (size_t b0 = 0; b0 < B;) {
      const size_t nb = tu_range(&rng, 1, B - b0);
      dp_params q = c.p;
      q.sample_base += b0;
      size_t cnt = 0;
      assert_int_equal(dp_mask(&q, nb, NULL, parts + b0, &cnt, pi + pc), DP_OK);
      for (size_t k = 0; k < cnt; k++) pi[pc + k] += b0;
      pc += cnt;
      b0 += nb;
    }
    assert_memory_equal(whole, parts, B * 4);
    assert_int_equal(wc, pc);
    if (wc) assert_memory_equal(wi, pi, wc * sizeof(size_t));
    free(whole);
    free(parts);
    free(wi);
    free(pi);
  }
}

/* A draw exactly at keep is dropped (u < keep), one binary32 step lower is
 * kept, for a sample anywhere in a batch (vector lanes and tails) and in
 * every operation that draws. */
static void test_mask_keep_boundary(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(3); it++) {
    dp_params p;
    dp_params_init(&p);
    p.seed = tu_next(&rng);
    p.offset = tu_next(&rng);
    p.sample_base = tu_range(&rng, 0, 1) ? tu_next(&rng) : tu_range(&rng, 0, 100);
    p.mode = tu_range(&rng, 0, 4) == 0 ? DP_MODE_BATCH : DP_MODE_ROW;
    p.scale_by_keep = (int)tu_range(&rng, 0, 1);
    const size_t B = tu_range(&rng, 1, 40), b = tu_range(&rng, 0, B - 1);
    const uint64_t g = p.mode == DP_MODE_BATCH ? UINT64_MAX : p.sample_base + b;
    const uint32_t ctr[4] = {(uint32_t)g, (uint32_t)(g >> 32), (uint32_t)p.offset, (uint32_t)(p.offset >> 32)};
    const uint32_t key[2] = {(uint32_t)p.seed, (uint32_t)(p.seed >> 32)};
    uint32_t w[4];
    ref_philox4x32_10(ctr, key, w);
    const float u = (float)(w[0] >> 8) * 0x1p-24f;
    for (int up = 0; up < 2; up++) {
      /* 1 - keep is exact in double, so (float)(1 - drop_prob) is keep again. */
      const float keep = up ? nextafterf(u, 2.0f) : u;
      p.drop_prob = 1.0 - (double)keep;
      assert_true((float)(1.0 - p.drop_prob) == keep);
      const int want = up; /* kept iff u < keep */
      uint8_t kb[40];
      float sc[40], x[40], out[40], gf[40];
      for (size_t i = 0; i < B; i++) x[i] = 1.0f + (float)i;
      assert_int_equal(dp_mask(&p, B, kb, NULL, NULL, NULL), DP_OK);
      assert_int_equal(kb[b], want);
      const dp_shape s = {B, 1, 1};
      const dp_tensor tx = dp_tensor_dense(x, DP_F32, s), to = dp_tensor_dense(out, DP_F32, s);
      const dp_tensor tg = dp_tensor_dense(gf, DP_F32, s), none = {NULL, DP_F32, 0, 0};
      assert_int_equal(dp_forward(&p, s, to, tx, tx, sc), DP_OK);
      assert_int_equal(sc[b] != 0.0f, want);
      assert_int_equal(dp_drop_path(&p, s, to, tx, sc), DP_OK);
      assert_int_equal(sc[b] != 0.0f, want);
      assert_int_equal(out[b] != 0.0f, want);
      assert_int_equal(dp_backward(&p, s, tg, none, tx, NULL, 0), DP_OK);
      assert_int_equal(gf[b] != 0.0f, want);
      assert_int_equal(ref_is_kept(&p, B, b), want);
    }
  }
}

/* ---------------------------------------------------------------- per ISA: operations vs reference */

static void random_op_test(const char *name, int op, size_t n) {
  tu_rng rng = rng_for(name);
  for (size_t it = 0; it < n; it++) {
    api_case c;
    case_random(&c, &rng, op);
    run_case(&c, &rng, name);
  }
}

static void test_forward_random(void **state) {
  (void)state;
  random_op_test(__func__, OP_FWD, base_iters());
}

static void test_inference_random(void **state) {
  (void)state;
  random_op_test(__func__, OP_INFER, base_iters());
}

static void test_drop_path_random(void **state) {
  (void)state;
  random_op_test(__func__, OP_DROP, base_iters());
}

static void test_backward_random(void **state) {
  (void)state;
  random_op_test(__func__, OP_BWD, base_iters());
}

/* Every backward variant on a few fixed small shapes: both accumulate flags,
 * with and without grad_x, scales given (from this or another seed) or
 * regenerated, grad_f separate or equal to grad_out. */
static void test_backward_all_variants(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(30); it++) {
    for (unsigned v = 0; v < 4 * 2 * 3 * 2; v++) {
      api_case c;
      case_random(&c, &rng, OP_BWD);
      c.p.drop_prob = 0.5;
      c.bflags = v & 3;
      c.r[R1].present = 0;
      if ((v >> 2) & 1) set_role(&rng, &c, R1);
      const unsigned sc = (v >> 3) % 3;
      c.r[RS].present = 0;
      if (sc) {
        set_role(&rng, &c, RS);
        c.scales_other_seed = sc == 2;
      }
      c.r[R0].alias_of = (v / 24) && c.xt == c.ft ? R2 : -1;
      run_case(&c, &rng, __func__);
    }
  }
}

/* dp_backward with caller-given scales in runs (fill_scale_runs) on dense
 * layouts, [B][D] and [B][T][D], where the walk joins a sample's rows and
 * adjacent samples of equal scale into one kernel call: every flag, with and
 * without grad_x, grad_f separate or grad_out itself, 0-2 threads. */
static void test_backward_given_scales_in_runs(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(2); it++) {
    api_case c;
    case_random(&c, &rng, OP_BWD);
    c.bflags = (uint32_t)(it & 3);
    c.r[R1].present = 0;
    if ((it >> 2) & 1) set_role(&rng, &c, R1);
    c.r[R0].alias_of = (it % 3 == 0) && c.xt == c.ft ? R2 : -1;
    for (int i = R0; i <= R2; i++) {
      const dp_tensor t = dp_tensor_dense(NULL, DP_F32, c.shape);
      c.r[i].ss = t.sample_stride;
      c.r[i].ts = t.seq_stride;
    }
    set_role(&rng, &c, RS);
    c.scales_in_runs = 1;
    c.p.num_threads = (int)(it % 3);
    run_case(&c, &rng, __func__);
  }
}

/* ---------------------------------------------------------------- per ISA: properties */

/* Dropped rows of the forward are x exactly, whatever f holds. */
static void test_dropped_rows_are_x(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(5); it++) {
    api_case c;
    case_random(&c, &rng, OP_FWD);
    c.p.drop_prob = 0.5;
    case_alloc(&c, &rng);
    /* f: NaN, +inf, -inf everywhere; kept rows give canonical NaNs,
     * dropped rows must still be x to the bit. */
    static const uint32_t poison[3][3] = {{0x7fc00000u, 0x7f800000u, 0xff800000u},
                                          {0x7fc0u, 0x7f80u, 0xff80u},
                                          {0x7e00u, 0x7c00u, 0xfc00u}};
    role *fr = &c.r[R2];
    for (size_t e = 0; e < fr->elems; e++) memcpy(fr->lib.data + e * fr->es, &poison[fr->dtype][e % 3], fr->es);
    memcpy(fr->ref, fr->lib.data, fr->bytes);
    memcpy(fr->init, fr->lib.data, fr->bytes);
    assert_int_equal(case_call_lib(&c, &c.p), DP_OK);
    case_call_ref(&c);
    case_check(&c, __func__);
    /* Independently of the reference: dropped rows equal the original x. */
    const dp_tensor out = view(&c, R0, SIDE_LIB, 0);
    const role *xr = &c.r[R1];
    for (size_t b = 0; b < c.shape.batch; b++) {
      if (ref_is_kept(&c.p, c.shape.batch, b)) continue;
      for (size_t t = 0; t < rows_of(c.shape); t++) {
        const size_t at = b * out.sample_stride + t * out.seq_stride;
        const unsigned char *o = (const unsigned char *)out.data + xr->es * at;
        const unsigned char *x0 = xr->init + xr->es * (b * xr->ss + t * xr->ts);
        assert_memory_equal(o, x0, xr->es * c.shape.dim);
      }
    }
    case_free(&c);
  }
}

/* drop_path writes +0.0 (all bits zero) for dropped samples. */
static void test_drop_path_dropped_are_zero_bits(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(5); it++) {
    api_case c;
    case_random(&c, &rng, OP_DROP);
    c.p.drop_prob = tu_range(&rng, 0, 1) ? 0.5 : 1.0;
    case_alloc(&c, &rng);
    /* Negative x and NaN-poisoned out, so a -0.0 or a skipped write shows:
     * set every element's sign bit (the top bit of its last byte). */
    role *xr = &c.r[R1];
    for (size_t e = 0; e < xr->elems; e++) xr->lib.data[e * xr->es + xr->es - 1] |= 0x80u;
    memcpy(xr->ref, xr->lib.data, xr->bytes);
    memcpy(xr->init, xr->lib.data, xr->bytes);
    if (c.r[R0].alias_of < 0) {
      memset(c.r[R0].lib.data, 0xff, c.r[R0].bytes);
      memset(c.r[R0].ref, 0xff, c.r[R0].bytes);
    }
    assert_int_equal(case_call_lib(&c, &c.p), DP_OK);
    case_call_ref(&c);
    case_check(&c, __func__);
    const dp_tensor out = view(&c, R0, SIDE_LIB, 0);
    for (size_t b = 0; b < c.shape.batch; b++) {
      if (ref_is_kept(&c.p, c.shape.batch, b)) continue;
      for (size_t t = 0; t < rows_of(c.shape); t++) {
        const size_t at = b * out.sample_stride + t * out.seq_stride;
        const unsigned char *o = (const unsigned char *)out.data + xr->es * at;
        for (size_t k = 0; k < xr->es * c.shape.dim; k++) assert_int_equal(o[k], 0);
      }
    }
    case_free(&c);
  }
}

/* The backward's mask equals the forward's, whether it reads the saved scales
 * or regenerates them; drop_path draws the same mask too. */
static void test_backward_consistent_with_forward(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(5); it++) {
    dp_params p;
    dp_params_init(&p);
    p.drop_prob = pick_prob(&rng);
    p.seed = tu_next(&rng);
    p.offset = tu_next(&rng);
    p.sample_base = tu_range(&rng, 0, 1000);
    static const int modes[] = {DP_MODE_BATCH, DP_MODE_EXACT_K, DP_MODE_ROW, DP_MODE_ROW};
    p.mode = modes[tu_range(&rng, 0, 3)];
    p.scale_by_keep = (int)tu_range(&rng, 0, 1);
    const dp_shape s = pick_shape(&rng);
    const size_t n = s.batch * rows_of(s) * s.dim;
    float *x = malloc(n * 4), *f = malloc(n * 4), *out = malloc(n * 4), *g = malloc(n * 4);
    float *gf1 = malloc(n * 4), *gf2 = malloc(n * 4), *dpo = malloc(n * 4);
    float *sf = malloc(s.batch * 4), *sd = malloc(s.batch * 4);
    assert_true(x && f && out && g && gf1 && gf2 && dpo && sf && sd);
    tu_fill_floats(&rng, x, n, 0);
    tu_fill_floats(&rng, f, n, 0);
    tu_fill_floats(&rng, g, n, 0);
    const dp_tensor tx = dp_tensor_dense(x, DP_F32, s), tf = dp_tensor_dense(f, DP_F32, s);
    const dp_tensor to = dp_tensor_dense(out, DP_F32, s), tg = dp_tensor_dense(g, DP_F32, s);
    const dp_tensor t1 = dp_tensor_dense(gf1, DP_F32, s), t2 = dp_tensor_dense(gf2, DP_F32, s);
    const dp_tensor td = dp_tensor_dense(dpo, DP_F32, s);
    const dp_tensor none = {NULL, DP_F32, 0, 0};
    assert_int_equal(dp_forward(&p, s, to, tx, tf, sf), DP_OK);
    assert_int_equal(dp_drop_path(&p, s, td, tx, sd), DP_OK);
    assert_memory_equal(sf, sd, s.batch * 4);
    assert_int_equal(dp_backward(&p, s, t1, none, tg, sf, 0), DP_OK);
    assert_int_equal(dp_backward(&p, s, t2, none, tg, NULL, 0), DP_OK);
    assert_memory_equal(gf1, gf2, n * 4);
    const size_t row = rows_of(s) * s.dim;
    for (size_t b = 0; b < s.batch; b++) {
      assert_true(sf[b] == 0.0f || sf[b] == ref_kept_scale(&p, s.batch));
      for (size_t e = 0; e < row; e++) {
        const size_t i = b * row + e;
        if (sf[b] == 0.0f) {
          assert_int_equal(tu_f32_bits(gf1[i]), 0);
          assert_int_equal(tu_f32_bits(out[i]), tu_f32_bits(x[i]));
        } else {
          assert_int_equal(tu_f32_bits(gf1[i]), tu_f32_bits(sf[b] * g[i]));
          assert_int_equal(tu_f32_bits(out[i]), tu_f32_bits(x[i] + sf[b] * f[i]));
        }
      }
    }
    free(x);
    free(f);
    free(out);
    free(g);
    free(gf1);
    free(gf2);
    free(dpo);
    free(sf);
    free(sd);
  }
}

/* Calls on sample ranges (sample_base advanced) or on column ranges of every
 * row, one thread each, reproduce the whole call: how a caller's own thread
 * pool would split the work. */
static void test_split_calls(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(2); it++) {
    api_case c;
    case_random(&c, &rng, (int)tu_range(&rng, 0, OP_COUNT - 1));
    case_alloc(&c, &rng);
    case_call_ref(&c);
    dp_params p = c.p;
    p.num_threads = 1;
    const size_t B = c.shape.batch, D = c.shape.dim;
    /* Exact-k selects over the whole call, so only its columns split. */
    for (size_t b0 = 0; b0 < B && p.mode != DP_MODE_EXACT_K;) {
      const size_t nb = tu_range(&rng, 1, B - b0);
      assert_int_equal(case_call_part(&c, &p, b0, nb, 0, D), DP_OK);
      b0 += nb;
      if (b0 == B) {
        case_check(&c, "split by samples");
        case_reset(&c);
      }
    }
    for (size_t d0 = 0; d0 < D;) {
      const size_t nd = tu_range(&rng, 1, D - d0);
      assert_int_equal(case_call_part(&c, &p, 0, B, d0, nd), DP_OK);
      d0 += nd;
    }
    case_check(&c, "split by columns");
    case_free(&c);
  }
}

/* A deterministic big case for the thread tests. */
static void case_big(api_case *c, tu_rng *rng, int op, dp_shape s, int seq_first) {
  memset(c, 0, sizeof *c);
  c->op = op;
  pick_dtypes(rng, c);
  dp_params_init(&c->p);
  c->p.drop_prob = 0.5;
  c->p.seed = tu_next(rng);
  c->p.offset = tu_range(rng, 0, 1000);
  c->shape = s;
  for (int i = 0; i < NROLES; i++) c->r[i].alias_of = -1;
  const int roles = op == OP_DROP ? 2 : 3;
  for (int i = 0; i < roles; i++) {
    set_role(rng, c, i);
    const dp_tensor t = seq_first ? dp_tensor_seq_first(NULL, DP_F32, s) : dp_tensor_dense(NULL, DP_F32, s);
    c->r[i].ss = t.sample_stride;
    c->r[i].ts = t.seq_stride;
  }
  if (op != OP_INFER) set_role(rng, c, RS);
  if (op == OP_BWD) {
    c->r[RS].present = tu_range(rng, 0, 1) != 0; /* given or regenerated */
    c->bflags = (uint32_t)tu_range(rng, 0, 3);
  }
}

/* Results do not depend on the thread count, including shapes big enough to
 * go parallel by default and a single huge row (split across threads). */
static void test_thread_count_independent(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  static const struct {
    dp_shape s;
    int seq_first;
  } shapes[] = {
      {{64, 1, 1024}, 0},   /* 256 KiB per tensor */
      {{1, 1, 200003}, 0},  /* one row, split across threads */
      {{3, 5, 4099}, 1},    /* few rows, each split with a tail */
      {{3, 5, 4099}, 0},    /* dense [B][T][D]: one thread flattens it in the small-call loop */
      {{16, 1, 2500}, 0},   /* the largest small-call batch */
      {{2, 0, 8191}, 0},
      {{37, 3, 613}, 1},    /* seq-first, odd everything */
  };
  static const int threads[] = {1, 2, 3, 0};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    for (int op = 0; op < OP_COUNT; op++) {
      api_case c;
      case_big(&c, &rng, op, shapes[k].s, shapes[k].seq_first);
      case_alloc(&c, &rng);
      case_call_ref(&c);
      for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        dp_params p = c.p;
        p.num_threads = threads[t];
        case_reset(&c);
        assert_int_equal(case_call_lib(&c, &p), DP_OK);
        case_check(&c, "explicit thread count");
      }
      /* The library-wide default applies when num_threads == 0. */
      for (int def = 1; def <= 3; def++) {
        assert_int_equal(dp_set_num_threads(def), DP_OK);
        case_reset(&c);
        assert_int_equal(case_call_lib(&c, &c.p), DP_OK);
        case_check(&c, "default thread count");
      }
      assert_int_equal(dp_set_num_threads(0), DP_OK);
      case_free(&c);
    }
  }
}

/* Non-temporal stores (forced on or off) change nothing in the results. */
static void test_stream_flags_identical(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  static const uint32_t flags[] = {DP_FLAG_STREAM_NEVER, DP_FLAG_STREAM_ALWAYS, 0};
  for (size_t it = 0; it < iters_div(5); it++) {
    api_case c;
    case_random(&c, &rng, (int)tu_range(&rng, 0, OP_COUNT - 1));
    if (tu_range(&rng, 0, 1)) {
      c.shape.dim = tu_range(&rng, 1000, 5000) | 1;
      for (int i = R0; i < RS; i++)
        if (c.r[i].present) pick_layout(&rng, c.shape, &c.r[i].ss, &c.r[i].ts);
    }
    case_alloc(&c, &rng);
    case_call_ref(&c);
    for (size_t k = 0; k < 3; k++) {
      dp_params p = c.p;
      p.flags = flags[k];
      case_reset(&c);
      assert_int_equal(case_call_lib(&c, &p), DP_OK);
      case_check(&c, "stream flags");
    }
    case_free(&c);
  }
}

/* seq == 0 behaves exactly as seq == 1. */
static void test_seq_zero_is_one(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(10); it++) {
    api_case c;
    case_random(&c, &rng, (int)tu_range(&rng, 0, OP_COUNT - 1));
    c.shape.seq = 0;
    case_alloc(&c, &rng);
    assert_int_equal(case_call_lib(&c, &c.p), DP_OK);
    c.shape.seq = 1;
    case_call_ref(&c);
    case_check(&c, __func__);
    case_free(&c);
  }
}

/* B == 0 or D == 0: nothing is touched (NULL data allowed); the forward and
 * drop_path still report the B scales when D == 0. */
static void test_empty_shapes(void **state) {
  (void)state;
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.5;
  p.seed = 42;
  const dp_tensor null_t = {NULL, DP_F32, 4, 4};
  tu_buf sb = tu_buf_alloc(64 * 4, 4);
  tu_buf db = tu_buf_alloc(64 * 4, 0);
  float *sc = (float *)(void *)sb.data;
  const dp_tensor d4 = {db.data, DP_F32, 4, 4};
  /* d0 draws its scales early (small batch), d0_big through the job. */
  const dp_shape b0 = {0, 3, 4}, d0 = {7, 3, 0}, d0_big = {40, 3, 0}, both = {0, 0, 0};
  const dp_shape shapes[4] = {b0, d0, d0_big, both};
  for (int k = 0; k < 4; k++) {
    const dp_shape s = shapes[k];
    for (int with_data = 0; with_data < 2; with_data++) {
      const dp_tensor t = with_data ? d4 : null_t;
      assert_int_equal(dp_forward(&p, s, t, t, t, NULL), DP_OK);
      assert_int_equal(dp_inference_add(&p, s, t, t, t), DP_OK);
      assert_int_equal(dp_drop_path(&p, s, t, t, NULL), DP_OK);
      for (uint32_t fl = 0; fl < 4; fl++) {
        assert_int_equal(dp_backward(&p, s, t, null_t, t, NULL, fl), DP_OK);
        assert_int_equal(dp_backward(&p, s, t, null_t, t, sc, fl), DP_OK);
      }
      for (size_t i = 0; i < db.bytes; i++) assert_int_equal(db.data[i], TU_GUARD_BYTE);
    }
    /* Scales of an empty-row call: B entries (none when B == 0). */
    memset(sc, TU_GUARD_BYTE, sb.bytes);
    assert_int_equal(dp_forward(&p, s, null_t, null_t, null_t, sc), DP_OK);
    float want[64];
    memset(want, TU_GUARD_BYTE, sizeof want);
    ref_mask(&p, s.batch, NULL, want, NULL, NULL);
    assert_memory_equal(sc, want, sizeof want);
    memset(sc, TU_GUARD_BYTE, sb.bytes);
    assert_int_equal(dp_drop_path(&p, s, null_t, null_t, sc), DP_OK);
    assert_memory_equal(sc, want, sizeof want);
    assert_true(tu_guards_intact(&sb));
  }
  /* dp_mask with batch 0 touches only the count. */
  size_t cnt = 12345;
  assert_int_equal(dp_mask(&p, 0, NULL, NULL, &cnt, NULL), DP_OK);
  assert_int_equal(cnt, 0);
  memset(sc, TU_GUARD_BYTE, sb.bytes);
  assert_int_equal(dp_mask(&p, 0, db.data, sc, NULL, (size_t *)(void *)db.data), DP_OK);
  for (size_t i = 0; i < sb.bytes; i++) assert_int_equal(sb.data[i], TU_GUARD_BYTE);
  tu_buf_free(&sb);
  tu_buf_free(&db);
}

/* p = 0 keeps everything with s = 1; p = 1 drops everything without ever
 * dividing by zero (no inf or NaN appears), in every operation. */
static void test_extreme_probabilities(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  for (size_t it = 0; it < iters_div(10); it++) {
    for (int op = 0; op < OP_COUNT; op++) {
      for (int pk = 0; pk < 2; pk++) {
        api_case c;
        case_random(&c, &rng, op);
        c.p.drop_prob = pk ? 1.0 : (tu_range(&rng, 0, 1) ? 0.0 : -0.0);
        run_case(&c, &rng, __func__);
      }
    }
  }
  dp_params p;
  dp_params_init(&p);
  float sc[16];
  size_t cnt;
  for (int sbk = 0; sbk < 2; sbk++) {
    p.scale_by_keep = sbk;
    p.drop_prob = 1.0;
    assert_int_equal(dp_mask(&p, 16, NULL, sc, &cnt, NULL), DP_OK);
    assert_int_equal(cnt, 0);
    for (int b = 0; b < 16; b++) assert_int_equal(tu_f32_bits(sc[b]), 0);
    p.drop_prob = 0.0;
    assert_int_equal(dp_mask(&p, 16, NULL, sc, &cnt, NULL), DP_OK);
    assert_int_equal(cnt, 16);
    for (int b = 0; b < 16; b++) assert_true(sc[b] == 1.0f);
  }
  /* Inference: x + f with 1/keep-trained weights, x + keep*f otherwise. */
  float x[3] = {1.0f, -2.0f, 3.0f}, f[3] = {0.5f, 0.25f, -1.0f}, out[3];
  const dp_shape s = {3, 1, 1};
  const dp_tensor tx = dp_tensor_dense(x, DP_F32, s), tf = dp_tensor_dense(f, DP_F32, s),
                  to = dp_tensor_dense(out, DP_F32, s);
  p.drop_prob = 0.25;
  p.scale_by_keep = 1;
  assert_int_equal(dp_inference_add(&p, s, to, tx, tf), DP_OK);
  for (int i = 0; i < 3; i++) assert_true(out[i] == x[i] + f[i]);
  p.scale_by_keep = 0;
  assert_int_equal(dp_inference_add(&p, s, to, tx, tf), DP_OK);
  for (int i = 0; i < 3; i++) assert_true(out[i] == x[i] + 0.75f * f[i]);
  p.drop_prob = 1.0;
  f[1] = tu_bits_f32(0x7fc00000u);
  assert_int_equal(dp_inference_add(&p, s, to, tx, tf), DP_OK);
  assert_memory_equal(out, x, sizeof x);
  p.scale_by_keep = 1;
  assert_int_equal(dp_inference_add(&p, s, to, tx, tf), DP_OK);
  assert_true(out[0] == 1.5f && isnan(out[1]) && out[2] == 2.0f);
}

#if HAVE_PAGE_GUARDS
/* One sample per page, so single samples can be made unreadable or read-only:
 * a read or write the contract forbids becomes a SIGSEGV, which cmocka
 * reports as a failure. */
typedef struct pages {
  unsigned char *p;
  size_t page, n;
} pages;

static pages pages_alloc(size_t n) {
  pages g;
  g.page = (size_t)sysconf(_SC_PAGESIZE);
  g.n = n;
  void *m = mmap(NULL, n * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(m != MAP_FAILED);
  g.p = (unsigned char *)m;
  return g;
}

static void pages_protect(const pages *g, size_t i, int prot) {
  assert_int_equal(mprotect(g->p + i * g->page, g->page, prot), 0);
}

static void pages_open(const pages *g) {
  assert_int_equal(mprotect(g->p, g->n * g->page, PROT_READ | PROT_WRITE), 0);
}

static void pages_free(pages *g) {
  munmap(g->p, g->n * g->page);
  g->p = NULL;
}

enum { PG_FWD, PG_FWD_INPLACE, PG_DROP, PG_INFER_KEEP0, PG_BWD_ACC_F, PG_COUNT };

static void test_forbidden_accesses_fault(void **state) {
  (void)state;
  tu_rng rng = rng_for(__func__);
  const size_t page_floats = (size_t)sysconf(_SC_PAGESIZE) / 4;
  for (size_t it = 0; it < iters_div(15); it++) {
    for (int kind = 0; kind < PG_COUNT; kind++) {
      const size_t B = tu_range(&rng, 2, 9);
      const size_t T = tu_range(&rng, 1, 3);
      const size_t D = tu_range(&rng, 1, page_floats / T < 300 ? page_floats / T : 300);
      const dp_shape s = {B, T, D};
      dp_params p;
      dp_params_init(&p);
      p.drop_prob = kind == PG_INFER_KEEP0 ? 1.0 : 0.5;
      p.scale_by_keep = kind == PG_INFER_KEEP0 ? 0 : 1;
      p.num_threads = (int)tu_range(&rng, 0, 2);
      p.flags = tu_range(&rng, 0, 1) ? DP_FLAG_STREAM_ALWAYS : 0;
      /* A seed whose mask keeps some samples and drops others. */
      size_t kept;
      do {
        p.seed = tu_next(&rng);
        ref_mask(&p, B, NULL, NULL, &kept, NULL);
      } while (kind != PG_INFER_KEEP0 && (kept == 0 || kept == B));

      pages a = pages_alloc(B), b = pages_alloc(B), o = pages_alloc(B);
      const dp_tensor ta = {a.p, DP_F32, page_floats, D}, tb = {b.p, DP_F32, page_floats, D},
                      tout = {o.p, DP_F32, page_floats, D};
      const size_t bytes = B * a.page;
      tu_fill_floats(&rng, (float *)(void *)a.p, bytes / 4, 1);
      tu_fill_floats(&rng, (float *)(void *)b.p, bytes / 4, 1);
      tu_fill_floats(&rng, (float *)(void *)o.p, bytes / 4, 1);
      unsigned char *ra = malloc(bytes), *rb = malloc(bytes), *ro = malloc(bytes);
      assert_true(ra && rb && ro);
      memcpy(ra, a.p, bytes);
      memcpy(rb, b.p, bytes);
      memcpy(ro, o.p, bytes);
      const dp_tensor rta = {ra, DP_F32, page_floats, D}, rtb = {rb, DP_F32, page_floats, D},
                      rtout = {ro, DP_F32, page_floats, D};
      for (size_t i = 0; i < B; i++) {
        if (ref_is_kept(&p, B, i)) continue;
        switch (kind) {
          case PG_FWD: pages_protect(&b, i, PROT_NONE); break; /* f */
          case PG_FWD_INPLACE:
            pages_protect(&a, i, PROT_READ); /* out == x: not written */
            pages_protect(&b, i, PROT_NONE); /* f: not read */
            break;
          case PG_DROP: pages_protect(&a, i, PROT_NONE); break; /* x: not read */
          case PG_INFER_KEEP0: pages_protect(&b, i, PROT_NONE); break; /* every f page */
          default: pages_protect(&o, i, PROT_READ); break;           /* grad_f: untouched */
        }
      }
      dp_status st;
      switch (kind) {
        case PG_FWD:
          st = dp_forward(&p, s, tout, ta, tb, NULL);
          ref_forward(&p, s, rtout, rta, rtb, NULL);
          break;
        case PG_FWD_INPLACE:
          st = dp_forward(&p, s, ta, ta, tb, NULL);
          ref_forward(&p, s, rta, rta, rtb, NULL);
          break;
        case PG_DROP:
          st = dp_drop_path(&p, s, tout, ta, NULL);
          ref_drop_path(&p, s, rtout, rta, NULL);
          break;
        case PG_INFER_KEEP0:
          st = dp_inference_add(&p, s, tout, ta, tb);
          ref_inference_add(&p, s, rtout, rta, rtb);
          break;
        default:
          st = dp_backward(&p, s, tout, tb, ta, NULL, DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X);
          ref_backward(&p, s, rtout, rtb, rta, NULL, DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X);
          break;
      }
      assert_int_equal(st, DP_OK);
      pages_open(&a);
      pages_open(&b);
      pages_open(&o);
      assert_memory_equal(a.p, ra, bytes);
      assert_memory_equal(b.p, rb, bytes);
      assert_memory_equal(o.p, ro, bytes);
      free(ra);
      free(rb);
      free(ro);
      pages_free(&a);
      pages_free(&b);
      pages_free(&o);
    }
  }
}
#endif

/* ---------------------------------------------------------------- main */

int main(void) {
  (void)tu_seed();
  const struct CMUnitTest once[] = {
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_status_strings),
      cmocka_unit_test(test_isa_names),
      cmocka_unit_test(test_set_max_isa),
      cmocka_unit_test(test_set_num_threads),
      cmocka_unit_test(test_params_init_and_views),
      cmocka_unit_test(test_reference_philox),
      cmocka_unit_test(test_reference_conversions),
  };
  const struct CMUnitTest per_isa[] = {
      cmocka_unit_test(test_mask_matches_reference),
      cmocka_unit_test(test_mask_split_by_sample_base),
      cmocka_unit_test(test_mask_keep_boundary),
      cmocka_unit_test(test_forward_random),
      cmocka_unit_test(test_inference_random),
      cmocka_unit_test(test_drop_path_random),
      cmocka_unit_test(test_backward_random),
      cmocka_unit_test(test_backward_all_variants),
      cmocka_unit_test(test_backward_given_scales_in_runs),
      cmocka_unit_test(test_dropped_rows_are_x),
      cmocka_unit_test(test_drop_path_dropped_are_zero_bits),
      cmocka_unit_test(test_backward_consistent_with_forward),
      cmocka_unit_test(test_split_calls),
      cmocka_unit_test(test_thread_count_independent),
      cmocka_unit_test(test_stream_flags_identical),
      cmocka_unit_test(test_seq_zero_is_one),
      cmocka_unit_test(test_empty_shapes),
      cmocka_unit_test(test_extreme_probabilities),
#if HAVE_PAGE_GUARDS
      cmocka_unit_test(test_forbidden_accesses_fault),
#endif
  };
  int failed = cmocka_run_group_tests_name("api", once, NULL, NULL);
  const dp_isa initial = dp_active_isa();
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa)) continue;
    if (dp_set_max_isa((dp_isa)isa) != DP_OK) {
      failed++;
      continue;
    }
    if (dp_active_isa() != (dp_isa)isa) {
      /* DROPPATH_ISA narrowed the choice below this ISA: already covered. */
      fprintf(stderr, "[ skipped  ] api_%s: active ISA is %s\n", dp_isa_name((dp_isa)isa),
              dp_isa_name(dp_active_isa()));
      continue;
    }
    char name[32];
    snprintf(name, sizeof name, "api_%s", dp_isa_name((dp_isa)isa));
    failed += cmocka_run_group_tests_name(name, per_isa, NULL, NULL);
  }
  if (dp_set_max_isa(initial) != DP_OK) failed++;
  return failed != 0;
}
