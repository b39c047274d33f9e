/* scale: out = s*x (out, x: X); out may be x exactly. */
#include <stdio.h>

#include "harness.h"

static size_t variants(dp_combo c, kt_variant *v, size_t cap) {
  size_t n = 0;
  (void)c;
  for (int st = 0; st < 2; st++)
    for (int a = 0; a < 2; a++) kt_push_variant(v, cap, &n, (kt_variant){.stream = st, .alias = a});
  return n;
}

static unsigned reads(const kt_variant *v) {
  (void)v;
  return 1u << 1;
}

static void call(const dp_kernel_info *k, unsigned char *const p[KT_NROLES], const kt_case *c) {
  k->fn.scale(p[0], p[1], c->s, c->n, c->v.stream);
}

static int describe(char *buf, size_t len, const kt_variant *v) { return snprintf(buf, len, "stream=%d", v->stream); }

static void formula_scale_f32(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  (void)stream;
  for (size_t i = 0; i < n; i++) out[i] = kt_canon_f32(s * x[i]);
}

static const dp_kernel_info formula = {"formula_scale_f32", DP_FAMILY_scale, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.scale = formula_scale_f32}};

static const kt_data data = {
    .roles = {"out", "x", NULL}, .f_roles = 0, .variants = variants, .reads = reads, .call = call,
    .describe = describe};

/* Reads x, writes out. */
static size_t bench_bytes(dp_combo c, size_t n) { return n * 2 * dp_combo_x_size(c); }

static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_scale_fn fn = k->fn.scale;
  void *o = a->buf[KT_BUF_O];
  const void *x = a->buf[KT_BUF_X];
  const float s = 1.0f / a->keep;
  const size_t n = a->n;
  const int stream = a->variant;
  for (size_t i = 0; i < iters; i++) fn(o, x, s, n, stream);
}

const kt_family kt_family_scale = {
    .family = DP_FAMILY_scale,
    .formula = &formula,
    .data = &data,
    .bench = {.variants = kt_store_stream, .nvariants = 2, .bufs = 1u << KT_BUF_O | 1u << KT_BUF_X,
              .bytes = bench_bytes, .calls = bench_calls},
};
