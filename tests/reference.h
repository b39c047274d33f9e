/*
 * A deliberately plain model of every libdroppath operation, written from the
 * header's contract only: one element at a time, no threads, no SIMD, and its
 * own Philox4x32-10 (it never calls the library's mask code), so that a test
 * comparing the two compares independent implementations.
 *
 * The ref_* operations take the same arguments as the library's and assume
 * they are valid (they do no checking).  Elements are loaded to binary32,
 * computed as x + (s*f) with two roundings, and stored back in the tensor's
 * dtype (round to nearest even); rows that are only copied (dropped samples,
 * grad_x = grad_out) are copied bit for bit.  NaN results follow the
 * library's kernels: always the canonical quiet NaN of the dtype (see
 * store_result in reference.c).
 */
#ifndef DP_TEST_REFERENCE_H
#define DP_TEST_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include "droppath/droppath.h"

/* Philox4x32-10 per Random123: the mask generator. */
void ref_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* keep = (float)(1 - drop_prob). */
float ref_keep(double drop_prob);
/* s of a call of `batch` samples: 1/keep when scale_by_keep and keep > 0,
 * else 1; exact-k mode: batch/k when scale_by_keep, else 1. */
float ref_kept_scale(const dp_params *params, size_t batch);
/* k of an exact-k call: max(floor(batch*(1 - drop_prob)), 1), 0 for an empty batch. */
size_t ref_exact_k(double drop_prob, size_t batch);
/* Nonzero if sample b of a call of `batch` samples (b counts from the call's first sample) is kept. */
int ref_is_kept(const dp_params *params, size_t batch, size_t b);
/* s if sample b is kept, else 0. */
float ref_sample_scale(const dp_params *params, size_t batch, size_t b);

/* Same outputs as dp_mask (each may be NULL). */
void ref_mask(const dp_params *params, size_t batch, uint8_t *keep_out, float *scales_out,
              size_t *kept_count, size_t *kept_indices);

/* Bytes per element of a dtype (0 if unknown). */
size_t ref_dtype_size(int dtype);
/* Elements from a tensor's first element to one past its last: the buffer
 * length a test must allocate (0 for an empty shape). */
size_t ref_span_elems(const dp_tensor *t, dp_shape shape);

/* Conversions used for non-f32 tensors: round to nearest even, NaN stays NaN. */
float ref_bf16_to_f32(uint16_t h);
uint16_t ref_f32_to_bf16(float v);
float ref_f16_to_f32(uint16_t h);
uint16_t ref_f32_to_f16(float v);

void ref_forward(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                 float *scales_out);
void ref_inference_add(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                       dp_tensor f);
void ref_drop_path(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x,
                   float *scales_out);
void ref_backward(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                  dp_tensor grad_out, const float *scales, uint32_t flags);

/* LayerScale (droppath.h): out = x + ((gamma_d*f)*s); gamma NULL is the
 * plain operation. */
void ref_forward_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                    const float *gamma, float *scales_out);
void ref_inference_add_ls(const dp_params *params, dp_shape shape, dp_tensor out, dp_tensor x, dp_tensor f,
                          const float *gamma);
/* grad_f = (g*s)*gamma_d, grad_x (+)= g, grad_gamma (+)= the sum of (g*s)*f
 * over kept rows in the header's group order (written out here from the
 * header's formula for the group size). */
void ref_backward_ls(const dp_params *params, dp_shape shape, dp_tensor grad_f, dp_tensor grad_x,
                     dp_tensor grad_out, dp_tensor f, const float *gamma, float *grad_gamma, const float *scales,
                     uint32_t flags);
/* The header's grouping of grad_gamma's rows: rows per group and groups. */
void ref_ls_groups(dp_shape shape, size_t *per, size_t *count);
/* grad_gamma in double precision (products of the f32 g*s and f, summed in
 * double), and the sum of their magnitudes, for error bounds. */
void ref_grad_gamma_f64(const dp_params *params, dp_shape shape, dp_tensor grad_out, dp_tensor f,
                        const float *scales, double *sum, double *abs_sum);

#endif
