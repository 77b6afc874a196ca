/* libFuzzer target for the GGUF reader and the tokenizer loader: no input
 * may crash, hang, leak or trip a sanitizer, and a refusal must say why.
 * Whatever the reader accepts, the writer must write again, into a file
 * that reads back the same; whatever tokenizer loads must encode the input
 * itself and decode it back exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition, const char *what)
{
    if (!condition) {
        fprintf(stderr, "fuzz_gguf_read: %s\n", what);
        abort();
    }
}

/* A NUL-terminated copy of a key or tensor name (the reader allows no NUL
 * in them). */
static const char *c_string(const lf_gguf_string *name, char *buffer)
{
    memcpy(buffer, name->data, name->length);
    buffer[name->length] = '\0';
    return buffer;
}

static void copy_metadata(const lf_gguf_metadata *entry, lf_gguf_writer *writer)
{
    static char key[LF_GGUF_MAX_KEY_LENGTH + 1];
    c_string(&entry->key, key);
    int64_t status;
    if (entry->type == LF_GGUF_STRING) {
        status = lf_gguf_writer_set(writer, key, LF_GGUF_STRING, entry->strings, NULL);
    } else if (entry->type == LF_GGUF_ARRAY && entry->element_type == LF_GGUF_STRING) {
        status = lf_gguf_writer_set_array(writer, key, LF_GGUF_STRING, entry->strings,
                                          entry->count, NULL);
    } else {
        /* Decoded to native values (at most 8 bytes each) and back. */
        uint64_t *values = malloc((entry->count ? entry->count : 1) * sizeof *values);
        lf_gguf_metadata_decode(entry, values);
        status = entry->type == LF_GGUF_ARRAY
                     ? lf_gguf_writer_set_array(writer, key, entry->element_type, values,
                                                entry->count, NULL)
                     : lf_gguf_writer_set(writer, key, entry->type, values, NULL);
        free(values);
    }
    check(status == 0, "the writer refused metadata the reader accepted");
}

static bool same_strings(const lf_gguf_string *a, const lf_gguf_string *b, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++)
        if (a[i].length != b[i].length ||
            (a[i].length && memcmp(a[i].data, b[i].data, a[i].length) != 0))
            return false;
    return true;
}

static void compare_files(const lf_gguf *original, const lf_gguf *copy)
{
    check(lf_gguf_metadata_count(copy) == lf_gguf_metadata_count(original), "metadata count");
    for (uint64_t i = 0; i < lf_gguf_metadata_count(original); i++) {
        const lf_gguf_metadata *a = lf_gguf_metadata_at(original, i);
        const lf_gguf_metadata *b = lf_gguf_metadata_at(copy, i);
        check(same_strings(&a->key, &b->key, 1) && a->type == b->type && a->count == b->count,
              "metadata entry differs");
        if (a->strings)
            check(same_strings(a->strings, b->strings, a->count), "string value differs");
        else if (a->type == LF_GGUF_ARRAY)
            check(a->element_type == b->element_type, "array type differs");
    }
    check(lf_gguf_tensor_count(copy) == lf_gguf_tensor_count(original), "tensor count");
    for (uint64_t i = 0; i < lf_gguf_tensor_count(original); i++) {
        const lf_gguf_tensor *a = lf_gguf_tensor_at(original, i);
        const lf_gguf_tensor *b = lf_gguf_tensor_at(copy, i);
        check(same_strings(&a->name, &b->name, 1) && a->type == b->type &&
                  a->dim_count == b->dim_count && a->size == b->size &&
                  memcmp(a->dims, b->dims, sizeof a->dims) == 0 &&
                  (a->size == 0 || memcmp(a->data, b->data, a->size) == 0),
              "tensor differs");
    }
}

static void rewrite(const lf_gguf *file)
{
    lf_gguf_writer *writer;
    check(lf_gguf_writer_create(&writer) == 0, "out of memory");
    for (uint64_t i = 0; i < lf_gguf_metadata_count(file); i++)
        copy_metadata(lf_gguf_metadata_at(file, i), writer);
    char name[LF_GGUF_MAX_TENSOR_NAME_LENGTH + 1];
    for (uint64_t i = 0; i < lf_gguf_tensor_count(file); i++) {
        const lf_gguf_tensor *tensor = lf_gguf_tensor_at(file, i);
        check(lf_gguf_writer_add_tensor(writer, c_string(&tensor->name, name), tensor->type,
                                        tensor->dim_count, tensor->dims, tensor->data,
                                        tensor->size, NULL) == 0,
              "the writer refused a tensor the reader accepted");
    }
    lf_buffer image = {0};
    check(lf_gguf_writer_finish(writer, &image, NULL) == 0, "out of memory");
    lf_gguf *again;
    check(lf_gguf_parse(image.data, image.length, &again, NULL) == 0,
          "the reader refused what the writer wrote");
    compare_files(file, again);
    lf_gguf_close(again);
    lf_buffer_free(&image);
    lf_gguf_writer_free(writer);
}

static void use_tokenizer(const lf_gguf *file, const uint8_t *data, size_t size)
{
    lf_tokenizer *tokenizer;
    lf_diagnostic diagnostic = {0};
    if (lf_tokenizer_read_gguf(file, &tokenizer, &diagnostic) != 0) {
        check(diagnostic.message[0] != '\0' && tokenizer == NULL, "tokenizer refused silently");
        return;
    }
    lf_tokenizer_encoder *encoder;
    lf_token_array tokens = {0};
    lf_buffer decoded = {0};
    check(lf_tokenizer_encoder_create(tokenizer, &encoder) == 0 &&
              lf_tokenizer_encode(encoder, data, size, &tokens) >= 0 &&
              lf_tokenizer_decode(tokenizer, tokens.ids, tokens.count, &decoded, NULL) == 0,
          "encoding failed");
    check(decoded.length == size && (size == 0 || memcmp(decoded.data, data, size) == 0),
          "decode(encode(x)) != x");
    lf_buffer_free(&decoded);
    lf_token_array_free(&tokens);
    lf_tokenizer_encoder_free(encoder);
    lf_tokenizer_free(tokenizer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_gguf *file;
    lf_diagnostic diagnostic = {0};
    if (lf_gguf_parse(data, size, &file, &diagnostic) != 0) {
        check(diagnostic.message[0] != '\0' && file == NULL, "refused without a message");
        return 0;
    }
    rewrite(file);
    use_tokenizer(file, data, size);
    lf_gguf_close(file);
    return 0;
}
