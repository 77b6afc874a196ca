/* Runs work on a few threads, two ways:
 * - lf_parallel_for: independent jobs, handed out in index order from a
 *   shared counter, on threads started for the call;
 * - a team: threads kept for many short rounds of work (the parts of one
 *   transformer step: a few hundred microseconds split into dozens of
 *   rounds), which wait between rounds by spinning briefly, then sleeping.
 * Results must not depend on which thread ran which part (the determinism
 * contract), so callers write each part's result to its own slot. */
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

typedef struct lf_team lf_team;
/* One member's share of a round: members run it at once, each with its own
 * number (0 is the thread that called lf_team_run). */
typedef void (*lf_team_fn)(void *context, unsigned member, unsigned members);

/* A team of `members` threads: the caller of lf_team_run and members - 1
 * helpers, started at the first run (so a team made before a daemon forks
 * works in the child; fewer when the system will not start more: results
 * never depend on the count). 0, -EINVAL (no members) or -ENOMEM. */
int64_t lf_team_new(unsigned members, lf_team **team);
void lf_team_free(lf_team *team);
/* At most this many take part in a run (per-member scratch needs no more). */
unsigned lf_team_members(const lf_team *team);
/* Runs fn on every member and returns when all have finished. */
void lf_team_run(lf_team *team, lf_team_fn fn, void *context);

/* The share [*begin, *end) of `units` units of work that member takes of
 * `members`: contiguous, in member order, sizes differing by one at most. */
void lf_team_share(size_t units, unsigned member, unsigned members, size_t *begin, size_t *end);

#endif
