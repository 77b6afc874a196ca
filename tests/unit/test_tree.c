/* Semantics of the in-memory tree that the differential test cannot reach
 * through a sandbox (limits, the root, sparse content) or that deserve a
 * readable example. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fs/tree.h"

static void fixed_clock(void *context, struct timespec *now)
{
    *now = (struct timespec){.tv_sec = *(int64_t *)context};
}

static int64_t clock_seconds = 1000;

static int setup(void **state)
{
    lf_tree *tree = lf_tree_new();
    lf_node_info root = {.type = LF_NODE_DIRECTORY, .permissions = 0755};
    assert_int_equal(lf_tree_make_root(tree, &root, NULL), 0);
    lf_tree_set_clock(tree, fixed_clock, &clock_seconds);
    *state = tree;
    return 0;
}

static int teardown(void **state)
{
    lf_tree_free(*state);
    return 0;
}

static struct stat stat_of(lf_tree *tree, const char *path)
{
    struct stat status;
    assert_int_equal(lf_tree_getattr(tree, path, &status), 0);
    return status;
}

static void test_write_extends_with_zeros_and_holes_read_as_zeros(void **state)
{
    lf_tree *tree = *state;
    assert_int_equal(lf_tree_create(tree, "/f", 0644, true), 0);
    assert_int_equal(lf_tree_write(tree, "/f", "end", 3, 10000), 3);
    assert_int_equal(stat_of(tree, "/f").st_size, 10003);
    assert_int_equal(stat_of(tree, "/f").st_blocks, 8); /* only the chunk that holds data */
    char buffer[10003];
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 10003);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buffer[i], 0);
    assert_memory_equal(buffer + 10000, "end", 3);
    /* Shrinking then growing must not resurrect the old bytes. */
    assert_int_equal(lf_tree_truncate(tree, "/f", 10001), 0);
    assert_int_equal(lf_tree_truncate(tree, "/f", 10003), 0);
    assert_int_equal(lf_tree_read(tree, "/f", buffer, 3, 10000), 3);
    assert_memory_equal(buffer, "e\0\0", 3);
    assert_int_equal(lf_tree_read(tree, "/f", buffer, 10, 20000), 0);
    assert_int_equal(lf_tree_truncate(tree, "/f", -1), -EINVAL);
    assert_int_equal(lf_tree_truncate(tree, "/f", (int64_t)LF_TREE_MAX_FILE_SIZE + 1), -EFBIG);
    assert_int_equal(lf_tree_write(tree, "/f", "x", 1, LF_TREE_MAX_FILE_SIZE), -EFBIG);
}

static void test_directory_link_counts(void **state)
{
    lf_tree *tree = *state;
    assert_int_equal(stat_of(tree, "/").st_nlink, 2);
    assert_int_equal(lf_tree_mkdir(tree, "/a", 0755), 0);
    assert_int_equal(lf_tree_mkdir(tree, "/a/b", 0755), 0);
    assert_int_equal(lf_tree_create(tree, "/a/f", 0644, true), 0);
    assert_int_equal(stat_of(tree, "/").st_nlink, 3);
    assert_int_equal(stat_of(tree, "/a").st_nlink, 3);
    assert_int_equal(lf_tree_rename(tree, "/a/b", "/b", 0), 0);
    assert_int_equal(stat_of(tree, "/").st_nlink, 4);
    assert_int_equal(stat_of(tree, "/a").st_nlink, 2);
    assert_int_equal(lf_tree_rmdir(tree, "/a"), -ENOTEMPTY);
    assert_int_equal(lf_tree_unlink(tree, "/a/f"), 0);
    assert_int_equal(lf_tree_rmdir(tree, "/a"), 0);
    assert_int_equal(stat_of(tree, "/").st_nlink, 3);
    assert_int_equal(lf_tree_rmdir(tree, "/"), -EBUSY);
    assert_int_equal(lf_tree_rmdir(tree, "/b/."), -EINVAL);
    assert_int_equal(lf_tree_rmdir(tree, "/b/.."), -ENOTEMPTY);
    assert_int_equal(lf_tree_mkdir(tree, "/", 0755), -EEXIST);
}

static void test_rename_rules(void **state)
{
    lf_tree *tree = *state;
    assert_int_equal(lf_tree_mkdir(tree, "/d", 0755), 0);
    assert_int_equal(lf_tree_mkdir(tree, "/d/sub", 0755), 0);
    assert_int_equal(lf_tree_mkdir(tree, "/empty", 0755), 0);
    assert_int_equal(lf_tree_create(tree, "/f", 0644, true), 0);
    assert_int_equal(lf_tree_create(tree, "/g", 0644, true), 0);
    assert_int_equal(lf_tree_rename(tree, "/d", "/d/sub/x", 0), -EINVAL);
    assert_int_equal(lf_tree_rename(tree, "/d/sub", "/d", 0), -ENOTEMPTY);
    assert_int_equal(lf_tree_rename(tree, "/f", "/empty", 0), -EISDIR);
    assert_int_equal(lf_tree_rename(tree, "/empty", "/f", 0), -ENOTDIR);
    assert_int_equal(lf_tree_rename(tree, "/empty", "/d", 0), -ENOTEMPTY);
    assert_int_equal(lf_tree_rename(tree, "/f", "/g", RENAME_NOREPLACE), -EEXIST);
    assert_int_equal(lf_tree_rename(tree, "/f", "/g", RENAME_EXCHANGE), -EINVAL);
    assert_int_equal(lf_tree_rename(tree, "/missing", "/x", 0), -ENOENT);
    assert_int_equal(lf_tree_rename(tree, "/", "/x", 0), -EBUSY);
    assert_int_equal(lf_tree_rename(tree, "/f/", "/x", 0), -ENOTDIR);
    assert_int_equal(lf_tree_write(tree, "/f", "from f", 6, 0), 6);
    assert_int_equal(lf_tree_rename(tree, "/f", "/g", 0), 0); /* replaces g */
    char buffer[8];
    assert_int_equal(lf_tree_read(tree, "/g", buffer, sizeof buffer, 0), 6);
    assert_int_equal(lf_tree_getattr(tree, "/f", &(struct stat){0}), -ENOENT);
    assert_int_equal(lf_tree_rename(tree, "/d/sub", "/empty", 0), 0); /* replaces an empty dir */
    assert_int_equal(stat_of(tree, "/d").st_nlink, 2);
    /* Two names of one file: rename is a no-op and both stay. */
    assert_int_equal(lf_tree_link(tree, "/g", "/h"), 0);
    assert_int_equal(lf_tree_rename(tree, "/g", "/h", 0), 0);
    assert_int_equal(stat_of(tree, "/g").st_nlink, 2);
    assert_int_equal(lf_tree_unlink(tree, "/g"), 0);
    assert_int_equal(stat_of(tree, "/h").st_nlink, 1);
    assert_int_equal(lf_tree_link(tree, "/d", "/d2"), -EPERM);
}

static void test_symlinks_and_loops(void **state)
{
    lf_tree *tree = *state;
    assert_int_equal(lf_tree_symlink(tree, "loop", "/loop"), 0);
    assert_int_equal(lf_tree_getattr(tree, "/loop/x", &(struct stat){0}), -ELOOP);
    assert_true(S_ISLNK(stat_of(tree, "/loop").st_mode));
    assert_int_equal(lf_tree_symlink(tree, "", "/empty"), -ENOENT);
    /* A chain of exactly 40 links resolves; 41 is a loop. */
    assert_int_equal(lf_tree_mkdir(tree, "/target", 0755), 0);
    char name[32], next[32];
    for (int i = 0; i <= 40; i++) {
        snprintf(name, sizeof name, "/l%d", i);
        snprintf(next, sizeof next, i == 0 ? "target" : "l%d", i - 1);
        assert_int_equal(lf_tree_symlink(tree, next, name), 0);
    }
    assert_int_equal(lf_tree_getattr(tree, "/l39/", &(struct stat){0}), 0);
    assert_int_equal(lf_tree_getattr(tree, "/l40/", &(struct stat){0}), -ELOOP);
    char target[16];
    assert_int_equal(lf_tree_readlink(tree, "/l1", target, sizeof target), 2);
    assert_memory_equal(target, "l0", 2);
    assert_int_equal(lf_tree_readlink(tree, "/target", target, sizeof target), -EINVAL);
    /* open(O_CREAT) through a dangling symlink creates its target. */
    assert_int_equal(lf_tree_symlink(tree, "target/new", "/dangling"), 0);
    assert_int_equal(lf_tree_create(tree, "/dangling", 0600, true), -EEXIST);
    assert_int_equal(lf_tree_create(tree, "/dangling", 0600, false), 0);
    assert_true(S_ISREG(stat_of(tree, "/target/new").st_mode));
    assert_int_equal(lf_tree_unlink(tree, "/l0/"), -ENOTDIR);
}

static void test_path_errors(void **state)
{
    lf_tree *tree = *state;
    char long_name[LF_TREE_NAME_MAX + 3] = "/";
    memset(long_name + 1, 'n', LF_TREE_NAME_MAX + 1);
    assert_int_equal(lf_tree_mkdir(tree, long_name, 0755), -ENAMETOOLONG);
    long_name[LF_TREE_NAME_MAX + 1] = '\0';
    assert_int_equal(lf_tree_mkdir(tree, long_name, 0755), 0);
    static char long_path[LF_TREE_PATH_MAX + 1];
    for (int i = 0; i < LF_TREE_PATH_MAX; i += 2)
        memcpy(long_path + i, "/a", 2);
    assert_int_equal(lf_tree_getattr(tree, long_path, &(struct stat){0}), -ENAMETOOLONG);
    assert_int_equal(lf_tree_create(tree, "/file", 0644, true), 0);
    assert_int_equal(lf_tree_getattr(tree, "/file/x", &(struct stat){0}), -ENOTDIR);
    assert_int_equal(lf_tree_getattr(tree, "/file/", &(struct stat){0}), -ENOTDIR);
    assert_int_equal(lf_tree_getattr(tree, "/nope/x", &(struct stat){0}), -ENOENT);
    assert_int_equal(lf_tree_create(tree, "/file", 0644, true), -EEXIST);
    assert_int_equal(lf_tree_create(tree, "/new/", 0644, false), -EISDIR);
    assert_int_equal(lf_tree_create(tree, "/", 0644, false), -EISDIR);
    assert_int_equal(lf_tree_unlink(tree, "/"), -EISDIR);
    assert_int_equal(lf_tree_rmdir(tree, "/file"), -ENOTDIR);
    assert_int_equal(lf_tree_read(tree, "/", (char[1]){0}, 1, 0), -EISDIR);
    assert_int_equal(lf_tree_getattr(tree, "relative", &(struct stat){0}), -EINVAL);
    assert_int_equal(lf_tree_getattr(tree, "", &(struct stat){0}), -ENOENT);
    assert_int_equal(lf_tree_getattr(tree, "//./file", &(struct stat){0}), 0);
    assert_int_equal(lf_tree_getattr(tree, "/../../file", &(struct stat){0}), 0);
}

static int collect_name(void *context, const char *name, const struct stat *attributes)
{
    (void)attributes;
    strcat(context, name);
    strcat(context, ",");
    return 0;
}

static void expect_listing(lf_tree *tree, const char *path, const char *expected)
{
    char listing[256] = "";
    assert_true(lf_tree_readdir(tree, path, collect_name, listing) >= 2);
    assert_string_equal(listing, expected);
}

/* Operations put new names first; lookups (by name) keep working through
 * every insertion and removal, and by-name order stays bytewise. */
static void test_readdir_lists_newest_first(void **state)
{
    lf_tree *tree = *state;
    const char *names[] = {"b", "a", "Z", "é", "_"};
    for (size_t i = 0; i < 5; i++) {
        char path[16];
        snprintf(path, sizeof path, "/%s", names[i]);
        assert_int_equal(lf_tree_create(tree, path, 0644, true), 0);
    }
    expect_listing(tree, "/", ".,..,_,é,Z,a,b,");
    assert_int_equal(lf_tree_mkdir(tree, "/d", 0755), 0);
    assert_int_equal(lf_tree_symlink(tree, "a", "/s"), 0);
    assert_int_equal(lf_tree_unlink(tree, "/Z"), 0);
    expect_listing(tree, "/", ".,..,s,d,_,é,a,b,");
    assert_int_equal(lf_tree_rename(tree, "/b", "/c", 0), 0);   /* renamed: newest */
    assert_int_equal(lf_tree_rename(tree, "/é", "/d/x", 0), 0); /* moved */
    assert_int_equal(lf_tree_rename(tree, "/_", "/a", 0), 0);   /* replaces a */
    assert_int_equal(lf_tree_link(tree, "/c", "/l"), 0);
    expect_listing(tree, "/", ".,..,l,a,c,s,d,");
    expect_listing(tree, "/d", ".,..,x,");
    const char *sorted[] = {"a", "c", "d", "l", "s"};
    const lf_node *root = lf_tree_root(tree);
    assert_int_equal(lf_node_child_count(root), 5);
    for (size_t i = 0; i < 5; i++) {
        const char *name;
        const lf_node *child = lf_node_child_by_name(root, i, &name);
        assert_string_equal(name, sorted[i]);
        assert_ptr_equal(lf_node_lookup(root, name), child);
    }
    assert_null(lf_node_lookup(root, "b"));
    assert_null(lf_node_lookup(root, "_"));
    assert_int_equal(lf_tree_readdir(tree, "/a", collect_name, (char[8]){0}), -ENOTDIR);
}

/* A loader's hard link keeps the entry where it was. */
static void test_relink_keeps_the_entry_in_place(void **state)
{
    lf_tree *tree = *state;
    assert_int_equal(lf_tree_create(tree, "/a", 0644, true), 0);
    assert_int_equal(lf_tree_create(tree, "/b", 0644, true), 0);
    assert_int_equal(lf_tree_create(tree, "/c", 0644, true), 0);
    assert_int_equal(lf_tree_write(tree, "/a", "shared", 6, 0), 6);
    assert_int_equal(lf_tree_relink(tree, "/a", "/b"), 0);
    expect_listing(tree, "/", ".,..,c,b,a,");
    char buffer[8];
    assert_int_equal(lf_tree_read(tree, "/b", buffer, sizeof buffer, 0), 6);
    assert_memory_equal(buffer, "shared", 6);
    struct stat status;
    assert_int_equal(lf_tree_getattr(tree, "/b", &status), 0);
    assert_int_equal(status.st_nlink, 2);
    assert_int_equal(lf_tree_relink(tree, "/a", "/missing"), -ENOENT);
    assert_int_equal(lf_tree_relink(tree, "/a", "/"), -ENOENT);
}

/* The engine's validator: where an answered state differs from the old. */
static int64_t collect_path(void *context, const char *path)
{
    strcat(context, path);
    strcat(context, ",");
    return strcmp(path, "/stop") == 0;
}

static lf_tree *example_tree(const char *first, const char *second)
{
    lf_tree *tree;
    assert_int_equal(setup((void **)&tree), 0);
    assert_int_equal(lf_tree_mkdir(tree, "/d", 0755), 0);
    assert_int_equal(lf_tree_create(tree, "/d/f", 0644, true), 0);
    assert_int_equal(lf_tree_write(tree, "/d/f", "text", 4, 0), 4);
    assert_int_equal(lf_tree_create(tree, first, 0644, true), 0);
    assert_int_equal(lf_tree_create(tree, second, 0644, true), 0);
    assert_int_equal(lf_tree_symlink(tree, "a", "/s"), 0);
    return tree;
}

static void expect_changes(lf_tree *old, lf_tree *new, const char *expected)
{
    char paths[256] = "";
    assert_int_equal(lf_tree_compare(old, new, collect_path, paths), 0);
    assert_string_equal(paths, expected);
    lf_tree_free(new);
}

static void test_compare_names_each_changed_path(void **state)
{
    (void)state;
    lf_tree *old = example_tree("/a", "/b");
    expect_changes(old, example_tree("/a", "/b"), "");
    lf_tree *new = example_tree("/a", "/b");
    assert_int_equal(lf_tree_write(new, "/d/f", "TEXT", 4, 0), 4); /* same size and time */
    expect_changes(old, new, "/d/f,");
    new = example_tree("/a", "/b");
    assert_int_equal(lf_tree_chmod(new, "/a", 0600), 0);
    assert_int_equal(lf_tree_chmod(new, "/", 0700), 0);
    expect_changes(old, new, "/,/a,");
    new = example_tree("/a", "/b");
    assert_int_equal(lf_tree_rename(new, "/a", "/d/a", 0), 0);
    expect_changes(old, new, "/a,/d/a,");
    new = example_tree("/a", "/b");
    assert_int_equal(lf_tree_rmdir(new, "/d"), -ENOTEMPTY);
    assert_int_equal(lf_tree_unlink(new, "/d/f"), 0);
    assert_int_equal(lf_tree_rmdir(new, "/d"), 0);
    expect_changes(old, new, "/d,"); /* nothing reported below a removed directory */
    new = example_tree("/a", "/b");
    assert_int_equal(lf_tree_unlink(new, "/s"), 0);
    assert_int_equal(lf_tree_symlink(new, "b", "/s"), 0);
    expect_changes(old, new, "/s,");
    expect_changes(old, example_tree("/b", "/a"), "/,"); /* same entries, another order */
    new = example_tree("/a", "/b");
    assert_int_equal(lf_tree_create(new, "/stop", 0644, true), 0);
    assert_int_equal(lf_tree_create(new, "/t", 0644, true), 0);
    char paths[64] = "";
    assert_int_equal(lf_tree_compare(old, new, collect_path, paths), 1);
    assert_string_equal(paths, "/stop,");
    lf_tree_free(new);
    lf_tree_free(old);
}

static void test_timestamps_and_ownership(void **state)
{
    lf_tree *tree = *state;
    clock_seconds = 2000;
    assert_int_equal(lf_tree_create(tree, "/f", 04755, true), 0);
    assert_int_equal(stat_of(tree, "/").st_mtime, 2000);
    clock_seconds = 3000;
    assert_int_equal(lf_tree_write(tree, "/f", "", 0, 0), 0);
    assert_int_equal(stat_of(tree, "/f").st_mtime, 2000); /* an empty write changes nothing */
    assert_int_equal(lf_tree_truncate(tree, "/f", 0), 0);
    assert_int_equal(stat_of(tree, "/f").st_mtime, 3000); /* a same-size truncate does (ext4) */
    assert_int_equal(lf_tree_chown(tree, "/f", 1, UINT32_MAX), 0);
    struct stat status = stat_of(tree, "/f");
    assert_int_equal(status.st_uid, 1);
    assert_int_equal(status.st_gid, 0);
    assert_int_equal(status.st_mode & 07777, 0755); /* chown drops set-user-ID */
    assert_int_equal(status.st_ctime, 3000);
    struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 42}};
    assert_int_equal(lf_tree_utimens(tree, "/f", times), 0);
    status = stat_of(tree, "/f");
    assert_int_equal(status.st_mtime, 42);
    assert_int_equal(status.st_atime, 2000);
    times[1].tv_nsec = 1000000000;
    assert_int_equal(lf_tree_utimens(tree, "/f", times), -EINVAL);
    assert_int_equal(lf_tree_chmod(tree, "/", 02775), 0);
    assert_int_equal(lf_tree_chown(tree, "/", UINT32_MAX, 2), 0);
    assert_int_equal(lf_tree_mkdir(tree, "/inherits", 0700), 0);
    status = stat_of(tree, "/inherits");
    assert_int_equal(status.st_gid, 2);
    assert_int_equal(status.st_mode & 07777, 02700);
    struct statvfs filesystem;
    assert_int_equal(lf_tree_statfs(tree, &filesystem), 0);
    assert_int_equal(filesystem.f_namemax, LF_TREE_NAME_MAX);
    assert_int_equal(filesystem.f_files - filesystem.f_ffree, 3);
}

static void test_empty_tree_has_no_paths(void **state)
{
    (void)state;
    lf_tree *tree = lf_tree_new();
    assert_null(lf_tree_root(tree));
    assert_int_equal(lf_tree_getattr(tree, "/", &(struct stat){0}), -ENOENT);
    assert_int_equal(lf_tree_mkdir(tree, "/a", 0755), -ENOENT);
    lf_tree_free(tree);
}

/* --- Content backed by stored streams --- */

/* A fake image: stream `key` holds `stream` (a prefix of `length` bytes);
 * the loader counts its calls and can be told to fail. */
typedef struct fake_image {
    const char *stream;
    size_t length;
    uint64_t expected_key;
    int calls;
    int64_t failure; /* returned after a partial write when non-zero */
} fake_image;

static int64_t fake_loader(void *context, lf_node *file, uint64_t key)
{
    fake_image *image = context;
    image->calls++;
    assert_true(lf_node_content_pending(file)); /* still pending while loading */
    assert_int_equal(key, image->expected_key);
    if (image->failure) {
        lf_node_write(file, "garbage", 7, 0); /* the tree must drop this */
        return image->failure;
    }
    int64_t written = lf_node_write(file, image->stream, image->length, 0);
    return written == (int64_t)image->length ? 0 : -EIO;
}

/* /f: a pending file of stream 7 ("stored content", 14 bytes). */
static lf_node *pending_file(lf_tree *tree, fake_image *image)
{
    *image = (fake_image){.stream = "stored content", .length = 14, .expected_key = 7};
    lf_tree_set_content_loader(tree, fake_loader, image);
    lf_node_info attributes = {.type = LF_NODE_FILE, .permissions = 0644};
    lf_node *file;
    assert_int_equal(lf_tree_add_node(tree, lf_tree_root(tree), "f", &attributes, &file), 0);
    assert_int_equal(lf_node_set_size(file, 14), 0);
    lf_node_set_content_key(file, 7, true);
    return file;
}

static uint64_t used_blocks(lf_tree *tree)
{
    struct statvfs filesystem;
    assert_int_equal(lf_tree_statfs(tree, &filesystem), 0);
    return filesystem.f_blocks - filesystem.f_bfree;
}

static void test_pending_file_loads_once_on_read(void **state)
{
    lf_tree *tree = *state;
    fake_image image;
    lf_node *file = pending_file(tree, &image);
    assert_true(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 7);
    struct stat status = stat_of(tree, "/f");
    assert_int_equal(status.st_size, 14);
    assert_int_equal(status.st_blocks, 8); /* counted as allocated, not a hole */
    assert_int_equal(image.calls, 0);
    assert_int_equal(used_blocks(tree), 0);
    /* The raw accessor does not load: zeros. */
    char buffer[32];
    assert_int_equal(lf_node_read(file, buffer, sizeof buffer, 0), 14);
    assert_memory_equal(buffer, "\0\0\0\0", 4);
    /* A read past the end needs no byte. */
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 14), 0);
    assert_int_equal(image.calls, 0);

    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 14);
    assert_memory_equal(buffer, "stored content", 14);
    assert_int_equal(image.calls, 1);
    assert_false(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 7); /* the key survives its load */
    assert_int_equal(used_blocks(tree), 1);
    assert_int_equal(lf_tree_read(tree, "/f", buffer, 7, 7), 7);
    assert_memory_equal(buffer, "content", 7);
    assert_int_equal(image.calls, 1);
}

static void test_failed_load_leaves_file_pending(void **state)
{
    lf_tree *tree = *state;
    fake_image image;
    lf_node *file = pending_file(tree, &image);
    clock_seconds = 5000;
    struct stat before = stat_of(tree, "/f");
    image.failure = -EIO;
    char buffer[32];
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), -EIO);
    assert_int_equal(lf_tree_write(tree, "/f", "x", 1, 0), -EIO);
    assert_int_equal(lf_tree_truncate(tree, "/f", 3), -EIO);
    assert_int_equal(image.calls, 3);
    assert_true(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 7);
    assert_int_equal(used_blocks(tree), 0); /* the partial content was freed */
    struct stat after = stat_of(tree, "/f");
    assert_int_equal(after.st_size, 14);
    assert_int_equal(after.st_mtime, before.st_mtime);
    assert_int_equal(after.st_ctime, before.st_ctime);
    /* A stream of the wrong length is damaged too. */
    image.failure = 0;
    image.length = 20;
    image.stream = "stored content, more";
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), -EIO);
    assert_true(lf_node_content_pending(file));
    assert_int_equal(stat_of(tree, "/f").st_size, 14);
    /* Once the stream reads, so does the file. */
    image.length = 14;
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 14);
    assert_memory_equal(buffer, "stored content", 14);
    /* Without a loader a pending file cannot be read or written. */
    lf_node_set_content_key(file, 7, true);
    lf_tree_set_content_loader(tree, NULL, NULL);
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), -EIO);
    assert_int_equal(lf_tree_write(tree, "/f", "x", 1, 0), -EIO);
    assert_int_equal(lf_tree_load_content(tree, file), -EIO);
}

static void test_write_to_pending_file_applies_to_loaded_content(void **state)
{
    lf_tree *tree = *state;
    fake_image image;
    lf_node *file = pending_file(tree, &image);
    clock_seconds = 6000;
    assert_int_equal(lf_tree_write(tree, "/f", "STORED", 6, 0), 6);
    assert_int_equal(image.calls, 1);
    assert_false(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 0); /* no longer the stream */
    assert_int_equal(stat_of(tree, "/f").st_mtime, 6000);
    char buffer[32];
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 14);
    assert_memory_equal(buffer, "STORED content", 14);
    /* Writing past the end keeps the loaded bytes before it. */
    lf_node_set_content_key(file, 7, true); /* a caller's claim; this test's stream differs */
    assert_int_equal(lf_tree_write(tree, "/f", "!", 1, 20), 1);
    assert_int_equal(image.calls, 2);
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 21);
    assert_memory_equal(buffer, "stored content\0\0\0\0\0\0!", 21);
    assert_int_equal(image.calls, 2);
}

static void test_truncate_of_pending_file(void **state)
{
    lf_tree *tree = *state;
    fake_image image;
    lf_node *file = pending_file(tree, &image);
    /* To the same size: no byte changes, the stream still matches. */
    assert_int_equal(lf_tree_truncate(tree, "/f", 14), 0);
    assert_true(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 7);
    /* To 0: empty, no load needed. */
    assert_int_equal(lf_tree_truncate(tree, "/f", 0), 0);
    assert_int_equal(image.calls, 0);
    assert_false(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 0);
    assert_int_equal(stat_of(tree, "/f").st_size, 0);
    assert_int_equal(stat_of(tree, "/f").st_blocks, 0);
    /* Shorter or longer: the kept prefix is loaded first. */
    lf_node_set_size(file, 14);
    lf_node_set_content_key(file, 7, true);
    assert_int_equal(lf_tree_truncate(tree, "/f", 6), 0);
    assert_int_equal(image.calls, 1);
    assert_int_equal(lf_node_content_key(file), 0);
    lf_node_set_size(file, 14);
    lf_node_set_content_key(file, 7, true);
    assert_int_equal(lf_tree_truncate(tree, "/f", 16), 0);
    assert_int_equal(image.calls, 2);
    char buffer[32];
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 16);
    assert_memory_equal(buffer, "stored content\0\0", 16);
    assert_int_equal(lf_tree_truncate(tree, "/f", (int64_t)LF_TREE_MAX_FILE_SIZE + 1), -EFBIG);
}

static void test_dropping_clean_content_frees_it(void **state)
{
    lf_tree *tree = *state;
    fake_image image = {.stream = "stored content", .length = 14, .expected_key = 9};
    lf_tree_set_content_loader(tree, fake_loader, &image);
    assert_int_equal(lf_tree_create(tree, "/f", 0644, true), 0);
    assert_int_equal(lf_tree_write(tree, "/f", "stored content", 14, 0), 14);
    assert_int_equal(lf_tree_write(tree, "/f", "x", 1, 9000), 1); /* a second chunk */
    assert_int_equal(lf_tree_truncate(tree, "/f", 14), 0);
    assert_int_equal(used_blocks(tree), 1);
    lf_node *file = lf_node_lookup(lf_tree_root(tree), "f");
    assert_int_equal(lf_node_content_key(file), 0);
    lf_node_set_content_key(file, 9, false); /* e.g. after a commit wrote stream 9 */
    assert_int_equal(lf_node_content_key(file), 9);
    assert_false(lf_node_content_pending(file));
    assert_int_equal(used_blocks(tree), 1);
    /* Pending without a key would lose the content: ignored. */
    lf_node_set_content_key(file, 0, true);
    assert_false(lf_node_content_pending(file));
    assert_int_equal(used_blocks(tree), 1);
    lf_node_set_content_key(file, 9, true);
    assert_true(lf_node_content_pending(file));
    assert_int_equal(used_blocks(tree), 0);
    assert_int_equal(stat_of(tree, "/f").st_size, 14);
    char buffer[32];
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 14);
    assert_memory_equal(buffer, "stored content", 14);
    assert_int_equal(image.calls, 1);
    assert_int_equal(used_blocks(tree), 1);
    /* Re-keying a pending file keeps it pending. */
    lf_node_set_content_key(file, 9, true);
    lf_node_set_content_key(file, 11, false);
    assert_true(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 11);
    image.expected_key = 11;
    assert_int_equal(lf_tree_load_content(tree, file), 0);
    assert_false(lf_node_content_pending(file));
    assert_int_equal(lf_tree_load_content(tree, file), 0); /* loaded: nothing to do */
    assert_int_equal(image.calls, 2);
    /* Unlinking a loaded file returns its chunks to the usage count. */
    assert_int_equal(lf_tree_unlink(tree, "/f"), 0);
    assert_int_equal(used_blocks(tree), 0);
}

static void test_key_and_pending_belong_to_the_node(void **state)
{
    lf_tree *tree = *state;
    fake_image image;
    lf_node *file = pending_file(tree, &image);
    assert_int_equal(lf_tree_mkdir(tree, "/d", 0755), 0);
    assert_int_equal(lf_tree_rename(tree, "/f", "/d/g", 0), 0);
    assert_int_equal(lf_tree_link(tree, "/d/g", "/h"), 0);
    assert_true(lf_node_content_pending(file));
    assert_int_equal(lf_node_content_key(file), 7);
    char buffer[32];
    assert_int_equal(lf_tree_read(tree, "/h", buffer, sizeof buffer, 0), 14);
    assert_int_equal(image.calls, 1);
    assert_false(lf_node_content_pending(lf_node_lookup(lf_tree_root(tree), "h")));
    assert_int_equal(lf_tree_read(tree, "/d/g", buffer, sizeof buffer, 0), 14);
    assert_int_equal(image.calls, 1);
    assert_int_equal(lf_node_content_key(file), 7);
    /* Content changes through the raw accessors clear the key too. */
    assert_int_equal(lf_node_set_size(file, 14), 0);
    assert_int_equal(lf_node_content_key(file), 7); /* same size: no change */
    assert_int_equal(lf_node_set_size(file, 15), 0);
    assert_int_equal(lf_node_content_key(file), 0);
    lf_node_set_content_key(file, 7, false);
    assert_int_equal(lf_node_write(file, "S", 1, 0), 1);
    assert_int_equal(lf_node_content_key(file), 0);
    /* Other node types have no content key. */
    lf_node *directory = lf_node_lookup(lf_tree_root(tree), "d");
    lf_node_set_content_key(directory, 3, true);
    assert_int_equal(lf_node_content_key(directory), 0);
    assert_false(lf_node_content_pending(directory));
}

/* A loader that calls back into the tree gets -EDEADLK, not a recursion. */
static int64_t reentrant_loader(void *context, lf_node *file, uint64_t key)
{
    (void)key;
    char byte;
    int64_t status = lf_tree_read(context, "/f", &byte, 1, 0);
    assert_int_equal(status, -EDEADLK);
    return lf_node_write(file, "ok", 2, 0) == 2 ? 0 : -EIO;
}

static void test_loader_must_not_recurse(void **state)
{
    lf_tree *tree = *state;
    fake_image image;
    lf_node *file = pending_file(tree, &image);
    lf_node_set_size(file, 2);
    lf_node_set_content_key(file, 7, true);
    lf_tree_set_content_loader(tree, reentrant_loader, tree);
    char buffer[2];
    assert_int_equal(lf_tree_read(tree, "/f", buffer, sizeof buffer, 0), 2);
    assert_memory_equal(buffer, "ok", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_extends_with_zeros_and_holes_read_as_zeros, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_link_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_and_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readdir_lists_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relink_keeps_the_entry_in_place, setup, teardown),
        cmocka_unit_test(test_compare_names_each_changed_path),
        cmocka_unit_test_setup_teardown(test_timestamps_and_ownership, setup, teardown),
        cmocka_unit_test(test_empty_tree_has_no_paths),
        cmocka_unit_test_setup_teardown(test_pending_file_loads_once_on_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_load_leaves_file_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_to_pending_file_applies_to_loaded_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_of_pending_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropping_clean_content_frees_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_and_pending_belong_to_the_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_must_not_recurse, setup, teardown),
    };
    return cmocka_run_group_tests_name("tree", tests, NULL, NULL);
}
