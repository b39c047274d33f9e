/* The kernel list (every family x combo x built ISA, from families.h and
 * isas.h) and the pure per-ISA table builder (dav1d's *_dsp_init). */
#include "kernels/kernels.h"

/* One entry: {"dp_fwd_f32__avx2", DP_FAMILY_fwd, DP_COMBO_F32, DP_ISA_AVX2, {.fwd = dp_fwd_f32__avx2}}. */
#define DP_ENTRY_(fam, combo, cid, isa, iid) \
  {"dp_" #fam "_" #combo "__" #isa, DP_FAMILY_##fam, cid, iid, {.fam = DP_KERNEL_NAME(fam, combo, isa)}},
#define DP_ENTRY_X_(...) DP_ENTRY_(__VA_ARGS__)
#define DP_ENTRY_COMBO_(ctx, combo, cid, xt, ft) \
  DP_ENTRY_X_(DP_CTX_1(ctx), combo, cid, DP_CTX_1(DP_CTX_2(ctx)), DP_CTX_2(DP_CTX_2(ctx)))
#define DP_ENTRY_FAMILY_(isa, fam, combos, params) combos(DP_ENTRY_COMBO_, (fam, isa))
#define DP_ENTRY_ISA_(ctx, name, id, arch, rank, built) DP_WHEN(built, DP_FAMILY_LIST(DP_ENTRY_FAMILY_, (name, id)))
static const dp_kernel_info kernel_list[] = {DP_ISA_LIST(DP_ENTRY_ISA_, )};
#undef DP_ENTRY_ISA_
#undef DP_ENTRY_FAMILY_
#undef DP_ENTRY_COMBO_
#undef DP_ENTRY_X_
#undef DP_ENTRY_

const dp_kernel_info *dp_kernel_list(size_t *count) {
  *count = sizeof kernel_list / sizeof kernel_list[0];
  return kernel_list;
}

/* table's slot for k: the only place a family's member is chosen by family. */
static void set_slot(dp_kernel_table *table, const dp_kernel_info *k) {
  switch (k->family) {
#define DP_SET_SLOT_(ctx, fam, combos, params) \
  case DP_FAMILY_##fam: table->fam[k->combo] = k->fn.fam; break;
    DP_FAMILY_LIST(DP_SET_SLOT_, )
#undef DP_SET_SLOT_
    default: break;
  }
}

int dp_table_holds(const dp_kernel_table *table, const dp_kernel_info *k) {
  switch (k->family) {
#define DP_HOLDS_(ctx, fam, combos, params) \
  case DP_FAMILY_##fam: return table->fam[k->combo] == k->fn.fam;
    DP_FAMILY_LIST(DP_HOLDS_, )
#undef DP_HOLDS_
    default: return 0;
  }
}

int dp_table_slot_empty(const dp_kernel_table *table, dp_family family, dp_combo combo) {
  switch (family) {
#define DP_EMPTY_(ctx, fam, combos, params) \
  case DP_FAMILY_##fam: return table->fam[combo] == NULL;
    DP_FAMILY_LIST(DP_EMPTY_, )
#undef DP_EMPTY_
    default: return 1;
  }
}

void dp_kernels_for_isa(dp_isa isa, dp_kernel_table *table) {
  /* Per slot, the highest-ranked ISA within reach wins, whatever the list order. */
  const dp_kernel_info *best[DP_FAMILY_COUNT][DP_COMBO_COUNT] = {{NULL}};
  *table = (dp_kernel_table){0};
  table->isa = isa;
  for (size_t i = 0; i < sizeof kernel_list / sizeof kernel_list[0]; i++) {
    const dp_kernel_info *k = &kernel_list[i];
    const dp_kernel_info **slot = &best[k->family][k->combo];
    if (!dp_isa_within(k->isa, isa)) continue;
    if (*slot && dp_isa_info((*slot)->isa)->rank > dp_isa_info(k->isa)->rank) continue;
    *slot = k;
    set_slot(table, k);
  }
}

const char *dp_family_name(dp_family family) {
#define DP_FAMILY_NAME_(ctx, fam, combos, params) #fam,
  static const char *const names[DP_FAMILY_COUNT] = {DP_FAMILY_LIST(DP_FAMILY_NAME_, )};
#undef DP_FAMILY_NAME_
  return (unsigned)family < DP_FAMILY_COUNT ? names[family] : "unknown";
}

#define DP_COMBO_ROW_(ctx, name, id, xt, ft) {#name, xt, ft},
static const struct {
  const char *name;
  int x, f;
} combos[DP_COMBO_COUNT] = {DP_COMBOS_ALL(DP_COMBO_ROW_, )};
#undef DP_COMBO_ROW_

const char *dp_combo_name(dp_combo combo) { return (unsigned)combo < DP_COMBO_COUNT ? combos[combo].name : "unknown"; }

/* 0 for a combo outside the list, like dp_combo_name's "unknown". */
size_t dp_combo_x_size(dp_combo combo) {
  return (unsigned)combo < DP_COMBO_COUNT ? (combos[combo].x == DP_F32 ? 4 : 2) : 0;
}
size_t dp_combo_f_size(dp_combo combo) {
  return (unsigned)combo < DP_COMBO_COUNT ? (combos[combo].f == DP_F32 ? 4 : 2) : 0;
}
