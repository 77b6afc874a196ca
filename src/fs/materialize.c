#include "fs/materialize.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buffer.h"

typedef struct materializer {
    lf_tree *tree;
    int root_fd;
    bool drop_loaded;
    /* hard links: the first path made for each multiply-linked inode */
    uint64_t *inodes;
    char **paths;
    size_t link_count, link_capacity;
    lf_diagnostic *diagnostic;
    /* The failure was named where it happened: the directories above it
     * must not replace that message with their own path. */
    bool reported;
} materializer;

static int64_t set_attributes(int directory_fd, const char *name, const lf_node_info *info)
{
    /* Owner before mode: chown clears the set-user-ID bit. */
    if (fchownat(directory_fd, name, info->uid, info->gid, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (info->type != LF_NODE_SYMLINK && fchmodat(directory_fd, name, info->permissions, 0) != 0)
        return -errno;
    struct timespec times[2] = {info->atime, info->mtime};
    return utimensat(directory_fd, name, times, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

enum { HOLE_BLOCK = 4096 }; /* the granularity at which zeros become holes */

static bool all_zero(const uint8_t *data, size_t length)
{
    return length == 0 || (data[0] == 0 && memcmp(data, data + 1, length - 1) == 0);
}

/* Writes an extent but leaves out its blocks of zeros.  A loaded file is
 * one extent whatever holes it had (an image stores the bytes, zeros
 * included), so without this a sparse file would come out dense; the file
 * is new and its size is set afterwards, so what is left out reads as
 * zeros. */
static int64_t write_extent(void *context, uint64_t offset, const uint8_t *data, size_t length)
{
    size_t start = 0;
    while (start < length) {
        /* a run of non-zero blocks, blocks aligned in the file */
        size_t end = start;
        while (end < length) {
            size_t block_end = end + (HOLE_BLOCK - (offset + end) % HOLE_BLOCK);
            if (block_end > length)
                block_end = length;
            if (all_zero(data + end, block_end - end))
                break;
            end = block_end;
        }
        if (end > start) {
            ssize_t written = pwrite(*(int *)context, data + start, end - start,
                                     (off_t)(offset + start));
            if (written < 0)
                return -errno;
            if ((size_t)written != end - start)
                return -EIO;
        }
        /* then skip the zero block that ended the run */
        if (end < length)
            end += HOLE_BLOCK - (offset + end) % HOLE_BLOCK;
        start = end < length ? end : length;
    }
    return 0;
}

static const char *first_link_path(const materializer *self, uint64_t inode)
{
    for (size_t i = 0; i < self->link_count; i++)
        if (self->inodes[i] == inode)
            return self->paths[i];
    return NULL;
}

static int64_t remember_link(materializer *self, uint64_t inode, const char *path)
{
    if (self->link_count == self->link_capacity) {
        size_t capacity = self->link_capacity ? 2 * self->link_capacity : 16;
        uint64_t *inodes = realloc(self->inodes, capacity * sizeof *inodes);
        if (inodes)
            self->inodes = inodes;
        char **paths = realloc(self->paths, capacity * sizeof *paths);
        if (paths)
            self->paths = paths;
        if (!inodes || !paths)
            return -ENOMEM;
        self->link_capacity = capacity;
    }
    if (!(self->paths[self->link_count] = strdup(path)))
        return -ENOMEM;
    self->inodes[self->link_count++] = inode;
    return 0;
}

static int64_t write_file(materializer *self, int directory_fd, const char *name, const char *path,
                          lf_node *node, const lf_node_info *info)
{
    int64_t status = lf_tree_load_content(self->tree, node);
    if (status < 0 && status != -ENOMEM) {
        /* the loader failed (an image's damaged stream), not the target */
        lf_fail(self->diagnostic, status, "cannot load the content of '%s': %s", path,
                lf_error_string(status));
        self->reported = true;
    }
    if (status < 0)
        return status;
    int fd = openat(directory_fd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    status = lf_node_for_each_extent(node, write_extent, &fd);
    if (status == 0 && ftruncate(fd, (off_t)info->size) != 0) /* a trailing hole */
        status = -errno;
    close(fd);
    if (self->drop_loaded && lf_node_content_key(node))
        lf_node_set_content_key(node, lf_node_content_key(node), true);
    return status;
}

static int64_t materialize_children(materializer *self, int directory_fd, const char *path,
                                    lf_node *directory);

/* Creates node as `name` (at `path` from the root) in the directory. */
static int64_t materialize(materializer *self, int directory_fd, const char *name, const char *path,
                           lf_node *node)
{
    lf_node_info info;
    lf_node_get_info(node, &info);
    int64_t status = 0;
    if (info.type == LF_NODE_FILE && info.link_count > 1) {
        const char *first = first_link_path(self, info.inode_number);
        if (first)
            return linkat(self->root_fd, first, directory_fd, name, 0) == 0 ? 0 : -errno;
        if ((status = remember_link(self, info.inode_number, path)) < 0)
            return status;
    }
    switch (info.type) {
    case LF_NODE_DIRECTORY: {
        if (mkdirat(directory_fd, name, 0700) != 0)
            return -errno;
        int fd = openat(directory_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        status = materialize_children(self, fd, path, node);
        close(fd);
        break;
    }
    case LF_NODE_FILE:
        status = write_file(self, directory_fd, name, path, node, &info);
        break;
    case LF_NODE_SYMLINK:
        if (symlinkat(info.symlink_target, directory_fd, name) != 0)
            return -errno;
        break;
    }
    if (status < 0)
        return status;
    lf_node_get_info(node, &info); /* the strings may have moved */
    return set_attributes(directory_fd, name, &info);
}

static int64_t materialize_children(materializer *self, int directory_fd, const char *path,
                                    lf_node *directory)
{
    int64_t status = 0;
    for (size_t i = 0; status == 0 && i < lf_node_child_count(directory); i++) {
        const char *name;
        lf_node *child = lf_node_child(directory, i, &name);
        lf_buffer child_path = {0};
        if (lf_buffer_printf(&child_path, "%s%s%s", path, path[0] ? "/" : "", name) < 0)
            return -ENOMEM;
        status = materialize(self, directory_fd, name, lf_buffer_string(&child_path), child);
        if (status < 0 && status != -ENOMEM && !self->reported) {
            lf_fail(self->diagnostic, status, "cannot create '%s': %s",
                    lf_buffer_string(&child_path), lf_error_string(status));
            self->reported = true;
        }
        lf_buffer_free(&child_path);
    }
    return status;
}

int64_t lf_materialize(lf_tree *tree, int directory_fd, bool drop_loaded,
                       lf_diagnostic *diagnostic)
{
    materializer self = {.tree = tree, .root_fd = directory_fd, .drop_loaded = drop_loaded,
                         .diagnostic = diagnostic};
    lf_node *root = lf_tree_root(tree);
    int64_t status = 0;
    if (root) {
        lf_node_info info;
        status = materialize_children(&self, directory_fd, "", root);
        lf_node_get_info(root, &info);
        if (status == 0 && (status = set_attributes(directory_fd, ".", &info)) < 0)
            lf_fail(diagnostic, status, "cannot set the attributes of the top directory: %s",
                    lf_error_string(status));
    }
    if (status == -ENOMEM)
        lf_fail(diagnostic, status, "out of memory");
    for (size_t i = 0; i < self.link_count; i++)
        free(self.paths[i]);
    free(self.paths);
    free(self.inodes);
    return status;
}
