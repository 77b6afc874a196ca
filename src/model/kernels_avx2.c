/* The AVX2 variant of the kernels; compiled with the ISA flags for this file
 * only and called only when the CPU has them. Each float kernel follows its
 * portable twin in kernels.c operation for operation (see kernels.h for the
 * orders), eight lanes at a time; only the integer product is blocked
 * freely.
 *
 * The product: AVX2 has no VNNI: vpmaddubsw multiplies unsigned by signed
 * bytes and adds pairs into int16 with saturation. The sign trick keeps it
 * exact: the unsigned operand is |w| (0..128) and the signed one x with w's
 * sign (vpsignb; x is in [-127, 127], so negating it is safe), each product
 * is at most 128 * 127 and a pair at most 32,512 < 32,767. vpmaddwd against
 * ones then sums pairs into int32: integer sums throughout, the portable
 * kernel's result exactly. Each 16-row packed tile is two 8-row halves. */
#include <immintrin.h>
#include <string.h>

#include "model/kernels_simd.h"

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
                           const lf_int8_matrix *weights, size_t first, size_t end)
{
    for (size_t o = first; o < end; o += 16)
        for (size_t b = 0; b < batch; b += 4)
            tiles[(batch - b < 4 ? batch - b : 4) - 1](out, xq, x_scales, weights, b, o);
}

/* All-ones in the lanes i < count - start (up to 8) of an 8-wide vector
 * starting at start; none when start >= count. */
ALWAYS_INLINE __m256i lanes_below(size_t start, size_t count)
{
    int left = start >= count ? 0 : count - start >= 8 ? 8 : (int)(count - start);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* lf_exact_expf on 8 lanes, operation for operation: k = (int)(scaled +-
 * 0.5) takes 0.5 with scaled's sign bit, which differs from the scalar's
 * (scaled >= 0 ? 0.5 : -0.5) only at -0, where both truncate to 0; 2^k is
 * the scalar's two exact factors 2^(k/2) and 2^(k - k/2), k/2 truncated
 * toward zero like C's division. */
ALWAYS_INLINE __m256 exp8(__m256 x)
{
    __m256 scaled = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
    __m256 sign = _mm256_and_ps(scaled, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)));
    __m256i k = _mm256_cvttps_epi32(_mm256_add_ps(scaled, _mm256_or_ps(sign, _mm256_set1_ps(0.5f))));
    __m256 kf = _mm256_cvtepi32_ps(k);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(kf, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(kf, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    __m256i half = _mm256_srai_epi32(_mm256_add_epi32(k, _mm256_srli_epi32(k, 31)), 1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 scale_a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    __m256 scale_b = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(k, half), bias), 23));
    __m256 result = _mm256_mul_ps(_mm256_mul_ps(p, scale_a), scale_b);
    __m256 low = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
    __m256 high = _mm256_cmp_ps(x, _mm256_set1_ps(88.7f), _CMP_GT_OQ);
    result = _mm256_andnot_ps(low, result);
    return _mm256_blendv_ps(result, _mm256_castsi256_ps(_mm256_set1_epi32(0x7F800000)), high);
}

/* The largest of x[0..count), count >= 1 (max is exact: any order agrees). */
static float largest_of(const float *x, size_t count)
{
    __m256 largest = _mm256_set1_ps(x[0]);
    for (size_t i = 0; i < count; i += 8) {
        __m256i lanes = lanes_below(i, count);
        __m256 v = _mm256_blendv_ps(largest, _mm256_maskload_ps(x + i, lanes),
                                    _mm256_castsi256_ps(lanes));
        largest = _mm256_max_ps(v, largest);
    }
    __m128 four = _mm_max_ps(_mm256_castps256_ps128(largest), _mm256_extractf128_ps(largest, 1));
    __m128 two = _mm_max_ps(four, _mm_movehl_ps(four, four));
    return _mm_cvtss_f32(_mm_max_ss(two, _mm_shuffle_ps(two, two, 1)));
}

/* round(v) half away from zero, clamped to [-127, 127], as int32 lanes. */
ALWAYS_INLINE __m256i rounded_int8(__m256 v)
{
    __m256 non_negative = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
    __m256 half = _mm256_blendv_ps(_mm256_set1_ps(-0.5f), _mm256_set1_ps(0.5f), non_negative);
    __m256i rounded = _mm256_cvttps_epi32(_mm256_add_ps(v, half));
    return _mm256_min_epi32(_mm256_max_epi32(rounded, _mm256_set1_epi32(-127)),
                            _mm256_set1_epi32(127));
}

void lf_kernel_quantize_avx2(const float *x, size_t batch, size_t columns, size_t stride, int8_t *q,
                             float *scales)
{
    const __m256 magnitude_bits = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (size_t b = 0; b < batch; b++) {
        const float *row = x + b * columns;
        __m256 largest = _mm256_setzero_ps();
        for (size_t c = 0; c < columns; c += 8) {
            __m256 v = _mm256_maskload_ps(row + c, lanes_below(c, columns));
            largest = _mm256_max_ps(_mm256_and_ps(v, magnitude_bits), largest);
        }
        __m128 four = _mm_max_ps(_mm256_castps256_ps128(largest), _mm256_extractf128_ps(largest, 1));
        __m128 two = _mm_max_ps(four, _mm_movehl_ps(four, four));
        float most = _mm_cvtss_f32(_mm_max_ss(two, _mm_shuffle_ps(two, two, 1)));
        float scale = most > 0.0f ? most / 127.0f : 1.0f;
        __m256 inverse = _mm256_set1_ps(1.0f / scale);
        int8_t *out = q + b * stride;
        /* 32 columns at a time: the two packs interleave 128-bit halves,
         * the permutation puts the four groups of four back in order */
        size_t c = 0;
        for (; c + 32 <= columns; c += 32) {
            __m256i r0 = rounded_int8(_mm256_mul_ps(_mm256_loadu_ps(row + c), inverse));
            __m256i r1 = rounded_int8(_mm256_mul_ps(_mm256_loadu_ps(row + c + 8), inverse));
            __m256i r2 = rounded_int8(_mm256_mul_ps(_mm256_loadu_ps(row + c + 16), inverse));
            __m256i r3 = rounded_int8(_mm256_mul_ps(_mm256_loadu_ps(row + c + 24), inverse));
            __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(r0, r1), _mm256_packs_epi32(r2, r3));
            bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(out + c), bytes);
        }
        for (; c < columns; c += 8) {
            int32_t lanes[8];
            __m256 v = _mm256_maskload_ps(row + c, lanes_below(c, columns));
            _mm256_storeu_si256((__m256i *)lanes, rounded_int8(_mm256_mul_ps(v, inverse)));
            for (size_t l = 0; l < 8 && c + l < columns; l++)
                out[c + l] = (int8_t)lanes[l];
        }
        memset(out + columns, 0, stride - columns);
        scales[b] = scale;
    }
}

/* The bfloat16 in the low (high) halves of x's 32-bit lanes as 8 floats,
 * lf_bf16_expand on each. The cache's runs of 32 (lf_kernel_cache_index)
 * put elements 0-7 and 16-23 of a run in its first 32 bytes, 8-15 and
 * 24-31 in the next. */
ALWAYS_INLINE __m256 low_halves(__m256i x) { return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)); }

ALWAYS_INLINE __m256 high_halves(__m256i x)
{
    return _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32((int)0xFFFF0000u)));
}

/* Stores a run of 32 floats held as (0-7, 16-23, 8-15, 24-31), the lanes
 * below count - start only, each multiplied by factor. */
ALWAYS_INLINE void store_run(float *out, size_t start, size_t count, __m256 factor, __m256 v0,
                             __m256 v1, __m256 v2, __m256 v3)
{
    _mm256_maskstore_ps(out + start, lanes_below(start, count), _mm256_mul_ps(v0, factor));
    _mm256_maskstore_ps(out + start + 8, lanes_below(start + 8, count), _mm256_mul_ps(v2, factor));
    _mm256_maskstore_ps(out + start + 16, lanes_below(start + 16, count), _mm256_mul_ps(v1, factor));
    _mm256_maskstore_ps(out + start + 24, lanes_below(start + 24, count), _mm256_mul_ps(v3, factor));
}

/* scores (G, count) = query (G, hs) @ K (hs, count) (keys in blocks of 64
 * slots), sums over i in index order; GROUP (1 or 2) heads share each key
 * load, 32 slots at a time. */
ALWAYS_INLINE void scores_of(float *scores, const float *query, const uint16_t *keys, size_t hs,
                             size_t count, int GROUP)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t t = 0; t < count; t += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; /* head g */
        __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                  /* head g + 1 */
        for (size_t i = 0; i < hs; i++) {
            /* a whole half block: slots past count hold stale keys, whose
             * scores are never stored */
            const uint16_t *row = keys + (t / 64 * hs + i) * 64 + t % 64;
            __m256i first = _mm256_loadu_si256((const __m256i *)row);
            __m256i second = _mm256_loadu_si256((const __m256i *)(row + 16));
            __m256 k0 = low_halves(first), k1 = high_halves(first);
            __m256 k2 = low_halves(second), k3 = high_halves(second);
            __m256 q = _mm256_set1_ps(query[i]);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(q, k0));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(q, k1));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(q, k2));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(q, k3));
            if (GROUP > 1) {
                q = _mm256_set1_ps(query[hs + i]);
                b0 = _mm256_add_ps(b0, _mm256_mul_ps(q, k0));
                b1 = _mm256_add_ps(b1, _mm256_mul_ps(q, k1));
                b2 = _mm256_add_ps(b2, _mm256_mul_ps(q, k2));
                b3 = _mm256_add_ps(b3, _mm256_mul_ps(q, k3));
            }
        }
        store_run(scores, t, count, one, a0, a1, a2, a3);
        if (GROUP > 1)
            store_run(scores + count, t, count, one, b0, b1, b2, b3);
    }
}

/* scores (count) = exp(scores - max); returns their sum in 16 lanes: two
 * vectors, lanes 0-7 and 8-15. */
static float softmax_numerators(float *scores, size_t count)
{
    __m256 largest = _mm256_set1_ps(largest_of(scores, count));
    __m256 lanes[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t t = 0; t < count; t += 8) {
        __m256i valid = lanes_below(t, count);
        __m256 score = _mm256_maskload_ps(scores + t, valid);
        __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(score, largest)), _mm256_castsi256_ps(valid));
        _mm256_maskstore_ps(scores + t, valid, e);
        lanes[t / 8 % 2] = _mm256_add_ps(lanes[t / 8 % 2], e); /* lanes past count add +0 */
    }
    /* halving: l + (l + 8), then + 4, + 2, + 1 */
    __m256 eight = _mm256_add_ps(lanes[0], lanes[1]);
    __m128 four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps(eight, 1));
    __m128 two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

/* out (G, hs) = e (G, count) @ values (count, hs) * inverse (G): sums over t
 * in index order; GROUP (1 or 2) heads share each value load, 32 columns
 * (one run of the cache, which every row holds whole) at a time. */
ALWAYS_INLINE void weighted_values(float *out, const float *e, const uint16_t *values, size_t hs,
                                   size_t count, const float *inverse, int GROUP)
{
    size_t stride = lf_kernel_value_stride(hs);
    for (size_t i = 0; i < hs; i += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; /* head g */
        __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                  /* head g + 1 */
        for (size_t t = 0; t < count; t++) {
            const uint16_t *row = values + t * stride + i;
            __m256i first = _mm256_loadu_si256((const __m256i *)row);
            __m256i second = _mm256_loadu_si256((const __m256i *)(row + 16));
            __m256 v0 = low_halves(first), v1 = high_halves(first);
            __m256 v2 = low_halves(second), v3 = high_halves(second);
            __m256 weight = _mm256_set1_ps(e[t]);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(weight, v0));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(weight, v1));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(weight, v2));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(weight, v3));
            if (GROUP > 1) {
                weight = _mm256_set1_ps(e[count + t]);
                b0 = _mm256_add_ps(b0, _mm256_mul_ps(weight, v0));
                b1 = _mm256_add_ps(b1, _mm256_mul_ps(weight, v1));
                b2 = _mm256_add_ps(b2, _mm256_mul_ps(weight, v2));
                b3 = _mm256_add_ps(b3, _mm256_mul_ps(weight, v3));
            }
        }
        store_run(out, i, hs, _mm256_set1_ps(inverse[0]), a0, a1, a2, a3);
        if (GROUP > 1)
            store_run(out + hs, i, hs, _mm256_set1_ps(inverse[1]), b0, b1, b2, b3);
    }
}

void lf_kernel_attend_avx2(float *out, const float *query, const uint16_t *keys,
                           const uint16_t *values, size_t group, size_t head_size, size_t count,
                           float *scratch)
{
    for (size_t g = 0; g < group; g += 2) {
        int pair = g + 1 < group;
        float *scores = scratch + g * count, inverse[2];
        if (pair)
            scores_of(scores, query + g * head_size, keys, head_size, count, 2);
        else
            scores_of(scores, query + g * head_size, keys, head_size, count, 1);
        for (int h = 0; h < (pair ? 2 : 1); h++)
            inverse[h] = 1.0f / softmax_numerators(scores + (size_t)h * count, count);
        if (pair)
            weighted_values(out + g * head_size, scores, values, head_size, count, inverse, 2);
        else
            weighted_values(out + g * head_size, scores, values, head_size, count, inverse, 1);
    }
}

void lf_kernel_swiglu_avx2(float *gate, const float *up, size_t count)
{
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    for (size_t i = 0; i < count; i += 8) {
        __m256i lanes = lanes_below(i, count);
        __m256 g = _mm256_maskload_ps(gate + i, lanes);
        __m256 e = exp8(_mm256_xor_ps(g, sign));
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_maskstore_ps(gate + i, lanes, _mm256_mul_ps(silu, _mm256_maskload_ps(up + i, lanes)));
    }
}

/* The weights vectorised, lf_frequencies_set's arithmetic as it is. */
void lf_kernel_distribution_avx2(lf_frequencies *table, const float *logits, uint32_t *weights)
{
    uint32_t count = table->symbol_count;
    __m256 largest = _mm256_set1_ps(largest_of(logits, count));
    for (uint32_t i = 0; i < count; i += 8) {
        __m256i lanes = lanes_below(i, count);
        __m256 x = _mm256_sub_ps(_mm256_maskload_ps(logits + i, lanes), largest);
        /* e^x 2^24 < 1 below x = -16.6, so a weight is 0 there: a trained
         * model's improbable tokens skip the exp */
        __m256i w = _mm256_setzero_si256();
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-17.0f), _CMP_GE_OQ)) &
            _mm256_movemask_ps(_mm256_castsi256_ps(lanes)))
            /* at most 2^24: a signed conversion is the unsigned one */
            w = _mm256_cvttps_epi32(_mm256_mul_ps(exp8(x), _mm256_set1_ps(16777216.0f)));
        _mm256_maskstore_epi32((int *)(weights + i), lanes, w);
    }
    (void)lf_frequencies_set(table, weights, count); /* cannot fail: the table has its size */
}
