/* The cases and sweeps the data families (fwd, scale, bwd) share: every size
 * and variant, buffers against the fences, each pointer at each misalignment,
 * streaming sizes, dense special values, random cases. A family's check file
 * says what its roles and variants are (kt_data); everything here is generic. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

/* Exhaustive sizes reach past two unrolled bodies of four 64-byte vectors and
 * a tail (160 f32 elements); 16-bit types fit twice as many per vector. */
#define SMALL_MAX_BYTES 640

static int role_exists(const kt_data *d, int role) { return role < KT_NROLES && d->roles[role] != NULL; }

static int role_present(const kt_data *d, const kt_case *c, int role) {
  if (!role_exists(d, role)) return 0;
  if (role == 0 && c->v.alias) return 0;
  return !((c->v.absent >> role) & 1u);
}

static size_t role_size(const kt_runner *ru, int role) {
  return tu_dtype_size(kt_role_dtype(ru->fam->data, ru->k->combo, role));
}

/* Elements of role r in case c: a row for channel roles, else n. */
static size_t role_elems(const kt_runner *ru, const kt_case *c, int role) {
  return (ru->fam->data->chan_roles >> role) & 1u ? c->d : c->n;
}

static size_t effective_off(const kt_runner *ru, const kt_case *c, int role) {
  const size_t bytes = role_elems(ru, c, role) * role_size(ru, role);
  return c->place == KT_PLACE_FENCE_TAIL ? (64 - bytes % 64) % 64 : c->off[role];
}

void kt_data_describe(char *buf, size_t len, const kt_runner *ru, const void *c_) {
  const kt_case *c = (const kt_case *)c_;
  const kt_data *d = ru->fam->data;
  int w = snprintf(buf, len, "n=%zu s=%.9g (0x%08x) ", c->n, (double)c->s, (unsigned)tu_f32_bits(c->s));
  if (d->chan_roles) w += snprintf(buf + w, len - (size_t)w, "d=%zu ", c->d);
  w += d->describe(buf + w, len - (size_t)w, &c->v);
  if (c->v.alias) w += snprintf(buf + w, len - (size_t)w, " in-place(%s==%s)", d->roles[0], d->roles[c->v.alias]);
  w += snprintf(buf + w, len - (size_t)w, " %s misalign(", kt_place_name(c->place));
  for (int r = 0; role_exists(d, r); r++) {
    char o[24];
    if (role_present(d, c, r))
      snprintf(o, sizeof o, "%zu", effective_off(ru, c, r));
    else
      snprintf(o, sizeof o, "%s", r == 0 && c->v.alias ? "alias" : "NULL");
    w += snprintf(buf + w, len - (size_t)w, "%s%s=%s", r ? " " : "", d->roles[r], o);
  }
  snprintf(buf + w, len - (size_t)w, ") specials=%d", c->specials);
}

/* Position of the first byte in [p, p+n) that is not the guard pattern, or -1. */
static long first_dirty(const unsigned char *p, size_t n) {
  const size_t i = tu_first_dirty(p, n);
  return i < n ? (long)i : -1;
}

/* Guard bytes first (a write outside the buffer), then the data. */
static int compare_role(const kt_runner *ru, const kt_case *c, int role, const kt_placed *t, const kt_placed *r) {
  const kt_data *d = ru->fam->data;
  const int et = kt_role_dtype(d, ru->k->combo, role);
  char name[32];
  snprintf(name, sizeof name, "%s%s%s", d->roles[role], c->v.alias && c->v.alias == role ? "=" : "",
           c->v.alias && c->v.alias == role ? d->roles[0] : "");
  const size_t es = tu_dtype_size(et);
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
                 t->bytes + (size_t)after, t->bytes / es + (size_t)after / es, t->bytes / es);
      kt_report(ru, c, msg);
      return 0;
    }
  }
  if (memcmp(t->data, r->data, t->bytes) == 0) return 1;
  size_t i = 0;
  while (memcmp(t->data + i * es, r->data + i * es, es) == 0) i++;
  char got[48], want[48];
  kt_format(got, sizeof got, t->data + i * es, et);
  kt_format(want, sizeof want, r->data + i * es, et);
  snprintf(msg, sizeof msg, "%s[%zu] differs: got %s, reference %s", name, i, got, want);
  kt_report(ru, c, msg);
  return 0;
}

static int run_case(kt_runner *ru, const kt_case *c) {
  const kt_data *d = ru->fam->data;
  const dp_combo combo = ru->k->combo;
  const unsigned reads = d->reads(&c->v);
  kt_placed b[2][KT_NROLES];
  unsigned char *p[2][KT_NROLES];
  ru->checks++;
  for (int role = 0; role < KT_NROLES; role++) {
    if (!role_present(d, c, role)) continue;
    const int et = kt_role_dtype(d, combo, role);
    const size_t elems = role_elems(ru, c, role), bytes = elems * tu_dtype_size(et);
    for (int set = 0; set < 2; set++) b[set][role] = kt_place(set, role, c->place, c->off[role], bytes);
    if ((reads >> role) & 1u) {
      kt_fill(&ru->rng, b[0][role].data, elems, et, c->specials);
      memcpy(b[1][role].data, b[0][role].data, bytes);
    }
  }
  for (int set = 0; set < 2; set++)
    for (int role = 0; role < KT_NROLES; role++) p[set][role] = role_present(d, c, role) ? b[set][role].data : NULL;
  if (c->v.alias) {
    p[0][0] = p[0][c->v.alias];
    p[1][0] = p[1][c->v.alias];
  }
  kt_running(ru, ru->ref, c);
  d->call(ru->ref, p[1], c);
  kt_running(ru, ru->k, c);
  d->call(ru->k, p[0], c);
  kt_running(NULL, NULL, NULL);
  /* Inputs are compared too: a kernel must not write what it only reads. */
  for (int role = 0; role < KT_NROLES; role++)
    if (role_present(d, c, role) && !compare_role(ru, c, role, &b[0][role], &b[1][role])) return 0;
  return 1;
}

/* ---------------------------------------------------------------- case generation */

static float random_s(tu_rng *r) {
  if (tu_next(r) & 3) return kt_s_list[tu_range(r, 0, KT_N_S - 1)];
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

static void base_case(kt_runner *ru, kt_case *c, const kt_variant *v, size_t n) {
  memset(c, 0, sizeof *c);
  c->v = *v;
  c->n = n;
  c->place = KT_PLACE_GUARDED;
  for (int r = 0; r < KT_NROLES; r++) c->off[r] = random_off(&ru->rng, role_size(ru, r));
  c->s = random_s(&ru->rng);
  c->specials = 1;
  /* Families with channel roles: n is the row length, the case 1 to 3 rows
   * of it (the arenas hold KT_MAX_N elements). Other families draw nothing
   * more, so their seeds replay as before. */
  if (ru->fam->data->chan_roles) {
    c->d = n;
    const size_t most = n == 0 ? 1 : n > KT_MAX_N / 3 ? KT_MAX_N / n : 3;
    c->n = n * tu_range(&ru->rng, 1, most);
  }
}

#define RUN(c)                          \
  do {                                  \
    if (!run_case(ru, &(c))) return 0; \
  } while (0)

/* The argument lists below evaluate several draws in an unspecified order;
 * they stay as they are so a DP_TEST_SEED keeps replaying the same cases. */
int kt_data_run(kt_runner *ru) {
  const kt_data *d = ru->fam->data;
  kt_variant vs[KT_MAX_VARIANTS];
  const size_t nv = d->variants(ru->k->combo, vs, KT_MAX_VARIANTS);
  if (nv > KT_MAX_VARIANTS) {
    printf("FAIL %s: %zu variants, the harness holds %d (KT_MAX_VARIANTS)\n", ru->k->name, nv, KT_MAX_VARIANTS);
    return 0;
  }
  const size_t small_max = SMALL_MAX_BYTES / dp_combo_f_size(ru->k->combo);
  kt_case c;

  ru->section = "every size, every variant";
  for (size_t n = 0; n <= small_max; n++)
    for (size_t v = 0; v < nv; v++) {
      base_case(ru, &c, &vs[v], n);
      RUN(c);
    }

  ru->section = "buffers against a PROT_NONE page";
  for (size_t n = 0; n <= small_max; n++)
    for (int place = KT_PLACE_FENCE_HEAD; place <= KT_PLACE_FENCE_TAIL; place++)
      for (size_t v = 0; v < nv; v++) {
        base_case(ru, &c, &vs[v], n);
        c.place = place;
        memset(c.off, 0, sizeof c.off);
        RUN(c);
      }

  ru->section = "each pointer at each misalignment";
  for (int role = 0; role_exists(d, role); role++) {
    const size_t es = role_size(ru, role);
    for (size_t off = 0; off < 64; off += es) {
      for (size_t v = 0; v < nv; v++) {
        base_case(ru, &c, &vs[v], small_n(&ru->rng));
        c.off[role] = off;
        RUN(c);
      }
      /* Streaming decisions depend on the output's alignment. */
      base_case(ru, &c, &vs[tu_range(&ru->rng, 0, nv - 1)], tu_range(&ru->rng, 256, 2100));
      c.v.stream = 1;
      c.off[role] = off;
      RUN(c);
    }
  }

  /* Exhaustive for f32 (16^3); 16-bit types (32^3) get as many random picks. */
  ru->section = "all pointers, misalignment combinations";
  {
    size_t es[KT_NROLES], nr = 0;
    for (; role_exists(d, (int)nr); nr++) es[nr] = role_size(ru, (int)nr);
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
        if (!vs[v].stream) continue;
        for (int aligned = 0; aligned < 2; aligned++) {
          base_case(ru, &c, &vs[v], sizes[i]);
          if (aligned) memset(c.off, 0, sizeof c.off);
          RUN(c);
        }
      }
  }

  ru->section = "each s, dense NaN/inf/-0/subnormal inputs";
  for (size_t si = 0; si < KT_N_S + 2; si++)
    for (size_t v = 0; v < nv; v++) {
      base_case(ru, &c, &vs[v], small_n(&ru->rng));
      if (si < KT_N_S) c.s = kt_s_list[si];
      c.specials = 2;
      RUN(c);
    }

  ru->section = "random";
  for (int it = 0; it < kt_cfg.iters; it++) {
    base_case(ru, &c, &vs[tu_range(&ru->rng, 0, nv - 1)], random_n(&ru->rng));
    c.place = (int)tu_range(&ru->rng, 0, KT_PLACE_COUNT - 1);
    c.specials = (int)tu_range(&ru->rng, 0, 2);
    RUN(c);
  }
  return 1;
}
