/*
 * The API fuzzer's fused residual + norm family (fuzz.h has the frame):
 * dp_forward_norm, dp_inference_norm and dp_backward_norm.  The dp_norm
 * descriptor is decoded here (NULL, kind, eps); its arrays gamma, beta,
 * ls_gamma, mean and rstd are arena objects like the tensors, so the
 * generic rules check their sizes and overlaps.
 *
 * What is modeled, from droppath.h (outputs not listed are checked only for
 * every ISA giving scalar's bits, no write outside the outputs and no change
 * on error: the norm itself is not modeled, y, rstd, grad_x and the kept
 * samples' grad_f depend on its 16-lane row sums):
 *   forward    r = x + s*f, or x + ((ls_gamma*f)*s), x's bits for dropped
 *              samples (f32 r, as dp_forward(_ls)); scales_out is the
 *              mask's; RMSNorm writes mean 0;
 *   inference  r = x + f or x + keep*f (ls_gamma*f in place of f), x when
 *              keep == 0 under Huang's rule;
 *   backward   grad_f of dropped samples +0, or untouched when accumulated
 *              (any dtype); grad_beta = the sum of grad_y and grad_gamma =
 *              the sum of grad_y*xhat, xhat = (r - mean)*rstd from the
 *              saved statistics (mean +0 for RMSNorm), both in the
 *              header's order, LayerScale's row groups (fz_ls_group_rows,
 *              fz_group_sum); with no rows +0 (or unchanged when
 *              accumulating).
 * Never read (poisoned): f of dropped samples in the forward, f entirely in
 * the inference with keep == 0 under Huang's rule.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

static int have_nfwd[3][3], have_nbwd[3][3];

static void probe(void) {
  static int done;
  if (done) return;
  done = 1;
  dp_params p;
  dp_params_init(&p);
  dp_norm n;
  dp_norm_init(&n);
  float mean[1] = {0}, rstd[1] = {1};
  n.mean = mean;
  n.rstd = rstd;
  const dp_shape sh = {1, 1, 1};
  for (int x = 0; x < 3; x++)
    for (int f = 0; f < 3; f++) {
      float y[1] = {0}, r[1] = {0}, a[1] = {0}, b[1] = {0};
      have_nfwd[x][f] = dp_forward_norm(&p, sh, &n, (dp_tensor){y, f, 1, 1}, (dp_tensor){r, x, 1, 1},
                                        (dp_tensor){a, x, 1, 1}, (dp_tensor){b, f, 1, 1}, NULL) == DP_OK;
      have_nbwd[x][f] = dp_backward_norm(&p, sh, &n, (dp_tensor){y, f, 1, 1}, (dp_tensor){NULL, x, 1, 1},
                                         (dp_tensor){b, f, 1, 1}, (dp_tensor){a, x, 1, 1},
                                         (dp_tensor){NULL, x, 1, 1}, NULL, NULL, NULL, 0) == DP_OK;
    }
}

static const dp_params *params_of(const fz_case *c) { return c->params_null ? NULL : &c->prm; }

static int on(const fz_case *c, int idx) { return c->obj[idx].present && !c->obj[idx].null; }

/* ------------------------------------------------------------ the descriptor */

static void decode_norm(fz_case *c, fz_reader *r) {
  const unsigned k = (unsigned)fz_take(r, 1), e = (unsigned)fz_take(r, 1);
  c->norm_null = k == 255;
  c->norm_kind = k < 128 ? DP_NORM_LAYER : k < 250 ? DP_NORM_RMS : (k & 1) ? 2 : -1;
  /* eps: finite and >= 0 (-0.0 included) is valid; NaN, negative or infinite is not. */
  static const float eps[] = {1e-5f, 1e-6f, 0.0f, 1.0f, -0.0f, 0x1p-149f, 1e30f, FLT_MAX,
                              NAN,   -1e-5f, INFINITY, -INFINITY, -0x1p-149f};
  c->norm_eps = e < 128 ? eps[0] : e < 220 ? eps[e % 8] : eps[e % (sizeof eps / sizeof eps[0])];
}

static int eps_valid(float e) { return e >= 0.0f && !isinf(e); }

/* The descriptor's checks (after params and, in the backward, its flags). */
static int expect_norm(const fz_case *c, const char **why) {
  if (c->norm_null) return *why = "norm NULL", EXPECT_FAIL;
  if (c->norm_kind != DP_NORM_LAYER && c->norm_kind != DP_NORM_RMS) return *why = "norm kind", EXPECT_FAIL;
  if (!eps_valid(c->norm_eps)) return *why = "eps", EXPECT_FAIL;
  return EXPECT_OK;
}

static void dump_norm(const fz_case *c) {
  fprintf(stderr, "  norm %s kind=%d eps=%a\n", c->norm_null ? "NULL" : "set", c->norm_kind, (double)c->norm_eps);
}

/* ------------------------------------------------------------ forward and inference */

/* Objects: y (may be exactly f), r (optional, may be exactly x), x, f,
 * gamma, beta, ls_gamma, mean, rstd, scales_out (the training forward). */
enum { NY, NR, NX, NF, NGAMMA, NBETA, NLS, NMEAN, NRSTD, NSCALES };

static void post_fwd(fz_case *c, fz_reader *r, int with_array) {
  c->obj[NSCALES].present = c->op == OP_FWD_NORM && with_array;
  const unsigned pres = (unsigned)fz_take(r, 1);
  c->obj[NR].force_null = (pres & 3) == 0; /* r not written */
  c->obj[NGAMMA].force_null = pres >> 2 & 1;
  c->obj[NBETA].force_null = pres >> 3 & 1;
  c->obj[NLS].force_null = pres >> 4 & 1;
  c->obj[NMEAN].force_null = pres >> 5 & 1;
  c->obj[NRSTD].force_null = pres >> 6 & 1;
}

static int have_fwd(const fz_case *c) {
  probe();
  return have_nfwd[c->obj[NX].t.dtype][c->obj[NF].t.dtype];
}

static dp_norm descriptor(const fz_case *c, unsigned char *base, int gamma, int beta, int ls, int mean, int rstd) {
  dp_norm n;
  dp_norm_init(&n);
  n.kind = c->norm_kind;
  n.eps = c->norm_eps;
  n.gamma = (const float *)fz_arg(&c->obj[gamma], base);
  n.beta = beta >= 0 ? (const float *)fz_arg(&c->obj[beta], base) : NULL;
  n.ls_gamma = (const float *)fz_arg(&c->obj[ls], base);
  n.mean = (float *)fz_arg(&c->obj[mean], base);
  n.rstd = (float *)fz_arg(&c->obj[rstd], base);
  return n;
}

static dp_status call_fwd(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  const dp_norm n = descriptor(c, base, NGAMMA, NBETA, NLS, NMEAN, NRSTD);
  const dp_tensor y = fz_tensor(&o[NY], base), r = fz_tensor(&o[NR], base), x = fz_tensor(&o[NX], base),
                  f = fz_tensor(&o[NF], base);
  if (c->op == OP_INFER_NORM) return dp_inference_norm(params_of(c), c->shape, c->norm_null ? NULL : &n, y, r, x, f);
  return dp_forward_norm(params_of(c), c->shape, c->norm_null ? NULL : &n, y, r, x, f,
                         (float *)fz_arg(&o[NSCALES], base));
}

/* The join's fixed scale at inference: 1, or keep under Huang's rule. */
static float infer_scale(const fz_case *c) { return c->prm.scale_by_keep ? 1.0f : fz_keep(c); }

static void poison_fwd(const fz_case *c, unsigned char *base, const float *s) {
  if (c->op == OP_FWD_NORM) {
    if (s) fz_poison_rows(c, base, NF, s); /* dropped samples: r = x, f not read */
  } else if (!c->params_null && infer_scale(c) == 0.0f) {
    fz_poison_rows(c, base, NF, NULL); /* "f not read when keep == 0" */
  }
}

FZ_NO_COV static void check_fwd(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (c->B > ARENA_CAP / 4) return; /* larger: D == 0, nothing written */
  const int infer = c->op == OP_INFER_NORM;
  if (!infer) {
    if (!s) return;
    fz_check_scales_out(c, got, NSCALES, s);
  }
  /* With D == 0 no row is normalised: the header does not say whether mean is written then. */
  if (c->norm_kind == DP_NORM_RMS && c->D != 0 && fz_live(c, NMEAN))
    for (size_t k = 0; k < c->B * c->T; k++)
      if (fz_arr_f32(c, got, NMEAN, k) != 0.0f) fz_fail("RMSNorm mean[%zu] = %a, not 0", k, (double)fz_arr_f32(c, got, NMEAN, k));
  if (!fz_live(c, NR) || c->obj[NR].t.dtype != DP_F32) return;
  float *ls = fz_channel(c, init, NLS);
  for (size_t b = 0; b < c->B; b++) {
    const float sb = infer ? infer_scale(c) : s[b];
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float x = fz_load(c, init, NX, b, t, d);
        fz_expect_f32(c, got, NR, b, t, d, sb != 0.0f ? fz_join(x, fz_load(c, init, NF, b, t, d), ls, d, sb) : x);
      }
  }
  free(ls);
}

#define NORM_FWD_ROLES                                                                                  \
  {{.kind = FZ_TENSOR, .cls = FZ_F, .out = 1, .may_be = 1u << NF},                                     \
   {.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .opt = 1, .may_be = 1u << NX},                           \
   FZ_T(FZ_X, 0),                                                                                      \
   FZ_T(FZ_F, 0),                                                                                      \
   FZ_A(FZ_N_CHAN, 4, 0),                                                                              \
   FZ_A(FZ_N_CHAN, 4, 0),                                                                              \
   FZ_A(FZ_N_CHAN, 4, 0),                                                                              \
   FZ_A(FZ_N_ROW, 4, 1),                                                                               \
   FZ_A(FZ_N_ROW, 4, 1),                                                                               \
   FZ_A(FZ_N_SAMPLE, 4, 1)}

const fz_opdef fz_op_fwd_norm = {
    .name = "forward_norm",
    .role = NORM_FWD_ROLES,
    .place_order = {NX, NF, NGAMMA, NBETA, NLS, NY, NR, NMEAN, NRSTD, NSCALES, -1},
    .x_role = NX, .f_role = NF, .scales_in = -1,
    .pre = decode_norm, .post = post_fwd, .expect = expect_norm, .have = have_fwd, .call = call_fwd,
    .poison = poison_fwd, .check = check_fwd, .dump = dump_norm};

/* "Arguments as dp_forward_norm", without scales_out (post_fwd leaves it absent). */
const fz_opdef fz_op_infer_norm = {
    .name = "inference_norm",
    .role = NORM_FWD_ROLES,
    .place_order = {NX, NF, NGAMMA, NBETA, NLS, NY, NR, NMEAN, NRSTD, -1},
    .x_role = NX, .f_role = NF, .scales_in = -1,
    .pre = decode_norm, .post = post_fwd, .expect = expect_norm, .have = have_fwd, .call = call_fwd,
    .poison = poison_fwd, .check = check_fwd, .dump = dump_norm};

/* ------------------------------------------------------------ backward */

/* Objects: grad_f (may be exactly grad_y), grad_x (optional, may be exactly
 * grad_r_in), grad_y, r, grad_r_in (optional), scales, gamma, ls_gamma,
 * mean, rstd (inputs), grad_gamma, grad_beta (outputs). */
enum { BGF, BGX, BGY, BR, BGIN, BSCALES, BGAMMA, BLS, BMEAN, BRSTD, BGG, BGB };

static void post_bwd(fz_case *c, fz_reader *r, int with_array) {
  c->obj[BSCALES].present = with_array;
  const unsigned fl = (unsigned)fz_take(r, 1);
  c->flags = fl < 248 ? fl & 7u : 1u << (fl & 31);
  const unsigned pres = (unsigned)fz_take(r, 1), pres2 = (unsigned)fz_take(r, 1);
  c->obj[BGX].force_null = (pres & 3) == 0;
  c->obj[BGIN].force_null = (pres >> 2 & 3) == 0;
  c->obj[BGG].force_null = (pres >> 4 & 3) == 0;
  c->obj[BGB].force_null = (pres >> 6 & 3) == 0;
  c->obj[BGAMMA].force_null = pres2 & 1;
  c->obj[BLS].force_null = pres2 >> 1 & 1;
  c->obj[BMEAN].force_null = (pres2 >> 2 & 7) == 0; /* required for LayerNorm */
  c->obj[BRSTD].force_null = (pres2 >> 5 & 7) == 0; /* required */
}

static int expect_bwd(const fz_case *c, const char **why) {
  if (c->flags & ~7u) return *why = "flags", EXPECT_FAIL;
  const int e = expect_norm(c, why);
  if (e != EXPECT_OK) return e;
  /* "then a missing rstd (or LayerNorm mean) is DP_ERR_NULL_POINTER" when there are rows and D > 0 */
  if (c->B != 0 && c->D != 0 && (!on(c, BRSTD) || (c->norm_kind == DP_NORM_LAYER && !on(c, BMEAN))))
    return *why = "statistics NULL", EXPECT_FAIL;
  /* B*T beyond size_t with D == 0: no byte count overflows; the header does not say. */
  if ((u128)c->B * c->T > SIZE_MAX) return EXPECT_EITHER;
  return EXPECT_OK;
}

static int have_bwd(const fz_case *c) {
  probe();
  return have_nbwd[c->obj[BR].t.dtype][c->obj[BGY].t.dtype];
}

static dp_status call_bwd(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  const dp_norm n = descriptor(c, base, BGAMMA, -1, BLS, BMEAN, BRSTD);
  return dp_backward_norm(params_of(c), c->shape, c->norm_null ? NULL : &n, fz_tensor(&o[BGF], base),
                          fz_tensor(&o[BGX], base), fz_tensor(&o[BGY], base), fz_tensor(&o[BR], base),
                          fz_tensor(&o[BGIN], base), (const float *)fz_arg(&o[BSCALES], base),
                          (float *)fz_arg(&o[BGG], base), (float *)fz_arg(&o[BGB], base), c->flags);
}

typedef struct term_ctx {
  const fz_case *c;
  const unsigned char *init;
} term_ctx;

FZ_NO_COV static float beta_term(const void *ctx, size_t b, size_t t, size_t d) {
  const term_ctx *k = (const term_ctx *)ctx;
  return fz_load(k->c, k->init, BGY, b, t, d);
}

/* grad_y*xhat, xhat = (r - mean)*rstd of row b*T + t (mean +0 for RMSNorm). */
FZ_NO_COV static float gamma_term(const void *ctx, size_t b, size_t t, size_t d) {
  const term_ctx *k = (const term_ctx *)ctx;
  const fz_case *c = k->c;
  const size_t row = b * c->T + t;
  const float mean = c->norm_kind == DP_NORM_RMS ? 0.0f : fz_arr_f32(c, k->init, BMEAN, row);
  const float xhat = (fz_load(c, k->init, BR, b, t, d) - mean) * fz_arr_f32(c, k->init, BRSTD, row);
  return fz_load(c, k->init, BGY, b, t, d) * xhat;
}

FZ_NO_COV static void check_bwd(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s || c->D == 0) return;
  const int acc_f = (c->flags & DP_BWD_ACCUMULATE_GRAD_F) != 0;
  const size_t es = c->obj[BGF].es;
  static const unsigned char zero[4];
  for (size_t b = 0; b < c->B; b++) {
    if (s[b] != 0.0f) continue;
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        if (acc_f) fz_expect_same(c, init, got, BGF, b, t, d, "grad_f of a dropped sample, accumulated");
        else if (memcmp(fz_at(c, got, BGF, b, t, d), zero, es) != 0)
          fz_fail("grad_f[b=%zu t=%zu d=%zu] of a dropped sample is not +0", b, t, d);
      }
  }
  /* The parameter gradients share LayerScale's row groups (no rows: +0). */
  const size_t G = fz_ls_group_rows(c);
  const term_ctx k = {c, init};
  const int acc = (c->flags & DP_NORM_ACCUMULATE_GRAD_PARAMS) != 0;
  const int which[2] = {BGB, BGG};
  const fz_term_fn terms[2] = {beta_term, gamma_term};
  for (int w = 0; w < 2; w++) {
    if (!fz_live(c, which[w])) continue;
    float *old = fz_channel(c, init, which[w]), *want = fz_channel(c, init, which[w]);
    fz_group_sum(c, G, NULL, terms[w], &k, old, acc, want);
    fz_expect_channels(c, got, which[w], want, w ? "grad_gamma" : "grad_beta");
    free(old);
    free(want);
  }
}

const fz_opdef fz_op_bwd_norm = {
    .name = "backward_norm",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_F, .out = 1, .may_be = 1u << BGY},
             {.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .opt = 1, .may_be = 1u << BGIN},
             FZ_T(FZ_F, 0),
             FZ_T(FZ_X, 0),
             {.kind = FZ_TENSOR, .cls = FZ_X, .opt = 1},
             FZ_A(FZ_N_SAMPLE, 4, 0),
             FZ_A(FZ_N_CHAN, 4, 0),
             FZ_A(FZ_N_CHAN, 4, 0),
             FZ_A(FZ_N_ROW, 4, 0),
             FZ_A(FZ_N_ROW, 4, 0),
             FZ_A(FZ_N_CHAN, 4, 1),
             FZ_A(FZ_N_CHAN, 4, 1)},
    .place_order = {BGY, BR, BGIN, BSCALES, BGAMMA, BLS, BMEAN, BRSTD, BGF, BGX, BGG, BGB},
    .x_role = BR, .f_role = BGY, .scales_in = BSCALES,
    .pre = decode_norm, .post = post_bwd, .expect = expect_bwd, .have = have_bwd, .call = call_bwd,
    .check = check_bwd, .dump = dump_norm};
