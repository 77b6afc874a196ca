#include "model/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "model/base_model.h"
#include "model/cm_model.h"
#include "model/transformer_model.h"

static const struct builtin_model {
    const char *name;
    unsigned memory_level; /* the adaptive models'; 0 for the transformer */
} builtin_models[] = {
    {"base", 0},
    {"cm", 24},
    {"cm-small", 20},
};

static int64_t open_builtin(const struct builtin_model *builtin, lf_model **model,
                            lf_diagnostic *diagnostic)
{
    if (builtin->memory_level)
        return lf_cm_model_new(builtin->name, builtin->memory_level, model);
    uint64_t size;
    const uint8_t *image = lf_base_model_image(&size);
    int64_t status = lf_transformer_model_open_image(builtin->name, image, size, model, diagnostic);
    if (status == 0)
        (*model)->fallback = "cm";
    return status;
}

int64_t lf_model_open(const char *name, lf_model **model, lf_diagnostic *diagnostic)
{
    size_t length = strlen(name);
    if (strchr(name, '/') || (length > 5 && strcmp(name + length - 5, ".gguf") == 0))
        return lf_transformer_model_open(name, model, diagnostic);
    for (size_t i = 0; i < sizeof builtin_models / sizeof *builtin_models; i++)
        if (strcmp(name, builtin_models[i].name) == 0)
            return open_builtin(&builtin_models[i], model, diagnostic);
    return lf_fail(diagnostic, -ENOENT,
                   "no model '%s': name a GGUF file or a built-in model ('base', 'cm', 'cm-small')",
                   name);
}

int64_t lf_model_open_by_fingerprint(uint64_t fingerprint, lf_model **model)
{
    for (size_t i = 0; i < sizeof builtin_models / sizeof *builtin_models; i++) {
        /* a transformer's fingerprint is its file's hash: checked before
         * the (costly) loading */
        uint64_t size;
        const uint8_t *image = lf_base_model_image(&size);
        if (builtin_models[i].memory_level == 0 && XXH64(image, (size_t)size, 0) != fingerprint)
            continue;
        lf_model *candidate;
        int64_t status = open_builtin(&builtin_models[i], &candidate, NULL);
        if (status < 0)
            return status;
        if (candidate->fingerprint == fingerprint) {
            *model = candidate;
            return 0;
        }
        lf_model_free(candidate);
    }
    return -ENOENT;
}

void lf_model_free(lf_model *model)
{
    if (model)
        model->class->destroy(model);
}

/* Streams still coding, in input order: the batch for the next prediction. */
typedef struct batch {
    lf_model_stream **streams;
    size_t *indexes;
    size_t count;
} batch;

static int64_t open_streams(const lf_model *model, lf_span prefix, size_t count,
                            lf_model_stream **streams)
{
    for (size_t i = 0; i < count; i++) {
        int64_t status = model->class->open_stream(model, prefix.data, prefix.size, &streams[i]);
        if (status < 0) {
            while (i-- > 0)
                model->class->close_stream(streams[i]);
            return status;
        }
    }
    return 0;
}

static int64_t predict(const lf_model *model, void *state, lf_model_stream **all, const bool *done,
                       size_t count, batch *active)
{
    active->count = 0;
    for (size_t i = 0; i < count; i++)
        if (!done[i]) {
            active->streams[active->count] = all[i];
            active->indexes[active->count++] = i;
        }
    if (active->count && model->class->predict_batch)
        return model->class->predict_batch(state, active->streams, active->count);
    return 0;
}

/* Shared by encode and decode: everything but the per-stream step. */
typedef struct coding_run {
    lf_model_stream **streams;
    bool *done;
    batch active;
    void *state; /* the model's open_batch */
} coding_run;

static int64_t coding_run_start(const lf_model *model, lf_span prefix, size_t count,
                                unsigned threads, coding_run *run)
{
    run->streams = calloc(count ? count : 1, sizeof *run->streams);
    run->done = calloc(count ? count : 1, sizeof *run->done);
    run->active.streams = calloc(count ? count : 1, sizeof *run->active.streams);
    run->active.indexes = calloc(count ? count : 1, sizeof *run->active.indexes);
    if (!run->streams || !run->done || !run->active.streams || !run->active.indexes)
        return -ENOMEM;
    int64_t status = model->class->open_batch && count
                         ? model->class->open_batch(model, count, threads ? threads : 1, &run->state)
                         : 0;
    return status < 0 ? status : open_streams(model, prefix, count, run->streams);
}

static void coding_run_end(const lf_model *model, size_t count, coding_run *run, bool opened)
{
    for (size_t i = 0; opened && i < count; i++)
        model->class->close_stream(run->streams[i]);
    if (run->state)
        model->class->close_batch(run->state);
    free(run->streams);
    free(run->done);
    free(run->active.streams);
    free(run->active.indexes);
}

int64_t lf_model_encode(const lf_model *model, lf_span prefix, const lf_span *inputs, size_t count,
                        bool with_end_symbol, unsigned threads, lf_buffer *outputs)
{
    coding_run run = {0};
    int64_t status = coding_run_start(model, prefix, count, threads, &run);
    if (status < 0) {
        coding_run_end(model, count, &run, false);
        return status;
    }
    lf_range_encoder *encoders = calloc(count ? count : 1, sizeof *encoders);
    size_t *positions = calloc(count ? count : 1, sizeof *positions);
    if (!encoders || !positions)
        status = -ENOMEM;
    for (size_t i = 0; status == 0 && i < count; i++)
        lf_range_encoder_init(&encoders[i], &outputs[i]);
    while (status == 0 &&
           (status = predict(model, run.state, run.streams, run.done, count, &run.active)) == 0 &&
           run.active.count > 0) {
        for (size_t k = 0; k < run.active.count && status == 0; k++) {
            size_t i = run.active.indexes[k];
            size_t remaining = inputs[i].size - positions[i];
            if (remaining == 0 && !with_end_symbol) {
                run.done[i] = true;
                continue;
            }
            int64_t covered = model->class->encode_next(run.streams[i], &encoders[i],
                                                        inputs[i].data + positions[i], remaining,
                                                        with_end_symbol);
            if (covered < 0)
                status = covered;
            else if (covered == 0)
                run.done[i] = true; /* the end symbol */
            else
                positions[i] += (size_t)covered;
            if (!with_end_symbol && positions[i] == inputs[i].size)
                run.done[i] = true;
        }
    }
    for (size_t i = 0; status == 0 && i < count; i++)
        status = lf_range_encoder_finish(&encoders[i]);
    free(encoders);
    free(positions);
    coding_run_end(model, count, &run, true);
    return status;
}

int64_t lf_model_decode(const lf_model *model, lf_span prefix, const lf_span *payloads,
                        const uint64_t *sizes, size_t count, unsigned threads, lf_buffer *outputs)
{
    coding_run run = {0};
    int64_t status = coding_run_start(model, prefix, count, threads, &run);
    if (status < 0) {
        coding_run_end(model, count, &run, false);
        return status;
    }
    lf_range_decoder *decoders = calloc(count ? count : 1, sizeof *decoders);
    if (!decoders)
        status = -ENOMEM;
    for (size_t i = 0; status == 0 && i < count; i++) {
        lf_range_decoder_init(&decoders[i], payloads[i].data, payloads[i].size);
        run.done[i] = sizes && sizes[i] == 0;
    }
    size_t *starts = calloc(count ? count : 1, sizeof *starts);
    if (!starts)
        status = -ENOMEM;
    for (size_t i = 0; status == 0 && i < count; i++)
        starts[i] = outputs[i].length;
    while (status == 0 &&
           (status = predict(model, run.state, run.streams, run.done, count, &run.active)) == 0 &&
           run.active.count > 0) {
        for (size_t k = 0; k < run.active.count && status == 0; k++) {
            size_t i = run.active.indexes[k];
            int64_t produced = model->class->decode_next(run.streams[i], &decoders[i], &outputs[i],
                                                         sizes == NULL);
            uint64_t length = outputs[i].length - starts[i];
            /* Past its end a payload reads as zeros, and a valid one only
             * ever reads the few zero bytes the encoder dropped: running far
             * beyond means it was cut or is garbage. */
            if (produced < 0)
                status = produced;
            else if (lf_range_decoder_overrun(&decoders[i]) > 4096 || (sizes && length > sizes[i]))
                status = -LF_EFORMAT;
            else if (produced == 0 || (sizes && length == sizes[i]))
                run.done[i] = true;
        }
    }
    free(starts);
    free(decoders);
    coding_run_end(model, count, &run, true);
    return status;
}
