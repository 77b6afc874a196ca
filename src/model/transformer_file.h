/* Transformer models as files: the parameter layout shared by the random
 * initialiser, the trainer and the GGUF writer, and loading a GGUF file
 * into an inference-ready lf_transformer (docs/FORMAT.md §5). */
#ifndef LLMFUSE_MODEL_TRANSFORMER_FILE_H
#define LLMFUSE_MODEL_TRANSFORMER_FILE_H

#include <stdbool.h>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

/* One parameter tensor in the flat float layout: `rows` x `columns` floats
 * at `offset`; matrices are stored int8 with per-row scales, vectors
 * (norm weights) as float. */
typedef struct lf_transformer_tensor {
    char name[48]; /* llama-style: token_embd.weight, blk.0.attn_q.weight, ... */
    uint32_t rows, columns;
    bool matrix;
    size_t offset;
} lf_transformer_tensor;

/* Fills tensors (when non-NULL) and returns how many there are. */
size_t lf_transformer_tensors(const lf_transformer_config *config, lf_transformer_tensor *tensors);
size_t lf_transformer_parameter_count(const lf_transformer_config *config);

/* A small default shape: what `llmfuse model init` makes with no config. */
lf_transformer_config lf_transformer_default_config(uint32_t vocab_size);
/* Normal(0, 0.02) matrices (output projections scaled down by depth), unit
 * norm weights; the same parameters for the same seed everywhere. */
void lf_transformer_init_parameters(const lf_transformer_config *config, uint64_t seed,
                                    float *parameters);
/* Quantizes the matrices and writes config, tokenizer and tensors. */
int64_t lf_transformer_save(const lf_transformer_config *config, const float *parameters,
                            const lf_tokenizer *tokenizer, const char *path,
                            lf_diagnostic *diagnostic);
/* Validates shapes, types and sizes against the file's configuration. The
 * model points into the mapped file: keep `file` open while it is used. */
int64_t lf_transformer_load(const lf_gguf *file, lf_transformer **model, lf_diagnostic *diagnostic);
void lf_transformer_free(lf_transformer *model);

/* int8 values and per-row scales of a (rows, columns) float matrix:
 * scale = max|row| / 127, value = round(x / scale). */
void lf_transformer_quantize_matrix(const float *matrix, uint32_t rows, uint32_t columns,
                                    int8_t *values, float *scales);

#endif
