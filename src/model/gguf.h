/* GGUF version 3, the llama.cpp model format (docs/FORMAT.md §5): typed
 * key/value metadata, then tensor descriptions, then the tensors' bytes,
 * each at a multiple of the file's alignment.
 *
 * The reader parses a file image in memory and trusts none of it: every
 * count, length, type, dimension and offset is checked against the image
 * before anything points into it, and a failure says what was wrong and at
 * which byte.  Values and tensor data are then views into the image (no
 * copies), so the image must outlive the lf_gguf.
 *
 * The writer collects metadata and tensors in memory and produces a file
 * image that the reader accepts; it refuses anything the reader would
 * refuse.
 *
 * All numbers in the file are little-endian.  Project convention for int8
 * weights: a matrix `X` is stored as two tensors, `X.weight` (I8, dims
 * [columns, rows]: dims[0] is the row length, as in ggml) and `X.scale`
 * (F32, dims [rows]): element (r, c) is weight[r][c] * scale[r]. */
#ifndef LLMFUSE_MODEL_GGUF_H
#define LLMFUSE_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"

#define LF_GGUF_VERSION 3
#define LF_GGUF_DEFAULT_ALIGNMENT 32
/* general.alignment may be any power of two up to this: enough for pages,
 * and a tiny file cannot ask a writer for gigabytes of padding. */
#define LF_GGUF_MAX_ALIGNMENT 65536
#define LF_GGUF_MAX_DIMS 4
#define LF_GGUF_MAX_KEY_LENGTH 65535
#define LF_GGUF_MAX_TENSOR_NAME_LENGTH 64

/* Metadata value types, numbered as in the file. */
typedef enum lf_gguf_type {
    LF_GGUF_UINT8 = 0,
    LF_GGUF_INT8 = 1,
    LF_GGUF_UINT16 = 2,
    LF_GGUF_INT16 = 3,
    LF_GGUF_UINT32 = 4,
    LF_GGUF_INT32 = 5,
    LF_GGUF_FLOAT32 = 6,
    LF_GGUF_BOOL = 7,
    LF_GGUF_STRING = 8,
    LF_GGUF_ARRAY = 9,
    LF_GGUF_UINT64 = 10,
    LF_GGUF_INT64 = 11,
    LF_GGUF_FLOAT64 = 12,
} lf_gguf_type;

/* The ggml tensor types this build reads and writes (ggml's numbers); any
 * other type in a file is an error.  Q8_0 stores blocks of 32 elements as an
 * F16 scale and 32 int8 values (34 bytes), so dims[0] must be a multiple of
 * 32.  The reader and writer only carry bytes: converting F16/BF16/Q8_0 is
 * the caller's business. */
typedef enum lf_ggml_type {
    LF_GGML_F32 = 0,
    LF_GGML_F16 = 1,
    LF_GGML_Q8_0 = 8,
    LF_GGML_I8 = 24,
    LF_GGML_I16 = 25,
    LF_GGML_I32 = 26,
    LF_GGML_I64 = 27,
    LF_GGML_F64 = 28,
    LF_GGML_BF16 = 30,
} lf_ggml_type;

/* GGUF strings are length-prefixed bytes: not NUL-terminated, and not
 * necessarily UTF-8 (the tokenizer stores raw token bytes in them). */
typedef struct lf_gguf_string {
    const char *data;
    uint64_t length;
} lf_gguf_string;

/* One metadata entry, pointing into the file image. */
typedef struct lf_gguf_metadata {
    lf_gguf_string key;
    lf_gguf_type type;
    lf_gguf_type element_type; /* arrays: the type of every element (never ARRAY) */
    uint64_t count;            /* arrays: element count; otherwise 1 */
    /* Numbers and bools (scalars and arrays): the little-endian bytes, not
     * necessarily aligned; read them with lf_gguf_metadata_decode. */
    const uint8_t *data;
    /* Strings: `count` strings (one for a STRING value). */
    const lf_gguf_string *strings;
} lf_gguf_metadata;

typedef struct lf_gguf_tensor {
    lf_gguf_string name;
    lf_ggml_type type;
    uint32_t dim_count;
    uint64_t dims[LF_GGUF_MAX_DIMS]; /* dims[0] varies fastest; unused dims are 1 */
    uint64_t element_count;
    uint64_t offset; /* of the data from the start of the file */
    uint64_t size;   /* bytes */
    const uint8_t *data;
} lf_gguf_tensor;

typedef struct lf_gguf lf_gguf;

/* Parses and validates a whole file image of `size` bytes. -LF_EFORMAT,
 * -LF_ETRUNCATED or -LF_EVERSION with a diagnostic naming the problem and
 * its byte offset; -ENOMEM. The image is borrowed, not copied. */
int64_t lf_gguf_parse(const uint8_t *image, uint64_t size, lf_gguf **file,
                      lf_diagnostic *diagnostic);
/* Maps `path` read-only and parses it; lf_gguf_close unmaps it. */
int64_t lf_gguf_open_file(const char *path, lf_gguf **file, lf_diagnostic *diagnostic);
void lf_gguf_close(lf_gguf *file);

/* The whole file image that was parsed (a model's fingerprint hashes it). */
const uint8_t *lf_gguf_image(const lf_gguf *file, uint64_t *size);
uint32_t lf_gguf_alignment(const lf_gguf *file);
uint64_t lf_gguf_metadata_count(const lf_gguf *file);
/* Entries in file order. */
const lf_gguf_metadata *lf_gguf_metadata_at(const lf_gguf *file, uint64_t index);
/* NULL when the key is absent. */
const lf_gguf_metadata *lf_gguf_find_metadata(const lf_gguf *file, const char *key);
uint64_t lf_gguf_tensor_count(const lf_gguf *file);
const lf_gguf_tensor *lf_gguf_tensor_at(const lf_gguf *file, uint64_t index);
const lf_gguf_tensor *lf_gguf_find_tensor(const lf_gguf *file, const char *name);

/* Typed lookups: 0, -ENOENT when the key is absent, -LF_EFORMAT when it has
 * another type; both with a diagnostic naming the key. get_u64 also takes a
 * UINT32 (the specification lets counts be either). */
int64_t lf_gguf_get_u32(const lf_gguf *file, const char *key, uint32_t *value,
                        lf_diagnostic *diagnostic);
int64_t lf_gguf_get_u64(const lf_gguf *file, const char *key, uint64_t *value,
                        lf_diagnostic *diagnostic);
int64_t lf_gguf_get_i32(const lf_gguf *file, const char *key, int32_t *value,
                        lf_diagnostic *diagnostic);
int64_t lf_gguf_get_f32(const lf_gguf *file, const char *key, float *value,
                        lf_diagnostic *diagnostic);
int64_t lf_gguf_get_bool(const lf_gguf *file, const char *key, bool *value,
                         lf_diagnostic *diagnostic);
int64_t lf_gguf_get_string(const lf_gguf *file, const char *key, lf_gguf_string *value,
                           lf_diagnostic *diagnostic);
/* An array whose elements have element_type. */
int64_t lf_gguf_get_array(const lf_gguf *file, const char *key, lf_gguf_type element_type,
                          const lf_gguf_metadata **array, lf_diagnostic *diagnostic);
int64_t lf_gguf_get_string_array(const lf_gguf *file, const char *key,
                                 const lf_gguf_string **strings, uint64_t *count,
                                 lf_diagnostic *diagnostic);

/* Copies the numbers or bools of an entry (scalar or array, not strings) into
 * out as native C values (uint8_t ... double, bool), `count` of them. */
void lf_gguf_metadata_decode(const lf_gguf_metadata *entry, void *out);

/* "uint32", "string", ...; "F32", "Q8_0", ...; "?" for numbers outside the
 * enums. */
const char *lf_gguf_type_name(uint32_t type);
const char *lf_ggml_type_name(uint32_t type);
/* Bytes of a tensor of this type and shape: -LF_EFORMAT (with a diagnostic)
 * for an unknown type, a dims[0] that is not a whole number of blocks, or a
 * size beyond 2^63 - 1. */
int64_t lf_ggml_tensor_size(uint32_t type, uint32_t dim_count, const uint64_t *dims,
                            lf_diagnostic *diagnostic);

typedef struct lf_gguf_writer lf_gguf_writer;

int64_t lf_gguf_writer_create(lf_gguf_writer **writer);
void lf_gguf_writer_free(lf_gguf_writer *writer);

/* Adds a metadata entry; value points to the native C value of the type
 * (uint8_t ... double, bool, lf_gguf_string). -EEXIST for a key already set,
 * -EINVAL for an invalid key, type or value (general.alignment must be a
 * UINT32 power of two up to LF_GGUF_MAX_ALIGNMENT: the writer then aligns
 * the data to it). Keys keep
 * their order. */
int64_t lf_gguf_writer_set(lf_gguf_writer *writer, const char *key, lf_gguf_type type,
                           const void *value, lf_diagnostic *diagnostic);
/* An array of count native values of element_type (lf_gguf_string for
 * strings; nested arrays are not supported, as in llama.cpp). */
int64_t lf_gguf_writer_set_array(lf_gguf_writer *writer, const char *key,
                                 lf_gguf_type element_type, const void *values, uint64_t count,
                                 lf_diagnostic *diagnostic);
int64_t lf_gguf_writer_set_u32(lf_gguf_writer *writer, const char *key, uint32_t value,
                               lf_diagnostic *diagnostic);
int64_t lf_gguf_writer_set_f32(lf_gguf_writer *writer, const char *key, float value,
                               lf_diagnostic *diagnostic);
/* A NUL-terminated string value. */
int64_t lf_gguf_writer_set_string(lf_gguf_writer *writer, const char *key, const char *value,
                                  lf_diagnostic *diagnostic);
/* Copies a tensor's bytes; size must be lf_ggml_tensor_size of its type and
 * dims. -EEXIST for a name already added, -EINVAL otherwise. Tensors are
 * laid out in the order added. */
int64_t lf_gguf_writer_add_tensor(lf_gguf_writer *writer, const char *name, lf_ggml_type type,
                                  uint32_t dim_count, const uint64_t *dims, const void *data,
                                  uint64_t size, lf_diagnostic *diagnostic);
/* Appends the file image to out. */
int64_t lf_gguf_writer_finish(const lf_gguf_writer *writer, lf_buffer *out,
                              lf_diagnostic *diagnostic);
/* Writes the file image to path atomically (lf_file_write_atomic). */
int64_t lf_gguf_writer_write_file(const lf_gguf_writer *writer, const char *path,
                                  lf_diagnostic *diagnostic);

#endif
