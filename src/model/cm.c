/* The adaptive context-mixing byte model (cm.h; the design and its
 * measurements are in docs/DECISIONS.md), written after the published lpaq
 * and paq8 designs.
 *
 * Per bit: eight contexts (orders 0, 1, 2, 3, 4 and 6, the current word, the
 * current and previous word) each hold a one-byte bit history for the
 * current partial byte; an adaptive map turns each history into a
 * probability. A match model predicts the bit that followed the last
 * occurrence of the previous eight bytes. Two small neural networks, with
 * weights chosen by small contexts, mix these in the logistic ("stretch")
 * domain, and two refiners (adaptive probability maps indexed by the order-1
 * and the order-2 context) correct the mix.
 *
 * Everything is integer arithmetic with defined rounding (no floating point,
 * no shifts of negative values, no signed overflow) and no result depends on
 * an address, so the predictions are a pure function of the bits seen so
 * far: the same on every machine, compiler and optimisation level. */
#include "model/cm.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__) && !defined(LF_CM_PORTABLE)
#include <emmintrin.h>
#define LF_CM_SSE2 1
#endif

/* ---------------------------------------------------------------------------
 * Integer helpers. */

/* floor(value / 2^shift) for 1 <= shift <= 31. A right shift of a negative
 * value is implementation-defined in C, so the value is biased into unsigned
 * range, shifted, and the bias taken back out. */
static inline int32_t floor_shift32(int32_t value, unsigned shift)
{
    return (int32_t)(((uint32_t)value + 0x80000000u) >> shift) - (int32_t)(0x80000000u >> shift);
}

static inline int32_t clamp32(int32_t value, int32_t low, int32_t high)
{
    return value < low ? low : value > high ? high : value;
}

/* Mixes two words into a 32-bit hash (all operations wrap, so they are
 * defined for every input). Every hashed index of the model comes from
 * here; the first argument also tells the contexts apart. */
static inline uint32_t hash_pair(uint32_t a, uint32_t b)
{
    uint32_t h = a * 0x9E3779B1u + (b ^ 0x5BD1E995u) * 0x85EBCA77u;
    h ^= h >> 15;
    h *= 0xC2B2AE3Du;
    h ^= h >> 13;
    h *= 0x27D4EB2Fu;
    h ^= h >> 16;
    return h;
}

/* A hint to start loading memory that will be needed soon; changes no
 * result. */
static inline void prefetch(const void *address)
{
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(address);
#else
    (void)address;
#endif
}

/* ---------------------------------------------------------------------------
 * The logistic domain. squash(x) = 65536 / (1 + e^(-x/256)) for x in
 * -2047..2047, a probability in units of 2^-16; stretch is its inverse,
 * tabulated on 12-bit probabilities. Both are computed with integers when a
 * model is created, not with libm (whose last bits differ between
 * versions): e^(-1/256) comes from its Taylor series in 62-bit fixed point,
 * its powers from repeated rounded 32-bit fixed-point products. */

enum { STRETCH_MAX = 2047 };

static void build_logistic_tables(uint16_t squash_table[2 * STRETCH_MAX + 1],
                                  int16_t stretch_table[4096])
{
    /* e^(-1/256) = sum over n of (-1/256)^n / n!, in units of 2^-62. */
    uint64_t term = UINT64_C(1) << 62, sum = term;
    for (unsigned n = 1; term; n++) {
        term /= 256u * n;
        sum = (n & 1) ? sum - term : sum + term;
    }
    const uint64_t step = (sum + (UINT64_C(1) << 29)) >> 30; /* units of 2^-32 */

    uint64_t power = UINT64_C(1) << 32; /* e^(-k/256) in units of 2^-32 */
    for (int k = 0; k <= STRETCH_MAX; k++) {
        const uint64_t denominator = (UINT64_C(1) << 32) + power;
        uint64_t p = ((UINT64_C(1) << 48) + denominator / 2) / denominator;
        if (p > 65535)
            p = 65535;
        squash_table[STRETCH_MAX + k] = (uint16_t)p;
        squash_table[STRETCH_MAX - k] = (uint16_t)(65536 - p);
        power = (power * step + (UINT64_C(1) << 31)) >> 32;
    }

    /* stretch(i) for the 12-bit probability i: the x whose squash is nearest
     * to the middle of bucket i. squash increases, so one scan finds all. */
    int x = -STRETCH_MAX;
    for (int i = 0; i < 4096; i++) {
        const int target = i * 16 + 8;
        while (x < STRETCH_MAX &&
               squash_table[STRETCH_MAX + x + 1] - target <= target - squash_table[STRETCH_MAX + x])
            x++;
        stretch_table[i] = (int16_t)x;
    }
}

/* ---------------------------------------------------------------------------
 * Bit histories. What a context has seen at one bit position is kept in one
 * byte: a state standing for a count of zeros and of ones and, for short
 * mixed histories, which bit came last. When a bit arrives its count grows
 * and the opposite count is partly forgotten (beyond 2, halved), so a state
 * follows data whose statistics change. Counts are bounded, more tightly
 * the more mixed they are, so all states fit in a byte: long pure runs
 * matter (a deterministic context), long mixed histories need only their
 * ratio. The table is generated at creation by a breadth-first walk from the
 * empty history, which numbers the 252 reachable states; what a state means
 * for prediction is learned by the adaptive maps below. */

enum {
    HISTORY_MAX_SMALLER = 6,   /* the smaller count never exceeds this */
    HISTORY_LAST_BIT_TOTAL = 6 /* mixed histories up to this length remember their last bit */
};
/* The larger count's bound, indexed by the smaller count. */
static const uint8_t history_larger_bound[HISTORY_MAX_SMALLER + 1] = {47, 36, 24, 12, 8, 7, 6};

typedef struct {
    uint8_t zeros, ones, last;
} bit_history;

static bit_history history_after(bit_history h, int bit)
{
    int same = bit ? h.ones : h.zeros, other = bit ? h.zeros : h.ones;
    same++;
    if (other > 2)
        other = 2 + (other - 2) / 2;
    for (;;) {
        const int smaller = same < other ? same : other;
        if (smaller > HISTORY_MAX_SMALLER) {
            other--;
            continue;
        }
        const int bound = history_larger_bound[smaller];
        if (same > bound)
            same = bound;
        if (other > bound)
            other = bound;
        break;
    }
    bit_history next = {(uint8_t)(bit ? other : same), (uint8_t)(bit ? same : other), 0};
    if (next.zeros && next.ones && next.zeros + next.ones <= HISTORY_LAST_BIT_TOTAL)
        next.last = (uint8_t)bit;
    return next;
}

typedef struct {
    uint8_t next[256][2];
    uint8_t zeros[256], ones[256];
} history_table;

/* 0 when the states do not fit in a byte (they do: 252). */
static int build_history_table(history_table *table)
{
    uint16_t number[64][64][2]; /* a state's number + 1; 0 while unnumbered */
    memset(number, 0, sizeof number);
    bit_history queue[256];
    unsigned head = 0, tail = 0;
    queue[tail++] = (bit_history){0, 0, 0};
    number[0][0][0] = 1;
    while (head < tail) {
        const bit_history h = queue[head];
        const unsigned index = head++;
        table->zeros[index] = h.zeros;
        table->ones[index] = h.ones;
        for (int bit = 0; bit < 2; bit++) {
            const bit_history n = history_after(h, bit);
            uint16_t *slot = &number[n.zeros][n.ones][n.last];
            if (!*slot) {
                if (tail == 256)
                    return 0;
                queue[tail++] = n;
                *slot = (uint16_t)tail;
            }
            table->next[index][bit] = (uint8_t)(*slot - 1);
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * Adaptive maps from a small context (a bit history, a match length) to a
 * probability. An entry holds a 22-bit probability and a 10-bit count; the
 * probability moves toward each observed bit by 1/(count + 1.5), so it
 * starts as the observed frequency and becomes a slow exponential average
 * once the count reaches its limit. */

enum { MAP_COUNT_BITS = 10, MAP_COUNT_LIMIT = 1023 };

static inline uint32_t map_entry(uint32_t probability22)
{
    return probability22 << MAP_COUNT_BITS;
}

static inline uint32_t map_probability(uint32_t entry) /* 16 bits */
{
    return entry >> 16;
}

static inline void map_update(uint32_t *entry, int bit, const uint16_t *rate)
{
    const uint32_t value = *entry;
    const uint32_t count = value & ((1u << MAP_COUNT_BITS) - 1);
    const uint64_t probability = value >> MAP_COUNT_BITS;
    const uint64_t target = bit ? (1u << 22) - 1 : 0;
    /* p + (target - p) * r, rounded down, as a weighted mean of two
     * non-negative terms */
    const uint64_t r = rate[count];
    const uint32_t moved = (uint32_t)((probability * (65536 - r) + target * r) >> 16);
    *entry = (moved << MAP_COUNT_BITS) | (count + (count < MAP_COUNT_LIMIT));
}

/* ---------------------------------------------------------------------------
 * Mixing. A neuron outputs the weighted sum of stretched probabilities,
 * itself a stretched probability, and learns by a gradient step on coding
 * cost: w += rate * x * (bit - p). Inputs (+-2047) and weights (units of
 * 2^-13, so +-4) are 16-bit, so every product and a sum of 16 of them are
 * exact in 32 bits, and the loops map onto the SIMD multiply-add that every
 * x86-64 has; the SSE2 code computes exactly the integers of the portable
 * code. */

enum {
    WEIGHT_SHIFT = 13,
    MIXER_INPUTS = 16,      /* 11 used; padded for the SIMD lanes */
    MIXER_RATE_FINAL = 20,  /* learning rate, units of 1/8 (see mixer_error) */
    MIXER_RATE_EXTRA = 40,  /* added at the start, decaying as 1/bytes */
    MIXER_RATE_HALF = 1 << 18 /* bytes after which the extra has halved */
};

/* The inputs as the mixers read them: in SSE2 registers, built from the
 * scalars directly (a vector load right after narrow stores of the same
 * bytes would stall on store forwarding), or in memory. */
#ifdef LF_CM_SSE2
typedef struct {
    __m128i lanes[MIXER_INPUTS / 8];
} mixer_inputs;

static inline mixer_inputs gather_inputs(const int16_t x[MIXER_INPUTS])
{
    _Static_assert(MIXER_INPUTS == 16, "two SSE2 registers of inputs");
    return (mixer_inputs){{_mm_setr_epi16(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]),
                           _mm_setr_epi16(x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15])}};
}

static inline void store_inputs(int16_t *restrict destination, const mixer_inputs *inputs)
{
    for (int i = 0; i < MIXER_INPUTS / 8; i++)
        _mm_store_si128((__m128i *)(destination + 8 * i), inputs->lanes[i]);
}

static int32_t mixer_dot(const mixer_inputs *inputs, const int16_t *restrict weights)
{
    __m128i sum = _mm_setzero_si128();
    for (int i = 0; i < MIXER_INPUTS / 8; i++) {
        const __m128i w = _mm_load_si128((const __m128i *)(weights + 8 * i));
        sum = _mm_add_epi32(sum, _mm_madd_epi16(inputs->lanes[i], w));
    }
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(1, 0, 3, 2)));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(2, 3, 0, 1)));
    const int32_t total = _mm_cvtsi128_si32(sum);
    return clamp32(floor_shift32(total, WEIGHT_SHIFT), -STRETCH_MAX, STRETCH_MAX);
}
#else
typedef struct {
    int16_t values[MIXER_INPUTS];
} mixer_inputs;

static inline mixer_inputs gather_inputs(const int16_t x[MIXER_INPUTS])
{
    mixer_inputs inputs;
    memcpy(inputs.values, x, sizeof inputs.values);
    return inputs;
}

static inline void store_inputs(int16_t *restrict destination, const mixer_inputs *inputs)
{
    memcpy(destination, inputs->values, sizeof inputs->values);
}

static int32_t mixer_dot(const mixer_inputs *inputs, const int16_t *restrict weights)
{
    int32_t total = 0;
    for (int i = 0; i < MIXER_INPUTS; i++)
        total += inputs->values[i] * weights[i];
    return clamp32(floor_shift32(total, WEIGHT_SHIFT), -STRETCH_MAX, STRETCH_MAX);
}
#endif

/* The error to train with: (bit - p) * rate, in units of 2^-12 (|error| <
 * 2^15 while rate <= 63). */
static inline int32_t mixer_error(int bit, uint32_t probability16, int32_t rate)
{
    return floor_shift32((((int32_t)bit << 16) - (int32_t)probability16) * rate, 7);
}

/* w += x * error / 2^17, rounded to nearest, saturated to 16 bits. */
static void mixer_train(const int16_t *restrict inputs, int16_t *restrict weights, int32_t error)
{
#ifdef LF_CM_SSE2
    const __m128i factor = _mm_set1_epi16((int16_t)error);
    const __m128i half = _mm_set1_epi32(1 << 16);
    for (int i = 0; i < MIXER_INPUTS; i += 8) {
        const __m128i x = _mm_load_si128((const __m128i *)(inputs + i));
        const __m128i low = _mm_mullo_epi16(x, factor), high = _mm_mulhi_epi16(x, factor);
        /* the exact 32-bit products, rounded and divided by 2^17 */
        const __m128i product0 = _mm_unpacklo_epi16(low, high);
        const __m128i product1 = _mm_unpackhi_epi16(low, high);
        const __m128i step0 = _mm_srai_epi32(_mm_add_epi32(product0, half), 17);
        const __m128i step1 = _mm_srai_epi32(_mm_add_epi32(product1, half), 17);
        __m128i *w = (__m128i *)(weights + i);
        _mm_store_si128(w, _mm_adds_epi16(_mm_load_si128(w), _mm_packs_epi32(step0, step1)));
    }
#else
    for (int i = 0; i < MIXER_INPUTS; i++) {
        const int32_t step = floor_shift32(inputs[i] * error + (1 << 16), 17);
        weights[i] = (int16_t)clamp32(weights[i] + step, INT16_MIN, INT16_MAX);
    }
#endif
}

/* ---------------------------------------------------------------------------
 * Refiners (adaptive probability maps, secondary estimation): for each of
 * their contexts, a piecewise-linear map from the mixed stretch(p) to a
 * corrected probability, with 17 knots 256 apart, learned. Entries are
 * stored as their difference from the identity map (modulo 2^16), so a
 * zeroed table is the identity and the tables can come from calloc
 * untouched. */

enum {
    REFINER_STEP_BITS = 8,
    REFINER_KNOTS = (4096 >> REFINER_STEP_BITS) + 1,
    REFINER_CONTEXTS = 65536,
    REFINER_RATE = 6
};

/* ---------------------------------------------------------------------------
 * The model. */

enum {
    /* Hashed contexts: orders 2, 3, 4, 6, the word and the word pair. Orders
     * 0 and 1 are indexed directly. */
    HASHED_CONTEXTS = 6,
    CONTEXTS = HASHED_CONTEXTS + 2,
    ORDER0 = HASHED_CONTEXTS,
    ORDER1 = HASHED_CONTEXTS + 1,
    INPUT_MATCH = CONTEXTS, /* two match inputs, then a constant bias */
    INPUT_BIAS = CONTEXTS + 2,
    /* A slot holds the histories of one nibble in one context: a check byte
     * telling contexts apart, then 15 states (1 + 2 + 4 + 8 nodes). A bucket
     * is four slots, one 64-byte cache line. */
    SLOT_BYTES = 16,
    BUCKET_SLOTS = 4,
    MATCH_MIN = 8,        /* the match model looks up the last 8 bytes */
    MATCH_VERIFY = 64,    /* and counts at most this many as already matching */
    MATCH_BUCKETS = 16,   /* match lengths, quantised */
    MIXER_SETS_BY_PARTIAL = 256,
    MIXER_SETS_BY_ORDER = 5 * 3 * 4, /* known orders x match state x byte class */
};

/* What the hashed contexts are made of: the last bytes and words. */
typedef struct {
    uint32_t last4, last8; /* the last 8 bytes, the most recent lowest */
    uint32_t word_hash, previous_word_hash;
} byte_context;

struct lf_cm {
    /* Tables computed at creation. */
    uint16_t squash_table[2 * STRETCH_MAX + 1];
    int16_t stretch_table[4096];
    history_table history;
    uint8_t history_priority[256];          /* bits seen, for slot replacement */
    uint16_t map_rate[1 << MAP_COUNT_BITS]; /* 65536 / (count + 1.5) */
    uint16_t refiner_identity[REFINER_KNOTS];

    /* The contexts. */
    uint8_t *slots; /* the hash table, 64-byte aligned inside slots_allocation */
    void *slots_allocation;
    unsigned bucket_shift; /* 32 - log2(buckets) */
    uint32_t context_hash[HASHED_CONTEXTS];       /* of this byte */
    uint32_t upcoming_hashes[2][HASHED_CONTEXTS]; /* of the next nibble, by its last bit */
    uint8_t *slot[HASHED_CONTEXTS];
    uint8_t *node[CONTEXTS]; /* the state each context predicts this bit from */
    uint8_t predicted_state[CONTEXTS];
    uint8_t order0[256];
    uint8_t order1[256 * 256];
    uint32_t context_map[CONTEXTS][256];

    /* The match model. */
    uint8_t *history_bytes; /* the last 2^k bytes, circular */
    uint32_t history_mask;
    uint32_t *match_table; /* hash of 8 bytes -> position after them */
    unsigned match_shift;
    uint32_t position;      /* bytes seen, modulo 2^32 */
    uint32_t match_pointer; /* position of the predicted byte */
    uint32_t match_length;  /* 0: no match */
    uint32_t match_map[MATCH_BUCKETS * 2];
    unsigned match_map_index;
    int expected_bit; /* -1 when no match predicts this bit */

    /* The mixers. */
    _Alignas(16) int16_t inputs[MIXER_INPUTS];
    _Alignas(16) int16_t weights[MIXER_SETS_BY_PARTIAL + MIXER_SETS_BY_ORDER][MIXER_INPUTS];
    unsigned mixer_set[2];
    uint32_t mixer_probability[2];
    int32_t mixer_rate;
    uint32_t bytes_for_rate; /* bytes seen, saturating */

    /* The refiners: the order-1 table, then the order-2 table. */
    uint16_t *refiners;
    uint32_t order2_refiner_hash; /* 16 bits, of this byte */
    size_t refiner_index[2];      /* of the lower knot */
    unsigned refiner_knot;        /* the lower knot, 0..15 */
    unsigned refiner_weight;      /* of the upper knot, 0..255 */

    /* The partial byte and what came before. */
    uint32_t partial;   /* 1 followed by the bits of this byte so far */
    uint32_t nibble;    /* 1 followed by the bits of this nibble so far */
    unsigned bit_index; /* bits of this byte so far, 0..7 */
    byte_context past;
    int predicted; /* lf_cm_predict has run for this bit */
};

static inline int32_t stretch(const lf_cm *model, uint32_t probability16)
{
    return model->stretch_table[probability16 >> 4];
}

static inline uint32_t squash(const lf_cm *model, int32_t x)
{
    return model->squash_table[STRETCH_MAX + clamp32(x, -STRETCH_MAX, STRETCH_MAX)];
}

/* ---------------------------------------------------------------------------
 * The hash table of context slots. */

static inline uint8_t *bucket_of(const lf_cm *model, uint32_t hash)
{
    return model->slots + (size_t)(hash >> model->bucket_shift) * (BUCKET_SLOTS * SLOT_BYTES);
}

/* The slot of a context hash: the slot in its bucket with its check byte
 * (the hash's low bits, independent of the bucket's high bits) or, for a
 * context not seen before, the slot whose first node has seen the fewest
 * bits, emptied. */
static uint8_t *find_slot(lf_cm *model, uint32_t hash)
{
    uint8_t *bucket = bucket_of(model, hash);
    const uint8_t check = (uint8_t)hash;
    uint8_t *weakest = bucket;
    for (int i = 0; i < BUCKET_SLOTS; i++) {
        uint8_t *slot = bucket + i * SLOT_BYTES;
        if (slot[0] == check)
            return slot;
        if (model->history_priority[slot[1]] < model->history_priority[weakest[1]])
            weakest = slot;
    }
    memset(weakest, 0, SLOT_BYTES);
    weakest[0] = check;
    return weakest;
}

/* The second nibble's slots are found by the context hash and the first
 * nibble. */
static inline uint32_t nibble_salt(uint32_t partial)
{
    return partial * 0x9E3779B1u;
}

static void select_slots(lf_cm *model, const uint32_t hashes[HASHED_CONTEXTS])
{
    for (int i = 0; i < HASHED_CONTEXTS; i++)
        model->slot[i] = find_slot(model, hashes[i]);
}

static void select_nodes(lf_cm *model)
{
    for (int i = 0; i < HASHED_CONTEXTS; i++)
        model->node[i] = model->slot[i] + model->nibble;
    model->node[ORDER0] = &model->order0[model->partial];
    model->node[ORDER1] = &model->order1[((model->past.last4 & 0xff) << 8) | model->partial];
}

/* ---------------------------------------------------------------------------
 * Byte contexts. */

/* Letters (folded to lower case) and UTF-8 bytes make words. */
static inline int is_word_byte(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 128;
}

/* A coarse class of the last byte, for choosing mixer weights. */
static inline unsigned byte_class(uint32_t c)
{
    if (c == ' ' || c == '\n')
        return 0;
    if ((c >= 'a' && c <= 'z') || c >= 128)
        return 1;
    if (c >= 'A' && c <= 'Z')
        return 2;
    return 3;
}

static byte_context byte_context_after(byte_context past, uint32_t byte)
{
    past.last8 = (past.last8 << 8) | (past.last4 >> 24);
    past.last4 = (past.last4 << 8) | byte;
    if (is_word_byte(byte)) {
        const uint32_t folded = (byte >= 'A' && byte <= 'Z') ? byte + 32 : byte;
        past.word_hash = (past.word_hash + folded + 1) * 0x2F0F3A5Bu;
    } else if (past.word_hash) {
        past.previous_word_hash = past.word_hash;
        past.word_hash = 0;
    }
    return past;
}

static void hash_contexts(const byte_context *past, uint32_t hashes[HASHED_CONTEXTS])
{
    const uint32_t c4 = past->last4;
    /* Between words, the word contexts also see the last byte. */
    const uint32_t outside_word = past->word_hash ? 0 : c4 & 0xff;
    hashes[0] = hash_pair(2, c4 & 0xffff);
    hashes[1] = hash_pair(3, c4 & 0xffffff);
    hashes[2] = hash_pair(4, c4);
    hashes[3] = hash_pair(hash_pair(6, c4), past->last8 & 0xffff);
    hashes[4] = hash_pair(7 + past->word_hash, outside_word);
    hashes[5] = hash_pair(hash_pair(8 + past->word_hash, past->previous_word_hash), outside_word);
}

static inline uint32_t match_hash(const lf_cm *model, const byte_context *past)
{
    return hash_pair(past->last4, past->last8) >> model->match_shift;
}

/* ---------------------------------------------------------------------------
 * The match model: finds the last occurrence of the previous 8 bytes and
 * predicts that what followed then follows now, for as long as it does. */

static void update_match(lf_cm *model, uint32_t byte)
{
    const uint32_t mask = model->history_mask;
    model->history_bytes[model->position & mask] = (uint8_t)byte;
    model->position++;
    if (model->match_length) {
        if (model->history_bytes[model->match_pointer & mask] == byte) {
            model->match_pointer++;
            if (model->match_length < 65535)
                model->match_length++;
        } else {
            model->match_length = 0;
        }
    }
    if (model->position < MATCH_MIN)
        return;
    const uint32_t hash = match_hash(model, &model->past);
    if (!model->match_length) {
        const uint32_t candidate = model->match_table[hash];
        if (candidate && model->position - candidate <= mask) {
            /* Hashes collide: count how many bytes really match. */
            uint32_t length = 0;
            while (length < MATCH_VERIFY && length < candidate &&
                   model->history_bytes[(candidate - 1 - length) & mask] ==
                       model->history_bytes[(model->position - 1 - length) & mask])
                length++;
            if (length >= MATCH_MIN) {
                model->match_length = length;
                model->match_pointer = candidate;
            }
        }
    }
    model->match_table[hash] = model->position;
}

static unsigned match_length_bucket(uint32_t length)
{
    if (length < 12)
        return length;
    if (length < 16)
        return 12;
    if (length < 24)
        return 13;
    if (length < 32)
        return 14;
    return 15;
}

/* After a whole byte: the contexts of the next one (their hashes are
 * already in upcoming_hashes). */
static void update_byte_contexts(lf_cm *model, uint32_t byte)
{
    model->past = byte_context_after(model->past, byte);
    update_match(model, byte);
    model->order2_refiner_hash = hash_pair(9, model->past.last4 & 0xffff) >> 16;
    if (model->bytes_for_rate < MIXER_RATE_HALF * 64u)
        model->bytes_for_rate++;
    const uint32_t extra = (uint32_t)MIXER_RATE_EXTRA * MIXER_RATE_HALF /
                           (model->bytes_for_rate + MIXER_RATE_HALF);
    model->mixer_rate = MIXER_RATE_FINAL + (int32_t)extra;
}

/* ---------------------------------------------------------------------------
 * Looking ahead. The table lookups at a nibble boundary are mostly cache
 * misses, so one bit before it the hashes that either value of the last bit
 * will look up are computed, and their buckets requested, while that bit is
 * being coded. */

static void prepare_slot_hashes(lf_cm *model)
{
    for (uint32_t bit = 0; bit < 2; bit++) {
        uint32_t *hashes = model->upcoming_hashes[bit];
        const uint32_t partial = (model->partial << 1) | bit;
        if (model->bit_index == 7) {
            const byte_context next = byte_context_after(model->past, partial & 0xff);
            hash_contexts(&next, hashes);
            prefetch(&model->match_table[match_hash(model, &next)]);
        } else {
            for (int i = 0; i < HASHED_CONTEXTS; i++)
                hashes[i] = model->context_hash[i] + nibble_salt(partial);
        }
        for (int i = 0; i < HASHED_CONTEXTS; i++)
            prefetch(bucket_of(model, hashes[i]));
    }
}

static inline size_t refiner_row(unsigned table, uint32_t context)
{
    return ((size_t)table * REFINER_CONTEXTS + context) * REFINER_KNOTS;
}

static inline uint32_t order1_refiner_context(const lf_cm *model, uint32_t partial)
{
    return ((model->past.last4 & 0xff) << 8) | partial;
}

static inline uint32_t order2_refiner_context(const lf_cm *model, uint32_t partial)
{
    return model->order2_refiner_hash ^ partial;
}

/* ---------------------------------------------------------------------------
 * The interface. */

lf_cm *lf_cm_new(unsigned memory_level)
{
    if (memory_level < 16 || memory_level > 30)
        return NULL;
    lf_cm *model = calloc(1, sizeof *model);
    if (!model)
        return NULL;
    if (!build_history_table(&model->history)) {
        free(model);
        return NULL;
    }
    build_logistic_tables(model->squash_table, model->stretch_table);
    for (unsigned s = 0; s < 256; s++)
        model->history_priority[s] = (uint8_t)(model->history.zeros[s] + model->history.ones[s]);
    for (unsigned n = 0; n < (1u << MAP_COUNT_BITS); n++)
        model->map_rate[n] = (uint16_t)((65536u * 2 + (2 * n + 3) / 2) / (2 * n + 3));
    for (unsigned j = 0; j < REFINER_KNOTS; j++) {
        const int32_t x = ((int32_t)j - (int32_t)(REFINER_KNOTS / 2)) * (1 << REFINER_STEP_BITS);
        model->refiner_identity[j] = (uint16_t)squash(model, x);
    }

    /* Half of 2^memory_level for the context slots, an eighth each for the
     * match model's history and its index; the refiners take a fixed
     * 4.25 MiB. calloc leaves pages untouched until used, so small
     * inputs pay only for what they touch. */
    const unsigned slot_bits = memory_level - 1;
    model->bucket_shift = 32 - (slot_bits - 6);
    model->slots_allocation = calloc(((size_t)1 << slot_bits) + 64, 1);
    model->history_mask = ((uint32_t)1 << (memory_level - 3)) - 1;
    model->history_bytes = calloc((size_t)1 << (memory_level - 3), 1);
    model->match_shift = 32 - (memory_level - 5);
    model->match_table = calloc((size_t)1 << (memory_level - 5), sizeof(uint32_t));
    model->refiners = calloc(2 * (size_t)REFINER_CONTEXTS * REFINER_KNOTS, sizeof(uint16_t));
    if (!model->slots_allocation || !model->history_bytes || !model->match_table ||
        !model->refiners) {
        lf_cm_free(model);
        return NULL;
    }
    /* The alignment affects speed only, never a prediction. */
    model->slots = (uint8_t *)model->slots_allocation +
                   ((64 - ((uintptr_t)model->slots_allocation & 63)) & 63);

    /* A history starts out predicting its observed frequency, smoothed. */
    for (int i = 0; i < CONTEXTS; i++)
        for (unsigned s = 0; s < 256; s++) {
            const uint64_t zeros = model->history.zeros[s], ones = model->history.ones[s];
            model->context_map[i][s] =
                map_entry((uint32_t)(((2 * ones + 1) << 22) / (2 * (zeros + ones) + 2)));
        }
    for (unsigned i = 0; i < MATCH_BUCKETS * 2; i++)
        model->match_map[i] = map_entry(1u << 21);
    /* Every context and the match model start with weight 1/4, the other
     * inputs with 0. */
    for (unsigned s = 0; s < MIXER_SETS_BY_PARTIAL + MIXER_SETS_BY_ORDER; s++)
        for (unsigned i = 0; i < INPUT_BIAS; i++)
            model->weights[s][i] = (1 << WEIGHT_SHIFT) / 4;

    model->partial = 1;
    model->nibble = 1;
    model->mixer_rate = MIXER_RATE_FINAL + MIXER_RATE_EXTRA;
    hash_contexts(&model->past, model->context_hash);
    model->order2_refiner_hash = hash_pair(9, 0) >> 16;
    select_slots(model, model->context_hash);
    select_nodes(model);
    return model;
}

void lf_cm_free(lf_cm *model)
{
    if (!model)
        return;
    free(model->slots_allocation);
    free(model->history_bytes);
    free(model->match_table);
    free(model->refiners);
    free(model);
}

/* Reads the model's state and writes only what lf_cm_update needs to learn
 * from this prediction, so calling it again before the update returns the
 * same probability. */
uint32_t lf_cm_predict(lf_cm *model)
{
    int16_t inputs[MIXER_INPUTS] = {0};
    unsigned known = 0; /* how many of orders 2, 3, 4, 6 have seen this context */
    for (int i = 0; i < CONTEXTS; i++) {
        const uint8_t state = *model->node[i];
        model->predicted_state[i] = state;
        inputs[i] = (int16_t)stretch(model, map_probability(model->context_map[i][state]));
        if (i < 4)
            known += state != 0;
    }

    /* Does the byte that followed the last occurrence of the context agree
     * with this byte so far, and which bit comes next in it? */
    model->expected_bit = -1;
    if (model->match_length) {
        const uint32_t expected =
            (uint32_t)model->history_bytes[model->match_pointer & model->history_mask] | 256u;
        if ((expected >> (8 - model->bit_index)) == model->partial) {
            const int bit = (int)((expected >> (7 - model->bit_index)) & 1);
            model->expected_bit = bit;
            model->match_map_index = match_length_bucket(model->match_length) * 2 + (unsigned)bit;
            inputs[INPUT_MATCH] =
                (int16_t)stretch(model, map_probability(model->match_map[model->match_map_index]));
            const int32_t length = (int32_t)(model->match_length < 32 ? model->match_length : 32);
            inputs[INPUT_MATCH + 1] = (int16_t)(bit ? length * 32 : -length * 32);
        }
    }
    inputs[INPUT_BIAS] = 256;

    /* Two weight sets: one chosen by the bits of this byte so far, one by
     * how much the contexts know, the match and the kind of the last byte.
     * Their outputs are averaged. */
    const unsigned match_state = model->expected_bit < 0 ? 0 : model->match_length < 16 ? 1 : 2;
    model->mixer_set[0] = model->partial;
    model->mixer_set[1] = MIXER_SETS_BY_PARTIAL + (known * 3 + match_state) * 4 +
                          byte_class(model->past.last4 & 0xff);
    const mixer_inputs gathered = gather_inputs(inputs);
    store_inputs(model->inputs, &gathered);
    int32_t mixed = 0;
    for (int k = 0; k < 2; k++) {
        const int32_t dot = mixer_dot(&gathered, model->weights[model->mixer_set[k]]);
        model->mixer_probability[k] = squash(model, dot);
        mixed += dot;
    }
    mixed = floor_shift32(mixed, 1);

    /* Refine by interpolating between the knots around stretch(p) in the
     * order-1 and the order-2 map, and average the two. */
    const uint32_t position = (uint32_t)(mixed + 2048); /* 1..4095 */
    const uint32_t knot = position >> REFINER_STEP_BITS;
    const uint32_t weight = position & ((1u << REFINER_STEP_BITS) - 1);
    model->refiner_knot = knot;
    model->refiner_weight = weight;
    model->refiner_index[0] = refiner_row(0, order1_refiner_context(model, model->partial)) + knot;
    model->refiner_index[1] = refiner_row(1, order2_refiner_context(model, model->partial)) + knot;
    uint32_t sum = 0;
    for (int t = 0; t < 2; t++) {
        const uint16_t *entry = model->refiners + model->refiner_index[t];
        const uint32_t low = (uint16_t)(entry[0] + model->refiner_identity[knot]);
        const uint32_t high = (uint16_t)(entry[1] + model->refiner_identity[knot + 1]);
        sum += (low * ((1u << REFINER_STEP_BITS) - weight) + high * weight) >> REFINER_STEP_BITS;
    }
    uint32_t p = (sum + 1) >> 1;
    if (p < 1)
        p = 1;
    if (p > 65535)
        p = 65535;
    model->predicted = 1;
    return p;
}

/* Moves both knots around stretch(p) toward the bit, each by its share. */
static void refiner_update(lf_cm *model, int bit)
{
    const int32_t target = bit ? 65535 : 0;
    const int32_t shares[2] = {(1 << REFINER_STEP_BITS) - (int32_t)model->refiner_weight,
                               (int32_t)model->refiner_weight};
    const unsigned knot = model->refiner_knot;
    for (int t = 0; t < 2; t++) {
        uint16_t *entry = model->refiners + model->refiner_index[t];
        for (int j = 0; j < 2; j++) {
            const uint16_t identity = model->refiner_identity[knot + (unsigned)j];
            const int32_t value = (uint16_t)(entry[j] + identity);
            const int32_t step =
                floor_shift32((target - value) * shares[j], REFINER_STEP_BITS + REFINER_RATE);
            const int32_t moved = value + step;
            entry[j] = (uint16_t)((uint32_t)moved - identity);
        }
    }
}

void lf_cm_update(lf_cm *model, int bit)
{
    if (!model->predicted)
        lf_cm_predict(model);
    model->predicted = 0;
    bit = bit ? 1 : 0;

    for (int i = 0; i < CONTEXTS; i++) {
        const uint8_t state = model->predicted_state[i];
        map_update(&model->context_map[i][state], bit, model->map_rate);
        *model->node[i] = model->history.next[state][bit];
    }
    if (model->expected_bit >= 0) {
        map_update(&model->match_map[model->match_map_index], bit, model->map_rate);
        if (model->expected_bit != bit)
            model->match_length = 0;
    }
    for (int k = 0; k < 2; k++)
        mixer_train(model->inputs, model->weights[model->mixer_set[k]],
                    mixer_error(bit, model->mixer_probability[k], model->mixer_rate));
    refiner_update(model, bit);

    model->partial = (model->partial << 1) | (uint32_t)bit;
    model->nibble = (model->nibble << 1) | (uint32_t)bit;
    model->bit_index++;
    if (model->bit_index == 8) {
        update_byte_contexts(model, model->partial & 0xff);
        memcpy(model->context_hash, model->upcoming_hashes[bit], sizeof model->context_hash);
        model->partial = 1;
        model->nibble = 1;
        model->bit_index = 0;
        select_slots(model, model->context_hash);
    } else if (model->bit_index == 4) {
        model->nibble = 1;
        select_slots(model, model->upcoming_hashes[bit]);
    }
    select_nodes(model);

    /* Look ahead at what the bits after next may need: the refiner rows of
     * the four values the partial byte can take in two bits are an aligned
     * group of four in both tables. (This is written here, not in a function
     * of its own: a function that only prefetches may be removed by the
     * compiler as one without effects.) */
    if (model->bit_index < 6) {
        const uint32_t first = model->partial << 2;
        const size_t rows[2] = {refiner_row(0, order1_refiner_context(model, first) & ~3u),
                                refiner_row(1, order2_refiner_context(model, first) & ~3u)};
        for (int t = 0; t < 2; t++)
            for (size_t offset = 0; offset < 4 * REFINER_KNOTS; offset += 32)
                prefetch(model->refiners + rows[t] + offset);
    }
    if (model->bit_index == 3 || model->bit_index == 7)
        prepare_slot_hashes(model);
}
