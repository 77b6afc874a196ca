/* The simulator's filesystem operations, run two ways: as system calls on
 * a real directory and on the in-memory tree (fs/tree.h), so the results
 * can be compared.  Each operation is the syscall named in its comment,
 * with Linux semantics on both sides. */
#ifndef LLMFUSE_SIM_OPERATION_H
#define LLMFUSE_SIM_OPERATION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "common/buffer.h"
#include "fs/tree.h"

typedef enum lf_sim_op {
    /* Reads: the dataset's <R> examples, answered with a result. */
    LF_SIM_GETATTR,  /* lstat */
    LF_SIM_READDIR,  /* opendir + readdir */
    LF_SIM_READ,     /* open(O_RDONLY) + pread */
    LF_SIM_READLINK, /* readlink */
    /* Writes: <W> examples, answered with the new state. */
    LF_SIM_WRITE,    /* open(O_WRONLY) + pwrite */
    LF_SIM_CREATE,   /* open(O_CREAT | O_EXCL | O_WRONLY, mode) */
    LF_SIM_MKDIR,    /* mkdir */
    LF_SIM_UNLINK,   /* unlink */
    LF_SIM_RMDIR,    /* rmdir */
    LF_SIM_CHMOD,    /* chmod */
    LF_SIM_CHOWN,    /* lchown */
    LF_SIM_TRUNCATE, /* truncate */
    LF_SIM_RENAME,   /* renameat2 */
    LF_SIM_SYMLINK,  /* symlink */
    LF_SIM_UTIMENS,  /* utimensat(AT_SYMLINK_NOFOLLOW) */
    LF_SIM_OP_COUNT
} lf_sim_op;

/* "getattr", "readdir", ...: the names of the operation lines. */
const char *lf_sim_op_name(lf_sim_op op);
/* The op named so, or -EINVAL. */
int64_t lf_sim_op_from_name(const char *name);
bool lf_sim_op_is_read(lf_sim_op op);
/* Whether a successful op can set an mtime: the write kinds but chmod and
 * chown (which move only ctime, not in the state). */
bool lf_sim_op_sets_time(lf_sim_op op);

#define LF_SIM_PATH_MAX 1024

typedef struct lf_sim_operation {
    lf_sim_op op;
    char path[LF_SIM_PATH_MAX];  /* absolute inside the sandbox: "/a/b" */
    char other[LF_SIM_PATH_MAX]; /* rename: the new path; symlink: the target */
    /* The mode as libfuse hands it to a filesystem: create's carries
     * S_IFREG, chmod's the file type of the node it changes, mkdir's none.
     * Only the permission bits reach the syscall. */
    uint32_t mode;
    uint32_t uid, gid;   /* chown; UINT32_MAX leaves the id unchanged */
    unsigned flags;      /* rename: 0 or RENAME_NOREPLACE */
    uint64_t offset;     /* read, write */
    uint64_t size;       /* read: bytes asked for */
    int64_t length;      /* truncate */
    lf_buffer data;      /* write: the bytes */
    bool times_now;      /* utimens: times NULL (both now) */
    struct timespec times[2]; /* utimens otherwise: atime, mtime (UTIME_OMIT allowed) */
    /* The second the operation happens at (seconds since 1970): the times
     * it sets are this.  Its line shows it when the operation can set an
     * mtime (lf_sim_op_sets_time). */
    int64_t now;
} lf_sim_operation;

void lf_sim_operation_free(lf_sim_operation *operation);

typedef struct lf_sim_outcome {
    int64_t status; /* the syscall's result or -errno */
    /* getattr: the lstat result. */
    struct stat attributes;
    /* read: the bytes; readlink: the target; readdir: the names, each
     * followed by a NUL, "." and ".." first, then in the tree's order
     * (lf_tree_readdir) or, from the disk, in bytewise order. */
    lf_buffer bytes;
} lf_sim_outcome;

void lf_sim_outcome_free(lf_sim_outcome *outcome);

/* Sorts a readdir outcome's names as the disk's listing is sorted, so that
 * a tree's listing compares with it. 0 or -ENOMEM. */
int64_t lf_sim_outcome_sort_names(lf_sim_outcome *outcome);

/* Runs the operation with syscalls below directory `root`.  Returns 0 with
 * the result in *outcome, or -ENOMEM. */
int64_t lf_sim_operation_run_real(const lf_sim_operation *operation, const char *root,
                                  lf_sim_outcome *outcome);
/* Runs the operation on the tree. Returns 0 or -ENOMEM. */
int64_t lf_sim_operation_run_tree(const lf_sim_operation *operation, lf_tree *tree,
                                  lf_sim_outcome *outcome);

#endif
