/*
 * The API fuzzer's sample compaction family (fuzz.h has the frame):
 * dp_compact_gather, dp_compact_forward(_ls), dp_compact_backward(_ls) and
 * dp_compact_scatter_add.  Compact tensors hold c->kept samples (their own
 * strides); the kept_indices array is an arena object like any other.
 *
 * The kept list (decode_kept): usually the call's own mask (dp_mask with
 * the call's params, exact-k included), else any ascending subset, and
 * sometimes broken: out of order, a duplicate, an index >= B, more entries
 * than B, or a count too large for any array.  The header's checks on it:
 * present when kept > 0, kept <= B, strictly ascending, each below B.
 *
 * s of kept samples: 1/keep (or 1) in row and batch mode; B/k in exact-k
 * mode, which is clear only when the kept count is the mask's k (an arbitrary
 * subset's count leaves it unspecified: those values are not modeled, the
 * rest is).  Models (f32 outputs; copies in any dtype, bit for bit):
 *   gather       kept_count = k, kept_indices = the mask's, dst[i] = src[idx[i]]
 *   forward      out[idx[i]] = x + s*f_kept[i] (+ ((gamma*f_kept[i])*s) with
 *                LayerScale), other samples x's bits
 *   backward     grad_f_kept[i] = s*grad_out[idx[i]] ((grad_out*s)*gamma),
 *                += old; grad_x = grad_out (+= old) for every sample;
 *                grad_gamma in dp_backward_ls's order over the whole batch
 *   scatter_add  grad_x[idx[i]] += grad_in_kept[i]; other samples untouched
 * Never read (poisoned): f_kept without grad_gamma in the LayerScale
 * backward ("read only for grad_gamma"), and with gamma NULL f_kept is
 * ignored (the plain call does not take it).  The header does not promise
 * that gather leaves dropped samples of src unread, so they are not poisoned.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

static const dp_params *params_of(const fz_case *c) { return c->params_null ? NULL : &c->prm; }

static int on(const fz_case *c, int idx) { return c->obj[idx].present && !c->obj[idx].null; }

/* ------------------------------------------------------------ the kept list */

/* The mask's kept list into c->kept_list (c->mask_k entries); 0 when the
 * params are invalid or B is too large to list. */
static int mask_list(fz_case *c) {
  if (!fz_params_valid(c) || c->B > MAX_KEPT - 8) return 0;
  if (dp_mask(&c->prm, c->B, NULL, NULL, &c->mask_k, c->kept_list) != DP_OK) fz_fail("dp_mask refused valid params");
  return 1;
}

static void decode_kept(fz_case *c, fz_reader *r) {
  const unsigned sel = (unsigned)fz_take(r, 1), aux = (unsigned)fz_take(r, 1);
  const uint64_t z = fz_take(r, 8);
  const size_t B = c->B;
  const int masked = mask_list(c);
  size_t n = masked ? c->mask_k : 0;
  if (!masked || (sel >= 150 && sel < 200)) { /* any ascending subset of the first samples */
    const size_t lim = B < MAX_KEPT - 8 ? B : MAX_KEPT - 8;
    n = 0;
    for (size_t b = 0; b < lim; b++)
      if ((fz_mix64(z + b) & 255) < aux) c->kept_list[n++] = b;
  }
  c->nlist = n;
  if (sel >= 200 && sel < 215) { /* out of order, or a duplicate */
    if (n >= 2) {
      const size_t j = aux % (n - 1);
      if (aux & 0x80) {
        c->kept_list[j + 1] = c->kept_list[j];
      } else {
        const size_t t = c->kept_list[j];
        c->kept_list[j] = c->kept_list[j + 1];
        c->kept_list[j + 1] = t;
      }
    } else {
      c->kept_list[0] = B; /* one entry, out of range */
      c->nlist = n = 1;
    }
  } else if (sel >= 215 && sel < 230) { /* an index >= B */
    if (n == 0) c->kept_list[n++] = B + aux % 3;
    else c->kept_list[aux % n] = (aux & 1) ? B + aux % 5 : SIZE_MAX - aux % 4;
    c->nlist = n;
  } else if (sel >= 230 && sel < 240 && B <= MAX_KEPT - 8) { /* more entries than samples */
    n = B + 1 + aux % 3;
    for (size_t i = 0; i < n; i++) c->kept_list[i] = i;
    c->nlist = n;
  } else if (sel >= 240) { /* a count no array holds (the entries are never written) */
    n = aux & 1 ? SIZE_MAX - aux % 4 : (size_t)1 << (32 + aux % 32);
    c->nlist = 0;
  }
  c->kept = n;
  c->s_unclear = c->prm.mode == DP_MODE_EXACT_K && c->prm.scale_by_keep && (!masked || n != c->mask_k);
}

/* The header's checks on the kept list (the array itself is checked with the arrays). */
static int expect_kept(const fz_case *c, int idx_obj, const char **why) {
  if (c->kept > 0 && !on(c, idx_obj)) return *why = "kept_indices NULL", EXPECT_FAIL;
  if (c->kept > c->B) return *why = "kept > B", EXPECT_FAIL;
  if (c->nlist < c->kept) return EXPECT_EITHER; /* not written: only runs when another check fails */
  for (size_t i = 0; i < c->kept; i++)
    if (c->kept_list[i] >= c->B || (i > 0 && c->kept_list[i] <= c->kept_list[i - 1]))
      return *why = "kept_indices order or range", EXPECT_FAIL;
  return EXPECT_OK;
}

/* The kept list into the kept_indices array (an input of every call but gather). */
static void write_list(const fz_case *c, unsigned char *a, int idx_obj) {
  if (!fz_live(c, idx_obj) || c->nlist < c->kept) return;
  memcpy(a + c->obj[idx_obj].off, c->kept_list, c->kept * sizeof(size_t));
}

/* s of a kept sample (see the top). */
static float kept_scale(const fz_case *c) {
  if (c->prm.mode == DP_MODE_EXACT_K && c->prm.scale_by_keep && c->kept > 0)
    return (float)((double)c->B / (double)c->kept);
  return fz_row_scale(c);
}

/* s[b]: the kept scale for listed samples, 0 for the others (a valid list only). */
static int list_scales(const fz_case *c, const unsigned char *init, float *s) {
  (void)init;
  if (c->nlist < c->kept || c->kept > c->B) return 0;
  for (size_t b = 0; b < c->B; b++) s[b] = 0.0f;
  const float sk = kept_scale(c);
  for (size_t i = 0; i < c->kept; i++) {
    if (c->kept_list[i] >= c->B) return 0;
    s[c->kept_list[i]] = sk;
  }
  return 1;
}

static void dump_kept(const fz_case *c) {
  fprintf(stderr, "  kept=%zu (listed %zu, mask k %zu, s %s):", c->kept, c->nlist, c->mask_k,
          c->s_unclear ? "unspecified" : "modeled");
  for (size_t i = 0; i < c->nlist && i < 16; i++) fprintf(stderr, " %zu", c->kept_list[i]);
  fprintf(stderr, c->nlist > 16 ? " ...\n" : "\n");
}

static unsigned decode_flags(fz_reader *r, unsigned known) {
  const unsigned fl = (unsigned)fz_take(r, 1);
  return fl < 248 ? fl & known : 1u << (fl & 31);
}

/* ------------------------------------------------------------ gather */

/* Objects: dst (compact: the mask's k samples), src, kept_count, kept_indices (B entries). */
enum { G_DST, G_SRC, G_COUNT, G_IDX };

static void pre_gather(fz_case *c, fz_reader *r) {
  (void)r;
  c->kept = mask_list(c) ? c->mask_k : c->B; /* invalid params: dst is never checked */
  c->nlist = c->kept;
}

/* Both arrays are where the call's results go; the header does not say
 * whether NULL is an error or "not asked for", so either passes. */
static int expect_gather(const fz_case *c, const char **why) {
  (void)why;
  return on(c, G_COUNT) && (on(c, G_IDX) || c->B == 0) ? EXPECT_OK : EXPECT_EITHER;
}

static dp_status call_gather(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_compact_gather(params_of(c), c->shape, fz_tensor(&o[G_DST], base), fz_tensor(&o[G_SRC], base),
                           (size_t *)fz_arg(&o[G_COUNT], base), (size_t *)fz_arg(&o[G_IDX], base));
}

FZ_NO_COV static void check_gather(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  (void)s;
  if (fz_live(c, G_COUNT)) {
    size_t n;
    memcpy(&n, got + c->obj[G_COUNT].off, sizeof n);
    if (n != c->mask_k) fz_fail("kept_count = %zu, the mask keeps %zu", n, c->mask_k);
  }
  if (fz_live(c, G_IDX))
    for (size_t i = 0; i < c->mask_k; i++) {
      size_t v;
      memcpy(&v, got + c->obj[G_IDX].off + i * sizeof(size_t), sizeof v);
      if (v != c->kept_list[i]) fz_fail("kept_indices[%zu] = %zu, the mask says %zu", i, v, c->kept_list[i]);
    }
  if (!fz_live(c, G_DST)) return;
  const size_t es = c->obj[G_SRC].es;
  for (size_t i = 0; i < c->mask_k; i++)
    for (size_t t = 0; t < c->T; t++)
      if (memcmp(fz_at(c, got, G_DST, i, t, 0), fz_at(c, init, G_SRC, c->kept_list[i], t, 0), c->D * es) != 0)
        fz_fail("dst[%zu] row %zu is not src[%zu]", i, t, c->kept_list[i]);
}

const fz_opdef fz_op_gather = {
    .name = "compact_gather",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .compact = 1}, FZ_T(FZ_X, 0),
             FZ_A(FZ_N_ONE, sizeof(size_t), 1), FZ_A(FZ_N_SAMPLE, sizeof(size_t), 1)},
    .place_order = {G_SRC, G_DST, G_COUNT, G_IDX, -1},
    .x_role = G_SRC, .f_role = G_SRC, .scales_in = -1,
    .pre = pre_gather, .expect = expect_gather, .call = call_gather, .check = check_gather, .dump = dump_kept};

/* ------------------------------------------------------------ forward (join) */

/* Objects: out (may be exactly x), x, f_kept (compact), kept_indices, gamma (the _ls form). */
enum { J_OUT, J_X, J_FK, J_IDX, J_GAMMA };

static void pre_list(fz_case *c, fz_reader *r) { decode_kept(c, r); }

static void post_join_ls(fz_case *c, fz_reader *r, int with_array) {
  (void)with_array;
  c->obj[J_GAMMA].force_null = (fz_take(r, 1) & 7) == 0; /* gamma NULL: dp_compact_forward */
}

static int expect_join(const fz_case *c, const char **why) { return expect_kept(c, J_IDX, why); }

static int have_join(const fz_case *c) {
  const fz_combos *h = fz_have();
  const int X = c->obj[J_X].t.dtype, F = c->obj[J_FK].t.dtype;
  return c->op == OP_CFWD_LS && on(c, J_GAMMA) ? h->fwdls[X][F] : h->fwd[X][F];
}

static void fill_join(const fz_case *c, unsigned char *a) { write_list(c, a, J_IDX); }

static dp_status call_join(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  const dp_tensor out = fz_tensor(&o[J_OUT], base), x = fz_tensor(&o[J_X], base), fk = fz_tensor(&o[J_FK], base);
  const size_t *idx = (const size_t *)fz_arg(&o[J_IDX], base);
  if (c->op == OP_CFWD) return dp_compact_forward(params_of(c), c->shape, out, x, fk, c->kept, idx);
  return dp_compact_forward_ls(params_of(c), c->shape, out, x, fk, (const float *)fz_arg(&o[J_GAMMA], base), c->kept,
                               idx);
}

FZ_NO_COV static void check_join(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s || c->obj[J_OUT].t.dtype != DP_F32) return;
  float *g = c->op == OP_CFWD_LS ? fz_channel(c, init, J_GAMMA) : NULL;
  for (size_t b = 0, i = 0; b < c->B; b++) {
    const int kept = s[b] != 0.0f;
    if (kept && c->s_unclear) {
      i++;
      continue;
    }
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float x = fz_load(c, init, J_X, b, t, d);
        fz_expect_f32(c, got, J_OUT, b, t, d, kept ? fz_join(x, fz_load(c, init, J_FK, i, t, d), g, d, s[b]) : x);
      }
    i += kept;
  }
  free(g);
}

const fz_opdef fz_op_cfwd = {
    .name = "compact_forward",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .may_be = 1u << J_X}, FZ_T(FZ_X, 0),
             {.kind = FZ_TENSOR, .cls = FZ_F, .compact = 1}, FZ_A(FZ_N_KEPT, sizeof(size_t), 0)},
    .place_order = {J_X, J_FK, J_IDX, J_OUT, -1},
    .x_role = J_X, .f_role = J_FK, .scales_in = -1,
    .pre = pre_list, .expect = expect_join, .have = have_join, .fill = fill_join, .scales = list_scales,
    .call = call_join, .check = check_join, .dump = dump_kept};

const fz_opdef fz_op_cfwd_ls = {
    .name = "compact_forward_ls",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .may_be = 1u << J_X}, FZ_T(FZ_X, 0),
             {.kind = FZ_TENSOR, .cls = FZ_F, .compact = 1}, FZ_A(FZ_N_KEPT, sizeof(size_t), 0),
             FZ_A(FZ_N_CHAN, 4, 0)},
    .place_order = {J_X, J_FK, J_IDX, J_GAMMA, J_OUT, -1},
    .x_role = J_X, .f_role = J_FK, .scales_in = -1,
    .pre = pre_list, .post = post_join_ls, .expect = expect_join, .have = have_join, .fill = fill_join,
    .scales = list_scales, .call = call_join, .check = check_join, .dump = dump_kept};

/* ------------------------------------------------------------ backward */

/* Objects: grad_f_kept (compact; in the _ls form it may be exactly f_kept),
 * grad_x (optional), grad_out, f_kept (_ls: compact, optional unless
 * grad_gamma is asked for), kept_indices, gamma, grad_gamma. */
enum { K_GF, K_GX, K_GO, K_FK, K_IDX, K_GAMMA, K_GG };

static void post_cbwd(fz_case *c, fz_reader *r, int with_array) {
  (void)with_array;
  const int ls = c->op == OP_CBWD_LS;
  c->flags = decode_flags(r, ls ? 7u : 3u);
  const unsigned pres = (unsigned)fz_take(r, 1);
  c->obj[K_GX].force_null = (pres & 3) == 0;
  if (!ls) return;
  c->obj[K_GG].force_null = (pres >> 2 & 3) == 0;
  c->obj[K_FK].force_null = (pres >> 4 & 3) == 0;
  c->obj[K_GAMMA].force_null = (pres >> 6 & 3) == 0;
}

/* Without gamma the _ls call is dp_compact_backward's: f_kept is not looked at. */
static void placed_cbwd(fz_case *c) {
  if (c->op == OP_CBWD_LS && !on(c, K_GAMMA)) c->obj[K_FK].ignored = 1;
}

static int expect_cbwd(const fz_case *c, const char **why) {
  if (c->op == OP_CBWD) {
    if (c->flags & ~3u) return *why = "flags", EXPECT_FAIL;
  } else {
    if (c->flags & ~7u) return *why = "flags", EXPECT_FAIL;
    if (!on(c, K_GAMMA) && on(c, K_GG)) return *why = "grad_gamma without gamma", EXPECT_FAIL;
    if (on(c, K_GAMMA) && on(c, K_GG) && c->obj[K_FK].null && c->kept != 0 && c->D != 0)
      return *why = "f_kept NULL with grad_gamma", EXPECT_FAIL;
  }
  return expect_kept(c, K_IDX, why);
}

static int have_cbwd(const fz_case *c) {
  const fz_combos *h = fz_have();
  const int X = c->obj[K_GO].t.dtype, F = c->obj[K_GF].t.dtype;
  return (c->op == OP_CBWD_LS && on(c, K_GAMMA) ? h->bwdls[X][F] : h->bwd[X][F]) && h->fwd[X][X];
}

static void fill_cbwd(const fz_case *c, unsigned char *a) { write_list(c, a, K_IDX); }

static dp_status call_cbwd(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  const dp_tensor gf = fz_tensor(&o[K_GF], base), gx = fz_tensor(&o[K_GX], base), go = fz_tensor(&o[K_GO], base);
  const size_t *idx = (const size_t *)fz_arg(&o[K_IDX], base);
  if (c->op == OP_CBWD) return dp_compact_backward(params_of(c), c->shape, gf, gx, go, c->kept, idx, c->flags);
  return dp_compact_backward_ls(params_of(c), c->shape, gf, gx, go, fz_tensor(&o[K_FK], base),
                                (const float *)fz_arg(&o[K_GAMMA], base), (float *)fz_arg(&o[K_GG], base), c->kept,
                                idx, c->flags);
}

/* f_kept is read only for grad_gamma (with gamma NULL it is ignored: never unpoisoned). */
static void poison_cbwd(const fz_case *c, unsigned char *base, const float *s) {
  (void)s;
  if (c->op == OP_CBWD_LS && on(c, K_GAMMA) && !on(c, K_GG)) fz_poison_rows(c, base, K_FK, NULL);
}

typedef struct term_ctx {
  const fz_case *c;
  const unsigned char *init;
  const float *s;
  const size_t *rank; /* rank[b]: sample b's row in the compact tensors */
} term_ctx;

/* (grad_out*s)*f_kept of a kept row. */
FZ_NO_COV static float cbwd_term(const void *ctx, size_t b, size_t t, size_t d) {
  const term_ctx *k = (const term_ctx *)ctx;
  return (fz_load(k->c, k->init, K_GO, b, t, d) * k->s[b]) * fz_load(k->c, k->init, K_FK, k->rank[b], t, d);
}

FZ_NO_COV static void check_cbwd(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s) return;
  const int acc_f = (c->flags & DP_BWD_ACCUMULATE_GRAD_F) != 0, acc_x = (c->flags & DP_BWD_ACCUMULATE_GRAD_X) != 0;
  float *g = c->op == OP_CBWD_LS ? fz_channel(c, init, K_GAMMA) : NULL;
  size_t *rank = (size_t *)malloc((c->B ? c->B : 1) * sizeof(size_t));
  if (!rank) abort();
  for (size_t b = 0, i = 0; b < c->B; b++) {
    rank[b] = i;
    i += s[b] != 0.0f;
  }
  for (size_t b = 0; b < c->B; b++)
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        const float go = fz_load(c, init, K_GO, b, t, d);
        if (s[b] != 0.0f && !c->s_unclear && c->obj[K_GF].t.dtype == DP_F32) {
          const float old = fz_load(c, init, K_GF, rank[b], t, d);
          const float v = g ? (go * s[b]) * g[d] : s[b] * go;
          fz_expect_f32(c, got, K_GF, rank[b], t, d, fz_canon(acc_f ? old + v : v));
        }
        if (on(c, K_GX) && c->obj[K_GX].t.dtype == DP_F32)
          fz_expect_f32(c, got, K_GX, b, t, d, acc_x ? fz_canon(fz_load(c, init, K_GX, b, t, d) + go) : go);
      }
  if (g && fz_live(c, K_GG) && !c->s_unclear) {
    float *old = fz_channel(c, init, K_GG), *want = fz_channel(c, init, K_GG);
    const term_ctx k = {c, init, s, rank};
    fz_group_sum(c, fz_ls_group_rows(c), s, cbwd_term, &k, old, (c->flags & DP_BWD_ACCUMULATE_GRAD_GAMMA) != 0, want);
    fz_expect_channels(c, got, K_GG, want, "grad_gamma");
    free(old);
    free(want);
  }
  free(rank);
  free(g);
}

const fz_opdef fz_op_cbwd = {
    .name = "compact_backward",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_F, .out = 1, .compact = 1},
             {.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .opt = 1},
             FZ_T(FZ_X, 0),
             {.kind = FZ_NONE},
             FZ_A(FZ_N_KEPT, sizeof(size_t), 0)},
    .place_order = {K_GO, K_IDX, K_GF, K_GX, -1},
    .x_role = K_GO, .f_role = K_GF, .scales_in = -1,
    .pre = pre_list, .post = post_cbwd, .expect = expect_cbwd, .have = have_cbwd, .fill = fill_cbwd,
    .scales = list_scales, .call = call_cbwd, .check = check_cbwd, .dump = dump_kept};

const fz_opdef fz_op_cbwd_ls = {
    .name = "compact_backward_ls",
    .role = {{.kind = FZ_TENSOR, .cls = FZ_F, .out = 1, .compact = 1, .may_be = 1u << K_FK},
             {.kind = FZ_TENSOR, .cls = FZ_X, .out = 1, .opt = 1},
             FZ_T(FZ_X, 0),
             {.kind = FZ_TENSOR, .cls = FZ_F, .opt = 1, .compact = 1},
             FZ_A(FZ_N_KEPT, sizeof(size_t), 0),
             FZ_A(FZ_N_CHAN, 4, 0),
             FZ_A(FZ_N_CHAN, 4, 1)},
    .place_order = {K_GO, K_FK, K_IDX, K_GAMMA, K_GF, K_GX, K_GG, -1},
    .x_role = K_GO, .f_role = K_GF, .scales_in = -1,
    .pre = pre_list, .post = post_cbwd, .placed = placed_cbwd, .expect = expect_cbwd, .have = have_cbwd,
    .fill = fill_cbwd, .scales = list_scales, .call = call_cbwd, .poison = poison_cbwd, .check = check_cbwd,
    .dump = dump_kept};

/* ------------------------------------------------------------ scatter-add */

/* Objects: grad_x (read and written), grad_in_kept (compact), kept_indices. */
enum { S_GX, S_GIN, S_IDX };

static int expect_scatter(const fz_case *c, const char **why) { return expect_kept(c, S_IDX, why); }

static int have_scatter(const fz_case *c) {
  const fz_combos *h = fz_have();
  return h->fwd[c->obj[S_GX].t.dtype][c->obj[S_GIN].t.dtype];
}

static void fill_scatter(const fz_case *c, unsigned char *a) { write_list(c, a, S_IDX); }

static dp_status call_scatter(const fz_case *c, unsigned char *base) {
  const fz_obj *o = c->obj;
  return dp_compact_scatter_add(params_of(c), c->shape, fz_tensor(&o[S_GX], base), fz_tensor(&o[S_GIN], base),
                                c->kept, (const size_t *)fz_arg(&o[S_IDX], base));
}

FZ_NO_COV static void check_scatter(const fz_case *c, const unsigned char *init, const unsigned char *got, const float *s) {
  if (!s || !fz_live(c, S_GX)) return;
  const int f32 = c->obj[S_GX].t.dtype == DP_F32;
  for (size_t b = 0, i = 0; b < c->B; b++) {
    const int kept = s[b] != 0.0f;
    for (size_t t = 0; t < c->T; t++)
      for (size_t d = 0; d < c->D; d++) {
        if (!kept)
          fz_expect_same(c, init, got, S_GX, b, t, d, "scatter_add touched a dropped sample");
        else if (f32)
          fz_expect_f32(c, got, S_GX, b, t, d, fz_canon(fz_load(c, init, S_GX, b, t, d) + fz_load(c, init, S_GIN, i, t, d)));
      }
    i += kept;
  }
}

const fz_opdef fz_op_scatter = {
    .name = "compact_scatter_add",
    .role = {FZ_T(FZ_X, 1), {.kind = FZ_TENSOR, .cls = FZ_F, .compact = 1}, FZ_A(FZ_N_KEPT, sizeof(size_t), 0)},
    .place_order = {S_GIN, S_IDX, S_GX, -1},
    .x_role = S_GX, .f_role = S_GIN, .scales_in = -1,
    .pre = pre_list, .expect = expect_scatter, .have = have_scatter, .fill = fill_scatter, .scales = list_scales,
    .call = call_scatter, .check = check_scatter, .dump = dump_kept};
