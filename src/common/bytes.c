#include "common/bytes.h"

#include <string.h>

#include "common/error.h"

int lf_bytes_put_varint(lf_buffer *out, uint64_t value)
{
    uint8_t bytes[10];
    size_t length = 0;
    do {
        bytes[length] = (uint8_t)(value & 0x7F);
        value >>= 7;
        if (value)
            bytes[length] |= 0x80;
        length++;
    } while (value);
    return lf_buffer_append(out, bytes, length);
}

void lf_bytes_store_u32(uint8_t *bytes, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        bytes[i] = (uint8_t)(value >> (8 * i));
}

void lf_bytes_store_u64(uint8_t *bytes, uint64_t value)
{
    lf_bytes_store_u32(bytes, (uint32_t)value);
    lf_bytes_store_u32(bytes + 4, (uint32_t)(value >> 32));
}

uint32_t lf_bytes_load_u32(const uint8_t *bytes)
{
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
           (uint32_t)bytes[3] << 24;
}

uint64_t lf_bytes_load_u64(const uint8_t *bytes)
{
    return (uint64_t)lf_bytes_load_u32(bytes + 4) << 32 | lf_bytes_load_u32(bytes);
}

int lf_bytes_put_u32(lf_buffer *out, uint32_t value)
{
    uint8_t bytes[4];
    lf_bytes_store_u32(bytes, value);
    return lf_buffer_append(out, bytes, 4);
}

int lf_bytes_put_u64(lf_buffer *out, uint64_t value)
{
    uint8_t bytes[8];
    lf_bytes_store_u64(bytes, value);
    return lf_buffer_append(out, bytes, 8);
}

bool lf_bytes_get(lf_bytes_reader *in, void *out, size_t length)
{
    if (in->size - in->position < length)
        return false;
    memcpy(out, in->data + in->position, length);
    in->position += length;
    return true;
}

bool lf_bytes_get_u32(lf_bytes_reader *in, uint32_t *value)
{
    uint8_t bytes[4];
    if (!lf_bytes_get(in, bytes, 4))
        return false;
    *value = lf_bytes_load_u32(bytes);
    return true;
}

bool lf_bytes_get_u64(lf_bytes_reader *in, uint64_t *value)
{
    uint8_t bytes[8];
    if (!lf_bytes_get(in, bytes, 8))
        return false;
    *value = lf_bytes_load_u64(bytes);
    return true;
}

int64_t lf_bytes_get_varint(lf_bytes_reader *in, uint64_t *value)
{
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t byte;
        if (!lf_bytes_get(in, &byte, 1))
            return -LF_ETRUNCATED;
        if (shift == 63 && byte > 1)
            return -LF_EFORMAT;
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            if (byte == 0 && shift > 0)
                return -LF_EFORMAT;
            *value = result;
            return 0;
        }
    }
    return -LF_EFORMAT;
}
