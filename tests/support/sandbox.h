/* Scratch directories for tests that touch the real filesystem. */
#ifndef LLMFUSE_TEST_SANDBOX_H
#define LLMFUSE_TEST_SANDBOX_H

#include <stdbool.h>

/* A fresh directory under $TMPDIR (or /tmp); the caller frees the string. */
char *lf_test_sandbox_create(const char *label);
/* Removes path and everything below it (never follows symlinks). */
void lf_test_sandbox_remove(const char *path);
/* Empties a directory but keeps it. */
void lf_test_sandbox_clear(const char *path);

#endif
