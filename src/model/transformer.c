#include "model/transformer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/exact_math.h"
#include "model/kernels.h"

struct lf_transformer_cache {
    uint64_t position; /* tokens seen; the next one goes to ring slot position % context */
    /* per layer: keys (kv_heads, head_size, context) transposed so that the
     * scores loop runs over positions innermost; values (kv_heads, context,
     * head_size) */
    float *keys, *values;
};

int64_t lf_transformer_validate_config(const lf_transformer_config *config, lf_diagnostic *diagnostic)
{
    const char *problem = NULL;
    if (config->vocab_size < 260 || config->vocab_size > (1u << 20))
        problem = "vocabulary size outside 260..2^20";
    else if (config->embedding_size == 0 || config->embedding_size > 8192)
        problem = "embedding size outside 1..8192";
    else if (config->layer_count == 0 || config->layer_count > 256)
        problem = "layer count outside 1..256";
    else if (config->head_count == 0 || config->embedding_size % config->head_count)
        problem = "embedding size not a multiple of the head count";
    else if ((config->embedding_size / config->head_count) % 2)
        problem = "odd head size (RoPE rotates pairs)";
    else if (config->kv_head_count == 0 || config->head_count % config->kv_head_count)
        problem = "head count not a multiple of the key/value head count";
    else if (config->context_length == 0 || config->context_length > 65536)
        problem = "context length outside 1..65536";
    else if (config->feed_forward_size == 0 || config->feed_forward_size > 65536)
        problem = "feed-forward size outside 1..65536";
    else if (!(config->rope_base > 1.0f) || !(config->norm_epsilon > 0.0f))
        problem = "RoPE base or norm epsilon out of range";
    if (problem)
        return lf_fail(diagnostic, -LF_EFORMAT, "bad transformer configuration: %s", problem);
    return 0;
}

static size_t head_size(const lf_transformer_config *config)
{
    return config->embedding_size / config->head_count;
}

static size_t kv_size(const lf_transformer_config *config)
{
    return head_size(config) * config->kv_head_count;
}

int64_t lf_transformer_cache_new(const lf_transformer *model, lf_transformer_cache **cache)
{
    const lf_transformer_config *config = &model->config;
    size_t per_layer = kv_size(config) * config->context_length;
    lf_transformer_cache *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    created->keys = calloc(per_layer * config->layer_count, sizeof *created->keys);
    created->values = calloc(per_layer * config->layer_count, sizeof *created->values);
    if (!created->keys || !created->values) {
        lf_transformer_cache_free(created);
        return -ENOMEM;
    }
    *cache = created;
    return 0;
}

void lf_transformer_cache_free(lf_transformer_cache *cache)
{
    if (!cache)
        return;
    free(cache->keys);
    free(cache->values);
    free(cache);
}

uint64_t lf_transformer_cache_position(const lf_transformer_cache *cache) { return cache->position; }

/* The rotation of one position: cos and sin of position * frequency_i,
 * computed afresh for any position (inputs longer than the context keep
 * their true positions: RoPE scores depend only on position differences,
 * which the sliding window keeps below the context length). */
static void rotation_for(const lf_transformer *model, uint64_t position, float *cosines, float *sines)
{
    size_t half = head_size(&model->config) / 2;
    for (size_t i = 0; i < half; i++) {
        double angle = (double)position * model->rope_frequencies[i];
        cosines[i] = (float)lf_exact_cos(angle);
        sines[i] = (float)lf_exact_sin(angle);
    }
}

/* Rotates pairs (x[i], x[i + half]) (GPT-NeoX layout). */
static void rotate(float *x, size_t half, const float *cosines, const float *sines)
{
    for (size_t i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * cosines[i] - b * sines[i];
        x[i + half] = a * sines[i] + b * cosines[i];
    }
}

/* Scratch for one step of a batch. */
typedef struct activations {
    float *x, *normed, *query, *key, *value, *attended, *projected, *gate, *up, *scores;
    float *cosines, *sines; /* (batch, head_size / 2): each sequence's rotation this step */
    int8_t *quantized;
    float *scales;
} activations;

static void free_activations(activations *a)
{
    free(a->x);
    free(a->normed);
    free(a->query);
    free(a->key);
    free(a->value);
    free(a->attended);
    free(a->projected);
    free(a->gate);
    free(a->up);
    free(a->scores);
    free(a->cosines);
    free(a->sines);
    free(a->quantized);
    free(a->scales);
}

static int64_t allocate_activations(const lf_transformer_config *config, size_t batch, activations *a)
{
    size_t d = config->embedding_size, widest = config->feed_forward_size > d ? config->feed_forward_size : d;
    *a = (activations){
        .x = malloc(batch * d * sizeof(float)),
        .normed = malloc(batch * d * sizeof(float)),
        .query = malloc(batch * d * sizeof(float)),
        .key = malloc(batch * kv_size(config) * sizeof(float)),
        .value = malloc(batch * kv_size(config) * sizeof(float)),
        .attended = malloc(batch * d * sizeof(float)),
        .projected = malloc(batch * d * sizeof(float)),
        .gate = malloc(batch * config->feed_forward_size * sizeof(float)),
        .up = malloc(batch * config->feed_forward_size * sizeof(float)),
        .scores = malloc(config->context_length * sizeof(float)),
        .cosines = malloc(batch * head_size(config) / 2 * sizeof(float)),
        .sines = malloc(batch * head_size(config) / 2 * sizeof(float)),
        .quantized = malloc(batch * widest),
        .scales = malloc(batch * sizeof(float)),
    };
    if (!a->x || !a->normed || !a->query || !a->key || !a->value || !a->attended || !a->projected ||
        !a->gate || !a->up || !a->scores || !a->cosines || !a->sines || !a->quantized || !a->scales) {
        free_activations(a);
        return -ENOMEM;
    }
    return 0;
}

// out (B,OC) = inp (B,C) @ weights (OC,C)^T, the input quantized per row first
static void project(float *out, const float *input, size_t batch, const lf_int8_matrix *weights,
                    activations *a)
{
    lf_kernel_quantize_rows(input, batch, weights->columns, a->quantized, a->scales);
    lf_kernel_matmul_int8(out, a->quantized, a->scales, batch, weights);
}

/* One head of one sequence: out (head_size) = softmax(q . K / sqrt(hs)) V
 * over the `count` ring slots filled so far, in slot order. */
static void attend_head(float *out, const float *query, const float *keys, const float *values,
                        size_t count, size_t head, size_t context, float *scores)
{
    for (size_t t = 0; t < count; t++)
        scores[t] = 0.0f;
    for (size_t i = 0; i < head; i++) { /* over positions innermost: vectorises, same sums */
        const float *key_row = keys + i * context;
        float q = query[i];
        for (size_t t = 0; t < count; t++)
            scores[t] += q * key_row[t];
    }
    float largest = scores[0];
    for (size_t t = 1; t < count; t++)
        if (scores[t] > largest)
            largest = scores[t];
    float total = 0.0f;
    for (size_t t = 0; t < count; t++) {
        scores[t] = lf_exact_expf(scores[t] - largest);
        total += scores[t];
    }
    for (size_t i = 0; i < head; i++)
        out[i] = 0.0f;
    for (size_t t = 0; t < count; t++) {
        const float *value_row = values + t * head;
        float weight = scores[t];
        for (size_t i = 0; i < head; i++)
            out[i] += weight * value_row[i];
    }
    float inverse = 1.0f / total;
    for (size_t i = 0; i < head; i++)
        out[i] *= inverse;
}

static void attention(const lf_transformer *model, size_t layer, lf_transformer_cache *const *caches,
                      size_t batch, activations *a)
{
    const lf_transformer_config *config = &model->config;
    size_t d = config->embedding_size, hs = head_size(config), context = config->context_length;
    size_t kv = kv_size(config), group = config->head_count / config->kv_head_count;
    float query_scale = 1.0f / sqrtf((float)hs);
    for (size_t b = 0; b < batch; b++) {
        lf_transformer_cache *cache = caches[b];
        const float *cosines = a->cosines + b * hs / 2, *sines = a->sines + b * hs / 2;
        float *keys = cache->keys + layer * kv * context;
        float *values = cache->values + layer * kv * context;
        size_t slot = (size_t)(cache->position % context);
        size_t count = cache->position + 1 < context ? (size_t)cache->position + 1 : context;
        for (size_t h = 0; h < config->kv_head_count; h++) {
            float *key = a->key + b * kv + h * hs;
            rotate(key, hs / 2, cosines, sines);
            for (size_t i = 0; i < hs; i++)
                keys[(h * hs + i) * context + slot] = key[i];
            memcpy(values + (h * context + slot) * hs, a->value + b * kv + h * hs, hs * sizeof(float));
        }
        for (size_t h = 0; h < config->head_count; h++) {
            float *query = a->query + b * d + h * hs;
            rotate(query, hs / 2, cosines, sines);
            for (size_t i = 0; i < hs; i++)
                query[i] *= query_scale;
            size_t kv_head = h / group;
            attend_head(a->attended + b * d + h * hs, query, keys + kv_head * hs * context,
                        values + kv_head * context * hs, count, hs, context, a->scores);
        }
    }
}

static void embed(const lf_transformer *model, const uint32_t *tokens, size_t batch, float *x)
{
    size_t d = model->config.embedding_size;
    for (size_t b = 0; b < batch; b++) {
        const int8_t *row = model->embedding.values + (size_t)tokens[b] * d;
        float scale = model->embedding.scales[tokens[b]];
        for (size_t i = 0; i < d; i++)
            x[b * d + i] = (float)row[i] * scale;
    }
}

static void normalize_batch(const lf_transformer *model, const float *weight, size_t batch,
                            const float *x, float *out)
{
    size_t d = model->config.embedding_size;
    for (size_t b = 0; b < batch; b++)
        lf_kernel_rmsnorm(out + b * d, x + b * d, weight, d, model->config.norm_epsilon);
}

int64_t lf_transformer_step(const lf_transformer *model, lf_transformer_cache *const *caches,
                            const uint32_t *tokens, size_t count, float *logits)
{
    const lf_transformer_config *config = &model->config;
    for (size_t b = 0; b < count; b++)
        if (tokens[b] >= config->vocab_size)
            return -EINVAL;
    activations a;
    int64_t status = allocate_activations(config, count, &a);
    if (status < 0)
        return status;
    size_t d = config->embedding_size, ff = config->feed_forward_size;
    embed(model, tokens, count, a.x);
    for (size_t b = 0; b < count; b++)
        rotation_for(model, caches[b]->position, a.cosines + b * head_size(config) / 2,
                     a.sines + b * head_size(config) / 2);
    for (size_t l = 0; l < config->layer_count; l++) {
        const lf_transformer_layer *layer = &model->layers[l];
        normalize_batch(model, layer->attention_norm, count, a.x, a.normed);
        project(a.query, a.normed, count, &layer->query, &a);
        project(a.key, a.normed, count, &layer->key, &a);
        project(a.value, a.normed, count, &layer->value, &a);
        attention(model, l, caches, count, &a);
        project(a.projected, a.attended, count, &layer->attention_output, &a);
        for (size_t i = 0; i < count * d; i++)
            a.x[i] += a.projected[i];
        normalize_batch(model, layer->feed_forward_norm, count, a.x, a.normed);
        project(a.gate, a.normed, count, &layer->gate, &a);
        project(a.up, a.normed, count, &layer->up, &a);
        for (size_t i = 0; i < count * ff; i++) { /* SwiGLU: silu(gate) * up */
            float g = a.gate[i];
            a.gate[i] = g / (1.0f + lf_exact_expf(-g)) * a.up[i];
        }
        project(a.projected, a.gate, count, &layer->down, &a);
        for (size_t i = 0; i < count * d; i++)
            a.x[i] += a.projected[i];
    }
    normalize_batch(model, model->output_norm, count, a.x, a.normed);
    project(logits, a.normed, count, &model->embedding, &a);
    for (size_t b = 0; b < count; b++)
        caches[b]->position++;
    free_activations(&a);
    return 0;
}
