/* Measures the BPE tokenizer: training time on a corpus, then for each file
 * the tokens per byte and the encoding speed with a cold chunk cache (a
 * fresh encoder) and a warm one (the same encoder again), and decoding.
 *
 *   tokenizer_speed VOCAB_SIZE CORPUS [FILE...]
 *
 * Build against a Release library (scripts/quickstart makes build/):
 *   cc -O2 -Isrc bench/tokenizer_speed.c build/libllmfuse_core.a \
 *      -lxxhash -lzstd -lexpat -lpthread -lm -o /tmp/tokenizer_speed */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/file.h"
#include "model/tokenizer.h"

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static void read_or_exit(const char *path, lf_buffer *out)
{
    lf_diagnostic diagnostic = {0};
    if (lf_file_read_all(path, out, &diagnostic) != 0) {
        fprintf(stderr, "%s\n", diagnostic.message);
        exit(1);
    }
}

static void measure(const lf_tokenizer *tokenizer, const char *path)
{
    lf_buffer text = {0}, decoded = {0};
    read_or_exit(path, &text);
    lf_tokenizer_encoder *encoder;
    lf_token_array tokens = {0};
    if (lf_tokenizer_encoder_create(tokenizer, &encoder) != 0)
        exit(1);
    double start = seconds_now();
    lf_tokenizer_encode(encoder, text.data, text.length, &tokens);
    double cold = seconds_now() - start;
    tokens.count = 0;
    start = seconds_now();
    lf_tokenizer_encode(encoder, text.data, text.length, &tokens);
    double warm = seconds_now() - start;
    start = seconds_now();
    lf_tokenizer_decode(tokenizer, tokens.ids, tokens.count, &decoded, NULL);
    double decoding = seconds_now() - start;
    double megabytes = (double)text.length / 1e6;
    printf("%s: %zu bytes, %zu tokens, %.3f tokens/byte; encode %.1f MB/s cold, %.1f MB/s warm; "
           "decode %.1f MB/s; round trip %s\n",
           path, text.length, tokens.count, (double)tokens.count / (double)text.length,
           megabytes / cold, megabytes / warm, megabytes / decoding,
           decoded.length == text.length && memcmp(decoded.data, text.data, text.length) == 0
               ? "exact"
               : "BROKEN");
    lf_tokenizer_encoder_free(encoder);
    lf_token_array_free(&tokens);
    lf_buffer_free(&decoded);
    lf_buffer_free(&text);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tokenizer_speed VOCAB_SIZE CORPUS [FILE...]\n");
        return 1;
    }
    lf_buffer corpus = {0};
    read_or_exit(argv[2], &corpus);
    lf_tokenizer *tokenizer;
    lf_diagnostic diagnostic = {0};
    double start = seconds_now();
    if (lf_tokenizer_train(corpus.data, corpus.length, (uint32_t)atoi(argv[1]), &tokenizer,
                           &diagnostic) != 0) {
        fprintf(stderr, "%s\n", diagnostic.message);
        return 1;
    }
    printf("trained %u tokens on %zu bytes in %.2f s\n", lf_tokenizer_vocab_size(tokenizer),
           corpus.length, seconds_now() - start);
    lf_buffer_free(&corpus);
    for (int i = 3; i < argc; i++)
        measure(tokenizer, argv[i]);
    lf_tokenizer_free(tokenizer);
    return 0;
}
