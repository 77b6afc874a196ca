/* Byte-level BPE tokenizer (docs/FORMAT.md §5.4 and §5.5).
 *
 * Ids 0..255 are the raw bytes, so every byte sequence encodes and
 * decode(encode(x)) == x.  Ids 256..259 are the special tokens below; the
 * caller inserts them by id, and encoding plain bytes never produces them.
 * Every further id is a merge of two earlier tokens, in the order training
 * learned them (its rank).
 *
 * Encoding first splits the input into chunks (the "llmfuse-bytes-v1"
 * pre-tokenizer, lf_tokenizer_chunk_end) and merges only inside a chunk, so a
 * chunk's tokens never depend on its neighbours: an encoder caches the
 * tokens of every chunk it has seen.  Within a chunk, the pair of adjacent
 * tokens with the lowest rank is merged (all its occurrences, left to
 * right) until no pair has a rank; that replays training exactly.
 *
 * Integers only: the same bytes and tokenizer give the same ids on every
 * machine. */
#ifndef LLMFUSE_MODEL_TOKENIZER_H
#define LLMFUSE_MODEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "model/gguf.h"

enum {
    LF_TOKEN_ENDOFTEXT = 256, /* <|endoftext|> */
    LF_TOKEN_READ = 257,      /* <R>: the engine's read prompt */
    LF_TOKEN_WRITE = 258,     /* <W>: the engine's write prompt */
    LF_TOKEN_PAD = 259,       /* <|pad|> */
    LF_TOKEN_FIRST_MERGE = 260,
};

/* Chunks are at most this long, and so are tokens. */
#define LF_TOKENIZER_MAX_CHUNK 64
/* Largest vocabulary: far beyond any model we train, and a bound on what a
 * file may make a loader allocate. */
#define LF_TOKENIZER_MAX_VOCAB (1u << 20)
#define LF_TOKENIZER_PRETOKENIZER "llmfuse-bytes-v1"

typedef struct lf_tokenizer lf_tokenizer;

/* Merge k makes token LF_TOKEN_FIRST_MERGE + k from two earlier tokens. */
typedef struct lf_tokenizer_merge {
    uint32_t left, right;
} lf_tokenizer_merge;

typedef struct lf_token_array {
    uint32_t *ids;
    size_t count, capacity;
} lf_token_array;

/* 0 or -ENOMEM (tokens unchanged). */
int lf_token_array_append(lf_token_array *tokens, const uint32_t *ids, size_t count);
void lf_token_array_free(lf_token_array *tokens);

/* The end of the chunk that starts at `start` (< size): the pre-tokenizer.
 * Bytes fall in four classes: letters (A-Z, a-z, '_' and every byte >= 0x80,
 * so UTF-8 sequences and identifiers stay whole), digits, whitespace and
 * everything else. A chunk is one of
 *   - an optional single space, then a run of letters, of 1-3 digits, or of
 *     other bytes;
 *   - a run of whitespace, leaving its last space to the next chunk when
 *     that space is followed by a non-space;
 * and never longer than LF_TOKENIZER_MAX_CHUNK bytes. */
size_t lf_tokenizer_chunk_end(const uint8_t *data, size_t size, size_t start);

/* A tokenizer from its merges: -LF_EFORMAT (with a diagnostic) when a merge
 * names a token not made before it, repeats an earlier pair, or makes a
 * token longer than LF_TOKENIZER_MAX_CHUNK; -E2BIG beyond
 * LF_TOKENIZER_MAX_VOCAB. */
int64_t lf_tokenizer_from_merges(const lf_tokenizer_merge *merges, uint32_t merge_count,
                                 lf_tokenizer **tokenizer, lf_diagnostic *diagnostic);
void lf_tokenizer_free(lf_tokenizer *tokenizer);

uint32_t lf_tokenizer_vocab_size(const lf_tokenizer *tokenizer);
uint32_t lf_tokenizer_merge_count(const lf_tokenizer *tokenizer);
const lf_tokenizer_merge *lf_tokenizer_merges(const lf_tokenizer *tokenizer);
/* The bytes a token stands for (a special token: its name, "<R>"). NULL for
 * an id outside the vocabulary. */
const uint8_t *lf_tokenizer_token_bytes(const lf_tokenizer *tokenizer, uint32_t id,
                                        size_t *length);
/* The id of a special token by name ("<|endoftext|>", "<R>", "<W>",
 * "<|pad|>"), or -ENOENT. */
int64_t lf_tokenizer_special_id(const lf_tokenizer *tokenizer, const char *name);

/* Encoding state: the chunk cache. One per thread; the tokenizer itself is
 * read-only and may be shared. */
typedef struct lf_tokenizer_encoder lf_tokenizer_encoder;

int64_t lf_tokenizer_encoder_create(const lf_tokenizer *tokenizer,
                                    lf_tokenizer_encoder **encoder);
void lf_tokenizer_encoder_free(lf_tokenizer_encoder *encoder);
/* Appends the tokens of data to out; returns how many, or -ENOMEM (out
 * then keeps its count). */
int64_t lf_tokenizer_encode(lf_tokenizer_encoder *encoder, const uint8_t *data, size_t size,
                            lf_token_array *out);
/* Appends the bytes of the tokens to out. -LF_EFORMAT (with a diagnostic,
 * and out unchanged) for an id outside the vocabulary. */
int64_t lf_tokenizer_decode(const lf_tokenizer *tokenizer, const uint32_t *ids, size_t count,
                            lf_buffer *out, lf_diagnostic *diagnostic);

/* Adds the tokenizer's metadata (the tokenizer.* and llmfuse.tokenizer.*
 * keys of docs/FORMAT.md §5.4) to a GGUF file being written. */
int64_t lf_tokenizer_write_gguf(const lf_tokenizer *tokenizer, lf_gguf_writer *writer,
                                lf_diagnostic *diagnostic);
/* Reads and validates those keys: every token must be what its merge or
 * byte says, the types and special tokens must be ours. */
int64_t lf_tokenizer_read_gguf(const lf_gguf *file, lf_tokenizer **tokenizer,
                               lf_diagnostic *diagnostic);
/* A tokenizer file: a GGUF file with the tokenizer's metadata only (what
 * llama.cpp calls vocab-only), written atomically. */
int64_t lf_tokenizer_save(const lf_tokenizer *tokenizer, const char *path,
                          lf_diagnostic *diagnostic);
/* The tokenizer of a GGUF file (a tokenizer file or a model). */
int64_t lf_tokenizer_load(const char *path, lf_tokenizer **tokenizer, lf_diagnostic *diagnostic);

/* Training (tokenizer_train.c): counts the chunks of any number of inputs,
 * then learns merges until the vocabulary has vocab_size tokens or no pair
 * of adjacent tokens occurs twice. The most frequent pair wins; ties go to
 * the lowest (left, right) ids, so training is deterministic. */
typedef struct lf_tokenizer_trainer lf_tokenizer_trainer;

int64_t lf_tokenizer_trainer_create(lf_tokenizer_trainer **trainer);
void lf_tokenizer_trainer_free(lf_tokenizer_trainer *trainer);
/* Counts the chunks of one input (chunks never span two inputs): 0,
 * -ENOMEM, or -E2BIG beyond 2^31 distinct chunks. */
int64_t lf_tokenizer_trainer_add(lf_tokenizer_trainer *trainer, const uint8_t *data, size_t size);
/* -EINVAL for a vocab_size below LF_TOKEN_FIRST_MERGE or above
 * LF_TOKENIZER_MAX_VOCAB. */
int64_t lf_tokenizer_trainer_finish(lf_tokenizer_trainer *trainer, uint32_t vocab_size,
                                    lf_tokenizer **tokenizer, lf_diagnostic *diagnostic);
/* Both steps for one input. */
int64_t lf_tokenizer_train(const uint8_t *corpus, size_t size, uint32_t vocab_size,
                           lf_tokenizer **tokenizer, lf_diagnostic *diagnostic);

#endif
