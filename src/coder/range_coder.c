#include "coder/range_coder.h"

#include <errno.h>

#define WINDOW_BITS 56
#define TOP (UINT64_C(1) << WINDOW_BITS)      /* the carry bit of low */
#define BOTTOM (UINT64_C(1) << (WINDOW_BITS - 8)) /* renormalise below this */

void lf_range_encoder_init(lf_range_encoder *encoder, lf_buffer *out)
{
    *encoder = (lf_range_encoder){
        .low = 0, .range = TOP - 1, .cache = 0, .cache_size = 1, .first = true, .out = out};
}

static void emit(lf_range_encoder *encoder, uint8_t byte)
{
    if (encoder->first) { /* the initial cache byte: always 0, never carried into */
        encoder->first = false;
        return;
    }
    if (encoder->status == 0)
        encoder->status = lf_buffer_append(encoder->out, &byte, 1);
}

/* Moves the top byte of the window out. A byte can still change through a
 * carry until a byte below 0xFF follows it, so 0xFF bytes wait in cache_size. */
static void shift_low(lf_range_encoder *encoder)
{
    uint64_t top_byte = (encoder->low >> (WINDOW_BITS - 8)) & 0xFF;
    bool carry = encoder->low >= TOP;
    if (top_byte != 0xFF || carry) {
        uint8_t byte = (uint8_t)(encoder->cache + carry);
        do {
            emit(encoder, byte);
            byte = (uint8_t)(0xFF + carry);
        } while (--encoder->cache_size != 0);
        encoder->cache = (uint8_t)top_byte;
    }
    encoder->cache_size++;
    encoder->low = (encoder->low << 8) & (TOP - 1);
}

static void encoder_normalize(lf_range_encoder *encoder)
{
    while (encoder->range < BOTTOM) {
        encoder->range <<= 8;
        shift_low(encoder);
    }
}

void lf_range_encode(lf_range_encoder *encoder, uint32_t start, uint32_t size,
                     unsigned total_bits)
{
    uint64_t unit = encoder->range >> total_bits;
    encoder->low += unit * start;
    encoder->range = unit * size;
    encoder_normalize(encoder);
}

void lf_range_encode_bit(lf_range_encoder *encoder, uint32_t probability_of_one, int bit)
{
    uint64_t bound = (encoder->range >> 16) * probability_of_one;
    if (bit) {
        encoder->range = bound;
    } else {
        encoder->low += bound;
        encoder->range -= bound;
    }
    encoder_normalize(encoder);
}

int64_t lf_range_encoder_finish(lf_range_encoder *encoder)
{
    /* Any value in [low, low + range) decodes correctly; take the one with
     * the most trailing zero bits, since trailing zero bytes need not be
     * stored at all. */
    for (int bits = WINDOW_BITS; bits > 0; bits--) {
        uint64_t mask = (UINT64_C(1) << bits) - 1;
        uint64_t value = (encoder->low + mask) & ~mask;
        if (value - encoder->low < encoder->range) {
            encoder->low = value;
            break;
        }
    }
    for (int i = 0; i < WINDOW_BITS / 8 + 1; i++)
        shift_low(encoder);
    lf_buffer *out = encoder->out;
    while (encoder->status == 0 && out->length > 0 && out->data[out->length - 1] == 0)
        out->length--;
    return encoder->status;
}

static uint8_t next_byte(lf_range_decoder *decoder)
{
    size_t position = decoder->position++;
    return position < decoder->size ? decoder->data[position] : 0;
}

void lf_range_decoder_init(lf_range_decoder *decoder, const uint8_t *data, size_t size)
{
    *decoder = (lf_range_decoder){.range = TOP - 1, .data = data, .size = size};
    for (int i = 0; i < WINDOW_BITS / 8; i++)
        decoder->code = (decoder->code << 8) | next_byte(decoder);
}

static void decoder_normalize(lf_range_decoder *decoder)
{
    while (decoder->range < BOTTOM) {
        decoder->range <<= 8;
        decoder->code = ((decoder->code << 8) | next_byte(decoder)) & (TOP - 1);
    }
}

uint32_t lf_range_decode_target(lf_range_decoder *decoder, unsigned total_bits)
{
    uint64_t unit = decoder->range >> total_bits;
    uint64_t target = decoder->code / unit;
    uint64_t last = (UINT64_C(1) << total_bits) - 1;
    return (uint32_t)(target > last ? last : target); /* only a corrupt stream goes past */
}

void lf_range_decode_consume(lf_range_decoder *decoder, uint32_t start, uint32_t size,
                             unsigned total_bits)
{
    uint64_t unit = decoder->range >> total_bits;
    decoder->code -= unit * start;
    decoder->range = unit * size;
    decoder_normalize(decoder);
}

int lf_range_decode_bit(lf_range_decoder *decoder, uint32_t probability_of_one)
{
    uint64_t bound = (decoder->range >> 16) * probability_of_one;
    int bit = decoder->code < bound;
    if (bit) {
        decoder->range = bound;
    } else {
        decoder->code -= bound;
        decoder->range -= bound;
    }
    decoder_normalize(decoder);
    return bit;
}

size_t lf_range_decoder_overrun(const lf_range_decoder *decoder)
{
    return decoder->position > decoder->size ? decoder->position - decoder->size : 0;
}
