/* The transformer's inner loops. Integer kernels have one exact answer, so
 * the portable and SIMD variants are interchangeable; the float kernels fix
 * their order of operations in the code below and are shared by all builds.
 * The variant is chosen once, at run time, from the CPU's features (only the
 * portable one exists in a -DLLMFUSE_PORTABLE=ON build). */
#ifndef LLMFUSE_MODEL_KERNELS_H
#define LLMFUSE_MODEL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model/transformer.h"

/* q (rows, columns) int8 = round(x / scale), scale = max|x_row| / 127 (1 when
 * the row is zero); scales (rows). */
void lf_kernel_quantize_rows(const float *x, size_t rows, size_t columns, int8_t *q, float *scales);

/* out (B, OC) = x (B, C) @ W (OC, C)^T, x given quantized with per-row scales:
 * out[b][o] = (float)(sum_c xq[b][c] * W[o][c]) * x_scale[b] * W.scale[o]. */
void lf_kernel_matmul_int8(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                           const lf_int8_matrix *weights);

/* The portable variant itself (the SIMD variants fall back on it). */
void lf_kernel_matmul_int8_portable(float *out, const int8_t *xq, const float *x_scales,
                                    size_t batch, const lf_int8_matrix *weights);

/* out (C) = x (C) / sqrt(mean(x^2) + epsilon) * weight (C); sums in index order. */
void lf_kernel_rmsnorm(float *out, const float *x, const float *weight, size_t size, float epsilon);

/* The name of the matmul variant in use ("portable", "avx512-vnni"). */
const char *lf_kernel_variant(void);

#endif
