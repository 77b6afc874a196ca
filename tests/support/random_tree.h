/* Random trees that stress the XML form: escaping-heavy and unicode names,
 * binary and empty bodies, bodies with \r, sparse files, deep nesting,
 * symlinks, unusual modes, owners and dates. */
#ifndef LLMFUSE_TEST_RANDOM_TREE_H
#define LLMFUSE_TEST_RANDOM_TREE_H

#include "common/random.h"
#include "fs/tree.h"

/* A tree of about node_budget nodes. Every value is XML-representable. */
lf_tree *lf_test_random_tree(lf_random *random, int node_budget);

#endif
