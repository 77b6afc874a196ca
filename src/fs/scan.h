/* Reads a real directory into a tree: what `llmfuse xml DIR` prints and what
 * mkfs packs.  Symlinks are never followed (lstat semantics); files with
 * several names become hard links of one node; holes in sparse files stay
 * holes. */
#ifndef LLMFUSE_FS_SCAN_H
#define LLMFUSE_FS_SCAN_H

#include "common/error.h"
#include "fs/tree.h"

/* Called for each entry the tree cannot hold (fifo, socket, device node):
 * it is skipped, never silently. `path` is relative to the scanned root. */
typedef void (*lf_scan_skip_fn)(void *context, const char *path, const char *what);

int64_t lf_scan_directory(const char *path, lf_scan_skip_fn on_skip, void *context,
                          lf_tree **tree, lf_diagnostic *diagnostic);

#endif
