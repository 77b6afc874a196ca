#include "train/adamw.h"

#include <math.h>
#include <stdbool.h>

double lf_train_learning_rate(double peak, uint64_t warmup, uint64_t steps, uint64_t step)
{
    if (step < warmup)
        return peak * (double)(step + 1) / (double)warmup;
    double final_rate = LF_TRAIN_FINAL_LEARNING_RATE * peak;
    if (steps <= warmup + 1)
        return final_rate;
    double progress = (double)(step - warmup) / (double)(steps - warmup - 1);
    if (progress > 1.0) /* steps beyond the planned ones stay at the floor */
        progress = 1.0;
    return final_rate + 0.5 * (peak - final_rate) * (1.0 + cos(M_PI * progress));
}

double lf_train_clip_gradients(float *gradients, size_t count)
{
    double squares = 0.0;
    for (size_t i = 0; i < count; i++)
        squares += (double)gradients[i] * gradients[i];
    double norm = sqrt(squares);
    if (norm > LF_TRAIN_CLIP_NORM) {
        float scale = (float)(LF_TRAIN_CLIP_NORM / norm);
        for (size_t i = 0; i < count; i++)
            gradients[i] *= scale;
    }
    return norm;
}

// parameters (count) -= learning_rate * (m_hat / (sqrt(v_hat) + epsilon) + decay * parameters)
static void update_tensor(float *parameters, const float *gradients, float *first_moments,
                          float *second_moments, size_t count, float learning_rate, float decay,
                          float first_correction, float second_correction)
{
    const float beta1 = (float)LF_TRAIN_ADAM_BETA1, beta2 = (float)LF_TRAIN_ADAM_BETA2;
    for (size_t i = 0; i < count; i++) {
        float gradient = gradients[i];
        float m = first_moments[i] = beta1 * first_moments[i] + (1.0f - beta1) * gradient;
        float v = second_moments[i] =
            beta2 * second_moments[i] + (1.0f - beta2) * gradient * gradient;
        float m_hat = m / first_correction, v_hat = v / second_correction;
        parameters[i] -= learning_rate * (m_hat / (sqrtf(v_hat) + (float)LF_TRAIN_ADAM_EPSILON) +
                                          decay * parameters[i]);
    }
}

void lf_train_adamw_update(const lf_transformer_tensor *tensors, size_t tensor_count,
                           float *parameters,
                           const float *gradients, float *first_moments, float *second_moments,
                           double learning_rate, uint64_t step)
{
    float first_correction = (float)(1.0 - pow(LF_TRAIN_ADAM_BETA1, (double)step));
    float second_correction = (float)(1.0 - pow(LF_TRAIN_ADAM_BETA2, (double)step));
    for (size_t t = 0; t < tensor_count; t++) {
        size_t offset = tensors[t].offset, size = (size_t)tensors[t].rows * tensors[t].columns;
        update_tensor(parameters + offset, gradients + offset, first_moments + offset,
                      second_moments + offset, size, (float)learning_rate,
                      tensors[t].matrix ? (float)LF_TRAIN_WEIGHT_DECAY : 0.0f, first_correction,
                      second_correction);
    }
}
