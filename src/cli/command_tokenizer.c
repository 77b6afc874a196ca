/* llmfuse tokenizer train|encode|decode|info */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "common/buffer.h"
#include "common/file.h"
#include "model/tokenizer.h"

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmfuse tokenizer train --vocab-size N -o FILE.gguf INPUT...\n"
            "           learn a byte-level BPE vocabulary of N tokens from the inputs\n"
            "       llmfuse tokenizer encode FILE.gguf [INPUT]\n"
            "           print the token ids of INPUT ('-' or none: stdin)\n"
            "       llmfuse tokenizer decode FILE.gguf [INPUT]\n"
            "           write the bytes of the token ids (decimal, whitespace-separated)\n"
            "       llmfuse tokenizer info FILE.gguf\n"
            "           print the vocabulary's size, special tokens and longest tokens\n"
            "FILE.gguf is a tokenizer file or a model that contains one.\n");
}

static int report(const char *name, int64_t status, const lf_diagnostic *diagnostic)
{
    fprintf(stderr, "llmfuse tokenizer: %s: %s\n", name,
            diagnostic->message[0] ? diagnostic->message : lf_error_string(status));
    return LF_EXIT_ERROR;
}

/* How an input is named in messages. */
static const char *display_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "(stdin)" : path;
}

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static int train(int argc, char **argv)
{
    static const struct option options[] = {{"vocab-size", required_argument, NULL, 'n'},
                                            {"output", required_argument, NULL, 'o'},
                                            {"help", no_argument, NULL, 'h'},
                                            {0}};
    const char *output = NULL;
    long vocab_size = 0;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "n:o:h", options, NULL)) != -1) {
        char *end;
        switch (option) {
        case 'n':
            errno = 0;
            vocab_size = strtol(optarg, &end, 10);
            if (errno || *end || vocab_size < LF_TOKEN_FIRST_MERGE ||
                vocab_size > (long)LF_TOKENIZER_MAX_VOCAB) {
                fprintf(stderr, "llmfuse tokenizer: --vocab-size must be %d to %u\n",
                        LF_TOKEN_FIRST_MERGE, LF_TOKENIZER_MAX_VOCAB);
                return LF_EXIT_ERROR;
            }
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            print_usage(stdout);
            return LF_EXIT_OK;
        default:
            print_usage(stderr);
            return LF_EXIT_ERROR;
        }
    }
    if (!output || vocab_size == 0 || optind >= argc) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    double started = seconds_now();
    lf_tokenizer_trainer *trainer;
    if (lf_tokenizer_trainer_create(&trainer) < 0)
        return report(output, -ENOMEM, &(lf_diagnostic){0});
    lf_diagnostic diagnostic = {0};
    uint64_t corpus_size = 0;
    int64_t status = 0;
    const char *failed = output;
    for (int i = optind; i < argc && status == 0; i++) {
        lf_buffer input = {0};
        status = lf_file_read_all(argv[i], &input, &diagnostic);
        if (status == 0)
            status = lf_tokenizer_trainer_add(trainer, input.data, input.length);
        if (status < 0)
            failed = display_name(argv[i]);
        corpus_size += input.length;
        lf_buffer_free(&input);
    }
    lf_tokenizer *tokenizer = NULL;
    if (status == 0)
        status = lf_tokenizer_trainer_finish(trainer, (uint32_t)vocab_size, &tokenizer,
                                             &diagnostic);
    lf_tokenizer_trainer_free(trainer);
    if (status == 0)
        status = lf_tokenizer_save(tokenizer, output, &diagnostic);
    if (status < 0) {
        lf_tokenizer_free(tokenizer);
        return report(failed, status, &diagnostic);
    }
    uint32_t learned = lf_tokenizer_vocab_size(tokenizer);
    lf_tokenizer_free(tokenizer);
    fprintf(stderr, "llmfuse tokenizer: %s: %" PRIu32 " tokens from %" PRIu64
            " bytes in %.1f s\n", output, learned, corpus_size, seconds_now() - started);
    if (learned < (uint32_t)vocab_size) {
        fprintf(stderr, "llmfuse tokenizer: only %" PRIu32 " of %ld tokens: no other pair of "
                "tokens occurs twice in the input\n", learned, vocab_size);
        return LF_EXIT_WARNING;
    }
    return LF_EXIT_OK;
}

static int encode(const lf_tokenizer *tokenizer, const char *input_name)
{
    lf_diagnostic diagnostic = {0};
    lf_buffer input = {0}, text = {0};
    lf_token_array tokens = {0};
    lf_tokenizer_encoder *encoder = NULL;
    int64_t status = lf_file_read_all(input_name, &input, &diagnostic);
    if (status == 0)
        status = lf_tokenizer_encoder_create(tokenizer, &encoder);
    if (status == 0)
        status = lf_tokenizer_encode(encoder, input.data, input.length, &tokens);
    for (size_t i = 0; i < tokens.count && status >= 0; i++)
        if (lf_buffer_printf(&text, i + 1 < tokens.count ? "%" PRIu32 " " : "%" PRIu32 "\n",
                             tokens.ids[i]) < 0)
            status = -ENOMEM;
    if (status >= 0)
        status = lf_file_write_all(stdout, text.data, text.length, "stdout", &diagnostic);
    lf_tokenizer_encoder_free(encoder);
    lf_token_array_free(&tokens);
    lf_buffer_free(&input);
    lf_buffer_free(&text);
    return status < 0 ? report(display_name(input_name), status, &diagnostic) : LF_EXIT_OK;
}

/* Whitespace-separated decimal ids. */
static int64_t parse_ids(const lf_buffer *text, lf_token_array *ids, lf_diagnostic *diagnostic)
{
    const char *cursor = (const char *)text->data;
    const char *end = cursor + text->length;
    while (cursor < end) {
        if (strchr(" \t\r\n", *cursor)) {
            cursor++;
            continue;
        }
        uint64_t id = 0;
        const char *digits = cursor;
        while (cursor < end && *cursor >= '0' && *cursor <= '9' && id <= UINT32_MAX)
            id = id * 10 + (uint64_t)(*cursor++ - '0');
        if (cursor == digits || id > UINT32_MAX || (cursor < end && !strchr(" \t\r\n", *cursor)))
            return lf_fail(diagnostic, -LF_EFORMAT, "byte %td: expected a token id",
                           digits - (const char *)text->data);
        uint32_t token = (uint32_t)id;
        if (lf_token_array_append(ids, &token, 1) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int decode(const lf_tokenizer *tokenizer, const char *input_name)
{
    lf_diagnostic diagnostic = {0};
    lf_buffer input = {0}, bytes = {0};
    lf_token_array ids = {0};
    int64_t status = lf_file_read_all(input_name, &input, &diagnostic);
    if (status == 0)
        status = parse_ids(&input, &ids, &diagnostic);
    if (status == 0)
        status = lf_tokenizer_decode(tokenizer, ids.ids, ids.count, &bytes, &diagnostic);
    if (status == 0)
        status = lf_file_write_all(stdout, bytes.data, bytes.length, "stdout", &diagnostic);
    lf_token_array_free(&ids);
    lf_buffer_free(&input);
    lf_buffer_free(&bytes);
    return status < 0 ? report(display_name(input_name), status, &diagnostic) : LF_EXIT_OK;
}

/* A token's bytes with C escapes for anything not printable ASCII. */
static void print_token(const lf_tokenizer *tokenizer, uint32_t id)
{
    size_t length;
    const uint8_t *bytes = lf_tokenizer_token_bytes(tokenizer, id, &length);
    putchar('"');
    for (size_t i = 0; i < length; i++) {
        if (bytes[i] == '"' || bytes[i] == '\\')
            printf("\\%c", bytes[i]);
        else if (bytes[i] == '\n')
            printf("\\n");
        else if (bytes[i] < ' ' || bytes[i] > '~')
            printf("\\x%02x", bytes[i]);
        else
            putchar(bytes[i]);
    }
    putchar('"');
}

static size_t token_length(const lf_tokenizer *tokenizer, uint32_t id)
{
    size_t length;
    lf_tokenizer_token_bytes(tokenizer, id, &length);
    return length;
}

static int info(const lf_tokenizer *tokenizer)
{
    uint32_t vocab_size = lf_tokenizer_vocab_size(tokenizer);
    printf("pre-tokenizer: %s\n", LF_TOKENIZER_PRETOKENIZER);
    printf("vocabulary: %" PRIu32 " tokens (256 bytes, %d special, %" PRIu32 " merges)\n",
           vocab_size, LF_TOKEN_FIRST_MERGE - LF_TOKEN_ENDOFTEXT,
           lf_tokenizer_merge_count(tokenizer));
    printf("special:");
    for (uint32_t id = LF_TOKEN_ENDOFTEXT; id < LF_TOKEN_FIRST_MERGE; id++) {
        printf(" %" PRIu32 " ", id);
        print_token(tokenizer, id);
    }
    /* The ten longest tokens, the first learned first among equals. */
    enum { SHOWN = 10 };
    uint32_t longest[SHOWN];
    size_t shown = 0;
    for (uint32_t id = LF_TOKEN_FIRST_MERGE; id < vocab_size; id++) {
        size_t length = token_length(tokenizer, id);
        if (shown == SHOWN && token_length(tokenizer, longest[SHOWN - 1]) >= length)
            continue;
        size_t at = shown < SHOWN ? shown++ : SHOWN - 1;
        for (; at > 0 && token_length(tokenizer, longest[at - 1]) < length; at--)
            longest[at] = longest[at - 1];
        longest[at] = id;
    }
    printf("\nlongest:");
    for (size_t i = 0; i < shown; i++) {
        printf(" %" PRIu32 " ", longest[i]);
        print_token(tokenizer, longest[i]);
    }
    printf("\n");
    return fflush(stdout) == 0 ? LF_EXIT_OK : LF_EXIT_ERROR;
}

int lf_command_tokenizer(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? LF_EXIT_ERROR : LF_EXIT_OK;
    }
    const char *action = argv[1];
    if (strcmp(action, "train") == 0)
        return train(argc - 1, argv + 1);
    bool takes_input = strcmp(action, "encode") == 0 || strcmp(action, "decode") == 0;
    if (!(takes_input || strcmp(action, "info") == 0) || argc < 3 ||
        argc > (takes_input ? 4 : 3)) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    lf_diagnostic diagnostic = {0};
    lf_tokenizer *tokenizer;
    int64_t status = lf_tokenizer_load(argv[2], &tokenizer, &diagnostic);
    if (status < 0)
        return report(argv[2], status, &diagnostic);
    const char *input = argc == 4 ? argv[3] : "-";
    int exit_status = strcmp(action, "info") == 0 ? info(tokenizer)
                      : strcmp(action, "encode") == 0 ? encode(tokenizer, input)
                                                      : decode(tokenizer, input);
    lf_tokenizer_free(tokenizer);
    return exit_status;
}
