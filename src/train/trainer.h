/* A training run: the model's float32 parameters, gradients and AdamW
 * moments (one allocation, four arrays in the lf_transformer_tensors
 * layout), its data, and the loop that steps, evaluates, checkpoints and
 * exports.
 *
 * What reproduces: a step is a function of the parameters, the moments, the
 * step number and the data cursor, all of which a checkpoint keeps, and of
 * the thread count (OpenBLAS splits its products by thread count; the one
 * measured never splits a sum, but that is not promised). So a run resumed
 * from a checkpoint with the same thread count continues with exactly the
 * losses the uninterrupted run has. The row kernels are the same for any
 * thread count. */
#ifndef LLMFUSE_TRAIN_TRAINER_H
#define LLMFUSE_TRAIN_TRAINER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "train/settings.h"

typedef struct lf_trainer lf_trainer;

typedef struct lf_train_step_report {
    uint64_t step, steps; /* steps done, this one included, of the planned */
    double loss;          /* mean nats per target of this step's batch */
    double learning_rate, gradient_norm;
    uint64_t positions;   /* token positions the step computed (B x T) */
} lf_train_step_report;

typedef struct lf_train_eval_report {
    uint64_t step;
    double loss;          /* nats per target */
    double bits_per_byte; /* total nats / ln 2 / bytes of the targets' text */
    uint64_t targets, bytes;
} lf_train_eval_report;

/* What the run's data holds. */
typedef struct lf_train_data_summary {
    uint64_t train_tokens, eval_tokens;     /* pretraining */
    size_t train_examples, eval_examples;   /* SFT: examples kept */
    size_t skipped_train, skipped_eval;     /* SFT: examples longer than T */
} lf_train_data_summary;

/* Starts a new run in run_directory (created when missing; refused when it
 * already holds a checkpoint) and writes its first checkpoint. Parameters
 * come from settings->init or are drawn from settings->seed; the model
 * shape is settings->model (its vocab_size is the tokenizer's), or init's.
 * threads >= 1. */
int64_t lf_trainer_create(const lf_train_settings *settings, const char *run_directory,
                          unsigned threads, lf_trainer **trainer, lf_diagnostic *diagnostic);
/* The settings a run directory's checkpoint holds, to change some before
 * resuming. */
int64_t lf_trainer_read_settings(const char *run_directory, lf_train_settings *settings,
                                 lf_diagnostic *diagnostic);
/* Continues the run in run_directory from its checkpoint. settings NULL
 * keeps the run's; otherwise they may differ from the run's only in steps,
 * output, the periods (eval_every, checkpoint_every, output_every),
 * eval_tokens and the paths of the same data: anything else would change
 * the steps to come (-EINVAL, naming the setting). */
int64_t lf_trainer_resume(const char *run_directory, const lf_train_settings *settings,
                          unsigned threads, lf_trainer **trainer, lf_diagnostic *diagnostic);
void lf_trainer_free(lf_trainer *trainer);

const lf_train_settings *lf_trainer_settings(const lf_trainer *trainer);
void lf_trainer_describe(const lf_trainer *trainer, lf_train_data_summary *summary);
/* Steps done. */
uint64_t lf_trainer_step_count(const lf_trainer *trainer);
/* The parameters, in the lf_transformer_tensors layout. */
const float *lf_trainer_parameters(const lf_trainer *trainer);

/* One optimizer step on the next batch. */
int64_t lf_trainer_step(lf_trainer *trainer, lf_train_step_report *report);
/* Loss and bits per byte on the held-out data (report->targets 0 when the
 * run has none). The data cursor is untouched. */
int64_t lf_trainer_evaluate(lf_trainer *trainer, lf_train_eval_report *report);
int64_t lf_trainer_save_checkpoint(lf_trainer *trainer, lf_diagnostic *diagnostic);
/* Writes the model as the engine loads it (int8 matrices). */
int64_t lf_trainer_export(const lf_trainer *trainer, const char *path, lf_diagnostic *diagnostic);

typedef struct lf_train_callbacks {
    void *context;
    void (*step)(void *context, const lf_train_step_report *report);
    void (*evaluation)(void *context, const lf_train_eval_report *report);
    void (*saved)(void *context, uint64_t step, const char *path); /* a checkpoint or the output */
} lf_train_callbacks;

/* When to stop before the planned steps are done (zero: no limit). */
typedef struct lf_train_limits {
    const volatile sig_atomic_t *stop; /* set from a signal handler */
    uint64_t session_steps;
    double session_seconds;
} lf_train_limits;

/* Steps until settings->steps or a limit; evaluates every eval_every steps
 * and after the last, checkpoints every checkpoint_every steps, after the
 * last and when a limit stops it, writes the output every output_every steps
 * and after the last. Returns 1 when every planned step is done, 0 when a
 * limit stopped the run first (its checkpoint saved). */
int64_t lf_trainer_run(lf_trainer *trainer, const lf_train_limits *limits,
                       const lf_train_callbacks *callbacks, lf_diagnostic *diagnostic);

#endif
