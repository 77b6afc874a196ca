/* Completions from a fine-tuned transformer: the engine side of the
 * model-implemented filesystem. A prompt of the dataset (docs/FORMAT.md
 * §4.1: `<R>` or `<W>`, the operation line, `---`, the state's XML) goes in;
 * the model's greedy continuation up to <|endoftext|> comes out (file bytes,
 * JSON attributes, `ERROR: ENOENT`, or a write's new XML state).
 *
 * The prompt is tokenized exactly as fine-tuning tokenized it
 * (lf_generate_encode_prompt is the one implementation; the trainer's
 * lf_train_sft_encode calls it), so the model continues from the very
 * tokens it learned to continue.
 *
 * A loaded model is read-only and may be shared by any number of threads;
 * each thread makes its own generator (key/value cache, scratch, tokenizer
 * cache). Generation is deterministic: the engine's logits are bit-exact
 * (transformer.h), argmax ties go to the lowest id, and the prompt's rows
 * per step never change a result.
 *
 * The answers to <W> prompts are guarded (engine/guard.h): where the
 * model's first choice would make a file's body disagree with the size it
 * wrote, the most probable token that does not is taken instead. Every
 * answer is decoded with copying (lf_generator_copy_bias). */
#ifndef LLMFUSE_ENGINE_GENERATE_H
#define LLMFUSE_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

/* Prompt tokens fed to the model per step when a generator is not told
 * otherwise: several rows of one cache read the weights and the cache once
 * for all of them (see lf_transformer_step). */
#define LF_GENERATE_PROMPT_ROWS 32

/* Appends a prompt's tokens to out, the part of a fine-tuning example
 * before its completion (docs/FORMAT.md §6.2):
 *   <|endoftext|> <R> encode("\n") encode(prompt-rest)
 * where a prompt starting with "<R>\n" or "<W>\n" has those 4 bytes
 * replaced by the special token and the encoding of "\n"; any other prompt
 * is encoded whole after <|endoftext|>. Returns the tokens appended, or
 * -ENOMEM (out then keeps its count). */
int64_t lf_generate_encode_prompt(lf_tokenizer_encoder *encoder, const uint8_t *prompt,
                                  size_t prompt_size, lf_token_array *out);

/* A transformer with its tokenizer, loaded from a GGUF model file. */
typedef struct lf_generate_model lf_generate_model;

/* -errno for a file that cannot be read, -LF_EFORMAT (the diagnostic says
 * why; callers name the file) for one that is not a transformer model: not
 * GGUF, a tokenizer file, a tokenizer that does not match the model's
 * vocabulary. */
int64_t lf_generate_model_open(const char *path, lf_generate_model **model,
                               lf_diagnostic *diagnostic);
void lf_generate_model_close(lf_generate_model *model);
const lf_transformer *lf_generate_model_transformer(const lf_generate_model *model);
const lf_tokenizer *lf_generate_model_tokenizer(const lf_generate_model *model);

/* One thread's generation state. */
typedef struct lf_generator lf_generator;

/* A generator on a loaded model, which must outlive it. prompt_rows:
 * prompt tokens fed per step, 0 for LF_GENERATE_PROMPT_ROWS (1 feeds one
 * token at a time: the same results, slower); threads: how many share each
 * step (0: one per core, at most LF_TRANSFORMER_STEP_THREADS; the same
 * results whatever the count). */
int64_t lf_generator_new(const lf_generate_model *model, uint32_t prompt_rows, unsigned threads,
                         lf_generator **generator);
/* A generator that loads and owns its model (lf_generate_model_open's
 * errors), stepping on every core: for a user that asks one thing at a
 * time, such as a filesystem server. */
int64_t lf_generator_open(const char *path, lf_generator **generator, lf_diagnostic *diagnostic);
void lf_generator_free(lf_generator *generator);
/* Guarded <W> answers (on, the default) or the model's plain greedy ones
 * (off: how `llmfuse eval --unguarded` measures the model alone). */
void lf_generator_guard_states(lf_generator *generator, bool on);

/* Copying: while the completion's last bytes (two or more) match bytes
 * of the prompt where its answer copies from (a change's operation
 * values: paths, a symlink's target, a write's data; a read's state),
 * the tokens that go on with those bytes get this added to their logits:
 * a fixed-weight pointer mix, since a small model rewrites words it did
 * not see in training instead of copying them. Chosen on held-out data
 * (docs/DECISIONS.md, "Copying what the prompt holds"). */
#define LF_GENERATE_COPY_BIAS 6.0f
/* The bias for the next completions (LF_GENERATE_COPY_BIAS until set;
 * 0 turns copying off). */
void lf_generator_copy_bias(lf_generator *generator, float bias);

/* Whether a prompt and an answer to it fit the model's context as one
 * example, by the rule fine-tuning keeps examples by (n tokens, the
 * prompt's leading <|endoftext|> and the final one included: n - 1 <=
 * context): a longer answer would be decoded with the prompt's start out
 * of the window, which the model never learned. 1 yes, 0 no, or -ENOMEM. */
int64_t lf_generator_fits(lf_generator *generator, const uint8_t *prompt, size_t prompt_size,
                          const uint8_t *answer, size_t answer_size);

/* What one completion did. */
typedef struct lf_generate_stats {
    size_t prompt_tokens;     /* fed to the model, the leading <|endoftext|> included */
    size_t completion_tokens; /* generated, the final <|endoftext|> not counted */
    size_t guard_changes;     /* tokens the guard chose instead of the model's first choice */
    bool ended;               /* stopped at <|endoftext|>, not at max_tokens */
} lf_generate_stats;

/* A departure from greedy decoding: completion token `position` is `token`
 * instead of the most probable one. */
typedef struct lf_generate_branch {
    uint32_t position;
    uint32_t token;
    float margin; /* how far token's logit was below the chosen one's */
} lf_generate_branch;

/* Starts a fresh sequence, feeds the prompt's tokens (a prompt longer than
 * the context slides through it, as every longer input does) and appends
 * to completion the bytes of the greedy continuation: the most probable
 * token each step (the lowest id among equals; for a guarded prompt, among
 * the tokens the guard allows), until <|endoftext|> or max_tokens tokens. With a branch (from lf_generate_doubtful_choices after
 * the greedy completion of the same prompt), the completion is the greedy
 * one's up to branch->position, then branch->token, then greedy again: a
 * second opinion where the model hesitated. A special token other than
 * <|endoftext|> is written as its name ("<W>"): the model has made a
 * mistake, which the caller sees. stats (may be NULL) receives the token
 * counts. Returns 0, -EINVAL for a branch past the greedy completion or
 * one the guard refuses, or -ENOMEM (completion then keeps its length). */
int64_t lf_generate_complete(lf_generator *generator, const uint8_t *prompt, size_t prompt_size,
                             const lf_generate_branch *branch, uint32_t max_tokens,
                             lf_buffer *completion, lf_generate_stats *stats);

/* The model's `count` most doubtful choices in the last greedy completion
 * (branch NULL): the positions where the runner-up token's logit came
 * closest to the chosen one's, closest first (the earlier among equals),
 * each with its runner-up. Writes at most `count` to out (fewer for a
 * shorter completion) and returns how many. Deterministic: the logits are
 * bit-exact. */
size_t lf_generate_doubtful_choices(const lf_generator *generator, size_t count,
                                    lf_generate_branch *out);
/* The logits (the model's vocabulary size of them) the last completion
 * chose its last token from, copying's bias included; after max_tokens 0,
 * those of the token after the prompt. */
const float *lf_generate_last_logits(const lf_generator *generator);

#endif
