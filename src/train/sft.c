#include "train/sft.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/buffer.h"
#include "common/bytes.h"
#include "common/file.h"
#include "common/random.h"
#include "engine/generate.h"

int64_t lf_train_sft_encode(lf_tokenizer_encoder *encoder, const uint8_t *prompt,
                            size_t prompt_size, const uint8_t *completion, size_t completion_size,
                            lf_token_array *out, size_t *completion_start)
{
    size_t first = out->count;
    const uint32_t end = LF_TOKEN_ENDOFTEXT;
    /* the engine encodes its prompts with the same function: what it feeds
     * is what the model was trained to continue */
    int64_t status = lf_generate_encode_prompt(encoder, prompt, prompt_size, out);
    *completion_start = out->count - first;
    if (status >= 0)
        status = lf_tokenizer_encode(encoder, completion, completion_size, out);
    if (status >= 0)
        status = lf_token_array_append(out, &end, 1);
    if (status < 0) {
        out->count = first;
        return status;
    }
    return (int64_t)(out->count - first);
}

void lf_train_sft_free(lf_train_sft_set *set)
{
    lf_token_array_free(&set->tokens);
    free(set->starts);
    free(set->completion_starts);
    *set = (lf_train_sft_set){0};
}

/* Adds room for one more example's bookkeeping. */
static int64_t grow(lf_train_sft_set *set, size_t *capacity)
{
    if (set->count < *capacity)
        return 0;
    size_t wanted = *capacity ? *capacity * 2 : 1024;
    size_t *starts = realloc(set->starts, (wanted + 1) * sizeof *starts);
    if (starts)
        set->starts = starts;
    size_t *completion_starts = realloc(set->completion_starts, wanted * sizeof *completion_starts);
    if (completion_starts)
        set->completion_starts = completion_starts;
    if (!starts || !completion_starts)
        return -ENOMEM;
    *capacity = wanted;
    return 0;
}

/* The bytes of a string member, or NULL when absent or not a string. */
static const char *string_member(json_t *object, const char *key, size_t *length)
{
    json_t *value = json_object_get(object, key);
    if (!json_is_string(value))
        return NULL;
    *length = json_string_length(value);
    return json_string_value(value);
}

/* Tokenizes one JSON line into the set (or counts it as skipped). */
static int64_t add_line(lf_train_sft_set *set, lf_tokenizer_encoder *encoder, const char *line,
                        size_t length, uint32_t max_length, const char *path, size_t line_number,
                        lf_diagnostic *diagnostic)
{
    json_error_t error;
    json_t *object = json_loadb(line, length, JSON_ALLOW_NUL, &error);
    if (!object)
        return lf_fail(diagnostic, -LF_EFORMAT, "%s:%zu: %s", path, line_number, error.text);
    size_t prompt_size = 0, completion_size = 0, encoding_size = 0;
    const char *prompt = string_member(object, "prompt", &prompt_size);
    const char *completion = string_member(object, "completion", &completion_size);
    const char *encoding = string_member(object, "completion_encoding", &encoding_size);
    lf_buffer decoded = {0};
    int64_t status = 0;
    if (!prompt || !completion)
        status = lf_fail(diagnostic, -LF_EFORMAT, "%s:%zu: needs string members \"prompt\" and "
                         "\"completion\"", path, line_number);
    else if (json_object_get(object, "completion_encoding") &&
             !(encoding && strcmp(encoding, "base64") == 0))
        status = lf_fail(diagnostic, -LF_EFORMAT, "%s:%zu: unknown \"completion_encoding\"", path,
                         line_number);
    else if (encoding) {
        status = lf_base64_decode(completion, completion_size, &decoded);
        if (status == -LF_EFORMAT)
            status = lf_fail(diagnostic, status, "%s:%zu: the completion is not base64", path,
                             line_number);
        completion = (const char *)decoded.data;
        completion_size = decoded.length;
    }
    size_t completion_start = 0;
    if (status >= 0)
        status = lf_train_sft_encode(encoder, (const uint8_t *)prompt, prompt_size,
                                     (const uint8_t *)completion, completion_size, &set->tokens,
                                     &completion_start);
    json_decref(object);
    lf_buffer_free(&decoded);
    if (status < 0)
        return status;
    if ((uint64_t)status - 1 > max_length) { /* an example of n tokens has n - 1 inputs */
        set->tokens.count -= (size_t)status;
        set->skipped++;
        return 0;
    }
    set->completion_starts[set->count] = completion_start;
    set->starts[++set->count] = set->tokens.count;
    return 0;
}

int64_t lf_train_sft_load(const char *path, const lf_tokenizer *tokenizer, uint32_t max_length,
                          lf_train_sft_set *set, lf_diagnostic *diagnostic)
{
    *set = (lf_train_sft_set){0};
    lf_buffer text = {0};
    lf_tokenizer_encoder *encoder = NULL;
    size_t capacity = 0;
    int64_t status = lf_file_read_all(path, &text, diagnostic);
    if (status == 0)
        status = lf_tokenizer_encoder_create(tokenizer, &encoder);
    if (status == 0)
        status = grow(set, &capacity);
    if (status == 0)
        set->starts[0] = 0;
    size_t line_number = 0;
    for (size_t at = 0; status == 0 && at < text.length;) {
        const char *line = (const char *)text.data + at;
        const char *newline = memchr(line, '\n', text.length - at);
        size_t length = newline ? (size_t)(newline - line) : text.length - at;
        at += length + 1;
        line_number++;
        if (length == 0)
            continue;
        status = grow(set, &capacity);
        if (status == 0)
            status = add_line(set, encoder, line, length, max_length, path, line_number,
                              diagnostic);
    }
    lf_tokenizer_encoder_free(encoder);
    lf_buffer_free(&text);
    if (status < 0) {
        lf_train_sft_free(set);
        return status;
    }
    return 0;
}

int64_t lf_train_sft_save(const lf_train_sft_set *set, const char *path, lf_diagnostic *diagnostic)
{
    lf_buffer out = {0};
    int64_t status = lf_buffer_reserve(&out, 8 + 8 * set->count + 4 * set->tokens.count) < 0
                         ? -ENOMEM
                         : lf_buffer_append(&out, LF_TRAIN_SFT_MAGIC, 8);
    for (size_t i = 0; status == 0 && i < set->count; i++) {
        size_t first = set->starts[i], count = set->starts[i + 1] - first;
        if (lf_bytes_put_u32(&out, (uint32_t)count) < 0 ||
            lf_bytes_put_u32(&out, (uint32_t)set->completion_starts[i]) < 0)
            status = -ENOMEM;
        for (size_t k = 0; status == 0 && k < count; k++)
            if (lf_bytes_put_u32(&out, set->tokens.ids[first + k]) < 0)
                status = -ENOMEM;
    }
    if (status == 0)
        status = lf_file_write_atomic(path, out.data, out.length, diagnostic);
    lf_buffer_free(&out);
    return status;
}

static size_t inputs_of(const lf_train_sft_set *set, size_t example)
{
    return set->starts[example + 1] - set->starts[example] - 1;
}

void lf_train_sft_fill_batch(const lf_train_sft_set *set, const size_t *examples, uint32_t rows,
                             lf_train_batch *batch)
{
    size_t length = 0;
    for (uint32_t row = 0; row < rows; row++) {
        size_t inputs = inputs_of(set, examples[row]);
        if (inputs > length)
            length = inputs;
    }
    batch->rows = rows;
    batch->length = (uint32_t)length;
    for (uint32_t row = 0; row < rows; row++) {
        const uint32_t *example = set->tokens.ids + set->starts[examples[row]];
        size_t inputs = inputs_of(set, examples[row]);
        size_t completion_start = set->completion_starts[examples[row]];
        uint32_t *row_inputs = batch->inputs + row * length;
        int32_t *row_targets = batch->targets + row * length;
        for (size_t t = 0; t < length; t++) {
            bool real = t < inputs;
            row_inputs[t] = real ? example[t] : LF_TOKEN_PAD;
            /* position t predicts token t + 1 */
            row_targets[t] = real && t + 1 >= completion_start ? (int32_t)example[t + 1]
                                                               : LF_TRAIN_NO_TARGET;
        }
    }
}

/* Sorts examples (count) by input count, ties by index: a total order, so
 * the result is the same whatever the sort; insertion, since a group is a
 * few thousand examples at most and sorted once an epoch. */
static void sort_by_length(const lf_train_sft_set *set, size_t *examples, size_t count)
{
    for (size_t i = 1; i < count; i++) {
        size_t moving = examples[i], length = inputs_of(set, moving), j = i;
        for (; j > 0; j--) {
            size_t before = examples[j - 1], before_length = inputs_of(set, before);
            if (before_length < length || (before_length == length && before < moving))
                break;
            examples[j] = before;
        }
        examples[j] = moving;
    }
}

/* Swaps runs a and b of `rows` entries. */
static void swap_runs(size_t *a, size_t *b, size_t rows)
{
    for (size_t i = 0; i < rows; i++) {
        size_t swapped = a[i];
        a[i] = b[i];
        b[i] = swapped;
    }
}

void lf_train_sft_epoch_order(const lf_train_sft_set *set, uint64_t seed, uint64_t epoch,
                              uint32_t batch_rows, uint32_t group_batches, size_t *order)
{
    lf_random random;
    lf_random_seed(&random, seed ^ (epoch * UINT64_C(0x9E3779B97F4A7C15)));
    size_t count = set->count;
    for (size_t i = 0; i < count; i++)
        order[i] = i;
    for (size_t i = count; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)lf_random_below(&random, i);
        size_t swapped = order[i - 1];
        order[i - 1] = order[j];
        order[j] = swapped;
    }
    if (group_batches == 0 || batch_rows == 0)
        return;
    size_t group = (size_t)group_batches * batch_rows;
    for (size_t first = 0; first < count; first += group) {
        size_t members = count - first < group ? count - first : group;
        sort_by_length(set, order + first, members);
        /* Fisher-Yates over the group's whole batches; a last partial batch stays last */
        for (size_t i = members / batch_rows; i > 1; i--) {
            size_t j = (size_t)lf_random_below(&random, i);
            swap_runs(order + first + (i - 1) * batch_rows, order + first + j * batch_rows,
                      batch_rows);
        }
    }
}
