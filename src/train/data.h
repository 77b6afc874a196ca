/* The pretraining corpus: a .tok file of token ids (docs/FORMAT.md §6.1),
 * memory-mapped, and the batches drawn from it.
 *
 * Training rows are windows of T + 1 consecutive tokens at uniformly random
 * starts (the first T are the inputs, the last T the targets), drawn with
 * the trainer's lf_random, so the random state is the whole data cursor.
 * Evaluation reads fixed windows spread evenly over the held-out tokens, so
 * every evaluation of a run sees the same tokens. */
#ifndef LLMFUSE_TRAIN_DATA_H
#define LLMFUSE_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/random.h"
#include "model/tokenizer.h"
#include "train/backprop.h"

typedef struct lf_train_tokens {
    const uint32_t *ids;
    size_t count;
    void *mapping;
    size_t mapping_size;
} lf_train_tokens;

/* Maps a .tok file and checks it: a whole number of ids, each below
 * vocab_size. -LF_EFORMAT (with the offending position), -errno. */
int64_t lf_train_tokens_open(const char *path, uint32_t vocab_size, lf_train_tokens *tokens,
                             lf_diagnostic *diagnostic);
void lf_train_tokens_close(lf_train_tokens *tokens);

/* A stretch of token ids: the training part of a corpus or its held-out
 * part. */
typedef struct lf_train_span {
    const uint32_t *ids;
    size_t count;
} lf_train_span;

/* Fills every row of batch (its rows and length as set) with a window at a
 * uniformly random start; span must hold at least length + 1 tokens. */
void lf_train_sample_windows(const lf_train_span *span, lf_random *random, lf_train_batch *batch);

/* How many evaluation windows of length + 1 tokens fit in span, at most
 * max_tokens / length of them (at least one when one fits). */
size_t lf_train_eval_window_count(const lf_train_span *span, uint32_t length, uint64_t max_tokens);
/* Fills batch->rows rows with evaluation windows first, first + 1, ... of
 * window_count spread evenly over span, from its start to its end. */
void lf_train_fill_eval_windows(const lf_train_span *span, size_t window_count, size_t first,
                                lf_train_batch *batch);

/* Bytes each token stands for, for bits per byte: its text's length, and 0
 * for the special tokens, which stand for no text. lengths has vocab_size
 * entries. */
void lf_train_token_byte_lengths(const lf_tokenizer *tokenizer, uint8_t *lengths);

/* Writes the .tok file of a corpus: each input is a document, and every
 * document is preceded and the last one followed by <|endoftext|>.
 * Inputs are tokenized in parallel on `threads` threads; the file is
 * replaced atomically. Returns the number of tokens written. */
int64_t lf_train_tokenize_files(const lf_tokenizer *tokenizer, const char *const *paths,
                                size_t count, unsigned threads, const char *output,
                                lf_diagnostic *diagnostic);

#endif
