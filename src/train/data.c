#include "train/data.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buffer.h"
#include "common/file.h"
#include "common/parallel.h"

/* .tok files are little-endian and mapped as they are. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token files are read in place");

int64_t lf_train_tokens_open(const char *path, uint32_t vocab_size, lf_train_tokens *tokens,
                             lf_diagnostic *diagnostic)
{
    *tokens = (lf_train_tokens){0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lf_fail(diagnostic, -errno, "cannot open '%s': %s", path, strerror(errno));
    struct stat status_of_file;
    int64_t status = 0;
    if (fstat(fd, &status_of_file) != 0)
        status = lf_fail(diagnostic, -errno, "cannot read '%s': %s", path, strerror(errno));
    else if (status_of_file.st_size % sizeof(uint32_t) != 0)
        status = lf_fail(diagnostic, -LF_EFORMAT,
                         "'%s' is not a token file: its size is not a multiple of 4", path);
    else if (status_of_file.st_size == 0)
        status = lf_fail(diagnostic, -LF_EFORMAT, "'%s' holds no tokens", path);
    void *mapping = MAP_FAILED;
    if (status == 0) {
        mapping = mmap(NULL, (size_t)status_of_file.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (mapping == MAP_FAILED)
            status = lf_fail(diagnostic, -errno, "cannot map '%s': %s", path, strerror(errno));
    }
    close(fd);
    if (status < 0)
        return status;
    *tokens = (lf_train_tokens){.ids = mapping,
                                .count = (size_t)status_of_file.st_size / sizeof(uint32_t),
                                .mapping = mapping,
                                .mapping_size = (size_t)status_of_file.st_size};
    for (size_t i = 0; i < tokens->count; i++)
        if (tokens->ids[i] >= vocab_size) {
            status = lf_fail(diagnostic, -LF_EFORMAT,
                             "'%s': token %zu is %u, outside the vocabulary of %u", path, i,
                             tokens->ids[i], vocab_size);
            lf_train_tokens_close(tokens);
            return status;
        }
    return 0;
}

void lf_train_tokens_close(lf_train_tokens *tokens)
{
    if (tokens->mapping)
        munmap(tokens->mapping, tokens->mapping_size);
    *tokens = (lf_train_tokens){0};
}

/* Row `row` of batch: inputs ids[start .. start + T), targets one further. */
static void fill_row(lf_train_batch *batch, uint32_t row, const uint32_t *window)
{
    size_t length = batch->length;
    memcpy(batch->inputs + row * length, window, length * sizeof *window);
    for (size_t t = 0; t < length; t++)
        batch->targets[row * length + t] = (int32_t)window[t + 1];
}

void lf_train_sample_windows(const lf_train_span *span, lf_random *random, lf_train_batch *batch)
{
    uint64_t starts = span->count - batch->length; /* window starts 0 .. count - (T + 1) */
    for (uint32_t row = 0; row < batch->rows; row++)
        fill_row(batch, row, span->ids + lf_random_below(random, starts));
}

size_t lf_train_eval_window_count(const lf_train_span *span, uint32_t length, uint64_t max_tokens)
{
    size_t fitting = span->count / ((size_t)length + 1);
    uint64_t wanted = max_tokens / length;
    if (wanted == 0)
        wanted = 1;
    return fitting < wanted ? fitting : (size_t)wanted;
}

void lf_train_fill_eval_windows(const lf_train_span *span, size_t window_count, size_t first,
                                lf_train_batch *batch)
{
    size_t last_start = span->count - batch->length - 1;
    for (uint32_t row = 0; row < batch->rows; row++) {
        size_t window = first + row;
        size_t start = 0;
        if (window_count > 1) { /* window * last_start / (window_count - 1), without overflow */
            size_t gaps = window_count - 1;
            start = window * (last_start / gaps) + window * (last_start % gaps) / gaps;
        }
        fill_row(batch, row, span->ids + start);
    }
}

void lf_train_token_byte_lengths(const lf_tokenizer *tokenizer, uint8_t *lengths)
{
    uint32_t vocabulary = lf_tokenizer_vocab_size(tokenizer);
    for (uint32_t id = 0; id < vocabulary; id++) {
        size_t length = 0;
        bool special = id >= LF_TOKEN_ENDOFTEXT && id < LF_TOKEN_FIRST_MERGE;
        if (!special)
            lf_tokenizer_token_bytes(tokenizer, id, &length);
        lengths[id] = (uint8_t)length; /* tokens are at most LF_TOKENIZER_MAX_CHUNK bytes */
    }
}

/* ---- writing a .tok file ---- */

typedef struct tokenize_job {
    const lf_tokenizer *tokenizer;
    const char *const *paths;
    lf_token_array *documents;  /* one per input */
    int64_t *statuses;          /* one per input */
    lf_diagnostic *diagnostics; /* one per input */
} tokenize_job;

static int64_t tokenize_one(void *context, size_t index)
{
    const tokenize_job *job = context;
    lf_buffer text = {0};
    lf_tokenizer_encoder *encoder = NULL;
    int64_t status = lf_file_read_all(job->paths[index], &text, &job->diagnostics[index]);
    if (status == 0)
        status = lf_tokenizer_encoder_create(job->tokenizer, &encoder);
    if (status == 0)
        status = lf_tokenizer_encode(encoder, text.data, text.length, &job->documents[index]);
    lf_tokenizer_encoder_free(encoder);
    lf_buffer_free(&text);
    job->statuses[index] = status < 0 ? status : 0;
    return job->statuses[index];
}

int64_t lf_train_tokenize_files(const lf_tokenizer *tokenizer, const char *const *paths,
                                size_t count, unsigned threads, const char *output,
                                lf_diagnostic *diagnostic)
{
    lf_token_array *documents = calloc(count, sizeof *documents);
    int64_t *statuses = calloc(count, sizeof *statuses);
    lf_diagnostic *diagnostics = calloc(count, sizeof *diagnostics);
    lf_token_array corpus = {0};
    int64_t status = documents && statuses && diagnostics ? 0 : -ENOMEM;
    if (status == 0) {
        tokenize_job job = {.tokenizer = tokenizer, .paths = paths, .documents = documents,
                            .statuses = statuses, .diagnostics = diagnostics};
        status = lf_parallel_for(count, threads, tokenize_one, &job);
    }
    for (size_t i = 0; status < 0 && statuses && i < count; i++)
        if (statuses[i] < 0) { /* the failure lf_parallel_for reports: the lowest input's */
            if (diagnostics[i].message[0])
                lf_fail(diagnostic, status, "%s", diagnostics[i].message);
            else
                lf_fail(diagnostic, status, "%s: %s", paths[i], lf_error_string(status));
            break;
        }
    const uint32_t separator = LF_TOKEN_ENDOFTEXT;
    if (status == 0)
        status = lf_token_array_append(&corpus, &separator, 1);
    for (size_t i = 0; status == 0 && i < count; i++) {
        status = lf_token_array_append(&corpus, documents[i].ids, documents[i].count);
        if (status == 0)
            status = lf_token_array_append(&corpus, &separator, 1);
    }
    if (status == 0)
        status = lf_file_write_atomic(output, corpus.ids, corpus.count * sizeof *corpus.ids,
                                      diagnostic);
    for (size_t i = 0; documents && i < count; i++)
        lf_token_array_free(&documents[i]);
    free(documents);
    free(statuses);
    free(diagnostics);
    int64_t written = (int64_t)corpus.count;
    lf_token_array_free(&corpus);
    return status < 0 ? status : written;
}
