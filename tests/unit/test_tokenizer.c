/* The BPE tokenizer: chunks as documented, training identical to a
 * straightforward reference implementation (and to a pinned golden hash),
 * encoding identical to the reference and exactly invertible on any bytes,
 * and tokenizer files that round-trip and refuse damage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <cmocka.h>

#include "common/file.h"
#include "common/random.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "sandbox.h"

/* ---- Corpora ------------------------------------------------------------------ */

/* English-like text with code, numbers, indentation and some UTF-8. */
static void make_text(uint64_t seed, size_t size, lf_buffer *out)
{
    static const char *const pieces[] = {
        "the", "an", "ing", "tion", "er", "re", "com", "press", "file", "sys", "tem", "model",
        "to", "of", "and", "is", "data", "byte", "read", "write", "caf\xc3\xa9", "na\xc3\xafve",
        "x", "q", "z"};
    static const char *const separators[] = {" ", " ", " ", " ", ", ", ". ", "\n", "\n    ",
                                             "();\n", " = ", "</", ">", "_", "\t", "  "};
    lf_random random;
    lf_random_seed(&random, seed);
    while (out->length < size) {
        int syllables = (int)lf_random_range(&random, 1, 3);
        for (int s = 0; s < syllables; s++) {
            /* Zipf-like: low indexes far more often. */
            uint64_t index = lf_random_below(&random, 1 + lf_random_below(&random, 25));
            assert_int_equal(lf_buffer_append_string(out, pieces[index]), 0);
        }
        if (lf_random_chance(&random, 1, 12))
            assert_int_equal(
                lf_buffer_printf(out, " %u", (unsigned)lf_random_below(&random, 100000)), 0);
        const char *separator = separators[lf_random_below(&random, 15)];
        assert_int_equal(lf_buffer_append_string(out, separator), 0);
    }
    out->length = size;
}

/* Words over {a, b}: runs like "aaaa" and a flood of tied counts. */
static void make_ties(uint64_t seed, size_t size, lf_buffer *out)
{
    lf_random random;
    lf_random_seed(&random, seed);
    while (out->length < size) {
        int length = (int)lf_random_range(&random, 1, 9);
        for (int i = 0; i < length; i++)
            assert_int_equal(
                lf_buffer_append_string(out, lf_random_chance(&random, 2, 3) ? "a" : "b"), 0);
        assert_int_equal(lf_buffer_append_string(out, " "), 0);
    }
    out->length = size;
}

static void make_random_bytes(uint64_t seed, size_t size, lf_buffer *out)
{
    lf_random random;
    lf_random_seed(&random, seed);
    assert_int_equal(lf_buffer_reserve(out, size), 0);
    lf_random_bytes(&random, out->data + out->length, size);
    out->length += size;
}

static lf_tokenizer *train(const lf_buffer *corpus, uint32_t vocab_size)
{
    lf_tokenizer *tokenizer;
    lf_diagnostic diagnostic = {0};
    if (lf_tokenizer_train(corpus->data, corpus->length, vocab_size, &tokenizer, &diagnostic) != 0)
        fail_msg("%s", diagnostic.message);
    return tokenizer;
}

static bool is_special(uint32_t id)
{
    return id >= LF_TOKEN_ENDOFTEXT && id < LF_TOKEN_FIRST_MERGE;
}

static void encode(const lf_tokenizer *tokenizer, const uint8_t *data, size_t size,
                   lf_token_array *out)
{
    lf_tokenizer_encoder *encoder;
    assert_int_equal(lf_tokenizer_encoder_create(tokenizer, &encoder), 0);
    size_t before = out->count;
    int64_t appended = lf_tokenizer_encode(encoder, data, size, out);
    assert_int_equal(appended, out->count - before);
    lf_tokenizer_encoder_free(encoder);
}

/* ---- The reference: BPE as the textbook states it ---------------------------- */

typedef struct reference_word {
    uint32_t symbols[LF_TOKENIZER_MAX_CHUNK];
    size_t length;
    int64_t count;
} reference_word;

static size_t reference_words(const lf_buffer *corpus, reference_word **words_out)
{
    reference_word *words = NULL;
    size_t count = 0, capacity = 0;
    for (size_t start = 0; start < corpus->length;) {
        size_t end = lf_tokenizer_chunk_end(corpus->data, corpus->length, start);
        size_t length = end - start;
        size_t found = count;
        for (size_t w = 0; w < count && length > 1; w++) {
            if (words[w].length != length)
                continue;
            size_t i = 0;
            while (i < length && words[w].symbols[i] == corpus->data[start + i])
                i++;
            if (i == length)
                found = w;
        }
        if (length > 1 && found == count) {
            if (count == capacity) {
                capacity = capacity ? 2 * capacity : 256;
                words = realloc(words, capacity * sizeof *words);
            }
            words[count] = (reference_word){.length = length};
            for (size_t i = 0; i < length; i++)
                words[count].symbols[i] = corpus->data[start + i];
            count++;
        }
        if (length > 1)
            words[found].count++;
        start = end;
    }
    *words_out = words;
    return count;
}

static size_t apply_reference_merge(uint32_t *symbols, size_t length, lf_tokenizer_merge merge,
                                    uint32_t merged)
{
    size_t kept = 0;
    for (size_t i = 0; i < length; i++) {
        if (i + 1 < length && symbols[i] == merge.left && symbols[i + 1] == merge.right) {
            symbols[kept++] = merged;
            i++;
        } else {
            symbols[kept++] = symbols[i];
        }
    }
    return kept;
}

/* Recounts every pair before each merge; the most frequent wins, the lowest
 * (left, right) among equals; stops when no pair occurs twice. */
static uint32_t reference_train(const lf_buffer *corpus, uint32_t vocab_size,
                                lf_tokenizer_merge *merges)
{
    reference_word *words;
    size_t word_count = reference_words(corpus, &words);
    int64_t *counts = malloc((size_t)vocab_size * vocab_size * sizeof *counts);
    uint32_t merge_count = 0;
    while (LF_TOKEN_FIRST_MERGE + merge_count < vocab_size) {
        memset(counts, 0, (size_t)vocab_size * vocab_size * sizeof *counts);
        for (size_t w = 0; w < word_count; w++)
            for (size_t i = 0; i + 1 < words[w].length; i++) {
                uint32_t left = words[w].symbols[i], right = words[w].symbols[i + 1];
                counts[left * vocab_size + right] += words[w].count;
            }
        int64_t best = 1;
        lf_tokenizer_merge chosen = {0, 0};
        for (uint32_t left = 0; left < vocab_size; left++)
            for (uint32_t right = 0; right < vocab_size; right++)
                if (counts[left * vocab_size + right] > best) {
                    best = counts[left * vocab_size + right];
                    chosen = (lf_tokenizer_merge){left, right};
                }
        if (best < 2)
            break;
        merges[merge_count] = chosen;
        for (size_t w = 0; w < word_count; w++)
            words[w].length = apply_reference_merge(words[w].symbols, words[w].length, chosen,
                                                    LF_TOKEN_FIRST_MERGE + merge_count);
        merge_count++;
    }
    free(counts);
    free(words);
    return merge_count;
}

/* Per chunk: apply the merge of lowest rank present until none is. */
static void reference_encode(const lf_tokenizer *tokenizer, const uint8_t *data, size_t size,
                             lf_token_array *out)
{
    const lf_tokenizer_merge *merges = lf_tokenizer_merges(tokenizer);
    uint32_t merge_count = lf_tokenizer_merge_count(tokenizer);
    for (size_t start = 0; start < size;) {
        size_t end = lf_tokenizer_chunk_end(data, size, start);
        uint32_t symbols[LF_TOKENIZER_MAX_CHUNK];
        size_t length = end - start;
        for (size_t i = 0; i < length; i++)
            symbols[i] = data[start + i];
        for (uint32_t rank = 0; rank < merge_count; rank++)
            length = apply_reference_merge(symbols, length, merges[rank],
                                           LF_TOKEN_FIRST_MERGE + rank);
        assert_int_equal(lf_token_array_append(out, symbols, length), 0);
        start = end;
    }
}

static void assert_same_merges(const lf_tokenizer *tokenizer, const lf_tokenizer_merge *merges,
                               uint32_t count)
{
    assert_int_equal(lf_tokenizer_merge_count(tokenizer), count);
    const lf_tokenizer_merge *learned = lf_tokenizer_merges(tokenizer);
    for (uint32_t i = 0; i < count; i++)
        if (learned[i].left != merges[i].left || learned[i].right != merges[i].right)
            fail_msg("merge %u: (%u, %u), the reference has (%u, %u)", i, learned[i].left,
                     learned[i].right, merges[i].left, merges[i].right);
}

/* ---- Tests ---------------------------------------------------------------------- */

static void assert_chunks(const char *text, const char *const *expected)
{
    size_t size = strlen(text), start = 0, i = 0;
    for (; start < size; i++) {
        size_t end = lf_tokenizer_chunk_end((const uint8_t *)text, size, start);
        assert_non_null(expected[i]);
        if (end - start != strlen(expected[i]) || memcmp(text + start, expected[i], end - start))
            fail_msg("chunk %zu of '%s' is '%.*s', expected '%s'", i, text, (int)(end - start),
                     text + start, expected[i]);
        start = end;
    }
    assert_null(expected[i]);
}

static void test_chunks_follow_the_documented_classes(void **state)
{
    (void)state;
    assert_chunks("Hello, world!", (const char *const[]){"Hello", ",", " world", "!", NULL});
    assert_chunks("if (x) {\n    return my_value;\n}",
                  (const char *const[]){"if", " (", "x", ")", " {", "\n   ", " return",
                                        " my_value", ";", "\n", "}", NULL});
    assert_chunks("  two  spaces ", (const char *const[]){" ", " two", " ", " spaces", " ", NULL});
    assert_chunks("year 20245 and 7",
                  (const char *const[]){"year", " 202", "45", " and", " 7", NULL});
    assert_chunks("<a href=\"x\">caf\xc3\xa9</a>",
                  (const char *const[]){"<", "a", " href", "=\"", "x", "\">", "caf\xc3\xa9", "</",
                                        "a", ">", NULL});
    assert_chunks("\r\n\r\n\tx", (const char *const[]){"\r\n\r\n\t", "x", NULL});
    /* Long runs are cut at 64 bytes. */
    char long_word[150];
    memset(long_word, 'a', 149);
    long_word[149] = '\0';
    char first[65], second[65], third[22];
    memset(first, 'a', 64), first[64] = '\0';
    memset(second, 'a', 64), second[64] = '\0';
    memset(third, 'a', 21), third[21] = '\0';
    assert_chunks(long_word, (const char *const[]){first, second, third, NULL});
}

static void test_training_matches_the_reference(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        lf_buffer corpus = {0};
        if (seed % 3 == 0)
            make_ties(seed, 6000, &corpus);
        else if (seed % 3 == 1)
            make_text(seed, 20000, &corpus);
        else
            make_random_bytes(seed, 20000, &corpus);
        enum { VOCAB_SIZE = 400 };
        uint32_t vocab_size = VOCAB_SIZE;
        lf_tokenizer_merge merges[VOCAB_SIZE];
        uint32_t merge_count = reference_train(&corpus, vocab_size, merges);
        lf_tokenizer *tokenizer = train(&corpus, vocab_size);
        assert_same_merges(tokenizer, merges, merge_count);
        /* Encoding replays training: the reference merges every rank in turn. */
        lf_token_array fast = {0}, slow = {0};
        encode(tokenizer, corpus.data, corpus.length, &fast);
        reference_encode(tokenizer, corpus.data, corpus.length, &slow);
        assert_int_equal(fast.count, slow.count);
        assert_memory_equal(fast.ids, slow.ids, fast.count * sizeof *fast.ids);
        lf_token_array_free(&fast);
        lf_token_array_free(&slow);
        lf_tokenizer_free(tokenizer);
        lf_buffer_free(&corpus);
    }
}

static bool is_lower(uint8_t byte)
{
    return byte >= 'a' && byte <= 'z';
}

static uint64_t merges_hash(const lf_tokenizer *tokenizer)
{
    uint32_t count = lf_tokenizer_merge_count(tokenizer);
    const lf_tokenizer_merge *merges = lf_tokenizer_merges(tokenizer);
    uint8_t *bytes = malloc(8 * (size_t)count + 1);
    for (uint32_t i = 0; i < count; i++)
        for (int b = 0; b < 4; b++) {
            bytes[8 * i + b] = (uint8_t)(merges[i].left >> (8 * b));
            bytes[8 * i + 4 + b] = (uint8_t)(merges[i].right >> (8 * b));
        }
    uint64_t hash = XXH64(bytes, 8 * (size_t)count, 0);
    free(bytes);
    return hash;
}

static void test_training_is_deterministic(void **state)
{
    (void)state;
    lf_buffer corpus = {0};
    make_text(42, 300000, &corpus);
    lf_tokenizer *first = train(&corpus, 2000);
    lf_tokenizer *second = train(&corpus, 2000);
    assert_int_equal(lf_tokenizer_vocab_size(first), 2000);
    assert_int_equal(merges_hash(first), merges_hash(second));
    /* Pinned: a change here changes every model trained with this code. */
    assert_int_equal(merges_hash(first), 0xd95940a8c28e77baull);
    lf_tokenizer_free(first);
    lf_tokenizer_free(second);

    /* Two inputs count as two: the same merges as one input with a break
     * between them that no chunk crosses (a control byte inside a word). */
    size_t split = corpus.length / 2;
    while (!(is_lower(corpus.data[split - 1]) && is_lower(corpus.data[split])))
        split++;
    lf_tokenizer_trainer *trainer;
    assert_int_equal(lf_tokenizer_trainer_create(&trainer), 0);
    assert_int_equal(lf_tokenizer_trainer_add(trainer, corpus.data, split), 0);
    assert_int_equal(
        lf_tokenizer_trainer_add(trainer, corpus.data + split, corpus.length - split), 0);
    lf_tokenizer *in_two;
    assert_int_equal(lf_tokenizer_trainer_finish(trainer, 1000, &in_two, NULL), 0);
    lf_tokenizer_trainer_free(trainer);
    lf_buffer joined = {0};
    assert_int_equal(lf_buffer_append(&joined, corpus.data, split), 0);
    assert_int_equal(lf_buffer_append(&joined, "\x01", 1), 0);
    assert_int_equal(lf_buffer_append(&joined, corpus.data + split, corpus.length - split), 0);
    lf_tokenizer *in_one = train(&joined, 1000);
    assert_int_equal(merges_hash(in_two), merges_hash(in_one));
    lf_tokenizer_free(in_two);
    lf_tokenizer_free(in_one);
    lf_buffer_free(&joined);
    lf_buffer_free(&corpus);
}

static void test_small_corpora_and_bad_sizes(void **state)
{
    (void)state;
    lf_tokenizer *tokenizer;
    lf_diagnostic diagnostic = {0};
    /* Nothing occurs twice: only the bytes and the special tokens. */
    assert_int_equal(lf_tokenizer_train((const uint8_t *)"abc", 3, 1000, &tokenizer, NULL), 0);
    assert_int_equal(lf_tokenizer_vocab_size(tokenizer), LF_TOKEN_FIRST_MERGE);
    lf_tokenizer_free(tokenizer);
    assert_int_equal(lf_tokenizer_train(NULL, 0, 300, &tokenizer, NULL), 0);
    assert_int_equal(lf_tokenizer_vocab_size(tokenizer), LF_TOKEN_FIRST_MERGE);
    lf_tokenizer_free(tokenizer);
    assert_int_equal(lf_tokenizer_train((const uint8_t *)"aaaa", 4, 259, &tokenizer, &diagnostic),
                     -EINVAL);
    assert_non_null(strstr(diagnostic.message, "vocabulary size 259"));
    assert_null(tokenizer);
    assert_int_equal(lf_tokenizer_train((const uint8_t *)"aa", 2, LF_TOKENIZER_MAX_VOCAB + 1,
                                        &tokenizer, NULL), -EINVAL);
}

static void test_any_bytes_round_trip(void **state)
{
    (void)state;
    lf_buffer corpus = {0};
    make_text(7, 100000, &corpus);
    lf_tokenizer *tokenizer = train(&corpus, 1500);
    lf_tokenizer_encoder *encoder;
    assert_int_equal(lf_tokenizer_encoder_create(tokenizer, &encoder), 0);
    lf_random random;
    lf_random_seed(&random, 99);
    for (int round = 0; round < 60; round++) {
        lf_buffer input = {0};
        size_t size = (size_t)lf_random_below(&random, 5000);
        if (round % 3 == 0)
            make_random_bytes((uint64_t)round, size, &input); /* invalid UTF-8 and NULs too */
        else if (round % 3 == 1)
            make_text((uint64_t)round, size, &input);
        else /* text with random bytes spliced in */
            make_text((uint64_t)round, size, &input);
        for (int splice = 0; round % 3 == 2 && size && splice < 10; splice++)
            input.data[lf_random_below(&random, size)] = (uint8_t)lf_random_next(&random);
        lf_token_array tokens = {0};
        int64_t appended = lf_tokenizer_encode(encoder, input.data, input.length, &tokens);
        assert_int_equal(appended, tokens.count);
        for (size_t i = 0; i < tokens.count; i++) {
            assert_true(tokens.ids[i] < lf_tokenizer_vocab_size(tokenizer));
            assert_false(is_special(tokens.ids[i]));
        }
        /* Chunks are independent: encoding them one by one changes nothing. */
        lf_token_array by_chunk = {0};
        for (size_t start = 0; start < input.length;) {
            size_t end = lf_tokenizer_chunk_end(input.data, input.length, start);
            encode(tokenizer, input.data + start, end - start, &by_chunk);
            start = end;
        }
        assert_int_equal(by_chunk.count, tokens.count);
        if (tokens.count)
            assert_memory_equal(by_chunk.ids, tokens.ids, tokens.count * sizeof *tokens.ids);
        lf_buffer decoded = {0};
        assert_int_equal(
            lf_tokenizer_decode(tokenizer, tokens.ids, tokens.count, &decoded, NULL), 0);
        assert_int_equal(decoded.length, input.length);
        if (input.length)
            assert_memory_equal(decoded.data, input.data, input.length);
        lf_buffer_free(&decoded);
        lf_token_array_free(&by_chunk);
        lf_token_array_free(&tokens);
        lf_buffer_free(&input);
    }
    lf_tokenizer_encoder_free(encoder);
    lf_tokenizer_free(tokenizer);
    lf_buffer_free(&corpus);
}

/* More distinct chunks than the encoder caches: it starts over, and the
 * tokens stay the same. */
static void test_full_cache_starts_over(void **state)
{
    (void)state;
    lf_buffer corpus = {0};
    make_text(3, 50000, &corpus);
    lf_tokenizer *tokenizer = train(&corpus, 600);
    lf_buffer words = {0};
    lf_random random;
    lf_random_seed(&random, 17);
    enum { WORD = 6 }; /* " abcde": 26^5 spellings, so nearly all distinct */
    for (int i = 0; i < 300000; i++) {
        char word[WORD] = {' '};
        for (int c = 1; c < WORD; c++)
            word[c] = (char)('a' + lf_random_below(&random, 26));
        assert_int_equal(lf_buffer_append(&words, word, WORD), 0);
    }
    lf_tokenizer_encoder *encoder;
    assert_int_equal(lf_tokenizer_encoder_create(tokenizer, &encoder), 0);
    lf_token_array first = {0}, second = {0};
    assert_true(lf_tokenizer_encode(encoder, words.data, words.length, &first) > 0);
    assert_true(lf_tokenizer_encode(encoder, words.data, words.length, &second) > 0);
    assert_int_equal(first.count, second.count);
    assert_memory_equal(first.ids, second.ids, first.count * sizeof *first.ids);
    /* The last words, encoded fresh, agree with the cached run. */
    lf_token_array fresh = {0};
    size_t tail = WORD * 1000;
    encode(tokenizer, words.data + words.length - tail, tail, &fresh);
    assert_memory_equal(fresh.ids, second.ids + second.count - fresh.count,
                        fresh.count * sizeof *fresh.ids);
    lf_token_array_free(&first);
    lf_token_array_free(&second);
    lf_token_array_free(&fresh);
    lf_tokenizer_encoder_free(encoder);
    lf_tokenizer_free(tokenizer);
    lf_buffer_free(&words);
    lf_buffer_free(&corpus);
}

static void test_special_tokens(void **state)
{
    (void)state;
    lf_buffer corpus = {0};
    make_text(5, 20000, &corpus);
    assert_int_equal(lf_buffer_append_string(&corpus, "<R>\n<W>\n<|endoftext|><|pad|>"), 0);
    lf_tokenizer *tokenizer = train(&corpus, 400);
    static const char *const names[] = {"<|endoftext|>", "<R>", "<W>", "<|pad|>"};
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(lf_tokenizer_special_id(tokenizer, names[i]), LF_TOKEN_ENDOFTEXT + i);
        size_t length;
        const uint8_t *bytes = lf_tokenizer_token_bytes(tokenizer, LF_TOKEN_ENDOFTEXT + i, &length);
        assert_int_equal(length, strlen(names[i]));
        assert_memory_equal(bytes, names[i], length);
    }
    assert_int_equal(lf_tokenizer_special_id(tokenizer, "<X>"), -ENOENT);
    assert_int_equal(LF_TOKEN_READ, 257);
    assert_int_equal(LF_TOKEN_WRITE, 258);
    /* The caller inserts them; their spelling in text stays text. */
    const char prompt[] = "<R>\nread('/a')\n---\n<|endoftext|>";
    lf_token_array tokens = {0};
    encode(tokenizer, (const uint8_t *)prompt, sizeof prompt - 1, &tokens);
    for (size_t i = 0; i < tokens.count; i++)
        assert_false(is_special(tokens.ids[i]));
    /* Decoding writes a special token's name. */
    uint32_t with_special[] = {LF_TOKEN_READ, '\n', 'x', LF_TOKEN_ENDOFTEXT};
    lf_buffer decoded = {0};
    assert_int_equal(lf_tokenizer_decode(tokenizer, with_special, 4, &decoded, NULL), 0);
    assert_int_equal(decoded.length, strlen("<R>\nx<|endoftext|>"));
    assert_memory_equal(decoded.data, "<R>\nx<|endoftext|>", decoded.length);
    /* An unknown id fails and leaves the output as it was. */
    uint32_t unknown[] = {'a', 400};
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_tokenizer_decode(tokenizer, unknown, 2, &decoded, &diagnostic),
                     -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "token 1 is id 400, outside the vocabulary of 400"));
    assert_int_equal(decoded.length, strlen("<R>\nx<|endoftext|>"));
    lf_buffer_free(&decoded);
    lf_token_array_free(&tokens);
    lf_tokenizer_free(tokenizer);
    lf_buffer_free(&corpus);
}

/* Trained on one English text, fewer than 0.4 tokens per byte of another. */
static void test_english_compresses(void **state)
{
    (void)state;
    lf_buffer training = {0}, held_out = {0};
    if (lf_file_read_all("/usr/share/common-licenses/GPL-3", &training, NULL) != 0 ||
        lf_file_read_all("/usr/share/common-licenses/Apache-2.0", &held_out, NULL) != 0) {
        lf_buffer_free(&training);
        lf_buffer_free(&held_out);
        skip(); /* base-files' licences: on every Debian system */
    }
    lf_tokenizer *tokenizer = train(&training, 1024);
    lf_token_array tokens = {0};
    encode(tokenizer, held_out.data, held_out.length, &tokens);
    double per_byte = (double)tokens.count / (double)held_out.length;
    print_message("%zu bytes -> %zu tokens: %.3f tokens per byte\n", held_out.length,
                  tokens.count, per_byte);
    assert_true(per_byte < 0.4);
    lf_token_array_free(&tokens);
    lf_tokenizer_free(tokenizer);
    lf_buffer_free(&training);
    lf_buffer_free(&held_out);
}

static void write_tokenizer_image(const lf_tokenizer *tokenizer, lf_buffer *image)
{
    lf_gguf_writer *writer;
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_gguf_writer_create(&writer), 0);
    if (lf_tokenizer_write_gguf(tokenizer, writer, &diagnostic) != 0 ||
        lf_gguf_writer_finish(writer, image, &diagnostic) != 0)
        fail_msg("%s", diagnostic.message);
    lf_gguf_writer_free(writer);
}

static int64_t read_image(const lf_buffer *image, lf_tokenizer **tokenizer,
                          lf_diagnostic *diagnostic)
{
    lf_gguf *file;
    int64_t status = lf_gguf_parse(image->data, image->length, &file, diagnostic);
    if (status == 0)
        status = lf_tokenizer_read_gguf(file, tokenizer, diagnostic);
    lf_gguf_close(file);
    return status;
}

static void test_gguf_round_trip(void **state)
{
    (void)state;
    lf_buffer corpus = {0};
    make_text(11, 60000, &corpus);
    lf_tokenizer *tokenizer = train(&corpus, 900);
    lf_buffer image = {0};
    write_tokenizer_image(tokenizer, &image);
    lf_tokenizer *loaded;
    lf_diagnostic diagnostic = {0};
    if (read_image(&image, &loaded, &diagnostic) != 0)
        fail_msg("%s", diagnostic.message);
    assert_int_equal(merges_hash(loaded), merges_hash(tokenizer));
    assert_int_equal(lf_tokenizer_vocab_size(loaded), 900);
    lf_tokenizer_free(loaded);

    char *directory = lf_test_sandbox_create("tokenizer");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.gguf", directory);
    assert_int_equal(lf_tokenizer_save(tokenizer, path, NULL), 0);
    if (lf_tokenizer_load(path, &loaded, &diagnostic) != 0)
        fail_msg("%s", diagnostic.message);
    assert_int_equal(merges_hash(loaded), merges_hash(tokenizer));
    lf_tokenizer_free(loaded);
    /* A vocab-only file: metadata and no tensors. */
    lf_gguf *file;
    assert_int_equal(lf_gguf_open_file(path, &file, NULL), 0);
    assert_int_equal(lf_gguf_tensor_count(file), 0);
    lf_gguf_string text;
    assert_int_equal(lf_gguf_get_string(file, "tokenizer.ggml.model", &text, NULL), 0);
    assert_int_equal(text.length, strlen("llmfuse-bpe"));
    lf_gguf_close(file);
    lf_test_sandbox_remove(directory);
    free(directory);
    lf_buffer_free(&image);
    lf_tokenizer_free(tokenizer);
    lf_buffer_free(&corpus);
}

/* Damage to a tokenizer's metadata that GGUF itself cannot see: each byte
 * is found through the parsed file, changed, and the tokenizer refused. */
typedef enum tokenizer_damage {
    DAMAGE_MODEL_NAME,
    DAMAGE_PRETOKENIZER,
    DAMAGE_FORWARD_MERGE,
    DAMAGE_SPECIAL_MERGE,
    DAMAGE_REPEATED_MERGE,
    DAMAGE_TOKEN_BYTES,
    DAMAGE_TOKEN_TYPE,
    DAMAGE_EOS_ID,
    DAMAGE_COUNT
} tokenizer_damage;

static const struct {
    int64_t status;
    const char *words;
} damage_effects[] = {
    [DAMAGE_MODEL_NAME] = {-LF_EFORMAT, "tokenizer.ggml.model is 'llmfuse-bpX', not 'llmfuse-bpe'"},
    [DAMAGE_PRETOKENIZER] = {-LF_EVERSION, "'llmfuse-bytes-v2', not 'llmfuse-bytes-v1'"},
    [DAMAGE_FORWARD_MERGE] = {-LF_EFORMAT,
                              "merge 5 (token 265) joins token 265, which is not made before it"},
    [DAMAGE_SPECIAL_MERGE] = {-LF_EFORMAT, "which is a special token"},
    [DAMAGE_REPEATED_MERGE] = {-LF_EFORMAT, "merge 1 repeats merge 0"},
    [DAMAGE_TOKEN_BYTES] = {-LF_EFORMAT, "token 300 is stored as"},
    [DAMAGE_TOKEN_TYPE] = {-LF_EFORMAT, "token 65 has type 1, not 6"},
    [DAMAGE_EOS_ID] = {-LF_EFORMAT, "tokenizer.ggml.eos_token_id is 257, not 256"},
};

static void put_le32(uint8_t *at, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

static void damage_image(lf_buffer *image, tokenizer_damage damage)
{
    lf_gguf *file;
    assert_int_equal(lf_gguf_parse(image->data, image->length, &file, NULL), 0);
    const lf_gguf_string *tokens;
    uint64_t token_count;
    assert_int_equal(lf_gguf_get_string_array(file, "tokenizer.ggml.tokens", &tokens,
                                              &token_count, NULL), 0);
    uint8_t *merges = (uint8_t *)lf_gguf_find_metadata(file, "llmfuse.tokenizer.merges")->data;
    uint8_t *types = (uint8_t *)lf_gguf_find_metadata(file, "tokenizer.ggml.token_type")->data;
    lf_gguf_string text;
    switch (damage) {
    case DAMAGE_MODEL_NAME:
        lf_gguf_get_string(file, "tokenizer.ggml.model", &text, NULL);
        ((char *)text.data)[text.length - 1] = 'X';
        break;
    case DAMAGE_PRETOKENIZER:
        lf_gguf_get_string(file, "llmfuse.tokenizer.pretokenizer", &text, NULL);
        ((char *)text.data)[text.length - 1] = '2';
        break;
    case DAMAGE_FORWARD_MERGE:
        put_le32(merges + 8 * 5, 265);
        break;
    case DAMAGE_SPECIAL_MERGE:
        put_le32(merges + 8 * 2 + 4, LF_TOKEN_READ);
        break;
    case DAMAGE_REPEATED_MERGE:
        memcpy(merges + 8, merges, 8);
        break;
    case DAMAGE_TOKEN_BYTES:
        ((char *)tokens[300].data)[0] ^= 1;
        break;
    case DAMAGE_TOKEN_TYPE:
        put_le32(types + 4 * 65, 1);
        break;
    default: /* DAMAGE_EOS_ID */
        put_le32((uint8_t *)lf_gguf_find_metadata(file, "tokenizer.ggml.eos_token_id")->data,
                 LF_TOKEN_READ);
    }
    lf_gguf_close(file);
}

static void test_damaged_tokenizers_are_refused(void **state)
{
    (void)state;
    lf_buffer corpus = {0};
    make_text(13, 30000, &corpus);
    lf_tokenizer *tokenizer = train(&corpus, 500);
    for (int damage = 0; damage < DAMAGE_COUNT; damage++) {
        lf_buffer image = {0};
        write_tokenizer_image(tokenizer, &image);
        damage_image(&image, damage);
        lf_tokenizer *loaded = NULL;
        lf_diagnostic diagnostic = {0};
        int64_t status = read_image(&image, &loaded, &diagnostic);
        if (status != damage_effects[damage].status ||
            !strstr(diagnostic.message, damage_effects[damage].words))
            fail_msg("damage %d: %s '%s'", damage, lf_error_name(status), diagnostic.message);
        assert_null(loaded);
        lf_buffer_free(&image);
    }

    /* Keys missing or of the wrong shape. */
    lf_gguf_writer *writer;
    assert_int_equal(lf_gguf_writer_create(&writer), 0);
    assert_int_equal(
        lf_gguf_writer_set_string(writer, "tokenizer.ggml.model", "llmfuse-bpe", NULL), 0);
    assert_int_equal(lf_gguf_writer_set_string(writer, "llmfuse.tokenizer.pretokenizer",
                                               LF_TOKENIZER_PRETOKENIZER, NULL), 0);
    static const uint32_t odd_merges[] = {97, 98, 99};
    assert_int_equal(lf_gguf_writer_set_array(writer, "llmfuse.tokenizer.merges", LF_GGUF_UINT32,
                                              odd_merges, 3, NULL), 0);
    lf_buffer image = {0};
    assert_int_equal(lf_gguf_writer_finish(writer, &image, NULL), 0);
    lf_gguf_writer_free(writer);
    lf_tokenizer *loaded;
    lf_diagnostic diagnostic = {0};
    assert_int_equal(read_image(&image, &loaded, &diagnostic), -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "has 3 ids: not pairs"));
    lf_buffer_free(&image);
    /* A GGUF file without any tokenizer keys. */
    assert_int_equal(lf_gguf_writer_create(&writer), 0);
    assert_int_equal(lf_gguf_writer_finish(writer, &image, NULL), 0);
    lf_gguf_writer_free(writer);
    diagnostic = (lf_diagnostic){0};
    assert_int_equal(read_image(&image, &loaded, &diagnostic), -ENOENT);
    assert_non_null(strstr(diagnostic.message, "'tokenizer.ggml.model' is missing"));
    lf_buffer_free(&image);

    /* A token longer than a chunk could be. */
    lf_tokenizer_merge doubling[7] = {{'a', 'a'}};
    for (uint32_t i = 1; i < 7; i++)
        doubling[i] = (lf_tokenizer_merge){LF_TOKEN_FIRST_MERGE + i - 1,
                                           LF_TOKEN_FIRST_MERGE + i - 1};
    diagnostic = (lf_diagnostic){0};
    assert_int_equal(lf_tokenizer_from_merges(doubling, 7, &loaded, &diagnostic), -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "merge 6 makes a token of 128 bytes"));
    assert_int_equal(lf_tokenizer_from_merges(doubling, 6, &loaded, NULL), 0);
    lf_tokenizer_free(loaded);
    lf_tokenizer_free(tokenizer);
    lf_buffer_free(&corpus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks_follow_the_documented_classes),
        cmocka_unit_test(test_training_matches_the_reference),
        cmocka_unit_test(test_training_is_deterministic),
        cmocka_unit_test(test_small_corpora_and_bad_sizes),
        cmocka_unit_test(test_any_bytes_round_trip),
        cmocka_unit_test(test_full_cache_starts_over),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_english_compresses),
        cmocka_unit_test(test_gguf_round_trip),
        cmocka_unit_test(test_damaged_tokenizers_are_refused),
    };
    return cmocka_run_group_tests_name("tokenizer", tests, NULL, NULL);
}
