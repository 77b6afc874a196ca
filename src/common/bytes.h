/* Little-endian integers and LEB128 varints, the integer encodings of our
 * binary formats (docs/FORMAT.md §2 and §7).  A varint is unsigned LEB128
 * in its one shortest form. */
#ifndef LLMFUSE_COMMON_BYTES_H
#define LLMFUSE_COMMON_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"

/* Appenders return 0 or -ENOMEM (the buffer unchanged). */
int lf_bytes_put_varint(lf_buffer *out, uint64_t value);
int lf_bytes_put_u32(lf_buffer *out, uint32_t value);
int lf_bytes_put_u64(lf_buffer *out, uint64_t value);

/* A cursor over bytes being parsed: getters return false when the bytes
 * end first. */
typedef struct lf_bytes_reader {
    const uint8_t *data;
    uint64_t size, position;
} lf_bytes_reader;

bool lf_bytes_get(lf_bytes_reader *in, void *out, size_t length);
bool lf_bytes_get_u32(lf_bytes_reader *in, uint32_t *value);
bool lf_bytes_get_u64(lf_bytes_reader *in, uint64_t *value);
/* 0, -LF_ETRUNCATED, or -LF_EFORMAT for an overlong or non-canonical
 * varint (every value has exactly one encoding, so no flip goes unnoticed). */
int64_t lf_bytes_get_varint(lf_bytes_reader *in, uint64_t *value);

uint32_t lf_bytes_load_u32(const uint8_t *bytes);
uint64_t lf_bytes_load_u64(const uint8_t *bytes);
void lf_bytes_store_u32(uint8_t *bytes, uint32_t value);
void lf_bytes_store_u64(uint8_t *bytes, uint64_t value);

#endif
