/* The shipped default model (models/base.gguf), built into the programs so
 * that `llmencode` needs no model file (models/README.md says how it was
 * made). */
#ifndef LLMFUSE_MODEL_BASE_MODEL_H
#define LLMFUSE_MODEL_BASE_MODEL_H

#include <stdint.h>

/* The GGUF image and its size in bytes. */
const uint8_t *lf_base_model_image(uint64_t *size);

#endif
