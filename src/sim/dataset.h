/* The training dataset's lines (docs/FORMAT.md §4): one JSON object per
 * example, with the prompt, the completion, the operation's name, its kind
 * ("R" or "W") and its result ("OK" or the errno name). */
#ifndef LLMFUSE_SIM_DATASET_H
#define LLMFUSE_SIM_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "sim/operation.h"

typedef struct lf_sim_example {
    const lf_sim_operation *operation;
    const char *prompt; /* "<R>\n" or "<W>\n", the op line, "\n---\n", the state's XML */
    size_t prompt_length;
    const uint8_t *completion;
    size_t completion_length;
    int64_t status; /* the operation's result: >= 0, or -errno (an ERROR completion) */
} lf_sim_example;

/* Appends the example's line, newline included.  A completion that is not
 * valid UTF-8 or holds a NUL (a read of bytes that are not text) goes in
 * base64, with "completion_encoding": "base64".  -LF_EUNREPRESENTABLE (with diag) for a
 * prompt that is not UTF-8, which the simulator never makes. */
int64_t lf_sim_dataset_line(const lf_sim_example *example, lf_buffer *out, lf_diagnostic *diag);

#endif
