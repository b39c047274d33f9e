/*
 * Every SIMD kernel against the scalar kernel of its family and combo, in the
 * style of dav1d's checkasm: both run on identical inputs (the generator is
 * reseeded per family+combo, so every ISA of one kernel sees the same cases
 * whatever the CPU skips), outputs start as the guard pattern, and results
 * plus the guard bytes around every buffer must match bit for bit.  The f32
 * scalar kernels are held to the formula the same way, so a scalar-only build
 * still checks something.
 *
 * Buffers live in arenas bounded by PROT_NONE pages, so a case can also place
 * a buffer flush against a fence: a tail or head over-read faults instead of
 * passing silently, and the crash handler names the case.
 *
 * Replay a failure with the printed DP_TEST_SEED (and DP_TEST_ITERS);
 * DP_TEST_KERNEL=<substring> restricts the run to matching kernels.
 * `test_kernels --bench [substring]` times the kernels instead.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS on glibc */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define KT_FENCES 1
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#else
#define KT_FENCES 0
#endif

#include "droppath/droppath.h"
#include "kernels/kernels.h"
#include "test_util.h"

/* FAM_COUNT data families (buffers in, buffers out, the case machinery
 * below); the mask family only writes scales and has checks of its own. */
enum { FAM_FWD, FAM_SCALE, FAM_BWD, FAM_COUNT, FAM_MASK = FAM_COUNT };
enum { ET_F32, ET_BF16, ET_F16 };
/* GUARDED: TU_GUARD_BYTES of guard on both sides; FENCE_HEAD: the buffer
 * starts `off` bytes after a PROT_NONE page; FENCE_TAIL: it ends right at one. */
enum { PLACE_GUARDED, PLACE_FENCE_HEAD, PLACE_FENCE_TAIL, PLACE_COUNT };
#define NROLES 3
#define MAX_N ((size_t)16384 + 64) /* largest case: the streaming sweep */
#define MAX_VARIANTS 32
/* Exhaustive sizes reach past two unrolled bodies of four 64-byte vectors and
 * a tail (160 f32 elements); 16-bit types fit twice as many per vector. */
#define SMALL_MAX_BYTES 640

static const char *const role_names[FAM_COUNT][NROLES] = {
    {"out", "x", "f"}, {"out", "x", NULL}, {"gf", "gx", "g"}};
static const char *const place_names[PLACE_COUNT] = {"guarded", "fence-head", "fence-tail"};

/* s as the library derives it: 1/keep with keep = (float)(1 - p), plus the
 * plain factors and one that overflows ordinary inputs. */
static float s_list[6];
#define N_S (sizeof s_list / sizeof s_list[0])

static uint64_t g_seed;
static int g_iters;
static const char *g_filter;

/* ---------------------------------------------------------------- roles and types */

static int family_of(const dp_kernel_info *k) {
  switch (k->family) {
    case DP_FAMILY_fwd: return FAM_FWD;
    case DP_FAMILY_scale: return FAM_SCALE;
    case DP_FAMILY_bwd: return FAM_BWD;
    case DP_FAMILY_mask: return FAM_MASK;
    default: return -1;
  }
}

/* f (fwd) and gf (bwd) have the branch type F; everything else is X. */
static int role_ety(int fam, dp_combo c, int role) {
  if ((fam == FAM_FWD && role == 2) || (fam == FAM_BWD && role == 0))
    return c == DP_COMBO_F32 ? ET_F32 : (c == DP_COMBO_BF16 || c == DP_COMBO_F32_BF16) ? ET_BF16 : ET_F16;
  return c == DP_COMBO_BF16 ? ET_BF16 : c == DP_COMBO_F16 ? ET_F16 : ET_F32;
}

static size_t ety_size(int t) { return t == ET_F32 ? 4 : 2; }

/* "f32" out of "dp_fwd_f32__avx2". */
static void combo_label(const dp_kernel_info *k, char *buf, size_t len) {
  snprintf(buf, len, "%s", dp_combo_name(k->combo));
}

/* ---------------------------------------------------------------- cases */

typedef struct variant {
  int stream;    /* fwd, scale: the stream argument */
  unsigned mode; /* bwd: DP_KBWD_* */
  int has_gx;    /* bwd */
  int alias;     /* role whose buffer the output (role 0) is, or 0 for none */
} variant;

typedef struct kcase {
  variant v;
  size_t n;
  size_t off[NROLES]; /* bytes past a 64-byte boundary, a multiple of the element size */
  int place;
  float s;
  int specials; /* 0: none, 1: one in 64, 2: one in 4 */
} kcase;

/* Every stream/mode/gx/in-place combination the family allows. In-place needs
 * equal element sizes (out == f, gf == g). */
static size_t make_variants(int fam, dp_combo c, variant *v) {
  const int same = dp_combo_x_size(c) == dp_combo_f_size(c);
  size_t n = 0;
  if (fam == FAM_BWD) {
    for (unsigned m = 0; m < 8; m++)
      for (int gx = 0; gx < 2; gx++)
        for (int a = 0; a < 2; a++)
          if (!a || same) v[n++] = (variant){0, m, gx, a ? 2 : 0};
  } else {
    const int nalias = fam == FAM_FWD ? 3 : 2;
    for (int st = 0; st < 2; st++)
      for (int a = 0; a < nalias; a++)
        if (a != 2 || same) v[n++] = (variant){st, 0, 0, a};
  }
  return n;
}

static int role_present(int fam, const kcase *c, int role) {
  if (!role_names[fam][role]) return 0;
  if (role == 0 && c->v.alias) return 0;
  if (fam == FAM_BWD && role == 1 && !c->v.has_gx) return 0;
  return 1;
}

/* Roles the kernel reads: they get random contents, the rest the guard pattern. */
static int role_read(int fam, const kcase *c, int role) {
  if (fam != FAM_BWD) return role != 0;
  if (role == 0) return (c->v.mode & DP_KBWD_ACC_F) != 0;
  if (role == 1) return (c->v.mode & DP_KBWD_ACC_X) != 0;
  return 1;
}

/* ---------------------------------------------------------------- arenas */

/* Usable bytes between the two fences; page_size rounds it up. */
#define ARENA_BYTES (MAX_N * 4 + 2 * TU_GUARD_BYTES + 128)

typedef struct arena {
  unsigned char *map;
  size_t map_len;
  unsigned char *lo; /* first usable byte, page aligned */
  size_t len;
} arena;

static arena arenas[2][NROLES]; /* [0]: kernel under test, [1]: scalar reference */
static size_t page_size = 4096;

static void arena_alloc(arena *a) {
#if KT_FENCES
  const long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0) page_size = (size_t)ps;
  a->len = (ARENA_BYTES + page_size - 1) / page_size * page_size;
  a->map_len = a->len + 2 * page_size;
  void *m = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    perror("mmap");
    abort();
  }
  a->map = (unsigned char *)m;
  a->lo = a->map + page_size;
  if (mprotect(a->map, page_size, PROT_NONE) || mprotect(a->lo + a->len, page_size, PROT_NONE)) {
    perror("mprotect");
    abort();
  }
#else
  a->len = ARENA_BYTES;
  a->map_len = a->len + 128;
  a->map = (unsigned char *)malloc(a->map_len);
  if (!a->map) abort();
  a->lo = (unsigned char *)(((uintptr_t)a->map + 63) & ~(uintptr_t)63);
#endif
}

static void arena_free(arena *a) {
#if KT_FENCES
  munmap(a->map, a->map_len);
#else
  free(a->map);
#endif
  a->map = a->lo = NULL;
}

typedef struct placed {
  unsigned char *data;
  size_t bytes;
  size_t gl, gr; /* guard bytes checked before and after */
} placed;

static placed place_buf(const arena *a, int place, size_t off, size_t bytes) {
  placed p;
  p.bytes = bytes;
  if (place == PLACE_FENCE_HEAD) {
    p.data = a->lo + off;
    p.gl = off;
    p.gr = TU_GUARD_BYTES;
  } else if (place == PLACE_FENCE_TAIL) {
    p.data = a->lo + a->len - bytes;
    p.gl = TU_GUARD_BYTES;
    p.gr = 0;
  } else {
    p.data = a->lo + TU_GUARD_BYTES + off;
    p.gl = p.gr = TU_GUARD_BYTES;
  }
  return p;
}

/* ---------------------------------------------------------------- values */

static const uint32_t f32_specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                                        0x7fc00000u, 0x00000001u, 0x807fffffu, 0x00800000u,
                                        0x7f7fffffu, 0xff7fffffu, 0x3f800000u};
static const uint16_t bf16_specials[] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x0001,
                                         0x807f, 0x0080, 0x7f7f, 0xff7f, 0x3f80};
static const uint16_t f16_specials[] = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x0001,
                                        0x83ff, 0x0400, 0x7bff, 0xfbff, 0x3c00};
#define N_SPECIALS (sizeof f32_specials / sizeof f32_specials[0])

/* Mostly moderate values with full mantissas (so a fused multiply-add would
 * round differently), sometimes far-off exponents. */
static float random_float(tu_rng *r) {
  float v = tu_float(r) * (float)(1 + (tu_next(r) & 7));
  if ((tu_next(r) & 7) == 0) v = ldexpf(v, (int)tu_range(r, 0, 120) - 60);
  return v;
}

static void fill(tu_rng *r, unsigned char *p, size_t n, int t, int specials) {
  for (size_t i = 0; i < n; i++) {
    const uint64_t u = tu_next(r);
    const int sp = specials == 2 ? (u & 3) == 0 : specials == 1 ? (u & 63) == 0 : 0;
    const size_t which = (size_t)(u >> 8) % N_SPECIALS;
    if (t == ET_F32) {
      uint32_t b = f32_specials[which];
      if (!sp) {
        const float v = random_float(r);
        memcpy(&b, &v, 4);
      }
      memcpy(p + 4 * i, &b, 4);
    } else {
      uint16_t h;
      if (t == ET_BF16) {
        const float v = random_float(r);
        uint32_t b;
        memcpy(&b, &v, 4);
        h = sp ? bf16_specials[which] : (uint16_t)(b >> 16);
      } else {
        const uint64_t w = tu_next(r);
        h = sp ? f16_specials[which] : (uint16_t)((w & 0x83ffu) | ((5 + (w >> 16) % 21) << 10));
      }
      memcpy(p + 2 * i, &h, 2);
    }
  }
}

static float half_to_float(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
  return (h >> 15) ? -v : v;
}

static void format_elem(char *buf, size_t len, const unsigned char *p, int t) {
  if (t == ET_F32) {
    uint32_t b;
    float v;
    memcpy(&b, p, 4);
    memcpy(&v, p, 4);
    snprintf(buf, len, "0x%08x (%.9g)", (unsigned)b, (double)v);
  } else {
    uint16_t h;
    memcpy(&h, p, 2);
    float v;
    if (t == ET_BF16) {
      const uint32_t b = (uint32_t)h << 16;
      memcpy(&v, &b, 4);
    } else {
      v = half_to_float(h);
    }
    snprintf(buf, len, "0x%04x (%.6g)", (unsigned)h, (double)v);
  }
}

static float random_s(tu_rng *r) {
  if (tu_next(r) & 3) return s_list[tu_range(r, 0, N_S - 1)];
  const double p = (double)(tu_next(r) >> 11) * 0x1p-53 * 0.95;
  return 1.0f / (float)(1.0 - p);
}

static size_t random_off(tu_rng *r, size_t esize) { return esize * tu_range(r, 0, 64 / esize - 1); }

/* Short runs mostly, some past DP_STREAM_MIN_ELEMS. */
static size_t small_n(tu_rng *r) {
  const uint64_t u = tu_next(r) % 10;
  return u < 5 ? tu_range(r, 0, 49) : u < 8 ? tu_range(r, 50, 200) : tu_range(r, 200, 1100);
}

static size_t random_n(tu_rng *r) {
  const uint64_t u = tu_next(r) % 10;
  return u < 4 ? tu_range(r, 0, 200) : u < 8 ? tu_range(r, 0, 1100) : tu_range(r, 0, 4096);
}

/* ---------------------------------------------------------------- running one case */

static void call_kernel(const dp_kernel_info *k, unsigned char *const p[NROLES], const kcase *c) {
  switch (family_of(k)) {
    case FAM_FWD: k->fn.fwd(p[0], p[1], p[2], c->s, c->n, c->v.stream); break;
    case FAM_SCALE: k->fn.scale(p[0], p[1], c->s, c->n, c->v.stream); break;
    default: k->fn.bwd(p[0], p[1], p[2], c->s, c->n, c->v.mode); break;
  }
}

static size_t effective_off(const kcase *c, int fam, dp_combo combo, int role) {
  const size_t bytes = c->n * ety_size(role_ety(fam, combo, role));
  return c->place == PLACE_FENCE_TAIL ? (64 - bytes % 64) % 64 : c->off[role];
}

static void describe(char *buf, size_t len, const dp_kernel_info *k, const kcase *c) {
  const int fam = family_of(k);
  uint32_t sb;
  memcpy(&sb, &c->s, 4);
  int w = snprintf(buf, len, "n=%zu s=%.9g (0x%08x) ", c->n, (double)c->s, (unsigned)sb);
  if (fam == FAM_BWD) {
    static const char *const flag_names[3] = {"ACC_F", "ACC_X", "STREAM"};
    w += snprintf(buf + w, len - (size_t)w, "mode=%s", c->v.mode ? "" : "0");
    for (unsigned f = 0, first = 1; f < 3; f++)
      if (c->v.mode & (1u << f)) {
        w += snprintf(buf + w, len - (size_t)w, "%s%s", first ? "" : "|", flag_names[f]);
        first = 0;
      }
    w += snprintf(buf + w, len - (size_t)w, " gx=%s%s", c->v.has_gx ? "present" : "NULL",
                  c->v.alias ? " in-place(gf==g)" : "");
  } else {
    w += snprintf(buf + w, len - (size_t)w, "stream=%d%s%s", c->v.stream, c->v.alias ? " in-place(out==" : "",
                  c->v.alias ? (c->v.alias == 1 ? "x)" : "f)") : "");
  }
  w += snprintf(buf + w, len - (size_t)w, " %s misalign(", place_names[c->place]);
  for (int r = 0; r < NROLES && role_names[fam][r]; r++) {
    char o[24];
    if (role_present(fam, c, r))
      snprintf(o, sizeof o, "%zu", effective_off(c, fam, k->combo, r));
    else
      snprintf(o, sizeof o, "%s", r == 0 && c->v.alias ? "alias" : "NULL");
    w += snprintf(buf + w, len - (size_t)w, "%s%s=%s", r ? " " : "", role_names[fam][r], o);
  }
  snprintf(buf + w, len - (size_t)w, ") specials=%d", c->specials);
}

/* A mask kernel's case (the mask section below). */
typedef struct mcase mcase;
static void describe_mask(char *buf, size_t len, const mcase *c);

/* What was running, for the crash handler: a data case or a mask case. */
static const dp_kernel_info *volatile crash_kernel;
static const kcase *volatile crash_case;
static const mcase *volatile crash_mcase;

#if KT_FENCES
static struct sigaction prev_segv, prev_bus;

static void crash_handler(int sig) {
  char buf[512];
  const dp_kernel_info *k = crash_kernel;
  if (k && (crash_case || crash_mcase)) {
    int w = snprintf(buf, sizeof buf, "\nFAIL %s crashed (signal %d, an access outside its buffers?): ", k->name, sig);
    if (crash_mcase)
      describe_mask(buf + w, sizeof buf - (size_t)w, crash_mcase);
    else
      describe(buf + w, sizeof buf - (size_t)w, k, crash_case);
    w = (int)strlen(buf);
    snprintf(buf + w, sizeof buf - (size_t)w, "\n  replay: DP_TEST_SEED=%llu DP_TEST_ITERS=%d DP_TEST_KERNEL=%s\n",
             (unsigned long long)g_seed, g_iters, k->name);
    if (write(2, buf, strlen(buf)) < 0) buf[0] = 0;
    crash_kernel = NULL;
  }
  /* Hand over to whoever was there (cmocka reports and moves on), else die
   * by re-faulting into the default action. */
  const struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
  if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN && prev->sa_handler != crash_handler &&
      !(prev->sa_flags & SA_SIGINFO)) {
    prev->sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
}
#endif

/* cmocka installs its own handlers per test, so this runs inside each test. */
static void install_crash_handler(void) {
#if KT_FENCES
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = crash_handler;
  sa.sa_flags = SA_NODEFER; /* cmocka's handler longjmps out: leave no signal blocked */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &prev_segv);
  sigaction(SIGBUS, &sa, &prev_bus);
#endif
}

static void remove_crash_handler(void) {
#if KT_FENCES
  sigaction(SIGSEGV, &prev_segv, NULL);
  sigaction(SIGBUS, &prev_bus, NULL);
#endif
}

/* Position of the first byte in [p, p+n) that is not the guard pattern, or -1. */
static long first_dirty(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != TU_GUARD_BYTE) return (long)i;
  return -1;
}

typedef struct runner {
  const dp_kernel_info *k, *ref;
  int fam;
  tu_rng rng;
  size_t checks;
  const char *section;
} runner;

static void report(const runner *ru, const kcase *c, const char *what) {
  char d[400];
  describe(d, sizeof d, ru->k, c);
  printf("FAIL %s vs %s, check #%zu (%s): %s\n  %s\n  replay: DP_TEST_SEED=%llu DP_TEST_ITERS=%d "
         "DP_TEST_KERNEL=%s\n",
         ru->k->name, ru->ref->name, ru->checks, ru->section, d, what, (unsigned long long)g_seed, g_iters,
         ru->k->name);
}

/* Guard bytes first (a write outside the buffer), then the data. */
static int compare_role(const runner *ru, const kcase *c, int role, const placed *t, const placed *r, int et) {
  char name[32];
  snprintf(name, sizeof name, "%s%s%s", role_names[ru->fam][role], c->v.alias && c->v.alias == role ? "=" : "",
           c->v.alias && c->v.alias == role ? role_names[ru->fam][0] : "");
  const size_t es = ety_size(et);
  char msg[256];
  const unsigned char *bufs[2] = {t->data, r->data};
  for (int set = 0; set < 2; set++) {
    const char *who = set ? "reference" : "kernel";
    long before = -1;
    for (size_t i = t->gl; i > 0; i--)
      if (bufs[set][-(ptrdiff_t)i] != TU_GUARD_BYTE) {
        before = (long)i;
        break;
      }
    const long after = first_dirty(bufs[set] + t->bytes, t->gr);
    if (before >= 0 || after >= 0) {
      if (before >= 0)
        snprintf(msg, sizeof msg, "%s wrote %s[byte -%ld] (before the buffer)", who, name, before);
      else
        snprintf(msg, sizeof msg, "%s wrote %s[byte %zu] = element %zu, past the end (n=%zu)", who, name,
                 t->bytes + (size_t)after, c->n + (size_t)after / es, c->n);
      report(ru, c, msg);
      return 0;
    }
  }
  if (memcmp(t->data, r->data, t->bytes) == 0) return 1;
  size_t i = 0;
  while (memcmp(t->data + i * es, r->data + i * es, es) == 0) i++;
  char got[48], want[48];
  format_elem(got, sizeof got, t->data + i * es, et);
  format_elem(want, sizeof want, r->data + i * es, et);
  snprintf(msg, sizeof msg, "%s[%zu] differs: got %s, reference %s", name, i, got, want);
  report(ru, c, msg);
  return 0;
}

static int run_case(runner *ru, const kcase *c) {
  const int fam = ru->fam;
  const dp_combo combo = ru->k->combo;
  placed b[2][NROLES];
  unsigned char *p[2][NROLES];
  ru->checks++;
  for (int role = 0; role < NROLES; role++) {
    if (!role_present(fam, c, role)) continue;
    const size_t bytes = c->n * ety_size(role_ety(fam, combo, role));
    for (int set = 0; set < 2; set++) {
      b[set][role] = place_buf(&arenas[set][role], c->place, c->off[role], bytes);
      memset(b[set][role].data - b[set][role].gl, TU_GUARD_BYTE, b[set][role].gl + bytes + b[set][role].gr);
    }
    if (role_read(fam, c, role)) {
      fill(&ru->rng, b[0][role].data, c->n, role_ety(fam, combo, role), c->specials);
      memcpy(b[1][role].data, b[0][role].data, bytes);
    }
  }
  for (int set = 0; set < 2; set++)
    for (int role = 0; role < NROLES; role++)
      p[set][role] = role_present(fam, c, role) ? b[set][role].data : NULL;
  if (c->v.alias) {
    p[0][0] = p[0][c->v.alias];
    p[1][0] = p[1][c->v.alias];
  }
  crash_case = c;
  crash_mcase = NULL;
  crash_kernel = ru->ref;
  call_kernel(ru->ref, p[1], c);
  crash_kernel = ru->k;
  call_kernel(ru->k, p[0], c);
  crash_kernel = NULL;
  /* Inputs are compared too: a kernel must not write what it only reads. */
  for (int role = 0; role < NROLES; role++)
    if (role_present(fam, c, role) &&
        !compare_role(ru, c, role, &b[0][role], &b[1][role], role_ety(fam, combo, role)))
      return 0;
  return 1;
}

/* ---------------------------------------------------------------- sweeps */

static void base_case(runner *ru, kcase *c, const variant *v, size_t n) {
  memset(c, 0, sizeof *c);
  c->v = *v;
  c->n = n;
  c->place = PLACE_GUARDED;
  for (int r = 0; r < NROLES; r++)
    c->off[r] = random_off(&ru->rng, ety_size(role_ety(ru->fam, ru->k->combo, r)));
  c->s = random_s(&ru->rng);
  c->specials = 1;
}

#define RUN(c)                          \
  do {                                  \
    if (!run_case(ru, &(c))) return 0; \
  } while (0)

static int run_kernel(runner *ru) {
  variant vs[MAX_VARIANTS];
  const size_t nv = make_variants(ru->fam, ru->k->combo, vs);
  const size_t small_max = SMALL_MAX_BYTES / dp_combo_f_size(ru->k->combo);
  kcase c;

  ru->section = "every size, every variant";
  for (size_t n = 0; n <= small_max; n++)
    for (size_t v = 0; v < nv; v++) {
      base_case(ru, &c, &vs[v], n);
      RUN(c);
    }

  ru->section = "buffers against a PROT_NONE page";
  for (size_t n = 0; n <= small_max; n++)
    for (int place = PLACE_FENCE_HEAD; place <= PLACE_FENCE_TAIL; place++)
      for (size_t v = 0; v < nv; v++) {
        base_case(ru, &c, &vs[v], n);
        c.place = place;
        memset(c.off, 0, sizeof c.off);
        RUN(c);
      }

  ru->section = "each pointer at each misalignment";
  for (int role = 0; role < NROLES && role_names[ru->fam][role]; role++) {
    const size_t es = ety_size(role_ety(ru->fam, ru->k->combo, role));
    for (size_t off = 0; off < 64; off += es) {
      for (size_t v = 0; v < nv; v++) {
        base_case(ru, &c, &vs[v], small_n(&ru->rng));
        c.off[role] = off;
        RUN(c);
      }
      /* Streaming decisions depend on the output's alignment. */
      base_case(ru, &c, &vs[tu_range(&ru->rng, 0, nv - 1)], tu_range(&ru->rng, 256, 2100));
      c.v.stream = 1;
      c.v.mode |= DP_KBWD_STREAM;
      c.off[role] = off;
      RUN(c);
    }
  }

  /* Exhaustive for f32 (16^3); 16-bit types (32^3) get as many random picks. */
  ru->section = "all pointers, misalignment combinations";
  {
    size_t es[NROLES], nr = 0;
    for (; nr < NROLES && role_names[ru->fam][nr]; nr++) es[nr] = ety_size(role_ety(ru->fam, ru->k->combo, (int)nr));
    size_t combos = 1;
    for (size_t r = 0; r < nr; r++) combos *= 64 / es[r];
    const size_t runs = combos < 4096 ? combos : 4096;
    for (size_t i = 0; i < runs; i++) {
      base_case(ru, &c, &vs[tu_range(&ru->rng, 0, nv - 1)], small_n(&ru->rng));
      for (size_t r = 0, rest = i; r < nr && runs == combos; r++) {
        c.off[r] = es[r] * (rest % (64 / es[r]));
        rest /= 64 / es[r];
      }
      RUN(c);
    }
  }

  ru->section = "streaming sizes";
  {
    const size_t sizes[] = {255, 256, 257, 2048, 2048 + tu_range(&ru->rng, 1, 63), 4096 + tu_range(&ru->rng, 0, 63),
                            16384, 16384 + tu_range(&ru->rng, 1, 63)};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      for (size_t v = 0; v < nv; v++) {
        if (!vs[v].stream && !(vs[v].mode & DP_KBWD_STREAM)) continue;
        for (int aligned = 0; aligned < 2; aligned++) {
          base_case(ru, &c, &vs[v], sizes[i]);
          if (aligned) memset(c.off, 0, sizeof c.off);
          RUN(c);
        }
      }
  }

  ru->section = "each s, dense NaN/inf/-0/subnormal inputs";
  for (size_t si = 0; si < N_S + 2; si++)
    for (size_t v = 0; v < nv; v++) {
      base_case(ru, &c, &vs[v], small_n(&ru->rng));
      if (si < N_S) c.s = s_list[si];
      c.specials = 2;
      RUN(c);
    }

  ru->section = "random";
  for (int it = 0; it < g_iters; it++) {
    base_case(ru, &c, &vs[tu_range(&ru->rng, 0, nv - 1)], random_n(&ru->rng));
    c.place = (int)tu_range(&ru->rng, 0, PLACE_COUNT - 1);
    c.specials = (int)tu_range(&ru->rng, 0, 2);
    RUN(c);
  }
  return 1;
}

/* ---------------------------------------------------------------- tests */

static const dp_kernel_info *find_kernel(int fam, dp_combo combo, dp_isa isa) {
  size_t n;
  const dp_kernel_info *list = dp_kernel_list(&n);
  for (size_t i = 0; i < n; i++)
    if (family_of(&list[i]) == fam && list[i].combo == combo && list[i].isa == isa) return &list[i];
  return NULL;
}

/* The contract written out for f32, to hold the scalar kernels to it (other
 * combos round through conversions the scalar kernels define). Each element
 * is read before it is written, so in-place calls work.  A NaN sum or
 * product is stored as the canonical quiet NaN; the copy gx = g is not. */
static float canon_f32(float v) {
  const uint32_t q = 0x7FC00000u;
  if (v == v) return v;
  memcpy(&v, &q, sizeof v);
  return v;
}

static void formula_fwd_f32(void *out_, const void *x_, const void *f_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_, *f = (const float *)f_;
  (void)stream;
  for (size_t i = 0; i < n; i++) {
    const float sf = s * f[i];
    out[i] = canon_f32(x[i] + sf);
  }
}

static void formula_scale_f32(void *out_, const void *x_, float s, size_t n, int stream) {
  float *out = (float *)out_;
  const float *x = (const float *)x_;
  (void)stream;
  for (size_t i = 0; i < n; i++) out[i] = canon_f32(s * x[i]);
}

static void formula_bwd_f32(void *gf_, void *gx_, const void *g_, float s, size_t n, unsigned mode) {
  float *gf = (float *)gf_, *gx = (float *)gx_;
  const float *g = (const float *)g_;
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i], sg = s * gi;
    gf[i] = canon_f32((mode & DP_KBWD_ACC_F) ? gf[i] + sg : sg);
    if (gx) gx[i] = (mode & DP_KBWD_ACC_X) ? canon_f32(gx[i] + gi) : gi;
  }
}

static const dp_kernel_info formulas[FAM_COUNT] = {
    {"formula_fwd_f32", DP_FAMILY_fwd, DP_COMBO_F32, DP_ISA_SCALAR, {.fwd = formula_fwd_f32}},
    {"formula_scale_f32", DP_FAMILY_scale, DP_COMBO_F32, DP_ISA_SCALAR, {.scale = formula_scale_f32}},
    {"formula_bwd_f32", DP_FAMILY_bwd, DP_COMBO_F32, DP_ISA_SCALAR, {.bwd = formula_bwd_f32}},
};

/* Per-family+combo stream, so each ISA of a kernel sees the cases the others see. */
static uint64_t kernel_seed(const dp_kernel_info *k) {
  uint64_t h = g_seed ^ 0x6a09e667f3bcc909ull;
  for (const char *p = dp_family_name(k->family); *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
  return h ^ ((uint64_t)k->combo << 56);
}

static void test_family(int fam) {
  size_t n, ran = 0, skipped = 0;
  int failures = 0;
  const dp_kernel_info *list = dp_kernel_list(&n);
  for (size_t i = 0; i < n; i++) {
    const dp_kernel_info *k = &list[i];
    const int vs_formula = k->isa == DP_ISA_SCALAR;
    if (family_of(k) != fam || (vs_formula && k->combo != DP_COMBO_F32)) continue;
    if (g_filter && !strstr(k->name, g_filter)) continue;
    if (!dp_isa_supported(k->isa)) {
      printf("%s: skipped: %s not supported on this CPU\n", k->name, dp_isa_name(k->isa));
      skipped++;
      continue;
    }
    runner ru;
    memset(&ru, 0, sizeof ru);
    ru.k = k;
    ru.ref = vs_formula ? &formulas[fam] : find_kernel(fam, k->combo, DP_ISA_SCALAR);
    ru.fam = fam;
    if (!ru.ref) {
      printf("FAIL %s: no scalar kernel of the same family and combo to compare with\n", k->name);
      failures++;
      continue;
    }
    tu_rng_init(&ru.rng, kernel_seed(k));
    install_crash_handler();
    const int ok = run_kernel(&ru);
    remove_crash_handler();
    char label[32];
    combo_label(k, label, sizeof label);
    printf("%s: %s_%s %zu checks %s%s\n", dp_isa_name(k->isa), dp_family_name(k->family), label, ru.checks, ok ? "ok" : "FAILED",
           vs_formula ? " (against the formula)" : "");
    failures += !ok;
    ran += !vs_formula;
  }
  if (!ran)
    printf("%s: no SIMD kernel ran (%s): nothing to compare\n", fam == FAM_FWD ? "fwd" : fam == FAM_SCALE ? "scale" : "bwd",
           skipped ? "none supported on this CPU" : "scalar-only build or filtered out");
  fflush(stdout);
  if (failures) fail_msg("%d kernel(s) failed: see the FAIL lines above", failures);
}

static void test_fwd(void **state) {
  (void)state;
  test_family(FAM_FWD);
}
static void test_scale(void **state) {
  (void)state;
  test_family(FAM_SCALE);
}
static void test_bwd(void **state) {
  (void)state;
  test_family(FAM_BWD);
}

/* ---------------------------------------------------------------- mask kernels */

struct mcase {
  uint64_t seed, offset, base;
  float keep, scale;
  size_t n, off; /* off: bytes past a 64-byte boundary */
  int place;
};

/* The contract of dp_mask_fn, written out on the public Philox. */
static void formula_mask(uint64_t seed, uint64_t offset, uint64_t base, float keep, float scale, size_t n,
                         float *scales) {
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  for (size_t i = 0; i < n; i++) {
    const uint64_t g = base + (uint64_t)i;
    const uint32_t ctr[4] = {(uint32_t)g, (uint32_t)(g >> 32), (uint32_t)offset, (uint32_t)(offset >> 32)};
    uint32_t out[4];
    dp_philox4x32_10(ctr, key, out);
    const float u = (float)(out[0] >> 8) * 0x1p-24f;
    scales[i] = u < keep ? scale : 0.0f;
  }
}

static const dp_kernel_info formula_mask_info = {"formula_mask", DP_FAMILY_mask, DP_COMBO_F32, DP_ISA_SCALAR,
                                                 {.mask = formula_mask}};

/* u of sample g, the value keep is compared with. */
static uint32_t mask_word(uint64_t seed, uint64_t offset, uint64_t g) {
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const uint32_t ctr[4] = {(uint32_t)g, (uint32_t)(g >> 32), (uint32_t)offset, (uint32_t)(offset >> 32)};
  uint32_t out[4];
  dp_philox4x32_10(ctr, key, out);
  return out[0];
}

static float mask_u(uint64_t seed, uint64_t offset, uint64_t g) {
  return (float)(mask_word(seed, offset, g) >> 8) * 0x1p-24f;
}

static uint64_t random_u64(tu_rng *r) {
  static const uint64_t specials[] = {0, 1, 0xFFFFFFFFull, 0x100000000ull, 0xFFFFFFFFFFFFFFFFull,
                                      0x8000000000000000ull, 0x123456789ABCDEF0ull};
  if ((tu_next(r) & 3) == 0) return specials[tu_next(r) % (sizeof specials / sizeof specials[0])];
  return tu_next(r);
}

/* Counters crossing 2^32 (word 1 carries) and 2^64 (the counter wraps) inside the run. */
static uint64_t random_base(tu_rng *r, size_t n) {
  const uint64_t back = tu_range(r, 0, n + 1);
  switch (tu_next(r) % 5) {
    case 0: return ((uint64_t)tu_range(r, 1, 0xFFFFFFFFu) << 32) - back;
    case 1: return 0 - back;
    case 2: return tu_range(r, 0, 100);
    default: return tu_next(r);
  }
}

static float random_keep(tu_rng *r) {
  static const float specials[] = {0.0f, 1.0f, -0.0f, -1.0f, 2.0f, 0x1p-24f, 1.0f - 0x1p-24f, 0x1p-149f,
                                   0.5f, 0.1f, 0.9f, 1e-7f, INFINITY, -INFINITY, NAN};
  if (tu_next(r) & 1) return specials[tu_next(r) % (sizeof specials / sizeof specials[0])];
  const double p = (double)(tu_next(r) >> 11) * 0x1p-53;
  return (float)(1.0 - p);
}

static void random_mcase(tu_rng *r, mcase *c, size_t n) {
  memset(c, 0, sizeof *c);
  c->n = n;
  c->seed = random_u64(r);
  c->offset = random_u64(r);
  c->base = random_base(r, n);
  c->keep = random_keep(r);
  c->scale = (tu_next(r) & 1) && c->keep > 0.0f ? 1.0f / c->keep : s_list[tu_range(r, 0, N_S - 1)];
  c->off = 4 * tu_range(r, 0, 15);
  c->place = (tu_next(r) & 3) == 0 ? PLACE_FENCE_TAIL : PLACE_GUARDED;
}

static void describe_mask(char *buf, size_t len, const mcase *c) {
  uint32_t kb, sb;
  memcpy(&kb, &c->keep, 4);
  memcpy(&sb, &c->scale, 4);
  snprintf(buf, len,
           "n=%zu seed=0x%016llx offset=0x%016llx base=0x%016llx keep=%.9g (0x%08x) scale=%.9g (0x%08x) %s off=%zu",
           c->n, (unsigned long long)c->seed, (unsigned long long)c->offset, (unsigned long long)c->base,
           (double)c->keep, (unsigned)kb, (double)c->scale, (unsigned)sb, place_names[c->place],
           c->place == PLACE_FENCE_TAIL ? (size_t)0 : c->off);
}

static int run_mask_case(runner *ru, const mcase *c) {
  placed b[2];
  ru->checks++;
  for (int set = 0; set < 2; set++) {
    b[set] = place_buf(&arenas[set][0], c->place, c->off, c->n * sizeof(float));
    memset(b[set].data - b[set].gl, TU_GUARD_BYTE, b[set].gl + b[set].bytes + b[set].gr);
  }
  char what[200] = "";
  crash_case = NULL;
  crash_mcase = c;
  crash_kernel = ru->ref;
  ru->ref->fn.mask(c->seed, c->offset, c->base, c->keep, c->scale, c->n, (float *)(void *)b[1].data);
  crash_kernel = ru->k;
  ru->k->fn.mask(c->seed, c->offset, c->base, c->keep, c->scale, c->n, (float *)(void *)b[0].data);
  crash_kernel = NULL;
  crash_mcase = NULL;
  for (int set = 0; set < 2 && !what[0]; set++) {
    const char *who = set ? "reference" : "kernel";
    for (size_t i = 1; i <= b[set].gl && !what[0]; i++)
      if (b[set].data[-(ptrdiff_t)i] != TU_GUARD_BYTE) snprintf(what, sizeof what, "%s wrote byte -%zu", who, i);
    const long after = first_dirty(b[set].data + b[set].bytes, b[set].gr);
    if (!what[0] && after >= 0)
      snprintf(what, sizeof what, "%s wrote byte %ld past the end", who, after);
  }
  if (!what[0] && memcmp(b[0].data, b[1].data, b[0].bytes) != 0) {
    size_t i = 0;
    while (memcmp(b[0].data + 4 * i, b[1].data + 4 * i, 4) == 0) i++;
    char got[48], want[48];
    format_elem(got, sizeof got, b[0].data + 4 * i, ET_F32);
    format_elem(want, sizeof want, b[1].data + 4 * i, ET_F32);
    snprintf(what, sizeof what, "scales[%zu] (g=0x%016llx, u=%.9g) differs: got %s, reference %s", i,
             (unsigned long long)(c->base + i), (double)mask_u(c->seed, c->offset, c->base + i), got, want);
  }
  if (!what[0]) return 1;
  char d[300];
  describe_mask(d, sizeof d, c);
  printf("FAIL %s vs %s, check #%zu (%s): %s\n  %s\n  replay: DP_TEST_SEED=%llu DP_TEST_ITERS=%d DP_TEST_KERNEL=%s\n",
         ru->k->name, ru->ref->name, ru->checks, ru->section, d, what, (unsigned long long)g_seed, g_iters,
         ru->k->name);
  return 0;
}

#define RUN_MASK(c)                          \
  do {                                       \
    if (!run_mask_case(ru, &(c))) return 0; \
  } while (0)

static int run_mask_kernel(runner *ru) {
  mcase c;
  ru->section = "every n to 40, twice, one against the page";
  for (size_t n = 0; n <= 40; n++)
    for (int place = PLACE_GUARDED; place <= PLACE_FENCE_TAIL; place += PLACE_FENCE_TAIL - PLACE_GUARDED) {
      random_mcase(&ru->rng, &c, n);
      c.place = place;
      RUN_MASK(c);
    }

  /* keep at a sample's own u: equal drops, the next float up keeps. */
  ru->section = "keep at a sample's threshold";
  for (int it = 0; it < 300; it++) {
    random_mcase(&ru->rng, &c, tu_range(&ru->rng, 1, 40));
    const float u = mask_u(c.seed, c.offset, c.base + tu_range(&ru->rng, 0, c.n - 1));
    const int which = (int)(tu_next(&ru->rng) % 3);
    c.keep = which == 0 ? u : which == 1 ? nextafterf(u, 2.0f) : nextafterf(u, -1.0f);
    RUN_MASK(c);
  }

  /* The same, at a word whose low byte is 0: a kernel deciding with w0 and
   * an integer threshold (w0 < thr*256) meets its exact cut-off there, which
   * a random word hits once in 256. */
  ru->section = "keep at the threshold of a word with a zero low byte";
  int found = 0;
  for (int it = 0; it < 60; it++) {
    random_mcase(&ru->rng, &c, tu_range(&ru->rng, 1, 40));
    size_t at = SIZE_MAX;
    for (int tries = 0; tries < 512 && at == SIZE_MAX; tries++, c.base += c.n)
      for (size_t i = 0; i < c.n && at == SIZE_MAX; i++)
        if ((mask_word(c.seed, c.offset, c.base + i) & 0xFFu) == 0) at = i;
    if (at == SIZE_MAX) continue;
    c.base -= c.n; /* the loop stepped once past the run that has it */
    const float u = mask_u(c.seed, c.offset, c.base + at);
    const int which = it % 3;
    c.keep = which == 0 ? u : which == 1 ? nextafterf(u, 2.0f) : nextafterf(u, -1.0f);
    found++;
    RUN_MASK(c);
  }
  if (found < 30) {
    printf("FAIL %s: only %d of 60 searches found a zero-low-byte word\n", ru->section, found);
    return 0;
  }

  ru->section = "each keep and scale at every n to 20";
  {
    static const float keeps[] = {0.0f, 1.0f, -0.0f, 0x1p-24f, 0.5f, 1.0f - 0x1p-24f, NAN, INFINITY};
    for (size_t ki = 0; ki < sizeof keeps / sizeof keeps[0]; ki++)
      for (size_t n = 0; n <= 20; n++) {
        random_mcase(&ru->rng, &c, n);
        c.keep = keeps[ki];
        RUN_MASK(c);
      }
  }

  ru->section = "random, n to 3000";
  for (int it = 0; it < g_iters / 4; it++) {
    random_mcase(&ru->rng, &c, tu_range(&ru->rng, 0, (tu_next(&ru->rng) & 3) ? 300 : 3000));
    RUN_MASK(c);
  }
  return 1;
}

static void test_mask(void **state) {
  (void)state;
  size_t n, ran = 0, skipped = 0;
  int failures = 0;
  const dp_kernel_info *list = dp_kernel_list(&n);
  for (size_t i = 0; i < n; i++) {
    const dp_kernel_info *k = &list[i];
    if (family_of(k) != FAM_MASK) continue;
    if (g_filter && !strstr(k->name, g_filter)) continue;
    if (!dp_isa_supported(k->isa)) {
      printf("%s: skipped: %s not supported on this CPU\n", k->name, dp_isa_name(k->isa));
      skipped++;
      continue;
    }
    const int vs_formula = k->isa == DP_ISA_SCALAR;
    runner ru;
    memset(&ru, 0, sizeof ru);
    ru.k = k;
    ru.ref = vs_formula ? &formula_mask_info : find_kernel(FAM_MASK, DP_COMBO_F32, DP_ISA_SCALAR);
    ru.fam = FAM_MASK;
    if (!ru.ref) {
      printf("FAIL %s: no scalar mask kernel to compare with\n", k->name);
      failures++;
      continue;
    }
    tu_rng_init(&ru.rng, kernel_seed(k));
    install_crash_handler();
    const int ok = run_mask_kernel(&ru);
    remove_crash_handler();
    printf("%s: mask %zu checks %s%s\n", dp_isa_name(k->isa), ru.checks, ok ? "ok" : "FAILED",
           vs_formula ? " (against the formula)" : "");
    failures += !ok;
    ran += !vs_formula;
  }
  if (!ran)
    printf("mask: no SIMD kernel ran (%s): nothing to compare\n",
           skipped ? "none supported on this CPU" : "scalar-only build or filtered out");
  fflush(stdout);
  if (failures) fail_msg("%d mask kernel(s) failed: see the FAIL lines above", failures);
}

static void test_kernel_list(void **state) {
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
    assert_true(family_of(k) >= 0);
    assert_in_range(k->combo, 0, DP_COMBO_COUNT - 1);
    assert_in_range(k->isa, 0, DP_ISA_COUNT - 1);
    snprintf(prefix, sizeof prefix, "dp_%s_", dp_family_name(k->family));
    snprintf(suffix, sizeof suffix, "__%s", dp_isa_name(k->isa));
    assert_true(strncmp(k->name, prefix, strlen(prefix)) == 0);
    assert_true(strlen(k->name) > strlen(suffix));
    assert_string_equal(k->name + strlen(k->name) - strlen(suffix), suffix);
    assert_ptr_equal(find_kernel(family_of(k), k->combo, k->isa), k); /* no duplicates */
    if (k->isa != DP_ISA_SCALAR && !find_kernel(family_of(k), k->combo, DP_ISA_SCALAR))
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

static void test_kernels_for_isa(void **state) {
  (void)state;
  size_t n;
  const dp_kernel_info *list = dp_kernel_list(&n);
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

/* ---------------------------------------------------------------- --bench */

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double time_kernel(const dp_kernel_info *k, unsigned char *const p[NROLES], const kcase *c) {
  size_t reps = 1;
  call_kernel(k, p, c);
  for (;;) {
    const double t0 = now_ns();
    for (size_t i = 0; i < reps; i++) call_kernel(k, p, c);
    if (now_ns() - t0 > 2e7 || reps > ((size_t)1 << 30)) break;
    reps *= 2;
  }
  double best = 1e300;
  for (int run = 0; run < 5; run++) {
    const double t0 = now_ns();
    for (size_t i = 0; i < reps; i++) call_kernel(k, p, c);
    const double dt = (now_ns() - t0) / (double)reps;
    if (dt < best) best = dt;
  }
  return best;
}

static void run_bench_mask(const dp_kernel_info *ref, const char *filter, float *scales) {
  static const size_t sizes[] = {8, 64, 1024};
  size_t n;
  const dp_kernel_info *list = dp_kernel_list(&n);
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    double base = 0;
    for (size_t i = 0; i < n; i++) {
      const dp_kernel_info *k = &list[i];
      if (family_of(k) != FAM_MASK || !dp_isa_supported(k->isa)) continue;
      if (filter && !strstr(k->name, filter) && k != ref) continue;
      const dp_mask_fn fn = k->fn.mask;
      size_t reps = 1;
      double best = 1e300;
      for (int run = 0; run < 6; run++) {
        const double t0 = now_ns();
        for (size_t r = 0; r < reps; r++) fn(42, r, 0, 0.9f, 1.0f / 0.9f, sizes[si], scales);
        const double dt = now_ns() - t0;
        if (run && dt / (double)reps < best) best = dt / (double)reps;
        if (!run) reps = dt > 0 ? (size_t)(2e7 / dt) + 1 : 1000; /* about 20 ms a run */
      }
      if (k == ref) base = best;
      printf("%-26s %8zu %6s %12.1f %10.4f %7.2fx\n", k->name, sizes[si], "-", best, best / (double)sizes[si],
             base / best);
      fflush(stdout);
    }
  }
}

static int run_bench(const char *filter) {
  static const size_t sizes[] = {64, 1024, 16384, 262144};
  const size_t max_n = 262144;
  unsigned char *p[NROLES];
  tu_rng r;
  tu_rng_init(&r, 1);
  for (int i = 0; i < NROLES; i++) {
    p[i] = (unsigned char *)aligned_alloc(64, max_n * 4);
    if (!p[i]) return 1;
    fill(&r, p[i], max_n, ET_F32, 0); /* also valid bf16/f16 bits: finite, no subnormals */
  }
  size_t n;
  const dp_kernel_info *list = dp_kernel_list(&n);
  printf("%-26s %8s %6s %12s %10s %8s\n", "kernel", "n", "stream", "ns/call", "ns/elem", "speedup");
  for (size_t gi = 0; gi < n; gi++) {
    const dp_kernel_info *ref = &list[gi];
    if (ref->isa != DP_ISA_SCALAR) continue;
    const int fam = family_of(ref);
    if (fam == FAM_MASK) {
      run_bench_mask(ref, filter, (float *)(void *)p[0]);
      continue;
    }
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
      for (int stream = 0; stream < 2; stream++) {
        if (stream && sizes[si] < 16384) continue;
        kcase c;
        memset(&c, 0, sizeof c);
        c.n = sizes[si];
        c.s = 1.0f / 0.9f;
        c.v.stream = stream;
        c.v.has_gx = 1;
        c.v.mode = stream ? DP_KBWD_STREAM : 0;
        unsigned char *q[NROLES] = {p[0], p[1], fam == FAM_SCALE ? NULL : p[2]};
        double base = 0;
        for (size_t i = 0; i < n; i++) {
          const dp_kernel_info *k = &list[i];
          if (family_of(k) != fam || k->combo != ref->combo || !dp_isa_supported(k->isa)) continue;
          if (filter && !strstr(k->name, filter) && k != ref) continue;
          const double t = time_kernel(k, q, &c);
          if (k == ref) base = t;
          printf("%-26s %8zu %6d %12.1f %10.4f %7.2fx\n", k->name, c.n, stream, t, t / (double)c.n, base / t);
          fflush(stdout);
        }
      }
  }
  for (int i = 0; i < NROLES; i++) free(p[i]);
  return 0;
}

/* ---------------------------------------------------------------- main */

static int setup(void **state) {
  (void)state;
  for (int set = 0; set < 2; set++)
    for (int r = 0; r < NROLES; r++) arena_alloc(&arenas[set][r]);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (int set = 0; set < 2; set++)
    for (int r = 0; r < NROLES; r++) arena_free(&arenas[set][r]);
  return 0;
}

int main(int argc, char **argv) {
  s_list[0] = 1.0f;
  s_list[1] = 0.5f;
  s_list[2] = 1.0f / 0.9f;
  s_list[3] = 1.0f / (float)(1.0 - 1e-7);
  s_list[4] = 2.0f;
  s_list[5] = 1e30f;
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) return run_bench(argc > 2 ? argv[2] : NULL);
  g_seed = tu_seed();
  const char *it = getenv("DP_TEST_ITERS");
  g_iters = it && *it ? atoi(it) : 2000;
  if (g_iters < 0) g_iters = 0;
  g_filter = getenv("DP_TEST_KERNEL");
  if (g_filter && !*g_filter) g_filter = NULL;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kernel_list), cmocka_unit_test(test_kernels_for_isa), cmocka_unit_test(test_fwd),
      cmocka_unit_test(test_scale), cmocka_unit_test(test_bwd), cmocka_unit_test(test_mask),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
