/* The transformer's inner loops, in variants chosen at run time from the
 * CPU's features: portable C (the only one in a -DLLMFUSE_PORTABLE=ON build,
 * and the reference), AVX2 and AVX-512 VNNI (kernels_avx2.c,
 * kernels_avx512.c).
 *
 * Every variant computes the same bits (DESIGN.md §4). Integer kernels have
 * one exact answer whatever their blocking. Float kernels are element-wise
 * (the same IEEE-754 operations in the same order for each element, whatever
 * the vector width) or reduce in the order written down here, which the
 * portable code spells out and the SIMD code follows lane for lane:
 * - "in index order": ((x0 + x1) + x2) + ... starting from 0.0f;
 * - "in 16 lanes": element t goes to partial sum t mod 16 (each in index
 *   order), then lanes combine by halving: p[l] += p[l + 8] for l < 8, then
 *   + 4, + 2, + 1, and the sum is p[0]. This is a 512-bit register's natural
 *   reduction, spelled out for every variant.
 * No fused multiply-add anywhere: the build has -ffp-contract=off and the
 * SIMD code uses separate multiplies and adds. exp is lf_exact_expf's
 * sequence of operations, vectorised. */
#ifndef LLMFUSE_MODEL_KERNELS_H
#define LLMFUSE_MODEL_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "coder/frequencies.h"
#include "model/transformer.h"

/* Rows of int8 activations are stored this many bytes apart at least (the
 * column count rounded up to a multiple of 4, zero-filled): the SIMD
 * products read four columns at a time. */
size_t lf_kernel_row_stride(size_t columns);

/* Weights re-laid for the SIMD products (done once, at load): tiles of 16
 * rows x 4 columns, 64 bytes each, row r's columns 4k..4k+3 at bytes
 * 4 (r mod 16) .. + 3 of tile (r / 16, k); rows beyond the matrix and
 * columns beyond C are zero. */
size_t lf_kernel_packed_size(size_t rows, size_t columns);
void lf_kernel_pack(const int8_t *values, size_t rows, size_t columns, int8_t *packed);

/* Where a share of a product's output columns may start: a packed tile's
 * rows (see lf_kernels.matmul). */
#define LF_KERNEL_OUTPUT_ALIGN 16

/* Ring slots per block of the key cache (see attend). */
#define LF_KERNEL_KEY_BLOCK 64

/* The key/value cache stores its elements in runs of 32 with the two halves
 * of each run interleaved: element j of a run sits at 2j (j < 16) or
 * 2(j - 16) + 1. A 64-byte load then holds 16 consecutive elements in the
 * low halves of its 32-bit lanes and the next 16 in the high halves, and
 * one shift or one mask makes each 16 floats (instead of a widening and a
 * shift per 16: attention did more conversions than arithmetic). Only the
 * addresses change: every kernel reads the same values. */
static inline size_t lf_kernel_cache_index(size_t j)
{
    return (j & ~(size_t)31) | (j & 15) << 1 | (j >> 4 & 1);
}

/* Elements per value row: the head size in whole runs of 32. */
static inline size_t lf_kernel_value_stride(size_t head_size) { return (head_size + 31) / 32 * 32; }

/* The key/value cache holds bfloat16: the top 16 bits of a float. Decoding
 * reads a stream's whole cache for every token, so its size is the speed
 * of decompression (docs/DECISIONS.md); 16 bits halve it.
 *
 * Rounding is to nearest, ties to even, written as integer arithmetic on
 * the float's bits (no float operation, no rounding mode, no compiler
 * choice involved): add 0x7FFF plus the lowest kept bit, keep the top 16
 * bits. The sum wraps modulo 2^32 like any uint32_t; so Inf stays Inf, a
 * finite float rounds up to Inf past the largest bfloat16, and a NaN
 * becomes whatever the same formula gives (the model never makes one; the
 * point is only that every build writes the same bits). Every variant
 * stores through this one function: rounding happens once, in
 * transformer.c, never in a kernel. */
static inline uint16_t lf_bf16_round(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* A bfloat16 as a float: exact (the 16 bits go back on top, zeros below). */
static inline float lf_bf16_expand(uint16_t x)
{
    uint32_t bits = (uint32_t)x << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

typedef struct lf_kernels {
    const char *name; /* "portable", "avx2", "avx512-vnni" */

    /* q (B, stride) int8 = round(x (B, C) * (1 / scale)) half away from zero,
     * clamped to [-127, 127], with scale = max|x_row| / 127 (1 for a zero
     * row) and columns C..stride-1 of each row zero; scales (B). */
    void (*quantize)(const float *x, size_t batch, size_t columns, size_t stride, int8_t *q,
                     float *scales);

    /* out (B, OC) = xq (B, C) @ W (OC, C)^T, for the output columns o in
     * [first, end) only (first a multiple of LF_KERNEL_OUTPUT_ALIGN, end too
     * or OC; the other columns of out are left alone: threads take shares);
     * xq rows stride apart (see lf_kernel_row_stride), in [-127, 127]
     * (weights may be -128 too):
     * out[b][o] = ((float)(sum_c xq[b][c] * W[o][c]) * x_scales[b]) * W.scales[o]. */
    void (*matmul)(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                   const lf_int8_matrix *weights, size_t first, size_t end);

    /* One key/value head and the `group` query heads that share it, over
     * the `count` filled ring slots (in slot order):
     * out (G, hs) = softmax(query (G, hs) @ K (hs, count)) @ values (count, hs)
     * with keys and values in bfloat16, each expanded exactly to a float
     * (lf_bf16_expand) before it is used,
     * K[i][t] at keys[((t / 64) * hs + i) * 64 + lf_kernel_cache_index(t % 64)]
     * (blocks of LF_KERNEL_KEY_BLOCK slots, each (hs, 64): read in order, 64
     * slots at a time), values[t][i] at values[t * lf_kernel_value_stride(hs)
     * + lf_kernel_cache_index(i)]; the other elements of a block or row (past
     * count or hs) may hold anything;
     * scores[t] = sum_i query[i] * K[i][t] in index order;
     * e[t] = exp(scores[t] - max_t scores); total = sum of e in 16 lanes;
     * out[i] = (sum_t e[t] * values[t][i] in index order) * (1 / total).
     * scratch: group * count floats. */
    void (*attend)(float *out, const float *query, const uint16_t *keys, const uint16_t *values,
                   size_t group, size_t head_size, size_t count, float *scratch);

    /* gate (N) = gate / (1 + exp(-gate)) * up: SwiGLU's silu(gate) * up. */
    void (*swiglu)(float *gate, const float *up, size_t count);

    /* The coder's table for the next token: what lf_frequencies_set (see
     * coder/frequencies.h) makes of the weights (uint32_t)(exp(logits - max
     * logits) * 2^24), for the table's symbol count N (set beforehand with
     * lf_frequencies_resize); scratch: N. */
    void (*distribution)(lf_frequencies *table, const float *logits, uint32_t *scratch);
} lf_kernels;

/* The variant in use: the fastest the CPU supports, or the one named by the
 * environment variable LLMFUSE_KERNELS (portable, avx2, avx512-vnni; for
 * tests and measurements; an unknown or unsupported name is ignored). Never
 * changes a result. */
const lf_kernels *lf_kernels_chosen(void);
/* Every variant this CPU can run, portable first; returns how many. */
size_t lf_kernels_available(const lf_kernels **variants, size_t capacity);

/* out (C) = x (C) / sqrt(mean(x^2) + epsilon) * weight (C); squares summed in
 * index order (cheap enough to need no variants). */
void lf_kernel_rmsnorm(float *out, const float *x, const float *weight, size_t size, float epsilon);

#endif
