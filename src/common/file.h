/* Whole-file I/O shared by the command-line tools. */
#ifndef LLMFUSE_COMMON_FILE_H
#define LLMFUSE_COMMON_FILE_H

#include <stdio.h>
#include <sys/stat.h>

#include "common/buffer.h"
#include "common/error.h"

/* Appends all of `path` ("-" for stdin) to out. */
int64_t lf_file_read_all(const char *path, lf_buffer *out, lf_diagnostic *diagnostic);
/* Writes all bytes to stream; -EIO (with the diagnostic) on a short write. */
int64_t lf_file_write_all(FILE *stream, const void *data, size_t size, const char *name,
                          lf_diagnostic *diagnostic);
/* Replaces `path` with data all at once: writes a temporary file beside it
 * (.NAME.tmp-XXXXXX), fsyncs it and renames it over path, so readers see
 * the old file or the whole new one, never a torn write. A symlink is
 * followed (the link stays); an existing device or fifo (/dev/null) is
 * written in place, never replaced. */
int64_t lf_file_write_atomic(const char *path, const void *data, size_t size,
                             lf_diagnostic *diagnostic);
/* The same, giving the new file the mode and times of `like` (the input a
 * compressor replaces), as gzip does. */
int64_t lf_file_write_atomic_like(const char *path, const void *data, size_t size,
                                  const struct stat *like, lf_diagnostic *diagnostic);
/* Unlinks the temporary a write in progress has open: for signal handlers,
 * so that an interrupted command leaves no partial file (async-signal-safe). */
void lf_file_remove_pending_temporary(void);

#endif
