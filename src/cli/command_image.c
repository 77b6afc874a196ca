/* The compressed filesystem's commands: mkfs, mount, unpack, ls, cat,
 * fsck, info (docs/FORMAT.md §7 is the image format). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/buffer.h"
#include "common/file.h"
#include "common/parallel.h"
#include "fs/materialize.h"
#include "fs/scan.h"
#include "fuse/engine_fs.h"
#include "fuse/image_fs.h"
#include "image/image.h"

/* Options every image command takes. */
typedef struct image_options {
    const char *model; /* -m: NULL for the image's built-in model */
    unsigned threads;
    bool force, foreground, quiet;
    lf_buffer mount_options;
    uint64_t cache_megabytes;
    unsigned commit_interval;
    uint64_t pack_kib; /* mkfs --pack-size */
    const char *engine, *state, *record; /* mount --engine=KIND [--state FILE] [--record FILE] */
    bool verify, unguarded;
    unsigned retries; /* mount --engine=model --retries N */
} image_options;

enum {
    OPTION_THREADS = 256,
    OPTION_CACHE,
    OPTION_COMMIT,
    OPTION_PACK,
    OPTION_ENGINE,
    OPTION_STATE,
    OPTION_VERIFY,
    OPTION_RECORD,
    OPTION_RETRIES,
    OPTION_UNGUARDED,
};

static const struct option long_options[] = {
    {"model", required_argument, NULL, 'm'},
    {"threads", required_argument, NULL, OPTION_THREADS},
    {"force", no_argument, NULL, 'F'},
    {"foreground", no_argument, NULL, 'f'},
    {"quiet", no_argument, NULL, 'q'},
    {"cache-size", required_argument, NULL, OPTION_CACHE},
    {"commit-interval", required_argument, NULL, OPTION_COMMIT},
    {"pack-size", required_argument, NULL, OPTION_PACK},
    {"engine", required_argument, NULL, OPTION_ENGINE},
    {"state", required_argument, NULL, OPTION_STATE},
    {"verify", no_argument, NULL, OPTION_VERIFY},
    {"record", required_argument, NULL, OPTION_RECORD},
    {"retries", required_argument, NULL, OPTION_RETRIES},
    {"unguarded", no_argument, NULL, OPTION_UNGUARDED},
    {"help", no_argument, NULL, 'h'},
    {0},
};

static bool parse_count(const char *text, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-')
        return false;
    *value = parsed;
    return true;
}

static int parse_flags(int argc, char **argv, const char *usage, image_options *options,
                       int *exit_status);

/* Parses options into *options and checks that between fewest and most
 * operands follow; returns the index of the first operand, or -1 after
 * printing why (or the usage, for -h: *exit_status says which). */
static int parse_options(int argc, char **argv, const char *usage, int fewest, int most,
                         image_options *options, int *exit_status)
{
    int first = parse_flags(argc, argv, usage, options, exit_status);
    if (first >= 0 && (argc - first < fewest || argc - first > most)) {
        fputs(usage, stderr);
        first = -1;
    }
    if (first < 0)
        lf_buffer_free(&options->mount_options);
    else if (options->mount_options.length)
        lf_buffer_string(&options->mount_options); /* NUL-terminated */
    return first;
}

static int parse_flags(int argc, char **argv, const char *usage, image_options *options,
                       int *exit_status)
{
    *options = (image_options){.cache_megabytes = 256, .commit_interval = 30,
                               .pack_kib = LF_IMAGE_PACK_SIZE / 1024,
                               .retries = LF_ENGINE_RETRIES};
    *exit_status = LF_EXIT_ERROR;
    optind = 1;
    int option;
    uint64_t number;
    while ((option = getopt_long(argc, argv, "m:fFqho:", long_options, NULL)) != -1) {
        switch (option) {
        case 'm':
            options->model = optarg;
            break;
        case 'f':
            options->foreground = true;
            break;
        case 'F':
            options->force = true;
            break;
        case 'q':
            options->quiet = true;
            break;
        case 'o':
            if ((options->mount_options.length &&
                 lf_buffer_append_string(&options->mount_options, ",") < 0) ||
                lf_buffer_append_string(&options->mount_options, optarg) < 0)
                return -1;
            break;
        case OPTION_THREADS:
        case OPTION_CACHE:
        case OPTION_COMMIT:
        case OPTION_PACK:
        case OPTION_RETRIES:
            if (!parse_count(optarg, &number) || number > 1u << 20 ||
                (option == OPTION_PACK && number > 16384) ||
                (option == OPTION_RETRIES && number > LF_ENGINE_RETRIES_MAX)) {
                fprintf(stderr, "llmfuse %s: '%s' is not a valid number for --%s\n", argv[0],
                        optarg, option == OPTION_THREADS ? "threads"
                                : option == OPTION_CACHE ? "cache-size"
                                : option == OPTION_PACK  ? "pack-size"
                                : option == OPTION_RETRIES ? "retries" : "commit-interval");
                return -1;
            }
            if (option == OPTION_THREADS)
                options->threads = (unsigned)number;
            else if (option == OPTION_CACHE)
                options->cache_megabytes = number;
            else if (option == OPTION_PACK)
                options->pack_kib = number;
            else if (option == OPTION_RETRIES)
                options->retries = (unsigned)number;
            else
                options->commit_interval = (unsigned)number;
            break;
        case OPTION_ENGINE:
            options->engine = optarg;
            break;
        case OPTION_STATE:
            options->state = optarg;
            break;
        case OPTION_VERIFY:
            options->verify = true;
            break;
        case OPTION_UNGUARDED:
            options->unguarded = true;
            break;
        case OPTION_RECORD:
            options->record = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            *exit_status = LF_EXIT_OK;
            return -1;
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    return optind;
}

/* --pack-size in KiB as lf_image_write_options wants it (0 KiB: no packs). */
static uint64_t pack_size_of(const image_options *options)
{
    return options->pack_kib ? options->pack_kib * 1024 : 1;
}

static int failed(const char *command, const lf_diagnostic *diagnostic, int64_t status)
{
    fprintf(stderr, "llmfuse %s: %s\n", command,
            diagnostic->message[0] ? diagnostic->message : lf_error_string(status));
    return LF_EXIT_ERROR;
}

/* ---------------------------------------------------------------- */
/* mkfs                                                              */

static const char mkfs_usage[] =
    "usage: llmfuse mkfs SRC IMAGE [-m MODEL] [--threads N] [--pack-size KIB] [--force] [-q]\n"
    "Packs directory SRC into a compressed filesystem image: the metadata and the\n"
    "distinct file contents coded by the model (a file's path read first), small\n"
    "text files together in packs, falling back per stream to zstd or stored bytes.\n"
    "Fifos, sockets and device nodes cannot be stored: each is named on stderr and\n"
    "skipped.\n"
    "  -m, --model MODEL  a GGUF file or a built-in model (default: base)\n"
    "  --threads N        coding threads (default: every core); never changes the bytes\n"
    "  --pack-size KIB    packs of text files under 16 KiB hold up to KIB KiB (default\n"
    "                     32; 0: every file alone); reading a file decodes its pack\n"
    "  -F, --force        replace an existing IMAGE\n"
    "  -q, --quiet        no progress on stderr\n";

typedef struct mkfs_progress {
    bool show;
    time_t last;
} mkfs_progress;

static void show_progress(void *context, uint64_t done, uint64_t total)
{
    mkfs_progress *progress = context;
    time_t now = time(NULL);
    if (!progress->show || (now == progress->last && done < total))
        return;
    progress->last = now;
    fprintf(stderr, "\rllmfuse mkfs: coded %" PRIu64 " of %" PRIu64 " KiB (%.0f%%)", done >> 10,
            total >> 10, total ? 100.0 * (double)done / (double)total : 100.0);
    if (done == total)
        fputc('\n', stderr);
}

static void report_skipped(void *context, const char *path, const char *what)
{
    (*(uint64_t *)context)++;
    fprintf(stderr, "llmfuse mkfs: skipped '%s': a %s cannot be stored\n", path, what);
}

static int command_mkfs(int argc, char **argv)
{
    image_options options;
    int exit_status;
    int first = parse_options(argc, argv, mkfs_usage, 2, 2, &options, &exit_status);
    if (first < 0)
        return exit_status;
    const char *source = argv[first], *image_path = argv[first + 1];
    lf_diagnostic diagnostic = {0};
    struct stat existing;
    if (!options.force && stat(image_path, &existing) == 0) {
        fprintf(stderr, "llmfuse mkfs: '%s' exists; use --force to replace it\n", image_path);
        return LF_EXIT_ERROR;
    }
    lf_model *model = NULL;
    lf_tree *tree = NULL;
    lf_image *image = NULL;
    uint64_t skipped = 0;
    struct timespec started, ended;
    clock_gettime(CLOCK_MONOTONIC, &started);
    int64_t status = lf_model_open(options.model ? options.model : LF_MODEL_DEFAULT, &model,
                                   &diagnostic);
    if (status == 0)
        status = lf_scan_directory(source, report_skipped, &skipped, &tree, &diagnostic);
    mkfs_progress progress = {.show = !options.quiet && isatty(STDERR_FILENO)};
    lf_image_write_options write_options = {.model = model, .threads = options.threads,
                                            .pack_size = pack_size_of(&options),
                                            .progress = show_progress,
                                            .progress_context = &progress};
    lf_image_write_report report = {0};
    if (status == 0)
        status = lf_image_write(tree, image_path, &write_options, &image, &report, &diagnostic);
    clock_gettime(CLOCK_MONOTONIC, &ended);
    if (status == 0 && !options.quiet)
        fprintf(stderr,
                "llmfuse mkfs: %s: %" PRIu64 " bytes, %" PRIu64 " file streams (%" PRIu64
                " duplicate contents stored once), %" PRIu64 " bytes coded, %.1f s, model %s\n",
                image_path, report.image_size, report.streams_coded, report.duplicates,
                report.bytes_coded,
                (double)(ended.tv_sec - started.tv_sec) + 1e-9 * (double)(ended.tv_nsec - started.tv_nsec),
                model->name);
    lf_image_close(image);
    lf_tree_free(tree);
    lf_model_free(model);
    lf_buffer_free(&options.mount_options);
    if (status < 0)
        return failed("mkfs", &diagnostic, status);
    return skipped ? LF_EXIT_WARNING : LF_EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* mount                                                             */

static const char mount_usage[] =
    "usage: llmfuse mount IMAGE MNT [-f] [-o OPTIONS] [-m MODEL] [--cache-size MB]\n"
    "                     [--commit-interval S] [--pack-size KIB]\n"
    "       llmfuse mount --engine=model|exact [-m MODEL] [--state FILE] [--verify]\n"
    "                     [--retries N] [--unguarded] [--record FILE.jsonl] [-f]\n"
    "                     [-o OPTIONS] MNT\n"
    "Mounts a compressed filesystem image read-write.  Files are decoded on first\n"
    "access; changes are written back to IMAGE (a new image beside it, renamed over\n"
    "it) on fsync, every commit interval and at unmount.  Unmount with\n"
    "'fusermount3 -u MNT'; the image holds every change once the llmfuse process\n"
    "has exited.\n"
    "  -f, --foreground        stay in the foreground instead of daemonising\n"
    "  -o OPTIONS              libfuse mount options (ro, allow_other, ...)\n"
    "  -m, --model MODEL       the image's model, when it is not built in\n"
    "  --cache-size MB         decoded contents kept in memory (default 256)\n"
    "  --commit-interval S     seconds between commits, 0 for none (default 30)\n"
    "  --pack-size KIB         packs of small text files that commits code (as mkfs)\n"
    "With --engine, the filesystem is implemented by the model (a GGUF file, -m,\n"
    "such as models/fs.gguf): every operation is a prompt, every answer validated;\n"
    "--engine=exact answers with the simulator's exact results instead.\n"
    "  --state FILE            load the state (XML, or LM-compressed when it ends in\n"
    "                          .llmz) and save it at fsync and unmount\n"
    "  --verify                compute the exact answers too and report divergences\n"
    "  --retries N             after an invalid answer to a change, up to N second\n"
    "                          opinions: the model's completion again, taking its\n"
    "                          runner-up token where it hesitated most; the first\n"
    "                          valid one (a state, after a broken state) answers\n"
    "                          (default 4, at most 16; 0: EIO at once)\n"
    "  --unguarded             take the model's plain greedy answers, without the guard\n"
    "                          that holds changes to the XML the strict parser accepts\n"
    "                          and to what validation allows (entries the operation\n"
    "                          does not name copied), readdir lists to their shape,\n"
    "                          and without copying (bytes of the prompt favoured)\n"
    "  --record FILE.jsonl     append each operation's prompt and exact completion\n"
    "                          as a dataset line ('llmfuse eval' reads them)\n";

static int mount_engine(const image_options *options, const char *mountpoint)
{
    lf_engine_fs_config config = {
        .kind = strcmp(options->engine, "exact") == 0 ? LF_ENGINE_EXACT : LF_ENGINE_MODEL,
        .model_path = options->model,
        .state_path = options->state,
        .verify = options->verify,
        .record_path = options->record,
        .retries = options->retries,
        .unguarded = options->unguarded,
        .mount_options = options->mount_options.length ? (const char *)options->mount_options.data : NULL,
        .foreground = options->foreground,
    };
    if (strcmp(options->engine, "exact") != 0 && strcmp(options->engine, "model") != 0) {
        fprintf(stderr, "llmfuse mount: --engine takes 'model' or 'exact', not '%s'\n", options->engine);
        return LF_EXIT_ERROR;
    }
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_engine_fs_serve(&config, mountpoint, &diagnostic);
    return status < 0 ? failed("mount", &diagnostic, status) : LF_EXIT_OK;
}

static int command_mount(int argc, char **argv)
{
    image_options options;
    int exit_status;
    int first = parse_options(argc, argv, mount_usage, 1, 2, &options, &exit_status);
    if (first < 0)
        return exit_status;
    if (argc - first != (options.engine ? 1 : 2)) {
        fputs(mount_usage, stderr);
        lf_buffer_free(&options.mount_options);
        return LF_EXIT_ERROR;
    }
    if (options.engine) {
        exit_status = mount_engine(&options, argv[first]);
        lf_buffer_free(&options.mount_options);
        return exit_status;
    }
    lf_image_fs_config config = {
        .image_path = argv[first],
        .model_name = options.model,
        .mount_options = options.mount_options.length ? lf_buffer_string(&options.mount_options) : NULL,
        .cache_bytes = options.cache_megabytes << 20,
        .commit_interval = options.commit_interval,
        .pack_size = pack_size_of(&options),
        .foreground = options.foreground,
    };
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_image_fs_serve(&config, argv[first + 1], &diagnostic);
    lf_buffer_free(&options.mount_options);
    return status < 0 ? failed("mount", &diagnostic, status) : LF_EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* Reading commands: open the image and its tree                     */

static int64_t open_tree(const char *path, const image_options *options, lf_image **image,
                         lf_tree **tree, lf_diagnostic *diagnostic)
{
    int64_t status = lf_image_open(path, options->model, image, diagnostic);
    if (status == 0)
        status = lf_image_load_tree(*image, tree, diagnostic);
    return status;
}

static const char unpack_usage[] =
    "usage: llmfuse unpack IMAGE DIR [-m MODEL]\n"
    "Restores the tree of IMAGE as the new directory DIR, with modes, owners, times,\n"
    "symlinks and hard links.  DIR appears only when everything was restored.\n";

static int remove_entry(const char *path, const struct stat *attributes, int type, struct FTW *walk)
{
    (void)attributes;
    (void)type;
    (void)walk;
    return remove(path);
}

static int command_unpack(int argc, char **argv)
{
    image_options options;
    int exit_status;
    int first = parse_options(argc, argv, unpack_usage, 2, 2, &options, &exit_status);
    if (first < 0)
        return exit_status;
    const char *target = argv[first + 1];
    lf_diagnostic diagnostic = {0};
    lf_image *image = NULL;
    lf_tree *tree = NULL;
    lf_buffer staging = {0};
    struct stat existing;
    int64_t status = 0;
    if (lstat(target, &existing) == 0)
        status = lf_fail(&diagnostic, -EEXIST, "'%s' exists", target);
    if (status == 0)
        status = open_tree(argv[first], &options, &image, &tree, &diagnostic);
    /* a staging directory beside the target, renamed when complete */
    if (status == 0 && lf_buffer_printf(&staging, "%s.unpack-XXXXXX", target) < 0)
        status = -ENOMEM;
    char *staging_path = status == 0 ? (char *)lf_buffer_string(&staging) : NULL;
    if (status == 0 && !mkdtemp(staging_path))
        status = lf_fail(&diagnostic, -errno, "cannot create '%s': %s", staging_path, strerror(errno));
    if (status == 0) {
        int fd = open(staging_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        status = fd < 0 ? -errno : lf_materialize(tree, fd, true, &diagnostic);
        if (fd >= 0)
            close(fd);
        if (status == 0 && rename(staging_path, target) != 0)
            status = lf_fail(&diagnostic, -errno, "cannot rename '%s' to '%s': %s", staging_path,
                             target, strerror(errno));
        if (status < 0)
            nftw(staging_path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    lf_buffer_free(&staging);
    lf_tree_free(tree);
    lf_image_close(image);
    return status < 0 ? failed("unpack", &diagnostic, status) : LF_EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* ls and cat                                                        */

static const char ls_usage[] =
    "usage: llmfuse ls IMAGE [PATH] [-m MODEL]\n"
    "Lists PATH (default: the whole tree) and everything below it, one line per\n"
    "entry as 'ls -l' shows it, paths from the image's root.\n";

static void print_entry(const char *path, const lf_node_info *info)
{
    static const char types[] = {[LF_NODE_DIRECTORY] = 'd', [LF_NODE_FILE] = '-',
                                 [LF_NODE_SYMLINK] = 'l'};
    char mode[11] = {types[info->type]};
    const char *letters = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        mode[1 + i] = info->permissions & (0400u >> i) ? letters[i] : '-';
    if (info->permissions & S_ISUID)
        mode[3] = mode[3] == 'x' ? 's' : 'S';
    if (info->permissions & S_ISGID)
        mode[6] = mode[6] == 'x' ? 's' : 'S';
    if (info->permissions & S_ISVTX)
        mode[9] = mode[9] == 'x' ? 't' : 'T';
    struct tm utc;
    time_t seconds = info->mtime.tv_sec;
    char when[32] = "?";
    if (gmtime_r(&seconds, &utc))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &utc);
    printf("%s %3" PRIu32 " %-8s %-8s %10" PRIu64 " %s %s%s%s\n", mode, info->link_count,
           info->owner, info->group, info->size, when, path,
           info->type == LF_NODE_SYMLINK ? " -> " : "",
           info->type == LF_NODE_SYMLINK ? info->symlink_target : "");
}

static int64_t list_below(const lf_node *node, lf_buffer *path)
{
    lf_node_info info;
    lf_node_get_info(node, &info);
    print_entry(path->length ? lf_buffer_string(path) : "/", &info);
    if (info.type != LF_NODE_DIRECTORY)
        return 0;
    for (size_t i = 0; i < lf_node_child_count(node); i++) {
        const char *name;
        const lf_node *child = lf_node_child(node, i, &name);
        size_t length = path->length;
        if (lf_buffer_printf(path, "/%s", name) < 0)
            return -ENOMEM;
        int64_t status = list_below(child, path);
        path->length = length;
        if (status < 0)
            return status;
    }
    return 0;
}

/* The node at an absolute path, without following a final symlink. */
static lf_node *find_node(lf_tree *tree, const char *path)
{
    lf_node *node = lf_tree_root(tree);
    lf_buffer copy = {0};
    if (!node || lf_buffer_append_string(&copy, path) < 0)
        return NULL;
    char *saved, *text = (char *)lf_buffer_string(&copy);
    for (char *name = strtok_r(text, "/", &saved); name && node; name = strtok_r(NULL, "/", &saved))
        node = lf_node_lookup(node, name);
    lf_buffer_free(&copy);
    return node;
}

static int command_ls(int argc, char **argv)
{
    image_options options;
    int exit_status;
    int first = parse_options(argc, argv, ls_usage, 1, 2, &options, &exit_status);
    if (first < 0)
        return exit_status;
    const char *path = argc - first == 2 ? argv[first + 1] : "/";
    lf_diagnostic diagnostic = {0};
    lf_image *image = NULL;
    lf_tree *tree = NULL;
    lf_buffer shown = {0};
    int64_t status = open_tree(argv[first], &options, &image, &tree, &diagnostic);
    lf_node *node = status == 0 ? find_node(tree, path) : NULL;
    if (status == 0 && !node)
        status = lf_fail(&diagnostic, -ENOENT, "'%s' is not in the image", path);
    if (status == 0 && strcmp(path, "/") != 0)
        status = lf_buffer_printf(&shown, "%s%s", path[0] == '/' ? "" : "/", path);
    while (status == 0 && shown.length > 1 && shown.data[shown.length - 1] == '/')
        shown.length--;
    if (status == 0)
        status = list_below(node, &shown);
    lf_buffer_free(&shown);
    lf_tree_free(tree);
    lf_image_close(image);
    return status < 0 ? failed("ls", &diagnostic, status) : LF_EXIT_OK;
}

static const char cat_usage[] = "usage: llmfuse cat IMAGE PATH [-m MODEL]\n"
                                "Writes the content of file PATH in the image to stdout.\n";

static int command_cat(int argc, char **argv)
{
    image_options options;
    int exit_status;
    int first = parse_options(argc, argv, cat_usage, 2, 2, &options, &exit_status);
    if (first < 0)
        return exit_status;
    const char *path = argv[first + 1];
    lf_diagnostic diagnostic = {0};
    lf_image *image = NULL;
    lf_tree *tree = NULL;
    lf_buffer absolute = {0};
    int64_t status = open_tree(argv[first], &options, &image, &tree, &diagnostic);
    if (status == 0)
        status = lf_buffer_printf(&absolute, "%s%s", path[0] == '/' ? "" : "/", path);
    struct stat attributes;
    if (status == 0 && (status = lf_tree_getattr(tree, lf_buffer_string(&absolute), &attributes)) == 0 &&
        !S_ISREG(attributes.st_mode))
        status = -EISDIR;
    /* the whole file at once: reading decodes the whole stream anyway */
    uint8_t *content = status == 0 ? malloc(attributes.st_size ? (size_t)attributes.st_size : 1) : NULL;
    if (status == 0 && !content)
        status = -ENOMEM;
    if (status == 0 &&
        (status = lf_tree_read(tree, lf_buffer_string(&absolute), content, (size_t)attributes.st_size, 0)) >= 0)
        status = lf_file_write_all(stdout, content, (size_t)status, "stdout", &diagnostic);
    if (status == -ENOENT || status == -EISDIR || status == -EIO)
        lf_fail(&diagnostic, status, "'%s': %s", path,
                status == -EIO ? "its stream is damaged (run llmfuse fsck)" : lf_error_string(status));
    free(content);
    lf_buffer_free(&absolute);
    lf_tree_free(tree);
    lf_image_close(image);
    return status < 0 ? failed("cat", &diagnostic, status) : LF_EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* fsck and info                                                     */

/* For each stream, the paths of the files it holds (for reports). */
typedef struct stream_names {
    lf_buffer *names; /* one per stream: paths separated by ", " */
    size_t count;
} stream_names;

static int64_t name_streams(const lf_node *node, lf_buffer *path, stream_names *names)
{
    lf_node_info info;
    lf_node_get_info(node, &info);
    size_t stream = info.type == LF_NODE_FILE ? lf_image_content_stream(lf_node_content_key(node)) : 0;
    if (stream && stream < names->count) {
        lf_buffer *list = &names->names[stream];
        if ((list->length && lf_buffer_append_string(list, ", ") < 0) ||
            lf_buffer_append(list, path->data, path->length) < 0)
            return -ENOMEM;
    }
    for (size_t i = 0; info.type == LF_NODE_DIRECTORY && i < lf_node_child_count(node); i++) {
        const char *name;
        const lf_node *child = lf_node_child(node, i, &name);
        size_t length = path->length;
        if (lf_buffer_printf(path, "/%s", name) < 0)
            return -ENOMEM;
        int64_t status = name_streams(child, path, names);
        path->length = length;
        if (status < 0)
            return status;
    }
    return 0;
}

/* Every stream decoded, several at once: most are one segment, which one
 * thread decodes. */
typedef struct stream_check {
    const lf_image *image;
    lf_diagnostic *diagnostics; /* one per stream: empty when sound */
} stream_check;

static int64_t check_stream(void *context, size_t index)
{
    stream_check *check = context;
    lf_buffer content = {0};
    if (lf_image_read_stream(check->image, index, &content, &check->diagnostics[index]) < 0 &&
        !check->diagnostics[index].message[0])
        lf_fail(&check->diagnostics[index], -EIO, "cannot be decoded");
    lf_buffer_free(&content);
    return 0;
}

static const char fsck_usage[] =
    "usage: llmfuse fsck IMAGE [-m MODEL] [--threads N]\n"
    "Verifies every checksum of IMAGE and decodes every stream; names each damaged\n"
    "stream and the files it holds.  Exit status 0 when the image is sound.\n";

static int command_fsck(int argc, char **argv)
{
    image_options options;
    int exit_status;
    int first = parse_options(argc, argv, fsck_usage, 1, 1, &options, &exit_status);
    if (first < 0)
        return exit_status;
    lf_diagnostic diagnostic = {0};
    lf_image *image = NULL;
    lf_tree *tree = NULL;
    int64_t status = lf_image_open(argv[first], options.model, &image, &diagnostic);
    if (status < 0)
        return failed("fsck", &diagnostic, status);
    size_t count = lf_image_stream_count(image), damaged = 0;
    stream_names names = {calloc(count, sizeof(lf_buffer)), count};
    lf_diagnostic tree_diagnostic = {0};
    int64_t tree_status = lf_image_load_tree(image, &tree, &tree_diagnostic);
    lf_buffer path = {0};
    if (tree_status == 0 && names.names)
        name_streams(lf_tree_root(tree), &path, &names);
    else if (tree_status < 0) {
        fprintf(stderr, "llmfuse fsck: %s\n", tree_diagnostic.message);
        damaged++;
    }
    stream_check check = {image, calloc(count ? count : 1, sizeof(lf_diagnostic))};
    if (!check.diagnostics) {
        fprintf(stderr, "llmfuse fsck: out of memory\n");
        return LF_EXIT_ERROR;
    }
    lf_parallel_for(count, options.threads, check_stream, &check);
    for (size_t i = 0; i < count; i++)
        if (check.diagnostics[i].message[0]) {
            damaged++;
            const char *what = i == LF_IMAGE_METADATA_STREAM     ? "the metadata"
                               : i == LF_IMAGE_NODE_TABLE_STREAM ? "the node table"
                               : names.names && names.names[i].length
                                   ? lf_buffer_string(&names.names[i])
                                   : "unknown files";
            fprintf(stderr, "llmfuse fsck: damaged: stream %zu (%s): %s\n", i, what,
                    check.diagnostics[i].message);
        }
    free(check.diagnostics);
    printf("%s: %zu streams, %s\n", argv[first], count,
           damaged ? "DAMAGED" : "every checksum and stream is sound");
    for (size_t i = 0; names.names && i < count; i++)
        lf_buffer_free(&names.names[i]);
    free(names.names);
    lf_buffer_free(&path);
    lf_tree_free(tree);
    lf_image_close(image);
    return damaged ? LF_EXIT_ERROR : LF_EXIT_OK;
}

static const char info_usage[] =
    "usage: llmfuse info IMAGE [-m MODEL]\n"
    "Describes IMAGE: its model, its nodes, and the bytes of each kind of stream.\n";

typedef struct node_counts {
    uint64_t directories, files, symlinks, extra_links, content_bytes;
    uint64_t *packed; /* per stream: 1 + the offset of a file content seen in it, or
                         UINT64_MAX once a second offset is seen (a pack); NULL: not counted */
} node_counts;

static void count_nodes(const lf_node *node, node_counts *counts)
{
    lf_node_info info;
    lf_node_get_info(node, &info);
    counts->directories += info.type == LF_NODE_DIRECTORY;
    counts->symlinks += info.type == LF_NODE_SYMLINK;
    if (info.type == LF_NODE_FILE) {
        counts->files++;
        counts->content_bytes += info.size;
        uint64_t key = lf_node_content_key(node);
        uint64_t *seen = counts->packed && key ? &counts->packed[lf_image_content_stream(key)] : NULL;
        if (seen && *seen == 0)
            *seen = 1 + lf_image_content_offset(key);
        else if (seen && *seen != 1 + lf_image_content_offset(key))
            *seen = UINT64_MAX;
    }
    for (size_t i = 0; info.type == LF_NODE_DIRECTORY && i < lf_node_child_count(node); i++)
        count_nodes(lf_node_child(node, i, NULL), counts);
}

static int command_info(int argc, char **argv)
{
    image_options options;
    int exit_status;
    int first = parse_options(argc, argv, info_usage, 1, 1, &options, &exit_status);
    if (first < 0)
        return exit_status;
    lf_diagnostic diagnostic = {0};
    lf_image *image = NULL;
    lf_tree *tree = NULL;
    int64_t status = open_tree(argv[first], &options, &image, &tree, &diagnostic);
    if (status < 0) {
        lf_tree_free(tree);
        lf_image_close(image);
        return failed("info", &diagnostic, status);
    }
    node_counts counts = {.packed = calloc(lf_image_stream_count(image), sizeof(uint64_t))};
    count_nodes(lf_tree_root(tree), &counts);
    uint64_t packs = 0;
    for (size_t i = 0; counts.packed && i < lf_image_stream_count(image); i++)
        packs += counts.packed[i] == UINT64_MAX;
    free(counts.packed);
    printf("image:        %s, %" PRIu64 " bytes, format version %d\n", argv[first],
           lf_image_size(image), LF_IMAGE_VERSION);
    printf("model:        %s (fingerprint %016" PRIx64 ")\n", lf_image_model(image)->name,
           lf_image_model(image)->fingerprint);
    printf("nodes:        %" PRIu64 " directories, %" PRIu64 " files, %" PRIu64 " symlinks\n",
           counts.directories, counts.files, counts.symlinks);
    /* bytes by what the stream holds and what coded it */
    struct stream_row {
        const char *kind, *coder;
        uint64_t streams, original, stored;
    } rows[16];
    size_t row_count = 0;
    uint64_t original_total = 0, stored_total = 0;
    for (size_t i = 0; i < lf_image_stream_count(image); i++) {
        const lf_image_stream *stream = lf_image_stream_at(image, i);
        const char *kind = i == LF_IMAGE_METADATA_STREAM     ? "metadata"
                           : i == LF_IMAGE_NODE_TABLE_STREAM ? "node table"
                           : stream->kind == LF_IMAGE_STREAM_GZIP ? "gzip files"
                                                                  : "file contents";
        const char *coder = lf_image_stream_coder(image, i);
        size_t row = 0;
        while (row < row_count && (strcmp(rows[row].kind, kind) || strcmp(rows[row].coder, coder)))
            row++;
        if (row == row_count && row_count < 16)
            rows[row_count++] = (struct stream_row){kind, coder, 0, 0, 0};
        if (row < row_count) {
            rows[row].streams++;
            rows[row].original += stream->original_size;
            rows[row].stored += stream->stored_size;
        }
        original_total += stream->original_size;
        stored_total += stream->stored_size;
    }
    printf("\n%-14s %-10s %8s %14s %14s %7s\n", "stream kind", "coded by", "streams", "original",
           "stored", "ratio");
    for (size_t row = 0; row < row_count; row++)
        printf("%-14s %-10s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %7.3f\n", rows[row].kind,
               rows[row].coder, rows[row].streams, rows[row].original, rows[row].stored,
               rows[row].original ? (double)rows[row].stored / (double)rows[row].original : 0.0);
    uint64_t overhead = lf_image_size(image) - stored_total;
    printf("%-14s %-10s %8s %14s %14" PRIu64 "\n", "superblock+table", "", "", "", overhead);
    printf("%-14s %-10s %8zu %14" PRIu64 " %14" PRIu64 " %7.3f\n", "total", "",
           lf_image_stream_count(image), original_total, lf_image_size(image),
           original_total ? (double)lf_image_size(image) / (double)original_total : 0.0);
    printf("packs:        %" PRIu64 " of the file content streams hold several files\n", packs);
    printf("file content: %" PRIu64 " bytes in files, %" PRIu64
           " in distinct streams (duplicates and hard links stored once)\n",
           counts.content_bytes, original_total - lf_image_stream_at(image, 0)->original_size -
                                     lf_image_stream_at(image, 1)->original_size);
    lf_tree_free(tree);
    lf_image_close(image);
    return LF_EXIT_OK;
}

/* ---------------------------------------------------------------- */

int lf_command_mkfs(int argc, char **argv) { return command_mkfs(argc, argv); }
int lf_command_mount(int argc, char **argv) { return command_mount(argc, argv); }
int lf_command_unpack(int argc, char **argv) { return command_unpack(argc, argv); }
int lf_command_ls(int argc, char **argv) { return command_ls(argc, argv); }
int lf_command_cat(int argc, char **argv) { return command_cat(argc, argv); }
int lf_command_fsck(int argc, char **argv) { return command_fsck(argc, argv); }
int lf_command_info(int argc, char **argv) { return command_info(argc, argv); }
