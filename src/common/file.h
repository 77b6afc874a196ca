/* Whole-file I/O shared by the command-line tools. */
#ifndef LLMFUSE_COMMON_FILE_H
#define LLMFUSE_COMMON_FILE_H

#include <stdio.h>

#include "common/buffer.h"
#include "common/error.h"

/* Appends all of `path` ("-" for stdin) to out. */
int64_t lf_file_read_all(const char *path, lf_buffer *out, lf_diagnostic *diagnostic);
/* Writes all bytes to stream; -EIO (with the diagnostic) on a short write. */
int64_t lf_file_write_all(FILE *stream, const void *data, size_t size, const char *name,
                          lf_diagnostic *diagnostic);

#endif
