#include "common/buffer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lf_buffer_reserve(lf_buffer *buffer, size_t extra)
{
    if (extra > SIZE_MAX - buffer->length - 1)
        return -ENOMEM;
    size_t needed = buffer->length + extra + 1; /* +1 keeps room for lf_buffer_string's NUL */
    if (needed <= buffer->capacity)
        return 0;
    size_t capacity = buffer->capacity ? buffer->capacity : 64;
    while (capacity < needed)
        capacity = capacity > SIZE_MAX / 2 ? needed : capacity * 2;
    uint8_t *data = realloc(buffer->data, capacity);
    if (!data)
        return -ENOMEM;
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

int lf_buffer_append(lf_buffer *buffer, const void *data, size_t length)
{
    int status = lf_buffer_reserve(buffer, length);
    if (status < 0)
        return status;
    if (length)
        memcpy(buffer->data + buffer->length, data, length);
    buffer->length += length;
    return 0;
}

int lf_buffer_append_string(lf_buffer *buffer, const char *text)
{
    return lf_buffer_append(buffer, text, strlen(text));
}

int lf_buffer_printf(lf_buffer *buffer, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int length = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (length < 0)
        return -EINVAL;
    int status = lf_buffer_reserve(buffer, (size_t)length);
    if (status < 0)
        return status;
    va_start(args, format);
    vsnprintf((char *)buffer->data + buffer->length, (size_t)length + 1, format, args);
    va_end(args);
    buffer->length += (size_t)length;
    return 0;
}

const char *lf_buffer_string(lf_buffer *buffer)
{
    if (lf_buffer_reserve(buffer, 0) < 0)
        return NULL;
    buffer->data[buffer->length] = '\0';
    return (const char *)buffer->data;
}

void lf_buffer_free(lf_buffer *buffer)
{
    free(buffer->data);
    *buffer = (lf_buffer){0};
}
