#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

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

/* The temporary being written, for lf_file_remove_pending_temporary. */
static char *volatile pending_temporary;

void lf_file_remove_pending_temporary(void)
{
    char *path = pending_temporary;
    if (path)
        unlink(path);
}

/* Writes straight into an existing device or fifo (-o /dev/null), where a
 * rename would replace the node itself. */
static int64_t write_in_place(const char *path, const void *data, size_t size,
                              lf_diagnostic *diagnostic)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return lf_fail(diagnostic, -errno, "cannot open '%s': %s", path, strerror(errno));
    int64_t status = 0;
    const uint8_t *bytes = data;
    for (size_t written = 0; written < size;) {
        ssize_t result = write(fd, bytes + written, size - written);
        if (result < 0 && errno == EINTR)
            continue;
        if (result < 0) {
            status = lf_fail(diagnostic, -errno, "cannot write '%s': %s", path, strerror(errno));
            break;
        }
        written += (size_t)result;
    }
    if (close(fd) != 0 && status == 0)
        status = lf_fail(diagnostic, -errno, "cannot write '%s': %s", path, strerror(errno));
    return status;
}

static int64_t replace_file(const char *path, const void *data, size_t size,
                            const struct stat *like, lf_diagnostic *diagnostic);

int64_t lf_file_write_atomic_like(const char *path, const void *data, size_t size,
                                  const struct stat *like, lf_diagnostic *diagnostic)
{
    struct stat existing;
    if (stat(path, &existing) == 0 && !S_ISREG(existing.st_mode))
        return write_in_place(path, data, size, diagnostic);
    /* Through a symlink, replace the file it names and keep the link. */
    char *resolved = realpath(path, NULL);
    int64_t status = replace_file(resolved ? resolved : path, data, size, like, diagnostic);
    free(resolved);
    return status;
}

static int64_t replace_file(const char *path, const void *data, size_t size,
                            const struct stat *like, lf_diagnostic *diagnostic)
{
    /* mkstemp in the target's directory: unique, and rename stays atomic. */
    lf_buffer temporary = {0};
    const char *slash = strrchr(path, '/');
    int directory_length = slash ? (int)(slash - path + 1) : 0;
    if (lf_buffer_printf(&temporary, "%.*s.%s.tmp-XXXXXX", directory_length, path,
                         slash ? slash + 1 : path) < 0)
        return -ENOMEM;
    char *temporary_path = (char *)lf_buffer_string(&temporary);
    int fd = mkstemp(temporary_path);
    if (fd < 0) {
        int64_t status = lf_fail(diagnostic, -errno, "cannot create '%s': %s", temporary_path,
                                 strerror(errno));
        lf_buffer_free(&temporary);
        return status;
    }
    pending_temporary = temporary_path;
    int64_t status = 0;
    const uint8_t *bytes = data;
    size_t written = 0;
    while (written < size) {
        ssize_t result = write(fd, bytes + written, size - written);
        if (result < 0 && errno == EINTR)
            continue;
        if (result < 0) {
            status = lf_fail(diagnostic, -errno, "cannot write '%s': %s", path, strerror(errno));
            break;
        }
        written += (size_t)result;
    }
    /* mkstemp made it 0600: give it the original's mode (or the usual 0644
     * less the umask) and, when asked, the original's times. */
    mode_t mode = 0644;
    if (!like) {
        mode_t mask = umask(0);
        umask(mask);
        mode &= ~mask;
    }
    if (status == 0 && fchmod(fd, like ? like->st_mode & 07777 : mode) != 0)
        status = lf_fail(diagnostic, -errno, "cannot set the mode of '%s': %s", path, strerror(errno));
    if (status == 0 && like) {
        struct timespec times[2] = {like->st_atim, like->st_mtim};
        futimens(fd, times);
    }
    if (status == 0 && fsync(fd) != 0)
        status = lf_fail(diagnostic, -errno, "cannot write '%s': %s", path, strerror(errno));
    if (close(fd) != 0 && status == 0)
        status = lf_fail(diagnostic, -errno, "cannot write '%s': %s", path, strerror(errno));
    if (status == 0 && rename(temporary_path, path) != 0)
        status = lf_fail(diagnostic, -errno, "cannot create '%s': %s", path, strerror(errno));
    if (status == 0) {
        /* the rename itself is durable once the directory is synced */
        temporary_path[directory_length] = '\0';
        int directory = open(directory_length ? temporary_path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (directory >= 0) {
            fsync(directory);
            close(directory);
        }
    }
    if (status < 0)
        unlink(temporary_path);
    pending_temporary = NULL;
    lf_buffer_free(&temporary);
    return status;
}

int64_t lf_file_write_atomic(const char *path, const void *data, size_t size,
                             lf_diagnostic *diagnostic)
{
    return lf_file_write_atomic_like(path, data, size, NULL, diagnostic);
}
