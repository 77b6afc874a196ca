/* From a model's distribution to the integer frequency table the range
 * coder codes with: deterministic (integers only), every symbol at least 1,
 * total 2^LF_FREQUENCY_BITS so that even a 64k-token alphabet loses under
 * 0.01% of the probability mass to the floor of 1. */
#ifndef LLMFUSE_CODER_FREQUENCIES_H
#define LLMFUSE_CODER_FREQUENCIES_H

#include <stdint.h>

#include "coder/range_coder.h"

#define LF_FREQUENCY_BITS 30
#define LF_FREQUENCY_TOTAL (UINT32_C(1) << LF_FREQUENCY_BITS)
#define LF_FREQUENCY_MAX_SYMBOLS (UINT32_C(1) << 20)

typedef struct lf_frequencies {
    uint32_t symbol_count;
    uint32_t capacity;
    uint32_t *cumulative; /* symbol_count + 1 entries, from 0 to LF_FREQUENCY_TOTAL */
} lf_frequencies;

/* weights[i] >= 0 proportional to symbol i's probability (any scale; all
 * zero means uniform). Each symbol gets 1 + floor(w_i * (T - n) / W)
 * computed in fixed point; what rounding leaves over goes to the heaviest
 * symbol (the first on ties). Returns 0, -EINVAL, or -ENOMEM. */
int64_t lf_frequencies_set(lf_frequencies *table, const uint32_t *weights, uint32_t symbol_count);
/* Makes room for symbol_count symbols and sets the count, leaving the
 * cumulative values to the caller (a faster lf_frequencies_set for a known
 * kind of weights: the transformer's kernels). 0, -EINVAL or -ENOMEM. */
int64_t lf_frequencies_resize(lf_frequencies *table, uint32_t symbol_count);
void lf_frequencies_free(lf_frequencies *table);
/* The symbol whose interval holds target (binary search). */
uint32_t lf_frequencies_find(const lf_frequencies *table, uint32_t target);

void lf_frequencies_encode(lf_range_encoder *encoder, const lf_frequencies *table, uint32_t symbol);
uint32_t lf_frequencies_decode(lf_range_decoder *decoder, const lf_frequencies *table);

#endif
