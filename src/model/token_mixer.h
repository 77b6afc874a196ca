/* Mixes a language model's next-token distribution with adaptive token
 * statistics of the stream being coded (docs/FORMAT.md §5.7).
 *
 * The transformer sees 512 tokens; a long document repeats names, phrases
 * and layouts far beyond that, and a style (verse, a markup) the model was
 * not trained on. Counts of what followed the last 1 to 5 tokens in
 * this stream capture both, so the coded distribution is a linear mixture
 * of the model's and those counts', with weights learned online from the
 * stream's own coding cost (online gradient descent on log loss, one weight
 * set per kind of context). Everything is scalar code with a fixed order of
 * operations and the project's own exp, so both sides of the coder compute
 * the same integers on every machine. */
#ifndef LLMFUSE_MODEL_TOKEN_MIXER_H
#define LLMFUSE_MODEL_TOKEN_MIXER_H

#include <stdint.h>

#include "coder/frequencies.h"

typedef struct lf_token_mixer lf_token_mixer;

/* The largest vocabulary the mixer handles (token ids are kept in 16 bits). */
#define LF_TOKEN_MIXER_MAX_VOCAB 65536u

/* A mixer for a fresh stream: 0, -EINVAL (vocabulary too large) or -ENOMEM. */
int64_t lf_token_mixer_new(uint32_t vocab_size, lf_token_mixer **mixer);
void lf_token_mixer_free(lf_token_mixer *mixer);

/* What the model's logits are multiplied by before they become its table. */
float lf_token_mixer_sharpness(const lf_token_mixer *mixer);
/* mixed = the mixture of the model's table (made from logits times the
 * sharpness) and the stream's statistics (mixed must not be model);
 * remembers what the update needs: logits and model must stay unchanged
 * until lf_token_mixer_update. */
int64_t lf_token_mixer_predict(lf_token_mixer *mixer, const float *logits,
                               const lf_frequencies *model, lf_frequencies *mixed);
/* After token was coded with the last prediction: learns from it. */
void lf_token_mixer_update(lf_token_mixer *mixer, uint32_t token);

#endif
