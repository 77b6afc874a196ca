/* The logging loopback, after libfuse's example/passthrough.c: each
 * operation makes the same call on the source directory and returns its
 * result as -errno, then logs it. */
#define FUSE_USE_VERSION 31

#include "fuse/loopback.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/buffer.h"
#include "fuse/json_values.h"

typedef struct loopback {
    int source_fd; /* every operation is relative to it */
    int log_fd;    /* O_APPEND */
    lf_loopback_data_mode data_mode;
    bool log_failure_reported;
} loopback;

static loopback *current_loopback(void) { return fuse_get_context()->private_data; }

/* FUSE paths are absolute in the mount; the *at() calls take them relative
 * to the source descriptor, "." being the root. */
static const char *relative_path(const char *path) { return path[1] != '\0' ? path + 1 : "."; }

static int status_of(int64_t result) { return result < 0 ? -errno : (int)result; }

/* ---------------------------------------------------------------- */
/* Log values                                                        */

/* RFC 3339 in UTC with nanoseconds: "2026-11-27T11:00:00.123456789Z". */
static json_t *time_value(const struct timespec *time)
{
    struct tm utc;
    time_t seconds = time->tv_sec;
    if (!gmtime_r(&seconds, &utc))
        return json_null();
    return json_sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", utc.tm_year + 1900,
                        utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                        (long)time->tv_nsec);
}

static json_t *time_request_value(const struct timespec *time)
{
    if (time->tv_nsec == UTIME_NOW)
        return json_string("now");
    if (time->tv_nsec == UTIME_OMIT)
        return json_string("omit");
    return time_value(time);
}

/* Octal with Python's prefix, as the dataset's operation lines write modes. */
static json_t *mode_value(mode_t mode) { return json_sprintf("0o%o", (unsigned)mode); }

/* -1 ("leave unchanged") rather than 4294967295. */
static json_t *id_value(uint32_t id)
{
    return json_integer(id == UINT32_MAX ? -1 : (json_int_t)id);
}

/* File names are bytes and JSON strings are UTF-8: a name that is not
 * valid UTF-8 is logged base64 under KEY_base64 instead of KEY. */
static void set_name(json_t *object, const char *key, const char *name)
{
    json_t *value = json_string(name);
    if (value) {
        json_object_set_new(object, key, value);
        return;
    }
    char base64_key[32];
    snprintf(base64_key, sizeof base64_key, "%s_base64", key);
    json_object_set_new(object, base64_key, lf_json_base64(name, strlen(name)));
}

static json_t *payload_value(const loopback *self, const void *data, size_t size)
{
    if (self->data_mode == LF_LOOPBACK_DATA_FULL)
        return lf_json_base64(data, size);
    return json_sprintf("%016" PRIx64, (uint64_t)XXH64(data, size, 0));
}

static json_t *file_handle(const struct fuse_file_info *file)
{
    return json_pack("{s:I}", "fh", (json_int_t)file->fh);
}

static int write_all(int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t written = write(fd, data, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        data += written;
        size -= (size_t)written;
    }
    return 0;
}

/* Appends one line describing an operation and returns its status, so that
 * every operation ends in `return log_operation(...)`.  The line is built
 * whole and goes out in one write(2) on the O_APPEND descriptor before the
 * reply does: it is in the file by the time the caller sees the result,
 * and killing the server loses nothing it answered.  parameters (may be
 * NULL) is consumed. */
static int log_operation(const char *name, const char *path, json_t *parameters, int status)
{
    loopback *self = current_loopback();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_t *line = json_object();
    json_object_set_new(line, "time", time_value(&now));
    json_object_set_new(line, "op", json_string(name));
    set_name(line, "path", path);
    if (parameters) {
        json_object_update(line, parameters);
        json_decref(parameters);
    }
    if (status >= 0)
        json_object_set_new(line, "result", json_integer(status));
    else
        json_object_set_new(line, "error", json_string(lf_error_name(status)));
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    /* json_dumps leaves room for a NUL, which becomes the line's end. */
    size_t length = text ? strlen(text) : 0;
    if (text)
        text[length] = '\n';
    if ((!text || write_all(self->log_fd, text, length + 1) != 0) && !self->log_failure_reported) {
        /* The operation is done on the source whatever happens to its log
         * line, so it keeps its result; the loss is said once. */
        fprintf(stderr, "llmfuse loopback: cannot append to the log: %s\n",
                text ? strerror(errno) : "out of memory");
        self->log_failure_reported = true;
    }
    free(text);
    return status;
}

/* ---------------------------------------------------------------- */
/* Operations                                                        */

static void *loopback_init(struct fuse_conn_info *connection, struct fuse_config *fuse_config)
{
    (void)connection;
    fuse_config->use_ino = 1;
    /* As passthrough.c: no caching of names or attributes in the kernel, so
     * every operation reaches the source (and the log), and changes made
     * to the source directly are seen at once. */
    fuse_config->entry_timeout = 0;
    fuse_config->attr_timeout = 0;
    fuse_config->negative_timeout = 0;
    return current_loopback(); /* keeps fuse_new's private data */
}

static int loopback_getattr(const char *path, struct stat *attributes, struct fuse_file_info *file)
{
    loopback *self = current_loopback();
    int status = status_of(file ? fstat((int)file->fh, attributes)
                                : fstatat(self->source_fd, relative_path(path), attributes,
                                          AT_SYMLINK_NOFOLLOW));
    return log_operation("getattr", path, file ? file_handle(file) : NULL, status);
}

static int loopback_access(const char *path, int mask)
{
    int status = status_of(faccessat(current_loopback()->source_fd, relative_path(path), mask, 0));
    return log_operation("access", path, json_pack("{s:i}", "mask", mask), status);
}

static int loopback_readlink(const char *path, char *buffer, size_t size)
{
    int status = status_of(readlinkat(current_loopback()->source_fd, relative_path(path), buffer,
                                      size - 1));
    json_t *parameters = json_object();
    if (status >= 0) {
        buffer[status] = '\0';
        set_name(parameters, "target", buffer);
    }
    return log_operation("readlink", path, parameters, status < 0 ? status : 0);
}

static int loopback_readdir(const char *path, void *buffer, fuse_fill_dir_t fill, off_t offset,
                            struct fuse_file_info *file, enum fuse_readdir_flags flags)
{
    (void)offset;
    (void)file;
    (void)flags;
    int fd = openat(current_loopback()->source_fd, relative_path(path),
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return log_operation("readdir", path, NULL, -errno);
    DIR *directory = fdopendir(fd);
    if (!directory) {
        int status = -errno;
        close(fd);
        return log_operation("readdir", path, NULL, status);
    }
    int entries = 0;
    struct dirent *entry;
    /* Offset 0 for every entry: libfuse then collects the whole listing and
     * hands it out in pieces itself (passthrough.c's way). */
    for (errno = 0; (entry = readdir(directory)); errno = 0) {
        struct stat attributes = {.st_ino = entry->d_ino, .st_mode = DTTOIF(entry->d_type)};
        if (fill(buffer, entry->d_name, &attributes, 0, 0))
            break; /* libfuse's buffer is full */
        entries++;
    }
    int status = entry ? 0 : -errno; /* readdir's end or failure */
    closedir(directory);
    return log_operation("readdir", path, json_pack("{s:i}", "entries", entries), status);
}

static int loopback_mknod(const char *path, mode_t mode, dev_t device)
{
    int status =
        status_of(mknodat(current_loopback()->source_fd, relative_path(path), mode, device));
    return log_operation(
        "mknod", path, json_pack("{s:o,s:I}", "mode", mode_value(mode), "rdev", (json_int_t)device),
        status);
}

static int loopback_mkdir(const char *path, mode_t mode)
{
    int status = status_of(mkdirat(current_loopback()->source_fd, relative_path(path), mode));
    return log_operation("mkdir", path, json_pack("{s:o}", "mode", mode_value(mode)), status);
}

static int loopback_unlink(const char *path)
{
    int status = status_of(unlinkat(current_loopback()->source_fd, relative_path(path), 0));
    return log_operation("unlink", path, NULL, status);
}

static int loopback_rmdir(const char *path)
{
    int status = status_of(unlinkat(current_loopback()->source_fd, relative_path(path),
                                    AT_REMOVEDIR));
    return log_operation("rmdir", path, NULL, status);
}

/* libfuse's naming: `to` is the new link, `from` what it points to. */
static int loopback_symlink(const char *from, const char *to)
{
    int status = status_of(symlinkat(from, current_loopback()->source_fd, relative_path(to)));
    json_t *parameters = json_object();
    set_name(parameters, "target", from);
    return log_operation("symlink", to, parameters, status);
}

static int loopback_rename(const char *from, const char *to, unsigned int flags)
{
    int source_fd = current_loopback()->source_fd;
    int status = status_of(renameat2(source_fd, relative_path(from), source_fd, relative_path(to),
                                     flags));
    json_t *parameters = json_object();
    set_name(parameters, "new_path", to);
    json_object_set_new(parameters, "flags", json_integer(flags));
    return log_operation("rename", from, parameters, status);
}

static int loopback_link(const char *from, const char *to)
{
    int source_fd = current_loopback()->source_fd;
    int status = status_of(linkat(source_fd, relative_path(from), source_fd, relative_path(to), 0));
    json_t *parameters = json_object();
    set_name(parameters, "new_path", to);
    return log_operation("link", from, parameters, status);
}

static int loopback_chmod(const char *path, mode_t mode, struct fuse_file_info *file)
{
    (void)file;
    int status = status_of(fchmodat(current_loopback()->source_fd, relative_path(path), mode, 0));
    return log_operation("chmod", path, json_pack("{s:o}", "mode", mode_value(mode)), status);
}

static int loopback_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *file)
{
    (void)file;
    int status = status_of(fchownat(current_loopback()->source_fd, relative_path(path), uid, gid,
                                    AT_SYMLINK_NOFOLLOW));
    return log_operation(
        "chown", path, json_pack("{s:o,s:o}", "uid", id_value(uid), "gid", id_value(gid)), status);
}

/* truncate(2) has no *at() form; the kernel sends this only for regular
 * files, which root can always open for writing, so open + ftruncate is the
 * same call.  O_NONBLOCK keeps a FIFO swapped in meanwhile from hanging. */
static int truncate_at(int directory_fd, const char *path, off_t length)
{
    int fd = openat(directory_fd, path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int result = ftruncate(fd, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

static int loopback_truncate(const char *path, off_t length, struct fuse_file_info *file)
{
    int status = status_of(file ? ftruncate((int)file->fh, length)
                                : truncate_at(current_loopback()->source_fd, relative_path(path),
                                              length));
    json_t *parameters = file ? file_handle(file) : json_object();
    json_object_set_new(parameters, "length", json_integer((json_int_t)length));
    return log_operation("truncate", path, parameters, status);
}

static int loopback_utimens(const char *path, const struct timespec times[2],
                            struct fuse_file_info *file)
{
    (void)file;
    int status = status_of(utimensat(current_loopback()->source_fd, relative_path(path), times,
                                     AT_SYMLINK_NOFOLLOW));
    return log_operation("utimens", path,
                         json_pack("{s:o,s:o}", "atime", time_request_value(&times[0]), "mtime",
                                   time_request_value(&times[1])),
                         status);
}

static int loopback_open(const char *path, struct fuse_file_info *file)
{
    int fd = openat(current_loopback()->source_fd, relative_path(path), file->flags);
    int status = status_of(fd);
    json_t *parameters = json_pack("{s:i}", "flags", file->flags);
    if (fd >= 0) {
        file->fh = (uint64_t)fd;
        json_object_set_new(parameters, "fh", json_integer(fd));
    }
    return log_operation("open", path, parameters, status < 0 ? status : 0);
}

static int loopback_create(const char *path, mode_t mode, struct fuse_file_info *file)
{
    int fd = openat(current_loopback()->source_fd, relative_path(path), file->flags, mode);
    int status = status_of(fd);
    json_t *parameters = json_pack("{s:o,s:i}", "mode", mode_value(mode), "flags", file->flags);
    if (fd >= 0) {
        file->fh = (uint64_t)fd;
        json_object_set_new(parameters, "fh", json_integer(fd));
    }
    return log_operation("create", path, parameters, status < 0 ? status : 0);
}

static int loopback_read(const char *path, char *buffer, size_t size, off_t offset,
                         struct fuse_file_info *file)
{
    int status = status_of(pread((int)file->fh, buffer, size, offset));
    return log_operation("read", path,
                         json_pack("{s:I,s:I,s:I}", "size", (json_int_t)size, "offset",
                                   (json_int_t)offset, "fh", (json_int_t)file->fh),
                         status);
}

static int loopback_write(const char *path, const char *data, size_t size, off_t offset,
                          struct fuse_file_info *file)
{
    loopback *self = current_loopback();
    int status = status_of(pwrite((int)file->fh, data, size, offset));
    json_t *parameters = json_pack("{s:I,s:I,s:I}", "size", (json_int_t)size, "offset",
                                   (json_int_t)offset, "fh", (json_int_t)file->fh);
    json_object_set_new(parameters,
                        self->data_mode == LF_LOOPBACK_DATA_FULL ? "data" : "data_xxh64",
                        payload_value(self, data, size));
    return log_operation("write", path, parameters, status);
}

static int loopback_statfs(const char *path, struct statvfs *statistics)
{
    int status = status_of(fstatvfs(current_loopback()->source_fd, statistics));
    return log_operation("statfs", path, NULL, status);
}

/* Called at every close(2) of a descriptor, possibly several times per
 * open: closing a duplicate reports the source's close-time errors
 * without giving up the file (passthrough_fh.c's way). */
static int loopback_flush(const char *path, struct fuse_file_info *file)
{
    int status = status_of(close(dup((int)file->fh)));
    return log_operation("flush", path, file_handle(file), status);
}

static int loopback_release(const char *path, struct fuse_file_info *file)
{
    int status = status_of(close((int)file->fh));
    return log_operation("release", path, file_handle(file), status);
}

static int loopback_fsync(const char *path, int datasync, struct fuse_file_info *file)
{
    int fd = (int)file->fh;
    int status = status_of(datasync ? fdatasync(fd) : fsync(fd));
    json_t *parameters = file_handle(file);
    json_object_set_new(parameters, "datasync", json_integer(datasync));
    return log_operation("fsync", path, parameters, status);
}

static const struct fuse_operations operations = {
    .init = loopback_init,
    .getattr = loopback_getattr,
    .access = loopback_access,
    .readlink = loopback_readlink,
    .readdir = loopback_readdir,
    .mknod = loopback_mknod,
    .mkdir = loopback_mkdir,
    .unlink = loopback_unlink,
    .rmdir = loopback_rmdir,
    .symlink = loopback_symlink,
    .rename = loopback_rename,
    .link = loopback_link,
    .chmod = loopback_chmod,
    .chown = loopback_chown,
    .truncate = loopback_truncate,
    .utimens = loopback_utimens,
    .open = loopback_open,
    .create = loopback_create,
    .read = loopback_read,
    .write = loopback_write,
    .statfs = loopback_statfs,
    .flush = loopback_flush,
    .release = loopback_release,
    .fsync = loopback_fsync,
};

/* ---------------------------------------------------------------- */
/* Mounting                                                          */

static void close_loopback(loopback *self)
{
    if (self->source_fd >= 0)
        close(self->source_fd);
    if (self->log_fd >= 0)
        close(self->log_fd);
}

static int64_t open_loopback(const lf_loopback_config *config, loopback *self, lf_diagnostic *diag)
{
    *self = (loopback){.source_fd = -1, .log_fd = -1, .data_mode = config->data_mode};
    self->source_fd = open(config->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->source_fd < 0)
        return lf_fail(diag, -errno, "%s: %s", config->source, strerror(errno));
    self->log_fd = open(config->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (self->log_fd < 0) {
        int64_t status = lf_fail(diag, -errno, "%s: %s", config->log_path, strerror(errno));
        close_loopback(self);
        return status;
    }
    return 0;
}

static int64_t mount_loopback(const lf_loopback_config *config, loopback *self,
                              const char *mountpoint, struct fuse **out, lf_diagnostic *diag)
{
    char *arguments[] = {"llmfuse", "-o", "fsname=llmfuse-loopback,subtype=llmfuse-loopback",
                         "-o", (char *)config->mount_options, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(config->mount_options ? 5 : 3, arguments);
    /* libfuse explains a refused option on stderr itself. */
    struct fuse *fuse = fuse_new(&args, &operations, sizeof operations, self);
    fuse_opt_free_args(&args);
    if (!fuse)
        return lf_fail(diag, -EINVAL, "libfuse refused the mount options");
    if (fuse_mount(fuse, mountpoint) != 0) {
        fuse_destroy(fuse);
        return lf_fail(diag, -EIO, "cannot mount on %s", mountpoint);
    }
    *out = fuse;
    return 0;
}

int64_t lf_loopback_serve(const lf_loopback_config *config, const char *mountpoint,
                          bool foreground, lf_diagnostic *diag)
{
    loopback self;
    int64_t status = open_loopback(config, &self, diag);
    if (status < 0)
        return status;
    umask(0); /* after creating the log: see loopback.h */
    struct fuse *fuse;
    status = mount_loopback(config, &self, mountpoint, &fuse, diag);
    if (status < 0) {
        close_loopback(&self);
        return status;
    }
    struct fuse_session *session = fuse_get_session(fuse);
    if (fuse_daemonize(foreground) != 0)
        status = lf_fail(diag, -EIO, "cannot daemonise");
    else if (fuse_set_signal_handlers(session) != 0)
        status = lf_fail(diag, -EIO, "cannot install signal handlers");
    if (status == 0) {
        /* Ends with 0 when unmounted, the signal's number when signalled. */
        int loop_status = fuse_loop(fuse);
        fuse_remove_signal_handlers(session);
        if (loop_status < 0)
            status = lf_fail(diag, loop_status, "serving %s failed: %s", mountpoint,
                             strerror(-loop_status));
    }
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    close_loopback(&self);
    return status;
}

struct lf_loopback_mount {
    loopback self;
    struct fuse *fuse;
    char *mountpoint;
    pthread_t thread;
};

static void *serve_mount(void *argument)
{
    lf_loopback_mount *mount = argument;
    fuse_loop(mount->fuse);
    return NULL;
}

int64_t lf_loopback_mount_start(const lf_loopback_config *config, const char *mountpoint,
                                lf_loopback_mount **out, lf_diagnostic *diag)
{
    lf_loopback_mount *mount = calloc(1, sizeof *mount);
    if (!mount || !(mount->mountpoint = strdup(mountpoint))) {
        free(mount);
        return lf_fail(diag, -ENOMEM, "out of memory");
    }
    int64_t status = open_loopback(config, &mount->self, diag);
    if (status == 0) {
        status = mount_loopback(config, &mount->self, mountpoint, &mount->fuse, diag);
        if (status < 0)
            close_loopback(&mount->self);
    }
    if (status == 0 && (status = -pthread_create(&mount->thread, NULL, serve_mount, mount)) < 0) {
        lf_fail(diag, status, "cannot start the serving thread: %s", strerror((int)-status));
        fuse_unmount(mount->fuse);
        fuse_destroy(mount->fuse);
        close_loopback(&mount->self);
    }
    if (status < 0) {
        free(mount->mountpoint);
        free(mount);
        return status;
    }
    *out = mount;
    return 0;
}

void lf_loopback_mount_stop(lf_loopback_mount *mount)
{
    /* Detaching the mount aborts the connection: the serving thread's read
     * of /dev/fuse fails with ENODEV, which ends fuse_loop normally, and
     * fuse_unmount then finds nothing left to do but close the device. */
    umount2(mount->mountpoint, MNT_DETACH);
    pthread_join(mount->thread, NULL);
    fuse_unmount(mount->fuse);
    fuse_destroy(mount->fuse);
    close_loopback(&mount->self);
    free(mount->mountpoint);
    free(mount);
}
