/* The .llmz container with the adaptive model: exact round trips, every
 * damage detected with a message that names it, and bytes that do not
 * depend on the thread count or the batch size. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/llmz.h"
#include "common/random.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "model/transformer_file.h"
#include "sandbox.h"

static const char text[] =
    "It was the best of filesystems, it was the worst of filesystems; every directory held "
    "its files in order, and every file held its bytes. The model predicted each bit, the "
    "coder turned predictions into intervals, and the intervals became bytes on disk.\n";

static lf_model *open_model(const char *name)
{
    lf_model *model = NULL;
    lf_diagnostic diagnostic = {0};
    if (lf_model_open(name, &model, &diagnostic) != 0)
        fail_msg("%s", diagnostic.message);
    return model;
}

static void compress(const lf_model *model, const uint8_t *data, size_t size, unsigned threads,
                     uint64_t segment_size, lf_buffer *archive)
{
    lf_llmz_options options = {.model = model, .threads = threads, .segment_size = segment_size};
    lf_diagnostic diagnostic = {0};
    if (lf_llmz_compress(data, size, &options, archive, &diagnostic) != 0)
        fail_msg("compress: %s", diagnostic.message);
}

static int64_t decompress(const lf_model *model, const lf_buffer *archive, unsigned threads,
                          lf_buffer *out, lf_diagnostic *diagnostic)
{
    lf_llmz_options options = {.model = model, .threads = threads};
    return lf_llmz_decompress(archive->data, archive->length, &options, out, diagnostic);
}

static void assert_round_trip(const lf_model *model, const uint8_t *data, size_t size,
                              uint64_t segment_size)
{
    lf_buffer archive = {0}, restored = {0};
    compress(model, data, size, 2, segment_size, &archive);
    lf_diagnostic diagnostic = {0};
    if (decompress(model, &archive, 2, &restored, &diagnostic) != 0)
        fail_msg("decompress: %s", diagnostic.message);
    assert_int_equal(restored.length, size);
    if (size)
        assert_memory_equal(restored.data, data, size);
    lf_buffer_free(&archive);
    lf_buffer_free(&restored);
}

static void test_round_trips(void **state)
{
    (void)state;
    lf_model *model = open_model("cm-small");
    assert_round_trip(model, (const uint8_t *)"", 0, 0);
    assert_round_trip(model, (const uint8_t *)"x", 1, 0);
    uint8_t all_bytes[256];
    for (int i = 0; i < 256; i++)
        all_bytes[i] = (uint8_t)i;
    assert_round_trip(model, all_bytes, sizeof all_bytes, 0);
    assert_round_trip(model, (const uint8_t *)text, sizeof text - 1, 0);
    /* many segments, some of them one byte */
    assert_round_trip(model, (const uint8_t *)text, sizeof text - 1, 7);
    uint8_t random_bytes[20000];
    lf_random random;
    lf_random_seed(&random, 7);
    lf_random_bytes(&random, random_bytes, sizeof random_bytes);
    assert_round_trip(model, random_bytes, sizeof random_bytes, 6000);
    lf_model_free(model);
}

static void test_methods_and_overhead(void **state)
{
    (void)state;
    lf_model *model = open_model("cm-small");
    lf_buffer archive = {0};
    lf_llmz_header header;
    /* text: the model wins */
    compress(model, (const uint8_t *)text, sizeof text - 1, 1, 0, &archive);
    assert_int_equal(lf_llmz_read_header(archive.data, archive.length, &header, NULL), 0);
    assert_int_equal(header.segments[0].method, LF_LLMZ_MODEL);
    assert_true(archive.length < (sizeof text - 1) * 3 / 4);
    lf_llmz_header_free(&header);
    /* random bytes: stored, with at most 32 bytes of overhead */
    uint8_t random_bytes[20000];
    lf_random random;
    lf_random_seed(&random, 3);
    lf_random_bytes(&random, random_bytes, sizeof random_bytes);
    archive.length = 0;
    compress(model, random_bytes, sizeof random_bytes, 1, 0, &archive);
    assert_int_equal(lf_llmz_read_header(archive.data, archive.length, &header, NULL), 0);
    assert_int_equal(header.segments[0].method, LF_LLMZ_STORED);
    assert_true(archive.length <= sizeof random_bytes + 32);
    lf_llmz_header_free(&header);
    /* long runs of one byte with a random tail: fine either way, but must pick the smallest */
    lf_buffer_free(&archive);
    lf_model_free(model);
}

/* Threads and batch sizes decide only how segments are split between jobs
 * (runs of about equal bytes, a shorter last segment included): the bytes
 * are the same for all, and each decodes what any other encoded. */
static void test_threads_and_batches_never_change_the_bytes(void **state)
{
    (void)state;
    lf_model *model = open_model("cm-small");
    static const struct {
        unsigned threads;
        size_t batch;
    } runs[] = {{1, 0}, {2, 0}, {5, 0}, {1, 1}, {2, 1}, {3, 2}, {2, 4}, {7, 3}, {4, 100}};
    enum { RUNS = sizeof runs / sizeof *runs };
    lf_buffer archives[RUNS] = {{0}};
    for (size_t r = 0; r < RUNS; r++) {
        lf_llmz_options options = {.model = model, .threads = runs[r].threads,
                                   .batch_size = runs[r].batch, .segment_size = 50};
        lf_diagnostic diagnostic = {0};
        if (lf_llmz_compress((const uint8_t *)text, sizeof text - 1, &options, &archives[r],
                             &diagnostic) != 0)
            fail_msg("compress: %s", diagnostic.message);
        assert_int_equal(archives[r].length, archives[0].length);
        assert_memory_equal(archives[r].data, archives[0].data, archives[0].length);
    }
    for (size_t r = 0; r < RUNS; r++) {
        lf_llmz_options options = {.model = model, .threads = runs[(r + 1) % RUNS].threads,
                                   .batch_size = runs[(r + 1) % RUNS].batch};
        lf_buffer restored = {0};
        lf_diagnostic diagnostic = {0};
        if (lf_llmz_decompress(archives[r].data, archives[r].length, &options, &restored,
                               &diagnostic) != 0)
            fail_msg("decompress: %s", diagnostic.message);
        assert_int_equal(restored.length, sizeof text - 1);
        assert_memory_equal(restored.data, text, sizeof text - 1);
        lf_buffer_free(&restored);
        lf_buffer_free(&archives[r]);
    }
    lf_model_free(model);
}

/* Every single-bit flip of a small archive, and every truncation, is an
 * error with a message; nothing is appended to the output. */
static void test_every_bit_flip_and_truncation_is_detected(void **state)
{
    (void)state;
    lf_model *model = open_model("cm-small");
    lf_buffer archive = {0};
    compress(model, (const uint8_t *)text, sizeof text - 1, 1, 100, &archive);
    lf_buffer damaged = {0}, out = {0};
    for (size_t bit = 0; bit < archive.length * 8; bit++) {
        damaged.length = 0;
        lf_buffer_append(&damaged, archive.data, archive.length);
        damaged.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        lf_diagnostic diagnostic = {0};
        int64_t status = decompress(model, &damaged, 2, &out, &diagnostic);
        if (status >= 0)
            fail_msg("flipping bit %zu of %zu bytes went unnoticed", bit, archive.length);
        assert_true(diagnostic.message[0] != '\0');
        assert_int_equal(out.length, 0);
    }
    for (size_t length = 0; length < archive.length; length++) {
        damaged.length = 0;
        lf_buffer_append(&damaged, archive.data, length);
        lf_diagnostic diagnostic = {0};
        int64_t status = decompress(model, &damaged, 1, &out, &diagnostic);
        if (status >= 0)
            fail_msg("truncation to %zu of %zu bytes went unnoticed", length, archive.length);
        assert_true(status == -LF_ETRUNCATED || status == -LF_EFORMAT || status == -LF_ECHECKSUM);
        assert_int_equal(out.length, 0);
    }
    lf_buffer_free(&damaged);
    lf_buffer_free(&out);
    lf_buffer_free(&archive);
    lf_model_free(model);
}

static void test_another_model_is_refused_by_name(void **state)
{
    (void)state;
    lf_model *made_with = open_model("cm-small"), *other = open_model("cm");
    lf_buffer archive = {0}, out = {0};
    compress(made_with, (const uint8_t *)text, sizeof text - 1, 1, 0, &archive);
    lf_diagnostic diagnostic = {0};
    assert_int_equal(decompress(other, &archive, 1, &out, &diagnostic), -LF_EMODEL);
    char expected[64];
    snprintf(expected, sizeof expected, "%016llx", (unsigned long long)made_with->fingerprint);
    assert_non_null(strstr(diagnostic.message, expected));
    snprintf(expected, sizeof expected, "%016llx", (unsigned long long)other->fingerprint);
    assert_non_null(strstr(diagnostic.message, expected));
    assert_non_null(strstr(diagnostic.message, "'cm'"));
    lf_model *found = NULL;
    assert_int_equal(lf_model_open_by_fingerprint(made_with->fingerprint, &found), 0);
    assert_string_equal(found->name, "cm-small");
    lf_model_free(found);
    lf_buffer_free(&archive);
    lf_model_free(made_with);
    lf_model_free(other);
}

static void test_raw_stream_ends_itself(void **state)
{
    (void)state;
    lf_model *model = open_model("cm-small");
    lf_span input = {(const uint8_t *)text, sizeof text - 1};
    lf_buffer payload = {0}, restored = {0};
    assert_int_equal(lf_model_encode(model, (lf_span){NULL, 0}, &input, 1, true, 1, &payload), 0);
    lf_span coded = {payload.data, payload.length};
    assert_int_equal(lf_model_decode(model, (lf_span){NULL, 0}, &coded, NULL, 1, 2, &restored), 0);
    assert_int_equal(restored.length, input.size);
    assert_memory_equal(restored.data, text, input.size);
    lf_buffer_free(&payload);
    lf_buffer_free(&restored);
    lf_model_free(model);
}

/* ---- prefixes: bytes the model reads first, which the archive does not hold ---- */

static lf_span span_of(const char *string)
{
    return (lf_span){(const uint8_t *)string, strlen(string)};
}

static int64_t compress_after(const lf_model *model, lf_span prefix, const uint8_t *data,
                              size_t size, uint64_t segment_size, lf_buffer *archive)
{
    lf_llmz_options options = {.model = model, .threads = 2, .segment_size = segment_size,
                               .prefix = prefix};
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_llmz_compress(data, size, &options, archive, &diagnostic);
    if (status != 0)
        fail_msg("compress: %s", diagnostic.message);
    return status;
}

static int64_t decompress_after(const lf_model *model, lf_span prefix, const lf_buffer *archive,
                                lf_buffer *out, lf_diagnostic *diagnostic)
{
    lf_llmz_options options = {.model = model, .threads = 2, .prefix = prefix};
    return lf_llmz_decompress(archive->data, archive->length, &options, out, diagnostic);
}

static void assert_round_trip_after(const lf_model *model, lf_span prefix, const uint8_t *data,
                                    size_t size, uint64_t segment_size)
{
    lf_buffer archive = {0}, restored = {0};
    compress_after(model, prefix, data, size, segment_size, &archive);
    lf_diagnostic diagnostic = {0};
    if (decompress_after(model, prefix, &archive, &restored, &diagnostic) != 0)
        fail_msg("decompress: %s", diagnostic.message);
    assert_int_equal(restored.length, size);
    if (size)
        assert_memory_equal(restored.data, data, size);
    lf_buffer_free(&archive);
    lf_buffer_free(&restored);
}

/* Segments of the archive the model coded: a prefix changes only those,
 * so a test of it must have some (of `count` when not NULL). */
static size_t model_segments(const lf_buffer *archive, size_t *count)
{
    lf_llmz_header header;
    assert_int_equal(lf_llmz_read_header(archive->data, archive->length, &header, NULL), 0);
    size_t coded = 0;
    for (size_t i = 0; i < header.segment_count; i++)
        coded += header.segments[i].method == LF_LLMZ_MODEL;
    if (count)
        *count = header.segment_count;
    lf_llmz_header_free(&header);
    return coded;
}

static void assert_all_model_segments(const lf_buffer *archive)
{
    size_t count, coded = model_segments(archive, &count);
    assert_int_equal(coded, count);
    assert_true(count > 0);
}

/* Decompressing with each of `wrong` fails with `expected` (0: the
 * checksum error or, as a transformer's decoding may, a format error),
 * with a message, leaving what the output buffer held untouched. */
static void assert_wrong_prefixes_fail(const lf_model *model, const lf_buffer *archive,
                                       const lf_span *wrong, size_t count, int64_t expected)
{
    static const char kept[] = "bytes already in the buffer";
    for (size_t i = 0; i < count; i++) {
        lf_buffer out = {0};
        assert_int_equal(lf_buffer_append(&out, kept, sizeof kept), 0);
        lf_diagnostic diagnostic = {0};
        int64_t status = decompress_after(model, wrong[i], archive, &out, &diagnostic);
        if (expected)
            assert_int_equal(status, expected);
        else if (status != -LF_ECHECKSUM && status != -LF_EFORMAT)
            fail_msg("wrong prefix %zu: status %lld (%s)", i, (long long)status,
                     diagnostic.message);
        assert_non_null(strstr(diagnostic.message, "is damaged"));
        assert_int_equal(out.length, sizeof kept);
        assert_memory_equal(out.data, kept, sizeof kept);
        lf_buffer_free(&out);
    }
}

/* About `size` bytes of text drawn from a few words: no long repeats, so
 * a model that has not seen it first must learn its words as it goes. */
static void make_words(uint64_t seed, char *out, size_t size)
{
    static const char *const words[] = {
        "inode", "directory", "block", "journal", "extent", "superblock", "mount", "path",
        "symlink", "owner", "group", "mode", "write", "read", "rename", "unlink", "the",
        "of", "a", "every", "file", "holds", "its", "bytes", "and", "model", "predicts"};
    lf_random random;
    lf_random_seed(&random, seed);
    size_t length = 0;
    while (length + 16 < size) {
        const char *word = words[lf_random_below(&random, sizeof words / sizeof *words)];
        length += (size_t)snprintf(out + length, size - length, "%s%s", word,
                                   lf_random_chance(&random, 1, 9) ? ".\n" : " ");
    }
    while (length + 1 < size)
        out[length++] = '\n';
    out[length] = '\0';
}

static void test_prefix_round_trips_with_cm(void **state)
{
    (void)state;
    lf_model *model = open_model("cm");
    lf_span prefix = span_of("src/codec/llmz.c");
    assert_round_trip_after(model, prefix, (const uint8_t *)"", 0, 0);
    assert_round_trip_after(model, prefix, (const uint8_t *)"x", 1, 0);
    assert_round_trip_after(model, prefix, (const uint8_t *)text, sizeof text - 1, 0);
    /* every segment reads the prefix afresh, one byte ones included */
    assert_round_trip_after(model, prefix, (const uint8_t *)text, sizeof text - 1, 60);
    assert_round_trip_after(model, (lf_span){NULL, 0}, (const uint8_t *)text, sizeof text - 1, 0);
    /* a prefix with every byte value, longer than the data */
    uint8_t all_bytes[256];
    for (int i = 0; i < 256; i++)
        all_bytes[i] = (uint8_t)(255 - i);
    assert_round_trip_after(model, (lf_span){all_bytes, sizeof all_bytes}, (const uint8_t *)text,
                            sizeof text - 1, 0);
    lf_model_free(model);
}

static void test_another_prefix_fails_the_checksum_with_cm(void **state)
{
    (void)state;
    lf_model *model = open_model("cm");
    lf_buffer archive = {0};
    compress_after(model, span_of("docs/story.txt"), (const uint8_t *)text, sizeof text - 1, 100,
                   &archive);
    assert_all_model_segments(&archive);
    const lf_span wrong[] = {span_of("docs/story.md"), span_of("docs/story.txt\n"),
                             span_of("d"), {NULL, 0}};
    assert_wrong_prefixes_fail(model, &archive, wrong, sizeof wrong / sizeof *wrong, -LF_ECHECKSUM);
    /* and the other way round: made without one, read with one */
    archive.length = 0;
    compress_after(model, (lf_span){NULL, 0}, (const uint8_t *)text, sizeof text - 1, 0, &archive);
    assert_all_model_segments(&archive);
    assert_wrong_prefixes_fail(model, &archive, wrong, 1, -LF_ECHECKSUM);
    lf_buffer_free(&archive);
    lf_model_free(model);
}

/* A prefix that predicts the data must shrink it: the test an ignored
 * prefix would fail. The extreme case, the data itself, leaves the model
 * almost nothing to code; another text of the same words helps less. */
static void test_a_predictive_prefix_shrinks_the_archive(void **state)
{
    (void)state;
    lf_model *model = open_model("cm");
    static char data[2048], other[2048];
    make_words(1, data, sizeof data);
    make_words(2, other, sizeof other);
    size_t size = strlen(data);
    lf_buffer plain = {0}, primed = {0}, alike = {0};
    compress_after(model, (lf_span){NULL, 0}, (const uint8_t *)data, size, 0, &plain);
    compress_after(model, span_of(data), (const uint8_t *)data, size, 0, &primed);
    compress_after(model, span_of(other), (const uint8_t *)data, size, 0, &alike);
    assert_all_model_segments(&plain);
    assert_all_model_segments(&primed);
    /* measured: 401, 40 and 270 bytes */
    if (primed.length * 4 > plain.length)
        fail_msg("prefix = data: %zu bytes, no prefix: %zu", primed.length, plain.length);
    assert_true(primed.length < alike.length && alike.length < plain.length);
    assert_round_trip_after(model, span_of(data), (const uint8_t *)data, size, 0);
    assert_round_trip_after(model, span_of(other), (const uint8_t *)data, size, 0);
    lf_buffer_free(&plain);
    lf_buffer_free(&primed);
    lf_buffer_free(&alike);
    lf_model_free(model);
}

/* The model interface itself: every stream of a call reads the prefix. */
static void test_model_streams_read_the_prefix(void **state)
{
    (void)state;
    lf_model *model = open_model("cm-small");
    const lf_span inputs[] = {span_of(text), {(const uint8_t *)text + 40, 100}};
    lf_span prefix = span_of(text);
    lf_buffer plain[2] = {{0}}, primed[2] = {{0}}, restored[2] = {{0}};
    assert_int_equal(lf_model_encode(model, (lf_span){NULL, 0}, inputs, 2, false, 1, plain), 0);
    assert_int_equal(lf_model_encode(model, prefix, inputs, 2, false, 2, primed), 0);
    const lf_span payloads[] = {{primed[0].data, primed[0].length},
                                {primed[1].data, primed[1].length}};
    const uint64_t sizes[] = {inputs[0].size, inputs[1].size};
    assert_int_equal(lf_model_decode(model, prefix, payloads, sizes, 2, 2, restored), 0);
    for (size_t i = 0; i < 2; i++) {
        assert_true(primed[i].length * 4 < plain[i].length);
        assert_int_equal(restored[i].length, inputs[i].size);
        assert_memory_equal(restored[i].data, inputs[i].data, inputs[i].size);
        lf_buffer_free(&plain[i]);
        lf_buffer_free(&primed[i]);
        lf_buffer_free(&restored[i]);
    }
    lf_model_free(model);
}

/* ---- the same with a small random transformer ---- */

typedef struct transformer_fixture {
    char *directory;
    lf_model *model;
} transformer_fixture;

/* The engine's default shape with a byte-level tokenizer and a window of
 * 32 tokens, so that a long prefix slides past it. Random weights predict
 * little, but the stream's token statistics (the token mixer) learn
 * make_words's few words: the model beats zstd on a whole 2 KB of them.
 * What such a model cannot show is a prefix that helps: it only sees the
 * prefix through its window, and the token mixer starts without it. */
static int setup_transformer(void **state)
{
    transformer_fixture *f = calloc(1, sizeof *f);
    lf_transformer_config config = lf_transformer_default_config(LF_TOKEN_FIRST_MERGE);
    config.context_length = 32;
    float *parameters = malloc(lf_transformer_parameter_count(&config) * sizeof *parameters);
    assert_non_null(parameters);
    lf_transformer_init_parameters(&config, 42, parameters);
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_from_merges(NULL, 0, &tokenizer, NULL), 0);
    f->directory = lf_test_sandbox_create("llmz-transformer");
    char *path;
    assert_true(asprintf(&path, "%s/model.gguf", f->directory) > 0);
    lf_diagnostic diagnostic = {0};
    if (lf_transformer_save(&config, parameters, tokenizer, path, &diagnostic) != 0)
        fail_msg("save: %s", diagnostic.message);
    lf_tokenizer_free(tokenizer);
    free(parameters);
    f->model = open_model(path);
    free(path);
    *state = f;
    return 0;
}

static int teardown_transformer(void **state)
{
    transformer_fixture *f = *state;
    lf_model_free(f->model);
    lf_test_sandbox_remove(f->directory);
    free(f->directory);
    free(f);
    return 0;
}

static void test_prefix_round_trips_with_a_transformer(void **state)
{
    const lf_model *model = ((transformer_fixture *)*state)->model;
    static char data[2048];
    make_words(1, data, sizeof data);
    size_t size = strlen(data);
    lf_span path = span_of("tests/unit/test_llmz.c");
    lf_span long_prefix = span_of(text); /* far past the 32-token window */
    lf_buffer archive = {0};
    compress_after(model, path, (const uint8_t *)data, size, 700, &archive);
    assert_true(model_segments(&archive, NULL) >= 2); /* measured: model, zstd, model */
    lf_buffer_free(&archive);
    assert_round_trip_after(model, path, (const uint8_t *)"", 0, 0);
    assert_round_trip_after(model, path, (const uint8_t *)"x", 1, 0);
    assert_round_trip_after(model, path, (const uint8_t *)data, size, 0);
    assert_round_trip_after(model, path, (const uint8_t *)data, size, 700);
    assert_round_trip_after(model, long_prefix, (const uint8_t *)data, size, 0);
    /* the model's own payload changes with the prefix */
    lf_span input = {(const uint8_t *)data, size};
    lf_buffer plain = {0}, primed = {0};
    assert_int_equal(lf_model_encode(model, (lf_span){NULL, 0}, &input, 1, false, 1, &plain), 0);
    assert_int_equal(lf_model_encode(model, path, &input, 1, false, 1, &primed), 0);
    assert_false(plain.length == primed.length &&
                 memcmp(plain.data, primed.data, plain.length) == 0);
    lf_buffer_free(&plain);
    lf_buffer_free(&primed);
}

static void test_another_prefix_fails_with_a_transformer(void **state)
{
    const lf_model *model = ((transformer_fixture *)*state)->model;
    static char data[2048];
    make_words(1, data, sizeof data);
    lf_buffer archive = {0};
    compress_after(model, span_of("src/main.rs"), (const uint8_t *)data, strlen(data), 0,
                   &archive);
    assert_all_model_segments(&archive);
    const lf_span wrong[] = {span_of("src/main.c"), span_of("src/main.rs "), {NULL, 0}};
    assert_wrong_prefixes_fail(model, &archive, wrong, sizeof wrong / sizeof *wrong, 0);
    lf_buffer_free(&archive);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_methods_and_overhead),
        cmocka_unit_test(test_threads_and_batches_never_change_the_bytes),
        cmocka_unit_test(test_every_bit_flip_and_truncation_is_detected),
        cmocka_unit_test(test_another_model_is_refused_by_name),
        cmocka_unit_test(test_raw_stream_ends_itself),
        cmocka_unit_test(test_prefix_round_trips_with_cm),
        cmocka_unit_test(test_another_prefix_fails_the_checksum_with_cm),
        cmocka_unit_test(test_a_predictive_prefix_shrinks_the_archive),
        cmocka_unit_test(test_model_streams_read_the_prefix),
        cmocka_unit_test_setup_teardown(test_prefix_round_trips_with_a_transformer,
                                        setup_transformer, teardown_transformer),
        cmocka_unit_test_setup_teardown(test_another_prefix_fails_with_a_transformer,
                                        setup_transformer, teardown_transformer),
    };
    return cmocka_run_group_tests_name("llmz", tests, NULL, NULL);
}
