/* The simulator's starting trees: nested directories, files whose bodies
 * suit their names (sim/content.h), symlinks, and the modes, owners and
 * times of a lived-in Debian system.  The same attribute vocabulary serves
 * the operations that set attributes. */
#ifndef LLMFUSE_SIM_START_TREE_H
#define LLMFUSE_SIM_START_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/random.h"
#include "fs/tree.h"
#include "sim/operation.h"

/* 2025-01-01T00:00:00 UTC, the seed's time: the root's mtime; every other
 * starting node is as old or older. */
#define LF_SIM_EPOCH INT64_C(1735689600)

/* A tree whose XML is at most about xml_budget bytes (the root alone is
 * more than 100). */
int64_t lf_sim_start_tree_build(lf_random *random, size_t xml_budget, lf_tree **tree,
                                lf_diagnostic *diag);

typedef struct lf_sim_owner {
    uint32_t uid, gid;
} lf_sim_owner;

/* One of the users a Debian system has (root, daemon, bin, sys, nobody,
 * www-data), mostly root, usually with its own group. */
lf_sim_owner lf_sim_start_tree_owner(lf_random *random);
/* Permission bits usual for the type (and, for files, the name). */
uint32_t lf_sim_start_tree_permissions(lf_random *random, lf_node_type type, const char *name);
/* A symlink target for a link in `directory`: the relative path of a node
 * below it, or now and then a name that does not exist.  Targets
 * never contain ".." nor start with '/', so no path through a link can
 * leave the tree (or the sandbox). */
void lf_sim_start_tree_symlink_target(lf_random *random, const lf_node *directory,
                                      char target[LF_SIM_PATH_MAX]);

#endif
