/* The .llmz container (docs/FORMAT.md §2): a header naming the model by its
 * fingerprint and a table of independently decodable segments, each coded
 * by the model, zstd or stored — whichever is smallest — and each with a
 * checksum of its payload and of its original bytes.  Segments are coded
 * and decoded on several threads; the bytes never depend on how many. */
#ifndef LLMFUSE_CODEC_LLMZ_H
#define LLMFUSE_CODEC_LLMZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "model/model.h"

#define LF_LLMZ_VERSION 1

typedef enum lf_llmz_method {
    LF_LLMZ_STORED = 0,
    LF_LLMZ_ZSTD = 1,
    LF_LLMZ_MODEL = 2,
} lf_llmz_method;

typedef struct lf_llmz_segment {
    lf_llmz_method method;
    uint64_t original_size, stored_size;
    uint32_t payload_checksum, original_checksum; /* XXH32, seed 0 */
    uint64_t payload_offset, original_offset;
} lf_llmz_segment;

typedef struct lf_llmz_header {
    uint8_t version;
    uint64_t fingerprint;
    uint64_t original_size;
    uint64_t header_size; /* bytes before the first payload */
    size_t segment_count;
    lf_llmz_segment *segments;
} lf_llmz_header;

typedef void (*lf_llmz_progress_fn)(void *context, uint64_t done, uint64_t total);

typedef struct lf_llmz_options {
    const lf_model *model;
    unsigned threads; /* 0 = all cores */
    uint64_t segment_size; /* compression: bytes per segment, 0 = the model's choice */
    /* compression: a model that splits inputs for the threads' sake (even
     * segments, lf_model.even_segments) keeps each segment_size of input
     * whole instead: smaller archives, one thread per segment */
    bool whole_segments;
    size_t batch_size;     /* most segments coded together in one job, 0 = the model's
                              choice; like threads, never changes the bytes */
    /* Bytes the model reads before every segment ({NULL, 0}: none), not
     * stored in the archive: they say what the data is, so the model
     * predicts it better (the image passes each file's path: `.rs` predicts
     * Rust). Decompression needs the same prefix: with a different one the
     * model decodes other bytes, and the segment fails with its checksum
     * error (-LF_ECHECKSUM; -LF_EFORMAT when the model's decoding itself
     * goes wrong, as a transformer's may). Stored and zstd segments do not
     * depend on it. */
    lf_span prefix;
    lf_llmz_progress_fn progress;
    void *progress_context;
} lf_llmz_options;

/* Parses and validates the header and table of a whole archive in memory:
 * magic, version, table checksum, sizes against the archive's length. */
int64_t lf_llmz_read_header(const uint8_t *archive, uint64_t size, lf_llmz_header *header,
                            lf_diagnostic *diagnostic);
void lf_llmz_header_free(lf_llmz_header *header);

/* Codes data with options->model and, when the model names a fallback, with
 * that too, appending the smaller archive to out (the first on ties); a
 * model with a fallback codes only text (control bytes other than tab,
 * line and page breaks and escape at most 1%): binary data goes to the
 * fallback alone. */
int64_t lf_llmz_compress(const uint8_t *data, uint64_t size, const lf_llmz_options *options,
                         lf_buffer *out, lf_diagnostic *diagnostic);
/* options->model must have the archive's fingerprint (-LF_EMODEL naming both
 * otherwise), and options->prefix must be compression's (nothing records
 * it: see lf_llmz_options). Appends the original bytes to out only when
 * every segment decoded and matched its checksums; on error out keeps its
 * length. */
int64_t lf_llmz_decompress(const uint8_t *archive, uint64_t size, const lf_llmz_options *options,
                           lf_buffer *out, lf_diagnostic *diagnostic);

const char *lf_llmz_method_name(lf_llmz_method method);

/* The codec's test for text (what a model with a fallback codes): few
 * control bytes other than tab, line and page breaks and escape, where
 * binary data (images, executables, random bytes) has many. */
bool lf_llmz_looks_like_text(const uint8_t *data, uint64_t size);

#endif
