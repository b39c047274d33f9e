/* bwd: gf = s*g (or gf + s*g), gx = g (or gx + g) when gx is present
 * (gf: F; gx, g: X); gf may be g exactly, gx never aliases. */
#include <stdio.h>

#include "harness.h"

enum { GF, GX, G };

/* Every accumulate/stream mode, with and without gx, and gf == g where the
 * element sizes allow it. */
static size_t variants(dp_combo c, kt_variant *v, size_t cap) {
  const int same = dp_combo_x_size(c) == dp_combo_f_size(c);
  size_t n = 0;
  for (unsigned m = 0; m < 8; m++)
    for (int gx = 0; gx < 2; gx++)
      for (int a = 0; a < 2; a++)
        if (!a || same)
          kt_push_variant(v, cap, &n, (kt_variant){.stream = (m & DP_KBWD_STREAM) != 0, .alias = a ? G : 0,
                                .flags = m & (DP_KBWD_ACC_F | DP_KBWD_ACC_X), .absent = gx ? 0 : 1u << GX});
  return n;
}

static unsigned reads(const kt_variant *v) {
  return ((v->flags & DP_KBWD_ACC_F) ? 1u << GF : 0) | ((v->flags & DP_KBWD_ACC_X) ? 1u << GX : 0) | 1u << G;
}

static unsigned mode(const kt_variant *v) { return v->flags | (v->stream ? (unsigned)DP_KBWD_STREAM : 0u); }

static void call(const dp_kernel_info *k, unsigned char *const p[KT_NROLES], const kt_case *c) {
  k->fn.bwd(p[GF], p[GX], p[G], c->s, c->n, mode(&c->v));
}

static int describe(char *buf, size_t len, const kt_variant *v) {
  static const char *const flag_names[3] = {"ACC_F", "ACC_X", "STREAM"};
  const unsigned m = mode(v);
  int w = snprintf(buf, len, "mode=%s", m ? "" : "0");
  for (unsigned f = 0, first = 1; f < 3; f++)
    if (m & (1u << f)) {
      w += snprintf(buf + w, len - (size_t)w, "%s%s", first ? "" : "|", flag_names[f]);
      first = 0;
    }
  w += snprintf(buf + w, len - (size_t)w, " gx=%s", (v->absent >> GX) & 1u ? "NULL" : "present");
  return w;
}

/* The copy gx = g keeps its bits; sums and products store the canonical NaN. */
static void formula_bwd_f32(void *gf_, void *gx_, const void *g_, float s, size_t n, unsigned mode_) {
  float *gf = (float *)gf_, *gx = (float *)gx_;
  const float *g = (const float *)g_;
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i], sg = s * gi;
    gf[i] = kt_canon_f32((mode_ & DP_KBWD_ACC_F) ? gf[i] + sg : sg);
    if (gx) gx[i] = (mode_ & DP_KBWD_ACC_X) ? kt_canon_f32(gx[i] + gi) : gi;
  }
}

static const dp_kernel_info formula = {"formula_bwd_f32", DP_FAMILY_bwd, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.bwd = formula_bwd_f32}};

static const kt_data data = {
    .roles = {"gf", "gx", "g"}, .f_roles = 1u << GF, .variants = variants, .reads = reads, .call = call,
    .describe = describe};

/* Reads g, writes gf and gx. */
static size_t bench_bytes(dp_combo c, size_t n) { return n * (dp_combo_f_size(c) + 2 * dp_combo_x_size(c)); }

static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_bwd_fn fn = k->fn.bwd;
  void *gf = a->buf[KT_BUF_O], *gx = a->buf[KT_BUF_T];
  const void *g = a->buf[KT_BUF_F];
  const float s = 1.0f / a->keep;
  const size_t n = a->n;
  const unsigned m = a->variant ? (unsigned)DP_KBWD_STREAM : 0u;
  for (size_t i = 0; i < iters; i++) fn(gf, gx, g, s, n, m);
}

const kt_family kt_family_bwd = {
    .family = DP_FAMILY_bwd,
    .formula = &formula,
    .data = &data,
    .bench = {.variants = kt_store_stream, .nvariants = 2, .bufs = 1u << KT_BUF_O | 1u << KT_BUF_F | 1u << KT_BUF_T,
              .bytes = bench_bytes, .calls = bench_calls},
};
