/* llmfuse model init | info: make a random transformer, describe a model. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cli/commands.h"
#include "model/kernels.h"
#include "model/transformer_file.h"
#include "train/settings.h"

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: llmfuse model init [--config FILE.json] [--tokenizer FILE.gguf] [--seed S] -o FILE.gguf\n"
            "       llmfuse model info FILE.gguf\n\n"
            "init writes a randomly initialised transformer: the default shape is small (tests\n"
            "use it); a JSON config may set any of context_length, embedding_length,\n"
            "block_count, head_count, head_count_kv, feed_forward_length, rope_freq_base,\n"
            "rms_epsilon. Without --tokenizer the vocabulary is the 256 bytes and the special\n"
            "tokens.\n");
}

static int model_init(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"tokenizer", required_argument, NULL, 't'},
                                            {"seed", required_argument, NULL, 's'},
                                            {"output", required_argument, NULL, 'o'},
                                            {"help", no_argument, NULL, 'h'},
                                            {0}};
    const char *config_path = NULL, *tokenizer_path = NULL, *output = NULL;
    uint64_t seed = 1;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "c:t:s:o:h", options, NULL)) != -1) {
        switch (option) {
        case 'c': config_path = optarg; break;
        case 't': tokenizer_path = optarg; break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'o': output = optarg; break;
        case 'h': print_usage(stdout); return LF_EXIT_OK;
        default: print_usage(stderr); return LF_EXIT_ERROR;
        }
    }
    if (!output || optind != argc) {
        print_usage(stderr);
        return LF_EXIT_ERROR;
    }
    lf_diagnostic diagnostic = {0};
    lf_tokenizer *tokenizer = NULL;
    int64_t status = tokenizer_path ? lf_tokenizer_load(tokenizer_path, &tokenizer, &diagnostic)
                                    : lf_tokenizer_from_merges(NULL, 0, &tokenizer, &diagnostic);
    lf_transformer_config config = lf_transformer_default_config(
        status == 0 ? lf_tokenizer_vocab_size(tokenizer) : 0);
    if (status == 0 && config_path)
        status = lf_train_model_config_read(config_path, &config, &diagnostic);
    if (status == 0)
        status = lf_transformer_validate_config(&config, &diagnostic);
    float *parameters = NULL;
    if (status == 0) {
        parameters = malloc(lf_transformer_parameter_count(&config) * sizeof *parameters);
        status = parameters ? 0 : -ENOMEM;
    }
    if (status == 0) {
        lf_transformer_init_parameters(&config, seed, parameters);
        status = lf_transformer_save(&config, parameters, tokenizer, output, &diagnostic);
    }
    free(parameters);
    lf_tokenizer_free(tokenizer);
    if (status < 0) {
        fprintf(stderr, "llmfuse model init: %s: %s\n", output,
                diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
        return LF_EXIT_ERROR;
    }
    return LF_EXIT_OK;
}

static int model_info(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        print_usage(argc == 2 && strcmp(argv[1], "-h") == 0 ? stdout : stderr);
        return argc == 2 && strcmp(argv[1], "-h") == 0 ? LF_EXIT_OK : LF_EXIT_ERROR;
    }
    lf_diagnostic diagnostic = {0};
    lf_gguf *file = NULL;
    lf_transformer *model = NULL;
    lf_tokenizer *tokenizer = NULL;
    int64_t status = lf_gguf_open_file(argv[1], &file, &diagnostic);
    if (status == 0)
        status = lf_transformer_load(file, &model, &diagnostic);
    if (status == 0)
        status = lf_tokenizer_read_gguf(file, &tokenizer, &diagnostic);
    if (status == 0) {
        const lf_transformer_config *c = &model->config;
        uint64_t size;
        const uint8_t *image = lf_gguf_image(file, &size);
        printf("file:            %s (%" PRIu64 " bytes)\n", argv[1], size);
        printf("fingerprint:     %016" PRIx64 "\n", (uint64_t)XXH64(image, (size_t)size, 0));
        printf("parameters:      %zu\n", lf_transformer_parameter_count(c));
        printf("layers:          %u\n", c->layer_count);
        printf("embedding:       %u\n", c->embedding_size);
        printf("heads:           %u (key/value heads %u, head size %u)\n", c->head_count,
               c->kv_head_count, c->embedding_size / c->head_count);
        printf("feed-forward:    %u\n", c->feed_forward_size);
        printf("context:         %u tokens\n", c->context_length);
        printf("vocabulary:      %u tokens (%u merges)\n", lf_tokenizer_vocab_size(tokenizer),
               lf_tokenizer_merge_count(tokenizer));
        printf("rope base:       %g\n", c->rope_base);
        printf("weights:         int8, per-row float scales\n");
        printf("kernel:          %s\n", lf_kernels_chosen()->name);
    }
    lf_tokenizer_free(tokenizer);
    lf_transformer_free(model);
    lf_gguf_close(file);
    if (status < 0) {
        fprintf(stderr, "llmfuse model info: %s: %s\n", argv[1],
                diagnostic.message[0] ? diagnostic.message : lf_error_string(status));
        return LF_EXIT_ERROR;
    }
    return LF_EXIT_OK;
}

int lf_command_model(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "init") == 0)
        return model_init(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "info") == 0)
        return model_info(argc - 1, argv + 1);
    bool help = argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
    print_usage(help ? stdout : stderr);
    return help ? LF_EXIT_OK : LF_EXIT_ERROR;
}
