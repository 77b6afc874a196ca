#include "model/transformer_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "coder/frequencies.h"
#include "model/exact_math.h"
#include "model/transformer_file.h"

/* Segments of 64 KiB decode 64 at a time: a batch wide enough to keep the
 * int8 kernels busy, segments long enough that restarting the context at
 * each costs little. */
#define TRANSFORMER_SEGMENT_SIZE (UINT64_C(64) << 10)
enum { TRANSFORMER_BATCH = 64 };

typedef struct loaded_transformer {
    lf_gguf *file;
    lf_transformer *transformer;
    lf_tokenizer *tokenizer;
    uint32_t end_token; /* <|endoftext|>: the history's start and a raw stream's end */
} loaded_transformer;

struct lf_model_stream {
    const loaded_transformer *loaded;
    lf_transformer_cache *cache;
    lf_tokenizer_encoder *encoder;
    lf_token_array input; /* encoding: the segment's tokens */
    size_t next;          /* encoding: the next of them to code */
    bool tokenized;
    uint32_t last_token;  /* fed to the model at the next prediction */
    lf_frequencies prediction;
};

static const loaded_transformer *loaded_of(const lf_model *model) { return model->state; }

/* logits -> integer weights e^(l - max) in units of 2^-24, with exact exp. */
static int64_t set_prediction(lf_model_stream *stream, const float *logits, uint32_t *weights)
{
    uint32_t vocabulary = stream->loaded->transformer->config.vocab_size;
    float largest = logits[0];
    for (uint32_t i = 1; i < vocabulary; i++)
        if (logits[i] > largest)
            largest = logits[i];
    for (uint32_t i = 0; i < vocabulary; i++)
        weights[i] = (uint32_t)(lf_exact_expf(logits[i] - largest) * 16777216.0f);
    return lf_frequencies_set(&stream->prediction, weights, vocabulary);
}

static int64_t predict_batch(lf_model_stream *const *streams, size_t count)
{
    const lf_transformer *transformer = streams[0]->loaded->transformer;
    uint32_t vocabulary = transformer->config.vocab_size;
    float *logits = malloc(count * vocabulary * sizeof *logits);
    uint32_t *weights = malloc(vocabulary * sizeof *weights);
    uint32_t *tokens = calloc(count, sizeof *tokens);
    lf_transformer_cache **caches = calloc(count, sizeof *caches);
    int64_t status = logits && weights && tokens && caches ? 0 : -ENOMEM;
    for (size_t i = 0; status == 0 && i < count; i++) {
        tokens[i] = streams[i]->last_token;
        caches[i] = streams[i]->cache;
    }
    if (status == 0)
        status = lf_transformer_step(transformer, caches, tokens, count, logits);
    for (size_t i = 0; status == 0 && i < count; i++)
        status = set_prediction(streams[i], logits + i * vocabulary, weights);
    free(logits);
    free(weights);
    free(tokens);
    free(caches);
    return status;
}

static void close_stream(lf_model_stream *stream)
{
    lf_transformer_cache_free(stream->cache);
    lf_tokenizer_encoder_free(stream->encoder);
    lf_token_array_free(&stream->input);
    lf_frequencies_free(&stream->prediction);
    free(stream);
}

/* History starts with the end-of-text token, then the prefix; all but the
 * last token are fed now, the last at the first prediction. */
static int64_t open_stream(const lf_model *model, const uint8_t *prefix, size_t prefix_size,
                           lf_model_stream **stream)
{
    const loaded_transformer *loaded = loaded_of(model);
    lf_model_stream *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    created->loaded = loaded;
    created->last_token = loaded->end_token;
    int64_t status = lf_transformer_cache_new(loaded->transformer, &created->cache);
    if (status == 0)
        status = lf_tokenizer_encoder_create(loaded->tokenizer, &created->encoder);
    lf_token_array history = {0};
    if (status == 0 && prefix_size > 0)
        status = lf_tokenizer_encode(created->encoder, prefix, prefix_size, &history);
    uint32_t vocabulary = loaded->transformer->config.vocab_size;
    float *logits = history.count ? malloc(vocabulary * sizeof *logits) : NULL;
    if (status >= 0 && history.count && !logits)
        status = -ENOMEM;
    for (size_t i = 0; status >= 0 && i < history.count; i++) {
        status = lf_transformer_step(loaded->transformer, &created->cache, &created->last_token, 1, logits);
        created->last_token = history.ids[i];
    }
    free(logits);
    lf_token_array_free(&history);
    if (status < 0) {
        close_stream(created);
        return status;
    }
    *stream = created;
    return 0;
}

static int64_t encode_next(lf_model_stream *stream, lf_range_encoder *encoder, const uint8_t *data,
                           size_t size, bool with_end_symbol)
{
    if (!stream->tokenized) { /* the first call sees the whole segment */
        int64_t status = lf_tokenizer_encode(stream->encoder, data, size, &stream->input);
        if (status < 0)
            return status;
        stream->tokenized = true;
    }
    if (size == 0 || stream->next == stream->input.count) {
        if (!with_end_symbol)
            return -EINVAL;
        lf_frequencies_encode(encoder, &stream->prediction, stream->loaded->end_token);
        return 0;
    }
    uint32_t token = stream->input.ids[stream->next++];
    lf_frequencies_encode(encoder, &stream->prediction, token);
    stream->last_token = token;
    size_t length;
    lf_tokenizer_token_bytes(stream->loaded->tokenizer, token, &length);
    return (int64_t)length;
}

static int64_t decode_next(lf_model_stream *stream, lf_range_decoder *decoder, lf_buffer *out,
                           bool with_end_symbol)
{
    uint32_t token = lf_frequencies_decode(decoder, &stream->prediction);
    if (token == stream->loaded->end_token && with_end_symbol)
        return 0;
    if (token >= LF_TOKEN_ENDOFTEXT && token < LF_TOKEN_FIRST_MERGE)
        return -LF_EFORMAT; /* the encoder never codes special tokens as data */
    size_t length;
    const uint8_t *bytes = lf_tokenizer_token_bytes(stream->loaded->tokenizer, token, &length);
    int64_t status = lf_buffer_append(out, bytes, length);
    stream->last_token = token;
    return status < 0 ? status : (int64_t)length;
}

static void destroy(lf_model *model)
{
    loaded_transformer *loaded = model->state;
    if (loaded) {
        lf_transformer_free(loaded->transformer);
        lf_tokenizer_free(loaded->tokenizer);
        lf_gguf_close(loaded->file);
        free(loaded);
    }
    free(model);
}

static const lf_model_class transformer_class = {
    .open_stream = open_stream,
    .close_stream = close_stream,
    .predict_batch = predict_batch,
    .encode_next = encode_next,
    .decode_next = decode_next,
    .destroy = destroy,
};

int64_t lf_transformer_model_open(const char *path, lf_model **model, lf_diagnostic *diagnostic)
{
    lf_model *created = calloc(1, sizeof *created);
    loaded_transformer *loaded = calloc(1, sizeof *loaded);
    if (!created || !loaded) {
        free(created);
        free(loaded);
        return -ENOMEM;
    }
    *created = (lf_model){.class = &transformer_class, .segment_size = TRANSFORMER_SEGMENT_SIZE,
                          .batch_size = TRANSFORMER_BATCH, .state = loaded};
    const char *slash = strrchr(path, '/');
    snprintf(created->name, sizeof created->name, "%s", slash ? slash + 1 : path);
    int64_t status = lf_gguf_open_file(path, &loaded->file, diagnostic);
    if (status == 0)
        status = lf_transformer_load(loaded->file, &loaded->transformer, diagnostic);
    if (status == 0)
        status = lf_tokenizer_read_gguf(loaded->file, &loaded->tokenizer, diagnostic);
    if (status == 0 && lf_tokenizer_vocab_size(loaded->tokenizer) != loaded->transformer->config.vocab_size)
        status = lf_fail(diagnostic, -LF_EFORMAT, "'%s': the tokenizer has %u tokens, the model %u",
                         path, lf_tokenizer_vocab_size(loaded->tokenizer),
                         loaded->transformer->config.vocab_size);
    if (status == 0) {
        int64_t end = lf_tokenizer_special_id(loaded->tokenizer, "<|endoftext|>");
        if (end < 0)
            status = lf_fail(diagnostic, -LF_EFORMAT, "'%s': the tokenizer has no <|endoftext|>", path);
        loaded->end_token = (uint32_t)end;
    }
    if (status == 0) {
        uint64_t size;
        const uint8_t *image = lf_gguf_image(loaded->file, &size);
        created->fingerprint = XXH64(image, (size_t)size, 0);
    }
    if (status < 0) {
        destroy(created);
        return status;
    }
    *model = created;
    return 0;
}
