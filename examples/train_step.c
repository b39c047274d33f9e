/*
 * A toy residual network trained with stochastic depth, forward and backward
 * through libdroppath:
 *
 *   h[l+1] = h[l] + DropPath_l( W[l] h[l] )        l = 0..L-1
 *   loss   = 0.5 * |h[L] - target|^2 / B
 *
 * Block l drops with rate rates[l] (timm's linspace schedule). Each step uses
 * offset = step*L + l so that forward and backward see the same mask while
 * every (step, layer) gets a fresh one. The backward regenerates the mask from
 * (seed, offset) instead of storing it, and accumulates the residual gradient
 * in the same pass.
 */
#include <droppath/droppath.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 32, D = 16, L = 6, STEPS = 300 };

static float frand(unsigned *state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) * 0x1p-24f - 0.5f;
}

/* y[b] = W x[b] for a D x D matrix. */
static void matvec(const float *W, const float *x, float *y) {
  for (int b = 0; b < B; b++)
    for (int i = 0; i < D; i++) {
      float acc = 0;
      for (int j = 0; j < D; j++) acc += W[i * D + j] * x[b * D + j];
      y[b * D + i] = acc;
    }
}

static int check(dp_status st, const char *what) {
  if (st == DP_OK) return 0;
  fprintf(stderr, "%s failed: %s\n", what, dp_status_string(st));
  return 1;
}

int main(void) {
  static float W[L][D * D], h[L + 1][B * D], f[L][B * D], target[B * D];
  static float grad_h[B * D], grad_f[B * D], gW[D * D];
  double rates[L];
  unsigned rng = 12345;
  const dp_shape shape = {B, 1, D};

  if (check(dp_drop_rates(DP_SCHEDULE_LINSPACE, 0.3, L, rates), "dp_drop_rates")) return 1;
  for (int l = 0; l < L; l++)
    for (int i = 0; i < D * D; i++) W[l][i] = 0.1f * frand(&rng);
  for (int i = 0; i < B * D; i++) {
    h[0][i] = frand(&rng);
    target[i] = 2.0f * h[0][i] + 0.5f * h[0][(i + 1) % (B * D)];
  }

  printf("libdroppath %s, kernels: %s\n", dp_version_string(), dp_isa_name(dp_active_isa()));
  printf("drop rates per block:");
  for (int l = 0; l < L; l++) printf(" %.2f", rates[l]);
  printf("\n");

  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < STEPS; step++) {
    dp_params p;
    dp_params_init(&p);
    p.seed = 2024;
    /* forward */
    for (int l = 0; l < L; l++) {
      p.drop_prob = rates[l];
      p.offset = (uint64_t)step * L + (uint64_t)l;
      matvec(W[l], h[l], f[l]);
      if (check(dp_forward(&p, shape, dp_tensor_dense(h[l + 1], DP_F32, shape),
                           dp_tensor_dense(h[l], DP_F32, shape), dp_tensor_dense(f[l], DP_F32, shape), NULL),
                "dp_forward"))
        return 1;
    }
    double loss = 0;
    for (int i = 0; i < B * D; i++) {
      const float e = h[L][i] - target[i];
      loss += 0.5 * e * e / B;
      grad_h[i] = e / B;
    }
    if (step == 0) first_loss = loss;
    last_loss = loss;
    if (step % 50 == 0 || step == STEPS - 1) printf("step %3d  loss %.5f\n", step, loss);

    /* backward: grad_f = m*s*grad_h; the residual passes grad_h through and the
     * branch adds W^T grad_f to it. */
    for (int l = L - 1; l >= 0; l--) {
      p.drop_prob = rates[l];
      p.offset = (uint64_t)step * L + (uint64_t)l;
      if (check(dp_backward(&p, shape, dp_tensor_dense(grad_f, DP_F32, shape),
                            (dp_tensor){NULL, DP_F32, D, D}, dp_tensor_dense(grad_h, DP_F32, shape), NULL, 0),
                "dp_backward"))
        return 1;
      memset(gW, 0, sizeof gW);
      for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++)
          for (int j = 0; j < D; j++) {
            gW[i * D + j] += grad_f[b * D + i] * h[l][b * D + j];
            grad_h[b * D + j] += W[l][i * D + j] * grad_f[b * D + i];
          }
      for (int i = 0; i < D * D; i++) W[l][i] -= 0.5f * gW[i];
    }
  }
  printf("loss %.5f -> %.5f\n", first_loss, last_loss);
  /* The toy problem is learnable: a training step that fails to reduce the
   * loss means forward and backward disagree. */
  return last_loss < 0.5 * first_loss ? 0 : 1;
}
