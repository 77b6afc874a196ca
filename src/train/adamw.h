/* The optimizer: AdamW with decoupled weight decay, a warmup + cosine
 * learning-rate schedule and clipping by the global gradient norm.
 *
 * Parameters, gradients and both moments are float32 arrays in the
 * lf_transformer_tensors layout. Matrices (the embedding included) are
 * decayed; norm weights are not: decaying them would pull every
 * normalization towards zero, which no amount of data asks for. */
#ifndef LLMFUSE_TRAIN_ADAMW_H
#define LLMFUSE_TRAIN_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "model/transformer_file.h"

#define LF_TRAIN_ADAM_BETA1 0.9
#define LF_TRAIN_ADAM_BETA2 0.95
#define LF_TRAIN_ADAM_EPSILON 1e-8
#define LF_TRAIN_WEIGHT_DECAY 0.1
#define LF_TRAIN_CLIP_NORM 1.0
/* The cosine ends at this fraction of the peak learning rate. */
#define LF_TRAIN_FINAL_LEARNING_RATE 0.1

/* The learning rate of step (0-based) of `steps`: linear warmup from
 * peak / warmup to peak over the first `warmup` steps, then half a cosine
 * down to LF_TRAIN_FINAL_LEARNING_RATE * peak at the last step. */
double lf_train_learning_rate(double peak, uint64_t warmup, uint64_t steps, uint64_t step);

/* Scales gradients (count floats) so that their global L2 norm is at most
 * LF_TRAIN_CLIP_NORM; returns the norm before clipping. */
double lf_train_clip_gradients(float *gradients, size_t count);

/* One AdamW update of every parameter of the model's tensors (from
 * lf_transformer_tensors); step is 1-based (the bias corrections of the
 * moments depend on it). */
void lf_train_adamw_update(const lf_transformer_tensor *tensors, size_t tensor_count,
                           float *parameters,
                           const float *gradients, float *first_moments, float *second_moments,
                           double learning_rate, uint64_t step);

#endif
