#include "train/backprop.h"

#include <cblas.h>
#include <strings.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/parallel.h"
#include "model/exact_math.h"
#include "model/transformer_file.h"

/* A layer's tensors in lf_transformer_tensors order; layer l's come after
 * the embedding and the 9 * l tensors of the layers before it. */
enum layer_tensor {
    ATTENTION_NORM,
    QUERY,
    KEY,
    VALUE,
    ATTENTION_OUTPUT,
    FEED_FORWARD_NORM,
    GATE,
    UP,
    DOWN,
    TENSORS_PER_LAYER
};

/* What the backward pass needs of one layer's forward pass. N = B * T
 * positions, C channels, KV = kv_head_count * head_size, F feed-forward. */
typedef struct layer_activations {
    float *input;               /* (N, C) residual stream entering the layer */
    float *attention_normed;    /* (N, C) */
    float *attention_rstd;      /* (N) 1 / sqrt(mean(x^2) + epsilon) */
    float *query;               /* (N, C) after RoPE */
    float *key, *value;         /* (N, KV), the key after RoPE */
    float *probabilities;       /* (B, NH, T, T) causal softmax, zero above the diagonal */
    float *attended;            /* (N, C) the heads' outputs, before the output projection */
    float *middle;              /* (N, C) residual stream after attention */
    float *feed_forward_normed; /* (N, C) */
    float *feed_forward_rstd;   /* (N) */
    float *gate, *up;           /* (N, F) */
    float *hidden;              /* (N, F) silu(gate) * up */
} layer_activations;

struct lf_train_network {
    lf_transformer_config config;
    uint32_t max_rows, max_length;
    unsigned threads;
    lf_transformer_tensor *tensors;
    size_t tensor_count;
    float *cosines, *sines; /* (max_length, head_size / 2): the engine's rotation per position */
    layer_activations *layers;
    float *output;          /* (N, C) residual stream after the last layer */
    float *output_normed;   /* (N, C) */
    float *output_rstd;     /* (N) */
    float *logits;          /* (N, V); the backward pass turns them into their gradient */
    float *log_normalizers; /* (N) log of the sum of e^logit over the vocabulary */
    float *losses;          /* (N) each position's loss, 0 without a target */
    /* backward scratch: gradients of the activations of one layer at a time */
    float *d_stream, *d_normed, *d_attended; /* (N, C) */
    float *d_query;                          /* (N, C) */
    float *d_key, *d_value;                  /* (N, KV) */
    float *d_gate, *d_up, *d_hidden;         /* (N, F) */
    float *d_probabilities;                  /* (B, NH, T, T) */
    uint64_t targets;                        /* counted in the last forward pass */
    float *storage;
};

/* The sizes of one batch's computation. */
typedef struct dims {
    size_t sequences, length, positions; /* B, T, N = B * T */
    size_t channels, heads, kv_heads, head_size, kv_channels, hidden, vocab;
} dims;

static dims dims_of(const lf_transformer_config *config, size_t sequences, size_t length)
{
    size_t head_size = config->embedding_size / config->head_count;
    return (dims){.sequences = sequences,
                  .length = length,
                  .positions = sequences * length,
                  .channels = config->embedding_size,
                  .heads = config->head_count,
                  .kv_heads = config->kv_head_count,
                  .head_size = head_size,
                  .kv_channels = head_size * config->kv_head_count,
                  .hidden = config->feed_forward_size,
                  .vocab = config->vocab_size};
}

/* ---- memory ---- */

/* Hands out consecutive pieces of one allocation; with base NULL it only
 * counts, so the same code measures and then lays out. */
typedef struct carver {
    float *base;
    size_t used;
} carver;

static float *carve(carver *from, size_t count)
{
    float *piece = from->base ? from->base + from->used : NULL;
    from->used += count;
    return piece;
}

static void lay_out(lf_train_network *network, carver *from)
{
    dims d = dims_of(&network->config, network->max_rows, network->max_length);
    size_t n = d.positions, scores = d.sequences * d.heads * d.length * d.length;
    network->cosines = carve(from, d.length * d.head_size / 2);
    network->sines = carve(from, d.length * d.head_size / 2);
    for (uint32_t l = 0; l < network->config.layer_count; l++) {
        layer_activations *a = &network->layers[l];
        a->input = carve(from, n * d.channels);
        a->attention_normed = carve(from, n * d.channels);
        a->attention_rstd = carve(from, n);
        a->query = carve(from, n * d.channels);
        a->key = carve(from, n * d.kv_channels);
        a->value = carve(from, n * d.kv_channels);
        a->probabilities = carve(from, scores);
        a->attended = carve(from, n * d.channels);
        a->middle = carve(from, n * d.channels);
        a->feed_forward_normed = carve(from, n * d.channels);
        a->feed_forward_rstd = carve(from, n);
        a->gate = carve(from, n * d.hidden);
        a->up = carve(from, n * d.hidden);
        a->hidden = carve(from, n * d.hidden);
    }
    network->output = carve(from, n * d.channels);
    network->output_normed = carve(from, n * d.channels);
    network->output_rstd = carve(from, n);
    network->logits = carve(from, n * d.vocab);
    network->log_normalizers = carve(from, n);
    network->losses = carve(from, n);
    network->d_stream = carve(from, n * d.channels);
    network->d_normed = carve(from, n * d.channels);
    network->d_attended = carve(from, n * d.channels);
    network->d_query = carve(from, n * d.channels);
    network->d_key = carve(from, n * d.kv_channels);
    network->d_value = carve(from, n * d.kv_channels);
    network->d_gate = carve(from, n * d.hidden);
    network->d_up = carve(from, n * d.hidden);
    network->d_hidden = carve(from, n * d.hidden);
    network->d_probabilities = carve(from, scores);
}

/* cos and sin of position * base^(-2i / head_size), computed as the engine
 * does (transformer_file.c's frequencies, transformer.c's angles), so the
 * rotations are the same floats. */
static void fill_rotations(lf_train_network *network)
{
    dims d = dims_of(&network->config, 1, network->max_length);
    size_t half = d.head_size / 2;
    double log_base = lf_exact_log((double)network->config.rope_base);
    for (size_t i = 0; i < half; i++) {
        double frequency = lf_exact_exp(-log_base * (double)(2 * i) / (double)(2 * half));
        for (size_t t = 0; t < d.length; t++) {
            double angle = (double)t * frequency;
            network->cosines[t * half + i] = (float)lf_exact_cos(angle);
            network->sines[t * half + i] = (float)lf_exact_sin(angle);
        }
    }
}

int64_t lf_train_network_create(const lf_transformer_config *config, uint32_t max_rows,
                                uint32_t max_length, unsigned threads, lf_train_network **network)
{
    *network = NULL;
    if (lf_transformer_validate_config(config, NULL) < 0 || max_rows == 0 || max_length == 0 ||
        max_length > config->context_length || threads == 0)
        return -EINVAL;
    /* cblas takes int dimensions; the largest is N = rows x length */
    if ((uint64_t)max_rows * max_length > INT_MAX)
        return -EINVAL;
    lf_train_network *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    created->config = *config;
    created->max_rows = max_rows;
    created->max_length = max_length;
    created->threads = threads;
    created->tensor_count = lf_transformer_tensors(config, NULL);
    created->tensors = malloc(created->tensor_count * sizeof *created->tensors);
    created->layers = calloc(config->layer_count, sizeof *created->layers);
    if (!created->tensors || !created->layers) {
        lf_train_network_free(created);
        return -ENOMEM;
    }
    lf_transformer_tensors(config, created->tensors);
    carver measure = {0};
    lay_out(created, &measure);
    created->storage = malloc(measure.used * sizeof(float));
    if (!created->storage) {
        lf_train_network_free(created);
        return -ENOMEM;
    }
    lay_out(created, &(carver){.base = created->storage});
    fill_rotations(created);
    openblas_set_num_threads((int)threads);
    *network = created;
    return 0;
}

const char *lf_train_blas_kernels(bool *behind_the_cpu)
{
    static const char *const sse_only[] = {"Prescott", "Core2", "Penryn", "Dunnington",
                                           "Nehalem", "Atom"};
    const char *name = openblas_get_corename();
    *behind_the_cpu = false;
    for (size_t i = 0; name && i < sizeof sse_only / sizeof *sse_only; i++)
        if (strcasecmp(name, sse_only[i]) == 0)
            *behind_the_cpu = __builtin_cpu_supports("avx2");
    return name ? name : "unknown";
}

void lf_train_network_free(lf_train_network *network)
{
    if (!network)
        return;
    free(network->storage);
    free(network->layers);
    free(network->tensors);
    free(network);
}

const float *lf_train_network_logits(const lf_train_network *network) { return network->logits; }

int64_t lf_train_batch_allocate(lf_train_batch *batch, uint32_t rows, uint32_t length)
{
    size_t count = (size_t)rows * length;
    *batch = (lf_train_batch){.rows = rows,
                              .length = length,
                              .inputs = malloc(count * sizeof *batch->inputs),
                              .targets = malloc(count * sizeof *batch->targets)};
    if (!batch->inputs || !batch->targets) {
        lf_train_batch_free(batch);
        return -ENOMEM;
    }
    return 0;
}

void lf_train_batch_free(lf_train_batch *batch)
{
    free(batch->inputs);
    free(batch->targets);
    *batch = (lf_train_batch){0};
}

/* ---- running rows on several threads ---- */

/* Processes rows [first, end). */
typedef void (*row_kernel)(void *context, size_t first, size_t end);

typedef struct row_jobs {
    row_kernel kernel;
    void *context;
    size_t rows, jobs;
} row_jobs;

static int64_t run_row_job(void *context, size_t job)
{
    const row_jobs *jobs = context;
    jobs->kernel(jobs->context, job * jobs->rows / jobs->jobs, (job + 1) * jobs->rows / jobs->jobs);
    return 0;
}

/* Each row is computed whole by one thread: the same bits for any count. */
static void for_rows(unsigned threads, size_t rows, row_kernel kernel, void *context)
{
    size_t count = threads > 1 ? (size_t)threads * 4 : 1; /* a few per thread evens out the load */
    if (count > rows)
        count = rows;
    if (count == 0)
        return;
    row_jobs jobs = {.kernel = kernel, .context = context, .rows = rows, .jobs = count};
    lf_parallel_for(count, threads, run_row_job, &jobs);
}

/* ---- kernels ---- */

// out (N, OC) = in (N, C) @ weight (OC, C)^T
static void matmul_forward(float *out, const float *in, const float *weight, size_t positions,
                           size_t in_channels, size_t out_channels)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)positions, (int)out_channels,
                (int)in_channels, 1.0f, in, (int)in_channels, weight, (int)in_channels, 0.0f, out,
                (int)out_channels);
}

// d_in (N, C) = d_out (N, OC) @ weight (OC, C), or += with accumulate;
// d_weight (OC, C) += d_out^T @ in (N, C)
static void matmul_backward(float *d_in, float *d_weight, const float *d_out, const float *in,
                            const float *weight, size_t positions, size_t in_channels,
                            size_t out_channels, bool accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)positions, (int)in_channels,
                (int)out_channels, 1.0f, d_out, (int)out_channels, weight, (int)in_channels,
                accumulate ? 1.0f : 0.0f, d_in, (int)in_channels);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out_channels, (int)in_channels,
                (int)positions, 1.0f, d_out, (int)out_channels, in, (int)in_channels, 1.0f,
                d_weight, (int)in_channels);
}

// x (N, C) = embedding rows of tokens (N)
static void embedding_forward(float *x, const uint32_t *tokens, const float *embedding,
                              size_t positions, size_t channels)
{
    for (size_t p = 0; p < positions; p++)
        memcpy(x + p * channels, embedding + (size_t)tokens[p] * channels,
               channels * sizeof(float));
}

// d_embedding (V, C) += d_x (N, C) at the rows of tokens (N), in position order
static void embedding_backward(float *d_embedding, const float *d_x, const uint32_t *tokens,
                               size_t positions, size_t channels)
{
    for (size_t p = 0; p < positions; p++) {
        float *row = d_embedding + (size_t)tokens[p] * channels;
        for (size_t i = 0; i < channels; i++)
            row[i] += d_x[p * channels + i];
    }
}

// out (N, C) = x / sqrt(mean(x^2) + epsilon) * weight (C); rstd (N) keeps the
// factor. The engine's lf_kernel_rmsnorm, operation for operation.
static void rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight,
                            size_t positions, size_t channels, float epsilon)
{
    for (size_t p = 0; p < positions; p++) {
        const float *row = x + p * channels;
        float squares = 0.0f;
        for (size_t i = 0; i < channels; i++)
            squares += row[i] * row[i];
        float inverse = 1.0f / sqrtf(squares / (float)channels + epsilon);
        rstd[p] = inverse;
        for (size_t i = 0; i < channels; i++)
            out[p * channels + i] = row[i] * inverse * weight[i];
    }
}

// d_x (N, C) += and d_weight (C) += the gradients through out = x * r * weight,
// r = (mean(x^2) + epsilon)^(-1/2), whose derivative is -r^3 x / C
static void rmsnorm_backward(float *d_x, float *d_weight, const float *d_out, const float *x,
                             const float *weight, const float *rstd, size_t positions,
                             size_t channels)
{
    for (size_t p = 0; p < positions; p++) {
        const float *row = x + p * channels, *d_row = d_out + p * channels;
        float r = rstd[p], dot = 0.0f;
        for (size_t i = 0; i < channels; i++)
            dot += d_row[i] * weight[i] * row[i];
        float coefficient = dot * r * r * r / (float)channels;
        for (size_t i = 0; i < channels; i++) {
            d_weight[i] += d_row[i] * row[i] * r;
            d_x[p * channels + i] += d_row[i] * weight[i] * r - coefficient * row[i];
        }
    }
}

// x (N, H, HS) in place: each head's pairs (i, i + HS/2) at position t = row % T
// rotated by t * frequency_i (direction 1, the engine's rotate), or back by it
// (direction -1: the transpose, for the backward pass)
static void rope(float *x, const lf_train_network *network, const dims *d, size_t heads,
                 float direction)
{
    size_t half = d->head_size / 2;
    for (size_t p = 0; p < d->positions; p++) {
        const float *cosines = network->cosines + (p % d->length) * half;
        const float *sines = network->sines + (p % d->length) * half;
        for (size_t h = 0; h < heads; h++) {
            float *head = x + (p * heads + h) * d->head_size;
            for (size_t i = 0; i < half; i++) {
                float a = head[i], b = head[i + half], sine = direction * sines[i];
                head[i] = a * cosines[i] - b * sine;
                head[i + half] = a * sine + b * cosines[i];
            }
        }
    }
}

/* Rows of (B, NH, T, T) score matrices; row r is position r % T. */
typedef struct score_rows {
    float *probabilities;
    float *d_probabilities;
    size_t length;
} score_rows;

// row (T) = softmax over columns 0..t of the scores in row, zero after t
static void causal_softmax_rows(void *context, size_t first, size_t end)
{
    const score_rows *rows = context;
    for (size_t r = first; r < end; r++) {
        float *row = rows->probabilities + r * rows->length;
        size_t t = r % rows->length;
        float largest = row[0];
        for (size_t s = 1; s <= t; s++)
            if (row[s] > largest) /* not fmaxf: a libm call, NaN rules we do not need */
                largest = row[s];
        float total = 0.0f;
        for (size_t s = 0; s <= t; s++) {
            row[s] = expf(row[s] - largest);
            total += row[s];
        }
        float inverse = 1.0f / total;
        for (size_t s = 0; s <= t; s++)
            row[s] *= inverse;
        for (size_t s = t + 1; s < rows->length; s++)
            row[s] = 0.0f;
    }
}

// d_scores (T) = p * (d_p - sum(p * d_p)), in place of d_probabilities; zero after t
static void causal_softmax_backward_rows(void *context, size_t first, size_t end)
{
    const score_rows *rows = context;
    for (size_t r = first; r < end; r++) {
        const float *p = rows->probabilities + r * rows->length;
        float *d = rows->d_probabilities + r * rows->length;
        size_t t = r % rows->length;
        float dot = 0.0f;
        for (size_t s = 0; s <= t; s++)
            dot += p[s] * d[s];
        for (size_t s = 0; s <= t; s++)
            d[s] = p[s] * (d[s] - dot);
        for (size_t s = t + 1; s < rows->length; s++)
            d[s] = 0.0f;
    }
}

/* Head h of sequence b: its queries, the keys and values of its key/value
 * head, and its (T, T) score matrix. Matrices are row-major views with the
 * strides of the (N, C) and (N, KV) activations. */
typedef struct head_view {
    size_t query, kv, scores; /* offsets into the (N, C), (N, KV) and (B, NH, T, T) arrays */
} head_view;

static head_view head_at(const dims *d, size_t b, size_t h)
{
    size_t kv_head = h / (d->heads / d->kv_heads);
    return (head_view){.query = b * d->length * d->channels + h * d->head_size,
                       .kv = b * d->length * d->kv_channels + kv_head * d->head_size,
                       .scores = (b * d->heads + h) * d->length * d->length};
}

// probabilities (B, NH, T, T) = causal softmax(query_h (T, HS) @ key_g (T, HS)^T / sqrt(HS));
// attended (N, C) = per head probabilities @ value_g (T, HS)
static void attention_forward(const lf_train_network *network, layer_activations *a, const dims *d)
{
    int length = (int)d->length, head_size = (int)d->head_size;
    int channels = (int)d->channels, kv_channels = (int)d->kv_channels;
    float scale = 1.0f / sqrtf((float)d->head_size);
    for (size_t b = 0; b < d->sequences; b++)
        for (size_t h = 0; h < d->heads; h++) {
            head_view v = head_at(d, b, h);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, length, length, head_size, scale,
                        a->query + v.query, channels, a->key + v.kv, kv_channels, 0.0f,
                        a->probabilities + v.scores, length);
        }
    score_rows rows = {.probabilities = a->probabilities, .length = d->length};
    for_rows(network->threads, d->sequences * d->heads * d->length, causal_softmax_rows, &rows);
    for (size_t b = 0; b < d->sequences; b++)
        for (size_t h = 0; h < d->heads; h++) {
            head_view v = head_at(d, b, h);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, length, head_size, length, 1.0f,
                        a->probabilities + v.scores, length, a->value + v.kv, kv_channels, 0.0f,
                        a->attended + v.query, channels);
        }
}

// from d_attended (N, C): d_query (N, C), d_key and d_value (N, KV), where the
// heads of a group add into their shared key/value head
static void attention_backward(lf_train_network *network, const layer_activations *a,
                               const dims *d)
{
    int length = (int)d->length, head_size = (int)d->head_size;
    int channels = (int)d->channels, kv_channels = (int)d->kv_channels;
    float scale = 1.0f / sqrtf((float)d->head_size);
    memset(network->d_key, 0, d->positions * d->kv_channels * sizeof(float));
    memset(network->d_value, 0, d->positions * d->kv_channels * sizeof(float));
    for (size_t b = 0; b < d->sequences; b++)
        for (size_t h = 0; h < d->heads; h++) {
            head_view v = head_at(d, b, h);
            // d_probabilities (T, T) = d_attended_h (T, HS) @ value_g^T
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, length, length, head_size, 1.0f,
                        network->d_attended + v.query, channels, a->value + v.kv, kv_channels, 0.0f,
                        network->d_probabilities + v.scores, length);
            // d_value_g (T, HS) += probabilities^T @ d_attended_h
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, length, head_size, length, 1.0f,
                        a->probabilities + v.scores, length, network->d_attended + v.query,
                        channels, 1.0f, network->d_value + v.kv, kv_channels);
        }
    score_rows rows = {.probabilities = a->probabilities,
                       .d_probabilities = network->d_probabilities,
                       .length = d->length};
    for_rows(network->threads, d->sequences * d->heads * d->length, causal_softmax_backward_rows,
             &rows);
    for (size_t b = 0; b < d->sequences; b++)
        for (size_t h = 0; h < d->heads; h++) {
            head_view v = head_at(d, b, h);
            // d_query_h (T, HS) = d_scores @ key_g * scale
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, length, head_size, length, scale,
                        network->d_probabilities + v.scores, length, a->key + v.kv, kv_channels,
                        0.0f, network->d_query + v.query, channels);
            // d_key_g (T, HS) += d_scores^T @ query_h * scale
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, length, head_size, length, scale,
                        network->d_probabilities + v.scores, length, a->query + v.query, channels,
                        1.0f, network->d_key + v.kv, kv_channels);
        }
}

// hidden (N, F) = silu(gate) * up, silu(g) = g / (1 + e^-g) as the engine writes it
static void swiglu_forward(float *hidden, const float *gate, const float *up, size_t count)
{
    for (size_t i = 0; i < count; i++)
        hidden[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// d_gate, d_up (N, F) from d_hidden; silu'(g) = s (1 + g (1 - s)), s = sigmoid(g)
static void swiglu_backward(float *d_gate, float *d_up, const float *d_hidden, const float *gate,
                            const float *up, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        float g = gate[i], sigmoid = 1.0f / (1.0f + expf(-g));
        d_up[i] = d_hidden[i] * g * sigmoid;
        d_gate[i] = d_hidden[i] * up[i] * sigmoid * (1.0f + g * (1.0f - sigmoid));
    }
}

/* Rows of (N, V) logits with their targets. */
typedef struct logit_rows {
    float *logits;
    const int32_t *targets;
    float *log_normalizers, *losses;
    size_t vocab;
    float scale; /* backward: 1 / counted targets, the mean's factor */
} logit_rows;

// log_normalizers (N) = log sum_j e^logit_j; losses (N) = log_normalizer - logit[target]
static void cross_entropy_rows(void *context, size_t first, size_t end)
{
    const logit_rows *rows = context;
    for (size_t r = first; r < end; r++) {
        const float *row = rows->logits + r * rows->vocab;
        float largest = row[0];
        for (size_t j = 1; j < rows->vocab; j++)
            if (row[j] > largest)
                largest = row[j];
        double total = 0.0;
        for (size_t j = 0; j < rows->vocab; j++)
            total += expf(row[j] - largest);
        float log_normalizer = largest + (float)log(total);
        rows->log_normalizers[r] = log_normalizer;
        int32_t target = rows->targets[r];
        rows->losses[r] = target == LF_TRAIN_NO_TARGET ? 0.0f : log_normalizer - row[target];
    }
}

// logits (N, V) become d_logits = (softmax - one_hot(target)) * scale; zero without a target
static void cross_entropy_backward_rows(void *context, size_t first, size_t end)
{
    const logit_rows *rows = context;
    for (size_t r = first; r < end; r++) {
        float *row = rows->logits + r * rows->vocab;
        int32_t target = rows->targets[r];
        if (target == LF_TRAIN_NO_TARGET) {
            memset(row, 0, rows->vocab * sizeof(float));
            continue;
        }
        float log_normalizer = rows->log_normalizers[r];
        for (size_t j = 0; j < rows->vocab; j++)
            row[j] = expf(row[j] - log_normalizer) * rows->scale;
        row[target] -= rows->scale;
    }
}

/* ---- the passes ---- */

static size_t layer_offset(const lf_train_network *network, uint32_t layer, enum layer_tensor which)
{
    return network->tensors[1 + (size_t)layer * TENSORS_PER_LAYER + which].offset;
}

static size_t output_norm_offset(const lf_train_network *network)
{
    return network->tensors[network->tensor_count - 1].offset;
}

int64_t lf_train_forward(lf_train_network *network, const float *parameters,
                         const lf_train_batch *batch, lf_train_loss *loss)
{
    const lf_transformer_config *config = &network->config;
    if (batch->rows == 0 || batch->rows > network->max_rows || batch->length == 0 ||
        batch->length > network->max_length)
        return -EINVAL;
    dims d = dims_of(config, batch->rows, batch->length);
    for (size_t p = 0; p < d.positions; p++)
        if (batch->inputs[p] >= config->vocab_size ||
            (batch->targets[p] != LF_TRAIN_NO_TARGET &&
             (batch->targets[p] < 0 || (uint32_t)batch->targets[p] >= config->vocab_size)))
            return -EINVAL;
    size_t n = d.positions;
    const float *embedding = parameters + network->tensors[0].offset;
    embedding_forward(network->layers[0].input, batch->inputs, embedding, n, d.channels);
    for (uint32_t l = 0; l < config->layer_count; l++) {
        layer_activations *a = &network->layers[l];
        float *next = l + 1 < config->layer_count ? network->layers[l + 1].input : network->output;
#define WEIGHT(which) (parameters + layer_offset(network, l, which))
        rmsnorm_forward(a->attention_normed, a->attention_rstd, a->input, WEIGHT(ATTENTION_NORM), n,
                        d.channels, config->norm_epsilon);
        matmul_forward(a->query, a->attention_normed, WEIGHT(QUERY), n, d.channels, d.channels);
        matmul_forward(a->key, a->attention_normed, WEIGHT(KEY), n, d.channels, d.kv_channels);
        matmul_forward(a->value, a->attention_normed, WEIGHT(VALUE), n, d.channels, d.kv_channels);
        rope(a->query, network, &d, d.heads, 1.0f);
        rope(a->key, network, &d, d.kv_heads, 1.0f);
        attention_forward(network, a, &d);
        matmul_forward(a->middle, a->attended, WEIGHT(ATTENTION_OUTPUT), n, d.channels, d.channels);
        for (size_t i = 0; i < n * d.channels; i++)
            a->middle[i] += a->input[i];
        rmsnorm_forward(a->feed_forward_normed, a->feed_forward_rstd, a->middle,
                        WEIGHT(FEED_FORWARD_NORM), n, d.channels, config->norm_epsilon);
        matmul_forward(a->gate, a->feed_forward_normed, WEIGHT(GATE), n, d.channels, d.hidden);
        matmul_forward(a->up, a->feed_forward_normed, WEIGHT(UP), n, d.channels, d.hidden);
        swiglu_forward(a->hidden, a->gate, a->up, n * d.hidden);
        matmul_forward(next, a->hidden, WEIGHT(DOWN), n, d.hidden, d.channels);
        for (size_t i = 0; i < n * d.channels; i++)
            next[i] += a->middle[i];
#undef WEIGHT
    }
    rmsnorm_forward(network->output_normed, network->output_rstd, network->output,
                    parameters + output_norm_offset(network), n, d.channels, config->norm_epsilon);
    matmul_forward(network->logits, network->output_normed, embedding, n, d.channels, d.vocab);
    logit_rows rows = {.logits = network->logits,
                       .targets = batch->targets,
                       .log_normalizers = network->log_normalizers,
                       .losses = network->losses,
                       .vocab = d.vocab};
    for_rows(network->threads, n, cross_entropy_rows, &rows);
    *loss = (lf_train_loss){0};
    for (size_t p = 0; p < n; p++) {
        loss->nats += network->losses[p];
        loss->targets += batch->targets[p] != LF_TRAIN_NO_TARGET;
    }
    network->targets = loss->targets;
    return 0;
}

void lf_train_backward(lf_train_network *network, const float *parameters,
                       const lf_train_batch *batch, float *gradients)
{
    const lf_transformer_config *config = &network->config;
    dims d = dims_of(config, batch->rows, batch->length);
    size_t n = d.positions;
    const float *embedding = parameters + network->tensors[0].offset;
    float *d_embedding = gradients + network->tensors[0].offset;
    logit_rows rows = {.logits = network->logits,
                       .targets = batch->targets,
                       .log_normalizers = network->log_normalizers,
                       .vocab = d.vocab,
                       .scale = network->targets ? 1.0f / (float)network->targets : 0.0f};
    for_rows(network->threads, n, cross_entropy_backward_rows, &rows);
    matmul_backward(network->d_normed, d_embedding, network->logits, network->output_normed,
                    embedding, n, d.channels, d.vocab, false);
    memset(network->d_stream, 0, n * d.channels * sizeof(float));
    rmsnorm_backward(network->d_stream, gradients + output_norm_offset(network), network->d_normed,
                     network->output, parameters + output_norm_offset(network),
                     network->output_rstd, n, d.channels);
    /* d_stream carries the residual stream's gradient down the layers: the
     * residual adds pass it through, each block adds its own path. */
    for (uint32_t l = config->layer_count; l-- > 0;) {
        const layer_activations *a = &network->layers[l];
#define WEIGHT(which) (parameters + layer_offset(network, l, which))
#define GRADIENT(which) (gradients + layer_offset(network, l, which))
        matmul_backward(network->d_hidden, GRADIENT(DOWN), network->d_stream, a->hidden,
                        WEIGHT(DOWN), n, d.hidden, d.channels, false);
        swiglu_backward(network->d_gate, network->d_up, network->d_hidden, a->gate, a->up,
                        n * d.hidden);
        matmul_backward(network->d_normed, GRADIENT(GATE), network->d_gate, a->feed_forward_normed,
                        WEIGHT(GATE), n, d.channels, d.hidden, false);
        matmul_backward(network->d_normed, GRADIENT(UP), network->d_up, a->feed_forward_normed,
                        WEIGHT(UP), n, d.channels, d.hidden, true);
        rmsnorm_backward(network->d_stream, GRADIENT(FEED_FORWARD_NORM), network->d_normed,
                         a->middle, WEIGHT(FEED_FORWARD_NORM), a->feed_forward_rstd, n, d.channels);
        matmul_backward(network->d_attended, GRADIENT(ATTENTION_OUTPUT), network->d_stream,
                        a->attended, WEIGHT(ATTENTION_OUTPUT), n, d.channels, d.channels, false);
        attention_backward(network, a, &d);
        rope(network->d_query, network, &d, d.heads, -1.0f);
        rope(network->d_key, network, &d, d.kv_heads, -1.0f);
        matmul_backward(network->d_normed, GRADIENT(QUERY), network->d_query, a->attention_normed,
                        WEIGHT(QUERY), n, d.channels, d.channels, false);
        matmul_backward(network->d_normed, GRADIENT(KEY), network->d_key, a->attention_normed,
                        WEIGHT(KEY), n, d.channels, d.kv_channels, true);
        matmul_backward(network->d_normed, GRADIENT(VALUE), network->d_value, a->attention_normed,
                        WEIGHT(VALUE), n, d.channels, d.kv_channels, true);
        rmsnorm_backward(network->d_stream, GRADIENT(ATTENTION_NORM), network->d_normed, a->input,
                         WEIGHT(ATTENTION_NORM), a->attention_rstd, n, d.channels);
#undef WEIGHT
#undef GRADIENT
    }
    embedding_backward(d_embedding, network->d_stream, batch->inputs, n, d.channels);
}
