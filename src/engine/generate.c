#include "engine/generate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/guard.h"
#include "model/transformer_file.h"

int64_t lf_generate_encode_prompt(lf_tokenizer_encoder *encoder, const uint8_t *prompt,
                                  size_t prompt_size, lf_token_array *out)
{
    static const struct {
        const char *text;
        uint32_t token;
    } prefixes[] = {{"<R>\n", LF_TOKEN_READ}, {"<W>\n", LF_TOKEN_WRITE}};
    size_t first = out->count;
    const uint32_t end = LF_TOKEN_ENDOFTEXT;
    int64_t status = lf_token_array_append(out, &end, 1);
    for (size_t i = 0; status >= 0 && i < sizeof prefixes / sizeof *prefixes; i++)
        if (prompt_size >= 4 && memcmp(prompt, prefixes[i].text, 4) == 0) {
            status = lf_token_array_append(out, &prefixes[i].token, 1);
            if (status >= 0)
                status = lf_tokenizer_encode(encoder, (const uint8_t *)"\n", 1, out);
            prompt += 4;
            prompt_size -= 4;
            break;
        }
    if (status >= 0)
        status = lf_tokenizer_encode(encoder, prompt, prompt_size, out);
    if (status < 0) {
        out->count = first;
        return status;
    }
    return (int64_t)(out->count - first);
}

/* ---- the model ---------------------------------------------------------- */

struct lf_generate_model {
    lf_gguf *file; /* mapped: the transformer's weights point into it */
    lf_transformer *transformer;
    lf_tokenizer *tokenizer;
};

void lf_generate_model_close(lf_generate_model *model)
{
    if (!model)
        return;
    lf_transformer_free(model->transformer);
    lf_tokenizer_free(model->tokenizer);
    lf_gguf_close(model->file);
    free(model);
}

/* Loads the transformer and its tokenizer from an opened file. A tokenizer
 * file is a GGUF file of the same architecture without tensors: say so,
 * rather than name the first metadata key it lacks. */
static int64_t load_parts(lf_generate_model *model, lf_diagnostic *diagnostic)
{
    if (lf_gguf_tensor_count(model->file) == 0)
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "not a transformer model: the file has no tensors (a tokenizer file?)");
    int64_t status = lf_transformer_load(model->file, &model->transformer, diagnostic);
    if (status == 0)
        status = lf_tokenizer_read_gguf(model->file, &model->tokenizer, diagnostic);
    if (status == 0 &&
        lf_tokenizer_vocab_size(model->tokenizer) != model->transformer->config.vocab_size)
        status = lf_fail(diagnostic, -LF_EFORMAT, "the tokenizer has %u tokens, the model %u",
                         lf_tokenizer_vocab_size(model->tokenizer),
                         model->transformer->config.vocab_size);
    return status;
}

int64_t lf_generate_model_open(const char *path, lf_generate_model **model,
                               lf_diagnostic *diagnostic)
{
    lf_generate_model *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    int64_t status = lf_gguf_open_file(path, &created->file, diagnostic);
    if (status == 0)
        status = load_parts(created, diagnostic);
    if (status < 0) {
        lf_generate_model_close(created);
        return status;
    }
    *model = created;
    return 0;
}

const lf_transformer *lf_generate_model_transformer(const lf_generate_model *model)
{
    return model->transformer;
}

const lf_tokenizer *lf_generate_model_tokenizer(const lf_generate_model *model)
{
    return model->tokenizer;
}

/* ---- generators ----------------------------------------------------------- */

struct lf_generator {
    const lf_generate_model *model;
    lf_generate_model *owned_model; /* lf_generator_open's */
    uint32_t prompt_rows;
    lf_transformer_cache *cache;
    lf_transformer_workspace *workspace; /* prompt_rows rows */
    lf_tokenizer_encoder *encoder;
    lf_transformer_cache **caches; /* prompt_rows copies of cache: lf_transformer_step's rows */
    float *logits;                 /* (prompt_rows, vocabulary) */
    const float *last_logits;      /* the row of logits the last prediction used */
    lf_token_array prompt, completion;
    /* the last greedy completion, and the positions decided in it (one
     * more than its tokens when it ended); at each position where the
     * model had a choice (the guard allowed two tokens or more) the
     * runner-up token: where branches start */
    lf_token_array greedy;
    size_t decided;
    lf_buffer choices; /* lf_generate_branch items */
    size_t choice_count;
    bool guard_states;  /* guard the answers to <W> prompts (the default) */
    bool guarding;      /* this completion is guarded */
    lf_guard guard;     /* ...and this is where the guard is in it */
    lf_guard_memory guard_memory;
    lf_guard_plan guard_plan; /* what the guard knows of this prompt's old state */
    size_t guard_changes;
};

void lf_generator_free(lf_generator *generator)
{
    if (!generator)
        return;
    lf_transformer_cache_free(generator->cache);
    lf_transformer_workspace_free(generator->workspace);
    lf_tokenizer_encoder_free(generator->encoder);
    free(generator->caches);
    free(generator->logits);
    lf_token_array_free(&generator->prompt);
    lf_token_array_free(&generator->completion);
    lf_token_array_free(&generator->greedy);
    lf_buffer_free(&generator->choices);
    lf_guard_memory_free(&generator->guard_memory);
    lf_guard_plan_free(&generator->guard_plan);
    lf_generate_model_close(generator->owned_model);
    free(generator);
}

int64_t lf_generator_new(const lf_generate_model *model, uint32_t prompt_rows,
                         lf_generator **generator)
{
    lf_generator *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    const lf_transformer *transformer = model->transformer;
    created->model = model;
    created->prompt_rows = prompt_rows ? prompt_rows : LF_GENERATE_PROMPT_ROWS;
    size_t rows = created->prompt_rows;
    int64_t status = lf_transformer_cache_new(transformer, &created->cache);
    if (status == 0)
        status = lf_transformer_workspace_new(transformer, rows, &created->workspace);
    if (status == 0)
        status = lf_tokenizer_encoder_create(model->tokenizer, &created->encoder);
    created->caches = malloc(rows * sizeof *created->caches);
    created->logits = malloc(rows * transformer->config.vocab_size * sizeof *created->logits);
    if (status == 0 && (!created->caches || !created->logits))
        status = -ENOMEM;
    if (status < 0) {
        lf_generator_free(created);
        return status;
    }
    for (size_t i = 0; i < rows; i++)
        created->caches[i] = created->cache;
    created->last_logits = created->logits;
    created->guard_states = true;
    *generator = created;
    return 0;
}

int64_t lf_generator_open(const char *path, lf_generator **generator, lf_diagnostic *diagnostic)
{
    lf_generate_model *model = NULL;
    int64_t status = lf_generate_model_open(path, &model, diagnostic);
    if (status == 0)
        status = lf_generator_new(model, 0, generator);
    if (status < 0) {
        lf_generate_model_close(model);
        return status;
    }
    (*generator)->owned_model = model;
    return 0;
}

/* Feeds tokens to the model, up to prompt_rows per step; last_logits ends
 * as the prediction after the last of them. */
static int64_t feed(lf_generator *generator, const uint32_t *tokens, size_t count)
{
    const lf_transformer *transformer = generator->model->transformer;
    size_t vocabulary = transformer->config.vocab_size;
    for (size_t at = 0; at < count;) {
        size_t rows = count - at < generator->prompt_rows ? count - at : generator->prompt_rows;
        int64_t status = lf_transformer_step(transformer, generator->workspace, generator->caches,
                                             tokens + at, rows, generator->logits);
        if (status < 0)
            return status;
        generator->last_logits = generator->logits + (rows - 1) * vocabulary;
        at += rows;
    }
    return 0;
}

void lf_generator_guard_states(lf_generator *generator, bool on)
{
    generator->guard_states = on;
}

/* Moves the guard past tokens already chosen; false when it refuses one
 * (a branch that the guarded greedy completion did not offer), and then
 * the rest of the completion is not guarded. */
static bool guard_follow(lf_generator *generator, const uint32_t *ids, size_t count)
{
    for (size_t i = 0; generator->guarding && i < count; i++) {
        size_t length;
        const uint8_t *bytes = lf_tokenizer_token_bytes(generator->model->tokenizer, ids[i], &length);
        if (!bytes || !lf_guard_take(&generator->guard, bytes, length)) {
            generator->guarding = false;
            return false;
        }
    }
    return true;
}

static int64_t record_choice(lf_generator *generator, uint32_t position, uint32_t runner_up,
                             float margin)
{
    lf_generate_branch choice = {.position = position, .token = runner_up, .margin = margin};
    int64_t status = lf_buffer_append(&generator->choices, &choice, sizeof choice);
    generator->choice_count += status == 0;
    return status;
}

/* Greedy decoding from the last prediction, appending to
 * generator->completion; *ended when the model chose <|endoftext|>. With
 * record_choices, each step's runner-up is kept. */
static int64_t decode_greedily(lf_generator *generator, uint32_t max_tokens, bool record_choices,
                               bool *ended)
{
    uint32_t vocabulary = generator->model->transformer->config.vocab_size;
    lf_token_array *completion = &generator->completion;
    *ended = false;
    while (completion->count < max_tokens) {
        uint32_t token, runner_up, unguarded, unused;
        const lf_guard *guard = generator->guarding ? &generator->guard : NULL;
        if (!lf_guard_best_two(guard, generator->model->tokenizer, generator->last_logits,
                               vocabulary, &token, &runner_up))
            break; /* the guard allows nothing: cannot happen with 256 byte tokens */
        if (guard) {
            lf_guard_best_two(NULL, NULL, generator->last_logits, vocabulary, &unguarded, &unused);
            generator->guard_changes += unguarded != token;
        }
        /* a token the guard forces is no choice: branching there gives
         * the greedy completion again */
        int64_t status = 0;
        if (record_choices) {
            generator->decided++;
            if (runner_up != token)
                status = record_choice(generator, (uint32_t)completion->count, runner_up,
                                       generator->last_logits[token] - generator->last_logits[runner_up]);
        }
        if (status < 0)
            return status;
        if (token == LF_TOKEN_ENDOFTEXT) {
            *ended = true;
            break;
        }
        status = lf_token_array_append(completion, &token, 1);
        if (status == 0)
            guard_follow(generator, &token, 1); /* allowed, so refused only after a trial gave up */
        if (status == 0 && completion->count < max_tokens) /* no prediction past the last */
            status = feed(generator, &token, 1);
        if (status < 0)
            return status;
    }
    return 0;
}

/* The completion's start on a branch: the greedy tokens before it, then
 * its token, fed to the model in one pass (rows per step never change a
 * result); *ended when that token is <|endoftext|>. */
static int64_t start_branch(lf_generator *generator, const lf_generate_branch *branch,
                            uint32_t max_tokens, bool *ended)
{
    lf_token_array *completion = &generator->completion;
    if (branch->position >= max_tokens || branch->position >= generator->decided)
        return -EINVAL;
    *ended = branch->token == LF_TOKEN_ENDOFTEXT;
    int64_t status = lf_token_array_append(completion, generator->greedy.ids, branch->position);
    if (status == 0 && !*ended)
        status = lf_token_array_append(completion, &branch->token, 1);
    if (status == 0 && !guard_follow(generator, completion->ids, completion->count))
        status = -EINVAL;
    if (status == 0 && !*ended && completion->count < max_tokens)
        status = feed(generator, completion->ids, completion->count);
    return status;
}

int64_t lf_generate_complete(lf_generator *generator, const uint8_t *prompt, size_t prompt_size,
                             const lf_generate_branch *branch, uint32_t max_tokens,
                             lf_buffer *completion, lf_generate_stats *stats)
{
    generator->prompt.count = 0;
    generator->completion.count = 0;
    if (!branch) {
        generator->decided = 0;
        generator->choice_count = 0;
        generator->choices.length = 0;
    }
    lf_transformer_cache_reset(generator->cache);
    /* every <W> answer is guarded, with a plan where one is made; <R>
     * answers where a plan gives their shape (getattr, readdir) */
    int64_t planned = generator->guard_states
                          ? lf_guard_plan_prompt(&generator->guard_plan, prompt, prompt_size)
                          : 1;
    if (planned < 0)
        return planned;
    generator->guarding = planned == 0 || (generator->guard_states && prompt_size >= 4 &&
                                           memcmp(prompt, "<W>\n", 4) == 0);
    lf_guard_start(&generator->guard, &generator->guard_memory,
                   planned == 0 ? &generator->guard_plan : NULL);
    generator->guard_changes = 0;
    bool ended = false;
    int64_t status = lf_generate_encode_prompt(generator->encoder, prompt, prompt_size,
                                               &generator->prompt);
    if (status >= 0)
        status = feed(generator, generator->prompt.ids, generator->prompt.count);
    if (status >= 0 && branch)
        status = start_branch(generator, branch, max_tokens, &ended);
    if (status >= 0 && !ended)
        status = decode_greedily(generator, max_tokens, !branch, &ended);
    if (status >= 0 && !branch) {
        generator->greedy.count = 0;
        status = lf_token_array_append(&generator->greedy, generator->completion.ids,
                                       generator->completion.count);
    }
    if (status >= 0) /* every id came from the model's own vocabulary */
        status = lf_tokenizer_decode(generator->model->tokenizer, generator->completion.ids,
                                     generator->completion.count, completion, NULL);
    if (status < 0)
        return status;
    if (stats)
        *stats = (lf_generate_stats){.prompt_tokens = generator->prompt.count,
                                     .completion_tokens = generator->completion.count,
                                     .guard_changes = generator->guard_changes,
                                     .ended = ended};
    return 0;
}

size_t lf_generate_doubtful_choices(const lf_generator *generator, size_t count,
                                    lf_generate_branch *out)
{
    size_t written = 0;
    for (size_t i = 0; i < generator->choice_count; i++) {
        /* insertion into the sorted out[0..written), dropping what falls off */
        const lf_generate_branch *choice = (const lf_generate_branch *)generator->choices.data + i;
        size_t at = written;
        while (at > 0 && choice->margin < out[at - 1].margin)
            at--;
        if (at >= count)
            continue;
        size_t moved = written < count ? written : count - 1;
        memmove(out + at + 1, out + at, (moved - at) * sizeof *out);
        out[at] = *choice;
        if (written < count)
            written++;
    }
    return written;
}

const float *lf_generate_last_logits(const lf_generator *generator)
{
    return generator->last_logits;
}
