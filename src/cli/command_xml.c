/* llmfuse xml DIR | llmfuse xml --check FILE | llmfuse xml --extract FILE DIR */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/buffer.h"
#include "common/file.h"
#include "fs/materialize.h"
#include "fs/scan.h"
#include "fs/xml.h"

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmfuse xml DIR          print DIR's state as canonical XML\n"
            "       llmfuse xml --check FILE validate an XML state ('-' = stdin) and print\n"
            "                                its canonical form\n"
            "       llmfuse xml --extract FILE DIR\n"
            "                                create the new directory DIR holding the state\n"
            "Symlinks are not followed; fifos, sockets and devices are reported and skipped.\n");
}

static void report_skip(void *context, const char *path, const char *what)
{
    int *skipped = context;
    (*skipped)++;
    fprintf(stderr, "llmfuse xml: skipping %s '%s': the XML state has no element for it\n", what,
            path);
}

int lf_command_xml(int argc, char **argv)
{
    static const struct option options[] = {
        {"check", no_argument, NULL, 'c'}, {"extract", no_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'}, {0}};
    bool check = false, extract = false;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "ch", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            check = true;
            break;
        case 'x':
            extract = true;
            break;
        case 'h':
            print_usage(stdout);
            return LF_EXIT_OK;
        default:
            print_usage(stderr);
            return LF_EXIT_ERROR;
        }
    }
    if (optind != argc - 1 - extract || (check && extract)) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    const char *input = argv[optind];
    lf_diagnostic diagnostic = {0};
    lf_tree *tree = NULL;
    int skipped = 0;
    int64_t status;
    if (check || extract) {
        lf_buffer document = {0};
        status = lf_file_read_all(input, &document, &diagnostic);
        if (status == 0)
            status = lf_xml_parse(document.data, document.length, 0, &tree, &diagnostic);
        lf_buffer_free(&document);
    } else {
        status = lf_scan_directory(input, report_skip, &skipped, &tree, &diagnostic);
    }
    lf_buffer output = {0};
    if (status == 0 && extract) {
        const char *directory = argv[optind + 1];
        int fd = -1;
        if (mkdir(directory, 0700) != 0 ||
            (fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            status = lf_fail(&diagnostic, -errno, "cannot create '%s': %s", directory, strerror(errno));
        else
            status = lf_materialize(tree, fd, false, &diagnostic);
        if (fd >= 0)
            close(fd);
    } else if (status == 0) {
        status = lf_xml_write(tree, 0, &output, &diagnostic);
    }
    if (status >= 0)
        status = lf_file_write_all(stdout, output.data, output.length, "stdout", &diagnostic);
    lf_buffer_free(&output);
    lf_tree_free(tree);
    if (lf_is_error(status)) {
        fprintf(stderr, "llmfuse xml: %s: %s\n", input,
                diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
        return LF_EXIT_ERROR;
    }
    return skipped ? LF_EXIT_WARNING : LF_EXIT_OK;
}
