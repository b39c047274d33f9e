/*
 * The vector interface the half kernel bodies (<family>_half_body.h) are
 * written against; every simd/half_<isa>.h provides it and includes this
 * file last.  t is an operand's element type (DP_T_*, half.h), bf says that
 * every operand of the kernel is bf16, i.e. the body is the pure bf16 one;
 * both are constants once the body is inlined.
 *
 *   hv                 f32 lanes widened from storage (one or two registers)
 *   hr                 the storage bits of one hv, for copies that keep them
 *   HV_LANES(bf)       elements per hv (AVX2 widens 16 bf16 from one load)
 *   HV_UNROLL(bf)      hv per step of the main loop: 2 or 4
 *   HV_ALIGN           bytes the first output is peeled to; 0: no peel
 *   HV_STREAM          whether the stores can be non-temporal (nt)
 *   HV_MASKED          whether masked loads and stores exist: heads and tails
 *                      in vectors whose masked-off lanes are neither read nor
 *                      written; else the body hands them to the scalar kernel
 *   hv_set1(s), hv_mul(a, b), hv_add(a, b)   lane-wise, rounded as in f32
 *   hv_load_raw(p, i, t, bf) -> hr           elements [i, i + HV_LANES) of p
 *   hv_widen(r, t, bf) -> hv                 exact
 *   hv_store(p, i, v, t, bf, nt)             rounded to t, NaN canonical
 *   hv_store_raw(p, i, r, t, bf, nt)         the bits of r as loaded
 *   with HV_MASKED, for the first k <= HV_LANES(0) lanes (hv_first(k)):
 *   hv_mload_raw(m, p, i, t), hv_mstore(m, p, i, v, t), hv_mstore_raw(m, p, i, r, t)
 * nt needs p + i aligned to HV_ALIGN.  Lanes may be in any order that load,
 * widen and store agree on (AVX2's pure bf16 lanes are not in memory order).
 */
#ifndef DP_HALF_VEC_H
#define DP_HALF_VEC_H

#ifndef HV_MASKED
#error "include a simd/half_<isa>.h"
#endif

_Static_assert((HV_UNROLL(0) == 2 || HV_UNROLL(0) == 4) && (HV_UNROLL(1) == 2 || HV_UNROLL(1) == 4),
               "the bodies' main loops are written for 2 or 4 vectors a step");

/* Elements per step of the main loop; shorter runs are not worth a peel. */
DP_ALWAYS_INLINE size_t hv_step(int bf) {
  (void)bf;
  return HV_UNROLL(bf) * HV_LANES(bf);
}

DP_ALWAYS_INLINE size_t hv_min(size_t a, size_t b) { return a < b ? a : b; }

DP_ALWAYS_INLINE hv hv_load(const void *p, size_t i, int t, int bf) {
  return hv_widen(hv_load_raw(p, i, t, bf), t, bf);
}

#if HV_MASKED
DP_ALWAYS_INLINE hv hv_mload(hv_mask m, const void *p, size_t i, int t) {
  return hv_widen(hv_mload_raw(m, p, i, t), t, 0);
}
#endif

#endif /* DP_HALF_VEC_H */
