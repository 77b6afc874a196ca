#include "common/parallel.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct shared {
    lf_parallel_job_fn run;
    void *context;
    size_t jobs;
    atomic_size_t next;
    pthread_mutex_t lock;
    size_t failed_job; /* lowest failing index so far; jobs when none */
    int64_t failure;
} shared;

static void *worker(void *argument)
{
    shared *state = argument;
    for (;;) {
        size_t job = atomic_fetch_add(&state->next, 1);
        if (job >= state->jobs)
            break;
        pthread_mutex_lock(&state->lock);
        int skip = job > state->failed_job; /* a lower job failed: its error wins */
        pthread_mutex_unlock(&state->lock);
        if (skip)
            continue;
        int64_t status = state->run(state->context, job);
        if (status < 0) {
            pthread_mutex_lock(&state->lock);
            if (job < state->failed_job) {
                state->failed_job = job;
                state->failure = status;
            }
            pthread_mutex_unlock(&state->lock);
        }
    }
    return NULL;
}

unsigned lf_parallel_default_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (unsigned)cpus : 1;
}

int64_t lf_parallel_for(size_t jobs, unsigned threads, lf_parallel_job_fn run, void *context)
{
    if (threads == 0)
        threads = lf_parallel_default_threads();
    if (threads > jobs)
        threads = (unsigned)jobs;
    shared state = {.run = run, .context = context, .jobs = jobs, .failed_job = jobs};
    atomic_init(&state.next, 0);
    pthread_mutex_init(&state.lock, NULL);
    pthread_t *handles = threads > 1 ? calloc(threads - 1, sizeof *handles) : NULL;
    unsigned started = 0;
    if (handles)
        for (; started < threads - 1; started++)
            if (pthread_create(&handles[started], NULL, worker, &state) != 0)
                break; /* fewer threads is still correct */
    worker(&state); /* the calling thread works too */
    for (unsigned i = 0; i < started; i++)
        pthread_join(handles[i], NULL);
    free(handles);
    pthread_mutex_destroy(&state.lock);
    return state.failure;
}

/* ------------------------------------------------------------------ */
/* Teams                                                               */

/* Waiting spins before it sleeps: a step's rounds come microseconds apart,
 * and a sleep and wake-up costs tens of them; between jobs a helper sleeps
 * instead of holding a core. After the first spins it yields the core, in
 * case the thread it waits for is waiting for it (more threads than cores:
 * the image's readers, tests run in parallel). */
#define SPIN_NANOSECONDS 50000
#define SPINS_BEFORE_YIELDING 64

struct lf_team {
    unsigned members;
    pthread_t *helpers;
    unsigned started;
    /* the round: generation counts rounds begun; finished counts the
     * helpers done with the current one */
    atomic_uint generation;
    atomic_uint finished;
    atomic_bool stopping;
    lf_team_fn fn;
    void *context;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
};

typedef struct helper_start {
    lf_team *team;
    unsigned member;
} helper_start;

static inline void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until *value != seen (or, for the round's end, == seen): spins, then
 * sleeps on cond, whose signallers take the lock after changing value. */
static void wait_for(lf_team *team, atomic_uint *value, unsigned seen, bool until_equal,
                     pthread_cond_t *cond)
{
    struct timespec start = {0}, now;
    for (unsigned i = 0;; i++) {
        if ((atomic_load_explicit(value, memory_order_acquire) == seen) == until_equal)
            return;
        if (i < SPINS_BEFORE_YIELDING) {
            spin_pause();
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (i == SPINS_BEFORE_YIELDING)
            start = now;
        else if ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) >
                 SPIN_NANOSECONDS)
            break;
        sched_yield();
    }
    pthread_mutex_lock(&team->lock);
    while ((atomic_load_explicit(value, memory_order_acquire) == seen) != until_equal)
        pthread_cond_wait(cond, &team->lock);
    pthread_mutex_unlock(&team->lock);
}

static void *helper(void *argument)
{
    helper_start start = *(helper_start *)argument;
    free(argument);
    lf_team *team = start.team;
    unsigned seen = 0;
    for (;;) {
        wait_for(team, &team->generation, seen, false, &team->wake);
        seen = atomic_load_explicit(&team->generation, memory_order_acquire);
        if (atomic_load_explicit(&team->stopping, memory_order_acquire))
            return NULL;
        team->fn(team->context, start.member, team->members);
        pthread_mutex_lock(&team->lock);
        atomic_fetch_add_explicit(&team->finished, 1, memory_order_release);
        pthread_cond_signal(&team->done);
        pthread_mutex_unlock(&team->lock);
    }
}

/* Begins a round (or the stop): helpers see generation move. */
static void begin_round(lf_team *team)
{
    atomic_store_explicit(&team->finished, 0, memory_order_relaxed);
    pthread_mutex_lock(&team->lock);
    atomic_fetch_add_explicit(&team->generation, 1, memory_order_release);
    pthread_cond_broadcast(&team->wake);
    pthread_mutex_unlock(&team->lock);
}

int64_t lf_team_new(unsigned members, lf_team **team)
{
    if (members == 0)
        return -EINVAL;
    lf_team *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    created->members = members;
    atomic_init(&created->generation, 0);
    atomic_init(&created->finished, 0);
    atomic_init(&created->stopping, false);
    pthread_mutex_init(&created->lock, NULL);
    pthread_cond_init(&created->wake, NULL);
    pthread_cond_init(&created->done, NULL);
    created->helpers = members > 1 ? calloc(members - 1, sizeof *created->helpers) : NULL;
    if (members > 1 && !created->helpers) {
        lf_team_free(created);
        return -ENOMEM;
    }
    *team = created;
    return 0;
}

/* Helpers start at the first round, not with the team: a team made before
 * a daemon forks (the engine's generator) then runs in the child, where
 * threads started before the fork would not exist. A helper the system
 * will not start leaves the team smaller, which is still correct. */
static void start_helpers(lf_team *team)
{
    while (team->started < team->members - 1) {
        helper_start *start = malloc(sizeof *start);
        if (start)
            *start = (helper_start){team, team->started + 1};
        if (!start || pthread_create(&team->helpers[team->started], NULL, helper, start) != 0) {
            free(start);
            team->members = team->started + 1;
            return;
        }
        team->started++;
    }
}

void lf_team_free(lf_team *team)
{
    if (!team)
        return;
    if (team->started) {
        atomic_store_explicit(&team->stopping, true, memory_order_release);
        begin_round(team);
        for (unsigned i = 0; i < team->started; i++)
            pthread_join(team->helpers[i], NULL);
    }
    free(team->helpers);
    pthread_mutex_destroy(&team->lock);
    pthread_cond_destroy(&team->wake);
    pthread_cond_destroy(&team->done);
    free(team);
}

unsigned lf_team_members(const lf_team *team) { return team->members; }

void lf_team_run(lf_team *team, lf_team_fn fn, void *context)
{
    if (team->started < team->members - 1)
        start_helpers(team);
    if (team->members == 1) {
        fn(context, 0, 1);
        return;
    }
    team->fn = fn;
    team->context = context;
    begin_round(team);
    fn(context, 0, team->members);
    wait_for(team, &team->finished, team->members - 1, true, &team->done);
}

void lf_team_share(size_t units, unsigned member, unsigned members, size_t *begin, size_t *end)
{
    *begin = units * member / members;
    *end = units * (member + 1) / members;
}
