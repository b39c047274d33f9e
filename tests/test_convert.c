/* bf16/f16 conversions (src/kernels/half.h) against an independent reference:
 * every one of the 65 536 bf16 and f16 values widens exactly; f32 -> half
 * rounding is checked at every tie (the midpoint between each pair of
 * neighbouring half values, and one f32 ulp either side), on every half value,
 * through subnormals, at overflow to infinity and on NaNs.  Then the same
 * inputs go through every half kernel this CPU can run, which must store the
 * same bits (NaN results as the canonical quiet NaN), and on hardware with
 * native conversions (F16C, AArch64) the scalar code is compared with them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/common/half.h"
#include "core/dispatch.h"
#include "kernels/kernels.h"
#include "test_util.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#elif (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_F16C_TEST 1
#endif

#define MAX_REPORTS 10
#define RANDOM_INPUTS (1u << 18)

/* Format of a half type: explicit mantissa bits and exponent bias. */
typedef struct fmt {
  int t;            /* DP_T_BF16 or DP_T_F16 */
  int mbits, bias;  /* 7, 127 or 10, 15 */
  uint16_t inf;     /* positive infinity */
  const char *name;
} fmt;
static const fmt bf16 = {DP_T_BF16, 7, 127, 0x7F80, "bf16"};
static const fmt f16 = {DP_T_F16, 10, 15, 0x7C00, "f16"};

/* Value of a positive non-NaN pattern from its fields.  For rounding, the
 * infinity pattern stands for the first power of two past the largest finite
 * value, which is where IEEE rounding to nearest overflows. */
static double ref_value(const fmt *F, uint16_t h) {
  const int e = h >> F->mbits, m = h & ((1 << F->mbits) - 1);
  if (e == 0) return ldexp(m, 1 - F->bias - F->mbits);
  return ldexp((1 << F->mbits) + m, e - F->bias - F->mbits);
}

static int is_nan16(const fmt *F, uint16_t h) { return (h & 0x7FFF) > F->inf; }

/* Widening by definition: exact value, sign kept; an f16 NaN is quieted with
 * its payload kept, a bf16 NaN keeps its bits. */
static uint32_t ref_widen(const fmt *F, uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  if (F->t == DP_T_BF16) return (uint32_t)h << 16;
  if (is_nan16(F, h)) return sign | 0x7FC00000u | (uint32_t)(h & 0x3FFu) << 13;
  const uint16_t a = h & 0x7FFF;
  if (a == F->inf) return sign | 0x7F800000u;
  return sign | dp_f32_bits((float)ref_value(F, a));
}

/* Round to nearest, ties to even, found by bisection over the (monotonic)
 * positive patterns and decided by exact comparison with the midpoint. */
static uint16_t ref_round(const fmt *F, float v) {
  const uint32_t u = dp_f32_bits(v);
  const uint16_t sign = (uint16_t)(u >> 16 & 0x8000u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
    if (F->t == DP_T_BF16) return (uint16_t)(u >> 16 | 0x0040u);
    return (uint16_t)(sign | 0x7E00u | (u >> 13 & 0x3FFu));
  }
  const double a = fabs((double)v);
  if (a >= ref_value(F, F->inf)) return sign | F->inf;
  uint16_t lo = 0, hi = F->inf; /* value(lo) <= a < value(hi) */
  while (hi - lo > 1) {
    const uint16_t mid = (uint16_t)((lo + hi) / 2);
    if (ref_value(F, mid) <= a)
      lo = mid;
    else
      hi = mid;
  }
  const double twice = 2.0 * a, sum = ref_value(F, lo) + ref_value(F, hi);
  uint16_t r = twice < sum ? lo : twice > sum ? hi : (lo & 1) ? hi : lo;
  return sign | r;
}

static uint16_t canon16(const fmt *F, uint16_t h) {
  if (!is_nan16(F, h)) return h;
  return F->t == DP_T_BF16 ? DP_BF16_QNAN : DP_F16_QNAN;
}

static uint32_t canon32(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u ? DP_F32_QNAN : u; }

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  assert_non_null(p);
  return p;
}

/* ---- test inputs for narrowing */

typedef struct inputs {
  float *v;
  size_t n;
} inputs;

static void push(inputs *in, float v) { in->v[in->n++] = v; }

/* Every half value, each tie between neighbours, and one f32 ulp around
 * both, with both signs; then the overflow edge, f32 subnormals, NaNs with
 * many payloads, and random bit patterns. */
static inputs make_inputs(const fmt *F) {
  static const uint32_t nans[] = {0x7F800001u, 0x7F801FFFu, 0x7F802000u, 0x7F80FFFFu, 0x7F810000u,
                                  0x7FBFFFFFu, 0x7FC00000u, 0x7FC00001u, 0x7FFFE000u, 0x7FFFFFFFu};
  static const uint32_t edges[] = {0x00000001u, 0x00000002u, 0x007FFFFFu, 0x00800000u, 0x7F7FFFFFu,
                                   0x7F800000u, 0x477FF000u, 0x477FEFFFu, 0x477FF001u, 0x47800000u,
                                   0x33000000u, 0x33000001u, 0x32FFFFFFu, 0x38800000u, 0x387FFFFFu};
  inputs in;
  const size_t cap = (size_t)F->inf * 12 + 4 * 64 + RANDOM_INPUTS + 64;
  in.v = xmalloc(cap * sizeof(float));
  in.n = 0;
  for (uint16_t h = 0; h < F->inf; h++) {
    const float lo = (float)ref_value(F, h), mid = (float)((ref_value(F, h) + ref_value(F, (uint16_t)(h + 1))) / 2);
    const float pts[6] = {lo, nextafterf(lo, INFINITY), mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY),
                          nextafterf(lo, 0.0f)};
    for (int k = 0; k < 6; k++) {
      push(&in, pts[k]);
      push(&in, -pts[k]);
    }
  }
  for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) {
    push(&in, dp_f32_from_bits(edges[k]));
    push(&in, dp_f32_from_bits(edges[k] | 0x80000000u));
  }
  for (size_t k = 0; k < sizeof nans / sizeof nans[0]; k++) {
    push(&in, dp_f32_from_bits(nans[k]));
    push(&in, dp_f32_from_bits(nans[k] | 0x80000000u));
  }
  tu_rng r;
  tu_rng_init(&r, tu_seed());
  for (unsigned k = 0; k < RANDOM_INPUTS; k++) push(&in, dp_f32_from_bits((uint32_t)tu_next(&r)));
  return in;
}

/* ---- scalar conversions */

static void check_widen(const fmt *F) {
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    const float got = F->t == DP_T_BF16 ? dp_bf16_to_f32((uint16_t)h) : dp_f16_to_f32((uint16_t)h);
    const uint32_t want = ref_widen(F, (uint16_t)h);
    if (dp_f32_bits(got) != want && bad++ < MAX_REPORTS)
      print_error("%s widen %04x: got %08x want %08x\n", F->name, (unsigned)h, (unsigned)dp_f32_bits(got),
                  (unsigned)want);
  }
  assert_int_equal(bad, 0);
}

static void test_widen_bf16(void **state) {
  (void)state;
  check_widen(&bf16);
}

static void test_widen_f16(void **state) {
  (void)state;
  check_widen(&f16);
}

static void check_narrow(const fmt *F) {
  inputs in = make_inputs(F);
  int bad = 0;
  for (size_t i = 0; i < in.n; i++) {
    const float v = in.v[i];
    const uint16_t want = ref_round(F, v);
    const uint16_t got = F->t == DP_T_BF16 ? dp_f32_to_bf16(v) : dp_f32_to_f16(v);
    const uint16_t res = F->t == DP_T_BF16 ? dp_bf16_result(v) : dp_f16_result(v);
    if ((got != want || res != canon16(F, want)) && bad++ < MAX_REPORTS)
      print_error("%s narrow %08x: got %04x / %04x want %04x\n", F->name, (unsigned)dp_f32_bits(v), got, res,
                  want);
  }
  free(in.v);
  assert_int_equal(bad, 0);
}

static void test_narrow_bf16(void **state) {
  (void)state;
  check_narrow(&bf16);
}

static void test_narrow_f16(void **state) {
  (void)state;
  check_narrow(&f16);
}

/* Round trip: every non-NaN half survives widen + narrow. */
static void test_round_trip(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    if (!is_nan16(&bf16, (uint16_t)h)) assert_int_equal(dp_f32_to_bf16(dp_bf16_to_f32((uint16_t)h)), h);
    if (!is_nan16(&f16, (uint16_t)h)) assert_int_equal(dp_f32_to_f16(dp_f16_to_f32((uint16_t)h)), h);
  }
}

/* ---- native conversions agree with the scalar definition */

#if defined(HAVE_F16C_TEST)
__attribute__((target("f16c"))) static uint16_t hw_to_f16(float v) {
  return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set1_ps(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), 0);
}
__attribute__((target("f16c"))) static float hw_from_f16(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16((short)h)));
}
/* The library's AVX2 level includes F16C and the OS check VEX code needs. */
static int hw_available(void) { return (dp_cpu_isa_mask() >> DP_ISA_AVX2 & 1u) != 0; }
#elif defined(__aarch64__)
static uint16_t hw_to_f16(float v) {
  uint16_t h[4];
  vst1_u16(h, vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(v))));
  return h[0];
}
static float hw_from_f16(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
static int hw_available(void) { return 1; }
#endif

static void test_native_f16(void **state) {
  (void)state;
#if defined(HAVE_F16C_TEST) || defined(__aarch64__)
  if (!hw_available()) {
    print_message("no native f16 conversions on this CPU\n");
    skip();
  }
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    const uint32_t got = dp_f32_bits(dp_f16_to_f32((uint16_t)h)), want = dp_f32_bits(hw_from_f16((uint16_t)h));
    if (got != want && bad++ < MAX_REPORTS) print_error("f16 widen %04x: %08x, native %08x\n", (unsigned)h, got, want);
  }
  inputs in = make_inputs(&f16);
  for (size_t i = 0; i < in.n; i++) {
    const uint16_t got = dp_f32_to_f16(in.v[i]), want = hw_to_f16(in.v[i]);
    if (got != want && bad++ < MAX_REPORTS)
      print_error("f16 narrow %08x: %04x, native %04x\n", (unsigned)dp_f32_bits(in.v[i]), got, want);
  }
  free(in.v);
  assert_int_equal(bad, 0);
#else
  skip();
#endif
}

/* ---- every half kernel this CPU can run */

static int runnable(const dp_kernel_info *k) { return (dp_cpu_isa_mask() >> k->isa & 1u) != 0; }

static const fmt *fmt_of_f(dp_combo c) { return c == DP_COMBO_BF16 || c == DP_COMBO_F32_BF16 ? &bf16 : &f16; }

/* Kernels with s = 1 and a neutral operand are the conversions themselves:
 *   fwd, pure:  out = x + 1*(-0)      -> round(widen(x)) = x
 *   fwd, mixed: out = -0 + 1*f  (f32) -> widen(f)
 *   scale:      out = 1*x             -> x
 *   bwd, pure:  gf = 1*g, gx = g      -> g, and g's bits copied
 * with NaN results canonical (copies keep their bits). */
static int check_kernel_widen(const dp_kernel_info *k) {
  const fmt *F = fmt_of_f(k->combo);
  const int pure = k->combo == DP_COMBO_BF16 || k->combo == DP_COMBO_F16;
  const size_t n = 0x10000;
  uint16_t *h = xmalloc(n * 2), *neg0 = xmalloc(n * 2), *o16 = xmalloc(n * 2), *gx = xmalloc(n * 2);
  float *x32 = xmalloc(n * 4), *o32 = xmalloc(n * 4);
  for (size_t i = 0; i < n; i++) {
    h[i] = (uint16_t)i;
    neg0[i] = 0x8000;
    x32[i] = -0.0f;
  }
  if (k->family == DP_FAMILY_fwd && pure) k->fn.fwd(o16, h, neg0, 1.0f, n, 0);
  if (k->family == DP_FAMILY_fwd && !pure) k->fn.fwd(o32, x32, h, 1.0f, n, 0);
  if (k->family == DP_FAMILY_scale) k->fn.scale(o16, h, 1.0f, n, 0);
  if (k->family == DP_FAMILY_bwd) k->fn.bwd(o16, gx, h, 1.0f, n, 0);
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t got, want;
    if (pure) {
      got = o16[i];
      want = canon16(F, h[i]);
    } else {
      got = dp_f32_bits(o32[i]);
      want = canon32(ref_widen(F, h[i]));
    }
    if (k->family == DP_FAMILY_bwd && gx[i] != h[i]) got = 0xDEADu; /* the copy must keep the bits */
    if (got != want && bad++ < MAX_REPORTS)
      print_error("%s on %04x: got %08x want %08x\n", k->name, (unsigned)h[i], (unsigned)got, (unsigned)want);
  }
  free(h);
  free(neg0);
  free(o16);
  free(gx);
  free(x32);
  free(o32);
  return bad;
}

/* Mixed backward with s = 1: gf = round(g) for every narrowing input. */
static int check_kernel_narrow(const dp_kernel_info *k) {
  const fmt *F = fmt_of_f(k->combo);
  inputs in = make_inputs(F);
  uint16_t *gf = xmalloc(in.n * 2);
  k->fn.bwd(gf, NULL, in.v, 1.0f, in.n, 0);
  int bad = 0;
  for (size_t i = 0; i < in.n; i++) {
    const uint16_t want = canon16(F, ref_round(F, in.v[i]));
    if (gf[i] != want && bad++ < MAX_REPORTS)
      print_error("%s on %08x: got %04x want %04x\n", k->name, (unsigned)dp_f32_bits(in.v[i]), gf[i], want);
  }
  free(gf);
  free(in.v);
  return bad;
}

/* Pure scale with scales of few bits: the products land on and next to ties
 * between half values, so this checks the kernels' own rounding. */
static int check_kernel_products(const dp_kernel_info *k) {
  static const float scales[] = {1.0009765625f, 1.00390625f, 1.0078125f, 1.5f, 0.75f, 3.0f,
                                 1.0f / 0.9f,   0.0009765625f, 65536.0f, 1e-5f};
  const fmt *F = fmt_of_f(k->combo);
  const size_t n = 0x10000;
  uint16_t *h = xmalloc(n * 2), *out = xmalloc(n * 2);
  for (size_t i = 0; i < n; i++) h[i] = (uint16_t)i;
  int bad = 0;
  for (size_t j = 0; j < sizeof scales / sizeof scales[0]; j++) {
    k->fn.scale(out, h, scales[j], n, 0);
    for (size_t i = 0; i < n; i++) {
      const float w = F->t == DP_T_BF16 ? dp_bf16_to_f32(h[i]) : dp_f16_to_f32(h[i]);
      const uint16_t want = canon16(F, ref_round(F, scales[j] * w));
      if (out[i] != want && bad++ < MAX_REPORTS)
        print_error("%s s=%a on %04x: got %04x want %04x\n", k->name, (double)scales[j], h[i], out[i], want);
    }
  }
  free(h);
  free(out);
  return bad;
}

static void test_kernels(void **state) {
  (void)state;
  size_t count;
  const dp_kernel_info *list = dp_kernel_list(&count);
  int bad = 0, ran = 0;
  for (size_t i = 0; i < count; i++) {
    const dp_kernel_info *k = &list[i];
    /* The families whose s = 1 calls are the conversions (above); a new
     * family's half kernels are checked against scalar by test_kernels. */
    const int known = k->family == DP_FAMILY_fwd || k->family == DP_FAMILY_scale || k->family == DP_FAMILY_bwd;
    if (!known || k->combo == DP_COMBO_F32 || !runnable(k)) continue;
    const int pure = k->combo == DP_COMBO_BF16 || k->combo == DP_COMBO_F16;
    ran++;
    /* A mixed backward reads f32 g: it narrows, it does not widen. */
    if (k->family == DP_FAMILY_bwd && !pure)
      bad += check_kernel_narrow(k);
    else
      bad += check_kernel_widen(k);
    if (k->family == DP_FAMILY_scale) bad += check_kernel_products(k);
  }
  print_message("%d half kernels checked\n", ran);
  assert_true(ran >= 10); /* at least the scalar ones */
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_widen_bf16),  cmocka_unit_test(test_widen_f16),  cmocka_unit_test(test_narrow_bf16),
      cmocka_unit_test(test_narrow_f16),  cmocka_unit_test(test_round_trip), cmocka_unit_test(test_native_f16),
      cmocka_unit_test(test_kernels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
