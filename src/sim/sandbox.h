/* The simulator's real side: a scratch directory that holds the current
 * state, operated on with system calls either directly or through a
 * logging loopback mount of it (fuse/loopback.h).
 *
 * Kernel timestamps and virtual time: the tree runs on a virtual clock, so
 * after each operation every mtime the kernel set (any at or after the
 * moment the sandbox was opened) is rewritten to the operation's virtual
 * second before the directory is compared with the tree, the technique of
 * tests/unit/test_differential.c.  Virtual times must therefore stay
 * before that moment.
 *
 * While open, the process runs with umask 0, so created nodes get exactly
 * the modes asked for, as in the tree. */
#ifndef LLMFUSE_SIM_SANDBOX_H
#define LLMFUSE_SIM_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "fs/tree.h"

typedef struct lf_sim_sandbox lf_sim_sandbox;

/* Makes the scratch directory under $TMPDIR (or /tmp), which must be on
 * ext4 (-ENOTSUP otherwise: the tree follows ext4's behaviour). */
int64_t lf_sim_sandbox_open(lf_sim_sandbox **sandbox, lf_diagnostic *diag);
/* Mounts the loopback of the directory on a second one (root only):
 * operations then run through it. */
int64_t lf_sim_sandbox_mount(lf_sim_sandbox *sandbox, lf_diagnostic *diag);
/* Unmounts and removes everything. */
void lf_sim_sandbox_close(lf_sim_sandbox *sandbox);

/* Where operations run: the mount point, or the directory itself. */
const char *lf_sim_sandbox_root(const lf_sim_sandbox *sandbox);
bool lf_sim_sandbox_is_mounted(const lf_sim_sandbox *sandbox);

/* Makes the directory hold exactly tree's state (names, types, content,
 * modes, owners, times), replacing what it held. */
int64_t lf_sim_sandbox_load(lf_sim_sandbox *sandbox, lf_tree *tree, lf_diagnostic *diag);

/* Rewrites the kernel's mtimes to `now` (see above) and scans the
 * directory into a new tree. -ERANGE if now is not before the opening. */
int64_t lf_sim_sandbox_scan(lf_sim_sandbox *sandbox, int64_t now, lf_tree **state,
                            lf_diagnostic *diag);

#endif
