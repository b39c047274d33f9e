/* fwdls: out = x + ((gamma*f)*s) over whole rows of d (out, x: X; f: F;
 * gamma: d f32); out may be x or f exactly. */
#include <stdio.h>

#include "harness.h"

enum { OUT, X, F, GAMMA };

static size_t variants(dp_combo c, kt_variant *v, size_t cap) {
  const int same = dp_combo_x_size(c) == dp_combo_f_size(c); /* out == f needs equal element sizes */
  size_t n = 0;
  for (int st = 0; st < 2; st++)
    for (int a = 0; a < 3; a++)
      if (a != F || same) kt_push_variant(v, cap, &n, (kt_variant){.stream = st, .alias = a});
  return n;
}

static unsigned reads(const kt_variant *v) {
  (void)v;
  return 1u << X | 1u << F | 1u << GAMMA;
}

static void call(const dp_kernel_info *k, unsigned char *const p[KT_NROLES], const kt_case *c) {
  k->fn.fwdls(p[OUT], p[X], p[F], (const float *)(void *)p[GAMMA], c->d, c->s, c->n, c->v.stream);
}

static int describe(char *buf, size_t len, const kt_variant *v) { return snprintf(buf, len, "stream=%d", v->stream); }

/* The contract written out for f32: timm's x + drop_path(f * gamma), each
 * product and the sum rounded in that order. Each element is read before
 * it is written, so in-place calls work. */
static void formula_fwdls_f32(void *out_, const void *x_, const void *f_, const float *gamma, size_t d, float s,
                              size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_, *f = (const float *)f_;
  (void)stream;
  for (size_t i = 0; i < n; i++) {
    const float ls = gamma[i % d] * f[i];
    const float dropped = ls * s;
    out[i] = kt_canon_f32(x[i] + dropped);
  }
}

static const dp_kernel_info formula = {"formula_fwdls_f32", DP_FAMILY_fwdls, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.fwdls = formula_fwdls_f32}};

static const kt_data data = {.roles = {"out", "x", "f", "gamma"},
                             .f_roles = 1u << F,
                             .f32_roles = 1u << GAMMA,
                             .chan_roles = 1u << GAMMA,
                             .variants = variants,
                             .reads = reads,
                             .call = call,
                             .describe = describe};

/* Rows of ConvNeXt-T stage 1's 96 channels, the short rows the family walks
 * in one call: n rounded down to whole rows; gamma at the start of T. */
#define BENCH_D ((size_t)96)

/* Reads x and f, writes out (gamma stays in L1). */
static size_t bench_bytes(dp_combo c, size_t n) {
  return n / BENCH_D * BENCH_D * (2 * dp_combo_x_size(c) + dp_combo_f_size(c));
}

static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_fwdls_fn fn = k->fn.fwdls;
  void *o = a->buf[KT_BUF_O];
  const void *x = a->buf[KT_BUF_X], *f = a->buf[KT_BUF_F];
  const float *gamma = (const float *)a->buf[KT_BUF_T];
  const float s = 1.0f / a->keep;
  const size_t n = a->n / BENCH_D * BENCH_D;
  const int stream = a->variant;
  for (size_t i = 0; i < iters; i++) fn(o, x, f, gamma, BENCH_D, s, n, stream);
}

const kt_family kt_family_fwdls = {
    .family = DP_FAMILY_fwdls,
    .formula = &formula,
    .data = &data,
    .bench = {.variants = kt_store_stream,
              .nvariants = 2,
              .bufs = 1u << KT_BUF_O | 1u << KT_BUF_X | 1u << KT_BUF_F | 1u << KT_BUF_T,
              .bytes = bench_bytes,
              .calls = bench_calls},
};
