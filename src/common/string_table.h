/* A hash table that gives byte strings dense ids (0, 1, 2, ... in order of
 * first insertion), so callers keep whatever they know about a string in
 * plain arrays indexed by its id.  The tokenizer uses it for chunks (counts
 * while training, cached token ids while encoding) and for token pairs
 * (8-byte keys).  Keys are copied into the table; ids never change until
 * the table is cleared. */
#ifndef LLMFUSE_COMMON_STRING_TABLE_H
#define LLMFUSE_COMMON_STRING_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"

typedef struct lf_string_table_entry {
    uint64_t offset; /* of the key's bytes in `keys` */
    uint32_t length;
    uint32_t hash_tag; /* high bits of the hash: most mismatches never reach memcmp */
} lf_string_table_entry;

typedef struct lf_string_table {
    uint32_t *slots; /* 0 = empty, otherwise id + 1; linear probing */
    size_t slot_mask;
    lf_string_table_entry *entries;
    size_t count, entry_capacity;
    lf_buffer keys;
} lf_string_table;

/* The id of key, inserting it when new (the new id is then the old count).
 * Returns the id, or -ENOMEM (the table is unchanged), or -E2BIG for a key
 * longer than 4 GiB or a table of 2^31 keys. */
int64_t lf_string_table_intern(lf_string_table *table, const void *key, size_t length);
/* The id of key, or -ENOENT. */
int64_t lf_string_table_find(const lf_string_table *table, const void *key, size_t length);
/* The bytes of id (< count), valid until the next insertion or clear. */
const uint8_t *lf_string_table_key(const lf_string_table *table, uint32_t id, size_t *length);
/* Forgets every key but keeps the memory for reuse. */
void lf_string_table_clear(lf_string_table *table);
void lf_string_table_free(lf_string_table *table);

#endif
