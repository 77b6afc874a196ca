#include "model/tokenizer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/string_table.h"

static const char *const special_names[] = {"<|endoftext|>", "<R>", "<W>", "<|pad|>"};
enum { SPECIAL_COUNT = LF_TOKEN_FIRST_MERGE - LF_TOKEN_ENDOFTEXT };

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum { TOKEN_TYPE_NORMAL = 1, TOKEN_TYPE_CONTROL = 3, TOKEN_TYPE_BYTE = 6 };

#define MODEL_NAME "llmfuse-bpe"

struct lf_tokenizer {
    uint32_t merge_count;
    lf_tokenizer_merge *merges;
    uint64_t *token_offsets; /* vocab size + 1 offsets into token_bytes */
    lf_buffer token_bytes;
    lf_string_table pair_ranks; /* (left, right) -> rank: interned in rank order */
};

void lf_token_array_free(lf_token_array *tokens)
{
    free(tokens->ids);
    *tokens = (lf_token_array){0};
}

int lf_token_array_append(lf_token_array *tokens, const uint32_t *ids, size_t count)
{
    if (count > tokens->capacity - tokens->count) {
        if (count > SIZE_MAX / sizeof *tokens->ids / 2 - tokens->count)
            return -ENOMEM;
        size_t capacity = tokens->capacity ? tokens->capacity : 256;
        while (capacity - tokens->count < count)
            capacity *= 2;
        uint32_t *grown = realloc(tokens->ids, capacity * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        tokens->ids = grown;
        tokens->capacity = capacity;
    }
    if (count)
        memcpy(tokens->ids + tokens->count, ids, count * sizeof *ids);
    tokens->count += count;
    return 0;
}

/* ---- Pre-tokenizer --------------------------------------------------------- */

enum byte_class { CLASS_LETTER, CLASS_DIGIT, CLASS_SPACE, CLASS_OTHER };

static enum byte_class class_of(uint8_t byte)
{
    uint8_t lower = byte | 0x20;
    if ((lower >= 'a' && lower <= 'z') || byte == '_' || byte >= 0x80)
        return CLASS_LETTER;
    if (byte >= '0' && byte <= '9')
        return CLASS_DIGIT;
    if (byte == ' ' || (byte >= '\t' && byte <= '\r'))
        return CLASS_SPACE;
    return CLASS_OTHER;
}

size_t lf_tokenizer_chunk_end(const uint8_t *data, size_t size, size_t start)
{
    size_t limit = size - start > LF_TOKENIZER_MAX_CHUNK ? start + LF_TOKENIZER_MAX_CHUNK : size;
    size_t run_start = start;
    if (data[start] == ' ' && start + 1 < limit && class_of(data[start + 1]) != CLASS_SPACE) {
        run_start = start + 1; /* a word, number or symbol run keeps its leading space */
    } else if (class_of(data[start]) == CLASS_SPACE) {
        size_t end = start + 1;
        while (end < limit && class_of(data[end]) == CLASS_SPACE)
            end++;
        /* "\n    return": the indentation's last space goes with the word, as
         * in " return" elsewhere, so the word has one spelling. */
        if (end - start >= 2 && end < size && class_of(data[end]) != CLASS_SPACE &&
            data[end - 1] == ' ')
            end--;
        return end;
    }
    enum byte_class run_class = class_of(data[run_start]);
    /* Numbers in groups of at most three digits: a few hundred tokens cover
     * them all, and the vocabulary goes to words instead. */
    size_t run_limit = run_class == CLASS_DIGIT && limit - run_start > 3 ? run_start + 3 : limit;
    size_t end = run_start + 1;
    while (end < run_limit && class_of(data[end]) == run_class)
        end++;
    return end;
}

/* ---- The vocabulary -------------------------------------------------------- */

uint32_t lf_tokenizer_vocab_size(const lf_tokenizer *tokenizer)
{
    return LF_TOKEN_FIRST_MERGE + tokenizer->merge_count;
}

uint32_t lf_tokenizer_merge_count(const lf_tokenizer *tokenizer)
{
    return tokenizer->merge_count;
}

const lf_tokenizer_merge *lf_tokenizer_merges(const lf_tokenizer *tokenizer)
{
    return tokenizer->merges;
}

const uint8_t *lf_tokenizer_token_bytes(const lf_tokenizer *tokenizer, uint32_t id,
                                        size_t *length)
{
    if (id >= lf_tokenizer_vocab_size(tokenizer)) {
        *length = 0;
        return NULL;
    }
    *length = (size_t)(tokenizer->token_offsets[id + 1] - tokenizer->token_offsets[id]);
    return tokenizer->token_bytes.data + tokenizer->token_offsets[id];
}

int64_t lf_tokenizer_special_id(const lf_tokenizer *tokenizer, const char *name)
{
    (void)tokenizer; /* every vocabulary has the same special ids */
    for (int i = 0; i < SPECIAL_COUNT; i++)
        if (strcmp(special_names[i], name) == 0)
            return LF_TOKEN_ENDOFTEXT + i;
    return -ENOENT;
}

static void pair_key(uint32_t left, uint32_t right, uint8_t key[8])
{
    memcpy(key, &left, 4);
    memcpy(key + 4, &right, 4);
}

/* The merge rank of a pair of tokens, or UINT32_MAX when they never merge. */
static uint32_t rank_of(const lf_tokenizer *tokenizer, uint32_t left, uint32_t right)
{
    uint8_t key[8];
    pair_key(left, right, key);
    int64_t rank = lf_string_table_find(&tokenizer->pair_ranks, key, sizeof key);
    return rank < 0 ? UINT32_MAX : (uint32_t)rank;
}

void lf_tokenizer_free(lf_tokenizer *tokenizer)
{
    if (!tokenizer)
        return;
    free(tokenizer->merges);
    free(tokenizer->token_offsets);
    lf_buffer_free(&tokenizer->token_bytes);
    lf_string_table_free(&tokenizer->pair_ranks);
    free(tokenizer);
}

/* Token id's bytes, appended and its end offset recorded. */
static int add_token(lf_tokenizer *tokenizer, uint32_t id, const void *bytes, size_t length)
{
    if (lf_buffer_append(&tokenizer->token_bytes, bytes, length) < 0)
        return -ENOMEM;
    tokenizer->token_offsets[id + 1] = tokenizer->token_bytes.length;
    return 0;
}

static int64_t add_merge(lf_tokenizer *tokenizer, uint32_t rank, lf_tokenizer_merge merge,
                         lf_diagnostic *diagnostic)
{
    uint32_t id = LF_TOKEN_FIRST_MERGE + rank;
    for (int side = 0; side < 2; side++) {
        uint32_t part = side == 0 ? merge.left : merge.right;
        if (part >= id || (part >= LF_TOKEN_ENDOFTEXT && part < LF_TOKEN_FIRST_MERGE))
            return lf_fail(diagnostic, -LF_EFORMAT,
                           "merge %" PRIu32 " (token %" PRIu32 ") joins token %" PRIu32
                           ", which is %s",
                           rank, id, part, part >= id ? "not made before it" : "a special token");
    }
    size_t left_length, right_length;
    const uint8_t *left = lf_tokenizer_token_bytes(tokenizer, merge.left, &left_length);
    const uint8_t *right = lf_tokenizer_token_bytes(tokenizer, merge.right, &right_length);
    if (left_length + right_length > LF_TOKENIZER_MAX_CHUNK)
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "merge %" PRIu32 " makes a token of %zu bytes (at most %d)", rank,
                       left_length + right_length, LF_TOKENIZER_MAX_CHUNK);
    uint8_t bytes[LF_TOKENIZER_MAX_CHUNK];
    memcpy(bytes, left, left_length);
    memcpy(bytes + left_length, right, right_length);
    uint8_t key[8];
    pair_key(merge.left, merge.right, key);
    int64_t found = lf_string_table_intern(&tokenizer->pair_ranks, key, sizeof key);
    if (found < 0)
        return lf_fail(diagnostic, found, "out of memory building the tokenizer");
    if ((uint32_t)found != rank)
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "merge %" PRIu32 " repeats merge %" PRId64 " (tokens %" PRIu32
                       " and %" PRIu32 ")",
                       rank, found, merge.left, merge.right);
    tokenizer->merges[rank] = merge;
    if (add_token(tokenizer, id, bytes, left_length + right_length) < 0)
        return lf_fail(diagnostic, -ENOMEM, "out of memory building the tokenizer");
    return 0;
}

int64_t lf_tokenizer_from_merges(const lf_tokenizer_merge *merges, uint32_t merge_count,
                                 lf_tokenizer **tokenizer_out, lf_diagnostic *diagnostic)
{
    *tokenizer_out = NULL;
    if (merge_count > LF_TOKENIZER_MAX_VOCAB - LF_TOKEN_FIRST_MERGE)
        return lf_fail(diagnostic, -E2BIG, "%" PRIu32 " merges make more than %u tokens",
                       merge_count, LF_TOKENIZER_MAX_VOCAB);
    lf_tokenizer *tokenizer = calloc(1, sizeof *tokenizer);
    uint32_t vocab_size = LF_TOKEN_FIRST_MERGE + merge_count;
    if (tokenizer) {
        tokenizer->merges = malloc((merge_count ? merge_count : 1) * sizeof *tokenizer->merges);
        tokenizer->token_offsets = calloc(vocab_size + 1, sizeof *tokenizer->token_offsets);
    }
    if (!tokenizer || !tokenizer->merges || !tokenizer->token_offsets) {
        lf_tokenizer_free(tokenizer);
        return lf_fail(diagnostic, -ENOMEM, "out of memory building the tokenizer");
    }
    int64_t status = 0;
    for (uint32_t byte = 0; byte < 256 && status == 0; byte++) {
        uint8_t value = (uint8_t)byte;
        status = add_token(tokenizer, byte, &value, 1);
    }
    for (int i = 0; i < SPECIAL_COUNT && status == 0; i++)
        status = add_token(tokenizer, LF_TOKEN_ENDOFTEXT + (uint32_t)i, special_names[i],
                           strlen(special_names[i]));
    if (status < 0)
        status = lf_fail(diagnostic, -ENOMEM, "out of memory building the tokenizer");
    for (uint32_t rank = 0; rank < merge_count && status == 0; rank++) {
        tokenizer->merge_count = rank; /* token_bytes knows the tokens made so far */
        status = add_merge(tokenizer, rank, merges[rank], diagnostic);
    }
    if (status < 0) {
        lf_tokenizer_free(tokenizer);
        return status;
    }
    tokenizer->merge_count = merge_count;
    *tokenizer_out = tokenizer;
    return 0;
}

/* ---- Encoding -------------------------------------------------------------- */

/* The cache is emptied when it holds this many chunks, which bounds its
 * memory (about 24 MiB) whatever the input; natural text rarely gets there. */
enum { CACHE_MAX_CHUNKS = 1 << 18 };

typedef struct cached_span {
    uint32_t start, length; /* in cached_ids */
} cached_span;

struct lf_tokenizer_encoder {
    const lf_tokenizer *tokenizer;
    lf_string_table chunks;
    cached_span *spans; /* by chunk id */
    size_t span_capacity;
    lf_token_array cached_ids;
};

int64_t lf_tokenizer_encoder_create(const lf_tokenizer *tokenizer,
                                    lf_tokenizer_encoder **encoder)
{
    *encoder = calloc(1, sizeof **encoder);
    if (!*encoder)
        return -ENOMEM;
    (*encoder)->tokenizer = tokenizer;
    return 0;
}

void lf_tokenizer_encoder_free(lf_tokenizer_encoder *encoder)
{
    if (!encoder)
        return;
    lf_string_table_free(&encoder->chunks);
    free(encoder->spans);
    lf_token_array_free(&encoder->cached_ids);
    free(encoder);
}

/* BPE inside one chunk: replays the merges in rank order. Returns the
 * number of tokens left in symbols.
 *
 * ranks[i] is the rank of the pair (symbols[i], symbols[i + 1]); after a
 * merge only the pairs next to a new token are looked up again, so a chunk
 * costs about three lookups per byte however many merges it takes. */
static size_t merge_chunk(const lf_tokenizer *tokenizer, const uint8_t *chunk, size_t length,
                          uint32_t *symbols)
{
    uint32_t ranks[LF_TOKENIZER_MAX_CHUNK];
    size_t origin[LF_TOKENIZER_MAX_CHUNK]; /* a token's position before the merge */
    bool fresh[LF_TOKENIZER_MAX_CHUNK];    /* made by the merge */
    for (size_t i = 0; i < length; i++)
        symbols[i] = chunk[i];
    for (size_t i = 0; i + 1 < length; i++)
        ranks[i] = rank_of(tokenizer, symbols[i], symbols[i + 1]);
    size_t count = length;
    for (;;) {
        uint32_t best = UINT32_MAX;
        for (size_t i = 0; i + 1 < count; i++)
            best = ranks[i] < best ? ranks[i] : best;
        if (best == UINT32_MAX)
            return count;
        /* Every occurrence, left to right (ranks name pairs uniquely). */
        size_t kept = 0;
        for (size_t i = 0; i < count; i++, kept++) {
            origin[kept] = i;
            fresh[kept] = i + 1 < count && ranks[i] == best;
            symbols[kept] = fresh[kept] ? LF_TOKEN_FIRST_MERGE + best : symbols[i];
            i += fresh[kept];
        }
        /* Two old neighbours keep their rank: origin[j] >= j, so ranks[]
         * is rewritten in place from the front. */
        for (size_t j = 0; j + 1 < kept; j++)
            ranks[j] = fresh[j] || fresh[j + 1] ? rank_of(tokenizer, symbols[j], symbols[j + 1])
                                                : ranks[origin[j]];
        count = kept;
    }
}

/* Remembers a chunk's tokens (or forgets everything first when full). */
static int cache_chunk(lf_tokenizer_encoder *encoder, const uint8_t *chunk, size_t length,
                       const uint32_t *ids, size_t count)
{
    if (encoder->chunks.count >= CACHE_MAX_CHUNKS) {
        lf_string_table_clear(&encoder->chunks);
        encoder->cached_ids.count = 0;
    }
    if (encoder->chunks.count == encoder->span_capacity) {
        size_t capacity = encoder->span_capacity ? encoder->span_capacity * 2 : 1024;
        cached_span *spans = realloc(encoder->spans, capacity * sizeof *spans);
        if (!spans)
            return -ENOMEM;
        encoder->spans = spans;
        encoder->span_capacity = capacity;
    }
    size_t start = encoder->cached_ids.count;
    if (lf_token_array_append(&encoder->cached_ids, ids, count) < 0)
        return -ENOMEM;
    int64_t id = lf_string_table_intern(&encoder->chunks, chunk, length);
    if (id < 0) {
        encoder->cached_ids.count = start;
        return -ENOMEM;
    }
    encoder->spans[id] = (cached_span){(uint32_t)start, (uint32_t)count};
    return 0;
}

static int encode_chunk(lf_tokenizer_encoder *encoder, const uint8_t *chunk, size_t length,
                        lf_token_array *out)
{
    if (length == 1) { /* nothing to merge */
        uint32_t id = chunk[0];
        return lf_token_array_append(out, &id, 1);
    }
    int64_t cached = lf_string_table_find(&encoder->chunks, chunk, length);
    if (cached >= 0) {
        cached_span span = encoder->spans[cached];
        return lf_token_array_append(out, encoder->cached_ids.ids + span.start, span.length);
    }
    uint32_t symbols[LF_TOKENIZER_MAX_CHUNK];
    size_t count = merge_chunk(encoder->tokenizer, chunk, length, symbols);
    if (cache_chunk(encoder, chunk, length, symbols, count) < 0)
        return -ENOMEM;
    return lf_token_array_append(out, symbols, count);
}

int64_t lf_tokenizer_encode(lf_tokenizer_encoder *encoder, const uint8_t *data, size_t size,
                            lf_token_array *out)
{
    size_t first = out->count;
    for (size_t start = 0; start < size;) {
        size_t end = lf_tokenizer_chunk_end(data, size, start);
        if (encode_chunk(encoder, data + start, end - start, out) < 0) {
            out->count = first;
            return -ENOMEM;
        }
        start = end;
    }
    return (int64_t)(out->count - first);
}

int64_t lf_tokenizer_decode(const lf_tokenizer *tokenizer, const uint32_t *ids, size_t count,
                            lf_buffer *out, lf_diagnostic *diagnostic)
{
    size_t first = out->length;
    for (size_t i = 0; i < count; i++) {
        size_t length;
        const uint8_t *bytes = lf_tokenizer_token_bytes(tokenizer, ids[i], &length);
        int status = 0;
        if (!bytes)
            status = (int)lf_fail(diagnostic, -LF_EFORMAT,
                                  "token %zu is id %" PRIu32 ", outside the vocabulary of %" PRIu32,
                                  i, ids[i], lf_tokenizer_vocab_size(tokenizer));
        else if (lf_buffer_append(out, bytes, length) < 0)
            status = (int)lf_fail(diagnostic, -ENOMEM, "out of memory decoding tokens");
        if (status < 0) {
            out->length = first;
            return status;
        }
    }
    return 0;
}

/* ---- GGUF ------------------------------------------------------------------ */

static int32_t expected_token_type(uint32_t id)
{
    if (id < LF_TOKEN_ENDOFTEXT)
        return TOKEN_TYPE_BYTE;
    return id < LF_TOKEN_FIRST_MERGE ? TOKEN_TYPE_CONTROL : TOKEN_TYPE_NORMAL;
}

int64_t lf_tokenizer_write_gguf(const lf_tokenizer *tokenizer, lf_gguf_writer *writer,
                                lf_diagnostic *diagnostic)
{
    uint32_t vocab_size = lf_tokenizer_vocab_size(tokenizer);
    lf_gguf_string *tokens = malloc(vocab_size * sizeof *tokens);
    int32_t *types = malloc(vocab_size * sizeof *types);
    uint32_t *merge_ids = malloc((tokenizer->merge_count ? tokenizer->merge_count : 1) * 2 *
                                 sizeof *merge_ids);
    int64_t status = 0;
    if (!tokens || !types || !merge_ids)
        status = lf_fail(diagnostic, -ENOMEM, "out of memory writing the tokenizer");
    for (uint32_t id = 0; id < vocab_size && status == 0; id++) {
        size_t length;
        tokens[id].data = (const char *)lf_tokenizer_token_bytes(tokenizer, id, &length);
        tokens[id].length = length;
        types[id] = expected_token_type(id);
    }
    for (uint32_t rank = 0; rank < tokenizer->merge_count && status == 0; rank++) {
        merge_ids[2 * rank] = tokenizer->merges[rank].left;
        merge_ids[2 * rank + 1] = tokenizer->merges[rank].right;
    }
    if (status == 0)
        status = lf_gguf_writer_set_string(writer, "tokenizer.ggml.model", MODEL_NAME, diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_string(writer, "llmfuse.tokenizer.pretokenizer",
                                           LF_TOKENIZER_PRETOKENIZER, diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_array(writer, "tokenizer.ggml.tokens", LF_GGUF_STRING, tokens,
                                          vocab_size, diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_array(writer, "tokenizer.ggml.token_type", LF_GGUF_INT32,
                                          types, vocab_size, diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_array(writer, "llmfuse.tokenizer.merges", LF_GGUF_UINT32,
                                          merge_ids, 2 * (uint64_t)tokenizer->merge_count,
                                          diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_u32(writer, "tokenizer.ggml.eos_token_id", LF_TOKEN_ENDOFTEXT,
                                        diagnostic);
    if (status == 0)
        status = lf_gguf_writer_set_u32(writer, "tokenizer.ggml.padding_token_id", LF_TOKEN_PAD,
                                        diagnostic);
    free(tokens);
    free(types);
    free(merge_ids);
    return status;
}

static int64_t check_string(const lf_gguf *file, const char *key, const char *expected,
                            int64_t mismatch, lf_diagnostic *diagnostic)
{
    lf_gguf_string value;
    int64_t status = lf_gguf_get_string(file, key, &value, diagnostic);
    if (status < 0)
        return status;
    if (value.length != strlen(expected) || memcmp(value.data, expected, value.length) != 0)
        return lf_fail(diagnostic, mismatch, "%s is '%.*s', not '%s'", key,
                       (int)(value.length < 64 ? value.length : 64), value.data, expected);
    return 0;
}

static int64_t check_special_id(const lf_gguf *file, const char *key, uint32_t expected,
                                lf_diagnostic *diagnostic)
{
    uint32_t id;
    if (!lf_gguf_find_metadata(file, key))
        return 0; /* optional */
    int64_t status = lf_gguf_get_u32(file, key, &id, diagnostic);
    if (status == 0 && id != expected)
        status = lf_fail(diagnostic, -LF_EFORMAT, "%s is %" PRIu32 ", not %" PRIu32, key, id,
                         expected);
    return status;
}

static int64_t read_merges(const lf_gguf *file, lf_tokenizer **tokenizer,
                           lf_diagnostic *diagnostic)
{
    const lf_gguf_metadata *array = NULL;
    int64_t status = lf_gguf_get_array(file, "llmfuse.tokenizer.merges", LF_GGUF_UINT32, &array,
                                       diagnostic);
    if (status < 0)
        return status;
    if (array->count % 2 != 0 ||
        array->count / 2 > LF_TOKENIZER_MAX_VOCAB - LF_TOKEN_FIRST_MERGE)
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "llmfuse.tokenizer.merges has %" PRIu64
                       " ids: not pairs, or more than %u tokens",
                       array->count, LF_TOKENIZER_MAX_VOCAB);
    uint32_t merge_count = (uint32_t)(array->count / 2);
    uint32_t *ids = malloc((merge_count ? merge_count : 1) * 2 * sizeof *ids);
    lf_tokenizer_merge *merges = malloc((merge_count ? merge_count : 1) * sizeof *merges);
    if (!ids || !merges) {
        status = lf_fail(diagnostic, -ENOMEM, "out of memory reading the tokenizer");
    } else {
        lf_gguf_metadata_decode(array, ids);
        for (uint32_t rank = 0; rank < merge_count; rank++)
            merges[rank] = (lf_tokenizer_merge){ids[2 * rank], ids[2 * rank + 1]};
        status = lf_tokenizer_from_merges(merges, merge_count, tokenizer, diagnostic);
    }
    free(ids);
    free(merges);
    return status;
}

/* The stored tokens and types must be exactly what the merges make. */
static int64_t check_vocabulary(const lf_gguf *file, const lf_tokenizer *tokenizer,
                                lf_diagnostic *diagnostic)
{
    uint32_t vocab_size = lf_tokenizer_vocab_size(tokenizer);
    const lf_gguf_string *tokens;
    uint64_t token_count;
    const lf_gguf_metadata *types = NULL;
    int64_t status = lf_gguf_get_string_array(file, "tokenizer.ggml.tokens", &tokens,
                                              &token_count, diagnostic);
    if (status == 0)
        status = lf_gguf_get_array(file, "tokenizer.ggml.token_type", LF_GGUF_INT32, &types,
                                   diagnostic);
    if (status < 0)
        return status;
    if (token_count != vocab_size || types->count != vocab_size)
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "%" PRIu64 " tokens and %" PRIu64 " token types for %" PRIu32
                       " merges (expected %" PRIu32 " of each)",
                       token_count, types->count, tokenizer->merge_count, vocab_size);
    int32_t *type_values = malloc(vocab_size * sizeof *type_values);
    if (!type_values)
        return lf_fail(diagnostic, -ENOMEM, "out of memory reading the tokenizer");
    lf_gguf_metadata_decode(types, type_values);
    for (uint32_t id = 0; id < vocab_size && status == 0; id++) {
        size_t length;
        const uint8_t *bytes = lf_tokenizer_token_bytes(tokenizer, id, &length);
        if (tokens[id].length != length || memcmp(tokens[id].data, bytes, length) != 0)
            status = lf_fail(diagnostic, -LF_EFORMAT,
                             "token %" PRIu32 " is stored as %" PRIu64
                             " bytes that differ from the %zu its %s makes",
                             id, tokens[id].length, length,
                             id < LF_TOKEN_ENDOFTEXT ? "byte value"
                             : id < LF_TOKEN_FIRST_MERGE ? "special name" : "merge");
        else if (type_values[id] != expected_token_type(id))
            status = lf_fail(diagnostic, -LF_EFORMAT,
                             "token %" PRIu32 " has type %" PRId32 ", not %" PRId32, id,
                             type_values[id], expected_token_type(id));
    }
    free(type_values);
    return status;
}

int64_t lf_tokenizer_read_gguf(const lf_gguf *file, lf_tokenizer **tokenizer,
                               lf_diagnostic *diagnostic)
{
    *tokenizer = NULL;
    int64_t status = check_string(file, "tokenizer.ggml.model", MODEL_NAME, -LF_EFORMAT,
                                  diagnostic);
    /* A pre-tokenizer this build does not know splits text differently:
     * the file needs another version of llmfuse. */
    if (status == 0)
        status = check_string(file, "llmfuse.tokenizer.pretokenizer", LF_TOKENIZER_PRETOKENIZER,
                              -LF_EVERSION, diagnostic);
    if (status == 0)
        status = check_special_id(file, "tokenizer.ggml.eos_token_id", LF_TOKEN_ENDOFTEXT,
                                  diagnostic);
    if (status == 0)
        status = check_special_id(file, "tokenizer.ggml.padding_token_id", LF_TOKEN_PAD,
                                  diagnostic);
    if (status == 0)
        status = read_merges(file, tokenizer, diagnostic);
    if (status == 0 && (status = check_vocabulary(file, *tokenizer, diagnostic)) < 0) {
        lf_tokenizer_free(*tokenizer);
        *tokenizer = NULL;
    }
    return status;
}

int64_t lf_tokenizer_save(const lf_tokenizer *tokenizer, const char *path,
                          lf_diagnostic *diagnostic)
{
    lf_gguf_writer *writer;
    if (lf_gguf_writer_create(&writer) < 0)
        return lf_fail(diagnostic, -ENOMEM, "out of memory writing '%s'", path);
    int64_t status = lf_gguf_writer_set_string(writer, "general.architecture", "llmfuse",
                                               diagnostic);
    if (status == 0)
        status = lf_tokenizer_write_gguf(tokenizer, writer, diagnostic);
    if (status == 0)
        status = lf_gguf_writer_write_file(writer, path, diagnostic);
    lf_gguf_writer_free(writer);
    return status;
}

int64_t lf_tokenizer_load(const char *path, lf_tokenizer **tokenizer, lf_diagnostic *diagnostic)
{
    *tokenizer = NULL;
    lf_gguf *file;
    int64_t status = lf_gguf_open_file(path, &file, diagnostic);
    if (status < 0)
        return status;
    status = lf_tokenizer_read_gguf(file, tokenizer, diagnostic);
    lf_gguf_close(file);
    return status;
}
