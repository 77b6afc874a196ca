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

/* ---- copying what the prompt holds ----------------------------------------- */

/* An answer's new bytes are copies: a change's of its operation line's
 * values (a written file's body holds the data, a made entry's path and
 * name come from the operation's path, a symlink's target, a rename's new
 * path), a read's of the state. A small model copies the words it was
 * trained on and rewrites the others (`second line` came out as `second
 * sign`), so while the answer's last bytes match bytes inside such a
 * span, the tokens that go on with those bytes get copy_bias added to
 * their logits: the pointer half of a pointer-generator decoder (See et
 * al., 2017) with a constant weight. Matching is on bytes, so how the
 * prompt tokenized them does not matter, and stops at a span's end. */
enum {
    COPY_MATCH_MIN = 2,  /* bytes a match needs: one byte matches everywhere */
    COPY_MATCH_MAX = 64, /* a longer match predicts the same */
    COPY_PLACES_MAX = 8, /* places a match may be found at and still predict */
};

/* [start, start + length) of a generator's copy_source */
typedef struct copy_span {
    size_t start, length;
} copy_span;

/* ---- generators ----------------------------------------------------------- */

struct lf_generator {
    const lf_generate_model *model;
    lf_generate_model *owned_model; /* lf_generator_open's */
    uint32_t prompt_rows;
    lf_transformer_cache *cache;
    lf_team *team;                       /* the threads sharing each step */
    lf_transformer_workspace *workspace; /* prompt_rows rows */
    lf_tokenizer_encoder *encoder;
    lf_transformer_cache **caches; /* prompt_rows copies of cache: lf_transformer_step's rows */
    float *logits;                 /* (prompt_rows, vocabulary) */
    float *last_logits;            /* the row of logits the last prediction used */
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
    float copy_bias; /* added to the tokens that go on copying a span */
    lf_buffer copy_source; /* the bytes copies come from, */
    lf_buffer copy_spans;  /* ...as copy_span items: a copy goes on to its span's end */
    lf_buffer written; /* the completion's bytes so far, for copy_predictions */
};

void lf_generator_free(lf_generator *generator)
{
    if (!generator)
        return;
    lf_transformer_cache_free(generator->cache);
    lf_transformer_workspace_free(generator->workspace);
    lf_team_free(generator->team);
    lf_tokenizer_encoder_free(generator->encoder);
    free(generator->caches);
    free(generator->logits);
    lf_token_array_free(&generator->prompt);
    lf_token_array_free(&generator->completion);
    lf_token_array_free(&generator->greedy);
    lf_buffer_free(&generator->choices);
    lf_buffer_free(&generator->written);
    lf_buffer_free(&generator->copy_source);
    lf_buffer_free(&generator->copy_spans);
    lf_guard_memory_free(&generator->guard_memory);
    lf_guard_plan_free(&generator->guard_plan);
    lf_generate_model_close(generator->owned_model);
    free(generator);
}

/* One per core, up to what a step is worth sharing among. */
static unsigned step_threads_default(void)
{
    unsigned cores = lf_parallel_default_threads();
    return cores < LF_TRANSFORMER_STEP_THREADS ? cores : LF_TRANSFORMER_STEP_THREADS;
}

int64_t lf_generator_new(const lf_generate_model *model, uint32_t prompt_rows, unsigned threads,
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
        status = lf_team_new(threads ? threads : step_threads_default(), &created->team);
    if (status == 0)
        status = lf_transformer_workspace_new(transformer, rows, created->team, &created->workspace);
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
    created->copy_bias = LF_GENERATE_COPY_BIAS;
    *generator = created;
    return 0;
}

int64_t lf_generator_open(const char *path, lf_generator **generator, lf_diagnostic *diagnostic)
{
    lf_generate_model *model = NULL;
    int64_t status = lf_generate_model_open(path, &model, diagnostic);
    if (status == 0)
        status = lf_generator_new(model, 0, 0, generator);
    if (status < 0) {
        lf_generate_model_close(model);
        return status;
    }
    (*generator)->owned_model = model;
    return 0;
}

/* Adds bytes to copy from as a span of their own. */
static int64_t add_span(lf_generator *generator, const uint8_t *bytes, size_t length)
{
    copy_span span = {generator->copy_source.length, length};
    int64_t status = lf_buffer_append(&generator->copy_source, bytes, length);
    if (status == 0)
        status = lf_buffer_append(&generator->copy_spans, &span, sizeof span);
    return status;
}

/* Adds XML text as the bytes it stands for: a read answers with a file's
 * bytes, the state holds them escaped (`&lt;`, `&#10;`). */
static int64_t add_unescaped_span(lf_generator *generator, const uint8_t *text, size_t length)
{
    static const struct {
        const char *entity;
        uint8_t byte;
    } entities[] = {{"&lt;", '<'},    {"&gt;", '>'},    {"&amp;", '&'}, {"&quot;", '"'},
                    {"&apos;", '\''}, {"&#10;", '\n'}, {"&#13;", '\r'}, {"&#09;", '\t'}};
    size_t start = generator->copy_source.length;
    int64_t status = 0;
    for (size_t at = 0; status == 0 && at < length;) {
        size_t i = 0, count = sizeof entities / sizeof *entities, entity_length = 0;
        for (; text[at] == '&' && i < count; i++) {
            entity_length = strlen(entities[i].entity);
            if (entity_length <= length - at && memcmp(text + at, entities[i].entity, entity_length) == 0)
                break;
        }
        bool entity = text[at] == '&' && i < count;
        status = lf_buffer_append(&generator->copy_source, entity ? &entities[i].byte : text + at, 1);
        at += entity ? entity_length : 1;
    }
    copy_span span = {start, generator->copy_source.length - start};
    if (status == 0)
        status = lf_buffer_append(&generator->copy_spans, &span, sizeof span);
    return status;
}

/* The quoted value after `key` in the operation line [0, end). */
static int64_t add_quoted_span(lf_generator *generator, const uint8_t *prompt, size_t end,
                               const char *key)
{
    size_t key_length = strlen(key);
    for (size_t at = 0; at + key_length <= end; at++) {
        if (memcmp(prompt + at, key, key_length) != 0)
            continue;
        size_t start = at + key_length, stop = start;
        while (stop < end && prompt[stop] != '\'')
            stop++;
        return stop < end ? add_span(generator, prompt + start, stop - start) : 0;
    }
    return 0;
}

/* A write's data: raw bytes that may hold anything, so its end is where
 * `, data_length=N` follows exactly N bytes of it. Sets [*start, *end)
 * to where it lies in the prompt, both 0 without data. */
static int64_t add_data_span(lf_generator *generator, const uint8_t *prompt, size_t prompt_size,
                             size_t *start, size_t *end)
{
    static const char key[] = ", data=", length_key[] = ", data_length=";
    size_t key_length = sizeof key - 1, length_key_length = sizeof length_key - 1;
    *start = *end = 0;
    size_t first = 0;
    while (first + key_length <= prompt_size && memcmp(prompt + first, key, key_length) != 0)
        first++;
    if (first + key_length > prompt_size)
        return 0;
    first += key_length;
    for (size_t at = first; at + length_key_length <= prompt_size; at++) {
        if (memcmp(prompt + at, length_key, length_key_length) != 0)
            continue;
        size_t length = 0, digit = at + length_key_length;
        while (digit < prompt_size && prompt[digit] >= '0' && prompt[digit] <= '9' &&
               length <= prompt_size)
            length = length * 10 + (size_t)(prompt[digit++] - '0');
        if (length == at - first) {
            *start = first;
            *end = at;
            return add_span(generator, prompt + first, length);
        }
    }
    return 0;
}

/* Where the state begins: after the first "\n---\n" from `from`. */
static size_t state_start(const uint8_t *prompt, size_t prompt_size, size_t from)
{
    static const char separator[] = "\n---\n";
    size_t length = sizeof separator - 1;
    for (size_t at = from; at + length <= prompt_size; at++)
        if (memcmp(prompt + at, separator, length) == 0)
            return at + length;
    return prompt_size;
}

/* The bodies of the state's files, as the new state writes them again. */
static int64_t add_body_spans(lf_generator *generator, const uint8_t *state, size_t state_size)
{
    static const char open[] = "<body", close[] = "</body>";
    int64_t status = 0;
    for (size_t at = 0; status == 0 && at + sizeof open - 1 <= state_size; at++) {
        if (memcmp(state + at, open, sizeof open - 1) != 0)
            continue;
        size_t text = at + sizeof open - 1;
        while (text < state_size && state[text] != '>')
            text++;
        if (text >= state_size || state[text - 1] == '/') /* <body /> */
            continue;
        size_t stop = ++text;
        while (stop + sizeof close - 1 <= state_size &&
               memcmp(state + stop, close, sizeof close - 1) != 0)
            stop++;
        if (stop + sizeof close - 1 > state_size)
            break;
        status = add_span(generator, state + text, stop - text);
        at = stop;
    }
    return status;
}

/* Where a prompt's answer copies from (docs/FORMAT.md §4.1). A change's
 * new state writes its operation line's values (a file's data, a made
 * entry's path, a symlink's target, a rename's new path) and the bodies
 * of the old state's files, around and beside the data; a read answers
 * with bytes of the state (a body, a symlink's target, names). */
static int64_t find_copy_spans(lf_generator *generator, const uint8_t *prompt, size_t prompt_size)
{
    generator->copy_source.length = 0;
    generator->copy_spans.length = 0;
    if (generator->copy_bias == 0 || prompt_size < 4)
        return 0;
    if (memcmp(prompt, "<R>\n", 4) == 0) {
        size_t state = state_start(prompt, prompt_size, 4);
        return add_unescaped_span(generator, prompt + state, prompt_size - state);
    }
    size_t data_start, data_end;
    int64_t status = add_data_span(generator, prompt, prompt_size, &data_start, &data_end);
    /* the quoted values come before the data, or there is none */
    size_t line_end = data_start ? data_start : state_start(prompt, prompt_size, 4);
    if (status == 0)
        status = add_quoted_span(generator, prompt, line_end, "('");
    if (status == 0)
        status = add_quoted_span(generator, prompt, line_end, ", new_path='");
    if (status == 0)
        status = add_quoted_span(generator, prompt, line_end, ", target='");
    size_t state = state_start(prompt, prompt_size, data_end ? data_end : 4);
    if (status == 0)
        status = add_body_spans(generator, prompt + state, prompt_size - state);
    return status;
}

/* The places where the completion's last bytes match inside a span for
 * the longest stretch (COPY_MATCH_MIN bytes or more): the bytes that go
 * on from each to its span's end, into continuations (empty where the
 * match reaches the end: that copy is done). Returns how many (at most
 * COPY_PLACES_MAX), 0 without a match or with more places than that: a
 * match found all over the prompt predicts nothing. */
static size_t copy_predictions(const lf_generator *generator,
                               copy_span continuations[COPY_PLACES_MAX])
{
    const uint8_t *source = generator->copy_source.data;
    const copy_span *spans = (const copy_span *)generator->copy_spans.data;
    size_t span_count = generator->copy_spans.length / sizeof *spans;
    const uint8_t *written = generator->written.data;
    size_t written_length = generator->written.length, best = 0, places = 0;
    for (size_t s = 0; s < span_count; s++) {
        const uint8_t *span = source + spans[s].start;
        size_t span_length = spans[s].length;
        /* a match ending at span[end - 1], going on at span[end] */
        for (size_t end = 1; end <= span_length; end++) {
            size_t match = 0;
            while (match < COPY_MATCH_MAX && match < end && match < written_length &&
                   span[end - 1 - match] == written[written_length - 1 - match])
                match++;
            if (match < COPY_MATCH_MIN || match < best)
                continue;
            if (match > best)
                places = 0;
            best = match;
            if (places < COPY_PLACES_MAX)
                continuations[places] = (copy_span){spans[s].start + end, span_length - end};
            places++;
        }
    }
    return places <= COPY_PLACES_MAX ? places : 0;
}

/* Adds copy_bias to every token whose bytes start a continuation: any of
 * them keeps the answer on bytes the prompt holds. */
static void bias_copying(lf_generator *generator)
{
    copy_span continuations[COPY_PLACES_MAX];
    size_t places = copy_predictions(generator, continuations);
    if (places == 0)
        return;
    const lf_tokenizer *tokenizer = generator->model->tokenizer;
    uint32_t vocabulary = generator->model->transformer->config.vocab_size;
    for (uint32_t token = 0; token < vocabulary; token++) {
        size_t length;
        const uint8_t *bytes = lf_tokenizer_token_bytes(tokenizer, token, &length);
        if (!bytes || (token >= LF_TOKEN_ENDOFTEXT && token < LF_TOKEN_FIRST_MERGE))
            continue; /* special tokens are named by their bytes, never copied */
        for (size_t i = 0; i < places; i++)
            if (length <= continuations[i].length &&
                memcmp(bytes, generator->copy_source.data + continuations[i].start, length) == 0) {
                generator->last_logits[token] += generator->copy_bias;
                break;
            }
    }
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

int64_t lf_generator_fits(lf_generator *generator, const uint8_t *prompt, size_t prompt_size,
                          const uint8_t *answer, size_t answer_size)
{
    lf_token_array *tokens = &generator->prompt; /* scratch: every completion starts it afresh */
    tokens->count = 0;
    int64_t status = lf_generate_encode_prompt(generator->encoder, prompt, prompt_size, tokens);
    if (status >= 0)
        status = lf_tokenizer_encode(generator->encoder, answer, answer_size, tokens);
    if (status < 0)
        return status;
    size_t example = tokens->count + 1; /* + the final <|endoftext|> */
    return example - 1 <= generator->model->transformer->config.context_length;
}

void lf_generator_copy_bias(lf_generator *generator, float bias)
{
    generator->copy_bias = bias;
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
        bias_copying(generator);
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
            status = lf_tokenizer_decode(generator->model->tokenizer, &token, 1, &generator->written, NULL);
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
    if (status == 0)
        status = lf_tokenizer_decode(generator->model->tokenizer, completion->ids, completion->count,
                                     &generator->written, NULL);
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
    generator->written.length = 0;
    bool ended = false;
    int64_t status = find_copy_spans(generator, prompt, prompt_size);
    if (status >= 0)
        status = lf_generate_encode_prompt(generator->encoder, prompt, prompt_size,
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
