/* Supervised fine-tuning examples: the simulator's prompt/completion JSON
 * lines (docs/FORMAT.md §4) as token sequences with the loss on the
 * completion only (the layout is docs/FORMAT.md §6.2).
 *
 * One example is one batch row, padded to the longest row of its batch:
 * packing several into a row would let an example attend to the ones
 * before it, which the engine, starting every operation afresh, never
 * sees. Examples are visited in epochs, each a permutation drawn from the
 * run's seed and the epoch number (and grouped by length), so (epoch,
 * next) is the whole cursor. */
#ifndef LLMFUSE_TRAIN_SFT_H
#define LLMFUSE_TRAIN_SFT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "model/tokenizer.h"
#include "train/backprop.h"

/* Appends one example's tokens to out:
 *   <|endoftext|> <R> "\n" prompt-rest completion <|endoftext|>
 * where everything before the completion is lf_generate_encode_prompt's
 * (engine/generate.h: the engine feeds the same tokens), and prompt-rest
 * and the completion are encoded separately (so the completion's tokens
 * never depend on the prompt's last bytes). *completion_start is the
 * index, within the example, of its first completion token. Returns the
 * example's token count or -ENOMEM. */
int64_t lf_train_sft_encode(lf_tokenizer_encoder *encoder, const uint8_t *prompt,
                            size_t prompt_size, const uint8_t *completion, size_t completion_size,
                            lf_token_array *out, size_t *completion_start);

typedef struct lf_train_sft_set {
    lf_token_array tokens;     /* the kept examples, back to back */
    size_t *starts;            /* count + 1: example i is tokens[starts[i] .. starts[i + 1]) */
    size_t *completion_starts; /* count: index of the first completion token within the example */
    size_t count;
    size_t skipped; /* examples whose inputs were longer than max_length */
} lf_train_sft_set;

/* Reads a JSON-lines file: objects with string members "prompt" and
 * "completion" ("completion_encoding": "base64" marks a base64 completion,
 * decoded first; other members are ignored). Examples needing more than
 * max_length input positions are skipped and counted. -LF_EFORMAT with the
 * line's number, -errno, -ENOMEM. */
int64_t lf_train_sft_load(const char *path, const lf_tokenizer *tokenizer, uint32_t max_length,
                          lf_train_sft_set *set, lf_diagnostic *diagnostic);
void lf_train_sft_free(lf_train_sft_set *set);

/* The first 8 bytes of an example token file. */
#define LF_TRAIN_SFT_MAGIC "llmfsft1"

/* Writes the set as an example token file (docs/FORMAT.md §6.4), all at
 * once (lf_file_write_atomic): what scripts/train-gpu fine-tunes on, so that
 * a GPU sees exactly the tokens and targets this trainer would. */
int64_t lf_train_sft_save(const lf_train_sft_set *set, const char *path, lf_diagnostic *diagnostic);

/* Fills rows 0 .. rows - 1 of batch with the examples examples[0 .. rows)
 * and sets batch->rows to rows and batch->length to the longest example's
 * input count: inputs are an example's tokens but the last, targets the next
 * token where that is a completion token or the final <|endoftext|>, and
 * LF_TRAIN_NO_TARGET elsewhere; <|pad|> fills the rest of a row. The batch
 * must have room for rows x the longest example. */
void lf_train_sft_fill_batch(const lf_train_sft_set *set, const size_t *examples, uint32_t rows,
                             lf_train_batch *batch);

/* The order of epoch `epoch`: a permutation of the set's examples drawn
 * from seed and epoch alone. With group_batches > 0, each run of
 * group_batches * batch_rows examples of that permutation is then sorted by
 * length (ties by index), cut into batches of batch_rows, and the batches
 * of the run are shuffled among themselves: a batch pads every row to its
 * longest example, and the simulator's examples range from about 50 to 500
 * tokens, so random batches are about half padding (docs/DECISIONS.md). */
void lf_train_sft_epoch_order(const lf_train_sft_set *set, uint64_t seed, uint64_t epoch,
                              uint32_t batch_rows, uint32_t group_batches, size_t *order);

#endif
