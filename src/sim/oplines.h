/* The dataset's text for operations and their results, in the seed's
 * syntax (docs/FORMAT.md §4):
 *
 *   read('/usr14/log767.rs', size=4096, offset=0, fh=4)
 *   write('/a.txt', data=hello, data_length=5, offset=0, fh=4)
 *   mkdir('/bin12', mode=0o755)
 *
 * and the completions of reads: the bytes read, a readlink target, a
 * readdir list `[".","..","a"]`, a getattr object, or `ERROR: ENOENT`. */
#ifndef LLMFUSE_SIM_OPLINES_H
#define LLMFUSE_SIM_OPLINES_H

#include <stdint.h>

#include "common/buffer.h"
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

#endif
