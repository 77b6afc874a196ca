#include "sandbox.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *lf_test_sandbox_create(const char *label)
{
    const char *base = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/llmfuse-%s-XXXXXX", base && *base ? base : "/tmp", label) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static const char *kept_root;

static int remove_entry(const char *path, const struct stat *status, int type, struct FTW *where)
{
    (void)status;
    (void)type;
    (void)where;
    if (kept_root && strcmp(path, kept_root) == 0)
        return 0;
    if (remove(path) != 0)
        perror(path);
    return 0;
}

static void remove_below(const char *path, const char *keep)
{
    kept_root = keep;
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    kept_root = NULL;
}

void lf_test_sandbox_remove(const char *path) { remove_below(path, NULL); }

void lf_test_sandbox_clear(const char *path) { remove_below(path, path); }
