/* llmencode: lossless compression with a model and a range coder, with the
 * command-line conventions of gzip and zstd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec/llmz.h"
#include "common/buffer.h"
#include "common/file.h"
#include "common/parallel.h"
#include "model/model.h"

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_WARNING = 2 };
enum { FORMAT_LLMZ, FORMAT_RAW };
enum { MODE_COMPRESS, MODE_DECOMPRESS, MODE_TEST, MODE_LIST };

static const char suffix[] = ".llmz";

typedef struct settings {
    int mode, format;
    bool to_stdout, keep, force, verbose, quiet, whole_segments;
    const char *output_path;
    const char *model_name; /* NULL: the default, or for decompression the archive's own */
    unsigned threads;
    size_t batch; /* 0: the model's */
} settings;

/* An interrupted run leaves no partial output behind. */
static void remove_pending_and_exit(int signal_number)
{
    lf_file_remove_pending_temporary();
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmencode [OPTIONS] [FILE...]\n"
            "Compress FILEs to FILE.llmz (or decompress with -d) using a language model or the\n"
            "adaptive context-mixing model, removing the originals only on success.\n"
            "With no FILE, or when FILE is -, read standard input and write standard output.\n\n"
            "  -d, --decompress   decompress\n"
            "  -c, --stdout       write to standard output, keep input files\n"
            "  -o, --output FILE  write to FILE (one input only)\n"
            "  -k, --keep         keep input files\n"
            "  -f, --force        overwrite outputs; write compressed data to a terminal\n"
            "  -m, --model MODEL  model to code with: a GGUF file or a built-in model: base\n"
            "                     (the default: the shipped transformer, 15-27 KB/s;\n"
            "                     keeps cm's archive when smaller), cm (about 1 MB/s),\n"
            "                     cm-small; decompression uses the archive's model\n"
            "      --best         code each MiB of input as one segment: about 2%% smaller\n"
            "                     for inputs of 64 KiB - 1 MiB, half the speed on two cores\n"
            "  -T, --threads N    threads (default: all cores; never changes the output)\n"
            "      --batch N      code at most N segments together per thread (default: the\n"
            "                     model's choice; never changes the output)\n"
            "  -t, --test         test archive integrity\n"
            "  -l, --list         list archive contents\n"
            "  -v, --verbose      print statistics\n"
            "  -q, --quiet        print no warnings\n"
            "      --format=FMT   llmz (default), or raw: only the model's coded payload,\n"
            "                     ended by an end symbol (no header, no checksums)\n"
            "  -h, --help         show this help\n"
            "  -V, --version      show the version\n\n"
            "Exit status: 0 success, 1 error, 2 warning.\n");
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

typedef struct progress {
    const char *name;
    struct timespec start;
} progress;

static void show_progress(void *context, uint64_t done, uint64_t total)
{
    progress *state = context;
    double seconds = seconds_since(&state->start);
    fprintf(stderr, "\rllmencode: %s: %5.1f%% %8.2f MB/s", state->name,
            total ? 100.0 * (double)done / (double)total : 100.0,
            seconds > 0 ? (double)done / seconds / 1e6 : 0.0);
    if (done == total)
        fputs("\r\033[K", stderr);
}

/* Opens the model for this input: the named one, the default, or (when
 * decoding an archive without -m) the built-in model the archive names. */
static int64_t open_model(const settings *options, const lf_buffer *input, lf_model **model,
                          lf_diagnostic *diagnostic)
{
    if (options->model_name || options->mode == MODE_COMPRESS || options->format == FORMAT_RAW)
        return lf_model_open(options->model_name ? options->model_name : LF_MODEL_DEFAULT, model,
                             diagnostic);
    lf_llmz_header header;
    int64_t status = lf_llmz_read_header(input->data, input->length, &header, diagnostic);
    if (status < 0)
        return status;
    status = lf_model_open_by_fingerprint(header.fingerprint, model);
    if (status == -ENOENT)
        status = lf_fail(diagnostic, -LF_EMODEL,
                         "archive was made with model %016" PRIx64
                         ", which is not built in: name its file with -m",
                         header.fingerprint);
    lf_llmz_header_free(&header);
    return status;
}

static void list_archive(const char *name, const lf_buffer *input, const lf_llmz_header *header,
                         bool verbose)
{
    static bool printed_heading;
    if (!printed_heading) {
        printf("%14s %14s %7s %8s %-16s %s\n", "compressed", "uncompressed", "ratio", "segments",
               "model", "name");
        printed_heading = true;
    }
    printf("%14zu %14" PRIu64 " %6.1f%% %8zu %016" PRIx64 " %s\n", input->length,
           header->original_size,
           header->original_size ? 100.0 * (double)input->length / (double)header->original_size : 0.0,
           header->segment_count, header->fingerprint, name);
    for (size_t i = 0; verbose && i < header->segment_count; i++) {
        const lf_llmz_segment *segment = &header->segments[i];
        printf("  segment %zu: %s, %" PRIu64 " -> %" PRIu64 " bytes\n", i,
               lf_llmz_method_name(segment->method), segment->original_size, segment->stored_size);
    }
}

/* The whole transformation of one input, in memory. */
static int64_t transform(const settings *options, const char *name, const lf_buffer *input,
                         lf_buffer *output, lf_diagnostic *diagnostic)
{
    if (options->mode == MODE_LIST) {
        lf_llmz_header header;
        int64_t status = lf_llmz_read_header(input->data, input->length, &header, diagnostic);
        if (status == 0)
            list_archive(name, input, &header, options->verbose);
        lf_llmz_header_free(&header);
        return status;
    }
    lf_model *model = NULL;
    int64_t status = open_model(options, input, &model, diagnostic);
    if (status < 0)
        return status;
    progress state = {.name = name};
    clock_gettime(CLOCK_MONOTONIC, &state.start);
    bool show = isatty(STDERR_FILENO) && !options->quiet && input->length > (1 << 20);
    lf_llmz_options codec = {.model = model, .threads = options->threads,
                             .batch_size = options->batch,
                             .whole_segments = options->whole_segments,
                             .progress = show ? show_progress : NULL, .progress_context = &state};
    if (options->format == FORMAT_RAW) {
        lf_span span = {input->data, input->length};
        unsigned threads = options->threads ? options->threads : lf_parallel_default_threads();
        if (threads > model->step_threads)
            threads = model->step_threads ? model->step_threads : 1;
        if (options->mode == MODE_COMPRESS) {
            status = lf_model_encode(model, (lf_span){NULL, 0}, &span, 1, true, threads, output);
        } else {
            status = lf_model_decode(model, (lf_span){NULL, 0}, &span, NULL, 1, threads, output);
            if (status < 0)
                lf_fail(diagnostic, status, "raw stream does not decode with model '%s'", model->name);
        }
    } else if (options->mode == MODE_COMPRESS) {
        status = lf_llmz_compress(input->data, input->length, &codec, output, diagnostic);
    } else {
        status = lf_llmz_decompress(input->data, input->length, &codec, output, diagnostic);
    }
    if (status == 0 && options->verbose) {
        double seconds = seconds_since(&state.start);
        size_t original = options->mode == MODE_COMPRESS ? input->length : output->length;
        size_t coded = options->mode == MODE_COMPRESS ? output->length : input->length;
        lf_llmz_header header = {0};
        if (options->format == FORMAT_LLMZ) {
            const lf_buffer *archive = options->mode == MODE_COMPRESS ? output : input;
            lf_llmz_read_header(archive->data, archive->length, &header, NULL);
        }
        fprintf(stderr,
                "%s: %zu -> %zu bytes, %.4f bits/byte, header %" PRIu64 " B, payload %" PRIu64
                " B, model %s, %.2f s, %.3f MB/s\n",
                name, options->mode == MODE_COMPRESS ? original : coded,
                options->mode == MODE_COMPRESS ? coded : original,
                original ? 8.0 * (double)coded / (double)original : 0.0, header.header_size,
                (uint64_t)coded - header.header_size, model->name, seconds,
                seconds > 0 ? (double)original / seconds / 1e6 : 0.0);
        lf_llmz_header_free(&header);
    }
    lf_model_free(model);
    return status;
}

static bool has_suffix(const char *name)
{
    size_t length = strlen(name);
    return length > sizeof suffix - 1 && strcmp(name + length - (sizeof suffix - 1), suffix) == 0;
}

/* One input file (or "-"): returns an exit status. */
static int process(const settings *options, const char *input_path)
{
    bool from_stdin = strcmp(input_path, "-") == 0;
    const char *name = from_stdin ? "(stdin)" : input_path;
    lf_diagnostic diagnostic = {0};
    struct stat input_status;
    if (!from_stdin) {
        if (lstat(input_path, &input_status) != 0) {
            fprintf(stderr, "llmencode: %s: %s\n", input_path, strerror(errno));
            return EXIT_ERROR;
        }
        if (!S_ISREG(input_status.st_mode)) {
            if (!options->quiet)
                fprintf(stderr, "llmencode: %s is not a regular file -- ignored\n", input_path);
            return EXIT_WARNING;
        }
    }
    bool decoding = options->mode == MODE_DECOMPRESS;
    bool writes_file = (options->mode == MODE_COMPRESS || decoding) && !options->to_stdout;
    char *output_path = NULL;
    if (writes_file && options->output_path) {
        output_path = strdup(options->output_path);
    } else if (writes_file && !from_stdin) {
        if (decoding && !has_suffix(input_path)) {
            if (!options->quiet)
                fprintf(stderr, "llmencode: %s: unknown suffix -- ignored\n", input_path);
            return EXIT_WARNING;
        }
        if (!decoding && has_suffix(input_path) && !options->force) {
            if (!options->quiet)
                fprintf(stderr, "llmencode: %s already has %s suffix -- unchanged\n", input_path, suffix);
            return EXIT_WARNING;
        }
        if (decoding)
            output_path = strndup(input_path, strlen(input_path) - (sizeof suffix - 1));
        else if (asprintf(&output_path, "%s%s", input_path, suffix) < 0)
            output_path = NULL;
    }
    if (writes_file && !from_stdin && !output_path) {
        fprintf(stderr, "llmencode: %s: out of memory\n", name);
        return EXIT_ERROR;
    }
    bool to_stdout = (options->mode == MODE_COMPRESS || decoding) && !output_path;
    if (to_stdout && options->mode == MODE_COMPRESS && isatty(STDOUT_FILENO) && !options->force) {
        fprintf(stderr, "llmencode: compressed data not written to a terminal (use -f to force)\n");
        free(output_path);
        return EXIT_ERROR;
    }
    if (output_path && !options->force && access(output_path, F_OK) == 0) {
        fprintf(stderr, "llmencode: %s already exists (use -f to overwrite)\n", output_path);
        free(output_path);
        return EXIT_ERROR;
    }

    lf_buffer input = {0}, output = {0};
    int64_t status = lf_file_read_all(input_path, &input, &diagnostic);
    if (status == 0)
        status = transform(options, name, &input, &output, &diagnostic);
    if (status == 0 && output_path)
        status = lf_file_write_atomic_like(output_path, output.data, output.length,
                                           from_stdin ? NULL : &input_status, &diagnostic);
    else if (status == 0 && to_stdout)
        status = lf_file_write_all(stdout, output.data, output.length, "standard output", &diagnostic);
    if (status == 0 && options->mode == MODE_TEST && options->verbose)
        fprintf(stderr, "%s: OK\n", name);
    int result = EXIT_OK;
    if (status < 0) {
        fprintf(stderr, "llmencode: %s: %s\n", name,
                diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
        result = EXIT_ERROR;
    } else if (output_path && !from_stdin && !options->keep && unlink(input_path) != 0) {
        fprintf(stderr, "llmencode: cannot remove %s: %s\n", input_path, strerror(errno));
        result = EXIT_WARNING;
    }
    lf_buffer_free(&input);
    lf_buffer_free(&output);
    free(output_path);
    return result;
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"decompress", no_argument, NULL, 'd'}, {"uncompress", no_argument, NULL, 'd'},
        {"stdout", no_argument, NULL, 'c'},     {"output", required_argument, NULL, 'o'},
        {"keep", no_argument, NULL, 'k'},       {"force", no_argument, NULL, 'f'},
        {"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 'T'},
        {"test", no_argument, NULL, 't'},       {"list", no_argument, NULL, 'l'},
        {"verbose", no_argument, NULL, 'v'},    {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'F'}, {"batch", required_argument, NULL, 'B'},
        {"best", no_argument, NULL, 'W'},       {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},    {0}};
    settings options = {.mode = MODE_COMPRESS, .format = FORMAT_LLMZ};
    int option;
    while ((option = getopt_long(argc, argv, "dco:kfm:T:tlvqhV", long_options, NULL)) != -1) {
        switch (option) {
        case 'd': options.mode = MODE_DECOMPRESS; break;
        case 'c': options.to_stdout = true; break;
        case 'o': options.output_path = optarg; break;
        case 'k': options.keep = true; break;
        case 'f': options.force = true; break;
        case 'm': options.model_name = optarg; break;
        case 't': options.mode = MODE_TEST; break;
        case 'l': options.mode = MODE_LIST; break;
        case 'v': options.verbose = true; break;
        case 'q': options.quiet = true; break;
        case 'W': options.whole_segments = true; break;
        case 'T': {
            char *end;
            long threads = strtol(optarg, &end, 10);
            if (*end || threads < 0 || threads > 1024) {
                fprintf(stderr, "llmencode: bad thread count '%s'\n", optarg);
                return EXIT_ERROR;
            }
            options.threads = (unsigned)threads;
            break;
        }
        case 'B': {
            char *end;
            long batch = strtol(optarg, &end, 10);
            if (*end || batch < 1 || batch > 4096) {
                fprintf(stderr, "llmencode: bad batch size '%s' (1..4096)\n", optarg);
                return EXIT_ERROR;
            }
            options.batch = (size_t)batch;
            break;
        }
        case 'F':
            if (strcmp(optarg, "raw") == 0)
                options.format = FORMAT_RAW;
            else if (strcmp(optarg, "llmz") == 0)
                options.format = FORMAT_LLMZ;
            else {
                fprintf(stderr, "llmencode: unknown format '%s' (llmz or raw)\n", optarg);
                return EXIT_ERROR;
            }
            break;
        case 'h': print_usage(stdout); return EXIT_OK;
        case 'V': printf("llmencode %s (llmz format %d)\n", LLMFUSE_VERSION, LF_LLMZ_VERSION); return EXIT_OK;
        default: print_usage(stderr); return EXIT_ERROR;
        }
    }
    if (options.format == FORMAT_RAW && (options.mode == MODE_LIST || options.mode == MODE_TEST)) {
        fprintf(stderr, "llmencode: raw streams carry no header or checksum to list or test\n");
        return EXIT_ERROR;
    }
    int inputs = argc - optind;
    if (options.output_path && inputs > 1) {
        fprintf(stderr, "llmencode: -o takes a single input\n");
        return EXIT_ERROR;
    }
    signal(SIGINT, remove_pending_and_exit);
    signal(SIGTERM, remove_pending_and_exit);
    signal(SIGHUP, remove_pending_and_exit);
    if (inputs == 0)
        return process(&options, "-");
    int result = EXIT_OK;
    for (int i = optind; i < argc; i++) {
        int status = process(&options, argv[i]);
        if (status == EXIT_ERROR || (status == EXIT_WARNING && result == EXIT_OK))
            result = status;
    }
    return result;
}
