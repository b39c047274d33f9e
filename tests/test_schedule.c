/* Drop-rate schedules against the formulas of the frameworks they mirror.
 * timm (layers/drop.py, calculate_drop_path_rates) evaluates torch.linspace in
 * float32; the library works in double, so values are compared with a few-ulp
 * tolerance, except the end points, which linspace hits exactly (0 and rate). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include "droppath/droppath.h"

#define MAXD 128
#define SENTINEL (-12345.0)

static const double rates[] = {0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0};
static const size_t depths[] = {1, 2, 3, 4, 7, 12, 13, 24, 25, 36, 100, MAXD};
#define NRATES (sizeof rates / sizeof rates[0])
#define NDEPTHS (sizeof depths / sizeof depths[0])

/* linspace(0, rate, n) as torch builds it (first half from 0, second half back
 * from rate), in double. */
static double linspace_at(double rate, size_t i, size_t n) {
  if (n < 2) return 0.0;
  const double step = rate / (double)(n - 1);
  return i < n / 2 ? step * (double)i : rate - step * (double)(n - 1 - i);
}

static double expected(dp_schedule rule, double rate, size_t i, size_t depth) {
  switch (rule) {
    case DP_SCHEDULE_LINSPACE:
    case DP_SCHEDULE_RESNET: return linspace_at(rate, i, depth);
    case DP_SCHEDULE_EFFICIENTNET: return rate * ((double)i / (double)depth);
    case DP_SCHEDULE_HUANG: return rate * ((double)(i + 1) / (double)depth);
    case DP_SCHEDULE_CONSTANT: return rate;
  }
  return NAN;
}

static void fill(double *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = SENTINEL;
}

static void assert_untouched(const double *p, size_t n) {
  for (size_t i = 0; i < n; i++) assert_true(p[i] == SENTINEL);
}

static void assert_close(double got, double want, double rate, const char *what, size_t i) {
  if (!(fabs(got - want) <= 4.0 * DBL_EPSILON * rate))
    fail_msg("%s: rates[%zu] = %.17g, want %.17g", what, i, got, want);
}

static const char *rule_name(dp_schedule rule) {
  static const char *const names[] = {"linspace", "resnet", "efficientnet", "huang", "constant"};
  return names[rule];
}

static void test_rule_values(void **state) {
  (void)state;
  double out[MAXD + 1];
  for (int rule = DP_SCHEDULE_LINSPACE; rule <= DP_SCHEDULE_CONSTANT; rule++) {
    for (size_t ri = 0; ri < NRATES; ri++) {
      for (size_t di = 0; di < NDEPTHS; di++) {
        const double rate = rates[ri];
        const size_t depth = depths[di];
        fill(out, MAXD + 1);
        assert_int_equal(dp_drop_rates((dp_schedule)rule, rate, depth, out), DP_OK);
        for (size_t i = 0; i < depth; i++) {
          assert_close(out[i], expected((dp_schedule)rule, rate, i, depth), rate,
                       rule_name((dp_schedule)rule), i);
          if (!(out[i] >= 0.0 && out[i] <= rate))
            fail_msg("%s rate %.17g depth %zu: rates[%zu] = %.17g is outside [0, rate]",
                     rule_name((dp_schedule)rule), rate, depth, i, out[i]);
          if (i && rule != DP_SCHEDULE_CONSTANT) assert_true(out[i] >= out[i - 1]);
        }
        assert_true(out[depth] == SENTINEL);
      }
    }
  }
}

/* Where timm's linspace is exact, so must we be: users test rates[0] == 0 and
 * rates[L-1] == rate (e.g. rate 0.1 over 13 or 25 blocks). */
static void test_end_points_exact(void **state) {
  (void)state;
  double out[MAXD];
  for (size_t ri = 0; ri < NRATES; ri++) {
    for (size_t di = 0; di < NDEPTHS; di++) {
      const double rate = rates[ri];
      const size_t depth = depths[di];
      for (int rule = DP_SCHEDULE_LINSPACE; rule <= DP_SCHEDULE_CONSTANT; rule++) {
        assert_int_equal(dp_drop_rates((dp_schedule)rule, rate, depth, out), DP_OK);
        if (rule == DP_SCHEDULE_CONSTANT || (rule == DP_SCHEDULE_HUANG && depth == 1))
          assert_true(out[0] == rate);
        else if (rule != DP_SCHEDULE_HUANG)
          assert_true(out[0] == 0.0);
        const int last_is_rate = rule == DP_SCHEDULE_HUANG || rule == DP_SCHEDULE_CONSTANT ||
                           ((rule == DP_SCHEDULE_LINSPACE || rule == DP_SCHEDULE_RESNET) && depth > 1);
        if (last_is_rate && out[depth - 1] != rate)
          fail_msg("%s rate %.17g depth %zu: last = %.17g", rule_name((dp_schedule)rule), rate, depth,
                   out[depth - 1]);
      }
    }
  }
}

static void test_resnet_equals_linspace(void **state) {
  (void)state;
  double a[MAXD], b[MAXD];
  for (size_t ri = 0; ri < NRATES; ri++) {
    for (size_t di = 0; di < NDEPTHS; di++) {
      assert_int_equal(dp_drop_rates(DP_SCHEDULE_LINSPACE, rates[ri], depths[di], a), DP_OK);
      assert_int_equal(dp_drop_rates(DP_SCHEDULE_RESNET, rates[ri], depths[di], b), DP_OK);
      assert_memory_equal(a, b, depths[di] * sizeof(double));
    }
  }
}

static void test_small_depths(void **state) {
  (void)state;
  double out[4];
  /* Depth 0: nothing to write; the pointer may be NULL. */
  for (int rule = DP_SCHEDULE_LINSPACE; rule <= DP_SCHEDULE_CONSTANT; rule++) {
    assert_int_equal(dp_drop_rates((dp_schedule)rule, 0.3, 0, NULL), DP_OK);
    fill(out, 4);
    assert_int_equal(dp_drop_rates((dp_schedule)rule, 0.3, 0, out), DP_OK);
    assert_untouched(out, 4);
  }
  /* Depth 1: torch.linspace(0, r, 1) == [0]; r*0/1; Huang's only block gets r. */
  const double one[] = {0.0, 0.0, 0.0, 0.3, 0.3};
  for (int rule = DP_SCHEDULE_LINSPACE; rule <= DP_SCHEDULE_CONSTANT; rule++) {
    fill(out, 4);
    assert_int_equal(dp_drop_rates((dp_schedule)rule, 0.3, 1, out), DP_OK);
    assert_true(out[0] == one[rule]);
    assert_untouched(out + 1, 3);
  }
  /* Depth 2. */
  const double two[][2] = {{0.0, 0.3}, {0.0, 0.3}, {0.0, 0.15}, {0.15, 0.3}, {0.3, 0.3}};
  for (int rule = DP_SCHEDULE_LINSPACE; rule <= DP_SCHEDULE_CONSTANT; rule++) {
    assert_int_equal(dp_drop_rates((dp_schedule)rule, 0.3, 2, out), DP_OK);
    assert_true(out[0] == two[rule][0] && out[1] == two[rule][1]);
  }
}

static void test_bad_arguments(void **state) {
  (void)state;
  double out[8];
  const double bad[] = {NAN, -NAN, -0.1, -DBL_MIN, 1.0 + DBL_EPSILON, 2.0, INFINITY, -INFINITY};
  for (int rule = DP_SCHEDULE_LINSPACE; rule <= DP_SCHEDULE_CONSTANT; rule++) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      fill(out, 8);
      assert_int_equal(dp_drop_rates((dp_schedule)rule, bad[i], 8, out), DP_ERR_BAD_PROBABILITY);
      assert_untouched(out, 8);
      /* A bad rate is bad even when there is nothing to write. */
      assert_int_equal(dp_drop_rates((dp_schedule)rule, bad[i], 0, NULL), DP_ERR_BAD_PROBABILITY);
    }
    assert_int_equal(dp_drop_rates((dp_schedule)rule, 0.1, 3, NULL), DP_ERR_NULL_POINTER);
    fill(out, 8);
    assert_int_equal(dp_drop_rates((dp_schedule)rule, 0.1, SIZE_MAX / 4, out), DP_ERR_SIZE_OVERFLOW);
    assert_untouched(out, 8);
  }
  const int unknown[] = {-1, DP_SCHEDULE_CONSTANT + 1, 1000};
  for (size_t i = 0; i < 3; i++) {
    fill(out, 8);
    assert_int_equal(dp_drop_rates((dp_schedule)unknown[i], 0.1, 8, out), DP_ERR_BAD_ARGUMENT);
    assert_untouched(out, 8);
    assert_int_equal(dp_drop_rates((dp_schedule)unknown[i], 0.1, 0, NULL), DP_ERR_BAD_ARGUMENT);
  }
}

/* timm's calculate_drop_path_rates(rate, depths, stagewise=True) is
 * torch.linspace(0, rate, sum(depths)).split(depths): the same per-block ramp
 * as over one flat network, grouped by stage.  It does not hold a rate constant
 * within a stage. */
static void test_stagewise_matches_timm(void **state) {
  (void)state;
  static const size_t cfg[][5] = {
      /* n_stages, depths... */
      {4, 2, 2, 6, 2},  /* Swin-T */
      {4, 3, 3, 9, 3},  /* ConvNeXt-T */
      {4, 3, 3, 27, 3}, /* ConvNeXt-S/B */
      {1, 12},          /* one stage */
      {2, 0, 3},        /* an empty stage */
      {3, 2, 0, 2},
      {1, 1},
  };
  double out[64], flat[64];
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
    const size_t n = cfg[c][0], *d = &cfg[c][1];
    size_t total = 0;
    for (size_t s = 0; s < n; s++) total += d[s];
    for (size_t ri = 0; ri < NRATES; ri++) {
      const double rate = rates[ri];
      fill(out, 64);
      assert_int_equal(dp_drop_rates_stagewise(rate, d, n, out), DP_OK);
      assert_int_equal(dp_drop_rates(DP_SCHEDULE_LINSPACE, rate, total, flat), DP_OK);
      for (size_t i = 0; i < total; i++) {
        assert_close(out[i], linspace_at(rate, i, total), rate, "stagewise", i);
        assert_true(out[i] == flat[i]);
      }
      assert_true(out[0] == 0.0);
      if (total > 1) assert_true(out[total - 1] == rate);
      assert_untouched(out + total, 64 - total);
    }
  }
}

static void test_stagewise_bad_arguments(void **state) {
  (void)state;
  double out[8];
  const size_t d[] = {2, 3, 1};
  /* Nothing to write. */
  assert_int_equal(dp_drop_rates_stagewise(0.2, NULL, 0, NULL), DP_OK);
  const size_t zeros[] = {0, 0};
  assert_int_equal(dp_drop_rates_stagewise(0.2, zeros, 2, NULL), DP_OK);
  /* Errors leave the output alone. */
  const double bad[] = {NAN, -0.5, 1.5, INFINITY};
  for (size_t i = 0; i < 4; i++) {
    fill(out, 8);
    assert_int_equal(dp_drop_rates_stagewise(bad[i], d, 3, out), DP_ERR_BAD_PROBABILITY);
    assert_untouched(out, 8);
  }
  assert_int_equal(dp_drop_rates_stagewise(0.2, NULL, 3, out), DP_ERR_NULL_POINTER);
  assert_int_equal(dp_drop_rates_stagewise(0.2, d, 3, NULL), DP_ERR_NULL_POINTER);
  const size_t huge[][2] = {{SIZE_MAX, 1}, {SIZE_MAX / 8 + 1, 0}, {SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1}};
  for (size_t i = 0; i < 3; i++) {
    fill(out, 8);
    assert_int_equal(dp_drop_rates_stagewise(0.2, huge[i], 2, out), DP_ERR_SIZE_OVERFLOW);
    assert_untouched(out, 8);
  }
  /* rates_out overlapping depths: writing would corrupt the input being read. */
  union {
    size_t s[8];
    double r[8];
  } u;
  for (size_t i = 0; i < 8; i++) u.s[i] = 1;
  assert_int_equal(dp_drop_rates_stagewise(0.2, u.s, 4, u.r + 2), DP_ERR_OVERLAP);
  for (size_t i = 0; i < 8; i++) assert_int_equal(u.s[i], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rule_values),
      cmocka_unit_test(test_end_points_exact),
      cmocka_unit_test(test_resnet_equals_linspace),
      cmocka_unit_test(test_small_depths),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_stagewise_matches_timm),
      cmocka_unit_test(test_stagewise_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
