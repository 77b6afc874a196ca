/* GGUF files: every metadata type and tensor layout survives a write and a
 * read, and every kind of damage is refused with the right error and a
 * message that names it — never a crash, also for every truncation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/random.h"
#include "model/gguf.h"
#include "sandbox.h"

/* ---- A file with one entry of every type and several tensor types -------- */

static const uint8_t u8_values[] = {0, 7, 255};
static const int8_t i8_values[] = {-128, -1, 127};
static const uint16_t u16_values[] = {0, 65535};
static const int16_t i16_values[] = {-32768, 32767};
static const uint32_t u32_values[] = {0, 1, 4294967295u};
static const int32_t i32_values[] = {-2147483647 - 1, 0, 2147483647};
static const float f32_values[] = {0.5f, -3.25f, 1e30f};
static const bool bool_values[] = {true, false, true};
static const uint64_t u64_values[] = {0, 18446744073709551615u};
static const int64_t i64_values[] = {-9223372036854775807 - 1, 9223372036854775807};
static const double f64_values[] = {0.1, -2.5e300};
/* Raw bytes are fine in strings: empty, NUL inside, invalid UTF-8. */
static const lf_gguf_string string_values[] = {
    {"", 0}, {"a\0b", 3}, {"\xff\xfe\x80", 3}, {"token", 5}};

typedef struct typed_array {
    const char *key;
    lf_gguf_type type;
    const void *values;
    uint64_t count;
    size_t element_size;
} typed_array;

#define ARRAY_OF(key, type, values)                                                           \
    {key, type, values, sizeof values / sizeof values[0], sizeof values[0]}

static const typed_array arrays[] = {
    ARRAY_OF("test.u8s", LF_GGUF_UINT8, u8_values),
    ARRAY_OF("test.i8s", LF_GGUF_INT8, i8_values),
    ARRAY_OF("test.u16s", LF_GGUF_UINT16, u16_values),
    ARRAY_OF("test.i16s", LF_GGUF_INT16, i16_values),
    ARRAY_OF("test.u32s", LF_GGUF_UINT32, u32_values),
    ARRAY_OF("test.i32s", LF_GGUF_INT32, i32_values),
    ARRAY_OF("test.f32s", LF_GGUF_FLOAT32, f32_values),
    ARRAY_OF("test.bools", LF_GGUF_BOOL, bool_values),
    ARRAY_OF("test.u64s", LF_GGUF_UINT64, u64_values),
    ARRAY_OF("test.i64s", LF_GGUF_INT64, i64_values),
    ARRAY_OF("test.f64s", LF_GGUF_FLOAT64, f64_values),
    ARRAY_OF("test.strings", LF_GGUF_STRING, string_values),
};

/* Scalars: the first element of each array, under "test.one.TYPE". */
static const char *scalar_key(lf_gguf_type type)
{
    static char key[64];
    snprintf(key, sizeof key, "test.one.%s", lf_gguf_type_name(type));
    return key;
}

typedef struct test_tensor {
    const char *name;
    lf_ggml_type type;
    uint32_t dim_count;
    uint64_t dims[LF_GGUF_MAX_DIMS];
    uint64_t size;
} test_tensor;

/* The project's int8 convention (a weight and its per-row scales), a Q8_0
 * matrix, an F16 vector, a 4-d tensor and an empty one. */
static const test_tensor tensors[] = {
    {"blk.0.attn_q.weight", LF_GGML_I8, 2, {5, 3}, 15},
    {"blk.0.attn_q.scale", LF_GGML_F32, 1, {3}, 12},
    {"token_embd.weight", LF_GGML_Q8_0, 2, {64, 2}, 4 * 34},
    {"output_norm.weight", LF_GGML_F16, 1, {7}, 14},
    {"test.cube", LF_GGML_I32, 4, {2, 1, 3, 2}, 48},
    {"test.empty", LF_GGML_F32, 2, {0, 9}, 0},
};
enum { TENSOR_COUNT = sizeof tensors / sizeof tensors[0] };

static uint8_t tensor_byte(size_t tensor, uint64_t i)
{
    return (uint8_t)(tensor * 37 + i * 11 + 1);
}

static void build_full_file(uint32_t alignment, lf_buffer *image)
{
    lf_gguf_writer *writer;
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_gguf_writer_create(&writer), 0);
    assert_int_equal(
        lf_gguf_writer_set_string(writer, "general.architecture", "test", &diagnostic), 0);
    if (alignment != LF_GGUF_DEFAULT_ALIGNMENT)
        assert_int_equal(
            lf_gguf_writer_set_u32(writer, "general.alignment", alignment, &diagnostic), 0);
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        const typed_array *array = &arrays[i];
        if (lf_gguf_writer_set(writer, scalar_key(array->type), array->type, array->values,
                               &diagnostic) != 0 ||
            lf_gguf_writer_set_array(writer, array->key, array->type, array->values, array->count,
                                     &diagnostic) != 0)
            fail_msg("%s", diagnostic.message);
    }
    assert_int_equal(lf_gguf_writer_set_array(writer, "test.nothing", LF_GGUF_UINT32, NULL, 0,
                                              &diagnostic), 0);
    for (size_t t = 0; t < TENSOR_COUNT; t++) {
        const test_tensor *tensor = &tensors[t];
        uint8_t *data = malloc(tensor->size + 1);
        for (uint64_t i = 0; i < tensor->size; i++)
            data[i] = tensor_byte(t, i);
        if (lf_gguf_writer_add_tensor(writer, tensor->name, tensor->type, tensor->dim_count,
                                      tensor->dims, data, tensor->size, &diagnostic) != 0)
            fail_msg("%s", diagnostic.message);
        free(data);
    }
    assert_int_equal(lf_gguf_writer_finish(writer, image, &diagnostic), 0);
    lf_gguf_writer_free(writer);
}

static void check_full_file(const lf_gguf *file, uint32_t alignment)
{
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_gguf_alignment(file), alignment);
    lf_gguf_string string;
    assert_int_equal(lf_gguf_get_string(file, "general.architecture", &string, &diagnostic), 0);
    assert_int_equal(string.length, 4);
    assert_memory_equal(string.data, "test", 4);
    uint8_t decoded[64];
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        const typed_array *array = &arrays[i];
        const lf_gguf_metadata *entry = lf_gguf_find_metadata(file, array->key);
        assert_non_null(entry);
        assert_int_equal(entry->type, LF_GGUF_ARRAY);
        assert_int_equal(entry->element_type, array->type);
        assert_int_equal(entry->count, array->count);
        const lf_gguf_metadata *scalar = lf_gguf_find_metadata(file, scalar_key(array->type));
        assert_non_null(scalar);
        assert_int_equal(scalar->type, array->type);
        assert_int_equal(scalar->count, 1);
        if (array->type == LF_GGUF_STRING) {
            const lf_gguf_string *expected = array->values;
            for (uint64_t s = 0; s < array->count; s++) {
                assert_int_equal(entry->strings[s].length, expected[s].length);
                if (expected[s].length)
                    assert_memory_equal(entry->strings[s].data, expected[s].data,
                                        expected[s].length);
            }
            assert_int_equal(scalar->strings[0].length, 0);
            continue;
        }
        lf_gguf_metadata_decode(entry, decoded);
        assert_memory_equal(decoded, array->values, array->count * array->element_size);
        lf_gguf_metadata_decode(scalar, decoded);
        assert_memory_equal(decoded, array->values, array->element_size);
    }
    const lf_gguf_metadata *nothing;
    assert_int_equal(lf_gguf_get_array(file, "test.nothing", LF_GGUF_UINT32, &nothing, NULL), 0);
    assert_int_equal(nothing->count, 0);
    assert_int_equal(lf_gguf_tensor_count(file), TENSOR_COUNT);
    for (size_t t = 0; t < TENSOR_COUNT; t++) {
        const test_tensor *expected = &tensors[t];
        const lf_gguf_tensor *tensor = lf_gguf_find_tensor(file, expected->name);
        assert_non_null(tensor);
        assert_ptr_equal(tensor, lf_gguf_tensor_at(file, t)); /* file order kept */
        assert_int_equal(tensor->type, expected->type);
        assert_int_equal(tensor->dim_count, expected->dim_count);
        uint64_t elements = 1;
        for (uint32_t d = 0; d < LF_GGUF_MAX_DIMS; d++) {
            uint64_t dim = d < expected->dim_count ? expected->dims[d] : 1;
            assert_int_equal(tensor->dims[d], dim);
            elements *= dim;
        }
        assert_int_equal(tensor->element_count, elements);
        assert_int_equal(tensor->size, expected->size);
        assert_int_equal(tensor->offset % alignment, 0);
        for (uint64_t i = 0; i < tensor->size; i++)
            assert_int_equal(tensor->data[i], tensor_byte(t, i));
    }
    assert_null(lf_gguf_find_tensor(file, "missing"));
    assert_null(lf_gguf_find_metadata(file, "missing"));
}

static void test_every_type_round_trips(void **state)
{
    (void)state;
    static const uint32_t alignments[] = {LF_GGUF_DEFAULT_ALIGNMENT, 1, 64, LF_GGUF_MAX_ALIGNMENT};
    for (size_t a = 0; a < sizeof alignments / sizeof alignments[0]; a++) {
        lf_buffer image = {0};
        build_full_file(alignments[a], &image);
        lf_gguf *file;
        lf_diagnostic diagnostic = {0};
        if (lf_gguf_parse(image.data, image.length, &file, &diagnostic) != 0)
            fail_msg("alignment %u: %s", alignments[a], diagnostic.message);
        check_full_file(file, alignments[a]);
        /* Keys keep their order, and the writer pads the data to the end. */
        const lf_gguf_metadata *first = lf_gguf_metadata_at(file, 0);
        assert_int_equal(first->key.length, strlen("general.architecture"));
        assert_memory_equal(first->key.data, "general.architecture", first->key.length);
        assert_null(lf_gguf_metadata_at(file, lf_gguf_metadata_count(file)));
        assert_int_equal(image.length % alignments[a], 0);
        lf_gguf_close(file);
        lf_buffer_free(&image);
    }
}

static void test_files_are_written_atomically_and_mapped(void **state)
{
    (void)state;
    char *directory = lf_test_sandbox_create("gguf");
    assert_non_null(directory);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.gguf", directory);
    lf_gguf_writer *writer;
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_gguf_writer_create(&writer), 0);
    assert_int_equal(lf_gguf_writer_set_f32(writer, "test.epsilon", 1e-5f, &diagnostic), 0);
    static const uint64_t dims[] = {4};
    static const float weights[] = {1, 2, 3, 4};
    assert_int_equal(lf_gguf_writer_add_tensor(writer, "w", LF_GGML_F32, 1, dims, weights,
                                               sizeof weights, &diagnostic), 0);
    assert_int_equal(lf_gguf_writer_write_file(writer, path, &diagnostic), 0);
    lf_gguf_writer_free(writer);

    lf_gguf *file;
    if (lf_gguf_open_file(path, &file, &diagnostic) != 0)
        fail_msg("%s", diagnostic.message);
    float epsilon;
    assert_int_equal(lf_gguf_get_f32(file, "test.epsilon", &epsilon, NULL), 0);
    assert_true(epsilon == 1e-5f);
    const lf_gguf_tensor *tensor = lf_gguf_find_tensor(file, "w");
    assert_non_null(tensor);
    assert_memory_equal(tensor->data, weights, sizeof weights);
    lf_gguf_close(file);

    /* Nothing but the file is left behind; a missing file and a directory
     * are refused. */
    char listing[4096];
    snprintf(listing, sizeof listing, "ls -A '%s' | wc -l | grep -qx 1", directory);
    assert_int_equal(system(listing), 0);
    snprintf(path, sizeof path, "%s/missing.gguf", directory);
    assert_int_equal(lf_gguf_open_file(path, &file, NULL), -ENOENT);
    assert_int_equal(lf_gguf_open_file(directory, &file, NULL), -EINVAL);
    snprintf(path, sizeof path, "%s/empty.gguf", directory);
    fclose(fopen(path, "w"));
    assert_int_equal(lf_gguf_open_file(path, &file, NULL), -LF_ETRUNCATED);
    lf_test_sandbox_remove(directory);
    free(directory);
}

static void test_typed_lookups_check_types(void **state)
{
    (void)state;
    lf_buffer image = {0};
    build_full_file(LF_GGUF_DEFAULT_ALIGNMENT, &image);
    lf_gguf *file;
    assert_int_equal(lf_gguf_parse(image.data, image.length, &file, NULL), 0);
    lf_diagnostic diagnostic = {0};
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    bool flag;
    assert_int_equal(lf_gguf_get_u32(file, "test.one.uint32", &u32, NULL), 0);
    assert_int_equal(u32, 0);
    assert_int_equal(lf_gguf_get_u64(file, "test.one.uint32", &u64, NULL), 0); /* widened */
    assert_int_equal(lf_gguf_get_u64(file, "test.one.uint64", &u64, NULL), 0);
    assert_int_equal(lf_gguf_get_i32(file, "test.one.int32", &i32, NULL), 0);
    assert_int_equal(i32, i32_values[0]);
    assert_int_equal(lf_gguf_get_bool(file, "test.one.bool", &flag, NULL), 0);
    assert_true(flag);
    assert_int_equal(lf_gguf_get_u32(file, "general.architecture", &u32, &diagnostic),
                     -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "has type string, not uint32"));
    diagnostic = (lf_diagnostic){0};
    assert_int_equal(lf_gguf_get_u32(file, "no.such.key", &u32, &diagnostic), -ENOENT);
    assert_non_null(strstr(diagnostic.message, "no.such.key"));
    const lf_gguf_metadata *array;
    diagnostic = (lf_diagnostic){0};
    assert_int_equal(lf_gguf_get_array(file, "test.u32s", LF_GGUF_INT32, &array, &diagnostic),
                     -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "has type array of uint32, not array of int32"));
    const lf_gguf_string *strings;
    uint64_t count;
    assert_int_equal(lf_gguf_get_string_array(file, "test.strings", &strings, &count, NULL), 0);
    assert_int_equal(count, 4);
    assert_int_equal(lf_gguf_get_string_array(file, "test.one.string", &strings, &count, NULL),
                     -LF_EFORMAT);
    lf_gguf_close(file);
    lf_buffer_free(&image);
}

static void test_writer_refuses_what_the_reader_would(void **state)
{
    (void)state;
    lf_gguf_writer *writer;
    assert_int_equal(lf_gguf_writer_create(&writer), 0);
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_gguf_writer_set_u32(writer, "a.b", 1, NULL), 0);
    assert_int_equal(lf_gguf_writer_set_u32(writer, "a.b", 2, &diagnostic), -EEXIST);
    assert_non_null(strstr(diagnostic.message, "already set"));
    assert_int_equal(lf_gguf_writer_set_u32(writer, "", 1, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_u32(writer, "has space", 1, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_u32(writer, "tab\t", 1, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_u32(writer, "general.alignment", 48, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_u32(writer, "general.alignment", 0, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_u32(writer, "general.alignment", 1 << 17, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_string(writer, "general.alignment", "32", NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_array(writer, "general.alignment", LF_GGUF_UINT32,
                                              u32_values, 1, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set(writer, "x", LF_GGUF_ARRAY, u32_values, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set(writer, "x", 13, u32_values, NULL), -EINVAL);
    assert_int_equal(lf_gguf_writer_set_array(writer, "x", LF_GGUF_ARRAY, u32_values, 1, NULL),
                     -EINVAL);
    char long_key[LF_GGUF_MAX_KEY_LENGTH + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(lf_gguf_writer_set_u32(writer, long_key, 1, NULL), -EINVAL);
    long_key[LF_GGUF_MAX_KEY_LENGTH] = '\0';
    assert_int_equal(lf_gguf_writer_set_u32(writer, long_key, 1, NULL), 0);

    uint8_t data[64 * 34] = {0};
    uint64_t dims[5] = {64, 1, 1, 1, 1};
    assert_int_equal(
        lf_gguf_writer_add_tensor(writer, "q", LF_GGML_Q8_0, 1, dims, data, 68, NULL), 0);
    assert_int_equal(lf_gguf_writer_add_tensor(writer, "q", LF_GGML_Q8_0, 1, dims, data, 68, NULL),
                     -EEXIST);
    diagnostic = (lf_diagnostic){0};
    assert_int_equal(lf_gguf_writer_add_tensor(writer, "r", LF_GGML_Q8_0, 1, dims, data, 64,
                                               &diagnostic), -EINVAL);
    assert_non_null(strstr(diagnostic.message, "needs 68 bytes"));
    dims[0] = 33;
    assert_int_equal(lf_gguf_writer_add_tensor(writer, "r", LF_GGML_Q8_0, 1, dims, data, 34, NULL),
                     -EINVAL);
    dims[0] = 2;
    assert_int_equal(lf_gguf_writer_add_tensor(writer, "r", LF_GGML_F32, 5, dims, data, 8, NULL),
                     -EINVAL);
    assert_int_equal(lf_gguf_writer_add_tensor(writer, "r", 2 /* Q4_0 */, 1, dims, data, 8, NULL),
                     -EINVAL);
    char long_name[LF_GGUF_MAX_TENSOR_NAME_LENGTH + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(lf_gguf_writer_add_tensor(writer, long_name, LF_GGML_I8, 1, dims, data, 2,
                                               NULL), -EINVAL);
    /* What was accepted still makes a valid file. */
    lf_buffer image = {0};
    assert_int_equal(lf_gguf_writer_finish(writer, &image, NULL), 0);
    lf_gguf *file;
    assert_int_equal(lf_gguf_parse(image.data, image.length, &file, NULL), 0);
    assert_int_equal(lf_gguf_metadata_count(file), 2);
    assert_int_equal(lf_gguf_tensor_count(file), 1);
    lf_gguf_close(file);
    lf_buffer_free(&image);
    lf_gguf_writer_free(writer);
}

/* ---- Damage ------------------------------------------------------------------ */

/* A small valid file built byte by byte, with the offsets of its fields, so
 * each test case can damage exactly one of them. */
typedef struct small_file {
    lf_buffer bytes;
    size_t magic, version, tensor_count, metadata_count;
    size_t key_length, key_byte, string_length, flag_key_byte, bool_type, bool_value;
    size_t array_element_type, array_count, alignment_type, alignment_value;
    size_t name_length, second_name_byte, dim_count, first_dim, second_dim, tensor_type;
    size_t first_offset, second_tensor_dim, second_offset;
} small_file;

static size_t put(lf_buffer *bytes, uint64_t value, unsigned size)
{
    size_t at = bytes->length;
    for (unsigned i = 0; i < size; i++) {
        uint8_t byte = (uint8_t)(value >> (8 * i));
        assert_int_equal(lf_buffer_append(bytes, &byte, 1), 0);
    }
    return at;
}

static size_t put_string(lf_buffer *bytes, const char *text)
{
    size_t at = put(bytes, strlen(text), 8);
    assert_int_equal(lf_buffer_append(bytes, text, strlen(text)), 0);
    return at;
}

static void build_small_file(small_file *file)
{
    *file = (small_file){0};
    lf_buffer *b = &file->bytes;
    assert_int_equal(lf_buffer_append(b, "GGUF", 4), 0);
    file->version = put(b, 3, 4);
    file->tensor_count = put(b, 2, 8);
    file->metadata_count = put(b, 4, 8);
    file->key_length = put_string(b, "general.architecture");
    file->key_byte = file->key_length + 8 + 7; /* the '.' */
    put(b, LF_GGUF_STRING, 4);
    file->string_length = put_string(b, "test");
    file->flag_key_byte = put_string(b, "test.flag") + 8 + 5; /* "flag" */
    file->bool_type = put(b, LF_GGUF_BOOL, 4);
    file->bool_value = put(b, 1, 1);
    put_string(b, "test.list");
    put(b, LF_GGUF_ARRAY, 4);
    file->array_element_type = put(b, LF_GGUF_UINT32, 4);
    file->array_count = put(b, 2, 8);
    put(b, 1, 4);
    put(b, 2, 4);
    put_string(b, "general.alignment");
    file->alignment_type = put(b, LF_GGUF_UINT32, 4);
    file->alignment_value = put(b, 32, 4);
    /* t0.weight: I8 [4, 2] at 0; t1.weight: F32 [2] at 32. */
    file->name_length = put_string(b, "t0.weight");
    file->dim_count = put(b, 2, 4);
    file->first_dim = put(b, 4, 8);
    file->second_dim = put(b, 2, 8);
    file->tensor_type = put(b, LF_GGML_I8, 4);
    file->first_offset = put(b, 0, 8);
    file->second_name_byte = put_string(b, "t1.weight") + 8 + 1; /* '1' */
    put(b, 1, 4);
    file->second_tensor_dim = put(b, 2, 8);
    put(b, LF_GGML_F32, 4);
    file->second_offset = put(b, 32, 8);
    while (b->length % 32)
        put(b, 0, 1);
    for (int i = 0; i < 64; i++)
        put(b, (uint64_t)i, 1);
}

static void patch(small_file *file, size_t offset, uint64_t value, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        file->bytes.data[offset + i] = (uint8_t)(value >> (8 * i));
}

/* Parses a private copy of exactly `size` bytes, so ASan sees any read past
 * the end. */
static int64_t parse_copy(const uint8_t *bytes, size_t size, lf_diagnostic *diagnostic)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (size)
        memcpy(copy, bytes, size);
    lf_gguf *file = NULL;
    int64_t status = lf_gguf_parse(copy, size, &file, diagnostic);
    assert_true((status == 0) == (file != NULL));
    lf_gguf_close(file);
    free(copy);
    return status;
}

typedef struct damage {
    const char *what;
    size_t field; /* offsetof the small_file member holding the byte offset */
    uint64_t value;
    unsigned width;
    int64_t status;
    const char *words; /* in the diagnostic */
} damage;

#define AT(member) offsetof(small_file, member)

static const damage damages[] = {
    {"bad magic", AT(magic), 0x46554747u ^ 0x20, 4, -LF_EFORMAT, "not a GGUF file"},
    {"version 2", AT(version), 2, 4, -LF_EVERSION, "version 2 at byte 4"},
    {"big-endian", AT(version), 0x03000000, 4, -LF_EVERSION, "big-endian"},
    {"huge tensor count", AT(tensor_count), 1ull << 60, 8, -LF_ETRUNCATED, "tensor count"},
    {"huge metadata count", AT(metadata_count), 1ull << 60, 8, -LF_ETRUNCATED,
     "claims 1152921504606846976 items"},
    {"more metadata than present", AT(metadata_count), 5, 8, -LF_ETRUNCATED, "of tensor 0"},
    {"empty key", AT(key_length), 0, 8, -LF_EFORMAT, "is 0 bytes long"},
    {"huge key", AT(key_length), 1ull << 40, 8, -LF_ETRUNCATED, "the key of metadata entry 0"},
    {"control byte in key", AT(key_byte), '\n', 1, -LF_EFORMAT, "byte 0x0a at position 7"},
    {"huge string", AT(string_length), 1ull << 62, 8, -LF_ETRUNCATED, "'general.architecture'"},
    {"duplicate key", AT(flag_key_byte), 'l' | 'i' << 8 | 's' << 16 | (uint64_t)'t' << 24, 4,
     -LF_EFORMAT, "same key 'test.list'"},
    {"unknown value type", AT(bool_type), 13, 4, -LF_EFORMAT, "unknown value type 13 at byte"},
    {"bool 2", AT(bool_value), 2, 1, -LF_EFORMAT, "only 0 and 1"},
    {"nested array", AT(array_element_type), LF_GGUF_ARRAY, 4, -LF_EFORMAT, "array of array"},
    {"unknown element type", AT(array_element_type), 99, 4, -LF_EFORMAT, "type 99"},
    {"huge array", AT(array_count), 1ull << 61, 8, -LF_ETRUNCATED, "'test.list'"},
    {"alignment of another type", AT(alignment_type), LF_GGUF_INT32, 4, -LF_EFORMAT,
     "has type int32, not uint32"},
    {"alignment not a power of two", AT(alignment_value), 48, 4, -LF_EFORMAT,
     "48, not a power of two"},
    {"alignment 0", AT(alignment_value), 0, 4, -LF_EFORMAT, "not a power of two"},
    {"alignment beyond 64 KiB", AT(alignment_value), 1 << 17, 4, -LF_EFORMAT,
     "131072, not a power of two up to 65536"},
    {"long tensor name", AT(name_length), 65, 8, -LF_EFORMAT, "65 bytes long (1 to 64"},
    {"duplicate tensor name", AT(second_name_byte), '0', 1, -LF_EFORMAT,
     "same name 't0.weight'"},
    {"five dimensions", AT(dim_count), 5, 4, -LF_EFORMAT, "5 dimensions"},
    {"dimension beyond int64", AT(first_dim), 1ull << 63, 8, -LF_EFORMAT, "beyond 2^63 - 1"},
    {"dimension product overflow", AT(first_dim), 1ull << 62, 8, -LF_EFORMAT, "overflows"},
    {"size overflow", AT(second_tensor_dim), 1ull << 62, 8, -LF_EFORMAT,
     "tensor 1 ('t1.weight'), described at byte 230: the tensor's size overflows"},
    {"unknown tensor type", AT(tensor_type), 2, 4, -LF_EFORMAT, "unknown ggml tensor type 2"},
    {"partial Q8_0 block", AT(tensor_type), LF_GGML_Q8_0, 4, -LF_EFORMAT,
     "blocks of 32 elements, but dimension 0 is 4"},
    {"misaligned data", AT(first_offset), 8, 8, -LF_EFORMAT, "not a multiple of the alignment 32"},
    {"overlapping data", AT(second_offset), 0, 8, -LF_EFORMAT, "overlaps tensor"},
    {"data past the end", AT(second_offset), 64, 8, -LF_ETRUNCATED, "tensor 1 ('t1.weight')"},
    {"huge data offset", AT(first_offset), 1ull << 63, 8, -LF_ETRUNCATED, "tensor 0"},
    {"larger tensor than the data", AT(first_dim), 40, 8, -LF_ETRUNCATED, "needs bytes 0 to 80"},
};

static void test_each_damage_gives_its_error(void **state)
{
    (void)state;
    small_file clean;
    build_small_file(&clean);
    assert_int_equal(parse_copy(clean.bytes.data, clean.bytes.length, NULL), 0);
    for (size_t i = 0; i < sizeof damages / sizeof damages[0]; i++) {
        const damage *d = &damages[i];
        small_file file;
        build_small_file(&file);
        size_t offset;
        memcpy(&offset, (const char *)&file + d->field, sizeof offset);
        patch(&file, offset, d->value, d->width);
        lf_diagnostic diagnostic = {0};
        int64_t status = parse_copy(file.bytes.data, file.bytes.length, &diagnostic);
        if (status != d->status || !strstr(diagnostic.message, d->words))
            fail_msg("%s: got %s '%s', expected %s with '%s'", d->what, lf_error_name(status),
                     diagnostic.message, lf_error_name(d->status), d->words);
        lf_buffer_free(&file.bytes);
    }
    lf_diagnostic diagnostic = {0};
    assert_int_equal(parse_copy(clean.bytes.data, 0, &diagnostic), -LF_ETRUNCATED);
    assert_non_null(strstr(diagnostic.message, "the magic"));
    lf_buffer_free(&clean.bytes);
}

/* Every proper prefix of a file is refused as truncated, up to the end of
 * its last tensor's data (only the final padding may be missing). */
static void test_every_truncation_is_refused(void **state)
{
    (void)state;
    lf_buffer image = {0};
    build_full_file(LF_GGUF_DEFAULT_ALIGNMENT, &image);
    lf_gguf *file;
    assert_int_equal(lf_gguf_parse(image.data, image.length, &file, NULL), 0);
    uint64_t data_end = 0;
    for (uint64_t t = 0; t < lf_gguf_tensor_count(file); t++) {
        const lf_gguf_tensor *tensor = lf_gguf_tensor_at(file, t);
        if (tensor->offset + tensor->size > data_end)
            data_end = tensor->offset + tensor->size;
    }
    lf_gguf_close(file);
    for (size_t size = 0; size < image.length; size++) {
        lf_diagnostic diagnostic = {0};
        int64_t status = parse_copy(image.data, size, &diagnostic);
        bool refused = status == -LF_ETRUNCATED && strstr(diagnostic.message, "truncated");
        if (size < data_end && !refused)
            fail_msg("prefix of %zu bytes: %s '%s'", size, lf_error_name(status),
                     diagnostic.message);
        if (size >= data_end)
            assert_int_equal(status, 0);
    }
    lf_buffer_free(&image);
}

/* Random damage anywhere: an error with a message, or a file that reads. */
static void test_random_damage_never_crashes(void **state)
{
    (void)state;
    lf_buffer image = {0};
    build_full_file(LF_GGUF_DEFAULT_ALIGNMENT, &image);
    lf_random random;
    lf_random_seed(&random, 5);
    uint8_t *damaged = malloc(image.length);
    for (int round = 0; round < 3000; round++) {
        memcpy(damaged, image.data, image.length);
        int changes = (int)lf_random_range(&random, 1, 4);
        for (int c = 0; c < changes; c++)
            damaged[lf_random_below(&random, image.length)] = (uint8_t)lf_random_next(&random);
        lf_diagnostic diagnostic = {0};
        if (parse_copy(damaged, image.length, &diagnostic) < 0)
            assert_true(diagnostic.message[0] != '\0');
    }
    free(damaged);
    lf_buffer_free(&image);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_round_trips),
        cmocka_unit_test(test_files_are_written_atomically_and_mapped),
        cmocka_unit_test(test_typed_lookups_check_types),
        cmocka_unit_test(test_writer_refuses_what_the_reader_would),
        cmocka_unit_test(test_each_damage_gives_its_error),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_random_damage_never_crashes),
    };
    return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
