/*
 * The floating-point state the library computes in, whatever the caller set:
 * round to nearest even, subnormals honoured (no flush-to-zero, no
 * denormals-are-zero), exceptions masked. Every public entry point that
 * computes enters it and restores the caller's state on the way out, and
 * every OpenMP worker enters it for its share: libgomp's workers keep the
 * state they were created with, so a caller that changes its own after the
 * pool exists (torch.set_flush_denormal, fesetround) would otherwise get
 * different bits at 1 and 2 threads.
 *
 * The common case costs one register read: a state already at the default
 * is left alone, so flags raised by the library's arithmetic stay visible as
 * they would for any other computation. A state that had to be changed is
 * put back: on x86 the whole MXCSR (so the caller's sticky flags are what
 * they were and the library's are dropped), on AArch64 the FPCR (the flags
 * live in FPSR, untouched).
 */
#ifndef DP_CORE_FPENV_H
#define DP_CORE_FPENV_H

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <xmmintrin.h>

/* MXCSR: all exceptions masked (bits 7-12), round to nearest (13-14 = 0),
 * FTZ (15) and DAZ (6) off; bits 0-5 are the sticky flags. */
#define DP_MXCSR_DEFAULT 0x1F80u
#define DP_MXCSR_FLAGS 0x3Fu

typedef struct dp_fpenv {
  unsigned saved; /* the caller's MXCSR, or DP_MXCSR_DEFAULT when it was left alone */
} dp_fpenv;

static inline dp_fpenv dp_fpenv_enter(void) {
  const unsigned cur = _mm_getcsr();
  dp_fpenv e = {DP_MXCSR_DEFAULT};
  if ((cur & ~DP_MXCSR_FLAGS) != DP_MXCSR_DEFAULT) {
    e.saved = cur;
    _mm_setcsr(DP_MXCSR_DEFAULT | (cur & DP_MXCSR_FLAGS));
  }
  return e;
}

static inline void dp_fpenv_leave(dp_fpenv e) {
  if (e.saved != DP_MXCSR_DEFAULT) _mm_setcsr(e.saved);
}

#elif defined(__aarch64__)

/* FPCR = 0: round to nearest (RMode 0), no FZ/FZ16, no default-NaN mode, no
 * alternative half precision, no traps. The sticky flags live in FPSR,
 * which is not touched. */
typedef struct dp_fpenv {
  uint64_t saved; /* the caller's FPCR, or 0 when it was left alone */
} dp_fpenv;

static inline uint64_t dp_fpcr_get(void) {
  uint64_t v;
  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  return v;
}

static inline void dp_fpcr_set(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }

static inline dp_fpenv dp_fpenv_enter(void) {
  dp_fpenv e = {dp_fpcr_get()};
  if (e.saved != 0) dp_fpcr_set(0);
  return e;
}

static inline void dp_fpenv_leave(dp_fpenv e) {
  if (e.saved != 0) dp_fpcr_set(e.saved);
}

#else

/* Other architectures: the caller's state is used as it is. */
typedef struct dp_fpenv {
  int unused;
} dp_fpenv;

static inline dp_fpenv dp_fpenv_enter(void) {
  dp_fpenv e = {0};
  return e;
}

static inline void dp_fpenv_leave(dp_fpenv e) { (void)e; }

#endif

#endif /* DP_CORE_FPENV_H */
