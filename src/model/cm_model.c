#include "model/cm_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "model/cm.h"

/* Raw streams mark their end with a flag before every byte. At a fixed
 * P(end) = 2^-16 the flags cost 0.00002 bits per byte, and the end itself 2
 * bytes: cheaper than any adaptive scheme for inputs above a few bytes. */
enum { END_PROBABILITY = 1 };

/* Segments of 16 MiB: large enough that restarting the adaptive model costs
 * little, small enough that big inputs spread over both cores. */
#define CM_SEGMENT_SIZE (UINT64_C(16) << 20)

struct lf_model_stream {
    lf_cm *cm;
};

static void learn_byte(lf_cm *cm, uint8_t byte)
{
    for (int bit = 7; bit >= 0; bit--) {
        lf_cm_predict(cm);
        lf_cm_update(cm, (byte >> bit) & 1);
    }
}

static int64_t open_stream(const lf_model *model, const uint8_t *prefix, size_t prefix_size,
                           lf_model_stream **stream)
{
    lf_model_stream *created = malloc(sizeof *created);
    if (!created)
        return -ENOMEM;
    created->cm = lf_cm_new(*(const unsigned *)model->state);
    if (!created->cm) {
        free(created);
        return -ENOMEM;
    }
    for (size_t i = 0; i < prefix_size; i++)
        learn_byte(created->cm, prefix[i]);
    *stream = created;
    return 0;
}

static void close_stream(lf_model_stream *stream)
{
    lf_cm_free(stream->cm);
    free(stream);
}

static int64_t encode_next(lf_model_stream *stream, lf_range_encoder *encoder, const uint8_t *data,
                           size_t size, bool with_end_symbol)
{
    if (with_end_symbol)
        lf_range_encode_bit(encoder, END_PROBABILITY, size == 0);
    if (size == 0)
        return 0;
    for (int bit = 7; bit >= 0; bit--) {
        int value = (data[0] >> bit) & 1;
        lf_range_encode_bit(encoder, lf_cm_predict(stream->cm), value);
        lf_cm_update(stream->cm, value);
    }
    return 1;
}

static int64_t decode_next(lf_model_stream *stream, lf_range_decoder *decoder, lf_buffer *out,
                           bool with_end_symbol)
{
    if (with_end_symbol && lf_range_decode_bit(decoder, END_PROBABILITY))
        return 0;
    unsigned byte = 0;
    for (int bit = 0; bit < 8; bit++) {
        int value = lf_range_decode_bit(decoder, lf_cm_predict(stream->cm));
        lf_cm_update(stream->cm, value);
        byte = (byte << 1) | (unsigned)value;
    }
    uint8_t decoded = (uint8_t)byte;
    int64_t status = lf_buffer_append(out, &decoded, 1);
    return status < 0 ? status : 1;
}

static void destroy(lf_model *model)
{
    free(model->state);
    free(model);
}

static const lf_model_class cm_class = {
    .open_stream = open_stream,
    .close_stream = close_stream,
    .predict_batch = NULL,
    .encode_next = encode_next,
    .decode_next = decode_next,
    .destroy = destroy,
};

int64_t lf_cm_model_new(const char *name, unsigned memory_level, lf_model **model)
{
    lf_model *created = calloc(1, sizeof *created);
    unsigned *level = malloc(sizeof *level);
    if (!created || !level) {
        free(created);
        free(level);
        return -ENOMEM;
    }
    *level = memory_level;
    char description[96];
    int length = snprintf(description, sizeof description,
                          "llmfuse adaptive context-mixing model 1, memory level %u", memory_level);
    *created = (lf_model){
        .class = &cm_class,
        .fingerprint = XXH64(description, (size_t)length, 0),
        .segment_size = CM_SEGMENT_SIZE,
        .batch_size = 1,
        .state = level,
    };
    snprintf(created->name, sizeof created->name, "%s", name);
    *model = created;
    return 0;
}
