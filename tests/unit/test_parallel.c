/* Jobs on threads (lf_parallel_for) and teams (lf_team): every unit of work
 * done exactly once, errors reported by the lowest failing job, and a team
 * that runs many short rounds without losing one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "common/parallel.h"

typedef struct counting {
    unsigned *done; /* per unit: how many times it ran */
    size_t units;
    size_t failing_from; /* jobs at or past it fail with -(job + 1) */
} counting;

static int64_t count_job(void *context, size_t job)
{
    counting *c = context;
    c->done[job]++;
    return job >= c->failing_from ? -(int64_t)(job + 1) : 0;
}

static void test_parallel_for_runs_every_job_once(void **state)
{
    (void)state;
    unsigned done[100] = {0};
    counting c = {done, 100, 100};
    assert_int_equal(lf_parallel_for(100, 3, count_job, &c), 0);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(done[i], 1);
    /* the lowest failing job's status, whatever thread ran it */
    counting failing = {done, 100, 40};
    for (unsigned threads = 1; threads <= 4; threads++)
        assert_int_equal(lf_parallel_for(100, threads, count_job, &failing), -41);
}

typedef struct round {
    unsigned *done; /* per unit: the last round that covered it */
    size_t units;
    unsigned number;
    unsigned members_seen[8];
    _Atomic unsigned wrong; /* units found not done in the round before (cmocka asserts on the
                               main thread only) */
} round;

static void mark_share(void *context, unsigned member, unsigned members)
{
    round *r = context;
    size_t begin, end;
    lf_team_share(r->units, member, members, &begin, &end);
    for (size_t i = begin; i < end; i++) {
        if (r->done[i] != r->number - 1) /* once per round, in order */
            r->wrong++;
        r->done[i] = r->number;
    }
    r->members_seen[member] = r->number;
}

static void test_team_runs_every_share_every_round(void **state)
{
    (void)state;
    for (unsigned members = 1; members <= 4; members++) {
        lf_team *team;
        assert_int_equal(lf_team_new(members, &team), 0);
        assert_int_equal(lf_team_members(team), members);
        unsigned done[37] = {0};
        round r = {.done = done, .units = 37, .wrong = 0};
        /* rounds microseconds apart (spinning) and a few with pauses
         * between them long enough for the helpers to sleep */
        for (r.number = 1; r.number <= 3000; r.number++) {
            if (r.number % 1000 == 0) {
                struct timespec pause = {0, 2000000};
                nanosleep(&pause, NULL);
            }
            lf_team_run(team, mark_share, &r);
            for (unsigned m = 0; m < members; m++)
                assert_int_equal(r.members_seen[m], r.number);
        }
        assert_int_equal(r.wrong, 0);
        for (size_t i = 0; i < 37; i++)
            assert_int_equal(done[i], 3000);
        lf_team_free(team);
    }
    lf_team *never_run;
    assert_int_equal(lf_team_new(2, &never_run), 0);
    lf_team_free(never_run); /* no helper started: nothing to join */
    assert_int_equal(lf_team_new(0, &never_run), -EINVAL);
}

static void test_shares_cover_the_units(void **state)
{
    (void)state;
    for (size_t units = 0; units < 20; units++)
        for (unsigned members = 1; members <= 5; members++) {
            size_t next = 0;
            for (unsigned m = 0; m < members; m++) {
                size_t begin, end;
                lf_team_share(units, m, members, &begin, &end);
                assert_int_equal(begin, next);
                assert_true(end - begin <= units / members + 1);
                next = end;
            }
            assert_int_equal(next, units);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_for_runs_every_job_once),
        cmocka_unit_test(test_team_runs_every_share_every_round),
        cmocka_unit_test(test_shares_cover_the_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
