/* Differential test: random operation sequences run on a real directory
 * through syscalls and on the in-memory tree must give the same results and
 * errno, and after every operation `llmfuse xml` of the directory (the scan
 * plus the writer) must equal the tree's XML.
 *
 * Timestamps: the tree runs on a virtual clock (one second per operation);
 * after each operation every real mtime newer than 2020 (that is, set by the
 * kernel just now) is rewritten to the same virtual second.  So the XML
 * comparison also checks *which* nodes each operation touched. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buffer.h"
#include "common/error.h"
#include "common/random.h"
#include "fs/scan.h"
#include "fs/tree.h"
#include "fs/xml.h"
#include "sandbox.h"

enum { KERNEL_TIME_THRESHOLD = 1577836800 /* 2020-01-01 */ };
static const int64_t start_time = 946684800; /* 2000-01-01: every node starts here */

typedef enum op_kind {
    OP_GETATTR, OP_READDIR, OP_READ, OP_WRITE, OP_CREATE, OP_MKDIR, OP_UNLINK, OP_RMDIR,
    OP_RENAME, OP_CHMOD, OP_CHOWN, OP_TRUNCATE, OP_SYMLINK, OP_READLINK, OP_LINK, OP_UTIMENS,
    OP_COUNT
} op_kind;

static const char *const op_names[OP_COUNT] = {
    "getattr", "readdir", "read", "write", "create", "mkdir", "unlink", "rmdir",
    "rename", "chmod", "chown", "truncate", "symlink", "readlink", "link", "utimens",
};

typedef struct operation {
    op_kind kind;
    char path[512], other[512]; /* other: rename/link destination, symlink target */
    uint32_t mode, uid, gid;
    bool exclusive;
    unsigned flags;
    int64_t length;
    uint64_t offset;
    size_t size;
    uint8_t data[2048];
    bool null_times;
    struct timespec times[2];
} operation;

typedef struct outcome {
    int64_t status;
    lf_buffer bytes; /* read data, readlink target, sorted readdir names, getattr summary */
} outcome;

typedef struct world {
    char *sandbox;
    lf_tree *tree;
    int64_t now;
    lf_random random;
} world;

/* ---------------------------------------------------------------- */
/* Random operations                                                 */

static const char *const names[] = {"a", "b", "c", "d.txt", "e f", "ü", "lnk"};
static const uint32_t modes[] = {0755, 0644, 0600, 0700, 04755, 02755, 06755, 01777,
                                 02775, 0,    0444, 0777, 02644, 02745, 04644};

static void append_component(char *path, size_t size, const char *component)
{
    size_t length = strlen(path);
    snprintf(path + length, size - length, "/%s", component);
}

/* A path of 1-3 components. ".." appears only below a real name, so that
 * with symlink targets that never climb (see random_target) no path leaves
 * the sandbox. */
static void random_path(lf_random *random, char *path, size_t size)
{
    path[0] = '\0';
    int depth = (int)lf_random_range(random, 1, 3), named = 0;
    for (int i = 0; i < depth; i++) {
        if (lf_random_chance(random, 1, 25)) {
            append_component(path, size, ".");
        } else if (named > 0 && lf_random_chance(random, 1, 20)) {
            append_component(path, size, "..");
            named--;
        } else if (lf_random_chance(random, 1, 200)) {
            char long_name[LF_TREE_NAME_MAX + 2];
            memset(long_name, 'n', sizeof long_name - 1);
            long_name[sizeof long_name - 1] = '\0';
            append_component(path, size, long_name);
            named++;
        } else {
            append_component(path, size, names[lf_random_below(random, sizeof names / sizeof *names)]);
            named++;
        }
    }
    if (lf_random_chance(random, 1, 30))
        strcat(path, "/");
}

/* Relative, without "." or "..": a target always points below its link. */
static void random_target(lf_random *random, char *target, size_t size)
{
    target[0] = '\0';
    int depth = (int)lf_random_range(random, 1, 2);
    for (int i = 0; i < depth; i++) {
        if (i > 0)
            strcat(target, "/");
        const char *name = names[lf_random_below(random, sizeof names / sizeof *names)];
        strncat(target, name, size - strlen(target) - 1);
    }
}

static struct timespec random_time_request(lf_random *random)
{
    switch (lf_random_below(random, 4)) {
    case 0:
        return (struct timespec){.tv_nsec = UTIME_NOW};
    case 1:
        return (struct timespec){.tv_nsec = UTIME_OMIT};
    default:
        return (struct timespec){.tv_sec = lf_random_range(random, 315532800, 1546300800)};
    }
}

typedef struct path_list {
    char items[256][512];
    size_t count;
} path_list;

/* Paths of existing nodes, so that operations hit something half the time. */
static void collect_paths(const lf_node *directory, const char *prefix, path_list *list)
{
    for (size_t i = 0; i < lf_node_child_count(directory) && list->count < 256; i++) {
        const char *name;
        lf_node *child = lf_node_child(directory, i, &name);
        char *path = list->items[list->count++];
        size_t prefix_length = strlen(prefix); /* prefix is another item of the list */
        memmove(path, prefix, prefix_length);
        snprintf(path + prefix_length, 512 - prefix_length, "/%s", name);
        lf_node_info info;
        lf_node_get_info(child, &info);
        if (info.type == LF_NODE_DIRECTORY)
            collect_paths(child, path, list);
    }
}

static void pick_path(lf_random *random, const path_list *existing, char *path, size_t size)
{
    if (existing->count == 0 || lf_random_chance(random, 1, 2)) {
        random_path(random, path, size);
        return;
    }
    snprintf(path, size, "%s", existing->items[lf_random_below(random, existing->count)]);
    if (lf_random_chance(random, 1, 4)) /* a new name inside an existing node */
        append_component(path, size, names[lf_random_below(random, sizeof names / sizeof *names)]);
}

static void random_operation(lf_random *random, const lf_tree *tree, operation *op)
{
    /* Creation is weighted up so trees grow enough for the other ops to bite. */
    static const op_kind weighted[] = {
        OP_GETATTR, OP_READDIR, OP_READ, OP_WRITE, OP_WRITE, OP_CREATE, OP_CREATE, OP_MKDIR,
        OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_RENAME, OP_RENAME, OP_CHMOD, OP_CHOWN, OP_TRUNCATE,
        OP_SYMLINK, OP_READLINK, OP_LINK, OP_UTIMENS,
    };
    memset(op, 0, sizeof *op);
    op->kind = weighted[lf_random_below(random, sizeof weighted / sizeof *weighted)];
    static path_list existing;
    existing.count = 0;
    collect_paths(lf_tree_root(tree), "", &existing);
    do
        pick_path(random, &existing, op->path, sizeof op->path);
    while ((op->kind == OP_RMDIR || op->kind == OP_RENAME) && strcmp(op->path, "/") == 0);
    pick_path(random, &existing, op->other, sizeof op->other);
    op->mode = modes[lf_random_below(random, sizeof modes / sizeof *modes)];
    static const uint32_t ids[] = {0, 1, 2, UINT32_MAX};
    op->uid = ids[lf_random_below(random, 4)];
    op->gid = ids[lf_random_below(random, 4)];
    op->exclusive = lf_random_chance(random, 1, 2);
    op->flags = lf_random_chance(random, 1, 4) ? RENAME_NOREPLACE : 0;
    static const int64_t lengths[] = {0, 1, 100, 4096, 5000, 9000, -1};
    op->length = lengths[lf_random_below(random, sizeof lengths / sizeof *lengths)];
    op->offset = lf_random_chance(random, 1, 2) ? 0 : lf_random_below(random, 9000);
    op->size = (size_t)lf_random_below(random, sizeof op->data);
    if (lf_random_chance(random, 1, 2))
        lf_random_bytes(random, op->data, op->size);
    else
        for (size_t i = 0; i < op->size; i++)
            op->data[i] = "hello llmfuse\n<&>"[lf_random_below(random, 17)];
    op->null_times = lf_random_chance(random, 1, 8);
    op->times[0] = random_time_request(random);
    op->times[1] = random_time_request(random);
    if (op->kind == OP_SYMLINK)
        random_target(random, op->other, sizeof op->other);
}

static void describe(const operation *op, char *text, size_t size)
{
    snprintf(text, size, "%s('%s', other='%s', mode=0%o, uid=%d, gid=%d, excl=%d, flags=%u, "
             "length=%lld, offset=%llu, size=%zu)",
             op_names[op->kind], op->path, op->other, op->mode, (int)op->uid, (int)op->gid,
             op->exclusive, op->flags, (long long)op->length, (unsigned long long)op->offset, op->size);
}

/* ---------------------------------------------------------------- */
/* Running an operation on each side                                 */

static void summarize_stat(const struct stat *status, lf_buffer *out)
{
    /* Directory sizes and block counts are filesystem-specific: not compared. */
    lf_buffer_printf(out, "mode=%o nlink=%lu uid=%u gid=%u size=%lld", status->st_mode,
                     (unsigned long)status->st_nlink, status->st_uid, status->st_gid,
                     S_ISDIR(status->st_mode) ? 0LL : (long long)status->st_size);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sorted_names(char **list, size_t count, lf_buffer *out)
{
    if (count > 1)
        qsort(list, count, sizeof *list, compare_strings);
    for (size_t i = 0; i < count; i++) {
        lf_buffer_printf(out, "%s/", list[i]);
        free(list[i]);
    }
}

static int64_t real_status(int result) { return result < 0 ? -errno : result; }

static int64_t run_real(const world *w, const operation *op, outcome *out)
{
    char path[1024], other[1024];
    snprintf(path, sizeof path, "%s%s", w->sandbox, op->path);
    snprintf(other, sizeof other, "%s%s", w->sandbox, op->other);
    int fd;
    int64_t status;
    switch (op->kind) {
    case OP_GETATTR: {
        struct stat attributes;
        status = real_status(lstat(path, &attributes));
        if (status == 0)
            summarize_stat(&attributes, &out->bytes);
        return status;
    }
    case OP_READDIR: {
        DIR *directory = opendir(path);
        if (!directory)
            return -errno;
        char *list[64];
        size_t count = 0;
        struct dirent *entry;
        while ((entry = readdir(directory)) && count < 64)
            list[count++] = strdup(entry->d_name);
        closedir(directory);
        sorted_names(list, count, &out->bytes);
        return (int64_t)count;
    }
    case OP_READ:
    case OP_WRITE:
        fd = open(path, op->kind == OP_READ ? O_RDONLY : O_WRONLY);
        if (fd < 0)
            return -errno;
        if (op->kind == OP_READ) {
            lf_buffer_reserve(&out->bytes, op->size);
            status = real_status((int)pread(fd, out->bytes.data, op->size, (off_t)op->offset));
            if (status > 0)
                out->bytes.length = (size_t)status;
        } else {
            status = real_status((int)pwrite(fd, op->data, op->size, (off_t)op->offset));
        }
        close(fd);
        return status;
    case OP_CREATE:
        fd = open(path, O_CREAT | O_WRONLY | (op->exclusive ? O_EXCL : 0), op->mode);
        if (fd < 0)
            return -errno;
        close(fd);
        return 0;
    case OP_MKDIR:
        return real_status(mkdir(path, op->mode));
    case OP_UNLINK:
        return real_status(unlink(path));
    case OP_RMDIR:
        return real_status(rmdir(path));
    case OP_RENAME:
        return real_status(renameat2(AT_FDCWD, path, AT_FDCWD, other, op->flags));
    case OP_CHMOD:
        return real_status(chmod(path, op->mode));
    case OP_CHOWN:
        return real_status(lchown(path, op->uid, op->gid));
    case OP_TRUNCATE:
        return real_status(truncate(path, (off_t)op->length));
    case OP_SYMLINK:
        return real_status(symlink(op->other, path));
    case OP_READLINK: {
        char target[1024];
        ssize_t length = readlink(path, target, sizeof target);
        if (length < 0)
            return -errno;
        lf_buffer_append(&out->bytes, target, (size_t)length);
        return length;
    }
    case OP_LINK:
        return real_status(link(path, other));
    case OP_UTIMENS:
        return real_status(utimensat(AT_FDCWD, path, op->null_times ? NULL : op->times,
                                     AT_SYMLINK_NOFOLLOW));
    case OP_COUNT:
        break;
    }
    return -ENOSYS;
}

typedef struct name_list {
    char *items[64];
    size_t count;
} name_list;

static int collect_name(void *context, const char *name, const struct stat *attributes)
{
    (void)attributes;
    name_list *list = context;
    if (list->count < 64)
        list->items[list->count++] = strdup(name);
    return 0;
}

static int64_t run_tree(world *w, const operation *op, outcome *out)
{
    lf_tree *tree = w->tree;
    int64_t status;
    switch (op->kind) {
    case OP_GETATTR: {
        struct stat attributes;
        status = lf_tree_getattr(tree, op->path, &attributes);
        if (status == 0)
            summarize_stat(&attributes, &out->bytes);
        return status;
    }
    case OP_READDIR: {
        name_list list = {0};
        status = lf_tree_readdir(tree, op->path, collect_name, &list);
        sorted_names(list.items, list.count, &out->bytes);
        return status;
    }
    case OP_READ:
        lf_buffer_reserve(&out->bytes, op->size);
        status = lf_tree_read(tree, op->path, out->bytes.data, op->size, op->offset);
        if (status > 0)
            out->bytes.length = (size_t)status;
        return status;
    case OP_WRITE:
        return lf_tree_write(tree, op->path, op->data, op->size, op->offset);
    case OP_CREATE:
        return lf_tree_create(tree, op->path, op->mode, op->exclusive);
    case OP_MKDIR:
        return lf_tree_mkdir(tree, op->path, op->mode);
    case OP_UNLINK:
        return lf_tree_unlink(tree, op->path);
    case OP_RMDIR:
        return lf_tree_rmdir(tree, op->path);
    case OP_RENAME:
        return lf_tree_rename(tree, op->path, op->other, op->flags);
    case OP_CHMOD:
        return lf_tree_chmod(tree, op->path, op->mode);
    case OP_CHOWN:
        return lf_tree_chown(tree, op->path, op->uid, op->gid);
    case OP_TRUNCATE:
        return lf_tree_truncate(tree, op->path, op->length);
    case OP_SYMLINK:
        return lf_tree_symlink(tree, op->other, op->path);
    case OP_READLINK: {
        char target[1024];
        status = lf_tree_readlink(tree, op->path, target, sizeof target);
        if (status > 0)
            lf_buffer_append(&out->bytes, target, (size_t)status);
        return status;
    }
    case OP_LINK:
        return lf_tree_link(tree, op->path, op->other);
    case OP_UTIMENS:
        return lf_tree_utimens(tree, op->path, op->null_times ? NULL : op->times);
    case OP_COUNT:
        break;
    }
    return -ENOSYS;
}

/* ---------------------------------------------------------------- */
/* Comparing states                                                  */

static int64_t normalized_time;

static int normalize_entry(const char *path, const struct stat *status, int type, struct FTW *where)
{
    (void)type;
    (void)where;
    if (status->st_mtime > KERNEL_TIME_THRESHOLD) {
        struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = normalized_time}};
        if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) != 0)
            fail_msg("cannot set the time of %s: %s", path, strerror(errno));
    }
    return 0;
}

static void normalize_kernel_times(const char *sandbox, int64_t virtual_now)
{
    normalized_time = virtual_now;
    nftw(sandbox, normalize_entry, 16, FTW_PHYS);
}

/* Sorted: the kernel's directories have their own order, the tree's is
 * newest first; the entries must agree, not their order. */
static void xml_of_tree(const lf_tree *tree, lf_buffer *out)
{
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_xml_write(tree, LF_XML_SORTED, out, &diagnostic);
    if (status < 0)
        fail_msg("lf_xml_write: %s", diagnostic.message);
}

static void assert_same_state(world *w, const char *context)
{
    normalize_kernel_times(w->sandbox, w->now);
    lf_tree *scanned = NULL;
    lf_diagnostic diagnostic = {0};
    if (lf_scan_directory(w->sandbox, NULL, NULL, &scanned, &diagnostic) != 0)
        fail_msg("scan: %s", diagnostic.message);
    lf_buffer real = {0}, expected = {0};
    xml_of_tree(scanned, &real);
    xml_of_tree(w->tree, &expected);
    if (real.length != expected.length || memcmp(real.data, expected.data, real.length) != 0) {
        print_error("after %s\nreal: %s\ntree: %s\n", context, lf_buffer_string(&real),
                    lf_buffer_string(&expected));
        fail_msg("state differs");
    }
    lf_buffer_free(&real);
    lf_buffer_free(&expected);
    lf_tree_free(scanned);
}

static void virtual_clock(void *context, struct timespec *now)
{
    *now = (struct timespec){.tv_sec = *(int64_t *)context};
}

static void run_sequence(uint64_t seed, int operations, int *counts)
{
    world w = {.sandbox = lf_test_sandbox_create("differential"), .now = start_time};
    assert_non_null(w.sandbox);
    lf_random_seed(&w.random, seed);
    assert_int_equal(chmod(w.sandbox, 0755), 0);
    struct timespec start[2] = {{.tv_sec = start_time}, {.tv_sec = start_time}};
    assert_int_equal(utimensat(AT_FDCWD, w.sandbox, start, 0), 0);
    w.tree = lf_tree_new();
    lf_node_info root = {.type = LF_NODE_DIRECTORY, .permissions = 0755, .mtime = start[1]};
    assert_int_equal(lf_tree_make_root(w.tree, &root, NULL), 0);
    lf_tree_set_clock(w.tree, virtual_clock, &w.now);

    for (int i = 0; i < operations; i++) {
        operation op;
        random_operation(&w.random, w.tree, &op);
        w.now++;
        outcome real = {0}, expected = {0};
        real.status = run_real(&w, &op, &real);
        expected.status = run_tree(&w, &op, &expected);
        char text[1400], context[1500];
        describe(&op, text, sizeof text);
        snprintf(context, sizeof context, "seed %llu op %d: %s", (unsigned long long)seed, i, text);
        if (real.status != expected.status) {
            lf_buffer state = {0};
            xml_of_tree(w.tree, &state);
            print_error("tree after the operation: %s\n", lf_buffer_string(&state));
            fail_msg("%s: real %s (%lld), tree %s (%lld)", context, lf_error_name(real.status),
                     (long long)real.status, lf_error_name(expected.status),
                     (long long)expected.status);
        }
        if (real.bytes.length != expected.bytes.length ||
            (real.bytes.length && memcmp(real.bytes.data, expected.bytes.data, real.bytes.length)))
            fail_msg("%s: results differ: real '%.200s' tree '%.200s'", context,
                     lf_buffer_string(&real.bytes), lf_buffer_string(&expected.bytes));
        if (getenv("LLMFUSE_DIFFERENTIAL_TRACE"))
            print_message("%s -> %s\n", context, lf_error_name(real.status));
        counts[op.kind * 2 + (real.status < 0)]++;
        lf_buffer_free(&real.bytes);
        lf_buffer_free(&expected.bytes);
        assert_same_state(&w, context);
    }
    lf_tree_free(w.tree);
    lf_test_sandbox_remove(w.sandbox);
    free(w.sandbox);
}

static void test_tree_matches_kernel(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        /* chown needs root; without it the comparison would be meaningless. */
        skip();
    }
    umask(0);
    const char *override = getenv("LLMFUSE_DIFFERENTIAL_SEQUENCES");
    int sequences = override ? atoi(override) : 100;
    int counts[OP_COUNT * 2] = {0};
    const char *only = getenv("LLMFUSE_DIFFERENTIAL_SEED");
    for (int seed = only ? atoi(only) : 1; seed <= (only ? atoi(only) : sequences); seed++)
        run_sequence((uint64_t)seed, 250, counts);
    /* Every operation must have been exercised, both succeeding and failing. */
    for (int kind = 0; kind < OP_COUNT; kind++) {
        print_message("%-9s ok %5d  failed %5d\n", op_names[kind], counts[kind * 2],
                      counts[kind * 2 + 1]);
        assert_true(counts[kind * 2] > 0);
        assert_true(counts[kind * 2 + 1] > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tree_matches_kernel)};
    return cmocka_run_group_tests_name("differential", tests, NULL, NULL);
}
