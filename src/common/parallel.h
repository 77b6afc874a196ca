/* Runs independent jobs on a few threads. Jobs are handed out in index
 * order from a shared counter; results must not depend on which thread ran
 * which job (the determinism contract), so callers write each job's result
 * to its own slot. */
#ifndef LLMFUSE_COMMON_PARALLEL_H
#define LLMFUSE_COMMON_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 or the failing job's status with the lowest index, so the error
 * reported is the same whatever the thread count. */
typedef int64_t (*lf_parallel_job_fn)(void *context, size_t job);

/* threads == 0: one per online CPU. Never more threads than jobs. */
int64_t lf_parallel_for(size_t jobs, unsigned threads, lf_parallel_job_fn run, void *context);
unsigned lf_parallel_default_threads(void);

#endif
