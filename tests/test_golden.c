/*
 * Golden outputs: fixed inputs through every operation and dtype, hashed, and
 * compared with tests/vectors/droppath_outputs.txt.  The same file is checked
 * on x86 (every ISA) and on AArch64 under qemu (NEON and scalar), which is
 * what proves "same bits on every architecture" rather than only "every ISA
 * agrees with this machine's scalar code".
 *
 * Regenerate (only when the specified results change on purpose):
 *   DP_GOLDEN_WRITE=tests/vectors/droppath_outputs.txt build/tests/test_golden
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "droppath/droppath.h"
#include "test_util.h"

enum { OP_FWD, OP_INFER, OP_DROP_PATH, OP_BWD, OP_FWD_LS, OP_INFER_LS, OP_BWD_LS };

typedef struct golden_case {
  const char *name;
  int op;
  int x_dtype, f_dtype;
  size_t B, T, D;
  int seq_first;
  double p;
  int mode, scale_by_keep;
  uint32_t bwd_flags;
  int clean; /* inputs without specials: grad_gamma sums over many rows that one NaN would make all NaN */
} golden_case;

static const golden_case cases[] = {
    {"fwd_f32_row", OP_FWD, DP_F32, DP_F32, 13, 1, 77, 0, 0.3, DP_MODE_ROW, 1, 0, 0},
    {"fwd_f32_noscale", OP_FWD, DP_F32, DP_F32, 9, 1, 50, 0, 0.5, DP_MODE_ROW, 0, 0, 0},
    {"fwd_f32_batch", OP_FWD, DP_F32, DP_F32, 6, 1, 33, 0, 0.4, DP_MODE_BATCH, 1, 0, 0},
    {"fwd_f32_seqfirst", OP_FWD, DP_F32, DP_F32, 5, 7, 19, 1, 0.25, DP_MODE_ROW, 1, 0, 0},
    {"fwd_bf16", OP_FWD, DP_BF16, DP_BF16, 11, 1, 70, 0, 0.2, DP_MODE_ROW, 1, 0, 0},
    {"fwd_f16", OP_FWD, DP_F16, DP_F16, 11, 1, 70, 0, 0.2, DP_MODE_ROW, 1, 0, 0},
    {"fwd_f32_bf16", OP_FWD, DP_F32, DP_BF16, 10, 2, 41, 0, 0.1, DP_MODE_ROW, 1, 0, 0},
    {"fwd_f32_f16", OP_FWD, DP_F32, DP_F16, 10, 2, 41, 0, 0.1, DP_MODE_ROW, 1, 0, 0},
    {"infer_f32_paper", OP_INFER, DP_F32, DP_F32, 4, 1, 65, 0, 0.2, DP_MODE_ROW, 0, 0, 0},
    {"infer_bf16", OP_INFER, DP_BF16, DP_BF16, 4, 1, 65, 0, 0.2, DP_MODE_ROW, 0, 0, 0},
    {"drop_path_f32", OP_DROP_PATH, DP_F32, DP_F32, 12, 1, 37, 0, 0.5, DP_MODE_ROW, 1, 0, 0},
    {"drop_path_f16", OP_DROP_PATH, DP_F16, DP_F16, 12, 1, 37, 0, 0.5, DP_MODE_ROW, 1, 0, 0},
    {"bwd_f32_accx", OP_BWD, DP_F32, DP_F32, 9, 3, 29, 0, 0.3, DP_MODE_ROW, 1, DP_BWD_ACCUMULATE_GRAD_X, 0},
    {"bwd_f32_accfx", OP_BWD, DP_F32, DP_F32, 9, 1, 64, 0, 0.3, DP_MODE_ROW, 1,
     DP_BWD_ACCUMULATE_GRAD_F | DP_BWD_ACCUMULATE_GRAD_X, 0},
    {"bwd_f32_bf16", OP_BWD, DP_F32, DP_BF16, 8, 1, 45, 0, 0.6, DP_MODE_ROW, 1, DP_BWD_ACCUMULATE_GRAD_X, 0},
    {"bwd_f16", OP_BWD, DP_F16, DP_F16, 8, 1, 45, 0, 0.6, DP_MODE_ROW, 1, DP_BWD_ACCUMULATE_GRAD_F, 0},
    /* LayerScale (gamma: D f32 values with specials unless clean). The 24 x 40 x 96 backward cases have
     * 960 rows of ConvNeXt's width: two grad_gamma groups of 683 and 277 rows. */
    {"fwd_ls_f32", OP_FWD_LS, DP_F32, DP_F32, 13, 3, 96, 0, 0.3, DP_MODE_ROW, 1, 0, 0},
    {"fwd_ls_bf16", OP_FWD_LS, DP_BF16, DP_BF16, 11, 2, 70, 0, 0.2, DP_MODE_ROW, 1, 0, 0},
    {"fwd_ls_f16", OP_FWD_LS, DP_F16, DP_F16, 11, 2, 70, 0, 0.2, DP_MODE_ROW, 1, 0, 0},
    {"fwd_ls_f32_bf16", OP_FWD_LS, DP_F32, DP_BF16, 10, 2, 41, 0, 0.1, DP_MODE_EXACT_K, 1, 0, 0},
    {"fwd_ls_f32_f16_seqfirst", OP_FWD_LS, DP_F32, DP_F16, 5, 7, 19, 1, 0.25, DP_MODE_ROW, 1, 0, 0},
    {"infer_ls_bf16_paper", OP_INFER_LS, DP_BF16, DP_BF16, 4, 1, 65, 0, 0.2, DP_MODE_ROW, 0, 0, 0},
    {"infer_ls_f32_f16", OP_INFER_LS, DP_F32, DP_F16, 4, 3, 65, 0, 0.2, DP_MODE_ROW, 1, 0, 0},
    {"bwd_ls_f32_accxg", OP_BWD_LS, DP_F32, DP_F32, 24, 40, 96, 0, 0.3, DP_MODE_ROW, 1,
     DP_BWD_ACCUMULATE_GRAD_X | DP_BWD_ACCUMULATE_GRAD_GAMMA, 1},
    {"bwd_ls_bf16", OP_BWD_LS, DP_BF16, DP_BF16, 24, 40, 96, 0, 0.3, DP_MODE_ROW, 1, 0, 1},
    {"bwd_ls_f16_accf", OP_BWD_LS, DP_F16, DP_F16, 24, 40, 96, 0, 0.3, DP_MODE_ROW, 1, DP_BWD_ACCUMULATE_GRAD_F, 1},
    {"bwd_ls_f32_bf16_accx", OP_BWD_LS, DP_F32, DP_BF16, 24, 40, 96, 0, 0.3, DP_MODE_ROW, 1,
     DP_BWD_ACCUMULATE_GRAD_X, 1},
    {"bwd_ls_f32_f16_seqfirst", OP_BWD_LS, DP_F32, DP_F16, 6, 5, 45, 1, 0.5, DP_MODE_ROW, 1,
     DP_BWD_ACCUMULATE_GRAD_GAMMA, 1},
    {"bwd_ls_f16_specials", OP_BWD_LS, DP_F16, DP_F16, 8, 1, 45, 0, 0.6, DP_MODE_ROW, 1, DP_BWD_ACCUMULATE_GRAD_F, 0},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

/* Deterministic contents: f32 values with specials; halves as raw bit
 * patterns (every class: normals, subnormals, inf, NaN payloads).  clean:
 * no specials, halves always of moderate exponents. */
static void fill_as(tu_rng *r, unsigned char *p, size_t n, int dtype, int clean) {
  if (dtype == DP_F32) {
    float *f = (float *)malloc(n * sizeof(float));
    assert_non_null(f);
    tu_fill_floats(r, f, n, !clean);
    memcpy(p, f, n * sizeof(float));
    free(f);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint16_t v = (uint16_t)tu_next(r);
    /* Mostly moderate exponents so sums are interesting, some raw bits. */
    if ((tu_next(r) & 3) || clean) v = (uint16_t)((v & 0x83ffu) | (dtype == DP_BF16 ? 0x3c00u : 0x3800u));
    memcpy(p + 2 * i, &v, 2);
  }
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
  return h;
}

static dp_tensor view(void *p, int dtype, const golden_case *c) {
  const dp_shape sh = {c->B, c->T, c->D};
  return c->seq_first ? dp_tensor_seq_first(p, (dp_dtype)dtype, sh) : dp_tensor_dense(p, (dp_dtype)dtype, sh);
}

/* Runs one case on the active ISA and returns the hash of every output. */
static uint64_t run_case(const golden_case *c) {
  const size_t n = c->B * c->T * c->D;
  const dp_shape sh = {c->B, c->T, c->D};
  tu_rng r;
  tu_rng_init(&r, 0x601D0000u + (uint64_t)(c - cases));
  unsigned char *a = (unsigned char *)malloc(n * 4), *b = (unsigned char *)malloc(n * 4);
  unsigned char *o1 = (unsigned char *)malloc(n * 4), *o2 = (unsigned char *)malloc(n * 4);
  float *scales = (float *)calloc(c->B, sizeof(float));
  assert_true(a && b && o1 && o2 && scales);
  fill_as(&r, a, n, c->x_dtype, c->clean);
  fill_as(&r, b, n, c->f_dtype, c->clean);
  fill_as(&r, o1, n, c->f_dtype, c->clean); /* initial grad_f for accumulate */
  fill_as(&r, o2, n, c->x_dtype, c->clean); /* initial grad_x for accumulate */
  /* LayerScale's gamma and the initial grad_gamma (drawn after the tensors,
   * so the other cases' inputs stay as they were). */
  float *gamma = (float *)malloc(c->D * sizeof(float)), *grad_gamma = (float *)malloc(c->D * sizeof(float));
  assert_true(gamma && grad_gamma);
  if (c->op >= OP_FWD_LS) {
    tu_fill_floats(&r, gamma, c->D, !c->clean);
    tu_fill_floats(&r, grad_gamma, c->D, 0);
  }

  dp_params p;
  dp_params_init(&p);
  p.drop_prob = c->p;
  p.seed = 0x0123456789abcdefull;
  p.offset = 42;
  p.sample_base = 1000;
  p.mode = c->mode;
  p.scale_by_keep = c->scale_by_keep;

  uint64_t h = 0xcbf29ce484222325ull;
  dp_status st = DP_OK;
  switch (c->op) {
    case OP_FWD:
      st = dp_forward(&p, sh, view(o2, c->x_dtype, c), view(a, c->x_dtype, c), view(b, c->f_dtype, c), scales);
      h = fnv1a(fnv1a(h, o2, n * tu_dtype_size(c->x_dtype)), scales, c->B * sizeof(float));
      break;
    case OP_INFER:
      st = dp_inference_add(&p, sh, view(o2, c->x_dtype, c), view(a, c->x_dtype, c), view(b, c->f_dtype, c));
      h = fnv1a(h, o2, n * tu_dtype_size(c->x_dtype));
      break;
    case OP_DROP_PATH:
      st = dp_drop_path(&p, sh, view(o2, c->x_dtype, c), view(a, c->x_dtype, c), scales);
      h = fnv1a(fnv1a(h, o2, n * tu_dtype_size(c->x_dtype)), scales, c->B * sizeof(float));
      break;
    case OP_BWD:
      st = dp_backward(&p, sh, view(o1, c->f_dtype, c), view(o2, c->x_dtype, c), view(a, c->x_dtype, c), NULL,
                       c->bwd_flags);
      h = fnv1a(fnv1a(h, o1, n * tu_dtype_size(c->f_dtype)), o2, n * tu_dtype_size(c->x_dtype));
      break;
    case OP_FWD_LS:
      st = dp_forward_ls(&p, sh, view(o2, c->x_dtype, c), view(a, c->x_dtype, c), view(b, c->f_dtype, c), gamma,
                         scales);
      h = fnv1a(fnv1a(h, o2, n * tu_dtype_size(c->x_dtype)), scales, c->B * sizeof(float));
      break;
    case OP_INFER_LS:
      st = dp_inference_add_ls(&p, sh, view(o2, c->x_dtype, c), view(a, c->x_dtype, c), view(b, c->f_dtype, c),
                               gamma);
      h = fnv1a(h, o2, n * tu_dtype_size(c->x_dtype));
      break;
    case OP_BWD_LS:
      st = dp_backward_ls(&p, sh, view(o1, c->f_dtype, c), view(o2, c->x_dtype, c), view(a, c->x_dtype, c),
                          view(b, c->f_dtype, c), gamma, grad_gamma, NULL, c->bwd_flags);
      h = fnv1a(fnv1a(h, o1, n * tu_dtype_size(c->f_dtype)), o2, n * tu_dtype_size(c->x_dtype));
      h = fnv1a(h, grad_gamma, c->D * sizeof(float));
      break;
  }
  assert_int_equal(st, DP_OK);
  free(gamma);
  free(grad_gamma);
  free(a);
  free(b);
  free(o1);
  free(o2);
  free(scales);
  return h;
}

static int read_golden(const char *path, uint64_t hashes[N_CASES]) {
  FILE *fp = fopen(path, "r");
  if (!fp) return 0;
  char line[256], name[128];
  unsigned long long v;
  int found = 0;
  while (fgets(line, sizeof line, fp)) {
    if (line[0] == '#' || sscanf(line, "%127s %llx", name, &v) != 2) continue;
    for (int i = 0; i < N_CASES; i++)
      if (strcmp(name, cases[i].name) == 0) {
        hashes[i] = v;
        found++;
      }
  }
  fclose(fp);
  return found;
}

static void test_golden_outputs(void **state) {
  (void)state;
  const char *write_path = getenv("DP_GOLDEN_WRITE");
  if (write_path) {
    FILE *fp = fopen(write_path, "w");
    assert_non_null(fp);
    fprintf(fp, "# FNV-1a 64 of every output of tests/test_golden.c's fixed cases (name hash).\n"
                "# Same on every ISA and architecture; regenerate with DP_GOLDEN_WRITE=<this file>.\n");
    for (int i = 0; i < N_CASES; i++) fprintf(fp, "%s %016llx\n", cases[i].name, (unsigned long long)run_case(&cases[i]));
    fclose(fp);
    return;
  }
  uint64_t want[N_CASES];
  assert_int_equal(read_golden(DP_TEST_DATA_DIR "/droppath_outputs.txt", want), N_CASES);
  int failures = 0, isas = 0;
  for (int isa = 0; isa < DP_ISA_COUNT; isa++) {
    if (!dp_isa_supported((dp_isa)isa)) continue;
    assert_int_equal(dp_set_max_isa((dp_isa)isa), DP_OK);
    if (dp_active_isa() != (dp_isa)isa) continue; /* DROPPATH_ISA narrows below it */
    isas++;
    for (int i = 0; i < N_CASES; i++) {
      const uint64_t got = run_case(&cases[i]);
      if (got != want[i]) {
        fprintf(stderr, "golden mismatch: %s on %s: got %016llx want %016llx\n", cases[i].name,
                dp_isa_name((dp_isa)isa), (unsigned long long)got, (unsigned long long)want[i]);
        failures++;
      }
    }
  }
  fprintf(stderr, "[ golden   ] %d cases x %d ISAs checked\n", N_CASES, isas);
  assert_true(isas > 0);
  /* Leave the widest ISA active again for later tests in this process. */
  for (int isa = DP_ISA_COUNT - 1; isa >= 0; isa--)
    if (dp_isa_supported((dp_isa)isa) && dp_set_max_isa((dp_isa)isa) == DP_OK) break;
  assert_int_equal(failures, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden_outputs)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
