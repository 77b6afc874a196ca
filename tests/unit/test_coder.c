/* The range coder and the frequency tables: exact round trips under every
 * kind of distribution (carries included), and the cost over the ideal code
 * length, measured. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coder/frequencies.h"
#include "coder/range_coder.h"
#include "common/random.h"

typedef struct step {
    bool binary;
    uint32_t probability_of_one; /* binary steps */
    uint32_t table;              /* which table, otherwise */
    uint32_t symbol;
} step;

/* Draws a symbol with the table's own probabilities, so the stream is what
 * a well-calibrated model would produce. */
static uint32_t draw(lf_random *random, const lf_frequencies *table)
{
    return lf_frequencies_find(table, (uint32_t)lf_random_below(random, LF_FREQUENCY_TOTAL));
}

static void fill_weights(lf_random *random, uint32_t *weights, uint32_t count, int shape)
{
    for (uint32_t i = 0; i < count; i++) {
        switch (shape) {
        case 0: /* Zipf-like, as token distributions are */
            weights[i] = (uint32_t)(4000000000u / (i + 1));
            break;
        case 1: /* one symbol dominates: long runs and carries */
            weights[i] = i == 0 ? 4000000000u : 1;
            break;
        case 2: /* some zero weights: floored to 1 */
            weights[i] = lf_random_chance(random, 1, 2) ? 0 : (uint32_t)lf_random_below(random, 1000);
            break;
        default:
            weights[i] = (uint32_t)lf_random_next(random);
        }
    }
}

static void test_round_trip_mixed_streams(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        lf_random random;
        lf_random_seed(&random, seed);
        enum { TABLES = 4, STEPS = 20000 };
        lf_frequencies tables[TABLES] = {0};
        for (int t = 0; t < TABLES; t++) {
            uint32_t count = (uint32_t)lf_random_range(&random, 1, t == 0 ? 3 : 70000);
            uint32_t *weights = malloc(count * sizeof *weights);
            fill_weights(&random, weights, count, (int)lf_random_below(&random, 4));
            assert_int_equal(lf_frequencies_set(&tables[t], weights, count), 0);
            free(weights);
        }
        step *steps = malloc(STEPS * sizeof *steps);
        lf_buffer stream = {0};
        lf_range_encoder encoder;
        lf_range_encoder_init(&encoder, &stream);
        for (int i = 0; i < STEPS; i++) {
            step *s = &steps[i];
            s->binary = lf_random_chance(&random, 1, 2);
            if (s->binary) {
                /* extremes included: 1 and 65535 */
                s->probability_of_one = lf_random_chance(&random, 1, 4)
                                            ? (lf_random_chance(&random, 1, 2) ? 1 : 65535)
                                            : (uint32_t)lf_random_range(&random, 1, 65535);
                s->symbol = lf_random_below(&random, 65536) < s->probability_of_one;
                lf_range_encode_bit(&encoder, s->probability_of_one, (int)s->symbol);
            } else {
                s->table = (uint32_t)lf_random_below(&random, TABLES);
                s->symbol = lf_random_chance(&random, 1, 50)
                                ? (uint32_t)lf_random_below(&random, tables[s->table].symbol_count)
                                : draw(&random, &tables[s->table]);
                lf_frequencies_encode(&encoder, &tables[s->table], s->symbol);
            }
        }
        assert_int_equal(lf_range_encoder_finish(&encoder), 0);
        lf_range_decoder decoder;
        lf_range_decoder_init(&decoder, stream.data, stream.length);
        for (int i = 0; i < STEPS; i++) {
            const step *s = &steps[i];
            uint32_t symbol = s->binary ? (uint32_t)lf_range_decode_bit(&decoder, s->probability_of_one)
                                        : lf_frequencies_decode(&decoder, &tables[s->table]);
            if (symbol != s->symbol)
                fail_msg("seed %llu step %d: decoded %u, coded %u", (unsigned long long)seed, i,
                         symbol, s->symbol);
        }
        for (int t = 0; t < TABLES; t++)
            lf_frequencies_free(&tables[t]);
        free(steps);
        lf_buffer_free(&stream);
    }
}

static void test_empty_stream_is_empty(void **state)
{
    (void)state;
    lf_buffer stream = {0};
    lf_range_encoder encoder;
    lf_range_encoder_init(&encoder, &stream);
    assert_int_equal(lf_range_encoder_finish(&encoder), 0);
    assert_int_equal(stream.length, 0);
    lf_buffer_free(&stream);
}

static void test_table_invariants(void **state)
{
    (void)state;
    uint32_t weights[5] = {0, 0, 0, 0, 0};
    lf_frequencies table = {0};
    assert_int_equal(lf_frequencies_set(&table, weights, 5), 0);
    for (uint32_t i = 0; i < 5; i++) /* all-zero weights: uniform */
        assert_true(table.cumulative[i + 1] - table.cumulative[i] >= LF_FREQUENCY_TOTAL / 5);
    uint32_t skewed[3] = {UINT32_MAX, 0, 7};
    assert_int_equal(lf_frequencies_set(&table, skewed, 3), 0);
    assert_int_equal(table.cumulative[0], 0);
    assert_int_equal(table.cumulative[2] - table.cumulative[1], 1); /* zero weight -> 1 */
    assert_int_equal(table.cumulative[3], LF_FREQUENCY_TOTAL);
    assert_int_equal(lf_frequencies_find(&table, 0), 0);
    assert_int_equal(lf_frequencies_find(&table, LF_FREQUENCY_TOTAL - 1), 2);
    assert_int_equal(lf_frequencies_set(&table, skewed, 0), -EINVAL);
    lf_frequencies_free(&table);
}

/* The cost over -log2 of the model's own probabilities, for the token
 * alphabets a language model has: must stay under 0.1%. */
static void test_overhead_over_ideal_code_length(void **state)
{
    (void)state;
    const uint32_t alphabets[] = {256, 4096, 8192, 32768, 65536};
    for (size_t a = 0; a < sizeof alphabets / sizeof *alphabets; a++) {
        uint32_t count = alphabets[a];
        lf_random random;
        lf_random_seed(&random, count);
        uint32_t *weights = malloc(count * sizeof *weights);
        lf_frequencies table = {0};
        lf_buffer stream = {0};
        lf_range_encoder encoder;
        lf_range_encoder_init(&encoder, &stream);
        /* A different Zipf-like distribution each step, as a model's are:
         * one of a few sharpness profiles, rotated by a random offset. */
        enum { PROFILES = 4, SYMBOLS = 6000 };
        uint32_t *profiles = malloc((size_t)PROFILES * count * sizeof *profiles);
        double profile_sums[PROFILES] = {0};
        for (int p = 0; p < PROFILES; p++)
            for (uint32_t rank = 0; rank < count; rank++) {
                profiles[(size_t)p * count + rank] = (uint32_t)(1e9 / pow(rank + 1.0, 0.8 + 0.25 * p)) + 1;
                profile_sums[p] += profiles[(size_t)p * count + rank];
            }
        double ideal_bits = 0;
        for (int i = 0; i < SYMBOLS; i++) {
            int p = (int)lf_random_below(&random, PROFILES);
            uint32_t offset = (uint32_t)lf_random_below(&random, count);
            for (uint32_t s = 0; s < count; s++)
                weights[s] = profiles[(size_t)p * count + (s + offset) % count];
            assert_int_equal(lf_frequencies_set(&table, weights, count), 0);
            /* draw from the exact distribution */
            double target = (double)lf_random_below(&random, UINT32_MAX) / UINT32_MAX * profile_sums[p];
            uint32_t symbol = 0;
            for (double running = weights[0]; running < target && symbol + 1 < count;)
                running += weights[++symbol];
            ideal_bits += -log2(weights[symbol] / profile_sums[p]);
            lf_frequencies_encode(&encoder, &table, symbol);
        }
        free(profiles);
        assert_int_equal(lf_range_encoder_finish(&encoder), 0);
        double actual_bits = 8.0 * (double)stream.length;
        double overhead = (actual_bits - ideal_bits) / ideal_bits;
        print_message("alphabet %6u: ideal %.0f bytes, coded %zu bytes, overhead %+.4f%%\n", count,
                      ideal_bits / 8, stream.length, 100 * overhead);
        assert_true(overhead < 0.001);
        lf_frequencies_free(&table);
        lf_buffer_free(&stream);
        free(weights);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_mixed_streams),
        cmocka_unit_test(test_empty_stream_is_empty),
        cmocka_unit_test(test_table_invariants),
        cmocka_unit_test(test_overhead_over_ideal_code_length),
    };
    return cmocka_run_group_tests_name("coder", tests, NULL, NULL);
}
