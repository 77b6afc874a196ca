/* The logging loopback filesystem: a libfuse passthrough of a source
 * directory that appends one JSON line per operation to a log (the format
 * is docs/FORMAT.md §4.6).
 *
 * Every operation is the corresponding *at() call on a descriptor of the
 * source opened before mounting, so results are those of the same call on
 * the source itself (the mount may even hide the source).  The filesystem
 * creates nodes with exactly the modes the kernel passes, which already
 * carry the caller's umask: the serving process must run with umask 0
 * (lf_loopback_serve sets it; callers of lf_loopback_mount_start do).
 *
 * Requests are served by one thread, so the log's order is the order in
 * which the operations were answered. */
#ifndef LLMFUSE_FUSE_LOOPBACK_H
#define LLMFUSE_FUSE_LOOPBACK_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef enum lf_loopback_data_mode {
    LF_LOOPBACK_DATA_FULL, /* write payloads in the log in full, base64 */
    LF_LOOPBACK_DATA_HASH, /* write payloads as their XXH64 (with the size) */
} lf_loopback_data_mode;

typedef struct lf_loopback_config {
    const char *source;        /* the directory served */
    const char *log_path;      /* appended to, created (0644) if missing */
    lf_loopback_data_mode data_mode;
    const char *mount_options; /* libfuse -o options ("allow_other,ro"), or NULL */
} lf_loopback_config;

/* Mounts the loopback at mountpoint and serves it until it is unmounted
 * (fusermount3 -u) or the process gets SIGINT, SIGTERM or SIGHUP.  Unless
 * foreground, the process daemonises once the mount is in place, as FUSE
 * filesystems do; errors after that point go nowhere but the status. */
int64_t lf_loopback_serve(const lf_loopback_config *config, const char *mountpoint,
                          bool foreground, lf_diagnostic *diag);

/* A loopback mount served by a thread of the calling process, for callers
 * that want to operate on it themselves (the simulator). */
typedef struct lf_loopback_mount lf_loopback_mount;

int64_t lf_loopback_mount_start(const lf_loopback_config *config, const char *mountpoint,
                                lf_loopback_mount **mount, lf_diagnostic *diag);
/* Unmounts (umount2, so root only, like the simulator), waits for the
 * serving thread and frees everything. */
void lf_loopback_mount_stop(lf_loopback_mount *mount);

#endif
