/* JSON values shared by the JSON-lines writers (the loopback's log and the
 * simulator's dataset). */
#ifndef LLMFUSE_FUSE_JSON_VALUES_H
#define LLMFUSE_FUSE_JSON_VALUES_H

#include <jansson.h>
#include <stddef.h>

/* A JSON string holding data in base64 (for bytes JSON text cannot carry);
 * NULL when out of memory. */
json_t *lf_json_base64(const void *data, size_t size);

#endif
