#include "train/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/gguf.h"
#include "model/transformer_file.h"

#define CHECKPOINT_TYPE "checkpoint"
#define CHECKPOINT_VERSION 1

/* The three arrays, as tensors of one dimension. */
static const char *const array_names[3] = {"parameters", "adam.first_moment", "adam.second_moment"};

struct lf_train_checkpoint {
    lf_gguf *file;
    const float *arrays[3];
    size_t count;
};

static int64_t checkpoint_path(const char *run_directory, lf_buffer *path)
{
    return lf_buffer_printf(path, "%s/%s", run_directory, LF_TRAIN_CHECKPOINT_FILE);
}

int64_t lf_train_checkpoint_write(const char *run_directory, const lf_train_settings *settings,
                                  const lf_tokenizer *tokenizer, const lf_train_progress *progress,
                                  const float *parameters, const float *first_moments,
                                  const float *second_moments, lf_diagnostic *diagnostic)
{
    lf_buffer path = {0}, settings_json = {0};
    lf_gguf_writer *writer = NULL;
    int64_t status = checkpoint_path(run_directory, &path);
    if (status == 0)
        status = lf_train_settings_to_json(settings, &settings_json);
    if (status == 0)
        status = lf_gguf_writer_create(&writer);
    if (status == 0)
        status = lf_gguf_writer_set_string(writer, "general.architecture", "llmfuse", diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_string(writer, "general.type", CHECKPOINT_TYPE, diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_u32(writer, "llmfuse.train.version", CHECKPOINT_VERSION,
                                        diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_string(writer, "llmfuse.train.settings",
                                           lf_buffer_string(&settings_json), diagnostic);
    if (status == 0)
        status = lf_tokenizer_write_gguf(tokenizer, writer, diagnostic);
    const struct {
        const char *key;
        uint64_t value;
    } counters[] = {{"llmfuse.train.step", progress->step},
                    {"llmfuse.train.sft_epoch", progress->sft_epoch},
                    {"llmfuse.train.sft_next", progress->sft_next}};
    for (size_t i = 0; status == 0 && i < sizeof counters / sizeof *counters; i++)
        status = lf_gguf_writer_set(writer, counters[i].key, LF_GGUF_UINT64, &counters[i].value,
                                    diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_array(writer, "llmfuse.train.random", LF_GGUF_UINT64,
                                          progress->random.state, 4, diagnostic);
    uint64_t count = lf_transformer_parameter_count(&settings->model);
    const float *arrays[3] = {parameters, first_moments, second_moments};
    for (size_t i = 0; status == 0 && i < 3; i++)
        status = lf_gguf_writer_add_tensor(writer, array_names[i], LF_GGML_F32, 1, &count,
                                           arrays[i], count * sizeof(float), diagnostic);
    if (status == 0)
        status = lf_gguf_writer_write_file(writer, lf_buffer_string(&path), diagnostic);
    if (status == -ENOMEM)
        status = lf_fail(diagnostic, status, "out of memory writing a checkpoint");
    lf_gguf_writer_free(writer);
    lf_buffer_free(&settings_json);
    lf_buffer_free(&path);
    return status;
}

static int64_t read_progress(const lf_gguf *file, lf_train_progress *progress,
                             lf_diagnostic *diagnostic)
{
    const lf_gguf_metadata *random;
    int64_t status = lf_gguf_get_u64(file, "llmfuse.train.step", &progress->step, diagnostic);
    if (status == 0)
        status = lf_gguf_get_u64(file, "llmfuse.train.sft_epoch", &progress->sft_epoch, diagnostic);
    if (status == 0)
        status = lf_gguf_get_u64(file, "llmfuse.train.sft_next", &progress->sft_next, diagnostic);
    if (status == 0)
        status = lf_gguf_get_array(file, "llmfuse.train.random", LF_GGUF_UINT64, &random,
                                   diagnostic);
    if (status == 0 && random->count != 4)
        status = lf_fail(diagnostic, -LF_EFORMAT, "llmfuse.train.random holds %llu numbers, not 4",
                         (unsigned long long)random->count);
    if (status == 0)
        lf_gguf_metadata_decode(random, progress->random.state);
    return status;
}

static int64_t find_arrays(lf_train_checkpoint *checkpoint, lf_diagnostic *diagnostic)
{
    for (size_t i = 0; i < 3; i++) {
        const lf_gguf_tensor *tensor = lf_gguf_find_tensor(checkpoint->file, array_names[i]);
        if (!tensor || tensor->type != LF_GGML_F32 || tensor->dim_count != 1 ||
            tensor->dims[0] != checkpoint->count)
            return lf_fail(diagnostic, -LF_EFORMAT,
                           "the checkpoint lacks tensor '%s' of %zu floats", array_names[i],
                           checkpoint->count);
        checkpoint->arrays[i] = (const float *)tensor->data;
    }
    return 0;
}

int64_t lf_train_checkpoint_open(const char *run_directory, lf_train_checkpoint **checkpoint,
                                 lf_train_settings *settings, lf_tokenizer **tokenizer,
                                 lf_train_progress *progress, lf_diagnostic *diagnostic)
{
    *checkpoint = NULL;
    *tokenizer = NULL;
    lf_train_checkpoint *opened = calloc(1, sizeof *opened);
    lf_buffer path = {0};
    if (!opened || checkpoint_path(run_directory, &path) < 0) {
        free(opened);
        return -ENOMEM;
    }
    lf_gguf_string type, settings_json;
    uint32_t version = 0;
    int64_t status = lf_gguf_open_file(lf_buffer_string(&path), &opened->file, diagnostic);
    if (status == 0 &&
        (lf_gguf_get_string(opened->file, "general.type", &type, NULL) != 0 ||
         type.length != strlen(CHECKPOINT_TYPE) || memcmp(type.data, CHECKPOINT_TYPE, type.length)))
        status = lf_fail(diagnostic, -LF_EFORMAT, "'%s' is not a training checkpoint",
                         lf_buffer_string(&path));
    if (status == 0)
        status = lf_gguf_get_u32(opened->file, "llmfuse.train.version", &version, diagnostic);
    if (status == 0 && version != CHECKPOINT_VERSION)
        status = lf_fail(diagnostic, -LF_EVERSION, "'%s' is a checkpoint of version %u, not %u",
                         lf_buffer_string(&path), version, CHECKPOINT_VERSION);
    if (status == 0)
        status = lf_gguf_get_string(opened->file, "llmfuse.train.settings", &settings_json,
                                    diagnostic);
    if (status == 0)
        status = lf_train_settings_from_json(settings_json.data, settings_json.length, settings,
                                             diagnostic);
    if (status == 0)
        status = lf_tokenizer_read_gguf(opened->file, tokenizer, diagnostic);
    if (status == 0) {
        settings->model.vocab_size = lf_tokenizer_vocab_size(*tokenizer);
        status = lf_transformer_validate_config(&settings->model, diagnostic);
    }
    if (status == 0)
        status = read_progress(opened->file, progress, diagnostic);
    if (status == 0) {
        opened->count = lf_transformer_parameter_count(&settings->model);
        status = find_arrays(opened, diagnostic);
    }
    lf_buffer_free(&path);
    if (status < 0) {
        lf_tokenizer_free(*tokenizer);
        *tokenizer = NULL;
        lf_train_checkpoint_close(opened);
        return status;
    }
    *checkpoint = opened;
    return 0;
}

void lf_train_checkpoint_read(const lf_train_checkpoint *checkpoint, float *parameters,
                              float *first_moments, float *second_moments)
{
    float *destinations[3] = {parameters, first_moments, second_moments};
    for (size_t i = 0; i < 3; i++)
        if (destinations[i])
            memcpy(destinations[i], checkpoint->arrays[i], checkpoint->count * sizeof(float));
}

void lf_train_checkpoint_close(lf_train_checkpoint *checkpoint)
{
    if (!checkpoint)
        return;
    lf_gguf_close(checkpoint->file);
    free(checkpoint);
}

/* A run directory's parameters. */
static int64_t load_run_parameters(const char *run_directory, lf_transformer_config *config,
                                   lf_tokenizer **tokenizer, float **parameters,
                                   lf_diagnostic *diagnostic)
{
    lf_train_settings settings = {0};
    lf_train_progress progress;
    lf_train_checkpoint *checkpoint;
    int64_t status = lf_train_checkpoint_open(run_directory, &checkpoint, &settings, tokenizer,
                                              &progress, diagnostic);
    if (status < 0)
        return status;
    *config = settings.model;
    *parameters = malloc(lf_transformer_parameter_count(config) * sizeof **parameters);
    if (*parameters)
        lf_train_checkpoint_read(checkpoint, *parameters, NULL, NULL);
    else
        status = -ENOMEM;
    lf_train_checkpoint_close(checkpoint);
    lf_train_settings_free(&settings);
    return status;
}

/* A GGUF model's parameters: int8 values times their row's scale. */
static int64_t load_model_parameters(const char *path, lf_transformer_config *config,
                                     lf_tokenizer **tokenizer, float **parameters,
                                     lf_diagnostic *diagnostic)
{
    lf_gguf *file;
    lf_transformer *model = NULL;
    lf_transformer_tensor *tensors = NULL;
    int64_t status = lf_gguf_open_file(path, &file, diagnostic);
    if (status < 0)
        return status;
    status = lf_transformer_load(file, &model, diagnostic); /* checks every tensor's shape */
    if (status == 0)
        status = lf_tokenizer_read_gguf(file, tokenizer, diagnostic);
    size_t count = 0;
    if (status == 0) {
        *config = model->config;
        count = lf_transformer_tensors(config, NULL);
        tensors = malloc(count * sizeof *tensors);
        *parameters = malloc(lf_transformer_parameter_count(config) * sizeof **parameters);
        if (!tensors || !*parameters)
            status = -ENOMEM;
        else
            lf_transformer_tensors(config, tensors);
    }
    for (size_t t = 0; status == 0 && t < count; t++) {
        const lf_transformer_tensor *tensor = &tensors[t];
        float *out = *parameters + tensor->offset;
        const lf_gguf_tensor *stored = lf_gguf_find_tensor(file, tensor->name);
        if (!tensor->matrix) {
            memcpy(out, stored->data, tensor->columns * sizeof(float));
            continue;
        }
        char scale_name[64];
        snprintf(scale_name, sizeof scale_name, "%.*s.scale",
                 (int)(strlen(tensor->name) - strlen(".weight")), tensor->name);
        const int8_t *values = (const int8_t *)stored->data;
        const float *scales = (const float *)lf_gguf_find_tensor(file, scale_name)->data;
        for (size_t r = 0; r < tensor->rows; r++)
            for (size_t c = 0; c < tensor->columns; c++)
                out[r * tensor->columns + c] = (float)values[r * tensor->columns + c] * scales[r];
    }
    if (status < 0) {
        lf_tokenizer_free(*tokenizer);
        *tokenizer = NULL;
        free(*parameters);
        *parameters = NULL;
    }
    free(tensors);
    lf_transformer_free(model);
    lf_gguf_close(file);
    return status;
}

int64_t lf_train_load_starting_point(const char *path, lf_transformer_config *config,
                                     lf_tokenizer **tokenizer, float **parameters,
                                     lf_diagnostic *diagnostic)
{
    *tokenizer = NULL;
    *parameters = NULL;
    struct stat info;
    if (stat(path, &info) != 0)
        return lf_fail(diagnostic, -errno, "cannot open '%s': %s", path, strerror(errno));
    return S_ISDIR(info.st_mode)
               ? load_run_parameters(path, config, tokenizer, parameters, diagnostic)
               : load_model_parameters(path, config, tokenizer, parameters, diagnostic);
}
