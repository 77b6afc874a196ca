/* A carry-correct range coder over bytes, in the style of LZMA's, widened to
 * a 64-bit register: `low` keeps a 56-bit window plus a carry bit and the
 * range stays within [2^48, 2^56), so a symbol can be coded against a total
 * of up to 2^32 with at most 2^-16 relative precision lost.  Two entry
 * points share one state: symbols from a cumulative frequency table
 * (language-model tokens) and binary decisions with a 16-bit probability
 * (the context-mixing model's bits).
 *
 * The stream carries no leading byte (LZMA's first byte is always zero) and
 * ends with the shortest byte string that identifies the final interval, with
 * trailing zero bytes dropped: the decoder reads zeros past the end. */
#ifndef LLMFUSE_CODER_RANGE_CODER_H
#define LLMFUSE_CODER_RANGE_CODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"

typedef struct lf_range_encoder {
    uint64_t low, range;
    uint8_t cache;        /* the byte still open to a carry */
    uint64_t cache_size;  /* the cache plus the 0xFF bytes behind it */
    bool first;           /* the first cache byte is always 0 and is not written */
    lf_buffer *out;
    int64_t status;       /* 0, or the first error (-ENOMEM) */
} lf_range_encoder;

typedef struct lf_range_decoder {
    uint64_t code, range;
    const uint8_t *data;
    size_t size, position;
} lf_range_decoder;

void lf_range_encoder_init(lf_range_encoder *encoder, lf_buffer *out);
/* Codes the symbol occupying [start, start + size) of a total of 2^total_bits. */
void lf_range_encode(lf_range_encoder *encoder, uint32_t start, uint32_t size,
                     unsigned total_bits);
/* Codes a bit whose probability of being 1 is probability_of_one / 65536. */
void lf_range_encode_bit(lf_range_encoder *encoder, uint32_t probability_of_one, int bit);
/* Writes the final bytes; returns 0 or the first error. */
int64_t lf_range_encoder_finish(lf_range_encoder *encoder);

void lf_range_decoder_init(lf_range_decoder *decoder, const uint8_t *data, size_t size);
/* The position of the next symbol within the total: look it up, then call
 * lf_range_decode_consume with its interval. */
uint32_t lf_range_decode_target(lf_range_decoder *decoder, unsigned total_bits);
void lf_range_decode_consume(lf_range_decoder *decoder, uint32_t start, uint32_t size,
                             unsigned total_bits);
int lf_range_decode_bit(lf_range_decoder *decoder, uint32_t probability_of_one);
/* Bytes read beyond the end of the data (as zeros): the encoder's dropped
 * trailing zeros, so a handful for a valid stream; thousands mean the
 * stream was cut or is garbage. */
size_t lf_range_decoder_overrun(const lf_range_decoder *decoder);

#endif
