/* llmfuse train: tokenize a corpus, train or fine-tune a transformer,
 * resume a run. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/buffer.h"
#include "common/file.h"
#include "common/parallel.h"
#include "model/transformer_file.h"
#include "train/backprop.h"
#include "train/data.h"
#include "train/sft.h"
#include "train/trainer.h"

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmfuse train tokenize --tokenizer TOK.gguf -o DATA.tok [--threads N]\n"
            "                              [--files-from LIST] [INPUT...]\n"
            "           write the token file of a corpus: each input is a document, documents\n"
            "           are separated by <|endoftext|>; LIST names more inputs, one per line\n"
            "       llmfuse train tokenize --sft --tokenizer TOK.gguf -o EXAMPLES.sfttok\n"
            "                              [--context T (65536)] TRAIN.jsonl\n"
            "           write fine-tuning examples as tokens, as --sft reads them (those with\n"
            "           more than T inputs left out), for scripts/train-gpu sft\n"
            "       llmfuse train --run-dir DIR (--data DATA.tok [--eval-data EVAL.tok]\n"
            "                                   | --sft TRAIN.jsonl [--sft-eval EVAL.jsonl])\n"
            "                     (--tokenizer TOK.gguf [--config C.json]\n"
            "                     | --init MODEL.gguf|RUN_DIR)\n"
            "                     [--output OUT.gguf] [OPTIONS]\n"
            "           start a run: pretraining on a token file (without --eval-data its last\n"
            "           1%% is held out) or fine-tuning on prompt/completion lines (loss on the\n"
            "           completions only), from random parameters (shape: --config, with the keys\n"
            "           of 'llmfuse model init') or from a model or another run's parameters\n"
            "       llmfuse train --resume DIR [OPTIONS]\n"
            "           continue a run from its checkpoint; it may change only --steps, --output,\n"
            "           the periods, --eval-tokens, --group-batches and the paths of the same data\n\n"
            "options (defaults in brackets):\n"
            "  --steps N             optimizer steps [1000]\n"
            "  --batch B             sequences per step [16]\n"
            "  --context T           tokens per sequence [the model's context]\n"
            "  --lr X                peak learning rate [0.001]; warmup, then a cosine to 10%%\n"
            "  --warmup N            warmup steps [steps / 20]\n"
            "  --seed S              parameters and data order [1]\n"
            "  --eval-every N        evaluate on held-out data every N steps and at the end [500]\n"
            "  --eval-tokens N       tokens per evaluation, at most [65536]\n"
            "  --checkpoint-every N  save the run every N steps, at the end and when stopped\n"
            "                        [500]\n"
            "  --output-every N      also write --output every N steps [only at the end]\n"
            "  --group-batches N     SFT: draw batches of examples of similar length, from runs\n"
            "                        of N batches sorted by length; 0: any lengths [64]\n"
            "  --progress-every K    a progress line every K steps, the loss their mean [10]\n"
            "  --threads N           threads [one per CPU]; a run reproduces its losses exactly\n"
            "                        when resumed with the same count\n"
            "  --stop-after N        stop (saving the run) after N steps of this session\n"
            "  --time-limit S        stop (saving the run) after S seconds\n"
            "SIGINT and SIGTERM also stop after the current step and save the run (exit 2).\n"
            "Progress goes to stderr and to DIR/log.txt.\n");
}

enum option_id {
    OPTION_DATA = 256,
    OPTION_EVAL_DATA,
    OPTION_SFT,
    OPTION_SFT_EVAL,
    OPTION_TOKENIZER,
    OPTION_INIT,
    OPTION_OUTPUT,
    OPTION_STEPS,
    OPTION_BATCH,
    OPTION_CONTEXT,
    OPTION_LEARNING_RATE,
    OPTION_WARMUP,
    OPTION_SEED,
    OPTION_EVAL_EVERY,
    OPTION_EVAL_TOKENS,
    OPTION_CHECKPOINT_EVERY,
    OPTION_OUTPUT_EVERY,
    OPTION_GROUP_BATCHES,
    /* the options above are settings of the run; those below are not */
    OPTION_CONFIG,
    OPTION_RUN_DIRECTORY,
    OPTION_RESUME,
    OPTION_THREADS,
    OPTION_PROGRESS_EVERY,
    OPTION_STOP_AFTER,
    OPTION_TIME_LIMIT,
    OPTION_END
};

static const struct option long_options[] = {
    {"data", required_argument, NULL, OPTION_DATA},
    {"eval-data", required_argument, NULL, OPTION_EVAL_DATA},
    {"sft", required_argument, NULL, OPTION_SFT},
    {"sft-eval", required_argument, NULL, OPTION_SFT_EVAL},
    {"tokenizer", required_argument, NULL, OPTION_TOKENIZER},
    {"init", required_argument, NULL, OPTION_INIT},
    {"output", required_argument, NULL, OPTION_OUTPUT},
    {"steps", required_argument, NULL, OPTION_STEPS},
    {"batch", required_argument, NULL, OPTION_BATCH},
    {"context", required_argument, NULL, OPTION_CONTEXT},
    {"lr", required_argument, NULL, OPTION_LEARNING_RATE},
    {"warmup", required_argument, NULL, OPTION_WARMUP},
    {"seed", required_argument, NULL, OPTION_SEED},
    {"eval-every", required_argument, NULL, OPTION_EVAL_EVERY},
    {"eval-tokens", required_argument, NULL, OPTION_EVAL_TOKENS},
    {"checkpoint-every", required_argument, NULL, OPTION_CHECKPOINT_EVERY},
    {"output-every", required_argument, NULL, OPTION_OUTPUT_EVERY},
    {"group-batches", required_argument, NULL, OPTION_GROUP_BATCHES},
    {"config", required_argument, NULL, OPTION_CONFIG},
    {"run-dir", required_argument, NULL, OPTION_RUN_DIRECTORY},
    {"resume", required_argument, NULL, OPTION_RESUME},
    {"threads", required_argument, NULL, OPTION_THREADS},
    {"progress-every", required_argument, NULL, OPTION_PROGRESS_EVERY},
    {"stop-after", required_argument, NULL, OPTION_STOP_AFTER},
    {"time-limit", required_argument, NULL, OPTION_TIME_LIMIT},
    {"help", no_argument, NULL, 'h'},
    {0}};

/* The option's name as typed, for messages. */
static const char *option_name(int id)
{
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == id)
            return o->name;
    return "?";
}

/* A whole number in [minimum, INT64_MAX] (settings keep numbers as JSON integers). */
static int64_t parse_count(const char *text, int id, uint64_t minimum, uint64_t *value,
                           lf_diagnostic *diagnostic)
{
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || parsed < minimum || parsed > INT64_MAX)
        return lf_fail(diagnostic, -EINVAL, "--%s needs a whole number of at least %" PRIu64,
                       option_name(id), minimum);
    *value = parsed;
    return 0;
}

static int64_t parse_positive_real(const char *text, int id, double *value,
                                   lf_diagnostic *diagnostic)
{
    char *end;
    errno = 0;
    *value = strtod(text, &end);
    if (errno || end == text || *end || !(*value > 0) || !isfinite(*value))
        return lf_fail(diagnostic, -EINVAL, "--%s needs a positive number", option_name(id));
    return 0;
}

/* Sets the run setting that option `id` names from its text. */
static int64_t apply_setting(lf_train_settings *settings, int id, const char *text,
                             lf_diagnostic *diagnostic)
{
    char **strings[] = {[OPTION_DATA - OPTION_DATA] = &settings->data,
                        [OPTION_EVAL_DATA - OPTION_DATA] = &settings->eval_data,
                        [OPTION_SFT - OPTION_DATA] = &settings->sft,
                        [OPTION_SFT_EVAL - OPTION_DATA] = &settings->sft_eval,
                        [OPTION_TOKENIZER - OPTION_DATA] = &settings->tokenizer,
                        [OPTION_INIT - OPTION_DATA] = &settings->init,
                        [OPTION_OUTPUT - OPTION_DATA] = &settings->output};
    if (id <= OPTION_OUTPUT) { /* absolute, so that a run resumed elsewhere finds its files */
        lf_buffer path = {0};
        char directory[4096];
        if (text[0] != '/' && !getcwd(directory, sizeof directory))
            return lf_fail(diagnostic, -errno, "cannot tell the current directory: %s",
                           strerror(errno));
        int64_t status = text[0] == '/' ? lf_buffer_append_string(&path, text)
                                        : lf_buffer_printf(&path, "%s/%s", directory, text);
        if (status == 0)
            status = lf_train_settings_set_string(strings[id - OPTION_DATA],
                                                  lf_buffer_string(&path));
        lf_buffer_free(&path);
        return status;
    }
    uint64_t count;
    int64_t status;
    switch (id) {
    case OPTION_LEARNING_RATE:
        return parse_positive_real(text, id, &settings->learning_rate, diagnostic);
    case OPTION_BATCH:
    case OPTION_CONTEXT:
        if ((status = parse_count(text, id, 1, &count, diagnostic)) < 0)
            return status;
        if (count > 65536)
            return lf_fail(diagnostic, -EINVAL, "--%s is at most 65536", option_name(id));
        if (id == OPTION_BATCH)
            settings->batch_rows = (uint32_t)count;
        else
            settings->sequence_length = (uint32_t)count;
        return 0;
    case OPTION_STEPS: return parse_count(text, id, 1, &settings->steps, diagnostic);
    case OPTION_WARMUP: return parse_count(text, id, 0, &settings->warmup_steps, diagnostic);
    case OPTION_SEED: return parse_count(text, id, 0, &settings->seed, diagnostic);
    case OPTION_EVAL_EVERY: return parse_count(text, id, 0, &settings->eval_every, diagnostic);
    case OPTION_EVAL_TOKENS: return parse_count(text, id, 1, &settings->eval_tokens, diagnostic);
    case OPTION_CHECKPOINT_EVERY:
        return parse_count(text, id, 0, &settings->checkpoint_every, diagnostic);
    case OPTION_OUTPUT_EVERY: return parse_count(text, id, 0, &settings->output_every, diagnostic);
    case OPTION_GROUP_BATCHES:
        if ((status = parse_count(text, id, 0, &count, diagnostic)) < 0)
            return status;
        if (count > 65536)
            return lf_fail(diagnostic, -EINVAL, "--%s is at most 65536", option_name(id));
        settings->sft_group_batches = (uint32_t)count;
        return 0;
    }
    return -EINVAL;
}

/* ---- progress ---- */

typedef struct progress_printer {
    FILE *log; /* DIR/log.txt, or NULL */
    uint64_t every;
    double started, last_print;
    uint64_t session_steps, steps_since_print, positions_since_print;
    double loss_since_print;
} progress_printer;

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* One line to stderr and to the run's log. */
static void say(progress_printer *printer, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void say(progress_printer *printer, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    vfprintf(stderr, format, arguments);
    va_end(arguments);
    if (printer->log) {
        va_start(arguments, format);
        vfprintf(printer->log, format, arguments);
        va_end(arguments);
        fflush(printer->log);
    }
}

static void format_duration(double seconds, char *out, size_t size)
{
    uint64_t whole = seconds > 0 ? (uint64_t)seconds : 0;
    snprintf(out, size, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, whole / 3600, whole / 60 % 60,
             whole % 60);
}

static void on_step(void *context, const lf_train_step_report *report)
{
    progress_printer *printer = context;
    printer->session_steps++;
    printer->steps_since_print++;
    printer->positions_since_print += report->positions;
    printer->loss_since_print += report->loss;
    if (report->step % printer->every != 0 && report->step != report->steps)
        return;
    double now = seconds_now();
    double per_step = (now - printer->started) / (double)printer->session_steps;
    char eta[32];
    format_duration(per_step * (double)(report->steps - report->step), eta, sizeof eta);
    say(printer,
        "step %" PRIu64 "/%" PRIu64 "  loss %.4f  lr %.2e  norm %.2f  %.0f tok/s  ETA %s\n",
        report->step, report->steps, printer->loss_since_print / (double)printer->steps_since_print,
        report->learning_rate, report->gradient_norm,
        (double)printer->positions_since_print / (now - printer->last_print), eta);
    printer->last_print = now;
    printer->steps_since_print = 0;
    printer->positions_since_print = 0;
    printer->loss_since_print = 0;
}

static void on_evaluation(void *context, const lf_train_eval_report *report)
{
    say(context, "eval step %" PRIu64 "  loss %.4f nats/token  %.4f bits/byte  (%" PRIu64
        " tokens, %" PRIu64 " bytes)\n",
        report->step, report->loss, report->bits_per_byte, report->targets, report->bytes);
}

static void on_saved(void *context, uint64_t step, const char *path)
{
    say(context, "saved step %" PRIu64 " to %s\n", step, path);
}

static volatile sig_atomic_t stop_requested;

static void request_stop(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

/* ---- commands ---- */

/* what: the file or directory concerned, NULL when the message names it. */
static int report_failure(const char *what, int64_t status, const lf_diagnostic *diagnostic)
{
    fprintf(stderr, "llmfuse train: %s%s%s\n", what ? what : "", what ? ": " : "",
            diagnostic->message[0] ? diagnostic->message : lf_error_string(status));
    return LF_EXIT_ERROR;
}

/* `tokenize --sft`: the examples of a JSON-lines file as --sft reads them. */
static int tokenize_examples(const char *tokenizer_path, const char *input, uint32_t context,
                             const char *output)
{
    lf_diagnostic diagnostic = {0};
    lf_tokenizer *tokenizer = NULL;
    lf_train_sft_set set = {0};
    int64_t status = lf_tokenizer_load(tokenizer_path, &tokenizer, &diagnostic);
    if (status < 0)
        return report_failure(tokenizer_path, status, &diagnostic);
    status = lf_train_sft_load(input, tokenizer, context, &set, &diagnostic);
    const char *failed = input;
    if (status == 0) {
        status = lf_train_sft_save(&set, output, &diagnostic);
        failed = output;
    }
    lf_tokenizer_free(tokenizer);
    if (status == 0)
        fprintf(stderr, "llmfuse train: %s: %zu examples, %zu tokens (%zu with more than %" PRIu32
                " inputs left out)\n", output, set.count, set.tokens.count, set.skipped, context);
    lf_train_sft_free(&set);
    return status < 0 ? report_failure(failed, status, &diagnostic) : LF_EXIT_OK;
}

static int tokenize(int argc, char **argv)
{
    static const struct option options[] = {{"tokenizer", required_argument, NULL, 't'},
                                            {"output", required_argument, NULL, 'o'},
                                            {"threads", required_argument, NULL, 'j'},
                                            {"files-from", required_argument, NULL, 'f'},
                                            {"sft", no_argument, NULL, 's'},
                                            {"context", required_argument, NULL, 'c'},
                                            {"help", no_argument, NULL, 'h'},
                                            {0}};
    const char *tokenizer_path = NULL, *output = NULL, *list_path = NULL;
    uint64_t threads = lf_parallel_default_threads(), context = 65536;
    bool examples = false;
    lf_diagnostic diagnostic = {0};
    int64_t status;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "t:o:h", options, NULL)) != -1) {
        switch (option) {
        case 't': tokenizer_path = optarg; break;
        case 'o': output = optarg; break;
        case 'f': list_path = optarg; break;
        case 's': examples = true; break;
        case 'c':
            if ((status = parse_count(optarg, OPTION_CONTEXT, 1, &context, &diagnostic)) < 0)
                return report_failure(NULL, status, &diagnostic);
            if (context > 65536)
                return report_failure(NULL, lf_fail(&diagnostic, -EINVAL, "--context is at most 65536"),
                                      &diagnostic);
            break;
        case 'j':
            if ((status = parse_count(optarg, OPTION_THREADS, 1, &threads, &diagnostic)) < 0)
                return report_failure(NULL, status, &diagnostic);
            break;
        case 'h': print_usage(stdout); return LF_EXIT_OK;
        default: print_usage(stderr); return LF_EXIT_ERROR;
        }
    }
    if (!tokenizer_path || !output || (optind >= argc && !list_path) ||
        (examples && (list_path || argc - optind != 1))) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    if (examples)
        return tokenize_examples(tokenizer_path, argv[optind], (uint32_t)context, output);
    /* the documents: the operands, then the lines of --files-from */
    lf_buffer list = {0};
    if (list_path && (status = lf_file_read_all(list_path, &list, &diagnostic)) < 0)
        return report_failure(list_path, status, &diagnostic);
    size_t count = (size_t)(argc - optind);
    for (size_t i = 0; i < list.length; i++)
        count += list.data[i] == '\n' || i + 1 == list.length;
    const char **paths = malloc((count ? count : 1) * sizeof *paths);
    if (!paths || lf_buffer_append(&list, "", 1) < 0) {
        free(paths);
        lf_buffer_free(&list);
        return report_failure(list_path, -ENOMEM, &diagnostic);
    }
    count = 0;
    for (int i = optind; i < argc; i++)
        paths[count++] = argv[i];
    for (char *line = (char *)list.data; *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (*line)
            paths[count++] = line;
        line = end ? end + 1 : line + strlen(line);
    }
    lf_tokenizer *tokenizer = NULL;
    status = lf_tokenizer_load(tokenizer_path, &tokenizer, &diagnostic);
    if (status >= 0)
        status = lf_train_tokenize_files(tokenizer, paths, count, (unsigned)threads, output,
                                         &diagnostic);
    lf_tokenizer_free(tokenizer);
    free(paths);
    lf_buffer_free(&list);
    if (status < 0)
        return report_failure(tokenizer && status != -ENOMEM ? output : tokenizer_path, status,
                              &diagnostic);
    fprintf(stderr, "llmfuse train: %s: %" PRId64 " tokens from %zu documents\n", output, status,
            count);
    return LF_EXIT_OK;
}

/* What the command line asked for, beyond the run's settings. */
typedef struct invocation {
    const char *values[OPTION_END - OPTION_DATA]; /* each option's text, NULL when not given */
    uint64_t threads, progress_every, stop_after;
    double time_limit;
} invocation;

static const char *given(const invocation *call, int id) { return call->values[id - OPTION_DATA]; }

/* The settings of a new run, or of the run being resumed with the options'
 * changes. */
static int64_t compose_settings(const invocation *call, lf_train_settings *settings,
                                lf_diagnostic *diagnostic)
{
    const char *resume = given(call, OPTION_RESUME);
    if (resume) {
        int64_t status = lf_trainer_read_settings(resume, settings, diagnostic);
        if (status < 0)
            return status;
    } else {
        *settings = lf_train_settings_defaults();
        settings->model = lf_transformer_default_config(0);
    }
    for (int id = OPTION_DATA; id < OPTION_CONFIG; id++) { /* the run's settings */
        const char *text = given(call, id);
        int64_t status = text ? apply_setting(settings, id, text, diagnostic) : 0;
        if (status < 0)
            return status;
    }
    if (!resume && !given(call, OPTION_WARMUP))
        settings->warmup_steps = settings->steps / 20;
    const char *config = given(call, OPTION_CONFIG);
    return config ? lf_train_model_config_read(config, &settings->model, diagnostic) : 0;
}

static int check_invocation(const invocation *call)
{
    const char *problem = NULL;
    bool resume = given(call, OPTION_RESUME) != NULL;
    if (resume == (given(call, OPTION_RUN_DIRECTORY) != NULL))
        problem = "give --run-dir for a new run or --resume for an old one";
    else if (resume && (given(call, OPTION_TOKENIZER) || given(call, OPTION_INIT) ||
                        given(call, OPTION_CONFIG)))
        problem = "a resumed run keeps its model: no --tokenizer, --init or --config";
    else if (!resume && !given(call, OPTION_DATA) == !given(call, OPTION_SFT))
        problem = "give either --data or --sft";
    else if (!resume && !given(call, OPTION_TOKENIZER) == !given(call, OPTION_INIT))
        problem = "give either --tokenizer or --init";
    else if (given(call, OPTION_INIT) && given(call, OPTION_CONFIG))
        problem = "--config shapes a new model; --init brings its own";
    if (problem)
        fprintf(stderr, "llmfuse train: %s\n", problem);
    return problem ? LF_EXIT_ERROR : LF_EXIT_OK;
}

static void describe_run(progress_printer *printer, const lf_trainer *trainer, bool resumed)
{
    const lf_train_settings *settings = lf_trainer_settings(trainer);
    lf_train_data_summary data;
    lf_trainer_describe(trainer, &data);
    bool slow_blas;
    const char *blas = lf_train_blas_kernels(&slow_blas);
    say(printer, "%s at step %" PRIu64 " of %" PRIu64 ": %zu parameters, batch %u x %u tokens, "
        "lr %g, warmup %" PRIu64 ", OpenBLAS %s kernels\n",
        resumed ? "resuming" : "starting", lf_trainer_step_count(trainer), settings->steps,
        lf_transformer_parameter_count(&settings->model), settings->batch_rows,
        settings->sequence_length, settings->learning_rate, settings->warmup_steps, blas);
    if (slow_blas)
        say(printer, "llmfuse train: OpenBLAS does not know this CPU and runs its %s kernels "
            "without AVX2: set OPENBLAS_CORETYPE=Haswell (SkylakeX with AVX-512) for several "
            "times the speed\n", blas);
    if (settings->sft)
        say(printer, "examples: %zu for training (%zu longer than %u tokens skipped), %zu held out "
            "(%zu skipped); batches of similar lengths from runs of %u (--group-batches)\n",
            data.train_examples, data.skipped_train, settings->sequence_length,
            data.eval_examples, data.skipped_eval, settings->sft_group_batches);
    else
        say(printer, "tokens: %" PRIu64 " for training, %" PRIu64 " held out\n", data.train_tokens,
            data.eval_tokens);
}

static int train(int argc, char **argv)
{
    invocation call = {.threads = lf_parallel_default_threads(), .progress_every = 10};
    lf_diagnostic diagnostic = {0};
    int64_t status = 0;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (option == 'h') {
            print_usage(stdout);
            return LF_EXIT_OK;
        }
        if (option < OPTION_DATA || option >= OPTION_END) {
            print_usage(stderr);
            return LF_EXIT_ERROR;
        }
        call.values[option - OPTION_DATA] = optarg;
        if (option == OPTION_THREADS)
            status = parse_count(optarg, option, 1, &call.threads, &diagnostic);
        else if (option == OPTION_PROGRESS_EVERY)
            status = parse_count(optarg, option, 1, &call.progress_every, &diagnostic);
        else if (option == OPTION_STOP_AFTER)
            status = parse_count(optarg, option, 1, &call.stop_after, &diagnostic);
        else if (option == OPTION_TIME_LIMIT)
            status = parse_positive_real(optarg, option, &call.time_limit, &diagnostic);
        if (status < 0)
            return report_failure(NULL, status, &diagnostic);
    }
    if (optind != argc) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    if (check_invocation(&call) != LF_EXIT_OK)
        return LF_EXIT_ERROR;
    const char *resume = given(&call, OPTION_RESUME);
    const char *directory = resume ? resume : given(&call, OPTION_RUN_DIRECTORY);
    lf_train_settings settings = {0};
    lf_trainer *trainer = NULL;
    status = compose_settings(&call, &settings, &diagnostic);
    if (status < 0) {
        lf_train_settings_free(&settings);
        return report_failure(NULL, status, &diagnostic);
    }
    status = resume ? lf_trainer_resume(directory, &settings, (unsigned)call.threads, &trainer,
                                        &diagnostic)
                    : lf_trainer_create(&settings, directory, (unsigned)call.threads, &trainer,
                                        &diagnostic);
    lf_train_settings_free(&settings);
    if (status < 0)
        return report_failure(directory, status, &diagnostic);
    char log_path[4096];
    snprintf(log_path, sizeof log_path, "%s/log.txt", directory);
    double now = seconds_now();
    progress_printer printer = {.log = fopen(log_path, "a"), .every = call.progress_every,
                                .started = now, .last_print = now};
    describe_run(&printer, trainer, resume != NULL);
    struct sigaction action = {.sa_handler = request_stop, .sa_flags = SA_RESETHAND};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    lf_train_limits limits = {.stop = &stop_requested, .session_steps = call.stop_after,
                              .session_seconds = call.time_limit};
    lf_train_callbacks callbacks = {.context = &printer, .step = on_step,
                                    .evaluation = on_evaluation, .saved = on_saved};
    status = lf_trainer_run(trainer, &limits, &callbacks, &diagnostic);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int exit_status = LF_EXIT_OK;
    if (status < 0) {
        exit_status = report_failure(directory, status, &diagnostic);
    } else if (status == 0) {
        say(&printer, "stopped at step %" PRIu64 " of %" PRIu64 "; continue with: llmfuse train "
            "--resume %s\n", lf_trainer_step_count(trainer), lf_trainer_settings(trainer)->steps,
            directory);
        if (stop_requested)
            exit_status = LF_EXIT_WARNING;
    }
    if (printer.log)
        fclose(printer.log);
    lf_trainer_free(trainer);
    return exit_status;
}

int lf_command_train(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "tokenize") == 0)
        return tokenize(argc - 1, argv + 1);
    return train(argc, argv);
}
