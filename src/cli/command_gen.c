/* llmfuse gen --count N [--seed S] --out FILE [--eval-count M --eval-out FILE]
 *             [--max-bytes B] [--weights OP=W,...] [--no-mount] */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "common/buffer.h"
#include "common/file.h"
#include "sim/simulator.h"

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmfuse gen --count N [--seed S] --out FILE.jsonl\n"
            "                   [--eval-count M --eval-out FILE.jsonl] [--max-bytes B]\n"
            "                   [--weights OP=W,...] [--no-mount]\n"
            "Generates the training dataset (docs/FORMAT.md section 4): random operations run\n"
            "on a sandbox directory and on the in-memory tree, which must agree.  Needs root.\n"
            "  --count N           training examples to write to --out\n"
            "  --seed S            the same seed gives the same files, byte for byte (default 1)\n"
            "  --eval-count M      evaluation examples for --eval-out, from another stream;\n"
            "                      no prompt is written twice, in either file\n"
            "  --max-bytes B       bound on prompt + completion bytes (default %d)\n"
            "  --weights OP=W,...  relative weights (unnamed operations keep theirs):\n",
            LF_SIM_DEFAULT_MAX_BYTES);
    lf_sim_config defaults;
    lf_sim_config_default(&defaults);
    for (int op = 0; op < LF_SIM_OP_COUNT; op++) { /* the defaults, five to a line */
        bool last = op == LF_SIM_OP_COUNT - 1;
        fprintf(stream, "%s%s=%u%s", op % 5 == 0 ? "                      " : "",
                lf_sim_op_name((lf_sim_op)op), defaults.weights[op],
                last ? "\n" : op % 5 == 4 ? ",\n" : ",");
    }
    fprintf(stream, "  --no-mount          plain system calls even where the loopback mount works\n"
                    "Per-operation statistics go to stderr.\n");
}

static int parse_number(const char *text, const char *option, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long number = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') {
        fprintf(stderr, "llmfuse gen: %s takes a whole number, not '%s'\n", option, text);
        return -1;
    }
    *value = number;
    return 0;
}

/* A signal that asked generation to stop: checked before each example, so
 * the sandbox is unmounted and removed and no partial file is left. */
static volatile sig_atomic_t stop_signal;

static void request_stop(int signal_number) { stop_signal = signal_number; }

static void handle_stop_signals(void)
{
    struct sigaction action = {.sa_handler = request_stop};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    /* A closed stderr (gen | head) makes writes fail rather than kill. */
    signal(SIGPIPE, SIG_IGN);
}

typedef struct outputs {
    FILE *files[2]; /* by lf_sim_split */
    const char *paths[2];
    lf_buffer line;
    lf_diagnostic *diag;
} outputs;

static int64_t write_example(void *context, lf_sim_split split, const lf_sim_example *example)
{
    outputs *out = context;
    if (stop_signal)
        return lf_fail(out->diag, -EINTR, "stopped by signal %d", (int)stop_signal);
    out->line.length = 0;
    int64_t status = lf_sim_dataset_line(example, &out->line, out->diag);
    if (status == 0)
        status = lf_file_write_all(out->files[split], out->line.data, out->line.length,
                                   out->paths[split], out->diag);
    return status;
}

static void print_stats(const lf_sim_stats *stats, double seconds)
{
    uint64_t examples = 0, errors = 0;
    for (int op = 0; op < LF_SIM_OP_COUNT; op++) {
        examples += stats->ops[op].examples;
        errors += stats->ops[op].errors;
    }
    fprintf(stderr,
            "llmfuse gen: %" PRIu64 " examples (%" PRIu64 " errors) from %" PRIu64
            " operations in %" PRIu64 " episodes, %s; %.1f s, %.0f examples/s\n",
            examples, errors, stats->operations, stats->episodes,
            stats->mounted ? "through the loopback mount" : "plain system calls", seconds,
            seconds > 0 ? (double)examples / seconds : 0.0);
    fprintf(stderr, "%-9s %8s %7s %11s\n", "op", "examples", "errors", "mean bytes");
    for (int op = 0; op < LF_SIM_OP_COUNT; op++) {
        const lf_sim_op_stats *line = &stats->ops[op];
        fprintf(stderr, "%-9s %8" PRIu64 " %7" PRIu64 " %11.0f\n", lf_sim_op_name((lf_sim_op)op),
                line->examples, line->errors,
                line->examples ? (double)line->bytes / (double)line->examples : 0.0);
    }
    if (stats->oversized || stats->duplicates)
        fprintf(stderr, "not written: %" PRIu64 " over --max-bytes, %" PRIu64
                        " with a prompt written before\n",
                stats->oversized, stats->duplicates);
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Opens the outputs; closes them, deleting them after a failure so that no
 * partial dataset is left to be mistaken for a whole one. */
static int open_outputs(outputs *out)
{
    for (int split = 0; split < 2; split++)
        if (out->paths[split] && !(out->files[split] = fopen(out->paths[split], "w"))) {
            fprintf(stderr, "llmfuse gen: %s: %s\n", out->paths[split], strerror(errno));
            return -1;
        }
    return 0;
}

static int close_outputs(outputs *out, bool failed)
{
    for (int split = 0; split < 2; split++) {
        if (!out->files[split])
            continue;
        if (fclose(out->files[split]) != 0 && !failed) {
            fprintf(stderr, "llmfuse gen: %s: %s\n", out->paths[split], strerror(errno));
            failed = true;
        }
    }
    for (int split = 0; failed && split < 2; split++)
        if (out->files[split])
            remove(out->paths[split]);
    return failed ? -1 : 0;
}

int lf_command_gen(int argc, char **argv)
{
    enum { COUNT = 256, SEED, OUT, EVAL_COUNT, EVAL_OUT, MAX_BYTES, WEIGHTS, NO_MOUNT };
    static const struct option options[] = {
        {"count", required_argument, NULL, COUNT},
        {"seed", required_argument, NULL, SEED},
        {"out", required_argument, NULL, OUT},
        {"eval-count", required_argument, NULL, EVAL_COUNT},
        {"eval-out", required_argument, NULL, EVAL_OUT},
        {"max-bytes", required_argument, NULL, MAX_BYTES},
        {"weights", required_argument, NULL, WEIGHTS},
        {"no-mount", no_argument, NULL, NO_MOUNT},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    lf_sim_config config;
    lf_sim_config_default(&config);
    config.seed = 1;
    lf_diagnostic diagnostic = {0};
    outputs out = {.diag = &diagnostic};
    bool have_count = false;
    uint64_t number;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int status = 0;
        switch (option) {
        case COUNT:
            status = parse_number(optarg, "--count", &number);
            config.train_count = (size_t)number;
            have_count = true;
            break;
        case SEED:
            status = parse_number(optarg, "--seed", &config.seed);
            break;
        case OUT:
            out.paths[LF_SIM_TRAIN] = optarg;
            break;
        case EVAL_COUNT:
            status = parse_number(optarg, "--eval-count", &number);
            config.eval_count = (size_t)number;
            break;
        case EVAL_OUT:
            out.paths[LF_SIM_EVAL] = optarg;
            break;
        case MAX_BYTES:
            status = parse_number(optarg, "--max-bytes", &number);
            config.max_bytes = (size_t)number;
            break;
        case WEIGHTS:
            if (lf_sim_parse_weights(optarg, config.weights, &diagnostic) < 0) {
                fprintf(stderr, "llmfuse gen: --weights: %s\n", diagnostic.message);
                status = -1;
            }
            break;
        case NO_MOUNT:
            config.mount = false;
            break;
        case 'h':
            print_usage(stdout);
            return LF_EXIT_OK;
        default:
            print_usage(stderr);
            return LF_EXIT_ERROR;
        }
        if (status < 0)
            return LF_EXIT_ERROR;
    }
    if (optind != argc || !have_count || !out.paths[LF_SIM_TRAIN] ||
        (config.eval_count > 0) != (out.paths[LF_SIM_EVAL] != NULL)) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    if (open_outputs(&out) < 0) {
        close_outputs(&out, true);
        return LF_EXIT_ERROR;
    }
    handle_stop_signals();
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    lf_sim_stats stats;
    int64_t status = lf_sim_generate(&config, write_example, &out, &stats, &diagnostic);
    double seconds = seconds_since(&start);
    lf_buffer_free(&out.line);
    if (close_outputs(&out, lf_is_error(status)) < 0) {
        if (lf_is_error(status))
            fprintf(stderr, "llmfuse gen: %s\n",
                    diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
        return LF_EXIT_ERROR;
    }
    print_stats(&stats, seconds);
    return LF_EXIT_OK;
}
