#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "common/string_table.h"

static const char magic[4] = {'G', 'G', 'U', 'F'};

/* ---- Types ---------------------------------------------------------------- */

static const char *const value_type_names[] = {
    [LF_GGUF_UINT8] = "uint8",     [LF_GGUF_INT8] = "int8",     [LF_GGUF_UINT16] = "uint16",
    [LF_GGUF_INT16] = "int16",     [LF_GGUF_UINT32] = "uint32", [LF_GGUF_INT32] = "int32",
    [LF_GGUF_FLOAT32] = "float32", [LF_GGUF_BOOL] = "bool",     [LF_GGUF_STRING] = "string",
    [LF_GGUF_ARRAY] = "array",     [LF_GGUF_UINT64] = "uint64", [LF_GGUF_INT64] = "int64",
    [LF_GGUF_FLOAT64] = "float64",
};

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown
 * numbers. */
static uint64_t fixed_size(uint32_t type)
{
    switch (type) {
    case LF_GGUF_UINT8:
    case LF_GGUF_INT8:
    case LF_GGUF_BOOL:
        return 1;
    case LF_GGUF_UINT16:
    case LF_GGUF_INT16:
        return 2;
    case LF_GGUF_UINT32:
    case LF_GGUF_INT32:
    case LF_GGUF_FLOAT32:
        return 4;
    case LF_GGUF_UINT64:
    case LF_GGUF_INT64:
    case LF_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static bool is_value_type(uint32_t type)
{
    return type <= LF_GGUF_FLOAT64;
}

const char *lf_gguf_type_name(uint32_t type)
{
    return is_value_type(type) ? value_type_names[type] : "?";
}

typedef struct tensor_type_info {
    uint32_t type;
    const char *name;
    uint64_t block_elements, block_bytes;
} tensor_type_info;

static const tensor_type_info tensor_types[] = {
    {LF_GGML_F32, "F32", 1, 4},   {LF_GGML_F16, "F16", 1, 2}, {LF_GGML_Q8_0, "Q8_0", 32, 34},
    {LF_GGML_I8, "I8", 1, 1},     {LF_GGML_I16, "I16", 1, 2}, {LF_GGML_I32, "I32", 1, 4},
    {LF_GGML_I64, "I64", 1, 8},   {LF_GGML_F64, "F64", 1, 8}, {LF_GGML_BF16, "BF16", 1, 2},
};

static const tensor_type_info *find_tensor_type(uint32_t type)
{
    for (size_t i = 0; i < sizeof tensor_types / sizeof tensor_types[0]; i++)
        if (tensor_types[i].type == type)
            return &tensor_types[i];
    return NULL;
}

const char *lf_ggml_type_name(uint32_t type)
{
    const tensor_type_info *info = find_tensor_type(type);
    return info ? info->name : "?";
}

int64_t lf_ggml_tensor_size(uint32_t type, uint32_t dim_count, const uint64_t *dims,
                            lf_diagnostic *diagnostic)
{
    const tensor_type_info *info = find_tensor_type(type);
    if (!info)
        return lf_fail(diagnostic, -LF_EFORMAT, "unknown ggml tensor type %" PRIu32, type);
    if (dim_count > LF_GGUF_MAX_DIMS)
        return lf_fail(diagnostic, -LF_EFORMAT, "%" PRIu32 " dimensions (at most %d)", dim_count,
                       LF_GGUF_MAX_DIMS);
    /* ggml counts elements in int64_t: every dimension and their product must
     * fit, and so must the byte size. A zero dimension makes an empty tensor,
     * whatever the others are. */
    uint64_t elements = 1;
    bool empty = false;
    for (uint32_t i = 0; i < dim_count; i++) {
        if (dims[i] > INT64_MAX)
            return lf_fail(diagnostic, -LF_EFORMAT, "dimension %" PRIu32 " is %" PRIu64
                           ", beyond 2^63 - 1", i, dims[i]);
        empty = empty || dims[i] == 0;
    }
    for (uint32_t i = 0; i < dim_count && !empty; i++)
        if (__builtin_mul_overflow(elements, dims[i], &elements) || elements > INT64_MAX)
            return lf_fail(diagnostic, -LF_EFORMAT,
                           "the dimensions' product overflows 2^63 - 1 elements");
    if (empty)
        elements = 0;
    uint64_t row = dim_count ? dims[0] : 1;
    if (row % info->block_elements != 0)
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "%s stores blocks of %" PRIu64 " elements, but dimension 0 is %" PRIu64,
                       info->name, info->block_elements, row);
    uint64_t bytes;
    if (__builtin_mul_overflow(elements / info->block_elements, info->block_bytes, &bytes) ||
        bytes > INT64_MAX)
        return lf_fail(diagnostic, -LF_EFORMAT, "the tensor's size overflows 2^63 - 1 bytes");
    return (int64_t)bytes;
}

/* ---- Little-endian loads ------------------------------------------------- */

static uint64_t load_le(const uint8_t *bytes, unsigned size)
{
    uint64_t value = 0;
    for (unsigned i = 0; i < size; i++)
        value |= (uint64_t)bytes[i] << (8 * i);
    return value;
}

/* A native integer or float of `size` bytes, as bits (two's complement for
 * signed types), and back. */
static uint64_t load_native(const void *value, unsigned size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (size) {
    case 1:
        memcpy(&u8, value, 1);
        return u8;
    case 2:
        memcpy(&u16, value, 2);
        return u16;
    case 4:
        memcpy(&u32, value, 4);
        return u32;
    default:
        memcpy(&u64, value, 8);
        return u64;
    }
}

static void store_native(void *destination, uint64_t bits, unsigned size)
{
    uint8_t u8 = (uint8_t)bits;
    uint16_t u16 = (uint16_t)bits;
    uint32_t u32 = (uint32_t)bits;
    switch (size) {
    case 1:
        memcpy(destination, &u8, 1);
        break;
    case 2:
        memcpy(destination, &u16, 2);
        break;
    case 4:
        memcpy(destination, &u32, 4);
        break;
    default:
        memcpy(destination, &bits, 8);
    }
}

void lf_gguf_metadata_decode(const lf_gguf_metadata *entry, void *out)
{
    uint32_t type = entry->type == LF_GGUF_ARRAY ? entry->element_type : entry->type;
    unsigned size = (unsigned)fixed_size(type);
    uint8_t *destination = out;
    for (uint64_t i = 0; i < entry->count; i++, destination += size) {
        uint64_t bits = load_le(entry->data + i * size, size);
        if (type == LF_GGUF_BOOL)
            *(bool *)destination = bits != 0;
        else
            store_native(destination, bits, size);
    }
}

/* ---- The reader ------------------------------------------------------------ */

struct lf_gguf {
    const uint8_t *image;
    uint64_t size;
    void *mapping; /* lf_gguf_open_file's mmap, or NULL */
    uint32_t alignment;
    uint64_t metadata_count;
    lf_gguf_metadata *metadata;
    const lf_gguf_metadata **metadata_by_key;
    uint64_t tensor_count;
    lf_gguf_tensor *tensors;
    const lf_gguf_tensor **tensors_by_name;
};

/* Where the parser is, and what it is reading, for messages. */
typedef struct cursor {
    const uint8_t *image;
    uint64_t size, position;
    lf_diagnostic *diagnostic;
    char context[96]; /* "metadata entry 3 ('general.name')" */
} cursor;

static uint64_t remaining(const cursor *at)
{
    return at->size - at->position;
}

static int64_t need(cursor *at, uint64_t bytes, const char *what)
{
    if (bytes <= remaining(at))
        return 0;
    return lf_fail(at->diagnostic, -LF_ETRUNCATED,
                   "truncated: %s of %s needs %" PRIu64 " bytes at byte %" PRIu64
                   ", but the file ends at byte %" PRIu64,
                   what, at->context, bytes, at->position, at->size);
}

/* A count of items of at least item_size bytes each must fit in what is
 * left; checked before anything is allocated for them. */
static int64_t check_count(cursor *at, uint64_t count, uint64_t item_size, const char *what)
{
    if (count <= remaining(at) / item_size)
        return 0;
    return lf_fail(at->diagnostic, -LF_ETRUNCATED,
                   "truncated: %s of %s claims %" PRIu64 " items of at least %" PRIu64
                   " bytes, but only %" PRIu64 " bytes follow byte %" PRIu64,
                   what, at->context, count, item_size, remaining(at), at->position);
}

static int64_t read_u32(cursor *at, const char *what, uint32_t *value)
{
    int64_t status = need(at, 4, what);
    if (status < 0)
        return status;
    *value = (uint32_t)load_le(at->image + at->position, 4);
    at->position += 4;
    return 0;
}

static int64_t read_u64(cursor *at, const char *what, uint64_t *value)
{
    int64_t status = need(at, 8, what);
    if (status < 0)
        return status;
    *value = load_le(at->image + at->position, 8);
    at->position += 8;
    return 0;
}

static int64_t read_string(cursor *at, const char *what, lf_gguf_string *string)
{
    uint64_t length;
    int64_t status = read_u64(at, what, &length);
    if (status < 0 || (status = need(at, length, what)) < 0)
        return status;
    string->data = (const char *)at->image + at->position;
    string->length = length;
    at->position += length;
    return 0;
}

/* Keys and tensor names: 1 to max_length bytes of printable ASCII without
 * spaces, so they are safe in messages and usable as C strings. */
static int64_t check_name(cursor *at, const lf_gguf_string *name, uint64_t max_length,
                          const char *what, uint64_t start)
{
    if (name->length == 0 || name->length > max_length)
        return lf_fail(at->diagnostic, -LF_EFORMAT,
                       "%s of %s at byte %" PRIu64 " is %" PRIu64 " bytes long (1 to %" PRIu64
                       " allowed)",
                       what, at->context, start, name->length, max_length);
    for (uint64_t i = 0; i < name->length; i++) {
        unsigned char c = (unsigned char)name->data[i];
        if (c <= ' ' || c > '~')
            return lf_fail(at->diagnostic, -LF_EFORMAT,
                           "%s of %s at byte %" PRIu64 " has byte 0x%02x at position %" PRIu64
                           " (only printable ASCII without spaces is allowed)",
                           what, at->context, start, c, i);
    }
    return 0;
}

/* Fixed-size values: count of them, in place. */
static int64_t read_numbers(cursor *at, uint32_t type, uint64_t count, lf_gguf_metadata *entry)
{
    uint64_t size = fixed_size(type);
    int64_t status = check_count(at, count, size, "the value");
    if (status < 0)
        return status;
    const uint8_t *data = at->image + at->position;
    if (type == LF_GGUF_BOOL)
        for (uint64_t i = 0; i < count; i++)
            if (data[i] > 1)
                return lf_fail(at->diagnostic, -LF_EFORMAT,
                               "bool %" PRIu64 " of %s at byte %" PRIu64
                               " is %u (only 0 and 1 are allowed)",
                               i, at->context, at->position + i, data[i]);
    entry->data = data;
    at->position += count * size;
    return 0;
}

static int64_t read_strings(cursor *at, uint64_t count, lf_gguf_metadata *entry)
{
    int64_t status = check_count(at, count, 8, "the value");
    if (status < 0)
        return status;
    lf_gguf_string *strings = calloc(count ? count : 1, sizeof *strings);
    if (!strings)
        return -ENOMEM;
    entry->strings = strings;
    for (uint64_t i = 0; i < count; i++)
        if ((status = read_string(at, "a string", &strings[i])) < 0)
            return status;
    return 0;
}

static int64_t read_metadata_entry(cursor *at, uint64_t index, lf_gguf_metadata *entry)
{
    uint64_t start = at->position;
    snprintf(at->context, sizeof at->context, "metadata entry %" PRIu64, index);
    int64_t status = read_string(at, "the key", &entry->key);
    if (status < 0 ||
        (status = check_name(at, &entry->key, LF_GGUF_MAX_KEY_LENGTH, "the key", start)) < 0)
        return status;
    snprintf(at->context, sizeof at->context, "metadata entry %" PRIu64 " ('%.*s')", index,
             (int)(entry->key.length < 48 ? entry->key.length : 48), entry->key.data);
    uint32_t type;
    uint64_t type_position = at->position;
    if ((status = read_u32(at, "the value type", &type)) < 0)
        return status;
    if (!is_value_type(type))
        return lf_fail(at->diagnostic, -LF_EFORMAT,
                       "%s has unknown value type %" PRIu32 " at byte %" PRIu64, at->context,
                       type, type_position);
    entry->type = type;
    entry->count = 1;
    if (type == LF_GGUF_ARRAY) {
        uint32_t element_type;
        type_position = at->position;
        if ((status = read_u32(at, "the array's element type", &element_type)) < 0 ||
            (status = read_u64(at, "the array's length", &entry->count)) < 0)
            return status;
        if (element_type == LF_GGUF_ARRAY || !is_value_type(element_type))
            return lf_fail(at->diagnostic, -LF_EFORMAT,
                           "%s is an array of %s (type %" PRIu32 ") at byte %" PRIu64
                           ": only arrays of numbers, bools and strings are supported",
                           at->context, lf_gguf_type_name(element_type), element_type,
                           type_position);
        entry->element_type = element_type;
        type = element_type;
    }
    return type == LF_GGUF_STRING ? read_strings(at, entry->count, entry)
                                  : read_numbers(at, type, entry->count, entry);
}

static int compare_strings(const lf_gguf_string *a, const lf_gguf_string *b)
{
    uint64_t shorter = a->length < b->length ? a->length : b->length;
    int order = shorter ? memcmp(a->data, b->data, shorter) : 0;
    if (order != 0)
        return order;
    return (a->length > b->length) - (a->length < b->length);
}

static int compare_metadata_keys(const void *a, const void *b)
{
    const lf_gguf_metadata *x = *(const lf_gguf_metadata *const *)a;
    const lf_gguf_metadata *y = *(const lf_gguf_metadata *const *)b;
    int order = compare_strings(&x->key, &y->key);
    return order ? order : (x > y) - (x < y);
}

static int compare_tensor_names(const void *a, const void *b)
{
    const lf_gguf_tensor *x = *(const lf_gguf_tensor *const *)a;
    const lf_gguf_tensor *y = *(const lf_gguf_tensor *const *)b;
    int order = compare_strings(&x->name, &y->name);
    return order ? order : (x > y) - (x < y);
}

static int compare_tensor_offsets(const void *a, const void *b)
{
    const lf_gguf_tensor *x = *(const lf_gguf_tensor *const *)a;
    const lf_gguf_tensor *y = *(const lf_gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x > y) - (x < y);
}

static int64_t read_metadata(cursor *at, lf_gguf *file)
{
    /* The smallest entry: an 8-byte key length, a 1-byte key, a 4-byte type
     * and a 1-byte value. */
    snprintf(at->context, sizeof at->context, "the header");
    int64_t status = check_count(at, file->metadata_count, 14, "the metadata count");
    if (status < 0)
        return status;
    uint64_t count = file->metadata_count;
    file->metadata = calloc(count ? count : 1, sizeof *file->metadata);
    file->metadata_by_key = calloc(count ? count : 1, sizeof *file->metadata_by_key);
    if (!file->metadata || !file->metadata_by_key)
        return -ENOMEM;
    for (uint64_t i = 0; i < count; i++) {
        if ((status = read_metadata_entry(at, i, &file->metadata[i])) < 0)
            return status;
        file->metadata_by_key[i] = &file->metadata[i];
    }
    qsort(file->metadata_by_key, count, sizeof *file->metadata_by_key, compare_metadata_keys);
    for (uint64_t i = 1; i < count; i++) {
        const lf_gguf_metadata *first = file->metadata_by_key[i - 1];
        const lf_gguf_metadata *second = file->metadata_by_key[i];
        if (compare_strings(&first->key, &second->key) == 0)
            return lf_fail(at->diagnostic, -LF_EFORMAT,
                           "metadata entries %td and %td have the same key '%.*s'",
                           first - file->metadata, second - file->metadata,
                           (int)first->key.length, first->key.data);
    }
    return 0;
}

static bool is_valid_alignment(uint32_t alignment)
{
    return alignment != 0 && (alignment & (alignment - 1)) == 0 &&
           alignment <= LF_GGUF_MAX_ALIGNMENT;
}

static int64_t read_alignment(cursor *at, lf_gguf *file)
{
    file->alignment = LF_GGUF_DEFAULT_ALIGNMENT;
    const lf_gguf_metadata *entry = lf_gguf_find_metadata(file, "general.alignment");
    if (!entry)
        return 0;
    if (entry->type != LF_GGUF_UINT32)
        return lf_fail(at->diagnostic, -LF_EFORMAT,
                       "general.alignment at byte %td has type %s, not uint32",
                       entry->key.data - (const char *)at->image, lf_gguf_type_name(entry->type));
    uint32_t alignment = (uint32_t)load_le(entry->data, 4);
    if (!is_valid_alignment(alignment))
        return lf_fail(at->diagnostic, -LF_EFORMAT,
                       "general.alignment at byte %td is %" PRIu32
                       ", not a power of two up to %d",
                       entry->data - at->image, alignment, LF_GGUF_MAX_ALIGNMENT);
    file->alignment = alignment;
    return 0;
}

static int64_t read_tensor_info(cursor *at, uint64_t index, lf_gguf_tensor *tensor)
{
    uint64_t start = at->position;
    snprintf(at->context, sizeof at->context, "tensor %" PRIu64, index);
    int64_t status = read_string(at, "the name", &tensor->name);
    if (status < 0 || (status = check_name(at, &tensor->name, LF_GGUF_MAX_TENSOR_NAME_LENGTH,
                                           "the name", start)) < 0)
        return status;
    snprintf(at->context, sizeof at->context, "tensor %" PRIu64 " ('%.*s')", index,
             (int)tensor->name.length, tensor->name.data);
    uint64_t field_position = at->position;
    if ((status = read_u32(at, "the dimension count", &tensor->dim_count)) < 0)
        return status;
    if (tensor->dim_count > LF_GGUF_MAX_DIMS)
        return lf_fail(at->diagnostic, -LF_EFORMAT,
                       "%s has %" PRIu32 " dimensions at byte %" PRIu64 " (at most %d)",
                       at->context, tensor->dim_count, field_position, LF_GGUF_MAX_DIMS);
    for (uint32_t i = 0; i < LF_GGUF_MAX_DIMS; i++)
        tensor->dims[i] = 1;
    for (uint32_t i = 0; i < tensor->dim_count; i++)
        if ((status = read_u64(at, "a dimension", &tensor->dims[i])) < 0)
            return status;
    uint32_t type;
    if ((status = read_u32(at, "the type", &type)) < 0 ||
        (status = read_u64(at, "the data offset", &tensor->offset)) < 0)
        return status;
    lf_diagnostic shape_problem = {0};
    int64_t size = lf_ggml_tensor_size(type, tensor->dim_count, tensor->dims, &shape_problem);
    if (size < 0)
        return lf_fail(at->diagnostic, size, "%s, described at byte %" PRIu64 ": %s",
                       at->context, field_position, shape_problem.message);
    tensor->type = type;
    tensor->size = (uint64_t)size;
    tensor->element_count = 1;
    for (uint32_t i = 0; i < tensor->dim_count; i++)
        tensor->element_count *= tensor->dims[i];
    return 0;
}

/* Every tensor's data must start at a multiple of the alignment, lie inside
 * the data section and share no byte with another tensor's. */
static int64_t place_tensors(cursor *at, lf_gguf *file, uint64_t data_start)
{
    if (file->tensor_count > 0 && data_start > at->size)
        return lf_fail(at->diagnostic, -LF_ETRUNCATED,
                       "truncated: the data section starts at byte %" PRIu64
                       ", but the file ends at byte %" PRIu64,
                       data_start, at->size);
    uint64_t data_size = data_start <= at->size ? at->size - data_start : 0;
    for (uint64_t i = 0; i < file->tensor_count; i++) {
        lf_gguf_tensor *tensor = &file->tensors[i];
        if (tensor->offset % file->alignment != 0)
            return lf_fail(at->diagnostic, -LF_EFORMAT,
                           "tensor %" PRIu64 " ('%.*s') has data offset %" PRIu64
                           ", not a multiple of the alignment %" PRIu32,
                           i, (int)tensor->name.length, tensor->name.data, tensor->offset,
                           file->alignment);
        if (tensor->offset > data_size || tensor->size > data_size - tensor->offset)
            return lf_fail(at->diagnostic, -LF_ETRUNCATED,
                           "truncated: tensor %" PRIu64 " ('%.*s') needs bytes %" PRIu64
                           " to %" PRIu64 " of the data section at byte %" PRIu64
                           ", but the file ends at byte %" PRIu64,
                           i, (int)tensor->name.length, tensor->name.data, tensor->offset,
                           tensor->offset + tensor->size, data_start, at->size);
        tensor->offset += data_start;
        tensor->data = at->image + tensor->offset;
    }
    const lf_gguf_tensor **by_offset = malloc((file->tensor_count ? file->tensor_count : 1) *
                                              sizeof *by_offset);
    if (!by_offset)
        return -ENOMEM;
    for (uint64_t i = 0; i < file->tensor_count; i++)
        by_offset[i] = &file->tensors[i];
    qsort(by_offset, file->tensor_count, sizeof *by_offset, compare_tensor_offsets);
    int64_t status = 0;
    const lf_gguf_tensor *previous = NULL; /* the last non-empty tensor */
    for (uint64_t i = 0; i < file->tensor_count && status == 0; i++) {
        const lf_gguf_tensor *tensor = by_offset[i];
        if (tensor->size == 0)
            continue;
        if (previous && previous->offset + previous->size > tensor->offset)
            status = lf_fail(at->diagnostic, -LF_EFORMAT,
                             "tensor '%.*s' (bytes %" PRIu64 " to %" PRIu64
                             ") overlaps tensor '%.*s' (bytes %" PRIu64 " to %" PRIu64 ")",
                             (int)tensor->name.length, tensor->name.data, tensor->offset,
                             tensor->offset + tensor->size, (int)previous->name.length,
                             previous->name.data, previous->offset,
                             previous->offset + previous->size);
        previous = tensor;
    }
    free(by_offset);
    return status;
}

static int64_t read_tensors(cursor *at, lf_gguf *file)
{
    /* The smallest description: name length 8, a 1-byte name, dimension
     * count 4, type 4, offset 8. */
    snprintf(at->context, sizeof at->context, "the header");
    int64_t status = check_count(at, file->tensor_count, 25, "the tensor count");
    if (status < 0)
        return status;
    uint64_t count = file->tensor_count;
    file->tensors = calloc(count ? count : 1, sizeof *file->tensors);
    file->tensors_by_name = calloc(count ? count : 1, sizeof *file->tensors_by_name);
    if (!file->tensors || !file->tensors_by_name)
        return -ENOMEM;
    for (uint64_t i = 0; i < count; i++) {
        if ((status = read_tensor_info(at, i, &file->tensors[i])) < 0)
            return status;
        file->tensors_by_name[i] = &file->tensors[i];
    }
    qsort(file->tensors_by_name, count, sizeof *file->tensors_by_name, compare_tensor_names);
    for (uint64_t i = 1; i < count; i++) {
        const lf_gguf_tensor *first = file->tensors_by_name[i - 1];
        const lf_gguf_tensor *second = file->tensors_by_name[i];
        if (compare_strings(&first->name, &second->name) == 0)
            return lf_fail(at->diagnostic, -LF_EFORMAT,
                           "tensors %td and %td have the same name '%.*s'",
                           first - file->tensors, second - file->tensors,
                           (int)first->name.length, first->name.data);
    }
    /* The data section starts at the next multiple of the alignment; files
     * without tensors need not contain that padding. */
    uint64_t data_start = at->position + (file->alignment - at->position % file->alignment) %
                                             file->alignment;
    return place_tensors(at, file, data_start);
}

static int64_t read_header(cursor *at, lf_gguf *file)
{
    snprintf(at->context, sizeof at->context, "the header");
    int64_t status = need(at, sizeof magic, "the magic");
    if (status < 0)
        return status;
    if (memcmp(at->image, magic, sizeof magic) != 0)
        return lf_fail(at->diagnostic, -LF_EFORMAT,
                       "not a GGUF file: the first 4 bytes are %02x %02x %02x %02x, not 'GGUF'",
                       at->image[0], at->image[1], at->image[2], at->image[3]);
    at->position = sizeof magic;
    uint32_t version;
    if ((status = read_u32(at, "the version", &version)) < 0)
        return status;
    if (version == __builtin_bswap32(LF_GGUF_VERSION))
        return lf_fail(at->diagnostic, -LF_EVERSION,
                       "big-endian GGUF files are not supported (version at byte 4 reads "
                       "%" PRIu32 " little-endian)", version);
    if (version != LF_GGUF_VERSION)
        return lf_fail(at->diagnostic, -LF_EVERSION,
                       "GGUF version %" PRIu32 " at byte 4 is not supported (this build reads "
                       "version %d)", version, LF_GGUF_VERSION);
    if ((status = read_u64(at, "the tensor count", &file->tensor_count)) < 0 ||
        (status = read_u64(at, "the metadata count", &file->metadata_count)) < 0)
        return status;
    return 0;
}

int64_t lf_gguf_parse(const uint8_t *image, uint64_t size, lf_gguf **file_out,
                      lf_diagnostic *diagnostic)
{
    *file_out = NULL;
    lf_gguf *file = calloc(1, sizeof *file);
    if (!file)
        return -ENOMEM;
    file->image = image;
    file->size = size;
    cursor at = {.image = image, .size = size, .diagnostic = diagnostic};
    int64_t status = read_header(&at, file);
    if (status == 0)
        status = read_metadata(&at, file);
    if (status == 0)
        status = read_alignment(&at, file);
    if (status == 0)
        status = read_tensors(&at, file);
    if (status < 0) {
        if (status == -ENOMEM)
            lf_fail(diagnostic, status, "out of memory reading a GGUF file of %" PRIu64 " bytes",
                    size);
        lf_gguf_close(file);
        return status;
    }
    *file_out = file;
    return 0;
}

int64_t lf_gguf_open_file(const char *path, lf_gguf **file, lf_diagnostic *diagnostic)
{
    *file = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lf_fail(diagnostic, -errno, "cannot open '%s': %s", path, strerror(errno));
    struct stat status_of_file;
    if (fstat(fd, &status_of_file) != 0) {
        int64_t status = lf_fail(diagnostic, -errno, "cannot stat '%s': %s", path,
                                 strerror(errno));
        close(fd);
        return status;
    }
    if (!S_ISREG(status_of_file.st_mode)) {
        close(fd);
        return lf_fail(diagnostic, -EINVAL, "'%s' is not a regular file", path);
    }
    uint64_t size = (uint64_t)status_of_file.st_size;
    /* mmap cannot map an empty file; an empty image is simply truncated. */
    void *mapping = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    int mmap_errno = errno;
    close(fd);
    if (mapping == MAP_FAILED)
        return lf_fail(diagnostic, -mmap_errno, "cannot map '%s': %s", path,
                       strerror(mmap_errno));
    static const uint8_t empty_image[1];
    int64_t status = lf_gguf_parse(mapping ? mapping : empty_image, size, file, diagnostic);
    if (status < 0) {
        if (mapping)
            munmap(mapping, size);
        return status;
    }
    (*file)->mapping = mapping;
    return 0;
}

void lf_gguf_close(lf_gguf *file)
{
    if (!file)
        return;
    for (uint64_t i = 0; i < file->metadata_count && file->metadata; i++)
        free((void *)file->metadata[i].strings);
    free(file->metadata);
    free(file->metadata_by_key);
    free(file->tensors);
    free(file->tensors_by_name);
    if (file->mapping)
        munmap(file->mapping, file->size);
    free(file);
}

/* ---- Lookups --------------------------------------------------------------- */

const uint8_t *lf_gguf_image(const lf_gguf *file, uint64_t *size)
{
    *size = file->size;
    return file->image;
}

uint32_t lf_gguf_alignment(const lf_gguf *file)
{
    return file->alignment;
}

uint64_t lf_gguf_metadata_count(const lf_gguf *file)
{
    return file->metadata_count;
}

const lf_gguf_metadata *lf_gguf_metadata_at(const lf_gguf *file, uint64_t index)
{
    return index < file->metadata_count ? &file->metadata[index] : NULL;
}

uint64_t lf_gguf_tensor_count(const lf_gguf *file)
{
    return file->tensor_count;
}

const lf_gguf_tensor *lf_gguf_tensor_at(const lf_gguf *file, uint64_t index)
{
    return index < file->tensor_count ? &file->tensors[index] : NULL;
}

static int compare_key_to_metadata(const void *key, const void *element)
{
    const lf_gguf_metadata *entry = *(const lf_gguf_metadata *const *)element;
    return compare_strings(key, &entry->key);
}

static int compare_name_to_tensor(const void *name, const void *element)
{
    const lf_gguf_tensor *tensor = *(const lf_gguf_tensor *const *)element;
    return compare_strings(name, &tensor->name);
}

const lf_gguf_metadata *lf_gguf_find_metadata(const lf_gguf *file, const char *key)
{
    lf_gguf_string wanted = {key, strlen(key)};
    const lf_gguf_metadata *const *found =
        file->metadata_count ? bsearch(&wanted, file->metadata_by_key, file->metadata_count,
                                       sizeof *file->metadata_by_key, compare_key_to_metadata)
                             : NULL;
    return found ? *found : NULL;
}

const lf_gguf_tensor *lf_gguf_find_tensor(const lf_gguf *file, const char *name)
{
    lf_gguf_string wanted = {name, strlen(name)};
    const lf_gguf_tensor *const *found =
        file->tensor_count ? bsearch(&wanted, file->tensors_by_name, file->tensor_count,
                                     sizeof *file->tensors_by_name, compare_name_to_tensor)
                           : NULL;
    return found ? *found : NULL;
}

/* The entry for key if it has `type` (and, for arrays, element_type). */
static int64_t find_typed(const lf_gguf *file, const char *key, lf_gguf_type type,
                          lf_gguf_type element_type, const lf_gguf_metadata **entry,
                          lf_diagnostic *diagnostic)
{
    const lf_gguf_metadata *found = lf_gguf_find_metadata(file, key);
    if (!found)
        return lf_fail(diagnostic, -ENOENT, "metadata key '%s' is missing", key);
    if (found->type != type || (type == LF_GGUF_ARRAY && found->element_type != element_type)) {
        bool found_array = found->type == LF_GGUF_ARRAY, wanted_array = type == LF_GGUF_ARRAY;
        return lf_fail(diagnostic, -LF_EFORMAT, "metadata key '%s' has type %s%s%s, not %s%s%s",
                       key, lf_gguf_type_name(found->type), found_array ? " of " : "",
                       found_array ? lf_gguf_type_name(found->element_type) : "",
                       lf_gguf_type_name(type), wanted_array ? " of " : "",
                       wanted_array ? lf_gguf_type_name(element_type) : "");
    }
    *entry = found;
    return 0;
}

static int64_t get_scalar(const lf_gguf *file, const char *key, lf_gguf_type type, void *value,
                          lf_diagnostic *diagnostic)
{
    const lf_gguf_metadata *entry = NULL;
    int64_t status = find_typed(file, key, type, type, &entry, diagnostic);
    if (status == 0)
        lf_gguf_metadata_decode(entry, value);
    return status;
}

int64_t lf_gguf_get_u32(const lf_gguf *file, const char *key, uint32_t *value,
                        lf_diagnostic *diagnostic)
{
    return get_scalar(file, key, LF_GGUF_UINT32, value, diagnostic);
}

int64_t lf_gguf_get_u64(const lf_gguf *file, const char *key, uint64_t *value,
                        lf_diagnostic *diagnostic)
{
    const lf_gguf_metadata *entry = lf_gguf_find_metadata(file, key);
    if (entry && entry->type == LF_GGUF_UINT32) {
        *value = load_le(entry->data, 4);
        return 0;
    }
    return get_scalar(file, key, LF_GGUF_UINT64, value, diagnostic);
}

int64_t lf_gguf_get_i32(const lf_gguf *file, const char *key, int32_t *value,
                        lf_diagnostic *diagnostic)
{
    return get_scalar(file, key, LF_GGUF_INT32, value, diagnostic);
}

int64_t lf_gguf_get_f32(const lf_gguf *file, const char *key, float *value,
                        lf_diagnostic *diagnostic)
{
    return get_scalar(file, key, LF_GGUF_FLOAT32, value, diagnostic);
}

int64_t lf_gguf_get_bool(const lf_gguf *file, const char *key, bool *value,
                         lf_diagnostic *diagnostic)
{
    return get_scalar(file, key, LF_GGUF_BOOL, value, diagnostic);
}

int64_t lf_gguf_get_string(const lf_gguf *file, const char *key, lf_gguf_string *value,
                           lf_diagnostic *diagnostic)
{
    const lf_gguf_metadata *entry = NULL;
    int64_t status = find_typed(file, key, LF_GGUF_STRING, LF_GGUF_STRING, &entry, diagnostic);
    if (status == 0)
        *value = entry->strings[0];
    return status;
}

int64_t lf_gguf_get_array(const lf_gguf *file, const char *key, lf_gguf_type element_type,
                          const lf_gguf_metadata **array, lf_diagnostic *diagnostic)
{
    return find_typed(file, key, LF_GGUF_ARRAY, element_type, array, diagnostic);
}

int64_t lf_gguf_get_string_array(const lf_gguf *file, const char *key,
                                 const lf_gguf_string **strings, uint64_t *count,
                                 lf_diagnostic *diagnostic)
{
    const lf_gguf_metadata *array = NULL;
    int64_t status = lf_gguf_get_array(file, key, LF_GGUF_STRING, &array, diagnostic);
    if (status == 0) {
        *strings = array->strings;
        *count = array->count;
    }
    return status;
}

/* ---- The writer ------------------------------------------------------------ */

typedef struct written_tensor {
    uint32_t name_id; /* in tensor_names */
    lf_ggml_type type;
    uint32_t dim_count;
    uint64_t dims[LF_GGUF_MAX_DIMS];
    uint64_t data_offset, size; /* in `data`, unpadded */
} written_tensor;

struct lf_gguf_writer {
    lf_string_table keys;
    lf_buffer metadata; /* the serialized entries, in order */
    uint32_t alignment;
    lf_string_table tensor_names;
    written_tensor *tensors;
    size_t tensor_count, tensor_capacity;
    lf_buffer data;
};

int64_t lf_gguf_writer_create(lf_gguf_writer **writer)
{
    *writer = calloc(1, sizeof **writer);
    if (!*writer)
        return -ENOMEM;
    (*writer)->alignment = LF_GGUF_DEFAULT_ALIGNMENT;
    return 0;
}

void lf_gguf_writer_free(lf_gguf_writer *writer)
{
    if (!writer)
        return;
    lf_string_table_free(&writer->keys);
    lf_buffer_free(&writer->metadata);
    lf_string_table_free(&writer->tensor_names);
    free(writer->tensors);
    lf_buffer_free(&writer->data);
    free(writer);
}

static int append_le(lf_buffer *out, uint64_t value, unsigned size)
{
    uint8_t bytes[8];
    for (unsigned i = 0; i < size; i++)
        bytes[i] = (uint8_t)(value >> (8 * i));
    return lf_buffer_append(out, bytes, size);
}

static int append_string(lf_buffer *out, const char *data, uint64_t length)
{
    if (append_le(out, length, 8) < 0)
        return -ENOMEM;
    return length ? lf_buffer_append(out, data, length) : 0;
}

/* One native value of a fixed-size type, little-endian. */
static int append_number(lf_buffer *out, lf_gguf_type type, const void *value)
{
    unsigned size = (unsigned)fixed_size(type);
    uint64_t bits = type == LF_GGUF_BOOL ? *(const bool *)value : load_native(value, size);
    return append_le(out, bits, size);
}

/* The checks the reader makes of a key or tensor name. */
static int64_t check_written_name(const char *name, size_t max_length, const char *what,
                                  lf_diagnostic *diagnostic)
{
    size_t length = strlen(name);
    if (length == 0 || length > max_length)
        return lf_fail(diagnostic, -EINVAL, "%s '%.64s' is %zu bytes long (1 to %zu allowed)",
                       what, name, length, max_length);
    for (size_t i = 0; i < length; i++)
        if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] > '~')
            return lf_fail(diagnostic, -EINVAL,
                           "%s '%.64s' has byte 0x%02x: only printable ASCII without spaces "
                           "is allowed",
                           what, name, (unsigned char)name[i]);
    return 0;
}

static int64_t check_new_key(const lf_gguf_writer *writer, const char *key,
                             lf_diagnostic *diagnostic)
{
    int64_t status = check_written_name(key, LF_GGUF_MAX_KEY_LENGTH, "metadata key", diagnostic);
    if (status < 0)
        return status;
    if (lf_string_table_find(&writer->keys, key, strlen(key)) >= 0)
        return lf_fail(diagnostic, -EEXIST, "metadata key '%s' is already set", key);
    return 0;
}

static int append_values(lf_buffer *out, lf_gguf_type type, const void *values, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        int status;
        if (type == LF_GGUF_STRING) {
            const lf_gguf_string *string = &((const lf_gguf_string *)values)[i];
            status = append_string(out, string->data, string->length);
        } else {
            status = append_number(out, type, (const uint8_t *)values + i * fixed_size(type));
        }
        if (status < 0)
            return status;
    }
    return 0;
}

/* Serializes one entry, a scalar (type == element_type, count 1) or an
 * array, and registers its key only once all of it is written, so a failure
 * leaves the writer as it was. */
static int64_t add_entry(lf_gguf_writer *writer, const char *key, lf_gguf_type type,
                         lf_gguf_type element_type, const void *values, uint64_t count,
                         lf_diagnostic *diagnostic)
{
    lf_buffer *out = &writer->metadata;
    size_t rollback = out->length;
    size_t key_length = strlen(key);
    int status = append_string(out, key, key_length);
    if (status == 0)
        status = append_le(out, type, 4);
    if (status == 0 && type == LF_GGUF_ARRAY) {
        status = append_le(out, element_type, 4);
        if (status == 0)
            status = append_le(out, count, 8);
    }
    if (status == 0)
        status = append_values(out, element_type, values, count);
    if (status == 0 && lf_string_table_intern(&writer->keys, key, key_length) < 0)
        status = -ENOMEM;
    if (status < 0) {
        out->length = rollback;
        return lf_fail(diagnostic, -ENOMEM, "out of memory adding metadata key '%s'", key);
    }
    return 0;
}

int64_t lf_gguf_writer_set(lf_gguf_writer *writer, const char *key, lf_gguf_type type,
                           const void *value, lf_diagnostic *diagnostic)
{
    if (!is_value_type(type) || type == LF_GGUF_ARRAY)
        return lf_fail(diagnostic, -EINVAL, "metadata key '%s': %u is not a scalar value type",
                       key, (unsigned)type);
    int64_t status = check_new_key(writer, key, diagnostic);
    if (status < 0)
        return status;
    uint32_t alignment = 0;
    if (strcmp(key, "general.alignment") == 0) {
        if (type == LF_GGUF_UINT32)
            memcpy(&alignment, value, sizeof alignment);
        if (!is_valid_alignment(alignment))
            return lf_fail(diagnostic, -EINVAL,
                           "general.alignment must be a uint32 power of two up to %d",
                           LF_GGUF_MAX_ALIGNMENT);
    }
    if ((status = add_entry(writer, key, type, type, value, 1, diagnostic)) < 0)
        return status;
    if (alignment)
        writer->alignment = alignment;
    return 0;
}

int64_t lf_gguf_writer_set_array(lf_gguf_writer *writer, const char *key,
                                 lf_gguf_type element_type, const void *values, uint64_t count,
                                 lf_diagnostic *diagnostic)
{
    if (!is_value_type(element_type) || element_type == LF_GGUF_ARRAY)
        return lf_fail(diagnostic, -EINVAL,
                       "metadata key '%s': arrays of type %u are not supported", key,
                       (unsigned)element_type);
    int64_t status = check_new_key(writer, key, diagnostic);
    if (status < 0)
        return status;
    if (strcmp(key, "general.alignment") == 0)
        return lf_fail(diagnostic, -EINVAL, "general.alignment must be a uint32, not an array");
    return add_entry(writer, key, LF_GGUF_ARRAY, element_type, values, count, diagnostic);
}

int64_t lf_gguf_writer_set_u32(lf_gguf_writer *writer, const char *key, uint32_t value,
                               lf_diagnostic *diagnostic)
{
    return lf_gguf_writer_set(writer, key, LF_GGUF_UINT32, &value, diagnostic);
}

int64_t lf_gguf_writer_set_f32(lf_gguf_writer *writer, const char *key, float value,
                               lf_diagnostic *diagnostic)
{
    return lf_gguf_writer_set(writer, key, LF_GGUF_FLOAT32, &value, diagnostic);
}

int64_t lf_gguf_writer_set_string(lf_gguf_writer *writer, const char *key, const char *value,
                                  lf_diagnostic *diagnostic)
{
    lf_gguf_string string = {value, strlen(value)};
    return lf_gguf_writer_set(writer, key, LF_GGUF_STRING, &string, diagnostic);
}

int64_t lf_gguf_writer_add_tensor(lf_gguf_writer *writer, const char *name, lf_ggml_type type,
                                  uint32_t dim_count, const uint64_t *dims, const void *data,
                                  uint64_t size, lf_diagnostic *diagnostic)
{
    int64_t status = check_written_name(name, LF_GGUF_MAX_TENSOR_NAME_LENGTH, "tensor name",
                                        diagnostic);
    if (status < 0)
        return status;
    lf_diagnostic shape_problem = {0};
    int64_t expected = lf_ggml_tensor_size(type, dim_count, dims, &shape_problem);
    if (expected < 0)
        return lf_fail(diagnostic, -EINVAL, "tensor '%s': %s", name, shape_problem.message);
    if ((uint64_t)expected != size)
        return lf_fail(diagnostic, -EINVAL,
                       "tensor '%s' of type %s needs %" PRId64 " bytes, not %" PRIu64, name,
                       lf_ggml_type_name(type), expected, size);
    size_t length = strlen(name);
    if (lf_string_table_find(&writer->tensor_names, name, length) >= 0)
        return lf_fail(diagnostic, -EEXIST, "tensor '%s' is already added", name);
    if (writer->tensor_count == writer->tensor_capacity) {
        size_t capacity = writer->tensor_capacity ? writer->tensor_capacity * 2 : 16;
        written_tensor *tensors = realloc(writer->tensors, capacity * sizeof *tensors);
        if (!tensors)
            return lf_fail(diagnostic, -ENOMEM, "out of memory adding tensor '%s'", name);
        writer->tensors = tensors;
        writer->tensor_capacity = capacity;
    }
    if (size > SIZE_MAX)
        return lf_fail(diagnostic, -ENOMEM, "tensor '%s' does not fit in memory", name);
    uint64_t data_offset = writer->data.length;
    if (lf_buffer_append(&writer->data, data, (size_t)size) < 0)
        return lf_fail(diagnostic, -ENOMEM, "out of memory adding tensor '%s'", name);
    int64_t name_id = lf_string_table_intern(&writer->tensor_names, name, length);
    if (name_id < 0) {
        writer->data.length = data_offset;
        return lf_fail(diagnostic, -ENOMEM, "out of memory adding tensor '%s'", name);
    }
    written_tensor *tensor = &writer->tensors[writer->tensor_count++];
    *tensor = (written_tensor){.name_id = (uint32_t)name_id, .type = type,
                               .dim_count = dim_count, .data_offset = data_offset, .size = size};
    for (uint32_t i = 0; i < dim_count; i++)
        tensor->dims[i] = dims[i];
    return 0;
}

static uint64_t padding(uint64_t position, uint32_t alignment)
{
    return (alignment - position % alignment) % alignment;
}

static int append_zeros(lf_buffer *out, uint64_t count)
{
    static const uint8_t zeros[64];
    while (count > 0) {
        size_t piece = count < sizeof zeros ? (size_t)count : sizeof zeros;
        if (lf_buffer_append(out, zeros, piece) < 0)
            return -ENOMEM;
        count -= piece;
    }
    return 0;
}

int64_t lf_gguf_writer_finish(const lf_gguf_writer *writer, lf_buffer *out,
                              lf_diagnostic *diagnostic)
{
    size_t start = out->length;
    int status = lf_buffer_append(out, magic, sizeof magic);
    if (status == 0)
        status = append_le(out, LF_GGUF_VERSION, 4);
    if (status == 0)
        status = append_le(out, writer->tensor_count, 8);
    if (status == 0)
        status = append_le(out, writer->keys.count, 8);
    if (status == 0)
        status = lf_buffer_append(out, writer->metadata.data, writer->metadata.length);
    /* Tensor data offsets count from the start of the data section; every
     * tensor starts at a multiple of the alignment. */
    uint64_t data_offset = 0;
    for (size_t i = 0; i < writer->tensor_count && status == 0; i++) {
        const written_tensor *tensor = &writer->tensors[i];
        size_t name_length;
        const uint8_t *name = lf_string_table_key(&writer->tensor_names, tensor->name_id,
                                                  &name_length);
        status = append_string(out, (const char *)name, name_length);
        if (status == 0)
            status = append_le(out, tensor->dim_count, 4);
        for (uint32_t d = 0; d < tensor->dim_count && status == 0; d++)
            status = append_le(out, tensor->dims[d], 8);
        if (status == 0)
            status = append_le(out, tensor->type, 4);
        if (status == 0)
            status = append_le(out, data_offset, 8);
        data_offset += tensor->size + padding(tensor->size, writer->alignment);
    }
    if (status == 0)
        status = append_zeros(out, padding(out->length - start, writer->alignment));
    for (size_t i = 0; i < writer->tensor_count && status == 0; i++) {
        const written_tensor *tensor = &writer->tensors[i];
        status = lf_buffer_append(out, writer->data.data + tensor->data_offset,
                                  (size_t)tensor->size);
        if (status == 0)
            status = append_zeros(out, padding(tensor->size, writer->alignment));
    }
    if (status < 0) {
        out->length = start;
        return lf_fail(diagnostic, -ENOMEM, "out of memory writing a GGUF file");
    }
    return 0;
}

int64_t lf_gguf_writer_write_file(const lf_gguf_writer *writer, const char *path,
                                  lf_diagnostic *diagnostic)
{
    lf_buffer image = {0};
    int64_t status = lf_gguf_writer_finish(writer, &image, diagnostic);
    if (status == 0)
        status = lf_file_write_atomic(path, image.data, image.length, diagnostic);
    lf_buffer_free(&image);
    return status;
}
