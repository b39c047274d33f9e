/* The generic half of the kernel checks (harness.h): configuration, fenced
 * arenas, values, the crash handler, and the loop over a family's kernels. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS on glibc */
#include "harness.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

kt_config kt_cfg;

void kt_configure(void) {
  kt_cfg.seed = tu_seed();
  const char *it = getenv("DP_TEST_ITERS");
  kt_cfg.iters = it && *it ? atoi(it) : 2000;
  if (kt_cfg.iters < 0) kt_cfg.iters = 0;
  kt_cfg.filter = getenv("DP_TEST_KERNEL");
  if (kt_cfg.filter && !*kt_cfg.filter) kt_cfg.filter = NULL;
}

const kt_family *kt_family_of(dp_family family) {
#define KT_FAMILY_PTR_(ctx, fam, combos, params) &kt_family_##fam,
  static const kt_family *const all[DP_FAMILY_COUNT] = {DP_FAMILY_LIST(KT_FAMILY_PTR_, )};
#undef KT_FAMILY_PTR_
  return (unsigned)family < DP_FAMILY_COUNT ? all[family] : NULL;
}

/* ---------------------------------------------------------------- arenas */

/* Usable bytes between the two fences; page_size rounds it up. */
#define ARENA_BYTES (KT_MAX_N * 4 + 2 * TU_GUARD_BYTES + 128)

typedef struct arena {
  unsigned char *map;
  size_t map_len;
  unsigned char *lo; /* first usable byte, page aligned */
  size_t len;
} arena;

static arena arenas[2][KT_NROLES]; /* [0]: kernel under test, [1]: reference */
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

void kt_arenas_alloc(void) {
  for (int set = 0; set < 2; set++)
    for (int r = 0; r < KT_NROLES; r++) arena_alloc(&arenas[set][r]);
}

void kt_arenas_free(void) {
  for (int set = 0; set < 2; set++)
    for (int r = 0; r < KT_NROLES; r++) arena_free(&arenas[set][r]);
}

kt_placed kt_place(int set, int slot, int place, size_t off, size_t bytes) {
  const arena *a = &arenas[set][slot];
  kt_placed p;
  p.bytes = bytes;
  if (place == KT_PLACE_FENCE_HEAD) {
    p.data = a->lo + off;
    p.gl = off;
    p.gr = TU_GUARD_BYTES;
  } else if (place == KT_PLACE_FENCE_TAIL) {
    p.data = a->lo + a->len - bytes;
    p.gl = TU_GUARD_BYTES;
    p.gr = 0;
  } else {
    p.data = a->lo + TU_GUARD_BYTES + off;
    p.gl = p.gr = TU_GUARD_BYTES;
  }
  memset(p.data - p.gl, TU_GUARD_BYTE, p.gl + bytes + p.gr);
  return p;
}

const char *kt_place_name(int place) {
  static const char *const names[KT_PLACE_COUNT] = {"guarded", "fence-head", "fence-tail"};
  return names[place];
}

/* ---------------------------------------------------------------- values */

const char *const kt_store_stream[2] = {"store", "stream"};

const float kt_s_list[KT_N_S] = {1.0f, 0.5f, 1.0f / 0.9f, 1.0f / (float)(1.0 - 1e-7), 2.0f, 1e30f};

#define KT_COMBO_DTYPES_(ctx, name, id, xt, ft) [id] = {xt, ft},
static const int combo_dtypes[DP_COMBO_COUNT][2] = {DP_COMBOS_ALL(KT_COMBO_DTYPES_, )};
#undef KT_COMBO_DTYPES_

int kt_role_dtype(const kt_data *d, dp_combo c, int role) {
  return (d->f32_roles >> role) & 1u ? DP_F32 : combo_dtypes[c][(d->f_roles >> role) & 1u];
}

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

void kt_fill(tu_rng *r, unsigned char *p, size_t n, int dtype, int specials) {
  for (size_t i = 0; i < n; i++) {
    const uint64_t u = tu_next(r);
    const int sp = specials == 2 ? (u & 3) == 0 : specials == 1 ? (u & 63) == 0 : 0;
    const size_t which = (size_t)(u >> 8) % N_SPECIALS;
    if (dtype == DP_F32) {
      const uint32_t b = sp ? f32_specials[which] : tu_f32_bits(random_float(r));
      memcpy(p + 4 * i, &b, 4);
    } else {
      uint16_t h;
      if (dtype == DP_BF16) {
        const uint32_t b = tu_f32_bits(random_float(r));
        h = sp ? bf16_specials[which] : (uint16_t)(b >> 16);
      } else {
        const uint64_t w = tu_next(r);
        h = sp ? f16_specials[which] : (uint16_t)((w & 0x83ffu) | ((5 + (w >> 16) % 21) << 10));
      }
      memcpy(p + 2 * i, &h, 2);
    }
  }
}

void kt_format(char *buf, size_t len, const unsigned char *p, int dtype) {
  if (dtype == DP_F32) {
    uint32_t b;
    memcpy(&b, p, 4);
    snprintf(buf, len, "0x%08x (%.9g)", (unsigned)b, (double)tu_bits_f32(b));
  } else {
    uint16_t h;
    memcpy(&h, p, 2);
    snprintf(buf, len, "0x%04x (%.6g)", (unsigned)h, (double)tu_load_elem(p, dtype));
  }
}

/* ---------------------------------------------------------------- crash handler */

/* What was running, for the crash handler. */
static const kt_runner *volatile crash_runner;
static const dp_kernel_info *volatile crash_kernel;
static const void *volatile crash_case;

static void describe_case(char *buf, size_t len, const kt_runner *ru, const void *c) {
  if (ru->fam->data)
    kt_data_describe(buf, len, ru, c);
  else
    ru->fam->describe(buf, len, ru, c);
}

void kt_running(const kt_runner *ru, const dp_kernel_info *k, const void *c) {
  crash_runner = ru;
  crash_case = c;
  crash_kernel = k;
}

#if KT_FENCES
static struct sigaction prev_segv, prev_bus;

static void crash_handler(int sig) {
  char buf[512];
  const dp_kernel_info *k = crash_kernel;
  if (k && crash_case) {
    int w = snprintf(buf, sizeof buf, "\nFAIL %s crashed (signal %d, an access outside its buffers?): ", k->name, sig);
    describe_case(buf + w, sizeof buf - (size_t)w, crash_runner, crash_case);
    w = (int)strlen(buf);
    snprintf(buf + w, sizeof buf - (size_t)w, "\n  replay: DP_TEST_SEED=%llu DP_TEST_ITERS=%d DP_TEST_KERNEL=%s\n",
             (unsigned long long)kt_cfg.seed, kt_cfg.iters, k->name);
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

/* ---------------------------------------------------------------- running a family */

void kt_report(const kt_runner *ru, const void *c, const char *what) {
  char d[400];
  describe_case(d, sizeof d, ru, c);
  printf("FAIL %s vs %s, check #%zu (%s): %s\n  %s\n  replay: DP_TEST_SEED=%llu DP_TEST_ITERS=%d "
         "DP_TEST_KERNEL=%s\n",
         ru->k->name, ru->ref->name, ru->checks, ru->section, d, what, (unsigned long long)kt_cfg.seed, kt_cfg.iters,
         ru->k->name);
}

const dp_kernel_info *kt_find_kernel(dp_family family, dp_combo combo, dp_isa isa) {
  size_t n;
  const dp_kernel_info *list = dp_kernel_list(&n);
  for (size_t i = 0; i < n; i++)
    if (list[i].family == family && list[i].combo == combo && list[i].isa == isa) return &list[i];
  return NULL;
}

/* Per-family+combo stream, so each ISA of a kernel sees the cases the others see. */
static uint64_t kernel_seed(const dp_kernel_info *k) {
  uint64_t h = kt_cfg.seed ^ 0x6a09e667f3bcc909ull;
  for (const char *p = dp_family_name(k->family); *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
  return h ^ ((uint64_t)k->combo << 56);
}

int kt_check_family(const kt_family *fam) {
  size_t n, ran = 0, skipped = 0;
  int failures = 0;
  const dp_kernel_info *list = dp_kernel_list(&n);
  for (size_t i = 0; i < n; i++) {
    const dp_kernel_info *k = &list[i];
    const int vs_formula = k->isa == DP_ISA_SCALAR;
    if (k->family != fam->family || (vs_formula && k->combo != fam->formula->combo)) continue;
    if (kt_cfg.filter && !strstr(k->name, kt_cfg.filter)) continue;
    if (!dp_isa_supported(k->isa)) {
      printf("%s: skipped: %s not supported on this CPU\n", k->name, dp_isa_name(k->isa));
      skipped++;
      continue;
    }
    kt_runner ru;
    memset(&ru, 0, sizeof ru);
    ru.fam = fam;
    ru.k = k;
    ru.ref = vs_formula ? fam->formula : kt_find_kernel(k->family, k->combo, DP_ISA_SCALAR);
    if (!ru.ref) {
      printf("FAIL %s: no scalar kernel of the same family and combo to compare with\n", k->name);
      failures++;
      continue;
    }
    tu_rng_init(&ru.rng, kernel_seed(k));
    install_crash_handler();
    const int ok = fam->data ? kt_data_run(&ru) : fam->run(&ru);
    remove_crash_handler();
    printf("%s: %s_%s %zu checks %s%s\n", dp_isa_name(k->isa), dp_family_name(k->family), dp_combo_name(k->combo),
           ru.checks, ok ? "ok" : "FAILED", vs_formula ? " (against the formula)" : "");
    failures += !ok;
    ran += !vs_formula;
  }
  if (!ran)
    printf("%s: no SIMD kernel ran (%s): nothing to compare\n", dp_family_name(fam->family),
           skipped ? "none supported on this CPU" : "scalar-only build or filtered out");
  fflush(stdout);
  return failures;
}
