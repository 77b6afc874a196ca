/* Measures one transformer step: microseconds per step and per token for B
 * streams at a full context, the step shared by T threads (an lf_team):
 * what decoding costs before the coder's work, and what sharing a step
 * buys (docs/DECISIONS.md, "Threads inside a step").
 *
 *   step_speed MODEL.gguf [STREAMS...]    (1 2 4 by default)
 *
 * Prints a Markdown table, threads 1 and 2 for each stream count. Each
 * stream first steps past its context (so attention reads the whole ring),
 * then 400 steps are timed. Built by the step_speed target. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/gguf.h"
#include "model/transformer.h"
#include "model/transformer_file.h"

enum { MOST_STREAMS = 64, TIMED_STEPS = 400 };

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* Microseconds per step of `streams` streams on a team of `threads`; -1 on failure. */
static double time_steps(const lf_transformer *model, unsigned threads, size_t streams)
{
    lf_team *team = NULL;
    lf_transformer_workspace *workspace = NULL;
    lf_transformer_cache *caches[MOST_STREAMS] = {0};
    uint32_t tokens[MOST_STREAMS];
    float *logits = malloc(streams * model->config.vocab_size * sizeof *logits);
    int64_t status = logits ? lf_team_new(threads, &team) : -1;
    if (status == 0)
        status = lf_transformer_workspace_new(model, streams, team, &workspace);
    for (size_t s = 0; status == 0 && s < streams; s++) {
        status = lf_transformer_cache_new(model, &caches[s]);
        tokens[s] = (uint32_t)(300 + s) % model->config.vocab_size;
    }
    double seconds = -1;
    for (uint32_t step = 0; status == 0 && step < model->config.context_length + 16; step++)
        status = lf_transformer_step(model, workspace, caches, tokens, streams, logits);
    if (status == 0) {
        double start = seconds_now();
        for (int step = 0; status == 0 && step < TIMED_STEPS; step++)
            status = lf_transformer_step(model, workspace, caches, tokens, streams, logits);
        seconds = status == 0 ? (seconds_now() - start) / TIMED_STEPS : -1;
    }
    for (size_t s = 0; s < streams; s++)
        lf_transformer_cache_free(caches[s]);
    lf_transformer_workspace_free(workspace);
    lf_team_free(team);
    free(logits);
    return seconds < 0 ? -1 : seconds * 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: step_speed MODEL.gguf [STREAMS...]\n");
        return 2;
    }
    lf_diagnostic diagnostic = {0};
    lf_gguf *file;
    lf_transformer *model;
    if (lf_gguf_open_file(argv[1], &file, &diagnostic) != 0 ||
        lf_transformer_load(file, &model, &diagnostic) != 0) {
        fprintf(stderr, "step_speed: %s\n", diagnostic.message);
        return 1;
    }
    size_t counts[16] = {1, 2, 4}, count_total = 3;
    if (argc > 2) {
        count_total = 0;
        for (int i = 2; i < argc && count_total < 16; i++) {
            long streams = strtol(argv[i], NULL, 10);
            if (streams < 1 || streams > MOST_STREAMS) {
                fprintf(stderr, "step_speed: streams must be 1..%d: '%s'\n", MOST_STREAMS, argv[i]);
                return 2;
            }
            counts[count_total++] = (size_t)streams;
        }
    }
    printf("| streams | threads | us per step | us per token |\n|---:|---:|---:|---:|\n");
    for (size_t c = 0; c < count_total; c++)
        for (unsigned threads = 1; threads <= 2; threads++) {
            double micros = time_steps(model, threads, counts[c]);
            if (micros < 0) {
                fprintf(stderr, "step_speed: a step failed\n");
                return 1;
            }
            printf("| %zu | %u | %.0f | %.0f |\n", counts[c], threads, micros, micros / (double)counts[c]);
        }
    lf_transformer_free(model);
    lf_gguf_close(file);
    return 0;
}
