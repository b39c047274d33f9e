/*
 * Results do not depend on the caller's floating-point state (droppath.h):
 * with the rounding mode, flush-to-zero / denormals-are-zero or trapping
 * exceptions set by the caller, every operation gives the bits it gives in
 * the default state, at 1 and 2 threads, on every ISA; and the caller's
 * state is what it was after each call.  The state is changed both before
 * the OpenMP pool exists (its workers are created with it) and after (they
 * keep what they had): libgomp workers never see the caller's later
 * changes, so only the library setting the state on each thread makes the
 * two agree.
 */
#define _GNU_SOURCE /* feenableexcept */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fenv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "droppath/droppath.h"
#include "dp_config.h"
#include "test_util.h"

#if DP_HAVE_OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FTZ_NAME "FTZ|DAZ"
static void set_flush(void) { _mm_setcsr(_mm_getcsr() | 0x8040u); }
static uint64_t control_word(void) { return _mm_getcsr() & ~0x3Fu; /* without the sticky flags */ }
#elif defined(__aarch64__)
#define FTZ_NAME "FZ"
static uint64_t control_word(void) {
  uint64_t v;
  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  return v;
}
static void set_flush(void) { __asm__ volatile("msr fpcr, %0" : : "r"(control_word() | (1ull << 24))); }
#else
#define FTZ_NAME "flush (none here)"
#define NO_FLUSH 1
static void set_flush(void) {}
static uint64_t control_word(void) { return 0; }
#endif
#ifndef NO_FLUSH
#define NO_FLUSH 0
#endif

enum { B = 16, D = 1037, N = B * D };

typedef struct outputs {
  float fwd[N], drop[N], infer[N], gf[N], gx[N];
  uint16_t fwd16[N], fwdbf[N];
  float scales[B];
  double rates[12];
} outputs;

static float x[N], f[N], g[N];
static uint16_t x16[N], f16v[N], xbf[N], fbf[N];
static outputs ref, got;

/* Values whose products and sums round differently by mode, subnormals and
 * results that flush, as f32 and as half bits. */
static void fill_inputs(void) {
  tu_rng r;
  tu_rng_init(&r, 12345);
  for (size_t i = 0; i < N; i++) {
    float v = tu_float(&r) * 3.0f;
    if (i % 7 == 0) v *= 1e-38f;                /* subnormal range */
    if (i % 11 == 0) v = tu_float(&r) * 7e-5f; /* f16 subnormal results */
    x[i] = v;
    f[i] = i % 5 == 0 ? tu_float(&r) * 1e-39f : tu_float(&r) * 1.7f;
    g[i] = tu_float(&r) * (i % 3 == 0 ? 1e-37f : 2.0f);
    x16[i] = (uint16_t)(tu_next(&r) & 0x83FF);               /* f16 subnormals and small normals */
    f16v[i] = (uint16_t)((tu_next(&r) & 0x87FF) | 0x0400); /* normals near the bottom */
    xbf[i] = (uint16_t)(tu_next(&r) & 0x80FF);               /* bf16 subnormals */
    fbf[i] = (uint16_t)((tu_next(&r) & 0x807F) | 0x3F80);
  }
}

/* Every operation once, at `threads`, into o. */
static void run_all(outputs *o, int threads) {
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.3; /* 1 - p and 1/keep are inexact: their rounding shows */
  p.seed = 99;
  p.num_threads = threads;
  const dp_shape sh = {B, 1, D};
  const dp_tensor tx = dp_tensor_dense(x, DP_F32, sh), tf = dp_tensor_dense(f, DP_F32, sh);
  assert_int_equal(dp_forward(&p, sh, dp_tensor_dense(o->fwd, DP_F32, sh), tx, tf, o->scales), DP_OK);
  assert_int_equal(dp_drop_path(&p, sh, dp_tensor_dense(o->drop, DP_F32, sh), tx, NULL), DP_OK);
  dp_params huang = p;
  huang.scale_by_keep = 0; /* out = x + keep*f */
  assert_int_equal(dp_inference_add(&huang, sh, dp_tensor_dense(o->infer, DP_F32, sh), tx, tf), DP_OK);
  memcpy(o->gf, f, sizeof f);
  memcpy(o->gx, x, sizeof x);
  assert_int_equal(dp_backward(&p, sh, dp_tensor_dense(o->gf, DP_F32, sh), dp_tensor_dense(o->gx, DP_F32, sh),
                               dp_tensor_dense(g, DP_F32, sh), NULL,
                               DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X),
                   DP_OK);
  assert_int_equal(dp_forward(&p, sh, dp_tensor_dense(o->fwd16, DP_F16, sh), dp_tensor_dense(x16, DP_F16, sh),
                              dp_tensor_dense(f16v, DP_F16, sh), NULL),
                   DP_OK);
  assert_int_equal(dp_forward(&p, sh, dp_tensor_dense(o->fwdbf, DP_BF16, sh), dp_tensor_dense(xbf, DP_BF16, sh),
                              dp_tensor_dense(fbf, DP_BF16, sh), NULL),
                   DP_OK);
  assert_int_equal(dp_drop_rates(DP_SCHEDULE_EFFICIENTNET, 0.3, 12, o->rates), DP_OK);
}

/* A caller's state: a rounding mode, and flushing or traps on top. */
typedef struct fpstate {
  const char *name;
  int round;
  int flush;
  int traps;
} fpstate;

static const fpstate states[] = {
    {"FE_UPWARD", FE_UPWARD, 0, 0},        {"FE_DOWNWARD", FE_DOWNWARD, 0, 0}, {"FE_TOWARDZERO", FE_TOWARDZERO, 0, 0},
    {FTZ_NAME, FE_TONEAREST, 1, 0},        {"FE_UPWARD + " FTZ_NAME, FE_UPWARD, 1, 0},
    {"traps on invalid, divide, overflow", FE_TONEAREST, 0, 1},
};

/* Sets s; 0 if this machine cannot (e.g. no FP traps on many Arm cores). */
static int enter(const fpstate *s) {
  if (s->flush && NO_FLUSH) return 0;
  if (fesetround(s->round) != 0) return 0;
  if (s->flush) set_flush();
  if (s->traps && feenableexcept(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW) == -1) {
    fesetround(FE_TONEAREST);
    return 0;
  }
  return 1;
}

static void leave(const fpstate *s) {
  if (s->traps) fedisableexcept(FE_ALL_EXCEPT);
  fesetround(FE_TONEAREST);
  (void)s;
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() & ~0x8040u);
#elif defined(__aarch64__)
  __asm__ volatile("msr fpcr, %0" : : "r"(control_word() & ~(1ull << 24)));
#endif
}

static int compare(const char *what, const outputs *a, const outputs *b) {
  static const struct {
    const char *name;
    size_t off, bytes;
  } parts[] = {
      {"forward f32", offsetof(outputs, fwd), sizeof ref.fwd},   {"drop_path", offsetof(outputs, drop), sizeof ref.drop},
      {"inference", offsetof(outputs, infer), sizeof ref.infer}, {"grad_f", offsetof(outputs, gf), sizeof ref.gf},
      {"grad_x", offsetof(outputs, gx), sizeof ref.gx},          {"forward f16", offsetof(outputs, fwd16), sizeof ref.fwd16},
      {"forward bf16", offsetof(outputs, fwdbf), sizeof ref.fwdbf}, {"scales", offsetof(outputs, scales), sizeof ref.scales},
      {"drop rates", offsetof(outputs, rates), sizeof ref.rates},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
    const unsigned char *pa = (const unsigned char *)a + parts[k].off, *pb = (const unsigned char *)b + parts[k].off;
    if (memcmp(pa, pb, parts[k].bytes) == 0) continue;
    size_t i = 0;
    while (pa[i] == pb[i]) i++;
    printf("FAIL %s: %s differs from the default state's first at byte %zu\n", what, parts[k].name, i);
    bad++;
  }
  return bad;
}

/* Every state, both thread counts, every ISA this machine runs. */
static int check_states(const char *when) {
  int bad = 0;
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa)) continue;
    assert_int_equal(dp_set_max_isa((dp_isa)isa), DP_OK);
    if (dp_active_isa() != (dp_isa)isa) continue; /* DROPPATH_ISA narrows it */
    run_all(&ref, 1);
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++)
      for (int threads = 1; threads <= 2; threads++) {
        const fpstate *s = &states[k];
        if (!enter(s)) continue;
        const int round = fegetround();
        const uint64_t control = control_word();
        run_all(&got, threads);
        const int kept = fegetround() == round && control_word() == control;
        leave(s);
        char what[160];
        snprintf(what, sizeof what, "%s, %s, %s, %d thread(s)", when, dp_isa_name((dp_isa)isa), s->name, threads);
        if (!kept) {
          printf("FAIL %s: the caller's state was not restored\n", what);
          bad++;
        }
        bad += compare(what, &ref, &got);
      }
  }
  return bad; /* capped at the last ISA: the widest this machine runs */
}

/* Runs first: nothing has started an OpenMP team yet. The caller starts
 * one of its own while flushing and rounding up, so libgomp's workers are
 * born in that state (as a framework's intra-op pool would be); the
 * library's 2-thread calls then run on those workers. */
static void test_state_before_pool(void **state) {
  (void)state;
#if DP_HAVE_OPENMP
  if (omp_get_num_procs() < 2) {
    printf("one processor: no worker to hold the caller's state\n");
    skip();
  }
  run_all(&ref, 1); /* one thread: no team */
  static const fpstate flushing = {FTZ_NAME, FE_UPWARD, 1, 0};
  if (!enter(&flushing)) skip();
  int team = 0;
#pragma omp parallel num_threads(2)
  {
#pragma omp atomic
    team++;
  }
  assert_int_equal(team, 2);
  run_all(&got, 2);
  leave(&flushing);
  assert_int_equal(compare("state set before the pool", &ref, &got), 0);
#else
  skip(); /* no workers */
#endif
}

static void test_state_after_pool(void **state) {
  (void)state;
#if DP_HAVE_OPENMP
  if (omp_get_num_procs() < 2) printf("one processor: the 2-thread calls run on the caller alone\n");
#endif
  run_all(&got, 2); /* the team exists, in the default state */
  assert_int_equal(check_states("state set after the pool"), 0);
}

int main(void) {
  fill_inputs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_before_pool),
      cmocka_unit_test(test_state_after_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
