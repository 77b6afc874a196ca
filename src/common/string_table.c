#include "common/string_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

enum { INITIAL_SLOTS = 64, MAX_KEYS = 1u << 31 };

static uint64_t hash_key(const void *key, size_t length)
{
    return XXH3_64bits(key, length);
}

static uint32_t tag_of(uint64_t hash)
{
    return (uint32_t)(hash >> 32);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t probe(const lf_string_table *table, const void *key, size_t length, uint64_t hash)
{
    uint32_t tag = tag_of(hash);
    for (size_t slot = hash & table->slot_mask;; slot = (slot + 1) & table->slot_mask) {
        uint32_t occupant = table->slots[slot];
        if (occupant == 0)
            return slot;
        const lf_string_table_entry *entry = &table->entries[occupant - 1];
        if (entry->hash_tag == tag && entry->length == length &&
            memcmp(table->keys.data + entry->offset, key, length) == 0)
            return slot;
    }
}

/* Doubles the slot array (kept at most half full, so probes stay short). */
static int grow_slots(lf_string_table *table)
{
    size_t slot_count = table->slots ? (table->slot_mask + 1) * 2 : INITIAL_SLOTS;
    uint32_t *slots = calloc(slot_count, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    size_t mask = slot_count - 1;
    for (size_t id = 0; id < table->count; id++) {
        const lf_string_table_entry *entry = &table->entries[id];
        uint64_t hash = hash_key(table->keys.data + entry->offset, entry->length);
        size_t slot = hash & mask;
        while (slots[slot] != 0)
            slot = (slot + 1) & mask;
        slots[slot] = (uint32_t)id + 1;
    }
    free(table->slots);
    table->slots = slots;
    table->slot_mask = mask;
    return 0;
}

int64_t lf_string_table_intern(lf_string_table *table, const void *key, size_t length)
{
    if (length > UINT32_MAX)
        return -E2BIG;
    if (!table->slots && grow_slots(table) < 0)
        return -ENOMEM;
    uint64_t hash = hash_key(key, length);
    size_t slot = probe(table, key, length, hash);
    if (table->slots[slot] != 0)
        return table->slots[slot] - 1;
    if (table->count >= MAX_KEYS)
        return -E2BIG;
    if (table->count == table->entry_capacity) {
        size_t capacity = table->entry_capacity ? table->entry_capacity * 2 : INITIAL_SLOTS / 2;
        lf_string_table_entry *entries = realloc(table->entries, capacity * sizeof *entries);
        if (!entries)
            return -ENOMEM;
        table->entries = entries;
        table->entry_capacity = capacity;
    }
    uint64_t offset = table->keys.length;
    if (lf_buffer_append(&table->keys, key, length) < 0)
        return -ENOMEM;
    int64_t id = (int64_t)table->count;
    table->entries[id] = (lf_string_table_entry){
        .offset = offset, .length = (uint32_t)length, .hash_tag = tag_of(hash)};
    table->slots[slot] = (uint32_t)id + 1;
    table->count++;
    if (table->count * 2 > table->slot_mask + 1 && grow_slots(table) < 0) {
        /* Keep the table consistent: undo the insertion rather than leave it
         * over-full. */
        table->count--;
        table->slots[slot] = 0;
        table->keys.length = offset;
        return -ENOMEM;
    }
    return id;
}

int64_t lf_string_table_find(const lf_string_table *table, const void *key, size_t length)
{
    if (!table->slots || length > UINT32_MAX)
        return -ENOENT;
    uint32_t occupant = table->slots[probe(table, key, length, hash_key(key, length))];
    return occupant ? (int64_t)occupant - 1 : -ENOENT;
}

const uint8_t *lf_string_table_key(const lf_string_table *table, uint32_t id, size_t *length)
{
    const lf_string_table_entry *entry = &table->entries[id];
    *length = entry->length;
    return table->keys.data + entry->offset;
}

void lf_string_table_clear(lf_string_table *table)
{
    if (table->slots)
        memset(table->slots, 0, (table->slot_mask + 1) * sizeof *table->slots);
    table->count = 0;
    table->keys.length = 0;
}

void lf_string_table_free(lf_string_table *table)
{
    free(table->slots);
    free(table->entries);
    lf_buffer_free(&table->keys);
    *table = (lf_string_table){0};
}
