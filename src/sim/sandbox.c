#include "sim/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "fs/materialize.h"
#include "fs/scan.h"
#include "fuse/loopback.h"

struct lf_sim_sandbox {
    char *work;       /* mkdtemp: holds the two directories */
    char *directory;  /* work/state: the state itself */
    char *mountpoint; /* work/mount: the loopback of it, or NULL */
    int directory_fd;
    lf_loopback_mount *mount;
    /* Any mtime from this second on was set by the kernel.  One second
     * before the opening, as file timestamps come from a coarse clock that
     * may lag the one time(2) reads. */
    int64_t kernel_times_from;
    mode_t saved_umask;
};

/* ---------------------------------------------------------------- */
/* Walking the directory                                             */

typedef int64_t (*visit_fn)(void *context, int directory_fd, const char *name,
                            const struct stat *attributes);

/* Visits everything below the directory open as directory_fd, each
 * directory's entries before the directory, never following symlinks. */
static int64_t walk(int directory_fd, visit_fn visit, void *context)
{
    /* A descriptor of our own: a dup would share the caller's position. */
    int fd = openat(directory_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *directory = fd >= 0 ? fdopendir(fd) : NULL;
    if (!directory) {
        int64_t status = -errno;
        if (fd >= 0)
            close(fd);
        return status;
    }
    int64_t status = 0;
    struct dirent *entry;
    while (status == 0 && (entry = readdir(directory))) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat attributes;
        if (fstatat(fd, name, &attributes, AT_SYMLINK_NOFOLLOW) != 0) {
            status = -errno;
            break;
        }
        if (S_ISDIR(attributes.st_mode)) {
            int child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child < 0) {
                status = -errno;
                break;
            }
            status = walk(child, visit, context);
            close(child);
        }
        if (status == 0)
            status = visit(context, fd, name, &attributes);
    }
    closedir(directory);
    return status;
}

static int64_t remove_entry(void *context, int directory_fd, const char *name,
                            const struct stat *attributes)
{
    (void)context;
    int flags = S_ISDIR(attributes->st_mode) ? AT_REMOVEDIR : 0;
    return unlinkat(directory_fd, name, flags) == 0 ? 0 : -errno;
}

typedef struct normalization {
    int64_t kernel_times_from, now;
} normalization;

static int64_t normalize_entry(void *context, int directory_fd, const char *name,
                               const struct stat *attributes)
{
    const normalization *times = context;
    if (attributes->st_mtim.tv_sec < times->kernel_times_from)
        return 0;
    struct timespec request[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = times->now}};
    return utimensat(directory_fd, name, request, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

/* ---------------------------------------------------------------- */
/* Opening and closing                                               */

void lf_sim_sandbox_close(lf_sim_sandbox *sandbox)
{
    if (sandbox->mount)
        lf_loopback_mount_stop(sandbox->mount);
    if (sandbox->directory_fd >= 0) {
        walk(sandbox->directory_fd, remove_entry, NULL);
        close(sandbox->directory_fd);
    }
    if (sandbox->mountpoint)
        rmdir(sandbox->mountpoint);
    if (sandbox->directory)
        rmdir(sandbox->directory);
    if (sandbox->work)
        rmdir(sandbox->work);
    umask(sandbox->saved_umask);
    free(sandbox->mountpoint);
    free(sandbox->directory);
    free(sandbox->work);
    free(sandbox);
}

static int64_t make_directory(char **path, const char *parent, const char *name,
                              lf_diagnostic *diag)
{
    if (asprintf(path, "%s/%s", parent, name) < 0) {
        *path = NULL;
        return lf_fail(diag, -ENOMEM, "out of memory");
    }
    if (mkdir(*path, 0755) != 0) {
        int64_t status = lf_fail(diag, -errno, "%s: %s", *path, strerror(errno));
        free(*path);
        *path = NULL;
        return status;
    }
    return 0;
}

int64_t lf_sim_sandbox_open(lf_sim_sandbox **out, lf_diagnostic *diag)
{
    lf_sim_sandbox *sandbox = calloc(1, sizeof *sandbox);
    if (!sandbox)
        return lf_fail(diag, -ENOMEM, "out of memory");
    sandbox->directory_fd = -1;
    sandbox->saved_umask = umask(0);
    sandbox->kernel_times_from = (int64_t)time(NULL) - 1;
    const char *base = getenv("TMPDIR");
    int64_t status = 0;
    if (asprintf(&sandbox->work, "%s/llmfuse-gen-XXXXXX", base && *base ? base : "/tmp") < 0) {
        sandbox->work = NULL;
        status = lf_fail(diag, -ENOMEM, "out of memory");
    } else if (!mkdtemp(sandbox->work)) {
        status = lf_fail(diag, -errno, "%s: %s", sandbox->work, strerror(errno));
        free(sandbox->work);
        sandbox->work = NULL;
    }
    if (status == 0)
        status = make_directory(&sandbox->directory, sandbox->work, "state", diag);
    if (status == 0 &&
        (sandbox->directory_fd = open(sandbox->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        status = lf_fail(diag, -errno, "%s: %s", sandbox->directory, strerror(errno));
    struct statfs filesystem;
    if (status == 0 && fstatfs(sandbox->directory_fd, &filesystem) != 0)
        status = lf_fail(diag, -errno, "%s: %s", sandbox->directory, strerror(errno));
    /* The tree follows ext4, as the differential test checks; elsewhere
     * generation would stop at the first difference (tmpfs keeps the mtime
     * of a truncate to the same size, for one). */
    if (status == 0 && filesystem.f_type != EXT4_SUPER_MAGIC)
        status = lf_fail(diag, -ENOTSUP,
                         "the sandbox %s is not on ext4, whose behaviour the tree follows; "
                         "point TMPDIR at a directory on ext4",
                         sandbox->work);
    if (status < 0) {
        lf_sim_sandbox_close(sandbox);
        return status;
    }
    *out = sandbox;
    return 0;
}

int64_t lf_sim_sandbox_mount(lf_sim_sandbox *sandbox, lf_diagnostic *diag)
{
    int64_t status = make_directory(&sandbox->mountpoint, sandbox->work, "mount", diag);
    if (status < 0)
        return status;
    /* The dataset is checked against the tree, not against the log: the
     * log is written (the loopback's whole path is exercised and timed)
     * but not kept. */
    lf_loopback_config config = {.source = sandbox->directory, .log_path = "/dev/null",
                                 .data_mode = LF_LOOPBACK_DATA_HASH};
    status = lf_loopback_mount_start(&config, sandbox->mountpoint, &sandbox->mount, diag);
    if (status < 0) {
        rmdir(sandbox->mountpoint);
        free(sandbox->mountpoint);
        sandbox->mountpoint = NULL;
    }
    return status;
}

const char *lf_sim_sandbox_root(const lf_sim_sandbox *sandbox)
{
    return sandbox->mount ? sandbox->mountpoint : sandbox->directory;
}

bool lf_sim_sandbox_is_mounted(const lf_sim_sandbox *sandbox) { return sandbox->mount != NULL; }

/* ---------------------------------------------------------------- */
/* Loading a tree                                                    */

int64_t lf_sim_sandbox_load(lf_sim_sandbox *sandbox, lf_tree *tree, lf_diagnostic *diag)
{
    int64_t status = walk(sandbox->directory_fd, remove_entry, NULL);
    if (status == 0)
        status = lf_materialize(tree, sandbox->directory_fd, false, NULL);
    if (status < 0)
        return lf_fail(diag, status, "cannot load a state into %s: %s", sandbox->directory,
                       lf_error_string(status));
    return 0;
}

int64_t lf_sim_sandbox_scan(lf_sim_sandbox *sandbox, int64_t now, lf_tree **state,
                            lf_diagnostic *diag)
{
    if (now >= sandbox->kernel_times_from)
        return lf_fail(diag, -ERANGE,
                       "virtual time %lld is not before the wall clock (%lld): kernel-set times "
                       "could not be told apart",
                       (long long)now, (long long)sandbox->kernel_times_from);
    normalization times = {.kernel_times_from = sandbox->kernel_times_from, .now = now};
    struct stat root;
    int64_t status = walk(sandbox->directory_fd, normalize_entry, &times);
    if (status == 0 && fstat(sandbox->directory_fd, &root) != 0)
        status = -errno;
    if (status == 0)
        status = normalize_entry(&times, sandbox->directory_fd, ".", &root);
    if (status < 0)
        return lf_fail(diag, status, "cannot set times in %s: %s", sandbox->directory,
                       lf_error_string(status));
    return lf_scan_directory(sandbox->directory, NULL, NULL, state, diag);
}
