/* bwdls: over whole rows of d, gs = g*s, gf = gs*gamma (or gf + gs*gamma),
 * gx = g (or gx + g) when present, acc[i] = acc[i] + gs*f row after row when
 * acc is present (gf, f: F; gx, g: X; gamma, acc: d f32); gf may be g or f
 * exactly. */
#include <stdio.h>

#include "harness.h"

enum { GF, GX, G, F, GAMMA, ACC };

/* Every accumulate/stream mode, with and without gx and acc (f goes with
 * acc), then gf == g and gf == f where the element sizes allow it. */
static size_t variants(dp_combo c, kt_variant *v, size_t cap) {
  const int same = dp_combo_x_size(c) == dp_combo_f_size(c);
  size_t n = 0;
  for (unsigned m = 0; m < 8; m++)
    for (int gx = 0; gx < 2; gx++)
      for (int acc = 0; acc < 2; acc++)
        kt_push_variant(v, cap, &n, (kt_variant){.stream = (m & DP_KBWD_STREAM) != 0,
                                                 .flags = m & (DP_KBWD_ACC_F | DP_KBWD_ACC_X),
                                                 .absent = (gx ? 0 : 1u << GX) | (acc ? 0 : 1u << F | 1u << ACC)});
  for (unsigned m = 0; m < 2; m++) {
    const kt_variant base = {.stream = (int)m, .flags = m ? (unsigned)DP_KBWD_ACC_F : 0u};
    kt_variant a = base;
    if (same) {
      a.alias = G;
      kt_push_variant(v, cap, &n, a);
    }
    a.alias = F; /* gf and f are both F */
    kt_push_variant(v, cap, &n, a);
  }
  return n;
}

static unsigned reads(const kt_variant *v) {
  const int acc = !((v->absent >> ACC) & 1u);
  return ((v->flags & DP_KBWD_ACC_F) ? 1u << GF : 0) | ((v->flags & DP_KBWD_ACC_X) ? 1u << GX : 0) | 1u << G |
         1u << GAMMA | (acc ? 1u << F | 1u << ACC : 0);
}

static unsigned mode(const kt_variant *v) { return v->flags | (v->stream ? (unsigned)DP_KBWD_STREAM : 0u); }

static void call(const dp_kernel_info *k, unsigned char *const p[KT_NROLES], const kt_case *c) {
  k->fn.bwdls(p[GF], p[GX], p[G], p[F], (const float *)(void *)p[GAMMA], (float *)(void *)p[ACC], c->d, c->s, c->n,
              mode(&c->v));
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
  w += snprintf(buf + w, len - (size_t)w, " gx=%s acc=%s", (v->absent >> GX) & 1u ? "NULL" : "present",
                (v->absent >> ACC) & 1u ? "NULL" : "present");
  return w;
}

/* PyTorch's autograd of x + (f*gamma)*s, each product and sum rounded in
 * that order; acc sums each channel over the rows in order. The copy gx = g
 * keeps its bits; sums and products store the canonical NaN. */
static void formula_bwdls_f32(void *gf_, void *gx_, const void *g_, const void *f_, const float *gamma, float *acc,
                              size_t d, float s, size_t n, unsigned mode_) {
  float *gf = (float *)gf_, *gx = (float *)gx_;
  const float *g = (const float *)g_, *f = (const float *)f_;
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i], grad_t = gi * s;
    const float fi = acc ? f[i] : 0.0f;
    gf[i] = kt_canon_f32((mode_ & DP_KBWD_ACC_F) ? gf[i] + grad_t * gamma[i % d] : grad_t * gamma[i % d]);
    if (gx) gx[i] = (mode_ & DP_KBWD_ACC_X) ? kt_canon_f32(gx[i] + gi) : gi;
    if (acc) acc[i % d] = kt_canon_f32(acc[i % d] + grad_t * fi);
  }
}

static const dp_kernel_info formula = {"formula_bwdls_f32", DP_FAMILY_bwdls, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.bwdls = formula_bwdls_f32}};

static const kt_data data = {.roles = {"gf", "gx", "g", "f", "gamma", "acc"},
                             .f_roles = 1u << GF | 1u << F,
                             .f32_roles = 1u << GAMMA | 1u << ACC,
                             .chan_roles = 1u << GAMMA | 1u << ACC,
                             .variants = variants,
                             .reads = reads,
                             .call = call,
                             .describe = describe};

/* ConvNeXt-T stage 1's 96 channels (see check_fwdls.c): n rounded down to
 * whole rows; gamma and acc at the start of T. No gx: dp_bench has four
 * arrays. */
#define BENCH_D ((size_t)96)

/* Reads g and f, writes gf (gamma and acc stay in L1). */
static size_t bench_bytes(dp_combo c, size_t n) {
  return n / BENCH_D * BENCH_D * (2 * dp_combo_f_size(c) + dp_combo_x_size(c));
}

static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_bwdls_fn fn = k->fn.bwdls;
  void *gf = a->buf[KT_BUF_O];
  const void *g = a->buf[KT_BUF_X], *f = a->buf[KT_BUF_F];
  float *gamma = (float *)a->buf[KT_BUF_T], *acc = gamma + BENCH_D;
  const float s = 1.0f / a->keep;
  const size_t n = a->n / BENCH_D * BENCH_D;
  const unsigned m = a->variant ? (unsigned)DP_KBWD_STREAM : 0u;
  for (size_t i = 0; i < iters; i++) fn(gf, NULL, g, f, gamma, acc, BENCH_D, s, n, m);
}

const kt_family kt_family_bwdls = {
    .family = DP_FAMILY_bwdls,
    .formula = &formula,
    .data = &data,
    .bench = {.variants = kt_store_stream,
              .nvariants = 2,
              .bufs = 1u << KT_BUF_O | 1u << KT_BUF_X | 1u << KT_BUF_F | 1u << KT_BUF_T,
              .bytes = bench_bytes,
              .calls = bench_calls},
};
