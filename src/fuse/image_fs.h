/* The compressed filesystem's FUSE front end: an image (image/image.h)
 * mounted read-write.  The image's tree is served from memory, each file's
 * content decoded on first access; clean contents are dropped again when
 * they exceed the cache size.  Changes are committed to the image (a new
 * image written beside it and renamed over it, unchanged streams copied) on
 * fsync, every commit interval, and when the filesystem is unmounted.
 *
 * Requests are served by several threads; one lock serialises access to
 * the tree, so a commit or a large file's first read holds the others. */
#ifndef LLMFUSE_FUSE_IMAGE_FS_H
#define LLMFUSE_FUSE_IMAGE_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef struct lf_image_fs_config {
    const char *image_path;
    const char *model_name;    /* NULL: the built-in model the image names */
    const char *mount_options; /* libfuse -o options ("ro,allow_other"), or NULL */
    uint64_t cache_bytes;      /* clean decoded contents kept in memory, at most (about) */
    unsigned commit_interval;  /* seconds between commits of changes; 0: only fsync and unmount */
    uint64_t pack_size;        /* packs of new contents (lf_image_write_options) */
    bool foreground;
} lf_image_fs_config;

/* Opens the image, mounts it at mountpoint and serves it until unmounted
 * (fusermount3 -u) or signalled (SIGINT, SIGTERM, SIGHUP), then commits.
 * Unless foreground, daemonises once the mount is in place: the command
 * returns when the filesystem is usable, and the image holds every change
 * when the serving process has exited. */
int64_t lf_image_fs_serve(const lf_image_fs_config *config, const char *mountpoint,
                          lf_diagnostic *diagnostic);

#endif
