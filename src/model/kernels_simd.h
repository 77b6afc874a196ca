/* The SIMD variants' entry points, private to the kernels: kernels_avx2.c
 * and kernels_avx512.c define them (each file built with its ISA flags),
 * kernels.c puts them in its tables and calls them only on a CPU that has
 * the features. Each is its lf_kernels member's contract (kernels.h). */
#ifndef LLMFUSE_MODEL_KERNELS_SIMD_H
#define LLMFUSE_MODEL_KERNELS_SIMD_H

#include "model/kernels.h"

/* For the register-tiled helpers, whose constant arguments must fold. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

void lf_kernel_quantize_avx2(const float *x, size_t batch, size_t columns, size_t stride, int8_t *q,
                             float *scales);
void lf_kernel_matmul_avx2(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                           const lf_int8_matrix *weights, size_t first, size_t end);
void lf_kernel_attend_avx2(float *out, const float *query, const uint16_t *keys,
                           const uint16_t *values, size_t group, size_t head_size, size_t count,
                           float *scratch);
void lf_kernel_swiglu_avx2(float *gate, const float *up, size_t count);
void lf_kernel_distribution_avx2(lf_frequencies *table, const float *logits, uint32_t *weights);

void lf_kernel_quantize_avx512(const float *x, size_t batch, size_t columns, size_t stride,
                               int8_t *q, float *scales);
void lf_kernel_matmul_avx512(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                             const lf_int8_matrix *weights, size_t first, size_t end);
void lf_kernel_attend_avx512(float *out, const float *query, const uint16_t *keys,
                             const uint16_t *values, size_t group, size_t head_size, size_t count,
                             float *scratch);
void lf_kernel_swiglu_avx512(float *gate, const float *up, size_t count);
void lf_kernel_distribution_avx512(lf_frequencies *table, const float *logits, uint32_t *weights);

#endif
