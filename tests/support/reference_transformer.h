/* A straightforward double-precision transformer of the engine's
 * architecture: the yardstick of the engine's forward pass
 * (test_transformer) and of the trainer's gradients (test_train_gradients).
 * Full recomputation, one sequence, no quantization, libm's exp and log. */
#ifndef LLMFUSE_TEST_REFERENCE_TRANSFORMER_H
#define LLMFUSE_TEST_REFERENCE_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "model/transformer_file.h"

/* out (length, vocab) = log-probabilities of the token after each position
 * of tokens (length). parameters are laid out as lf_transformer_tensors
 * says; every position attends to itself and the context_length - 1
 * before it, as the engine's sliding key/value window does. */
void lf_test_reference_log_probabilities(const lf_transformer_config *config,
                                         const double *parameters, const uint32_t *tokens,
                                         size_t length, double *out);

#endif
