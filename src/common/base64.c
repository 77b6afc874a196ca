#include "common/base64.h"

#include <errno.h>
#include <stdbool.h>

#include "common/error.h"

static const char alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int64_t lf_base64_encode(const uint8_t *data, size_t size, lf_buffer *out)
{
    if (size > SIZE_MAX / 4 * 3 - 2)
        return -ENOMEM;
    size_t length = (size + 2) / 3 * 4;
    int status = lf_buffer_reserve(out, length);
    if (status < 0)
        return status;
    char *text = (char *)out->data + out->length;
    size_t i = 0;
    for (; size - i >= 3; i += 3) {
        uint32_t group = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *text++ = alphabet[group >> 18];
        *text++ = alphabet[group >> 12 & 63];
        *text++ = alphabet[group >> 6 & 63];
        *text++ = alphabet[group & 63];
    }
    if (size - i > 0) {
        uint32_t group = (uint32_t)data[i] << 16;
        if (size - i == 2)
            group |= (uint32_t)data[i + 1] << 8;
        *text++ = alphabet[group >> 18];
        *text++ = alphabet[group >> 12 & 63];
        *text++ = size - i == 2 ? alphabet[group >> 6 & 63] : '=';
        *text++ = '=';
    }
    out->length += length;
    return (int64_t)length;
}

/* The 6-bit value of c, or -1 outside the alphabet ('=' included). */
static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int64_t lf_base64_decode(const char *text, size_t length, lf_buffer *out)
{
    if (length % 4 != 0)
        return -LF_EFORMAT;
    size_t padding = 0;
    if (length > 0 && text[length - 1] == '=')
        padding = text[length - 2] == '=' ? 2 : 1;
    size_t size = length / 4 * 3 - padding;
    int status = lf_buffer_reserve(out, size);
    if (status < 0)
        return status;
    uint8_t *bytes = out->data + out->length;
    size_t written = 0;
    for (size_t i = 0; i < length; i += 4) {
        /* '=' may only end the last group.  The bits of its last symbol that
         * fall past the last byte must be zero, or several texts would decode
         * to the same bytes. */
        bool last = i + 4 == length;
        size_t symbols = last ? 4 - padding : 4;
        uint32_t group = 0;
        for (size_t j = 0; j < 4; j++) {
            int value = j < symbols ? sextet(text[i + j]) : 0;
            if (value < 0)
                return -LF_EFORMAT;
            group = group << 6 | (uint32_t)value;
        }
        uint32_t unused_bits = padding == 2 ? 0xffff : padding == 1 ? 0xff : 0;
        if (last && (group & unused_bits))
            return -LF_EFORMAT;
        bytes[written++] = (uint8_t)(group >> 16);
        if (symbols > 2)
            bytes[written++] = (uint8_t)(group >> 8);
        if (symbols > 3)
            bytes[written++] = (uint8_t)group;
    }
    out->length += size;
    return (int64_t)size;
}
