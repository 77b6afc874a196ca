/* gzip recompression: lf_gzip_deflate writes what `gzip -9n` writes (the
 * expected lengths and XXH32 digests below were taken from GNU gzip 1.12
 * on the same generated inputs), inflate undoes any of it, and a split
 * file is rebuilt byte for byte or not split at all. tests/cli/image_gzip.sh
 * compares with the gzip program itself on more inputs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <cmocka.h>

#include "codec/gzip.h"

enum { TEXT = 0, RANDOM = 1, TWO_WORDS = 2 };

/* Deterministic inputs: words (TEXT: 13 of them, TWO_WORDS: 2, for long
 * matches) or bytes (RANDOM, which deflate stores). */
static uint8_t *make_input(unsigned kind, size_t size)
{
    static const char *words[] = {"the",  "file",  "system",    "of",    "blocks",
                                  "inode", "tree", "a",         "directory",
                                  "holds", "names,", "and\n",   "bytes."};
    uint8_t *out = malloc(size + 1);
    assert_non_null(out);
    uint32_t x = 12345u + kind;
    for (size_t n = 0; n < size;) {
        x = x * 1103515245u + 12345u;
        if (kind == RANDOM) {
            out[n++] = (uint8_t)(x >> 16);
            continue;
        }
        const char *word = words[(x >> 16) % (kind == TWO_WORDS ? 2 : 13)];
        for (size_t i = 0; word[i] && n < size; i++)
            out[n++] = (uint8_t)word[i];
        if (n < size)
            out[n++] = ' ';
    }
    return out;
}

static const uint8_t gzip_n_header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3};

static void gzip_file(const uint8_t *text, size_t size, lf_buffer *file)
{
    assert_int_equal(lf_gzip_join(gzip_n_header, sizeof gzip_n_header, text, size, file), 0);
}

static void test_deflate_is_gzips(void **state)
{
    (void)state;
    static const struct {
        unsigned kind;
        size_t size;
        size_t gzip_size; /* of `gzip -9n`'s whole file */
        uint32_t digest;  /* XXH32 of it */
    } cases[] = {
        {TEXT, 0, 20, 0xa8b335fcu},           /* an empty input's one block */
        {TEXT, 3000, 638, 0x116e6894u},       /* one dynamic block */
        {TEXT, 100000, 14085, 0xfd3b5142u},   /* blocks cut by gzip's heuristic */
        {TEXT, 200000, 27460, 0x4d343cdeu},   /* the window slides */
        {RANDOM, 70000, 70033, 0xa6f9d3f6u},  /* stored blocks */
        {TWO_WORDS, 300000, 13204, 0x7ef5055fu}, /* 258-byte matches, long chains */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *text = make_input(cases[i].kind, cases[i].size);
        lf_buffer file = {0};
        gzip_file(text, cases[i].size, &file);
        assert_int_equal(file.length, cases[i].gzip_size);
        assert_int_equal(XXH32(file.data, file.length, 0), cases[i].digest);
        lf_buffer_free(&file);
        free(text);
    }
}

static void test_split_join_round_trip(void **state)
{
    (void)state;
    static const struct {
        unsigned kind;
        size_t size;
    } cases[] = {{TEXT, 0}, {TEXT, 1}, {RANDOM, 1}, {TEXT, 70000}, {RANDOM, 150000},
                 {TWO_WORDS, 140000}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *text = make_input(cases[i].kind, cases[i].size);
        lf_buffer file = {0}, inflated = {0}, again = {0};
        gzip_file(text, cases[i].size, &file);
        size_t header_size = 0;
        assert_int_equal(lf_gzip_split(file.data, file.length, &header_size, &inflated), 0);
        assert_int_equal(header_size, sizeof gzip_n_header);
        assert_int_equal(inflated.length, cases[i].size);
        assert_true(cases[i].size == 0 || memcmp(inflated.data, text, cases[i].size) == 0);
        assert_int_equal(lf_gzip_join(file.data, header_size, inflated.data, inflated.length,
                                      &again), 0);
        assert_int_equal(again.length, file.length);
        assert_memory_equal(again.data, file.data, file.length);
        lf_buffer_free(&file);
        lf_buffer_free(&inflated);
        lf_buffer_free(&again);
        free(text);
    }
}

/* A header with a name and a comment is kept as it is. */
static void test_header_fields_kept(void **state)
{
    (void)state;
    static const uint8_t header[] = {0x1f, 0x8b, 8, 8 | 16, 1, 2, 3, 4, 2, 3,
                                     'a', '.', 't', 'x', 't', 0, 'h', 'i', 0};
    uint8_t *text = make_input(TEXT, 5000);
    lf_buffer file = {0}, inflated = {0};
    assert_int_equal(lf_gzip_join(header, sizeof header, text, 5000, &file), 0);
    size_t header_size = 0;
    assert_int_equal(lf_gzip_split(file.data, file.length, &header_size, &inflated), 0);
    assert_int_equal(header_size, sizeof header);
    assert_int_equal(inflated.length, 5000);
    lf_buffer_free(&file);
    lf_buffer_free(&inflated);
    free(text);
}

static void expect_no_split(const uint8_t *file, size_t size, int64_t expected)
{
    lf_buffer text = {0};
    assert_int_equal(lf_buffer_append(&text, "kept", 4), 0);
    size_t header_size = 99;
    assert_int_equal(lf_gzip_split(file, size, &header_size, &text), expected);
    assert_int_equal(text.length, 4); /* unchanged */
    assert_int_equal(header_size, 99);
    lf_buffer_free(&text);
}

/* Whatever is wrong with a file, it is not split, and nothing is lost. */
static void test_bad_files_not_split(void **state)
{
    (void)state;
    uint8_t *text = make_input(TEXT, 20000);
    lf_buffer file = {0};
    gzip_file(text, 20000, &file);
    for (size_t cut = 0; cut < file.length; cut += 1 + cut / 3)
        expect_no_split(file.data, cut, -LF_EFORMAT);
    uint8_t *copy = malloc(file.length + 1);
    memcpy(copy, file.data, file.length);
    copy[file.length] = 0;
    expect_no_split(copy, file.length + 1, -LF_EFORMAT); /* a byte after the member */
    copy[file.length - 6] ^= 1;                            /* the CRC */
    expect_no_split(copy, file.length, -LF_EFORMAT);
    copy[file.length - 6] ^= 1;
    copy[file.length - 2] ^= 1; /* the length */
    expect_no_split(copy, file.length, -LF_EFORMAT);
    copy[file.length - 2] ^= 1;
    for (size_t at = 10; at < file.length - 8; at += 97) { /* the deflate stream */
        copy[at] ^= 0x10;
        lf_buffer inflated = {0};
        size_t header_size;
        int64_t status = lf_gzip_split(copy, file.length, &header_size, &inflated);
        assert_true(status == -LF_EFORMAT);
        assert_int_equal(inflated.length, 0);
        lf_buffer_free(&inflated);
        copy[at] ^= 0x10;
    }
    copy[0] = 'x';
    expect_no_split(copy, file.length, -LF_EFORMAT); /* not gzip */
    free(copy);
    lf_buffer_free(&file);
    free(text);
}

/* Another deflater's stream inflates but is not split: here the same text
 * in one stored block, which gzip -9 would not write. */
static void test_other_deflate_not_split(void **state)
{
    (void)state;
    static const char text[] = "hello hello hello hello\n";
    size_t size = sizeof text - 1;
    lf_buffer file = {0};
    assert_int_equal(lf_buffer_append(&file, gzip_n_header, sizeof gzip_n_header), 0);
    uint8_t block[5] = {1, (uint8_t)size, 0, (uint8_t)~size, 0xff};
    assert_int_equal(lf_buffer_append(&file, block, 5), 0);
    assert_int_equal(lf_buffer_append(&file, text, size), 0);
    uint32_t crc = lf_gzip_crc32(0, (const uint8_t *)text, size);
    uint8_t trailer[8] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16),
                          (uint8_t)(crc >> 24), (uint8_t)size, 0, 0, 0};
    assert_int_equal(lf_buffer_append(&file, trailer, 8), 0);
    lf_buffer inflated = {0};
    size_t consumed = 0;
    assert_int_equal(lf_gzip_inflate(file.data + 10, file.length - 10, 100, &consumed, &inflated), 0);
    assert_int_equal(consumed, 5 + size);
    assert_memory_equal(inflated.data, text, size);
    expect_no_split(file.data, file.length, -LF_EFORMAT);
    lf_buffer_free(&inflated);
    lf_buffer_free(&file);
}

static void test_inflate_limit(void **state)
{
    (void)state;
    uint8_t *text = make_input(TWO_WORDS, 100000);
    lf_buffer deflated = {0}, inflated = {0};
    assert_int_equal(lf_gzip_deflate(text, 100000, &deflated), 0);
    size_t consumed = 0;
    assert_int_equal(lf_gzip_inflate(deflated.data, deflated.length, 99999, &consumed, &inflated),
                     -LF_EUNREPRESENTABLE);
    assert_int_equal(inflated.length, 0);
    assert_int_equal(lf_gzip_inflate(deflated.data, deflated.length, 100000, &consumed, &inflated),
                     0);
    assert_int_equal(consumed, deflated.length);
    assert_memory_equal(inflated.data, text, 100000);
    lf_buffer_free(&deflated);
    lf_buffer_free(&inflated);
    free(text);
}

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(lf_gzip_crc32(0, (const uint8_t *)"123456789", 9), 0xcbf43926u);
    uint32_t part = lf_gzip_crc32(0, (const uint8_t *)"1234", 4);
    assert_int_equal(lf_gzip_crc32(part, (const uint8_t *)"56789", 5), 0xcbf43926u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deflate_is_gzips),
        cmocka_unit_test(test_split_join_round_trip),
        cmocka_unit_test(test_header_fields_kept),
        cmocka_unit_test(test_bad_files_not_split),
        cmocka_unit_test(test_other_deflate_not_split),
        cmocka_unit_test(test_inflate_limit),
        cmocka_unit_test(test_crc32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
