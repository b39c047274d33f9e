/* nfwd: the residual join + norm of one row (kernels.h, kernels/norm/norm_kargs.h).
 * Eight buffers and per-row outputs, so it has cases of its own: every
 * combination of LayerNorm/RMSNorm, gamma, beta, LayerScale's ls, r written/absent/in place,
 * y in place of f or absent (a row outside an output subset: statistics
 * only), dropped rows, scratch or none, streaming; rows at every length to
 * 80 and long ones; buffers against the fences and misaligned. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/norm/norm_kargs.h"

enum { SY, SR, SX, SF, SGAMMA, SBETA, STMP, SSTATS, SLS, NSLOTS };
static const char *const slot_names[NSLOTS] = {"y", "r", "x", "f", "gamma", "beta", "tmp", "stats", "ls"};
_Static_assert(NSLOTS <= KT_NROLES, "the harness holds every buffer");

enum { R_ABSENT, R_SEPARATE, R_IS_X };

typedef struct ncase {
  size_t n;
  float s, eps;
  int dropped, rms, gamma, beta, ls, r_mode, y_is_f, y_absent, tmp;
  unsigned stream; /* DP_KNORM_STREAM_* */
  size_t off[NSLOTS];
  int place, specials;
  int constant; /* x and f each one repeated value */
} ncase;

/* ---------------------------------------------------------------- the formula */

static float lane_sum(float lanes[16]) {
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) lanes[l] += lanes[l + w];
  return lanes[0];
}

/* The contract for f32 written out on its own: r, then the statistics in 16
 * lanes and the fixed tree, then y. */
static void formula_nfwd_f32(void *y_, void *r_, const void *x_, const void *f_, float s, size_t n,
                             const struct dp_norm_kargs *a, float *tmp, float *stats) {
  float *y = (float *)y_, *r = (float *)r_;
  const float *x = (const float *)x_, *f = (const float *)f_;
  const int rms = (a->mode & DP_KNORM_RMS) != 0;
  float *v = (float *)malloc(n * sizeof(float));
  if (!v) abort();
  (void)tmp;
  for (size_t i = 0; i < n; i++) {
    if (f) {
      const float sf = s * (a->ls ? a->ls[i] * f[i] : f[i]);
      v[i] = x[i] + sf;
      if (r) r[i] = kt_canon_f32(v[i]);
    } else {
      v[i] = x[i];
      if (r && r != x) memcpy(&r[i], &x[i], 4);
    }
  }
  float lanes[16];
  for (int l = 0; l < 16; l++) lanes[l] = -0.0f;
  for (size_t i = 0; i < n; i++) lanes[i % 16] += rms ? v[i] * v[i] : v[i];
  float mean = 0.0f;
  if (!rms) {
    mean = lane_sum(lanes) / (float)n;
    for (int l = 0; l < 16; l++) lanes[l] = -0.0f;
    for (size_t i = 0; i < n; i++) {
      const float d = v[i] - mean;
      lanes[i % 16] += d * d;
    }
  }
  const float var = lane_sum(lanes) / (float)n;
  const float rstd = 1.0f / sqrtf(var + a->eps);
  for (size_t i = 0; y && i < n; i++) {
    float t = (v[i] - mean) * rstd;
    if (a->gamma) t = t * a->gamma[i];
    if (a->beta) t = t + a->beta[i];
    y[i] = kt_canon_f32(t);
  }
  stats[0] = kt_canon_f32(mean);
  stats[1] = kt_canon_f32(rstd);
  free(v);
}

static const dp_kernel_info formula = {"formula_nfwd_f32", DP_FAMILY_nfwd, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.nfwd = formula_nfwd_f32}};

/* ---------------------------------------------------------------- cases */

static int combo_x(dp_combo c) { return dp_combo_x_size(c) == 4 ? DP_F32 : c == DP_COMBO_BF16 ? DP_BF16 : DP_F16; }
static int combo_f(dp_combo c) {
  switch (c) {
    case DP_COMBO_BF16:
    case DP_COMBO_F32_BF16: return DP_BF16;
    case DP_COMBO_F16:
    case DP_COMBO_F32_F16: return DP_F16;
    default: return DP_F32;
  }
}

static int slot_dtype(dp_combo c, int slot) {
  if (slot == SY || slot == SF) return combo_f(c);
  if (slot == SR || slot == SX) return combo_x(c);
  return DP_F32;
}

static size_t slot_bytes(dp_combo c, const ncase *k, int slot) {
  return slot == SSTATS ? 8 : k->n * tu_dtype_size(slot_dtype(c, slot));
}

static int slot_present(const ncase *k, int slot) {
  switch (slot) {
    case SR: return k->r_mode == R_SEPARATE;
    case SY: return !k->y_is_f && !k->y_absent;
    case SGAMMA: return k->gamma;
    case SBETA: return k->beta;
    case SLS: return k->ls;
    case STMP: return k->tmp;
    default: return 1;
  }
}

static void describe(char *buf, size_t len, const kt_runner *ru, const void *c_) {
  const ncase *k = (const ncase *)c_;
  static const char *const r_modes[3] = {"NULL", "separate", "x"};
  int w = snprintf(buf, len,
                   "n=%zu %s s=%.9g (0x%08x) eps=%g%s%s gamma=%d beta=%d ls=%d r=%s y=%s tmp=%d stream=%s%s %s off(", k->n,
                   k->rms ? "rms" : "layer", (double)k->s, (unsigned)tu_f32_bits(k->s), (double)k->eps,
                   k->dropped ? " dropped" : "", k->constant ? " constant" : "", k->gamma, k->beta, k->ls, r_modes[k->r_mode], k->y_absent ? "NULL" : k->y_is_f ? "f" : "own",
                   k->tmp, (k->stream & DP_KNORM_STREAM_Y) ? "y" : "", (k->stream & DP_KNORM_STREAM_R) ? "r" : "",
                   kt_place_name(k->place));
  for (int sl = 0; sl < NSLOTS; sl++)
    if (slot_present(k, sl)) w += snprintf(buf + w, len - (size_t)w, "%s=%zu ", slot_names[sl], k->off[sl]);
  (void)ru;
  snprintf(buf + w, len - (size_t)w, ") specials=%d", k->specials);
}

static void fill_params(tu_rng *rng, unsigned char *p, size_t n, int specials) {
  kt_fill(rng, p, n, DP_F32, specials == 2 ? 1 : 0);
}

static int check_slot(kt_runner *ru, const ncase *k, int slot, const kt_placed *t, const kt_placed *r, int data) {
  char what[256];
  const unsigned char *bufs[2] = {t->data, r->data};
  for (int set = 0; set < 2; set++) {
    const char *who = set ? "reference" : "kernel";
    for (size_t i = 1; i <= t->gl; i++)
      if (bufs[set][-(ptrdiff_t)i] != TU_GUARD_BYTE) {
        snprintf(what, sizeof what, "%s wrote %s[byte -%zu] (before the buffer)", who, slot_names[slot], i);
        kt_report(ru, k, what);
        return 0;
      }
    const size_t after = tu_first_dirty(bufs[set] + t->bytes, t->gr);
    if (after < t->gr) {
      snprintf(what, sizeof what, "%s wrote %s[byte %zu], past the end", who, slot_names[slot], t->bytes + after);
      kt_report(ru, k, what);
      return 0;
    }
  }
  if (!data || memcmp(t->data, r->data, t->bytes) == 0) return 1;
  const int dt = slot_dtype(ru->k->combo, slot);
  const size_t es = tu_dtype_size(dt);
  size_t i = 0;
  while (memcmp(t->data + i * es, r->data + i * es, es) == 0) i++;
  char got[48], want[48];
  kt_format(got, sizeof got, t->data + i * es, dt);
  kt_format(want, sizeof want, r->data + i * es, dt);
  snprintf(what, sizeof what, "%s[%zu] differs: got %s, reference %s", slot_names[slot], i, got, want);
  kt_report(ru, k, what);
  return 0;
}

static void call(const dp_kernel_info *fn, unsigned char *const p[NSLOTS], const ncase *k) {
  dp_norm_kargs a;
  a.gamma = (const float *)(const void *)p[SGAMMA];
  a.beta = (const float *)(const void *)p[SBETA];
  a.eps = k->eps;
  a.ls = (const float *)(const void *)p[SLS];
  a.mode = (k->rms ? (unsigned)DP_KNORM_RMS : 0u) | k->stream;
  void *r = k->r_mode == R_IS_X ? p[SX] : p[SR];
  void *y = k->y_absent ? NULL : k->y_is_f ? p[SF] : p[SY];
  fn->fn.nfwd(y, r, p[SX], k->dropped ? NULL : p[SF], k->s, k->n, &a, (float *)(void *)p[STMP],
              (float *)(void *)p[SSTATS]);
}

static int run_case(kt_runner *ru, const ncase *k) {
  const dp_combo c = ru->k->combo;
  kt_placed b[2][NSLOTS];
  unsigned char *p[2][NSLOTS];
  ru->checks++;
  for (int sl = 0; sl < NSLOTS; sl++) {
    p[0][sl] = p[1][sl] = NULL;
    if (!slot_present(k, sl)) continue;
    const size_t bytes = slot_bytes(c, k, sl);
    for (int set = 0; set < 2; set++) {
      b[set][sl] = kt_place(set, sl, k->place, k->place == KT_PLACE_FENCE_TAIL ? 0 : k->off[sl], bytes);
      p[set][sl] = b[set][sl].data;
    }
    if (sl == SX || sl == SF) {
      const size_t es = tu_dtype_size(slot_dtype(c, sl));
      kt_fill(&ru->rng, b[0][sl].data, k->n, slot_dtype(c, sl), k->specials);
      for (size_t i = 1; k->constant && i < k->n; i++) memcpy(b[0][sl].data + i * es, b[0][sl].data, es);
    } else if (sl == SGAMMA || sl == SBETA || sl == SLS)
      fill_params(&ru->rng, b[0][sl].data, k->n, k->specials);
    else
      continue;
    memcpy(b[1][sl].data, b[0][sl].data, bytes);
  }
  kt_running(ru, ru->ref, k);
  call(ru->ref, p[1], k);
  kt_running(ru, ru->k, k);
  call(ru->k, p[0], k);
  kt_running(NULL, NULL, NULL);
  /* Every buffer's guards; every buffer's data but the scratch (inputs must
   * come back unchanged, outputs equal). */
  for (int sl = 0; sl < NSLOTS; sl++)
    if (slot_present(k, sl) && !check_slot(ru, k, sl, &b[0][sl], &b[1][sl], sl != STMP)) return 0;
  return 1;
}

static float random_s(tu_rng *r) {
  if (tu_next(r) & 3) return kt_s_list[tu_range(r, 0, KT_N_S - 1)];
  return 1.0f / (float)(1.0 - (double)(tu_next(r) >> 11) * 0x1p-53 * 0.95);
}

static void random_case(kt_runner *ru, ncase *k, size_t n) {
  tu_rng *r = &ru->rng;
  static const float eps_list[] = {1e-5f, 1e-6f, 0.0f, 1e-3f, 1.0f};
  memset(k, 0, sizeof *k);
  k->n = n;
  k->s = random_s(r);
  k->eps = eps_list[tu_range(r, 0, 4)];
  k->dropped = (tu_next(r) & 3) == 0;
  k->rms = (int)(tu_next(r) & 1);
  k->gamma = (tu_next(r) & 3) != 0;
  k->beta = (tu_next(r) & 3) != 0;
  k->ls = (int)(tu_next(r) & 1);
  k->r_mode = (int)tu_range(r, 0, 2);
  k->y_is_f = (tu_next(r) & 3) == 0;
  k->y_absent = !k->y_is_f && (tu_next(r) & 7) == 0;
  k->tmp = (tu_next(r) & 3) != 0;
  k->stream = (unsigned)(tu_next(r) & 3) * DP_KNORM_STREAM_Y & (DP_KNORM_STREAM_Y | DP_KNORM_STREAM_R);
  for (int sl = 0; sl < NSLOTS; sl++) {
    const size_t es = sl == SSTATS ? 4 : tu_dtype_size(slot_dtype(ru->k->combo, sl));
    k->off[sl] = es * tu_range(r, 0, 64 / es - 1);
  }
  k->place = KT_PLACE_GUARDED;
  k->specials = (tu_next(r) & 7) == 0 ? 1 : 0;
}

#define RUN(k)                          \
  do {                                  \
    if (!run_case(ru, &(k))) return 0; \
  } while (0)

static int run(kt_runner *ru) {
  ncase k;
  ru->section = "every n to 80, every flag combination in turn";
  for (size_t n = 1; n <= 80; n++)
    for (unsigned v = 0; v < 32; v++) {
      random_case(ru, &k, n);
      k.rms = v & 1;
      k.dropped = (v >> 1) & 1;
      k.tmp = (v >> 2) & 1;
      k.r_mode = (int)((v >> 3) & 1) ? R_IS_X : (n & 1) ? R_SEPARATE : R_ABSENT;
      k.y_absent = (v >> 4) & 1;
      if (k.y_absent) k.y_is_f = 0;
      RUN(k);
    }

  ru->section = "buffers against a PROT_NONE page";
  for (size_t n = 1; n <= 80; n++)
    for (int place = KT_PLACE_FENCE_HEAD; place <= KT_PLACE_FENCE_TAIL; place++) {
      random_case(ru, &k, n);
      k.place = place;
      memset(k.off, 0, sizeof k.off);
      RUN(k);
    }

  ru->section = "each buffer at each misalignment";
  for (int sl = 0; sl < NSLOTS; sl++) {
    const size_t es = sl == SSTATS ? 4 : tu_dtype_size(slot_dtype(ru->k->combo, sl));
    for (size_t off = 0; off < 64; off += es) {
      random_case(ru, &k, tu_range(&ru->rng, 1, 300));
      k.off[sl] = off;
      RUN(k);
    }
  }

  ru->section = "long rows, streaming, aligned and not";
  {
    const size_t sizes[] = {255, 256, 257, 768, 1000 + tu_range(&ru->rng, 0, 15), 4096, 4100, 16384};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      for (int v = 0; v < 8; v++) {
        random_case(ru, &k, sizes[i]);
        k.stream = DP_KNORM_STREAM_Y | DP_KNORM_STREAM_R;
        if (v & 1) memset(k.off, 0, sizeof k.off);
        k.tmp = (v >> 1) & 1;
        k.y_absent = v >> 2;
        if (k.y_absent) k.y_is_f = 0;
        RUN(k);
      }
  }

  ru->section = "dense NaN/inf/-0/subnormal inputs";
  for (int it = 0; it < 64; it++) {
    random_case(ru, &k, tu_range(&ru->rng, 1, 100));
    k.specials = 2;
    RUN(k);
  }

  ru->section = "constant rows (variance 0) and huge values";
  for (int it = 0; it < 32; it++) {
    random_case(ru, &k, tu_range(&ru->rng, 1, 100));
    k.s = it & 1 ? 1e30f : 1.0f;
    k.specials = 0;
    k.constant = (it & 2) != 0;
    RUN(k);
  }

  ru->section = "random";
  for (int it = 0; it < kt_cfg.iters / 4; it++) {
    const size_t n = (tu_next(&ru->rng) & 3) ? tu_range(&ru->rng, 1, 400) : tu_range(&ru->rng, 1, 5000);
    random_case(ru, &k, n);
    k.place = (int)tu_range(&ru->rng, 0, KT_PLACE_COUNT - 1);
    k.specials = (int)tu_range(&ru->rng, 0, 2);
    RUN(k);
  }
  return 1;
}

/* ---------------------------------------------------------------- bench */

/* ViT-B's row, and one at the scratch's limit. */
static const kt_bench_size bench_sizes[] = {{"D768", 768, 1}, {"D4096", 4096, 0}};

/* Reads x and f, writes y and r. */
static size_t bench_bytes(dp_combo c, size_t n) { return n * 2 * (dp_combo_x_size(c) + dp_combo_f_size(c)); }

static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_nfwd_fn fn = k->fn.nfwd;
  float tmp[4096], stats[2];
  dp_norm_kargs ka = {NULL, NULL, 1e-5f, a->variant ? (unsigned)(DP_KNORM_STREAM_Y | DP_KNORM_STREAM_R) : 0u, NULL};
  const float s = 1.0f / a->keep;
  const size_t n = a->n;
  for (size_t i = 0; i < iters; i++)
    fn(a->buf[KT_BUF_O], a->buf[KT_BUF_T], a->buf[KT_BUF_X], a->buf[KT_BUF_F], s, n, &ka, n <= 4096 ? tmp : NULL,
       stats);
}

const kt_family kt_family_nfwd = {
    .family = DP_FAMILY_nfwd,
    .formula = &formula,
    .run = run,
    .describe = describe,
    .bench = {.sizes = bench_sizes, .nsizes = 2, .variants = kt_store_stream, .nvariants = 2,
              .bufs = 1u << KT_BUF_O | 1u << KT_BUF_X | 1u << KT_BUF_F | 1u << KT_BUF_T, .bytes = bench_bytes,
              .calls = bench_calls},
};
