/* The project's one error convention, modelled on zstd's ZSTD_isError.
 *
 * Every fallible function returns an int64_t status: >= 0 is success (often a
 * byte or entry count), < 0 is an error code.  System errors are -errno, so
 * FUSE operations can return the status as is; project errors are the
 * negated LF_E* codes below, placed far above any errno value.
 *
 * Where a caller needs to know more than the code (a parser reporting the
 * line and the offending attribute), the callee also writes a sentence into
 * an optional lf_diagnostic.  The status stays the one thing to check. */
#ifndef LLMFUSE_COMMON_ERROR_H
#define LLMFUSE_COMMON_ERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lf_error_code {
    LF_EFORMAT = 10000, /* input does not follow its format (XML, archive, image) */
    LF_ECHECKSUM,       /* stored checksum does not match the data */
    LF_ETRUNCATED,      /* input ends before its format says it should */
    LF_EVERSION,        /* format version this build does not read */
    LF_EMODEL,          /* data was made with another model */
    LF_EUNREPRESENTABLE /* a name or value the target format cannot carry */
};

static inline bool lf_is_error(int64_t status) { return status < 0; }

/* "ENOENT", "EFORMAT", ... for messages and for the dataset's error strings. */
const char *lf_error_name(int64_t status);
/* A human sentence: strerror for errno codes, our own text otherwise. */
const char *lf_error_string(int64_t status);

typedef struct lf_diagnostic {
    char message[512];
} lf_diagnostic;

/* Writes the message only when diagnostic is non-NULL and still empty, so
 * the first (innermost) explanation wins. Returns status unchanged so a
 * caller can write `return lf_fail(diag, -LF_EFORMAT, "...", ...)`. */
int64_t lf_fail(lf_diagnostic *diagnostic, int64_t status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
