#include "model/kernels.h"

#include <math.h>
#include <pthread.h>

typedef void (*matmul_fn)(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                          const lf_int8_matrix *weights);

void lf_kernel_quantize_rows(const float *x, size_t rows, size_t columns, int8_t *q, float *scales)
{
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * columns;
        float largest = 0.0f;
        for (size_t c = 0; c < columns; c++) {
            float magnitude = row[c] < 0 ? -row[c] : row[c];
            if (magnitude > largest)
                largest = magnitude;
        }
        float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
        float inverse = 1.0f / scale;
        for (size_t c = 0; c < columns; c++) {
            float v = row[c] * inverse;
            /* round half away from zero; |v| <= 127 up to rounding */
            int rounded = (int)(v + (v >= 0 ? 0.5f : -0.5f));
            q[r * columns + c] = (int8_t)(rounded > 127 ? 127 : rounded < -127 ? -127 : rounded);
        }
        scales[r] = scale;
    }
}

/* Weight rows outermost so each row is read once per batch. */
void lf_kernel_matmul_int8_portable(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                            const lf_int8_matrix *weights)
{
    size_t columns = weights->columns;
    for (uint32_t o = 0; o < weights->rows; o++) {
        const int8_t *w = weights->values + (size_t)o * columns;
        for (size_t b = 0; b < batch; b++) {
            const int8_t *x = xq + b * columns;
            int32_t sum = 0;
            for (size_t c = 0; c < columns; c++)
                sum += (int32_t)x[c] * (int32_t)w[c];
            out[b * weights->rows + o] = (float)sum * x_scales[b] * weights->scales[o];
        }
    }
}

#ifndef LLMFUSE_PORTABLE
void lf_kernel_matmul_int8_avx512(float *out, const int8_t *xq, const float *x_scales,
                                  size_t batch, const lf_int8_matrix *weights);
#endif

static matmul_fn chosen_matmul = lf_kernel_matmul_int8_portable;
static const char *chosen_name = "portable";
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose_variant(void)
{
#ifndef LLMFUSE_PORTABLE
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) {
        chosen_matmul = lf_kernel_matmul_int8_avx512;
        chosen_name = "avx512-vnni";
    }
#endif
}

void lf_kernel_matmul_int8(float *out, const int8_t *xq, const float *x_scales, size_t batch,
                           const lf_int8_matrix *weights)
{
    pthread_once(&choose_once, choose_variant);
    chosen_matmul(out, xq, x_scales, batch, weights);
}

const char *lf_kernel_variant(void)
{
    pthread_once(&choose_once, choose_variant);
    return chosen_name;
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
