/*
 * Every kernel against its reference (harness.h), one cmocka test per family
 * of the family list: a family is checked here as soon as it is in
 * families.h and has its check file.
 *
 * Replay a failure with the printed DP_TEST_SEED (and DP_TEST_ITERS);
 * DP_TEST_KERNEL=<substring> restricts the run to matching kernels.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"

#define KT_TEST_(ctx, fam, combos, params)                                                      \
  static void test_##fam(void **state) {                                                        \
    (void)state;                                                                                \
    const int failures = kt_check_family(&kt_family_##fam);                                     \
    if (failures) fail_msg("%d %s kernel(s) failed: see the FAIL lines above", failures, #fam); \
  }
DP_FAMILY_LIST(KT_TEST_, )
#undef KT_TEST_

static int setup(void **state) {
  (void)state;
  kt_arenas_alloc();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  kt_arenas_free();
  return 0;
}

int main(void) {
  kt_configure();
#define KT_UNIT_(ctx, fam, combos, params) cmocka_unit_test(test_##fam),
  const struct CMUnitTest tests[] = {
      {.name = "test_kernel_list", .test_func = kt_test_kernel_list},
      {.name = "test_kernels_for_isa", .test_func = kt_test_kernels_for_isa},
      DP_FAMILY_LIST(KT_UNIT_, )
  };
#undef KT_UNIT_
  return cmocka_run_group_tests(tests, setup, teardown);
}
