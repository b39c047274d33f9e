/*
 * The API fuzzer's LayerScale family (fuzz.h has the frame): dp_forward_ls,
 * dp_inference_add_ls and dp_backward_ls, gamma and grad_gamma being
 * per-channel f32 arrays in the arena like every other argument.
 *
 * Models, from droppath.h:
 *   forward    out = x + ((gamma_d*f)*s) for kept samples, x's bits for
 *              dropped ones (f32 out); scales_out is the mask's;
 *   inference  the same with s = 1 or keep; with keep == 0 under Huang's
 *              rule the header's formula and dp_inference_add's "out = x"
 *              disagree when gamma*f is not finite, so either passes there;
 *   backward   grad_f = (grad_out*s)*gamma_d (+= old), +0 or untouched for
 *              dropped samples; grad_x = grad_out (+= old); grad_gamma summed
 *              in the header's fixed order of row groups (fz_group_sum),
 *              each checked bit for bit (f32 outputs);
 *   gamma NULL: the plain operation's contract and model, bit for bit.
 * Never read (poisoned): f of dropped samples (forward, backward); in the
 * backward f entirely without grad_gamma ("read only for grad_gamma"),
 * grad_out of dropped samples without grad_x ("a dropped row is skipped, f
 * and grad_out never read for it"), and with gamma NULL f is ignored
 * ("f not looked at": not even its dtype).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

/* Objects: out, x, f, scales_out, gamma (forward; inference without
 * scales_out); grad_f, grad_x, grad_out, scales, f, gamma, grad_gamma
 * (backward).  The first four are the plain operation's, in its places. */
enum { LS_GAMMA = 4 };
enum { BL_GF, BL_GX, BL_GO, BL_SCALES, BL_F, BL_GAMMA, BL_GG };

static int gamma_on(const fz_case *c, int idx) { return c->obj[idx].present && !c->obj[idx].null; }

/* ------------------------------------------------------------ forward and inference */

static void post_fwd(fz_case *c, fz_reader *r, int with_array) {
  c->obj[3].present = with_array;
  c->obj[LS_GAMMA].force_null = (fz_take(r, 1) & 7) == 0; /* gamma NULL: the plain call */
}

static void post_infer(fz_case *c, fz_reader *r, int with_array) {
  (void)with_array;
  c->obj[LS_GAMMA].force_null = (fz_take(r, 1) & 7) == 0;
}

static int have_join(const fz_case *c) {
  const fz_combos *h = fz_have();
  const int X = c->obj[1].t.dtype, F = c->obj[2].t.dtype;
  return gamma_on(c, LS_GAMMA) ? h->fwdls[X][F] : h->fwd[X][F];
}

static dp_status call_fwd(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_forward_ls(c->params_null ? NULL : &c->prm, c->shape, fz_tensor(&o[0], base), fz_tensor(&o[1], base),
                       fz_tensor(&o[2], base), (const float *)fz_arg(&o[LS_GAMMA], base), (float *)fz_arg(&o[3], base));
}

static dp_status call_infer(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_inference_add_ls(c->params_null ? NULL : &c->prm, c->shape, fz_tensor(&o[0], base),
                             fz_tensor(&o[1], base), fz_tensor(&o[2], base),
                             (const float *)fz_arg(&o[LS_GAMMA], base));
}

/* Dropped samples copy x; f is not read for them. */
static void poison_fwd(const fz_case *c, unsigned char *base, const float *s) {
  if (s) fz_poison_rows(c, base, 2, s);
}

/* Only the plain call promises that keep == 0 under Huang's rule leaves f unread. */
static void poison_infer(const fz_case *c, unsigned char *base, const float *s) {
  (void)s;
  if (!gamma_on(c, LS_GAMMA) && !c->params_null && !c->prm.scale_by_keep && fz_keep(c) == 0.0f)
    fz_poison_rows(c, base, 2, NULL);
}

FZ_NO_COV static void check_fwd(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s) return; /* only D == 0 gets here: nothing written */
  fz_check_scales_out(c, got, 3, s);
  if (c->obj[0].t.dtype != DP_F32) return;
  float *g = fz_channel(c, init, LS_GAMMA);
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float x = fz_load(c, init, 1, b, t, d);
        fz_expect_f32(c, got, 0, b, t, d, s[b] != 0.0f ? fz_join(x, fz_load(c, init, 2, b, t, d), g, d, s[b]) : x);
      }
  free(g);
}

FZ_NO_COV static void check_infer(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  (void)s;
  if (c->B > ARENA_CAP / 4 || c->obj[0].t.dtype != DP_F32) return; /* larger: D == 0, nothing written */
  const float sb = c->prm.scale_by_keep ? 1.0f : fz_keep(c);
  float *g = fz_channel(c, init, LS_GAMMA);
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float x = fz_load(c, init, 1, b, t, d), f = fz_load(c, init, 2, b, t, d);
        if (sb != 0.0f) {
          fz_expect_f32(c, got, 0, b, t, d, fz_join(x, f, g, d, sb));
          continue;
        }
        /* keep == 0: x (dp_inference_add's rule), or with gamma the formula x + ((gamma*f)*0). */
        const float v = fz_load(c, got, 0, b, t, d);
        if (!g || tu_f32_bits(v) != tu_f32_bits(fz_join(x, f, g, d, 0.0f))) fz_expect_f32(c, got, 0, b, t, d, x);
      }
  free(g);
}

const fz_opdef fz_op_fwd_ls = {
    .name = "forward_ls",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .may_be = 1u << 1 | 1u << 2}, FZ_T(FZ_X, 0), FZ_T(FZ_F, 0),
             FZ_A(FZ_N_SAMPLE, 4, 1), FZ_A(FZ_N_CHAN, 4, 0)},
    .place_order = {1, 2, LS_GAMMA, 0, 3, -1},
    .x_role = 1, .f_role = 2, .scales_in = -1,
    .post = post_fwd, .have = have_join, .call = call_fwd, .poison = poison_fwd, .check = check_fwd};

/* As dp_inference_add, the header does not say whether out may be exactly x or f. */
const fz_opdef fz_op_infer_ls = {
    .name = "inference_add_ls",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .may_be_unspec = 1u << 1 | 1u << 2}, FZ_T(FZ_X, 0),
             FZ_T(FZ_F, 0), {.kind = FZ_NONE}, FZ_A(FZ_N_CHAN, 4, 0)},
    .place_order = {1, 2, LS_GAMMA, 0, -1},
    .x_role = 1, .f_role = 2, .scales_in = -1,
    .post = post_infer, .have = have_join, .call = call_infer, .poison = poison_infer, .check = check_infer};

/* ------------------------------------------------------------ backward */

static void post_bwd(fz_case *c, fz_reader *r, int with_array) {
  c->obj[BL_SCALES].present = with_array;
  const unsigned fl = (unsigned)fz_take(r, 1);
  c->flags = fl < 248 ? fl & 7u : 1u << (fl & 31);
  const unsigned pres = (unsigned)fz_take(r, 1);
  c->obj[BL_GG].force_null = (pres & 3) == 0;          /* grad_gamma not asked for */
  c->obj[BL_GX].force_null = (pres >> 2 & 3) == 0;     /* grad_x absent */
  c->obj[BL_F].force_null = (pres >> 4 & 3) == 0;      /* f absent */
  c->obj[BL_GAMMA].force_null = (pres >> 6 & 3) == 0;  /* gamma NULL: dp_backward */
}

/* Without gamma the call is dp_backward's: f is not looked at. */
static void placed_bwd(fz_case *c) {
  if (!gamma_on(c, BL_GAMMA)) c->obj[BL_F].ignored = 1;
}

static int expect_bwd(const fz_case *c, const char **why) {
  if (c->flags & ~7u) return *why = "flags", EXPECT_FAIL;
  const int want_gg = gamma_on(c, BL_GG);
  if (!gamma_on(c, BL_GAMMA)) return want_gg ? (*why = "grad_gamma without gamma", EXPECT_FAIL) : EXPECT_OK;
  /* f is required when grad_gamma is asked for. */
  if (want_gg && c->obj[BL_F].null && c->B != 0 && c->D != 0) return *why = "f NULL with grad_gamma", EXPECT_FAIL;
  return EXPECT_OK;
}

static int have_bwd_combo(const fz_case *c) {
  const fz_combos *h = fz_have();
  const int X = c->obj[BL_GO].t.dtype, F = c->obj[BL_GF].t.dtype;
  return (gamma_on(c, BL_GAMMA) ? h->bwdls[X][F] : h->bwd[X][F]) && h->fwd[X][X];
}

static dp_status call_bwd(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_backward_ls(c->params_null ? NULL : &c->prm, c->shape, fz_tensor(&o[BL_GF], base),
                        fz_tensor(&o[BL_GX], base), fz_tensor(&o[BL_GO], base), fz_tensor(&o[BL_F], base),
                        (const float *)fz_arg(&o[BL_GAMMA], base), (float *)fz_arg(&o[BL_GG], base),
                        (const float *)fz_arg(&o[BL_SCALES], base), c->flags);
}

static void poison_bwd(const fz_case *c, unsigned char *base, const float *s) {
  if (!gamma_on(c, BL_GAMMA) || !s) return; /* dp_backward: f is ignored (never unpoisoned) */
  fz_poison_rows(c, base, BL_F, gamma_on(c, BL_GG) ? s : NULL);
  if (!gamma_on(c, BL_GX)) fz_poison_rows(c, base, BL_GO, s);
}

typedef struct term_ctx {
  const fz_case *c;
  const unsigned char *init;
  const float *s;
} term_ctx;

/* (grad_out*s)*f of a kept row. */
FZ_NO_COV static float ls_term(const void *ctx, size_t b, size_t t, size_t d) {
  const term_ctx *k = (const term_ctx *)ctx;
  return (fz_load(k->c, k->init, BL_GO, b, t, d) * k->s[b]) * fz_load(k->c, k->init, BL_F, b, t, d);
}

FZ_NO_COV static void check_bwd(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s) return;
  const int acc_f = (c->flags & DP_BWD_ACCUMULATE_GRAD_F) != 0, acc_x = (c->flags & DP_BWD_ACCUMULATE_GRAD_X) != 0;
  float *g = fz_channel(c, init, BL_GAMMA);
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float go = fz_load(c, init, BL_GO, b, t, d);
        if (c->obj[BL_GF].t.dtype == DP_F32) {
          const float old = fz_load(c, init, BL_GF, b, t, d);
          float want = acc_f ? old : 0.0f;
          if (s[b] != 0.0f) {
            const float v = g ? (go * s[b]) * g[d] : s[b] * go;
            want = fz_canon(acc_f ? old + v : v);
          }
          fz_expect_f32(c, got, BL_GF, b, t, d, want);
        }
        if (gamma_on(c, BL_GX) && c->obj[BL_GX].t.dtype == DP_F32)
          fz_expect_f32(c, got, BL_GX, b, t, d, acc_x ? fz_canon(fz_load(c, init, BL_GX, b, t, d) + go) : go);
      }
  if (g && fz_live(c, BL_GG)) {
    float *old = fz_channel(c, init, BL_GG), *want = fz_channel(c, init, BL_GG);
    const term_ctx k = {c, init, s};
    fz_group_sum(c, fz_ls_group_rows(c), s, ls_term, &k, old, (c->flags & DP_BWD_ACCUMULATE_GRAD_GAMMA) != 0, want);
    fz_expect_channels(c, got, BL_GG, want, "grad_gamma");
    free(old);
    free(want);
  }
  free(g);
}

static void dump_bwd(const fz_case *c) {
  fprintf(stderr, "  gamma %s, grad_gamma %s, f %s\n", gamma_on(c, BL_GAMMA) ? "set" : "NULL",
          gamma_on(c, BL_GG) ? "asked for" : "NULL", c->obj[BL_F].null ? "NULL" : "set");
}

const fz_opdef fz_op_bwd_ls = {
    .name = "backward_ls",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_F, .out = 1, .may_be = 1u << BL_GO | 1u << BL_F},
             {.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .opt = 1},
             FZ_T(FZ_X, 0),
             FZ_A(FZ_N_SAMPLE, 4, 0),
             {.kind = FZ_TENSOR, .cls = FZ_F, .opt = 1},
             FZ_A(FZ_N_CHAN, 4, 0),
             FZ_A(FZ_N_CHAN, 4, 1)},
    .place_order = {BL_GO, BL_SCALES, BL_F, BL_GAMMA, BL_GF, BL_GX, BL_GG, -1},
    .x_role = BL_GO, .f_role = BL_GF, .scales_in = BL_SCALES,
    .post = post_bwd, .placed = placed_bwd, .expect = expect_bwd, .have = have_bwd_combo, .call = call_bwd,
    .poison = poison_bwd, .check = check_bwd, .dump = dump_bwd};
