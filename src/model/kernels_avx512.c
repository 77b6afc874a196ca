/* The AVX-512 (VNNI) variant of the kernels; compiled with the ISA flags for
 * this file only and called only when the CPU has them. Each function
 * follows its portable twin in kernels.c operation for operation (see
 * kernels.h for the orders); only the integer product is blocked freely.
 *
 * The product: vpdpbusd multiplies unsigned by signed bytes, so activations
 * are shifted to x + 128 (x xor 0x80) and 128 * sum(w) is taken off again;
 * integer sums, so the result is the portable kernel's exactly. Each step of
 * the inner loop takes four columns of up to 6 batch rows and 64 output rows
 * (four packed tiles), holding the 24 accumulators in registers, so each
 * weight tile is loaded once per 6 rows. */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "model/kernels_simd.h"

/* Lanes i < count - start (up to 16) of a 16-wide block starting at start. */
ALWAYS_INLINE __mmask16 lanes_below(size_t start, size_t count)
{
    size_t left = count - start;
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* lf_exact_expf on 16 lanes, with the same bits by two exact shortcuts:
 * - k = (int)(scaled +- 0.5) takes 0.5 with scaled's sign bit, which
 *   differs from the scalar's (scaled >= 0 ? 0.5 : -0.5) only at -0, where
 *   both truncate to 0;
 * - for x >= -87 the result p 2^k is a normal float (p is in [0.7, 1.5]),
 *   so the scalar's two exact multiplications by 2^(k/2) and 2^(k - k/2)
 *   equal one exact scaling by 2^k (vscalefps). */
ALWAYS_INLINE __m512 exp16(__m512 x)
{
    __m512 scaled = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    /* 0.5 | (scaled & sign bit), as one ternary-logic operation */
    __m512 half = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(scaled), _mm512_set1_epi32((int)0x80000000u),
        _mm512_castps_si512(_mm512_set1_ps(0.5f)), 0xEA));
    __m512 kf = _mm512_cvtepi32_ps(_mm512_cvttps_epi32(_mm512_add_ps(scaled, half)));
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(kf, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(kf, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    __m512 result = _mm512_scalef_ps(p, kf);
    __mmask16 low = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
    __mmask16 high = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.7f), _CMP_GT_OQ);
    result = _mm512_mask_blend_ps(low, result, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(high, result, _mm512_castsi512_ps(_mm512_set1_epi32(0x7F800000)));
}

/* The largest of x[0..count), count >= 1 (max is exact: any order agrees). */
static float largest_of(const float *x, size_t count)
{
    __m512 largest = _mm512_set1_ps(x[0]);
    for (size_t i = 0; i < count; i += 16)
        largest = _mm512_mask_max_ps(largest, lanes_below(i, count),
                                     _mm512_maskz_loadu_ps(lanes_below(i, count), x + i), largest);
    return _mm512_reduce_max_ps(largest);
}

void lf_kernel_quantize_avx512(const float *x, size_t batch, size_t columns, size_t stride,
                               int8_t *q, float *scales)
{
    const __m512i magnitude_bits = _mm512_set1_epi32(0x7FFFFFFF);
    for (size_t b = 0; b < batch; b++) {
        const float *row = x + b * columns;
        __m512 largest = _mm512_setzero_ps();
        for (size_t c = 0; c < columns; c += 16) {
            __m512i v = _mm512_maskz_loadu_epi32(lanes_below(c, columns), row + c);
            __m512 magnitude = _mm512_castsi512_ps(_mm512_and_si512(v, magnitude_bits));
            largest = _mm512_max_ps(magnitude, largest);
        }
        float most = _mm512_reduce_max_ps(largest);
        float scale = most > 0.0f ? most / 127.0f : 1.0f;
        __m512 inverse = _mm512_set1_ps(1.0f / scale);
        int8_t *out = q + b * stride;
        for (size_t c = 0; c < columns; c += 16) {
            __mmask16 lanes = lanes_below(c, columns);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, row + c), inverse);
            __mmask16 non_negative = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
            __m512 half =
                _mm512_mask_blend_ps(non_negative, _mm512_set1_ps(-0.5f), _mm512_set1_ps(0.5f));
            __m512i rounded = _mm512_cvttps_epi32(_mm512_add_ps(v, half));
            rounded = _mm512_min_epi32(_mm512_max_epi32(rounded, _mm512_set1_epi32(-127)),
                                       _mm512_set1_epi32(127));
            _mm512_mask_cvtepi32_storeu_epi8(out + c, lanes, rounded);
        }
        memset(out + columns, 0, stride - columns);
        scales[b] = scale;
    }
}

/* sum += x (unsigned bytes) . w (signed bytes), four products per lane: the
 * instruction accumulates in place, but gcc 12 copies the accumulator to a
 * new register (and the stack) around every use of the intrinsic. */
ALWAYS_INLINE __m512i dot_accumulate(__m512i sum, __m512i x, __m512i w)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(sum) : "v"(x), "v"(w));
    return sum;
}

/* Four columns of batch row r, shifted to unsigned, in every 32-bit lane. */
ALWAYS_INLINE __m512i broadcast_row(const int8_t *xq, size_t stride, size_t row, size_t group)
{
    int32_t four;
    memcpy(&four, xq + row * stride + 4 * group, 4);
    return _mm512_xor_si512(_mm512_set1_epi32(four), _mm512_set1_epi32((int)0x80808080u));
}

/* out[row][o..o+15] (those below OC) from the int32 sums of shifted inputs. */
ALWAYS_INLINE void store_sums(float *out, const float *x_scales, const lf_int8_matrix *weights,
                              size_t row, size_t o, __m512i sums)
{
    __mmask16 lanes = lanes_below(o, weights->rows);
    __m512i row_sums = _mm512_maskz_loadu_epi32(lanes, weights->row_sums + o);
    __m512i correction = _mm512_slli_epi32(row_sums, 7);
    __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums, correction));
    v = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(x_scales[row])),
                      _mm512_maskz_loadu_ps(lanes, weights->scales + o));
    _mm512_mask_storeu_ps(out + row * weights->rows + o, lanes, v);
}

/* The tile's accumulators are named variables sum<row><block>, not an
 * array: compilers keep arrays of vectors this large in memory. Rows and
 * blocks past ROWS and BLOCKS (constants once inlined) compile to nothing. */
#define FOR_BLOCKS(M, r) M(r, 0) M(r, 1) M(r, 2) M(r, 3)
#define FOR_ROWS(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define FOR_TILE(M)                                                                                \
    FOR_BLOCKS(M, 0) FOR_BLOCKS(M, 1) FOR_BLOCKS(M, 2) FOR_BLOCKS(M, 3) FOR_BLOCKS(M, 4)           \
    FOR_BLOCKS(M, 5)
#define DECLARE_SUM(r, k) __m512i sum##r##k = _mm512_setzero_si512();
#define ACCUMULATE(r, k)                                                                           \
    if ((k) < BLOCKS)                                                                              \
        sum##r##k = dot_accumulate(sum##r##k, x, w##k);
/* one row's four columns against every block: one broadcast live at a time */
#define ACCUMULATE_ROW(r)                                                                          \
    if ((r) < ROWS) {                                                                              \
        __m512i x = broadcast_row(xq, stride, b0 + (r), g);                                        \
        FOR_BLOCKS(ACCUMULATE, r)                                                                  \
    }
#define STORE_SUM(r, k)                                                                            \
    if ((r) < ROWS && (k) < BLOCKS)                                                                \
        store_sums(out, x_scales, weights, b0 + (r), o0 + 16 * (k), sum##r##k);

/* out rows b0..b0+ROWS-1, columns o0..o0+16*BLOCKS-1 (those below OC). */
ALWAYS_INLINE void product_tile(float *out, const int8_t *xq, const float *x_scales,
                                const lf_int8_matrix *weights, size_t b0, size_t o0, int ROWS,
                                int BLOCKS)
{
    size_t stride = lf_kernel_row_stride(weights->columns), groups = stride / 4;
    const int8_t *tiles = weights->packed + o0 / 16 * groups * 64;
    FOR_TILE(DECLARE_SUM)
    for (size_t g = 0; g < groups; g++) {
        const int8_t *tile = tiles + g * 64;
        __m512i w0 = _mm512_load_si512(tile);
        __m512i w1 = BLOCKS > 1 ? _mm512_load_si512(tile + groups * 64) : w0;
        __m512i w2 = BLOCKS > 2 ? _mm512_load_si512(tile + 2 * groups * 64) : w0;
        __m512i w3 = BLOCKS > 3 ? _mm512_load_si512(tile + 3 * groups * 64) : w0;
        FOR_ROWS(ACCUMULATE_ROW)
    }
    FOR_TILE(STORE_SUM)
}

typedef void (*tile_fn)(float *out, const int8_t *xq, const float *x_scales,
                        const lf_int8_matrix *weights, size_t b0, size_t o0);
#define TILE(rows, blocks)                                                                         \
    static void tile_##rows##_##blocks(float *out, const int8_t *xq, const float *x_scales,       \
                                       const lf_int8_matrix *weights, size_t b0, size_t o0)       \
    {                                                                                              \
        product_tile(out, xq, x_scales, weights, b0, o0, rows, blocks);                            \
    }
#define TILES_OF_ROWS(rows) TILE(rows, 1) TILE(rows, 2) TILE(rows, 3) TILE(rows, 4)
TILES_OF_ROWS(1)
TILES_OF_ROWS(2)
TILES_OF_ROWS(3)
TILES_OF_ROWS(4)
TILES_OF_ROWS(5)
TILES_OF_ROWS(6)
#define ROW_OF_TILES(rows) {tile_##rows##_1, tile_##rows##_2, tile_##rows##_3, tile_##rows##_4}
static const tile_fn tiles[6][4] = {ROW_OF_TILES(1), ROW_OF_TILES(2), ROW_OF_TILES(3),
                                    ROW_OF_TILES(4), ROW_OF_TILES(5), ROW_OF_TILES(6)};

// out (B,OC) = xq (B,C) @ W (OC,C)^T: 64 output rows at a time, all batch rows
// against them while their weights are in cache.
void lf_kernel_matmul_avx512(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                             const lf_int8_matrix *weights, size_t first, size_t end)
{
    size_t blocks = (end + 15) / 16;
    for (size_t block = first / 16; block < blocks; block += 4) {
        size_t block_count = blocks - block < 4 ? blocks - block : 4;
        for (size_t b = 0; b < batch; b += 6) {
            size_t rows = batch - b < 6 ? batch - b : 6;
            tiles[rows - 1][block_count - 1](out, xq, x_scales, weights, b, block * 16);
        }
    }
}

/* The bfloat16 in the low (high) halves of x's 32-bit lanes as 16 floats,
 * lf_bf16_expand on each: the cache's runs of 32 (lf_kernel_cache_index). */
ALWAYS_INLINE __m512 low_halves(__m512i x) { return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)); }

ALWAYS_INLINE __m512 high_halves(__m512i x)
{
    return _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32((int)0xFFFF0000u)));
}

/* The lanes below count of the four vectors at start, start + 16, + 32 and
 * + 48 (none for a vector that starts at or past count). */
ALWAYS_INLINE void lanes_of_64(size_t start, size_t count, __mmask16 *lanes0, __mmask16 *lanes1,
                               __mmask16 *lanes2, __mmask16 *lanes3)
{
    *lanes0 = lanes_below(start, count);
    *lanes1 = start + 16 < count ? lanes_below(start + 16, count) : 0;
    *lanes2 = start + 32 < count ? lanes_below(start + 32, count) : 0;
    *lanes3 = start + 48 < count ? lanes_below(start + 48, count) : 0;
}

/* scores (G, count) = query (G, hs) @ K (hs, count) (keys in blocks of 64
 * slots), sums over i in index order; GROUP (1 or 2) heads share each key
 * load, a block at a time (named accumulators, as in the product). */
ALWAYS_INLINE void scores_of(float *scores, const float *query, const uint16_t *keys, size_t hs,
                             size_t count, int GROUP)
{
    _Static_assert(LF_KERNEL_KEY_BLOCK == 64, "one key block is four vectors");
    for (size_t t = 0; t < count; t += 64) {
        __mmask16 lanes0, lanes1, lanes2, lanes3;
        lanes_of_64(t, count, &lanes0, &lanes1, &lanes2, &lanes3);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; /* head g */
        __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                  /* head g + 1 */
        for (size_t i = 0; i < hs; i++) {
            /* a whole block: slots past count hold stale keys, whose
             * scores are never stored */
            const uint16_t *row = keys + (t / 64 * hs + i) * 64;
            __m512i first = _mm512_loadu_si512(row), second = _mm512_loadu_si512(row + 32);
            __m512 k0 = low_halves(first), k1 = high_halves(first);
            __m512 k2 = low_halves(second), k3 = high_halves(second);
            __m512 q = _mm512_set1_ps(query[i]);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(q, k0));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(q, k1));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(q, k2));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(q, k3));
            if (GROUP > 1) {
                q = _mm512_set1_ps(query[hs + i]);
                b0 = _mm512_add_ps(b0, _mm512_mul_ps(q, k0));
                b1 = _mm512_add_ps(b1, _mm512_mul_ps(q, k1));
                b2 = _mm512_add_ps(b2, _mm512_mul_ps(q, k2));
                b3 = _mm512_add_ps(b3, _mm512_mul_ps(q, k3));
            }
        }
        _mm512_mask_storeu_ps(scores + t, lanes0, a0);
        _mm512_mask_storeu_ps(scores + t + 16, lanes1, a1);
        _mm512_mask_storeu_ps(scores + t + 32, lanes2, a2);
        _mm512_mask_storeu_ps(scores + t + 48, lanes3, a3);
        if (GROUP > 1) {
            _mm512_mask_storeu_ps(scores + count + t, lanes0, b0);
            _mm512_mask_storeu_ps(scores + count + t + 16, lanes1, b1);
            _mm512_mask_storeu_ps(scores + count + t + 32, lanes2, b2);
            _mm512_mask_storeu_ps(scores + count + t + 48, lanes3, b3);
        }
    }
}

/* scores (count) = exp(scores - max); returns their sum in 16 lanes. */
static float softmax_numerators(float *scores, size_t count)
{
    __m512 largest = _mm512_set1_ps(largest_of(scores, count));
    __m512 lanes = _mm512_setzero_ps();
    for (size_t t = 0; t < count; t += 16) {
        __mmask16 valid = lanes_below(t, count);
        __m512 score = _mm512_maskz_loadu_ps(valid, scores + t);
        __m512 e = _mm512_maskz_mov_ps(valid, exp16(_mm512_sub_ps(score, largest)));
        _mm512_mask_storeu_ps(scores + t, valid, e);
        lanes = _mm512_add_ps(lanes, e); /* lanes past count add +0: no change */
    }
    /* halving: l + (l + 8), then + 4, + 2, + 1 */
    __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(lanes), 1));
    __m256 eight = _mm256_add_ps(_mm512_castps512_ps256(lanes), high);
    __m128 four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps(eight, 1));
    __m128 two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

/* out (G, hs) = e (G, count) @ values (count, hs) * inverse (G): sums over t
 * in index order; GROUP (1 or 2) heads share each value load, 64 columns at
 * a time: each lane's sum is a chain of dependent adds, and four chains per
 * head keep the adder busy (two, 32 columns, waited on its latency). */
ALWAYS_INLINE void weighted_values(float *out, const float *e, const uint16_t *values, size_t hs,
                                   size_t count, const float *inverse, int GROUP)
{
    for (size_t i = 0; i < hs; i += 64) {
        __mmask16 lanes0, lanes1, lanes2, lanes3;
        lanes_of_64(i, hs, &lanes0, &lanes1, &lanes2, &lanes3);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; /* head g */
        __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                  /* head g + 1 */
        /* the row's second run of 32 only if it has one (the last row ends
         * the cache); lanes past hs are never stored */
        __mmask32 second_run = i + 32 < hs ? 0xFFFFFFFFu : 0;
        for (size_t t = 0; t < count; t++) {
            const uint16_t *row = values + t * lf_kernel_value_stride(hs) + i;
            __m512i first = _mm512_loadu_si512(row);
            __m512i second = _mm512_maskz_loadu_epi16(second_run, row + 32);
            __m512 v0 = low_halves(first), v1 = high_halves(first);
            __m512 v2 = low_halves(second), v3 = high_halves(second);
            __m512 weight = _mm512_set1_ps(e[t]);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(weight, v0));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(weight, v1));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(weight, v2));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(weight, v3));
            if (GROUP > 1) {
                weight = _mm512_set1_ps(e[count + t]);
                b0 = _mm512_add_ps(b0, _mm512_mul_ps(weight, v0));
                b1 = _mm512_add_ps(b1, _mm512_mul_ps(weight, v1));
                b2 = _mm512_add_ps(b2, _mm512_mul_ps(weight, v2));
                b3 = _mm512_add_ps(b3, _mm512_mul_ps(weight, v3));
            }
        }
        __m512 first = _mm512_set1_ps(inverse[0]), second = _mm512_set1_ps(inverse[GROUP - 1]);
        _mm512_mask_storeu_ps(out + i, lanes0, _mm512_mul_ps(a0, first));
        _mm512_mask_storeu_ps(out + i + 16, lanes1, _mm512_mul_ps(a1, first));
        _mm512_mask_storeu_ps(out + i + 32, lanes2, _mm512_mul_ps(a2, first));
        _mm512_mask_storeu_ps(out + i + 48, lanes3, _mm512_mul_ps(a3, first));
        if (GROUP > 1) {
            _mm512_mask_storeu_ps(out + hs + i, lanes0, _mm512_mul_ps(b0, second));
            _mm512_mask_storeu_ps(out + hs + i + 16, lanes1, _mm512_mul_ps(b1, second));
            _mm512_mask_storeu_ps(out + hs + i + 32, lanes2, _mm512_mul_ps(b2, second));
            _mm512_mask_storeu_ps(out + hs + i + 48, lanes3, _mm512_mul_ps(b3, second));
        }
    }
}

void lf_kernel_attend_avx512(float *out, const float *query, const uint16_t *keys,
                             const uint16_t *values, size_t group, size_t head_size, size_t count,
                             float *scratch)
{
    for (size_t g = 0; g < group; g += 2) {
        bool pair = g + 1 < group;
        float *scores = scratch + g * count, inverse[2];
        if (pair)
            scores_of(scores, query + g * head_size, keys, head_size, count, 2);
        else
            scores_of(scores, query + g * head_size, keys, head_size, count, 1);
        for (size_t h = 0; h < (pair ? 2u : 1u); h++)
            inverse[h] = 1.0f / softmax_numerators(scores + h * count, count);
        if (pair)
            weighted_values(out + g * head_size, scores, values, head_size, count, inverse, 2);
        else
            weighted_values(out + g * head_size, scores, values, head_size, count, inverse, 1);
    }
}

void lf_kernel_swiglu_avx512(float *gate, const float *up, size_t count)
{
    for (size_t i = 0; i < count; i += 16) {
        __mmask16 lanes = lanes_below(i, count);
        __m512 g = _mm512_maskz_loadu_ps(lanes, gate + i);
        __m512 negated = _mm512_castsi512_ps(
            _mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32((int)0x80000000u)));
        __m512 e = exp16(negated);
        __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        __m512 product = _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(lanes, up + i));
        _mm512_mask_storeu_ps(gate + i, lanes, product);
    }
}

/* floor(w * scale / 2^64) for 16 weights w < 2^32, scale = s2 * 2^64 +
 * s1 * 2^32 + s0 with w * s2 < 2^32: in 32-bit pieces, because AVX-512
 * multiplies at most 32 x 32 -> 64 bits. floor((w s1 2^32 + w s0) / 2^64) is
 * floor((w s1 + floor(w s0 / 2^32)) / 2^32), and that sum stays below 2^64. */
ALWAYS_INLINE __m512i scaled_shares(__m512i w, __m512i s0, __m512i s1, __m512i s2)
{
    /* vpmuludq reads the low half of each 64-bit lane: even weights as they
     * are, odd ones shifted down */
    __m512i odd = _mm512_srli_epi64(w, 32);
    __m512i even_sum = _mm512_add_epi64(_mm512_mul_epu32(w, s1),
                                        _mm512_srli_epi64(_mm512_mul_epu32(w, s0), 32));
    __m512i odd_sum = _mm512_add_epi64(_mm512_mul_epu32(odd, s1),
                                       _mm512_srli_epi64(_mm512_mul_epu32(odd, s0), 32));
    __m512i high_halves = _mm512_set1_epi64((int64_t)0xFFFFFFFF00000000u);
    __m512i shares = _mm512_or_si512(_mm512_srli_epi64(even_sum, 32),
                                     _mm512_and_si512(odd_sum, high_halves));
    return _mm512_add_epi32(shares, _mm512_mullo_epi32(w, s2));
}

/* Running sums of 16 lanes: lane i = x[0] + ... + x[i]. */
ALWAYS_INLINE __m512i inclusive_sums(__m512i x)
{
    __m512i zero = _mm512_setzero_si512();
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 15));
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 14));
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 12));
    return _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 8));
}

/* lf_frequencies_set's arithmetic (FORMAT.md §3) on these weights: each is
 * at most 2^24 and the largest exactly 2^24 (exp(0) = 1), so the weight sum
 * W is at least 2^24 and the scale floor((2^30 - n) 2^64 / W) below 2^70;
 * the leftover units, which go to the first heaviest symbol, are added to
 * its share before the running sums. */
void lf_kernel_distribution_avx512(lf_frequencies *table, const float *logits, uint32_t *weights)
{
    uint32_t count = table->symbol_count;
    __m512 largest = _mm512_set1_ps(largest_of(logits, count));
    __m512i sum_low = _mm512_setzero_si512(), sum_high = sum_low, heaviest_weight = sum_low;
    for (uint32_t i = 0; i < count; i += 16) {
        __mmask16 lanes = lanes_below(i, count);
        __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, logits + i), largest);
        /* e^x 2^24 < 1 below x = -16.6, so a weight is 0 there: a trained
         * model's improbable tokens skip the exp */
        __m512i w = _mm512_setzero_si512();
        if (_mm512_mask_cmp_ps_mask(lanes, x, _mm512_set1_ps(-17.0f), _CMP_GE_OQ)) {
            __m512 e = exp16(x);
            w = _mm512_maskz_cvttps_epu32(lanes, _mm512_mul_ps(e, _mm512_set1_ps(16777216.0f)));
        }
        _mm512_mask_storeu_epi32(weights + i, lanes, w);
        __m512i low_half = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(w));
        __m512i high_half = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(w, 1));
        sum_low = _mm512_add_epi64(sum_low, low_half);
        sum_high = _mm512_add_epi64(sum_high, high_half);
        heaviest_weight = _mm512_max_epu32(heaviest_weight, w);
    }
    uint64_t weight_sum = (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(sum_low, sum_high));
    uint32_t most = (uint32_t)_mm512_reduce_max_epu32(heaviest_weight);
    uint32_t heaviest = 0; /* the first symbol with the largest weight */
    __mmask16 found;
    while (!(found = _mm512_mask_cmpeq_epu32_mask(
                 lanes_below(heaviest, count),
                 _mm512_maskz_loadu_epi32(lanes_below(heaviest, count), weights + heaviest),
                 _mm512_set1_epi32((int)most))))
        heaviest += 16;
    heaviest += (uint32_t)__builtin_ctz(found);
    unsigned __int128 scale = ((unsigned __int128)(LF_FREQUENCY_TOTAL - count) << 64) / weight_sum;
    __m512i s0 = _mm512_set1_epi64((int64_t)(uint32_t)scale);
    __m512i s1 = _mm512_set1_epi64((int64_t)(uint32_t)(scale >> 32));
    __m512i s2 = _mm512_set1_epi32((int32_t)(uint32_t)(scale >> 64));
    /* shares 1 + floor(w * scale / 2^64), kept in the table for now */
    uint32_t *cumulative = table->cumulative;
    __m512i total = _mm512_setzero_si512();
    for (uint32_t i = 0; i < count; i += 16) {
        __mmask16 lanes = lanes_below(i, count);
        __m512i w = _mm512_maskz_loadu_epi32(lanes, weights + i);
        __m512i shares =
            _mm512_maskz_add_epi32(lanes, scaled_shares(w, s0, s1, s2), _mm512_set1_epi32(1));
        _mm512_mask_storeu_epi32(cumulative + i, lanes, shares);
        total = _mm512_add_epi32(total, shares);
    }
    cumulative[heaviest] += LF_FREQUENCY_TOTAL - (uint32_t)_mm512_reduce_add_epi32(total);
    /* shares -> cumulative values: the sums before each symbol */
    __m512i carry = _mm512_setzero_si512();
    for (uint32_t i = 0; i < count; i += 16) {
        __mmask16 lanes = lanes_below(i, count);
        __m512i shares = _mm512_maskz_loadu_epi32(lanes, cumulative + i);
        __m512i running = _mm512_add_epi32(inclusive_sums(shares), carry);
        _mm512_mask_storeu_epi32(cumulative + i, lanes, _mm512_sub_epi32(running, shares));
        carry = _mm512_permutexvar_epi32(_mm512_set1_epi32(15), running);
    }
    cumulative[count] = LF_FREQUENCY_TOTAL;
}
