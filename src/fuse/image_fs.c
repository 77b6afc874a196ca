/* The image filesystem: libfuse's high-level API over the in-memory tree of
 * an image, after libfuse's example/passthrough.c (every operation returns
 * -errno).  The tree does the POSIX work; this file adds the lock, lazy
 * loading with a memory bound, and commits. */
#include "fuse/image_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs/tree.h"
#include "fuse/serve.h"
#include "image/image.h"

typedef struct image_fs {
    const lf_image_fs_config *config;
    char *image_path; /* absolute: a daemon's working directory is / */
    pthread_mutex_t lock; /* guards everything below */
    lf_image *image;
    /* Codes the commits.  Each image lf_image_write opens borrows the model
     * it was written with, so that model must outlive every image of the
     * mount: the image opened at mount time owns its model, and it is
     * closed by the first commit. */
    lf_model *model;
    lf_tree *tree;
    bool dirty;            /* changes since the last commit */
    uint64_t loaded_bytes; /* clean contents decoded since the last drop */
    bool read_only;
    /* the periodic committer */
    pthread_t committer;
    pthread_cond_t wake;
    bool stopping, committer_running;
} image_fs;

static image_fs *current(void) { return fuse_get_context()->private_data; }

/* Messages of a daemon go to syslog, of a foreground mount to stderr. */
static void report(const image_fs *self, const char *format, const char *detail)
{
    if (self->config->foreground)
        fprintf(stderr, format, detail), fputc('\n', stderr);
    else
        syslog(LOG_ERR, format, detail);
}

/* Writes the tree to the image when it changed; with the lock held. */
static int commit_locked(image_fs *self)
{
    if (!self->dirty || self->read_only)
        return 0;
    lf_image_write_options options = {.model = self->model, .previous = self->image,
                                      .pack_size = self->config->pack_size};
    lf_image *written = NULL;
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_image_write(self->tree, self->image_path, &options, &written, NULL,
                                    &diagnostic);
    if (status < 0) {
        report(self, "llmfuse mount: commit failed: %s", diagnostic.message);
        return -EIO;
    }
    lf_image_close(self->image);
    self->image = written;
    self->dirty = false;
    return 0;
}

/* Decodes a file on first access; past the cache size, first drops the
 * other clean contents (they reload when read again). */
static int64_t load_content(void *context, lf_node *file, uint64_t key)
{
    image_fs *self = context;
    lf_node_info info;
    lf_node_get_info(file, &info);
    if (self->loaded_bytes + info.size > self->config->cache_bytes) {
        lf_image_drop_clean_contents(self->tree);
        self->loaded_bytes = 0;
    }
    int64_t status = lf_image_load_content(self->image, file, key);
    if (status == 0)
        self->loaded_bytes += info.size;
    else
        report(self, "llmfuse mount: cannot decode a file: stream damaged (%s)",
               lf_error_string(status));
    return status;
}

static void *commit_periodically(void *argument)
{
    image_fs *self = argument;
    pthread_mutex_lock(&self->lock);
    while (!self->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += self->config->commit_interval;
        while (!self->stopping &&
               pthread_cond_timedwait(&self->wake, &self->lock, &until) != ETIMEDOUT) {
        }
        if (!self->stopping)
            commit_locked(self);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* ---------------------------------------------------------------- */
/* Operations: each takes the lock around one tree call.             */

static image_fs *lock(void)
{
    image_fs *self = current();
    pthread_mutex_lock(&self->lock);
    return self;
}

/* Returns the tree's result: a byte count or -errno. */
static int unlock(image_fs *self, int64_t result)
{
    pthread_mutex_unlock(&self->lock);
    return (int)result;
}

/* A change is made with the caller's ids as the owner of what it creates,
 * and marks the tree dirty when it succeeds. */
static image_fs *lock_for_change(void)
{
    image_fs *self = lock();
    lf_tree_set_credentials(self->tree, fuse_get_context()->uid, fuse_get_context()->gid);
    return self;
}

static int unlock_after_change(image_fs *self, int64_t result)
{
    self->dirty = self->dirty || result >= 0;
    return unlock(self, result);
}

static int image_getattr(const char *path, struct stat *attributes, struct fuse_file_info *file)
{
    (void)file;
    image_fs *self = lock();
    int64_t result = lf_tree_getattr(self->tree, path, attributes);
    return unlock(self, result < 0 ? result : 0);
}

typedef struct listing {
    void *buffer;
    fuse_fill_dir_t fill;
} listing;

static int add_entry(void *context, const char *name, const struct stat *attributes)
{
    listing *list = context;
    return list->fill(list->buffer, name, attributes, 0, 0);
}

static int image_readdir(const char *path, void *buffer, fuse_fill_dir_t fill, off_t offset,
                         struct fuse_file_info *file, enum fuse_readdir_flags flags)
{
    (void)offset;
    (void)file;
    (void)flags;
    listing list = {buffer, fill};
    image_fs *self = lock();
    int64_t result = lf_tree_readdir(self->tree, path, add_entry, &list);
    return unlock(self, result < 0 ? result : 0);
}

static int image_open(const char *path, struct fuse_file_info *file)
{
    /* libfuse asks for atomic O_TRUNC when the kernel offers it, and then
     * the kernel sends no truncate of its own: open(O_TRUNC) is ours to do
     * (the kernel has checked write permission and a read-only mount). */
    bool truncating = (file->flags & O_TRUNC) != 0;
    struct stat attributes;
    image_fs *self = truncating ? lock_for_change() : lock();
    int64_t result = lf_tree_getattr(self->tree, path, &attributes);
    if (result >= 0 && S_ISDIR(attributes.st_mode))
        result = -EISDIR;
    if (result < 0 || !truncating)
        return unlock(self, result < 0 ? result : 0);
    return unlock_after_change(self, lf_tree_truncate(self->tree, path, 0));
}

static int image_read(const char *path, char *buffer, size_t size, off_t offset,
                      struct fuse_file_info *file)
{
    (void)file;
    image_fs *self = lock();
    return unlock(self, lf_tree_read(self->tree, path, buffer, size, (uint64_t)offset));
}

static int image_write(const char *path, const char *data, size_t size, off_t offset,
                       struct fuse_file_info *file)
{
    (void)file;
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_write(self->tree, path, data, size, (uint64_t)offset));
}

static int image_create(const char *path, mode_t mode, struct fuse_file_info *file)
{
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_create(self->tree, path, mode & 07777, (file->flags & O_EXCL) != 0));
}

static int image_mkdir(const char *path, mode_t mode)
{
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_mkdir(self->tree, path, mode & 07777));
}

static int image_unlink(const char *path)
{
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_unlink(self->tree, path));
}
static int image_rmdir(const char *path)
{
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_rmdir(self->tree, path));
}

static int image_rename(const char *from, const char *to, unsigned int flags)
{
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_rename(self->tree, from, to, flags));
}

static int image_chmod(const char *path, mode_t mode, struct fuse_file_info *file)
{
    (void)file;
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_chmod(self->tree, path, mode & 07777));
}

static int image_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *file)
{
    (void)file;
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_chown(self->tree, path, uid, gid));
}

static int image_truncate(const char *path, off_t length, struct fuse_file_info *file)
{
    (void)file;
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_truncate(self->tree, path, length));
}

static int image_symlink(const char *target, const char *path)
{
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_symlink(self->tree, target, path));
}

static int image_link(const char *existing, const char *path)
{
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_link(self->tree, existing, path));
}

static int image_readlink(const char *path, char *buffer, size_t size)
{
    if (size == 0)
        return -EINVAL;
    image_fs *self = lock();
    int64_t length = unlock(self, lf_tree_readlink(self->tree, path, buffer, size - 1));
    if (length < 0)
        return (int)length;
    buffer[(size_t)length < size - 1 ? (size_t)length : size - 1] = '\0';
    return 0;
}

static int image_utimens(const char *path, const struct timespec times[2],
                         struct fuse_file_info *file)
{
    (void)file;
    image_fs *self = lock_for_change();
    return unlock_after_change(self, lf_tree_utimens(self->tree, path, times));
}

static int image_statfs(const char *path, struct statvfs *out)
{
    (void)path;
    image_fs *self = lock();
    int64_t result = lf_tree_statfs(self->tree, out);
    return unlock(self, result < 0 ? result : 0);
}

static int image_fsync(const char *path, int datasync, struct fuse_file_info *file)
{
    (void)path;
    (void)datasync;
    (void)file;
    image_fs *self = lock();
    return unlock(self, commit_locked(self));
}

static void *image_init(struct fuse_conn_info *connection, struct fuse_config *config)
{
    (void)connection;
    /* The tree's inode numbers are stable: use them, so hard links show. */
    config->use_ino = 1;
    /* libfuse's high-level API gives each name its own kernel inode, so a
     * change through one name of a hard-linked file (link, unlink, write)
     * leaves the attributes the kernel cached for its other names stale:
     * their link count, size and times would be wrong for the timeout (1 s
     * by default; tar, for one, counts links to find hard links).  Every
     * stat asks the tree, which answers from memory. */
    config->attr_timeout = 0;
    return current();
}

static const struct fuse_operations operations = {
    .init = image_init,
    .getattr = image_getattr,
    .readdir = image_readdir,
    .open = image_open,
    .read = image_read,
    .write = image_write,
    .create = image_create,
    .mkdir = image_mkdir,
    .unlink = image_unlink,
    .rmdir = image_rmdir,
    .rename = image_rename,
    .chmod = image_chmod,
    .chown = image_chown,
    .truncate = image_truncate,
    .symlink = image_symlink,
    .link = image_link,
    .readlink = image_readlink,
    .utimens = image_utimens,
    .statfs = image_statfs,
    .fsync = image_fsync,
};

/* ---------------------------------------------------------------- */
/* Mounting                                                          */

static int64_t open_state(const lf_image_fs_config *config, image_fs *self, lf_diagnostic *diagnostic)
{
    *self = (image_fs){.config = config, .image_path = realpath(config->image_path, NULL)};
    if (!self->image_path)
        return lf_fail(diagnostic, -errno, "%s: %s", config->image_path, strerror(errno));
    int64_t status = lf_image_open(self->image_path, config->model_name, &self->image, diagnostic);
    /* the same model as the image's (lf_image_open has checked the name
     * against the image's fingerprint) */
    if (status == 0 && config->model_name)
        status = lf_model_open(config->model_name, &self->model, diagnostic);
    else if (status == 0)
        status = lf_model_open_by_fingerprint(lf_image_model(self->image)->fingerprint,
                                              &self->model);
    if (status == 0)
        status = lf_image_load_tree(self->image, &self->tree, diagnostic);
    if (status < 0) {
        lf_image_close(self->image);
        lf_model_free(self->model);
        free(self->image_path);
        return status;
    }
    lf_tree_set_content_loader(self->tree, load_content, self);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    return 0;
}

static void close_state(image_fs *self)
{
    lf_tree_free(self->tree);
    lf_image_close(self->image);
    lf_model_free(self->model);
    free(self->image_path);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
}

static bool has_option(const char *options, const char *name)
{
    size_t length = strlen(name);
    for (const char *at = options; at && *at; at = strchr(at, ',') ? strchr(at, ',') + 1 : "")
        if (strncmp(at, name, length) == 0 && (at[length] == ',' || at[length] == '\0'))
            return true;
    return false;
}

/* After daemonising: threads do not survive the fork. */
static void start_committer(void *private_data)
{
    image_fs *self = private_data;
    if (self->config->commit_interval > 0 && !self->read_only)
        self->committer_running =
            pthread_create(&self->committer, NULL, commit_periodically, self) == 0;
}

int64_t lf_image_fs_serve(const lf_image_fs_config *config, const char *mountpoint,
                          lf_diagnostic *diagnostic)
{
    image_fs self;
    int64_t status = open_state(config, &self, diagnostic);
    if (status < 0)
        return status;
    self.read_only = has_option(config->mount_options, "ro");
    lf_fuse_serve_options options = {.name = "llmfuse", .mount_options = config->mount_options,
                                     .foreground = config->foreground, .multithreaded = true,
                                     .started = start_committer};
    status = lf_fuse_serve(&operations, &self, mountpoint, &options, diagnostic);
    if (self.committer_running) {
        pthread_mutex_lock(&self.lock);
        self.stopping = true;
        pthread_cond_signal(&self.wake);
        pthread_mutex_unlock(&self.lock);
        pthread_join(self.committer, NULL);
    }
    pthread_mutex_lock(&self.lock);
    if (commit_locked(&self) < 0 && status == 0)
        status = lf_fail(diagnostic, -EIO, "the last commit of %s failed", config->image_path);
    pthread_mutex_unlock(&self.lock);
    close_state(&self);
    return status;
}
