/* The AVX2 variant of the int8 product; compiled with the ISA flags for this
 * file only and called only when the CPU has them.
 *
 * AVX2 has no VNNI: vpmaddubsw multiplies unsigned by signed bytes and adds
 * pairs into int16 with saturation. The sign trick keeps it exact: the
 * unsigned operand is |w| (0..128) and the signed one x with w's sign
 * (vpsignb; x is in [-127, 127], so negating it is safe), each product is at
 * most 128 * 127 and a pair at most 32,512 < 32,767. vpmaddwd against ones
 * then sums pairs into int32: integer sums throughout, the portable
 * kernel's result exactly. Each 16-row packed tile is two 8-row halves. */
#include <immintrin.h>
#include <string.h>

#include "model/kernels.h"

void lf_kernel_matmul_avx2(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                           const lf_int8_matrix *weights);

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* out rows b0..b0+ROWS-1, columns o0..o0+15 (those below OC). */
ALWAYS_INLINE void product_tile(float *out, const int8_t *xq, const float *x_scales,
                                const lf_int8_matrix *weights, size_t b0, size_t o0, int ROWS)
{
    size_t stride = lf_kernel_row_stride(weights->columns), groups = stride / 4;
    const int8_t *tiles = weights->packed + o0 / 16 * groups * 64;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i sums[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++)
        sums[r][0] = sums[r][1] = _mm256_setzero_si256();
    for (size_t g = 0; g < groups; g++) {
#pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
            __m256i w = _mm256_load_si256((const __m256i *)(tiles + g * 64 + 32 * half));
            __m256i magnitude = _mm256_abs_epi8(w);
#pragma GCC unroll 4
            for (int r = 0; r < ROWS; r++) {
                int32_t four;
                memcpy(&four, xq + (b0 + (size_t)r) * stride + 4 * g, 4);
                __m256i x = _mm256_sign_epi8(_mm256_set1_epi32(four), w);
                __m256i pairs = _mm256_maddubs_epi16(magnitude, x);
                sums[r][half] = _mm256_add_epi32(sums[r][half], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
#pragma GCC unroll 2
    for (int half = 0; half < 2; half++) {
        size_t o = o0 + 8 * (size_t)half;
        if (o >= weights->rows)
            break;
        size_t valid = weights->rows - o < 8 ? weights->rows - o : 8;
        __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)valid),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 w_scales = _mm256_maskload_ps(weights->scales + o, lanes);
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            __m256 v = _mm256_cvtepi32_ps(sums[r][half]);
            v = _mm256_mul_ps(_mm256_mul_ps(v, _mm256_set1_ps(x_scales[b0 + (size_t)r])), w_scales);
            _mm256_maskstore_ps(out + (b0 + (size_t)r) * weights->rows + o, lanes, v);
        }
    }
}

typedef void (*tile_fn)(float *out, const int8_t *xq, const float *x_scales,
                        const lf_int8_matrix *weights, size_t b0, size_t o0);
#define TILE(rows)                                                                                 \
    static void tile_##rows(float *out, const int8_t *xq, const float *x_scales,                  \
                            const lf_int8_matrix *weights, size_t b0, size_t o0)                  \
    {                                                                                              \
        product_tile(out, xq, x_scales, weights, b0, o0, rows);                                    \
    }
TILE(1)
TILE(2)
TILE(3)
TILE(4)
static const tile_fn tiles[4] = {tile_1, tile_2, tile_3, tile_4};

// out (B,OC) = xq (B,C) @ W (OC,C)^T: 16 output rows at a time, all batch rows
// against them while their weights are in cache.
void lf_kernel_matmul_avx2(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                           const lf_int8_matrix *weights)
{
    for (size_t o = 0; o < weights->rows; o += 16)
        for (size_t b = 0; b < batch; b += 4)
            tiles[(batch - b < 4 ? batch - b : 4) - 1](out, xq, x_scales, weights, b, o);
}
