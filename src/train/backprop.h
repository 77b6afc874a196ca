/* Forward and backward passes of the engine's transformer (model/transformer.h)
 * in float32, for training.
 *
 * The math is the engine's, step for step: token embedding; per layer
 * RMSNorm, query/key/value projections (grouped-query: query head h reads
 * key/value head h / (head_count / kv_head_count)), NeoX-style RoPE with the
 * engine's own angles (exact_math.h, so the rotations are the same bits),
 * causal softmax attention scaled by 1/sqrt(head_size), output projection,
 * residual; RMSNorm, SwiGLU (silu(gate) * up), down projection, residual;
 * final RMSNorm and logits against the tied embedding. Only the weights
 * differ: the engine quantizes them (and its activations) to int8.
 *
 * A batch is B sequences of T tokens, each at positions 0..T-1 (T at most
 * the context length: the engine's sliding window only matters beyond it).
 * Matrix products go to OpenBLAS (cblas_sgemm, its threads); the other
 * kernels split rows over lf_parallel_for, each row computed whole by one
 * thread, so their results never depend on the thread count. */
#ifndef LLMFUSE_TRAIN_BACKPROP_H
#define LLMFUSE_TRAIN_BACKPROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/transformer.h"

/* A target that contributes no loss: padding, SFT prompts. */
#define LF_TRAIN_NO_TARGET (-1)

typedef struct lf_train_batch {
    uint32_t rows, length; /* B sequences of T tokens */
    uint32_t *inputs;      /* (B, T) token ids */
    int32_t *targets;      /* (B, T) the token each position must predict, or LF_TRAIN_NO_TARGET */
} lf_train_batch;

/* Room for rows x length; rows and length are set to that. 0 or -ENOMEM. */
int64_t lf_train_batch_allocate(lf_train_batch *batch, uint32_t rows, uint32_t length);
void lf_train_batch_free(lf_train_batch *batch);

/* Cross-entropy summed over the counted targets of a batch. */
typedef struct lf_train_loss {
    double nats;
    uint64_t targets;
} lf_train_loss;

/* The activations of one batch, kept from the forward pass for the
 * backward pass, and the scratch the backward pass needs. */
typedef struct lf_train_network lf_train_network;

/* For batches of up to max_rows x max_length tokens (max_length at most the
 * context length). threads (>= 1) is used for the row kernels and set as
 * OpenBLAS's thread count, which is process-wide. 0, -EINVAL, -ENOMEM. */
int64_t lf_train_network_create(const lf_transformer_config *config, uint32_t max_rows,
                                uint32_t max_length, unsigned threads,
                                lf_train_network **network);
void lf_train_network_free(lf_train_network *network);

/* The kernels OpenBLAS chose for this CPU ("Haswell", "SkylakeX"...);
 * *behind_the_cpu when they are SSE-only kernels on a CPU with AVX2.
 * OpenBLAS 0.3.21 (Debian 12) takes a CPU model it does not know, such as
 * a Sapphire Rapids behind a hypervisor, for a Prescott: its SSE3 kernels
 * ran our training 4x slower there.  OPENBLAS_CORETYPE, read when the
 * library loads, overrides the choice. */
const char *lf_train_blas_kernels(bool *behind_the_cpu);

/* Runs the batch through the model whose parameters are in the
 * lf_transformer_tensors layout; fills loss. -EINVAL for a batch larger than
 * the network or a token outside the vocabulary. */
int64_t lf_train_forward(lf_train_network *network, const float *parameters,
                         const lf_train_batch *batch, lf_train_loss *loss);
/* The logits (B, T, vocab) of the last forward pass. */
const float *lf_train_network_logits(const lf_train_network *network);
/* Adds to gradients (the parameter layout) the gradient of the mean loss per
 * counted target of the last forward pass, which must have been of this
 * batch and these parameters. Overwrites the logits. */
void lf_train_backward(lf_train_network *network, const float *parameters,
                       const lf_train_batch *batch, float *gradients);

#endif
