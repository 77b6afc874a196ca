/* The portable kernels (the reference every variant must equal bit for bit),
 * weight packing, and the choice of variant. */
#include "model/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/exact_math.h"
#include "model/kernels_simd.h"

size_t lf_kernel_row_stride(size_t columns) { return (columns + 3) & ~(size_t)3; }

size_t lf_kernel_packed_size(size_t rows, size_t columns)
{
    return (rows + 15) / 16 * 16 * lf_kernel_row_stride(columns);
}

void lf_kernel_pack(const int8_t *values, size_t rows, size_t columns, int8_t *packed)
{
    size_t groups = lf_kernel_row_stride(columns) / 4;
    memset(packed, 0, lf_kernel_packed_size(rows, columns));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < columns; c++)
            packed[((r / 16 * groups + c / 4) * 16 + r % 16) * 4 + c % 4] = values[r * columns + c];
}

static void quantize_portable(const float *x, size_t batch, size_t columns, size_t stride, int8_t *q,
                              float *scales)
{
    for (size_t b = 0; b < batch; b++) {
        const float *row = x + b * columns;
        float largest = 0.0f;
        for (size_t c = 0; c < columns; c++) {
            float magnitude = row[c] < 0 ? -row[c] : row[c];
            if (magnitude > largest)
                largest = magnitude;
        }
        float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
        float inverse = 1.0f / scale;
        int8_t *out = q + b * stride;
        for (size_t c = 0; c < columns; c++) {
            float v = row[c] * inverse;
            /* |v| <= 127 up to rounding; the clamp makes it certain */
            int rounded = (int)(v + (v >= 0 ? 0.5f : -0.5f));
            out[c] = (int8_t)(rounded > 127 ? 127 : rounded < -127 ? -127 : rounded);
        }
        memset(out + columns, 0, stride - columns);
        scales[b] = scale;
    }
}

/* Weight rows outermost so that each row is read once per batch. */
static void matmul_portable(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                            const lf_int8_matrix *weights, size_t first, size_t end)
{
    size_t columns = weights->columns, stride = lf_kernel_row_stride(columns);
    for (size_t o = first; o < end; o++) {
        const int8_t *w = weights->values + (size_t)o * columns;
        for (size_t b = 0; b < batch; b++) {
            const int8_t *x = xq + b * stride;
            int32_t sum = 0;
            for (size_t c = 0; c < columns; c++)
                sum += (int32_t)x[c] * (int32_t)w[c];
            out[b * weights->rows + o] = (float)sum * x_scales[b] * weights->scales[o];
        }
    }
}

static void attend_portable(float *out, const float *query, const uint16_t *keys,
                            const uint16_t *values, size_t group, size_t head_size, size_t count,
                            float *scores)
{
    enum { BLOCK = LF_KERNEL_KEY_BLOCK };
    for (size_t g = 0; g < group; g++) {
        const float *q = query + g * head_size;
        float *o = out + g * head_size;
        for (size_t t = 0; t < count; t++)
            scores[t] = 0.0f;
        for (size_t start = 0; start < count; start += BLOCK) {
            size_t length = count - start < BLOCK ? count - start : BLOCK;
            for (size_t i = 0; i < head_size; i++) {
                const uint16_t *key_row = keys + (start / BLOCK * head_size + i) * BLOCK;
                for (size_t t = 0; t < length; t++)
                    scores[start + t] += q[i] * lf_bf16_expand(key_row[lf_kernel_cache_index(t)]);
            }
        }
        float largest = scores[0];
        for (size_t t = 1; t < count; t++)
            if (scores[t] > largest)
                largest = scores[t];
        float lanes[16] = {0};
        for (size_t t = 0; t < count; t++) {
            scores[t] = lf_exact_expf(scores[t] - largest);
            lanes[t % 16] += scores[t];
        }
        for (size_t width = 8; width > 0; width /= 2)
            for (size_t l = 0; l < width; l++)
                lanes[l] += lanes[l + width];
        for (size_t i = 0; i < head_size; i++)
            o[i] = 0.0f;
        for (size_t t = 0; t < count; t++) {
            const uint16_t *value_row = values + t * lf_kernel_value_stride(head_size);
            for (size_t i = 0; i < head_size; i++)
                o[i] += scores[t] * lf_bf16_expand(value_row[lf_kernel_cache_index(i)]);
        }
        float inverse = 1.0f / lanes[0];
        for (size_t i = 0; i < head_size; i++)
            o[i] *= inverse;
    }
}

static void swiglu_portable(float *gate, const float *up, size_t count)
{
    for (size_t i = 0; i < count; i++)
        gate[i] = gate[i] / (1.0f + lf_exact_expf(-gate[i])) * up[i];
}

static void distribution_portable(lf_frequencies *table, const float *logits, uint32_t *weights)
{
    uint32_t count = table->symbol_count;
    float largest = logits[0];
    for (uint32_t i = 1; i < count; i++)
        if (logits[i] > largest)
            largest = logits[i];
    for (uint32_t i = 0; i < count; i++)
        weights[i] = (uint32_t)(lf_exact_expf(logits[i] - largest) * 16777216.0f);
    (void)lf_frequencies_set(table, weights, count); /* cannot fail: the table has its size */
}

static const lf_kernels portable = {
    .name = "portable",
    .quantize = quantize_portable,
    .matmul = matmul_portable,
    .attend = attend_portable,
    .swiglu = swiglu_portable,
    .distribution = distribution_portable,
};

#ifndef LLMFUSE_PORTABLE

static const lf_kernels avx2 = {
    .name = "avx2",
    .quantize = lf_kernel_quantize_avx2,
    .matmul = lf_kernel_matmul_avx2,
    .attend = lf_kernel_attend_avx2,
    .swiglu = lf_kernel_swiglu_avx2,
    .distribution = lf_kernel_distribution_avx2,
};

static const lf_kernels avx512 = {
    .name = "avx512-vnni",
    .quantize = lf_kernel_quantize_avx512,
    .matmul = lf_kernel_matmul_avx512,
    .attend = lf_kernel_attend_avx512,
    .swiglu = lf_kernel_swiglu_avx512,
    .distribution = lf_kernel_distribution_avx512,
};
#endif

/* Fastest first, portable last. */
static const lf_kernels *available[3];
static size_t available_count;
static const lf_kernels *chosen;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose_variant(void)
{
#ifndef LLMFUSE_PORTABLE
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        available[available_count++] = &avx512;
    if (__builtin_cpu_supports("avx2"))
        available[available_count++] = &avx2;
#endif
    available[available_count++] = &portable;
    chosen = available[0];
    const char *wanted = getenv("LLMFUSE_KERNELS");
    for (size_t i = 0; wanted && i < available_count; i++)
        if (strcmp(available[i]->name, wanted) == 0)
            chosen = available[i];
}

const lf_kernels *lf_kernels_chosen(void)
{
    pthread_once(&choose_once, choose_variant);
    return chosen;
}

size_t lf_kernels_available(const lf_kernels **variants, size_t capacity)
{
    pthread_once(&choose_once, choose_variant);
    size_t count = 0;
    for (size_t i = available_count; i-- > 0 && count < capacity;)
        variants[count++] = available[i];
    return count;
}

void lf_kernel_rmsnorm(float *out, const float *x, const float *weight, size_t size, float epsilon)
{
    float squares = 0.0f;
    for (size_t i = 0; i < size; i++)
        squares += x[i] * x[i];
    float inverse = 1.0f / sqrtf(squares / (float)size + epsilon); /* sqrtf is correctly rounded */
    for (size_t i = 0; i < size; i++)
        out[i] = x[i] * inverse * weight[i];
}
