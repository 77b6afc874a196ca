#include "sim/dataset.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/json_values.h"

int64_t lf_sim_dataset_line(const lf_sim_example *example, lf_buffer *out, lf_diagnostic *diag)
{
    json_t *prompt = json_stringn(example->prompt, example->prompt_length);
    if (!prompt)
        return lf_fail(diag, -LF_EUNREPRESENTABLE, "a prompt is not UTF-8 text");
    json_t *line = json_object();
    json_object_set_new(line, "prompt", prompt);
    /* jansson refuses invalid UTF-8, what a JSON string cannot hold; NUL it
     * could hold as \u0000, but many readers refuse that (jansson's among
     * them), so it goes base64 too. */
    const char *bytes = example->completion_length ? (const char *)example->completion : "";
    bool has_nul = memchr(bytes, 0, example->completion_length) != NULL;
    json_t *completion = has_nul ? NULL : json_stringn(bytes, example->completion_length);
    bool base64 = completion == NULL;
    if (base64)
        completion = lf_json_base64((const uint8_t *)bytes, example->completion_length);
    json_object_set_new(line, "completion", completion);
    if (base64)
        json_object_set_new(line, "completion_encoding", json_string("base64"));
    lf_sim_op op = example->operation->op;
    json_object_set_new(line, "op", json_string(lf_sim_op_name(op)));
    json_object_set_new(line, "kind", json_string(lf_sim_op_is_read(op) ? "R" : "W"));
    json_object_set_new(line, "status",
                        json_string(example->status < 0 ? lf_error_name(example->status) : "OK"));
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    int64_t status = text ? lf_buffer_printf(out, "%s\n", text) : -ENOMEM;
    free(text);
    return status < 0 ? lf_fail(diag, status, "out of memory") : 0;
}
