/* Mounting and serving a libfuse high-level filesystem: what the image and
 * engine front ends share (the loopback also serves from a thread of its
 * caller, so it mounts by itself). */
#ifndef LLMFUSE_FUSE_SERVE_H
#define LLMFUSE_FUSE_SERVE_H

#define FUSE_USE_VERSION 31

#include <fuse.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef struct lf_fuse_serve_options {
    const char *name;          /* the mount's fsname and subtype */
    const char *mount_options; /* the user's -o options, or NULL */
    bool foreground;           /* else daemonise once mounted, as FUSE filesystems do */
    bool multithreaded;
    /* Called when serving starts, after daemonising: threads started
     * before the fork would not survive it.  May be NULL. */
    void (*started)(void *private_data);
} lf_fuse_serve_options;

/* Mounts the operations at mountpoint with default_permissions (the kernel
 * checks permissions against the attributes the filesystem reports) and
 * serves them until the filesystem is unmounted (fusermount3 -u) or the
 * process gets SIGINT, SIGTERM or SIGHUP.  Returns once unmounted; the
 * caller then saves what it holds.  A daemon's messages go to syslog
 * (openlog is done here). */
int64_t lf_fuse_serve(const struct fuse_operations *operations, void *private_data,
                      const char *mountpoint, const lf_fuse_serve_options *options,
                      lf_diagnostic *diagnostic);

#endif
