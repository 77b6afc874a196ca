/* AVX-512 VNNI variant of the int8 matrix product; compiled with the ISA
 * flags for this file only and called only when the CPU has them.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so inputs are shifted to
 * x + 128 and the extra 128 * sum(w) is taken off again: integer sums, so
 * the result is the portable kernel's exactly. */
#include <immintrin.h>
#include <stdlib.h>

#include "model/kernels.h"

void lf_kernel_matmul_int8_avx512(float *out, const int8_t *xq, const float *x_scales,
                                  size_t batch, const lf_int8_matrix *weights);

static int32_t dot_shifted(const uint8_t *x, const int8_t *w, size_t columns)
{
    __m512i sum = _mm512_setzero_si512();
    size_t c = 0;
    for (; c + 64 <= columns; c += 64)
        sum = _mm512_dpbusd_epi32(sum, _mm512_loadu_si512(x + c), _mm512_loadu_si512(w + c));
    if (c < columns) {
        __mmask64 tail = (~(__mmask64)0) >> (64 - (columns - c));
        sum = _mm512_dpbusd_epi32(sum, _mm512_maskz_loadu_epi8(tail, x + c),
                                  _mm512_maskz_loadu_epi8(tail, w + c));
    }
    return _mm512_reduce_add_epi32(sum);
}

void lf_kernel_matmul_int8_avx512(float *out, const int8_t *xq, const float *x_scales,
                                  size_t batch, const lf_int8_matrix *weights)
{
    size_t columns = weights->columns;
    /* x + 128 as unsigned bytes, for the whole batch */
    uint8_t shifted_stack[8192];
    uint8_t *shifted = batch * columns <= sizeof shifted_stack ? shifted_stack
                                                               : malloc(batch * columns);
    if (!shifted) { /* out of memory: the portable way needs no buffer */
        lf_kernel_matmul_int8_portable(out, xq, x_scales, batch, weights);
        return;
    }
    for (size_t i = 0; i < batch * columns; i++)
        shifted[i] = (uint8_t)(xq[i] + 128);
    for (uint32_t o = 0; o < weights->rows; o++) {
        const int8_t *w = weights->values + (size_t)o * columns;
        int32_t correction = 128 * weights->row_sums[o];
        for (size_t b = 0; b < batch; b++) {
            int32_t sum = dot_shifted(shifted + b * columns, w, columns) - correction;
            out[b * weights->rows + o] = (float)sum * x_scales[b] * weights->scales[o];
        }
    }
    if (shifted != shifted_stack)
        free(shifted);
}
