#include "fuse/serve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "common/buffer.h"

int64_t lf_fuse_serve(const struct fuse_operations *operations, void *private_data,
                      const char *mountpoint, const lf_fuse_serve_options *options,
                      lf_diagnostic *diagnostic)
{
    lf_buffer own_options = {0};
    if (lf_buffer_printf(&own_options, "fsname=%s,subtype=%s,default_permissions", options->name,
                         options->name) < 0)
        return lf_fail(diagnostic, -ENOMEM, "out of memory");
    char *arguments[] = {"llmfuse", "-o", (char *)lf_buffer_string(&own_options), "-o",
                         (char *)options->mount_options, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(options->mount_options ? 5 : 3, arguments);
    /* libfuse explains a refused option on stderr itself */
    struct fuse *fuse = fuse_new(&args, operations, sizeof *operations, private_data);
    fuse_opt_free_args(&args);
    lf_buffer_free(&own_options);
    if (!fuse)
        return lf_fail(diagnostic, -EINVAL, "libfuse refused the mount options");
    if (fuse_mount(fuse, mountpoint) != 0) {
        fuse_destroy(fuse);
        return lf_fail(diagnostic, -EIO, "cannot mount on %s", mountpoint);
    }
    struct fuse_session *session = fuse_get_session(fuse);
    int64_t status = 0;
    if (fuse_daemonize(options->foreground) != 0)
        status = lf_fail(diagnostic, -EIO, "cannot daemonise");
    else if (fuse_set_signal_handlers(session) != 0)
        status = lf_fail(diagnostic, -EIO, "cannot install signal handlers");
    if (!options->foreground)
        openlog("llmfuse", LOG_PID, LOG_DAEMON);
    if (status == 0) {
        if (options->started)
            options->started(private_data);
        /* 0 when unmounted, the signal's number when signalled */
        int loop_status = options->multithreaded ? fuse_loop_mt(fuse, 0) : fuse_loop(fuse);
        fuse_remove_signal_handlers(session);
        if (loop_status < 0)
            status = lf_fail(diagnostic, loop_status, "serving %s failed: %s", mountpoint,
                             strerror(-loop_status));
    }
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    return status;
}
