/* llmfuse loopback SRC MNT --log FILE [-f] [-o OPTIONS] [--log-data=full|hash] */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "common/buffer.h"
#include "fuse/loopback.h"

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmfuse loopback SRC MNT --log FILE [-f] [-o OPTIONS] [--log-data=full|hash]\n"
            "Mounts a passthrough of directory SRC at MNT that appends one JSON line per\n"
            "operation to FILE (docs/FORMAT.md section 4.6).\n"
            "  --log FILE         the operation log, appended to\n"
            "  -f, --foreground   stay in the foreground instead of daemonising\n"
            "  -o OPTIONS         libfuse mount options (allow_other, default_permissions, ro...)\n"
            "  --log-data=full    log write payloads in full, base64 (the default)\n"
            "  --log-data=hash    log write payloads as their XXH64\n"
            "Unmount with 'fusermount3 -u MNT'.\n");
}

int lf_command_loopback(int argc, char **argv)
{
    enum { OPTION_LOG = 256, OPTION_LOG_DATA };
    static const struct option options[] = {
        {"log", required_argument, NULL, OPTION_LOG},
        {"log-data", required_argument, NULL, OPTION_LOG_DATA},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    lf_loopback_config config = {.data_mode = LF_LOOPBACK_DATA_FULL};
    bool foreground = false;
    lf_buffer mount_options = {0}; /* every -o, joined by commas */
    int exit_status = LF_EXIT_ERROR;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "fho:", options, NULL)) != -1) {
        switch (option) {
        case OPTION_LOG:
            config.log_path = optarg;
            break;
        case OPTION_LOG_DATA:
            if (strcmp(optarg, "full") == 0) {
                config.data_mode = LF_LOOPBACK_DATA_FULL;
            } else if (strcmp(optarg, "hash") == 0) {
                config.data_mode = LF_LOOPBACK_DATA_HASH;
            } else {
                fprintf(stderr, "llmfuse loopback: --log-data takes 'full' or 'hash', not '%s'\n",
                        optarg);
                goto done;
            }
            break;
        case 'f':
            foreground = true;
            break;
        case 'o':
            if ((mount_options.length && lf_buffer_append_string(&mount_options, ",") < 0) ||
                lf_buffer_append_string(&mount_options, optarg) < 0) {
                fprintf(stderr, "llmfuse loopback: out of memory\n");
                goto done;
            }
            break;
        case 'h':
            print_usage(stdout);
            exit_status = LF_EXIT_OK;
            goto done;
        default:
            print_usage(stderr);
            goto done;
        }
    }
    if (optind != argc - 2 || !config.log_path) {
        print_usage(stderr);
        goto done;
    }
    config.source = argv[optind];
    config.mount_options = mount_options.length ? lf_buffer_string(&mount_options) : NULL;
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_loopback_serve(&config, argv[optind + 1], foreground, &diagnostic);
    if (lf_is_error(status))
        fprintf(stderr, "llmfuse loopback: %s\n",
                diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
    else
        exit_status = LF_EXIT_OK;
done:
    lf_buffer_free(&mount_options);
    return exit_status;
}
