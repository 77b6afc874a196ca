/* A GGUF transformer (transformer.h) with its tokenizer, behind the model
 * interface (model.h): each stream codes tokens, predicted in batches. */
#ifndef LLMFUSE_MODEL_TRANSFORMER_MODEL_H
#define LLMFUSE_MODEL_TRANSFORMER_MODEL_H

#include "model/model.h"

/* Its fingerprint is XXH64 of the file's bytes. */
int64_t lf_transformer_model_open(const char *path, lf_model **model, lf_diagnostic *diagnostic);
/* The same from a GGUF image in memory, borrowed for the model's life
 * (the built-in model); name is for messages. */
int64_t lf_transformer_model_open_image(const char *name, const uint8_t *image, uint64_t size,
                                        lf_model **model, lf_diagnostic *diagnostic);

#endif
