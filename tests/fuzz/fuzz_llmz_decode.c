/* libFuzzer target for the .llmz reader and decoder: no input may crash,
 * hang, leak or trip a sanitizer; a failure must leave the output untouched
 * and say why; whatever decodes must re-encode to an archive that decodes to
 * the same bytes.
 *
 * This build defines FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which makes
 * the reader ignore checksum mismatches, so the fuzzer gets past them into
 * the table, zstd and model decoding instead of stopping at a random
 * XXH32. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/llmz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Model decoding runs at a few KB/s under the sanitizers: bound the work. */
enum { MAX_CLAIMED_BYTES = 1 << 16 };

static lf_model *model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model && lf_model_open("cm-small", &model, NULL) != 0)
        abort();
    lf_llmz_header header;
    if (lf_llmz_read_header(data, size, &header, NULL) != 0)
        return 0;
    uint64_t claimed = header.original_size;
    lf_llmz_header_free(&header);
    if (claimed > MAX_CLAIMED_BYTES)
        return 0;
    lf_llmz_options options = {.model = model, .threads = 1};
    lf_buffer out = {0};
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_llmz_decompress(data, size, &options, &out, &diagnostic);
    if (status < 0 && (out.length != 0 || diagnostic.message[0] == '\0')) {
        fprintf(stderr, "failure left output or gave no message\n");
        abort();
    }
    if (status == 0) {
        lf_buffer archive = {0}, again = {0};
        if (lf_llmz_compress(out.data, out.length, &options, &archive, NULL) != 0 ||
            lf_llmz_decompress(archive.data, archive.length, &options, &again, NULL) != 0 ||
            again.length != out.length || (out.length && memcmp(again.data, out.data, out.length)))
            abort();
        lf_buffer_free(&archive);
        lf_buffer_free(&again);
    }
    lf_buffer_free(&out);
    return 0;
}
