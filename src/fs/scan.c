#include "fs/scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buffer.h"

typedef struct scanned_inode {
    dev_t device;
    ino_t inode;
    lf_node *node;
} scanned_inode;

typedef struct scan {
    lf_tree *tree;
    lf_scan_skip_fn on_skip;
    void *context;
    lf_diagnostic *diagnostic;
    /* files with more than one name, to link instead of copying again */
    scanned_inode *linked;
    size_t linked_count, linked_capacity;
} scan;

static lf_node_info info_from_stat(const struct stat *status, lf_node_type type)
{
    return (lf_node_info){
        .type = type,
        .permissions = status->st_mode & 07777,
        .uid = status->st_uid,
        .gid = status->st_gid,
        .atime = status->st_atim,
        .mtime = status->st_mtim,
        .ctime = status->st_ctim,
    };
}

static lf_node *find_linked(const scan *state, const struct stat *status)
{
    for (size_t i = 0; i < state->linked_count; i++)
        if (state->linked[i].device == status->st_dev && state->linked[i].inode == status->st_ino)
            return state->linked[i].node;
    return NULL;
}

static int64_t remember_linked(scan *state, const struct stat *status, lf_node *node)
{
    if (state->linked_count == state->linked_capacity) {
        size_t capacity = state->linked_capacity ? state->linked_capacity * 2 : 16;
        scanned_inode *linked = realloc(state->linked, capacity * sizeof *linked);
        if (!linked)
            return -ENOMEM;
        state->linked = linked;
        state->linked_capacity = capacity;
    }
    state->linked[state->linked_count++] = (scanned_inode){status->st_dev, status->st_ino, node};
    return 0;
}

/* Copies the data regions of fd into file, leaving holes as holes. */
static int64_t copy_content(int fd, lf_node *file, uint64_t size)
{
    enum { BLOCK = 1 << 16 };
    uint8_t *block = malloc(BLOCK);
    if (!block)
        return -ENOMEM;
    int64_t status = lf_node_set_size(file, size);
    off_t position = 0;
    while (status == 0 && (uint64_t)position < size) {
        off_t data = lseek(fd, position, SEEK_DATA);
        if (data < 0) {
            if (errno != ENXIO) /* ENXIO: only a hole remains */
                status = -errno;
            break;
        }
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || (uint64_t)hole > size)
            hole = (off_t)size;
        position = data;
        while (status == 0 && position < hole) {
            size_t want = hole - position < BLOCK ? (size_t)(hole - position) : BLOCK;
            ssize_t got = pread(fd, block, want, position);
            if (got < 0)
                status = -errno;
            else if (got == 0)
                status = -EIO; /* the file shrank while we read it */
            else if ((status = lf_node_write(file, block, (size_t)got, (uint64_t)position)) >= 0) {
                position += got;
                status = 0;
            }
        }
    }
    free(block);
    return status;
}

static int64_t scan_entries(scan *state, int directory_fd, lf_node *directory, lf_buffer *path);

static int64_t scan_entry(scan *state, int directory_fd, lf_node *directory, const char *name,
                          lf_buffer *path)
{
    struct stat status;
    if (fstatat(directory_fd, name, &status, AT_SYMLINK_NOFOLLOW) < 0)
        return lf_fail(state->diagnostic, -errno, "cannot stat '%s': %s", lf_buffer_string(path),
                       strerror(errno));
    int64_t result = 0;
    lf_node *node = NULL;
    if (S_ISDIR(status.st_mode)) {
        lf_node_info info = info_from_stat(&status, LF_NODE_DIRECTORY);
        if ((result = lf_tree_add_node(state->tree, directory, name, &info, &node)) < 0)
            return result;
        int fd = openat(directory_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return lf_fail(state->diagnostic, -errno, "cannot open directory '%s': %s",
                           lf_buffer_string(path), strerror(errno));
        result = scan_entries(state, fd, node, path);
        close(fd);
        return result;
    }
    if (S_ISLNK(status.st_mode)) {
        char target[LF_TREE_PATH_MAX];
        ssize_t length = readlinkat(directory_fd, name, target, sizeof target - 1);
        if (length < 0)
            return lf_fail(state->diagnostic, -errno, "cannot read symlink '%s': %s",
                           lf_buffer_string(path), strerror(errno));
        target[length] = '\0';
        lf_node_info info = info_from_stat(&status, LF_NODE_SYMLINK);
        info.symlink_target = target;
        return lf_tree_add_node(state->tree, directory, name, &info, NULL);
    }
    if (!S_ISREG(status.st_mode)) {
        const char *what = S_ISFIFO(status.st_mode)   ? "fifo"
                           : S_ISSOCK(status.st_mode) ? "socket"
                           : S_ISCHR(status.st_mode)  ? "character device"
                                                      : "block device";
        if (state->on_skip)
            state->on_skip(state->context, lf_buffer_string(path), what);
        return 0;
    }
    if (status.st_nlink > 1 && (node = find_linked(state, &status)))
        return lf_tree_add_link(state->tree, directory, name, node);
    lf_node_info info = info_from_stat(&status, LF_NODE_FILE);
    if ((result = lf_tree_add_node(state->tree, directory, name, &info, &node)) < 0)
        return result;
    int fd = openat(directory_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return lf_fail(state->diagnostic, -errno, "cannot open '%s': %s", lf_buffer_string(path),
                       strerror(errno));
    result = copy_content(fd, node, (uint64_t)status.st_size);
    close(fd);
    if (result < 0)
        return lf_fail(state->diagnostic, result, "cannot read '%s': %s", lf_buffer_string(path),
                       lf_error_string(result));
    if (status.st_nlink > 1)
        result = remember_linked(state, &status, node);
    return result;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads all names first (sorted, so scans are reproducible), then descends. */
static int64_t scan_entries(scan *state, int directory_fd, lf_node *directory, lf_buffer *path)
{
    int listing_fd = dup(directory_fd);
    DIR *stream = listing_fd < 0 ? NULL : fdopendir(listing_fd);
    if (!stream) {
        if (listing_fd >= 0)
            close(listing_fd);
        return lf_fail(state->diagnostic, -errno, "cannot list '%s': %s", lf_buffer_string(path),
                       strerror(errno));
    }
    char **names = NULL;
    size_t count = 0, capacity = 0;
    int64_t result = 0;
    struct dirent *entry;
    errno = 0;
    while (result == 0 && (entry = readdir(stream))) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 32;
            char **grown = realloc(names, capacity * sizeof *names);
            if (!grown) {
                result = -ENOMEM;
                break;
            }
            names = grown;
        }
        if (!(names[count] = strdup(entry->d_name)))
            result = -ENOMEM;
        else
            count++;
    }
    closedir(stream);
    if (count > 1)
        qsort(names, count, sizeof *names, compare_names);
    size_t base_length = path->length;
    for (size_t i = 0; i < count && result == 0; i++) {
        path->length = base_length;
        if ((result = lf_buffer_printf(path, "%s%s", base_length ? "/" : "", names[i])) == 0)
            result = scan_entry(state, directory_fd, directory, names[i], path);
    }
    path->length = base_length;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return result;
}

int64_t lf_scan_directory(const char *path, lf_scan_skip_fn on_skip, void *context,
                          lf_tree **tree, lf_diagnostic *diagnostic)
{
    *tree = NULL;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return lf_fail(diagnostic, -errno, "cannot open directory '%s': %s", path, strerror(errno));
    struct stat status;
    scan state = {.tree = lf_tree_new(), .on_skip = on_skip, .context = context,
                  .diagnostic = diagnostic};
    lf_buffer relative = {0};
    int64_t result = state.tree ? 0 : -ENOMEM;
    if (result == 0 && fstat(fd, &status) < 0)
        result = lf_fail(diagnostic, -errno, "cannot stat '%s': %s", path, strerror(errno));
    lf_node *root = NULL;
    if (result == 0) {
        lf_node_info info = info_from_stat(&status, LF_NODE_DIRECTORY);
        result = lf_tree_make_root(state.tree, &info, &root);
    }
    if (result == 0)
        result = scan_entries(&state, fd, root, &relative);
    close(fd);
    lf_buffer_free(&relative);
    free(state.linked);
    if (result < 0) {
        lf_fail(diagnostic, result, "cannot read '%s': %s", path, lf_error_string(result));
        lf_tree_free(state.tree);
        return result;
    }
    *tree = state.tree;
    return 0;
}
