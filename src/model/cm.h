/* The adaptive context-mixing byte model: predicts one bit at a time from
 * order-0..6 contexts, word contexts and a match model, mixed by a small
 * neural network and refined by adaptive probability maps (the lpaq family
 * of designs). Integer arithmetic only, so its predictions are identical on
 * every machine and build; it is llmencode's first model and the fallback
 * for data the language model predicts badly.
 *
 * Bits are predicted most significant first within each byte. Each bit is
 * one lf_cm_predict followed by one lf_cm_update; predict has no effect a
 * second call could see (calling it twice returns the same value), and an
 * update without a predict first predicts. The predictions are a function
 * of the memory level and the bits seen so far only: changing the model
 * changes them, which is a new .llmz format version (tests/unit/test_cm.c
 * pins them with a hash). */
#ifndef LLMFUSE_MODEL_CM_H
#define LLMFUSE_MODEL_CM_H

#include <stdint.h>

typedef struct lf_cm lf_cm;

/* memory_level, 16..30, sizes the tables: 2^(memory_level-1) bytes of
 * hashed context slots and 2^(memory_level-2) for the match model, plus
 * 4.4 MiB that every level has (24 = 16.4 MiB in all, 22 = 7.4 MiB,
 * 26 = 52.4 MiB). Tables come from calloc, so a small input touches only
 * part of them. NULL for a level outside 16..30 or when out of memory. */
lf_cm *lf_cm_new(unsigned memory_level);
void lf_cm_free(lf_cm *model);
/* P(next bit = 1) in units of 1/65536, always within 1..65535. */
uint32_t lf_cm_predict(lf_cm *model);
/* Learns the actual bit; the next lf_cm_predict is for the following bit. */
void lf_cm_update(lf_cm *model, int bit);

#endif
