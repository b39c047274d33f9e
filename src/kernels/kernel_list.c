/* The kernel list and the pure per-ISA table builder (dav1d's *_dsp_init). */
#include <string.h>

#include "kernels.h"

#define DP_KERNEL(family, combo_name, combo, isa_name, isa) \
  {"dp_" #family "_" #combo_name "__" #isa_name, #family, combo, isa,  \
   (void (*)(void))dp_##family##_##combo_name##__##isa_name},
static const dp_kernel_info kernel_list[] = {
#include "kernels.inc"
};
#undef DP_KERNEL

const dp_kernel_info *dp_kernel_list(size_t *count) {
  *count = sizeof kernel_list / sizeof kernel_list[0];
  return kernel_list;
}

/* Which ISAs a table for `isa` may draw from, lowest first. */
static int isa_within(dp_isa candidate, dp_isa isa) {
  if (candidate == DP_ISA_SCALAR) return 1;
  if (isa == DP_ISA_NEON || candidate == DP_ISA_NEON) return candidate == isa;
  return candidate <= isa; /* x86: sse2 < avx2 < avx512 */
}

enum { FAM_FWD, FAM_SCALE, FAM_BWD, FAM_MASK, FAM_COUNT };

/* By full name: families may share a first letter. */
static int family_index(const char *family) {
  static const char *const names[FAM_COUNT] = {"fwd", "scale", "bwd", "mask"};
  for (int f = 0; f < FAM_COUNT; f++)
    if (strcmp(family, names[f]) == 0) return f;
  return -1;
}

void dp_kernels_for_isa(dp_isa isa, dp_kernel_table *table) {
  /* Per slot, the widest ISA within reach wins, whatever the list order. */
  int best[FAM_COUNT][DP_COMBO_COUNT];
  for (int fam = 0; fam < FAM_COUNT; fam++)
    for (int c = 0; c < DP_COMBO_COUNT; c++) best[fam][c] = -1;
  *table = (dp_kernel_table){0};
  table->isa = isa;
  for (size_t i = 0; i < sizeof kernel_list / sizeof kernel_list[0]; i++) {
    const dp_kernel_info *k = &kernel_list[i];
    const int fam = family_index(k->family);
    if (fam < 0 || (fam == FAM_MASK && k->combo != DP_COMBO_F32)) continue;
    if (!isa_within(k->isa, isa) || best[fam][k->combo] > (int)k->isa) continue;
    best[fam][k->combo] = (int)k->isa;
    switch (fam) {
      case FAM_FWD: table->fwd[k->combo] = (dp_fwd_fn)k->fn; break;
      case FAM_SCALE: table->scale[k->combo] = (dp_scale_fn)k->fn; break;
      case FAM_BWD: table->bwd[k->combo] = (dp_bwd_fn)k->fn; break;
      default: table->mask = (dp_mask_fn)k->fn; break;
    }
  }
}

size_t dp_combo_x_size(dp_combo combo) { return combo == DP_COMBO_BF16 || combo == DP_COMBO_F16 ? 2 : 4; }
size_t dp_combo_f_size(dp_combo combo) { return combo == DP_COMBO_F32 ? 4 : 2; }
