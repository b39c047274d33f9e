/*
 * A pre-norm transformer MLP block trained with stochastic depth, dense and with sample
 * compaction (the branch run on the kept samples only), checked against each other:
 *
 *   y = x + drop_path(fc2(GELU(fc1(LayerNorm(x)))))      fc1: D -> 4D, fc2: 4D -> D, GELU tanh form
 *
 * Usage: example_mlp_block [B T D [threads]]      (default 32 197 384, ViT-S; threads 1)
 *
 * Checks, each printed, any failure exits 1:
 *   1. GELU (tanh form, own exp) and its derivative against libm in double.
 *   2. The hand-written backward against central differences of the forward (directional
 *      derivatives, one per parameter tensor and for x), dense path with some samples dropped.
 *   3. Dense vs compacted, for row, batch and exact-k masks at several drop rates: y, grad_x and
 *      the bias and LayerNorm gradients bit for bit; the two weight gradients (GEMMs summing over
 *      the rows, in OpenBLAS's order, which depends on how many rows there are) within the
 *      worst-case bound for two summation orders of the same products (see check_gemm_grad).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <droppath/droppath.h>

#include "mlp_block/block.h"
#include "mlp_block/gelu.h"
#include "mlp_block/step.h"

static float uniform(uint32_t *state) { /* [-1, 1) */
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) * 0x1p-23f - 1.0f;
}

static int failures;

static void verdict(int ok, const char *fmt_line) {
  printf("  %-5s %s\n", ok ? "ok" : "FAIL", fmt_line);
  failures += !ok;
}

/* ---------------------------------------------------------------- 1. GELU */

static void check_gelu(void) {
  double err_g = 0, err_d = 0;
  for (int i = -240000; i <= 240000; i++) {
    const float a = (float)i * 5e-5f; /* [-12, 12] */
    const double ad = a, c = sqrt(2.0 / 3.14159265358979323846);
    const double t = tanh(c * (ad + 0.044715 * ad * ad * ad));
    const double g = 0.5 * ad * (1 + t);
    const double d = 0.5 * (1 + t) + 0.5 * ad * (1 - t * t) * c * (1 + 3 * 0.044715 * ad * ad);
    const double eg = fabs(mlp_gelu(a) - g) / fmax(1.0, fabs(ad)), ed = fabs(mlp_gelu_grad(a) - d);
    err_g = fmax(err_g, eg);
    err_d = fmax(err_d, ed);
  }
  /* A few float roundings of values up to |a|: 1e-6 relative to max(1, |a|) is ~8 ulp. */
  char line[160];
  snprintf(line, sizeof line, "GELU tanh form vs libm, a in [-12, 12]: max error %.2e (value, / max(1,|a|)), "
           "%.2e (derivative); limit 1e-6", err_g, err_d);
  verdict(err_g <= 1e-6 && err_d <= 1e-6, line);
}

/* ---------------------------------------------------------------- 2. gradients vs differences */

typedef struct problem {
  dp_shape shape;
  size_t n;            /* B*T*D */
  mlp_weights w;
  float *x, *grad_y;   /* input, upstream gradient */
} problem;

/* L = sum(grad_y * y), so dL/dy = grad_y; in double. */
static double loss(block_step *s, problem *pb, const dp_params *p, float *y) {
  if (block_forward_dense(s, p, pb->x, y) != DP_OK) abort();
  double l = 0;
  for (size_t i = 0; i < pb->n; i++) l += (double)pb->grad_y[i] * y[i];
  return l;
}

/*
 * Directional derivative of L along a random direction v over one tensor (theta), by central
 * differences, against the backward's gradient g: sum g*(theta+ - theta-) with theta+- = theta +-
 * h*v rounded to float (the perturbation actually applied, taken exactly in double).  The
 * difference quotient's own error is O(h^2) (truncation) plus the float forward's rounding of L
 * (about 1e-7 relative per output, ~1e-4 absolute over a ViT-S batch) over h: with h at 1% of the
 * tensor's rms (at least 3e-3) both stay well below 1% of the directional derivative,
 * and a wrong term in the backward (a missing factor, a transposed GEMM) moves it by far more.
 */
static void check_direction(block_step *s, problem *pb, const dp_params *p, float *theta, const float *g,
                            size_t count, const char *name, float *y, uint32_t seed) {
  float *saved = malloc(count * sizeof *saved), *plus = malloc(count * sizeof *plus);
  float *minus = malloc(count * sizeof *minus);
  if (!saved || !plus || !minus) abort();
  double rms = 0;
  for (size_t i = 0; i < count; i++) rms += (double)theta[i] * theta[i];
  rms = sqrt(rms / (double)count);
  const float h = (float)(1e-2 * fmax(rms, 0.3));
  memcpy(saved, theta, count * sizeof *theta);
  double lin = 0, mag = 0;
  for (size_t i = 0; i < count; i++) {
    const float v = uniform(&seed);
    plus[i] = saved[i] + h * v;
    minus[i] = saved[i] - h * v;
    const double step = (double)plus[i] - (double)minus[i];
    lin += (double)g[i] * step;
    mag += fabs((double)g[i] * step);
  }
  memcpy(theta, plus, count * sizeof *theta);
  const double lp = loss(s, pb, p, y);
  memcpy(theta, minus, count * sizeof *theta);
  const double lm = loss(s, pb, p, y);
  memcpy(theta, saved, count * sizeof *theta);
  const double fd = lp - lm, rel = fabs(fd - lin) / fmax(fabs(lin), 1e-3 * mag);
  char line[200];
  snprintf(line, sizeof line, "d/d %-10s: differences %+.6e, backward %+.6e, relative error %.1e (limit 1e-2)",
           name, fd, lin, rel);
  verdict(rel <= 1e-2, line);
  free(saved);
  free(plus);
  free(minus);
}

static void check_gradients(problem *pb, int threads) {
  block_step s;
  float *y = mlp_alloc_floats(pb->n), *gx = mlp_alloc_floats(pb->n);
  if (!y || !gx || block_step_init(&s, pb->shape, &pb->w, threads) != 0) abort();
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = 0.25;
  p.seed = 7;
  p.offset = 3;
  size_t kept = 0;
  if (dp_mask(&p, pb->shape.batch, NULL, NULL, &kept, NULL) != DP_OK) abort();
  printf("\n2. backward vs central differences (dense path, row mode p = 0.25: %zu of %zu samples kept)\n", kept,
         pb->shape.batch);
  if (block_forward_dense(&s, &p, pb->x, y) != DP_OK || block_backward_dense(&s, &p, pb->grad_y, gx) != DP_OK) abort();
  mlp_weights *w = &pb->w; /* perturbed in place, restored */
  for (int t = 0; t < MLP_NTENSORS; t++) {
    size_t count;
    float *theta = mlp_weights_tensor(w, t, &count), *g = mlp_weights_tensor(&s.grad, t, &count);
    check_direction(&s, pb, &p, theta, g, count, mlp_weights_name(t), y, 100u + (uint32_t)t);
  }
  check_direction(&s, pb, &p, pb->x, gx, pb->n, "x", y, 99u);
  block_step_free(&s);
  free(y);
  free(gx);
}

/* ---------------------------------------------------------------- 3. dense vs compacted */

/* Elements whose bits differ, and the largest difference. */
static size_t bit_mismatches(const float *a, const float *b, size_t n, double *max_diff) {
  size_t bad = 0;
  *max_diff = 0;
  for (size_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      bad++;
      *max_diff = fmax(*max_diff, fabs((double)a[i] - b[i]));
    }
  return bad;
}

static float *abs_copy(const float *v, size_t n) {
  float *a = mlp_alloc_floats(n);
  if (!a) abort();
  for (size_t i = 0; i < n; i++) a[i] = fabsf(v[i]);
  return a;
}

/*
 * A weight gradient C = A^T B sums n = rows products per entry.  Any order of that sum is within
 * gamma_n*(|A|^T|B|) of the exact value, gamma_n = n*u/(1 - n*u), u = 2^-24 (Higham, Accuracy and
 * Stability of Numerical Algorithms, 2nd ed., section 3.1 and 3.5; fused multiply-adds only round
 * less), so the dense GEMM (B*T rows, the dropped ones zero) and the compacted one (k*T rows) differ
 * by at most 2*gamma_n*(|A|^T|B|).  |A|^T|B| is taken with sgemm too (nonnegative terms: its own
 * relative error is below gamma_n; the factor 1.01 covers it).  Returns the largest
 * |difference| / bound, <= 1 when the check holds; rel_out gets ||dense - compact|| / ||dense||
 * (Frobenius).  Entry by entry the relative difference can be large where the sum cancels to
 * nearly zero, which is why the bound is taken on |A|^T|B| and not on the entry.
 */
static double check_gemm_grad(const float *dense, const float *compact, const float *a, const float *b, size_t rows,
                              size_t m, size_t n, double *rel_out) {
  float *aa = abs_copy(a, rows * m), *ab = abs_copy(b, rows * n), *env = mlp_alloc_floats(m * n);
  if (!env) abort();
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n, (int)rows, 1.0f, aa, (int)m, ab, (int)n, 0.0f,
              env, (int)n);
  const double u = 0x1p-24, gamma = (double)rows * u / (1 - (double)rows * u);
  double worst = 0, diff2 = 0, norm2 = 0;
  for (size_t i = 0; i < m * n; i++) {
    const double d = fabs((double)dense[i] - compact[i]), bound = 1.01 * 2 * gamma * env[i];
    worst = fmax(worst, bound > 0 ? d / bound : d > 0 ? INFINITY : 0);
    diff2 += d * d;
    norm2 += (double)dense[i] * dense[i];
  }
  free(aa);
  free(ab);
  free(env);
  *rel_out = norm2 > 0 ? sqrt(diff2 / norm2) : sqrt(diff2);
  return worst;
}

typedef struct mask_case {
  const char *what;
  int mode;
  double p;
  uint64_t offset;
} mask_case;

static void compare_paths(const problem *pb, const mask_case *mc, block_step *dense, block_step *compact, float *bufs[4]) {
  float *y_d = bufs[0], *y_c = bufs[1], *gx_d = bufs[2], *gx_c = bufs[3];
  dp_params p;
  dp_params_init(&p);
  p.drop_prob = mc->p;
  p.mode = mc->mode;
  p.seed = 2024;
  p.offset = mc->offset;
  if (block_train_step(dense, 0, &p, pb->x, y_d, pb->grad_y, gx_d) != DP_OK ||
      block_train_step(compact, 1, &p, pb->x, y_c, pb->grad_y, gx_c) != DP_OK) {
    verdict(0, "a libdroppath call failed");
    return;
  }
  char line[240];
  double dy, dgx;
  const size_t by = bit_mismatches(y_d, y_c, pb->n, &dy), bgx = bit_mismatches(gx_d, gx_c, pb->n, &dgx);
  size_t bcol = 0;
  for (int t = 0; t < MLP_NTENSORS; t++) {
    if (t == MLP_W1 || t == MLP_W2) continue;
    size_t count;
    double d;
    const float *gd = mlp_weights_tensor(&dense->grad, t, &count), *gc = mlp_weights_tensor(&compact->grad, t, &count);
    bcol += bit_mismatches(gd, gc, count, &d);
  }
  /* dW2 = grad_f^T g over the rows, dW1 = dh^T u: the dense step's operands (zero rows included). */
  const size_t rows = pb->shape.batch * pb->shape.seq, D = pb->shape.dim, H = 4 * D;
  double rel2, rel1;
  const double w2 = check_gemm_grad(dense->grad.w2, compact->grad.w2, dense->grad_f, dense->cache.g, rows, D, H, &rel2);
  const double w1 = check_gemm_grad(dense->grad.w1, compact->grad.w1, dense->cache.dh, dense->cache.u, rows, H, D, &rel1);
  snprintf(line, sizeof line,
           "%-6s p=%-4g k=%2zu/%zu: y %zu, grad_x %zu, bias+LN grads %zu bits differ; fc1/fc2.weight "
           "diff/bound %.2g/%.2g (norm-wise %.1e/%.1e)",
           mc->what, mc->p, compact->kept, pb->shape.batch, by, bgx, bcol, w1, w2, rel1, rel2);
  verdict(by == 0 && bgx == 0 && bcol == 0 && w1 <= 1 && w2 <= 1, line);
}

static void check_paths(const problem *pb, int threads) {
  static const mask_case cases[] = {
      {"row", DP_MODE_ROW, 0.0, 0},   {"row", DP_MODE_ROW, 0.1, 1},  {"row", DP_MODE_ROW, 0.3, 2},
      {"row", DP_MODE_ROW, 0.5, 3},   {"row", DP_MODE_ROW, 1.0, 4},  {"batch", DP_MODE_BATCH, 0.5, 5},
      {"batch", DP_MODE_BATCH, 0.5, 6}, {"exactk", DP_MODE_EXACT_K, 0.1, 7}, {"exactk", DP_MODE_EXACT_K, 0.4, 8},
  };
  block_step dense, compact;
  float *bufs[4];
  for (int i = 0; i < 4; i++)
    if (!(bufs[i] = mlp_alloc_floats(pb->n))) abort();
  if (block_step_init(&dense, pb->shape, &pb->w, threads) || block_step_init(&compact, pb->shape, &pb->w, threads))
    abort();
  printf("\n3. dense vs compacted (bits differing out of %zu in y and grad_x; weight gradients as a fraction of\n"
         "   the two-orders bound, which must stay <= 1)\n", pb->n);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) compare_paths(pb, &cases[i], &dense, &compact, bufs);
  block_step_free(&dense);
  block_step_free(&compact);
  for (int i = 0; i < 4; i++) free(bufs[i]);
}

/* ---------------------------------------------------------------- main */

static size_t arg(int argc, char **argv, int i, size_t fallback) {
  if (i >= argc) return fallback;
  const long v = strtol(argv[i], NULL, 10);
  if (v <= 0) {
    fprintf(stderr, "usage: %s [B T D [threads]]  (positive integers)\n", argv[0]);
    exit(2);
  }
  return (size_t)v;
}

int main(int argc, char **argv) {
  problem pb;
  pb.shape.batch = arg(argc, argv, 1, 32);
  pb.shape.seq = arg(argc, argv, 2, 197);
  pb.shape.dim = arg(argc, argv, 3, 384);
  const int threads = (int)arg(argc, argv, 4, 1);
  pb.n = pb.shape.batch * pb.shape.seq * pb.shape.dim;
  mlp_set_blas_threads(threads);
  printf("libdroppath %s (%s kernels); MLP block B=%zu T=%zu D=%zu, %d thread(s); BLAS: %s\n", dp_version_string(),
         dp_isa_name(dp_active_isa()), pb.shape.batch, pb.shape.seq, pb.shape.dim, threads, mlp_blas_config());

  if (mlp_weights_alloc(&pb.w, pb.shape.dim) != 0 || !(pb.x = mlp_alloc_floats(pb.n)) ||
      !(pb.grad_y = mlp_alloc_floats(pb.n))) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  mlp_weights_init(&pb.w, 1);
  uint32_t rng = 42;
  for (size_t r = 0; r < pb.n / pb.shape.dim; r++) { /* rows with their own offset and spread */
    const float mean = uniform(&rng), spread = 1.5f + uniform(&rng);
    for (size_t j = 0; j < pb.shape.dim; j++) pb.x[r * pb.shape.dim + j] = mean + spread * uniform(&rng);
  }
  for (size_t i = 0; i < pb.n; i++) pb.grad_y[i] = uniform(&rng);

  printf("\n1. GELU\n");
  check_gelu();
  check_gradients(&pb, threads);
  check_paths(&pb, threads);

  printf("\n%s\n", failures ? "FAILED" : "all checks passed");
  mlp_weights_free(&pb.w);
  free(pb.x);
  free(pb.grad_y);
  return failures ? 1 : 0;
}
