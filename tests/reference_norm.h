/*
 * A plain model of the fused residual + norm operations, written from the
 * header's contract (include/droppath/droppath.h, dp_forward_norm): one row
 * at a time, one element at a time, the mask from reference.c's own Philox.
 * Row statistics follow the specified order (16 lanes, lane i mod 16, the
 * fixed pairwise tree), so results are compared bit for bit.
 */
#ifndef DP_TEST_REFERENCE_NORM_H
#define DP_TEST_REFERENCE_NORM_H

#include "droppath/droppath.h"

/* dp_forward_norm (inference = 0) or dp_inference_norm (inference = 1, scales_out unused). */
void ref_norm_forward(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor y, dp_tensor r,
                      dp_tensor x, dp_tensor f, float *scales_out, int inference);

/* dp_backward_norm: the parameter gradients in LayerScale's row groups (ref_ls_groups). */
void ref_norm_backward(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                       dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in, const float *scales,
                       float *grad_gamma, float *grad_beta, uint32_t flags);

/* dp_backward_norm_ls: with norm->ls_gamma grad_f = (s*grad_r)*ls_gamma, and
 * grad_ls_gamma (unless NULL) the sum over kept rows of (s*grad_r)*f. */
void ref_norm_backward_ls(const dp_params *params, dp_shape shape, const dp_norm *norm, dp_tensor grad_f,
                          dp_tensor grad_x, dp_tensor grad_y, dp_tensor r, dp_tensor grad_r_in, dp_tensor f,
                          const float *scales, float *grad_gamma, float *grad_beta, float *grad_ls_gamma,
                          uint32_t flags);

#endif
