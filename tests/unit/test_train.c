/* The trainer: its schedule, data files, SFT layout and masking, that a
 * tiny model learns a text by heart and then runs in the engine with the
 * same predictions, and that a resumed run repeats the uninterrupted run's
 * losses exactly. (Gradients: test_train_gradients.c.) */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/file.h"
#include "common/random.h"
#include "model/transformer_file.h"
#include "sandbox.h"
#include "train/adamw.h"
#include "train/data.h"
#include "train/sft.h"
#include "train/trainer.h"

/* Tiny models run fastest on one thread; the resume test uses two, to
 * show that a run with parallel kernels reproduces too. */
enum { THREADS = 1, PARALLEL_THREADS = 2 };

static const char text[] =
    "A filesystem answers every question about its files: what a directory holds, what a file "
    "says, who owns it and since when. A language model that has read enough of them can "
    "predict those answers, and a coder turns good predictions into few bits. Both need the "
    "same thing: a model that knows how files look.\n";

typedef struct fixture {
    char *directory;
    char *tokenizer; /* the byte-level tokenizer: 256 bytes and the specials */
} fixture;

static char *path_in(const fixture *f, const char *name)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", f->directory, name) > 0);
    return path;
}

static void write_text(const char *path, const void *data, size_t size)
{
    assert_int_equal(lf_file_write_atomic(path, data, size, NULL), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->directory = lf_test_sandbox_create("train");
    f->tokenizer = path_in(f, "bytes.gguf");
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_from_merges(NULL, 0, &tokenizer, NULL), 0);
    assert_int_equal(lf_tokenizer_save(tokenizer, f->tokenizer, NULL), 0);
    lf_tokenizer_free(tokenizer);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lf_test_sandbox_remove(f->directory);
    free(f->directory);
    free(f->tokenizer);
    free(f);
    return 0;
}

/* A token file of the given text files, made with `llmfuse train tokenize`'s
 * function and the byte tokenizer. Returns its path. */
static char *tokenize(const fixture *f, const char *name, const char *const *inputs, size_t count)
{
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_load(f->tokenizer, &tokenizer, NULL), 0);
    char *path = path_in(f, name);
    lf_diagnostic diagnostic = {0};
    if (lf_train_tokenize_files(tokenizer, inputs, count, PARALLEL_THREADS, path, &diagnostic) < 0)
        fail_msg("tokenize: %s", diagnostic.message);
    lf_tokenizer_free(tokenizer);
    return path;
}

static lf_transformer_config small_config(uint32_t context, uint32_t width)
{
    lf_transformer_config config = lf_transformer_default_config(LF_TOKEN_FIRST_MERGE);
    config.context_length = context;
    config.embedding_size = width;
    config.feed_forward_size = 2 * width;
    return config;
}

static lf_trainer *create(const fixture *f, const lf_train_settings *settings, const char *run,
                          unsigned threads)
{
    char *directory = path_in(f, run);
    lf_trainer *trainer;
    lf_diagnostic diagnostic = {0};
    if (lf_trainer_create(settings, directory, threads, &trainer, &diagnostic) != 0)
        fail_msg("create: %s", diagnostic.message);
    free(directory);
    return trainer;
}

static double step(lf_trainer *trainer)
{
    lf_train_step_report report;
    assert_int_equal(lf_trainer_step(trainer, &report), 0);
    return report.loss;
}

/* ---- schedule and clipping ---- */

static void test_schedule_and_clipping(void **state)
{
    (void)state;
    assert_true(fabs(lf_train_learning_rate(1.0, 10, 100, 0) - 0.1) < 1e-12);
    assert_true(fabs(lf_train_learning_rate(1.0, 10, 100, 9) - 1.0) < 1e-12);
    assert_true(fabs(lf_train_learning_rate(1.0, 10, 100, 10) - 1.0) < 1e-12);
    assert_true(fabs(lf_train_learning_rate(1.0, 10, 100, 99) - 0.1) < 1e-12);
    assert_true(fabs(lf_train_learning_rate(1.0, 10, 100, 500) - 0.1) < 1e-12);
    double previous = 2.0;
    for (uint64_t s = 10; s < 100; s++) { /* the cosine only goes down */
        double rate = lf_train_learning_rate(1.0, 10, 100, s);
        assert_true(rate <= previous);
        previous = rate;
    }
    float large[4] = {3, 4, 0, 0}, small[2] = {0.3f, 0.4f};
    assert_true(fabs(lf_train_clip_gradients(large, 4) - 5.0) < 1e-6);
    assert_true(fabs(large[0] - 0.6f) < 1e-6 && fabs(large[1] - 0.8f) < 1e-6);
    assert_true(fabs(lf_train_clip_gradients(small, 2) - 0.5) < 1e-6);
    assert_true(small[0] == 0.3f && small[1] == 0.4f);
}

/* ---- token files ---- */

static void test_token_files(void **state)
{
    fixture *f = *state;
    char *first = path_in(f, "first.txt"), *second = path_in(f, "second.txt");
    write_text(first, "ab", 2);
    write_text(second, "\xff", 1);
    const char *inputs[] = {first, second};
    char *tokens_path = tokenize(f, "two.tok", inputs, 2);
    lf_train_tokens tokens;
    assert_int_equal(lf_train_tokens_open(tokens_path, 260, &tokens, NULL), 0);
    const uint32_t expected[] = {LF_TOKEN_ENDOFTEXT, 'a', 'b', LF_TOKEN_ENDOFTEXT, 0xff,
                                 LF_TOKEN_ENDOFTEXT};
    assert_int_equal(tokens.count, 6);
    assert_memory_equal(tokens.ids, expected, sizeof expected);
    lf_train_tokens_close(&tokens);

    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_train_tokens_open(tokens_path, 200, &tokens, &diagnostic), -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "token 0 is 256"));
    write_text(first, "12345", 5);
    assert_int_equal(lf_train_tokens_open(first, 260, &tokens, NULL), -LF_EFORMAT);
    free(tokens_path);

    /* Evaluation windows run from the span's start to its end. */
    uint32_t ids[100];
    for (uint32_t i = 0; i < 100; i++)
        ids[i] = i;
    lf_train_span span = {ids, 100};
    size_t windows = lf_train_eval_window_count(&span, 9, 1000);
    assert_int_equal(windows, 10);
    assert_int_equal(lf_train_eval_window_count(&span, 9, 27), 3);
    lf_train_batch batch;
    assert_int_equal(lf_train_batch_allocate(&batch, 2, 9), 0);
    lf_train_fill_eval_windows(&span, windows, 0, &batch);
    assert_int_equal(batch.inputs[0], 0);
    assert_int_equal(batch.targets[8], 9);
    lf_train_fill_eval_windows(&span, windows, windows - 2, &batch);
    assert_int_equal(batch.inputs[9], 90);
    assert_int_equal(batch.targets[17], 99);
    lf_train_batch_free(&batch);
    free(first), free(second);
}

/* ---- SFT ---- */

static void test_sft_layout(void **state)
{
    fixture *f = *state;
    char *jsonl = path_in(f, "sft.jsonl");
    const char lines[] =
        "{\"prompt\":\"<R>\\nread('/a')\",\"completion\":\"hi\",\"op\":\"read\"}\n"
        "\n"
        "{\"prompt\":\"plain\",\"completion\":\"AAE=\",\"completion_encoding\":\"base64\"}\n"
        "{\"prompt\":\"<W>\\n" /* too long for 40 inputs */
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"completion\":\"\"}\n";
    write_text(jsonl, lines, sizeof lines - 1);
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_load(f->tokenizer, &tokenizer, NULL), 0);
    lf_train_sft_set set;
    lf_diagnostic diagnostic = {0};
    if (lf_train_sft_load(jsonl, tokenizer, 40, &set, &diagnostic) != 0)
        fail_msg("load: %s", diagnostic.message);
    assert_int_equal(set.count, 2);
    assert_int_equal(set.skipped, 1);
    /* <|endoftext|> <R> "\n" read('/a') hi <|endoftext|> */
    const uint32_t first[] = {LF_TOKEN_ENDOFTEXT, LF_TOKEN_READ, '\n', 'r', 'e', 'a', 'd', '(',
                              '\'', '/', 'a', '\'', ')', 'h', 'i', LF_TOKEN_ENDOFTEXT};
    assert_int_equal(set.starts[1], 16);
    assert_memory_equal(set.tokens.ids, first, sizeof first);
    assert_int_equal(set.completion_starts[0], 13);
    /* no prefix: the prompt is text; the base64 completion is decoded */
    const uint32_t second[] = {LF_TOKEN_ENDOFTEXT, 'p', 'l', 'a', 'i', 'n', 0, 1,
                               LF_TOKEN_ENDOFTEXT};
    assert_memory_equal(set.tokens.ids + 16, second, sizeof second);
    assert_int_equal(set.completion_starts[1], 6);

    /* Targets only on the completion and the final <|endoftext|>; padding. */
    lf_train_batch batch;
    assert_int_equal(lf_train_batch_allocate(&batch, 2, 40), 0);
    const size_t examples[] = {1, 0};
    lf_train_sft_fill_batch(&set, examples, 2, &batch);
    assert_int_equal(batch.rows, 2);
    assert_int_equal(batch.length, 15);
    for (size_t t = 0; t < 15; t++) {
        int32_t expected = t >= 5 && t < 8 ? (int32_t)second[t + 1] : LF_TRAIN_NO_TARGET;
        assert_int_equal(batch.targets[t], expected);
        assert_int_equal(batch.inputs[t], t < 8 ? second[t] : LF_TOKEN_PAD);
        expected = t >= 12 ? (int32_t)first[t + 1] : LF_TRAIN_NO_TARGET;
        assert_int_equal(batch.targets[15 + t], expected);
        assert_int_equal(batch.inputs[15 + t], first[t]);
    }
    lf_train_batch_free(&batch);
    lf_train_sft_free(&set);

    /* A bad line is named by its number. */
    const char bad[] = "{\"prompt\":\"x\",\"completion\":\"y\"}\n{\"prompt\":1}\n";
    write_text(jsonl, bad, sizeof bad - 1);
    memset(&diagnostic, 0, sizeof diagnostic);
    assert_int_equal(lf_train_sft_load(jsonl, tokenizer, 40, &set, &diagnostic), -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "sft.jsonl:2:"));
    lf_tokenizer_free(tokenizer);
    free(jsonl);
}

/* Lengths 0..count-1 in a scrambled order, as a set without tokens: the
 * order only reads the starts. */
static lf_train_sft_set lengths_only(size_t count)
{
    lf_train_sft_set set = {.count = count};
    set.starts = calloc(count + 1, sizeof *set.starts);
    assert_non_null(set.starts);
    for (size_t i = 0; i < count; i++) /* example i has (i * 7) % count inputs */
        set.starts[i + 1] = set.starts[i] + (i * 7) % count + 1;
    return set;
}

static size_t padded_positions(const lf_train_sft_set *set, const size_t *order, size_t rows)
{
    size_t total = 0;
    for (size_t first = 0; first < set->count; first += rows) {
        size_t longest = 0;
        for (size_t r = first; r < first + rows && r < set->count; r++) {
            size_t inputs = set->starts[order[r] + 1] - set->starts[order[r]] - 1;
            longest = inputs > longest ? inputs : longest;
        }
        total += longest * rows;
    }
    return total;
}

static void test_sft_order_groups_lengths(void **state)
{
    (void)state;
    enum { COUNT = 100, ROWS = 3, GROUP_BATCHES = 4, GROUP = ROWS * GROUP_BATCHES };
    lf_train_sft_set set = lengths_only(COUNT);
    size_t plain[COUNT], grouped[COUNT], again[COUNT];
    lf_train_sft_epoch_order(&set, 9, 2, ROWS, 0, plain);
    lf_train_sft_epoch_order(&set, 9, 2, ROWS, GROUP_BATCHES, grouped);
    lf_train_sft_epoch_order(&set, 9, 2, ROWS, GROUP_BATCHES, again);
    assert_memory_equal(grouped, again, sizeof grouped);
    bool seen[COUNT] = {0}, batches_moved = false;
    for (size_t first = 0; first < COUNT; first += GROUP) {
        size_t members = COUNT - first < GROUP ? COUNT - first : GROUP;
        /* a group holds the plain order's examples at its places */
        for (size_t i = first; i < first + members; i++) {
            bool found = false;
            for (size_t j = first; j < first + members; j++)
                found |= grouped[j] == plain[i];
            assert_true(found);
            assert_false(seen[grouped[i]]);
            seen[grouped[i]] = true;
        }
        /* each batch is a run of the group sorted by length: ascending
         * inside, and no other batch's length falls strictly inside its range */
        size_t previous_first = SIZE_MAX;
        for (size_t b = first; b + ROWS <= first + members; b += ROWS) {
            for (size_t r = b + 1; r < b + ROWS; r++)
                assert_true((grouped[r] * 7) % COUNT >= (grouped[r - 1] * 7) % COUNT);
            size_t low = (grouped[b] * 7) % COUNT, high = (grouped[b + ROWS - 1] * 7) % COUNT;
            for (size_t i = first; i < first + members; i++) {
                size_t length = (grouped[i] * 7) % COUNT;
                if (i < b || i >= b + ROWS)
                    assert_false(length > low && length < high);
            }
            batches_moved |= previous_first != SIZE_MAX && low < previous_first;
            previous_first = low;
        }
    }
    assert_true(batches_moved); /* the batches are shuffled, not left in length order */
    assert_true(padded_positions(&set, grouped, ROWS) < padded_positions(&set, plain, ROWS));
    free(set.starts);
}

/* A run saved before a setting existed reads it as 0 (its old behaviour). */
static void test_settings_added_later_read_zero(void **state)
{
    (void)state;
    lf_train_settings settings = lf_train_settings_defaults();
    assert_int_equal(settings.sft_group_batches, 64);
    lf_buffer json = {0};
    assert_int_equal(lf_train_settings_to_json(&settings, &json), 0);
    (void)lf_buffer_string(&json); /* terminates it */
    char *saved = (char *)json.data;
    /* the member is the last: cut from the comma before it to its line's end */
    char *at = strstr(saved, "\"sft_group_batches\": 64\n");
    assert_non_null(at);
    char *comma = at;
    while (comma > saved && *comma != ',')
        comma--;
    assert_int_equal(*comma, ',');
    char *end = strchr(at, '\n');
    memmove(comma, end, strlen(end) + 1);
    lf_train_settings read = lf_train_settings_defaults();
    assert_int_equal(lf_train_settings_from_json(saved, strlen(saved), &read, NULL), 0);
    assert_int_equal(read.sft_group_batches, 0);
    assert_int_equal(read.batch_rows, settings.batch_rows);
    lf_train_settings_free(&read);
    lf_buffer_free(&json);
}

/* Writes `count` examples whose prompts are random letters and whose
 * completion is always "ok": only a trainer that ignores the prompts can
 * bring the loss near zero. */
static char *random_prompt_examples(const fixture *f, const char *name, size_t count)
{
    lf_buffer lines = {0};
    lf_random random;
    lf_random_seed(&random, 4);
    for (size_t i = 0; i < count; i++) {
        char prompt[17];
        for (size_t c = 0; c < 16; c++)
            prompt[c] = (char)('a' + lf_random_below(&random, 26));
        prompt[16] = '\0';
        assert_int_equal(lf_buffer_printf(&lines,
                                          "{\"prompt\":\"<R>\\n%s\",\"completion\":\"ok\"}\n",
                                          prompt),
                         0);
    }
    char *path = path_in(f, name);
    write_text(path, lines.data, lines.length);
    lf_buffer_free(&lines);
    return path;
}

static void test_sft_loss_ignores_prompts(void **state)
{
    fixture *f = *state;
    lf_train_settings settings = lf_train_settings_defaults();
    settings.model = small_config(32, 32);
    settings.sft = random_prompt_examples(f, "random.jsonl", 64);
    settings.tokenizer = f->tokenizer;
    settings.batch_rows = 8;
    settings.steps = 100;
    settings.warmup_steps = 5;
    settings.learning_rate = 1e-2;
    lf_trainer *trainer = create(f, &settings, "sft-run", THREADS);
    double loss = 0;
    for (uint64_t s = 0; s < settings.steps; s++)
        loss = step(trainer);
    print_message("loss on completions after %llu steps: %.4f nats/token\n",
                  (unsigned long long)settings.steps, loss);
    assert_true(loss < 0.05);
    lf_trainer_free(trainer);
    free(settings.sft);
}

/* ---- the engine runs what the trainer trains ---- */

/* How the engine's predictions for a sequence compare with the trainer's. */
typedef struct agreement {
    double worst;          /* largest log-probability difference, tokens above e^-8 */
    uint32_t top_agrees;   /* positions where both rank the same token first */
    double engine_nats;    /* mean cross-entropy of the sequence's next tokens */
} agreement;

static void log_softmax(const float *logits, uint32_t count, double *out)
{
    double largest = -INFINITY, total = 0;
    for (uint32_t j = 0; j < count; j++)
        largest = fmax(largest, logits[j]);
    for (uint32_t j = 0; j < count; j++)
        total += exp(logits[j] - largest);
    for (uint32_t j = 0; j < count; j++)
        out[j] = logits[j] - largest - log(total);
}

static uint32_t top(const double *values, uint32_t count)
{
    uint32_t best = 0;
    for (uint32_t j = 1; j < count; j++)
        if (values[j] > values[best])
            best = j;
    return best;
}

/* The model file in the engine against the trainer's forward pass on the
 * parameters it was made from, at positions 0 .. length - 1 of tokens. */
static agreement compare_with_engine(const char *model_path, const float *parameters,
                                     const lf_transformer_config *config, const uint32_t *tokens,
                                     uint32_t length)
{
    lf_gguf *file;
    lf_transformer *model;
    lf_diagnostic diagnostic = {0};
    if (lf_gguf_open_file(model_path, &file, &diagnostic) != 0 ||
        lf_transformer_load(file, &model, &diagnostic) != 0)
        fail_msg("load: %s", diagnostic.message);
    lf_transformer_workspace *workspace;
    lf_transformer_cache *cache;
    assert_int_equal(lf_transformer_workspace_new(model, 1, NULL, &workspace), 0);
    assert_int_equal(lf_transformer_cache_new(model, &cache), 0);

    lf_train_network *network;
    lf_train_batch batch;
    lf_train_loss loss;
    assert_int_equal(lf_train_network_create(config, 1, length, THREADS, &network), 0);
    assert_int_equal(lf_train_batch_allocate(&batch, 1, length), 0);
    memcpy(batch.inputs, tokens, length * sizeof *tokens);
    for (uint32_t t = 0; t < length; t++)
        batch.targets[t] = (int32_t)tokens[t + 1];
    assert_int_equal(lf_train_forward(network, parameters, &batch, &loss), 0);

    uint32_t vocabulary = config->vocab_size;
    float *logits = malloc(vocabulary * sizeof *logits);
    double *engine = malloc(vocabulary * sizeof *engine);
    double *trainer = malloc(vocabulary * sizeof *trainer);
    agreement found = {0};
    for (uint32_t t = 0; t < length; t++) {
        assert_int_equal(lf_transformer_step(model, workspace, &cache, &tokens[t], 1, logits), 0);
        log_softmax(logits, vocabulary, engine);
        log_softmax(lf_train_network_logits(network) + (size_t)t * vocabulary, vocabulary, trainer);
        for (uint32_t j = 0; j < vocabulary; j++)
            if (trainer[j] > -8) /* where probability matters */
                found.worst = fmax(found.worst, fabs(engine[j] - trainer[j]));
        found.top_agrees += top(engine, vocabulary) == top(trainer, vocabulary);
        found.engine_nats -= engine[tokens[t + 1]] / length;
    }
    print_message("engine against trainer over %u positions: worst log-probability difference "
                  "%.4f nats, top token agrees at %u, %.4f nats/token (trainer %.4f)\n",
                  length, found.worst, found.top_agrees, found.engine_nats,
                  loss.nats / (double)loss.targets);
    free(logits), free(engine), free(trainer);
    lf_train_batch_free(&batch);
    lf_train_network_free(network);
    lf_transformer_cache_free(cache);
    lf_transformer_workspace_free(workspace);
    lf_transformer_free(model);
    lf_gguf_close(file);
    return found;
}

/* The engine computes what the trainer computes, up to int8 rounding: on a
 * random model with opinions (weights doubled, as test_transformer.c does),
 * the same tolerance as the engine against its float reference. */
static void test_engine_runs_the_trainers_model(void **state)
{
    fixture *f = *state;
    lf_transformer_config config = lf_transformer_default_config(LF_TOKEN_FIRST_MERGE);
    enum { LENGTH = 40 };
    config.context_length = LENGTH;
    float *parameters = malloc(lf_transformer_parameter_count(&config) * sizeof *parameters);
    lf_transformer_init_parameters(&config, 42, parameters);
    for (size_t i = 0; i < lf_transformer_parameter_count(&config); i++)
        parameters[i] *= 2.0f;
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_load(f->tokenizer, &tokenizer, NULL), 0);
    char *path = path_in(f, "random.gguf");
    assert_int_equal(lf_transformer_save(&config, parameters, tokenizer, path, NULL), 0);
    uint32_t tokens[LENGTH + 1];
    lf_random random;
    lf_random_seed(&random, 5);
    for (size_t i = 0; i <= LENGTH; i++)
        tokens[i] = (uint32_t)lf_random_below(&random, 256);
    agreement found = compare_with_engine(path, parameters, &config, tokens, LENGTH);
    assert_true(found.worst < 0.25);
    assert_true(found.top_agrees >= LENGTH * 9 / 10);
    lf_tokenizer_free(tokenizer);
    free(parameters), free(path);
}

/* A tiny model learns a short text by heart, and its exported file does
 * the same in the engine. */
static void test_learns_a_text_by_heart(void **state)
{
    fixture *f = *state;
    char *text_path = path_in(f, "text.txt");
    write_text(text_path, text, sizeof text - 1);
    const char *inputs[] = {text_path};
    lf_train_settings settings = lf_train_settings_defaults();
    settings.data = tokenize(f, "text.tok", inputs, 1);
    settings.tokenizer = f->tokenizer;
    /* one window is the whole file: <|endoftext|> text <|endoftext|> */
    uint32_t length = (uint32_t)(sizeof text - 1 + 1);
    settings.model = small_config(length, 64);
    settings.batch_rows = 1;
    settings.steps = 300;
    settings.warmup_steps = 10;
    settings.learning_rate = 3e-3;
    settings.output = path_in(f, "text.gguf");
    lf_trainer *trainer = create(f, &settings, "text-run", THREADS);
    double loss = 0;
    for (uint64_t s = 0; s < settings.steps; s++) {
        loss = step(trainer);
        if (s % 50 == 0)
            print_message("step %llu loss %.4f\n", (unsigned long long)s, loss);
    }
    print_message("loss after %llu steps: %.4f nats/token\n", (unsigned long long)settings.steps,
                  loss);
    assert_true(loss < 0.05);

    lf_diagnostic diagnostic = {0};
    if (lf_trainer_export(trainer, settings.output, &diagnostic) != 0)
        fail_msg("export: %s", diagnostic.message);
    lf_train_tokens tokens;
    assert_int_equal(lf_train_tokens_open(settings.data, 260, &tokens, NULL), 0);
    agreement found = compare_with_engine(settings.output, lf_trainer_parameters(trainer),
                                          &lf_trainer_settings(trainer)->model, tokens.ids, length);
    assert_int_equal(found.top_agrees, length);
    assert_true(found.engine_nats < 0.05);
    lf_train_tokens_close(&tokens);
    lf_trainer_free(trainer);
    free(settings.data), free(settings.output), free(text_path);
}

/* ---- resuming ---- */

enum { HALF = 8 };

/* 2 x HALF steps straight, then HALF steps, a checkpoint, a resume and HALF
 * more: the same loss at every step, to the bit. */
static void check_resume(const fixture *f, const lf_train_settings *settings, const char *name)
{
    char straight_name[64], split_name[64];
    snprintf(straight_name, sizeof straight_name, "%s-straight", name);
    snprintf(split_name, sizeof split_name, "%s-split", name);
    double straight[2 * HALF], split[2 * HALF];
    lf_trainer *trainer = create(f, settings, straight_name, PARALLEL_THREADS);
    for (int s = 0; s < 2 * HALF; s++)
        straight[s] = step(trainer);
    lf_trainer_free(trainer);

    trainer = create(f, settings, split_name, PARALLEL_THREADS);
    for (int s = 0; s < HALF; s++)
        split[s] = step(trainer);
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_trainer_save_checkpoint(trainer, &diagnostic), 0);
    split[HALF] = step(trainer); /* a step after the checkpoint is lost with the process */
    lf_trainer_free(trainer);
    char *directory = path_in(f, split_name);
    if (lf_trainer_resume(directory, NULL, PARALLEL_THREADS, &trainer, &diagnostic) != 0)
        fail_msg("resume: %s", diagnostic.message);
    assert_int_equal(lf_trainer_step_count(trainer), HALF);
    for (int s = HALF; s < 2 * HALF; s++)
        split[s] = step(trainer);
    assert_memory_equal(straight, split, sizeof straight);
    print_message("%s: %d steps, loss %.4f -> %.4f, identical after resuming\n", name, 2 * HALF,
                  straight[0], straight[2 * HALF - 1]);

    /* What would change the steps to come is refused; the plan may grow. */
    lf_train_settings changed;
    assert_int_equal(lf_train_settings_copy(&changed, lf_trainer_settings(trainer)), 0);
    lf_trainer_free(trainer);
    changed.batch_rows++;
    memset(&diagnostic, 0, sizeof diagnostic);
    assert_int_equal(lf_trainer_resume(directory, &changed, THREADS, &trainer, &diagnostic),
                     -EINVAL);
    assert_non_null(strstr(diagnostic.message, "cannot change the batch"));
    changed.batch_rows--;
    changed.steps *= 2;
    assert_int_equal(lf_trainer_resume(directory, &changed, THREADS, &trainer, &diagnostic), 0);
    assert_int_equal(lf_trainer_settings(trainer)->steps, 2 * settings->steps);
    lf_trainer_free(trainer);
    lf_train_settings_free(&changed);
    free(directory);
}

static void test_resume_repeats_the_losses(void **state)
{
    fixture *f = *state;
    char *text_path = path_in(f, "resume.txt");
    write_text(text_path, text, sizeof text - 1);
    const char *inputs[] = {text_path};
    lf_train_settings settings = lf_train_settings_defaults();
    settings.data = tokenize(f, "resume.tok", inputs, 1);
    settings.tokenizer = f->tokenizer;
    settings.model = small_config(32, 32);
    settings.batch_rows = 4;
    settings.steps = 4 * HALF;
    settings.warmup_steps = 3;
    check_resume(f, &settings, "corpus");

    /* SFT: 12 examples in batches of 4 turn an epoch every 3 steps. */
    free(settings.data);
    settings.data = NULL;
    settings.sft = random_prompt_examples(f, "resume.jsonl", 12);
    check_resume(f, &settings, "sft");
    free(settings.sft), free(text_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_and_clipping),
        cmocka_unit_test(test_token_files),
        cmocka_unit_test(test_sft_layout),
        cmocka_unit_test(test_sft_order_groups_lengths),
        cmocka_unit_test(test_settings_added_later_read_zero),
        cmocka_unit_test(test_sft_loss_ignores_prompts),
        cmocka_unit_test(test_engine_runs_the_trainers_model),
        cmocka_unit_test(test_learns_a_text_by_heart),
        cmocka_unit_test(test_resume_repeats_the_losses),
    };
    return cmocka_run_group_tests_name("train", tests, setup, teardown);
}
