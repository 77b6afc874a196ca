#include "model/transformer_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "model/exact_math.h"
#include "model/kernels.h"

#define ARCHITECTURE "llmfuse"

size_t lf_transformer_tensors(const lf_transformer_config *config, lf_transformer_tensor *tensors)
{
    uint32_t d = config->embedding_size, ff = config->feed_forward_size;
    uint32_t kv = d / config->head_count * config->kv_head_count;
    size_t count = 0, offset = 0;
#define ADD(rows_, columns_, matrix_, ...)                                                      \
    do {                                                                                         \
        if (tensors) {                                                                           \
            lf_transformer_tensor *t = &tensors[count];                                          \
            snprintf(t->name, sizeof t->name, __VA_ARGS__);                                      \
            t->rows = (rows_);                                                                   \
            t->columns = (columns_);                                                             \
            t->matrix = (matrix_);                                                               \
            t->offset = offset;                                                                  \
        }                                                                                        \
        count++;                                                                                 \
        offset += (size_t)(rows_) * (columns_);                                                  \
    } while (0)
    ADD(config->vocab_size, d, true, "token_embd.weight");
    for (uint32_t l = 0; l < config->layer_count; l++) {
        ADD(1, d, false, "blk.%u.attn_norm.weight", l);
        ADD(d, d, true, "blk.%u.attn_q.weight", l);
        ADD(kv, d, true, "blk.%u.attn_k.weight", l);
        ADD(kv, d, true, "blk.%u.attn_v.weight", l);
        ADD(d, d, true, "blk.%u.attn_output.weight", l);
        ADD(1, d, false, "blk.%u.ffn_norm.weight", l);
        ADD(ff, d, true, "blk.%u.ffn_gate.weight", l);
        ADD(ff, d, true, "blk.%u.ffn_up.weight", l);
        ADD(d, ff, true, "blk.%u.ffn_down.weight", l);
    }
    ADD(1, d, false, "output_norm.weight");
#undef ADD
    return count;
}

size_t lf_transformer_parameter_count(const lf_transformer_config *config)
{
    size_t count = lf_transformer_tensors(config, NULL);
    lf_transformer_tensor *tensors = malloc(count * sizeof *tensors);
    if (!tensors)
        return 0;
    lf_transformer_tensors(config, tensors);
    size_t total = tensors[count - 1].offset + (size_t)tensors[count - 1].rows * tensors[count - 1].columns;
    free(tensors);
    return total;
}

lf_transformer_config lf_transformer_default_config(uint32_t vocab_size)
{
    return (lf_transformer_config){
        .vocab_size = vocab_size,
        .context_length = 256,
        .embedding_size = 128,
        .layer_count = 2,
        .head_count = 4,
        .kv_head_count = 2,
        .feed_forward_size = 384,
        .rope_base = 10000.0f,
        .norm_epsilon = 1e-5f,
    };
}

/* A standard normal draw from two uniforms (Box-Muller) with the exact
 * math functions, so initial weights are the same on every machine. */
static double normal(lf_random *random)
{
    double u1 = ((double)(lf_random_next(random) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(lf_random_next(random) >> 11) / 9007199254740992.0;
    double radius = -2.0 * lf_exact_log(u1);
    /* sqrt is correctly rounded in IEEE arithmetic */
    return __builtin_sqrt(radius) * lf_exact_cos(6.283185307179586 * u2);
}

void lf_transformer_init_parameters(const lf_transformer_config *config, uint64_t seed,
                                    float *parameters)
{
    size_t count = lf_transformer_tensors(config, NULL);
    lf_transformer_tensor *tensors = malloc(count * sizeof *tensors);
    if (!tensors)
        return;
    lf_transformer_tensors(config, tensors);
    lf_random random;
    lf_random_seed(&random, seed);
    /* GPT-2's scheme: residual outputs scaled by 1/sqrt(2 * layers). */
    double residual_scale = 1.0 / __builtin_sqrt(2.0 * config->layer_count);
    for (size_t t = 0; t < count; t++) {
        float *values = parameters + tensors[t].offset;
        size_t size = (size_t)tensors[t].rows * tensors[t].columns;
        bool residual = strstr(tensors[t].name, "attn_output") || strstr(tensors[t].name, "ffn_down");
        for (size_t i = 0; i < size; i++)
            values[i] = tensors[t].matrix
                            ? (float)(0.02 * normal(&random) * (residual ? residual_scale : 1.0))
                            : 1.0f;
    }
    free(tensors);
}

void lf_transformer_quantize_matrix(const float *matrix, uint32_t rows, uint32_t columns,
                                    int8_t *values, float *scales)
{
    lf_kernels_chosen()->quantize(matrix, rows, columns, columns, values, scales);
}

static const struct config_key {
    const char *suffix;
    size_t offset;
    bool is_float;
} config_keys[] = {
    {"vocab_size", offsetof(lf_transformer_config, vocab_size), false},
    {"context_length", offsetof(lf_transformer_config, context_length), false},
    {"embedding_length", offsetof(lf_transformer_config, embedding_size), false},
    {"block_count", offsetof(lf_transformer_config, layer_count), false},
    {"attention.head_count", offsetof(lf_transformer_config, head_count), false},
    {"attention.head_count_kv", offsetof(lf_transformer_config, kv_head_count), false},
    {"feed_forward_length", offsetof(lf_transformer_config, feed_forward_size), false},
    {"rope.freq_base", offsetof(lf_transformer_config, rope_base), true},
    {"attention.layer_norm_rms_epsilon", offsetof(lf_transformer_config, norm_epsilon), true},
};

int64_t lf_transformer_save(const lf_transformer_config *config, const float *parameters,
                            const lf_tokenizer *tokenizer, const char *path,
                            lf_diagnostic *diagnostic)
{
    int64_t status = lf_transformer_validate_config(config, diagnostic);
    if (status < 0)
        return status;
    if (lf_tokenizer_vocab_size(tokenizer) != config->vocab_size)
        return lf_fail(diagnostic, -EINVAL, "tokenizer has %u tokens, the model %u",
                       lf_tokenizer_vocab_size(tokenizer), config->vocab_size);
    lf_gguf_writer *writer;
    if ((status = lf_gguf_writer_create(&writer)) < 0)
        return status;
    size_t count = lf_transformer_tensors(config, NULL);
    lf_transformer_tensor *tensors = malloc(count * sizeof *tensors);
    int8_t *values = NULL;
    float *scales = NULL;
    status = tensors ? 0 : -ENOMEM;
    if (status == 0) {
        lf_transformer_tensors(config, tensors);
        status = lf_gguf_writer_set_string(writer, "general.architecture", ARCHITECTURE, diagnostic);
    }
    for (size_t k = 0; status == 0 && k < sizeof config_keys / sizeof *config_keys; k++) {
        char key[96];
        snprintf(key, sizeof key, ARCHITECTURE ".%s", config_keys[k].suffix);
        const void *field = (const char *)config + config_keys[k].offset;
        status = config_keys[k].is_float
                     ? lf_gguf_writer_set_f32(writer, key, *(const float *)field, diagnostic)
                     : lf_gguf_writer_set_u32(writer, key, *(const uint32_t *)field, diagnostic);
    }
    if (status == 0)
        status = lf_tokenizer_write_gguf(tokenizer, writer, diagnostic);
    for (size_t t = 0; status == 0 && t < count; t++) {
        const lf_transformer_tensor *tensor = &tensors[t];
        const float *data = parameters + tensor->offset;
        uint64_t dims[2] = {tensor->columns, tensor->rows};
        if (!tensor->matrix) {
            status = lf_gguf_writer_add_tensor(writer, tensor->name, LF_GGML_F32, 1, dims, data,
                                               (uint64_t)tensor->columns * sizeof(float), diagnostic);
            continue;
        }
        size_t size = (size_t)tensor->rows * tensor->columns;
        int8_t *grown_values = realloc(values, size);
        float *grown_scales = realloc(scales, tensor->rows * sizeof *scales);
        if (grown_values)
            values = grown_values;
        if (grown_scales)
            scales = grown_scales;
        if (!grown_values || !grown_scales) {
            status = -ENOMEM;
            break;
        }
        lf_transformer_quantize_matrix(data, tensor->rows, tensor->columns, values, scales);
        char scale_name[64];
        snprintf(scale_name, sizeof scale_name, "%.*s.scale",
                 (int)(strlen(tensor->name) - strlen(".weight")), tensor->name);
        status = lf_gguf_writer_add_tensor(writer, tensor->name, LF_GGML_I8, 2, dims, values, size,
                                           diagnostic);
        if (status == 0)
            status = lf_gguf_writer_add_tensor(writer, scale_name, LF_GGML_F32, 1, &dims[1], scales,
                                               tensor->rows * sizeof(float), diagnostic);
    }
    if (status == 0)
        status = lf_gguf_writer_write_file(writer, path, diagnostic);
    free(values);
    free(scales);
    free(tensors);
    lf_gguf_writer_free(writer);
    return status;
}

/* The part of lf_transformer that this file allocates. */
typedef struct owned_storage {
    lf_transformer_layer *layers;
    int32_t *row_sums;
    int8_t *packed;
    double *rope_frequencies;
} owned_storage;

void lf_transformer_free(lf_transformer *model)
{
    if (!model)
        return;
    owned_storage *owned = model->owned;
    if (owned) {
        free(owned->layers);
        free(owned->row_sums);
        free(owned->packed);
        free(owned->rope_frequencies);
        free(owned);
    }
    free(model);
}

static int64_t read_config(const lf_gguf *file, lf_transformer_config *config,
                           lf_diagnostic *diagnostic)
{
    lf_gguf_string architecture;
    int64_t status = lf_gguf_get_string(file, "general.architecture", &architecture, diagnostic);
    if (status < 0)
        return status;
    if (architecture.length != strlen(ARCHITECTURE) ||
        memcmp(architecture.data, ARCHITECTURE, architecture.length) != 0)
        return lf_fail(diagnostic, -LF_EFORMAT, "not an llmfuse transformer (architecture '%.*s')",
                       (int)architecture.length, (const char *)architecture.data);
    for (size_t k = 0; k < sizeof config_keys / sizeof *config_keys; k++) {
        char key[96];
        snprintf(key, sizeof key, ARCHITECTURE ".%s", config_keys[k].suffix);
        void *field = (char *)config + config_keys[k].offset;
        status = config_keys[k].is_float ? lf_gguf_get_f32(file, key, field, diagnostic)
                                         : lf_gguf_get_u32(file, key, field, diagnostic);
        if (status < 0)
            return status;
    }
    return lf_transformer_validate_config(config, diagnostic);
}

static int64_t find_tensor(const lf_gguf *file, const char *name, lf_ggml_type type, uint64_t columns,
                           uint64_t rows, const void **data, lf_diagnostic *diagnostic)
{
    const lf_gguf_tensor *tensor = lf_gguf_find_tensor(file, name);
    if (!tensor)
        return lf_fail(diagnostic, -LF_EFORMAT, "model lacks tensor '%s'", name);
    uint32_t dim_count = rows > 1 || type == LF_GGML_I8 ? 2 : 1;
    if (tensor->type != type || tensor->dim_count != dim_count || tensor->dims[0] != columns ||
        (dim_count == 2 && tensor->dims[1] != rows))
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "tensor '%s' is %s [%llu x %llu], expected %s [%llu x %llu]", name,
                       lf_ggml_type_name(tensor->type), (unsigned long long)tensor->dims[0],
                       (unsigned long long)tensor->dims[1], lf_ggml_type_name(type),
                       (unsigned long long)columns, (unsigned long long)rows);
    *data = tensor->data;
    return 0;
}

/* Finds a matrix's tensors and prepares it for the kernels: row sums and
 * packed tiles written to the storage given. */
static int64_t load_matrix(const lf_gguf *file, const lf_transformer_tensor *tensor,
                           lf_int8_matrix *matrix, int32_t *row_sums, int8_t *packed,
                           lf_diagnostic *diagnostic)
{
    const void *values, *scales;
    char scale_name[64];
    snprintf(scale_name, sizeof scale_name, "%.*s.scale",
             (int)(strlen(tensor->name) - strlen(".weight")), tensor->name);
    int64_t status = find_tensor(file, tensor->name, LF_GGML_I8, tensor->columns, tensor->rows,
                                 &values, diagnostic);
    if (status == 0)
        status = find_tensor(file, scale_name, LF_GGML_F32, tensor->rows, 1, &scales, diagnostic);
    if (status < 0)
        return status;
    *matrix = (lf_int8_matrix){.rows = tensor->rows, .columns = tensor->columns,
                               .values = values, .scales = scales, .row_sums = row_sums,
                               .packed = packed};
    for (uint32_t r = 0; r < tensor->rows; r++) {
        int32_t sum = 0;
        for (uint32_t c = 0; c < tensor->columns; c++)
            sum += matrix->values[(size_t)r * tensor->columns + c];
        row_sums[r] = sum;
    }
    lf_kernel_pack(values, tensor->rows, tensor->columns, packed);
    return 0;
}

int64_t lf_transformer_load(const lf_gguf *file, lf_transformer **model, lf_diagnostic *diagnostic)
{
    lf_transformer *created = calloc(1, sizeof *created);
    owned_storage *owned = calloc(1, sizeof *owned);
    if (!created || !owned) {
        free(created);
        free(owned);
        return -ENOMEM;
    }
    created->owned = owned;
    lf_transformer_config *config = &created->config;
    int64_t status = read_config(file, config, diagnostic);
    size_t count = status == 0 ? lf_transformer_tensors(config, NULL) : 0;
    lf_transformer_tensor *tensors = status == 0 ? malloc(count * sizeof *tensors) : NULL;
    size_t row_total = 0, packed_total = 0;
    if (status == 0 && !tensors)
        status = -ENOMEM;
    if (status == 0) {
        lf_transformer_tensors(config, tensors);
        for (size_t t = 0; t < count; t++)
            if (tensors[t].matrix) {
                row_total += tensors[t].rows;
                packed_total += lf_kernel_packed_size(tensors[t].rows, tensors[t].columns);
            }
        owned->layers = calloc(config->layer_count, sizeof *owned->layers);
        owned->row_sums = malloc(row_total * sizeof *owned->row_sums);
        owned->packed = lf_transformer_zeroed_huge(packed_total);
        owned->rope_frequencies = malloc(config->embedding_size / config->head_count / 2 * sizeof(double));
        if (!owned->layers || !owned->row_sums || !owned->packed || !owned->rope_frequencies)
            status = -ENOMEM;
    }
    created->layers = owned->layers;
    created->rope_frequencies = owned->rope_frequencies;
    /* Tensors come in lf_transformer_tensors' order: embedding, then per
     * layer the nine below, then the output norm. */
    int32_t *row_sums = owned->row_sums;
    int8_t *packed = owned->packed;
    for (size_t t = 0; status == 0 && t < count; t++) {
        const lf_transformer_tensor *tensor = &tensors[t];
        if (!tensor->matrix) {
            const void *data;
            status = find_tensor(file, tensor->name, LF_GGML_F32, tensor->columns, 1, &data, diagnostic);
            if (status < 0)
                break;
            size_t layer = (t - 1) / 9, slot = (t - 1) % 9;
            if (t == count - 1)
                created->output_norm = data;
            else if (slot == 0)
                created->layers[layer].attention_norm = data;
            else
                created->layers[layer].feed_forward_norm = data;
            continue;
        }
        lf_int8_matrix *matrix;
        if (t == 0) {
            matrix = &created->embedding;
        } else {
            lf_transformer_layer *layer = &created->layers[(t - 1) / 9];
            lf_int8_matrix *slots[9] = {NULL, &layer->query, &layer->key, &layer->value,
                                        &layer->attention_output, NULL, &layer->gate, &layer->up,
                                        &layer->down};
            matrix = slots[(t - 1) % 9];
        }
        status = load_matrix(file, tensor, matrix, row_sums, packed, diagnostic);
        row_sums += tensor->rows;
        packed += lf_kernel_packed_size(tensor->rows, tensor->columns);
    }
    if (status == 0) {
        size_t half = config->embedding_size / config->head_count / 2;
        double log_base = lf_exact_log((double)config->rope_base);
        for (size_t i = 0; i < half; i++)
            created->rope_frequencies[i] = lf_exact_exp(-log_base * (double)(2 * i) / (double)(2 * half));
    }
    free(tensors);
    if (status < 0) {
        lf_transformer_free(created);
        return status;
    }
    *model = created;
    return 0;
}
