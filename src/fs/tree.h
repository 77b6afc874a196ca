/* The in-memory filesystem tree: the one state type behind the simulator's
 * reference, the XML form, the image's metadata and the engine's state.
 *
 * Nodes are inodes: a regular file may be reachable under several names
 * (hard links); a directory has exactly one parent.  Operations take
 * absolute paths ("/a/b") inside the tree and behave like the Linux syscall
 * named in their comment, with the same errno results (as -errno), run with
 * root's privileges: permission checks are left to the kernel
 * (default_permissions), as for any FUSE filesystem.  Intermediate symlinks
 * are followed (at most 40, then ELOOP); whether the final component is
 * followed is the syscall's rule.
 *
 * The tree is not thread-safe; front ends serialise access. */
#ifndef LLMFUSE_FS_TREE_H
#define LLMFUSE_FS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#define LF_TREE_NAME_MAX 255
#define LF_TREE_PATH_MAX 4096 /* including the terminating NUL, as PATH_MAX */
#define LF_TREE_SYMLINK_FOLLOW_MAX 40
#define LF_TREE_MAX_FILE_SIZE (UINT64_C(1) << 44) /* ext4's limit; EFBIG beyond */

typedef enum lf_node_type {
    LF_NODE_DIRECTORY = 1,
    LF_NODE_FILE,
    LF_NODE_SYMLINK,
} lf_node_type;

typedef struct lf_tree lf_tree;
typedef struct lf_node lf_node;

/* A read-only view of a node; strings point into the tree and stay valid
 * until the node changes. Also the attribute set for lf_tree_add_node. */
typedef struct lf_node_info {
    lf_node_type type;
    uint32_t permissions; /* mode & 07777 */
    uint32_t uid, gid;
    const char *owner, *group; /* user and group names as the XML shows them */
    struct timespec atime, mtime, ctime;
    uint64_t size; /* file bytes, symlink target length, 0 for directories */
    uint32_t link_count;
    uint64_t inode_number;
    const char *symlink_target; /* symlinks only */
} lf_node_info;

typedef void (*lf_tree_clock_fn)(void *context, struct timespec *now);

/* A tree with no root directory: the state `<filesystem />` describes. */
lf_tree *lf_tree_new(void);
void lf_tree_free(lf_tree *tree);
/* Clock for timestamps the operations set (default: CLOCK_REALTIME). */
void lf_tree_set_clock(lf_tree *tree, lf_tree_clock_fn clock, void *context);
/* Owner of nodes the operations create (default root:root). */
void lf_tree_set_credentials(lf_tree *tree, uint32_t uid, uint32_t gid);

/* --- Building and walking (parsers, scanners, writers) --- */

/* Creates the root directory; -EEXIST if there is one. */
int64_t lf_tree_make_root(lf_tree *tree, const lf_node_info *attributes, lf_node **root);
lf_node *lf_tree_root(const lf_tree *tree);
/* Adds `name` under `parent` with the given type, permissions, owner, group,
 * times and (for symlinks) target; files start empty (see lf_node_write).
 * -EEXIST for a duplicate name, -EINVAL for a name that is empty, ".", ".."
 * or contains '/', -ENAMETOOLONG beyond LF_TREE_NAME_MAX. */
int64_t lf_tree_add_node(lf_tree *tree, lf_node *parent, const char *name,
                         const lf_node_info *attributes, lf_node **node);
/* Another name for an existing file node (a hard link). */
int64_t lf_tree_add_link(lf_tree *tree, lf_node *parent, const char *name, lf_node *file);

void lf_node_get_info(const lf_node *node, lf_node_info *info);
/* Children in the tree's order: as added by lf_tree_add_node and
 * lf_tree_add_link, and newest first for entries that operations made
 * (lf_tree_create, mkdir, symlink, link, rename: docs/FORMAT.md §1.2). */
size_t lf_node_child_count(const lf_node *directory);
lf_node *lf_node_child(const lf_node *directory, size_t index, const char **name);
/* The entry of the given rank in bytewise order of the names. */
lf_node *lf_node_child_by_name(const lf_node *directory, size_t rank, const char **name);
lf_node *lf_node_lookup(const lf_node *directory, const char *name);
/* File content access without path resolution, timestamp updates or
 * loading: these are the raw accessors.  A pending file (see below) holds no
 * bytes in memory, so lf_node_read reads zeros from it and
 * lf_node_for_each_extent visits nothing; callers that need its real bytes
 * check lf_node_content_pending first and call lf_tree_load_content (or use
 * the stream named by its key directly). */
int64_t lf_node_read(const lf_node *file, void *buffer, size_t size, uint64_t offset);
/* Writing bytes, or changing the size, sets the content key to 0: the
 * content no longer equals the stream.  Neither loads nor clears pending:
 * on a pending file they are meant for the loader alone. */
int64_t lf_node_write(lf_node *file, const void *data, size_t size, uint64_t offset);
/* Sets a file's whole content to `size` bytes (sparse regions read as 0). */
int64_t lf_node_set_size(lf_node *file, uint64_t size);
/* Calls visit for each allocated extent of file content, in offset order;
 * bytes between extents are zeros. Stops at and returns a negative result. */
int64_t lf_node_for_each_extent(const lf_node *file,
                                int64_t (*visit)(void *context, uint64_t offset,
                                                 const uint8_t *data, size_t length),
                                void *context);

/* --- Content backed by stored streams (a mounted image) ---
 *
 * Mounting a compressed image must not decode every file up front, and the
 * decoded content of files that are only read should be droppable again to
 * bound memory; a commit should copy, not re-encode, files still equal to a
 * stream of the image.  So each file node carries:
 *
 * - a content key: the caller's name for a stored stream whose bytes equal
 *   the file's content exactly, or 0 when no stream is known to (new files,
 *   and any file once its content changes);
 * - a pending flag: the content is not in memory.  The file keeps its size
 *   (stat is unaffected; st_blocks counts the file as fully allocated, so
 *   tools do not take it for a hole) and path operations that read or change
 *   its bytes first have the tree's loader decode stream `key` into it.
 *
 * The tree only knows keys as numbers; what they name is the caller's. */

/* Fills `file`, which is pending and empty with its final size set, with
 * the bytes of stream `key`, through lf_node_write (or lf_node_set_size).
 * Returns 0, or a -errno (e.g. -EIO for a damaged stream) to fail the
 * operation that needed the content.  It must not call path operations on
 * the tree (they fail with -EDEADLK while a load runs).  The tree, not the
 * loader, then clears pending and keeps the key; on failure it drops what
 * the loader wrote and leaves the file pending and unchanged.  A load that
 * changes the file's size fails with -EIO: the stream does not match. */
typedef int64_t (*lf_tree_content_loader_fn)(void *context, lf_node *file, uint64_t key);
/* Without a loader, operations that need a pending file's bytes get -EIO. */
void lf_tree_set_content_loader(lf_tree *tree, lf_tree_content_loader_fn loader, void *context);
/* Records that file's content equals stream `key` (0: none).  With pending
 * true, also frees the content (the size stays) so that it is loaded again
 * when next needed; only clean content may be dropped, so pending with key 0
 * is ignored (there would be nothing to load from).  With pending false
 * nothing is loaded or freed: a pending file stays pending, now under `key`
 * (a commit that moved the stream re-keys it this way).  Set the size before
 * the key: lf_node_set_size clears it.  No effect on other node types. */
void lf_node_set_content_key(lf_node *file, uint64_t key, bool pending);
uint64_t lf_node_content_key(const lf_node *file); /* 0 for non-files */
bool lf_node_content_pending(const lf_node *file);  /* false for non-files */
/* Loads a pending file's content now (as a path read would); 0 when it is
 * not pending, else the loader's result. For callers of the raw accessors. */
int64_t lf_tree_load_content(lf_tree *tree, lf_node *file);

/* --- Operations with Linux semantics --- */

int64_t lf_tree_getattr(lf_tree *tree, const char *path, struct stat *out); /* lstat */
typedef int (*lf_readdir_fn)(void *context, const char *name, const struct stat *attributes);
/* opendir+readdir: ".", "..", then children in the tree's order. Stops early when
 * the callback returns non-zero. Returns the number of entries delivered. */
int64_t lf_tree_readdir(lf_tree *tree, const char *path, lf_readdir_fn callback, void *context);
/* open(O_RDONLY)+pread / open(O_WRONLY)+pwrite: bytes moved.  Both load a
 * pending file first (a read that covers no byte, or an empty write, does
 * not) and return the loader's error, changing nothing, when it fails. */
int64_t lf_tree_read(lf_tree *tree, const char *path, void *buffer, size_t size, uint64_t offset);
int64_t lf_tree_write(lf_tree *tree, const char *path, const void *data, size_t size,
                      uint64_t offset);
/* open(O_CREAT|O_WRONLY, mode), with O_EXCL when exclusive. */
int64_t lf_tree_create(lf_tree *tree, const char *path, uint32_t mode, bool exclusive);
int64_t lf_tree_mkdir(lf_tree *tree, const char *path, uint32_t mode);
int64_t lf_tree_unlink(lf_tree *tree, const char *path);
int64_t lf_tree_rmdir(lf_tree *tree, const char *path);
/* renameat2; flags 0 or RENAME_NOREPLACE (others: -EINVAL). */
int64_t lf_tree_rename(lf_tree *tree, const char *from, const char *to, unsigned flags);
int64_t lf_tree_chmod(lf_tree *tree, const char *path, uint32_t mode);
/* lchown; (uint32_t)-1 leaves that id unchanged. */
int64_t lf_tree_chown(lf_tree *tree, const char *path, uint32_t uid, uint32_t gid);
/* Loads a pending file first unless length is 0 (the content is simply
 * empty: no stream needed) or the current size (no byte changes). */
int64_t lf_tree_truncate(lf_tree *tree, const char *path, int64_t length);
int64_t lf_tree_symlink(lf_tree *tree, const char *target, const char *link_path);
/* readlink: target length (no NUL added); copies at most size bytes. */
int64_t lf_tree_readlink(lf_tree *tree, const char *path, char *buffer, size_t size);
int64_t lf_tree_link(lf_tree *tree, const char *existing, const char *new_path);
/* Makes the non-directory at path another name of existing's file, in
 * place: its entry keeps its position, no time changes, and the node it
 * named loses that name.  For loaders that learn of hard links after
 * building the tree. */
int64_t lf_tree_relink(lf_tree *tree, const char *existing, const char *path);
/* utimensat(AT_SYMLINK_NOFOLLOW); times[0] atime, times[1] mtime; NULL, UTIME_NOW
 * and UTIME_OMIT as the syscall. */
int64_t lf_tree_utimens(lf_tree *tree, const char *path, const struct timespec times[2]);
int64_t lf_tree_statfs(lf_tree *tree, struct statvfs *out);

/* --- Comparing states --- */

/* Calls changed with each path ("/a/b") where new differs from old as the
 * XML state shows them: "/" when the roots' attributes differ; a name on one
 * side only; a node whose type, mode, owner, group, mtime (seconds), size,
 * target or content differs; a directory whose shared names come in another
 * order.  Nothing is reported below a name on one side only.  Content is
 * compared as held: load pending files first.  Stops at the callback's
 * first non-zero return and returns it; else 0, or -ENOMEM. */
typedef int64_t (*lf_tree_change_fn)(void *context, const char *path);
int64_t lf_tree_compare(const lf_tree *old, const lf_tree *new, lf_tree_change_fn changed,
                        void *context);

#endif
