/* llmfuse eval: how well a fine-tuned model answers the dataset's prompts.
 * Each example's prompt is completed greedily (engine/generate.h) and the
 * completion compared with the expected one byte for byte: a filesystem
 * that returns almost the right bytes has returned the wrong file. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "common/base64.h"
#include "common/buffer.h"
#include "common/file.h"
#include "common/parallel.h"
#include "engine/generate.h"
#include "fs/xml.h"

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmfuse eval MODEL.gguf DATA.jsonl [--limit N] [--threads N] [--max-tokens N]\n"
            "                    [--mismatches FILE] [--retries N] [--unguarded]\n"
            "                    [--copy-bias W]\n\n"
            "Completes every example's prompt greedily with the model and compares the\n"
            "completion with the expected one, byte for byte. DATA is what 'llmfuse gen'\n"
            "writes: lines with \"prompt\" and \"completion\" (\"completion_encoding\":\n"
            "\"base64\" for bytes), and \"op\" and \"kind\" (else read from the prompt).\n\n"
            "  --limit N       the first N examples only\n"
            "  --threads N     examples completed at once [one per CPU]; never changes a result\n"
            "  --max-tokens N  longest completion in tokens [the model's context]\n"
            "  --mismatches FILE  writes each example not matched exactly as a JSON line:\n"
            "                  its line number, op, prompt, expected and model completion\n"
            "  --retries N     also measures what the engine's second opinions would do\n"
            "                  (llmfuse mount --retries): after a W completion that is\n"
            "                  neither an error nor a parsing state, or a read's or\n"
            "                  readlink's data that is not the expected bytes, up to N\n"
            "                  completions branching at its most doubtful tokens; the\n"
            "                  first valid one (after an answer that was not an error,\n"
            "                  not an error) counts, in a line of its own (the table\n"
            "                  stays greedy)\n"
            "  --unguarded     the model's plain greedy answers: without the engine's\n"
            "                  guard, which keeps W answers to the XML the strict parser\n"
            "                  accepts (body lengths, paths, names, tags) and to the\n"
            "                  engine's rule (what the operation does not name is copied\n"
            "                  from the old state), getattr and readdir answers to their\n"
            "                  JSON shape (no name listed twice), and without copying\n"
            "  --copy-bias W   the logit added to tokens that go on copying bytes the\n"
            "                  prompt holds (operation values; a read's state) [%.1f];\n"
            "                  0 turns copying off\n\n"
            "Prints per operation and per kind (R, W) the examples, exact ones and mean\n"
            "latency; how many write completions that should be an XML state parse as one;\n"
            "latency and speed; how many tokens the guard chose. The last line is\n"
            "'exact: P%% (K/N)'.\n",
            (double)LF_GENERATE_COPY_BIAS);
}

enum { MOST_RETRIES = 64 };

/* ---- examples ------------------------------------------------------------ */

typedef struct example {
    char *prompt;
    size_t prompt_size;
    lf_buffer expected; /* the completion's bytes (base64 decoded) */
    char op[32];
    char kind;          /* 'R', 'W', or '?' when neither the line nor the prompt says */
    bool expects_state; /* a write that succeeds: its completion is an XML state */
} example;

typedef struct example_set {
    example *items;
    size_t count, capacity;
} example_set;

static void free_examples(example_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].prompt);
        lf_buffer_free(&set->items[i].expected);
    }
    free(set->items);
    *set = (example_set){0};
}

/* A string member's bytes, or NULL when absent or not a string. */
static const char *string_member(json_t *object, const char *key, size_t *length)
{
    json_t *value = json_object_get(object, key);
    if (!json_is_string(value))
        return NULL;
    *length = json_string_length(value);
    return json_string_value(value);
}

/* op and kind from the line's members, else from the prompt's first line
 * ("<W>\nmkdir('/a', ...)": kind W, op mkdir). */
static void classify(example *item, json_t *object)
{
    size_t length = 0;
    const char *op = string_member(object, "op", &length);
    const char *kind = string_member(object, "kind", &length);
    const char *prompt = item->prompt;
    bool prefixed = item->prompt_size >= 4 && prompt[0] == '<' && prompt[2] == '>' &&
                    prompt[3] == '\n' && (prompt[1] == 'R' || prompt[1] == 'W');
    item->kind = kind && (kind[0] == 'R' || kind[0] == 'W') && !kind[1] ? kind[0]
                 : prefixed                                               ? prompt[1]
                                                                          : '?';
    if (op)
        snprintf(item->op, sizeof item->op, "%s", op);
    else if (prefixed)
        snprintf(item->op, sizeof item->op, "%.*s", (int)strcspn(prompt + 4, "(\n"), prompt + 4);
    if (!item->op[0])
        snprintf(item->op, sizeof item->op, "?");
    item->expects_state = item->kind == 'W' && !(item->expected.length >= 6 &&
                                                 memcmp(item->expected.data, "ERROR:", 6) == 0);
}

/* The expected completion's bytes into item->expected. */
static int64_t read_completion(example *item, json_t *object, const char *where,
                               lf_diagnostic *diagnostic)
{
    size_t length = 0, encoding_length = 0;
    const char *completion = string_member(object, "completion", &length);
    const char *encoding = string_member(object, "completion_encoding", &encoding_length);
    if (!completion)
        return lf_fail(diagnostic, -LF_EFORMAT, "%s: needs string members \"prompt\" and "
                       "\"completion\"", where);
    if (json_object_get(object, "completion_encoding") && !(encoding && strcmp(encoding, "base64") == 0))
        return lf_fail(diagnostic, -LF_EFORMAT, "%s: unknown \"completion_encoding\"", where);
    if (!encoding)
        return lf_buffer_append(&item->expected, completion, length);
    int64_t status = lf_base64_decode(completion, length, &item->expected);
    if (status == -LF_EFORMAT)
        return lf_fail(diagnostic, status, "%s: the completion is not base64", where);
    return status < 0 ? status : 0;
}

/* Parses one JSON line into item. */
static int64_t parse_line(example *item, const char *line, size_t length, const char *where,
                          lf_diagnostic *diagnostic)
{
    json_error_t error;
    json_t *object = json_loadb(line, length, JSON_ALLOW_NUL, &error);
    if (!object)
        return lf_fail(diagnostic, -LF_EFORMAT, "%s: %s", where, error.text);
    size_t prompt_size = 0;
    const char *prompt = string_member(object, "prompt", &prompt_size);
    int64_t status = prompt ? 0 : lf_fail(diagnostic, -LF_EFORMAT, "%s: needs string members "
                                          "\"prompt\" and \"completion\"", where);
    if (status == 0)
        status = read_completion(item, object, where, diagnostic);
    if (status == 0) {
        item->prompt = malloc(prompt_size ? prompt_size : 1);
        status = item->prompt ? 0 : -ENOMEM;
    }
    if (status == 0) {
        memcpy(item->prompt, prompt, prompt_size);
        item->prompt_size = prompt_size;
        classify(item, object);
    }
    json_decref(object);
    return status;
}

/* Adds the example on one line (already known not to be empty) to set. */
static int64_t add_example(example_set *set, const char *line, size_t length, const char *path,
                           size_t line_number, lf_diagnostic *diagnostic)
{
    if (set->count == set->capacity) {
        size_t wanted = set->capacity ? set->capacity * 2 : 256;
        example *items = realloc(set->items, wanted * sizeof *items);
        if (!items)
            return -ENOMEM;
        set->items = items;
        set->capacity = wanted;
    }
    char where[4200];
    snprintf(where, sizeof where, "%s:%zu", path, line_number);
    example *item = &set->items[set->count];
    *item = (example){0};
    int64_t status = parse_line(item, line, length, where, diagnostic);
    if (status < 0) {
        free(item->prompt);
        lf_buffer_free(&item->expected);
        return status;
    }
    set->count++;
    return 0;
}

/* The first `limit` examples of a JSON-lines file (empty lines skipped). */
static int64_t load_examples(const char *path, size_t limit, example_set *set,
                             lf_diagnostic *diagnostic)
{
    lf_buffer text = {0};
    int64_t status = lf_file_read_all(path, &text, diagnostic);
    size_t line_number = 0;
    for (size_t at = 0; status == 0 && at < text.length && set->count < limit;) {
        const char *line = (const char *)text.data + at;
        const char *newline = memchr(line, '\n', text.length - at);
        size_t length = newline ? (size_t)(newline - line) : text.length - at;
        at += length + 1;
        line_number++;
        if (length > 0)
            status = add_example(set, line, length, path, line_number, diagnostic);
    }
    lf_buffer_free(&text);
    if (status == 0 && set->count == 0)
        status = lf_fail(diagnostic, -LF_EFORMAT, "'%s' holds no examples", path);
    return status;
}

/* ---- running them ---------------------------------------------------------- */

typedef struct outcome {
    lf_buffer completion; /* kept only when a mismatch file is wanted */
    bool exact;
    bool valid_state; /* expects_state examples: the completion parses as XML */
    /* --retries: the greedy completion was invalid (a W answer that is
     * neither an error nor a state, a read's or readlink's data other than
     * the expected bytes); a second opinion was valid; and exact */
    bool invalid, set_valid, set_exact;
    double milliseconds;
    size_t prompt_tokens, completion_tokens;
    size_t guard_changes; /* tokens the guard chose instead of the model's first choice */
} outcome;

/* What the threads share: generators are made on first use and handed out
 * one per running job, so each thread's cache and scratch are its own. */
typedef struct evaluation {
    const lf_generate_model *model;
    const example_set *examples;
    outcome *outcomes;
    uint32_t max_tokens, retries;
    bool keep_completions, guarded;
    float copy_bias;
    pthread_mutex_t lock;
    lf_generator **generators; /* one per thread */
    size_t *idle, idle_count;  /* indices into generators not in use */
} evaluation;

static double now_milliseconds(void)
{
    struct timespec time;
    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec * 1e3 + (double)time.tv_nsec / 1e6;
}

static size_t take_generator(evaluation *run)
{
    pthread_mutex_lock(&run->lock);
    size_t index = run->idle[--run->idle_count];
    pthread_mutex_unlock(&run->lock);
    return index;
}

static void return_generator(evaluation *run, size_t index)
{
    pthread_mutex_lock(&run->lock);
    run->idle[run->idle_count++] = index;
    pthread_mutex_unlock(&run->lock);
}

/* Whether text is a state the project's strict parser accepts. */
static bool parses_as_state(const lf_buffer *text)
{
    lf_tree *tree = NULL;
    bool valid = lf_xml_parse(text->data, text->length, 0, &tree, NULL) == 0;
    lf_tree_free(tree);
    return valid;
}

static bool same_bytes(const lf_buffer *a, const lf_buffer *b)
{
    return a->length == b->length && (a->length == 0 || memcmp(a->data, b->data, a->length) == 0);
}

static bool is_error(const lf_buffer *completion)
{
    static const char error[] = "ERROR: E";
    return completion->length > sizeof error - 1 &&
           memcmp(completion->data, error, sizeof error - 1) == 0;
}

/* Reads answered with data, which the engine holds to the bytes its state
 * holds: the expected completion. */
static bool reads_data(const example *item)
{
    return strcmp(item->op, "read") == 0 || strcmp(item->op, "readlink") == 0;
}

/* Whether the engine takes a completion (short of knowing the operation:
 * it also checks which paths a change touched). A change: an error, or a
 * state that parses; a read of data: an error, or the exact bytes. After a
 * first answer that was not an error, a second opinion must not be one. */
static bool engine_takes(const example *item, const lf_buffer *completion, bool answer_wanted)
{
    if (is_error(completion))
        return !answer_wanted;
    if (reads_data(item))
        return same_bytes(completion, &item->expected);
    return item->kind != 'W' || parses_as_state(completion);
}

/* After an invalid completion, the second opinions of the engine: the
 * first it takes counts. */
static int64_t second_opinions(lf_generator *generator, const example *item, uint32_t max_tokens,
                               uint32_t retries, bool answer_wanted, outcome *result)
{
    lf_generate_branch branches[MOST_RETRIES];
    size_t count = lf_generate_doubtful_choices(generator, retries, branches);
    lf_buffer completion = {0};
    int64_t status = 0;
    for (size_t i = 0; status == 0 && i < count && !result->set_valid; i++) {
        completion.length = 0;
        status = lf_generate_complete(generator, (const uint8_t *)item->prompt, item->prompt_size,
                                      &branches[i], max_tokens, &completion, NULL);
        result->set_valid = status == 0 && engine_takes(item, &completion, answer_wanted);
        result->set_exact = result->set_valid && same_bytes(&completion, &item->expected);
    }
    lf_buffer_free(&completion);
    return status;
}

static int64_t complete_one(lf_generator *generator, const example *item, uint32_t max_tokens,
                            uint32_t retries, bool keep_completion, outcome *result)
{
    lf_buffer completion = {0};
    double start = now_milliseconds();
    lf_generate_stats stats;
    int64_t status = lf_generate_complete(generator, (const uint8_t *)item->prompt,
                                          item->prompt_size, NULL, max_tokens, &completion, &stats);
    result->milliseconds = now_milliseconds() - start;
    if (status == 0) {
        result->prompt_tokens = stats.prompt_tokens;
        result->completion_tokens = stats.completion_tokens;
        result->guard_changes = stats.guard_changes;
        result->exact = same_bytes(&completion, &item->expected);
        result->valid_state = item->expects_state && parses_as_state(&completion);
        result->invalid = retries && (item->kind == 'W' || reads_data(item)) &&
                          !engine_takes(item, &completion, false);
    }
    if (status == 0 && result->invalid)
        status = second_opinions(generator, item, max_tokens, retries, !is_error(&completion),
                                 result);
    if (status == 0 && keep_completion && !result->exact)
        result->completion = completion;
    else
        lf_buffer_free(&completion);
    return status;
}

static int64_t run_example(void *context, size_t job)
{
    evaluation *run = context;
    size_t index = take_generator(run);
    int64_t status = 0;
    if (!run->generators[index]) {
        status = lf_generator_new(run->model, 0, 1, &run->generators[index]);
        if (status == 0) {
            lf_generator_guard_states(run->generators[index], run->guarded);
            lf_generator_copy_bias(run->generators[index], run->copy_bias);
        }
    }
    if (status == 0)
        status = complete_one(run->generators[index], &run->examples->items[job], run->max_tokens,
                              run->retries, run->keep_completions, &run->outcomes[job]);
    return_generator(run, index);
    return status;
}

/* Completes every example on `threads` threads; *seconds is the wall time. */
static int64_t evaluate(const lf_generate_model *model, const example_set *examples,
                        uint32_t max_tokens, uint32_t retries, bool keep_completions,
                        bool guarded, float copy_bias, unsigned threads, outcome *outcomes,
                        double *seconds)
{
    evaluation run = {.model = model, .examples = examples, .outcomes = outcomes,
                      .max_tokens = max_tokens, .retries = retries,
                      .keep_completions = keep_completions, .guarded = guarded,
                      .copy_bias = copy_bias};
    run.generators = calloc(threads, sizeof *run.generators);
    run.idle = malloc(threads * sizeof *run.idle);
    if (!run.generators || !run.idle) {
        free(run.generators);
        free(run.idle);
        return -ENOMEM;
    }
    for (run.idle_count = 0; run.idle_count < threads; run.idle_count++)
        run.idle[run.idle_count] = run.idle_count;
    pthread_mutex_init(&run.lock, NULL);
    double start = now_milliseconds();
    int64_t status = lf_parallel_for(examples->count, threads, run_example, &run);
    *seconds = (now_milliseconds() - start) / 1e3;
    pthread_mutex_destroy(&run.lock);
    for (unsigned i = 0; i < threads; i++)
        lf_generator_free(run.generators[i]);
    free(run.generators);
    free(run.idle);
    return status;
}

/* ---- the report ------------------------------------------------------------- */

typedef struct tally {
    size_t count, exact;
    double milliseconds;
} tally;

static void add_to(tally *sum, const outcome *result)
{
    sum->count++;
    sum->exact += result->exact;
    sum->milliseconds += result->milliseconds;
}

static double percent(size_t part, size_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void print_row(const char *name, char kind, const tally *sum)
{
    printf("%-12s %-4c %6zu %6zu %7.1f%% %10.1f\n", name, kind, sum->count, sum->exact,
           percent(sum->exact, sum->count), sum->count ? sum->milliseconds / (double)sum->count : 0);
}

/* Examples by kind, then operation name, then file order (qsort_r's
 * order must be total to be the same everywhere). */
static int compare_examples_by_op(const void *a, const void *b, void *context)
{
    const example *items = context;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (items[i].kind != items[j].kind)
        return items[i].kind < items[j].kind ? -1 : 1;
    int order = strcmp(items[i].op, items[j].op);
    return order ? order : (i > j) - (i < j);
}

/* One row per operation (by kind, then name), then one per kind. */
static int64_t print_table(const example_set *examples, const outcome *outcomes)
{
    size_t count = examples->count, *order = malloc(count * sizeof *order);
    if (!order)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++)
        order[i] = i;
    qsort_r(order, count, sizeof *order, compare_examples_by_op, examples->items);
    printf("%-12s %-4s %6s %6s %8s %10s\n", "op", "kind", "n", "exact", "exact%", "mean ms");
    tally op_sum = {0}, kinds[3] = {{0}};
    for (size_t i = 0; i < count; i++) {
        const example *item = &examples->items[order[i]];
        add_to(&op_sum, &outcomes[order[i]]);
        add_to(&kinds[item->kind == 'R' ? 0 : item->kind == 'W' ? 1 : 2], &outcomes[order[i]]);
        const example *next = i + 1 < count ? &examples->items[order[i + 1]] : NULL;
        if (!next || next->kind != item->kind || strcmp(next->op, item->op) != 0) {
            print_row(item->op, item->kind, &op_sum);
            op_sum = (tally){0};
        }
    }
    static const char kind_names[] = {'R', 'W', '?'};
    for (size_t k = 0; k < 3; k++)
        if (kinds[k].count)
            print_row("(all)", kind_names[k], &kinds[k]);
    free(order);
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Valid states, latency, speed, what the guard and second opinions (with
 * --retries) did, and the exact rate, last. */
static int64_t print_summary(const example_set *examples, const outcome *outcomes,
                             uint32_t retries, bool guarded, float copy_bias, double seconds)
{
    size_t count = examples->count, states = 0, valid = 0, exact = 0;
    size_t guard_changes = 0, guarded_answers = 0;
    size_t invalid = 0, set_valid = 0, set_exact = 0;
    size_t prompt_tokens = 0, completion_tokens = 0;
    double *latencies = malloc(count * sizeof *latencies), total = 0;
    if (!latencies)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        states += examples->items[i].expects_state;
        valid += outcomes[i].valid_state;
        exact += outcomes[i].exact;
        invalid += outcomes[i].invalid;
        set_valid += outcomes[i].set_valid;
        set_exact += outcomes[i].set_exact;
        prompt_tokens += outcomes[i].prompt_tokens;
        completion_tokens += outcomes[i].completion_tokens;
        guard_changes += outcomes[i].guard_changes;
        guarded_answers += outcomes[i].guard_changes > 0;
        latencies[i] = outcomes[i].milliseconds;
        total += latencies[i];
    }
    qsort(latencies, count, sizeof *latencies, compare_doubles);
    size_t p90 = (count * 9 + 9) / 10 - 1; /* nearest rank */
    printf("W states that parse as XML: %.1f%% (%zu/%zu)\n", percent(valid, states), valid, states);
    printf("latency per example: mean %.1f ms, p90 %.1f ms\n", total / (double)count,
           latencies[p90]);
    printf("speed: %.2f examples/s, %.0f tokens/s (%zu prompt + %zu generated tokens in %.2f s)\n",
           (double)count / seconds, (double)(prompt_tokens + completion_tokens) / seconds,
           prompt_tokens, completion_tokens, seconds);
    if (guarded)
        printf("guard: %zu tokens chosen instead of the model's first choice, in %zu "
               "answers\n",
               guard_changes, guarded_answers);
    else
        printf("guard: off (--unguarded)\n");
    if (copy_bias > 0)
        printf("copying: bias %.2f (--copy-bias)\n", (double)copy_bias);
    else
        printf("copying: off\n");
    if (retries)
        printf("second opinions (--retries %" PRIu32 "): %zu invalid answers, %zu made valid, "
               "%zu of them exact; exact with them: %.1f%% (%zu/%zu)\n",
               retries, invalid, set_valid, set_exact, percent(exact + set_exact, count),
               exact + set_exact, count);
    printf("exact: %.1f%% (%zu/%zu)\n", percent(exact, count), exact, count);
    free(latencies);
    return 0;
}

/* A JSON string of bytes that may not be UTF-8: bytes outside ASCII in a
 * completion that is not UTF-8 become U+FFFD, as the file is for reading. */
static json_t *text_value(const uint8_t *bytes, size_t length)
{
    json_t *value = json_stringn(length ? (const char *)bytes : "", length);
    if (value)
        return value;
    lf_buffer cleaned = {0};
    for (size_t i = 0; i < length; i++)
        lf_buffer_append(&cleaned, bytes[i] < 0x80 ? (const void *)&bytes[i] : "\xef\xbf\xbd",
                         bytes[i] < 0x80 ? 1 : 3);
    value = json_stringn((const char *)cleaned.data, cleaned.length);
    lf_buffer_free(&cleaned);
    return value;
}

/* One JSON line per inexact example: index (from 0, in the data's order),
 * op, prompt, expected, got. Written atomically. */
static int64_t write_mismatches(const char *path, const example_set *examples,
                                const outcome *outcomes, lf_diagnostic *diagnostic)
{
    lf_buffer lines = {0};
    int64_t status = 0;
    for (size_t i = 0; status == 0 && i < examples->count; i++) {
        const example *item = &examples->items[i];
        if (outcomes[i].exact)
            continue;
        json_t *line = json_pack("{s:I, s:s, s:o, s:o, s:o}", "index", (json_int_t)i, "op",
                                 item->op, "prompt",
                                 text_value((const uint8_t *)item->prompt, item->prompt_size),
                                 "expected", text_value(item->expected.data, item->expected.length),
                                 "got", text_value(outcomes[i].completion.data,
                                                   outcomes[i].completion.length));
        char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
        status = text ? lf_buffer_append(&lines, text, strlen(text)) : -ENOMEM;
        if (status == 0)
            status = lf_buffer_append(&lines, "\n", 1);
        free(text);
        json_decref(line);
    }
    if (status == 0)
        status = lf_file_write_atomic(path, lines.data, lines.length, diagnostic);
    lf_buffer_free(&lines);
    return status;
}

/* ---- the command ------------------------------------------------------------ */

typedef struct options {
    const char *model_path, *data_path, *mismatches_path;
    uint64_t limit, threads, max_tokens; /* max_tokens 0: the model's context */
    uint64_t retries;
    bool unguarded;
    float copy_bias; /* negative: not given */
} options;

/* A whole number of at least 1. */
static bool parse_count(const char *text, const char *option, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || parsed < 1 || parsed > UINT32_MAX) {
        fprintf(stderr, "llmfuse eval: %s needs a whole number from 1 to %" PRIu32 ", not '%s'\n",
                option, UINT32_MAX, text);
        return false;
    }
    *value = parsed;
    return true;
}

/* A logit bias: a finite number from 0 to 100. */
static bool parse_bias(const char *text, float *value)
{
    char *end;
    errno = 0;
    float parsed = strtof(text, &end);
    if (errno || end == text || *end || !(parsed >= 0 && parsed <= 100)) {
        fprintf(stderr, "llmfuse eval: --copy-bias needs a number from 0 to 100, not '%s'\n", text);
        return false;
    }
    *value = parsed;
    return true;
}

/* LF_EXIT_OK to go on; else the exit status, and *done. */
static int parse_options(int argc, char **argv, options *chosen, bool *done)
{
    static const struct option long_options[] = {{"limit", required_argument, NULL, 'l'},
                                                 {"threads", required_argument, NULL, 'j'},
                                                 {"max-tokens", required_argument, NULL, 'm'},
                                                 {"mismatches", required_argument, NULL, 'x'},
                                                 {"retries", required_argument, NULL, 'r'},
                                                 {"unguarded", no_argument, NULL, 'u'},
                                                 {"copy-bias", required_argument, NULL, 'c'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {0}};
    *chosen = (options){.limit = UINT64_MAX, .threads = lf_parallel_default_threads(),
                        .copy_bias = -1};
    *done = true;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        bool ok = true;
        switch (option) {
        case 'l': ok = parse_count(optarg, "--limit", &chosen->limit); break;
        case 'j': ok = parse_count(optarg, "--threads", &chosen->threads); break;
        case 'm': ok = parse_count(optarg, "--max-tokens", &chosen->max_tokens); break;
        case 'x': chosen->mismatches_path = optarg; break;
        case 'u': chosen->unguarded = true; break;
        case 'c': ok = parse_bias(optarg, &chosen->copy_bias); break;
        case 'r':
            ok = parse_count(optarg, "--retries", &chosen->retries);
            if (ok && chosen->retries > MOST_RETRIES) {
                fprintf(stderr, "llmfuse eval: --retries is at most %d\n", MOST_RETRIES);
                ok = false;
            }
            break;
        case 'h': print_usage(stdout); return LF_EXIT_OK;
        default: print_usage(stderr); return LF_EXIT_ERROR;
        }
        if (!ok)
            return LF_EXIT_ERROR;
    }
    if (argc - optind != 2) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    chosen->model_path = argv[optind];
    chosen->data_path = argv[optind + 1];
    *done = false;
    return LF_EXIT_OK;
}

/* Completes and reports the examples of a loaded model. */
static int64_t evaluate_and_report(const lf_generate_model *model, const options *chosen,
                                   lf_diagnostic *diagnostic)
{
    example_set examples = {0};
    int64_t status = load_examples(chosen->data_path, chosen->limit, &examples, diagnostic);
    outcome *outcomes = NULL;
    if (status == 0) {
        outcomes = calloc(examples.count, sizeof *outcomes);
        status = outcomes ? 0 : -ENOMEM;
    }
    double seconds = 0;
    float copy_bias = chosen->copy_bias >= 0 ? chosen->copy_bias
                      : chosen->unguarded    ? 0
                                             : LF_GENERATE_COPY_BIAS;
    if (status == 0) {
        uint32_t context = lf_generate_model_transformer(model)->config.context_length;
        uint32_t max_tokens = chosen->max_tokens ? (uint32_t)chosen->max_tokens : context;
        status = evaluate(model, &examples, max_tokens, (uint32_t)chosen->retries,
                          chosen->mismatches_path != NULL, !chosen->unguarded, copy_bias,
                          (unsigned)chosen->threads, outcomes, &seconds);
    }
    if (status == 0 && chosen->mismatches_path)
        status = write_mismatches(chosen->mismatches_path, &examples, outcomes, diagnostic);
    if (status == 0)
        status = print_table(&examples, outcomes);
    if (status == 0)
        status = print_summary(&examples, outcomes, (uint32_t)chosen->retries,
                               !chosen->unguarded, copy_bias, seconds);
    for (size_t i = 0; outcomes && i < examples.count; i++)
        lf_buffer_free(&outcomes[i].completion);
    free(outcomes);
    free_examples(&examples);
    return status;
}

int lf_command_eval(int argc, char **argv)
{
    options chosen;
    bool done;
    int exit_status = parse_options(argc, argv, &chosen, &done);
    if (done)
        return exit_status;
    lf_diagnostic diagnostic = {0};
    lf_generate_model *model = NULL;
    int64_t status = lf_generate_model_open(chosen.model_path, &model, &diagnostic);
    if (status < 0) {
        fprintf(stderr, "llmfuse eval: %s: %s\n", chosen.model_path,
                diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
        return LF_EXIT_ERROR;
    }
    status = evaluate_and_report(model, &chosen, &diagnostic);
    lf_generate_model_close(model);
    if (status < 0) { /* the data's messages name the file and line */
        fprintf(stderr, "llmfuse eval: %s\n",
                diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
        return LF_EXIT_ERROR;
    }
    return LF_EXIT_OK;
}
