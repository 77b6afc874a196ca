#include "fuse/json_values.h"

#include "common/base64.h"
#include "common/buffer.h"

json_t *lf_json_base64(const void *data, size_t size)
{
    lf_buffer text = {0};
    json_t *value = NULL;
    if (lf_base64_encode(data, size, &text) >= 0)
        value = json_stringn((const char *)text.data, text.length);
    lf_buffer_free(&text);
    return value;
}
