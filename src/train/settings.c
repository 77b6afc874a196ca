#include "train/settings.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A JSON member and the struct field it stands for. */
typedef enum field_type { FIELD_U32, FIELD_U64, FIELD_F32, FIELD_F64, FIELD_STRING } field_type;

typedef struct field {
    const char *key;
    size_t offset;
    field_type type;
    bool optional; /* added after runs were saved without it: absent reads 0 */
} field;

static const field model_fields[] = {
    {"context_length", offsetof(lf_transformer_config, context_length), FIELD_U32, false},
    {"embedding_length", offsetof(lf_transformer_config, embedding_size), FIELD_U32, false},
    {"block_count", offsetof(lf_transformer_config, layer_count), FIELD_U32, false},
    {"head_count", offsetof(lf_transformer_config, head_count), FIELD_U32, false},
    {"head_count_kv", offsetof(lf_transformer_config, kv_head_count), FIELD_U32, false},
    {"feed_forward_length", offsetof(lf_transformer_config, feed_forward_size), FIELD_U32, false},
    {"rope_freq_base", offsetof(lf_transformer_config, rope_base), FIELD_F32, false},
    {"rms_epsilon", offsetof(lf_transformer_config, norm_epsilon), FIELD_F32, false},
};

#define SETTING(name, type) {#name, offsetof(lf_train_settings, name), type, false}
static const field settings_fields[] = {
    SETTING(data, FIELD_STRING),
    SETTING(eval_data, FIELD_STRING),
    SETTING(sft, FIELD_STRING),
    SETTING(sft_eval, FIELD_STRING),
    SETTING(tokenizer, FIELD_STRING),
    SETTING(init, FIELD_STRING),
    SETTING(output, FIELD_STRING),
    SETTING(steps, FIELD_U64),
    SETTING(warmup_steps, FIELD_U64),
    SETTING(seed, FIELD_U64),
    SETTING(batch_rows, FIELD_U32),
    SETTING(sequence_length, FIELD_U32),
    SETTING(learning_rate, FIELD_F64),
    SETTING(eval_every, FIELD_U64),
    SETTING(eval_tokens, FIELD_U64),
    SETTING(checkpoint_every, FIELD_U64),
    SETTING(output_every, FIELD_U64),
    SETTING(data_tokens, FIELD_U64),
    SETTING(eval_data_tokens, FIELD_U64),
    SETTING(sft_examples, FIELD_U64),
    SETTING(sft_eval_examples, FIELD_U64),
    {"sft_group_batches", offsetof(lf_train_settings, sft_group_batches), FIELD_U32, true},
};
#undef SETTING

#define COUNT(array) (sizeof(array) / sizeof *(array))

lf_train_settings lf_train_settings_defaults(void)
{
    return (lf_train_settings){
        .steps = 1000,
        .warmup_steps = 50,
        .seed = 1,
        .batch_rows = 16,
        .learning_rate = 1e-3,
        .eval_every = 500,
        .eval_tokens = 65536,
        .checkpoint_every = 500,
        .sft_group_batches = 64,
    };
}

int64_t lf_train_settings_set_string(char **setting, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return -ENOMEM;
    free(*setting);
    *setting = copy;
    return 0;
}

int64_t lf_train_settings_copy(lf_train_settings *copy, const lf_train_settings *settings)
{
    *copy = *settings;
    int64_t status = 0;
    for (size_t f = 0; f < COUNT(settings_fields); f++)
        if (settings_fields[f].type == FIELD_STRING) {
            char **string = (char **)((char *)copy + settings_fields[f].offset);
            const char *original = *string;
            *string = NULL;
            if (lf_train_settings_set_string(string, original) < 0)
                status = -ENOMEM;
        }
    if (status < 0)
        lf_train_settings_free(copy);
    return status;
}

void lf_train_settings_free(lf_train_settings *settings)
{
    for (size_t f = 0; f < COUNT(settings_fields); f++)
        if (settings_fields[f].type == FIELD_STRING) {
            char **string = (char **)((char *)settings + settings_fields[f].offset);
            free(*string);
            *string = NULL;
        }
}

static json_t *field_to_json(const field *described, const void *record)
{
    const void *value = (const char *)record + described->offset;
    switch (described->type) {
    case FIELD_U32: return json_integer(*(const uint32_t *)value);
    case FIELD_U64: return json_integer((json_int_t) * (const uint64_t *)value);
    case FIELD_F32: return json_real(*(const float *)value);
    case FIELD_F64: return json_real(*(const double *)value);
    case FIELD_STRING: {
        const char *string = *(char *const *)value;
        return string ? json_string(string) : json_null();
    }
    }
    return NULL;
}

/* Sets one field from a JSON value; false when the value has the wrong
 * kind or range (strings: a duplicate is stored, NULL for null). */
static bool field_from_json(const field *described, void *record, json_t *value, bool *no_memory)
{
    void *target = (char *)record + described->offset;
    switch (described->type) {
    case FIELD_U32:
        if (!json_is_integer(value) || json_integer_value(value) < 0 ||
            json_integer_value(value) > UINT32_MAX)
            return false;
        *(uint32_t *)target = (uint32_t)json_integer_value(value);
        return true;
    case FIELD_U64:
        if (!json_is_integer(value) || json_integer_value(value) < 0)
            return false;
        *(uint64_t *)target = (uint64_t)json_integer_value(value);
        return true;
    case FIELD_F32:
        if (!json_is_number(value))
            return false;
        *(float *)target = (float)json_number_value(value);
        return true;
    case FIELD_F64:
        if (!json_is_number(value))
            return false;
        *(double *)target = json_number_value(value);
        return true;
    case FIELD_STRING:
        if (!json_is_string(value) && !json_is_null(value))
            return false;
        *no_memory = lf_train_settings_set_string((char **)target, json_string_value(value)) < 0;
        return true;
    }
    return false;
}

/* Reads the members of object into record; every key must be one of fields,
 * and with `complete` every field must be there. */
static int64_t read_fields(json_t *object, const field *fields, size_t count, void *record,
                           bool complete, const char *where, lf_diagnostic *diagnostic)
{
    if (!json_is_object(object))
        return lf_fail(diagnostic, -LF_EFORMAT, "%s: not a JSON object", where);
    const char *key;
    json_t *value;
    json_object_foreach(object, key, value) {
        size_t f = 0;
        while (f < count && strcmp(fields[f].key, key) != 0)
            f++;
        bool no_memory = false;
        if (f == count || !field_from_json(&fields[f], record, value, &no_memory))
            return lf_fail(diagnostic, -LF_EFORMAT, "%s: bad or unknown setting \"%s\"", where,
                           key);
        if (no_memory)
            return -ENOMEM;
    }
    for (size_t f = 0; complete && f < count; f++)
        if (!fields[f].optional && !json_object_get(object, fields[f].key))
            return lf_fail(diagnostic, -LF_EFORMAT, "%s: setting \"%s\" is missing", where,
                           fields[f].key);
    return 0;
}

static int64_t write_fields(json_t *object, const field *fields, size_t count, const void *record)
{
    for (size_t f = 0; f < count; f++)
        if (json_object_set_new(object, fields[f].key, field_to_json(&fields[f], record)) != 0)
            return -ENOMEM;
    return 0;
}

int64_t lf_train_settings_to_json(const lf_train_settings *settings, lf_buffer *out)
{
    json_t *root = json_object(), *model = json_object();
    int64_t status = root && model ? 0 : -ENOMEM;
    if (status == 0)
        status = write_fields(model, model_fields, COUNT(model_fields), &settings->model);
    if (status == 0)
        status = json_object_set(root, "model", model) == 0 ? 0 : -ENOMEM;
    if (status == 0)
        status = write_fields(root, settings_fields, COUNT(settings_fields), settings);
    char *text = status == 0 ? json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) : NULL;
    if (status == 0 && (!text || lf_buffer_append_string(out, text) < 0))
        status = -ENOMEM;
    free(text);
    json_decref(model);
    json_decref(root);
    return status;
}

int64_t lf_train_settings_from_json(const char *text, size_t length, lf_train_settings *settings,
                                    lf_diagnostic *diagnostic)
{
    json_error_t error;
    json_t *root = json_loadb(text, length, 0, &error);
    if (!root)
        return lf_fail(diagnostic, -LF_EFORMAT, "training settings: %s", error.text);
    json_t *model = json_object_get(root, "model");
    lf_train_settings read = {.model = settings->model};
    int64_t status = read_fields(model, model_fields, COUNT(model_fields), &read.model, true,
                                 "training settings, model", diagnostic);
    if (status == 0) {
        json_incref(model); /* read_fields must not see "model" among the settings */
        json_object_del(root, "model");
        status = read_fields(root, settings_fields, COUNT(settings_fields), &read, true,
                             "training settings", diagnostic);
        json_decref(model);
    }
    json_decref(root);
    if (status < 0) {
        lf_train_settings_free(&read);
        return status;
    }
    lf_train_settings_free(settings);
    *settings = read;
    return 0;
}

int64_t lf_train_model_config_read(const char *path, lf_transformer_config *config,
                                   lf_diagnostic *diagnostic)
{
    json_error_t error;
    json_t *root = json_load_file(path, 0, &error);
    if (!root)
        return lf_fail(diagnostic, -LF_EFORMAT, "%s:%d: %s", path, error.line, error.text);
    lf_transformer_config read = *config;
    int64_t status = read_fields(root, model_fields, COUNT(model_fields), &read, false, path,
                                 diagnostic);
    json_decref(root);
    if (status == 0)
        *config = read;
    return status;
}
