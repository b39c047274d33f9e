/* The MLP branch, forward and backward (block.h). */
#include "block.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gelu.h"

#if defined(_OPENMP)
#include <omp.h>
#define MLP_PRAGMA(x) _Pragma(#x)
/* Rows split statically over the threads; below min_rows one thread does them all. */
#define MLP_OMP_ROWS(threads, rows, min_rows) \
  MLP_PRAGMA(omp parallel for num_threads(threads) schedule(static) if ((rows) >= (min_rows)))
#define MLP_OMP_REGION(threads) MLP_PRAGMA(omp parallel num_threads(threads))
static int thread_id(void) { return omp_get_thread_num(); }
static int team_size(void) { return omp_get_num_threads(); }
#else /* one thread: the macros only use the count */
#define MLP_OMP_ROWS(threads, rows, min_rows) (void)(threads);
#define MLP_OMP_REGION(threads) (void)(threads);
static int thread_id(void) { return 0; }
static int team_size(void) { return 1; }
#endif

/*
 * The GELU loops are most of the block's time outside the GEMMs (exp, a division, selects per
 * element): on x86-64 with GCC or Clang they are also built for AVX2 and AVX-512 and the widest
 * the CPU runs is picked at load (target_clones).  Every version does the same IEEE operations
 * (no FMA contraction), so the results are the same bits on every CPU.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__)
#define MLP_WIDE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MLP_WIDE
#endif

/* Rows below this run on one thread: a fork/join costs more than such a pass. */
enum { MIN_PARALLEL_ROWS = 64 };

float *mlp_alloc_floats(size_t count) {
  const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes ? bytes : 64);
  if (p) memset(p, 0, bytes);
  return p;
}

/* ---------------------------------------------------------------- parameters */

int mlp_weights_alloc(mlp_weights *w, size_t dim) {
  memset(w, 0, sizeof *w);
  w->dim = dim;
  w->hidden = 4 * dim;
  w->ln_gamma = mlp_alloc_floats(dim);
  w->ln_beta = mlp_alloc_floats(dim);
  w->w1 = mlp_alloc_floats(w->hidden * dim);
  w->b1 = mlp_alloc_floats(w->hidden);
  w->w2 = mlp_alloc_floats(dim * w->hidden);
  w->b2 = mlp_alloc_floats(dim);
  if (w->ln_gamma && w->ln_beta && w->w1 && w->b1 && w->w2 && w->b2) return 0;
  mlp_weights_free(w);
  return -1;
}

void mlp_weights_free(mlp_weights *w) {
  free(w->ln_gamma);
  free(w->ln_beta);
  free(w->w1);
  free(w->b1);
  free(w->w2);
  free(w->b2);
  memset(w, 0, sizeof *w);
}

float *mlp_weights_tensor(const mlp_weights *w, int i, size_t *count) {
  const size_t D = w->dim, H = w->hidden;
  switch (i) {
    case MLP_LN_GAMMA: *count = D; return w->ln_gamma;
    case MLP_LN_BETA: *count = D; return w->ln_beta;
    case MLP_W1: *count = H * D; return w->w1;
    case MLP_B1: *count = H; return w->b1;
    case MLP_W2: *count = D * H; return w->w2;
    default: *count = D; return w->b2;
  }
}

const char *mlp_weights_name(int i) {
  static const char *const names[MLP_NTENSORS] = {"ln.gamma", "ln.beta", "fc1.weight", "fc1.bias", "fc2.weight",
                                                  "fc2.bias"};
  return i >= 0 && i < MLP_NTENSORS ? names[i] : "?";
}

static float uniform(uint32_t *state) { /* [-1, 1) */
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) * 0x1p-23f - 1.0f;
}

void mlp_weights_init(mlp_weights *w, uint32_t seed) {
  uint32_t s = seed;
  const float b1 = 1.0f / sqrtf((float)w->dim), b2 = 1.0f / sqrtf((float)w->hidden);
  for (size_t i = 0; i < w->dim; i++) {
    w->ln_gamma[i] = 1.0f + 0.1f * uniform(&s);
    w->ln_beta[i] = 0.1f * uniform(&s);
    w->b2[i] = b2 * uniform(&s);
  }
  for (size_t i = 0; i < w->hidden; i++) w->b1[i] = b1 * uniform(&s);
  for (size_t i = 0; i < w->hidden * w->dim; i++) {
    w->w1[i] = b1 * uniform(&s);
    w->w2[i] = b2 * uniform(&s);
  }
}

int mlp_cache_alloc(mlp_cache *c, size_t max_rows, size_t dim) {
  memset(c, 0, sizeof *c);
  c->max_rows = max_rows;
  c->dim = dim;
  c->hidden = 4 * dim;
  const size_t nd = max_rows * dim, nh = max_rows * c->hidden;
  c->xhat = mlp_alloc_floats(nd);
  c->rstd = mlp_alloc_floats(max_rows);
  c->u = mlp_alloc_floats(nd);
  c->a = mlp_alloc_floats(nh);
  c->g = mlp_alloc_floats(nh);
  c->dh = mlp_alloc_floats(nh);
  c->du = mlp_alloc_floats(nd);
  if (c->xhat && c->rstd && c->u && c->a && c->g && c->dh && c->du) return 0;
  mlp_cache_free(c);
  return -1;
}

void mlp_cache_free(mlp_cache *c) {
  free(c->xhat);
  free(c->rstd);
  free(c->u);
  free(c->a);
  free(c->g);
  free(c->dh);
  free(c->du);
  memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- row helpers */

/*
 * Sums over a row in one fixed order: 16 running sums (element j goes to sum j mod 16), added
 * together in a fixed tree, then the tail.  Independent sums vectorise without -ffast-math (a
 * plain running sum would not, and would be latency-bound), and the order depends on the row's
 * length only, not on where the row is stored.
 */
enum { LANES = 16 };

static float fold_lanes(float acc[LANES]) {
  for (int w = LANES / 2; w > 0; w /= 2)
    for (int l = 0; l < w; l++) acc[l] += acc[l + w];
  return acc[0];
}

static float row_sum(const float *v, size_t n) {
  float acc[LANES] = {0};
  size_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += v[j + l];
  float s = fold_lanes(acc);
  for (; j < n; j++) s += v[j];
  return s;
}

static float row_dot(const float *a, const float *b, size_t n) {
  float acc[LANES] = {0};
  size_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += a[j + l] * b[j + l];
  float s = fold_lanes(acc);
  for (; j < n; j++) s += a[j] * b[j];
  return s;
}

/* This thread's share of cols columns, in blocks of LANES (whole cache lines of floats). */
static void my_columns(size_t cols, size_t *j0, size_t *j1) {
  const size_t blocks = (cols + LANES - 1) / LANES, nt = (size_t)team_size(), t = (size_t)thread_id();
  const size_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
  *j0 = b0 * LANES < cols ? b0 * LANES : cols;
  *j1 = b1 * LANES < cols ? b1 * LANES : cols;
}

/* ---------------------------------------------------------------- forward */

static void layer_norm_forward(const mlp_weights *w, mlp_cache *c, size_t rows, const float *x, int threads) {
  const size_t D = w->dim;
  const float inv_d = 1.0f / (float)D;
  MLP_OMP_ROWS(threads, rows, MIN_PARALLEL_ROWS)
  for (size_t i = 0; i < rows; i++) {
    const float *xr = x + i * D;
    float *xh = c->xhat + i * D, *u = c->u + i * D;
    const float mean = row_sum(xr, D) * inv_d;
    for (size_t j = 0; j < D; j++) xh[j] = xr[j] - mean;
    const float rstd = 1.0f / sqrtf(row_dot(xh, xh, D) * inv_d + MLP_LN_EPS);
    c->rstd[i] = rstd;
    for (size_t j = 0; j < D; j++) {
      xh[j] *= rstd;
      u[j] = xh[j] * w->ln_gamma[j] + w->ln_beta[j];
    }
  }
}

/* a += b1 in place, g = gelu(a): one row. */
MLP_WIDE static void bias_gelu_row(float *a, float *g, const float *b1, size_t H) {
  for (size_t j = 0; j < H; j++) {
    const float v = a[j] + b1[j];
    a[j] = v;
    g[j] = mlp_gelu(v);
  }
}

static void bias_gelu_forward(const mlp_weights *w, mlp_cache *c, size_t rows, int threads) {
  const size_t H = w->hidden;
  MLP_OMP_ROWS(threads, rows, MIN_PARALLEL_ROWS)
  for (size_t i = 0; i < rows; i++) bias_gelu_row(c->a + i * H, c->g + i * H, w->b1, H);
}

static void bias_add(float *m, const float *bias, size_t rows, size_t cols, int threads) {
  MLP_OMP_ROWS(threads, rows, MIN_PARALLEL_ROWS)
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++) m[i * cols + j] += bias[j];
}

void mlp_forward(const mlp_weights *w, mlp_cache *c, size_t rows, const float *x, float *f, int threads) {
  const int D = (int)w->dim, H = (int)w->hidden, n = (int)rows;
  if (rows == 0) return;
  layer_norm_forward(w, c, rows, x, threads);
  /* a = u W1^T   [n][H] = [n][D] x [D][H] */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, D, 1.0f, c->u, D, w->w1, D, 0.0f, c->a, H);
  bias_gelu_forward(w, c, rows, threads);
  /* f = g W2^T   [n][D] = [n][H] x [H][D] */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, D, H, 1.0f, c->g, H, w->w2, H, 0.0f, f, D);
  bias_add(f, w->b2, rows, w->dim, threads);
}

/* ---------------------------------------------------------------- backward */

/* out[j] = sum over rows of m[i][j], rows in order; threads split the columns. */
static void column_sums(const float *m, size_t rows, size_t cols, float *out, int threads) {
  MLP_OMP_REGION(threads) {
    size_t j0, j1;
    my_columns(cols, &j0, &j1);
    for (size_t j = j0; j < j1; j++) out[j] = 0.0f;
    for (size_t i = 0; i < rows; i++)
      for (size_t j = j0; j < j1; j++) out[j] += m[i * cols + j];
  }
}

/* dh *= gelu'(a) in place and db1 += dh, over columns [j0, j1) of one row. */
MLP_WIDE static void gelu_backward_row(float *dh, const float *a, float *db1, size_t j0, size_t j1) {
  for (size_t j = j0; j < j1; j++) {
    const float d = dh[j] * mlp_gelu_grad(a[j]);
    dh[j] = d;
    db1[j] += d;
  }
}

/* dh *= gelu'(a) in place, and db1 = its column sums (rows in order). */
static void gelu_backward(const mlp_cache *c, size_t rows, float *db1, int threads) {
  const size_t H = c->hidden;
  MLP_OMP_REGION(threads) {
    size_t j0, j1;
    my_columns(H, &j0, &j1);
    for (size_t j = j0; j < j1; j++) db1[j] = 0.0f;
    for (size_t i = 0; i < rows; i++) gelu_backward_row(c->dh + i * H, c->a + i * H, db1, j0, j1);
  }
}

/*
 * LayerNorm backward.  dgamma = sum du*xhat, dbeta = sum du (column sums, first, as the row pass
 * then reuses du for dxhat = du*gamma), and per row
 *   dx = rstd * (dxhat - mean(dxhat) - xhat*mean(dxhat*xhat)).
 */
static void layer_norm_backward(const mlp_weights *w, mlp_cache *c, size_t rows, float *dx, int accumulate,
                                mlp_weights *grad, int threads) {
  const size_t D = w->dim;
  const float inv_d = 1.0f / (float)D;
  MLP_OMP_REGION(threads) {
    size_t j0, j1;
    my_columns(D, &j0, &j1);
    for (size_t j = j0; j < j1; j++) grad->ln_gamma[j] = grad->ln_beta[j] = 0.0f;
    for (size_t i = 0; i < rows; i++) {
      const float *du = c->du + i * D, *xh = c->xhat + i * D;
      for (size_t j = j0; j < j1; j++) {
        grad->ln_gamma[j] += du[j] * xh[j];
        grad->ln_beta[j] += du[j];
      }
    }
  }
  MLP_OMP_ROWS(threads, rows, MIN_PARALLEL_ROWS)
  for (size_t i = 0; i < rows; i++) {
    float *dxh = c->du + i * D, *out = dx + i * D;
    const float *xh = c->xhat + i * D;
    for (size_t j = 0; j < D; j++) dxh[j] *= w->ln_gamma[j];
    const float m1 = row_sum(dxh, D) * inv_d, m2 = row_dot(dxh, xh, D) * inv_d, rstd = c->rstd[i];
    if (accumulate)
      for (size_t j = 0; j < D; j++) out[j] += rstd * (dxh[j] - m1 - xh[j] * m2);
    else
      for (size_t j = 0; j < D; j++) out[j] = rstd * (dxh[j] - m1 - xh[j] * m2);
  }
}

void mlp_backward(const mlp_weights *w, mlp_cache *c, size_t rows, const float *df, float *dx, int accumulate_dx,
                  mlp_weights *grad, int threads) {
  const int D = (int)w->dim, H = (int)w->hidden, n = (int)rows;
  if (rows == 0) { /* no sample reached the branch: every parameter gradient is zero */
    for (int t = 0; t < MLP_NTENSORS; t++) {
      size_t count;
      float *g = mlp_weights_tensor(grad, t, &count);
      memset(g, 0, count * sizeof *g);
    }
    return;
  }
  column_sums(df, rows, w->dim, grad->b2, threads);
  /* dW2 = df^T g   [D][H] = [D][n] x [n][H] */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, H, n, 1.0f, df, D, c->g, H, 0.0f, grad->w2, H);
  /* dh = df W2     [n][H] = [n][D] x [D][H] */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, H, D, 1.0f, df, D, w->w2, H, 0.0f, c->dh, H);
  gelu_backward(c, rows, grad->b1, threads);
  /* dW1 = dh^T u   [H][D] = [H][n] x [n][D] */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, D, n, 1.0f, c->dh, H, c->u, D, 0.0f, grad->w1, D);
  /* du = dh W1     [n][D] = [n][H] x [H][D] */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, H, 1.0f, c->dh, H, w->w1, D, 0.0f, c->du, D);
  layer_norm_backward(w, c, rows, dx, accumulate_dx, grad, threads);
}

/* ---------------------------------------------------------------- BLAS settings */

#if defined(MLP_HAVE_OPENBLAS)
void mlp_set_blas_threads(int threads) { openblas_set_num_threads(threads); }
const char *mlp_blas_config(void) { return openblas_get_config(); }
#else
void mlp_set_blas_threads(int threads) { (void)threads; }
const char *mlp_blas_config(void) { return ""; }
#endif
