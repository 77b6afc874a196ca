#include "common/random.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void lf_random_seed(lf_random *random, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        random->state[i] = splitmix64(&seed);
}

static uint64_t rotate_left(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lf_random_next(lf_random *random)
{
    uint64_t *s = random->state;
    uint64_t result = rotate_left(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotate_left(s[3], 45);
    return result;
}

uint64_t lf_random_below(lf_random *random, uint64_t bound)
{
    if (bound == 0)
        return 0;
    /* Reject the short top range so every value is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t value;
    do
        value = lf_random_next(random);
    while (value >= limit);
    return value % bound;
}

int64_t lf_random_range(lf_random *random, int64_t low, int64_t high)
{
    return low + (int64_t)lf_random_below(random, (uint64_t)(high - low) + 1);
}

int lf_random_chance(lf_random *random, uint64_t numerator, uint64_t denominator)
{
    return lf_random_below(random, denominator) < numerator;
}

void lf_random_bytes(lf_random *random, void *out, size_t size)
{
    uint8_t *bytes = out;
    for (size_t i = 0; i < size; i++)
        bytes[i] = (uint8_t)(lf_random_next(random) >> 56);
}
