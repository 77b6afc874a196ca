#include "sim/operation.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const op_names[LF_SIM_OP_COUNT] = {
    [LF_SIM_GETATTR] = "getattr", [LF_SIM_READDIR] = "readdir",   [LF_SIM_READ] = "read",
    [LF_SIM_READLINK] = "readlink", [LF_SIM_WRITE] = "write",     [LF_SIM_CREATE] = "create",
    [LF_SIM_MKDIR] = "mkdir",     [LF_SIM_UNLINK] = "unlink",     [LF_SIM_RMDIR] = "rmdir",
    [LF_SIM_CHMOD] = "chmod",     [LF_SIM_CHOWN] = "chown",       [LF_SIM_TRUNCATE] = "truncate",
    [LF_SIM_RENAME] = "rename",   [LF_SIM_SYMLINK] = "symlink",   [LF_SIM_UTIMENS] = "utimens",
};

const char *lf_sim_op_name(lf_sim_op op) { return op_names[op]; }

int64_t lf_sim_op_from_name(const char *name)
{
    for (int op = 0; op < LF_SIM_OP_COUNT; op++)
        if (strcmp(op_names[op], name) == 0)
            return op;
    return -EINVAL;
}

bool lf_sim_op_is_read(lf_sim_op op) { return op <= LF_SIM_READLINK; }

bool lf_sim_op_sets_time(lf_sim_op op)
{
    return !lf_sim_op_is_read(op) && op != LF_SIM_CHMOD && op != LF_SIM_CHOWN;
}

void lf_sim_operation_free(lf_sim_operation *operation) { lf_buffer_free(&operation->data); }

void lf_sim_outcome_free(lf_sim_outcome *outcome) { lf_buffer_free(&outcome->bytes); }

/* ---------------------------------------------------------------- */
/* Directory listings, the same from both sides                      */

typedef struct name_list {
    char **names;
    size_t count, capacity;
    bool out_of_memory;
} name_list;

static int add_name(name_list *list, const char *name)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        char **names = realloc(list->names, capacity * sizeof *names);
        if (!names) {
            list->out_of_memory = true;
            return -ENOMEM;
        }
        list->names = names;
        list->capacity = capacity;
    }
    if (!(list->names[list->count] = strdup(name))) {
        list->out_of_memory = true;
        return -ENOMEM;
    }
    list->count++;
    return 0;
}

static int dot_rank(const char *name)
{
    return strcmp(name, ".") == 0 ? 0 : strcmp(name, "..") == 0 ? 1 : 2;
}

/* "." and ".." first, as readdir(3) on Linux and the seed list them, then
 * bytewise: how the disk's listing is compared with the tree's. */
static int compare_names(const void *a, const void *b)
{
    const char *left = *(char *const *)a, *right = *(char *const *)b;
    int rank = dot_rank(left) - dot_rank(right);
    return rank != 0 ? rank : strcmp(left, right);
}

/* Puts the names into out (each NUL-terminated), sorted if asked, and
 * frees the list. */
static int64_t finish_listing(name_list *list, bool sorted, lf_buffer *out)
{
    int64_t status = list->out_of_memory ? -ENOMEM : 0;
    if (sorted && list->count > 1)
        qsort(list->names, list->count, sizeof *list->names, compare_names);
    for (size_t i = 0; i < list->count; i++) {
        if (status >= 0 && lf_buffer_append(out, list->names[i], strlen(list->names[i]) + 1) < 0)
            status = -ENOMEM;
        free(list->names[i]);
    }
    free(list->names);
    return status;
}

int64_t lf_sim_outcome_sort_names(lf_sim_outcome *outcome)
{
    name_list list = {0};
    for (size_t at = 0; at < outcome->bytes.length;) {
        const char *name = (const char *)outcome->bytes.data + at;
        at += strlen(name) + 1;
        if (add_name(&list, name) < 0)
            break;
    }
    outcome->bytes.length = 0;
    return finish_listing(&list, true, &outcome->bytes);
}

static int collect_tree_name(void *context, const char *name, const struct stat *attributes)
{
    (void)attributes;
    return add_name(context, name) < 0;
}

/* ---------------------------------------------------------------- */
/* The real side                                                     */

static int64_t syscall_status(int64_t result) { return result < 0 ? -errno : result; }

static int64_t list_real_directory(const char *path, lf_sim_outcome *outcome)
{
    DIR *directory = opendir(path);
    if (!directory) {
        outcome->status = -errno;
        return 0;
    }
    name_list list = {0};
    struct dirent *entry;
    for (errno = 0; (entry = readdir(directory)); errno = 0)
        if (add_name(&list, entry->d_name) < 0)
            break;
    outcome->status = entry || errno == 0 ? (int64_t)list.count : -errno;
    closedir(directory);
    return finish_listing(&list, true, &outcome->bytes);
}

static int64_t read_real_file(const char *path, const lf_sim_operation *operation,
                              lf_sim_outcome *outcome)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        outcome->status = -errno;
        return 0;
    }
    int64_t status = lf_buffer_reserve(&outcome->bytes, operation->size);
    if (status == 0) {
        outcome->status = syscall_status(
            pread(fd, outcome->bytes.data, operation->size, (off_t)operation->offset));
        if (outcome->status > 0)
            outcome->bytes.length = (size_t)outcome->status;
    }
    close(fd);
    return status;
}

static int64_t write_real_file(const char *path, const lf_sim_operation *operation)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -errno;
    int64_t status = syscall_status(
        pwrite(fd, operation->data.data, operation->data.length, (off_t)operation->offset));
    close(fd);
    return status;
}

static int64_t create_real_file(const char *path, uint32_t permissions)
{
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, permissions);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

int64_t lf_sim_operation_run_real(const lf_sim_operation *operation, const char *root,
                                  lf_sim_outcome *outcome)
{
    char path[LF_SIM_PATH_MAX * 2], other[LF_SIM_PATH_MAX * 2];
    snprintf(path, sizeof path, "%s%s", root, operation->path);
    snprintf(other, sizeof other, "%s%s", root, operation->other);
    uint32_t permissions = operation->mode & 07777;
    switch (operation->op) {
    case LF_SIM_GETATTR:
        outcome->status = syscall_status(lstat(path, &outcome->attributes));
        return 0;
    case LF_SIM_READDIR:
        return list_real_directory(path, outcome);
    case LF_SIM_READ:
        return read_real_file(path, operation, outcome);
    case LF_SIM_READLINK: {
        char target[LF_SIM_PATH_MAX];
        outcome->status = syscall_status(readlink(path, target, sizeof target));
        return outcome->status > 0
                   ? lf_buffer_append(&outcome->bytes, target, (size_t)outcome->status)
                   : 0;
    }
    case LF_SIM_WRITE:
        outcome->status = write_real_file(path, operation);
        return 0;
    case LF_SIM_CREATE:
        outcome->status = create_real_file(path, permissions);
        return 0;
    case LF_SIM_MKDIR:
        outcome->status = syscall_status(mkdir(path, permissions));
        return 0;
    case LF_SIM_UNLINK:
        outcome->status = syscall_status(unlink(path));
        return 0;
    case LF_SIM_RMDIR:
        outcome->status = syscall_status(rmdir(path));
        return 0;
    case LF_SIM_CHMOD:
        outcome->status = syscall_status(chmod(path, permissions));
        return 0;
    case LF_SIM_CHOWN:
        outcome->status = syscall_status(lchown(path, operation->uid, operation->gid));
        return 0;
    case LF_SIM_TRUNCATE:
        outcome->status = syscall_status(truncate(path, (off_t)operation->length));
        return 0;
    case LF_SIM_RENAME:
        outcome->status =
            syscall_status(renameat2(AT_FDCWD, path, AT_FDCWD, other, operation->flags));
        return 0;
    case LF_SIM_SYMLINK:
        outcome->status = syscall_status(symlink(operation->other, path));
        return 0;
    case LF_SIM_UTIMENS:
        outcome->status = syscall_status(utimensat(
            AT_FDCWD, path, operation->times_now ? NULL : operation->times, AT_SYMLINK_NOFOLLOW));
        return 0;
    case LF_SIM_OP_COUNT:
        break;
    }
    return -EINVAL;
}

/* ---------------------------------------------------------------- */
/* The tree side                                                     */

int64_t lf_sim_operation_run_tree(const lf_sim_operation *operation, lf_tree *tree,
                                  lf_sim_outcome *outcome)
{
    const char *path = operation->path;
    uint32_t permissions = operation->mode & 07777;
    switch (operation->op) {
    case LF_SIM_GETATTR:
        outcome->status = lf_tree_getattr(tree, path, &outcome->attributes);
        return 0;
    case LF_SIM_READDIR: {
        name_list list = {0};
        outcome->status = lf_tree_readdir(tree, path, collect_tree_name, &list);
        return finish_listing(&list, false, &outcome->bytes);
    }
    case LF_SIM_READ: {
        int64_t status = lf_buffer_reserve(&outcome->bytes, operation->size);
        if (status < 0)
            return status;
        outcome->status = lf_tree_read(tree, path, outcome->bytes.data, operation->size,
                                       operation->offset);
        if (outcome->status > 0)
            outcome->bytes.length = (size_t)outcome->status;
        return 0;
    }
    case LF_SIM_READLINK: {
        char target[LF_SIM_PATH_MAX];
        outcome->status = lf_tree_readlink(tree, path, target, sizeof target);
        return outcome->status > 0
                   ? lf_buffer_append(&outcome->bytes, target, (size_t)outcome->status)
                   : 0;
    }
    case LF_SIM_WRITE:
        outcome->status = lf_tree_write(tree, path, operation->data.data, operation->data.length,
                                        operation->offset);
        return 0;
    case LF_SIM_CREATE:
        outcome->status = lf_tree_create(tree, path, permissions, true);
        return 0;
    case LF_SIM_MKDIR:
        outcome->status = lf_tree_mkdir(tree, path, permissions);
        return 0;
    case LF_SIM_UNLINK:
        outcome->status = lf_tree_unlink(tree, path);
        return 0;
    case LF_SIM_RMDIR:
        outcome->status = lf_tree_rmdir(tree, path);
        return 0;
    case LF_SIM_CHMOD:
        outcome->status = lf_tree_chmod(tree, path, permissions);
        return 0;
    case LF_SIM_CHOWN:
        outcome->status = lf_tree_chown(tree, path, operation->uid, operation->gid);
        return 0;
    case LF_SIM_TRUNCATE:
        outcome->status = lf_tree_truncate(tree, path, operation->length);
        return 0;
    case LF_SIM_RENAME:
        outcome->status = lf_tree_rename(tree, path, operation->other, operation->flags);
        return 0;
    case LF_SIM_SYMLINK:
        outcome->status = lf_tree_symlink(tree, operation->other, path);
        return 0;
    case LF_SIM_UTIMENS:
        outcome->status =
            lf_tree_utimens(tree, path, operation->times_now ? NULL : operation->times);
        return 0;
    case LF_SIM_OP_COUNT:
        break;
    }
    return -EINVAL;
}
