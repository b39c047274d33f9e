/*
 * The cache share behind the store choice (src/core/cache.h): the sysfs
 * parsers, the rule on the machines it was reasoned for, and the detected
 * figures of this one (plausible, or exactly DROPPATH_LLC_BYTES).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "core/cache.h"

#define MiB ((size_t)1 << 20)

static void test_parsers(void **state) {
  (void)state;
  assert_int_equal(dp_llc_count_cpus("0"), 1);
  assert_int_equal(dp_llc_count_cpus("0-1\n"), 2);
  assert_int_equal(dp_llc_count_cpus("0-3,8,10-11"), 7);
  assert_int_equal(dp_llc_count_cpus("0-63,128-191\n"), 128);
  assert_int_equal(dp_llc_count_cpus(""), 0);
  assert_int_equal(dp_llc_count_cpus("x"), 0);
  assert_int_equal(dp_llc_count_cpus("3-1"), 0);
  assert_int_equal(dp_llc_count_cpus("0-"), 0);
  assert_int_equal(dp_llc_parse_size("491520K\n"), (uint64_t)480 << 20);
  assert_int_equal(dp_llc_parse_size("32M"), (uint64_t)32 << 20);
  assert_int_equal(dp_llc_parse_size("1G"), (uint64_t)1 << 30);
  assert_int_equal(dp_llc_parse_size("65536"), 65536);
  assert_int_equal(dp_llc_parse_size("K"), 0);
}

static size_t share(size_t bytes, unsigned sharing, size_t cap, int threads) {
  const dp_llc c = {bytes, sharing, cap, DP_LLC_FROM_SYSFS, 0};
  return dp_llc_share_of(&c, threads);
}

static void test_rule(void **state) {
  (void)state;
  /* The Intel VM: the host's 480 MiB shown to 2 vCPUs; the guest cap binds. */
  assert_int_equal(share(480 * MiB, 2, DP_LLC_CAP_GUEST, 1), 16 * MiB);
  assert_int_equal(share(480 * MiB, 2, DP_LLC_CAP_GUEST, 2), 32 * MiB);
  /* A 2-vCPU guest on one 32 MiB Zen 5 CCX: the cache's own share. */
  assert_int_equal(share(32 * MiB, 2, DP_LLC_CAP_GUEST, 1), 16 * MiB);
  assert_int_equal(share(32 * MiB, 2, DP_LLC_CAP_GUEST, 2), 32 * MiB);
  /* A bare-metal Zen 5 CCX, 8 cores x 2 threads: 2 MiB a thread, 32 MiB at 16. */
  assert_int_equal(share(32 * MiB, 16, DP_LLC_CAP_BARE_METAL, 1), 2 * MiB);
  assert_int_equal(share(32 * MiB, 16, DP_LLC_CAP_BARE_METAL, 16), 32 * MiB);
  assert_int_equal(share(32 * MiB, 16, DP_LLC_CAP_BARE_METAL, 64), 32 * MiB);
  /* EPYC 7373X bare metal: 768 MiB for 16 cores is within the cap. */
  assert_int_equal(share(768 * MiB, 16, DP_LLC_CAP_BARE_METAL, 1), 48 * MiB);
  assert_int_equal(share(768 * MiB, 16, DP_LLC_CAP_BARE_METAL, 16), 768 * MiB);
  /* Unknown (32 MiB, sharing 1): 32 MiB for any call the cap allows. */
  assert_int_equal(share(32 * MiB, 1, DP_LLC_CAP_GUEST, 1), 16 * MiB);
  assert_int_equal(share(32 * MiB, 1, DP_LLC_CAP_BARE_METAL, 1), 32 * MiB);
  assert_int_equal(share(32 * MiB, 1, DP_LLC_CAP_BARE_METAL, 8), 32 * MiB);
  /* The override wins whatever the rest says. */
  const dp_llc o = {480 * MiB, 2, DP_LLC_CAP_GUEST, DP_LLC_FROM_ENV, 12345};
  assert_int_equal(dp_llc_share_of(&o, 1), 12345);
  assert_int_equal(dp_llc_share_of(&o, 7), 12345);
}

static void test_this_machine(void **state) {
  (void)state;
  const dp_llc *llc = dp_llc_info();
  printf("llc: %zu bytes shared by %u CPU(s), source %d, cap %zu MiB a CPU; share t1 %zu, t2 %zu\n", llc->bytes,
         llc->sharing, llc->source, llc->per_cpu_cap >> 20, dp_llc_share(1), dp_llc_share(2));
  assert_true(llc->sharing >= 1);
  assert_true(llc->per_cpu_cap == DP_LLC_CAP_GUEST || llc->per_cpu_cap == DP_LLC_CAP_BARE_METAL);
  if (llc->override) {
    assert_int_equal(dp_llc_share(1), llc->override);
    assert_int_equal(dp_llc_share(4), llc->override);
    return;
  }
  assert_true(llc->bytes >= ((size_t)256 << 10));
  size_t prev = 0;
  for (int t = 1; t <= 64; t++) {
    const size_t s = dp_llc_share(t);
    assert_int_equal(s, dp_llc_share_of(llc, t));
    assert_true(s > 0 && s <= (size_t)t * llc->per_cpu_cap && s <= llc->bytes && s >= prev);
    prev = s;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parsers),
      cmocka_unit_test(test_rule),
      cmocka_unit_test(test_this_machine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
