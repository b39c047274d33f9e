/* DP_ALWAYS_INLINE: the library's one spelling of "inline this". Templates
 * (kernel bodies, the row walk, the argument checker) are functions whose
 * constant arguments must reach the body, which only happens once they are
 * inlined into each instantiation. DP_NOINLINE keeps a body behind a call:
 * an entry point's work must not be moved across its floating-point state
 * switch (core/fpenv.h). */
#ifndef DP_INLINE_H
#define DP_INLINE_H

#if defined(__GNUC__)
#define DP_ALWAYS_INLINE static inline __attribute__((always_inline))
#define DP_NOINLINE __attribute__((noinline))
#else
#define DP_ALWAYS_INLINE static inline
#define DP_NOINLINE
#endif

#endif /* DP_INLINE_H */
