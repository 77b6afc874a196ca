/* A growable byte buffer: the one way the project builds output in memory. */
#ifndef LLMFUSE_COMMON_BUFFER_H
#define LLMFUSE_COMMON_BUFFER_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_buffer {
    uint8_t *data;
    size_t length;
    size_t capacity;
} lf_buffer;

/* All appenders return 0 or -ENOMEM; on failure the buffer is unchanged. */
int lf_buffer_reserve(lf_buffer *buffer, size_t extra);
int lf_buffer_append(lf_buffer *buffer, const void *data, size_t length);
int lf_buffer_append_string(lf_buffer *buffer, const char *text);
int lf_buffer_printf(lf_buffer *buffer, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Returns data as a NUL-terminated string (the NUL is not counted in length). */
const char *lf_buffer_string(lf_buffer *buffer);
void lf_buffer_free(lf_buffer *buffer);

#endif
