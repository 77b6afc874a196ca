/* The context-mixing model (cm.h) behind the model interface (model.h). */
#ifndef LLMFUSE_MODEL_CM_MODEL_H
#define LLMFUSE_MODEL_CM_MODEL_H

#include "model/model.h"

/* Its fingerprint hashes a description of the model and its memory level,
 * so archives made with one level refuse to decode with another. */
int64_t lf_cm_model_new(const char *name, unsigned memory_level, lf_model **model);

#endif
