/* Writes a tree into a real directory: the inverse of fs/scan.h, for
 * `llmfuse unpack` and the simulator's sandbox.  Directories, files (holes
 * stay holes), symlinks and hard links are created with their owners,
 * modes and times, each node's attributes last so that creating its
 * children does not move its times. */
#ifndef LLMFUSE_FS_MATERIALIZE_H
#define LLMFUSE_FS_MATERIALIZE_H

#include "common/error.h"
#include "fs/tree.h"

/* Creates the root's entries in the (empty) directory open as
 * directory_fd, then gives that directory the root's attributes.  Pending
 * files are loaded (lf_tree_load_content) and, when drop_loaded, dropped
 * again once written, so memory holds one file at a time.  Stops at the
 * first failure, naming the path in the diagnostic. */
int64_t lf_materialize(lf_tree *tree, int directory_fd, bool drop_loaded,
                       lf_diagnostic *diagnostic);

#endif
