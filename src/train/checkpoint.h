/* Run directories and starting points (docs/FORMAT.md §6.3).
 *
 * A run directory holds checkpoint.gguf: the settings, the tokenizer, the
 * step, the data cursor, and the float32 parameters and AdamW moments, all
 * in one file replaced atomically, so a run killed at any moment resumes
 * from its last complete checkpoint. Gradients are not kept: every step
 * starts from zero gradients. */
#ifndef LLMFUSE_TRAIN_CHECKPOINT_H
#define LLMFUSE_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "common/error.h"
#include "common/random.h"
#include "model/tokenizer.h"
#include "train/settings.h"

#define LF_TRAIN_CHECKPOINT_FILE "checkpoint.gguf"

/* Where a run is: steps done and the data cursor. */
typedef struct lf_train_progress {
    uint64_t step;
    lf_random random;              /* pretraining windows are drawn from it */
    uint64_t sft_epoch, sft_next;  /* SFT: the epoch and the next example of its order */
} lf_train_progress;

/* Writes run_directory/checkpoint.gguf atomically. The arrays have
 * lf_transformer_parameter_count(&settings->model) floats each. */
int64_t lf_train_checkpoint_write(const char *run_directory, const lf_train_settings *settings,
                                  const lf_tokenizer *tokenizer, const lf_train_progress *progress,
                                  const float *parameters, const float *first_moments,
                                  const float *second_moments, lf_diagnostic *diagnostic);

/* An open checkpoint: read its settings, tokenizer and progress, then its
 * arrays. */
typedef struct lf_train_checkpoint lf_train_checkpoint;

/* Opens run_directory/checkpoint.gguf and reads everything but the arrays
 * (settings replaces what it held; the tokenizer is the caller's to free).
 * -ENOENT when the directory has no checkpoint, -LF_EFORMAT when the file
 * is not one. */
int64_t lf_train_checkpoint_open(const char *run_directory, lf_train_checkpoint **checkpoint,
                                 lf_train_settings *settings, lf_tokenizer **tokenizer,
                                 lf_train_progress *progress, lf_diagnostic *diagnostic);
/* Copies the arrays out (a NULL destination skips one). */
void lf_train_checkpoint_read(const lf_train_checkpoint *checkpoint, float *parameters,
                              float *first_moments, float *second_moments);
void lf_train_checkpoint_close(lf_train_checkpoint *checkpoint);

/* The parameters of a starting point for a new run (--init): a run
 * directory's float32 parameters as they are, or a GGUF model's int8
 * matrices times their scales (fine-tuning then starts from the quantized
 * model). Fills config and tokenizer (the caller frees it) and allocates
 * *parameters (the caller frees them). */
int64_t lf_train_load_starting_point(const char *path, lf_transformer_config *config,
                                     lf_tokenizer **tokenizer, float **parameters,
                                     lf_diagnostic *diagnostic);

#endif
