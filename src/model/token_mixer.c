#include "model/token_mixer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/exact_math.h"

/* Context orders: the last 1 to 5 tokens. */
#define ORDERS 5
/* Tokens remembered per context; when full, the least counted one goes. */
#define SLOT_TOKENS 14
/* Counts are halved when a context's total passes this: recent behaviour
 * weighs more than old. */
#define TOTAL_LIMIT 1024
/* Each sighting adds this to a token's count (a first sighting is worth
 * more than a floor of 1 would make it). */
#define COUNT_STEP 2
/* log2 of the slots of the hashed orders (2 to 5): a 1 MiB segment has
 * about 330,000 tokens; colliding contexts evict each other (2^16 slots
 * gained nothing measurable and doubled the memory: 8 MiB per stream now). Order 1 has a
 * slot per token. */
#define HASHED_SLOT_BITS 15
/* Weight sets: per order, a bucket of its context's total (0: unseen,
 * 1-3: growing), and whether the longest seen context has one token only. */
#define TOTAL_BUCKETS 4
#define WEIGHT_SETS ((ORDERS + 1) * TOTAL_BUCKETS * TOTAL_BUCKETS * 2)
#define COMPONENTS (ORDERS + 1) /* the model, then the orders */
/* Tuned on asyoulik.txt and the small Canterbury files with the shipped
 * model; the results are flat around these values. */
#define LEARNING_RATE 0.1
#define INITIAL_ORDER_WEIGHT -1.5 /* log-weight of an order against the model's 0 */
#define SHARPNESS_RATE 0.001

typedef struct context_slot {
    uint32_t check; /* which context holds the slot; 0: none */
    uint16_t total;
    uint16_t used;
    uint16_t tokens[SLOT_TOKENS];
    uint16_t counts[SLOT_TOKENS];
} context_slot;

struct lf_token_mixer {
    uint32_t vocab_size;
    uint32_t history[ORDERS]; /* the last tokens, most recent first */
    uint32_t seen;            /* tokens coded so far (capped at ORDERS) */
    context_slot *slots[ORDERS];
    uint32_t slot_bits[ORDERS];
    double log_weights[WEIGHT_SETS][COMPONENTS];
    uint32_t *weights; /* (vocab) scratch for the mixed table */
    /* the last prediction, for the update */
    const lf_frequencies *model, *mixed;
    context_slot *found[ORDERS]; /* the orders' contexts, NULL when unseen */
    uint32_t set;
    double shares[COMPONENTS]; /* each component's weight, 0 when absent */
    /* the model's logits are multiplied by sharpness (1 / temperature),
     * learned too: out of its domain a model is overconfident */
    double sharpness;
    const float *logits;
    double mean_logit; /* of the sharpened model's distribution */
};

int64_t lf_token_mixer_new(uint32_t vocab_size, lf_token_mixer **mixer)
{
    *mixer = NULL;
    if (vocab_size == 0 || vocab_size > LF_TOKEN_MIXER_MAX_VOCAB)
        return -EINVAL;
    lf_token_mixer *created = calloc(1, sizeof *created);
    if (!created)
        return -ENOMEM;
    created->vocab_size = vocab_size;
    created->slot_bits[0] = 0;
    for (uint32_t bits = 0; (UINT32_C(1) << bits) < vocab_size; bits++)
        created->slot_bits[0] = bits + 1;
    for (int order = 1; order < ORDERS; order++)
        created->slot_bits[order] = HASHED_SLOT_BITS;
    bool allocated = (created->weights = malloc(vocab_size * sizeof *created->weights)) != NULL;
    for (int order = 0; order < ORDERS && allocated; order++)
        allocated = (created->slots[order] = calloc((size_t)1 << created->slot_bits[order],
                                                    sizeof(context_slot))) != NULL;
    if (!allocated) {
        lf_token_mixer_free(created);
        return -ENOMEM;
    }
    created->sharpness = 1.0;
    for (int set = 0; set < WEIGHT_SETS; set++)
        for (int component = 1; component < COMPONENTS; component++)
            created->log_weights[set][component] = INITIAL_ORDER_WEIGHT;
    *mixer = created;
    return 0;
}

void lf_token_mixer_free(lf_token_mixer *mixer)
{
    if (!mixer)
        return;
    for (int order = 0; order < ORDERS; order++)
        free(mixer->slots[order]);
    free(mixer->weights);
    free(mixer);
}

/* The slot of the context of the last order + 1 tokens and the check that
 * identifies it there (never 0). */
static context_slot *slot_of(const lf_token_mixer *mixer, int order, uint32_t *check)
{
    if (order == 0) {
        *check = mixer->history[0] + 1;
        return &mixer->slots[0][mixer->history[0]];
    }
    uint64_t hash = (uint64_t)(order + 1) * UINT64_C(0x9E3779B97F4A7C15);
    for (int i = 0; i <= order; i++)
        hash = (hash ^ mixer->history[i]) * UINT64_C(0xD6E8FEB86659FD93);
    hash ^= hash >> 29;
    *check = (uint32_t)(hash >> 32) | 1;
    return &mixer->slots[order][hash & ((UINT64_C(1) << mixer->slot_bits[order]) - 1)];
}

static uint32_t count_of(const context_slot *slot, uint32_t token)
{
    for (uint32_t i = 0; i < slot->used; i++)
        if (slot->tokens[i] == token)
            return slot->counts[i];
    return 0;
}

static uint32_t total_bucket(const context_slot *slot)
{
    if (!slot)
        return 0;
    return slot->total < 2 * COUNT_STEP ? 1 : slot->total < 8 * COUNT_STEP ? 2 : 3;
}

static uint32_t frequency_of(const lf_frequencies *table, uint32_t token)
{
    return table->cumulative[token + 1] - table->cumulative[token];
}

float lf_token_mixer_sharpness(const lf_token_mixer *mixer) { return (float)mixer->sharpness; }

int64_t lf_token_mixer_predict(lf_token_mixer *mixer, const float *logits,
                               const lf_frequencies *model, lf_frequencies *mixed)
{
    if (model->symbol_count != mixer->vocab_size)
        return -EINVAL;
    double mean_logit = 0.0;
    for (uint32_t token = 0; token < mixer->vocab_size; token++)
        mean_logit += (double)frequency_of(model, token) * logits[token];
    mixer->mean_logit = mean_logit / LF_FREQUENCY_TOTAL;
    mixer->logits = logits;
    int longest_order = -1;
    for (int order = 0; order < ORDERS; order++) {
        context_slot *found = NULL;
        if ((uint32_t)order < mixer->seen) {
            uint32_t check;
            context_slot *slot = slot_of(mixer, order, &check);
            if (slot->check == check && slot->total > 0) {
                found = slot;
                longest_order = order;
            }
        }
        mixer->found[order] = found;
    }
    /* the set: the longest seen order, its total and the one below's, and
     * whether the longest has a single token */
    const context_slot *longest = longest_order >= 0 ? mixer->found[longest_order] : NULL;
    const context_slot *below = longest_order >= 1 ? mixer->found[longest_order - 1] : NULL;
    uint32_t set = (uint32_t)(longest_order + 1);
    set = set * TOTAL_BUCKETS + total_bucket(longest);
    set = set * TOTAL_BUCKETS + total_bucket(below);
    set = set * 2 + (longest && longest->used == 1);
    mixer->set = set;
    /* shares: softmax of the present components' log-weights */
    const double *log_weights = mixer->log_weights[set];
    double largest = log_weights[0], sum = 0.0;
    for (int order = 0; order < ORDERS; order++)
        if (mixer->found[order] && log_weights[order + 1] > largest)
            largest = log_weights[order + 1];
    for (int component = 0; component < COMPONENTS; component++) {
        bool present = component == 0 || mixer->found[component - 1];
        mixer->shares[component] = present ? lf_exact_exp(log_weights[component] - largest) : 0.0;
        sum += mixer->shares[component];
    }
    for (int component = 0; component < COMPONENTS; component++)
        mixer->shares[component] /= sum;
    // weights (V) = share_0 * model frequencies + sum over orders share_k * 2^30 * count / total
    uint64_t model_scale = (uint64_t)(mixer->shares[0] * 2147483648.0); /* 2^31 fixed point */
    for (uint32_t token = 0; token < mixer->vocab_size; token++)
        mixer->weights[token] = (uint32_t)(((uint64_t)frequency_of(model, token) * model_scale) >> 31);
    for (int order = 0; order < ORDERS; order++) {
        const context_slot *slot = mixer->found[order];
        if (!slot)
            continue;
        double scale = mixer->shares[order + 1] * (double)LF_FREQUENCY_TOTAL / slot->total;
        for (uint32_t i = 0; i < slot->used; i++)
            if (slot->tokens[i] < mixer->vocab_size)
                mixer->weights[slot->tokens[i]] += (uint32_t)(scale * slot->counts[i]);
    }
    mixer->model = model;
    mixer->mixed = mixed;
    return lf_frequencies_set(mixed, mixer->weights, mixer->vocab_size);
}

static void remember(context_slot *slot, uint32_t check, uint32_t token)
{
    if (slot->check != check)
        *slot = (context_slot){.check = check};
    uint32_t i = 0;
    while (i < slot->used && slot->tokens[i] != token)
        i++;
    if (i == slot->used) {
        if (slot->used < SLOT_TOKENS) {
            slot->used++;
        } else { /* replace the least counted (the first of equals) */
            i = 0;
            for (uint32_t j = 1; j < SLOT_TOKENS; j++)
                if (slot->counts[j] < slot->counts[i])
                    i = j;
            slot->total = (uint16_t)(slot->total - slot->counts[i]);
        }
        slot->tokens[i] = (uint16_t)token;
        slot->counts[i] = 0;
    }
    slot->counts[i] = (uint16_t)(slot->counts[i] + COUNT_STEP);
    slot->total = (uint16_t)(slot->total + COUNT_STEP);
    if (slot->total > TOTAL_LIMIT) {
        slot->total = 0;
        for (uint32_t j = 0; j < slot->used; j++) {
            slot->counts[j] = (uint16_t)((slot->counts[j] + 1) / 2);
            slot->total = (uint16_t)(slot->total + slot->counts[j]);
        }
    }
}

void lf_token_mixer_update(lf_token_mixer *mixer, uint32_t token)
{
    if (mixer->model) {
        /* d log p(token) / d log_weight_k = share_k * (p_k(token) / p(token) - 1) */
        double mixed = (double)frequency_of(mixer->mixed, token);
        double probability[COMPONENTS];
        probability[0] = (double)frequency_of(mixer->model, token);
        for (int order = 0; order < ORDERS; order++) {
            const context_slot *slot = mixer->found[order];
            probability[order + 1] =
                slot ? (double)LF_FREQUENCY_TOTAL * count_of(slot, token) / slot->total : 0.0;
        }
        /* d log p(token) / d sharpness = share_0 p_0(token) (logit(token) - mean logit) / p(token) */
        double slope = mixer->shares[0] * probability[0] / mixed *
                       ((double)mixer->logits[token] - mixer->mean_logit) / mixer->sharpness;
        mixer->sharpness += SHARPNESS_RATE * slope;
        if (mixer->sharpness < 0.25)
            mixer->sharpness = 0.25;
        if (mixer->sharpness > 2.0)
            mixer->sharpness = 2.0;
        double *log_weights = mixer->log_weights[mixer->set];
        for (int component = 0; component < COMPONENTS; component++)
            if (mixer->shares[component] > 0.0)
                log_weights[component] += LEARNING_RATE * mixer->shares[component] *
                                          (probability[component] / mixed - 1.0);
        mixer->model = mixer->mixed = NULL;
    }
    /* the token followed the contexts of the history so far */
    for (int order = 0; order < ORDERS && (uint32_t)order < mixer->seen; order++) {
        uint32_t check;
        context_slot *slot = slot_of(mixer, order, &check);
        remember(slot, check, token);
    }
    for (int i = ORDERS - 1; i > 0; i--)
        mixer->history[i] = mixer->history[i - 1];
    mixer->history[0] = token;
    if (mixer->seen < ORDERS)
        mixer->seen++;
}
