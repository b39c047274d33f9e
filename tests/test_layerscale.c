/*
 * LayerScale in the join (dp_forward_ls, dp_inference_add_ls,
 * dp_backward_ls): every output against the plain reference (reference.c)
 * bit for bit on every ISA this CPU runs and at 1 to 4 threads, every dtype
 * combination, random shapes, layouts, misalignments and in-place forms;
 * grad_gamma the same
 * bits for every thread count and ISA, and within its stated bound of a
 * double-precision sum; gamma == NULL the plain operations bit for bit;
 * dropped samples never read; every bad argument refused with nothing
 * written.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reference.h"
#include "test_util.h"

#define MAX_D 70000 /* the widest grad_gamma a backward case holds */

static tu_rng rng_for(const char *name) {
  uint64_t h = tu_seed();
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
  tu_rng r;
  tu_rng_init(&r, h);
  return r;
}

static size_t iters(size_t n) {
  const char *e = getenv("DP_TEST_ITERS");
  const long v = e && *e ? atol(e) : 0;
  return v > 0 ? (size_t)v * n / 200 + 1 : n;
}

/* The ISAs this CPU runs, and the thread counts to try. */
static dp_isa pick_isa(tu_rng *r) {
  for (;;) {
    const dp_isa i = (dp_isa)tu_range(r, 0, DP_ISA_COUNT - 1);
    if (dp_isa_supported(i)) return i;
  }
}

/* ---------------------------------------------------------------- tensors */

enum { DENSE, SEQ_FIRST, PADDED };

/* The dtype combinations (x, f) the API takes: f32, bf16, f16, f32 residual
 * with a bf16 or f16 branch. */
static const int combos[][2] = {{DP_F32, DP_F32}, {DP_BF16, DP_BF16}, {DP_F16, DP_F16}, {DP_F32, DP_BF16},
                                {DP_F32, DP_F16}};
#define N_COMBOS (sizeof combos / sizeof combos[0])

static const char *dtype_name(int t) { return t == DP_F32 ? "f32" : t == DP_BF16 ? "bf16" : "f16"; }

/* Half the cases f32, the rest spread over the other combinations. */
static size_t pick_combo(tu_rng *r) { return tu_range(r, 0, 1) ? 0 : tu_range(r, 0, N_COMBOS - 1); }

typedef struct tens {
  tu_buf buf;
  dp_tensor t;
} tens;

static dp_tensor view_of(void *data, int dtype, dp_shape s, int layout) {
  const size_t T = s.seq ? s.seq : 1;
  if (s.batch == 0 && layout == SEQ_FIRST) layout = DENSE; /* seq-first strides need B > 0 */
  if (layout == DENSE) return dp_tensor_dense(data, (dp_dtype)dtype, s);
  if (layout == SEQ_FIRST) return dp_tensor_seq_first(data, (dp_dtype)dtype, s);
  dp_tensor t = {data, (dp_dtype)dtype, T * (s.dim + 3) + 5, s.dim + 3};
  return t;
}

/* n random values (specials: the occasional zero, inf, NaN, subnormal) of
 * dtype at p, halves rounded from random floats. */
static void fill_elems(tu_rng *r, unsigned char *p, int dtype, size_t n, int specials) {
  if (dtype == DP_F32) {
    tu_fill_floats(r, (float *)(void *)p, n, specials);
    return;
  }
  float v[64];
  for (size_t i = 0; i < n; i += 64) {
    const size_t m = n - i < 64 ? n - i : 64;
    tu_fill_floats(r, v, m, specials);
    for (size_t k = 0; k < m; k++) {
      const uint16_t h = dtype == DP_BF16 ? ref_f32_to_bf16(v[k]) : ref_f32_to_f16(v[k]);
      memcpy(p + 2 * (i + k), &h, 2);
    }
  }
}

/* A tensor of dtype and shape s in layout, its span random (every element,
 * gaps too), misaligned by whole elements. */
static tens tens_make(tu_rng *r, int dtype, dp_shape s, int layout, int specials) {
  tens x;
  const size_t es = tu_dtype_size(dtype);
  dp_tensor probe = view_of(NULL, dtype, s, layout);
  const size_t n = ref_span_elems(&probe, s);
  x.buf = tu_buf_alloc(n * es, es * tu_range(r, 0, 64 / es - 1));
  fill_elems(r, x.buf.data, dtype, n, specials);
  x.t = view_of(x.buf.data, dtype, s, layout);
  return x;
}

/* The same layout, contents and misalignment: the reference's copy. */
static tens tens_clone(const tens *a, dp_shape s) {
  tens x;
  x.buf = tu_buf_alloc(a->buf.bytes, (size_t)((uintptr_t)a->buf.data & 63));
  memcpy(x.buf.data, a->buf.data, a->buf.bytes);
  x.t = a->t;
  x.t.data = x.buf.data;
  (void)s;
  return x;
}

static void tens_free(tens *x) { tu_buf_free(&x->buf); }

static void assert_same(const tens *a, const tens *b, const char *what) {
  if (!tu_guards_intact(&a->buf)) fail_msg("%s: guard bytes written", what);
  if (memcmp(a->buf.data, b->buf.data, a->buf.bytes) == 0) return;
  const size_t es = tu_dtype_size(a->t.dtype);
  size_t i = 0;
  while (memcmp(a->buf.data + es * i, b->buf.data + es * i, es) == 0) i++;
  uint32_t x = 0, y = 0;
  memcpy(&x, a->buf.data + es * i, es); /* little-endian: the element's bits */
  memcpy(&y, b->buf.data + es * i, es);
  fail_msg("%s: %s element %zu of the span differs: library 0x%08x, reference 0x%08x", what, dtype_name(a->t.dtype),
           i, (unsigned)x, (unsigned)y);
}

static void assert_same_floats(const float *a, const float *b, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (tu_f32_bits(a[i]) != tu_f32_bits(b[i]))
      fail_msg("%s[%zu]: library 0x%08x (%g), expected 0x%08x (%g)", what, i, (unsigned)tu_f32_bits(a[i]),
               (double)a[i], (unsigned)tu_f32_bits(b[i]), (double)b[i]);
}

static dp_shape pick_shape(tu_rng *r) {
  dp_shape s;
  s.batch = tu_range(r, 0, 9) == 0 ? 0 : tu_range(r, 1, 20);
  s.seq = tu_range(r, 0, 5);
  const size_t u = tu_range(r, 0, 9);
  s.dim = u < 5 ? tu_range(r, 1, 40) : u < 7 ? 96 : u < 9 ? tu_range(r, 41, 300) : 768;
  return s;
}

static void pick_params(tu_rng *r, dp_params *p) {
  static const double probs[] = {0.0, 0.1, 0.5, 1.0};
  dp_params_init(p);
  p->drop_prob = tu_range(r, 0, 4) < 4 ? probs[tu_range(r, 0, 3)] : (double)tu_float(r) * 0.5 + 0.5;
  p->seed = tu_next(r);
  p->offset = tu_next(r) & 0xffff;
  static const int modes[] = {DP_MODE_BATCH, DP_MODE_EXACT_K, DP_MODE_ROW, DP_MODE_ROW, DP_MODE_ROW, DP_MODE_ROW};
  p->mode = modes[tu_range(r, 0, 5)];
  p->scale_by_keep = tu_range(r, 0, 5) != 0;
  p->num_threads = (int)tu_range(r, 1, 4);
  static const uint32_t flags[] = {0, DP_FLAG_STREAM_NEVER, DP_FLAG_STREAM_ALWAYS};
  p->flags = flags[tu_range(r, 0, 2)];
}

static float *gamma_make(tu_rng *r, size_t D, int specials) {
  float *g = (float *)malloc((D ? D : 1) * sizeof(float));
  tu_fill_floats(r, g, D, specials);
  return g;
}

/* ---------------------------------------------------------------- forward and inference */

static void forward_case(tu_rng *r, int inference) {
  dp_shape s = pick_shape(r);
  dp_params p;
  pick_params(r, &p);
  const dp_isa isa = pick_isa(r);
  const size_t combo = pick_combo(r);
  const int xt = combos[combo][0], ft = combos[combo][1];
  const int lx = (int)tu_range(r, 0, 2), lf = (int)tu_range(r, 0, 2);
  int inplace = (int)tu_range(r, 0, 2); /* 0: out separate, 1: out is x, 2: out is f */
  if (inplace == 2 && xt != ft) inplace = 1; /* out is exactly f only when they share a dtype */
  tens x = tens_make(r, xt, s, lx, 1), f = tens_make(r, ft, s, lf, 1);
  tens out = inplace ? (tens){{0}, {0}} : tens_make(r, xt, s, (int)tu_range(r, 0, 2), 0);
  float *gamma = gamma_make(r, s.dim, tu_range(r, 0, 3) == 0);
  tens xr = tens_clone(&x, s), fr = tens_clone(&f, s), outr = inplace ? out : tens_clone(&out, s);
  const tens *o = inplace == 1 ? &x : inplace == 2 ? &f : &out, *orf = inplace == 1 ? &xr : inplace == 2 ? &fr : &outr;
  float scales[32], scales_ref[32];
  memset(scales, 0, sizeof scales);
  memset(scales_ref, 0, sizeof scales_ref);
  assert_int_equal(dp_set_max_isa(isa), DP_OK);
  dp_status st;
  if (inference) {
    st = dp_inference_add_ls(&p, s, o->t, x.t, f.t, gamma);
    ref_inference_add_ls(&p, s, orf->t, xr.t, fr.t, gamma);
  } else {
    st = dp_forward_ls(&p, s, o->t, x.t, f.t, gamma, scales);
    ref_forward_ls(&p, s, orf->t, xr.t, fr.t, gamma, scales_ref);
  }
  if (st != DP_OK)
    fail_msg("status %d, B=%zu T=%zu D=%zu isa=%s", (int)st, s.batch, s.seq, s.dim, dp_isa_name(isa));
  char what[160];
  snprintf(what, sizeof what, "%s x %s f %s B=%zu T=%zu D=%zu layouts x%d f%d in-place %d p=%g isa=%s t%d",
           inference ? "inference" : "forward", dtype_name(xt), dtype_name(ft), s.batch, s.seq, s.dim, lx, lf,
           inplace, p.drop_prob, dp_isa_name(isa), p.num_threads);
  assert_same(o, orf, what);
  assert_same(&x, &xr, what);
  assert_same(&f, &fr, what);
  if (!inference) assert_same_floats(scales, scales_ref, s.batch < 32 ? s.batch : 32, "scales_out");
  free(gamma);
  tens_free(&x);
  tens_free(&f);
  tens_free(&xr);
  tens_free(&fr);
  if (!inplace) {
    tens_free(&out);
    tens_free(&outr);
  }
}

/* Lifts the cap dp_set_max_isa left: the widest ISA this CPU runs (the
 * highest supported value: NEON on AArch64, AVX-512 or below on x86). */
static void widest_isa(void) {
  for (int i = DP_ISA_COUNT - 1; i >= 0; i--)
    if (dp_isa_supported((dp_isa)i) && dp_set_max_isa((dp_isa)i) == DP_OK) return;
}

static void test_forward_matches_reference(void **state) {
  (void)state;
  tu_rng r = rng_for(__func__);
  for (size_t i = 0; i < iters(400); i++) forward_case(&r, 0);
  widest_isa();
}

static void test_inference_matches_reference(void **state) {
  (void)state;
  tu_rng r = rng_for(__func__);
  for (size_t i = 0; i < iters(200); i++) forward_case(&r, 1);
  widest_isa();
}

/* ---------------------------------------------------------------- backward */

typedef struct bwd_case {
  dp_shape s;
  int xt, ft; /* grad_out and grad_x: xt; grad_f and f: ft */
  dp_params p;
  uint32_t flags;
  int gx, gg, given_scales, inplace; /* inplace: 0 none, 1 grad_f is grad_out, 2 grad_f is f */
  tens gf, gxt, g, f;
  float *gamma, *scales;
  float grad_gamma[MAX_D];
} bwd_case;

static void bwd_make(tu_rng *r, bwd_case *c, dp_shape s, size_t combo) {
  memset(c, 0, sizeof *c);
  c->s = s;
  c->xt = combos[combo][0];
  c->ft = combos[combo][1];
  pick_params(r, &c->p);
  c->flags = (uint32_t)tu_range(r, 0, 7);
  c->gx = tu_range(r, 0, 3) != 0;
  c->gg = tu_range(r, 0, 3) != 0;
  c->given_scales = (int)tu_range(r, 0, 1);
  c->inplace = (int)tu_range(r, 0, 2);
  if (c->inplace == 2 && !c->gg) c->inplace = 0;
  if (c->inplace == 1 && c->xt != c->ft) c->inplace = 2; /* grad_f is exactly grad_out only in one dtype */
  c->g = tens_make(r, c->xt, s, (int)tu_range(r, 0, 2), 1);
  c->f = tens_make(r, c->ft, s, (int)tu_range(r, 0, 2), 1);
  if (!c->inplace) c->gf = tens_make(r, c->ft, s, (int)tu_range(r, 0, 2), 1);
  if (c->gx) c->gxt = tens_make(r, c->xt, s, (int)tu_range(r, 0, 2), 1);
  c->gamma = gamma_make(r, s.dim, tu_range(r, 0, 3) == 0);
  c->scales = (float *)malloc((s.batch ? s.batch : 1) * sizeof(float));
  for (size_t b = 0; b < s.batch; b++) c->scales[b] = ref_sample_scale(&c->p, s.batch, b);
  tu_fill_floats(r, c->grad_gamma, s.dim, 1);
}

static bwd_case bwd_clone(const bwd_case *a) {
  bwd_case c = *a;
  c.g = tens_clone(&a->g, a->s);
  c.f = tens_clone(&a->f, a->s);
  if (!a->inplace) c.gf = tens_clone(&a->gf, a->s);
  if (a->gx) c.gxt = tens_clone(&a->gxt, a->s);
  return c;
}

static const tens *bwd_gf(const bwd_case *c) { return c->inplace == 1 ? &c->g : c->inplace == 2 ? &c->f : &c->gf; }

static dp_status bwd_call(bwd_case *c, int ref) {
  dp_tensor none = {NULL, (dp_dtype)c->xt, c->s.dim, c->s.dim};
  const dp_tensor gx = c->gx ? c->gxt.t : none;
  float *gg = c->gg ? c->grad_gamma : NULL;
  const float *sc = c->given_scales ? c->scales : NULL;
  const uint32_t flags = c->flags;
  if (ref) {
    ref_backward_ls(&c->p, c->s, bwd_gf(c)->t, gx, c->g.t, c->f.t, c->gamma, gg, sc, flags);
    return DP_OK;
  }
  return dp_backward_ls(&c->p, c->s, bwd_gf(c)->t, gx, c->g.t, c->f.t, c->gamma, gg, sc, flags);
}

static void bwd_compare(const bwd_case *a, const bwd_case *b, const char *what) {
  assert_same(bwd_gf(a), bwd_gf(b), what);
  assert_same(&a->g, &b->g, what);
  assert_same(&a->f, &b->f, what);
  if (a->gx) assert_same(&a->gxt, &b->gxt, what);
  assert_same_floats(a->grad_gamma, b->grad_gamma, a->s.dim, "grad_gamma");
}

static void bwd_free(bwd_case *c) {
  tens_free(&c->g);
  tens_free(&c->f);
  if (!c->inplace) tens_free(&c->gf);
  if (c->gx) tens_free(&c->gxt);
}

static void bwd_free_all(bwd_case *c) {
  bwd_free(c);
  free(c->gamma);
  free(c->scales);
}

static void test_backward_matches_reference(void **state) {
  (void)state;
  tu_rng r = rng_for(__func__);
  for (size_t i = 0; i < iters(400); i++) {
    bwd_case lib;
    bwd_make(&r, &lib, pick_shape(&r), pick_combo(&r));
    bwd_case ref = bwd_clone(&lib);
    const dp_isa isa = pick_isa(&r);
    assert_int_equal(dp_set_max_isa(isa), DP_OK);
    const dp_status st = bwd_call(&lib, 0);
    bwd_call(&ref, 1);
    char what[200];
    snprintf(what, sizeof what, "backward x %s f %s B=%zu T=%zu D=%zu flags=%u gx=%d grad_gamma=%d scales=%d "
             "in-place %d p=%g isa=%s t%d", dtype_name(lib.xt), dtype_name(lib.ft), lib.s.batch, lib.s.seq,
             lib.s.dim, (unsigned)lib.flags, lib.gx, lib.gg, lib.given_scales, lib.inplace, lib.p.drop_prob,
             dp_isa_name(isa), lib.p.num_threads);
    if (st != DP_OK) fail_msg("%s: status %d", what, (int)st);
    bwd_compare(&lib, &ref, what);
    bwd_free(&ref);
    bwd_free_all(&lib);
  }
  widest_isa();
}

/* Shapes with several reduction groups, each in f32 and in one of the other
 * dtype combinations (in turn): grad_gamma (and everything else) the same
 * bits at 1, 2, 3 and 4 threads and on every ISA, equal to the reference's
 * fixed order, and within the header's bound of the sum in double
 * precision (of the products of the stored values, whatever their dtype). */
static void test_grad_gamma_deterministic(void **state) {
  (void)state;
  tu_rng r = rng_for(__func__);
  static const dp_shape shapes[] = {
      {64, 50, 96},   /* 3200 rows of ConvNeXt's width: 5 groups of 683 */
      {7, 197, 768},  /* ViT-B rows, 1379: 16 groups of 86 */
      {3, 1, 70000},  /* rows longer than a group: at most 59 groups (2^22 / D), here 3 of one row */
      {200, 1, 700},  /* 3 groups of 94 rows */
      {130, 3, 37},   /* odd width, 390 rows: 1 group of 1772 */
      {300, 1, 5},    /* 300 rows, one group */
  };
  for (size_t q = 0; q < 2 * (sizeof shapes / sizeof shapes[0]); q++) {
    const size_t k = q / 2, combo = q % 2 ? 1 + k % (N_COMBOS - 1) : 0;
    const dp_shape s = shapes[k];
    bwd_case base;
    bwd_make(&r, &base, s, combo);
    base.gg = 1;
    base.flags = 0;
    base.p.drop_prob = 0.25;
    for (size_t b = 0; b < s.batch; b++) base.scales[b] = ref_sample_scale(&base.p, s.batch, b);
    bwd_case ref = bwd_clone(&base);
    bwd_call(&ref, 1);
    int first = 1;
    static float want[MAX_D];
    for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
      if (!dp_isa_supported((dp_isa)isa)) continue;
      assert_int_equal(dp_set_max_isa((dp_isa)isa), DP_OK);
      for (int t = 1; t <= 4; t++) {
        bwd_case c = bwd_clone(&base);
        c.p.num_threads = t;
        assert_int_equal(bwd_call(&c, 0), DP_OK);
        char what[120];
        snprintf(what, sizeof what, "x %s f %s B=%zu T=%zu D=%zu isa=%s t%d", dtype_name(base.xt),
                 dtype_name(base.ft), s.batch, s.seq, s.dim, dp_isa_name((dp_isa)isa), t);
        bwd_compare(&c, &ref, what);
        if (first) memcpy(want, c.grad_gamma, sizeof want);
        first = 0;
        bwd_free(&c);
      }
    }
    widest_isa();
    if (base.gg) {
      /* (P + groups + 2) * 2^-24 * sum |terms|, the header's bound, plus
       * half the subnormal spacing per rounding for results below the
       * normal range; channels whose sums may overflow f32 are skipped. */
      size_t per, count;
      ref_ls_groups(s, &per, &count);
      static double sum[MAX_D], abs_sum[MAX_D];
      ref_grad_gamma_f64(&base.p, s, base.g.t, base.f.t, base.scales, sum, abs_sum);
      const double unit = (double)(per + count + 2) * 0x1p-24;
      for (size_t d = 0; d < s.dim; d++) {
        if (!(abs_sum[d] < 1e37)) continue; /* a special value in the inputs, or near overflow */
        const double err = fabs((double)want[d] - sum[d]);
        const double bound = unit * abs_sum[d] + (double)(per + count + 2) * 0x1p-150;
        if (err > bound) fail_msg("grad_gamma[%zu] = %.9g, double sum %.17g: error %g above the bound %g", d,
                                  (double)want[d], sum[d], err, bound);
      }
    }
    bwd_free(&ref);
    bwd_free_all(&base);
  }
}

/* ---------------------------------------------------------------- NULL gamma, dropped samples */

/* gamma == NULL is the plain operation, bit for bit, on the same buffers. */
static void test_null_gamma_is_plain(void **state) {
  (void)state;
  tu_rng r = rng_for(__func__);
  for (size_t i = 0; i < iters(60); i++) {
    const dp_shape s = pick_shape(&r);
    dp_params p;
    pick_params(&r, &p);
    tens x = tens_make(&r, DP_F32, s, DENSE, 1), f = tens_make(&r, DP_F32, s, SEQ_FIRST, 1),
         o1 = tens_make(&r, DP_F32, s, PADDED, 0);
    tens o2 = tens_clone(&o1, s);
    float sc1[32], sc2[32];
    assert_int_equal(dp_forward_ls(&p, s, o1.t, x.t, f.t, NULL, sc1), dp_forward(&p, s, o2.t, x.t, f.t, sc2));
    assert_same(&o1, &o2, "forward, gamma NULL");
    assert_int_equal(dp_inference_add_ls(&p, s, o1.t, x.t, f.t, NULL), dp_inference_add(&p, s, o2.t, x.t, f.t));
    assert_same(&o1, &o2, "inference, gamma NULL");
    tens gx1 = tens_make(&r, DP_F32, s, DENSE, 1), gx2 = tens_clone(&gx1, s);
    const uint32_t flags = (uint32_t)tu_range(&r, 0, 3);
    dp_tensor nof = {NULL, DP_F32, 0, 0};
    assert_int_equal(dp_backward_ls(&p, s, o1.t, gx1.t, x.t, nof, NULL, NULL, NULL, flags),
                     dp_backward(&p, s, o2.t, gx2.t, x.t, NULL, flags));
    assert_same(&o1, &o2, "backward grad_f, gamma NULL");
    assert_same(&gx1, &gx2, "backward grad_x, gamma NULL");
    tens_free(&x);
    tens_free(&f);
    tens_free(&o1);
    tens_free(&o2);
    tens_free(&gx1);
    tens_free(&gx2);
  }
}

/* Element i of a dense tensor t: its address. */
static unsigned char *elem(const tens *t, size_t i) { return t->buf.data + i * tu_dtype_size(t->t.dtype); }

/* A quiet NaN in t's dtype at element i. */
static void put_nan(const tens *t, size_t i) {
  const uint32_t q32 = 0x7fc00000u;
  const uint16_t q16 = t->t.dtype == DP_BF16 ? 0x7fc0u : 0x7e00u;
  if (t->t.dtype == DP_F32) memcpy(elem(t, i), &q32, 4);
  else memcpy(elem(t, i), &q16, 2);
}

/* A dropped sample's f and grad_out rows hold NaN: nothing of them reaches
 * out, grad_f or grad_gamma (timm would give NaN), in every dtype
 * combination, at 1 and 2 threads. */
static void test_dropped_never_read(void **state) {
  (void)state;
  tu_rng r = rng_for(__func__);
  const dp_shape s = {24, 9, 96};
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.5;
  p.seed = 7;
  for (size_t q = 0; q < 2 * N_COMBOS; q++) {
    const int xt = combos[q % N_COMBOS][0], ft = combos[q % N_COMBOS][1];
    p.num_threads = 1 + (int)(q / N_COMBOS);
    tens x = tens_make(&r, xt, s, DENSE, 0), f = tens_make(&r, ft, s, DENSE, 0), out = tens_make(&r, xt, s, DENSE, 0);
    tens g = tens_make(&r, xt, s, DENSE, 0), gf = tens_make(&r, ft, s, DENSE, 0);
    float *gamma = gamma_make(&r, s.dim, 0), grad_gamma[96];
    size_t dropped = 0;
    for (size_t b = 0; b < s.batch; b++) {
      if (ref_sample_scale(&p, s.batch, b) != 0.0f) continue;
      dropped++;
      for (size_t i = 0; i < s.seq * s.dim; i++) {
        put_nan(&f, b * s.seq * s.dim + i);
        put_nan(&g, b * s.seq * s.dim + i);
      }
    }
    assert_true(dropped > 0 && dropped < s.batch);
    assert_int_equal(dp_forward_ls(&p, s, out.t, x.t, f.t, gamma, NULL), DP_OK);
    dp_tensor nogx = {NULL, (dp_dtype)xt, 0, 0};
    assert_int_equal(dp_backward_ls(&p, s, gf.t, nogx, g.t, f.t, gamma, grad_gamma, NULL, 0), DP_OK);
    const size_t xs = tu_dtype_size(xt), fs = tu_dtype_size(ft);
    static const unsigned char zeros[4];
    for (size_t i = 0; i < s.batch * s.seq * s.dim; i++) {
      const size_t b = i / (s.seq * s.dim);
      if (ref_sample_scale(&p, s.batch, b) == 0.0f) {
        assert_memory_equal(elem(&out, i), elem(&x, i), xs);
        assert_memory_equal(elem(&gf, i), zeros, fs); /* +0.0 */
      } else {
        assert_false(isnan(tu_load_elem(elem(&out, i), xt)));
        assert_false(isnan(tu_load_elem(elem(&gf, i), ft)));
      }
    }
    for (size_t d = 0; d < s.dim; d++) assert_false(isnan(grad_gamma[d]));
    free(gamma);
    tens_free(&x);
    tens_free(&f);
    tens_free(&out);
    tens_free(&g);
    tens_free(&gf);
  }
}

/* timm's numbers, written out: x + drop_path(f * gamma) with keep 0.8
 * (s = 1.25f) on values where an FMA or another order rounds differently. */
static void test_arithmetic_order(void **state) {
  (void)state;
  const dp_shape s = {1, 1, 4};
  float x[4] = {1.0f, -3.0f, 0x1.000002p0f, 1e-8f}, f[4] = {0x1.fffffep-1f, 0.1f, 0x1.000002p0f, 3.0f};
  const float gamma[4] = {0x1.800002p0f, 1e-6f, 0x1.fffffcp-1f, 0.3f};
  float out[4], gf[4], gx[4], gg[4];
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.2; /* keep = 0.8f, s = 1/0.8f */
  const float sc = 1.0f / (float)(1.0 - 0.2);
  while (ref_sample_scale(&p, 1, 0) == 0.0f) p.seed++; /* a seed that keeps the sample */
  assert_true(ref_sample_scale(&p, 1, 0) == sc);
  assert_int_equal(dp_forward_ls(&p, s, dp_tensor_dense(out, DP_F32, s), dp_tensor_dense(x, DP_F32, s),
                                 dp_tensor_dense(f, DP_F32, s), gamma, NULL),
                   DP_OK);
  const float g[4] = {0.7f, -1.1f, 0x1.000002p0f, 2.5f};
  assert_int_equal(dp_backward_ls(&p, s, dp_tensor_dense(gf, DP_F32, s), dp_tensor_dense(gx, DP_F32, s),
                                  dp_tensor_dense((void *)g, DP_F32, s), dp_tensor_dense(f, DP_F32, s), gamma, gg,
                                  NULL, 0),
                   DP_OK);
  for (int i = 0; i < 4; i++) {
    volatile float t = f[i] * gamma[i]; /* timm: ls(f) = f * gamma, then * (mask / keep) */
    volatile float dropped = t * sc;
    volatile float want = x[i] + dropped;
    assert_true(tu_f32_bits(out[i]) == tu_f32_bits(want));
    volatile float grad_t = g[i] * sc; /* autograd: grad of t, then of f and gamma */
    volatile float wf = grad_t * gamma[i];
    volatile float wg = grad_t * f[i];
    assert_true(tu_f32_bits(gf[i]) == tu_f32_bits(wf));
    assert_true(tu_f32_bits(gg[i]) == tu_f32_bits(0.0f + wg));
    assert_true(tu_f32_bits(gx[i]) == tu_f32_bits(g[i]));
  }
}

/* ---------------------------------------------------------------- contract */

/* Every bad argument: its status, and no output byte changed. */
static void test_contract(void **state) {
  (void)state;
  tu_rng r = rng_for(__func__);
  const dp_shape s = {4, 3, 40};
  const size_t n = 4 * 3 * 40;
  float *buf = (float *)malloc(6 * n * sizeof(float) + 256);
  float *x = buf, *f = buf + n, *out = buf + 2 * n, *gf = buf + 3 * n, *gx = buf + 4 * n, *g = buf + 5 * n;
  float gamma[41], grad_gamma[41];
  tu_fill_floats(&r, buf, 6 * n, 0);
  tu_fill_floats(&r, gamma, 41, 0);
  tu_fill_floats(&r, grad_gamma, 41, 0);
  float *snap = (float *)malloc(6 * n * sizeof(float) + 256);
  float gg_snap[41];
  memcpy(snap, buf, 6 * n * sizeof(float));
  memcpy(gg_snap, grad_gamma, sizeof gg_snap);
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.3;
  const dp_tensor tx = dp_tensor_dense(x, DP_F32, s), tf = dp_tensor_dense(f, DP_F32, s),
                  to = dp_tensor_dense(out, DP_F32, s), tgf = dp_tensor_dense(gf, DP_F32, s),
                  tgx = dp_tensor_dense(gx, DP_F32, s), tg = dp_tensor_dense(g, DP_F32, s);
  dp_tensor nof = {NULL, DP_F32, 120, 40};
#define UNTOUCHED()                                                      \
  do {                                                                   \
    assert_memory_equal(buf, snap, 6 * n * sizeof(float));               \
    assert_memory_equal(grad_gamma, gg_snap, sizeof gg_snap);           \
  } while (0)
  dp_params bad = p;
  bad.drop_prob = 2.0;
  assert_int_equal(dp_forward_ls(&bad, s, to, tx, tf, gamma, NULL), DP_ERR_BAD_PROBABILITY);
  assert_int_equal(dp_backward_ls(&bad, s, tgf, tgx, tg, tf, gamma, grad_gamma, NULL, 0), DP_ERR_BAD_PROBABILITY);
  assert_int_equal(dp_backward_ls(&bad, s, tgf, tgx, tg, tf, NULL, NULL, NULL, 0), DP_ERR_BAD_PROBABILITY);
  /* gamma misaligned, overlapping an output; scales_out overlapping gamma. */
  assert_int_equal(dp_forward_ls(&p, s, to, tx, tf, (const float *)(const void *)((const char *)gamma + 2), NULL),
                   DP_ERR_MISALIGNED);
  assert_int_equal(dp_forward_ls(&p, s, to, tx, tf, out + 5, NULL), DP_ERR_OVERLAP);
  assert_int_equal(dp_inference_add_ls(&p, s, to, tx, tf, out + 100), DP_ERR_OVERLAP);
  assert_int_equal(dp_forward_ls(&p, s, to, tx, tf, gamma, gamma + 1), DP_ERR_OVERLAP);
  /* An input may overlap gamma. */
  memcpy(gamma, x, sizeof gamma);
  /* Outputs other than exactly x or f. */
  dp_tensor shifted = dp_tensor_dense(x + 1, DP_F32, s);
  assert_int_equal(dp_forward_ls(&p, s, shifted, tx, tf, gamma, NULL), DP_ERR_OVERLAP);
  /* Dtype pairs outside the combinations: bf16 residual with an f16 or f32
   * branch. */
  dp_tensor h = dp_tensor_dense(out, DP_BF16, s), hx = dp_tensor_dense(x, DP_BF16, s),
            hf = dp_tensor_dense(f, DP_F16, s);
  assert_int_equal(dp_forward_ls(&p, s, h, hx, hf, gamma, NULL), DP_ERR_BAD_DTYPE);
  assert_int_equal(dp_inference_add_ls(&p, s, h, hx, tf, gamma), DP_ERR_BAD_DTYPE);
  UNTOUCHED();
  /* Backward: flags, grad_gamma without gamma, f missing, overlaps, misalignment. */
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, tf, gamma, grad_gamma, NULL, 1u << 3), DP_ERR_BAD_FLAGS);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, tf, NULL, grad_gamma, NULL, 0), DP_ERR_BAD_ARGUMENT);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, nof, gamma, grad_gamma, NULL, 0), DP_ERR_NULL_POINTER);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, tf, gamma, gf + 3, NULL, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, tf, gamma, g + 3, NULL, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, tf, gamma, gamma, NULL, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, tf, gf + 7, grad_gamma, NULL, 0), DP_ERR_OVERLAP);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, tf, gamma,
                                  (float *)(void *)((char *)grad_gamma + 1), NULL, 0),
                   DP_ERR_MISALIGNED);
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgf, tg, tf, gamma, grad_gamma, NULL, 0), DP_ERR_OVERLAP);
  dp_tensor hg = dp_tensor_dense(g, DP_BF16, s), hgf = dp_tensor_dense(gf, DP_F16, s);
  assert_int_equal(dp_backward_ls(&p, s, hgf, nof, hg, hf, gamma, grad_gamma, NULL, 0), DP_ERR_BAD_DTYPE);
  assert_int_equal(dp_backward_ls(&p, s, tgf, nof, hg, tf, gamma, grad_gamma, NULL, 0), DP_ERR_BAD_DTYPE);
  UNTOUCHED();
  /* f is not read without grad_gamma: it may be absent. */
  assert_int_equal(dp_backward_ls(&p, s, tgf, tgx, tg, nof, gamma, NULL, NULL, 0), DP_OK);
  /* grad_f may be exactly f or grad_out. */
  assert_int_equal(dp_backward_ls(&p, s, tf, tgx, tg, tf, gamma, grad_gamma, NULL, 0), DP_OK);
  assert_int_equal(dp_backward_ls(&p, s, tg, tgx, tg, tf, gamma, grad_gamma, NULL, 0), DP_OK);
  /* D = 0 writes nothing; B = 0 makes grad_gamma the empty sum, +0. */
  const dp_shape none = {0, 3, 40};
  grad_gamma[0] = -0.0f;
  assert_int_equal(dp_backward_ls(&p, none, tgf, tgx, tg, tf, gamma, grad_gamma, NULL, 0), DP_OK);
  assert_true(tu_f32_bits(grad_gamma[0]) == 0u);
#undef UNTOUCHED
  free(buf);
  free(snap);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_matches_reference),
      cmocka_unit_test(test_inference_matches_reference),
      cmocka_unit_test(test_backward_matches_reference),
      cmocka_unit_test(test_grad_gamma_deterministic),
      cmocka_unit_test(test_null_gamma_is_plain),
      cmocka_unit_test(test_dropped_never_read),
      cmocka_unit_test(test_arithmetic_order),
      cmocka_unit_test(test_contract),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
