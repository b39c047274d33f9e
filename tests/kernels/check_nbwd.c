/* nbwd: the residual join + norm backward of one row (kernels.h,
 * kernels/norm/norm_kargs.h). Cases of its own, as nfwd's: LayerNorm/RMSNorm,
 * gamma, grad_r_in, gx present, accumulating gx and gf, dropped rows,
 * gf == gy, gf == f and gx == gin in place, partials (LayerScale's pl with
 * f too), streaming; every length to 80
 * and long rows; buffers against the fences and misaligned. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/norm/norm_kargs.h"

enum { SGX, SGF, SGY, SR, SGIN, SGAMMA, SPG, SPB, SLS, SF, SPL, NSLOTS };
static const char *const slot_names[NSLOTS] = {"gx", "gf", "gy", "r", "gin", "gamma", "pg", "pb", "ls", "f", "pl"};
_Static_assert(NSLOTS <= KT_NROLES, "the harness holds every buffer");

typedef struct bcase {
  size_t n;
  float s, mean, rstd;
  int rms, gamma, ls, gin, gx, acc_x, acc_f, gf_is_gy, gf_is_f, gx_is_gin, partials, ls_partials;
  unsigned stream; /* DP_KNORM_STREAM_* */
  size_t off[NSLOTS];
  int place, specials;
} bcase;

/* ---------------------------------------------------------------- the formula */

static float lane_sum(float lanes[16]) {
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) lanes[l] += lanes[l + w];
  return lanes[0];
}

/* The contract for f32 written out on its own. */
static void formula_nbwd_f32(void *gx_, void *gf_, const void *gy_, const void *r_, const void *gin_, const void *f_,
                             float s, size_t n, const struct dp_norm_kargs *a, const float *stats, float *pg, float *pb,
                             float *pl) {
  float *gx = (float *)gx_, *gf = (float *)gf_;
  const float *gy = (const float *)gy_, *r = (const float *)r_, *gin = (const float *)gin_, *f = (const float *)f_;
  const int rms = (a->mode & DP_KNORM_RMS) != 0;
  const float mean = rms ? 0.0f : stats[0], rstd = stats[1];
  float lg[16], lgx[16];
  for (int l = 0; l < 16; l++) lg[l] = lgx[l] = -0.0f;
  for (size_t i = 0; i < n; i++) {
    const float xh = (r[i] - mean) * rstd;
    const float g = a->gamma ? gy[i] * a->gamma[i] : gy[i];
    lg[i % 16] += g;
    lgx[i % 16] += g * xh;
    if (pg) pg[i] = kt_canon_f32(pg[i] + gy[i] * xh);
    if (pb) pb[i] = kt_canon_f32(pb[i] + gy[i]);
  }
  const float mg = rms ? 0.0f : lane_sum(lg) / (float)n, mgx = lane_sum(lgx) / (float)n;
  for (size_t i = 0; i < n; i++) {
    const float xh = (r[i] - mean) * rstd;
    const float g = a->gamma ? gy[i] * a->gamma[i] : gy[i];
    const float gn = ((g - mg) - xh * mgx) * rstd;
    const float gr = gin ? gin[i] + gn : gn;
    if (gx) gx[i] = kt_canon_f32((a->mode & DP_KBWD_ACC_X) ? gx[i] + gr : gr);
    const float sg = a->ls ? (s * gr) * a->ls[i] : s * gr;
    if (pl && s != 0.0f) pl[i] = kt_canon_f32(pl[i] + (s * gr) * f[i]); /* f before gf: gf may be f */
    if (s != 0.0f) gf[i] = kt_canon_f32((a->mode & DP_KBWD_ACC_F) ? gf[i] + sg : sg);
    else if (!(a->mode & DP_KBWD_ACC_F)) gf[i] = 0.0f;
  }
}

static const dp_kernel_info formula = {"formula_nbwd_f32", DP_FAMILY_nbwd, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.nbwd = formula_nbwd_f32}};

/* ---------------------------------------------------------------- cases */

static int combo_x(dp_combo c) { return dp_combo_x_size(c) == 4 ? DP_F32 : c == DP_COMBO_BF16 ? DP_BF16 : DP_F16; }
static int combo_f(dp_combo c) {
  return c == DP_COMBO_BF16 || c == DP_COMBO_F32_BF16 ? DP_BF16 : c == DP_COMBO_F16 || c == DP_COMBO_F32_F16 ? DP_F16
                                                                                                            : DP_F32;
}

static int slot_dtype(dp_combo c, int slot) {
  if (slot == SGF || slot == SGY || slot == SF) return combo_f(c);
  if (slot == SGX || slot == SR || slot == SGIN) return combo_x(c);
  return DP_F32;
}

static int slot_present(const bcase *k, int slot) {
  switch (slot) {
    case SGX: return k->gx && !k->gx_is_gin;
    case SGF: return !k->gf_is_gy && !k->gf_is_f;
    case SGIN: return k->gin;
    case SGAMMA: return k->gamma;
    case SLS: return k->ls;
    case SPG:
    case SPB: return k->partials;
    case SF: return k->ls_partials; /* read for pl only */
    case SPL: return k->ls_partials;
    default: return 1;
  }
}

static void describe(char *buf, size_t len, const kt_runner *ru, const void *c_) {
  const bcase *k = (const bcase *)c_;
  (void)ru;
  int w = snprintf(buf, len,
                   "n=%zu %s s=%.9g mean=%.9g rstd=%.9g gamma=%d ls=%d gin=%d gx=%s acc_x=%d acc_f=%d gf=%s partials=%d pl=%d "
                   "stream=%s%s %s off(",
                   k->n, k->rms ? "rms" : "layer", (double)k->s, (double)k->mean, (double)k->rstd, k->gamma, k->ls, k->gin,
                   !k->gx ? "NULL" : k->gx_is_gin ? "gin" : "own", k->acc_x, k->acc_f,
                   k->gf_is_gy ? "gy" : k->gf_is_f ? "f" : "own", k->partials, k->ls_partials, (k->stream & DP_KNORM_STREAM_Y) ? "gf" : "", (k->stream & DP_KNORM_STREAM_R) ? "gx" : "",
                   kt_place_name(k->place));
  for (int sl = 0; sl < NSLOTS; sl++)
    if (slot_present(k, sl)) w += snprintf(buf + w, len - (size_t)w, "%s=%zu ", slot_names[sl], k->off[sl]);
  snprintf(buf + w, len - (size_t)w, ") specials=%d", k->specials);
}

static int check_slot(kt_runner *ru, const bcase *k, int slot, const kt_placed *t, const kt_placed *r) {
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
  if (memcmp(t->data, r->data, t->bytes) == 0) return 1;
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

static void call(const dp_kernel_info *fn, unsigned char *const p[NSLOTS], const bcase *k) {
  dp_norm_kargs a;
  a.gamma = (const float *)(const void *)p[SGAMMA];
  a.beta = NULL;
  a.eps = 0.0f;
  a.ls = (const float *)(const void *)p[SLS];
  a.mode = (k->rms ? (unsigned)DP_KNORM_RMS : 0u) | (k->acc_x ? (unsigned)DP_KBWD_ACC_X : 0u) |
           (k->acc_f ? (unsigned)DP_KBWD_ACC_F : 0u) | k->stream;
  const float stats[2] = {k->mean, k->rstd};
  void *gx = !k->gx ? NULL : k->gx_is_gin ? p[SGIN] : p[SGX];
  void *gf = k->gf_is_gy ? p[SGY] : k->gf_is_f ? p[SF] : p[SGF];
  fn->fn.nbwd(gx, gf, p[SGY], p[SR], p[SGIN], p[SF], k->s, k->n, &a, stats, (float *)(void *)p[SPG],
              (float *)(void *)p[SPB], (float *)(void *)p[SPL]);
}

static int run_case(kt_runner *ru, const bcase *k) {
  const dp_combo c = ru->k->combo;
  kt_placed b[2][NSLOTS];
  unsigned char *p[2][NSLOTS];
  ru->checks++;
  for (int sl = 0; sl < NSLOTS; sl++) {
    p[0][sl] = p[1][sl] = NULL;
    if (!slot_present(k, sl)) continue;
    const size_t bytes = k->n * tu_dtype_size(slot_dtype(c, sl));
    for (int set = 0; set < 2; set++) {
      b[set][sl] = kt_place(set, sl, k->place, k->place == KT_PLACE_FENCE_TAIL ? 0 : k->off[sl], bytes);
      p[set][sl] = b[set][sl].data;
    }
    /* Everything is read by some variant (gx and gf when accumulating). */
    kt_fill(&ru->rng, b[0][sl].data, k->n, slot_dtype(c, sl),
            sl == SGAMMA || sl == SLS || sl == SPG || sl == SPB || sl == SPL ? 0 : k->specials);
    memcpy(b[1][sl].data, b[0][sl].data, bytes);
  }
  kt_running(ru, ru->ref, k);
  call(ru->ref, p[1], k);
  kt_running(ru, ru->k, k);
  call(ru->k, p[0], k);
  kt_running(NULL, NULL, NULL);
  for (int sl = 0; sl < NSLOTS; sl++)
    if (slot_present(k, sl) && !check_slot(ru, k, sl, &b[0][sl], &b[1][sl])) return 0;
  return 1;
}

static void random_case(kt_runner *ru, bcase *k, size_t n) {
  tu_rng *r = &ru->rng;
  memset(k, 0, sizeof *k);
  k->n = n;
  k->s = (tu_next(r) & 3) == 0 ? 0.0f : kt_s_list[tu_range(r, 0, KT_N_S - 1)];
  k->mean = tu_float(r) * 4.0f;
  k->rstd = 0.1f + 3.0f * (tu_float(r) + 1.0f);
  if ((tu_next(r) & 31) == 0) k->rstd = (tu_next(r) & 1) ? INFINITY : NAN;
  k->rms = (int)(tu_next(r) & 1);
  k->gamma = (tu_next(r) & 3) != 0;
  k->ls = (int)(tu_next(r) & 1);
  k->gin = (tu_next(r) & 3) != 0;
  k->gx = (tu_next(r) & 3) != 0;
  k->acc_x = (int)(tu_next(r) & 1);
  k->acc_f = (int)(tu_next(r) & 1);
  k->gf_is_gy = (tu_next(r) & 3) == 0 && dp_combo_x_size(ru->k->combo) == dp_combo_f_size(ru->k->combo);
  k->gx_is_gin = k->gx && k->gin && (tu_next(r) & 3) == 0;
  k->partials = (tu_next(r) & 3) != 0;
  k->ls_partials = (tu_next(r) & 1) != 0;
  k->gf_is_f = !k->gf_is_gy && k->ls_partials && (tu_next(r) & 3) == 0;
  k->stream = (unsigned)(tu_next(r) & 3) * DP_KNORM_STREAM_Y & (DP_KNORM_STREAM_Y | DP_KNORM_STREAM_R);
  for (int sl = 0; sl < NSLOTS; sl++) {
    const size_t es = tu_dtype_size(slot_dtype(ru->k->combo, sl));
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
  bcase k;
  ru->section = "every n to 80, every flag combination in turn";
  for (size_t n = 1; n <= 80; n++)
    for (unsigned v = 0; v < 16; v++) {
      random_case(ru, &k, n);
      k.rms = v & 1;
      k.acc_x = (v >> 1) & 1;
      k.acc_f = (v >> 2) & 1;
      if (v & 8) k.s = 0.0f;
      RUN(k);
    }

  ru->section = "buffers against a PROT_NONE page";
  for (size_t n = 1; n <= 80; n++)
    for (int place = KT_PLACE_FENCE_HEAD; place <= KT_PLACE_FENCE_TAIL; place++) {
      random_case(ru, &k, n);
      k.place = place;
      k.gx = k.gin = k.gamma = k.ls = k.partials = k.ls_partials = 1;
      k.gx_is_gin = k.gf_is_gy = k.gf_is_f = 0;
      memset(k.off, 0, sizeof k.off);
      RUN(k);
    }

  ru->section = "each buffer at each misalignment";
  for (int sl = 0; sl < NSLOTS; sl++) {
    const size_t es = tu_dtype_size(slot_dtype(ru->k->combo, sl));
    for (size_t off = 0; off < 64; off += es) {
      random_case(ru, &k, tu_range(&ru->rng, 1, 300));
      k.off[sl] = off;
      RUN(k);
    }
  }

  ru->section = "long rows, streaming, aligned and not";
  {
    const size_t sizes[] = {255, 256, 257, 768, 1000 + tu_range(&ru->rng, 0, 15), 4096, 16384};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      for (int v = 0; v < 4; v++) {
        random_case(ru, &k, sizes[i]);
        k.stream = DP_KNORM_STREAM_Y | DP_KNORM_STREAM_R;
        k.acc_x = k.acc_f = v >> 1;
        if (v & 1) memset(k.off, 0, sizeof k.off);
        RUN(k);
      }
  }

  ru->section = "dense NaN/inf/-0/subnormal inputs";
  for (int it = 0; it < 64; it++) {
    random_case(ru, &k, tu_range(&ru->rng, 1, 100));
    k.specials = 2;
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

static const kt_bench_size bench_sizes[] = {{"D768", 768, 1}, {"D4096", 4096, 0}};

/* Reads gy, r and gin, writes gx and gf. */
static size_t bench_bytes(dp_combo c, size_t n) { return n * (3 * dp_combo_x_size(c) + 2 * dp_combo_f_size(c)); }

static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_nbwd_fn fn = k->fn.nbwd;
  const float stats[2] = {0.0f, 1.0f};
  dp_norm_kargs ka = {NULL, NULL, 0.0f, a->variant ? (unsigned)(DP_KNORM_STREAM_Y | DP_KNORM_STREAM_R) : 0u, NULL};
  const float s = 1.0f / a->keep;
  const size_t n = a->n;
  /* gx over gin (in place), as a training step's residual gradient runs. */
  for (size_t i = 0; i < iters; i++)
    fn(a->buf[KT_BUF_T], a->buf[KT_BUF_O], a->buf[KT_BUF_F], a->buf[KT_BUF_X], a->buf[KT_BUF_T], NULL, s, n, &ka,
       stats, NULL, NULL, NULL);
}

const kt_family kt_family_nbwd = {
    .family = DP_FAMILY_nbwd,
    .formula = &formula,
    .run = run,
    .describe = describe,
    .bench = {.sizes = bench_sizes, .nsizes = 2, .variants = kt_store_stream, .nvariants = 2,
              .bufs = 1u << KT_BUF_O | 1u << KT_BUF_X | 1u << KT_BUF_F | 1u << KT_BUF_T, .bytes = bench_bytes,
              .calls = bench_calls},
};
