/* The dataset's text for operations and their results, in the seed's
 * syntax (docs/FORMAT.md §4):
 *
 *   read('/usr14/log767.rs', size=4096, offset=0, fh=4)
 *   write('/a.txt', data=hello, data_length=5, offset=0, end=5, fh=4, now='2025-01-01T00:00:03')
 *   mkdir('/bin12', mode=0o755, now='2025-01-01T00:00:01')
 *
 * and the completions of reads: the bytes read, a readlink target, a
 * readdir list `[".","..","a"]`, a getattr object, or `ERROR: ENOENT`. */
#ifndef LLMFUSE_SIM_OPLINES_H
#define LLMFUSE_SIM_OPLINES_H

#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "fs/tree.h"
#include "sim/operation.h"

/* Appends the operation line. Paths and targets are quoted as Python's
 * repr() quotes them, which for the simulator's names (no quote, backslash
 * or control character) is '...'; write data goes in raw, as in the seed. */
int64_t lf_sim_opline_format(const lf_sim_operation *operation, lf_buffer *out);

/* Appends the completion for a read-kind operation that succeeded.
 * -LF_EUNREPRESENTABLE for a name JSON cannot carry (not UTF-8). */
int64_t lf_sim_completion_read(const lf_sim_operation *operation, const lf_sim_outcome *outcome,
                               lf_buffer *out);

/* Appends "ERROR: " and the errno name of status ("ERROR: ENOENT"). */
int64_t lf_sim_completion_error(int64_t status, lf_buffer *out);

/* The dataset's virtual time for the next operation on a tree: one second
 * after the newest mtime in it (docs/FORMAT.md §4.4). */
int64_t lf_sim_virtual_now(const lf_tree *tree);

/* Sets tree's clock to *now (seconds), the clock lf_sim_virtual_now's
 * value is used with. */
void lf_sim_use_virtual_clock(lf_tree *tree, const int64_t *now);

/* The exact answer to a prompt: runs the operation on a copy of the state
 * (canonical XML) at operation->now and appends the completion the
 * dataset would hold (an error, a read's result, or the new state).  The
 * ground truth that tests and the engine's --verify compare the model
 * with.  *result gets the operation's status; -LF_EFORMAT when the state
 * does not parse. */
int64_t lf_sim_exact_completion(const uint8_t *state, size_t state_size,
                                const lf_sim_operation *operation, lf_buffer *completion,
                                int64_t *result, lf_diagnostic *diagnostic);

/* Whether a new state (tree) holds, at a write's or truncate's path, the
 * bytes the operation leaves there when run on state (canonical XML):
 * the engine checks the model's answers by it, as a checksum, since a
 * filesystem may fail but must never hand back bytes nobody wrote.  1
 * yes, also for other operations and for one that fails on state; 0 no;
 * -ENOMEM, or -LF_EFORMAT when state does not parse. */
int64_t lf_sim_holds_bytes_written(const uint8_t *state, size_t state_size,
                                   const lf_sim_operation *operation, lf_tree *tree);

#endif
