#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "model/transformer_file.h"
#include "train/adamw.h"
#include "train/backprop.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/sft.h"

/* Without a separate held-out file, the corpus's last 1/HELD_OUT_SHARE is. */
#define HELD_OUT_SHARE 100
/* The data stream's seed differs from the parameters' (both from the run's seed). */
#define DATA_SEED_MIX UINT64_C(0x64617461)

struct lf_trainer {
    lf_train_settings settings;
    char *run_directory;
    lf_tokenizer *tokenizer;
    lf_transformer_tensor *tensors;
    size_t tensor_count, parameter_count;
    float *storage; /* the four arrays below, parameter_count floats each */
    float *parameters, *gradients, *first_moments, *second_moments;
    lf_train_network *network;
    lf_train_batch batch;
    lf_train_progress progress;
    uint8_t *byte_lengths; /* (vocab) bytes of text per token */
    /* pretraining */
    lf_train_tokens corpus, held_out_file;
    lf_train_span train_span, eval_span;
    /* SFT */
    lf_train_sft_set examples, eval_examples;
    size_t *order;        /* this epoch's order of examples */
    size_t *batch_examples; /* (B) the examples of the batch being built */
};

static bool is_sft(const lf_trainer *trainer) { return trainer->settings.sft != NULL; }

void lf_trainer_free(lf_trainer *trainer)
{
    if (!trainer)
        return;
    lf_train_settings_free(&trainer->settings);
    free(trainer->run_directory);
    lf_tokenizer_free(trainer->tokenizer);
    free(trainer->tensors);
    free(trainer->storage);
    lf_train_network_free(trainer->network);
    lf_train_batch_free(&trainer->batch);
    free(trainer->byte_lengths);
    lf_train_tokens_close(&trainer->corpus);
    lf_train_tokens_close(&trainer->held_out_file);
    lf_train_sft_free(&trainer->examples);
    lf_train_sft_free(&trainer->eval_examples);
    free(trainer->order);
    free(trainer->batch_examples);
    free(trainer);
}

/* Checks, or for a new run records, how much data a file held. */
static int64_t check_count(uint64_t *recorded, uint64_t found, bool resuming, const char *path,
                           const char *unit, lf_diagnostic *diagnostic)
{
    if (!resuming)
        *recorded = found;
    else if (*recorded != found)
        return lf_fail(diagnostic, -EINVAL, "'%s' holds %llu %s, the run started with %llu: not "
                       "the same data", path, (unsigned long long)found, unit,
                       (unsigned long long)*recorded);
    return 0;
}

static int64_t open_corpus(lf_trainer *trainer, bool resuming, lf_diagnostic *diagnostic)
{
    lf_train_settings *settings = &trainer->settings;
    uint32_t vocabulary = settings->model.vocab_size;
    int64_t status = lf_train_tokens_open(settings->data, vocabulary, &trainer->corpus, diagnostic);
    if (status == 0)
        status = check_count(&settings->data_tokens, trainer->corpus.count, resuming,
                             settings->data, "tokens", diagnostic);
    if (status < 0)
        return status;
    size_t window = (size_t)settings->sequence_length + 1;
    trainer->train_span = (lf_train_span){trainer->corpus.ids, trainer->corpus.count};
    if (settings->eval_data) {
        status = lf_train_tokens_open(settings->eval_data, vocabulary, &trainer->held_out_file,
                                      diagnostic);
        if (status == 0)
            status = check_count(&settings->eval_data_tokens, trainer->held_out_file.count,
                                 resuming, settings->eval_data, "tokens", diagnostic);
        trainer->eval_span = (lf_train_span){trainer->held_out_file.ids,
                                             trainer->held_out_file.count};
    } else if (trainer->corpus.count / HELD_OUT_SHARE >= window) {
        size_t held_out = trainer->corpus.count / HELD_OUT_SHARE;
        trainer->train_span.count -= held_out;
        trainer->eval_span = (lf_train_span){trainer->corpus.ids + trainer->train_span.count,
                                             held_out};
    }
    if (status == 0 && trainer->train_span.count < window)
        status = lf_fail(diagnostic, -EINVAL, "'%s' has %zu training tokens, fewer than one "
                         "window of %zu", settings->data, trainer->train_span.count, window);
    if (status == 0 && trainer->eval_span.count && trainer->eval_span.count < window)
        status = lf_fail(diagnostic, -EINVAL, "'%s' has fewer tokens than one window of %zu",
                         settings->eval_data, window);
    return status;
}

static int64_t open_examples(lf_trainer *trainer, bool resuming, lf_diagnostic *diagnostic)
{
    lf_train_settings *settings = &trainer->settings;
    int64_t status = lf_train_sft_load(settings->sft, trainer->tokenizer,
                                       settings->sequence_length, &trainer->examples, diagnostic);
    if (status == 0 && trainer->examples.count == 0)
        status = lf_fail(diagnostic, -EINVAL, "no example of '%s' fits in %u tokens", settings->sft,
                         settings->sequence_length);
    if (status == 0)
        status = check_count(&settings->sft_examples, trainer->examples.count, resuming,
                             settings->sft, "examples", diagnostic);
    if (status == 0 && settings->sft_eval) {
        status = lf_train_sft_load(settings->sft_eval, trainer->tokenizer,
                                   settings->sequence_length, &trainer->eval_examples, diagnostic);
        if (status == 0)
            status = check_count(&settings->sft_eval_examples, trainer->eval_examples.count,
                                 resuming, settings->sft_eval, "examples", diagnostic);
    }
    if (status < 0)
        return status;
    trainer->order = malloc(trainer->examples.count * sizeof *trainer->order);
    trainer->batch_examples = malloc(settings->batch_rows * sizeof *trainer->batch_examples);
    if (!trainer->order || !trainer->batch_examples)
        return -ENOMEM;
    lf_train_sft_epoch_order(&trainer->examples, settings->seed, trainer->progress.sft_epoch,
                             settings->batch_rows, settings->sft_group_batches, trainer->order);
    return 0;
}

/* Everything that follows from the settings, tokenizer and progress:
 * memory, the network and the data. */
static int64_t prepare(lf_trainer *trainer, unsigned threads, bool resuming,
                       lf_diagnostic *diagnostic)
{
    lf_train_settings *settings = &trainer->settings;
    const lf_transformer_config *config = &settings->model;
    if (settings->sequence_length == 0)
        settings->sequence_length = config->context_length;
    if (settings->sequence_length > config->context_length || settings->batch_rows == 0 ||
        settings->steps == 0 || !(settings->learning_rate > 0) || threads == 0)
        return lf_fail(diagnostic, -EINVAL, "bad settings: the batch, steps and learning rate "
                       "must be positive, and sequences at most the context (%u tokens)",
                       config->context_length);
    if (!settings->data == !settings->sft)
        return lf_fail(diagnostic, -EINVAL, "a run trains on a token corpus or on SFT examples");
    trainer->tensor_count = lf_transformer_tensors(config, NULL);
    trainer->tensors = malloc(trainer->tensor_count * sizeof *trainer->tensors);
    trainer->parameter_count = lf_transformer_parameter_count(config);
    trainer->storage = calloc(4 * trainer->parameter_count, sizeof(float));
    trainer->byte_lengths = malloc(config->vocab_size);
    if (!trainer->tensors || !trainer->storage || !trainer->byte_lengths)
        return -ENOMEM;
    lf_transformer_tensors(config, trainer->tensors);
    trainer->parameters = trainer->storage;
    trainer->gradients = trainer->storage + trainer->parameter_count;
    trainer->first_moments = trainer->storage + 2 * trainer->parameter_count;
    trainer->second_moments = trainer->storage + 3 * trainer->parameter_count;
    lf_train_token_byte_lengths(trainer->tokenizer, trainer->byte_lengths);
    int64_t status = lf_train_network_create(config, settings->batch_rows,
                                             settings->sequence_length, threads, &trainer->network);
    if (status == 0)
        status = lf_train_batch_allocate(&trainer->batch, settings->batch_rows,
                                         settings->sequence_length);
    if (status == -ENOMEM)
        return status;
    if (status < 0)
        return lf_fail(diagnostic, status, "cannot make a network of %u x %u tokens",
                       settings->batch_rows, settings->sequence_length);
    return is_sft(trainer) ? open_examples(trainer, resuming, diagnostic)
                           : open_corpus(trainer, resuming, diagnostic);
}

static lf_trainer *new_trainer(const char *run_directory)
{
    lf_trainer *trainer = calloc(1, sizeof *trainer);
    if (trainer && !(trainer->run_directory = strdup(run_directory))) {
        free(trainer);
        return NULL;
    }
    return trainer;
}

/* The tokenizer, shape and (for init) parameters of a new run. */
static int64_t choose_model(lf_trainer *trainer, float **initial, lf_diagnostic *diagnostic)
{
    lf_train_settings *settings = &trainer->settings;
    *initial = NULL;
    if (settings->init) {
        if (settings->tokenizer)
            return lf_fail(diagnostic, -EINVAL, "a run started from '%s' uses its tokenizer",
                           settings->init);
        return lf_train_load_starting_point(settings->init, &settings->model, &trainer->tokenizer,
                                            initial, diagnostic);
    }
    if (!settings->tokenizer)
        return lf_fail(diagnostic, -EINVAL, "a new run needs a tokenizer or a starting point");
    int64_t status = lf_tokenizer_load(settings->tokenizer, &trainer->tokenizer, diagnostic);
    if (status < 0)
        return status;
    settings->model.vocab_size = lf_tokenizer_vocab_size(trainer->tokenizer);
    return lf_transformer_validate_config(&settings->model, diagnostic);
}

int64_t lf_trainer_create(const lf_train_settings *settings, const char *run_directory,
                          unsigned threads, lf_trainer **trainer, lf_diagnostic *diagnostic)
{
    *trainer = NULL;
    lf_trainer *created = new_trainer(run_directory);
    if (!created)
        return -ENOMEM;
    float *initial = NULL;
    struct stat existing;
    lf_buffer checkpoint = {0};
    int64_t status =
        lf_buffer_printf(&checkpoint, "%s/%s", run_directory, LF_TRAIN_CHECKPOINT_FILE);
    if (status == 0 && stat(lf_buffer_string(&checkpoint), &existing) == 0)
        status = lf_fail(diagnostic, -EEXIST, "'%s' already holds a run: resume it or choose "
                         "another directory", run_directory);
    lf_buffer_free(&checkpoint);
    if (status == 0 && mkdir(run_directory, 0777) != 0 && errno != EEXIST)
        status = lf_fail(diagnostic, -errno, "cannot create '%s': %s", run_directory,
                         strerror(errno));
    if (status == 0)
        status = lf_train_settings_copy(&created->settings, settings);
    if (status == 0)
        status = choose_model(created, &initial, diagnostic);
    if (status == 0)
        status = prepare(created, threads, false, diagnostic);
    if (status == 0) {
        if (initial)
            memcpy(created->parameters, initial, created->parameter_count * sizeof(float));
        else
            lf_transformer_init_parameters(&created->settings.model, created->settings.seed,
                                           created->parameters);
        lf_random_seed(&created->progress.random, created->settings.seed ^ DATA_SEED_MIX);
        status = lf_trainer_save_checkpoint(created, diagnostic);
    }
    free(initial);
    if (status < 0) {
        lf_trainer_free(created);
        return status;
    }
    *trainer = created;
    return 0;
}

int64_t lf_trainer_read_settings(const char *run_directory, lf_train_settings *settings,
                                 lf_diagnostic *diagnostic)
{
    lf_train_checkpoint *checkpoint;
    lf_tokenizer *tokenizer;
    lf_train_progress progress;
    int64_t status = lf_train_checkpoint_open(run_directory, &checkpoint, settings, &tokenizer,
                                              &progress, diagnostic);
    if (status < 0)
        return status;
    lf_tokenizer_free(tokenizer);
    lf_train_checkpoint_close(checkpoint);
    return 0;
}

/* The name of the first setting that would change the steps to come. */
static const char *changed_setting(const lf_train_settings *run, const lf_train_settings *wanted)
{
    const lf_transformer_config *a = &run->model, *b = &wanted->model;
    if (a->vocab_size != b->vocab_size || a->context_length != b->context_length ||
        a->embedding_size != b->embedding_size || a->layer_count != b->layer_count ||
        a->head_count != b->head_count || a->kv_head_count != b->kv_head_count ||
        a->feed_forward_size != b->feed_forward_size || a->rope_base != b->rope_base ||
        a->norm_epsilon != b->norm_epsilon)
        return "the model";
    if (!run->sft != !wanted->sft || !run->eval_data != !wanted->eval_data ||
        !run->sft_eval != !wanted->sft_eval)
        return "the kind of data";
    if (run->batch_rows != wanted->batch_rows)
        return "the batch";
    if (run->sequence_length != wanted->sequence_length)
        return "the sequence length";
    if (run->learning_rate != wanted->learning_rate)
        return "the learning rate";
    if (run->warmup_steps != wanted->warmup_steps)
        return "the warmup";
    if (run->seed != wanted->seed)
        return "the seed";
    return NULL;
}

int64_t lf_trainer_resume(const char *run_directory, const lf_train_settings *settings,
                          unsigned threads, lf_trainer **trainer, lf_diagnostic *diagnostic)
{
    *trainer = NULL;
    lf_trainer *resumed = new_trainer(run_directory);
    if (!resumed)
        return -ENOMEM;
    lf_train_checkpoint *checkpoint = NULL;
    int64_t status = lf_train_checkpoint_open(run_directory, &checkpoint, &resumed->settings,
                                              &resumed->tokenizer, &resumed->progress, diagnostic);
    if (status == 0 && settings) {
        lf_train_settings wanted;
        const char *changed = changed_setting(&resumed->settings, settings);
        if (changed)
            status = lf_fail(diagnostic, -EINVAL, "a resumed run cannot change %s", changed);
        else if ((status = lf_train_settings_copy(&wanted, settings)) == 0) {
            /* the recorded data sizes stay the run's, to be checked */
            wanted.data_tokens = resumed->settings.data_tokens;
            wanted.eval_data_tokens = resumed->settings.eval_data_tokens;
            wanted.sft_examples = resumed->settings.sft_examples;
            wanted.sft_eval_examples = resumed->settings.sft_eval_examples;
            lf_train_settings_free(&resumed->settings);
            resumed->settings = wanted;
        }
    }
    if (status == 0)
        status = prepare(resumed, threads, true, diagnostic);
    if (status == 0)
        lf_train_checkpoint_read(checkpoint, resumed->parameters, resumed->first_moments,
                                 resumed->second_moments);
    lf_train_checkpoint_close(checkpoint);
    if (status < 0) {
        lf_trainer_free(resumed);
        return status;
    }
    *trainer = resumed;
    return 0;
}

const lf_train_settings *lf_trainer_settings(const lf_trainer *trainer)
{
    return &trainer->settings;
}

uint64_t lf_trainer_step_count(const lf_trainer *trainer) { return trainer->progress.step; }

const float *lf_trainer_parameters(const lf_trainer *trainer) { return trainer->parameters; }

void lf_trainer_describe(const lf_trainer *trainer, lf_train_data_summary *summary)
{
    *summary = (lf_train_data_summary){.train_tokens = trainer->train_span.count,
                                       .eval_tokens = trainer->eval_span.count,
                                       .train_examples = trainer->examples.count,
                                       .eval_examples = trainer->eval_examples.count,
                                       .skipped_train = trainer->examples.skipped,
                                       .skipped_eval = trainer->eval_examples.skipped};
}

/* The next B examples of the epoch order, starting a new epoch (and order)
 * when one runs out. */
static void next_examples(lf_trainer *trainer)
{
    size_t rows = trainer->settings.batch_rows, *chosen = trainer->batch_examples;
    lf_train_progress *progress = &trainer->progress;
    for (size_t row = 0; row < rows; row++) {
        if (progress->sft_next == trainer->examples.count) {
            progress->sft_epoch++;
            progress->sft_next = 0;
            lf_train_sft_epoch_order(&trainer->examples, trainer->settings.seed,
                                     progress->sft_epoch, trainer->settings.batch_rows,
                                     trainer->settings.sft_group_batches, trainer->order);
        }
        chosen[row] = trainer->order[progress->sft_next++];
    }
    lf_train_sft_fill_batch(&trainer->examples, chosen, (uint32_t)rows, &trainer->batch);
}

int64_t lf_trainer_step(lf_trainer *trainer, lf_train_step_report *report)
{
    const lf_train_settings *settings = &trainer->settings;
    lf_train_batch *batch = &trainer->batch;
    if (is_sft(trainer)) {
        next_examples(trainer);
    } else {
        batch->rows = settings->batch_rows;
        batch->length = settings->sequence_length;
        lf_train_sample_windows(&trainer->train_span, &trainer->progress.random, batch);
    }
    memset(trainer->gradients, 0, trainer->parameter_count * sizeof(float));
    lf_train_loss loss;
    int64_t status = lf_train_forward(trainer->network, trainer->parameters, batch, &loss);
    if (status < 0)
        return status;
    lf_train_backward(trainer->network, trainer->parameters, batch, trainer->gradients);
    double norm = lf_train_clip_gradients(trainer->gradients, trainer->parameter_count);
    double rate = lf_train_learning_rate(settings->learning_rate, settings->warmup_steps,
                                         settings->steps, trainer->progress.step);
    lf_train_adamw_update(trainer->tensors, trainer->tensor_count, trainer->parameters,
                          trainer->gradients, trainer->first_moments, trainer->second_moments, rate,
                          trainer->progress.step + 1);
    trainer->progress.step++;
    *report = (lf_train_step_report){.step = trainer->progress.step,
                                     .steps = settings->steps,
                                     .loss = loss.targets ? loss.nats / (double)loss.targets : 0.0,
                                     .learning_rate = rate,
                                     .gradient_norm = norm,
                                     .positions = (uint64_t)batch->rows * batch->length};
    return 0;
}

/* Adds one evaluation batch's loss and text bytes to report. */
static int64_t evaluate_batch(lf_trainer *trainer, lf_train_eval_report *report, double *nats)
{
    const lf_train_batch *batch = &trainer->batch;
    lf_train_loss loss;
    int64_t status = lf_train_forward(trainer->network, trainer->parameters, batch, &loss);
    if (status < 0)
        return status;
    *nats += loss.nats;
    report->targets += loss.targets;
    for (size_t p = 0; p < (size_t)batch->rows * batch->length; p++)
        if (batch->targets[p] != LF_TRAIN_NO_TARGET)
            report->bytes += trainer->byte_lengths[batch->targets[p]];
    return 0;
}

int64_t lf_trainer_evaluate(lf_trainer *trainer, lf_train_eval_report *report)
{
    const lf_train_settings *settings = &trainer->settings;
    lf_train_batch *batch = &trainer->batch;
    *report = (lf_train_eval_report){.step = trainer->progress.step};
    double nats = 0.0;
    int64_t status = 0;
    if (is_sft(trainer)) {
        const lf_train_sft_set *set = &trainer->eval_examples;
        for (size_t first = 0; status == 0 && first < set->count &&
                               report->targets < settings->eval_tokens;
             first += settings->batch_rows) {
            size_t rows = set->count - first < settings->batch_rows ? set->count - first
                                                                    : settings->batch_rows;
            for (size_t row = 0; row < rows; row++)
                trainer->batch_examples[row] = first + row;
            lf_train_sft_fill_batch(set, trainer->batch_examples, (uint32_t)rows, batch);
            status = evaluate_batch(trainer, report, &nats);
        }
    } else if (trainer->eval_span.count) {
        size_t windows = lf_train_eval_window_count(&trainer->eval_span, settings->sequence_length,
                                                    settings->eval_tokens);
        for (size_t first = 0; status == 0 && first < windows; first += settings->batch_rows) {
            batch->rows = (uint32_t)(windows - first < settings->batch_rows ? windows - first
                                                                            : settings->batch_rows);
            batch->length = settings->sequence_length;
            lf_train_fill_eval_windows(&trainer->eval_span, windows, first, batch);
            status = evaluate_batch(trainer, report, &nats);
        }
    }
    if (report->targets)
        report->loss = nats / (double)report->targets;
    if (report->bytes)
        report->bits_per_byte = nats / log(2.0) / (double)report->bytes;
    return status;
}

int64_t lf_trainer_save_checkpoint(lf_trainer *trainer, lf_diagnostic *diagnostic)
{
    return lf_train_checkpoint_write(trainer->run_directory, &trainer->settings, trainer->tokenizer,
                                     &trainer->progress, trainer->parameters,
                                     trainer->first_moments, trainer->second_moments, diagnostic);
}

int64_t lf_trainer_export(const lf_trainer *trainer, const char *path, lf_diagnostic *diagnostic)
{
    return lf_transformer_save(&trainer->settings.model, trainer->parameters, trainer->tokenizer,
                               path, diagnostic);
}

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static bool due(uint64_t step, uint64_t every, bool last)
{
    return last || (every && step % every == 0);
}

/* Saves the run and tells the caller. */
static int64_t save_and_report(lf_trainer *trainer, const lf_train_callbacks *callbacks,
                               lf_diagnostic *diagnostic)
{
    int64_t status = lf_trainer_save_checkpoint(trainer, diagnostic);
    if (status == 0 && callbacks->saved)
        callbacks->saved(callbacks->context, trainer->progress.step, trainer->run_directory);
    return status;
}

int64_t lf_trainer_run(lf_trainer *trainer, const lf_train_limits *limits,
                       const lf_train_callbacks *callbacks, lf_diagnostic *diagnostic)
{
    const lf_train_settings *settings = &trainer->settings;
    double started = seconds_now();
    uint64_t session_steps = 0, saved_step = trainer->progress.step;
    int64_t status = 0;
    while (status == 0 && trainer->progress.step < settings->steps) {
        bool stop = (limits->stop && *limits->stop) ||
                    (limits->session_steps && session_steps >= limits->session_steps) ||
                    (limits->session_seconds > 0 &&
                     seconds_now() - started >= limits->session_seconds);
        if (stop) {
            if (saved_step != trainer->progress.step)
                status = save_and_report(trainer, callbacks, diagnostic);
            return status < 0 ? status : 0;
        }
        lf_train_step_report report;
        if ((status = lf_trainer_step(trainer, &report)) < 0)
            break;
        session_steps++;
        if (callbacks->step)
            callbacks->step(callbacks->context, &report);
        uint64_t step = trainer->progress.step;
        bool last = step == settings->steps;
        if (due(step, settings->eval_every, last)) {
            lf_train_eval_report evaluation;
            status = lf_trainer_evaluate(trainer, &evaluation);
            if (status == 0 && evaluation.targets && callbacks->evaluation)
                callbacks->evaluation(callbacks->context, &evaluation);
        }
        if (status == 0 && due(step, settings->checkpoint_every, last)) {
            status = save_and_report(trainer, callbacks, diagnostic);
            saved_step = step;
        }
        if (status == 0 && settings->output && due(step, settings->output_every, last)) {
            status = lf_trainer_export(trainer, settings->output, diagnostic);
            if (status == 0 && callbacks->saved)
                callbacks->saved(callbacks->context, step, settings->output);
        }
    }
    return status < 0 ? status : 1;
}
