/* A small deterministic PRNG (xoshiro256**, seeded through splitmix64): the
 * simulator, tests and trainer draw from it so that a seed reproduces the
 * same output on every machine and build. */
#ifndef LLMFUSE_COMMON_RANDOM_H
#define LLMFUSE_COMMON_RANDOM_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_random {
    uint64_t state[4];
} lf_random;

void lf_random_seed(lf_random *random, uint64_t seed);
uint64_t lf_random_next(lf_random *random);
/* Uniform in [0, bound), without modulo bias; bound 0 gives 0. */
uint64_t lf_random_below(lf_random *random, uint64_t bound);
/* Uniform in [low, high]. */
int64_t lf_random_range(lf_random *random, int64_t low, int64_t high);
/* true with probability numerator/denominator. */
int lf_random_chance(lf_random *random, uint64_t numerator, uint64_t denominator);
void lf_random_bytes(lf_random *random, void *out, size_t size);

#endif
