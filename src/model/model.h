/* The one model interface (DESIGN.md §1): given N independent histories,
 * give N predictions. The codec, the image and the engine call only this;
 * whether a transformer or the adaptive context-mixing model predicts is
 * the model's business.
 *
 * A stream is one independently coded sequence (a segment of a file): its
 * predictions depend on its own history only, never on which other streams
 * share its batch, so any batching decodes what any other batching encoded.
 * Each step codes one unit of the model's choosing (a byte, a token) straight
 * into the range coder. */
#ifndef LLMFUSE_MODEL_MODEL_H
#define LLMFUSE_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coder/range_coder.h"
#include "common/buffer.h"
#include "common/error.h"

typedef struct lf_model lf_model;
typedef struct lf_model_stream lf_model_stream;

typedef struct lf_model_class {
    /* A new stream that has already seen `prefix` (for example a file's path:
     * the model reads it first, but it is not coded). */
    int64_t (*open_stream)(const lf_model *model, const uint8_t *prefix, size_t prefix_size,
                           lf_model_stream **stream);
    void (*close_stream)(lf_model_stream *stream);
    /* State shared by the predictions of one run of up to `capacity` streams
     * (scratch memory, reused for every step, and for a model with
     * step_threads the `threads` that share each prediction's work); NULL
     * for models that need none. */
    int64_t (*open_batch)(const lf_model *model, size_t capacity, unsigned threads, void **batch);
    void (*close_batch)(void *batch);
    /* Computes the next prediction of every stream in one batch (`batch` from
     * open_batch, count <= its capacity); NULL for models that predict inside
     * encode_next/decode_next. */
    int64_t (*predict_batch)(void *batch, lf_model_stream *const *streams, size_t count);
    /* Codes the next unit of data (size > 0) and returns the bytes it covers;
     * with size == 0 codes the end symbol and returns 0. */
    int64_t (*encode_next)(lf_model_stream *stream, lf_range_encoder *encoder,
                           const uint8_t *data, size_t size, bool with_end_symbol);
    /* Decodes the next unit into out and returns its byte count, or 0 for the
     * end symbol (only when with_end_symbol). */
    int64_t (*decode_next)(lf_model_stream *stream, lf_range_decoder *decoder, lf_buffer *out,
                           bool with_end_symbol);
    void (*destroy)(lf_model *model);
} lf_model_class;

struct lf_model {
    const lf_model_class *class;
    char name[64];            /* for messages: "cm", a file name */
    uint64_t fingerprint;     /* XXH64 of the model file, or of a built-in model's description */
    uint64_t segment_size;    /* bytes per independently coded segment, at most */
    /* Split inputs into an even number of equal segments (when more than
     * one; inputs over segment_size / 16 always in two at least, unless
     * lf_llmz_options.whole_segments),
     * so that two threads finish together, instead of full segments and a
     * remainder: for models that restart cheaply (transformers; the
     * adaptive models pay for every restart). */
    bool even_segments;
    size_t batch_size;        /* streams worth predicting together */
    /* How many threads can share each prediction (open_batch's threads; 1:
     * none): a coder with more threads than batches gives them the spare
     * ones, up to this. A transformer decoding one stream reads every weight
     * for each token, and two threads on one step read half each. */
    unsigned step_threads;
    /* A built-in model the codec also tries on a whole input, keeping the
     * smaller archive (NULL: none): the shipped transformer, trained on
     * technical text, loses to the adaptive model on some literature. */
    const char *fallback;
    void *state;
};

/* The model llmencode and mkfs use when none is named. */
#define LF_MODEL_DEFAULT "base"

/* A GGUF transformer file (a name with a '/' or ending in .gguf) or a
 * built-in model ("base": models/base.gguf with "cm" as fallback; "cm",
 * "cm-small"). -ENOENT with a diagnostic listing the
 * built-in models for any other name. */
int64_t lf_model_open(const char *name, lf_model **model, lf_diagnostic *diagnostic);
/* The built-in model with this fingerprint, if any (for archives that say
 * which model made them). */
int64_t lf_model_open_by_fingerprint(uint64_t fingerprint, lf_model **model);
void lf_model_free(lf_model *model);

typedef struct lf_span {
    const uint8_t *data;
    size_t size;
} lf_span;

/* Codes count independent inputs as one batch: outputs[i] receives the
 * range-coded payload of inputs[i], with an end symbol when asked. Every
 * stream first reads `prefix` ({NULL, 0}: none), the same for all: the
 * inputs are segments of one file, and the prefix says what the file is
 * (its path). The prefix is not coded; decoding needs the same one.
 * `threads` share each prediction where the model has step_threads (1:
 * the caller alone); they never change the bytes. */
int64_t lf_model_encode(const lf_model *model, lf_span prefix, const lf_span *inputs, size_t count,
                        bool with_end_symbol, unsigned threads, lf_buffer *outputs);
/* The inverse: sizes[i] bytes of each, or up to the end symbol when sizes is
 * NULL. -LF_EFORMAT when a payload decodes past its size or its end. With
 * a prefix other than the encoder's the model predicts differently, so the
 * bytes come out wrong (or, for a transformer, often -LF_EFORMAT). */
int64_t lf_model_decode(const lf_model *model, lf_span prefix, const lf_span *payloads,
                        const uint64_t *sizes, size_t count, unsigned threads, lf_buffer *outputs);

#endif
