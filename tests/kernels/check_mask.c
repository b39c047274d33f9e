/* mask: row-mode scales of n samples from Philox (kernels.h). It writes one
 * float array and reads nothing, so it has cases and sweeps of its own: the
 * counter's carries and wrap, keep at a sample's own threshold, special keeps. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

typedef struct mcase {
  uint64_t seed, offset, base;
  float keep, scale;
  size_t n, off; /* off: bytes past a 64-byte boundary */
  int place;
} mcase;

static uint32_t mask_word(uint64_t seed, uint64_t offset, uint64_t g) {
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const uint32_t ctr[4] = {(uint32_t)g, (uint32_t)(g >> 32), (uint32_t)offset, (uint32_t)(offset >> 32)};
  uint32_t out[4];
  dp_philox4x32_10(ctr, key, out);
  return out[0];
}

/* u of sample g, the value keep is compared with. */
static float mask_u(uint64_t seed, uint64_t offset, uint64_t g) {
  return (float)(mask_word(seed, offset, g) >> 8) * 0x1p-24f;
}

/* The contract of dp_mask_fn, written out on the public Philox. */
static void formula_mask(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                         float *scales) {
  for (size_t i = 0; i < n; i++) scales[i] = mask_u(seed, offset, base + (uint64_t)i) < keep ? scale : 0.0f;
}

static const dp_kernel_info formula = {"formula_mask", DP_FAMILY_mask, DP_COMBO_F32, DP_ISA_SCALAR,
                                       {.mask = formula_mask}};

/* ---------------------------------------------------------------- cases */

static uint64_t random_u64(tu_rng *r) {
  static const uint64_t specials[] = {0, 1, 0xFFFFFFFFull, 0x100000000ull, 0xFFFFFFFFFFFFFFFFull,
                                      0x8000000000000000ull, 0x123456789ABCDEF0ull};
  if ((tu_next(r) & 3) == 0) return specials[tu_next(r) % (sizeof specials / sizeof specials[0])];
  return tu_next(r);
}

/* Counters crossing 2^32 (word 1 carries) and 2^64 (the counter wraps) inside the run. */
static uint64_t random_base(tu_rng *r, size_t n) {
  const uint64_t back = tu_range(r, 0, n + 1);
  switch (tu_next(r) % 5) {
    case 0: return ((uint64_t)tu_range(r, 1, 0xFFFFFFFFu) << 32) - back;
    case 1: return 0 - back;
    case 2: return tu_range(r, 0, 100);
    default: return tu_next(r);
  }
}

static float random_keep(tu_rng *r) {
  static const float specials[] = {0.0f, 1.0f, -0.0f, -1.0f, 2.0f, 0x1p-24f, 1.0f - 0x1p-24f, 0x1p-149f,
                                   0.5f, 0.1f, 0.9f, 1e-7f, INFINITY, -INFINITY, NAN};
  if (tu_next(r) & 1) return specials[tu_next(r) % (sizeof specials / sizeof specials[0])];
  const double p = (double)(tu_next(r) >> 11) * 0x1p-53;
  return (float)(1.0 - p);
}

static void random_mcase(tu_rng *r, mcase *c, size_t n) {
  memset(c, 0, sizeof *c);
  c->n = n;
  c->seed = random_u64(r);
  c->offset = random_u64(r);
  c->base = random_base(r, n);
  c->keep = random_keep(r);
  c->scale = (tu_next(r) & 1) && c->keep > 0.0f ? 1.0f / c->keep : kt_s_list[tu_range(r, 0, KT_N_S - 1)];
  c->off = 4 * tu_range(r, 0, 15);
  c->place = (tu_next(r) & 3) == 0 ? KT_PLACE_FENCE_TAIL : KT_PLACE_GUARDED;
}

static void describe(char *buf, size_t len, const kt_runner *ru, const void *c_) {
  const mcase *c = (const mcase *)c_;
  (void)ru;
  snprintf(buf, len,
           "n=%zu seed=0x%016llx offset=0x%016llx base=0x%016llx keep=%.9g (0x%08x) scale=%.9g (0x%08x) %s off=%zu",
           c->n, (unsigned long long)c->seed, (unsigned long long)c->offset, (unsigned long long)c->base,
           (double)c->keep, (unsigned)tu_f32_bits(c->keep), (double)c->scale, (unsigned)tu_f32_bits(c->scale),
           kt_place_name(c->place), c->place == KT_PLACE_FENCE_TAIL ? (size_t)0 : c->off);
}

static int run_case(kt_runner *ru, const mcase *c) {
  kt_placed b[2];
  ru->checks++;
  for (int set = 0; set < 2; set++) b[set] = kt_place(set, 0, c->place, c->off, c->n * sizeof(float));
  char what[200] = "";
  kt_running(ru, ru->ref, c);
  ru->ref->fn.mask(c->seed, c->offset, c->base, c->keep, c->scale, c->n, (float *)(void *)b[1].data);
  kt_running(ru, ru->k, c);
  ru->k->fn.mask(c->seed, c->offset, c->base, c->keep, c->scale, c->n, (float *)(void *)b[0].data);
  kt_running(NULL, NULL, NULL);
  for (int set = 0; set < 2 && !what[0]; set++) {
    const char *who = set ? "reference" : "kernel";
    for (size_t i = 1; i <= b[set].gl && !what[0]; i++)
      if (b[set].data[-(ptrdiff_t)i] != TU_GUARD_BYTE) snprintf(what, sizeof what, "%s wrote byte -%zu", who, i);
    const size_t after = tu_first_dirty(b[set].data + b[set].bytes, b[set].gr);
    if (!what[0] && after < b[set].gr) snprintf(what, sizeof what, "%s wrote byte %zu past the end", who, after);
  }
  if (!what[0] && memcmp(b[0].data, b[1].data, b[0].bytes) != 0) {
    size_t i = 0;
    while (memcmp(b[0].data + 4 * i, b[1].data + 4 * i, 4) == 0) i++;
    char got[48], want[48];
    kt_format(got, sizeof got, b[0].data + 4 * i, DP_F32);
    kt_format(want, sizeof want, b[1].data + 4 * i, DP_F32);
    snprintf(what, sizeof what, "scales[%zu] (g=0x%016llx, u=%.9g) differs: got %s, reference %s", i,
             (unsigned long long)(c->base + i), (double)mask_u(c->seed, c->offset, c->base + i), got, want);
  }
  if (!what[0]) return 1;
  kt_report(ru, c, what);
  return 0;
}

#define RUN(c)                          \
  do {                                  \
    if (!run_case(ru, &(c))) return 0; \
  } while (0)

/* keep at u exactly drops the sample, the next float up keeps it. */
static float keep_near(float u, int which) {
  return which == 0 ? u : which == 1 ? nextafterf(u, 2.0f) : nextafterf(u, -1.0f);
}

static int run(kt_runner *ru) {
  mcase c;
  ru->section = "every n to 40, twice, one against the page";
  for (size_t n = 0; n <= 40; n++)
    for (int place = KT_PLACE_GUARDED; place <= KT_PLACE_FENCE_TAIL; place += KT_PLACE_FENCE_TAIL - KT_PLACE_GUARDED) {
      random_mcase(&ru->rng, &c, n);
      c.place = place;
      RUN(c);
    }

  ru->section = "keep at a sample's threshold";
  for (int it = 0; it < 300; it++) {
    random_mcase(&ru->rng, &c, tu_range(&ru->rng, 1, 40));
    const float u = mask_u(c.seed, c.offset, c.base + tu_range(&ru->rng, 0, c.n - 1));
    c.keep = keep_near(u, (int)(tu_next(&ru->rng) % 3));
    RUN(c);
  }

  /* The same, at a word whose low byte is 0: a kernel deciding with w0 and
   * an integer threshold (w0 < thr*256) meets its exact cut-off there, which
   * a random word hits once in 256. */
  ru->section = "keep at the threshold of a word with a zero low byte";
  int found = 0;
  for (int it = 0; it < 60; it++) {
    random_mcase(&ru->rng, &c, tu_range(&ru->rng, 1, 40));
    size_t at = SIZE_MAX;
    for (int tries = 0; tries < 512 && at == SIZE_MAX; tries++, c.base += c.n)
      for (size_t i = 0; i < c.n && at == SIZE_MAX; i++)
        if ((mask_word(c.seed, c.offset, c.base + i) & 0xFFu) == 0) at = i;
    if (at == SIZE_MAX) continue;
    c.base -= c.n; /* the loop stepped once past the run that has it */
    c.keep = keep_near(mask_u(c.seed, c.offset, c.base + at), it % 3);
    found++;
    RUN(c);
  }
  if (found < 30) {
    printf("FAIL %s: only %d of 60 searches found a zero-low-byte word\n", ru->section, found);
    return 0;
  }

  ru->section = "each keep and scale at every n to 20";
  {
    static const float keeps[] = {0.0f, 1.0f, -0.0f, 0x1p-24f, 0.5f, 1.0f - 0x1p-24f, NAN, INFINITY};
    for (size_t ki = 0; ki < sizeof keeps / sizeof keeps[0]; ki++)
      for (size_t n = 0; n <= 20; n++) {
        random_mcase(&ru->rng, &c, n);
        c.keep = keeps[ki];
        RUN(c);
      }
  }

  ru->section = "random, n to 3000";
  for (int it = 0; it < kt_cfg.iters / 4; it++) {
    random_mcase(&ru->rng, &c, tu_range(&ru->rng, 0, (tu_next(&ru->rng) & 3) ? 300 : 3000));
    RUN(c);
  }
  return 1;
}

/* ---------------------------------------------------------------- bench */

/* B8: the tiny rows' batch, in the short suite beside them. */
static const kt_bench_size bench_sizes[] = {{"B8", 8, 1}, {"B256", 256, 0}};

/* benchmark::ClobberMemory: the scales must be stored before the next call. */
static inline void clobber_memory(void) {
#if defined(__GNUC__)
  __asm__ __volatile__("" ::: "memory");
#endif
}

/* Each call draws another mask (offsets cycle) and its scales must land. */
static void bench_calls(const dp_kernel_info *k, kt_bench_args *a, size_t iters) {
  const dp_mask_fn fn = k->fn.mask;
  float *scales = (float *)a->buf[KT_BUF_O];
  const uint64_t seed = a->seed, cycle = a->cycle;
  const float keep = a->keep, scale = 1.0f / a->keep;
  const size_t n = a->n;
  uint64_t off = a->state;
  for (size_t i = 0; i < iters; i++) {
    fn(seed, off, 0, keep, scale, n, scales);
    clobber_memory();
    off = off + 1 == cycle ? 0 : off + 1;
  }
  a->state = off;
}

const kt_family kt_family_mask = {
    .family = DP_FAMILY_mask,
    .formula = &formula,
    .run = run,
    .describe = describe,
    .bench = {.sizes = bench_sizes, .nsizes = 2, .bufs = 1u << KT_BUF_O, .bytes = NULL, .calls = bench_calls},
};
