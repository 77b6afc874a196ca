#include "common/parallel.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
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
