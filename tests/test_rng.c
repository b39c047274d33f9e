/* The mask generator against its specification (droppath.h): Random123's
 * Philox4x32-10 known answers, the published vector file made by
 * tools/droppath_ref.py, and statistics that a correct generator passes with
 * overwhelming probability but that layout bugs (a counter word ignored, words
 * aliased, too few rounds) fail.  Seeds are fixed, so every run is identical. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "droppath/droppath.h"

#define KAT_FILE DP_TEST_DATA_DIR "/philox4x32_10_kat.txt"
#define VECTOR_FILE DP_TEST_DATA_DIR "/droppath_masks.txt"
#define SIGMAS 5.0
/* Chi-square critical values with a false-alarm rate near 1e-10, by degrees of
 * freedom: 2^k - 1 for k-sample keep patterns with a known keep probability. */
#define CHI2_CRIT_DF3 50.0
#define CHI2_CRIT_DF7 60.0

static const double probs[] = {0.05, 0.1, 0.5, 0.9};
#define NPROBS (sizeof probs / sizeof probs[0])

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  assert_non_null(p);
  return p;
}

static float keep_of(double p) { return (float)(1.0 - p); }

/* Exact probability that u = k * 2^-24 (k uniform in [0, 2^24)) is below keep. */
static double keep_probability(double p) {
  return ceil((double)keep_of(p) * 0x1p24) * 0x1p-24;
}

static dp_params params_of(double p, uint64_t seed, uint64_t offset, uint64_t base, int mode) {
  dp_params prm;
  dp_params_init(&prm);
  prm.drop_prob = p;
  prm.seed = seed;
  prm.offset = offset;
  prm.sample_base = base;
  prm.mode = mode;
  return prm;
}

static void get_keep(const dp_params *prm, size_t batch, uint8_t *keep) {
  assert_int_equal(dp_mask(prm, batch, keep, NULL, NULL, NULL), DP_OK);
}

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ------------------------------------------------------------ published vectors */

static void test_philox_kat(void **state) {
  (void)state;
  FILE *fh = fopen(KAT_FILE, "r");
  if (!fh) fail_msg("cannot open %s", KAT_FILE);
  char line[512];
  int n = 0, bad = 0;
  while (fgets(line, sizeof line, fh)) {
    char name[32];
    unsigned rounds;
    unsigned v[10];
    if (line[0] == '#' || sscanf(line, "%31s", name) != 1) continue;
    int got = sscanf(line, "%31s %u %x %x %x %x %x %x %x %x %x %x", name, &rounds, &v[0], &v[1],
                     &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    assert_int_equal(got, 12);
    assert_string_equal(name, "philox4x32");
    assert_int_equal(rounds, 10);
    const uint32_t ctr[4] = {v[0], v[1], v[2], v[3]}, key[2] = {v[4], v[5]};
    uint32_t out[4];
    dp_philox4x32_10(ctr, key, out);
    if (out[0] != v[6] || out[1] != v[7] || out[2] != v[8] || out[3] != v[9]) {
      if (bad++ < 8)
        print_error("KAT %d: got %08x %08x %08x %08x, want %08x %08x %08x %08x\n", n, out[0], out[1],
                    out[2], out[3], v[6], v[7], v[8], v[9]);
    }
    n++;
  }
  fclose(fh);
  print_message("%d Philox4x32-10 known answers, %d mismatches\n", n, bad);
  assert_true(n >= 55);
  assert_int_equal(bad, 0);
}

static void test_mask_vectors(void **state) {
  (void)state;
  FILE *fh = fopen(VECTOR_FILE, "r");
  if (!fh) fail_msg("cannot open %s", VECTOR_FILE);
  char line[512];
  int n = 0, lineno = 0, bad_word = 0, bad_mask = 0;
  while (fgets(line, sizeof line, fh)) {
    lineno++;
    unsigned long long seed, offset, base;
    unsigned b, w0, kept;
    char mode[16], pstr[64], sstr[64];
    if (line[0] == '#' || line[0] == '\n') continue;
    int got = sscanf(line, "%llx %llx %llx %u %15s %63s %x %u %63s", &seed, &offset, &base, &b, mode,
                     pstr, &w0, &kept, sstr);
    assert_int_equal(got, 9);
    const int batch_mode = strcmp(mode, "batch") == 0;
    const double p = strtod(pstr, NULL);
    const float s_want = (float)strtod(sstr, NULL);
    n++;

    /* The word first: a mismatch here is a counter/key layout bug, not a threshold bug. */
    const uint64_t g = batch_mode ? UINT64_MAX : (uint64_t)base + b;
    const uint32_t ctr[4] = {(uint32_t)g, (uint32_t)(g >> 32), (uint32_t)offset,
                             (uint32_t)(offset >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    dp_philox4x32_10(ctr, key, out);
    if (out[0] != w0 && bad_word++ < 8) print_error("line %d: w0 %08x, want %08x\n", lineno, out[0], w0);

    /* Once as the last sample of a short call, once inside a 64-sample call
     * (an implementation may take different paths for the two). */
    dp_params prm = params_of(p, seed, offset, base, batch_mode ? DP_MODE_BATCH : DP_MODE_ROW);
    uint8_t keep[64];
    float scales[64];
    assert_true(b < 64);
    assert_int_equal(dp_mask(&prm, b + 1, keep, scales, NULL, NULL), DP_OK);
    int ok = keep[b] == kept && same_float(scales[b], s_want);
    size_t at = b;
    if (!batch_mode) {
      uint64_t start = g >= 40 ? g - 40 : 0;
      if (start > UINT64_MAX - 64) start = UINT64_MAX - 64;
      prm.sample_base = start;
      at = (size_t)(g - start);
    }
    assert_true(at < 64);
    assert_int_equal(dp_mask(&prm, 64, keep, scales, NULL, NULL), DP_OK);
    for (size_t i = batch_mode ? 0 : at; i <= (batch_mode ? 63 : at); i++)
      ok &= keep[i] == kept && same_float(scales[i], s_want);
    if (!ok && bad_mask++ < 8)
      print_error("line %d (p=%s): kept %u scale %.9g at [%zu] of 64, want kept %u scale %.9g\n", lineno,
                  pstr, keep[at], (double)scales[at], at, kept, (double)s_want);
  }
  fclose(fh);
  print_message("%d mask vectors: %d word mismatches, %d mask mismatches\n", n, bad_word, bad_mask);
  assert_true(n >= 200);
  assert_int_equal(bad_word, 0);
  assert_int_equal(bad_mask, 0);
}

/* ------------------------------------------------------------ rates and scaling */

static void check_frequency(const char *what, double p, size_t n, size_t kept) {
  const double q = keep_probability(p);
  const double z = ((double)kept - (double)n * q) / sqrt((double)n * q * (1.0 - q));
  if (fabs(z) >= SIGMAS) fail_msg("%s p=%g: %zu of %zu kept, z = %.2f", what, p, kept, n, z);
}

static void test_drop_frequency(void **state) {
  (void)state;
  const size_t n = (size_t)1 << 20, rows = 1024, cols = n / rows;
  uint8_t *keep = xmalloc(n);
  for (size_t i = 0; i < NPROBS; i++) {
    const double p = probs[i];
    /* One large call. */
    dp_params prm = params_of(p, 0x243f6a8885a308d3ull, 99, 0, DP_MODE_ROW);
    size_t kept = 0;
    get_keep(&prm, n, keep);
    for (size_t b = 0; b < n; b++) kept += keep[b];
    check_frequency("one call", p, n, kept);

    /* Many calls whose offsets cross into the offset's high word. */
    kept = 0;
    for (size_t o = 0; o < cols; o++) {
      prm = params_of(p, 7, 0xffffff00ull + o, 1ull << 40, DP_MODE_ROW);
      get_keep(&prm, rows, keep);
      for (size_t b = 0; b < rows; b++) kept += keep[b];
    }
    check_frequency("across offsets", p, n, kept);

    /* Batch mode: one draw per call. */
    kept = 0;
    for (size_t o = 0; o < n; o++) {
      prm = params_of(p, 0xfedcba9876543210ull, o, 0, DP_MODE_BATCH);
      get_keep(&prm, 1, keep);
      kept += keep[0];
    }
    check_frequency("batch mode", p, n, kept);
  }
  free(keep);
}

static void test_mean_preserved(void **state) {
  (void)state;
  const size_t n = (size_t)1 << 20;
  float *scales = xmalloc(n * sizeof *scales);
  for (size_t i = 0; i < NPROBS; i++) {
    const double p = probs[i], q = keep_probability(p);
    const float s = 1.0f / keep_of(p);
    dp_params prm = params_of(p, 0x13198a2e03707344ull, 0x100000000ull, 12345, DP_MODE_ROW);
    assert_int_equal(dp_mask(&prm, n, NULL, scales, NULL, NULL), DP_OK);
    double sum = 0.0;
    for (size_t b = 0; b < n; b++) {
      assert_true(same_float(scales[b], s) || same_float(scales[b], 0.0f));
      sum += scales[b];
    }
    const double mean = sum / (double)n;
    const double sd = (double)s * sqrt(q * (1.0 - q) / (double)n);
    /* s*q differs from 1 only by binary32 rounding of keep and s. */
    assert_true(fabs((double)s * q - 1.0) < 1e-6);
    if (fabs(mean - 1.0) >= SIGMAS * sd + 1e-6) fail_msg("p=%g: mean scale %.6f, sd %.2g", p, mean, sd);
  }
  free(scales);
}

static void check_all(double p, int scale_by_keep, int mode, int want_kept, float want_scale) {
  const size_t n = 4096;
  uint8_t *keep = xmalloc(n);
  float *scales = xmalloc(n * sizeof *scales);
  size_t *idx = xmalloc(n * sizeof *idx);
  const uint64_t seeds[] = {0, 1, 0xffffffffffffffffull};
  for (size_t i = 0; i < 3; i++) {
    dp_params prm = params_of(p, seeds[i], seeds[i] * 3, seeds[i] >> 1, mode);
    prm.scale_by_keep = scale_by_keep;
    size_t count = 12345;
    feclearexcept(FE_ALL_EXCEPT);
    assert_int_equal(dp_mask(&prm, n, keep, scales, &count, idx), DP_OK);
    /* keep == 0 must not be divided by. */
    assert_false(fetestexcept(FE_DIVBYZERO | FE_INVALID));
    assert_int_equal(count, want_kept ? n : 0);
    for (size_t b = 0; b < n; b++) {
      assert_int_equal(keep[b], want_kept);
      assert_true(same_float(scales[b], want_scale));
      if (want_kept) assert_int_equal(idx[b], b);
    }
  }
  free(keep);
  free(scales);
  free(idx);
}

static void test_p_zero_and_one(void **state) {
  (void)state;
  for (int mode = DP_MODE_ROW; mode <= DP_MODE_BATCH; mode++) {
    check_all(0.0, 1, mode, 1, 1.0f);
    check_all(0.0, 0, mode, 1, 1.0f);
    /* 1 - 2^-25 rounds to keep = 1.0f: indistinguishable from p = 0. */
    check_all(0x1p-25, 1, mode, 1, 1.0f);
    check_all(1.0, 1, mode, 0, 0.0f);
    check_all(1.0, 0, mode, 0, 0.0f);
  }
}

/* ------------------------------------------------------------ call structure */

static void test_batch_mode_shared_draw(void **state) {
  (void)state;
  enum { B = 37, CALLS = 256 };
  uint8_t keep[B], keep2[B];
  size_t kept_off = 0, kept_seed = 0;
  for (size_t i = 0; i < CALLS; i++) {
    const uint64_t seed = 0x0123456789abcdefull, offset = 0xfffffffffffff000ull + i * 16;
    dp_params prm = params_of(0.5, seed, offset, 0, DP_MODE_BATCH);
    get_keep(&prm, B, keep);
    for (size_t b = 1; b < B; b++) assert_int_equal(keep[b], keep[0]);
    kept_off += keep[0];

    /* The draw is the one at the reserved counter g = 2^64-1 ... */
    const uint32_t ctr[4] = {UINT32_MAX, UINT32_MAX, (uint32_t)offset, (uint32_t)(offset >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    dp_philox4x32_10(ctr, key, out);
    assert_int_equal(keep[0], (float)(out[0] >> 8) * 0x1p-24f < keep_of(0.5));
    /* ... which does not depend on sample_base. */
    prm.sample_base = 0x8000000000000001ull + i;
    get_keep(&prm, B, keep2);
    assert_memory_equal(keep, keep2, B);

    prm = params_of(0.5, 0xffffffff00000000ull + i, 3, 0, DP_MODE_BATCH);
    get_keep(&prm, 1, keep);
    kept_seed += keep[0];
  }
  /* Varies with offset and with seed: 128 +- 5 sigma (8). */
  assert_in_range(kept_off, 88, 168);
  assert_in_range(kept_seed, 88, 168);
}

static void test_split_by_sample_base(void **state) {
  (void)state;
  enum { B = 1000 };
  const uint64_t bases[] = {0, 0xffffffffull - 500, 0x8000000000000007ull};
  static uint8_t whole[B], part[B];
  static float swhole[B], spart[B];
  for (int mode = DP_MODE_ROW; mode <= DP_MODE_BATCH; mode++) {
    for (size_t i = 0; i < 3; i++) {
      dp_params prm = params_of(0.3, 0x5eed, 0x100000001ull, bases[i], mode);
      assert_int_equal(dp_mask(&prm, B, whole, swhole, NULL, NULL), DP_OK);
      const size_t cuts[] = {0, 1, 300, 301, 511, 999, B};
      for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++) {
        prm.sample_base = bases[i] + cuts[c];
        const size_t len = cuts[c + 1] - cuts[c];
        assert_int_equal(dp_mask(&prm, len, part + cuts[c], spart + cuts[c], NULL, NULL), DP_OK);
      }
      assert_memory_equal(whole, part, B);
      assert_memory_equal(swhole, spart, sizeof swhole);
    }
  }
}

static void test_kept_outputs_consistent(void **state) {
  (void)state;
  const size_t sizes[] = {0, 1, 2, 63, 1000};
  const double ps[] = {0.0, 0.1, 0.5, 0.9, 1.0};
  static uint8_t keep[1000], keep2[1000];
  static float scales[1000];
  static size_t idx[1000], idx2[1000];
  for (size_t si = 0; si < 5; si++) {
    for (size_t pi = 0; pi < 5; pi++) {
      const size_t n = sizes[si];
      dp_params prm = params_of(ps[pi], 0xabcdef0123456789ull, 5, 77, DP_MODE_ROW);
      const float s = keep_of(ps[pi]) > 0.0f ? 1.0f / keep_of(ps[pi]) : 1.0f;
      size_t count = 999999, count2 = 999999, j = 0;
      assert_int_equal(dp_mask(&prm, n, keep, scales, &count, idx), DP_OK);
      for (size_t b = 0; b < n; b++) {
        assert_true(keep[b] == 0 || keep[b] == 1);
        assert_true(same_float(scales[b], keep[b] ? s : 0.0f));
        if (keep[b]) {
          assert_true(j < count);
          assert_int_equal(idx[j++], b);
        }
      }
      assert_int_equal(count, j);
      /* Each output alone gives the same answer. */
      assert_int_equal(dp_mask(&prm, n, keep2, NULL, NULL, NULL), DP_OK);
      if (n) assert_memory_equal(keep, keep2, n);
      assert_int_equal(dp_mask(&prm, n, NULL, NULL, &count2, NULL), DP_OK);
      assert_int_equal(count2, count);
      assert_int_equal(dp_mask(&prm, n, NULL, NULL, NULL, idx2), DP_OK);
      if (count) assert_memory_equal(idx, idx2, count * sizeof *idx);
    }
  }
  dp_params prm = params_of(0.5, 1, 2, 3, DP_MODE_ROW);
  size_t count = 7;
  assert_int_equal(dp_mask(&prm, 0, NULL, NULL, &count, NULL), DP_OK);
  assert_int_equal(count, 0);
}

/* ------------------------------------------------------------ independence */

/* Keep flag of sample `base` (one-sample call) for a given seed and offset. */
static int keep1(double p, uint64_t seed, uint64_t offset, uint64_t base) {
  dp_params prm = params_of(p, seed, offset, base, DP_MODE_ROW);
  uint8_t k;
  get_keep(&prm, 1, &k);
  return k;
}

/* Chi-square of n k-sample keep patterns (counts[pattern], bit j = sample j kept). */
static double chi_square(const size_t *counts, int k, size_t n, double q) {
  double chi2 = 0.0;
  for (int pat = 0; pat < (1 << k); pat++) {
    double e = (double)n;
    for (int j = 0; j < k; j++) e *= (pat >> j & 1) ? q : 1.0 - q;
    const double d = (double)counts[pat] - e;
    chi2 += d * d / e;
  }
  return chi2;
}

static void check_patterns(const char *what, double p, const uint8_t *flags, size_t n, size_t stride,
                           int k) {
  /* flags[i*stride*k + j*stride] for j < k forms tuple i; tuples do not overlap. */
  size_t counts[8] = {0}, tuples = n / ((size_t)k * stride) * stride;
  for (size_t t = 0; t < tuples; t++) {
    const size_t first = (t / stride) * stride * (size_t)k + t % stride;
    int pat = 0;
    for (int j = 0; j < k; j++) pat |= flags[first + (size_t)j * stride] << j;
    counts[pat]++;
  }
  const double chi2 = chi_square(counts, k, tuples, keep_probability(p));
  const double crit = k == 2 ? CHI2_CRIT_DF3 : CHI2_CRIT_DF7;
  if (chi2 >= crit) fail_msg("%s p=%g k=%d: chi2 %.1f over %zu tuples", what, p, k, chi2, tuples);
}

static void check_correlation(const char *what, const uint8_t *a, const uint8_t *b, size_t n) {
  double sa = 0, sb = 0, sab = 0;
  for (size_t i = 0; i < n; i++) {
    sa += a[i];
    sb += b[i];
    sab += a[i] & b[i];
  }
  const double ma = sa / (double)n, mb = sb / (double)n;
  const double cov = sab / (double)n - ma * mb;
  const double r = cov / sqrt(ma * (1 - ma) * mb * (1 - mb));
  if (fabs(r) * sqrt((double)n) >= SIGMAS) fail_msg("%s: correlation %.4f over %zu pairs", what, r, n);
}

static void test_neighbouring_samples(void **state) {
  (void)state;
  const size_t n = (size_t)3 << 18;
  uint8_t *keep = xmalloc(n);
  const double ps[] = {0.5, 0.1};
  for (size_t i = 0; i < 2; i++) {
    /* sample_base straddles 2^32 so the tuples cross g's word boundary. */
    dp_params prm = params_of(ps[i], 0x3141592653589793ull, 0x2718281828459045ull,
                              0x100000000ull - n / 2, DP_MODE_ROW);
    get_keep(&prm, n, keep);
    check_patterns("neighbouring samples", ps[i], keep, n, 1, 2);
    check_patterns("neighbouring samples", ps[i], keep, n, 1, 3);
    check_correlation("neighbouring samples", keep, keep + 1, n - 1);
  }
  free(keep);
}

/* flags[r*cols + c] = keep flag of sample c in call r; call r uses seed (or offset) start + r. */
static void grid(double p, int vary_seed, uint64_t start, size_t rows, size_t cols, uint8_t *flags) {
  for (size_t r = 0; r < rows; r++) {
    dp_params prm = vary_seed ? params_of(p, start + r, 0x9e3779b97f4a7c15ull, 1000, DP_MODE_ROW)
                              : params_of(p, 0x9e3779b97f4a7c15ull, start + r, 1000, DP_MODE_ROW);
    get_keep(&prm, cols, flags + r * cols);
  }
}

static void test_consecutive_offsets_and_seeds(void **state) {
  (void)state;
  enum { ROWS = 192, COLS = 4096 };
  uint8_t *flags = xmalloc((size_t)ROWS * COLS);
  const double ps[] = {0.5, 0.1};
  for (int vary_seed = 0; vary_seed <= 1; vary_seed++) {
    const char *what = vary_seed ? "consecutive seeds" : "consecutive offsets";
    for (size_t i = 0; i < 2; i++) {
      /* Rows straddle 2^32, exercising the carry into the high word. */
      grid(ps[i], vary_seed, 0x100000000ull - ROWS / 2, ROWS, COLS, flags);
      check_patterns(what, ps[i], flags, (size_t)ROWS * COLS, COLS, 2);
      check_patterns(what, ps[i], flags, (size_t)ROWS * COLS, COLS, 3);
      check_correlation(what, flags, flags + COLS, (size_t)(ROWS - 1) * COLS);
      /* (sample c+1, row r) vs (sample c, row r+1): catches g and offset/seed mixed additively. */
      check_correlation(what, flags + 1, flags + COLS, (size_t)(ROWS - 1) * COLS - 1);
    }
  }
  free(flags);
}

/* Pairs of draws that differ in one counter or key word only by 2^32 (so a
 * generator that drops a high word makes them identical), or that swap g and
 * offset (so a generator that combines them symmetrically makes them equal). */
static void test_high_words_and_swaps(void **state) {
  (void)state;
  enum { N = 1 << 16 };
  static uint8_t a[N], b[N];
  const double p = 0.5;
  const uint64_t hi = 1ull << 32;
  static const char *const what[] = {"offset +2^32", "seed +2^32", "sample_base +2^32",
                                     "offset <-> g swap", "seed <-> offset swap"};
  for (int kind = 0; kind < 5; kind++) {
    for (size_t i = 0; i < N; i++) {
      const uint64_t x = 0x0123456789abcdefull * (i + 1), y = 0xfedcba9876543210ull ^ (i * 977);
      const uint64_t seed = x >> 7, off = y & 0xffffffffull, g = x & 0xffffffffull;
      switch (kind) {
      case 0:
        a[i] = (uint8_t)keep1(p, seed, off, g);
        b[i] = (uint8_t)keep1(p, seed, off + hi, g);
        break;
      case 1:
        a[i] = (uint8_t)keep1(p, off, seed, g);
        b[i] = (uint8_t)keep1(p, off + hi, seed, g);
        break;
      case 2:
        a[i] = (uint8_t)keep1(p, seed, off, g);
        b[i] = (uint8_t)keep1(p, seed, off, g + hi);
        break;
      case 3:
        a[i] = (uint8_t)keep1(p, seed, off, g);
        b[i] = (uint8_t)keep1(p, seed, g, off);
        break;
      default:
        a[i] = (uint8_t)keep1(p, off, g, seed);
        b[i] = (uint8_t)keep1(p, g, off, seed);
        break;
      }
    }
    check_correlation(what[kind], a, b, N);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_philox_kat),
      cmocka_unit_test(test_mask_vectors),
      cmocka_unit_test(test_drop_frequency),
      cmocka_unit_test(test_mean_preserved),
      cmocka_unit_test(test_p_zero_and_one),
      cmocka_unit_test(test_batch_mode_shared_draw),
      cmocka_unit_test(test_split_by_sample_base),
      cmocka_unit_test(test_kept_outputs_consistent),
      cmocka_unit_test(test_neighbouring_samples),
      cmocka_unit_test(test_consecutive_offsets_and_seeds),
      cmocka_unit_test(test_high_words_and_swaps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
