/* Greedy completion (engine/generate.h): the prompt is the training
 * example's prefix token for token, results never depend on the prompt's
 * rows per step, the generator, the thread or what it completed before,
 * and generation stops at <|endoftext|> or max_tokens.
 *
 * The models are small and random, with a context of 24 tokens so that
 * every prompt here slides through it; two are rigged to make the greedy
 * choice known: all embedding rows zero (every logit 0: ties), and all rows
 * one vector u with <|endoftext|>'s 2u (its logit about twice the others'),
 * or the byte '<''s 2u. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/random.h"
#include "engine/generate.h"
#include "model/transformer_file.h"
#include "sandbox.h"
#include "train/sft.h"

enum { CONTEXT = 24 };

typedef enum rigging { RANDOM, ZERO_EMBEDDING, END_FAVOURED, LESS_THAN_FAVOURED } rigging;

typedef struct fixture {
    char *directory;
    lf_tokenizer *tokenizer;
    lf_generate_model *model; /* RANDOM */
} fixture;

/* (parenthesised: one element each, however many lines) */
static const char *const prompts[] = {
    ("<R>\nread('/etc/app.conf', size=4096, offset=0, fh=4)\n---\n<filesystem><directory "
     "path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\" "
     "mtime=\"2025-01-01T00:00:00\"><file path=\"etc/app.conf\" name=\"app.conf\" mode=\"644\" "
     "owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:00\" size=\"10\"><body>port = "
     "80\n</body></file></directory></filesystem>"),
    ("<W>\nmkdir('/cache', mode=0o775)\n---\n<filesystem><directory path=\"/\" name=\"/\" "
     "mode=\"755\" owner=\"root\" group=\"root\" mtime=\"2024-06-30T09:04:48\" /></filesystem>"),
    "a prompt without the prefix",
    "<R>",
    "<X>\nnot ours",
    "",
};
#define PROMPT_COUNT (sizeof prompts / sizeof *prompts)

/* The vocabulary learns from prompts like the dataset's, so that the
 * prompts here encode into merges as well as bytes. */
static lf_tokenizer *train_tokenizer(void)
{
    lf_buffer corpus = {0};
    for (int copy = 0; copy < 20; copy++)
        for (size_t i = 0; i < PROMPT_COUNT; i++)
            assert_int_equal(lf_buffer_append_string(&corpus, prompts[i]), 0);
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_train(corpus.data, corpus.length, 330, &tokenizer, NULL), 0);
    lf_buffer_free(&corpus);
    return tokenizer;
}

static size_t tensor_offset(const lf_transformer_config *config, const char *name)
{
    size_t count = lf_transformer_tensors(config, NULL);
    lf_transformer_tensor tensors[count];
    lf_transformer_tensors(config, tensors);
    for (size_t i = 0; i < count; i++)
        if (strcmp(tensors[i].name, name) == 0)
            return tensors[i].offset;
    fail_msg("no tensor %s", name);
    return 0;
}

/* Writes a model named after its rigging into the fixture's directory and
 * loads it. */
static lf_generate_model *make_model(const fixture *f, rigging rig)
{
    lf_transformer_config config = lf_transformer_default_config(lf_tokenizer_vocab_size(f->tokenizer));
    config.context_length = CONTEXT;
    size_t count = lf_transformer_parameter_count(&config), d = config.embedding_size;
    float *parameters = malloc(count * sizeof *parameters);
    lf_transformer_init_parameters(&config, 5, parameters);
    for (size_t i = 0; i < count; i++)
        parameters[i] *= 2.0f; /* opinions: random init is near uniform */
    float *embedding = parameters + tensor_offset(&config, "token_embd.weight");
    for (size_t token = 0; rig != RANDOM && token < config.vocab_size; token++)
        for (size_t i = 0; i < d; i++) {
            float u = i % 3 ? 1.0f : -1.0f;
            uint32_t favoured = rig == END_FAVOURED ? LF_TOKEN_ENDOFTEXT : '<';
            embedding[token * d + i] = rig == ZERO_EMBEDDING ? 0.0f
                                       : token == favoured   ? 2.0f * u
                                                             : u;
        }
    char *path;
    assert_true(asprintf(&path, "%s/model-%d.gguf", f->directory, (int)rig) > 0);
    lf_diagnostic diagnostic = {0};
    if (lf_transformer_save(&config, parameters, f->tokenizer, path, &diagnostic) != 0)
        fail_msg("save: %s", diagnostic.message);
    lf_generate_model *model;
    if (lf_generate_model_open(path, &model, &diagnostic) != 0)
        fail_msg("open: %s", diagnostic.message);
    free(parameters);
    free(path);
    return model;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->directory = lf_test_sandbox_create("generate");
    f->tokenizer = train_tokenizer();
    f->model = make_model(f, RANDOM);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lf_generate_model_close(f->model);
    lf_tokenizer_free(f->tokenizer);
    lf_test_sandbox_remove(f->directory);
    free(f->directory);
    free(f);
    return 0;
}

/* Completes prompt into a fresh buffer (the caller frees it). */
static lf_buffer complete(lf_generator *generator, const char *prompt, uint32_t max_tokens,
                          lf_generate_stats *stats)
{
    lf_buffer completion = {0};
    assert_int_equal(lf_generate_complete(generator, (const uint8_t *)prompt, strlen(prompt), NULL,
                                          max_tokens, &completion, stats),
                     0);
    return completion;
}

static void assert_buffers_equal(const lf_buffer *a, const lf_buffer *b)
{
    assert_int_equal(a->length, b->length);
    if (a->length)
        assert_memory_equal(a->data, b->data, a->length);
}

/* ---- the training/inference contract ---- */

static void test_prompt_is_the_training_examples_prefix(void **state)
{
    fixture *f = *state;
    lf_tokenizer_encoder *encoder;
    assert_int_equal(lf_tokenizer_encoder_create(f->tokenizer, &encoder), 0);
    static const char completion[] = "<filesystem><directory path=\"/\" /></filesystem>";
    for (size_t i = 0; i < PROMPT_COUNT; i++) {
        lf_token_array example = {0}, prompt = {0};
        size_t completion_start = 0;
        const uint8_t *text = (const uint8_t *)prompts[i];
        assert_true(lf_train_sft_encode(encoder, text, strlen(prompts[i]),
                                        (const uint8_t *)completion, strlen(completion), &example,
                                        &completion_start) > 0);
        assert_int_equal(lf_generate_encode_prompt(encoder, text, strlen(prompts[i]), &prompt),
                         (int64_t)completion_start);
        assert_memory_equal(prompt.ids, example.ids, completion_start * sizeof *prompt.ids);
        /* the layout of docs/FORMAT.md §6.2 */
        assert_int_equal(prompt.ids[0], LF_TOKEN_ENDOFTEXT);
        bool read = i == 0, write = i == 1;
        if (read || write) {
            assert_int_equal(prompt.ids[1], read ? LF_TOKEN_READ : LF_TOKEN_WRITE);
            assert_int_equal(prompt.ids[2], '\n');
        }
        for (size_t t = read || write ? 3 : 1; t < prompt.count; t++)
            assert_true(prompt.ids[t] < LF_TOKEN_ENDOFTEXT || prompt.ids[t] >= LF_TOKEN_FIRST_MERGE);
        lf_token_array_free(&example);
        lf_token_array_free(&prompt);
    }
    lf_tokenizer_encoder_free(encoder);
}

/* An example with an empty prompt is <|endoftext|> COMPLETION <|endoftext|>
 * with every completion token a target: the sequence `llmencode
 * --format=raw` codes (its history starts at <|endoftext|>, its stream ends
 * with one), which is what scripts/fs-sft-mix's state examples rely on. */
static void test_empty_prompt_trains_raw_coding(void **state)
{
    fixture *f = *state;
    lf_tokenizer_encoder *encoder;
    assert_int_equal(lf_tokenizer_encoder_create(f->tokenizer, &encoder), 0);
    static const char completion[] = "<filesystem><directory path=\"/\" /></filesystem>";
    lf_token_array example = {0}, alone = {0};
    size_t completion_start = 0;
    int64_t count = lf_train_sft_encode(encoder, (const uint8_t *)"", 0,
                                        (const uint8_t *)completion, strlen(completion), &example,
                                        &completion_start);
    assert_true(lf_tokenizer_encode(encoder, (const uint8_t *)completion, strlen(completion),
                                    &alone) > 0);
    assert_int_equal(completion_start, 1);
    assert_int_equal(count, (int64_t)alone.count + 2);
    assert_int_equal(example.ids[0], LF_TOKEN_ENDOFTEXT);
    assert_memory_equal(example.ids + 1, alone.ids, alone.count * sizeof *alone.ids);
    assert_int_equal(example.ids[alone.count + 1], LF_TOKEN_ENDOFTEXT);
    lf_token_array_free(&example);
    lf_token_array_free(&alone);
    lf_tokenizer_encoder_free(encoder);
}

/* ---- determinism ---- */

typedef struct thread_job {
    const lf_generate_model *model;
    const char *prompt;
    lf_buffer completion;
} thread_job;

static void *complete_on_thread(void *argument)
{
    thread_job *job = argument;
    lf_generator *generator;
    if (lf_generator_new(job->model, 0, 1, &generator) == 0) {
        (void)lf_generate_complete(generator, (const uint8_t *)job->prompt, strlen(job->prompt),
                                   NULL, 40, &job->completion, NULL);
        lf_generator_free(generator);
    }
    return NULL;
}

static void test_generation_is_deterministic(void **state)
{
    fixture *f = *state;
    lf_generator *first, *second;
    assert_int_equal(lf_generator_new(f->model, 0, 1, &first), 0);
    assert_int_equal(lf_generator_new(f->model, 0, 2, &second), 0);
    lf_buffer once = complete(first, prompts[0], 40, NULL);
    lf_buffer other = complete(first, prompts[1], 40, NULL);
    lf_buffer again = complete(first, prompts[0], 40, NULL); /* after another sequence */
    lf_buffer elsewhere = complete(second, prompts[0], 40, NULL);
    assert_int_not_equal(once.length, 0);
    assert_buffers_equal(&once, &again);
    assert_buffers_equal(&once, &elsewhere);
    /* two threads on the one model at once */
    thread_job jobs[2] = {{f->model, prompts[0], {0}}, {f->model, prompts[0], {0}}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, complete_on_thread, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        assert_buffers_equal(&once, &jobs[i].completion);
        lf_buffer_free(&jobs[i].completion);
    }
    lf_buffer_free(&once), lf_buffer_free(&other), lf_buffer_free(&again);
    lf_buffer_free(&elsewhere);
    lf_generator_free(first);
    lf_generator_free(second);
}

/* The reference: the prompt's tokens fed one step each on a fresh cache,
 * then greedy decoding written out plainly (on a branch, its token at its
 * position). Returns the completion's tokens; *logits gets the prediction
 * after the prompt. */
static lf_token_array reference_completion(const lf_generate_model *model, const char *prompt,
                                           const lf_generate_branch *branch, uint32_t max_tokens,
                                           float *prompt_logits)
{
    const lf_transformer *transformer = lf_generate_model_transformer(model);
    uint32_t vocabulary = transformer->config.vocab_size;
    lf_tokenizer_encoder *encoder;
    lf_transformer_cache *cache;
    lf_transformer_workspace *workspace;
    assert_int_equal(lf_tokenizer_encoder_create(lf_generate_model_tokenizer(model), &encoder), 0);
    assert_int_equal(lf_transformer_cache_new(transformer, &cache), 0);
    assert_int_equal(lf_transformer_workspace_new(transformer, 1, NULL, &workspace), 0);
    lf_token_array tokens = {0}, completion = {0};
    assert_true(lf_generate_encode_prompt(encoder, (const uint8_t *)prompt, strlen(prompt),
                                          &tokens) > 0);
    float *logits = malloc(vocabulary * sizeof *logits);
    for (size_t t = 0; t < tokens.count; t++)
        assert_int_equal(lf_transformer_step(transformer, workspace, &cache, &tokens.ids[t], 1,
                                             logits), 0);
    memcpy(prompt_logits, logits, vocabulary * sizeof *logits);
    while (completion.count < max_tokens) {
        uint32_t best = 0;
        for (uint32_t token = 1; token < vocabulary; token++)
            if (logits[token] > logits[best])
                best = token;
        if (branch && completion.count == branch->position)
            best = branch->token;
        if (best == LF_TOKEN_ENDOFTEXT)
            break;
        assert_int_equal(lf_token_array_append(&completion, &best, 1), 0);
        assert_int_equal(lf_transformer_step(transformer, workspace, &cache, &best, 1, logits), 0);
    }
    free(logits);
    lf_token_array_free(&tokens);
    lf_transformer_workspace_free(workspace);
    lf_transformer_cache_free(cache);
    lf_tokenizer_encoder_free(encoder);
    return completion;
}

/* Nor do prompt rows or the threads sharing a step. */
static void test_prompt_rows_never_change_results(void **state)
{
    fixture *f = *state;
    uint32_t vocabulary = lf_generate_model_transformer(f->model)->config.vocab_size;
    float *expected_logits = malloc(vocabulary * sizeof *expected_logits);
    lf_token_array expected = reference_completion(f->model, prompts[0], NULL, 30, expected_logits);
    lf_buffer expected_bytes = {0};
    assert_int_equal(lf_tokenizer_decode(f->tokenizer, expected.ids, expected.count,
                                         &expected_bytes, NULL), 0);
    static const uint32_t rows[] = {1, 5, CONTEXT, 32, 100};
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        lf_generator *generator;
        assert_int_equal(lf_generator_new(f->model, rows[r], 1 + r % 3, &generator), 0);
        lf_generator_copy_bias(generator, 0); /* the reference is the model's greedy choice */
        lf_buffer nothing = complete(generator, prompts[0], 0, NULL);
        assert_int_equal(nothing.length, 0);
        assert_memory_equal(lf_generate_last_logits(generator), expected_logits,
                            vocabulary * sizeof(float));
        lf_generate_stats stats;
        lf_buffer completion = complete(generator, prompts[0], 30, &stats);
        assert_int_equal(stats.completion_tokens, expected.count);
        assert_buffers_equal(&completion, &expected_bytes);
        lf_buffer_free(&completion);
        lf_generator_free(generator);
    }
    lf_buffer_free(&expected_bytes);
    lf_token_array_free(&expected);
    free(expected_logits);
}

/* ---- stopping ---- */

static void test_stops_at_max_tokens(void **state)
{
    fixture *f = *state;
    lf_generator *generator;
    assert_int_equal(lf_generator_new(f->model, 0, 1, &generator), 0);
    lf_generate_stats stats;
    lf_buffer longer = complete(generator, prompts[1], 12, &stats);
    assert_false(stats.ended); /* this random model never chooses <|endoftext|> this early */
    assert_int_equal(stats.completion_tokens, 12);
    assert_true(longer.length >= 12);
    lf_buffer completion = {0};
    assert_int_equal(lf_buffer_append_string(&completion, "kept:"), 0);
    assert_int_equal(lf_generate_complete(generator, (const uint8_t *)prompts[1],
                                          strlen(prompts[1]), NULL, 7, &completion, &stats),
                     0);
    assert_int_equal(stats.completion_tokens, 7);
    assert_memory_equal(completion.data, "kept:", 5);
    /* a prefix of the longer completion: a limit only cuts */
    assert_true(completion.length - 5 < longer.length);
    assert_memory_equal(completion.data + 5, longer.data, completion.length - 5);
    lf_buffer none = complete(generator, prompts[1], 0, &stats);
    assert_int_equal(none.length, 0);
    assert_int_equal(stats.completion_tokens, 0);
    assert_false(stats.ended);
    assert_true(stats.prompt_tokens > CONTEXT); /* the prompt slid through the context */
    lf_buffer_free(&longer), lf_buffer_free(&completion), lf_buffer_free(&none);
    lf_generator_free(generator);
}

static void test_stops_at_end_of_text(void **state)
{
    fixture *f = *state;
    lf_generate_model *model = make_model(f, END_FAVOURED);
    lf_generator *generator;
    assert_int_equal(lf_generator_new(model, 0, 1, &generator), 0);
    lf_generate_stats stats;
    lf_buffer completion = complete(generator, prompts[0], 50, &stats);
    assert_true(stats.ended);
    assert_int_equal(stats.completion_tokens, 0);
    assert_int_equal(completion.length, 0);
    lf_buffer_free(&completion);
    lf_generator_free(generator);
    lf_generate_model_close(model);
}

static void test_ties_go_to_the_lowest_id(void **state)
{
    fixture *f = *state;
    lf_generate_model *model = make_model(f, ZERO_EMBEDDING);
    lf_generator *generator;
    assert_int_equal(lf_generator_new(model, 0, 1, &generator), 0);
    lf_generate_stats stats;
    lf_buffer completion = complete(generator, prompts[1], 9, &stats);
    static const uint8_t zeros[9] = {0}; /* every logit 0: token 0, the byte 0 */
    assert_int_equal(completion.length, 9);
    assert_memory_equal(completion.data, zeros, 9);
    assert_false(stats.ended);
    lf_buffer_free(&completion);
    lf_generator_free(generator);
    lf_generate_model_close(model);
}

/* A model that always wants '<': a write's answer "<<<<" is no state, and
 * the guard refuses the second '<'; every other token ties, so the lowest
 * allowed ids follow, which are the bytes of the only element a state may
 * start with: "<filesy". Reads and unguarded generators keep the model's
 * own choice. */
static void test_the_guard_keeps_write_answers_to_the_state_syntax(void **state)
{
    fixture *f = *state;
    enum { TOKENS = 7 };
    lf_generate_model *model = make_model(f, LESS_THAN_FAVOURED);
    lf_generator *generator;
    assert_int_equal(lf_generator_new(model, 0, 1, &generator), 0);
    lf_generate_stats stats;
    lf_buffer guarded = complete(generator, prompts[1], TOKENS, &stats);
    assert_int_equal(guarded.length, TOKENS);
    assert_memory_equal(guarded.data, "<filesy", TOKENS);
    assert_int_equal(stats.guard_changes, TOKENS - 1);
    lf_buffer read = complete(generator, prompts[0], TOKENS, &stats);
    assert_memory_equal(read.data, "<<<<<<<", TOKENS);
    assert_int_equal(stats.guard_changes, 0);
    lf_generator_guard_states(generator, false);
    lf_buffer unguarded = complete(generator, prompts[1], TOKENS, &stats);
    assert_memory_equal(unguarded.data, "<<<<<<<", TOKENS);
    assert_int_equal(stats.guard_changes, 0);
    lf_buffer_free(&guarded), lf_buffer_free(&read), lf_buffer_free(&unguarded);
    lf_generator_free(generator);
    lf_generate_model_close(model);
}

/* A token the guard forces (the letters of "filesystem" after "<", the
 * only element a state starts with) is no choice: a second opinion there
 * would be the greedy answer again, so none is offered. */
static void test_second_opinions_skip_what_the_guard_forces(void **state)
{
    fixture *f = *state;
    enum { TOKENS = 12, CHOICES = 16 };
    lf_generate_model *model = make_model(f, LESS_THAN_FAVOURED);
    lf_generator *generator;
    assert_int_equal(lf_generator_new(model, 0, 1, &generator), 0);
    lf_buffer greedy = complete(generator, prompts[1], TOKENS, NULL);
    assert_memory_equal(greedy.data, "<filesystem ", TOKENS);
    lf_generate_branch choices[CHOICES];
    size_t count = lf_generate_doubtful_choices(generator, CHOICES, choices);
    /* choices: the first byte (an error needs no "<"), a merge where the
     * greedy answer took one letter (the fixture's tokenizer has "fi",
     * "le"...: odd positions), the byte after the name (" " or ">"); the
     * letter after a single one is forced */
    bool offered[TOKENS] = {0};
    for (size_t i = 0; i < count; i++) {
        assert_true(choices[i].position < TOKENS);
        offered[choices[i].position] = true;
    }
    for (size_t position = 0; position < TOKENS; position++)
        assert_int_equal(offered[position], position == 0 || position % 2 == 1);
    lf_buffer_free(&greedy);
    lf_generator_free(generator);
    lf_generate_model_close(model);
}

/* ---- opening ---- */

static void test_open_errors_and_owned_model(void **state)
{
    fixture *f = *state;
    char *tokenizer_path, *missing, *model_path;
    assert_true(asprintf(&tokenizer_path, "%s/tokenizer.gguf", f->directory) > 0);
    assert_true(asprintf(&missing, "%s/missing.gguf", f->directory) > 0);
    assert_true(asprintf(&model_path, "%s/model-%d.gguf", f->directory, (int)RANDOM) > 0);
    assert_int_equal(lf_tokenizer_save(f->tokenizer, tokenizer_path, NULL), 0);
    lf_diagnostic diagnostic = {0};
    lf_generate_model *model = NULL;
    assert_int_equal(lf_generate_model_open(tokenizer_path, &model, &diagnostic), -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "not a transformer model"));
    assert_int_equal(lf_generate_model_open(missing, &model, NULL), -ENOENT);
    /* a generator owning its model answers as one sharing it */
    lf_generator *owning, *sharing;
    assert_int_equal(lf_generator_open(model_path, &owning, NULL), 0);
    assert_int_equal(lf_generator_new(f->model, 0, 1, &sharing), 0);
    lf_buffer a = complete(owning, prompts[1], 20, NULL), b = complete(sharing, prompts[1], 20, NULL);
    assert_buffers_equal(&a, &b);
    lf_buffer_free(&a), lf_buffer_free(&b);
    lf_generator_free(owning);
    lf_generator_free(sharing);
    free(tokenizer_path), free(missing), free(model_path);
}

/* ---- second opinions ---- */

/* The runner-up of a row of logits by a plain sort's rule: the highest
 * value but the best's, the lowest id among equals. */
static uint32_t runner_up_of(const float *logits, uint32_t vocabulary, uint32_t best)
{
    uint32_t second = best == 0 ? 1 : 0;
    for (uint32_t token = 0; token < vocabulary; token++)
        if (token != best && logits[token] > logits[second])
            second = token;
    return second;
}

static void test_branches_take_the_runner_up_where_the_model_hesitated(void **state)
{
    fixture *f = *state;
    enum { TOKENS = 12, CHOICES = 4 };
    uint32_t vocabulary = lf_generate_model_transformer(f->model)->config.vocab_size;
    lf_generator *generator, *checker, *one_row;
    assert_int_equal(lf_generator_new(f->model, 0, 1, &generator), 0);
    assert_int_equal(lf_generator_new(f->model, 0, 2, &checker), 0);
    assert_int_equal(lf_generator_new(f->model, 1, 1, &one_row), 0);
    lf_generator *generators[] = {generator, checker, one_row};
    for (size_t i = 0; i < 3; i++) /* the reference is the model's greedy choice */
        lf_generator_copy_bias(generators[i], 0);
    lf_buffer greedy = complete(generator, prompts[1], TOKENS, NULL);
    lf_generate_branch choices[CHOICES + 1];
    assert_int_equal(lf_generate_doubtful_choices(generator, CHOICES, choices), CHOICES);
    for (size_t i = 0; i < CHOICES; i++) {
        const lf_generate_branch *choice = &choices[i];
        assert_true(choice->position < TOKENS);
        if (i > 0) /* closest first, the earlier among equals */
            assert_true(choice->margin > choices[i - 1].margin ||
                        (choice->margin == choices[i - 1].margin &&
                         choice->position > choices[i - 1].position));
        /* the logits that chose token `position` of the greedy completion */
        lf_buffer through = complete(checker, prompts[1], choice->position + 1, NULL);
        lf_buffer_free(&through);
        const float *logits = lf_generate_last_logits(checker);
        uint32_t best = 0;
        for (uint32_t token = 1; token < vocabulary; token++)
            if (logits[token] > logits[best])
                best = token;
        assert_int_equal(choice->token, runner_up_of(logits, vocabulary, best));
        assert_true(choice->margin == logits[best] - logits[choice->token]);

        /* the branch: the greedy prefix, the runner-up, then greedy again,
         * the same whether the prefix is fed at once or token by token */
        float *prompt_logits = malloc(vocabulary * sizeof *prompt_logits);
        lf_token_array expected = reference_completion(f->model, prompts[1], choice, TOKENS,
                                                       prompt_logits);
        lf_buffer expected_bytes = {0}, branched = {0}, branched_by_one = {0};
        assert_int_equal(lf_tokenizer_decode(f->tokenizer, expected.ids, expected.count,
                                             &expected_bytes, NULL), 0);
        lf_generate_stats stats;
        assert_int_equal(lf_generate_complete(generator, (const uint8_t *)prompts[1],
                                              strlen(prompts[1]), choice, TOKENS, &branched, &stats),
                         0);
        assert_int_equal(stats.completion_tokens, expected.count);
        assert_buffers_equal(&branched, &expected_bytes);
        lf_buffer one_row_greedy = complete(one_row, prompts[1], TOKENS, NULL);
        assert_buffers_equal(&one_row_greedy, &greedy);
        assert_int_equal(lf_generate_complete(one_row, (const uint8_t *)prompts[1],
                                              strlen(prompts[1]), choice, TOKENS, &branched_by_one,
                                              NULL),
                         0);
        assert_buffers_equal(&branched_by_one, &expected_bytes);
        assert_false(branched.length == greedy.length &&
                     memcmp(branched.data, greedy.data, greedy.length) == 0);
        lf_buffer_free(&expected_bytes), lf_buffer_free(&branched), lf_buffer_free(&branched_by_one);
        lf_buffer_free(&one_row_greedy);
        lf_token_array_free(&expected);
        free(prompt_logits);
    }
    /* branches do not replace the greedy completion they start from */
    assert_int_equal(lf_generate_doubtful_choices(generator, CHOICES + 1, choices), CHOICES + 1);
    lf_buffer none = {0};
    lf_generate_branch past = {.position = TOKENS, .token = choices[0].token};
    assert_int_equal(lf_generate_complete(generator, (const uint8_t *)prompts[1],
                                          strlen(prompts[1]), &past, TOKENS + 5, &none, NULL),
                     -EINVAL);
    lf_buffer_free(&greedy), lf_buffer_free(&none);
    lf_generator_free(generator), lf_generator_free(checker), lf_generator_free(one_row);
}

/* ---- copying ---- */

/* The completion of `prompt` that starts with the first token of
 * `start` (two bytes or more, put there as a branch at position 0),
 * unguarded, with copying at `bias`: 1000 outweighs any logit of the
 * random model. */
static lf_buffer complete_from(const fixture *f, const char *prompt, const char *start, float bias)
{
    lf_tokenizer_encoder *encoder;
    assert_int_equal(lf_tokenizer_encoder_create(f->tokenizer, &encoder), 0);
    lf_token_array tokens = {0};
    assert_true(lf_tokenizer_encode(encoder, (const uint8_t *)start, strlen(start), &tokens) > 0);
    size_t length;
    lf_tokenizer_token_bytes(f->tokenizer, tokens.ids[0], &length);
    assert_true(length >= 2);
    lf_generator *generator;
    assert_int_equal(lf_generator_new(f->model, 0, 1, &generator), 0);
    lf_generator_guard_states(generator, false);
    lf_generator_copy_bias(generator, bias);
    enum { TOKENS = 40 };
    lf_buffer greedy = complete(generator, prompt, TOKENS, NULL);
    lf_generate_branch branch = {.position = 0, .token = tokens.ids[0]};
    lf_buffer completion = {0};
    assert_int_equal(lf_generate_complete(generator, (const uint8_t *)prompt, strlen(prompt),
                                          &branch, TOKENS, &completion, NULL),
                     0);
    lf_buffer_free(&greedy);
    lf_generator_free(generator);
    lf_token_array_free(&tokens);
    lf_tokenizer_encoder_free(encoder);
    return completion;
}

/* A prompt on a state of one file, /n, holding `body` (XML text). */
static char *one_file_prompt(const char *operation_line, const char *body)
{
    lf_buffer prompt = {0};
    assert_int_equal(
        lf_buffer_printf(&prompt,
                         "%s\n---\n<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" "
                         "owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:00\"><file "
                         "path=\"n\" name=\"n\" mode=\"644\" owner=\"root\" group=\"root\" "
                         "mtime=\"2025-01-01T00:00:00\" size=\"8\"><body>%s</body></file>"
                         "</directory></filesystem>",
                         operation_line, body),
        0);
    return (char *)lf_buffer_string(&prompt);
}

static bool starts_with(const lf_buffer *buffer, const char *text)
{
    return buffer->length >= strlen(text) && memcmp(buffer->data, text, strlen(text)) == 0;
}

/* A read answers with the state's bytes unescaped: once the answer's
 * last bytes match inside the state, it goes on copying them. */
static void test_a_read_copies_the_state_unescaped(void **state)
{
    fixture *f = *state;
    char *prompt = one_file_prompt("<R>\nread('/n', size=4096, offset=0, fh=4)", "conf a&lt;b&amp;c");
    lf_buffer completion = complete_from(f, prompt, "conf", 1000);
    assert_true(starts_with(&completion, "conf a<b&c</body></file>"));
    lf_buffer_free(&completion);
    free(prompt);
}

/* A write's answer copies the data up to its end, found by data_length
 * (the data holds ", data_length=" itself), and not the line after it;
 * with copying off the random model goes its own way. */
static void test_a_write_copies_its_data_and_stops_at_its_end(void **state)
{
    fixture *f = *state;
    char *prompt = one_file_prompt("<W>\nwrite('/n', data=conf x, data_length=3 yz, data_length=24, "
                                   "offset=0, end=24, fh=4, now='2025-01-01T00:00:01')",
                                   "old text");
    const char *data = "conf x, data_length=3 yz";
    lf_buffer completion = complete_from(f, prompt, "conf", 1000);
    assert_true(starts_with(&completion, data));
    assert_false(completion.length >= strlen(data) + 14 &&
                 memcmp(completion.data + strlen(data), ", data_length=", 14) == 0);
    lf_buffer_free(&completion);
    lf_buffer plain = complete_from(f, prompt, "conf", 0);
    assert_false(starts_with(&plain, data));
    lf_buffer_free(&plain);
    free(prompt);
}

/* Prompts of any bytes, and of the pieces copying looks for in any
 * order (a data_length that does not fit, an unclosed body or quote, a
 * cut entity): copying finds what it finds and reads nothing outside the
 * prompt (the sanitizer builds check), and decoding still works. */
static void test_copying_takes_any_prompt(void **state)
{
    fixture *f = *state;
    static const char *const pieces[] = {
        "<R>\n", "<W>\n", "write('/a', data=", ", data=", ", data_length=", "3", "12", ", ",
        "('/", "'", ", new_path='", ", target='", "\n---\n", "<body>", "</body>", "<body />",
        "<body", ">", "&lt;", "&amp", "&#10;", "&", "ab", "abab", "conf", "\n"};
    enum { PIECES = sizeof pieces / sizeof *pieces };
    lf_generator *generator;
    assert_int_equal(lf_generator_new(f->model, 0, 1, &generator), 0);
    lf_generator_guard_states(generator, false);
    lf_generator_copy_bias(generator, 1000);
    lf_random random;
    lf_random_seed(&random, 7);
    for (int round = 0; round < 300; round++) {
        lf_buffer prompt = {0};
        size_t count = (size_t)lf_random_below(&random, 12);
        for (size_t i = 0; i < count; i++) {
            if (lf_random_chance(&random, 1, 4)) {
                uint8_t bytes[3];
                lf_random_bytes(&random, bytes, sizeof bytes);
                assert_int_equal(lf_buffer_append(&prompt, bytes, 1 + lf_random_below(&random, 3)), 0);
            } else
                assert_int_equal(
                    lf_buffer_append_string(&prompt, pieces[lf_random_below(&random, PIECES)]), 0);
        }
        /* exactly the prompt's bytes: the sanitizer sees a read past them */
        uint8_t *exact = malloc(prompt.length ? prompt.length : 1);
        if (prompt.length)
            memcpy(exact, prompt.data, prompt.length);
        lf_buffer completion = {0};
        assert_int_equal(lf_generate_complete(generator, exact, prompt.length, NULL, 6, &completion,
                                              NULL),
                         0);
        lf_buffer_free(&completion);
        free(exact);
        lf_buffer_free(&prompt);
    }
    lf_generator_free(generator);
}

/* The fine-tuning rule: n tokens (both <|endoftext|> included) fit a
 * context of n - 1. */
static void test_fits_counts_as_fine_tuning_does(void **state)
{
    fixture *f = *state;
    lf_generator *generator;
    assert_int_equal(lf_generator_new(f->model, 0, 1, &generator), 0);
    lf_tokenizer_encoder *encoder;
    assert_int_equal(lf_tokenizer_encoder_create(f->tokenizer, &encoder), 0);
    const char *prompt = "<R>\nab";
    lf_token_array tokens = {0};
    assert_true(lf_generate_encode_prompt(encoder, (const uint8_t *)prompt, strlen(prompt), &tokens) > 0);
    size_t prompt_tokens = tokens.count;
    /* an answer of k single bytes (tokens of their own: no merges of 'z') */
    char answer[64];
    for (size_t k = 0; k + prompt_tokens + 1 <= CONTEXT + 3; k++) {
        memset(answer, 'z', k);
        tokens.count = 0;
        assert_true(lf_tokenizer_encode(encoder, (const uint8_t *)answer, k, &tokens) >= 0);
        assert_int_equal(tokens.count, k);
        int64_t fits = lf_generator_fits(generator, (const uint8_t *)prompt, strlen(prompt),
                                         (const uint8_t *)answer, k);
        assert_int_equal(fits, prompt_tokens + k + 1 - 1 <= CONTEXT);
    }
    lf_token_array_free(&tokens);
    lf_tokenizer_encoder_free(encoder);
    lf_generator_free(generator);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_is_the_training_examples_prefix),
        cmocka_unit_test(test_empty_prompt_trains_raw_coding),
        cmocka_unit_test(test_generation_is_deterministic),
        cmocka_unit_test(test_prompt_rows_never_change_results),
        cmocka_unit_test(test_stops_at_max_tokens),
        cmocka_unit_test(test_stops_at_end_of_text),
        cmocka_unit_test(test_ties_go_to_the_lowest_id),
        cmocka_unit_test(test_the_guard_keeps_write_answers_to_the_state_syntax),
        cmocka_unit_test(test_second_opinions_skip_what_the_guard_forces),
        cmocka_unit_test(test_open_errors_and_owned_model),
        cmocka_unit_test(test_branches_take_the_runner_up_where_the_model_hesitated),
        cmocka_unit_test(test_a_read_copies_the_state_unescaped),
        cmocka_unit_test(test_a_write_copies_its_data_and_stops_at_its_end),
        cmocka_unit_test(test_copying_takes_any_prompt),
        cmocka_unit_test(test_fits_counts_as_fine_tuning_does),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
