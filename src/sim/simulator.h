/* The filesystem simulator: generates the training dataset's examples
 * (docs/FORMAT.md §4) as ground truth.
 *
 * Each episode starts from a random tree (sim/start_tree.h) and runs
 * operations sampled by weight, failing ones included.  Every operation
 * runs twice, on a real sandbox directory (sim/sandbox.h: through the
 * logging loopback mount when FUSE is usable, else with plain system
 * calls) and on the in-memory tree; results, errnos, bytes and the XML of
 * both states must agree, or generation stops with a report.  An example
 * is the state before, the operation and its result: for reads the value
 * read, for writes the new state.
 *
 * The tree runs on a virtual clock: each operation happens one second after
 * the newest mtime of the state it is applied to (the epoch, 2025-01-01,
 * for a fresh tree), so the times an operation sets are a function of its
 * prompt, and the same seed gives the same examples, byte for byte. */
#ifndef LLMFUSE_SIM_SIMULATOR_H
#define LLMFUSE_SIM_SIMULATOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"
#include "sim/dataset.h"
#include "sim/operation.h"

/* Prompt plus completion, in bytes: at most 512 tokens of the shipped
 * tokenizer (about 2.5-3 bytes a token on these examples), so an example
 * fits models/fs.gguf's context whole (models/README.md). */
#define LF_SIM_DEFAULT_MAX_BYTES 1400
/* Below this there is no room for a state and an operation. */
#define LF_SIM_MIN_MAX_BYTES 1200

typedef enum lf_sim_split { LF_SIM_TRAIN, LF_SIM_EVAL } lf_sim_split;

typedef struct lf_sim_config {
    uint64_t seed;
    size_t train_count, eval_count;
    size_t max_bytes;                  /* bound on prompt + completion bytes */
    unsigned weights[LF_SIM_OP_COUNT]; /* relative; 0 leaves an operation out */
    bool mount;                        /* through the loopback when FUSE is usable */
    FILE *report;                      /* a disagreement's full report, warnings */
} lf_sim_config;

/* Default weights and max_bytes, mounting on, reports to stderr. */
void lf_sim_config_default(lf_sim_config *config);
/* Applies "op=weight,op=weight" to weights; unnamed operations keep theirs. */
int64_t lf_sim_parse_weights(const char *text, unsigned weights[LF_SIM_OP_COUNT],
                             lf_diagnostic *diag);

typedef struct lf_sim_op_stats {
    uint64_t examples, errors, bytes; /* bytes: prompt + completion */
} lf_sim_op_stats;

typedef struct lf_sim_stats {
    lf_sim_op_stats ops[LF_SIM_OP_COUNT]; /* examples written, both splits */
    uint64_t operations;  /* operations run, written or not */
    uint64_t episodes;
    uint64_t oversized;   /* examples over max_bytes, not written */
    uint64_t duplicates;  /* prompts written before (in either split), not again */
    bool mounted;         /* whether the loopback mount was used */
} lf_sim_stats;

/* Receives each example; a negative return stops generation with it. */
typedef int64_t (*lf_sim_sink_fn)(void *context, lf_sim_split split, const lf_sim_example *example);

/* Generates train_count training examples, then eval_count evaluation
 * examples from an independent stream of the same seed.  No prompt is
 * written twice, so in particular no evaluation prompt is a training
 * prompt.  Needs root (the sandbox holds files of several owners). */
int64_t lf_sim_generate(const lf_sim_config *config, lf_sim_sink_fn sink, void *context,
                        lf_sim_stats *stats, lf_diagnostic *diag);

#endif
