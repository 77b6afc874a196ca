#include "common/file.h"

#include <errno.h>
#include <string.h>

int64_t lf_file_read_all(const char *path, lf_buffer *out, lf_diagnostic *diagnostic)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *stream = is_stdin ? stdin : fopen(path, "rb");
    if (!stream)
        return lf_fail(diagnostic, -errno, "cannot open '%s': %s", path, strerror(errno));
    int64_t status = 0;
    for (;;) {
        if ((status = lf_buffer_reserve(out, 1 << 16)) < 0)
            break;
        size_t got = fread(out->data + out->length, 1, out->capacity - out->length - 1, stream);
        out->length += got;
        if (got == 0) {
            if (ferror(stream))
                status = lf_fail(diagnostic, -EIO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
    }
    if (!is_stdin)
        fclose(stream);
    return status;
}

int64_t lf_file_write_all(FILE *stream, const void *data, size_t size, const char *name,
                          lf_diagnostic *diagnostic)
{
    if (fwrite(data, 1, size, stream) != size || fflush(stream) != 0)
        return lf_fail(diagnostic, -EIO, "cannot write '%s': %s", name, strerror(errno));
    return 0;
}
