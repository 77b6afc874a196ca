/* llmfuse: the filesystem tool. Dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"xml", lf_command_xml, "print a directory's state as XML, or check an XML state"},
    {"tokenizer", lf_command_tokenizer, "train a BPE tokenizer, encode and decode with it"},
    {"model", lf_command_model, "make a random transformer model, or describe one"},
    {"loopback", lf_command_loopback, "mount a passthrough of a directory that logs every operation"},
    {"gen", lf_command_gen, "generate the training dataset with the filesystem simulator"},
    {"train", lf_command_train, "tokenize a corpus, train or fine-tune a transformer, resume a run"},
    {"eval", lf_command_eval, "complete a dataset's prompts with a model and score the answers"},
    {"mkfs", lf_command_mkfs, "pack a directory into a compressed filesystem image"},
    {"mount", lf_command_mount, "mount a compressed filesystem image read-write"},
    {"unpack", lf_command_unpack, "restore an image's tree as a directory"},
    {"ls", lf_command_ls, "list the tree of an image"},
    {"cat", lf_command_cat, "write a file of an image to stdout"},
    {"fsck", lf_command_fsck, "verify every checksum and stream of an image"},
    {"info", lf_command_info, "describe an image: model, nodes, bytes per stream kind"},
};

static void print_usage(FILE *stream)
{
    fprintf(stream, "usage: llmfuse COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(stream, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(stream, "\nRun 'llmfuse COMMAND -h' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        print_usage(stdout);
        return LF_EXIT_OK;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("llmfuse %s\n", LLMFUSE_VERSION);
        return LF_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "llmfuse: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return LF_EXIT_ERROR;
}
