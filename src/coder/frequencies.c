#include "coder/frequencies.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

int64_t lf_frequencies_resize(lf_frequencies *table, uint32_t symbol_count)
{
    if (symbol_count == 0 || symbol_count > LF_FREQUENCY_MAX_SYMBOLS)
        return -EINVAL;
    if (table->capacity < symbol_count + 1) {
        uint32_t *cumulative = realloc(table->cumulative, (symbol_count + 1) * sizeof *cumulative);
        if (!cumulative)
            return -ENOMEM;
        table->cumulative = cumulative;
        table->capacity = symbol_count + 1;
    }
    table->symbol_count = symbol_count;
    return 0;
}

int64_t lf_frequencies_set(lf_frequencies *table, const uint32_t *weights, uint32_t symbol_count)
{
    int64_t status = lf_frequencies_resize(table, symbol_count);
    if (status < 0)
        return status;
    uint64_t weight_sum = 0;
    uint32_t heaviest = 0;
    for (uint32_t i = 0; i < symbol_count; i++) {
        weight_sum += weights[i];
        if (weights[i] > weights[heaviest])
            heaviest = i;
    }
    /* scale = floor((T - n) * 2^64 / W), so each share is one 64x64->128-bit
     * multiply instead of a division per symbol. */
    bool uniform = weight_sum == 0;
    uint64_t spare = LF_FREQUENCY_TOTAL - symbol_count;
    unsigned __int128 scale = (((unsigned __int128)spare) << 64) / (uniform ? symbol_count : weight_sum);
    uint32_t *cumulative = table->cumulative;
    uint64_t running = 0;
    for (uint32_t i = 0; i < symbol_count; i++) {
        cumulative[i] = (uint32_t)running;
        running += 1 + (uint64_t)(((uniform ? 1 : weights[i]) * scale) >> 64);
    }
    /* Rounding leaves 0 .. n-1 units (uniform: spare); the heaviest symbol
     * takes them, which costs the least. */
    uint64_t leftover = LF_FREQUENCY_TOTAL - running;
    for (uint32_t i = heaviest + 1; i < symbol_count; i++)
        cumulative[i] += (uint32_t)leftover;
    cumulative[symbol_count] = LF_FREQUENCY_TOTAL;
    return 0;
}

void lf_frequencies_free(lf_frequencies *table)
{
    free(table->cumulative);
    *table = (lf_frequencies){0};
}

uint32_t lf_frequencies_find(const lf_frequencies *table, uint32_t target)
{
    uint32_t low = 0, high = table->symbol_count; /* cumulative[low] <= target < cumulative[high] */
    while (high - low > 1) {
        uint32_t middle = low + (high - low) / 2;
        if (table->cumulative[middle] <= target)
            low = middle;
        else
            high = middle;
    }
    return low;
}

void lf_frequencies_encode(lf_range_encoder *encoder, const lf_frequencies *table, uint32_t symbol)
{
    uint32_t start = table->cumulative[symbol];
    lf_range_encode(encoder, start, table->cumulative[symbol + 1] - start, LF_FREQUENCY_BITS);
}

uint32_t lf_frequencies_decode(lf_range_decoder *decoder, const lf_frequencies *table)
{
    uint32_t symbol = lf_frequencies_find(table, lf_range_decode_target(decoder, LF_FREQUENCY_BITS));
    uint32_t start = table->cumulative[symbol];
    lf_range_decode_consume(decoder, start, table->cumulative[symbol + 1] - start, LF_FREQUENCY_BITS);
    return symbol;
}
