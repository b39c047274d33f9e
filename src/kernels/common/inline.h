/* DP_ALWAYS_INLINE: the library's one spelling of "inline this". Templates
 * (kernel bodies, the row walk, the argument checker) are functions whose
 * constant arguments must reach the body, which only happens once they are
 * inlined into each instantiation. */
#ifndef DP_INLINE_H
#define DP_INLINE_H

#if defined(__GNUC__)
#define DP_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define DP_ALWAYS_INLINE static inline
#endif

#endif /* DP_INLINE_H */
