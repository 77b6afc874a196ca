/* What defines a training run, and its JSON form: the text a checkpoint
 * keeps (docs/FORMAT.md §6.3), so that a resumed run continues with the
 * settings it started with. The model's shape uses the keys of
 * `llmfuse model init --config`, read here for both. */
#ifndef LLMFUSE_TRAIN_SETTINGS_H
#define LLMFUSE_TRAIN_SETTINGS_H

#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "model/transformer.h"

typedef struct lf_train_settings {
    lf_transformer_config model;
    /* The data: a token corpus (eval_data optional: without it the corpus's
     * last 1% is held out) or SFT examples (sft_eval optional). */
    char *data, *eval_data, *sft, *sft_eval;
    char *tokenizer; /* a new run's tokenizer file, unless init brings one */
    char *init;      /* where the parameters started: a model or run directory; NULL: random */
    char *output; /* the GGUF model written at the end and every output_every steps */
    uint64_t steps, warmup_steps, seed;
    uint32_t batch_rows, sequence_length; /* B sequences of T tokens per step; T 0: the context */
    double learning_rate;                 /* the peak */
    uint64_t eval_every, eval_tokens;     /* evaluation: period, and targets read at most */
    uint64_t checkpoint_every, output_every;
    /* SFT: batches per run of examples sorted by length (0: none; see
     * lf_train_sft_epoch_order). Runs saved before it existed read 0. */
    uint32_t sft_group_batches;
    /* What the data held when the run started (tokens; examples kept), so
     * that a resumed run can tell it reads the same data. */
    uint64_t data_tokens, eval_data_tokens, sft_examples, sft_eval_examples;
} lf_train_settings;

/* Defaults for everything but the model and the data, as `llmfuse train -h`
 * lists them except the warmup (0 here; the command makes it steps / 20);
 * strings NULL. */
lf_train_settings lf_train_settings_defaults(void);
/* Deep copy (strings duplicated): 0 or -ENOMEM. */
int64_t lf_train_settings_copy(lf_train_settings *copy, const lf_train_settings *settings);
void lf_train_settings_free(lf_train_settings *settings);
/* Replaces a string setting with a copy of value (NULL clears it). */
int64_t lf_train_settings_set_string(char **setting, const char *value);

/* Appends the settings as one JSON object; vocab_size is left out (the
 * tokenizer beside them has it). */
int64_t lf_train_settings_to_json(const lf_train_settings *settings, lf_buffer *out);
/* Parses what lf_train_settings_to_json wrote; unknown or missing keys are
 * -LF_EFORMAT. model.vocab_size is left as it was. */
int64_t lf_train_settings_from_json(const char *text, size_t length, lf_train_settings *settings,
                                    lf_diagnostic *diagnostic);

/* Overrides fields of config from the JSON object in the file at path, with
 * the keys of `llmfuse model init --config` (context_length,
 * embedding_length, block_count, head_count, head_count_kv,
 * feed_forward_length, rope_freq_base, rms_epsilon); unknown keys and
 * values of the wrong kind are -LF_EFORMAT. */
int64_t lf_train_model_config_read(const char *path, lf_transformer_config *config,
                                   lf_diagnostic *diagnostic);

#endif
