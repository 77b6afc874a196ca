/* libFuzzer target for gzip recompression: no input may crash, hang, leak
 * or trip a sanitizer; a file that is split must be rebuilt byte for byte
 * (lf_gzip_join), one that is not must leave the text buffer untouched;
 * inflate must respect its output limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/gzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int condition, const char *what)
{
    if (!condition) {
        fprintf(stderr, "fuzz_gzip_split: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_buffer text = {0}, rebuilt = {0};
    size_t header_size = 0;
    int64_t status = lf_gzip_split(data, size, &header_size, &text);
    if (status == 0) {
        require(lf_gzip_join(data, header_size, text.data, text.length, &rebuilt) == 0, "join");
        require(rebuilt.length == size && memcmp(rebuilt.data, data, size) == 0,
                "a split file is not rebuilt byte for byte");
    } else {
        require(text.length == 0, "a failed split left text behind");
    }
    /* the same bytes as a raw deflate stream, with a small output limit */
    lf_buffer inflated = {0};
    size_t consumed = 0;
    status = lf_gzip_inflate(data, size, 4096, &consumed, &inflated);
    require(status == 0 ? consumed <= size && inflated.length <= 4096 : inflated.length == 0,
            "inflate's result and output disagree");
    lf_buffer_free(&text);
    lf_buffer_free(&rebuilt);
    lf_buffer_free(&inflated);
    return 0;
}
