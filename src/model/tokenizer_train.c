/* BPE training over unique chunks.
 *
 * The corpus is reduced to its distinct chunks ("words"), each weighted by
 * how often it occurs, so a 50 MB corpus becomes a few hundred thousand
 * short words.  Every pair of adjacent tokens has a count (the sum of the
 * weights of the words it occurs in, once per occurrence) and the list of
 * those words.  A merge rewrites only the words on its pair's list and
 * adjusts the counts of the pairs those words lose and gain.  The next merge
 * comes from a max-heap of (count, pair) entries that is updated lazily: a
 * pair whose count grew gets a new entry, and an entry whose count is out of
 * date is re-filed when it reaches the top, so the first up-to-date entry
 * at the top is the best pair. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/string_table.h"
#include "model/tokenizer.h"

struct lf_tokenizer_trainer {
    lf_string_table chunks;
    int64_t *chunk_counts; /* by chunk id */
    size_t count_capacity;
};

/* The array, reallocated (doubling) to hold `needed` elements, or NULL when
 * out of memory (the array is then unchanged). */
static void *grow_array(void *array, size_t *capacity, size_t needed, size_t element_size)
{
    if (needed <= *capacity)
        return array;
    size_t new_capacity = *capacity ? *capacity : 1024;
    while (new_capacity < needed)
        new_capacity *= 2;
    void *grown = realloc(array, new_capacity * element_size);
    if (grown)
        *capacity = new_capacity;
    return grown;
}

int64_t lf_tokenizer_trainer_create(lf_tokenizer_trainer **trainer)
{
    *trainer = calloc(1, sizeof **trainer);
    return *trainer ? 0 : -ENOMEM;
}

void lf_tokenizer_trainer_free(lf_tokenizer_trainer *trainer)
{
    if (!trainer)
        return;
    lf_string_table_free(&trainer->chunks);
    free(trainer->chunk_counts);
    free(trainer);
}

int64_t lf_tokenizer_trainer_add(lf_tokenizer_trainer *trainer, const uint8_t *data, size_t size)
{
    for (size_t start = 0; start < size;) {
        size_t end = lf_tokenizer_chunk_end(data, size, start);
        size_t length = end - start;
        const uint8_t *chunk = data + start;
        start = end;
        if (length < 2)
            continue; /* no pair to count */
        int64_t *counts = grow_array(trainer->chunk_counts, &trainer->count_capacity,
                                     trainer->chunks.count + 1, sizeof *counts);
        if (!counts)
            return -ENOMEM;
        trainer->chunk_counts = counts;
        size_t known = trainer->chunks.count;
        int64_t id = lf_string_table_intern(&trainer->chunks, chunk, length);
        if (id < 0)
            return id;
        trainer->chunk_counts[id] = (size_t)id == known ? 1 : trainer->chunk_counts[id] + 1;
    }
    return 0;
}

/* ---- Training state -------------------------------------------------------- */

typedef struct pair_record {
    uint32_t left, right;
    int64_t count;
    uint32_t *words; /* may also list words that lost the pair since */
    uint32_t word_count, word_capacity;
    uint32_t grown_in_step; /* the last merge step that raised count */
    bool merged;
} pair_record;

typedef struct heap_entry {
    int64_t count;
    uint32_t pair;
} heap_entry;

typedef struct training {
    /* Words: each a run of token ids in `symbols`, shrinking as merges apply. */
    uint32_t *symbols;
    uint64_t *word_start;
    uint32_t *word_length;
    const int64_t *word_weight;
    uint32_t *word_step; /* the last merge step that visited the word */
    size_t word_count;
    /* Pairs, by id. */
    lf_string_table pair_ids;
    pair_record *pairs;
    size_t pair_capacity;
    heap_entry *heap;
    size_t heap_count, heap_capacity;
    uint32_t *grown; /* pairs whose count rose in this step */
    size_t grown_count, grown_capacity;
    lf_tokenizer_merge *merges;
    uint32_t merge_count;
} training;

/* The id of pair (left, right), creating its record when new. */
static int64_t find_pair(training *state, uint32_t left, uint32_t right)
{
    uint32_t key[2] = {left, right};
    size_t known = state->pair_ids.count;
    /* Room for a new record first, so every id always has one. */
    pair_record *pairs = grow_array(state->pairs, &state->pair_capacity, known + 1,
                                    sizeof *pairs);
    if (!pairs)
        return -ENOMEM;
    state->pairs = pairs;
    int64_t id = lf_string_table_intern(&state->pair_ids, key, sizeof key);
    if (id >= 0 && (size_t)id == known)
        state->pairs[id] = (pair_record){.left = left, .right = right};
    return id;
}

static int add_word_to_pair(pair_record *pair, uint32_t word)
{
    if (pair->word_count > 0 && pair->words[pair->word_count - 1] == word)
        return 0;
    if (pair->word_count == pair->word_capacity) {
        uint32_t capacity = pair->word_capacity ? pair->word_capacity * 2 : 4;
        uint32_t *words = realloc(pair->words, capacity * sizeof *words);
        if (!words)
            return -ENOMEM;
        pair->words = words;
        pair->word_capacity = capacity;
    }
    pair->words[pair->word_count++] = word;
    return 0;
}

/* Heap order: the larger count first, then the lower (left, right) ids. */
static bool comes_first(const training *state, heap_entry a, heap_entry b)
{
    if (a.count != b.count)
        return a.count > b.count;
    const pair_record *x = &state->pairs[a.pair], *y = &state->pairs[b.pair];
    if (x->left != y->left)
        return x->left < y->left;
    return x->right < y->right;
}

static int heap_push(training *state, int64_t count, uint32_t pair)
{
    heap_entry *heap = grow_array(state->heap, &state->heap_capacity, state->heap_count + 1,
                                  sizeof *heap);
    if (!heap)
        return -ENOMEM;
    state->heap = heap;
    heap_entry entry = {count, pair};
    size_t at = state->heap_count++;
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (!comes_first(state, entry, state->heap[parent]))
            break;
        state->heap[at] = state->heap[parent];
        at = parent;
    }
    state->heap[at] = entry;
    return 0;
}

static heap_entry heap_pop(training *state)
{
    heap_entry top = state->heap[0];
    heap_entry last = state->heap[--state->heap_count];
    size_t at = 0;
    for (;;) {
        size_t child = 2 * at + 1;
        if (child >= state->heap_count)
            break;
        if (child + 1 < state->heap_count &&
            comes_first(state, state->heap[child + 1], state->heap[child]))
            child++;
        if (!comes_first(state, state->heap[child], last))
            break;
        state->heap[at] = state->heap[child];
        at = child;
    }
    if (state->heap_count > 0)
        state->heap[at] = last;
    return top;
}

static void free_training(training *state)
{
    free(state->symbols);
    free(state->word_start);
    free(state->word_length);
    free(state->word_step);
    for (size_t i = 0; i < state->pair_ids.count; i++)
        free(state->pairs[i].words);
    free(state->pairs);
    lf_string_table_free(&state->pair_ids);
    free(state->heap);
    free(state->grown);
    free(state->merges);
}

/* Words from the trainer's chunks, and the counts and word lists of every
 * pair in them. */
static int start_training(training *state, const lf_tokenizer_trainer *trainer)
{
    size_t word_count = trainer->chunks.count;
    state->word_count = word_count;
    state->word_weight = trainer->chunk_counts;
    state->symbols = malloc((trainer->chunks.keys.length ? trainer->chunks.keys.length : 1) *
                            sizeof *state->symbols);
    state->word_start = malloc((word_count ? word_count : 1) * sizeof *state->word_start);
    state->word_length = malloc((word_count ? word_count : 1) * sizeof *state->word_length);
    state->word_step = calloc(word_count ? word_count : 1, sizeof *state->word_step);
    if (!state->symbols || !state->word_start || !state->word_length || !state->word_step)
        return -ENOMEM;
    uint64_t position = 0;
    for (size_t word = 0; word < word_count; word++) {
        size_t length;
        const uint8_t *bytes = lf_string_table_key(&trainer->chunks, (uint32_t)word, &length);
        state->word_start[word] = position;
        state->word_length[word] = (uint32_t)length;
        for (size_t i = 0; i < length; i++)
            state->symbols[position + i] = bytes[i];
        for (size_t i = 0; i + 1 < length; i++) {
            int64_t pair = find_pair(state, bytes[i], bytes[i + 1]);
            if (pair < 0 || add_word_to_pair(&state->pairs[pair], (uint32_t)word) < 0)
                return -ENOMEM;
            state->pairs[pair].count += state->word_weight[word];
        }
        position += length;
    }
    for (size_t pair = 0; pair < state->pair_ids.count; pair++)
        if (heap_push(state, state->pairs[pair].count, (uint32_t)pair) < 0)
            return -ENOMEM;
    return 0;
}

typedef struct pair_change {
    uint32_t left, right;
    int32_t occurrences; /* gained minus lost */
} pair_change;

static void note_pair(pair_change *changes, size_t *count, uint32_t left, uint32_t right,
                      int32_t occurrences)
{
    for (size_t i = 0; i < *count; i++)
        if (changes[i].left == left && changes[i].right == right) {
            changes[i].occurrences += occurrences;
            return;
        }
    changes[(*count)++] = (pair_change){left, right, occurrences};
}

/* Applies merge (left, right) -> merged to one word and updates the pair
 * counts by the difference between its pairs before and after. */
static int rewrite_word(training *state, uint32_t word, uint32_t left, uint32_t right,
                        uint32_t merged, uint32_t step)
{
    uint32_t *symbols = state->symbols + state->word_start[word];
    uint32_t length = state->word_length[word];
    bool occurs = false;
    for (uint32_t i = 0; i + 1 < length && !occurs; i++)
        occurs = symbols[i] == left && symbols[i + 1] == right;
    if (!occurs)
        return 0; /* a stale entry of the pair's word list */
    pair_change changes[2 * LF_TOKENIZER_MAX_CHUNK];
    size_t change_count = 0;
    for (uint32_t i = 0; i + 1 < length; i++)
        note_pair(changes, &change_count, symbols[i], symbols[i + 1], -1);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < length; i++) {
        if (i + 1 < length && symbols[i] == left && symbols[i + 1] == right) {
            symbols[kept++] = merged;
            i++;
        } else {
            symbols[kept++] = symbols[i];
        }
    }
    state->word_length[word] = kept;
    for (uint32_t i = 0; i + 1 < kept; i++)
        note_pair(changes, &change_count, symbols[i], symbols[i + 1], +1);
    int64_t weight = state->word_weight[word];
    for (size_t i = 0; i < change_count; i++) {
        if (changes[i].occurrences == 0)
            continue;
        int64_t id = find_pair(state, changes[i].left, changes[i].right);
        if (id < 0)
            return -ENOMEM;
        pair_record *pair = &state->pairs[id];
        pair->count += changes[i].occurrences * weight;
        if (changes[i].occurrences < 0)
            continue;
        /* Only pairs with the new token grow: the word is not on their list. */
        if (add_word_to_pair(pair, word) < 0)
            return -ENOMEM;
        if (pair->grown_in_step != step) {
            pair->grown_in_step = step;
            uint32_t *grown = grow_array(state->grown, &state->grown_capacity,
                                         state->grown_count + 1, sizeof *grown);
            if (!grown)
                return -ENOMEM;
            state->grown = grown;
            state->grown[state->grown_count++] = (uint32_t)id;
        }
    }
    return 0;
}

static int apply_merge(training *state, uint32_t pair_id)
{
    pair_record *pair = &state->pairs[pair_id];
    uint32_t left = pair->left, right = pair->right;
    uint32_t merged = LF_TOKEN_FIRST_MERGE + state->merge_count;
    state->merges[state->merge_count++] = (lf_tokenizer_merge){left, right};
    uint32_t step = state->merge_count; /* word_step and grown_in_step start at 0 */
    /* The list is taken out of the record: rewriting words adds pairs, which
     * may move the records, but never adds to this pair. */
    uint32_t *words = pair->words;
    uint32_t word_count = pair->word_count;
    pair->words = NULL;
    pair->word_count = pair->word_capacity = 0;
    pair->merged = true;
    int status = 0;
    for (uint32_t i = 0; i < word_count && status == 0; i++) {
        uint32_t word = words[i];
        if (state->word_step[word] == step)
            continue;
        state->word_step[word] = step;
        status = rewrite_word(state, word, left, right, merged, step);
    }
    free(words);
    for (size_t i = 0; i < state->grown_count && status == 0; i++)
        status = heap_push(state, state->pairs[state->grown[i]].count, state->grown[i]);
    state->grown_count = 0;
    return status;
}

static int learn_merges(training *state, uint32_t merge_target)
{
    while (state->merge_count < merge_target && state->heap_count > 0) {
        heap_entry top = heap_pop(state);
        const pair_record *pair = &state->pairs[top.pair];
        if (pair->merged || top.count != pair->count) {
            /* Out of date. A count that fell is re-filed; one that rose
             * already has its own entry. */
            if (!pair->merged && top.count > pair->count && pair->count > 0 &&
                heap_push(state, pair->count, top.pair) < 0)
                return -ENOMEM;
            continue;
        }
        if (top.count < 2)
            break; /* no pair occurs twice: more tokens would only memorize */
        if (apply_merge(state, top.pair) < 0)
            return -ENOMEM;
    }
    return 0;
}

int64_t lf_tokenizer_trainer_finish(lf_tokenizer_trainer *trainer, uint32_t vocab_size,
                                    lf_tokenizer **tokenizer, lf_diagnostic *diagnostic)
{
    *tokenizer = NULL;
    if (vocab_size < LF_TOKEN_FIRST_MERGE || vocab_size > LF_TOKENIZER_MAX_VOCAB)
        return lf_fail(diagnostic, -EINVAL,
                       "vocabulary size %" PRIu32 " is outside %d to %u (256 bytes and %d "
                       "special tokens come first)",
                       vocab_size, LF_TOKEN_FIRST_MERGE, LF_TOKENIZER_MAX_VOCAB,
                       LF_TOKEN_FIRST_MERGE - LF_TOKEN_ENDOFTEXT);
    uint32_t merge_target = vocab_size - LF_TOKEN_FIRST_MERGE;
    training state = {0};
    state.merges = malloc((merge_target ? merge_target : 1) * sizeof *state.merges);
    int64_t status = state.merges ? start_training(&state, trainer) : -ENOMEM;
    if (status == 0)
        status = learn_merges(&state, merge_target);
    if (status == 0)
        status = lf_tokenizer_from_merges(state.merges, state.merge_count, tokenizer, diagnostic);
    else
        status = lf_fail(diagnostic, status, "out of memory training the tokenizer");
    free_training(&state);
    return status;
}

int64_t lf_tokenizer_train(const uint8_t *corpus, size_t size, uint32_t vocab_size,
                           lf_tokenizer **tokenizer, lf_diagnostic *diagnostic)
{
    *tokenizer = NULL;
    lf_tokenizer_trainer *trainer;
    if (lf_tokenizer_trainer_create(&trainer) < 0)
        return lf_fail(diagnostic, -ENOMEM, "out of memory training the tokenizer");
    int64_t status = lf_tokenizer_trainer_add(trainer, corpus, size);
    if (status < 0)
        status = lf_fail(diagnostic, status, "cannot count the corpus's chunks: %s",
                         lf_error_string(status));
    else
        status = lf_tokenizer_trainer_finish(trainer, vocab_size, tokenizer, diagnostic);
    lf_tokenizer_trainer_free(trainer);
    return status;
}
