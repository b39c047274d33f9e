/* The kernel list and the tables dp_kernels_for_isa builds from it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"

void kt_test_kernel_list(void **state) {
  (void)state;
  size_t n;
  const dp_kernel_info *list = dp_kernel_list(&n);
  assert_true(n > 0);
  assert_int_equal(list[0].isa, DP_ISA_SCALAR);
  assert_true(dp_isa_supported(DP_ISA_SCALAR));
  for (size_t i = 0; i < n; i++) {
    const dp_kernel_info *k = &list[i];
    char prefix[32], suffix[32];
    assert_non_null(k->fn.fwd); /* every member shares the representation of a pointer */
    assert_in_range(k->family, 0, DP_FAMILY_COUNT - 1);
    assert_int_equal(kt_family_of(k->family)->family, k->family); /* its check file describes it */
    assert_in_range(k->combo, 0, DP_COMBO_COUNT - 1);
    assert_in_range(k->isa, 0, DP_ISA_COUNT - 1);
    snprintf(prefix, sizeof prefix, "dp_%s_", dp_family_name(k->family));
    snprintf(suffix, sizeof suffix, "__%s", dp_isa_name(k->isa));
    assert_true(strncmp(k->name, prefix, strlen(prefix)) == 0);
    assert_true(strlen(k->name) > strlen(suffix));
    assert_string_equal(k->name + strlen(k->name) - strlen(suffix), suffix);
    assert_ptr_equal(kt_find_kernel(k->family, k->combo, k->isa), k); /* no duplicates */
    if (k->isa != DP_ISA_SCALAR && !kt_find_kernel(k->family, k->combo, DP_ISA_SCALAR))
      fail_msg("%s has no scalar counterpart", k->name);
  }
  /* "Supported" means this build has kernels for it (and the CPU runs them). */
  for (int isa = 1; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa)) continue;
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= list[i].isa == (dp_isa)isa;
    if (!found) fail_msg("dp_isa_supported(%s) but the build has no %s kernel", dp_isa_name((dp_isa)isa),
                         dp_isa_name((dp_isa)isa));
  }
  assert_false(dp_isa_supported(DP_ISA_COUNT));
}

void kt_test_kernels_for_isa(void **state) {
  (void)state;
  size_t n;
  const dp_kernel_info *list = dp_kernel_list(&n);
  /* The list's stand-in rule against the one written out in test_util.h. */
  for (int k = 0; k < DP_ISA_COUNT; k++)
    for (int cap = 0; cap < DP_ISA_COUNT; cap++)
      if (dp_isa_within((dp_isa)k, (dp_isa)cap) != tu_isa_le((dp_isa)k, (dp_isa)cap))
        fail_msg("dp_isa_within(%s, %s) = %d, expected %d", dp_isa_name((dp_isa)k), dp_isa_name((dp_isa)cap),
                 dp_isa_within((dp_isa)k, (dp_isa)cap), tu_isa_le((dp_isa)k, (dp_isa)cap));
  /* Pure (no CPU check), so every ISA's table is checked, supported or not. */
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    dp_kernel_table t;
    memset(&t, 0xa5, sizeof t);
    dp_kernels_for_isa((dp_isa)isa, &t);
    assert_int_equal(t.isa, isa);
    char line[512];
    int w = snprintf(line, sizeof line, "table %s:", dp_isa_name((dp_isa)isa));
    for (int fam = 0; fam < DP_FAMILY_COUNT; fam++)
      for (int combo = 0; combo < DP_COMBO_COUNT; combo++) {
        /* The highest-ranked kernel of the slot within reach of isa. */
        const dp_kernel_info *want = NULL;
        for (size_t i = 0; i < n; i++) {
          const dp_kernel_info *k = &list[i];
          if (k->family != (dp_family)fam || k->combo != (dp_combo)combo || !dp_isa_within(k->isa, (dp_isa)isa))
            continue;
          if (!want || dp_isa_info(k->isa)->rank > dp_isa_info(want->isa)->rank) want = k;
        }
        if (!want && !dp_table_slot_empty(&t, (dp_family)fam, (dp_combo)combo))
          fail_msg("table %s: %s_%s holds a kernel the list has not", dp_isa_name((dp_isa)isa),
                   dp_family_name((dp_family)fam), dp_combo_name((dp_combo)combo));
        if (want && !dp_table_holds(&t, want))
          fail_msg("table %s: %s_%s does not hold %s", dp_isa_name((dp_isa)isa), dp_family_name((dp_family)fam),
                   dp_combo_name((dp_combo)combo), want->name);
        if (want && w < (int)sizeof line)
          w += snprintf(line + w, sizeof line - (size_t)w, " %s_%s=%s", dp_family_name(want->family),
                        dp_combo_name(want->combo), dp_isa_name(want->isa));
      }
    if (dp_isa_supported((dp_isa)isa)) printf("%s\n", line);
  }
}
