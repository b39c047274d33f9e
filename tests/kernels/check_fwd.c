/* fwd: out = x + s*f (out, x: X; f: F); out may be x or f exactly. */
#include <stdio.h>

#include "harness.h"

static size_t variants(dp_combo c, kt_variant *v, size_t cap) {
  const int same = dp_combo_x_size(c) == dp_combo_f_size(c); /* out == f needs equal element sizes */
  size_t n = 0;
  for (int st = 0; st < 2; st++)
    for (int a = 0; a < 3; a++)
      if (a != 2 || same) kt_push_variant(v, cap, &n, (kt_variant){.stream = st, .alias = a});
  return n;
}

static unsigned reads(const kt_variant *v) {
  (void)v;
  return 1u << 1 | 1u << 2;
}

static void call(const dp_kernel_info *k, unsigned char *const p[KT_NROLES], const kt_case *c) {
  k->fn.fwd(p[0], p[1], p[2], c->s, c->n, c->v.stream);
}

static int describe(char *buf, size_t len, const kt_variant *v) { return snprintf(buf, len, "stream=%d", v->stream); }

/* The contract written out for f32 (other combos round through conversions
 * the scalar kernels define). Each element is read before it is written, so
 * in-place calls work. */
static void formula_fwd_f32(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_, *f = (const float *)f_;
  (void)stream;
  for (size_t i = 0; i < n; i++) {
    const float sf = s * f[i];
    out[i] = kt_canon_f32(x[i] + sf);
  }
}

static const dp_kernel_info formula = {"formula_fwd_f32", DP_FAMILY_fwd, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.fwd = formula_fwd_f32}};

static const kt_data data = {
    .roles = {"out", "x", "f"}, .f_roles = 1u << 2, .variants = variants, .reads = reads, .call = call,
    .describe = describe};

/* Reads x and f, writes out. */
static size_t bench_bytes(dp_combo c, size_t n) { return n * (2 * dp_combo_x_size(c) + dp_combo_f_size(c)); }

static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_fwd_fn fn = k->fn.fwd;
  void *o = a->buf[KT_BUF_O];
  const void *x = a->buf[KT_BUF_X], *f = a->buf[KT_BUF_F];
  const float s = 1.0f / a->keep;
  const size_t n = a->n;
  const int stream = a->variant;
  for (size_t i = 0; i < iters; i++) fn(o, x, f, s, n, stream);
}

const kt_family kt_family_fwd = {
    .family = DP_FAMILY_fwd,
    .formula = &formula,
    .data = &data,
    .bench = {.variants = kt_store_stream, .nvariants = 2, .bufs = 1u << KT_BUF_O | 1u << KT_BUF_X | 1u << KT_BUF_F,
              .bytes = bench_bytes, .calls = bench_calls},
};
