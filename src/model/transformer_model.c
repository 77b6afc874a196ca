#include "model/transformer_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "coder/frequencies.h"
#include "model/kernels.h"
#include "model/token_mixer.h"
#include "model/transformer_file.h"

/* Segments of at most 1 MiB, an even number of equal ones from 64 KiB of
 * input on (unless the caller asks for whole segments): the token mixer
 * learns a document's own statistics, so a segment should be a whole
 * document where possible (alice29.txt codes 5% smaller as one segment than
 * as three of 64 KiB, 2.6% smaller than as two), but two threads should
 * have equal work (a 9-segment input codes as 10: 5 and 5 rather than 5
 * and 4) and a decoder one stream per core. */
#define TRANSFORMER_SEGMENT_SIZE (UINT64_C(1) << 20)

/* Streams coded together, at most: at least 6, so that each weight loaded
 * serves several tokens (the codec splits segments evenly between threads,
 * so a thread codes between half this and this many), but no more than keep
 * two threads' key/value caches (every step reads a stream's whole cache)
 * within about 24 MiB, in the last-level cache. Measured on a 5M-parameter
 * model with context 512 (2 MiB of cache per stream), tokens/s per core:
 * 2 streams 9.9k, 4 10.3k, 6 9.8k, 8 8.1k, 16 6.5k. The cache has since
 * become bfloat16 (half the bytes); the rule still counts 4 bytes an
 * element, as measured, until someone measures again. */
static size_t batch_size_for(const lf_transformer_config *config)
{
    size_t head_size = config->embedding_size / config->head_count;
    size_t cache_bytes = 2 * (size_t)config->layer_count * config->kv_head_count * head_size *
                         config->context_length * sizeof(float);
    size_t streams = (UINT64_C(12) << 20) / cache_bytes;
    return streams < 6 ? 6 : streams > 64 ? 64 : streams;
}

/* Tokens an encoding stream feeds the model per step, at most. An encoder
 * knows its segment's tokens, so one step can run the next LOOKAHEAD of
 * them (rows of one cache, see lf_transformer_step) and keep the logits
 * for the predictions that follow: the weights and the stream's key/value
 * cache (3.9 MB for the 10M default model, far beyond the level-2 cache)
 * then come from memory once per LOOKAHEAD tokens instead of once per
 * token. A decoder learns each token only from the prediction before it:
 * one row per stream. The logits are those of one token per step, so this
 * never changes a payload. Measured on lcet10.txt, default model, two
 * threads: 2.6k tokens/s with one token per step, 9.3k with 32; 16 was
 * about 6% slower than 32. */
#define LOOKAHEAD 32

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
    /* encoding: logits (LOOKAHEAD, vocab) of the predictions after
     * last_token and the tokens after it; ahead_used of ahead_count used */
    float *ahead;
    size_t ahead_count, ahead_used;
    lf_frequencies model_prediction; /* the transformer's */
    lf_frequencies prediction;       /* what is coded: mixed with the stream's statistics */
    lf_token_mixer *mixer;
};

static const loaded_transformer *loaded_of(const lf_model *model) { return model->state; }

/* What the predictions of one run share: scratch for up to `capacity`
 * streams of LOOKAHEAD rows, and the threads that share the work. */
typedef struct batch_state {
    lf_team *team;
    lf_transformer_workspace *workspace;
    float *logits;                 /* (rows, vocab) */
    uint32_t *tokens, *weights;    /* (rows), (team members, vocab) */
    lf_transformer_cache **caches; /* (rows) */
    size_t *fed, *first_row;       /* (capacity): each stream's rows this step, the first */
    int64_t *statuses;             /* (capacity): each stream's prediction */
    /* the prediction being made (see finish_share) */
    lf_model_stream *const *streams;
    size_t count;
} batch_state;

static void close_batch(void *batch)
{
    batch_state *state = batch;
    lf_transformer_workspace_free(state->workspace);
    lf_team_free(state->team);
    free(state->logits);
    free(state->tokens);
    free(state->weights);
    free(state->caches);
    free(state->fed);
    free(state->first_row);
    free(state->statuses);
    free(state);
}

static int64_t open_batch(const lf_model *model, size_t capacity, unsigned threads, void **batch)
{
    const lf_transformer *transformer = loaded_of(model)->transformer;
    size_t vocabulary = transformer->config.vocab_size;
    batch_state *state = calloc(1, sizeof *state);
    if (!state)
        return -ENOMEM;
    size_t rows = capacity * LOOKAHEAD;
    int64_t status = lf_team_new(threads, &state->team);
    if (status == 0)
        status = lf_transformer_workspace_new(transformer, rows, state->team, &state->workspace);
    unsigned members = status == 0 ? lf_team_members(state->team) : 1;
    state->logits = malloc(rows * vocabulary * sizeof *state->logits);
    state->tokens = malloc(rows * sizeof *state->tokens);
    state->weights = malloc(members * vocabulary * sizeof *state->weights);
    state->caches = malloc(rows * sizeof *state->caches);
    state->fed = malloc(capacity * sizeof *state->fed);
    state->first_row = malloc(capacity * sizeof *state->first_row);
    state->statuses = malloc(capacity * sizeof *state->statuses);
    if (status == 0 && (!state->logits || !state->tokens || !state->weights || !state->caches ||
                        !state->fed || !state->first_row || !state->statuses))
        status = -ENOMEM;
    if (status < 0) {
        close_batch(state);
        return status;
    }
    *batch = state;
    return 0;
}

/* Rows a stream feeds the model this step: none while logits computed
 * ahead are left; when encoding, last_token and the tokens after it, up to
 * the one before the end symbol's prediction; else last_token alone. */
static size_t rows_to_feed(const lf_model_stream *stream)
{
    if (stream->ahead_used < stream->ahead_count)
        return 0;
    if (!stream->tokenized) /* the first prediction, or decoding */
        return 1;
    size_t predictions_left = stream->input.count - stream->next + 1; /* + the end symbol */
    return predictions_left < LOOKAHEAD ? predictions_left : LOOKAHEAD;
}

/* The logits of stream's next prediction, given the step's rows from
 * `logits` on (state->fed[i] of them): the first of them, keeping the rest. */
static float *next_logits(lf_model_stream *stream, float *logits, size_t fed, uint32_t vocabulary)
{
    if (fed > 1) {
        memcpy(stream->ahead, logits, fed * vocabulary * sizeof *logits);
        stream->ahead_count = fed;
        stream->ahead_used = 0;
    }
    if (fed == 1)
        return logits;
    return stream->ahead + stream->ahead_used++ * vocabulary;
}

/* Each stream's table from its logits: the model's distribution, mixed
 * with the stream's own statistics; streams shared by the team (each
 * stream's work is its own, in the same order whoever does it). */
static void finish_share(void *context, unsigned member, unsigned members)
{
    batch_state *state = context;
    const lf_transformer *transformer = state->streams[0]->loaded->transformer;
    uint32_t vocabulary = transformer->config.vocab_size;
    const lf_kernels *kernels = lf_kernels_chosen();
    size_t begin, end;
    lf_team_share(state->count, member, members, &begin, &end);
    for (size_t i = begin; i < end; i++) {
        lf_model_stream *stream = state->streams[i];
        float *logits = next_logits(stream, state->logits + state->first_row[i] * vocabulary,
                                    state->fed[i], vocabulary);
        int64_t status = lf_frequencies_resize(&stream->model_prediction, vocabulary);
        if (status == 0) {
            float sharpness = lf_token_mixer_sharpness(stream->mixer);
            for (uint32_t token = 0; token < vocabulary; token++)
                logits[token] *= sharpness;
            kernels->distribution(&stream->model_prediction, logits,
                                  state->weights + (size_t)member * vocabulary);
            status = lf_token_mixer_predict(stream->mixer, logits, &stream->model_prediction,
                                            &stream->prediction);
        }
        state->statuses[i] = status;
    }
}

static int64_t predict_batch(void *batch, lf_model_stream *const *streams, size_t count)
{
    batch_state *state = batch;
    const lf_transformer *transformer = streams[0]->loaded->transformer;
    uint32_t vocabulary = transformer->config.vocab_size;
    size_t rows = 0;
    for (size_t i = 0; i < count; i++) {
        lf_model_stream *stream = streams[i];
        state->fed[i] = rows_to_feed(stream);
        state->first_row[i] = rows;
        if (state->fed[i] > 1 && !stream->ahead &&
            !(stream->ahead = malloc(LOOKAHEAD * vocabulary * sizeof *stream->ahead)))
            return -ENOMEM;
        for (size_t k = 0; k < state->fed[i]; k++, rows++) {
            state->tokens[rows] = k == 0 ? stream->last_token : stream->input.ids[stream->next + k - 1];
            state->caches[rows] = stream->cache;
        }
    }
    int64_t status = rows ? lf_transformer_step(transformer, state->workspace, state->caches,
                                                state->tokens, rows, state->logits)
                          : 0;
    if (status < 0)
        return status;
    state->streams = streams;
    state->count = count;
    lf_team_run(state->team, finish_share, state);
    for (size_t i = 0; i < count; i++)
        if (state->statuses[i] < 0)
            return state->statuses[i];
    return 0;
}

static void close_stream(lf_model_stream *stream)
{
    lf_transformer_cache_free(stream->cache);
    free(stream->ahead);
    lf_tokenizer_encoder_free(stream->encoder);
    lf_token_array_free(&stream->input);
    lf_frequencies_free(&stream->model_prediction);
    lf_frequencies_free(&stream->prediction);
    lf_token_mixer_free(stream->mixer);
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
    if (status == 0)
        status = lf_token_mixer_new(loaded->transformer->config.vocab_size, &created->mixer);
    lf_token_array history = {0};
    if (status == 0 && prefix_size > 0)
        status = lf_tokenizer_encode(created->encoder, prefix, prefix_size, &history);
    uint32_t vocabulary = loaded->transformer->config.vocab_size;
    lf_transformer_workspace *workspace = NULL;
    float *logits = NULL;
    if (status >= 0 && history.count) {
        status = lf_transformer_workspace_new(loaded->transformer, 1, NULL, &workspace);
        logits = malloc(vocabulary * sizeof *logits);
        if (status >= 0 && !logits)
            status = -ENOMEM;
    }
    for (size_t i = 0; status >= 0 && i < history.count; i++) {
        status = lf_transformer_step(loaded->transformer, workspace, &created->cache,
                                     &created->last_token, 1, logits);
        created->last_token = history.ids[i];
    }
    lf_transformer_workspace_free(workspace);
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
    lf_token_mixer_update(stream->mixer, token);
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
    lf_token_mixer_update(stream->mixer, token);
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
    .open_batch = open_batch,
    .close_batch = close_batch,
    .predict_batch = predict_batch,
    .encode_next = encode_next,
    .decode_next = decode_next,
    .destroy = destroy,
};

/* Completes a model whose state holds an opened file. */
static int64_t finish_open(lf_model *created, lf_diagnostic *diagnostic)
{
    loaded_transformer *loaded = created->state;
    const char *name = created->name;
    int64_t status = lf_transformer_load(loaded->file, &loaded->transformer, diagnostic);
    if (status == 0)
        status = lf_tokenizer_read_gguf(loaded->file, &loaded->tokenizer, diagnostic);
    if (status == 0 && lf_tokenizer_vocab_size(loaded->tokenizer) != loaded->transformer->config.vocab_size)
        status = lf_fail(diagnostic, -LF_EFORMAT, "'%s': the tokenizer has %u tokens, the model %u",
                         name, lf_tokenizer_vocab_size(loaded->tokenizer),
                         loaded->transformer->config.vocab_size);
    if (status == 0 && loaded->transformer->config.vocab_size > LF_TOKEN_MIXER_MAX_VOCAB)
        status = lf_fail(diagnostic, -LF_EFORMAT, "'%s': %u tokens, more than the coder's %u", name,
                         loaded->transformer->config.vocab_size, LF_TOKEN_MIXER_MAX_VOCAB);
    if (status == 0) {
        int64_t end = lf_tokenizer_special_id(loaded->tokenizer, "<|endoftext|>");
        if (end < 0)
            status = lf_fail(diagnostic, -LF_EFORMAT, "'%s': the tokenizer has no <|endoftext|>", name);
        loaded->end_token = (uint32_t)end;
    }
    if (status == 0) {
        uint64_t size;
        const uint8_t *image = lf_gguf_image(loaded->file, &size);
        created->fingerprint = XXH64(image, (size_t)size, 0);
        created->batch_size = batch_size_for(&loaded->transformer->config);
    }
    return status;
}

/* A model from the GGUF file at path, or (path NULL) from image; named
 * after name's last component. */
static int64_t open_model(const char *name, const char *path, const uint8_t *image,
                          uint64_t size, lf_model **model, lf_diagnostic *diagnostic)
{
    lf_model *created = calloc(1, sizeof *created);
    loaded_transformer *loaded = calloc(1, sizeof *loaded);
    if (!created || !loaded) {
        free(created);
        free(loaded);
        return -ENOMEM;
    }
    *created = (lf_model){.class = &transformer_class, .segment_size = TRANSFORMER_SEGMENT_SIZE,
                          .even_segments = true, .step_threads = LF_TRANSFORMER_STEP_THREADS,
                          .state = loaded};
    const char *slash = strrchr(name, '/');
    snprintf(created->name, sizeof created->name, "%s", slash ? slash + 1 : name);
    int64_t status = path ? lf_gguf_open_file(path, &loaded->file, diagnostic)
                          : lf_gguf_parse(image, size, &loaded->file, diagnostic);
    if (status == 0)
        status = finish_open(created, diagnostic);
    if (status < 0) {
        destroy(created);
        return status;
    }
    *model = created;
    return 0;
}

int64_t lf_transformer_model_open(const char *path, lf_model **model, lf_diagnostic *diagnostic)
{
    return open_model(path, path, NULL, 0, model, diagnostic);
}

int64_t lf_transformer_model_open_image(const char *name, const uint8_t *image, uint64_t size,
                                        lf_model **model, lf_diagnostic *diagnostic)
{
    return open_model(name, NULL, image, size, model, diagnostic);
}
