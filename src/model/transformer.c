#include "model/transformer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model/exact_math.h"
#include "model/kernels.h"

struct lf_transformer_cache {
    uint64_t position; /* tokens seen; the next one goes to ring slot position % context */
    /* per layer and key/value head, in bfloat16 (lf_bf16_round), laid out
     * as lf_kernels' attend reads them: keys in blocks of
     * LF_KERNEL_KEY_BLOCK slots (the scores loop reads them in order),
     * values (context, lf_kernel_value_stride(head_size)) */
    uint16_t *keys, *values;
};

/* Elements of one key/value head's keys: the context in whole blocks. */
static size_t key_elements(const lf_transformer_config *config)
{
    size_t blocks = (config->context_length + LF_KERNEL_KEY_BLOCK - 1) / LF_KERNEL_KEY_BLOCK;
    return blocks * LF_KERNEL_KEY_BLOCK * (config->embedding_size / config->head_count);
}

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

void *lf_transformer_zeroed_huge(size_t bytes)
{
    size_t huge = (size_t)2 << 20;
    bytes = (bytes + huge - 1) / huge * huge;
    void *memory = aligned_alloc(huge, bytes);
    if (!memory)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(memory, bytes, MADV_HUGEPAGE); /* only advice: fine if refused */
#endif
    memset(memory, 0, bytes);
    return memory;
}

int64_t lf_transformer_cache_new(const lf_transformer *model, lf_transformer_cache **cache)
{
    const lf_transformer_config *config = &model->config;
    size_t heads = (size_t)config->kv_head_count * config->layer_count;
    lf_transformer_cache *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    created->keys = lf_transformer_zeroed_huge(heads * key_elements(config) * sizeof(uint16_t));
    created->values = lf_transformer_zeroed_huge(
        heads * config->context_length * lf_kernel_value_stride(head_size(config)) * sizeof(uint16_t));
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

void lf_transformer_cache_reset(lf_transformer_cache *cache) { cache->position = 0; }

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

struct lf_transformer_workspace {
    size_t capacity;
    const lf_kernels *kernels;
    /* (capacity, width) each */
    float *x, *normed, *query, *key, *value, *attended, *projected, *gate, *up;
    float *cosines, *sines; /* (capacity, head_size / 2): each row's rotation this step */
    uint64_t *positions;    /* (capacity): each row's position in its sequence */
    float *scores;          /* per thread, (query heads per key/value head, context) */
    int8_t *quantized;      /* (capacity, row stride of the widest input) */
    float *scales;          /* (capacity) */
    void *storage;
    lf_team *team;          /* the threads a step's products and attention are shared by */
    lf_team *owned_team;    /* the one-member team of a workspace given none */
    unsigned members;       /* the team's size (scores has room for them) */
    size_t *runs;           /* (capacity + 1): the step's rows by cache, see attention */
};

int64_t lf_transformer_workspace_new(const lf_transformer *model, size_t capacity, lf_team *team,
                                     lf_transformer_workspace **workspace)
{
    if (capacity == 0)
        return -EINVAL;
    const lf_transformer_config *config = &model->config;
    size_t d = config->embedding_size, ff = config->feed_forward_size, kv = kv_size(config);
    size_t half = head_size(config) / 2, widest = ff > d ? ff : d;
    size_t group = config->head_count / config->kv_head_count;
    lf_transformer_workspace *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    created->positions = malloc(capacity * sizeof *created->positions);
    created->runs = malloc((capacity + 1) * sizeof *created->runs);
    int64_t status = created->positions && created->runs ? 0 : -ENOMEM;
    if (status == 0 && !team)
        status = lf_team_new(1, &created->owned_team);
    if (status < 0) {
        lf_transformer_workspace_free(created);
        return status;
    }
    created->team = team ? team : created->owned_team;
    created->members = lf_team_members(created->team);
    /* every array in one allocation, each float array a multiple of 16
     * floats long so that the next one starts 64-byte aligned */
    float **arrays[] = {&created->x,        &created->normed, &created->query, &created->key,
                        &created->value,    &created->attended, &created->projected,
                        &created->gate,     &created->up,     &created->cosines,
                        &created->sines,    &created->scores, &created->scales};
    size_t lengths[] = {capacity * d,    capacity * d,  capacity * d,  capacity * kv,
                        capacity * kv,   capacity * d,  capacity * d,
                        capacity * ff,   capacity * ff, capacity * half,
                        capacity * half, created->members * group * config->context_length, capacity};
    size_t floats = 0;
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++)
        floats += (lengths[i] + 15) / 16 * 16;
    size_t bytes = floats * sizeof(float) + capacity * lf_kernel_row_stride(widest);
    created->storage = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!created->storage) {
        lf_transformer_workspace_free(created);
        return -ENOMEM;
    }
    float *next = created->storage;
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        *arrays[i] = next;
        next += (lengths[i] + 15) / 16 * 16;
    }
    created->quantized = (int8_t *)next;
    created->capacity = capacity;
    created->kernels = lf_kernels_chosen();
    *workspace = created;
    return 0;
}

void lf_transformer_workspace_free(lf_transformer_workspace *workspace)
{
    if (workspace) {
        free(workspace->storage);
        free(workspace->positions);
        free(workspace->runs);
        lf_team_free(workspace->owned_team);
    }
    free(workspace);
}

/* quantized, scales (B) = input (B, C) in int8, for the products below */
static void quantize(lf_transformer_workspace *w, const float *input, size_t batch, size_t columns)
{
    w->kernels->quantize(input, batch, columns, lf_kernel_row_stride(columns), w->quantized,
                         w->scales);
}

/* Products of the quantized input with up to three matrices, shared by
 * the team: their output columns, in LF_KERNEL_OUTPUT_ALIGN units, in one
 * list that each member takes a contiguous share of. Every output element
 * is the same integer sum whoever computes it. */
typedef struct products {
    lf_transformer_workspace *w;
    size_t batch, count;
    float *outs[3];
    const lf_int8_matrix *weights[3];
} products;

static size_t product_units(const lf_int8_matrix *weights)
{
    return (weights->rows + LF_KERNEL_OUTPUT_ALIGN - 1) / LF_KERNEL_OUTPUT_ALIGN;
}

static void products_share(void *context, unsigned member, unsigned members)
{
    const products *job = context;
    size_t units = 0, begin, end;
    for (size_t m = 0; m < job->count; m++)
        units += product_units(job->weights[m]);
    lf_team_share(units, member, members, &begin, &end);
    for (size_t m = 0, start = 0; m < job->count && begin < end; m++) {
        const lf_int8_matrix *weights = job->weights[m];
        size_t here = product_units(weights);
        if (begin < start + here) {
            size_t last = end < start + here ? end : start + here;
            size_t first_row = (begin - start) * LF_KERNEL_OUTPUT_ALIGN;
            size_t end_row = (last - start) * LF_KERNEL_OUTPUT_ALIGN;
            job->w->kernels->matmul(job->outs[m], job->w->quantized, job->w->scales, job->batch,
                                    weights, first_row, end_row < weights->rows ? end_row : weights->rows);
            begin = last;
        }
        start += here;
    }
}

// out_m (B,OC_m) = quantized input (B,C) @ weights_m (OC_m,C)^T for m < count
static void project(lf_transformer_workspace *w, size_t batch, size_t count,
                    float *const outs[3], const lf_int8_matrix *const weights[3])
{
    products job = {.w = w, .batch = batch, .count = count};
    for (size_t m = 0; m < count; m++) {
        job.outs[m] = outs[m];
        job.weights[m] = weights[m];
    }
    lf_team_run(w->team, products_share, &job);
}

/* Rows that share a cache are consecutive tokens of one sequence, adjacent
 * and in order (see lf_transformer_step): row b's key and value go into
 * ring slot position % context just before row b attends, after the
 * earlier rows of its sequence have attended (its slot held the position
 * 512 back, which the row before it still sees). Each (sequence, key/value
 * head) reads and writes only its own head's ring, so these pairs are the
 * units the team shares, heads outermost: the rows of one sequence read
 * the same 2 x (context, head size) bfloat16 one after the other, from the
 * level-2 cache instead of memory. */
typedef struct attention_job {
    const lf_transformer *model;
    size_t layer;
    lf_transformer_cache *const *caches;
    size_t runs; /* sequences: rows w->runs[r] .. w->runs[r + 1] - 1 */
    lf_transformer_workspace *w;
} attention_job;

static void attention_share(void *context, unsigned member, unsigned members)
{
    const attention_job *job = context;
    const lf_transformer_config *config = &job->model->config;
    lf_transformer_workspace *w = job->w;
    size_t d = config->embedding_size, hs = head_size(config), context_length = config->context_length;
    size_t kv = kv_size(config), group = config->head_count / config->kv_head_count;
    size_t value_stride = lf_kernel_value_stride(hs);
    float *scores = w->scores + member * group * context_length;
    size_t begin, end;
    lf_team_share(config->kv_head_count * job->runs, member, members, &begin, &end);
    for (size_t unit = begin; unit < end; unit++) {
        size_t h = unit / job->runs, run = unit % job->runs;
        for (size_t b = w->runs[run]; b < w->runs[run + 1]; b++) {
            lf_transformer_cache *cache = job->caches[b];
            uint64_t position = w->positions[b];
            size_t head = job->layer * config->kv_head_count + h;
            uint16_t *keys = cache->keys + head * key_elements(config);
            uint16_t *values = cache->values + head * context_length * value_stride;
            size_t slot = (size_t)(position % context_length);
            size_t count = position + 1 < context_length ? (size_t)position + 1 : context_length;
            const float *key = w->key + b * kv + h * hs, *value = w->value + b * kv + h * hs;
            uint16_t *key_column = keys + slot / LF_KERNEL_KEY_BLOCK * hs * LF_KERNEL_KEY_BLOCK +
                                   lf_kernel_cache_index(slot % LF_KERNEL_KEY_BLOCK);
            for (size_t i = 0; i < hs; i++) {
                key_column[i * LF_KERNEL_KEY_BLOCK] = lf_bf16_round(key[i]);
                values[slot * value_stride + lf_kernel_cache_index(i)] = lf_bf16_round(value[i]);
            }
            /* query heads h * group .. (h + 1) * group - 1 share key/value head h */
            w->kernels->attend(w->attended + b * d + h * group * hs, w->query + b * d + h * group * hs,
                               keys, values, group, hs, count, scores);
        }
    }
}

static void attention(const lf_transformer *model, size_t layer, lf_transformer_cache *const *caches,
                      size_t batch, size_t runs, lf_transformer_workspace *w)
{
    const lf_transformer_config *config = &model->config;
    size_t d = config->embedding_size, hs = head_size(config), kv = kv_size(config);
    float query_scale = 1.0f / sqrtf((float)hs);
    for (size_t b = 0; b < batch; b++) {
        const float *cosines = w->cosines + b * hs / 2, *sines = w->sines + b * hs / 2;
        for (size_t h = 0; h < config->kv_head_count; h++)
            rotate(w->key + b * kv + h * hs, hs / 2, cosines, sines);
        float *query = w->query + b * d;
        for (size_t h = 0; h < config->head_count; h++)
            rotate(query + h * hs, hs / 2, cosines, sines);
        for (size_t i = 0; i < d; i++)
            query[i] *= query_scale;
    }
    attention_job job = {model, layer, caches, runs, w};
    lf_team_run(w->team, attention_share, &job);
}

/* Splits the step's rows into sequences (w->runs): -EINVAL when one cache
 * names rows that are not adjacent. */
static int64_t find_runs(lf_transformer_cache *const *caches, size_t count,
                         lf_transformer_workspace *w, size_t *runs)
{
    size_t found = 0;
    for (size_t b = 0; b < count; b++) {
        if (b > 0 && caches[b] == caches[b - 1])
            continue;
        for (size_t r = 0; r < found; r++)
            if (caches[w->runs[r]] == caches[b])
                return -EINVAL;
        w->runs[found++] = b;
    }
    w->runs[found] = count;
    *runs = found;
    return 0;
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

int64_t lf_transformer_step(const lf_transformer *model, lf_transformer_workspace *workspace,
                            lf_transformer_cache *const *caches, const uint32_t *tokens,
                            size_t count, float *logits)
{
    const lf_transformer_config *config = &model->config;
    if (count > workspace->capacity)
        return -EINVAL;
    for (size_t b = 0; b < count; b++)
        if (tokens[b] >= config->vocab_size)
            return -EINVAL;
    lf_transformer_workspace *w = workspace;
    size_t runs;
    if (find_runs(caches, count, w, &runs) < 0)
        return -EINVAL;
    size_t d = config->embedding_size, ff = config->feed_forward_size, half = head_size(config) / 2;
    /* positions in row order: a cache's second row is its next token */
    for (size_t b = 0; b < count; b++)
        w->positions[b] = caches[b]->position++;
    embed(model, tokens, count, w->x);
    for (size_t b = 0; b < count; b++)
        rotation_for(model, w->positions[b], w->cosines + b * half, w->sines + b * half);
    for (size_t l = 0; l < config->layer_count; l++) {
        const lf_transformer_layer *layer = &model->layers[l];
        normalize_batch(model, layer->attention_norm, count, w->x, w->normed);
        quantize(w, w->normed, count, d);
        project(w, count, 3, (float *[3]){w->query, w->key, w->value},
                (const lf_int8_matrix *[3]){&layer->query, &layer->key, &layer->value});
        attention(model, l, caches, count, runs, w);
        quantize(w, w->attended, count, d);
        project(w, count, 1, (float *[3]){w->projected}, (const lf_int8_matrix *[3]){&layer->attention_output});
        for (size_t i = 0; i < count * d; i++)
            w->x[i] += w->projected[i];
        normalize_batch(model, layer->feed_forward_norm, count, w->x, w->normed);
        quantize(w, w->normed, count, d);
        project(w, count, 2, (float *[3]){w->gate, w->up},
                (const lf_int8_matrix *[3]){&layer->gate, &layer->up});
        w->kernels->swiglu(w->gate, w->up, count * ff);
        quantize(w, w->gate, count, ff);
        project(w, count, 1, (float *[3]){w->projected}, (const lf_int8_matrix *[3]){&layer->down});
        for (size_t i = 0; i < count * d; i++)
            w->x[i] += w->projected[i];
    }
    normalize_batch(model, model->output_norm, count, w->x, w->normed);
    quantize(w, w->normed, count, d);
    project(w, count, 1, (float *[3]){logits}, (const lf_int8_matrix *[3]){&model->embedding});
    return 0;
}
