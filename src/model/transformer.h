/* The decoder-only transformer, for inference: RMSNorm, RoPE, SwiGLU, tied
 * embeddings, grouped-query attention; int8 weights with per-row scales.
 *
 * Bit-exact by construction (DESIGN.md §4): matrix products are int8 x int8
 * with int32 sums, exact whatever the SIMD width or blocking; every float
 * step is element-wise or reduces in an order fixed by this code (never by
 * the batch, the thread or the vector width), with exp/sin/cos from
 * exact_math.h. A sequence's logits therefore depend only on its own
 * tokens: alone or in a batch of 64, on one thread or two, portable or
 * AVX-512 build, the bits are the same. */
#ifndef LLMFUSE_MODEL_TRANSFORMER_H
#define LLMFUSE_MODEL_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/parallel.h"

typedef struct lf_transformer_config {
    uint32_t vocab_size;
    uint32_t context_length;   /* attention window; longer inputs slide */
    uint32_t embedding_size;   /* d */
    uint32_t layer_count;
    uint32_t head_count;
    uint32_t kv_head_count;    /* < head_count: grouped-query attention */
    uint32_t feed_forward_size;
    float rope_base;
    float norm_epsilon;
} lf_transformer_config;

/* One weight matrix as inference uses it: rows (OC, C) of int8 with a
 * float scale per row, plus what the SIMD kernels prepare at load. */
typedef struct lf_int8_matrix {
    uint32_t rows, columns;
    const int8_t *values;   /* rows * columns, row-major */
    const float *scales;    /* rows */
    const int32_t *row_sums; /* rows: sum of each row's values (VNNI's unsigned inputs) */
    const int8_t *packed;   /* the values in lf_kernel_pack's tiles */
} lf_int8_matrix;

typedef struct lf_transformer_layer {
    const float *attention_norm;   /* d */
    lf_int8_matrix query, key, value, attention_output;
    const float *feed_forward_norm; /* d */
    lf_int8_matrix gate, up, down;
} lf_transformer_layer;

typedef struct lf_transformer {
    lf_transformer_config config;
    lf_int8_matrix embedding;      /* (vocab, d), also the output projection */
    lf_transformer_layer *layers;
    const float *output_norm;      /* d */
    double *rope_frequencies;      /* head_size / 2: base^(-2i / head_size) */
    void *owned;                   /* storage this struct allocated */
} lf_transformer;

/* One sequence's keys and values, a ring of context_length positions. */
typedef struct lf_transformer_cache lf_transformer_cache;
/* Scratch memory for steps of up to `capacity` rows at once, reused for
 * every step, and the threads that share each step's work. */
typedef struct lf_transformer_workspace lf_transformer_workspace;

/* Zeroed memory on huge pages where the system gives them (free() it), for
 * what every step streams through: the weights (10.4 MB for the default
 * model) and a cache (3.9 MB). On 4 KiB pages that is a TLB miss and a
 * stop of the hardware prefetcher every 4 KiB; decoding alice29.txt with
 * the default model took 5% less time with the weights on huge pages
 * too (mean of 7 runs each, 10.25 -> 9.67 s). */
void *lf_transformer_zeroed_huge(size_t bytes);

int64_t lf_transformer_validate_config(const lf_transformer_config *config, lf_diagnostic *diagnostic);
int64_t lf_transformer_cache_new(const lf_transformer *model, lf_transformer_cache **cache);
void lf_transformer_cache_free(lf_transformer_cache *cache);
/* Starts a new sequence in the cache: as good as a new cache, without
 * allocating one (attention reads only the slots of positions seen). */
void lf_transformer_cache_reset(lf_transformer_cache *cache);
/* Tokens the cache has seen (its next position). */
uint64_t lf_transformer_cache_position(const lf_transformer_cache *cache);
/* The team's threads (NULL: the caller alone) share every step: each
 * product's output columns and attention's (sequence, key/value head)
 * pairs. Decoding reads all weights for every token, so two threads on one
 * step read half each (docs/DECISIONS.md, "Threads inside a step"); the
 * bits never depend on the team. The team must outlive the workspace and
 * run one step at a time. */
int64_t lf_transformer_workspace_new(const lf_transformer *model, size_t capacity, lf_team *team,
                                     lf_transformer_workspace **workspace);
/* The most threads worth sharing one step, until measured beyond two cores:
 * every round waits for its slowest member, and with more members each
 * gets a few tiles of a product and at most one attention head. */
#define LF_TRANSFORMER_STEP_THREADS 4
void lf_transformer_workspace_free(lf_transformer_workspace *workspace);

/* Advances sequences by `count` (<= the workspace's capacity) tokens:
 * logits (count, vocab) for the token after tokens[i] in caches[i]. Rows
 * that name the same cache are adjacent and consecutive tokens of that
 * sequence, in row order (an encoder knows its next tokens: feeding several
 * at once reads the weights and the cache once for all of them); the
 * logits are those of feeding them one step at a time. -EINVAL for a token
 * outside the vocabulary, too many rows, or rows of one cache apart. */
int64_t lf_transformer_step(const lf_transformer *model, lf_transformer_workspace *workspace,
                            lf_transformer_cache *const *caches, const uint32_t *tokens,
                            size_t count, float *logits);

#endif
