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
    assert_int_equal(lf_model_encode(model, &input, 1, true, &payload), 0);
    lf_span coded = {payload.data, payload.length};
    assert_int_equal(lf_model_decode(model, &coded, NULL, 1, &restored), 0);
    assert_int_equal(restored.length, input.size);
    assert_memory_equal(restored.data, text, input.size);
    lf_buffer_free(&payload);
    lf_buffer_free(&restored);
    lf_model_free(model);
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
    };
    return cmocka_run_group_tests_name("llmz", tests, NULL, NULL);
}
