/*
 * The residual branch of a pre-norm transformer MLP block, forward and backward, on n rows of D
 * floats (a batch of samples of T rows, laid back to back):
 *
 *   f = Linear2(GELU(Linear1(LayerNorm(x))))      Linear1: D -> H = 4D, Linear2: H -> D, with biases
 *
 * The block around it (y = x + drop_path(f)) is in step.h.  GEMMs are OpenBLAS's cblas_sgemm;
 * LayerNorm, bias and GELU (tanh form, gelu.h) are C loops, OpenMP over rows.  Row-wise results
 * (f, the input gradient) depend only on the row's own data, and the bias and LayerNorm parameter
 * gradients are column sums taken in row order, so rows that contribute zero (dropped samples)
 * leave them bit for bit unchanged; the two weight gradients are GEMMs over the rows, whose
 * summation order is OpenBLAS's.
 */
#ifndef MLP_BLOCK_BLOCK_H
#define MLP_BLOCK_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#define MLP_LN_EPS 1e-6f /* timm's ViT LayerNorm */

/* Parameters, or their gradients (same layout).  Weights are [out][in], as PyTorch's Linear. */
enum { MLP_LN_GAMMA, MLP_LN_BETA, MLP_W1, MLP_B1, MLP_W2, MLP_B2, MLP_NTENSORS };
typedef struct mlp_weights {
  size_t dim, hidden;        /* D, H = 4D */
  float *ln_gamma, *ln_beta; /* [D] */
  float *w1, *b1;            /* [H][D], [H] */
  float *w2, *b2;            /* [D][H], [D] */
} mlp_weights;

/* Activations the forward keeps for the backward, and its scratch: room for max_rows rows. */
typedef struct mlp_cache {
  size_t max_rows, dim, hidden;
  float *xhat, *rstd; /* normalised input [n][D], 1/sigma per row [n] */
  float *u;           /* LayerNorm output [n][D] */
  float *a, *g;       /* hidden pre-activation (bias added) and GELU output [n][H] */
  float *dh;          /* hidden gradient [n][H] */
  float *du;          /* LayerNorm output gradient [n][D] */
} mlp_cache;

/* Zeroed parameters for width dim (hidden = 4*dim), 64-byte aligned; 0 on success. */
int mlp_weights_alloc(mlp_weights *w, size_t dim);
void mlp_weights_free(mlp_weights *w);
/* PyTorch's Linear init (uniform +-1/sqrt(fan_in)) for weights and biases; gamma = 1 + noise and
 * beta = noise (0.1 scale), so their gradients are not special cases. */
void mlp_weights_init(mlp_weights *w, uint32_t seed);
/* Tensor i (MLP_LN_GAMMA...) of w: its data and element count. */
float *mlp_weights_tensor(const mlp_weights *w, int i, size_t *count);
const char *mlp_weights_name(int i);

int mlp_cache_alloc(mlp_cache *c, size_t max_rows, size_t dim);
void mlp_cache_free(mlp_cache *c);

/* f = branch(x) for rows rows of x and f ([rows][D], contiguous); keeps activations in c. */
void mlp_forward(const mlp_weights *w, mlp_cache *c, size_t rows, const float *x, float *f, int threads);

/*
 * Backward of the last mlp_forward on c (same rows): from df = dL/df, writes every parameter
 * gradient into grad and the input gradient into dx (dx = ..., or dx += ... when accumulate_dx).
 */
void mlp_backward(const mlp_weights *w, mlp_cache *c, size_t rows, const float *df, float *dx,
                  int accumulate_dx, mlp_weights *grad, int threads);

/* Threads OpenBLAS uses (no-op with a BLAS that has no such setting). */
void mlp_set_blas_threads(int threads);
/* OpenBLAS's build description ("" if not OpenBLAS). */
const char *mlp_blas_config(void);

/* 64-byte aligned, zeroed floats; NULL on failure.  Free with free(). */
float *mlp_alloc_floats(size_t count);

#endif
